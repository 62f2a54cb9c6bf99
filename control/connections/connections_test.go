package connections_test

import (
	"context"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meridian-gis/meridian/control/controltest"
	"github.com/meridian-gis/meridian/internal/identity"
	"github.com/meridian-gis/meridian/internal/pgdb/pgtest"
)

func TestConnectionsAPI(t *testing.T) {
	data := pgtest.Data(t)
	e := controltest.Start(t, nil)
	ctx := context.Background()
	ed := e.NewUser(t, identity.DefaultOrg, identity.RoleEditor)
	ed2 := e.NewUser(t, identity.DefaultOrg, identity.RoleEditor)
	admin := e.NewUser(t, identity.DefaultOrg, identity.RoleAdmin)
	viewer := e.NewUser(t, identity.DefaultOrg, identity.RoleViewer)
	orgB := e.NewOrg(t, "B")
	adminB := e.NewUser(t, orgB, identity.RoleAdmin)
	u, _ := url.Parse(data.URL)
	password, _ := u.User.Password()
	if password == "" {
		// Give the test a password to hunt for in answers and logs.
		// Roles belong to the cluster: one per run, dropped after it.
		password = "s3cret-Pa55word"
		role := "conn_tester_" + strconv.FormatInt(time.Now().UnixNano(), 36)
		if _, err := data.Pool.Exec(ctx, `CREATE ROLE `+role+` LOGIN SUPERUSER PASSWORD '`+password+`'`); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			// Best effort: a role that still owns objects stays (its
			// name is unique).
			data.Pool.Exec(context.Background(), "DROP ROLE IF EXISTS "+role)
		})
		u.User = url.UserPassword(role, password)
	}

	res, raw := ed.Do(t, "POST", "/api/v3/connections", map[string]any{"name": "warehouse", "provider_id": "postgres", "privacy": "private",
		"credentials": map[string]any{"url": u.String()}})
	c := controltest.Want(t, "create", res, raw, 201)
	id := c["id"].(string)
	if c["privacy"] != "private" || c["owner"] != ed.ID || c["can_edit"] != true {
		t.Errorf("created %s", raw)
	}
	res, raw = ed.Do(t, "POST", "/api/v3/connections/"+id+"/test", nil)
	if m := controltest.Want(t, "test", res, raw, 200); m["ok"] != true || m["postgis"] == "" {
		t.Errorf("test: %s", raw)
	}
	// Private: invisible to others, even in the same org.
	res, raw = ed2.Do(t, "GET", "/api/v3/connections/"+id, nil)
	controltest.Want(t, "someone's private connection", res, raw, 404)
	res, raw = ed2.Do(t, "GET", "/api/v3/connections", nil)
	if strings.Contains(string(raw), id) {
		t.Error("a private connection is listed to another user")
	}
	// Shared: visible, but only its owner or an admin edits.
	res, raw = ed.Do(t, "PATCH", "/api/v3/connections/"+id, map[string]any{"privacy": "shared"})
	controltest.Want(t, "share", res, raw, 200)
	res, raw = viewer.Do(t, "GET", "/api/v3/connections/"+id, nil)
	if m := controltest.Want(t, "viewer reads a shared connection", res, raw, 200); m["can_edit"] != false {
		t.Errorf("viewer can_edit: %s", raw)
	}
	res, raw = ed2.Do(t, "PATCH", "/api/v3/connections/"+id, map[string]any{"privacy": "private"})
	controltest.Want(t, "non-owner edits", res, raw, 403)
	res, raw = viewer.Do(t, "POST", "/api/v3/connections", map[string]any{"name": "v", "credentials": map[string]any{"url": u.String()}})
	controltest.Want(t, "viewer creates", res, raw, 403)
	res, raw = admin.Do(t, "PATCH", "/api/v3/connections/"+id, map[string]any{"name": "renamed"})
	controltest.Want(t, "rename", res, raw, 400)
	// PATCH without credentials keeps them.
	res, raw = admin.Do(t, "PATCH", "/api/v3/connections/"+id, map[string]any{"privacy": "shared"})
	controltest.Want(t, "admin edits", res, raw, 200)
	res, raw = ed2.Do(t, "POST", "/api/v3/connections/"+id+"/test", nil)
	if m := controltest.Want(t, "test after patch", res, raw, 200); m["ok"] != true {
		t.Errorf("credentials lost by a PATCH without them: %s", raw)
	}
	// Another org: 404 everywhere.
	for _, c := range []struct{ m, p string }{{"GET", ""}, {"PATCH", ""}, {"DELETE", ""}, {"POST", "/test"}} {
		res, raw = adminB.Do(t, c.m, "/api/v3/connections/"+id+c.p, map[string]any{"privacy": "private"})
		controltest.Want(t, "another org "+c.m, res, raw, 404)
	}
	res, raw = adminB.Do(t, "GET", "/api/v3/connections", nil)
	if strings.Contains(string(raw), "warehouse") {
		t.Error("another org lists the connection")
	}
	// In use by a token: 409; after its revocation: deleted.
	res, raw = ed2.Do(t, "POST", "/api/v3/tokens", map[string]any{"grants": []map[string]string{{"connection_name": "warehouse", "source": "*"}}, "allowed_apis": []string{"sql"}})
	tok := controltest.Want(t, "token on it", res, raw, 201)
	res, raw = ed.Do(t, "DELETE", "/api/v3/connections/"+id, nil)
	if m := controltest.Want(t, "delete in use", res, raw, 409); !strings.Contains(m["error"].(string), "token") {
		t.Errorf("409 message: %s", raw)
	}
	ed2.Do(t, "DELETE", "/api/v3/tokens/"+tok["id"].(string), nil)
	res, raw = ed.Do(t, "DELETE", "/api/v3/connections/"+id, nil)
	controltest.Want(t, "delete", res, raw, 204)

	// Bad credentials: a clear answer that never shows the password.
	bad := *u
	bad.Path = "/no_such_database" // the test cluster trusts loopback: a wrong password would pass
	res, raw = ed.Do(t, "POST", "/api/v3/connections/test", map[string]any{"credentials": map[string]any{"url": bad.String()}})
	if m := controltest.Want(t, "test bad credentials", res, raw, 200); m["ok"] != false || !strings.Contains(m["error"].(string), "no_such_database") || strings.Contains(string(raw), password) {
		t.Errorf("bad credentials: %s", raw)
	}
	res, raw = ed.Do(t, "POST", "/api/v3/connections", map[string]any{"name": "bad name!", "credentials": map[string]any{"url": u.String()}})
	controltest.Want(t, "bad name", res, raw, 400)
	res, raw = ed.Do(t, "POST", "/api/v3/connections", map[string]any{"name": "x", "credentials": map[string]any{"url": "mysql://h/db"}})
	controltest.Want(t, "bad scheme", res, raw, 400)
	res, raw = ed.Do(t, "POST", "/api/v3/connections", map[string]any{"name": "parts", "credentials": map[string]any{
		"host": u.Hostname(), "port": mustPort(t, u), "database": strings.TrimPrefix(u.Path, "/"), "username": u.User.Username(), "password": password}})
	parts := controltest.Want(t, "create from parts", res, raw, 201)
	res, raw = ed.Do(t, "POST", "/api/v3/connections/"+parts["id"].(string)+"/test", nil)
	if m := controltest.Want(t, "test parts", res, raw, 200); m["ok"] != true {
		t.Errorf("parts: %s", raw)
	}
	res, raw = ed.Do(t, "POST", "/api/v3/connections", map[string]any{"name": "parts", "credentials": map[string]any{"url": u.String()}})
	controltest.Want(t, "duplicate name", res, raw, 409)

	// The password is in no answer and no log line.
	res, raw = admin.Do(t, "GET", "/api/v3/connections", nil)
	if strings.Contains(string(raw), password) {
		t.Error("a connection list shows the password")
	}
	if strings.Contains(e.Logs.String(), password) {
		t.Error("the password reached the logs")
	}
	var enc []byte
	e.DB.Pool.QueryRow(ctx, `SELECT config_enc FROM connections WHERE name = 'parts'`).Scan(&enc)
	if strings.Contains(string(enc), password) {
		t.Error("credentials stored in clear")
	}
}

func mustPort(t *testing.T, u *url.URL) int {
	var p int
	for _, c := range u.Port() {
		p = p*10 + int(c-'0')
	}
	if p == 0 {
		p = 5432
	}
	return p
}
