// Package connections serves the Connections API, /api/v3/connections
// (PLATFORM.md §3): a user's organization's data connections. Credentials
// are write-only: stored sealed (internal/dataconn, internal/secret),
// never answered or logged; a PATCH without them keeps them. A connection
// is "shared" with the organization or "private" to its owner; editors
// create them, their owner or an admin changes and deletes them, and one
// that a live token (or a map) still uses cannot be deleted (409).
// Connections are addressed by id; their name, which tokens and API paths
// use, cannot change.
package connections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/meridian-gis/meridian/control/audit"
	"github.com/meridian-gis/meridian/control/authn"
	"github.com/meridian-gis/meridian/control/httpapi"
	"github.com/meridian-gis/meridian/internal/dataconn"
	"github.com/meridian-gis/meridian/internal/identity"
)

// Deps are the Connections API's collaborators.
type Deps struct {
	Log   *slog.Logger
	Meta  *pgxpool.Pool
	Store *dataconn.Store
	// ClientIP names the caller's address for the audit log.
	ClientIP func(*http.Request) string
	// TestTimeout bounds a connection test. Default: 10s.
	TestTimeout time.Duration
}

type api struct{ d Deps }

// Routes registers the Connections API on mux.
func Routes(mux *http.ServeMux, d Deps) {
	if d.TestTimeout == 0 {
		d.TestTimeout = 10 * time.Second
	}
	a := &api{d}
	h := func(fn func(w http.ResponseWriter, r *http.Request) error) http.HandlerFunc {
		return httpapi.Handler(d.Log, fn)
	}
	mux.HandleFunc("GET /api/v3/connections", h(a.list))
	mux.HandleFunc("POST /api/v3/connections", h(a.create))
	mux.HandleFunc("POST /api/v3/connections/test", h(a.testNew))
	mux.HandleFunc("GET /api/v3/connections/{id}", h(a.get))
	mux.HandleFunc("PATCH /api/v3/connections/{id}", h(a.update))
	mux.HandleFunc("DELETE /api/v3/connections/{id}", h(a.remove))
	mux.HandleFunc("POST /api/v3/connections/{id}/test", h(a.test))
}

