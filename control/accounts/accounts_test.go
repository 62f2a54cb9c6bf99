package accounts_test

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/meridian-gis/meridian/control"
	"github.com/meridian-gis/meridian/control/authn"
	"github.com/meridian-gis/meridian/control/controltest"
	"github.com/meridian-gis/meridian/internal/dataconn"
	"github.com/meridian-gis/meridian/internal/identity"
)

func decode(t *testing.T, raw []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("answer is not JSON: %v: %s", err, raw)
	}
	return m
}

func sessionCookie(t *testing.T, res *http.Response) *http.Cookie {
	t.Helper()
	for _, c := range res.Cookies() {
		if c.Name == authn.CookieName {
			return c
		}
	}
	t.Fatalf("no %s cookie in %v", authn.CookieName, res.Header["Set-Cookie"])
	return nil
}

func withCookie(c *http.Cookie) func(*http.Request) { return func(r *http.Request) { r.AddCookie(c) } }

func TestFirstRunSignupAndCookieFlags(t *testing.T) {
	e := controltest.Start(t, nil)
	res, raw := e.Do(t, "GET", "/accounts-api/status", nil, nil)
	if m := controltest.Want(t, "status", res, raw, 200); m["setupRequired"] != true {
		t.Errorf("fresh install: setupRequired = %v", m["setupRequired"])
	}
	res, raw = e.Do(t, "POST", "/accounts-api/signup", map[string]string{"email": "ada@example.test", "password": "analytical engine", "name": "Ada"}, nil)
	m := controltest.Want(t, "first sign-up", res, raw, 201)
	if m["role"] != "admin" || m["orgId"] != identity.DefaultOrg {
		t.Errorf("first user = %s, want admin of the default org", raw)
	}
	c := sessionCookie(t, res)
	if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Secure || c.Path != "/" {
		t.Errorf("cookie flags: HttpOnly=%v SameSite=%v Secure=%v Path=%q", c.HttpOnly, c.SameSite, c.Secure, c.Path)
	}
	if strings.Contains(string(raw), "analytical engine") || strings.Contains(string(raw), "argon2") {
		t.Error("the sign-up answer shows the password or its hash")
	}
	res, raw = e.Do(t, "GET", "/accounts-api/me", nil, withCookie(c))
	if m := controltest.Want(t, "me", res, raw, 200); m["via"] != "session" {
		t.Errorf("me = %s", raw)
	}
	// Afterwards: invite-only by default.
	res, raw = e.Do(t, "POST", "/accounts-api/signup", map[string]string{"email": "eve@example.test", "password": "0123456789ab"}, nil)
	controltest.Want(t, "second sign-up without invite", res, raw, 403)
	var n int
	e.DB.Pool.QueryRow(context.Background(), `SELECT count(*) FROM users`).Scan(&n)
	if n != 1 {
		t.Errorf("%d users after a refused sign-up, want 1", n)
	}
	// Over HTTPS (through the edge) the cookie is Secure.
	res, raw = e.Do(t, "POST", "/accounts-api/login", map[string]string{"email": "ADA@example.test", "password": "analytical engine"},
		func(r *http.Request) { r.Header.Set("X-Forwarded-Proto", "https") })
	controltest.Want(t, "sign-in over https", res, raw, 200)
	if c := sessionCookie(t, res); !c.Secure {
		t.Error("cookie not Secure over HTTPS")
	}
	// Open sign-up follows the org's setting and default role.
	res, raw = e.Do(t, "PATCH", "/workspace-api/org", map[string]string{"signupPolicy": "open", "defaultRole": "editor"}, withCookie(c))
	controltest.Want(t, "open sign-up", res, raw, 200)
	res, raw = e.Do(t, "POST", "/accounts-api/signup", map[string]string{"email": "bo@example.test", "password": "0123456789ab"}, nil)
	if m := controltest.Want(t, "open sign-up", res, raw, 201); m["role"] != "editor" {
		t.Errorf("open sign-up role = %v, want the default editor", m["role"])
	}
	res, raw = e.Do(t, "POST", "/accounts-api/signup", map[string]string{"email": "Bo@Example.test", "password": "0123456789ab"}, nil)
	controltest.Want(t, "same email, other case", res, raw, 409)
}

