package maps

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/meridian-gis/meridian/control/audit"
	"github.com/meridian-gis/meridian/control/authn"
	"github.com/meridian-gis/meridian/control/httpapi"
	"github.com/meridian-gis/meridian/internal/cachetag"
	"github.com/meridian-gis/meridian/internal/dataconn"
	"github.com/meridian-gis/meridian/internal/identity"
	"github.com/meridian-gis/meridian/internal/invalidate"
	"github.com/meridian-gis/meridian/internal/tokenstore"
)

// Deps are the Maps API's collaborators.
type Deps struct {
	// Log receives request failures. Required.
	Log *slog.Logger
	// Meta is the metadata database. Required.
	Meta *pgxpool.Pool
	// Tokens mints and revokes map tokens. Required.
	Tokens *tokenstore.Store
	// Pools opens the data connections datasets are checked against (the
	// table exists, the query runs, the columns are there). Without it
	// only the shape of datasets is checked.
	Pools *dataconn.Pools
	// Notifier purges the edge caches' copies of public map documents
	// (tag map:<id>). Optional.
	Notifier *invalidate.Notifier
	// ClientIP names the caller's address for the audit log.
	ClientIP func(*http.Request) string
	// StyleURL is the basemap style of new maps. Default:
	// /basemap/styles/meridian-light.json.
	StyleURL string
}

type api struct{ d Deps }

// Routes registers the Maps API (workspace) and the public map document
// (fetchMap) on mux.
func Routes(mux *http.ServeMux, d Deps) {
	if d.StyleURL == "" {
		d.StyleURL = "/basemap/styles/meridian-light.json"
	}
	a := &api{d}
	h := func(fn func(w http.ResponseWriter, r *http.Request) error) http.HandlerFunc {
		return httpapi.Handler(d.Log, fn)
	}
	mux.HandleFunc("GET /workspace-api/maps", h(a.list))
	mux.HandleFunc("POST /workspace-api/maps", h(a.create))
	mux.HandleFunc("GET /workspace-api/maps/{id}", h(a.get))
	mux.HandleFunc("PATCH /workspace-api/maps/{id}", h(a.update))
	mux.HandleFunc("DELETE /workspace-api/maps/{id}", h(a.delete))
	mux.HandleFunc("POST /workspace-api/maps/{id}/duplicate", h(a.duplicate))
	mux.HandleFunc("GET /workspace-api/maps/{id}/datasets", h(a.listDatasets))
	mux.HandleFunc("POST /workspace-api/maps/{id}/datasets", h(a.addDataset))
	mux.HandleFunc("PATCH /workspace-api/maps/{id}/datasets/{dataset}", h(a.updateDataset))
	mux.HandleFunc("DELETE /workspace-api/maps/{id}/datasets/{dataset}", h(a.deleteDataset))
	mux.HandleFunc("POST /workspace-api/maps/{id}/publish", h(a.publish))
	mux.HandleFunc("DELETE /workspace-api/maps/{id}/publish", h(a.unpublish))
	mux.HandleFunc("PUT /workspace-api/maps/{id}/thumbnail", h(a.putThumbnail))
	mux.HandleFunc("GET /workspace-api/maps/{id}/thumbnail", h(a.getThumbnail))
	mux.HandleFunc("GET /api/v3/maps/public/{id}", h(a.public))
	mux.HandleFunc("POST /api/v3/maps/public/{id}", h(a.public))
}

// Map is a map as the workspace API shows it (PLATFORM.md §4).
type Map struct {
	ID              string          `json:"id"`
	Title           string          `json:"title"`
	Description     string          `json:"description"`
	Privacy         Privacy         `json:"privacy"`
	Collaborative   bool            `json:"collaborative"`
	Tags            []string        `json:"tags"`
	Datasets        []Dataset       `json:"datasets"`
	KeplerMapConfig json.RawMessage `json:"keplerMapConfig,omitempty"`
	OwnerID         string          `json:"ownerId"`
	OwnerEmail      string          `json:"ownerEmail"`
	CreatedAt       time.Time       `json:"createdAt"`
	UpdatedAt       time.Time       `json:"updatedAt"`
	ThumbnailURL    *string         `json:"thumbnailUrl"`
	PublishedAt     *time.Time      `json:"publishedAt"`
	// CanEdit: the caller may edit the draft (owner, or collaborator).
	CanEdit bool `json:"canEdit"`
	// Draft: the content shown is the draft (editors); else the
	// published snapshot (viewers).
	Draft bool `json:"draft"`
	// PublicURL is the viewer page of a published map.
	PublicURL string `json:"publicUrl,omitempty"`
}

