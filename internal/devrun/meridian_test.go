package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/meridian-gis/meridian/internal/pgcluster"
)

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, nil))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// fakeBin returns a meridianBin running this test binary as a fake
// meridian in mode.
func fakeBin(t *testing.T, mode string) *meridianBin {
	t.Setenv("DEVRUN_FAKE_MERIDIAN", mode)
	// Under -race a process sleeps 1s at exit by default; the fake exits often.
	t.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return &meridianBin{path: exe, log: testLogger(t)}
}

func TestProbe(t *testing.T) {
	tests := []struct {
		mode        string
		wantMissing []string
	}{
		{fakeFull, nil},
		{fakeEmpty, []string{"version", "migrate", "connection add", "token create", "user create", "up"}},
		{fakePartial, []string{"connection add", "token create", "user create", "up"}},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			err := fakeBin(t, tt.mode).probe(context.Background())
			var me *missingError
			switch {
			case tt.wantMissing == nil && err != nil:
				t.Fatalf("probe() = %v, want nil", err)
			case tt.wantMissing == nil:
			case !errors.As(err, &me):
				t.Fatalf("probe() = %v, want a missingError", err)
			case !slices.Equal(me.subs, tt.wantMissing):
				t.Errorf("probe() missing %q, want %q", me.subs, tt.wantMissing)
			case !strings.Contains(err.Error(), `"`+tt.wantMissing[0]+`"`):
				t.Errorf("error %q does not name %q", err, tt.wantMissing[0])
			}
		})
	}
}

func TestProbeNoBinary(t *testing.T) {
	m := &meridianBin{path: filepath.Join(t.TempDir(), "meridian"), log: testLogger(t)}
	if err := m.probe(context.Background()); err == nil || !strings.Contains(err.Error(), "make build") {
		t.Errorf("probe() of a missing binary = %v, want a hint to run make build", err)
	}
}

func TestRunUnknownSubcommand(t *testing.T) {
	m := fakeBin(t, fakePartial)
	_, err := m.run(context.Background(), "token create", "token", "create")
	var me *missingError
	if !errors.As(err, &me) || me.subs[0] != "token create" {
		t.Errorf("run(token create) = %v, want a missingError naming it", err)
	}
}

func TestCreateDemoToken(t *testing.T) {
	dir := t.TempDir()
	tok, err := fakeBin(t, fakeFull).createDemoToken(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	// The fake echoes its flags into the token.
	for _, want := range []string{"--grant_local:*", "--api_maps,sql,imports,lds", "--ttl_720h"} {
		if !strings.Contains(tok, want) {
			t.Errorf("token %q: flags lack %q", tok, want)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "demo-token"))
	if err != nil || strings.TrimSpace(string(b)) != tok {
		t.Errorf("demo-token file = %q, %v; want %q", b, err, tok)
	}
}

// syncBuffer is a bytes.Buffer safe for one writer and one poller.
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

// waitFor polls cond until it holds or 30s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// upFixture runs superviseUp on a fake in mode, on a free edge port.
type upFixture struct {
	sigc chan os.Signal
	out  *syncBuffer
	errc chan error
}

func startUp(t *testing.T, mode string, wait time.Duration) *upFixture {
	t.Helper()
	port, err := pgcluster.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	edge := "127.0.0.1:" + strconv.Itoa(port)
	bin := fakeBin(t, mode)
	bin.env = []string{"MERIDIAN_EDGE_ADDR=" + edge}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	f := &upFixture{sigc: make(chan os.Signal, 4), out: &syncBuffer{}, errc: make(chan error, 1)}
	rl := &relay{cancel: cancel, log: bin.log}
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	go rl.loop(f.sigc, stop)
	go func() {
		f.errc <- superviseUp(ctx, upRun{
			bin: bin, logPath: filepath.Join(t.TempDir(), "meridian.log"),
			health: "http://" + edge + "/healthz", public: "http://localhost:8080", token: "tok/en",
			wait: wait, relay: rl, out: f.out, log: bin.log,
		})
	}()
	return f
}

func (f *upFixture) result(t *testing.T) error {
	t.Helper()
	select {
	case err := <-f.errc:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("superviseUp did not return")
		return nil
	}
}

func TestSuperviseForwardsOneSignal(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			f := startUp(t, fakeFull, 30*time.Second)
			waitFor(t, "the banner", func() bool { return strings.Contains(f.out.String(), "Meridian is up") })
			f.sigc <- sig
			if err := f.result(t); err != nil {
				t.Errorf("superviseUp after %v = %v, want nil (one forwarded signal, clean exit)", sig, err)
			}
			banner := f.out.String()
			for _, want := range []string{
				"http://localhost:8080/api/v3/maps/local/table/0/0/0?name=public.countries&formatTiles=mvt&access_token=tok%2Fen",
				"curl -sS -o /dev/null -D - 'http://localhost:8080/api/v3/maps/local/table/0/0/0?",
				"tok/en",
			} {
				if !strings.Contains(banner, want) {
					t.Errorf("banner lacks %q:\n%s", want, banner)
				}
			}
		})
	}
}

