package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// meridianBin runs the meridian binary's subcommands.
type meridianBin struct {
	// path of the binary.
	path string
	// env is added to devrun's environment for every subcommand.
	env []string
	log *slog.Logger
}

// requiredSubcommands lists the subcommands devrun runs.
func requiredSubcommands() [][]string {
	return [][]string{{"version"}, {"migrate"}, {"connection", "add"}, {"token", "create"}, {"user", "create"}, {"up"}}
}

// missingError means the binary lacks subcommands devrun needs.
type missingError struct {
	bin  string
	subs []string
}

func (e *missingError) Error() string {
	q := make([]string, len(e.subs))
	for i, s := range e.subs {
		q[i] = strconv.Quote(s)
	}
	noun := "subcommand"
	if len(q) > 1 {
		noun = "subcommands"
	}
	return fmt.Sprintf("%s has no %s %s (make run needs: version, migrate, connection add, token create, user create, up); "+
		"meanwhile `bin/devrun -prepare-only` sets up the database and demo data alone",
		e.bin, noun, strings.Join(q, ", "))
}

// probe checks that the binary exists and has every required subcommand,
// by running each with --help: a subcommand exists when that exits 0 and
// its output names it (an empty main, or cobra's "unknown command", fail).
func (m *meridianBin) probe(ctx context.Context) error {
	fi, err := os.Stat(m.path)
	if err != nil {
		return fmt.Errorf("%s not found: run `make build` first", m.path)
	}
	if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", m.path)
	}
	var missing []string
	for _, sub := range requiredSubcommands() {
		if !m.has(ctx, sub) {
			missing = append(missing, strings.Join(sub, " "))
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if len(missing) > 0 {
		return &missingError{bin: m.path, subs: missing}
	}
	out, err := m.run(ctx, "version", "version")
	if err != nil {
		return err
	}
	m.log.Info("meridian binary", "path", m.path, "version", strings.TrimSpace(out))
	return nil
}

func (m *meridianBin) has(parent context.Context, sub []string) bool {
	ctx, cancel := context.WithTimeout(parent, 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, m.path, append(sub, "--help")...)
	cmd.Dir = filepath.Dir(m.path)
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil && parent.Err() == nil {
		// It ignored --help and kept running: the subcommand exists.
		return true
	}
	text := strings.ToLower(string(out))
	if err != nil || strings.Contains(text, "unknown command") {
		return false
	}
	return strings.Contains(text, sub[len(sub)-1])
}

// run runs the subcommand args and returns its stdout; its stderr goes to
// devrun's stderr as it comes. label names the subcommand in errors (args
// may hold credentials, so they are never logged).
func (m *meridianBin) run(ctx context.Context, label string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, m.path, args...)
	cmd.Env = append(os.Environ(), m.env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = io.MultiWriter(os.Stderr, &stderr)
	cmd.WaitDelay = 10 * time.Second
	m.log.Info("running meridian " + label)
	if err := cmd.Run(); err != nil {
		if strings.Contains(strings.ToLower(stderr.String()), "unknown command") {
			return "", &missingError{bin: m.path, subs: []string{label}}
		}
		return "", fmt.Errorf("running meridian %s: %w", label, err)
	}
	return stdout.String(), nil
}

// demoGrants are the sources the demo token grants: everything on the
// demo connection, so that it works for every table the demo shows, for
// SQL queries over them and for imports into it.
func demoGrants() []string {
	return []string{demoConnection + ":*"}
}

// demoAPIs are the APIs the demo token allows.
const demoAPIs = "maps,sql,imports,lds"

// Admin is the first administrator make run creates.
const adminEmail = "admin@localhost"

// ensureAdmin creates the first administrator on a fresh install and keeps
// the generated password in stateDir/admin-password (0600); later runs
// read it back. It returns the password ("" if the account exists but
// its password was not made here).
func (m *meridianBin) ensureAdmin(ctx context.Context, stateDir string) (string, error) {
	path := filepath.Join(stateDir, "admin-password")
	out, err := m.run(ctx, "user create", "user", "create", "--email", adminEmail, "--role", "admin", "--platform-admin", "--name", "Administrator", "--if-absent")
	if err != nil {
		return "", err
	}
	if pw := strings.TrimSpace(out); pw != "" {
		if err := writeFileAtomic(path, []byte(pw+"\n"), 0o600); err != nil {
			return "", fmt.Errorf("saving the admin password: %w", err)
		}
		return pw, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", nil
	}
	return strings.TrimSpace(string(b)), nil
}

// createDemoToken makes a token for the demo tables (maps and SQL APIs,
// 30 days) and keeps a copy in stateDir/demo-token (0600).
func (m *meridianBin) createDemoToken(ctx context.Context, stateDir string) (string, error) {
	args := []string{"token", "create"}
	for _, g := range demoGrants() {
		args = append(args, "--grant", g)
	}
	args = append(args, "--api", demoAPIs, "--ttl", "720h", "--name", "make-run-demo")
	out, err := m.run(ctx, "token create", args...)
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(out)
	if tok == "" || strings.ContainsAny(tok, " \t\r\n") {
		return "", errors.New("meridian token create: want only the token on stdout, got " +
			fmt.Sprintf("%d bytes in %d lines", len(out), strings.Count(out, "\n")))
	}
	if err := writeFileAtomic(filepath.Join(stateDir, "demo-token"), []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("saving demo token: %w", err)
	}
	return tok, nil
}
