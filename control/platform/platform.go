// Package platform is the part of the admin API (/api/admin/, platform
// administrators only) that spans organizations: list and create
// organizations (a new one gets an invite for its first admin), their
// members, their Location Data Services quotas, and who else
// administers the platform.
//
// An organization's admin manages their own organization through the
// workspace API; only a platform administrator (users.platform_admin, the
// first user of a fresh install) or the admin bearer secret reaches these
// routes.
package platform

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/meridian-gis/meridian/control/accounts"
	"github.com/meridian-gis/meridian/control/audit"
	"github.com/meridian-gis/meridian/control/authn"
	"github.com/meridian-gis/meridian/control/httpapi"
	"github.com/meridian-gis/meridian/control/lds"
	"github.com/meridian-gis/meridian/internal/identity"
)

// Inviter invites a user into an organization (accounts.API.Invite).
type Inviter interface {
	Invite(ctx context.Context, r *http.Request, by identity.Principal, org, email string, role identity.Role) (accounts.Invite, error)
}

// Quotas reads and sets an organization's LDS quotas (lds.Service).
type Quotas interface {
	Usage(ctx context.Context, org string) ([]lds.Usage, error)
	SetQuota(ctx context.Context, org, service string, monthly *int64) error
}

// Deps are the platform API's collaborators.
type Deps struct {
	// Log receives errors. Required.
	Log *slog.Logger
	// Meta is the metadata database. Required.
	Meta *pgxpool.Pool
	// Require wraps every route: it lets only platform administrators
	// through and answers the others itself. Required.
	Require func(http.Handler) http.Handler
	// Invites mints the invite of a new organization's first admin.
	// Required.
	Invites Inviter
	// Quotas are the organizations' LDS quotas. Optional: without it the
	// quota routes answer 404 and organizations list no usage.
	Quotas Quotas
	// ClientIP tells the caller's address for the audit log. Optional.
	ClientIP func(*http.Request) string
	// Timeout bounds each request's database work. Default: 10s.
	Timeout time.Duration
}

// Routes adds the platform routes to mux.
func Routes(mux *http.ServeMux, d Deps) error {
	if d.Log == nil || d.Meta == nil || d.Require == nil || d.Invites == nil {
		return errors.New("platform: Log, Meta, Require and Invites are required")
	}
	if d.Timeout <= 0 {
		d.Timeout = 10 * time.Second
	}
	a := &api{d: d}
	for pattern, fn := range map[string]func(http.ResponseWriter, *http.Request) error{
		"GET /api/admin/orgs":                          a.listOrgs,
		"POST /api/admin/orgs":                         a.createOrg,
		"GET /api/admin/orgs/{id}":                     a.getOrg,
		"GET /api/admin/orgs/{id}/users":               a.orgUsers,
		"POST /api/admin/orgs/{id}/invites":            a.inviteToOrg,
		"GET /api/admin/orgs/{id}/quotas":              a.orgQuotas,
		"PUT /api/admin/orgs/{id}/quotas/{service}":    a.setQuota,
		"DELETE /api/admin/orgs/{id}/quotas/{service}": a.resetQuota,
		"GET /api/admin/platform-admins":               a.listPlatformAdmins,
		"GET /api/admin/users/{id}":                    a.getUser,
		"PATCH /api/admin/users/{id}":                  a.updateUser,
	} {
		mux.Handle(pattern, d.Require(httpapi.Handler(d.Log, fn)))
	}
	return nil
}

type api struct{ d Deps }

func (a *api) ctx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), a.d.Timeout)
}

// caller is who acts: the signed-in platform admin, or the zero
// Principal for the admin bearer secret.
func caller(r *http.Request) identity.Principal {
	if p, ok := authn.Caller(r); ok && p.IsUser() {
		return p
	}
	return identity.Principal{}
}

// record writes a platform change to the audit log of the organization
// it concerns, by the platform admin or "admin-token" (the bearer
// secret). A failure is logged: the change is made.
func (a *api) record(r *http.Request, org, action, target string, detail map[string]any) {
	actor := caller(r).UserID
	if actor == "" {
		actor = "admin-token"
	}
	audit.Recorder{DB: a.d.Meta, Log: a.d.Log, ClientIP: a.d.ClientIP}.Request(r, org, actor, action, target, detail)
}

