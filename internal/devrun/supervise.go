package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/meridian-gis/meridian/internal/pgcluster"
	"github.com/meridian-gis/meridian/internal/pgdb"
)

// errInterrupted means a signal arrived before `meridian up` started.
var errInterrupted = errors.New("interrupted")

// relay turns the signals devrun receives into actions. Each cancels the
// run's context. Once `meridian up` runs, the first is also forwarded to
// its process group and a second one kills it. The child runs in a process
// group of its own, so a terminal's Ctrl-C reaches it once, through us, and
// not twice (Caddy force-quits on a second SIGINT).
type relay struct {
	cancel context.CancelFunc
	log    *slog.Logger

	mu          sync.Mutex
	pgid        int  // the child's process group; 0 when none runs
	forwarded   int  // signals received while the child ran
	interrupted bool // a signal arrived before the child started
}

func (r *relay) loop(sigc <-chan os.Signal, stop <-chan struct{}) {
	for {
		select {
		case s := <-sigc:
			r.handle(s)
		case <-stop:
			return
		}
	}
}

func (r *relay) handle(s os.Signal) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cancel()
	if r.pgid == 0 {
		r.interrupted = true
		r.log.Info("interrupted", "signal", s.String())
		return
	}
	r.forwarded++
	sig, ok := s.(syscall.Signal)
	if !ok {
		sig = syscall.SIGTERM
	}
	if r.forwarded > 1 {
		r.log.Warn("second signal: killing meridian up")
		sig = syscall.SIGKILL
	} else {
		r.log.Info("stopping meridian up (a second Ctrl-C kills it)", "signal", sig.String())
	}
	syscall.Kill(-r.pgid, sig)
}

// startChild runs start unless a signal came first, and records the
// child's process group.
func (r *relay) startChild(start func() (pid int, err error)) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.interrupted {
		return errInterrupted
	}
	pid, err := start()
	if err == nil {
		r.pgid = pid
	}
	return err
}

// stopChild sends sig to the child's process group, if one runs.
func (r *relay) stopChild(sig syscall.Signal) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pgid != 0 {
		syscall.Kill(-r.pgid, sig)
	}
}

// childExited forgets the child's process group, which may be reused.
func (r *relay) childExited() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pgid = 0
}

func (r *relay) signalled() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.forwarded > 0
}

// upRun is what superviseUp needs.
type upRun struct {
	bin     *meridianBin
	logPath string // the child's output is appended here too
	health  string // URL that answers 200 once the edge is ready
	public  string // the URL users open
	token   string // demo token; empty without demo data
	admin   string // the first admin's password ("" if unknown)
	wait    time.Duration
	relay   *relay
	out     io.Writer
	log     *slog.Logger
}

// superviseUp starts `meridian up`, waits for its health URL, prints the
// banner, and waits for it to exit. It returns nil when the child stops
// cleanly after a signal.
func superviseUp(ctx context.Context, u upRun) error {
	logf, err := os.OpenFile(u.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("opening log: %w", err)
	}
	defer logf.Close()
	fmt.Fprintf(logf, "\n=== meridian up, started by make run at %s ===\n", time.Now().Format(time.RFC3339))

	cmd := exec.Command(u.bin.path, "up")
	cmd.Env = append(os.Environ(), u.bin.env...)
	cmd.Stdout = io.MultiWriter(os.Stdout, logf)
	cmd.Stderr = io.MultiWriter(os.Stderr, logf)
	// Own process group (see relay); killed if devrun dies without us.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	err = u.relay.startChild(func() (int, error) {
		if err := cmd.Start(); err != nil {
			return 0, err
		}
		return cmd.Process.Pid, nil
	})
	if err != nil {
		return fmt.Errorf("starting meridian up: %w", err)
	}
	u.log.Info("started meridian up", "pid", cmd.Process.Pid, "log", u.logPath)

	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	hctx, hcancel := context.WithTimeout(ctx, u.wait)
	defer hcancel()
	healthy := make(chan error, 1)
	go func() {
		healthy <- pgcluster.WaitReady(hctx, func(ctx context.Context) error { return probeHealth(ctx, u.health) })
	}()

	var failure error
	up := false
	for {
		select {
		case err := <-healthy:
			healthy = nil
			switch {
			case err == nil:
				up = true
				printBanner(u.out, u.public, u.token, u.admin, u.logPath)
			case !u.relay.signalled():
				failure = fmt.Errorf("meridian up did not answer %s within %s: %w (see %s)", u.health, u.wait, err, u.logPath)
				u.log.Error("giving up on meridian up; stopping it", "err", err)
				u.relay.stopChild(syscall.SIGTERM)
			}
		case err := <-done:
			u.relay.childExited()
			hcancel()
			switch {
			case failure != nil:
				return failure
			case u.relay.signalled():
				if err != nil {
					return fmt.Errorf("meridian up stopped: %w", err)
				}
				u.log.Info("meridian up stopped")
				return nil
			case !up:
				return fmt.Errorf("meridian up exited (%v) before %s answered; see %s", exitText(err), u.health, u.logPath)
			case err != nil:
				var ee *exec.ExitError
				if errors.As(err, &ee) && ee.ExitCode() > 0 {
					return exitStatus(ee.ExitCode())
				}
				return fmt.Errorf("meridian up: %w", err)
			default:
				u.log.Warn("meridian up exited on its own with status 0")
				return nil
			}
		}
	}
}

