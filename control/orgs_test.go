package control

import (
	"context"
	"net/http"
	"testing"

	"github.com/meridian-gis/meridian/internal/dataconn"
	"github.com/meridian-gis/meridian/internal/grant"
	"github.com/meridian-gis/meridian/internal/tokenstore"
)

// Imports and batch SQL jobs belong to the organization of the token that
// made them: another organization's token, even one granting everything on
// a connection of its own, neither lists nor reads nor cancels them (404,
// never 403: no existence oracle), and cannot use the first org's
// connection by name.
func TestImportsAndJobsAreOrgScoped(t *testing.T) {
	e := startAPI(t, nil)
	ctx := context.Background()
	if _, err := e.db.Pool.Exec(ctx, `INSERT INTO organizations (id, name) VALUES ('org-b', 'B')`); err != nil {
		t.Fatal(err)
	}
	if _, err := dataconn.New(e.db.Pool, e.kr).Create(ctx, dataconn.Connection{Org: "org-b", Name: "b-local", URL: "postgres://u:p@127.0.0.1:1/b"}); err != nil {
		t.Fatal(err)
	}
	apis := []grant.API{grant.APIImports, grant.APISQL}
	mine := e.token(t, apis, grant.Grant{Connection: "local", Source: "*"})
	theirs, _, err := e.tokens.Create(ctx, tokenstore.Spec{Org: "org-b", Owner: "b-user", APIs: apis,
		Grants: []grant.Grant{{Connection: "b-local", Source: "*"}, {Connection: "local", Source: "*"}}})
	if err != nil {
		t.Fatal(err)
	}

	var imp importJSON
	if code, raw := e.postJSON(t, "/api/v3/imports", mine, map[string]any{"connection": "local", "destination": "places", "url": "https://example.com/p.csv"}, &imp); code != 201 {
		t.Fatalf("import: %d %v", code, raw)
	}
	var job jobJSON
	if code, raw := e.postJSON(t, "/api/v3/sql/local/job", mine, map[string]any{"query": "SELECT 1"}, &job); code != 201 {
		t.Fatalf("job: %d %v", code, raw)
	}
	for _, c := range []struct{ method, path string }{
		{"GET", "/api/v3/imports/" + imp.ID},
		{"POST", "/api/v3/imports/" + imp.ID + "/cancel"},
		{"GET", "/api/v3/sql/local/job/" + job.JobID},
		{"DELETE", "/api/v3/sql/local/job/" + job.JobID},
		{"POST", "/api/v3/sql/local/job/" + job.JobID + "/cancel"},
	} {
		if code, raw := e.do(t, c.method, c.path, theirs, "", nil, nil); code != http.StatusNotFound {
			t.Errorf("another org: %s %s = %d %v, want 404", c.method, c.path, code, raw)
		}
	}
	var imports struct{ Imports []importJSON }
	if code, _ := e.do(t, "GET", "/api/v3/imports", theirs, "", nil, &imports); code != 200 || len(imports.Imports) != 0 {
		t.Errorf("another org lists %d imports (status %d), want 0", len(imports.Imports), code)
	}
	var jobs struct{ Jobs []jobJSON }
	if code, _ := e.do(t, "GET", "/api/v3/sql/jobs", theirs, "", nil, &jobs); code != 200 || len(jobs.Jobs) != 0 {
		t.Errorf("another org lists %d jobs (status %d), want 0", len(jobs.Jobs), code)
	}
	// Its token names "local", but "local" is not its organization's connection.
	if code, raw := e.postJSON(t, "/api/v3/imports", theirs, map[string]any{"connection": "local", "destination": "x", "url": "https://example.com/x.csv"}, nil); code != http.StatusNotFound {
		t.Errorf("import into another org's connection = %d %v, want 404", code, raw)
	}
	if code, raw := e.postJSON(t, "/api/v3/sql/local/job", theirs, map[string]any{"query": "SELECT 1"}, nil); code != http.StatusNotFound {
		t.Errorf("job on another org's connection = %d %v, want 404", code, raw)
	}
	// The first org still sees its own.
	if code, _ := e.do(t, "GET", "/api/v3/imports/"+imp.ID, mine, "", nil, nil); code != 200 {
		t.Errorf("own import = %d", code)
	}
}
