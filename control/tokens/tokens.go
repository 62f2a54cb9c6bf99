// Package tokens serves the Tokens API, /api/v3/tokens (CARTO_API.md
// §6.1): signed-in users create, list, read, update and revoke their own
// API access tokens.
//
// The ceiling rule: a token can never grant more than its creator may use.
// Only editors and admins make tokens (viewers and guests use the tokens of
// maps shared with them), and every grant must name a connection of the
// creator's organization that is shared with the organization or private
// to the creator. Tokens are signed: changing grants, referers or APIs
// issues a new token string and revokes the old one (the answer carries
// the new token and "replaces": the old id); a name change keeps it.
package tokens

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/meridian-gis/meridian/control/audit"
	"github.com/meridian-gis/meridian/control/authn"
	"github.com/meridian-gis/meridian/control/httpapi"
	"github.com/meridian-gis/meridian/internal/dataconn"
	"github.com/meridian-gis/meridian/internal/grant"
	"github.com/meridian-gis/meridian/internal/identity"
	"github.com/meridian-gis/meridian/internal/tokenstore"
)

// Limits on one token's contents.
const (
	maxGrants    = 100
	maxSourceLen = 10000
	maxReferers  = 20
	maxNameLen   = 200
)

// Deps are the Tokens API's collaborators.
type Deps struct {
	Log    *slog.Logger
	Meta   *pgxpool.Pool
	Tokens *tokenstore.Store
	// ClientIP names the caller's address for the audit log.
	ClientIP func(*http.Request) string
}

type api struct{ d Deps }

// Routes registers the Tokens API on mux.
func Routes(mux *http.ServeMux, d Deps) {
	a := &api{d}
	h := func(fn func(w http.ResponseWriter, r *http.Request) error) http.HandlerFunc {
		return httpapi.Handler(d.Log, fn)
	}
	mux.HandleFunc("POST /api/v3/tokens", h(a.create))
	mux.HandleFunc("GET /api/v3/tokens", h(a.list))
	mux.HandleFunc("GET /api/v3/tokens/{token}", h(a.get))
	mux.HandleFunc("PATCH /api/v3/tokens/{token}", h(a.update))
	mux.HandleFunc("DELETE /api/v3/tokens/{token}", h(a.revoke))
}

// Token is a token as the API shows it (CARTO's shape).
type Token struct {
	Token          string        `json:"token,omitempty"`
	ID             string        `json:"id"`
	Name           string        `json:"name"`
	Grants         []grant.Grant `json:"grants"`
	Referers       []string      `json:"referers"`
	AllowedAPIs    []grant.API   `json:"allowed_apis"`
	ExpirationDate *time.Time    `json:"expiration_date"`
	CreatedAt      time.Time     `json:"created_at"`
	Owner          string        `json:"owner"`
	RevokedAt      *time.Time    `json:"revoked_at,omitempty"`
	// Replaces is the id of the token this one replaced (PATCH).
	Replaces string `json:"replaces,omitempty"`
}

func (a *api) view(ctx context.Context, t *tokenstore.Token, email string) Token {
	out := Token{ID: t.ID, Name: t.Name, Grants: t.Grants, Referers: t.Referers, AllowedAPIs: t.APIs, CreatedAt: t.CreatedAt, Owner: email}
	if out.Referers == nil {
		out.Referers = []string{}
	}
	if !t.ExpiresAt.IsZero() {
		exp := t.ExpiresAt.UTC()
		out.ExpirationDate = &exp
	}
	if t.Revoked() {
		rev := t.RevokedAt.UTC()
		out.RevokedAt = &rev
	} else if s, err := a.d.Tokens.TokenString(ctx, t.ID); err == nil {
		out.Token = s
	} else {
		a.d.Log.Warn("re-creating a token string", "id", t.ID, "err", err)
	}
	return out
}

type tokenReq struct {
	Name           *string        `json:"name"`
	Grants         *[]grant.Grant `json:"grants"`
	Referers       *[]string      `json:"referers"`
	AllowedAPIs    *[]grant.API   `json:"allowed_apis"`
	ExpirationDate *string        `json:"expiration_date"`
}

