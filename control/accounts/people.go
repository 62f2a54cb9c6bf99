package accounts

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/meridian-gis/meridian/control/audit"
	"github.com/meridian-gis/meridian/control/authn"
	"github.com/meridian-gis/meridian/control/httpapi"
	"github.com/meridian-gis/meridian/internal/identity"
)

// ---- users (admin) ----

// listUsers lists the organization's people, for admins and for editors
// (who share maps with them).
func (a *API) listUsers(w http.ResponseWriter, r *http.Request) error {
	p, err := authn.User(r, identity.RoleEditor)
	if err != nil {
		return err
	}
	rows, err := a.db.Query(r.Context(), `SELECT `+userCols+` FROM users WHERE org_id = $1 ORDER BY lower(email)`, p.OrgID)
	if err != nil {
		return fmt.Errorf("accounts: users: %w", err)
	}
	users, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (User, error) { return scanUser(row) })
	if err != nil {
		return fmt.Errorf("accounts: users: %w", err)
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"users": users})
	return nil
}

type updateUserReq struct {
	Role string `json:"role"`
}

func (a *API) updateUser(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	p, err := authn.User(r, identity.RoleAdmin)
	if err != nil {
		return err
	}
	var req updateUserReq
	if err := httpapi.Decode(w, r, &req, 4<<10); err != nil {
		return err
	}
	role, err := identity.ParseRole(req.Role)
	if err != nil {
		return httpapi.BadRequest("role: %v", err)
	}
	id := r.PathValue("id")
	tx, err := a.db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("accounts: role: %w", err)
	}
	defer tx.Rollback(ctx)
	var old string
	var platform bool
	if err := tx.QueryRow(ctx, `SELECT role, platform_admin FROM users WHERE id = $1 AND org_id = $2 FOR UPDATE`, id, p.OrgID).Scan(&old, &platform); errors.Is(err, pgx.ErrNoRows) {
		return httpapi.NotFound("user")
	} else if err != nil {
		return fmt.Errorf("accounts: role: %w", err)
	}
	if platform && !p.PlatformAdmin {
		return errPlatformAdmin
	}
	if old == string(identity.RoleAdmin) && role != identity.RoleAdmin {
		if err := a.keepAnAdmin(r, tx, p.OrgID, id); err != nil {
			return err
		}
	}
	u, err := scanUser(tx.QueryRow(ctx, `UPDATE users SET role = $3, updated_at = now() WHERE id = $1 AND org_id = $2 RETURNING `+userCols, id, p.OrgID, role))
	if err != nil {
		return fmt.Errorf("accounts: role: %w", err)
	}
	if old != string(role) {
		// A privilege change ends the user's sessions and tokens: they sign in again with the new role.
		if err := authn.EndAll(ctx, tx, id); err != nil {
			return err
		}
	}
	if err := audit.Record(ctx, tx, a.event(r, p.OrgID, p.UserID, "user.role_changed", id, map[string]any{"from": old, "to": string(role)})); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("accounts: role: %w", err)
	}
	httpapi.WriteJSON(w, http.StatusOK, u)
	return nil
}

// errPlatformAdmin: an organization's admin changes no platform admin's
// role, and nobody removes one who still is.
var errPlatformAdmin = httpapi.Forbidden("this user administers the platform; a platform admin changes them, and removes them only once they no longer are one")

// keepAnAdmin refuses a change that would leave org with no active admin
// but the user id being changed.
func (a *API) keepAnAdmin(r *http.Request, tx pgx.Tx, org, id string) error {
	var others int
	if err := tx.QueryRow(r.Context(), `SELECT count(*) FROM users WHERE org_id = $1 AND role = 'admin' AND id <> $2 AND disabled_at IS NULL`, org, id).Scan(&others); err != nil {
		return fmt.Errorf("accounts: counting admins: %w", err)
	}
	if others == 0 {
		return httpapi.Conflict("this is the organization's last admin; make someone else admin first")
	}
	return nil
}

