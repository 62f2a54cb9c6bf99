package maps

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/meridian-gis/meridian/control/audit"
	"github.com/meridian-gis/meridian/control/authn"
	"github.com/meridian-gis/meridian/control/httpapi"
	"github.com/meridian-gis/meridian/internal/cachetag"
	"github.com/meridian-gis/meridian/internal/grant"
	"github.com/meridian-gis/meridian/internal/identity"
	"github.com/meridian-gis/meridian/internal/tokenstore"
)

// PublicMaxAge is how long an edge keeps a public map document
// (s-maxage); publishing, unpublishing, a privacy change and deletion
// purge it sooner (tag map:<id>). Browsers revalidate every time.
const PublicMaxAge = 24 * time.Hour

type publishReq struct {
	// Privacy optionally changes who sees the published map (shared or
	// public) in the same step.
	Privacy *Privacy `json:"privacy"`
}

func (a *api) publish(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	p, err := authn.User(r, identity.RoleGuest)
	if err != nil {
		return err
	}
	var req publishReq
	if r.ContentLength != 0 {
		if err := httpapi.Decode(w, r, &req, 64<<10); err != nil {
			return err
		}
	}
	id := r.PathValue("id")
	if req.Privacy != nil {
		mr := mapReq{Privacy: req.Privacy}
		if err := mr.checkFields(); err != nil {
			return err
		}
		m, _, err := a.find(ctx, a.d.Meta, p, id, edit, false)
		if err != nil {
			return err
		}
		if m.OwnerID != p.UserID {
			return httpapi.Forbidden("only the map's owner publishes it")
		}
		wasPublic := m.Privacy == "public"
		err = pgx.BeginFunc(ctx, a.d.Meta, func(tx pgx.Tx) error {
			if err := a.setShares(ctx, tx, p, id, req.Privacy); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `UPDATE maps SET privacy = $2, sharing_scope = $3 WHERE id = $1`, id, req.Privacy.Privacy, req.Privacy.SharingScope)
			return err
		})
		if err != nil {
			return err
		}
		if wasPublic && req.Privacy.Privacy != "public" {
			a.purge(ctx, id, "map made non-public")
		}
	}
	m, err := a.doPublish(r, p, id)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, a.view(m, edit, true))
	return nil
}

// doPublish freezes map id's draft as its snapshot and mints its map
// token: an API access token whose grants are exactly the snapshot's
// datasets, for the maps and SQL APIs. The previous token is kept when
// the grants did not change, else revoked.
func (a *api) doPublish(r *http.Request, p identity.Principal, id string) (*record, error) {
	ctx := r.Context()
	m, _, err := a.find(ctx, a.d.Meta, p, id, edit, false)
	if err != nil {
		return nil, err
	}
	if m.OwnerID != p.UserID {
		return nil, httpapi.Forbidden("only the map's owner publishes it")
	}
	if err := checkConfig(m.Config, m.Datasets); err != nil {
		return nil, err
	}
	for i := range m.Datasets {
		if err := a.probe(ctx, p, &m.Datasets[i], fmt.Sprintf("cannot publish: datasets[%d] (%s)", i, m.Datasets[i].ID)); err != nil {
			return nil, err
		}
	}
	grants := mapGrants(m.Datasets)
	tokenID, oldToken := "", ""
	if m.TokenID != nil {
		oldToken = *m.TokenID
	}
	if len(grants) > 0 {
		if old, err := a.reusable(ctx, oldToken, grants); err != nil {
			return nil, err
		} else if old {
			tokenID = oldToken
		} else {
			_, t, err := a.d.Tokens.Create(ctx, tokenstore.Spec{Org: m.OrgID, Owner: m.OwnerID, Name: "map " + m.ID,
				Grants: grants, APIs: []grant.API{grant.APIMaps, grant.APISQL}, Kind: tokenstore.KindMap})
			if err != nil {
				return nil, fmt.Errorf("maps: minting the map token of %s: %w", m.ID, err)
			}
			tokenID = t.ID
		}
	}
	snap, err := json.Marshal(snapshot{Title: m.Title, Description: m.Description, Datasets: nonNil(m.Datasets), KeplerMapConfig: m.Config})
	if err != nil {
		return nil, fmt.Errorf("maps: snapshot: %w", err)
	}
	dsBefore, _ := json.Marshal(m.Datasets)
	err = pgx.BeginFunc(ctx, a.d.Meta, func(tx pgx.Tx) error {
		cur, err := load(ctx, tx, p.OrgID, id, true)
		if err != nil {
			return err
		}
		if dsNow, _ := json.Marshal(cur.Datasets); !bytes.Equal(dsNow, dsBefore) || !bytes.Equal(cur.Config, m.Config) {
			return httpapi.Conflict("the map changed while it was being published; publish again")
		}
		var tok any
		if tokenID != "" {
			tok = tokenID
		}
		if _, err := tx.Exec(ctx, `UPDATE maps SET published = $2, published_at = now(), map_token_id = $3 WHERE id = $1`, id, snap, tok); err != nil {
			return fmt.Errorf("maps: publishing %s: %w", id, err)
		}
		return audit.Record(ctx, tx, a.event(r, p, "map.published", id, map[string]any{"datasets": len(m.Datasets), "token": tokenID}))
	})
	if err != nil {
		if tokenID != "" && tokenID != oldToken {
			a.revoke(tokenID)
		}
		return nil, err
	}
	if oldToken != "" && oldToken != tokenID {
		a.revoke(oldToken)
	}
	a.purge(ctx, id, "map published")
	return load(ctx, a.d.Meta, p.OrgID, id, false)
}