// Privacy is who may see a map.
type Privacy struct {
	// Privacy is private, shared or public.
	Privacy string `json:"privacy"`
	// SharingScope of a shared map: org or users.
	SharingScope string `json:"sharingScope"`
	// Users a map with sharingScope users is shared with (ids).
	Users []string `json:"users"`
}

func (a *api) view(m *record, lvl level, withConfig bool) Map {
	out := Map{ID: m.ID, Title: m.Title, Description: m.Description, Collaborative: m.Collaborative, Tags: m.Tags,
		Datasets: m.Datasets, OwnerID: m.OwnerID, OwnerEmail: m.OwnerEmail, CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt,
		PublishedAt: m.PublishedAt, CanEdit: lvl == edit, Draft: lvl == edit,
		Privacy: Privacy{Privacy: m.Privacy, SharingScope: m.SharingScope, Users: m.Shares}}
	if withConfig {
		out.KeplerMapConfig = m.Config
	}
	if lvl != edit && m.Published != nil {
		out.Title, out.Description, out.Datasets = m.Published.Title, m.Published.Description, m.Published.Datasets
		if withConfig {
			out.KeplerMapConfig = m.Published.KeplerMapConfig
		}
	}
	if out.Tags == nil {
		out.Tags = []string{}
	}
	if out.Datasets == nil {
		out.Datasets = []Dataset{}
	}
	if out.Privacy.Users == nil {
		out.Privacy.Users = []string{}
	}
	if m.HasThumbnail {
		u := "/workspace-api/maps/" + m.ID + "/thumbnail?v=" + strconv.FormatInt(m.UpdatedAt.UnixMilli(), 10)
		out.ThumbnailURL = &u
	}
	if m.Published != nil {
		out.PublicURL = "/map/" + m.ID
	}
	return out
}

// find loads the map of the path for p, refusing (404) a map p may not
// see and (403) one p may see but not change when need is edit.
func (a *api) find(ctx context.Context, db querier, p identity.Principal, id string, need level, forUpdate bool) (*record, level, error) {
	m, err := load(ctx, db, p.OrgID, id, forUpdate)
	if errors.Is(err, errNoMap) {
		return nil, none, httpapi.NotFound("map")
	}
	if err != nil {
		return nil, none, err
	}
	lvl := access(p, m)
	if lvl == none {
		return nil, none, httpapi.NotFound("map")
	}
	if lvl < need {
		return nil, lvl, httpapi.Forbidden("you may open this map but not edit it (ask its owner to make it collaborative)")
	}
	return m, lvl, nil
}

func (a *api) list(w http.ResponseWriter, r *http.Request) error {
	p, err := authn.User(r, identity.RoleGuest)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	scope := q.Get("scope")
	if scope == "" {
		scope = "mine"
	}
	if scope != "mine" && scope != "shared" && scope != "org" {
		return httpapi.BadRequest("scope: mine, shared or org")
	}
	limit, offset := 50, 0
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > 200 {
			return httpapi.BadRequest("limit: 1 to 200")
		}
	}
	if v := q.Get("offset"); v != "" {
		if offset, err = strconv.Atoi(v); err != nil || offset < 0 {
			return httpapi.BadRequest("offset: 0 or more")
		}
	}
	all, err := visible(r.Context(), a.d.Meta, p)
	if err != nil {
		return err
	}
	search, tag := strings.ToLower(q.Get("q")), q.Get("tag")
	out := []Map{}
	total := 0
	for _, m := range all {
		mine := m.OwnerID == p.UserID
		if (scope == "mine" && !mine) || (scope == "shared" && mine) {
			continue
		}
		if search != "" && !strings.Contains(strings.ToLower(m.Title), search) {
			continue
		}
		if tag != "" && !slices.Contains(m.Tags, tag) {
			continue
		}
		total++
		if total > offset && len(out) < limit {
			out = append(out, a.view(m, access(p, m), false))
		}
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"maps": out, "total": total})
	return nil
}

