// Package accounts serves /accounts-api (sign-up, sign-in, sign-out,
// password reset, OAuth client credentials, the session's data token) and
// the organization's people under /workspace-api (users, roles, invites,
// OAuth clients, settings, audit log).
package accounts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/mail"
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
	"github.com/meridian-gis/meridian/internal/config"
	"github.com/meridian-gis/meridian/internal/dataconn"
	"github.com/meridian-gis/meridian/internal/grant"
	"github.com/meridian-gis/meridian/internal/identity"
	"github.com/meridian-gis/meridian/internal/tokenstore"
)

// Config configures the accounts API.
type Config struct {
	// PublicURL is the edge's URL as browsers see it, for links in mail.
	// Default: http://localhost:8080.
	PublicURL string `json:"-"`
	// InviteTTL is how long an invite link works. Default: 7 days (168h).
	InviteTTL config.Duration `json:"invite_ttl,omitempty" env:"MERIDIAN_INVITE_TTL"`
	// ResetTTL is how long a password reset link works. Default: 1h.
	ResetTTL config.Duration `json:"reset_ttl,omitempty" env:"MERIDIAN_RESET_TTL"`
	// MaxFailuresPerAccount failed sign-ins within ThrottleWindow lock an
	// account's password sign-in until they age out. Default: 5.
	MaxFailuresPerAccount int `json:"max_failures_per_account,omitempty" env:"MERIDIAN_LOGIN_MAX_FAILURES_ACCOUNT"`
	// MaxFailuresPerIP failed sign-ins from one address within
	// ThrottleWindow refuse its sign-ins. Default: 30.
	MaxFailuresPerIP int `json:"max_failures_per_ip,omitempty" env:"MERIDIAN_LOGIN_MAX_FAILURES_IP"`
	// ThrottleWindow is the window of the two limits. Default: 15m.
	ThrottleWindow config.Duration `json:"throttle_window,omitempty" env:"MERIDIAN_LOGIN_THROTTLE_WINDOW"`
	// DataTokenTTL is the lifetime of the API access token a session
	// exchanges for the data APIs (maps, SQL). Default: 1h.
	DataTokenTTL config.Duration `json:"data_token_ttl,omitempty" env:"MERIDIAN_SESSION_DATA_TOKEN_TTL"`
	// Mail configures outgoing mail.
	Mail MailConfig `json:"mail"`
}

// SetDefaults fills zero fields.
func (c *Config) SetDefaults() {
	if c.PublicURL == "" {
		c.PublicURL = "http://localhost:8080"
	}
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	if c.InviteTTL == 0 {
		c.InviteTTL = config.Duration(7 * 24 * time.Hour)
	}
	if c.ResetTTL == 0 {
		c.ResetTTL = config.Duration(time.Hour)
	}
	if c.MaxFailuresPerAccount == 0 {
		c.MaxFailuresPerAccount = 5
	}
	if c.MaxFailuresPerIP == 0 {
		c.MaxFailuresPerIP = 30
	}
	if c.ThrottleWindow == 0 {
		c.ThrottleWindow = config.Duration(15 * time.Minute)
	}
	if c.DataTokenTTL == 0 {
		c.DataTokenTTL = config.Duration(time.Hour)
	}
}

// Deps are the accounts API's collaborators.
type Deps struct {
	Log  *slog.Logger
	Meta *pgxpool.Pool
	Auth *authn.Authenticator
	// Tokens mints the data token of a session; without it that route answers 503.
	Tokens *tokenstore.Store
	// Mailer overrides the SMTP mailer built from Config.Mail (tests).
	Mailer Mailer
	// SSOName labels the single sign-on button ("" when SSO is off).
	SSOName string
}

// API serves the accounts routes.
type API struct {
	cfg  Config
	db   *pgxpool.Pool
	auth *authn.Authenticator
	toks *tokenstore.Store
	mail Mailer
	log  *slog.Logger
	sso  string
}

