package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meridian-gis/meridian/internal/pgcluster"
	"github.com/meridian-gis/meridian/internal/pgdb/pgtest"
)

// TestRunEndToEnd runs what `make run` runs, on a fresh state folder,
// against the fake meridian (which really migrates the metadata database
// and reads the demo data through the registered connection URL): the
// first run creates the cluster, provisions it, loads the demo data, starts
// `up`, prints the banner and stops everything on SIGINT; a second run
// reuses the cluster, passwords, key and data.
func TestRunEndToEnd(t *testing.T) {
	pgtest.AdminURL(t) // integration test: same opt-in as the others
	dataDir := testDataDir(t)
	state, err := os.MkdirTemp("", "meridian-devrun-test-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(state, 0o755) // the postgres user must reach it when we are root
	t.Cleanup(func() {
		// Safety net: a failed run must not leave a cluster behind.
		if c, err := pgcluster.Open(context.Background(), filepath.Join(state, "pg"), pgcluster.Options{}); err == nil {
			c.Stop(context.Background())
		}
		os.RemoveAll(state)
	})
	t.Setenv("MERIDIAN_DATABASE_URL", "")
	t.Setenv("MERIDIAN_SECRET_KEY", "")
	for _, v := range []string{"MERIDIAN_EDGE_ADDR", "MERIDIAN_TILES_ADDR", "MERIDIAN_CONTROL_ADDR", "MERIDIAN_WORKER_ADDR", "MERIDIAN_ADMIN_ADDR"} {
		port, err := pgcluster.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		t.Setenv(v, "127.0.0.1:"+strconv.Itoa(port))
	}
	exe := fakeBin(t, fakeFull).path
	o := options{StateDir: state, Bin: exe, DataDir: dataDir, HealthTimeout: 30 * time.Second}

	// First run: everything from scratch, then SIGINT.
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(io.MultiWriter(logs, tWriter{t}), nil))
	out := &syncBuffer{}
	sigc := make(chan os.Signal, 2)
	errc := make(chan error, 1)
	go func() { errc <- run(context.Background(), o, sigc, out, log) }()
	waitFor(t, "the banner", func() bool {
		select {
		case err := <-errc:
			t.Fatalf("run returned before the banner: %v", err)
		default:
		}
		return strings.Contains(out.String(), "Meridian is up")
	})
	_, edgePort, _ := net.SplitHostPort(os.Getenv("MERIDIAN_EDGE_ADDR"))
	for _, want := range []string{"fake.token.", "access_token=fake.token.", "curl -sS", "admin@localhost, password fake-admin-password", "http://localhost:" + edgePort + "/api/v3/maps/local/table/0/0/0?"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("banner lacks %q:\n%s", want, out.String())
		}
	}
	sigc <- syscall.SIGINT
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("run after SIGINT = %v, want nil", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("run did not return after SIGINT")
	}
	for _, f := range []string{"secret.key", "passwords.json", "env", "demo-token", "admin-password"} {
		if fi, err := os.Stat(filepath.Join(state, f)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, want a 0600 file", f, err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(state, "meridian.log")); !strings.Contains(string(b), "fake meridian up: serving") {
		t.Errorf("meridian.log lacks the child's output:\n%s", b)
	}
	c, err := pgcluster.Open(context.Background(), filepath.Join(state, "pg"), pgcluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Running(context.Background()) {
		t.Error("cluster still running after run returned")
	}
	port := c.Port
	key, _ := os.ReadFile(filepath.Join(state, "secret.key"))

	// Second run, -prepare-only: reuses everything.
	logs2 := &syncBuffer{}
	log2 := slog.New(slog.NewTextHandler(io.MultiWriter(logs2, tWriter{t}), nil))
	o.PrepareOnly = true
	if err := run(context.Background(), o, make(chan os.Signal), io.Discard, log2); err != nil {
		t.Fatalf("second run: %v", err)
	}
	if strings.Count(logs2.String(), "demo table already loaded") != 2 || strings.Contains(logs2.String(), "provisioned") {
		t.Errorf("second run did not reuse the data:\n%s", logs2.String())
	}
	c2, _ := pgcluster.Open(context.Background(), filepath.Join(state, "pg"), pgcluster.Options{})
	if c2.Port != port {
		t.Errorf("second run port %d, want %d", c2.Port, port)
	}
	if key2, _ := os.ReadFile(filepath.Join(state, "secret.key")); string(key2) != string(key) {
		t.Error("secret key changed between runs")
	}
}

// TestRunPrepareOnlyInterrupted checks that a signal during preparation
// stops the run.
func TestRunInterruptedBeforeStart(t *testing.T) {
	t.Setenv("MERIDIAN_DATABASE_URL", "postgres://nobody@127.0.0.1:1/x")
	t.Setenv("MERIDIAN_SECRET_KEY", "")
	sigc := make(chan os.Signal, 1)
	sigc <- syscall.SIGINT
	ctx, cancel := context.WithCancel(context.Background())
	rl := &relay{cancel: cancel, log: testLogger(t)}
	stop := make(chan struct{})
	defer close(stop)
	go rl.loop(sigc, stop)
	<-ctx.Done()
	if err := rl.startChild(func() (int, error) { t.Error("child started after a signal"); return 1, nil }); err != errInterrupted {
		t.Errorf("startChild after a signal = %v, want errInterrupted", err)
	}
}
