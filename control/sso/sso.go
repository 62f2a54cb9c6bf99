// Package sso signs people in through an OpenID Connect provider
// (authorization code flow with PKCE and a nonce): /accounts-api/sso/login
// sends the browser to the provider, /accounts-api/sso/callback checks
// what comes back, matches the user by verified email (creating them on
// first sign-in with the organization's default role), maps the
// provider's group claim to a role, and starts a session.
package sso

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/oauth2"

	"github.com/meridian-gis/meridian/control/audit"
	"github.com/meridian-gis/meridian/control/authn"
	"github.com/meridian-gis/meridian/control/httpapi"
	"github.com/meridian-gis/meridian/internal/identity"
)

// Config configures single sign-on. SSO is off while Issuer is empty.
type Config struct {
	// Issuer is the provider's issuer URL (its discovery document is at
	// Issuer + "/.well-known/openid-configuration").
	Issuer string `json:"oidc_issuer,omitempty" env:"MERIDIAN_OIDC_ISSUER"`
	// ClientID and ClientSecret are Meridian's registration at the provider.
	// The secret is never logged.
	ClientID     string `json:"oidc_client_id,omitempty" env:"MERIDIAN_OIDC_CLIENT_ID"`
	ClientSecret string `json:"oidc_client_secret,omitempty" env:"MERIDIAN_OIDC_CLIENT_SECRET"`
	// Name labels the sign-in button. Default: "single sign-on".
	Name string `json:"oidc_name,omitempty" env:"MERIDIAN_OIDC_NAME"`
	// Scopes requested, space-separated. Default: "openid email profile";
	// add the scope that releases groups (often "groups") to map roles.
	Scopes string `json:"oidc_scopes,omitempty" env:"MERIDIAN_OIDC_SCOPES"`
	// GroupsClaim is the ID token claim listing the user's groups. Default: "groups".
	GroupsClaim string `json:"oidc_groups_claim,omitempty" env:"MERIDIAN_OIDC_GROUPS_CLAIM"`
	// RoleMap maps groups to roles, "group=role,group=role"; a user in
	// mapped groups gets the highest of their roles at every sign-in.
	RoleMap string `json:"oidc_role_map,omitempty" env:"MERIDIAN_OIDC_ROLE_MAP"`
	// Org is the organization of users created by SSO. Default: "default".
	Org string `json:"oidc_org,omitempty" env:"MERIDIAN_OIDC_ORG"`
}

// Enabled reports whether SSO is configured.
func (c Config) Enabled() bool { return c.Issuer != "" }

// Validate reports configuration mistakes.
func (c Config) Validate() error {
	if !c.Enabled() {
		return nil
	}
	var errs []error
	if u, err := url.Parse(c.Issuer); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		errs = append(errs, fmt.Errorf("sso: MERIDIAN_OIDC_ISSUER %q is not an http(s) URL", c.Issuer))
	}
	if c.ClientID == "" {
		errs = append(errs, errors.New("sso: MERIDIAN_OIDC_CLIENT_ID is required with MERIDIAN_OIDC_ISSUER"))
	}
	if _, err := parseRoleMap(c.RoleMap); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func parseRoleMap(s string) (map[string]identity.Role, error) {
	m := map[string]identity.Role{}
	for _, pair := range strings.Split(s, ",") {
		if pair = strings.TrimSpace(pair); pair == "" {
			continue
		}
		g, r, ok := strings.Cut(pair, "=")
		role, err := identity.ParseRole(strings.TrimSpace(r))
		if !ok || strings.TrimSpace(g) == "" || err != nil {
			return nil, fmt.Errorf("sso: MERIDIAN_OIDC_ROLE_MAP entry %q: want group=role (admin, editor, viewer, guest)", pair)
		}
		m[strings.TrimSpace(g)] = role
	}
	return m, nil
}

// Deps are SSO's collaborators.
type Deps struct {
	Log  *slog.Logger
	Meta *pgxpool.Pool
	Auth *authn.Authenticator
	// PublicURL is the edge's URL as browsers see it; the callback is
	// PublicURL + "/accounts-api/sso/callback".
	PublicURL string
	// HTTPClient reaches the provider. Default: one with a 10 s timeout.
	HTTPClient *http.Client
}

// SSO serves the sign-in routes.
type SSO struct {
	cfg   Config
	d     Deps
	roles map[string]identity.Role

	mu       sync.Mutex
	oauth    *oauth2.Config
	verifier *oidc.IDTokenVerifier
}