// Connection is a connection as the API shows it: never its credentials.
type Connection struct {
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	ProviderID string    `json:"provider_id"`
	Privacy    string    `json:"privacy"`
	Owner      string    `json:"owner"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
	// Host and Database describe where it points, without credentials.
	Host     string `json:"host,omitempty"`
	Database string `json:"database,omitempty"`
	// CanEdit tells the caller whether they may change or delete it.
	CanEdit bool `json:"can_edit"`
}

// Credentials of a PostgreSQL connection: a URL, or its parts.
type Credentials struct {
	URL      string `json:"url,omitempty"`
	Host     string `json:"host,omitempty"`
	Port     int    `json:"port,omitempty"`
	Database string `json:"database,omitempty"`
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	SSLMode  string `json:"sslmode,omitempty"`
}

func (c *Credentials) toURL() (string, error) {
	if c.URL != "" {
		if c.Host != "" || c.Database != "" || c.Username != "" || c.Password != "" {
			return "", httpapi.BadRequest("credentials: give either url or host/port/database/username/password, not both")
		}
		return c.URL, nil
	}
	if c.Host == "" || c.Database == "" || c.Username == "" {
		return "", httpapi.BadRequest("credentials: url, or host, database and username (with password, port, sslmode) are required")
	}
	if c.Port < 0 || c.Port > 65535 {
		return "", httpapi.BadRequest("credentials.port: 1 to 65535")
	}
	host := c.Host
	if c.Port != 0 {
		host += ":" + strconv.Itoa(c.Port)
	}
	u := url.URL{Scheme: "postgres", Host: host, Path: "/" + c.Database, User: url.UserPassword(c.Username, c.Password)}
	if c.Password == "" {
		u.User = url.User(c.Username)
	}
	if c.SSLMode != "" {
		u.RawQuery = url.Values{"sslmode": {c.SSLMode}}.Encode()
	}
	return u.String(), nil
}

func view(c *dataconn.Connection, p identity.Principal) Connection {
	out := Connection{ID: c.ID, Name: c.Name, ProviderID: "postgres", Privacy: c.Privacy, Owner: c.Owner,
		CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt, CanEdit: canEdit(c, p)}
	if u, err := url.Parse(c.URL); err == nil {
		out.Host, out.Database = u.Hostname(), strings.TrimPrefix(u.Path, "/")
	}
	return out
}

func canEdit(c *dataconn.Connection, p identity.Principal) bool {
	return p.Role == identity.RoleAdmin || (p.Role.AtLeast(identity.RoleEditor) && c.Owner == p.UserID)
}

// usable reports whether p may use c: same org, and shared or p's own.
func usable(c *dataconn.Connection, p identity.Principal) bool {
	return c.Org == p.OrgID && (c.Privacy == dataconn.PrivacyShared || c.Owner == p.UserID)
}

func (a *api) audit(r *http.Request, p identity.Principal, action, target string, detail map[string]any) {
	audit.Recorder{DB: a.d.Meta, Log: a.d.Log, ClientIP: a.d.ClientIP}.Request(r, p.OrgID, p.UserID, action, target, detail)
}

// byID returns the connection id if p may use it; anything else is a 404.
func (a *api) byID(ctx context.Context, p identity.Principal, id string) (*dataconn.Connection, error) {
	var name string
	err := a.d.Meta.QueryRow(ctx, `SELECT name FROM connections WHERE id = $1 AND org_id = $2`, id, p.OrgID).Scan(&name)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, httpapi.NotFound("connection")
	}
	if err != nil {
		return nil, fmt.Errorf("connections: %w", err)
	}
	c, err := a.d.Store.Get(ctx, name)
	if errors.Is(err, dataconn.ErrNotFound) {
		return nil, httpapi.NotFound("connection")
	}
	if err != nil {
		return nil, err
	}
	if !usable(c, p) {
		return nil, httpapi.NotFound("connection")
	}
	return c, nil
}

func (a *api) list(w http.ResponseWriter, r *http.Request) error {
	p, err := authn.User(r, identity.RoleViewer)
	if err != nil {
		return err
	}
	cs, err := a.d.Store.List(r.Context(), p.OrgID)
	if err != nil {
		return err
	}
	out := []Connection{}
	for i := range cs {
		if usable(&cs[i], p) {
			out = append(out, view(&cs[i], p))
		}
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"connections": out})
	return nil
}

func (a *api) get(w http.ResponseWriter, r *http.Request) error {
	p, err := authn.User(r, identity.RoleViewer)
	if err != nil {
		return err
	}
	c, err := a.byID(r.Context(), p, r.PathValue("id"))
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, view(c, p))
	return nil
}

type connReq struct {
	Name        *string      `json:"name"`
	ProviderID  *string      `json:"provider_id"`
	Privacy     *string      `json:"privacy"`
	Credentials *Credentials `json:"credentials"`
}

func invalid(err error) error {
	if errors.Is(err, dataconn.ErrInvalid) {
		msg := err.Error()
		if i := strings.Index(msg, ": "); i >= 0 && strings.HasPrefix(msg, "creating connection") || strings.HasPrefix(msg, "saving connection") {
			msg = msg[i+2:]
		}
		return httpapi.BadRequest("%s", strings.ReplaceAll(strings.ReplaceAll(msg, dataconn.ErrInvalid.Error()+": ", ""), "\n", "; "))
	}
	if errors.Is(err, dataconn.ErrExists) {
		return httpapi.Conflict("a connection with this name exists; pick another name")
	}
	return err
}

func (a *api) create(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	p, err := authn.User(r, identity.RoleEditor)
	if err != nil {
		return err
	}
	var req connReq
	if err := httpapi.Decode(w, r, &req, 64<<10); err != nil {
		return err
	}
	if req.Name == nil || req.Credentials == nil {
		return httpapi.BadRequest("name and credentials are required")
	}
	if req.ProviderID != nil && *req.ProviderID != "postgres" {
		return httpapi.BadRequest("provider_id: only postgres is supported")
	}
	u, err := req.Credentials.toURL()
	if err != nil {
		return err
	}
	c := dataconn.Connection{Org: p.OrgID, Name: *req.Name, URL: u, Owner: p.UserID}
	if req.Privacy != nil {
		c.Privacy = *req.Privacy
	}
	out, err := a.d.Store.Create(ctx, c)
	if err != nil {
		return invalid(err)
	}
	a.audit(r, p, "connection.created", out.ID, map[string]any{"name": out.Name, "privacy": out.Privacy})
	httpapi.WriteJSON(w, http.StatusCreated, view(out, p))
	return nil
}

func (a *api) update(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	p, err := authn.User(r, identity.RoleEditor)
	if err != nil {
		return err
	}
	c, err := a.byID(ctx, p, r.PathValue("id"))
	if err != nil {
		return err
	}
	if !canEdit(c, p) {
		return httpapi.Forbidden("only its owner or an admin may change this connection")
	}
	var req connReq
	if err := httpapi.Decode(w, r, &req, 64<<10); err != nil {
		return err
	}
	if req.Name != nil && *req.Name != c.Name {
		return httpapi.BadRequest("name: a connection cannot be renamed (tokens, maps and API paths use its name); create a new one")
	}
	if req.ProviderID != nil && *req.ProviderID != "postgres" {
		return httpapi.BadRequest("provider_id: only postgres is supported")
	}
	next := *c
	if req.Privacy != nil {
		next.Privacy = *req.Privacy
	}
	if req.Credentials != nil {
		if next.URL, err = req.Credentials.toURL(); err != nil {
			return err
		}
	}
	if err := dataconn.Validate(&next); err != nil {
		return invalid(err)
	}
	if req.Credentials != nil {
		if _, _, err := a.d.Store.Upsert(ctx, next); err != nil {
			return invalid(err)
		}
	}
	if next.Privacy != c.Privacy {
		if _, err := a.d.Meta.Exec(ctx, `UPDATE connections SET privacy = $2, updated_at = now() WHERE id = $1`, c.ID, next.Privacy); err != nil {
			return fmt.Errorf("connections: privacy: %w", err)
		}
	}
	a.audit(r, p, "connection.updated", c.ID, map[string]any{"credentials": req.Credentials != nil, "privacy": next.Privacy})
	out, err := a.byID(ctx, p, c.ID)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, view(out, p))
	return nil
}

func (a *api) remove(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	p, err := authn.User(r, identity.RoleEditor)
	if err != nil {
		return err
	}
	c, err := a.byID(ctx, p, r.PathValue("id"))
	if err != nil {
		return err
	}
	if !canEdit(c, p) {
		return httpapi.Forbidden("only its owner or an admin may delete this connection")
	}
	if n, what, err := a.uses(ctx, c.Name); err != nil {
		return err
	} else if n > 0 {
		return httpapi.Conflict(fmt.Sprintf("connection %s is in use by %d %s; revoke or change them first", c.Name, n, what))
	}
	if err := a.d.Store.Delete(ctx, c.Name); err != nil {
		return err
	}
	a.audit(r, p, "connection.deleted", c.ID, map[string]any{"name": c.Name})
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// uses counts what still uses connection name: live API and map tokens,
// and maps once the maps table exists.
func (a *api) uses(ctx context.Context, name string) (int, string, error) {
	var n int
	err := a.d.Meta.QueryRow(ctx, `SELECT count(*) FROM tokens WHERE kind <> 'session' AND revoked_at IS NULL
		AND (expires_at IS NULL OR expires_at > now()) AND grants @> jsonb_build_array(jsonb_build_object('connection_name', $1::text))`, name).Scan(&n)
	if err != nil {
		return 0, "", fmt.Errorf("connections: counting uses: %w", err)
	}
	if n > 0 {
		return n, "live tokens", nil
	}
	var hasMaps bool
	if err := a.d.Meta.QueryRow(ctx, `SELECT to_regclass('public.maps') IS NOT NULL`).Scan(&hasMaps); err != nil {
		return 0, "", fmt.Errorf("connections: counting uses: %w", err)
	}
	if hasMaps {
		if err := a.d.Meta.QueryRow(ctx, `SELECT count(*) FROM maps m WHERE EXISTS (SELECT 1 FROM jsonb_array_elements(m.datasets) d WHERE d->>'connectionName' = $1)`, name).Scan(&n); err != nil {
			return 0, "", fmt.Errorf("connections: counting maps: %w", err)
		}
		return n, "maps", nil
	}
	return 0, "", nil
}

// TestResult is the answer of a connection test.
type TestResult struct {
	OK       bool   `json:"ok"`
	Error    string `json:"error,omitempty"`
	Version  string `json:"version,omitempty"`
	PostGIS  string `json:"postgis,omitempty"`
	Millis   int64  `json:"latency_ms"`
	ReadOnly bool   `json:"read_only"`
}

func (a *api) probe(ctx context.Context, rawURL string) TestResult {
	ctx, cancel := context.WithTimeout(ctx, a.d.TestTimeout)
	defer cancel()
	start := time.Now()
	conn, err := pgx.Connect(ctx, rawURL)
	if err != nil {
		return TestResult{Error: scrub(err.Error(), rawURL), Millis: time.Since(start).Milliseconds()}
	}
	defer conn.Close(context.Background())
	var res TestResult
	if err := conn.QueryRow(ctx, `SELECT version(), coalesce((SELECT extversion FROM pg_extension WHERE extname = 'postgis'), ''), current_setting('transaction_read_only') = 'on'`).Scan(&res.Version, &res.PostGIS, &res.ReadOnly); err != nil {
		return TestResult{Error: scrub(err.Error(), rawURL), Millis: time.Since(start).Milliseconds()}
	}
	res.OK, res.Millis = true, time.Since(start).Milliseconds()
	return res
}

// scrub removes the password of rawURL from msg (pgconn redacts it
// already; this is the second belt).
func scrub(msg, rawURL string) string {
	if u, err := url.Parse(rawURL); err == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			msg = strings.ReplaceAll(msg, pw, "xxxxx")
		}
	}
	return msg
}

func (a *api) test(w http.ResponseWriter, r *http.Request) error {
	p, err := authn.User(r, identity.RoleViewer)
	if err != nil {
		return err
	}
	c, err := a.byID(r.Context(), p, r.PathValue("id"))
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, a.probe(r.Context(), c.URL))
	return nil
}

// testNew tests credentials before a connection is saved.
func (a *api) testNew(w http.ResponseWriter, r *http.Request) error {
	if _, err := authn.User(r, identity.RoleEditor); err != nil {
		return err
	}
	var req struct {
		Credentials *Credentials `json:"credentials"`
	}
	if err := httpapi.Decode(w, r, &req, 64<<10); err != nil {
		return err
	}
	if req.Credentials == nil {
		return httpapi.BadRequest("credentials are required")
	}
	u, err := req.Credentials.toURL()
	if err != nil {
		return err
	}
	c := dataconn.Connection{Name: "test", URL: u}
	if err := dataconn.Validate(&c); err != nil {
		return invalid(err)
	}
	httpapi.WriteJSON(w, http.StatusOK, a.probe(r.Context(), u))
	return nil
}