// check validates the request's parts against the limits and the ceiling.
func (a *api) check(ctx context.Context, p identity.Principal, req *tokenReq) error {
	if req.Name != nil && (utf8.RuneCountInString(*req.Name) > maxNameLen || strings.ContainsAny(*req.Name, "\x00\r\n")) {
		return httpapi.BadRequest("name: at most %d characters on one line", maxNameLen)
	}
	if req.Grants != nil {
		gs := *req.Grants
		if len(gs) == 0 || len(gs) > maxGrants {
			return httpapi.BadRequest("grants: 1 to %d grants", maxGrants)
		}
		usable, err := a.usableConnections(ctx, p)
		if err != nil {
			return err
		}
		for i, g := range gs {
			if len(g.Source) > maxSourceLen {
				return httpapi.BadRequest("grants[%d].source: at most %d characters", i, maxSourceLen)
			}
			if !slices.Contains(usable, g.Connection) {
				return httpapi.BadRequest("grants[%d].connection_name: no connection %q that you may use in your organization", i, g.Connection)
			}
		}
	}
	if req.Referers != nil && len(*req.Referers) > maxReferers {
		return httpapi.BadRequest("referers: at most %d", maxReferers)
	}
	if req.AllowedAPIs != nil {
		for _, api := range *req.AllowedAPIs {
			if !api.Valid() {
				return httpapi.BadRequest("allowed_apis: unknown API %q (maps, sql, imports, lds)", api)
			}
		}
	}
	return nil
}

// usableConnections are the connections p may use: their organization's
// shared ones and their own private ones.
func (a *api) usableConnections(ctx context.Context, p identity.Principal) ([]string, error) {
	return dataconn.Usable(ctx, a.d.Meta, p.OrgID, p.UserID)
}

func invalid(err error) error {
	if errors.Is(err, tokenstore.ErrInvalid) {
		msg := err.Error()
		msg = strings.TrimPrefix(msg, "creating token: ")
		msg = strings.ReplaceAll(msg, "tokenstore: invalid token spec: ", "")
		msg = strings.ReplaceAll(msg, "grant: invalid claims: ", "")
		return httpapi.BadRequest("%s", strings.ReplaceAll(msg, "\n", "; "))
	}
	return err
}

func (a *api) create(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	p, err := authn.User(r, identity.RoleEditor)
	if err != nil {
		return err
	}
	var req tokenReq
	if err := httpapi.Decode(w, r, &req, 256<<10); err != nil {
		return err
	}
	if req.Grants == nil {
		return httpapi.BadRequest("grants: required, e.g. [{\"connection_name\":\"local\",\"source\":\"public.stores\"}]")
	}
	if req.AllowedAPIs == nil {
		return httpapi.BadRequest("allowed_apis: required, e.g. [\"maps\",\"sql\"]")
	}
	if err := a.check(ctx, p, &req); err != nil {
		return err
	}
	spec := tokenstore.Spec{Org: p.OrgID, Owner: p.UserID, Grants: *req.Grants, APIs: *req.AllowedAPIs, Kind: tokenstore.KindAPI}
	if req.Name != nil {
		spec.Name = *req.Name
	}
	if req.Referers != nil {
		spec.Referers = *req.Referers
	}
	if req.ExpirationDate != nil && *req.ExpirationDate != "" {
		exp, err := time.Parse(time.RFC3339, *req.ExpirationDate)
		if err != nil {
			return httpapi.BadRequest("expiration_date: %q is not an RFC 3339 time such as 2027-12-31T00:00:00Z", *req.ExpirationDate)
		}
		spec.ExpiresAt = exp
	}
	_, t, err := a.d.Tokens.Create(ctx, spec)
	if err != nil {
		return invalid(err)
	}
	a.audit(r, p, "token.created", t.ID, map[string]any{"grants": len(t.Grants), "apis": t.APIs})
	httpapi.WriteJSON(w, http.StatusCreated, a.view(ctx, t, p.Email))
	return nil
}

func (a *api) audit(r *http.Request, p identity.Principal, action, target string, detail map[string]any) {
	audit.Recorder{DB: a.d.Meta, Log: a.d.Log, ClientIP: a.d.ClientIP}.Request(r, p.OrgID, p.UserID, action, target, detail)
}