// mapReq is the body of POST and PATCH.
type mapReq struct {
	Title           *string          `json:"title"`
	Description     *string          `json:"description"`
	Tags            *[]string        `json:"tags"`
	Collaborative   *bool            `json:"collaborative"`
	Privacy         *Privacy         `json:"privacy"`
	KeplerMapConfig *json.RawMessage `json:"keplerMapConfig"`
	// Datasets: on POST the map's first datasets (e.g. "create map"
	// from a table); on PATCH all of them, replacing the old list, saved
	// together with keplerMapConfig or not at all (the Builder's
	// autosave). New or changed datasets are probed.
	Datasets *[]Dataset `json:"datasets"`
}

func (req *mapReq) checkFields() error {
	if req.Title != nil {
		t := strings.TrimSpace(*req.Title)
		if t == "" || utf8.RuneCountInString(t) > maxTitleLen || strings.ContainsAny(t, "\x00\r\n") {
			return httpapi.BadRequest("title: 1 to %d characters on one line", maxTitleLen)
		}
		*req.Title = t
	}
	if req.Description != nil && (utf8.RuneCountInString(*req.Description) > maxDescLen || strings.ContainsRune(*req.Description, 0)) {
		return httpapi.BadRequest("description: at most %d characters", maxDescLen)
	}
	if req.Tags != nil {
		if len(*req.Tags) > maxTags {
			return httpapi.BadRequest("tags: at most %d", maxTags)
		}
		for _, t := range *req.Tags {
			if t == "" || utf8.RuneCountInString(t) > maxTagLen || strings.ContainsAny(t, "\x00\r\n") {
				return httpapi.BadRequest("tags: each 1 to %d characters", maxTagLen)
			}
		}
	}
	if pr := req.Privacy; pr != nil {
		switch pr.Privacy {
		case "private", "shared", "public":
		default:
			return httpapi.BadRequest("privacy.privacy: private, shared or public")
		}
		switch pr.SharingScope {
		case "":
			pr.SharingScope = "org"
		case "org", "users":
		default:
			return httpapi.BadRequest("privacy.sharingScope: org or users")
		}
		if len(pr.Users) > maxShares {
			return httpapi.BadRequest("privacy.users: at most %d", maxShares)
		}
	}
	return nil
}

func (a *api) create(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	p, err := authn.User(r, identity.RoleEditor)
	if err != nil {
		return err
	}
	var req mapReq
	if err := httpapi.Decode(w, r, &req, 2*MaxConfigBytes); err != nil {
		return err
	}
	if req.Title == nil {
		req.Title = new(string)
		*req.Title = "Untitled map"
	}
	if err := req.checkFields(); err != nil {
		return err
	}
	if req.Privacy != nil || req.Collaborative != nil {
		return httpapi.BadRequest("privacy and collaborative are set on an existing map (PATCH), once it has content")
	}
	var datasets []Dataset
	if req.Datasets != nil {
		datasets = *req.Datasets
		if err := a.checkDatasets(ctx, p, datasets, nil); err != nil {
			return err
		}
	}
	cfg := DefaultConfig(a.d.StyleURL)
	if req.KeplerMapConfig != nil {
		cfg = *req.KeplerMapConfig
	}
	if err := checkConfig(cfg, datasets); err != nil {
		return err
	}
	dsJSON, _ := json.Marshal(nonNil(datasets))
	tags := []string{}
	if req.Tags != nil {
		tags = *req.Tags
	}
	desc := ""
	if req.Description != nil {
		desc = *req.Description
	}
	var id string
	err = pgx.BeginFunc(ctx, a.d.Meta, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `INSERT INTO maps (org_id, owner_id, title, description, tags, datasets, config)
			VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`, p.OrgID, p.UserID, *req.Title, desc, tags, dsJSON, []byte(cfg)).Scan(&id); err != nil {
			return fmt.Errorf("maps: creating: %w", err)
		}
		return audit.Record(ctx, tx, a.event(r, p, "map.created", id, map[string]any{"title": *req.Title, "datasets": len(datasets)}))
	})
	if err != nil {
		return err
	}
	m, err := load(ctx, a.d.Meta, p.OrgID, id, false)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusCreated, a.view(m, edit, true))
	return nil
}