// Routes registers the accounts routes on mux.
func Routes(mux *http.ServeMux, cfg Config, d Deps) *API {
	cfg.SetDefaults()
	a := &API{cfg: cfg, db: d.Meta, auth: d.Auth, toks: d.Tokens, mail: d.Mailer, log: d.Log, sso: d.SSOName}
	if a.mail == nil {
		a.mail = NewMailer(cfg.Mail)
	}
	h := func(fn func(w http.ResponseWriter, r *http.Request) error) http.HandlerFunc {
		return httpapi.Handler(d.Log, fn)
	}
	mux.HandleFunc("GET /accounts-api/status", h(a.status))
	mux.HandleFunc("POST /accounts-api/signup", h(a.signup))
	mux.HandleFunc("POST /accounts-api/login", h(a.login))
	mux.HandleFunc("POST /accounts-api/logout", h(a.logout))
	mux.HandleFunc("POST /accounts-api/logout-all", h(a.logoutAll))
	mux.HandleFunc("GET /accounts-api/me", h(a.me))
	mux.HandleFunc("GET /accounts-api/session", h(a.session))
	mux.HandleFunc("PATCH /accounts-api/me", h(a.updateMe))
	mux.HandleFunc("POST /accounts-api/password/forgot", h(a.forgot))
	mux.HandleFunc("POST /accounts-api/password/reset", h(a.reset))
	mux.HandleFunc("GET /accounts-api/invites/{token}", h(a.inviteInfo))
	mux.HandleFunc("POST /accounts-api/oauth/token", h(a.oauthToken))
	mux.HandleFunc("POST /accounts-api/session/token", h(a.dataToken))

	mux.HandleFunc("GET /workspace-api/org", h(a.getOrg))
	mux.HandleFunc("PATCH /workspace-api/org", h(a.updateOrg))
	mux.HandleFunc("GET /workspace-api/users", h(a.listUsers))
	mux.HandleFunc("PATCH /workspace-api/users/{id}", h(a.updateUser))
	mux.HandleFunc("DELETE /workspace-api/users/{id}", h(a.removeUser))
	mux.HandleFunc("GET /workspace-api/invites", h(a.listInvites))
	mux.HandleFunc("POST /workspace-api/invites", h(a.createInvite))
	mux.HandleFunc("DELETE /workspace-api/invites/{id}", h(a.revokeInvite))
	mux.HandleFunc("GET /workspace-api/oauth-clients", h(a.listClients))
	mux.HandleFunc("POST /workspace-api/oauth-clients", h(a.createClient))
	mux.HandleFunc("DELETE /workspace-api/oauth-clients/{id}", h(a.revokeClient))
	mux.HandleFunc("GET /workspace-api/audit", h(a.listAudit))
	return a
}

// User is a user as the API shows it.
type User struct {
	ID            string     `json:"id"`
	Email         string     `json:"email"`
	Name          string     `json:"name"`
	Role          string     `json:"role"`
	OrgID         string     `json:"orgId"`
	EmailVerified bool       `json:"emailVerified"`
	CreatedAt     time.Time  `json:"createdAt"`
	DisabledAt    *time.Time `json:"disabledAt,omitempty"`
	// PlatformAdmin: the user operates the install (admin console, every
	// organization).
	PlatformAdmin bool `json:"platformAdmin"`
}

const userCols = `id, email, name, role, org_id, email_verified_at IS NOT NULL, created_at, disabled_at, platform_admin`

func scanUser(row pgx.Row) (User, error) {
	var u User
	err := row.Scan(&u.ID, &u.Email, &u.Name, &u.Role, &u.OrgID, &u.EmailVerified, &u.CreatedAt, &u.DisabledAt, &u.PlatformAdmin)
	return u, err
}

func (a *API) event(r *http.Request, org, actor, action, target string, detail map[string]any) audit.Event {
	return audit.Event{OrgID: org, ActorID: actor, Action: action, Target: target, IP: a.auth.ClientIP(r), Detail: detail}
}

// record writes an audit event outside a transaction; a failure is logged,
// not answered (the action itself happened).
func (a *API) record(r *http.Request, e audit.Event) {
	if err := audit.Record(r.Context(), a.db, e); err != nil {
		a.log.Error("audit", "err", err)
	}
}

