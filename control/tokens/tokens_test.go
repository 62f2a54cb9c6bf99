package tokens_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/meridian-gis/meridian/control/controltest"
	"github.com/meridian-gis/meridian/internal/dataconn"
	"github.com/meridian-gis/meridian/internal/identity"
)

func TestTokensAPI(t *testing.T) {
	e := controltest.Start(t, nil)
	ctx := context.Background()
	ed := e.NewUser(t, identity.DefaultOrg, identity.RoleEditor)
	ed2 := e.NewUser(t, identity.DefaultOrg, identity.RoleEditor)
	viewer := e.NewUser(t, identity.DefaultOrg, identity.RoleViewer)
	orgB := e.NewOrg(t, "B")
	edB := e.NewUser(t, orgB, identity.RoleEditor)
	if _, err := dataconn.New(e.DB.Pool, e.Keyring).Create(ctx, dataconn.Connection{Org: orgB, Name: "b-conn", URL: "postgres://u:p@127.0.0.1:1/b"}); err != nil {
		t.Fatal(err)
	}
	if _, err := dataconn.New(e.DB.Pool, e.Keyring).Create(ctx, dataconn.Connection{Name: "ed2-private", URL: "postgres://u:p@127.0.0.1:1/p", Owner: ed2.ID, Privacy: "private"}); err != nil {
		t.Fatal(err)
	}

	body := map[string]any{"name": "stores app", "grants": []map[string]string{{"connection_name": "local", "source": "public.stores"}},
		"referers": []string{"https://app.example.com"}, "allowed_apis": []string{"maps", "sql"}}
	res, raw := ed.DoToken(t, "POST", "/api/v3/tokens", body)
	tok := controltest.Want(t, "create", res, raw, 201)
	for _, k := range []string{"token", "id", "grants", "referers", "allowed_apis", "expiration_date", "created_at", "owner"} {
		if _, ok := tok[k]; !ok {
			t.Errorf("token answer lacks %q: %s", k, raw)
		}
	}
	if tok["owner"] != ed.Email || tok["expiration_date"] != nil || strings.Count(tok["token"].(string), ".") != 2 {
		t.Errorf("token answer %s", raw)
	}
	g := tok["grants"].([]any)[0].(map[string]any)
	if g["connection_name"] != "local" || g["source"] != "public.stores" {
		t.Errorf("grants %v", g)
	}
	str := tok["token"].(string)
	// By string (CARTO) and by id; the owner only.
	for _, ref := range []string{str, tok["id"].(string)} {
		res, raw = ed.Do(t, "GET", "/api/v3/tokens/"+ref, nil)
		controltest.Want(t, "get own", res, raw, 200)
		res, raw = ed2.Do(t, "GET", "/api/v3/tokens/"+ref, nil)
		controltest.Want(t, "another user's token", res, raw, 404)
		res, raw = edB.Do(t, "GET", "/api/v3/tokens/"+ref, nil)
		controltest.Want(t, "another org's token", res, raw, 404)
		res, raw = edB.Do(t, "DELETE", "/api/v3/tokens/"+ref, nil)
		controltest.Want(t, "another org revokes", res, raw, 404)
		res, raw = edB.Do(t, "PATCH", "/api/v3/tokens/"+ref, map[string]any{"name": "x"})
		controltest.Want(t, "another org patches", res, raw, 404)
	}
	// A session's data token is not listed.
	ed.Do(t, "POST", "/accounts-api/session/token", nil)
	res, raw = ed.Do(t, "GET", "/api/v3/tokens", nil)
	if list := controltest.Want(t, "list", res, raw, 200)["tokens"].([]any); len(list) != 1 {
		t.Errorf("list has %d tokens, want 1: %s", len(list), raw)
	}
	res, raw = ed2.Do(t, "GET", "/api/v3/tokens", nil)
	if list := controltest.Want(t, "list of another user", res, raw, 200)["tokens"].([]any); len(list) != 0 {
		t.Errorf("another user sees %d tokens", len(list))
	}

	// The ceiling: nothing beyond what the creator may use.
	for name, grants := range map[string][]map[string]string{
		"another org's connection":     {{"connection_name": "b-conn", "source": "*"}},
		"a missing connection":         {{"connection_name": "nope", "source": "*"}},
		"someone's private connection": {{"connection_name": "ed2-private", "source": "*"}},
	} {
		res, raw = ed.Do(t, "POST", "/api/v3/tokens", map[string]any{"grants": grants, "allowed_apis": []string{"maps"}})
		if m := controltest.Want(t, name, res, raw, 400); !strings.Contains(m["error"].(string), "connection") {
			t.Errorf("%s: %s", name, raw)
		}
	}
	res, raw = ed2.Do(t, "POST", "/api/v3/tokens", map[string]any{"grants": []map[string]string{{"connection_name": "ed2-private", "source": "*"}}, "allowed_apis": []string{"maps"}})
	controltest.Want(t, "owner's private connection", res, raw, 201)
	res, raw = viewer.Do(t, "POST", "/api/v3/tokens", body)
	controltest.Want(t, "viewer creates", res, raw, 403)
	res, raw = e.Do(t, "POST", "/api/v3/tokens", body, func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+str) })
	controltest.Want(t, "an API token creates a token", res, raw, 401)

	// Bad input, nothing written.
	var before int
	e.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM tokens`).Scan(&before)
	for name, b := range map[string]any{
		"unknown api":      map[string]any{"grants": body["grants"], "allowed_apis": []string{"tiles"}},
		"past expiry":      map[string]any{"grants": body["grants"], "allowed_apis": []string{"maps"}, "expiration_date": "2001-01-01T00:00:00Z"},
		"malformed expiry": map[string]any{"grants": body["grants"], "allowed_apis": []string{"maps"}, "expiration_date": "tomorrow"},
		"no grants":        map[string]any{"grants": []any{}, "allowed_apis": []string{"maps"}},
		"no apis":          map[string]any{"grants": body["grants"]},
		"unknown field":    map[string]any{"grants": body["grants"], "allowed_apis": []string{"maps"}, "admin": true},
		"bad referer":      map[string]any{"grants": body["grants"], "allowed_apis": []string{"maps"}, "referers": []string{"not a url at all"}},
		"long name":        map[string]any{"grants": body["grants"], "allowed_apis": []string{"maps"}, "name": strings.Repeat("n", 201)},
	} {
		res, raw = ed.Do(t, "POST", "/api/v3/tokens", b)
		if m := controltest.Want(t, name, res, raw, 400); m["error"] == "" || m["code"] != "BAD_REQUEST" {
			t.Errorf("%s: %s", name, raw)
		}
	}
	var after int
	e.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM tokens`).Scan(&after)
	if after != before {
		t.Errorf("bad requests wrote %d tokens", after-before)
	}

	// PATCH: a name keeps the token; new grants re-issue it and revoke the old.
	res, raw = ed.Do(t, "PATCH", "/api/v3/tokens/"+str, map[string]any{"name": "renamed"})
	if m := controltest.Want(t, "rename", res, raw, 200); m["token"] != str || m["name"] != "renamed" {
		t.Errorf("rename: %s", raw)
	}
	res, raw = ed.Do(t, "PATCH", "/api/v3/tokens/"+str, map[string]any{"grants": []map[string]string{{"connection_name": "local", "source": "public.*"}}})
	nt := controltest.Want(t, "new grants", res, raw, 200)
	if nt["token"] == str || nt["replaces"] != tok["id"] || nt["name"] != "renamed" {
		t.Errorf("re-issue: %s", raw)
	}
	old, err := e.Tokens.GetByToken(ctx, str)
	if err != nil || !old.Revoked() {
		t.Errorf("the replaced token is not revoked: %v %v", old, err)
	}
	res, raw = ed.Do(t, "PATCH", "/api/v3/tokens/"+nt["token"].(string), map[string]any{"expiration_date": "2030-01-01T00:00:00Z"})
	controltest.Want(t, "expiry after creation", res, raw, 400)
	res, raw = ed.Do(t, "PATCH", "/api/v3/tokens/"+nt["token"].(string), map[string]any{"grants": []map[string]string{{"connection_name": "b-conn", "source": "*"}}})
	controltest.Want(t, "patch beyond the ceiling", res, raw, 400)

	// Revoke.
	res, raw = ed.Do(t, "DELETE", "/api/v3/tokens/"+nt["token"].(string), nil)
	controltest.Want(t, "revoke", res, raw, 204)
	res, raw = ed.Do(t, "GET", "/api/v3/tokens/"+nt["id"].(string), nil)
	if m := controltest.Want(t, "get revoked", res, raw, 200); m["revoked_at"] == nil || m["token"] != nil {
		t.Errorf("revoked token: %s", raw)
	}
	var n int
	e.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM broker_messages WHERE topic = 'token-revocations'`).Scan(&n)
	if n < 2 {
		t.Errorf("%d revocations published, want 2 (re-issue and revoke)", n)
	}
	var audited int
	e.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM audit_log WHERE action IN ('token.created', 'token.replaced', 'token.revoked')`).Scan(&audited)
	if audited != 4 {
		t.Errorf("%d token events in the audit log, want 4", audited)
	}
}
