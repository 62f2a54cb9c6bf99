// Package authn resolves who calls the control plane: a browser session
// (cookie), a 24-hour user OAuth token, or an API access token. It owns
// sessions and user tokens (create, rotate, revoke), CSRF protection of
// cookie-authenticated requests, and the role checks handlers wrap
// themselves in.
package authn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/meridian-gis/meridian/control/httpapi"
	"github.com/meridian-gis/meridian/internal/config"
	"github.com/meridian-gis/meridian/internal/grant"
	"github.com/meridian-gis/meridian/internal/identity"
)

// Config configures sessions and user tokens.
type Config struct {
	// SessionIdle ends a session unused this long. Default: 24h.
	SessionIdle config.Duration `json:"session_idle,omitempty" env:"MERIDIAN_SESSION_IDLE"`
	// SessionMaxAge ends a session this long after sign-in, used or not. Default: 7 days (168h).
	SessionMaxAge config.Duration `json:"session_max_age,omitempty" env:"MERIDIAN_SESSION_MAX_AGE"`
	// UserTokenTTL is the lifetime of user OAuth tokens. Default: 24h.
	UserTokenTTL config.Duration `json:"user_token_ttl,omitempty" env:"MERIDIAN_USER_TOKEN_TTL"`
	// IgnoreForwardedFor takes the client address (for sign-in throttling
	// and the audit log) from the connection rather than from the
	// X-Forwarded-For the edge sets. Set it when control is reachable
	// other than through the edge. Default: false.
	IgnoreForwardedFor bool `json:"ignore_forwarded_for,omitempty" env:"MERIDIAN_IGNORE_FORWARDED_FOR"`
}

// SetDefaults fills zero fields.
func (c *Config) SetDefaults() {
	if c.SessionIdle == 0 {
		c.SessionIdle = config.Duration(24 * time.Hour)
	}
	if c.SessionMaxAge == 0 {
		c.SessionMaxAge = config.Duration(7 * 24 * time.Hour)
	}
	if c.UserTokenTTL == 0 {
		c.UserTokenTTL = config.Duration(24 * time.Hour)
	}
}

// CookieName is the session cookie.
const CookieName = "meridian_session"

// Prefixes of the secrets this package issues; API access tokens are JWTs.
const (
	sessionPrefix   = "mss_"
	userTokenPrefix = "mut_"
)

// TokenVerifier verifies API access tokens (*tokenstore.Watcher).
type TokenVerifier interface {
	Verify(ctx context.Context, token string, now time.Time) (*grant.Claims, error)
}

// Authenticator resolves callers and manages sessions and user tokens.
type Authenticator struct {
	cfg    Config
	db     *pgxpool.Pool
	tokens TokenVerifier
	log    *slog.Logger
	csrf   *http.CrossOriginProtection
}

// New returns an Authenticator. tokens may be nil (API access tokens then
// authenticate nobody).
func New(cfg Config, db *pgxpool.Pool, tokens TokenVerifier, log *slog.Logger) *Authenticator {
	cfg.SetDefaults()
	csrf := http.NewCrossOriginProtection()
	csrf.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		httpapi.WriteError(w, httpapi.Forbidden("cross-origin request refused (CSRF protection)"))
	}))
	return &Authenticator{cfg: cfg, db: db, tokens: tokens, log: log, csrf: csrf}
}

type ctxKey struct{}

type resolved struct {
	p         identity.Principal
	claims    *grant.Claims // API access tokens
	sessionID []byte        // hash of the session cookie, when Via is session
	// failure is set when a credential was presented but refused.
	failure string
}

// Caller returns the principal of a request that went through Middleware.
func Caller(r *http.Request) (identity.Principal, bool) {
	res, _ := r.Context().Value(ctxKey{}).(*resolved)
	if res == nil || res.p.Via == "" {
		return identity.Principal{}, false
	}
	return res.p, true
}

// Claims returns the API access token's claims of a request authenticated
// by one, else nil.
func Claims(r *http.Request) *grant.Claims {
	res, _ := r.Context().Value(ctxKey{}).(*resolved)
	if res == nil {
		return nil
	}
	return res.claims
}

