// Package pgcluster runs a private PostgreSQL cluster from the machine's
// PostgreSQL binaries: initdb into a folder, start on a loopback port, stop.
// `make run` keeps one under .meridian/ and the test harness makes a
// throwaway one per run; neither touches a system cluster.
//
// PostgreSQL refuses to run as root, so when the caller is root every
// server process runs as the "postgres" system user, which then owns the
// data folder.
package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrNoBinaries means no PostgreSQL server binaries were found.
var ErrNoBinaries = errors.New("pgcluster: no PostgreSQL server binaries (install postgresql-15)")

// Cluster is one private cluster. The zero value is not usable; call Open.
type Cluster struct {
	// Dir holds the data folder (Dir/data), the log and the port file.
	Dir string
	// Port the server listens on, on 127.0.0.1 only.
	Port int
	// Password of the "postgres" superuser; empty means trust
	// authentication (test clusters).
	Password string

	bin  string
	cred *syscall.Credential
}

// Options configure Open.
type Options struct {
	// Password for the superuser. Empty: trust authentication on loopback.
	Password string
	// Port to listen on. Zero: the port saved in Dir from an earlier run,
	// else a free one.
	Port int
	// Fast turns off fsync and friends: for throwaway test clusters only.
	Fast bool
}

// Open prepares the cluster in dir, running initdb when dir holds none yet.
// It does not start the server.
func Open(ctx context.Context, dir string, o Options) (*Cluster, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	c := &Cluster{Dir: dir, Port: o.Port, Password: o.Password, bin: bin}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("pgcluster: running as root needs a postgres system user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating cluster folder: %w", err)
	}
	if err := c.chown(dir); err != nil {
		return nil, err
	}
	if c.Port == 0 {
		if b, err := os.ReadFile(filepath.Join(dir, "port")); err == nil {
			c.Port, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		}
	}
	if c.Port == 0 {
		if c.Port, err = FreePort(); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "port"), []byte(strconv.Itoa(c.Port)+"\n"), 0o644); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "PG_VERSION")); err == nil {
		return c, nil
	}
	args := []string{"-D", filepath.Join(dir, "data"), "-U", "postgres", "-E", "UTF8", "--locale=C.UTF-8"}
	if o.Password != "" {
		pw := filepath.Join(dir, "pwfile")
		if err := os.WriteFile(pw, []byte(o.Password+"\n"), 0o600); err != nil {
			return nil, err
		}
		if err := c.chown(pw); err != nil {
			return nil, err
		}
		defer os.Remove(pw)
		args = append(args, "--auth=scram-sha-256", "--pwfile="+pw)
	} else {
		args = append(args, "--auth=trust")
	}
	if o.Fast {
		args = append(args, "--no-sync")
	}
	if out, err := c.run(ctx, "initdb", args...); err != nil {
		if errors.Is(err, os.ErrPermission) && c.cred != nil {
			return nil, fmt.Errorf("initdb in %s: %w (the postgres user must be able to enter every parent folder)", dir, err)
		}
		return nil, fmt.Errorf("initdb in %s: %w\n%s", dir, err, out)
	}
	conf := "listen_addresses = '127.0.0.1'\nunix_socket_directories = ''\nmax_connections = 200\nshared_buffers = 256MB\n"
	if o.Fast {
		conf += "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
	}
	f, err := os.OpenFile(filepath.Join(dir, "data", "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.WriteString("\n# added by meridian pgcluster\n" + conf); err != nil {
		return nil, err
	}
	return c, nil
}

// Start starts the server and waits until it accepts connections. Starting
// a running cluster is not an error.
func (c *Cluster) Start(ctx context.Context) error {
	if c.Running(ctx) {
		return nil
	}
	log := filepath.Join(c.Dir, "postgres.log")
	if f, err := os.OpenFile(log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err == nil {
		f.Close()
		c.chown(log)
	}
	out, err := c.run(ctx, "pg_ctl", "-D", filepath.Join(c.Dir, "data"), "-l", log, "-w", "-t", "60",
		"-o", fmt.Sprintf("-p %d", c.Port), "start")
	if err != nil {
		tail, _ := os.ReadFile(log)
		if len(tail) > 2000 {
			tail = tail[len(tail)-2000:]
		}
		return fmt.Errorf("starting postgres on port %d: %w\n%s\n%s", c.Port, err, out, tail)
	}
	return nil
}

// Running reports whether the cluster's server is up.
func (c *Cluster) Running(ctx context.Context) bool {
	_, err := c.run(ctx, "pg_ctl", "-D", filepath.Join(c.Dir, "data"), "status")
	return err == nil
}

// Stop stops the server (fast shutdown: sessions are disconnected).
func (c *Cluster) Stop(ctx context.Context) error {
	if !c.Running(ctx) {
		return nil
	}
	if out, err := c.run(ctx, "pg_ctl", "-D", filepath.Join(c.Dir, "data"), "-m", "fast", "-w", "stop"); err != nil {
		return fmt.Errorf("stopping postgres: %w\n%s", err, out)
	}
	return nil
}

// URL returns a connection URL for database db as user (with password,
// empty for trust).
func (c *Cluster) URL(db, usr, password string) string {
	u := url.URL{Scheme: "postgres", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(c.Port)), Path: "/" + db}
	if password != "" {
		u.User = url.UserPassword(usr, password)
	} else {
		u.User = url.User(usr)
	}
	u.RawQuery = "sslmode=disable"
	return u.String()
}

// SuperuserURL returns the URL of database db as the postgres superuser.
func (c *Cluster) SuperuserURL(db string) string { return c.URL(db, "postgres", c.Password) }

func (c *Cluster) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, name), args...)
	cmd.Dir = c.Dir
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8")
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	return cmd.CombinedOutput()
}

func (c *Cluster) chown(path string) error {
	if c.cred == nil {
		return nil
	}
	if err := os.Chown(path, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
		return fmt.Errorf("handing %s to the postgres user: %w", path, err)
	}
	return nil
}

// BinDir finds the newest PostgreSQL server binaries folder.
func BinDir() (string, error) {
	if d := os.Getenv("MERIDIAN_PG_BINDIR"); d != "" {
		return d, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi > vj
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", ErrNoBinaries
}

// FreePort asks the kernel for a free TCP port on 127.0.0.1.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// WaitReady polls until fn succeeds or ctx ends.
func WaitReady(ctx context.Context, fn func(context.Context) error) error {
	for {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