// Org is an organization as the console lists it.
type Org struct {
	ID           string      `json:"id"`
	Name         string      `json:"name"`
	CreatedAt    time.Time   `json:"createdAt"`
	SignupPolicy string      `json:"signupPolicy"`
	DefaultRole  string      `json:"defaultRole"`
	Users        int         `json:"users"`
	Admins       []string    `json:"admins"`
	PendingInvs  int         `json:"pendingInvites"`
	LDS          []lds.Usage `json:"lds,omitempty"`
}

const orgSelect = `SELECT o.id, o.name, o.created_at, o.signup_policy, o.default_role,
		(SELECT count(*) FROM users u WHERE u.org_id = o.id AND u.disabled_at IS NULL),
		coalesce((SELECT array_agg(u.email ORDER BY u.email) FROM users u
			WHERE u.org_id = o.id AND u.role = 'admin' AND u.disabled_at IS NULL), '{}'),
		(SELECT count(*) FROM invites i WHERE i.org_id = o.id AND i.used_at IS NULL AND i.revoked_at IS NULL AND i.expires_at > now())
	FROM organizations o`

func scanOrg(row pgx.Row) (Org, error) {
	var o Org
	err := row.Scan(&o.ID, &o.Name, &o.CreatedAt, &o.SignupPolicy, &o.DefaultRole, &o.Users, &o.Admins, &o.PendingInvs)
	return o, err
}

func (a *api) listOrgs(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := a.ctx(r)
	defer cancel()
	rows, err := a.d.Meta.Query(ctx, orgSelect+` ORDER BY o.created_at, o.name`)
	if err != nil {
		return fmt.Errorf("platform: listing organizations: %w", err)
	}
	orgs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Org, error) { return scanOrg(row) })
	if err != nil {
		return fmt.Errorf("platform: listing organizations: %w", err)
	}
	if a.d.Quotas != nil {
		for i := range orgs {
			if orgs[i].LDS, err = a.d.Quotas.Usage(ctx, orgs[i].ID); err != nil {
				return err
			}
		}
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"organizations": orgs})
	return nil
}

func (a *api) getOrg(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := a.ctx(r)
	defer cancel()
	o, err := a.org(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, o)
	return nil
}