func validEmail(s string) (string, error) {
	s = strings.TrimSpace(s)
	if len(s) < 3 || len(s) > 254 {
		return "", httpapi.BadRequest("email: 3 to 254 characters")
	}
	addr, err := mail.ParseAddress(s)
	if err != nil || addr.Address != s || addr.Name != "" {
		return "", httpapi.BadRequest("email: %q is not an email address", s)
	}
	return s, nil
}

func validName(s string) (string, error) {
	s = strings.TrimSpace(s)
	if utf8.RuneCountInString(s) > 200 || strings.ContainsAny(s, "\x00\r\n") {
		return "", httpapi.BadRequest("name: at most 200 characters on one line")
	}
	return s, nil
}

func passwordErr(err error) error {
	if errors.Is(err, identity.ErrWeakPassword) {
		return httpapi.BadRequest("password: %v", err)
	}
	return err
}

func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// ---- sign-up, sign-in, sign-out ----

func (a *API) status(w http.ResponseWriter, r *http.Request) error {
	var users int
	var policy string
	if err := a.db.QueryRow(r.Context(), `SELECT (SELECT count(*) FROM users), signup_policy FROM organizations WHERE id = $1`, identity.DefaultOrg).Scan(&users, &policy); err != nil {
		return fmt.Errorf("accounts: status: %w", err)
	}
	st := map[string]any{"setupRequired": users == 0, "signupPolicy": policy, "mail": a.mail != nil}
	if a.sso != "" {
		st["sso"] = map[string]string{"name": a.sso, "login": "/accounts-api/sso/login"}
	}
	httpapi.WriteJSON(w, http.StatusOK, st)
	return nil
}

type signupReq struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	Name     string `json:"name"`
	// Invite is the token of an invite link.
	Invite string `json:"invite"`
}

