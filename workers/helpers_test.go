package workers

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/meridian-gis/meridian/internal/broker"
	"github.com/meridian-gis/meridian/internal/broker/pgbroker"
	"github.com/meridian-gis/meridian/internal/config"
	"github.com/meridian-gis/meridian/internal/dataconn"
	"github.com/meridian-gis/meridian/internal/jobspec"
	"github.com/meridian-gis/meridian/internal/pgdb/pgtest"
	"github.com/meridian-gis/meridian/internal/secret"
)

// syncBuffer collects logs for t.Log on failure.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// workerEnv is a metadata database, a PostGIS data database registered
// as connection "local", a postgres broker and the job handlers.
type workerEnv struct {
	meta, data *pgtest.DB
	key        string
	broker     *pgbroker.Broker
	store      *dataconn.Store
	cfg        JobsConfig
	jobs       *Jobs
	log        *slog.Logger
}

// testJobsConfig is quick to react: short polls, leases and sweeps.
func testJobsConfig(t *testing.T) JobsConfig {
	return JobsConfig{
		Config:         jobspec.Config{ImportDir: t.TempDir(), AllowPrivate: true},
		AckDeadline:    config.Duration(3 * time.Second),
		PollInterval:   config.Duration(100 * time.Millisecond),
		SweepInterval:  config.Duration(time.Hour), // tests call Sweep
		RepublishAfter: config.Duration(time.Hour),
		StaleAfter:     config.Duration(time.Hour),
	}
}

func newWorkerEnv(t *testing.T, mod func(*JobsConfig)) *workerEnv {
	t.Helper()
	e := &workerEnv{meta: pgtest.Meta(t), data: pgtest.Data(t), key: secret.GenerateKey(), cfg: testJobsConfig(t)}
	if mod != nil {
		mod(&e.cfg)
	}
	logs := &syncBuffer{}
	e.log = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	t.Cleanup(func() {
		if t.Failed() {
			s := logs.String()
			if len(s) > 20000 {
				s = s[len(s)-20000:]
			}
			t.Logf("worker logs:\n%s", s)
		}
	})
	kr, err := secret.ParseKeyring(e.key)
	if err != nil {
		t.Fatal(err)
	}
	e.store = dataconn.New(e.meta.Pool, kr)
	if _, err := e.store.Create(context.Background(), dataconn.Connection{Name: "local", Kind: "postgres", URL: e.data.URL}); err != nil {
		t.Fatal(err)
	}
	e.broker = pgbroker.New(e.meta.Pool, pgbroker.Config{PollInterval: config.Duration(200 * time.Millisecond)}, e.log)
	t.Cleanup(func() { e.broker.Close() })
	pools := dataconn.NewPools(e.store, WritablePools(), e.log)
	t.Cleanup(pools.Close)
	e.jobs, err = NewJobs(e.cfg, JobDeps{Log: e.log, Meta: e.meta.Pool, Broker: e.broker, Conns: pools})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.jobs.EnsureSubscriptions(context.Background()); err != nil {
		t.Fatal(err)
	}
	return e
}

// start runs a worker (Runner with the handlers) until the test ends.
func (e *workerEnv) start(t *testing.T) {
	t.Helper()
	r, err := New(Config{Addr: freeAddr(t), DrainTimeout: config.Duration(5 * time.Second)}, Deps{Log: e.log, Broker: e.broker})
	if err != nil {
		t.Fatal(err)
	}
	for _, topic := range []string{broker.TopicImports, broker.TopicSQLJobs, broker.TopicWorkspaceEvents} {
		h := map[string]broker.Handler{broker.TopicImports: e.jobs.Imports.Handle, broker.TopicSQLJobs: e.jobs.SQL.Handle,
			broker.TopicWorkspaceEvents: e.jobs.Events.Handle}[topic]
		r.Handle(topic, e.jobs.Subscription(topic), h)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("worker Run = %v", err)
		}
	})
}