func (a *api) list(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	p, err := authn.User(r, identity.RoleGuest)
	if err != nil {
		return err
	}
	ts, err := a.d.Tokens.ListOwned(ctx, p.OrgID, p.UserID, r.URL.Query().Get("include") == "revoked")
	if err != nil {
		return err
	}
	out := make([]Token, 0, len(ts))
	for i := range ts {
		out = append(out, a.view(ctx, &ts[i], p.Email))
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"tokens": out})
	return nil
}

// own returns the caller's token named by the path: its string or its
// id. Anyone else's (another user's, another org's) is a 404.
func (a *api) own(r *http.Request, p identity.Principal) (*tokenstore.Token, error) {
	ref := r.PathValue("token")
	var t *tokenstore.Token
	var err error
	if strings.Count(ref, ".") == 2 {
		t, err = a.d.Tokens.GetByToken(r.Context(), ref)
	} else {
		t, err = a.d.Tokens.Get(r.Context(), ref)
	}
	if errors.Is(err, tokenstore.ErrNotFound) || (err == nil && (t.Org != p.OrgID || t.Owner != p.UserID)) {
		return nil, httpapi.NotFound("token")
	}
	return t, err
}

func (a *api) get(w http.ResponseWriter, r *http.Request) error {
	p, err := authn.User(r, identity.RoleGuest)
	if err != nil {
		return err
	}
	t, err := a.own(r, p)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, a.view(r.Context(), t, p.Email))
	return nil
}

func (a *api) update(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	p, err := authn.User(r, identity.RoleEditor)
	if err != nil {
		return err
	}
	t, err := a.own(r, p)
	if err != nil {
		return err
	}
	var req tokenReq
	if err := httpapi.Decode(w, r, &req, 256<<10); err != nil {
		return err
	}
	if req.ExpirationDate != nil {
		return httpapi.BadRequest("expiration_date can only be set when a token is created")
	}
	if t.Revoked() {
		return httpapi.Conflict("this token is revoked")
	}
	if err := a.check(ctx, p, &req); err != nil {
		return err
	}
	if req.Grants == nil && req.Referers == nil && req.AllowedAPIs == nil {
		if req.Name != nil {
			if err := a.d.Tokens.Rename(ctx, t.ID, *req.Name); err != nil {
				return err
			}
			t.Name = *req.Name
		}
		httpapi.WriteJSON(w, http.StatusOK, a.view(ctx, t, p.Email))
		return nil
	}
	if !t.ExpiresAt.IsZero() && !t.ExpiresAt.After(time.Now()) {
		return httpapi.Conflict("this token has expired; create a new one")
	}
	spec := tokenstore.Spec{Org: p.OrgID, Owner: p.UserID, Name: t.Name, Grants: t.Grants, APIs: t.APIs, Referers: t.Referers, ExpiresAt: t.ExpiresAt, Kind: tokenstore.KindAPI}
	if req.Name != nil {
		spec.Name = *req.Name
	}
	if req.Grants != nil {
		spec.Grants = *req.Grants
	}
	if req.AllowedAPIs != nil {
		spec.APIs = *req.AllowedAPIs
	}
	if req.Referers != nil {
		spec.Referers = *req.Referers
	}
	_, nt, err := a.d.Tokens.Create(ctx, spec)
	if err != nil {
		return invalid(err)
	}
	if err := a.d.Tokens.Revoke(ctx, t.ID); err != nil && !errors.Is(err, tokenstore.ErrPublish) {
		return err
	} else if err != nil {
		a.d.Log.Warn("revocation stored but not published; nodes apply it at their next reload", "id", t.ID, "err", err)
	}
	a.audit(r, p, "token.replaced", nt.ID, map[string]any{"replaces": t.ID})
	out := a.view(ctx, nt, p.Email)
	out.Replaces = t.ID
	httpapi.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (a *api) revoke(w http.ResponseWriter, r *http.Request) error {
	p, err := authn.User(r, identity.RoleGuest)
	if err != nil {
		return err
	}
	t, err := a.own(r, p)
	if err != nil {
		return err
	}
	if err := a.d.Tokens.Revoke(r.Context(), t.ID); err != nil && !errors.Is(err, tokenstore.ErrPublish) {
		return err
	} else if err != nil {
		a.d.Log.Warn("revocation stored but not published; nodes apply it at their next reload", "id", t.ID, "err", err)
	}
	a.audit(r, p, "token.revoked", t.ID, nil)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