func (a *API) signup(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	var req signupReq
	if err := httpapi.Decode(w, r, &req, 16<<10); err != nil {
		return err
	}
	email, err := validEmail(req.Email)
	if err != nil {
		return err
	}
	name, err := validName(req.Name)
	if err != nil {
		return err
	}
	hash, err := identity.HashPassword(ctx, req.Password)
	if err != nil {
		return passwordErr(err)
	}
	tx, err := a.db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("accounts: sign-up: %w", err)
	}
	defer tx.Rollback(ctx)
	// One sign-up at a time decides who is first.
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('meridian.signup'))`); err != nil {
		return fmt.Errorf("accounts: sign-up: %w", err)
	}
	var users int
	var policy, defaultRole string
	if err := tx.QueryRow(ctx, `SELECT (SELECT count(*) FROM users), signup_policy, default_role FROM organizations WHERE id = $1`, identity.DefaultOrg).Scan(&users, &policy, &defaultRole); err != nil {
		return fmt.Errorf("accounts: sign-up: %w", err)
	}
	org, role, via, platform := identity.DefaultOrg, "", "", false
	switch {
	case users == 0:
		// The first user of a fresh install runs it.
		role, via, platform = string(identity.RoleAdmin), "first_user", true
	case req.Invite != "":
		var inviteEmail, inviteID string
		err := tx.QueryRow(ctx, `UPDATE invites SET used_at = now()
			WHERE token_hash = $1 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > now()
			RETURNING id, org_id, email, role`, identity.HashSecret(req.Invite)).Scan(&inviteID, &org, &inviteEmail, &role)
		if errors.Is(err, pgx.ErrNoRows) {
			return &httpapi.Error{Status: http.StatusGone, Code: "INVITE_INVALID", Msg: "this invite link is invalid, used or expired; ask for a new one", Quiet: true}
		}
		if err != nil {
			return fmt.Errorf("accounts: sign-up: %w", err)
		}
		if !strings.EqualFold(inviteEmail, email) {
			return httpapi.Forbidden("this invite is for another email address")
		}
		via = "invite:" + inviteID
	case policy == "open":
		role, via = defaultRole, "open_signup"
	default:
		return httpapi.Forbidden("sign-up is by invitation only; ask an administrator for an invite")
	}
	u, err := scanUser(tx.QueryRow(ctx, `INSERT INTO users (org_id, email, name, role, password_hash, platform_admin) VALUES ($1, $2, $3, $4, $5, $6) RETURNING `+userCols,
		org, email, name, role, hash, platform))
	if isUniqueViolation(err) {
		return httpapi.Conflict("an account with this email exists; sign in or reset the password")
	}
	if err != nil {
		return fmt.Errorf("accounts: sign-up: %w", err)
	}
	if err := audit.Record(ctx, tx, a.event(r, org, u.ID, "user.signup", u.ID, map[string]any{"role": role, "via": via})); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("accounts: sign-up: %w", err)
	}
	if err := a.auth.StartSession(ctx, w, r, u.ID, u.OrgID); err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusCreated, u)
	return nil
}

type loginReq struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

func (a *API) login(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	var req loginReq
	if err := httpapi.Decode(w, r, &req, 16<<10); err != nil {
		return err
	}
	email := strings.ToLower(strings.TrimSpace(req.Email))
	if email == "" || len(email) > 254 || req.Password == "" || len(req.Password) > identity.MaxPasswordLen {
		return httpapi.BadRequest("email and password are required")
	}
	ip := a.auth.ClientIP(r)
	if err := a.throttled(ctx, "email:"+email, "ip:"+ip); err != nil {
		a.record(r, a.event(r, "", "", "login.throttled", email, nil))
		return err
	}
	var u User
	var hash string
	err := a.db.QueryRow(ctx, `SELECT `+userCols+`, password_hash FROM users WHERE lower(email) = $1`, email).
		Scan(&u.ID, &u.Email, &u.Name, &u.Role, &u.OrgID, &u.EmailVerified, &u.CreatedAt, &u.DisabledAt, &u.PlatformAdmin, &hash)
	if errors.Is(err, pgx.ErrNoRows) {
		identity.DummyVerify(ctx, req.Password)
	} else if err != nil {
		return fmt.Errorf("accounts: sign-in: %w", err)
	} else if u.DisabledAt == nil {
		err = identity.VerifyPassword(ctx, hash, req.Password)
	} else {
		identity.DummyVerify(ctx, req.Password)
		err = identity.ErrMismatch
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if _, ferr := a.db.Exec(ctx, `INSERT INTO login_failures (key) VALUES ($1), ($2)`, "email:"+email, "ip:"+ip); ferr != nil {
			a.log.Error("recording a failed sign-in", "err", ferr)
		}
		a.record(r, a.event(r, u.OrgID, "", "login.failed", email, nil))
		return httpapi.Unauthorized("wrong email or password")
	}
	if _, err := a.db.Exec(ctx, `DELETE FROM login_failures WHERE key = $1 OR at < now() - interval '1 day'`, "email:"+email); err != nil {
		a.log.Warn("clearing failed sign-ins", "err", err)
	}
	if err := a.auth.StartSession(ctx, w, r, u.ID, u.OrgID); err != nil {
		return err
	}
	a.record(r, a.event(r, u.OrgID, u.ID, "login", u.ID, map[string]any{"method": "password"}))
	httpapi.WriteJSON(w, http.StatusOK, u)
	return nil
}

// throttled answers 429 when any key has reached its failure limit.
func (a *API) throttled(ctx context.Context, account, ip string) error {
	var nAccount, nIP int
	err := a.db.QueryRow(ctx, `SELECT count(*) FILTER (WHERE key = $1), count(*) FILTER (WHERE key = $2)
		FROM login_failures WHERE key IN ($1, $2) AND at > now() - make_interval(secs => $3)`,
		account, ip, a.cfg.ThrottleWindow.D().Seconds()).Scan(&nAccount, &nIP)
	if err != nil {
		return fmt.Errorf("accounts: throttle: %w", err)
	}
	if nAccount >= a.cfg.MaxFailuresPerAccount || nIP >= a.cfg.MaxFailuresPerIP {
		return &httpapi.Error{Status: http.StatusTooManyRequests, Code: "TOO_MANY_ATTEMPTS",
			Msg: fmt.Sprintf("too many failed sign-ins; try again in %s or reset the password", a.cfg.ThrottleWindow.D()), Quiet: true}
	}
	return nil
}

func (a *API) logout(w http.ResponseWriter, r *http.Request) error {
	p, _ := authn.Caller(r)
	if err := a.auth.EndSession(r.Context(), w, r); err != nil {
		return err
	}
	if p.IsUser() {
		a.record(r, a.event(r, p.OrgID, p.UserID, "logout", p.UserID, nil))
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) logoutAll(w http.ResponseWriter, r *http.Request) error {
	p, err := authn.User(r, identity.RoleGuest)
	if err != nil {
		return err
	}
	if err := authn.EndAll(r.Context(), a.db, p.UserID); err != nil {
		return err
	}
	if err := a.auth.EndSession(r.Context(), w, r); err != nil {
		return err
	}
	a.record(r, a.event(r, p.OrgID, p.UserID, "logout.everywhere", p.UserID, nil))
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) me(w http.ResponseWriter, r *http.Request) error {
	p, err := authn.User(r, identity.RoleGuest)
	if err != nil {
		return err
	}
	u, err := scanUser(a.db.QueryRow(r.Context(), `SELECT `+userCols+` FROM users WHERE id = $1`, p.UserID))
	if err != nil {
		return fmt.Errorf("accounts: me: %w", err)
	}
	var orgName string
	if err := a.db.QueryRow(r.Context(), `SELECT name FROM organizations WHERE id = $1`, p.OrgID).Scan(&orgName); err != nil {
		return fmt.Errorf("accounts: me: %w", err)
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"signedIn": true, "user": u, "org": map[string]string{"id": p.OrgID, "name": orgName}, "via": p.Via})
	return nil
}

// session tells a web app whether its browser is signed in, always with a
// 200 (an anonymous visit is not an error): {"signedIn": false} or
// {"signedIn": true, "user", "org", "via"}.
func (a *API) session(w http.ResponseWriter, r *http.Request) error {
	if p, ok := authn.Caller(r); !ok || !p.IsUser() {
		httpapi.WriteJSON(w, http.StatusOK, map[string]any{"signedIn": false})
		return nil
	}
	return a.me(w, r)
}

type updateMeReq struct {
	Name            *string `json:"name"`
	Password        string  `json:"password"`
	CurrentPassword string  `json:"currentPassword"`
}

func (a *API) updateMe(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	p, err := authn.User(r, identity.RoleGuest)
	if err != nil {
		return err
	}
	var req updateMeReq
	if err := httpapi.Decode(w, r, &req, 16<<10); err != nil {
		return err
	}
	if req.Name != nil {
		name, err := validName(*req.Name)
		if err != nil {
			return err
		}
		if _, err := a.db.Exec(ctx, `UPDATE users SET name = $2, updated_at = now() WHERE id = $1`, p.UserID, name); err != nil {
			return fmt.Errorf("accounts: profile: %w", err)
		}
	}
	if req.Password != "" {
		var hash string
		if err := a.db.QueryRow(ctx, `SELECT password_hash FROM users WHERE id = $1`, p.UserID).Scan(&hash); err != nil {
			return fmt.Errorf("accounts: profile: %w", err)
		}
		if hash != "" {
			if err := identity.VerifyPassword(ctx, hash, req.CurrentPassword); err != nil {
				return httpapi.Forbidden("the current password is wrong")
			}
		}
		newHash, err := identity.HashPassword(ctx, req.Password)
		if err != nil {
			return passwordErr(err)
		}
		tx, err := a.db.Begin(ctx)
		if err != nil {
			return fmt.Errorf("accounts: password: %w", err)
		}
		defer tx.Rollback(ctx)
		if _, err := tx.Exec(ctx, `UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1`, p.UserID, newHash); err != nil {
			return fmt.Errorf("accounts: password: %w", err)
		}
		if err := authn.EndAll(ctx, tx, p.UserID); err != nil {
			return err
		}
		if err := audit.Record(ctx, tx, a.event(r, p.OrgID, p.UserID, "user.password_changed", p.UserID, nil)); err != nil {
			return err
		}
		if err := tx.Commit(ctx); err != nil {
			return fmt.Errorf("accounts: password: %w", err)
		}
		if p.Via == identity.ViaSession {
			if err := a.auth.StartSession(ctx, w, r, p.UserID, p.OrgID); err != nil {
				return err
			}
		}
	}
	return a.me(w, r)
}

// ---- password reset ----

type forgotReq struct {
	Email string `json:"email"`
}

func (a *API) forgot(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	var req forgotReq
	if err := httpapi.Decode(w, r, &req, 4<<10); err != nil {
		return err
	}
	email, err := validEmail(req.Email)
	if err != nil {
		return err
	}
	if err := a.throttled(ctx, "reset:"+strings.ToLower(email), "ip:"+a.auth.ClientIP(r)); err != nil {
		return err
	}
	// The answer is the same whether the account exists: no oracle.
	var userID, orgID string
	err = a.db.QueryRow(ctx, `SELECT id, org_id FROM users WHERE lower(email) = lower($1) AND disabled_at IS NULL`, email).Scan(&userID, &orgID)
	if err == nil {
		tok, h := identity.NewSecret("mrs_")
		if _, err := a.db.Exec(ctx, `INSERT INTO password_resets (token_hash, user_id, expires_at) VALUES ($1, $2, now() + make_interval(secs => $3))`,
			h, userID, a.cfg.ResetTTL.D().Seconds()); err != nil {
			return fmt.Errorf("accounts: reset: %w", err)
		}
		if _, err := a.db.Exec(ctx, `INSERT INTO login_failures (key) VALUES ($1)`, "reset:"+strings.ToLower(email)); err != nil {
			a.log.Warn("counting reset requests", "err", err)
		}
		link := a.cfg.PublicURL + "/acc/reset?token=" + tok
		a.deliver(ctx, email, "Reset your Meridian password",
			"Someone asked to reset the password of this account.\n\nSet a new one here (the link works once, for "+a.cfg.ResetTTL.D().String()+"):\n"+link+"\n\nIf it was not you, ignore this message.\n", link)
		a.record(r, a.event(r, orgID, "", "password.reset_requested", userID, nil))
	} else if !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("accounts: reset: %w", err)
	}
	httpapi.WriteJSON(w, http.StatusAccepted, map[string]string{"status": "if an account has this email, a reset link is on its way"})
	return nil
}

type resetReq struct {
	Token    string `json:"token"`
	Password string `json:"password"`
}

func (a *API) reset(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	var req resetReq
	if err := httpapi.Decode(w, r, &req, 16<<10); err != nil {
		return err
	}
	hash, err := identity.HashPassword(ctx, req.Password)
	if err != nil {
		return passwordErr(err)
	}
	tx, err := a.db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("accounts: reset: %w", err)
	}
	defer tx.Rollback(ctx)
	var userID, orgID string
	err = tx.QueryRow(ctx, `UPDATE password_resets SET used_at = now() FROM users u
		WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now() AND u.id = user_id AND u.disabled_at IS NULL
		RETURNING u.id, u.org_id`, identity.HashSecret(req.Token)).Scan(&userID, &orgID)
	if errors.Is(err, pgx.ErrNoRows) {
		return &httpapi.Error{Status: http.StatusGone, Code: "RESET_INVALID", Msg: "this reset link is invalid, used or expired; ask for a new one", Quiet: true}
	}
	if err != nil {
		return fmt.Errorf("accounts: reset: %w", err)
	}
	// The mail proved the address.
	if _, err := tx.Exec(ctx, `UPDATE users SET password_hash = $2, email_verified_at = coalesce(email_verified_at, now()), updated_at = now() WHERE id = $1`, userID, hash); err != nil {
		return fmt.Errorf("accounts: reset: %w", err)
	}
	if err := authn.EndAll(ctx, tx, userID); err != nil {
		return err
	}
	if err := audit.Record(ctx, tx, a.event(r, orgID, userID, "password.reset", userID, nil)); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("accounts: reset: %w", err)
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]string{"status": "password changed; sign in with the new one"})
	return nil
}

// ---- OAuth ----

// oauthError answers in RFC 6749 §5.2's shape, which OAuth clients read.
func oauthError(w http.ResponseWriter, status int, code, desc string) error {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="meridian"`)
	}
	httpapi.WriteJSON(w, status, map[string]any{"error": code, "error_description": desc, "status": status, "code": strings.ToUpper(code)})
	return nil
}