// Middleware resolves the caller of every request (anonymous when none)
// and refuses cross-origin unsafe requests authenticated by the cookie.
func (a *Authenticator) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		res := a.resolve(r)
		ctx := context.WithValue(r.Context(), ctxKey{}, res)
		r = r.WithContext(ctx)
		if res.p.Via == identity.ViaSession {
			a.csrf.Handler(next).ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (a *Authenticator) resolve(r *http.Request) *resolved {
	ctx := r.Context()
	if tok := grant.BearerToken(r.Header.Get("Authorization"), r.URL.Query().Get("access_token")); tok != "" {
		if strings.HasPrefix(tok, userTokenPrefix) {
			p, err := a.userToken(ctx, tok)
			if err != nil {
				return &resolved{failure: err.Error()}
			}
			return &resolved{p: p}
		}
		if a.tokens == nil {
			return &resolved{failure: "invalid access token"}
		}
		claims, err := a.tokens.Verify(ctx, tok, time.Now())
		if err != nil {
			return &resolved{failure: tokenFailure(err)}
		}
		org := claims.Org
		if org == "" {
			org = identity.DefaultOrg
		}
		return &resolved{p: identity.Principal{OrgID: org, UserID: claims.Subject, Via: identity.ViaAPIToken}, claims: claims}
	}
	if c, err := r.Cookie(CookieName); err == nil && strings.HasPrefix(c.Value, sessionPrefix) {
		h := identity.HashSecret(c.Value)
		p, err := a.session(ctx, h)
		if err == nil {
			return &resolved{p: p, sessionID: h}
		}
		return &resolved{failure: "session expired; sign in again"}
	}
	return &resolved{}
}

func tokenFailure(err error) string {
	switch {
	case errors.Is(err, grant.ErrExpired):
		return "access token expired"
	case errors.Is(err, grant.ErrRevoked):
		return "access token revoked"
	case errors.Is(err, grant.ErrNotYetValid):
		return "access token not valid yet"
	}
	return "invalid access token"
}

var errNoCredential = errors.New("no valid credential")

// session resolves a session by its hash, extending its idle window
// (written at most once a minute).
func (a *Authenticator) session(ctx context.Context, h []byte) (identity.Principal, error) {
	var p identity.Principal
	var role string
	var lastSeen time.Time
	err := a.db.QueryRow(ctx, `SELECT u.id, u.org_id, u.email, u.role, u.platform_admin, s.last_seen_at
		FROM sessions s JOIN users u ON u.id = s.user_id
		WHERE s.id_hash = $1 AND s.revoked_at IS NULL AND s.expires_at > now()
		  AND s.last_seen_at > now() - make_interval(secs => $2) AND u.disabled_at IS NULL`,
		h, a.cfg.SessionIdle.D().Seconds()).Scan(&p.UserID, &p.OrgID, &p.Email, &role, &p.PlatformAdmin, &lastSeen)
	if errors.Is(err, pgx.ErrNoRows) {
		return p, errNoCredential
	}
	if err != nil {
		a.log.Warn("resolving session", "err", err)
		return p, errNoCredential
	}
	if time.Since(lastSeen) > time.Minute {
		if _, err := a.db.Exec(ctx, `UPDATE sessions SET last_seen_at = now() WHERE id_hash = $1`, h); err != nil {
			a.log.Warn("touching session", "err", err)
		}
	}
	p.Role = identity.Role(role)
	p.Via = identity.ViaSession
	return p, nil
}

func (a *Authenticator) userToken(ctx context.Context, tok string) (identity.Principal, error) {
	var p identity.Principal
	var role string
	err := a.db.QueryRow(ctx, `SELECT u.id, u.org_id, u.email, u.role, u.platform_admin
		FROM user_tokens t JOIN users u ON u.id = t.user_id
		LEFT JOIN oauth_clients c ON c.id = t.client_id
		WHERE t.id_hash = $1 AND t.revoked_at IS NULL AND t.expires_at > now() AND u.disabled_at IS NULL
		  AND (t.client_id IS NULL OR c.revoked_at IS NULL)`,
		identity.HashSecret(tok)).Scan(&p.UserID, &p.OrgID, &p.Email, &role, &p.PlatformAdmin)
	if err != nil {
		if !errors.Is(err, pgx.ErrNoRows) {
			a.log.Warn("resolving user token", "err", err)
		}
		return p, errors.New("invalid or expired user token")
	}
	p.Role = identity.Role(role)
	p.Via = identity.ViaUserToken
	return p, nil
}

// User answers 401 unless the request comes from a signed-in user (session
// or user token) with at least role min, else 403.
func User(r *http.Request, min identity.Role) (identity.Principal, error) {
	res, _ := r.Context().Value(ctxKey{}).(*resolved)
	if res == nil || !res.p.IsUser() {
		msg := "sign in, or send a user token (Authorization: Bearer …)"
		if res != nil && res.failure != "" {
			msg = res.failure
		} else if res != nil && res.p.Via == identity.ViaAPIToken {
			msg = "this API needs a user token or a session, not an API access token"
		}
		return identity.Principal{}, httpapi.Unauthorized(msg)
	}
	if !res.p.Role.AtLeast(min) {
		return identity.Principal{}, httpapi.Forbidden(fmt.Sprintf("this needs the %s role or higher; you are %s", min, res.p.Role))
	}
	return res.p, nil
}

// StartSession signs userID in on w: a new session id (never one the
// client chose: fixation), the previous session of this browser revoked.
func (a *Authenticator) StartSession(ctx context.Context, w http.ResponseWriter, r *http.Request, userID, orgID string) error {
	sid, h := identity.NewSecret(sessionPrefix)
	tx, err := a.db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("authn: starting session: %w", err)
	}
	defer tx.Rollback(ctx)
	if c, err := r.Cookie(CookieName); err == nil {
		if _, err := tx.Exec(ctx, `UPDATE sessions SET revoked_at = now() WHERE id_hash = $1 AND revoked_at IS NULL`, identity.HashSecret(c.Value)); err != nil {
			return fmt.Errorf("authn: rotating session: %w", err)
		}
	}
	ua := r.UserAgent()
	if len(ua) > 300 {
		ua = ua[:300]
	}
	if _, err := tx.Exec(ctx, `INSERT INTO sessions (id_hash, user_id, org_id, expires_at, ip, user_agent)
		VALUES ($1, $2, $3, now() + make_interval(secs => $4), $5, $6)`,
		h, userID, orgID, a.cfg.SessionMaxAge.D().Seconds(), a.ClientIP(r), ua); err != nil {
		return fmt.Errorf("authn: starting session: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("authn: starting session: %w", err)
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: sid, Path: "/", HttpOnly: true, Secure: IsHTTPS(r),
		SameSite: http.SameSiteLaxMode, MaxAge: int(a.cfg.SessionMaxAge.D().Seconds())})
	return nil
}