func TestInviteByMail(t *testing.T) {
	smtp := controltest.StartSMTP(t)
	e := controltest.Start(t, func(c *control.Config, _ *control.Deps) { c.Accounts.Mail.SMTPAddr = smtp.Addr })
	admin := e.NewUser(t, identity.DefaultOrg, identity.RoleAdmin)
	res, raw := admin.Do(t, "POST", "/workspace-api/invites", map[string]string{"email": "vic@example.test", "role": "viewer"})
	inv := controltest.Want(t, "invite", res, raw, 201)
	if inv["mailed"] != true || inv["link"] != nil {
		t.Errorf("invite answer %s: a mailed invite must not show its link", raw)
	}
	mail := smtp.Wait(t)
	if len(mail.To) != 1 || mail.To[0] != "vic@example.test" {
		t.Errorf("mail to %v", mail.To)
	}
	tok := regexp.MustCompile(`token=(miv_[A-Za-z0-9_-]+)`).FindStringSubmatch(mail.Data)
	if tok == nil {
		t.Fatalf("no invite link in the mail: %s", mail.Data)
	}
	res, raw = e.Do(t, "GET", "/accounts-api/invites/"+tok[1], nil, nil)
	if m := controltest.Want(t, "invite info", res, raw, 200); m["email"] != "vic@example.test" || m["role"] != "viewer" {
		t.Errorf("invite info %s", raw)
	}
	res, raw = e.Do(t, "POST", "/accounts-api/signup", map[string]string{"email": "mallory@example.test", "password": "0123456789ab", "invite": tok[1]}, nil)
	controltest.Want(t, "invite used by another email", res, raw, 403)
	res, raw = e.Do(t, "POST", "/accounts-api/signup", map[string]string{"email": "vic@example.test", "password": "0123456789ab", "invite": tok[1]}, nil)
	if m := controltest.Want(t, "accept invite", res, raw, 201); m["role"] != "viewer" {
		t.Errorf("invited user role %v", m["role"])
	}
	res, raw = e.Do(t, "POST", "/accounts-api/signup", map[string]string{"email": "vic2@example.test", "password": "0123456789ab", "invite": tok[1]}, nil)
	controltest.Want(t, "used invite", res, raw, 410)
	// An expired invite is refused too.
	res, raw = admin.Do(t, "POST", "/workspace-api/invites", map[string]string{"email": "late@example.test"})
	controltest.Want(t, "second invite", res, raw, 201)
	tok2 := regexp.MustCompile(`token=(miv_[A-Za-z0-9_-]+)`).FindStringSubmatch(smtp.Wait(t).Data)
	e.DB.Pool.Exec(context.Background(), `UPDATE invites SET expires_at = now() - interval '1 second' WHERE email = 'late@example.test'`)
	res, raw = e.Do(t, "POST", "/accounts-api/signup", map[string]string{"email": "late@example.test", "password": "0123456789ab", "invite": tok2[1]}, nil)
	controltest.Want(t, "expired invite", res, raw, 410)
}

func TestInviteWithoutMailShowsLinkToAdmin(t *testing.T) {
	e := controltest.Start(t, nil)
	admin := e.NewUser(t, identity.DefaultOrg, identity.RoleAdmin)
	res, raw := admin.Do(t, "POST", "/workspace-api/invites", map[string]string{"email": "vic@example.test", "role": "editor"})
	inv := controltest.Want(t, "invite", res, raw, 201)
	link, _ := inv["link"].(string)
	if inv["mailed"] != false || !strings.Contains(link, "/acc/invite?token=miv_") {
		t.Errorf("invite without SMTP: %s", raw)
	}
}

