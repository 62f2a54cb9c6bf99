// Package peers starts the servers the edge-cache bench scenarios put side
// by side: Varnish and nginx as reference caches, Meridian's own edge
// binary (a Caddy build) serving a static response or its meridian_cache,
// and the in-process origin they all cache. Every peer is a child process
// bound to 127.0.0.1, configured by a file rendered into a scratch
// directory (never the system configuration), and stopped as a whole
// process group.
//
// Rendering (VCL, nginx.conf, Caddyfile) is pure and tested on its own;
// Start methods write the file, start the process and wait until it
// accepts connections.
package peers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"time"

	"github.com/meridian-gis/meridian/bench/load"
	"github.com/meridian-gis/meridian/bench/proc"
)

// Defaults shared by the peers.
const (
	// DefaultLifetime bounds how long a peer process may live when the
	// caller sets no Lifetime: the teardown stops it long before.
	DefaultLifetime = time.Hour
	// startTimeout bounds the wait for a started peer to listen.
	startTimeout = 30 * time.Second
)

// Server is a running peer process.
type Server struct {
	// Name labels the server in errors ("varnishd").
	Name string
	// Addr is the "127.0.0.1:port" it listens on.
	Addr string

	proc *proc.Process
}

// startServer starts cmd, detached from ctx's cancellation (ctx bounds the
// wait for the listener only: the process lives until Stop or lifetime),
// and waits until addr accepts connections. A process that exits first is
// an error carrying the tail of its stderr.
func startServer(ctx context.Context, name, addr string, cmd proc.Command, lifetime time.Duration) (*Server, error) {
	if lifetime <= 0 {
		lifetime = DefaultLifetime
	}
	cmd.Timeout = lifetime
	p, err := cmd.Start(context.WithoutCancel(ctx))
	if err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	s := &Server{Name: name, Addr: addr, proc: p}
	wctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	go func() {
		select {
		case <-p.Done():
			cancel()
		case <-wctx.Done():
		}
	}()
	if err := proc.WaitListening(wctx, addr); err != nil {
		stopCtx, stopCancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer stopCancel()
		res, _ := p.Stop(stopCtx)
		return nil, fmt.Errorf("starting %s: %w; exit code %d, stderr: %s",
			name, err, res.ExitCode, tail(res.Stderr+res.Stdout, 1500))
	}
	return s, nil
}

// PID returns the process id of the peer's main process.
func (s *Server) PID() int { return s.proc.PID() }

// Alive returns nil while the process runs, else an error with the tail of
// its output.
func (s *Server) Alive() error {
	select {
	case <-s.proc.Done():
		res, err := s.proc.Wait()
		return fmt.Errorf("%s exited (code %d, %v): %s", s.Name, res.ExitCode, err, tail(res.Stderr+res.Stdout, 1500))
	default:
		return nil
	}
}

// Stop terminates the process group (SIGTERM, then SIGKILL when ctx is
// done) and returns the error of an abnormal exit.
func (s *Server) Stop(ctx context.Context) error {
	res, err := s.proc.Stop(ctx)
	if err != nil {
		return fmt.Errorf("stopping %s: %w: %s", s.Name, err, tail(res.Stderr, 1000))
	}
	return nil
}

// tail returns the last n bytes of s, trimmed.
func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		s = "…" + s[len(s)-n:]
	}
	return s
}

// checkLoopbackAddr checks that addr is a "host:port" on a loopback
// address with a port, the only kind of address a peer may bind or reach.
func checkLoopbackAddr(what, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" || port == "0" {
		return fmt.Errorf("%s %q: want 127.0.0.1:port", what, addr)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%s %q: not a loopback IP address", what, addr)
	}
	return load.CheckLoopback(addr)
}

// checkPath rejects paths a config file cannot hold unquoted: relative
// ones and those with whitespace, quotes, braces or semicolons.
func checkPath(what, p string) error {
	if p == "" || !strings.HasPrefix(p, "/") {
		return fmt.Errorf("%s %q: want an absolute path", what, p)
	}
	if strings.ContainsAny(p, " \t\n\r\"'`;{}$#\\") {
		return fmt.Errorf("%s %q: contains characters a config file cannot hold unquoted", what, p)
	}
	return nil
}

// ErrNotInstalled is wrapped by the errors of Look functions when a peer's
// binary is not on PATH: scenarios skip on it.
var ErrNotInstalled = errors.New("peer binary not installed")

// look finds a peer binary: path when set, else name on PATH.
func look(name, path string) (string, error) {
	if path == "" {
		path = name
	}
	p, err := exec.LookPath(path)
	if err != nil {
		return "", fmt.Errorf("looking for %s: %w (%w)", name, ErrNotInstalled, err)
	}
	return p, nil
}

// version runs path with args and returns the first line of its output
// (stdout and stderr together), or "" when it cannot be run.
func version(ctx context.Context, path string, args ...string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, path, args...).CombinedOutput()
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line)
}