func (a *API) oauthToken(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	if err := r.ParseForm(); err != nil {
		return oauthError(w, http.StatusBadRequest, "invalid_request", "the body must be application/x-www-form-urlencoded")
	}
	if gt := r.PostForm.Get("grant_type"); gt != "client_credentials" {
		return oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "only grant_type=client_credentials is supported")
	}
	id, sec, ok := r.BasicAuth()
	if !ok {
		id, sec = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if id == "" || sec == "" || len(id) > 100 || len(sec) > 200 {
		return oauthError(w, http.StatusUnauthorized, "invalid_client", "client_id and client_secret are required")
	}
	ip := a.auth.ClientIP(r)
	if err := a.throttled(ctx, "client:"+id, "ip:"+ip); err != nil {
		return oauthError(w, http.StatusTooManyRequests, "slow_down", "too many failed attempts; wait and retry")
	}
	var userID, orgID, hash string
	err := a.db.QueryRow(ctx, `SELECT c.user_id, c.org_id, c.secret_hash FROM oauth_clients c JOIN users u ON u.id = c.user_id
		WHERE c.id = $1 AND c.revoked_at IS NULL AND u.disabled_at IS NULL`, id).Scan(&userID, &orgID, &hash)
	if errors.Is(err, pgx.ErrNoRows) {
		identity.DummyVerify(ctx, sec)
	} else if err != nil {
		return fmt.Errorf("accounts: oauth: %w", err)
	} else {
		err = identity.VerifyPassword(ctx, hash, sec)
	}
	if err != nil {
		if _, ferr := a.db.Exec(ctx, `INSERT INTO login_failures (key) VALUES ($1), ($2)`, "client:"+id, "ip:"+ip); ferr != nil {
			a.log.Error("recording a failed client authentication", "err", ferr)
		}
		a.record(r, a.event(r, orgID, "", "oauth.failed", id, nil))
		return oauthError(w, http.StatusUnauthorized, "invalid_client", "unknown client or wrong secret")
	}
	tok, ttl, err := a.auth.IssueUserToken(ctx, userID, orgID, id)
	if err != nil {
		return err
	}
	a.record(r, a.event(r, orgID, userID, "oauth.token", id, nil))
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": int(ttl.Seconds())})
	return nil
}