func TestLoginThrottling(t *testing.T) {
	e := controltest.Start(t, nil)
	u := e.NewUser(t, identity.DefaultOrg, identity.RoleEditor)
	for i := 0; i < 5; i++ {
		res, raw := e.Do(t, "POST", "/accounts-api/login", map[string]string{"email": u.Email, "password": "wrong password " + string(rune('a'+i))}, nil)
		controltest.Want(t, "wrong password", res, raw, 401)
	}
	res, raw := e.Do(t, "POST", "/accounts-api/login", map[string]string{"email": u.Email, "password": u.Password}, nil)
	controltest.Want(t, "right password after 5 failures", res, raw, 429)
	// An unknown account answers like a wrong password (no oracle), and is counted per address.
	res, raw = e.Do(t, "POST", "/accounts-api/login", map[string]string{"email": "nobody@example.test", "password": "whatever12345"}, nil)
	controltest.Want(t, "unknown account", res, raw, 401)
	var failed int
	e.DB.Pool.QueryRow(context.Background(), `SELECT count(*) FROM audit_log WHERE action = 'login.failed'`).Scan(&failed)
	if failed != 6 {
		t.Errorf("audit log has %d failed sign-ins, want 6", failed)
	}
	// Per address: many accounts from one IP.
	e2 := controltest.Start(t, func(c *control.Config, _ *control.Deps) { c.Accounts.MaxFailuresPerIP = 3 })
	v := e2.NewUser(t, identity.DefaultOrg, identity.RoleViewer)
	ip := func(r *http.Request) { r.Header.Set("X-Forwarded-For", "203.0.113.9") }
	for i := 0; i < 3; i++ {
		res, raw := e2.Do(t, "POST", "/accounts-api/login", map[string]string{"email": "x" + string(rune('a'+i)) + "@example.test", "password": "whatever12345"}, ip)
		controltest.Want(t, "spray", res, raw, 401)
	}
	res, raw = e2.Do(t, "POST", "/accounts-api/login", map[string]string{"email": v.Email, "password": v.Password}, ip)
	controltest.Want(t, "sign-in from a throttled address", res, raw, 429)
	res, raw = e2.Do(t, "POST", "/accounts-api/login", map[string]string{"email": v.Email, "password": v.Password}, nil)
	controltest.Want(t, "sign-in from another address", res, raw, 200)
}

func TestSessionFixationAndSignOut(t *testing.T) {
	e := controltest.Start(t, nil)
	u := e.NewUser(t, identity.DefaultOrg, identity.RoleEditor)
	planted := &http.Cookie{Name: authn.CookieName, Value: "mss_planted-by-an-attacker"}
	res, raw := e.Do(t, "POST", "/accounts-api/login", map[string]string{"email": u.Email, "password": u.Password}, withCookie(planted))
	controltest.Want(t, "sign-in with a planted cookie", res, raw, 200)
	fresh := sessionCookie(t, res)
	if fresh.Value == planted.Value {
		t.Fatal("the session kept the id the client chose (fixation)")
	}
	res, raw = e.Do(t, "GET", "/accounts-api/me", nil, withCookie(planted))
	controltest.Want(t, "planted cookie", res, raw, 401)
	// Signing in again rotates: the old session of this browser ends.
	res, _ = e.Do(t, "POST", "/accounts-api/login", map[string]string{"email": u.Email, "password": u.Password}, withCookie(fresh))
	rotated := sessionCookie(t, res)
	res, raw = e.Do(t, "GET", "/accounts-api/me", nil, withCookie(fresh))
	controltest.Want(t, "session before rotation", res, raw, 401)
	// Sign out ends this session only.
	res, raw = u.Do(t, "POST", "/accounts-api/logout", nil)
	controltest.Want(t, "sign out", res, raw, 204)
	res, raw = u.Do(t, "GET", "/accounts-api/me", nil)
	controltest.Want(t, "after sign out", res, raw, 401)
	res, raw = e.Do(t, "GET", "/accounts-api/me", nil, withCookie(rotated))
	controltest.Want(t, "other session", res, raw, 200)
	// Sign out everywhere ends every session and user token.
	res, raw = e.Do(t, "POST", "/accounts-api/logout-all", nil, withCookie(rotated))
	controltest.Want(t, "sign out everywhere", res, raw, 204)
	res, raw = e.Do(t, "GET", "/accounts-api/me", nil, withCookie(rotated))
	controltest.Want(t, "session after sign out everywhere", res, raw, 401)
	res, raw = u.DoToken(t, "GET", "/accounts-api/me", nil)
	controltest.Want(t, "user token after sign out everywhere", res, raw, 401)
	// An expired session is refused.
	v := e.NewUser(t, identity.DefaultOrg, identity.RoleViewer)
	e.DB.Pool.Exec(context.Background(), `UPDATE sessions SET last_seen_at = now() - interval '25 hours' WHERE user_id = $1`, v.ID)
	res, raw = v.Do(t, "GET", "/accounts-api/me", nil)
	controltest.Want(t, "idle session", res, raw, 401)
}

