package imports_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/meridian-gis/meridian/control/controltest"
	"github.com/meridian-gis/meridian/control/imports"
	"github.com/meridian-gis/meridian/internal/grant"
	"github.com/meridian-gis/meridian/internal/jobspec"
)

// Imports belong to the organization of the token that made them: another
// organization's token, even one whose grants name the first org's
// connection, neither lists, reads (nor reads the result of), nor cancels
// them: 404 as for an id that does not exist (no existence oracle), and it
// cannot import into the first org's connection. Each org sees its own.
func TestImportsAreOrgScoped(t *testing.T) {
	e := controltest.Start(t, nil)
	orgB := e.NewOrg(t, "B")
	e.NewConnection(t, orgB, "b-local")
	apis := []grant.API{grant.APIImports}
	mine := e.Token(t, apis, grant.Grant{Connection: "local", Source: "*"})
	theirs := e.OrgToken(t, orgB, apis, grant.Grant{Connection: "b-local", Source: "*"}, grant.Grant{Connection: "local", Source: "*"})

	// Org A: a pending URL import, an upload, and one a worker finished.
	var pending, upload, done imports.Import
	if code, raw := e.PostJSON(t, "/api/v3/imports", mine, map[string]any{"connection": "local", "destination": "places", "url": "https://example.com/p.csv"}, &pending); code != 201 {
		t.Fatalf("import: %d %v", code, raw)
	}
	ct, body := controltest.Multipart(t, [][2]string{{"connection", "local"}, {"destination", "uploaded"}}, "u.csv", []byte("a,b\n1,2\n"))
	if code, raw := e.Call(t, "POST", "/api/v3/imports", mine, ct, body, &upload); code != 201 {
		t.Fatalf("upload: %d %v", code, raw)
	}
	if code, raw := e.PostJSON(t, "/api/v3/imports", mine, map[string]any{"connection": "local", "destination": "done", "url": "https://example.com/d.csv"}, &done); code != 201 {
		t.Fatalf("import: %d %v", code, raw)
	}
	finish(t, e, done.ID, `{"table":"public.done","rows":1}`)

	// Org B: its own import on its own connection.
	var bImport imports.Import
	if code, raw := e.PostJSON(t, "/api/v3/imports", theirs, map[string]any{"connection": "b-local", "destination": "b", "url": "https://example.com/b.csv"}, &bImport); code != 201 {
		t.Fatalf("org B's import: %d %v", code, raw)
	}

	for _, id := range []string{pending.ID, upload.ID, done.ID} {
		for _, c := range []struct{ method, path string }{
			{"GET", "/api/v3/imports/" + id},
			{"POST", "/api/v3/imports/" + id + "/cancel"},
		} {
			code, raw := e.Call(t, c.method, c.path, theirs, "", nil, nil)
			if code != http.StatusNotFound || raw["code"] != "NOT_FOUND" || raw["error"] != "import "+id+" not found" {
				t.Errorf("org B: %s %s = %d %v, want 404 as for a missing import", c.method, c.path, code, raw)
			}
			if _, leaked := raw["result"]; leaked {
				t.Errorf("org B: %s %s shows a result: %v", c.method, c.path, raw)
			}
		}
	}
	// Nothing of A's in B's lists, whatever the filter.
	for _, q := range []string{"", "?connection=local", "?status=pending", "?status=success", "?limit=500"} {
		var list struct{ Imports []imports.Import }
		if code, raw := e.Call(t, "GET", "/api/v3/imports"+q, theirs, "", nil, &list); code != 200 {
			t.Fatalf("org B lists: %d %v", code, raw)
		}
		for _, im := range list.Imports {
			if im.ID != bImport.ID {
				t.Errorf("org B lists %s: %s (%s), not its own", q, im.ID, im.Connection)
			}
		}
	}
	// B's token names "local", but "local" is not its organization's connection.
	if code, raw := e.PostJSON(t, "/api/v3/imports", theirs, map[string]any{"connection": "local", "destination": "x", "url": "https://example.com/x.csv"}, nil); code != http.StatusNotFound {
		t.Errorf("org B imports into org A's connection = %d %v, want 404", code, raw)
	}
	ct, body = controltest.Multipart(t, [][2]string{{"connection", "local"}, {"destination", "x"}}, "x.csv", []byte("a\n1\n"))
	if code, raw := e.Call(t, "POST", "/api/v3/imports", theirs, ct, body, nil); code != http.StatusNotFound {
		t.Errorf("org B uploads into org A's connection = %d %v, want 404", code, raw)
	}

	// The cancel attempts changed nothing; the owner still sees, reads
	// and cancels its own, and does not see B's.
	var got imports.Import
	if code, raw := e.Call(t, "GET", "/api/v3/imports/"+done.ID, mine, "", nil, &got); code != 200 || got.Status != jobspec.StatusSuccess || string(got.Result) != `{"rows":1,"table":"public.done"}` {
		t.Errorf("owner reads its finished import = %d %v, want success with its result", code, raw)
	}
	var list struct{ Imports []imports.Import }
	if code, _ := e.Call(t, "GET", "/api/v3/imports", mine, "", nil, &list); code != 200 || len(list.Imports) != 3 {
		t.Errorf("owner lists %d imports (status %d), want its 3", len(list.Imports), code)
	}
	if code, raw := e.Call(t, "GET", "/api/v3/imports/"+bImport.ID, mine, "", nil, nil); code != http.StatusNotFound {
		t.Errorf("org A reads org B's import = %d %v, want 404", code, raw)
	}
	for _, id := range []string{pending.ID, upload.ID} {
		if code, raw := e.Call(t, "POST", "/api/v3/imports/"+id+"/cancel", mine, "", nil, &got); code != 200 || got.Status != jobspec.StatusCancelled {
			t.Errorf("owner cancels %s = %d %v, want 200 cancelled", id, code, raw)
		}
	}
}

// finish does what a worker does with import id: runs it and records
// its result.
func finish(t *testing.T, e *controltest.Env, id, result string) {
	t.Helper()
	ctx := context.Background()
	if _, ok, err := jobspec.Imports.Start(ctx, e.DB.Pool, id); err != nil || !ok {
		t.Fatalf("starting import %s: %v %v", id, ok, err)
	}
	if err := jobspec.Imports.Succeed(ctx, e.DB.Pool, id, []byte(result)); err != nil {
		t.Fatal(err)
	}
}