func TestSuperviseSecondSignalKills(t *testing.T) {
	f := startUp(t, fakeFull, 30*time.Second)
	waitFor(t, "the banner", func() bool { return strings.Contains(f.out.String(), "Meridian is up") })
	f.sigc <- syscall.SIGINT
	f.sigc <- syscall.SIGINT
	err := f.result(t)
	if err == nil || !strings.Contains(err.Error(), "stopped") {
		t.Errorf("superviseUp after two signals = %v, want a 'stopped' error (killed or force-quit)", err)
	}
}

func TestSuperviseChildExitsEarly(t *testing.T) {
	f := startUp(t, fakeUpExits, 30*time.Second)
	err := f.result(t)
	if err == nil || !strings.Contains(err.Error(), "exited") || !strings.Contains(err.Error(), "before") {
		t.Errorf("superviseUp with a failing child = %v, want 'exited ... before ... answered'", err)
	}
}

func TestSuperviseUnhealthy(t *testing.T) {
	f := startUp(t, fakeUnhealthy, time.Second)
	err := f.result(t)
	if err == nil || !strings.Contains(err.Error(), "did not answer") || !strings.Contains(err.Error(), "503") {
		t.Errorf("superviseUp with an unhealthy child = %v, want 'did not answer' with the 503", err)
	}
	if strings.Contains(f.out.String(), "Meridian is up") {
		t.Error("banner printed for an unhealthy child")
	}
}

func TestCheckPortsFree(t *testing.T) {
	port, err := pgcluster.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	free := "127.0.0.1:" + strconv.Itoa(port)
	if err := checkPortsFree(map[string]string{"edge": free}); err != nil {
		t.Errorf("checkPortsFree(free port) = %v, want nil", err)
	}
	l, err := net.Listen("tcp", free)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := checkPortsFree(map[string]string{"edge (MERIDIAN_EDGE_ADDR)": free}); err == nil || !strings.Contains(err.Error(), "MERIDIAN_EDGE_ADDR") {
		t.Errorf("checkPortsFree(busy port) = %v, want an error naming the variable", err)
	}
}

func TestHealthURL(t *testing.T) {
	tests := []struct{ addr, want string }{
		{"", "http://127.0.0.1:8080/healthz"},
		{"127.0.0.1:9000", "http://127.0.0.1:9000/healthz"},
		{":9000", "http://127.0.0.1:9000/healthz"},
		{"0.0.0.0:9000", "http://127.0.0.1:9000/healthz"},
		{"[::]:9000", "http://[::1]:9000/healthz"},
	}
	for _, tt := range tests {
		t.Setenv("MERIDIAN_EDGE_ADDR", tt.addr)
		if got := healthURL(); got != tt.want {
			t.Errorf("MERIDIAN_EDGE_ADDR=%q: healthURL() = %s, want %s", tt.addr, got, tt.want)
		}
	}
}

func TestPublicURL(t *testing.T) {
	tests := []struct{ public, edge, want string }{
		{"", "", "http://localhost:8080"},
		{"", "127.0.0.1:18080", "http://localhost:18080"},
		{"https://maps.example.com/", "127.0.0.1:18080", "https://maps.example.com"},
	}
	for _, tt := range tests {
		t.Setenv("MERIDIAN_PUBLIC_URL", tt.public)
		t.Setenv("MERIDIAN_EDGE_ADDR", tt.edge)
		if got, set := publicURL(); got != tt.want || set != (tt.public != "") {
			t.Errorf("MERIDIAN_PUBLIC_URL=%q MERIDIAN_EDGE_ADDR=%q: publicURL() = %q, %v; want %q, %v",
				tt.public, tt.edge, got, set, tt.want, tt.public != "")
		}
	}
}