func TestCSRF(t *testing.T) {
	e := controltest.Start(t, nil)
	u := e.NewUser(t, identity.DefaultOrg, identity.RoleAdmin)
	cross := func(r *http.Request) {
		r.AddCookie(u.Cookie)
		r.Header.Set("Sec-Fetch-Site", "cross-site")
		r.Header.Set("Origin", "http://evil.example")
	}
	res, raw := e.Do(t, "POST", "/workspace-api/invites", map[string]string{"email": "x@example.test"}, cross)
	controltest.Want(t, "cross-site invite", res, raw, 403)
	res, raw = e.Do(t, "POST", "/accounts-api/logout-all", nil, cross)
	controltest.Want(t, "cross-site sign out everywhere", res, raw, 403)
	res, raw = e.Do(t, "POST", "/workspace-api/invites", map[string]string{"email": "x@example.test"}, func(r *http.Request) {
		r.AddCookie(u.Cookie)
		r.Header.Set("Origin", "http://evil.example") // an old browser: no Sec-Fetch-Site, Origin ≠ Host
	})
	controltest.Want(t, "cross-origin invite", res, raw, 403)
	res, raw = e.Do(t, "POST", "/workspace-api/invites", map[string]string{"email": "x@example.test"}, func(r *http.Request) {
		r.AddCookie(u.Cookie)
		r.Header.Set("Sec-Fetch-Site", "same-origin")
	})
	controltest.Want(t, "same-origin invite", res, raw, 201)
	var n int
	e.DB.Pool.QueryRow(context.Background(), `SELECT count(*) FROM invites`).Scan(&n)
	if n != 1 {
		t.Errorf("%d invites, want 1 (the refused ones must not be written)", n)
	}
	// Safe methods are not refused; a user token from another origin is not a CSRF vector.
	res, raw = e.Do(t, "GET", "/accounts-api/me", nil, cross)
	controltest.Want(t, "cross-site GET", res, raw, 200)
	res, raw = e.Do(t, "POST", "/workspace-api/invites", map[string]string{"email": "y@example.test"}, func(r *http.Request) {
		r.Header.Set("Authorization", "Bearer "+u.Token)
		r.Header.Set("Sec-Fetch-Site", "cross-site")
	})
	controltest.Want(t, "cross-site with a user token", res, raw, 201)
}

