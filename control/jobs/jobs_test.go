package jobs_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/meridian-gis/meridian/control"
	"github.com/meridian-gis/meridian/control/controltest"
	"github.com/meridian-gis/meridian/control/jobs"
	"github.com/meridian-gis/meridian/internal/broker/brokertest"
	"github.com/meridian-gis/meridian/internal/config"

	"github.com/meridian-gis/meridian/internal/broker"
	"github.com/meridian-gis/meridian/internal/grant"
)

var sqlAll = []grant.API{grant.APISQL}

// Batch SQL jobs need the sql API and a "*" grant on the connection; a
// created job is pending, published on sql-jobs, visible, listable and
// cancellable (DELETE or POST …/cancel), and a finished one is 409.
func TestJobsAPI(t *testing.T) {
	e := controltest.Start(t, func(c *control.Config, _ *control.Deps) { c.Jobs.MaxSQLTimeout = config.Duration(time.Minute) })
	msgs := brokertest.Subscribe(t, e.Broker, broker.TopicSQLJobs)
	star := e.Token(t, sqlAll, grant.Grant{Connection: "local", Source: "*"})
	table := e.Token(t, sqlAll, grant.Grant{Connection: "local", Source: "public.places"})
	noAPI := e.Token(t, []grant.API{grant.APIMaps}, grant.Grant{Connection: "local", Source: "*"})
	const path = "/api/v3/sql/local/job"
	q := map[string]any{"query": "UPDATE places SET name = upper(name)"}

	for _, tt := range []struct {
		name, token string
		want        int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"maps only", noAPI, http.StatusForbidden},
		{"table grant", table, http.StatusForbidden},
	} {
		if code, body := e.PostJSON(t, path, tt.token, q, nil); code != tt.want {
			t.Errorf("%s: create = %d %v, want %d", tt.name, code, body, tt.want)
		}
		if code, _ := e.Call(t, "GET", path, tt.token, "", nil, nil); code != tt.want {
			t.Errorf("%s: list = %d, want %d", tt.name, code, tt.want)
		}
	}
	for _, bad := range []struct {
		req  map[string]any
		want string
	}{
		{map[string]any{"query": "  "}, "query is required"},
		{map[string]any{"query": "SELECT 1", "timeout_ms": 120000}, "timeout_ms"},
		{map[string]any{"query": "SELECT 1", "timeout_ms": -1}, "timeout_ms"},
	} {
		if code, body := e.PostJSON(t, path, star, bad.req, nil); code != 400 || !strings.Contains(body["error"].(string), bad.want) {
			t.Errorf("create %v = %d %v, want 400 about %s", bad.req, code, body, bad.want)
		}
	}

	var job jobs.Job
	code, body := e.PostJSON(t, path, star, map[string]any{"query": "SELECT $1::int", "timeout_ms": 5000, "queryParameters": []any{7}}, &job)
	if code != http.StatusCreated || job.Status != "pending" || job.JobID == "" || job.ExternalID != job.JobID || job.TimeoutMS != 5000 {
		t.Fatalf("create = %d %v, want 201 pending with jobId", code, body)
	}
	if m := brokertest.Receive(t, msgs, 10*time.Second); string(m.Data) != `{"id":"`+job.JobID+`"}` {
		t.Errorf("message = %s, want the job's id", m.Data)
	}
	var params string
	e.DB.Pool.QueryRow(context.Background(), "SELECT params::text FROM jobs WHERE id = $1", job.JobID).Scan(&params)
	if params != "[7]" {
		t.Errorf("stored params = %q, want [7]", params)
	}
	var def jobs.Job
	e.PostJSON(t, path, star, q, &def)
	if def.TimeoutMS != 60000 {
		t.Errorf("default timeout = %d ms, want min(1h, MaxSQLTimeout) = 60000", def.TimeoutMS)
	}

	var got jobs.Job
	if code, _ := e.Call(t, "GET", path+"/"+job.JobID, star, "", nil, &got); code != 200 || got.JobID != job.JobID || got.Query != "SELECT $1::int" {
		t.Errorf("GET = %d %+v, want the job", code, got)
	}
	if code, _ := e.Call(t, "GET", "/api/v3/sql/other/job/"+job.JobID, e.Token(t, sqlAll, grant.Grant{Connection: "other", Source: "*"}), "", nil, nil); code != 404 {
		t.Errorf("GET through another connection = %d, want 404", code)
	}
	var list struct{ Jobs []jobs.Job }
	if code, _ := e.Call(t, "GET", "/api/v3/sql/jobs", star, "", nil, &list); code != 200 || len(list.Jobs) != 2 || list.Jobs[0].JobID != def.JobID {
		t.Errorf("list all = %d %d jobs, want 2 newest first", code, len(list.Jobs))
	}
	if code, _ := e.Call(t, "GET", "/api/v3/sql/jobs", table, "", nil, &list); code != 200 || len(list.Jobs) != 0 {
		t.Errorf("list all with a table grant = %d %d jobs, want none", code, len(list.Jobs))
	}

	if code, body := e.Call(t, "DELETE", path+"/"+job.JobID, star, "", nil, &got); code != 200 || got.Status != "cancelled" {
		t.Errorf("DELETE = %d %v, want 200 cancelled", code, body)
	}
	if code, _ := e.Call(t, "POST", path+"/"+job.JobID+"/cancel", star, "", nil, nil); code != http.StatusConflict {
		t.Errorf("cancel of a cancelled job = %d, want 409", code)
	}
	if code, _ := e.Call(t, "POST", path+"/"+def.JobID+"/cancel", star, "", nil, &got); code != 200 || got.Status != "cancelled" || got.Error == "" {
		t.Errorf("POST cancel = %d %+v, want cancelled with its reason", code, got)
	}
}