// dataToken exchanges a session (or user token) for a short-lived API
// access token covering the data APIs on the connections the caller may
// use (their organization's shared ones and their own private ones): what the web apps send to /api/v3/maps and /api/v3/sql,
// so the edge checks grants (and serves cache HITs) exactly as for any
// other token. Editors and admins get maps, sql, imports and lds on every
// connection of their organization; viewers and guests get no data token
// (they see maps shared with them through those maps' tokens).
func (a *API) dataToken(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	p, err := authn.User(r, identity.RoleGuest)
	if err != nil {
		return err
	}
	if !p.Role.AtLeast(identity.RoleEditor) {
		return httpapi.Forbidden("viewers and guests open maps shared with them; the data APIs need the editor role")
	}
	if a.toks == nil {
		return &httpapi.Error{Status: http.StatusServiceUnavailable, Code: "UNAVAILABLE", Msg: "tokens are not configured on this node"}
	}
	// The connections the user may use: the org's shared ones and their own private ones.
	names, err := dataconn.Usable(ctx, a.db, p.OrgID, p.UserID)
	if err != nil {
		return fmt.Errorf("accounts: data token: %w", err)
	}
	grants := make([]grant.Grant, 0, len(names))
	for _, n := range names {
		grants = append(grants, grant.Grant{Connection: n, Source: "*"})
	}
	if len(grants) == 0 {
		return httpapi.Conflict("your organization has no connection yet; add one first")
	}
	exp := time.Now().Add(a.cfg.DataTokenTTL.D()).Truncate(time.Second)
	tok, t, err := a.toks.Create(ctx, tokenstore.Spec{Org: p.OrgID, Owner: p.UserID, Name: "session data token", Kind: tokenstore.KindSession,
		Grants: grants, APIs: []grant.API{grant.APIMaps, grant.APISQL, grant.APIImports, grant.APILDS}, ExpiresAt: exp})
	if err != nil {
		return fmt.Errorf("accounts: data token: %w", err)
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"token": tok, "id": t.ID, "expiresAt": exp, "grants": grants})
	return nil
}