func TestRolesAndOrgIsolation(t *testing.T) {
	e := controltest.Start(t, nil)
	orgB := e.NewOrg(t, "Other Org")
	adminA := e.NewUser(t, identity.DefaultOrg, identity.RoleAdmin)
	editorA := e.NewUser(t, identity.DefaultOrg, identity.RoleEditor)
	viewerA := e.NewUser(t, identity.DefaultOrg, identity.RoleViewer)
	guestA := e.NewUser(t, identity.DefaultOrg, identity.RoleGuest)
	adminB := e.NewUser(t, orgB, identity.RoleAdmin)

	// Role escalation: nobody below admin manages people or the org.
	for _, u := range []*controltest.User{editorA, viewerA, guestA} {
		for _, c := range []struct {
			method, path string
			body         any
		}{
			{"PATCH", "/workspace-api/users/" + u.ID, map[string]string{"role": "admin"}},
			{"POST", "/workspace-api/invites", map[string]string{"email": "z@example.test", "role": "admin"}},
			{"PATCH", "/workspace-api/org", map[string]string{"signupPolicy": "open"}},
			{"GET", "/workspace-api/audit", nil},
			{"DELETE", "/workspace-api/users/" + adminA.ID + "?receiver=" + u.ID, nil},
		} {
			res, raw := u.Do(t, c.method, c.path, c.body)
			controltest.Want(t, string(u.Role)+" "+c.method+" "+c.path, res, raw, 403)
		}
	}
	var role string
	e.DB.Pool.QueryRow(context.Background(), `SELECT role FROM users WHERE id = $1`, viewerA.ID).Scan(&role)
	if role != "viewer" {
		t.Fatalf("viewer escalated to %s", role)
	}
	// Viewers and guests cannot make OAuth clients; editors can.
	res, raw := viewerA.Do(t, "POST", "/workspace-api/oauth-clients", map[string]string{"name": "x"})
	controltest.Want(t, "viewer OAuth client", res, raw, 403)

	// Another org's ids answer 404, and lists show only one's own org.
	res, raw = adminB.Do(t, "PATCH", "/workspace-api/users/"+viewerA.ID, map[string]string{"role": "admin"})
	controltest.Want(t, "cross-org role change", res, raw, 404)
	res, raw = adminB.Do(t, "DELETE", "/workspace-api/users/"+viewerA.ID+"?receiver="+adminB.ID, nil)
	controltest.Want(t, "cross-org removal", res, raw, 404)
	res, raw = adminA.Do(t, "POST", "/workspace-api/invites", map[string]string{"email": "inv@example.test"})
	inv := controltest.Want(t, "invite", res, raw, 201)
	res, raw = adminB.Do(t, "DELETE", "/workspace-api/invites/"+inv["id"].(string), nil)
	controltest.Want(t, "cross-org invite revoke", res, raw, 404)
	res, raw = editorA.Do(t, "POST", "/workspace-api/oauth-clients", map[string]string{"name": "etl"})
	cl := controltest.Want(t, "client", res, raw, 201)
	res, raw = adminB.Do(t, "DELETE", "/workspace-api/oauth-clients/"+cl["client_id"].(string), nil)
	controltest.Want(t, "cross-org client revoke", res, raw, 404)
	res, raw = adminB.Do(t, "GET", "/workspace-api/users", nil)
	users := controltest.Want(t, "list users B", res, raw, 200)["users"].([]any)
	if len(users) != 1 {
		t.Errorf("org B sees %d users, want 1: %s", len(users), raw)
	}
	res, raw = adminB.Do(t, "GET", "/workspace-api/audit", nil)
	if strings.Contains(string(raw), adminA.ID) || strings.Contains(string(raw), "inv@example.test") {
		t.Errorf("org B's audit log shows org A's events: %s", raw)
	}

	// A role change ends the user's sessions; the last admin stays admin.
	res, raw = adminA.Do(t, "PATCH", "/workspace-api/users/"+viewerA.ID, map[string]string{"role": "editor"})
	controltest.Want(t, "promote", res, raw, 200)
	res, raw = viewerA.Do(t, "GET", "/accounts-api/me", nil)
	controltest.Want(t, "session after role change", res, raw, 401)
	res, raw = adminA.Do(t, "PATCH", "/workspace-api/users/"+adminA.ID, map[string]string{"role": "viewer"})
	controltest.Want(t, "demote the last admin", res, raw, 409)

	// Removal hands assets to the receiver.
	e.DB.Pool.Exec(context.Background(), `INSERT INTO jobs (connection_id, query, created_by) SELECT id, 'select 1', $1 FROM connections WHERE name = 'local'`, guestA.ID)
	res, raw = adminA.Do(t, "DELETE", "/workspace-api/users/"+guestA.ID+"?receiver="+viewerA.ID, nil)
	controltest.Want(t, "removal to a viewer receiver... (now editor)", res, raw, 204)
	var owner string
	e.DB.Pool.QueryRow(context.Background(), `SELECT created_by FROM jobs`).Scan(&owner)
	if owner != viewerA.ID {
		t.Errorf("job owner after removal = %q, want the receiver", owner)
	}
	res, raw = adminA.Do(t, "DELETE", "/workspace-api/users/"+editorA.ID+"?receiver="+adminB.ID, nil)
	controltest.Want(t, "receiver in another org", res, raw, 400)
}