// EndSession revokes the request's session and clears the cookie.
func (a *Authenticator) EndSession(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	res, _ := r.Context().Value(ctxKey{}).(*resolved)
	if res != nil && res.sessionID != nil {
		if _, err := a.db.Exec(ctx, `UPDATE sessions SET revoked_at = now() WHERE id_hash = $1`, res.sessionID); err != nil {
			return fmt.Errorf("authn: ending session: %w", err)
		}
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", HttpOnly: true, Secure: IsHTTPS(r),
		SameSite: http.SameSiteLaxMode, MaxAge: -1})
	return nil
}

// Execer is a pool or a transaction.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// EndAll revokes every session and user token of userID (sign out
// everywhere; also on password reset, role change and removal), in db's
// transaction when db is one.
func EndAll(ctx context.Context, db Execer, userID string) error {
	if _, err := db.Exec(ctx, `UPDATE sessions SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL`, userID); err != nil {
		return fmt.Errorf("authn: revoking sessions: %w", err)
	}
	if _, err := db.Exec(ctx, `UPDATE user_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL`, userID); err != nil {
		return fmt.Errorf("authn: revoking user tokens: %w", err)
	}
	return nil
}

// IssueUserToken creates a user OAuth token for userID (clientID: the
// OAuth client it was issued to, or ""), valid Config.UserTokenTTL.
func (a *Authenticator) IssueUserToken(ctx context.Context, userID, orgID, clientID string) (string, time.Duration, error) {
	tok, h := identity.NewSecret(userTokenPrefix)
	ttl := a.cfg.UserTokenTTL.D()
	var client any
	if clientID != "" {
		client = clientID
	}
	if _, err := a.db.Exec(ctx, `INSERT INTO user_tokens (id_hash, user_id, org_id, client_id, expires_at)
		VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))`, h, userID, orgID, client, ttl.Seconds()); err != nil {
		return "", 0, fmt.Errorf("authn: issuing user token: %w", err)
	}
	return tok, ttl, nil
}

// IsHTTPS reports whether the client reached us over HTTPS (directly or
// through the edge), which makes cookies Secure.
func IsHTTPS(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

// ClientIP is the client's address: the first X-Forwarded-For entry set
// by the edge when trusted, else the peer address.
func (a *Authenticator) ClientIP(r *http.Request) string {
	if !a.cfg.IgnoreForwardedFor {
		if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
			first, _, _ := strings.Cut(xff, ",")
			if ip := net.ParseIP(strings.TrimSpace(first)); ip != nil {
				return ip.String()
			}
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// Token is a caller authenticated by an API access token: its claims
// (grants, allowed APIs, subject) and its organization.
type Token struct {
	// OrgID is the token's organization (identity.DefaultOrg when it
	// names none): it scopes every lookup of the APIs that take tokens.
	OrgID string
	*grant.Claims
}

// APIToken returns the caller of a request authenticated by an API access
// token that allows api from the request's origin (Origin, else Referer):
// 401 without a valid access token (sessions and user tokens included:
// the APIs that take grants need one), 403 when the token does not allow
// api or this origin.
func APIToken(r *http.Request, api grant.API) (Token, error) {
	res, _ := r.Context().Value(ctxKey{}).(*resolved)
	if res == nil || res.claims == nil {
		msg := "missing access token (Authorization: Bearer …)"
		switch {
		case res != nil && res.failure != "":
			msg = res.failure
		case res != nil && res.p.IsUser():
			msg = "this API needs an API access token (Authorization: Bearer …), not a session or user token"
		}
		return Token{}, httpapi.Unauthorized(msg)
	}
	if !res.claims.HasAPI(api) {
		return Token{}, httpapi.Forbidden(fmt.Sprintf("this token does not allow the %s API", api))
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		origin = r.Header.Get("Referer")
	}
	if err := res.claims.CheckReferer(origin); err != nil {
		return Token{}, httpapi.Forbidden("this token is not allowed from this origin")
	}
	return Token{OrgID: res.p.OrgID, Claims: res.claims}, nil
}

// NoGrant is the 403 for a source an API access token has no grant for.
func NoGrant(conn, source string) *httpapi.Error {
	return httpapi.Forbidden(fmt.Sprintf("this token has no grant for %s on connection %s", source, conn))
}