// removeUser deletes a user of the caller's org; what they own (tokens,
// OAuth clients, imports, jobs, and maps where they exist) passes to the
// receiver, an editor or admin of the same org (?receiver=<user id>).
func (a *API) removeUser(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	p, err := authn.User(r, identity.RoleAdmin)
	if err != nil {
		return err
	}
	id, receiver := r.PathValue("id"), r.URL.Query().Get("receiver")
	if id == p.UserID {
		return httpapi.Conflict("you cannot remove yourself; another admin can")
	}
	tx, err := a.db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("accounts: remove user: %w", err)
	}
	defer tx.Rollback(ctx)
	var role, email string
	var platform bool
	if err := tx.QueryRow(ctx, `SELECT role, email, platform_admin FROM users WHERE id = $1 AND org_id = $2 FOR UPDATE`, id, p.OrgID).Scan(&role, &email, &platform); errors.Is(err, pgx.ErrNoRows) {
		return httpapi.NotFound("user")
	} else if err != nil {
		return fmt.Errorf("accounts: remove user: %w", err)
	}
	if platform {
		// A platform admin first stops being one (PATCH
		// /api/admin/users/{id}), which keeps the last one.
		return errPlatformAdmin
	}
	if role == string(identity.RoleAdmin) {
		if err := a.keepAnAdmin(r, tx, p.OrgID, id); err != nil {
			return err
		}
	}
	if receiver == "" {
		return httpapi.BadRequest("receiver: the id of the user who receives this user's tokens, imports, jobs and maps")
	}
	var recvRole string
	if err := tx.QueryRow(ctx, `SELECT role FROM users WHERE id = $1 AND org_id = $2 AND disabled_at IS NULL`, receiver, p.OrgID).Scan(&recvRole); errors.Is(err, pgx.ErrNoRows) || receiver == id {
		return httpapi.BadRequest("receiver: no other active user with this id in your organization")
	} else if err != nil {
		return fmt.Errorf("accounts: remove user: %w", err)
	}
	if !identity.Role(recvRole).AtLeast(identity.RoleEditor) {
		return httpapi.BadRequest("receiver: must be an editor or admin")
	}
	moved := map[string]any{}
	for _, m := range []struct{ name, sql string }{
		{"tokens", `UPDATE tokens SET owner = $2 WHERE owner = $1 AND org_id = $3`},
		{"imports", `UPDATE imports SET created_by = $2 WHERE created_by = $1 AND org_id = $3`},
		{"jobs", `UPDATE jobs SET created_by = $2 WHERE created_by = $1 AND org_id = $3`},
	} {
		tag, err := tx.Exec(ctx, m.sql, id, receiver, p.OrgID)
		if err != nil {
			return fmt.Errorf("accounts: remove user: moving %s: %w", m.name, err)
		}
		moved[m.name] = tag.RowsAffected()
	}
	// Maps, once they exist (migration of the maps package), move too.
	var hasMaps bool
	if err := tx.QueryRow(ctx, `SELECT to_regclass('public.maps') IS NOT NULL`).Scan(&hasMaps); err != nil {
		return fmt.Errorf("accounts: remove user: %w", err)
	}
	if hasMaps {
		tag, err := tx.Exec(ctx, `UPDATE maps SET owner_id = $2 WHERE owner_id = $1 AND org_id = $3`, id, receiver, p.OrgID)
		if err != nil {
			return fmt.Errorf("accounts: remove user: moving maps: %w", err)
		}
		moved["maps"] = tag.RowsAffected()
	}
	if _, err := tx.Exec(ctx, `DELETE FROM users WHERE id = $1 AND org_id = $2`, id, p.OrgID); err != nil {
		return fmt.Errorf("accounts: remove user: %w", err)
	}
	moved["receiver"], moved["email"] = receiver, email
	if err := audit.Record(ctx, tx, a.event(r, p.OrgID, p.UserID, "user.removed", id, moved)); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("accounts: remove user: %w", err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// ---- invites ----

// Invite is an invite as admins see it. Link is set only when no mail
// server is configured (or sending failed), so an admin can pass it on.
type Invite struct {
	ID        string     `json:"id"`
	Email     string     `json:"email"`
	Role      string     `json:"role"`
	CreatedAt time.Time  `json:"createdAt"`
	ExpiresAt time.Time  `json:"expiresAt"`
	UsedAt    *time.Time `json:"usedAt,omitempty"`
	RevokedAt *time.Time `json:"revokedAt,omitempty"`
	Mailed    bool       `json:"mailed"`
	Link      string     `json:"link,omitempty"`
}

type inviteReq struct {
	Email string `json:"email"`
	Role  string `json:"role"`
}

func (a *API) createInvite(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	p, err := authn.User(r, identity.RoleAdmin)
	if err != nil {
		return err
	}
	var req inviteReq
	if err := httpapi.Decode(w, r, &req, 4<<10); err != nil {
		return err
	}
	var role identity.Role
	if req.Role != "" {
		if role, err = identity.ParseRole(req.Role); err != nil {
			return httpapi.BadRequest("role: %v", err)
		}
	}
	inv, err := a.Invite(ctx, r, p, p.OrgID, req.Email, role)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusCreated, inv)
	return nil
}

