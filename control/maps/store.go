package maps

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/meridian-gis/meridian/internal/identity"
)

// record is one row of maps, with its owner's email and shares.
type record struct {
	ID, OrgID, OwnerID, OwnerEmail string
	Title, Description             string
	Privacy, SharingScope          string
	Collaborative                  bool
	Tags                           []string
	Datasets                       []Dataset
	Config                         json.RawMessage
	HasThumbnail                   bool
	Published                      *snapshot
	PublishedAt                    *time.Time
	TokenID                        *string
	CreatedAt, UpdatedAt           time.Time
	Shares                         []string
}

// snapshot is what publishing freezes.
type snapshot struct {
	Title           string          `json:"title"`
	Description     string          `json:"description"`
	Datasets        []Dataset       `json:"datasets"`
	KeplerMapConfig json.RawMessage `json:"keplerMapConfig"`
}

const selectMap = `SELECT m.id, m.org_id, m.owner_id, u.email, m.title, m.description, m.privacy, m.sharing_scope,
	m.collaborative, m.tags, m.datasets, m.config, m.thumbnail IS NOT NULL, m.published, m.published_at,
	m.map_token_id, m.created_at, m.updated_at,
	COALESCE((SELECT array_agg(s.user_id ORDER BY s.user_id) FROM map_shares s WHERE s.map_id = m.id), '{}')
	FROM maps m JOIN users u ON u.id = m.owner_id `

var errNoMap = errors.New("maps: no such map")

func scanMap(row pgx.Row) (*record, error) {
	var m record
	var datasets, published []byte
	err := row.Scan(&m.ID, &m.OrgID, &m.OwnerID, &m.OwnerEmail, &m.Title, &m.Description, &m.Privacy, &m.SharingScope,
		&m.Collaborative, &m.Tags, &datasets, &m.Config, &m.HasThumbnail, &published, &m.PublishedAt,
		&m.TokenID, &m.CreatedAt, &m.UpdatedAt, &m.Shares)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errNoMap
	}
	if err != nil {
		return nil, fmt.Errorf("maps: reading a map: %w", err)
	}
	if err := json.Unmarshal(datasets, &m.Datasets); err != nil {
		return nil, fmt.Errorf("maps: map %s: datasets: %w", m.ID, err)
	}
	if published != nil {
		m.Published = new(snapshot)
		if err := json.Unmarshal(published, m.Published); err != nil {
			return nil, fmt.Errorf("maps: map %s: snapshot: %w", m.ID, err)
		}
	}
	return &m, nil
}

type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// load reads map id of org; forUpdate locks its row (in a transaction).
func load(ctx context.Context, db querier, org, id string, forUpdate bool) (*record, error) {
	q := selectMap + `WHERE m.id = $1 AND m.org_id = $2`
	if forUpdate {
		q += ` FOR UPDATE OF m`
	}
	return scanMap(db.QueryRow(ctx, q, id, org))
}

// loadAny reads map id whatever its organization (the public endpoint).
func loadAny(ctx context.Context, db querier, id string) (*record, error) {
	return scanMap(db.QueryRow(ctx, selectMap+`WHERE m.id = $1`, id))
}

// visible lists the maps of p's organization that p owns or that are
// not private; access decides which of them p may see.
func visible(ctx context.Context, db querier, p identity.Principal) ([]*record, error) {
	rows, err := db.Query(ctx, selectMap+`WHERE m.org_id = $1 AND (m.owner_id = $2 OR m.privacy <> 'private') ORDER BY m.updated_at DESC, m.id`, p.OrgID, p.UserID)
	if err != nil {
		return nil, fmt.Errorf("maps: listing: %w", err)
	}
	defer rows.Close()
	var out []*record
	for rows.Next() {
		m, err := scanMap(rows)
		if err != nil {
			return nil, err
		}
		if access(p, m) != none {
			out = append(out, m)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("maps: listing: %w", err)
	}
	return out, nil
}

// level is what a caller may do with a map.
type level int

const (
	none level = iota // not even know it exists (404)
	view              // open its published snapshot
	edit              // edit its draft
)

// access is p's level on m. The owner edits; others see a map only when
// it is shared with them (its organization, but not guests, or them by
// name) or public, and edit it when it is collaborative and they are
// editors. Viewers see the published snapshot, so a map they may view
// but that was never published stays hidden.
func access(p identity.Principal, m *record) level {
	if m.OrgID != p.OrgID || !p.IsUser() {
		return none
	}
	if m.OwnerID == p.UserID {
		return edit
	}
	named := slices.Contains(m.Shares, p.UserID)
	var shared bool
	switch m.Privacy {
	case "public":
		shared = p.Role != identity.RoleGuest || named
	case "shared":
		shared = named || (m.SharingScope == "org" && p.Role != identity.RoleGuest)
	}
	if !shared {
		return none
	}
	if m.Collaborative && p.Role.AtLeast(identity.RoleEditor) {
		return edit
	}
	if m.Published == nil {
		return none
	}
	return view
}
