package admin_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/meridian-gis/meridian/control/controltest"
	"github.com/meridian-gis/meridian/internal/identity"
)

// Through the real control plane: a platform admin (session or user
// token) may use the admin API; an editor may not, nor an organization's
// admin who does not administer the platform; a purge is in the admin's
// organization's audit log under their name.
func TestAdminRoleThroughControl(t *testing.T) {
	e := controltest.Start(t, nil)
	org := e.NewOrg(t, "ops")
	adm := e.NewPlatformAdmin(t, org)
	ed := e.NewUser(t, org, identity.RoleEditor)
	orgAdmin := e.NewUser(t, org, identity.RoleAdmin)

	if res, body := adm.Do(t, "GET", "/api/admin/nodes", nil); res.StatusCode != http.StatusOK {
		t.Errorf("admin (session) GET /api/admin/nodes = %d %s", res.StatusCode, body)
	}
	if res, body := adm.DoToken(t, "GET", "/api/admin/config", nil); res.StatusCode != http.StatusOK {
		t.Errorf("admin (user token) GET /api/admin/config = %d %s", res.StatusCode, body)
	}
	for _, do := range []func(testing.TB, string, string, any) (*http.Response, []byte){ed.Do, ed.DoToken, orgAdmin.Do, orgAdmin.DoToken} {
		if res, _ := do(t, "GET", "/api/admin/nodes", nil); res.StatusCode != http.StatusUnauthorized && res.StatusCode != http.StatusForbidden {
			t.Errorf("editor or organization admin GET /api/admin/nodes = %d, want 401/403", res.StatusCode)
		}
	}
	for _, tc := range []struct {
		do   func(testing.TB, string, string, any) (*http.Response, []byte)
		want string
	}{{adm.Do, `{"admin":true}`}, {ed.Do, `{"admin":false}`}, {orgAdmin.Do, `{"admin":false}`}} {
		if res, body := tc.do(t, "GET", "/api/admin/session", nil); res.StatusCode != 200 || strings.TrimSpace(string(body)) != tc.want {
			t.Errorf("GET /api/admin/session = %d %s, want 200 %s", res.StatusCode, body, tc.want)
		}
	}
	if res, body := adm.Do(t, "POST", "/api/admin/purge", map[string]any{"tags": []string{"conn:local"}}); res.StatusCode != http.StatusAccepted {
		t.Fatalf("admin purge = %d %s", res.StatusCode, body)
	}
	var actor, target string
	if err := e.DB.Pool.QueryRow(context.Background(),
		`SELECT actor_id, target FROM audit_log WHERE org_id = $1 AND action = 'admin.purge'`, org).Scan(&actor, &target); err != nil {
		t.Fatalf("no admin.purge in the organization's audit log: %v", err)
	}
	if actor != adm.ID || target != "conn:local" {
		t.Errorf("audit admin.purge by %q on %q, want %q on conn:local", actor, target, adm.ID)
	}
}