func TestOAuthClientCredentials(t *testing.T) {
	e := controltest.Start(t, nil)
	ed := e.NewUser(t, identity.DefaultOrg, identity.RoleEditor)
	res, raw := ed.Do(t, "POST", "/workspace-api/oauth-clients", map[string]string{"name": "nightly etl"})
	cl := controltest.Want(t, "create client", res, raw, 201)
	id, sec := cl["client_id"].(string), cl["client_secret"].(string)
	form := func(body string) func(*http.Request) {
		return func(r *http.Request) { r.Header.Set("Content-Type", "application/x-www-form-urlencoded") }
	}
	res, raw = e.Do(t, "POST", "/accounts-api/oauth/token", "grant_type=client_credentials&client_id="+id+"&client_secret="+sec, form(""))
	tok := controltest.Want(t, "client credentials", res, raw, 200)
	if tok["token_type"] != "Bearer" || tok["expires_in"] != float64(86400) {
		t.Errorf("token answer %s", raw)
	}
	bearer := func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok["access_token"].(string)) }
	res, raw = e.Do(t, "GET", "/accounts-api/me", nil, bearer)
	if m := controltest.Want(t, "me with the client's token", res, raw, 200); m["via"] != "user_token" {
		t.Errorf("me %s", raw)
	}
	res, raw = e.Do(t, "POST", "/accounts-api/oauth/token", "grant_type=client_credentials&client_id="+id+"&client_secret=wrong", form(""))
	if m := decode(t, raw); res.StatusCode != 401 || m["error"] != "invalid_client" {
		t.Errorf("wrong secret: %d %s", res.StatusCode, raw)
	}
	res, raw = e.Do(t, "POST", "/accounts-api/oauth/token", "grant_type=password&username=a&password=b", form(""))
	if m := decode(t, raw); res.StatusCode != 400 || m["error"] != "unsupported_grant_type" {
		t.Errorf("password grant: %d %s", res.StatusCode, raw)
	}
	res, raw = ed.Do(t, "GET", "/workspace-api/oauth-clients", nil)
	if strings.Contains(string(raw), sec) || strings.Contains(string(raw), "argon2") {
		t.Errorf("the client list shows the secret or its hash: %s", raw)
	}
	res, raw = ed.Do(t, "DELETE", "/workspace-api/oauth-clients/"+id, nil)
	controltest.Want(t, "revoke client", res, raw, 204)
	res, raw = e.Do(t, "GET", "/accounts-api/me", nil, bearer)
	controltest.Want(t, "token of a revoked client", res, raw, 401)
	if logs := e.Logs.String(); strings.Contains(logs, sec) || strings.Contains(logs, tok["access_token"].(string)) || strings.Contains(logs, ed.Password) || strings.Contains(logs, ed.Cookie.Value) {
		t.Error("a secret reached the logs")
	}
}