// mapGrants are the grants a map token needs for datasets, each once.
func mapGrants(ds []Dataset) []grant.Grant {
	var out []grant.Grant
	for i := range ds {
		g := ds[i].Grant()
		if !slices.Contains(out, g) {
			out = append(out, g)
		}
	}
	return out
}

// reusable reports whether token id is live and grants exactly grants.
func (a *api) reusable(ctx context.Context, id string, grants []grant.Grant) (bool, error) {
	if id == "" {
		return false, nil
	}
	t, err := a.d.Tokens.Get(ctx, id)
	if errors.Is(err, tokenstore.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("maps: map token: %w", err)
	}
	if t.Revoked() || len(t.Grants) != len(grants) {
		return false, nil
	}
	for _, g := range grants {
		if !slices.Contains(t.Grants, g) {
			return false, nil
		}
	}
	return true, nil
}

// unpublish removes the snapshot, revokes the map token everywhere and
// makes the map private again; edges drop the document.
func (a *api) unpublish(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	p, err := authn.User(r, identity.RoleGuest)
	if err != nil {
		return err
	}
	var m *record
	err = pgx.BeginFunc(ctx, a.d.Meta, func(tx pgx.Tx) error {
		var err error
		if m, _, err = a.find(ctx, tx, p, r.PathValue("id"), edit, true); err != nil {
			return err
		}
		if m.OwnerID != p.UserID {
			return httpapi.Forbidden("only the map's owner unpublishes it")
		}
		if _, err := tx.Exec(ctx, `UPDATE maps SET published = NULL, published_at = NULL, map_token_id = NULL, privacy = 'private' WHERE id = $1`, m.ID); err != nil {
			return fmt.Errorf("maps: unpublishing %s: %w", m.ID, err)
		}
		return audit.Record(ctx, tx, a.event(r, p, "map.unpublished", m.ID, nil))
	})
	if err != nil {
		return err
	}
	if m.TokenID != nil {
		a.revoke(*m.TokenID)
	}
	a.purge(ctx, m.ID, "map unpublished")
	m, err = load(ctx, a.d.Meta, p.OrgID, m.ID, false)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, a.view(m, edit, true))
	return nil
}

// PublicMap is the document fetchMap reads (CARTO_API.md §2.6).
type PublicMap struct {
	ID              string          `json:"id"`
	Title           string          `json:"title"`
	Description     string          `json:"description"`
	CreatedAt       time.Time       `json:"createdAt"`
	UpdatedAt       time.Time       `json:"updatedAt"`
	Token           string          `json:"token"`
	Datasets        []PublicDataset `json:"datasets"`
	KeplerMapConfig json.RawMessage `json:"keplerMapConfig"`
}

// PublicDataset is a dataset as fetchMap needs it.
type PublicDataset struct {
	Dataset
	// ProviderID is the data warehouse kind: always "postgres".
	ProviderID string `json:"providerId"`
	// Format of the dataset's instantiation: "tilejson".
	Format string `json:"format"`
}

// public answers GET|POST /api/v3/maps/public/{id}: the last published
// snapshot with its map token. A public map's document is public and
// cacheable by the edge (tag map:<id>, purged on every change of what it
// shows); a shared or private one is answered only to a signed-in user it
// is shared with, never stored, and is a 404 to anyone else.
func (a *api) public(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	if r.Method == http.MethodPost {
		// fetchMap POSTs its parameters when the URL would be too long;
		// the document does not depend on them.
		io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, 64<<10))
	}
	m, err := loadAny(ctx, a.d.Meta, r.PathValue("id"))
	if errors.Is(err, errNoMap) || (err == nil && m.Published == nil) {
		w.Header().Set("Cache-Control", "no-store")
		return httpapi.NotFound("map")
	}
	if err != nil {
		return err
	}
	if m.Privacy != "public" {
		w.Header().Set("Cache-Control", "private, no-store")
		p, ok := authn.Caller(r)
		if !ok || access(p, m) == none {
			return httpapi.NotFound("map")
		}
	} else {
		w.Header().Set("Cache-Control", "public, max-age=0, s-maxage="+strconv.Itoa(int(PublicMaxAge.Seconds())))
		w.Header().Set(cachetag.Header, cachetag.Join(cachetag.Map(m.ID), cachetag.Org(m.OrgID)))
	}
	etag := `"` + m.ID + "-" + strconv.FormatInt(m.PublishedAt.UnixMicro(), 36) + "-" + m.Privacy + `"`
	w.Header().Set("ETag", etag)
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	doc := PublicMap{ID: m.ID, Title: m.Published.Title, Description: m.Published.Description, CreatedAt: m.CreatedAt,
		UpdatedAt: *m.PublishedAt, KeplerMapConfig: m.Published.KeplerMapConfig, Datasets: []PublicDataset{}}
	for _, d := range m.Published.Datasets {
		doc.Datasets = append(doc.Datasets, PublicDataset{Dataset: d, ProviderID: "postgres", Format: "tilejson"})
	}
	if m.TokenID != nil {
		s, err := a.d.Tokens.TokenString(ctx, *m.TokenID)
		if err != nil {
			return fmt.Errorf("maps: map token of %s: %w", m.ID, err)
		}
		doc.Token = s
	}
	httpapi.WriteJSON(w, http.StatusOK, doc)
	return nil
}