// org loads one organization with its LDS usage; 404 when there is none.
func (a *api) org(ctx context.Context, id string) (Org, error) {
	o, err := scanOrg(a.d.Meta.QueryRow(ctx, orgSelect+` WHERE o.id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Org{}, httpapi.NotFound("organization")
	}
	if err != nil {
		return Org{}, fmt.Errorf("platform: organization %s: %w", id, err)
	}
	if a.d.Quotas != nil {
		if o.LDS, err = a.d.Quotas.Usage(ctx, o.ID); err != nil {
			return Org{}, err
		}
	}
	return o, nil
}

type createOrgReq struct {
	// Name is unique, 1 to 100 characters.
	Name string `json:"name"`
	// AdminEmail receives an invite as the organization's first admin.
	// Optional: a platform admin may invite later.
	AdminEmail string `json:"adminEmail"`
}

func (a *api) createOrg(w http.ResponseWriter, r *http.Request) error {
	var req createOrgReq
	if err := httpapi.Decode(w, r, &req, 4<<10); err != nil {
		return err
	}
	name := strings.TrimSpace(req.Name)
	if name == "" || len(name) > 100 {
		return httpapi.BadRequest("name: 1 to 100 characters")
	}
	ctx, cancel := a.ctx(r)
	defer cancel()
	var id string
	err := a.d.Meta.QueryRow(ctx, `INSERT INTO organizations (name) VALUES ($1) RETURNING id`, name).Scan(&id)
	if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return httpapi.Conflict("an organization with this name exists")
	}
	if err != nil {
		return fmt.Errorf("platform: creating organization: %w", err)
	}
	a.record(r, id, "org.created", id, map[string]any{"name": name})
	out := map[string]any{}
	if req.AdminEmail != "" {
		inv, err := a.d.Invites.Invite(ctx, r, caller(r), id, req.AdminEmail, identity.RoleAdmin)
		if err != nil {
			// The organization stays: the invite can be sent again.
			var he *httpapi.Error
			if !errors.As(err, &he) {
				return err
			}
			out["inviteError"] = he.Msg
		} else {
			out["invite"] = inv
		}
	}
	o, err := a.org(ctx, id)
	if err != nil {
		return err
	}
	out["organization"] = o
	httpapi.WriteJSON(w, http.StatusCreated, out)
	return nil
}

type inviteReq struct {
	Email string `json:"email"`
	Role  string `json:"role"`
}

// inviteToOrg invites anyone into any organization (e.g. a replacement
// for an organization's departed last admin).
func (a *api) inviteToOrg(w http.ResponseWriter, r *http.Request) error {
	var req inviteReq
	if err := httpapi.Decode(w, r, &req, 4<<10); err != nil {
		return err
	}
	role := identity.RoleAdmin
	if req.Role != "" {
		var err error
		if role, err = identity.ParseRole(req.Role); err != nil {
			return httpapi.BadRequest("role: %v", err)
		}
	}
	ctx, cancel := a.ctx(r)
	defer cancel()
	if _, err := a.org(ctx, r.PathValue("id")); err != nil {
		return err
	}
	inv, err := a.d.Invites.Invite(ctx, r, caller(r), r.PathValue("id"), req.Email, role)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusCreated, inv)
	return nil
}

// User is a member of an organization as the console lists it.
type User struct {
	ID            string     `json:"id"`
	Email         string     `json:"email"`
	Name          string     `json:"name"`
	OrgID         string     `json:"orgId"`
	Role          string     `json:"role"`
	PlatformAdmin bool       `json:"platformAdmin"`
	CreatedAt     time.Time  `json:"createdAt"`
	DisabledAt    *time.Time `json:"disabledAt,omitempty"`
	LastSignIn    *time.Time `json:"lastSignIn,omitempty"`
}

const userSelect = `SELECT u.id, u.email, u.name, u.org_id, u.role, u.platform_admin, u.created_at, u.disabled_at,
		(SELECT max(s.created_at) FROM sessions s WHERE s.user_id = u.id)
	FROM users u`

func scanUser(row pgx.Row) (User, error) {
	var u User
	err := row.Scan(&u.ID, &u.Email, &u.Name, &u.OrgID, &u.Role, &u.PlatformAdmin, &u.CreatedAt, &u.DisabledAt, &u.LastSignIn)
	return u, err
}

func (a *api) users(ctx context.Context, where string, args ...any) ([]User, error) {
	rows, err := a.d.Meta.Query(ctx, userSelect+` WHERE `+where+` ORDER BY u.email LIMIT 10000`, args...)
	if err != nil {
		return nil, fmt.Errorf("platform: listing users: %w", err)
	}
	us, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (User, error) { return scanUser(row) })
	if err != nil {
		return nil, fmt.Errorf("platform: listing users: %w", err)
	}
	return us, nil
}

func (a *api) orgUsers(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := a.ctx(r)
	defer cancel()
	if _, err := a.org(ctx, r.PathValue("id")); err != nil {
		return err
	}
	us, err := a.users(ctx, `u.org_id = $1`, r.PathValue("id"))
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"users": us})
	return nil
}

func (a *api) listPlatformAdmins(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := a.ctx(r)
	defer cancel()
	us, err := a.users(ctx, `u.platform_admin`)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"users": us})
	return nil
}

func (a *api) getUser(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := a.ctx(r)
	defer cancel()
	u, err := a.user(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, u)
	return nil
}

func (a *api) user(ctx context.Context, id string) (User, error) {
	u, err := scanUser(a.d.Meta.QueryRow(ctx, userSelect+` WHERE u.id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, httpapi.NotFound("user")
	}
	if err != nil {
		return User{}, fmt.Errorf("platform: user %s: %w", id, err)
	}
	return u, nil
}

type updateUserReq struct {
	PlatformAdmin *bool `json:"platformAdmin"`
}

func (a *api) updateUser(w http.ResponseWriter, r *http.Request) error {
	var req updateUserReq
	if err := httpapi.Decode(w, r, &req, 4<<10); err != nil {
		return err
	}
	if req.PlatformAdmin == nil {
		return httpapi.BadRequest("nothing to change (platformAdmin)")
	}
	return a.setPlatform(w, r, *req.PlatformAdmin)
}

// errLastPlatformAdmin: an install always keeps one platform admin who
// can sign in, or nobody could run the console without the bearer secret.
var errLastPlatformAdmin = httpapi.Conflict("this is the last platform administrator; make someone else one first")

// setPlatform makes user {id} a platform administrator or not. The last
// active platform admin cannot be demoted (nor, elsewhere, disabled).
func (a *api) setPlatform(w http.ResponseWriter, r *http.Request, on bool) error {
	ctx, cancel := a.ctx(r)
	defer cancel()
	id := r.PathValue("id")
	err := pgx.BeginFunc(ctx, a.d.Meta, func(tx pgx.Tx) error {
		// One change of platform admins at a time decides who is last.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('meridian.platform_admins'))`); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `UPDATE users SET platform_admin = $2 WHERE id = $1`, id, on)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return httpapi.NotFound("user")
		}
		if !on {
			var left int
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM users WHERE platform_admin AND disabled_at IS NULL`).Scan(&left); err != nil {
				return err
			}
			if left == 0 {
				return errLastPlatformAdmin
			}
		}
		return nil
	})
	if err != nil {
		var he *httpapi.Error
		if errors.As(err, &he) {
			return err
		}
		return fmt.Errorf("platform: user %s: %w", id, err)
	}
	u, err := a.user(ctx, id)
	if err != nil {
		return err
	}
	action := "platform_admin.revoked"
	if on {
		action = "platform_admin.granted"
	}
	a.record(r, u.OrgID, action, u.ID, map[string]any{"email": u.Email})
	httpapi.WriteJSON(w, http.StatusOK, u)
	return nil
}

func (a *api) orgQuotas(w http.ResponseWriter, r *http.Request) error {
	if a.d.Quotas == nil {
		return httpapi.NotFound("Location Data Services")
	}
	ctx, cancel := a.ctx(r)
	defer cancel()
	o, err := a.org(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"lds": o.LDS})
	return nil
}

type quotaReq struct {
	// MonthlyQuota is the organization's monthly quota for the service;
	// null returns it to the configured default.
	MonthlyQuota *int64 `json:"monthlyQuota"`
}

func (a *api) setQuota(w http.ResponseWriter, r *http.Request) error {
	var req quotaReq
	if err := httpapi.Decode(w, r, &req, 4<<10); err != nil {
		return err
	}
	return a.changeQuota(w, r, req.MonthlyQuota)
}

func (a *api) resetQuota(w http.ResponseWriter, r *http.Request) error {
	return a.changeQuota(w, r, nil)
}

func (a *api) changeQuota(w http.ResponseWriter, r *http.Request, q *int64) error {
	if a.d.Quotas == nil {
		return httpapi.NotFound("Location Data Services")
	}
	if q != nil && *q < 0 {
		return httpapi.BadRequest("monthlyQuota: 0 or more, or null for the default")
	}
	ctx, cancel := a.ctx(r)
	defer cancel()
	org, service := r.PathValue("id"), r.PathValue("service")
	if _, err := a.org(ctx, org); err != nil {
		return err
	}
	if err := a.d.Quotas.SetQuota(ctx, org, service, q); errors.Is(err, lds.ErrUnknownService) {
		return httpapi.NotFound("service " + service + " (geocoding, routing or isolines)")
	} else if err != nil {
		return err
	}
	detail := map[string]any{"service": service, "monthlyQuota": q}
	a.record(r, org, "org.quota", org, detail)
	o, err := a.org(ctx, org)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"lds": o.LDS})
	return nil
}