func TestPasswordReset(t *testing.T) {
	smtp := controltest.StartSMTP(t)
	e := controltest.Start(t, func(c *control.Config, _ *control.Deps) { c.Accounts.Mail.SMTPAddr = smtp.Addr })
	u := e.NewUser(t, identity.DefaultOrg, identity.RoleViewer)
	res, raw := e.Do(t, "POST", "/accounts-api/password/forgot", map[string]string{"email": "nobody@example.test"}, nil)
	unknown := string(raw)
	controltest.Want(t, "forgot, unknown", res, raw, 202)
	res, raw = e.Do(t, "POST", "/accounts-api/password/forgot", map[string]string{"email": u.Email}, nil)
	controltest.Want(t, "forgot", res, raw, 202)
	if string(raw) != unknown {
		t.Error("the answer tells whether the account exists")
	}
	m := regexp.MustCompile(`token=(mrs_[A-Za-z0-9_-]+)`).FindStringSubmatch(smtp.Wait(t).Data)
	if m == nil {
		t.Fatal("no reset link in the mail")
	}
	res, raw = e.Do(t, "POST", "/accounts-api/password/reset", map[string]string{"token": m[1], "password": "short"}, nil)
	controltest.Want(t, "weak new password", res, raw, 400)
	res, raw = e.Do(t, "POST", "/accounts-api/password/reset", map[string]string{"token": m[1], "password": "a brand new passphrase"}, nil)
	controltest.Want(t, "reset", res, raw, 200)
	res, raw = u.Do(t, "GET", "/accounts-api/me", nil)
	controltest.Want(t, "old session after reset", res, raw, 401)
	res, raw = e.Do(t, "POST", "/accounts-api/login", map[string]string{"email": u.Email, "password": u.Password}, nil)
	controltest.Want(t, "old password", res, raw, 401)
	res, raw = e.Do(t, "POST", "/accounts-api/login", map[string]string{"email": u.Email, "password": "a brand new passphrase"}, nil)
	controltest.Want(t, "new password", res, raw, 200)
	res, raw = e.Do(t, "POST", "/accounts-api/password/reset", map[string]string{"token": m[1], "password": "another passphrase!"}, nil)
	controltest.Want(t, "reused reset link", res, raw, 410)
}

func TestBadInput(t *testing.T) {
	e := controltest.Start(t, nil)
	admin := e.NewUser(t, identity.DefaultOrg, identity.RoleAdmin)
	for _, c := range []struct {
		name, path, body string
		want             int
		mention          string
	}{
		{"malformed", "/accounts-api/login", `{"email":`, 400, "malformed"},
		{"unknown field", "/accounts-api/login", `{"email":"a@b.c","password":"x","admin":true}`, 400, "admin"},
		{"trailing", "/accounts-api/login", `{"email":"a@b.c","password":"x"} {}`, 400, "trailing"},
		{"empty", "/accounts-api/login", ``, 400, "empty"},
		{"wrong type", "/accounts-api/signup", `{"email":5}`, 400, "email"},
		{"bad email", "/accounts-api/signup", `{"email":"not an email","password":"0123456789ab"}`, 400, "email"},
		{"long name", "/accounts-api/signup", `{"email":"a@example.test","password":"0123456789ab","name":"` + strings.Repeat("n", 201) + `"}`, 400, "name"},
		{"long password", "/accounts-api/signup", `{"email":"a@example.test","password":"` + strings.Repeat("p", 300) + `"}`, 400, "password"},
		{"huge", "/accounts-api/signup", `{"name":"` + strings.Repeat("n", 20<<10) + `"}`, 413, "bytes"},
		{"bad invite", "/accounts-api/signup", `{"email":"a@example.test","password":"0123456789ab","invite":"miv_nope"}`, 410, "invite"},
	} {
		res, raw := e.Do(t, "POST", c.path, c.body, nil)
		m := controltest.Want(t, c.name, res, raw, c.want)
		if msg, _ := m["error"].(string); !strings.Contains(strings.ToLower(msg), c.mention) {
			t.Errorf("%s: error %q does not mention %q", c.name, msg, c.mention)
		}
	}
	res, raw := admin.Do(t, "PATCH", "/workspace-api/users/"+admin.ID, map[string]string{"role": "superuser"})
	controltest.Want(t, "unknown role", res, raw, 400)
	var n int
	e.DB.Pool.QueryRow(context.Background(), `SELECT count(*) FROM users`).Scan(&n)
	if n != 1 {
		t.Errorf("%d users after bad sign-ups, want 1", n)
	}
}

