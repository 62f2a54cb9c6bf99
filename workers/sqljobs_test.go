package workers

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/meridian-gis/meridian/internal/broker"
	"github.com/meridian-gis/meridian/internal/broker/brokertest"
	"github.com/meridian-gis/meridian/internal/cachetag"
	"github.com/meridian-gis/meridian/internal/jobspec"
)

// Batch SQL jobs: a job that writes commits, invalidates conn:local and
// records its result; a read-only job publishes nothing; parameters are
// bound; SQL errors fail at once with PostgreSQL's message.
func TestSQLJobs(t *testing.T) {
	e := newWorkerEnv(t, nil)
	inv := brokertest.Subscribe(t, e.broker, broker.TopicInvalidations)
	e.start(t)

	read := e.createJob(t, "SELECT count(*) FROM pg_class", 10000)
	s := e.wait(t, "jobs", read, time.Minute)
	var res SQLJobResult
	json.Unmarshal(s.Result, &res)
	if s.Status != jobspec.StatusSuccess || s.Attempts != 1 || res.Wrote || res.Command != "SELECT 1" {
		t.Errorf("read job = %+v %s, want success, wrote false", s, s.Result)
	}
	select {
	case m := <-inv:
		t.Errorf("a read-only job published an invalidation: %s", m.Data)
	case <-time.After(time.Second):
	}

	write := e.createJob(t, `CREATE TABLE public.notes (id int, body text);
		INSERT INTO public.notes SELECT g, 'note ' || g FROM generate_series(1, 5) g`, 10000)
	s = e.wait(t, "jobs", write, time.Minute)
	json.Unmarshal(s.Result, &res)
	if s.Status != jobspec.StatusSuccess || !res.Wrote || res.RowsAffected != 5 {
		t.Errorf("write job = %+v %s, want success, wrote, 5 rows", s, s.Result)
	}
	m := brokertest.Receive(t, inv, 10*time.Second)
	var got cachetag.Invalidation
	json.Unmarshal(m.Data, &got)
	if len(got.Tags) != 1 || got.Tags[0] != cachetag.Conn("local") || !strings.Contains(got.Reason, write) {
		t.Errorf("invalidation = %s, want conn:local for job %s", m.Data, write)
	}
	if n := e.count(t, "SELECT count(*) FROM public.notes"); n != 5 {
		t.Errorf("notes has %d rows, want 5", n)
	}
	if n := e.count(t, "SELECT count(*) FROM public._meridian_jobs WHERE job_id = $1", write); n != 1 {
		t.Errorf("ledger has %d records of the write job, want 1", n)
	}

	// Parameters.
	var id string
	if err := e.meta.Pool.QueryRow(context.Background(), `INSERT INTO jobs (connection_id, query, params)
		SELECT id, 'UPDATE public.notes SET body = $1 WHERE id = $2', '["changed", 3]' FROM connections RETURNING id`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	jobspec.Jobs.Publish(context.Background(), e.broker, id)
	if s := e.wait(t, "jobs", id, time.Minute); s.Status != jobspec.StatusSuccess || e.count(t, "SELECT count(*) FROM public.notes WHERE body = 'changed'") != 1 {
		t.Errorf("job with parameters = %+v, want success updating one row", s)
	}
	brokertest.Receive(t, inv, 10*time.Second)

	// A SQL error fails at once, rolled back.
	bad := e.createJob(t, "INSERT INTO public.notes VALUES (6, 'x'); SELEC 1", 10000)
	s = e.wait(t, "jobs", bad, time.Minute)
	if s.Status != jobspec.StatusFailure || s.Attempts != 1 || !strings.Contains(s.Error, "syntax error") || !strings.Contains(s.Error, "42601") {
		t.Errorf("bad job = %+v, want failure with PostgreSQL's syntax error", s)
	}
	if n := e.count(t, "SELECT count(*) FROM public.notes"); n != 5 {
		t.Errorf("notes has %d rows after the failed job, want 5 (rolled back)", n)
	}
}

// A job over its timeout fails with a clear error; a cancelled job's
// query is cancelled on the server.
func TestSQLJobTimeoutAndCancel(t *testing.T) {
	e := newWorkerEnv(t, nil)
	e.start(t)
	start := time.Now()
	slow := e.createJob(t, "SELECT pg_sleep(30)", 500)
	s := e.wait(t, "jobs", slow, time.Minute)
	if s.Status != jobspec.StatusFailure || s.Attempts != 1 || !strings.Contains(s.Error, "timed out after 500ms") {
		t.Errorf("slow job = %+v, want failure: timed out after 500ms", s)
	}
	t.Logf("timed out job failed %v after creation: %s", time.Since(start).Round(time.Millisecond), s.Error)

	sleeping := func() int64 {
		return e.count(t, "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(60)' AND state = 'active'")
	}
	id := e.createJob(t, "SELECT pg_sleep(60)", 120000)
	e.wait(t, "jobs", id, time.Minute, jobspec.StatusRunning)
	deadline := time.Now().Add(30 * time.Second)
	for sleeping() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the job's query never showed in pg_stat_activity")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancelled := time.Now()
	if _, err := e.meta.Pool.Exec(context.Background(), "UPDATE jobs SET status = 'cancelled' WHERE id = $1", id); err != nil {
		t.Fatal(err)
	}
	for sleeping() > 0 {
		if time.Since(cancelled) > 10*time.Second {
			t.Fatal("pg_sleep still running on the server 10s after the cancel")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("server query stopped %v after the cancel", time.Since(cancelled).Round(time.Millisecond))
	time.Sleep(500 * time.Millisecond)
	if s := e.state(t, "jobs", id); s.Status != jobspec.StatusCancelled || s.Attempts != 1 {
		t.Errorf("cancelled job = %+v, want cancelled after 1 attempt", s)
	}
}

// A job whose transaction committed but whose worker died before
// recording success is not run again: the re-run finds it in the ledger,
// announces the change and succeeds.
func TestSQLJobRunsOnce(t *testing.T) {
	e := newWorkerEnv(t, nil)
	inv := brokertest.Subscribe(t, e.broker, broker.TopicInvalidations)
	ctx := context.Background()
	if _, err := e.data.Pool.Exec(ctx, "CREATE TABLE public.counter (n int); INSERT INTO public.counter VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	e.start(t)
	first := e.createJob(t, "UPDATE public.counter SET n = n + 1", 10000)
	e.wait(t, "jobs", first, time.Minute)
	brokertest.Receive(t, inv, 10*time.Second)
	// Simulate a crash after COMMIT: the ledger has the job, the row says
	// running.
	if _, err := e.meta.Pool.Exec(ctx, "UPDATE jobs SET status = 'running', result = NULL WHERE id = $1", first); err != nil {
		t.Fatal(err)
	}
	jobspec.Jobs.Publish(ctx, e.broker, first)
	s := e.wait(t, "jobs", first, time.Minute, jobspec.StatusSuccess)
	var res SQLJobResult
	json.Unmarshal(s.Result, &res)
	if s.Attempts != 2 || !res.Wrote || res.Command != "UPDATE 1" {
		t.Errorf("re-run = %+v %s, want success from the ledger on attempt 2", s, s.Result)
	}
	if n := e.count(t, "SELECT n FROM public.counter"); n != 2 {
		t.Errorf("counter = %d, want 2 (the update applied once)", n)
	}
	brokertest.Receive(t, inv, 10*time.Second) // announced again
}