// newDatasetID is a random id for a dataset the client did not name.
func newDatasetID() string {
	var b [8]byte
	rand.Read(b[:])
	return "ds-" + hex.EncodeToString(b[:])
}

func nonNil(ds []Dataset) []Dataset {
	if ds == nil {
		return []Dataset{}
	}
	return ds
}

func (a *api) event(r *http.Request, p identity.Principal, action, target string, detail map[string]any) audit.Event {
	ip := ""
	if a.d.ClientIP != nil {
		ip = a.d.ClientIP(r)
	}
	return audit.Event{OrgID: p.OrgID, ActorID: p.UserID, Action: action, Target: target, IP: ip, Detail: detail}
}

func (a *api) get(w http.ResponseWriter, r *http.Request) error {
	p, err := authn.User(r, identity.RoleGuest)
	if err != nil {
		return err
	}
	m, lvl, err := a.find(r.Context(), a.d.Meta, p, r.PathValue("id"), view, false)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, a.view(m, lvl, true))
	return nil
}

// update applies a PATCH in one transaction: the fields sent, the new
// keplerMapConfig checked against the map's datasets, the privacy (owner
// only). Sharing a map that was never published publishes it (viewers
// see snapshots); making a public map private purges the edges' copies.
func (a *api) update(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	p, err := authn.User(r, identity.RoleGuest)
	if err != nil {
		return err
	}
	var req mapReq
	if err := httpapi.Decode(w, r, &req, 2*MaxConfigBytes); err != nil {
		return err
	}
	if err := req.checkFields(); err != nil {
		return err
	}
	id := r.PathValue("id")
	if req.Datasets != nil {
		// Probe the new and changed datasets before the transaction: a
		// probe reaches the data connection and may take seconds.
		cur, _, err := a.find(ctx, a.d.Meta, p, id, edit, false)
		if err != nil {
			return err
		}
		if err := a.checkDatasets(ctx, p, *req.Datasets, cur.Datasets); err != nil {
			return err
		}
	}
	var m *record
	var publishNow, purge bool
	err = pgx.BeginFunc(ctx, a.d.Meta, func(tx pgx.Tx) error {
		var err error
		if m, _, err = a.find(ctx, tx, p, id, edit, true); err != nil {
			return err
		}
		if (req.Privacy != nil || req.Collaborative != nil) && m.OwnerID != p.UserID {
			return httpapi.Forbidden("only the map's owner changes who may see or edit it")
		}
		datasets := m.Datasets
		if req.Datasets != nil {
			datasets = *req.Datasets
			if req.KeplerMapConfig == nil {
				// The stored config must still find its datasets.
				if err := checkConfig(m.Config, datasets); err != nil {
					return err
				}
			}
		}
		if req.KeplerMapConfig != nil {
			if err := checkConfig(*req.KeplerMapConfig, datasets); err != nil {
				return err
			}
		}
		detail := map[string]any{}
		set := []string{"updated_at = now()"}
		args := []any{m.ID}
		add := func(col string, v any) {
			args = append(args, v)
			set = append(set, fmt.Sprintf("%s = $%d", col, len(args)))
			detail[col] = true
		}
		if req.Title != nil {
			add("title", *req.Title)
		}
		if req.Description != nil {
			add("description", *req.Description)
		}
		if req.Tags != nil {
			add("tags", *req.Tags)
		}
		if req.Collaborative != nil {
			add("collaborative", *req.Collaborative)
		}
		if req.KeplerMapConfig != nil {
			add("config", []byte(*req.KeplerMapConfig))
		}
		if req.Datasets != nil {
			b, _ := json.Marshal(nonNil(*req.Datasets))
			add("datasets", b)
		}
		if pr := req.Privacy; pr != nil {
			add("privacy", pr.Privacy)
			add("sharing_scope", pr.SharingScope)
			detail["privacy"] = pr.Privacy
			purge = m.Privacy == "public" && pr.Privacy != "public"
			publishNow = pr.Privacy != "private" && m.Published == nil
			if err := a.setShares(ctx, tx, p, m.ID, pr); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE maps SET `+strings.Join(set, ", ")+` WHERE id = $1`, args...); err != nil {
			return fmt.Errorf("maps: updating %s: %w", m.ID, err)
		}
		if req.Privacy != nil {
			return audit.Record(ctx, tx, a.event(r, p, "map.shared", m.ID, detail))
		}
		return nil
	})
	if err != nil {
		return err
	}
	if purge {
		a.purge(ctx, m.ID, "map made non-public")
	}
	if publishNow {
		if _, err := a.doPublish(r, p, m.ID); err != nil {
			return err
		}
	}
	m, lvl, err := a.find(ctx, a.d.Meta, p, id, view, false)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, a.view(m, lvl, true))
	return nil
}

// setShares replaces the users a map is shared with by name; they must
// be of p's organization.
func (a *api) setShares(ctx context.Context, tx pgx.Tx, p identity.Principal, mapID string, pr *Privacy) error {
	if _, err := tx.Exec(ctx, `DELETE FROM map_shares WHERE map_id = $1`, mapID); err != nil {
		return fmt.Errorf("maps: shares: %w", err)
	}
	if len(pr.Users) == 0 {
		if pr.Privacy == "shared" && pr.SharingScope == "users" {
			return httpapi.BadRequest("privacy.users: name at least one user to share with")
		}
		return nil
	}
	var n int
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM users WHERE org_id = $1 AND id = ANY($2)`, p.OrgID, pr.Users).Scan(&n); err != nil {
		return fmt.Errorf("maps: shares: %w", err)
	}
	if n != len(uniq(pr.Users)) {
		return httpapi.BadRequest("privacy.users: not all are users of your organization")
	}
	if _, err := tx.Exec(ctx, `INSERT INTO map_shares (map_id, user_id) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING`, mapID, pr.Users); err != nil {
		return fmt.Errorf("maps: shares: %w", err)
	}
	return nil
}

func uniq(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return slices.Compact(c)
}

func (a *api) delete(w http.ResponseWriter, r *http.Request) error {
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
		if m.OwnerID != p.UserID && p.Role != identity.RoleAdmin {
			return httpapi.Forbidden("only the map's owner (or an admin) deletes it")
		}
		if _, err := tx.Exec(ctx, `DELETE FROM maps WHERE id = $1`, m.ID); err != nil {
			return fmt.Errorf("maps: deleting %s: %w", m.ID, err)
		}
		return audit.Record(ctx, tx, a.event(r, p, "map.deleted", m.ID, map[string]any{"title": m.Title}))
	})
	if err != nil {
		return err
	}
	if m.TokenID != nil {
		a.revoke(*m.TokenID)
	}
	a.purge(ctx, m.ID, "map deleted")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *api) duplicate(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	p, err := authn.User(r, identity.RoleEditor)
	if err != nil {
		return err
	}
	m, lvl, err := a.find(ctx, a.d.Meta, p, r.PathValue("id"), view, false)
	if err != nil {
		return err
	}
	v := a.view(m, lvl, true)
	title := "Copy of " + v.Title
	if utf8.RuneCountInString(title) > maxTitleLen {
		title = string([]rune(title)[:maxTitleLen])
	}
	dsJSON, _ := json.Marshal(v.Datasets)
	var id string
	err = pgx.BeginFunc(ctx, a.d.Meta, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `INSERT INTO maps (org_id, owner_id, title, description, tags, datasets, config, thumbnail, thumbnail_type)
			SELECT $1, $2, $3, $4, $5, $6, $7, thumbnail, thumbnail_type FROM maps WHERE id = $8 RETURNING id`,
			p.OrgID, p.UserID, title, v.Description, v.Tags, dsJSON, []byte(v.KeplerMapConfig), m.ID).Scan(&id); err != nil {
			return fmt.Errorf("maps: duplicating %s: %w", m.ID, err)
		}
		return audit.Record(ctx, tx, a.event(r, p, "map.created", id, map[string]any{"duplicate_of": m.ID}))
	})
	if err != nil {
		return err
	}
	nm, err := load(ctx, a.d.Meta, p.OrgID, id, false)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusCreated, a.view(nm, edit, true))
	return nil
}

