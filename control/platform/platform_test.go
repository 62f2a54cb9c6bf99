package platform_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/meridian-gis/meridian/control/controltest"
	"github.com/meridian-gis/meridian/internal/grant"
	"github.com/meridian-gis/meridian/internal/identity"
	"github.com/meridian-gis/meridian/internal/tokenstore"
)

// Through the real control plane on PostGIS: the first user of a fresh
// install is a platform admin; they create an organization whose invite
// makes its first admin; that admin runs their organization but not the
// install (the admin API is 403/401 to them); the platform admin sets the
// organization's LDS quota, which its tokens then see; platform admin
// rights can be granted, and the last one cannot be revoked.
func TestPlatformAdmin(t *testing.T) {
	e := controltest.Start(t, nil)
	ctx := context.Background()

	res, raw := e.Do(t, "POST", "/accounts-api/signup", map[string]string{"email": "root@example.test", "password": "the install's operator", "name": "Root"}, nil)
	first := controltest.Want(t, "first sign-up", res, raw, http.StatusCreated)
	if first["platformAdmin"] != true || first["role"] != "admin" {
		t.Fatalf("the first user: %s, want a platform admin", raw)
	}
	rootID, rootCookie := first["id"].(string), sessionCookie(t, res)
	rootDo := func(method, path string, body any) (*http.Response, []byte) {
		return e.Do(t, method, path, body, func(r *http.Request) { r.AddCookie(rootCookie) })
	}

	// An organization with an invite for its first admin (no mail
	// server: the link comes back).
	res, raw = rootDo("POST", "/api/admin/orgs", map[string]string{"name": "Acme Mapping", "adminEmail": "boss@acme.test"})
	created := controltest.Want(t, "create org", res, raw, http.StatusCreated)
	org := created["organization"].(map[string]any)
	orgID := org["id"].(string)
	inv, _ := created["invite"].(map[string]any)
	if inv == nil || inv["role"] != "admin" || !strings.Contains(inv["link"].(string), "/acc/invite?token=miv_") {
		t.Fatalf("create org: %s, want an admin invite with its link", raw)
	}
	if res, raw := rootDo("POST", "/api/admin/orgs", map[string]string{"name": "Acme Mapping"}); res.StatusCode != http.StatusConflict {
		t.Errorf("a second organization of the same name: %d %s", res.StatusCode, raw)
	}
	if res, raw := rootDo("POST", "/api/admin/orgs", map[string]string{"name": "  "}); res.StatusCode != http.StatusBadRequest {
		t.Errorf("an organization without a name: %d %s", res.StatusCode, raw)
	}

	// The invitee signs up into Acme as its admin.
	token := inv["link"].(string)[strings.Index(inv["link"].(string), "token=")+len("token="):]
	res, raw = e.Do(t, "POST", "/accounts-api/signup", map[string]string{"email": "boss@acme.test", "password": "runs acme mapping", "invite": token}, nil)
	boss := controltest.Want(t, "the invited admin's sign-up", res, raw, http.StatusCreated)
	if boss["orgId"] != orgID || boss["role"] != "admin" || boss["platformAdmin"] != false {
		t.Fatalf("the invited admin: %s, want admin of %s and not a platform admin", raw, orgID)
	}
	bossCookie := sessionCookie(t, res)
	bossDo := func(method, path string, body any) (*http.Response, []byte) {
		return e.Do(t, method, path, body, func(r *http.Request) { r.AddCookie(bossCookie) })
	}
	if res, raw := bossDo("GET", "/workspace-api/users", nil); res.StatusCode != http.StatusOK || !strings.Contains(string(raw), "boss@acme.test") {
		t.Errorf("the organization's admin lists their users: %d %s", res.StatusCode, raw)
	}
	for _, path := range []string{"/api/admin/orgs", "/api/admin/nodes", "/api/admin/config", "/api/admin/orgs/" + orgID + "/users"} {
		if res, _ := bossDo("GET", path, nil); res.StatusCode != http.StatusUnauthorized && res.StatusCode != http.StatusForbidden {
			t.Errorf("an organization's admin GET %s = %d, want 401/403", path, res.StatusCode)
		}
	}
	if res, raw := bossDo("GET", "/api/admin/session", nil); strings.TrimSpace(string(raw)) != `{"admin":false}` {
		t.Errorf("an organization's admin asks for the console: %d %s", res.StatusCode, raw)
	}
	if res, raw := rootDo("GET", "/api/admin/session", nil); strings.TrimSpace(string(raw)) != `{"admin":true}` {
		t.Errorf("the platform admin asks for the console: %d %s", res.StatusCode, raw)
	}

	// The list shows both organizations with their members and admins.
	res, raw = rootDo("GET", "/api/admin/orgs", nil)
	var list struct {
		Organizations []struct {
			ID     string   `json:"id"`
			Users  int      `json:"users"`
			Admins []string `json:"admins"`
			LDS    []struct {
				Service      string `json:"service"`
				MonthlyQuota int64  `json:"monthlyQuota"`
				Override     bool   `json:"override"`
			} `json:"lds"`
		} `json:"organizations"`
	}
	if err := json.Unmarshal(raw, &list); err != nil || res.StatusCode != 200 || len(list.Organizations) != 2 {
		t.Fatalf("list orgs: %d %s", res.StatusCode, raw)
	}
	acme := list.Organizations[1]
	if acme.ID != orgID || acme.Users != 1 || len(acme.Admins) != 1 || acme.Admins[0] != "boss@acme.test" || len(acme.LDS) != 3 || acme.LDS[0].Override {
		t.Errorf("Acme in the list: %+v", acme)
	}

	// Quotas: set, seen by the organization's tokens, reset.
	acmeTok, _, err := e.Tokens.Create(ctx, tokenstore.Spec{Org: orgID, Owner: boss["id"].(string), APIs: []grant.API{grant.APILDS},
		Grants: []grant.Grant{{Connection: "local", Source: "public.stores"}}})
	if err != nil {
		t.Fatal(err)
	}
	res, raw = rootDo("PUT", "/api/admin/orgs/"+orgID+"/quotas/geocoding", map[string]any{"monthlyQuota": 7})
	controltest.Want(t, "set quota", res, raw, http.StatusOK)
	if q := geocodingQuota(t, e, acmeTok); q != 7 {
		t.Errorf("Acme's geocoding quota after setting it: %d, want 7", q)
	}
	for _, c := range []struct {
		path string
		body any
		want int
	}{
		{"/api/admin/orgs/" + orgID + "/quotas/teleport", map[string]any{"monthlyQuota": 7}, 404},
		{"/api/admin/orgs/" + orgID + "/quotas/geocoding", map[string]any{"monthlyQuota": -1}, 400},
		{"/api/admin/orgs/no-such-org/quotas/geocoding", map[string]any{"monthlyQuota": 7}, 404},
	} {
		if res, raw := rootDo("PUT", c.path, c.body); res.StatusCode != c.want {
			t.Errorf("PUT %s %v = %d %s, want %d", c.path, c.body, res.StatusCode, raw, c.want)
		}
	}
	res, raw = rootDo("DELETE", "/api/admin/orgs/"+orgID+"/quotas/geocoding", nil)
	controltest.Want(t, "reset quota", res, raw, http.StatusOK)
	if q := geocodingQuota(t, e, acmeTok); q == 7 {
		t.Errorf("Acme's geocoding quota after resetting it is still 7")
	}

	// An organization's admin neither demotes nor removes a platform admin
	// of their organization.
	deputy := e.NewUser(t, identity.DefaultOrg, identity.RoleAdmin)
	if res, raw := deputy.Do(t, "PATCH", "/workspace-api/users/"+rootID, map[string]string{"role": "viewer"}); res.StatusCode != http.StatusForbidden {
		t.Errorf("an org admin demotes the platform admin: %d %s, want 403", res.StatusCode, raw)
	}
	if res, raw := deputy.Do(t, "DELETE", "/workspace-api/users/"+rootID+"?receiver="+deputy.ID, nil); res.StatusCode != http.StatusForbidden {
		t.Errorf("an org admin removes the platform admin: %d %s, want 403", res.StatusCode, raw)
	}

	// Platform admins: the last cannot go; a second can be made, and then
	// the first may step down.
	if res, raw := rootDo("PATCH", "/api/admin/users/"+rootID, map[string]any{"platformAdmin": false}); res.StatusCode != http.StatusConflict {
		t.Errorf("revoking the last platform admin: %d %s, want 409", res.StatusCode, raw)
	}
	res, raw = rootDo("PATCH", "/api/admin/users/"+boss["id"].(string), map[string]any{"platformAdmin": true})
	controltest.Want(t, "grant platform admin", res, raw, http.StatusOK)
	if res, raw := bossDo("GET", "/api/admin/orgs", nil); res.StatusCode != http.StatusOK {
		t.Errorf("a new platform admin lists organizations: %d %s", res.StatusCode, raw)
	}
	res, raw = rootDo("PATCH", "/api/admin/users/"+rootID, map[string]any{"platformAdmin": false})
	controltest.Want(t, "the first platform admin steps down", res, raw, http.StatusOK)
	if res, _ := rootDo("GET", "/api/admin/orgs", nil); res.StatusCode != http.StatusForbidden && res.StatusCode != http.StatusUnauthorized {
		t.Errorf("a former platform admin lists organizations: %d", res.StatusCode)
	}

	// Every change is in the audit log of the organization it concerns.
	var n int
	if err := e.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM audit_log WHERE org_id = $1
		AND action IN ('org.created', 'org.quota', 'platform_admin.granted')`, orgID).Scan(&n); err != nil || n != 4 {
		t.Errorf("Acme's audit log has %d platform changes (%v), want 4 (created, quota set, quota reset, granted)", n, err)
	}
}

func sessionCookie(t *testing.T, res *http.Response) *http.Cookie {
	t.Helper()
	for _, c := range res.Cookies() {
		if c.Name == "meridian_session" && c.Value != "" {
			return c
		}
	}
	t.Fatal("no session cookie")
	return nil
}

func geocodingQuota(t *testing.T, e *controltest.Env, tok string) int64 {
	t.Helper()
	res, raw := e.Do(t, "GET", "/api/v3/lds/stats", nil, func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) })
	var stats []struct {
		Service string `json:"service"`
		Quota   int64  `json:"monthly_quota"`
	}
	if err := json.Unmarshal(raw, &stats); err != nil || res.StatusCode != 200 {
		t.Fatalf("lds stats: %d %s", res.StatusCode, raw)
	}
	for _, s := range stats {
		if s.Service == "geocoding" {
			return s.Quota
		}
	}
	t.Fatalf("lds stats without geocoding: %s", raw)
	return 0
}