func exitText(err error) string {
	if err == nil {
		return "status 0"
	}
	return err.Error()
}

func probeHealth(ctx context.Context, healthURL string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, healthURL, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s", healthURL, resp.Status)
	}
	return nil
}

// componentAddrs returns the loopback addresses `meridian up` will listen
// on, from the same variables and defaults it uses.
func componentAddrs() map[string]string {
	get := func(env, def string) string {
		if v := os.Getenv(env); v != "" {
			return v
		}
		return def
	}
	return map[string]string{
		"edge (MERIDIAN_EDGE_ADDR)":         get("MERIDIAN_EDGE_ADDR", "127.0.0.1:8080"),
		"tiles (MERIDIAN_TILES_ADDR)":       get("MERIDIAN_TILES_ADDR", "127.0.0.1:8081"),
		"control (MERIDIAN_CONTROL_ADDR)":   get("MERIDIAN_CONTROL_ADDR", "127.0.0.1:8082"),
		"worker (MERIDIAN_WORKER_ADDR)":     get("MERIDIAN_WORKER_ADDR", "127.0.0.1:8083"),
		"Caddy admin (MERIDIAN_ADMIN_ADDR)": get("MERIDIAN_ADMIN_ADDR", "127.0.0.1:2019"),
	}
}

// checkPortsFree fails when one of addrs is already taken, which mostly
// means an earlier `make run` still runs: its /healthz would otherwise
// pass for ours.
func checkPortsFree(addrs map[string]string) error {
	var busy []string
	for name, a := range addrs {
		l, err := net.Listen("tcp", a)
		if err != nil {
			busy = append(busy, fmt.Sprintf("%s %s", name, a))
			continue
		}
		l.Close()
	}
	if len(busy) > 0 {
		sort.Strings(busy)
		return fmt.Errorf("address already in use: %s (is another meridian running? stop it, or set the variables named to free addresses)",
			strings.Join(busy, ", "))
	}
	return nil
}

// healthURL is /healthz through the edge.
func healthURL() string {
	addr := componentAddrs()["edge (MERIDIAN_EDGE_ADDR)"]
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr + "/healthz"
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/healthz"
}

// publicURL is MERIDIAN_PUBLIC_URL, else http://localhost:<edge port>
// (meridian's own default, http://localhost:8080, with the default port).
// set tells whether it came from the environment; when not, run passes it
// to meridian so that the URLs it hands out match the banner.
func publicURL() (u string, set bool) {
	if v := os.Getenv("MERIDIAN_PUBLIC_URL"); v != "" {
		return strings.TrimRight(v, "/"), true
	}
	_, port, err := net.SplitHostPort(componentAddrs()["edge (MERIDIAN_EDGE_ADDR)"])
	if err != nil || port == "" {
		port = "8080"
	}
	return "http://localhost:" + port, false
}

// exampleTileURL is tile 0/0/0 of the demo countries through the edge.
func exampleTileURL(public, token string) string {
	return public + "/api/v3/maps/" + demoConnection + "/table/0/0/0?name=public.countries&formatTiles=mvt&access_token=" +
		url.QueryEscape(token)
}

func printBanner(w io.Writer, public, token, admin, logPath string) {
	fmt.Fprintf(w, "\nMeridian is up: %s\n  log: %s\n  stop: Ctrl-C\n", public, logPath)
	if admin != "" {
		fmt.Fprintf(w, "\nSign in at %s/acc/ as %s, password %s\n  (kept in .meridian/admin-password; change it under your profile)\n", public, adminEmail, admin)
	} else {
		fmt.Fprintf(w, "\nSign in at %s/acc/ (%s exists; its password was not made by make run)\n", public, adminEmail)
	}
	if token == "" {
		fmt.Fprintln(w, "\n(no demo data, so no demo token)")
		return
	}
	tile := exampleTileURL(public, token)
	fmt.Fprintf(w, "\nDemo token (%s; %s APIs; 30 days):\n  %s\n", strings.Join(demoGrants(), ", "), demoAPIs, token)
	fmt.Fprintf(w, "\nExample tile, z/x/y = 0/0/0:\n  %s\n", tile)
	fmt.Fprintf(w, "\n  curl -sS -o /dev/null -D - %s\n\n", shellQuote(tile))
}

func printPrepared(w io.Writer, stateDir string, db database) {
	fmt.Fprintf(w, "\nDatabase ready.\n  metadata: %s\n", pgdb.Redact(db.metaURL))
	if db.dataURL != "" {
		fmt.Fprintf(w, "  data:     %s (connection %q once registered)\n", pgdb.Redact(db.dataURL), demoConnection)
	}
	fmt.Fprintf(w, "To use bin/meridian by hand: . %s/env\n", stateDir)
}