// upload copies a file into the import folder, as the control plane
// stores uploads, and returns its path.
func (e *workerEnv) upload(t *testing.T, src string) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(e.cfg.ImportDir, newTestID()+".upload")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

type importSpec struct {
	dest, filePath, filename, url string
	opts                          ImportOptions
}

// createImport inserts a pending import (as the control plane does) and
// publishes its message.
func (e *workerEnv) createImport(t *testing.T, s importSpec) string {
	t.Helper()
	ctx := context.Background()
	opts, _ := json.Marshal(s.opts)
	var id string
	err := e.meta.Pool.QueryRow(ctx, `INSERT INTO imports (connection_id, destination, source_url, file_path, filename, options)
		SELECT id, $1, nullif($2, ''), nullif($3, ''), nullif($4, ''), $5 FROM connections WHERE name = 'local' RETURNING id`,
		s.dest, s.url, s.filePath, s.filename, opts).Scan(&id)
	if err != nil {
		t.Fatal(err)
	}
	if err := jobspec.Imports.Publish(ctx, e.broker, id); err != nil {
		t.Fatal(err)
	}
	return id
}

// createJob inserts a pending SQL job and publishes its message.
func (e *workerEnv) createJob(t *testing.T, query string, timeoutMS int) string {
	t.Helper()
	ctx := context.Background()
	var id string
	err := e.meta.Pool.QueryRow(ctx, `INSERT INTO jobs (connection_id, query, timeout_ms)
		SELECT id, $1, $2 FROM connections WHERE name = 'local' RETURNING id`, query, timeoutMS).Scan(&id)
	if err != nil {
		t.Fatal(err)
	}
	if err := jobspec.Jobs.Publish(ctx, e.broker, id); err != nil {
		t.Fatal(err)
	}
	return id
}

// jobState is a row of imports or jobs as the tests read it.
type jobState struct {
	Status   string
	Attempts int
	Error    string
	Rows     int64
	Phase    string
	Result   []byte
}

func (e *workerEnv) state(t *testing.T, table, id string) jobState {
	t.Helper()
	var s jobState
	q := `SELECT status, attempts, coalesce(error, ''), rows_done, coalesce(phase, ''), result FROM imports WHERE id = $1`
	if table == "jobs" {
		q = `SELECT status, attempts, coalesce(error, ''), 0::bigint, '', result FROM jobs WHERE id = $1`
	}
	if err := e.meta.Pool.QueryRow(context.Background(), q, id).Scan(&s.Status, &s.Attempts, &s.Error, &s.Rows, &s.Phase, &s.Result); err != nil {
		t.Fatal(err)
	}
	return s
}

// wait polls until the row's status is final (or one of want), within
// limit.
func (e *workerEnv) wait(t *testing.T, table, id string, limit time.Duration, want ...string) jobState {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		s := e.state(t, table, id)
		for _, w := range want {
			if s.Status == w {
				return s
			}
		}
		if len(want) == 0 && jobspec.Terminal(s.Status) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s %s still %+v after %v", table, id, s, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (e *workerEnv) count(t *testing.T, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := e.data.Pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// stagingTables counts the importer's leftovers in the data database.
func (e *workerEnv) stagingTables(t *testing.T) int64 {
	return e.count(t, `SELECT count(*) FROM pg_class WHERE relkind = 'r' AND relname LIKE '\_mi\_%'`)
}

// testdata returns a file of the shared geodata library, skipping without
// it.
func testdata(t testing.TB, rel string) string {
	t.Helper()
	dir := os.Getenv("MERIDIAN_TESTDATA")
	if dir == "" {
		dir = filepath.Join("..", "..", "shared", "data")
	}
	p := filepath.Join(dir, rel)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("test data %s: %v (set MERIDIAN_TESTDATA)", rel, err)
	}
	return p
}

func newTestID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