// Invite invites email into organization org with role (the
// organization's default role when empty), on behalf of by (the zero
// Principal for the admin bearer secret): a single-use link, mailed, or
// returned in Invite.Link when no mail server is configured. r is the
// request asking, for the audit log.
func (a *API) Invite(ctx context.Context, r *http.Request, by identity.Principal, org, email string, role identity.Role) (Invite, error) {
	email, err := validEmail(email)
	if err != nil {
		return Invite{}, err
	}
	if role == "" {
		if err := a.db.QueryRow(ctx, `SELECT default_role FROM organizations WHERE id = $1`, org).Scan(&role); err != nil {
			return Invite{}, fmt.Errorf("accounts: invite: %w", err)
		}
	}
	var exists bool
	if err := a.db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM users WHERE lower(email) = lower($1))`, email).Scan(&exists); err != nil {
		return Invite{}, fmt.Errorf("accounts: invite: %w", err)
	}
	if exists {
		return Invite{}, httpapi.Conflict("an account with this email exists")
	}
	tok, h := identity.NewSecret("miv_")
	tx, err := a.db.Begin(ctx)
	if err != nil {
		return Invite{}, fmt.Errorf("accounts: invite: %w", err)
	}
	defer tx.Rollback(ctx)
	var createdBy any
	if by.UserID != "" {
		createdBy = by.UserID
	}
	var inv Invite
	if err := tx.QueryRow(ctx, `INSERT INTO invites (org_id, email, role, token_hash, created_by, expires_at)
		VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6)) RETURNING id, email, role, created_at, expires_at`,
		org, email, role, h, createdBy, a.cfg.InviteTTL.D().Seconds()).Scan(&inv.ID, &inv.Email, &inv.Role, &inv.CreatedAt, &inv.ExpiresAt); err != nil {
		return Invite{}, fmt.Errorf("accounts: invite: %w", err)
	}
	actor := by.UserID
	if actor == "" {
		actor = "admin-token"
	}
	if err := audit.Record(ctx, tx, a.event(r, org, actor, "invite.created", inv.ID, map[string]any{"email": email, "role": string(role)})); err != nil {
		return Invite{}, err
	}
	if err := tx.Commit(ctx); err != nil {
		return Invite{}, fmt.Errorf("accounts: invite: %w", err)
	}
	inviter := by.Email
	if inviter == "" {
		inviter = "An administrator"
	}
	link := a.cfg.PublicURL + "/acc/invite?token=" + tok
	inv.Mailed = a.deliver(ctx, email, "You are invited to Meridian",
		inviter+" invited you to Meridian as "+string(role)+".\n\nCreate your account here (the link works once, until "+
			inv.ExpiresAt.UTC().Format(time.RFC1123)+"):\n"+link+"\n", link)
	if !inv.Mailed {
		inv.Link = link
	}
	return inv, nil
}

func (a *API) listInvites(w http.ResponseWriter, r *http.Request) error {
	p, err := authn.User(r, identity.RoleAdmin)
	if err != nil {
		return err
	}
	rows, err := a.db.Query(r.Context(), `SELECT id, email, role, created_at, expires_at, used_at, revoked_at FROM invites WHERE org_id = $1 ORDER BY created_at DESC LIMIT 500`, p.OrgID)
	if err != nil {
		return fmt.Errorf("accounts: invites: %w", err)
	}
	invs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Invite, error) {
		var i Invite
		err := row.Scan(&i.ID, &i.Email, &i.Role, &i.CreatedAt, &i.ExpiresAt, &i.UsedAt, &i.RevokedAt)
		return i, err
	})
	if err != nil {
		return fmt.Errorf("accounts: invites: %w", err)
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"invites": invs})
	return nil
}

func (a *API) revokeInvite(w http.ResponseWriter, r *http.Request) error {
	p, err := authn.User(r, identity.RoleAdmin)
	if err != nil {
		return err
	}
	tag, err := a.db.Exec(r.Context(), `UPDATE invites SET revoked_at = now() WHERE id = $1 AND org_id = $2 AND revoked_at IS NULL AND used_at IS NULL`, r.PathValue("id"), p.OrgID)
	if err != nil {
		return fmt.Errorf("accounts: revoke invite: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return httpapi.NotFound("open invite")
	}
	a.record(r, a.event(r, p.OrgID, p.UserID, "invite.revoked", r.PathValue("id"), nil))
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// inviteInfo tells the sign-up page whom an invite link is for.
func (a *API) inviteInfo(w http.ResponseWriter, r *http.Request) error {
	var email, role, org string
	err := a.db.QueryRow(r.Context(), `SELECT i.email, i.role, o.name FROM invites i JOIN organizations o ON o.id = i.org_id
		WHERE i.token_hash = $1 AND i.used_at IS NULL AND i.revoked_at IS NULL AND i.expires_at > now()`,
		identity.HashSecret(r.PathValue("token"))).Scan(&email, &role, &org)
	if errors.Is(err, pgx.ErrNoRows) {
		return &httpapi.Error{Status: http.StatusGone, Code: "INVITE_INVALID", Msg: "this invite link is invalid, used or expired; ask for a new one", Quiet: true}
	}
	if err != nil {
		return fmt.Errorf("accounts: invite: %w", err)
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]string{"email": email, "role": role, "org": org})
	return nil
}

// ---- OAuth clients ----

// Client is an OAuth client; Secret is set only in the answer that creates it.
type Client struct {
	ID        string     `json:"client_id"`
	Name      string     `json:"name"`
	UserID    string     `json:"userId"`
	CreatedAt time.Time  `json:"createdAt"`
	RevokedAt *time.Time `json:"revokedAt,omitempty"`
	Secret    string     `json:"client_secret,omitempty"`
}

type clientReq struct {
	Name string `json:"name"`
}

func (a *API) createClient(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	p, err := authn.User(r, identity.RoleEditor)
	if err != nil {
		return err
	}
	var req clientReq
	if err := httpapi.Decode(w, r, &req, 4<<10); err != nil {
		return err
	}
	name, err := validName(req.Name)
	if err != nil {
		return err
	}
	id, _ := identity.NewSecret("mcl_")
	id = id[:24]
	sec, _ := identity.NewSecret("mcs_")
	hash, err := identity.HashPassword(ctx, sec)
	if err != nil {
		return err
	}
	c := Client{ID: id, Name: name, UserID: p.UserID, Secret: sec}
	tx, err := a.db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("accounts: client: %w", err)
	}
	defer tx.Rollback(ctx)
	if err := tx.QueryRow(ctx, `INSERT INTO oauth_clients (id, org_id, user_id, name, secret_hash) VALUES ($1, $2, $3, $4, $5) RETURNING created_at`,
		id, p.OrgID, p.UserID, name, hash).Scan(&c.CreatedAt); err != nil {
		return fmt.Errorf("accounts: client: %w", err)
	}
	if err := audit.Record(ctx, tx, a.event(r, p.OrgID, p.UserID, "oauth_client.created", id, map[string]any{"name": name})); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("accounts: client: %w", err)
	}
	httpapi.WriteJSON(w, http.StatusCreated, c)
	return nil
}

func (a *API) listClients(w http.ResponseWriter, r *http.Request) error {
	p, err := authn.User(r, identity.RoleEditor)
	if err != nil {
		return err
	}
	rows, err := a.db.Query(r.Context(), `SELECT id, name, user_id, created_at, revoked_at FROM oauth_clients
		WHERE org_id = $1 AND (user_id = $2 OR $3) ORDER BY created_at DESC`, p.OrgID, p.UserID, p.Role == identity.RoleAdmin)
	if err != nil {
		return fmt.Errorf("accounts: clients: %w", err)
	}
	cs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Client, error) {
		var c Client
		err := row.Scan(&c.ID, &c.Name, &c.UserID, &c.CreatedAt, &c.RevokedAt)
		return c, err
	})
	if err != nil {
		return fmt.Errorf("accounts: clients: %w", err)
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"clients": cs})
	return nil
}

func (a *API) revokeClient(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	p, err := authn.User(r, identity.RoleEditor)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	tx, err := a.db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("accounts: revoke client: %w", err)
	}
	defer tx.Rollback(ctx)
	tag, err := tx.Exec(ctx, `UPDATE oauth_clients SET revoked_at = now() WHERE id = $1 AND org_id = $2 AND (user_id = $3 OR $4) AND revoked_at IS NULL`,
		id, p.OrgID, p.UserID, p.Role == identity.RoleAdmin)
	if err != nil {
		return fmt.Errorf("accounts: revoke client: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return httpapi.NotFound("OAuth client")
	}
	if _, err := tx.Exec(ctx, `UPDATE user_tokens SET revoked_at = now() WHERE client_id = $1 AND revoked_at IS NULL`, id); err != nil {
		return fmt.Errorf("accounts: revoke client: %w", err)
	}
	if err := audit.Record(ctx, tx, a.event(r, p.OrgID, p.UserID, "oauth_client.revoked", id, nil)); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("accounts: revoke client: %w", err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