// Routes registers the SSO routes on mux when cfg is enabled, and returns
// nil otherwise.
func Routes(mux *http.ServeMux, cfg Config, d Deps) (*SSO, error) {
	if !cfg.Enabled() {
		return nil, nil
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Name == "" {
		cfg.Name = "single sign-on"
	}
	if cfg.Scopes == "" {
		cfg.Scopes = "openid email profile"
	}
	if cfg.GroupsClaim == "" {
		cfg.GroupsClaim = "groups"
	}
	if cfg.Org == "" {
		cfg.Org = identity.DefaultOrg
	}
	if d.HTTPClient == nil {
		d.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	roles, _ := parseRoleMap(cfg.RoleMap)
	s := &SSO{cfg: cfg, d: d, roles: roles}
	mux.HandleFunc("GET /accounts-api/sso/login", httpapi.Handler(d.Log, s.login))
	mux.HandleFunc("GET /accounts-api/sso/callback", s.callback)
	return s, nil
}

// Name is the provider's label for the sign-in button.
func (s *SSO) Name() string { return s.cfg.Name }

// setup discovers the provider once (retried on the next sign-in if it fails).
func (s *SSO) setup(ctx context.Context) (*oauth2.Config, *oidc.IDTokenVerifier, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.oauth != nil {
		return s.oauth, s.verifier, nil
	}
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, s.d.HTTPClient), s.cfg.Issuer)
	if err != nil {
		return nil, nil, fmt.Errorf("sso: discovering %s: %w", s.cfg.Issuer, err)
	}
	s.oauth = &oauth2.Config{ClientID: s.cfg.ClientID, ClientSecret: s.cfg.ClientSecret, Endpoint: p.Endpoint(),
		RedirectURL: strings.TrimRight(s.d.PublicURL, "/") + "/accounts-api/sso/callback", Scopes: strings.Fields(s.cfg.Scopes)}
	s.verifier = p.Verifier(&oidc.Config{ClientID: s.cfg.ClientID})
	return s.oauth, s.verifier, nil
}

// safeNext keeps a redirect on this site.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") || strings.ContainsAny(next, "\r\n") {
		return "/"
	}
	return next
}

func (s *SSO) login(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	oc, _, err := s.setup(ctx)
	if err != nil {
		return &httpapi.Error{Status: http.StatusBadGateway, Code: "SSO_UNAVAILABLE", Msg: "the sign-in provider cannot be reached; try again or sign in with a password", Err: err}
	}
	state, stateHash := identity.NewSecret("")
	nonce, _ := identity.NewSecret("")
	verifier := oauth2.GenerateVerifier()
	next := safeNext(r.URL.Query().Get("next"))
	if _, err := s.d.Meta.Exec(ctx, `INSERT INTO oidc_flows (state_hash, verifier, nonce, next, expires_at) VALUES ($1, $2, $3, $4, now() + interval '10 minutes')`,
		stateHash, verifier, nonce, next); err != nil {
		return fmt.Errorf("sso: starting: %w", err)
	}
	if _, err := s.d.Meta.Exec(ctx, `DELETE FROM oidc_flows WHERE expires_at < now() - interval '1 hour'`); err != nil {
		s.d.Log.Warn("pruning old sign-in flows", "err", err)
	}
	http.Redirect(w, r, oc.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)), http.StatusFound)
	return nil
}

// fail sends the browser back to the sign-in page with a message.
func (s *SSO) fail(w http.ResponseWriter, r *http.Request, msg string, err error) {
	if err != nil {
		s.d.Log.Info("single sign-on refused", "reason", msg, "err", err)
	}
	http.Redirect(w, r, "/acc/?error="+url.QueryEscape(msg), http.StatusFound)
}

