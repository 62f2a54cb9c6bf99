package jobs_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/meridian-gis/meridian/control/controltest"
	"github.com/meridian-gis/meridian/control/jobs"
	"github.com/meridian-gis/meridian/internal/grant"
	"github.com/meridian-gis/meridian/internal/jobspec"
)

// Batch SQL jobs belong to the organization of the token that made them:
// another organization's token, even one with a "*" grant naming the first
// org's connection, neither lists, reads (nor reads the result of), nor
// cancels them, through any path: 404 as for a job that does not exist
// (no existence oracle); it cannot run a job on the first org's
// connection. Each org sees its own.
func TestJobsAreOrgScoped(t *testing.T) {
	e := controltest.Start(t, nil)
	orgB := e.NewOrg(t, "B")
	e.NewConnection(t, orgB, "b-local")
	apis := []grant.API{grant.APISQL}
	mine := e.Token(t, apis, grant.Grant{Connection: "local", Source: "*"})
	theirs := e.OrgToken(t, orgB, apis, grant.Grant{Connection: "b-local", Source: "*"}, grant.Grant{Connection: "local", Source: "*"})

	var pending, done, bJob jobs.Job
	if code, raw := e.PostJSON(t, "/api/v3/sql/local/job", mine, map[string]any{"query": "SELECT 1"}, &pending); code != 201 {
		t.Fatalf("job: %d %v", code, raw)
	}
	if code, raw := e.PostJSON(t, "/api/v3/sql/local/job", mine, map[string]any{"query": "UPDATE t SET x = 1"}, &done); code != 201 {
		t.Fatalf("job: %d %v", code, raw)
	}
	// What a worker does: run it and record its result.
	ctx := context.Background()
	if _, ok, err := jobspec.Jobs.Start(ctx, e.DB.Pool, done.JobID); err != nil || !ok {
		t.Fatalf("starting job: %v %v", ok, err)
	}
	if err := jobspec.Jobs.Succeed(ctx, e.DB.Pool, done.JobID, []byte(`{"command":"UPDATE 3","rowsAffected":3}`)); err != nil {
		t.Fatal(err)
	}
	if code, raw := e.PostJSON(t, "/api/v3/sql/b-local/job", theirs, map[string]any{"query": "SELECT 2"}, &bJob); code != 201 {
		t.Fatalf("org B's job: %d %v", code, raw)
	}

	for _, id := range []string{pending.JobID, done.JobID} {
		for _, c := range []struct{ method, path string }{
			{"GET", "/api/v3/sql/local/job/" + id},
			{"GET", "/api/v3/sql/b-local/job/" + id},
			{"DELETE", "/api/v3/sql/local/job/" + id},
			{"POST", "/api/v3/sql/local/job/" + id + "/cancel"},
			{"POST", "/api/v3/sql/b-local/job/" + id + "/cancel"},
		} {
			code, raw := e.Call(t, c.method, c.path, theirs, "", nil, nil)
			if code != http.StatusNotFound || raw["code"] != "NOT_FOUND" || raw["error"] != "job "+id+" not found" {
				t.Errorf("org B: %s %s = %d %v, want 404 as for a missing job", c.method, c.path, code, raw)
			}
			if _, leaked := raw["result"]; leaked {
				t.Errorf("org B: %s %s shows a result: %v", c.method, c.path, raw)
			}
		}
	}
	for _, path := range []string{"/api/v3/sql/jobs", "/api/v3/sql/jobs?status=success", "/api/v3/sql/local/job", "/api/v3/sql/b-local/job"} {
		var list struct{ Jobs []jobs.Job }
		if code, raw := e.Call(t, "GET", path, theirs, "", nil, &list); code != 200 {
			t.Fatalf("org B lists %s: %d %v", path, code, raw)
		}
		for _, j := range list.Jobs {
			if j.JobID != bJob.JobID {
				t.Errorf("org B lists %s: job %s on %s, not its own", path, j.JobID, j.Connection)
			}
		}
	}
	if code, raw := e.PostJSON(t, "/api/v3/sql/local/job", theirs, map[string]any{"query": "SELECT 1"}, nil); code != http.StatusNotFound {
		t.Errorf("org B runs a job on org A's connection = %d %v, want 404", code, raw)
	}

	// The owner reads its finished job's result and cancels the pending
	// one (B's attempts changed nothing); B's job is not A's to see.
	var got jobs.Job
	if code, raw := e.Call(t, "GET", "/api/v3/sql/local/job/"+done.JobID, mine, "", nil, &got); code != 200 || got.Status != jobspec.StatusSuccess || len(got.Result) == 0 {
		t.Errorf("owner reads its finished job = %d %v, want success with its result", code, raw)
	}
	var list struct{ Jobs []jobs.Job }
	if code, _ := e.Call(t, "GET", "/api/v3/sql/jobs", mine, "", nil, &list); code != 200 || len(list.Jobs) != 2 {
		t.Errorf("owner lists %d jobs (status %d), want its 2", len(list.Jobs), code)
	}
	if code, raw := e.Call(t, "DELETE", "/api/v3/sql/local/job/"+pending.JobID, mine, "", nil, &got); code != 200 || got.Status != jobspec.StatusCancelled {
		t.Errorf("owner cancels its job = %d %v, want 200 cancelled", code, raw)
	}
	if code, raw := e.Call(t, "GET", "/api/v3/sql/b-local/job/"+bJob.JobID, mine, "", nil, nil); code == http.StatusOK {
		t.Errorf("org A reads org B's job = %d %v, want a refusal", code, raw)
	}
}