// ---- thumbnails ----

func (a *api) putThumbnail(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	p, err := authn.User(r, identity.RoleGuest)
	if err != nil {
		return err
	}
	ct := r.Header.Get("Content-Type")
	if ct != "image/png" && ct != "image/jpeg" {
		return &httpapi.Error{Status: http.StatusUnsupportedMediaType, Code: "UNSUPPORTED_MEDIA_TYPE", Msg: "a thumbnail is image/png or image/jpeg", Quiet: true}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxThumbnailBytes))
	if err != nil {
		return &httpapi.Error{Status: http.StatusRequestEntityTooLarge, Code: "TOO_LARGE", Msg: fmt.Sprintf("a thumbnail is at most %d bytes", MaxThumbnailBytes), Quiet: true}
	}
	png := bytes.HasPrefix(body, []byte("\x89PNG\r\n\x1a\n"))
	jpeg := bytes.HasPrefix(body, []byte{0xff, 0xd8, 0xff})
	if (ct == "image/png" && !png) || (ct == "image/jpeg" && !jpeg) {
		return httpapi.BadRequest("the body is not a %s image", strings.TrimPrefix(ct, "image/"))
	}
	return pgx.BeginFunc(ctx, a.d.Meta, func(tx pgx.Tx) error {
		m, _, err := a.find(ctx, tx, p, r.PathValue("id"), edit, true)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE maps SET thumbnail = $2, thumbnail_type = $3, updated_at = now() WHERE id = $1`, m.ID, body, ct); err != nil {
			return fmt.Errorf("maps: thumbnail: %w", err)
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
}

func (a *api) getThumbnail(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	p, err := authn.User(r, identity.RoleGuest)
	if err != nil {
		return err
	}
	m, _, err := a.find(ctx, a.d.Meta, p, r.PathValue("id"), view, false)
	if err != nil {
		return err
	}
	var img []byte
	var ct *string
	if err := a.d.Meta.QueryRow(ctx, `SELECT thumbnail, thumbnail_type FROM maps WHERE id = $1`, m.ID).Scan(&img, &ct); err != nil {
		return fmt.Errorf("maps: thumbnail: %w", err)
	}
	if img == nil || ct == nil {
		return httpapi.NotFound("thumbnail")
	}
	w.Header().Set("Content-Type", *ct)
	w.Header().Set("Cache-Control", "private, max-age=86400")
	w.Write(img)
	return nil
}

// ---- purges and tokens ----

// purge asks every edge to drop its copies of map id's public document.
// A failure is logged: the copies expire on their own (s-maxage).
func (a *api) purge(ctx context.Context, id, reason string) {
	if a.d.Notifier == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := a.d.Notifier.Publish(ctx, cachetag.Invalidation{Tags: []string{cachetag.Map(id)}, Reason: reason}); err != nil {
		a.d.Log.Warn("purging a map document", "map", id, "err", err)
	}
}

// revoke revokes a map token; a revocation stored but not yet published
// reaches the nodes at their next reload.
func (a *api) revoke(tokenID string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.d.Tokens.Revoke(ctx, tokenID); err != nil && !errors.Is(err, tokenstore.ErrNotFound) {
		a.d.Log.Warn("revoking a map token", "token", tokenID, "err", err)
	}
}

// ---- dataset checks ----

// checkDatasets validates datasets' shapes, that their ids are unique,
// that p may use their connections, and that their tables and queries
// exist with the columns named.
// checkDatasets validates ds and probes those not in old unchanged.
func (a *api) checkDatasets(ctx context.Context, p identity.Principal, ds, old []Dataset) error {
	if len(ds) > maxDatasets {
		return httpapi.BadRequest("datasets: at most %d", maxDatasets)
	}
	seen := map[string]bool{}
	for i := range ds {
		where := fmt.Sprintf("datasets[%d]", i)
		if err := ds[i].check(where); err != nil {
			return err
		}
		if seen[ds[i].ID] {
			return httpapi.BadRequest("%s.id: %q is used by another dataset", where, ds[i].ID)
		}
		seen[ds[i].ID] = true
		if slices.ContainsFunc(old, func(o Dataset) bool { return sameDataset(&o, &ds[i]) }) {
			continue
		}
		if err := a.probe(ctx, p, &ds[i], where); err != nil {
			return err
		}
	}
	return nil
}

// sameDataset reports whether a and b are the same dataset, field by field.
func sameDataset(a, b *Dataset) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

// probe checks that p may use d's connection and that d's table or query
// answers with the geometry column and columns it names. The query runs
// in a read-only transaction on the DATA connection, LIMIT 0, bounded.
func (a *api) probe(ctx context.Context, p identity.Principal, d *Dataset, where string) error {
	ok, err := dataconn.MayUse(ctx, a.d.Meta, p.OrgID, p.UserID, d.ConnectionName)
	if err != nil {
		return fmt.Errorf("maps: %w", err)
	}
	if !ok {
		return httpapi.BadRequest("%s.connectionName: no connection %q that you may use in your organization", where, d.ConnectionName)
	}
	if a.d.Pools == nil {
		return nil
	}
	pool, err := a.d.Pools.Pool(ctx, d.ConnectionName)
	if err != nil {
		return &httpapi.Error{Status: http.StatusBadGateway, Code: "CONNECTION_UNAVAILABLE", Msg: fmt.Sprintf("%s: connection %q cannot be reached to check the dataset; try again", where, d.ConnectionName), Err: err}
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	tx, err := pool.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return &httpapi.Error{Status: http.StatusBadGateway, Code: "CONNECTION_UNAVAILABLE", Msg: fmt.Sprintf("%s: connection %q cannot be reached to check the dataset; try again", where, d.ConnectionName), Err: err}
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, `SET LOCAL statement_timeout = 5000`); err != nil {
		return fmt.Errorf("maps: probe: %w", err)
	}
	var sql string
	var args []any
	if d.Type == "table" {
		schema, table, found := strings.Cut(d.Source, ".")
		if !found {
			schema, table = "public", d.Source
		}
		sql = `SELECT * FROM ` + pgx.Identifier{schema, table}.Sanitize() + ` LIMIT 0`
	} else {
		sql = `SELECT * FROM (` + d.Source + `) AS _meridian_probe LIMIT 0`
		if firstByte(d.QueryParameters) == '[' {
			if err := json.Unmarshal(d.QueryParameters, &args); err != nil {
				return httpapi.BadRequest("%s.queryParameters: %s", where, plainJSONError(err))
			}
		} else if firstByte(d.QueryParameters) == '{' {
			return nil // named parameters are bound by the SQL API at query time
		}
	}
	rows, err := tx.Query(ctx, sql, args...)
	if err == nil {
		rows.Close()
		err = rows.Err()
	}
	if err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) {
			if pe.Code == "42P01" && d.Type == "table" {
				return httpapi.BadRequest("%s.source: table %s does not exist on connection %q (dropped or renamed?)", where, d.Source, d.ConnectionName)
			}
			return httpapi.BadRequest("%s.source: %s", where, pe.Message)
		}
		return &httpapi.Error{Status: http.StatusBadGateway, Code: "CONNECTION_UNAVAILABLE", Msg: fmt.Sprintf("%s: checking the dataset on %q failed; try again", where, d.ConnectionName), Err: err}
	}
	names := make([]string, 0, len(rows.FieldDescriptions()))
	for _, f := range rows.FieldDescriptions() {
		names = append(names, f.Name)
	}
	if !slices.Contains(names, d.GeoColumnName()) {
		return httpapi.BadRequest("%s.geoColumn: %s has no column %q (columns: %s)", where, d.Source, d.GeoColumnName(), strings.Join(names, ", "))
	}
	for _, c := range d.Columns {
		if !slices.Contains(names, c) {
			return httpapi.BadRequest("%s.columns: %s has no column %q", where, d.Source, c)
		}
	}
	return nil
}

// ---- datasets sub-resource ----

func (a *api) listDatasets(w http.ResponseWriter, r *http.Request) error {
	p, err := authn.User(r, identity.RoleGuest)
	if err != nil {
		return err
	}
	m, lvl, err := a.find(r.Context(), a.d.Meta, p, r.PathValue("id"), view, false)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"datasets": a.view(m, lvl, false).Datasets})
	return nil
}

// changeDatasets runs fn on the locked map's datasets and stores the
// result after checking that the draft's layers still find theirs.
func (a *api) changeDatasets(r *http.Request, p identity.Principal, fn func(m *record) ([]Dataset, error)) (*record, error) {
	ctx := r.Context()
	var m *record
	err := pgx.BeginFunc(ctx, a.d.Meta, func(tx pgx.Tx) error {
		var err error
		if m, _, err = a.find(ctx, tx, p, r.PathValue("id"), edit, true); err != nil {
			return err
		}
		ds, err := fn(m)
		if err != nil {
			return err
		}
		if len(ds) > maxDatasets {
			return httpapi.BadRequest("datasets: at most %d", maxDatasets)
		}
		if err := checkConfig(m.Config, ds); err != nil {
			var e *httpapi.Error
			if errors.As(err, &e) && e.Status == http.StatusBadRequest {
				return httpapi.Conflict("a layer of the map still uses this dataset: remove the layer first (" + e.Msg + ")")
			}
			return err
		}
		b, _ := json.Marshal(nonNil(ds))
		if _, err := tx.Exec(ctx, `UPDATE maps SET datasets = $2, updated_at = now() WHERE id = $1`, m.ID, b); err != nil {
			return fmt.Errorf("maps: datasets of %s: %w", m.ID, err)
		}
		m.Datasets = ds
		return nil
	})
	return m, err
}

func (a *api) addDataset(w http.ResponseWriter, r *http.Request) error {
	p, err := authn.User(r, identity.RoleGuest)
	if err != nil {
		return err
	}
	var d Dataset
	if err := httpapi.Decode(w, r, &d, 256<<10); err != nil {
		return err
	}
	if d.ID == "" {
		d.ID = newDatasetID()
	}
	if err := d.check("dataset"); err != nil {
		return err
	}
	if err := a.probe(r.Context(), p, &d, "dataset"); err != nil {
		return err
	}
	_, err = a.changeDatasets(r, p, func(m *record) ([]Dataset, error) {
		if slices.ContainsFunc(m.Datasets, func(x Dataset) bool { return x.ID == d.ID }) {
			return nil, httpapi.Conflict(fmt.Sprintf("dataset id %q is taken on this map", d.ID))
		}
		return append(m.Datasets, d), nil
	})
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusCreated, d)
	return nil
}

func (a *api) updateDataset(w http.ResponseWriter, r *http.Request) error {
	p, err := authn.User(r, identity.RoleGuest)
	if err != nil {
		return err
	}
	var d Dataset
	if err := httpapi.Decode(w, r, &d, 256<<10); err != nil {
		return err
	}
	d.ID = r.PathValue("dataset")
	if err := d.check("dataset"); err != nil {
		return err
	}
	if err := a.probe(r.Context(), p, &d, "dataset"); err != nil {
		return err
	}
	_, err = a.changeDatasets(r, p, func(m *record) ([]Dataset, error) {
		i := slices.IndexFunc(m.Datasets, func(x Dataset) bool { return x.ID == d.ID })
		if i < 0 {
			return nil, httpapi.NotFound("dataset")
		}
		ds := slices.Clone(m.Datasets)
		ds[i] = d
		return ds, nil
	})
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, d)
	return nil
}

func (a *api) deleteDataset(w http.ResponseWriter, r *http.Request) error {
	p, err := authn.User(r, identity.RoleGuest)
	if err != nil {
		return err
	}
	id := r.PathValue("dataset")
	_, err = a.changeDatasets(r, p, func(m *record) ([]Dataset, error) {
		i := slices.IndexFunc(m.Datasets, func(x Dataset) bool { return x.ID == id })
		if i < 0 {
			return nil, httpapi.NotFound("dataset")
		}
		return slices.Delete(slices.Clone(m.Datasets), i, i+1), nil
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