func (s *SSO) callback(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	q := r.URL.Query()
	if e := q.Get("error"); e != "" {
		s.fail(w, r, "the sign-in provider refused: "+e+" "+q.Get("error_description"), nil)
		return
	}
	var verifier, nonce, next string
	err := s.d.Meta.QueryRow(ctx, `DELETE FROM oidc_flows WHERE state_hash = $1 AND expires_at > now() RETURNING verifier, nonce, next`,
		identity.HashSecret(q.Get("state"))).Scan(&verifier, &nonce, &next)
	if errors.Is(err, pgx.ErrNoRows) {
		s.fail(w, r, "this sign-in link is used or expired; sign in again", nil)
		return
	}
	if err != nil {
		s.fail(w, r, "sign-in failed; try again", err)
		return
	}
	oc, idv, err := s.setup(ctx)
	if err != nil {
		s.fail(w, r, "the sign-in provider cannot be reached", err)
		return
	}
	tok, err := oc.Exchange(oidc.ClientContext(ctx, s.d.HTTPClient), q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		s.fail(w, r, "the sign-in provider did not confirm the sign-in", err)
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := idv.Verify(ctx, raw)
	if err != nil {
		s.fail(w, r, "the sign-in provider's answer could not be verified", err)
		return
	}
	if idt.Nonce != nonce {
		s.fail(w, r, "the sign-in provider's answer is not for this sign-in", errors.New("nonce mismatch"))
		return
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		s.fail(w, r, "the sign-in provider's answer could not be read", err)
		return
	}
	email, _ := claims["email"].(string)
	verified, _ := claims["email_verified"].(bool)
	if email == "" || !verified {
		s.fail(w, r, "the sign-in provider did not vouch for an email address; ask your administrator", nil)
		return
	}
	mapped := s.roleFor(claims[s.cfg.GroupsClaim])
	userID, orgID, err := s.upsertUser(ctx, r, email, claims, mapped, idt.Subject)
	if err != nil {
		s.fail(w, r, err.Error(), err)
		return
	}
	if err := s.d.Auth.StartSession(ctx, w, r, userID, orgID); err != nil {
		s.fail(w, r, "sign-in failed; try again", err)
		return
	}
	http.Redirect(w, r, safeNext(next), http.StatusFound)
}

// roleFor returns the highest role the groups map to, or "".
func (s *SSO) roleFor(v any) identity.Role {
	var best identity.Role
	groups, _ := v.([]any)
	for _, g := range groups {
		if name, ok := g.(string); ok {
			if r, ok := s.roles[name]; ok && (best == "" || r.AtLeast(best)) {
				best = r
			}
		}
	}
	return best
}

// upsertUser finds the user by email or creates them, applies the mapped
// role, and records the sign-in.
func (s *SSO) upsertUser(ctx context.Context, r *http.Request, email string, claims map[string]any, mapped identity.Role, subject string) (string, string, error) {
	var userID, orgID string
	err := pgx.BeginFunc(ctx, s.d.Meta, func(tx pgx.Tx) error {
		var role string
		var disabled *time.Time
		err := tx.QueryRow(ctx, `SELECT id, org_id, role, disabled_at FROM users WHERE lower(email) = lower($1) FOR UPDATE`, email).Scan(&userID, &orgID, &role, &disabled)
		created := false
		if errors.Is(err, pgx.ErrNoRows) {
			orgID = s.cfg.Org
			newRole := string(mapped)
			if newRole == "" {
				if err := tx.QueryRow(ctx, `SELECT default_role FROM organizations WHERE id = $1`, orgID).Scan(&newRole); err != nil {
					return fmt.Errorf("the organization for single sign-on users does not exist: %w", err)
				}
			}
			name, _ := claims["name"].(string)
			if len(name) > 200 {
				name = name[:200]
			}
			if err := tx.QueryRow(ctx, `INSERT INTO users (org_id, email, name, role, email_verified_at) VALUES ($1, $2, $3, $4, now()) RETURNING id`,
				orgID, email, name, newRole).Scan(&userID); err != nil {
				return err
			}
			role, created = newRole, true
		} else if err != nil {
			return err
		} else if disabled != nil {
			return errors.New("this account is disabled; ask your administrator")
		} else if mapped != "" && string(mapped) != role {
			if _, err := tx.Exec(ctx, `UPDATE users SET role = $2, updated_at = now() WHERE id = $1`, userID, mapped); err != nil {
				return err
			}
			if err := authn.EndAll(ctx, tx, userID); err != nil {
				return err
			}
			if err := audit.Record(ctx, tx, audit.Event{OrgID: orgID, ActorID: userID, Action: "user.role_changed", Target: userID, IP: s.d.Auth.ClientIP(r),
				Detail: map[string]any{"from": role, "to": string(mapped), "via": "sso groups"}}); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE users SET email_verified_at = coalesce(email_verified_at, now()) WHERE id = $1`, userID); err != nil {
			return err
		}
		return audit.Record(ctx, tx, audit.Event{OrgID: orgID, ActorID: userID, Action: "login", Target: userID, IP: s.d.Auth.ClientIP(r),
			Detail: map[string]any{"method": "sso", "created": created, "subject": subject}})
	})
	return userID, orgID, err
}