func TestSessionDataToken(t *testing.T) {
	e := controltest.Start(t, nil)
	ed := e.NewUser(t, identity.DefaultOrg, identity.RoleEditor)
	res, raw := ed.Do(t, "POST", "/accounts-api/session/token", nil)
	m := controltest.Want(t, "data token", res, raw, 200)
	tok := m["token"].(string)
	claims, err := e.Tokens.GetByToken(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if claims.Org != identity.DefaultOrg || claims.Owner != ed.ID || len(claims.Grants) != 1 || claims.Grants[0].Connection != "local" || claims.ExpiresAt.IsZero() {
		t.Errorf("data token %+v", claims)
	}
	// Someone else's private connection is not in it; one's own is.
	ed2 := e.NewUser(t, identity.DefaultOrg, identity.RoleEditor)
	if _, err := dataconn.New(e.DB.Pool, e.Keyring).Create(context.Background(), dataconn.Connection{Name: "ed2-only", URL: "postgres://u:p@127.0.0.1:1/x", Owner: ed2.ID, Privacy: "private"}); err != nil {
		t.Fatal(err)
	}
	res, raw = ed.Do(t, "POST", "/accounts-api/session/token", nil)
	if m := controltest.Want(t, "data token", res, raw, 200); strings.Contains(string(raw), "ed2-only") {
		t.Errorf("another user's private connection is in the data token: %v", m["grants"])
	}
	res, raw = ed2.Do(t, "POST", "/accounts-api/session/token", nil)
	if controltest.Want(t, "owner's data token", res, raw, 200); !strings.Contains(string(raw), "ed2-only") {
		t.Errorf("the owner's private connection is not in their data token: %s", raw)
	}
	// Another org's connections are not in it.
	orgB := e.NewOrg(t, "B")
	edB := e.NewUser(t, orgB, identity.RoleEditor)
	res, raw = edB.Do(t, "POST", "/accounts-api/session/token", nil)
	controltest.Want(t, "org without connections", res, raw, 409)
	v := e.NewUser(t, identity.DefaultOrg, identity.RoleViewer)
	res, raw = v.Do(t, "POST", "/accounts-api/session/token", nil)
	controltest.Want(t, "viewer data token", res, raw, 403)
	res, raw = e.Do(t, "POST", "/accounts-api/session/token", nil, nil)
	controltest.Want(t, "anonymous data token", res, raw, 401)
	// An API access token is not a user: it cannot reach the people APIs.
	res, raw = e.Do(t, "GET", "/workspace-api/users", nil, func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) })
	controltest.Want(t, "API token on the workspace API", res, raw, 401)
}

func TestSessionEndpointNeverFails(t *testing.T) {
	e := controltest.Start(t, nil)
	res, raw := e.Do(t, "GET", "/accounts-api/session", nil, nil)
	if m := controltest.Want(t, "anonymous session", res, raw, 200); m["signedIn"] != false || m["user"] != nil {
		t.Errorf("anonymous: %s", raw)
	}
	u := e.NewUser(t, identity.DefaultOrg, identity.RoleViewer)
	res, raw = u.Do(t, "GET", "/accounts-api/session", nil)
	if m := controltest.Want(t, "signed in", res, raw, 200); m["signedIn"] != true {
		t.Errorf("signed in: %s", raw)
	}
}
