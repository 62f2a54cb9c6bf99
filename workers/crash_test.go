package workers

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/meridian-gis/meridian/internal/broker/pgbroker"
	"github.com/meridian-gis/meridian/internal/config"
	"github.com/meridian-gis/meridian/internal/dataconn"
	"github.com/meridian-gis/meridian/internal/jobspec"
	"github.com/meridian-gis/meridian/internal/pgdb"
	"github.com/meridian-gis/meridian/internal/secret"
)

// Environment of the worker process the crash test starts (this test
// binary, re-executed): envChild=1 turns TestMain into a worker on the
// metadata database envChildMeta with the keyring envChildKey, configured
// by the usual MERIDIAN_WORKER_* / MERIDIAN_IMPORT_* variables.
const (
	envChild     = "MERIDIAN_TEST_WORKER_CHILD"
	envChildMeta = "MERIDIAN_TEST_WORKER_META"
	envChildKey  = "MERIDIAN_TEST_WORKER_KEY"
)

func TestMain(m *testing.M) {
	if os.Getenv(envChild) == "1" {
		if err := childWorker(); err != nil {
			fmt.Fprintln(os.Stderr, "child worker:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// childWorker runs a worker process as `meridian worker` would, until
// SIGTERM (or SIGKILL).
func childWorker() error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("svc", "child-worker")
	var cfg Config
	if err := config.Load("", &cfg); err != nil {
		return err
	}
	meta, err := pgdb.NewPool(ctx, os.Getenv(envChildMeta), pgdb.PoolConfig{MaxConns: 10}, log)
	if err != nil {
		return err
	}
	defer meta.Close()
	kr, err := secret.ParseKeyring(os.Getenv(envChildKey))
	if err != nil {
		return err
	}
	b := pgbroker.New(meta, pgbroker.Config{PollInterval: config.Duration(200 * time.Millisecond)}, log)
	defer b.Close()
	pools := dataconn.NewPools(dataconn.New(meta, kr), WritablePools(), log)
	defer pools.Close()
	r, err := New(cfg, Deps{Log: log, Broker: b})
	if err != nil {
		return err
	}
	jobs, err := Register(r, JobDeps{Log: log, Meta: meta, Broker: b, Conns: pools})
	if err != nil {
		return err
	}
	go jobs.Run(ctx)
	fmt.Println("worker ready")
	return r.Run(ctx)
}

// A worker killed with SIGKILL in the middle of an import (rows being
// copied) leaves the old table in place; the broker redelivers the job
// after the lease runs out and a second worker imports it completely:
// one full table, no duplicate rows, no staging tables, and readers never
// see anything but the old table or the new one.
func TestImportSurvivesWorkerCrash(t *testing.T) {
	e := newWorkerEnv(t, nil)
	ctx := context.Background()
	if _, err := e.data.Pool.Exec(ctx, `CREATE TABLE public.cities (cartodb_id int, geom geometry(Point, 4326));
		INSERT INTO public.cities SELECT g, 'SRID=4326;POINT(0 0)' FROM generate_series(1, 3) g`); err != nil {
		t.Fatal(err)
	}
	const oldRows, newRows = 3, 171075 // GeoNames cities1000 (SOURCES.md)
	path := e.upload(t, testdata(t, "points/geonames_cities1000.csv.gz"))
	id := e.createImport(t, importSpec{dest: "public.cities", filePath: path, filename: "cities1000.csv.gz",
		opts: ImportOptions{IfExists: "replace"}})

	// Readers see the old table or the new one, never a half.
	visible := func() int64 {
		n := e.count(t, "SELECT count(*) FROM public.cities")
		if n != oldRows && n != newRows {
			t.Fatalf("public.cities has %d rows: a partial table is visible", n)
		}
		return n
	}

	logPath := filepath.Join(t.TempDir(), "child.log")
	logf, _ := os.Create(logPath)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(),
		envChild+"=1", envChildMeta+"="+e.meta.URL, envChildKey+"="+e.key,
		"MERIDIAN_WORKER_ADDR=127.0.0.1:0",
		"MERIDIAN_IMPORT_DIR="+e.cfg.ImportDir,
		"MERIDIAN_WORKER_ACK_DEADLINE=2s",
		"MERIDIAN_WORKER_POLL_INTERVAL=100ms",
		"MERIDIAN_WORKER_SWEEP_INTERVAL=1h",
	)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Kill()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			if len(b) > 8000 {
				b = b[len(b)-8000:]
			}
			t.Logf("child worker log:\n%s", b)
		}
	}()

	// Kill it once rows are being copied.
	deadline := time.Now().Add(2 * time.Minute)
	var killedAt jobState
	for {
		s := e.state(t, "imports", id)
		visible()
		if s.Status == jobspec.StatusSuccess {
			t.Fatal("the import finished before the worker could be killed: use a bigger file")
		}
		if s.Rows > 0 && s.Phase == "reading" {
			killedAt = s
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no rows copied within 2 minutes: %+v", s)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	<-exited
	killed := time.Now()
	t.Logf("killed the worker at %d rows copied (status %s, attempt %d)", killedAt.Rows, killedAt.Status, killedAt.Attempts)
	if n := visible(); n != oldRows {
		t.Errorf("after the crash public.cities has %d rows, want the old %d", n, oldRows)
	}

	// A second worker takes over when the lease runs out.
	e.start(t)
	for {
		s := e.state(t, "imports", id)
		visible()
		if jobspec.Terminal(s.Status) {
			break
		}
		if time.Since(killed) > 3*time.Minute {
			t.Fatalf("import not finished 3 minutes after the crash: %+v", s)
		}
		time.Sleep(50 * time.Millisecond)
	}
	s := e.state(t, "imports", id)
	t.Logf("completed %v after the crash, in %d attempts", time.Since(killed).Round(time.Millisecond), s.Attempts)
	var res ImportResult
	json.Unmarshal(s.Result, &res)
	if s.Status != jobspec.StatusSuccess || s.Attempts < 2 || res.Rows != newRows {
		t.Fatalf("import after the crash = %+v %s, want success with %d rows after 2+ attempts", s, s.Result, newRows)
	}
	if n := e.count(t, "SELECT count(*) FROM public.cities"); n != newRows {
		t.Errorf("public.cities has %d rows, want %d", n, newRows)
	}
	if n := e.count(t, "SELECT count(DISTINCT cartodb_id) FROM public.cities"); n != newRows {
		t.Errorf("public.cities has %d distinct rows, want %d (no duplicates)", n, newRows)
	}
	if n := e.stagingTables(t); n != 0 {
		t.Errorf("%d staging tables left", n)
	}
}