// ---- organization ----

type orgJSON struct {
	ID           string `json:"id"`
	Name         string `json:"name"`
	DefaultRole  string `json:"defaultRole"`
	SignupPolicy string `json:"signupPolicy"`
}

func (a *API) getOrg(w http.ResponseWriter, r *http.Request) error {
	p, err := authn.User(r, identity.RoleGuest)
	if err != nil {
		return err
	}
	var o orgJSON
	if err := a.db.QueryRow(r.Context(), `SELECT id, name, default_role, signup_policy FROM organizations WHERE id = $1`, p.OrgID).
		Scan(&o.ID, &o.Name, &o.DefaultRole, &o.SignupPolicy); err != nil {
		return fmt.Errorf("accounts: org: %w", err)
	}
	httpapi.WriteJSON(w, http.StatusOK, o)
	return nil
}

type updateOrgReq struct {
	Name         *string `json:"name"`
	DefaultRole  *string `json:"defaultRole"`
	SignupPolicy *string `json:"signupPolicy"`
}

func (a *API) updateOrg(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	p, err := authn.User(r, identity.RoleAdmin)
	if err != nil {
		return err
	}
	var req updateOrgReq
	if err := httpapi.Decode(w, r, &req, 4<<10); err != nil {
		return err
	}
	detail := map[string]any{}
	if req.Name != nil {
		n, err := validName(*req.Name)
		if err != nil || n == "" {
			return httpapi.BadRequest("name: 1 to 200 characters")
		}
		req.Name, detail["name"] = &n, n
	}
	if req.DefaultRole != nil {
		if r, err := identity.ParseRole(*req.DefaultRole); err != nil || r == identity.RoleAdmin {
			return httpapi.BadRequest("defaultRole: editor, viewer or guest")
		} else {
			s := string(r)
			req.DefaultRole, detail["defaultRole"] = &s, s
		}
	}
	if req.SignupPolicy != nil {
		if *req.SignupPolicy != "invite" && *req.SignupPolicy != "open" {
			return httpapi.BadRequest("signupPolicy: invite or open")
		}
		detail["signupPolicy"] = *req.SignupPolicy
	}
	tx, err := a.db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("accounts: org: %w", err)
	}
	defer tx.Rollback(ctx)
	_, err = tx.Exec(ctx, `UPDATE organizations SET name = coalesce($2, name), default_role = coalesce($3, default_role),
		signup_policy = coalesce($4, signup_policy) WHERE id = $1`, p.OrgID, req.Name, req.DefaultRole, req.SignupPolicy)
	if isUniqueViolation(err) {
		return httpapi.Conflict("another organization has this name")
	}
	if err != nil {
		return fmt.Errorf("accounts: org: %w", err)
	}
	if err := audit.Record(ctx, tx, a.event(r, p.OrgID, p.UserID, "org.updated", p.OrgID, detail)); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("accounts: org: %w", err)
	}
	return a.getOrg(w, r)
}

func (a *API) listAudit(w http.ResponseWriter, r *http.Request) error {
	p, err := authn.User(r, identity.RoleAdmin)
	if err != nil {
		return err
	}
	before, _ := strconv.ParseInt(r.URL.Query().Get("before"), 10, 64)
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	events, err := audit.List(r.Context(), a.db, p.OrgID, before, limit)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"events": events})
	return nil
}
