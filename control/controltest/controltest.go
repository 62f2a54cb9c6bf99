// Package controltest starts a real control plane for tests: a metadata
// database (pgtest), the postgres broker, a token store, a data
// connection "local", and HTTP on 127.0.0.1. It makes organizations and
// users with a role, each with a session cookie and a user token, so API
// packages can test what each role and each organization may do.
package controltest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meridian-gis/meridian/control"
	"github.com/meridian-gis/meridian/control/authn"
	"github.com/meridian-gis/meridian/internal/broker/pgbroker"
	"github.com/meridian-gis/meridian/internal/dataconn"
	"github.com/meridian-gis/meridian/internal/grant"
	"github.com/meridian-gis/meridian/internal/identity"
	"github.com/meridian-gis/meridian/internal/jobspec"
	"github.com/meridian-gis/meridian/internal/pgdb/pgtest"
	"github.com/meridian-gis/meridian/internal/secret"
	"github.com/meridian-gis/meridian/internal/tokenstore"
)

// Env is a running control plane.
type Env struct {
	Base string
	// Keyring seals connection credentials.
	Keyring *secret.Keyring
	DB      *pgtest.DB
	Tokens  *tokenstore.Store
	Broker  *pgbroker.Broker
	Auth    *authn.Authenticator
	// Logs holds everything the control plane logged (text handler).
	Logs *SyncBuffer
	// ImportDir is the imports' folder (Config.Jobs.ImportDir).
	ImportDir string
}

// Start runs a control plane; mod may change its config and deps.
func Start(t testing.TB, mod func(*control.Config, *control.Deps)) *Env {
	t.Helper()
	db := pgtest.Meta(t)
	ctx := context.Background()
	logs := &SyncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	kr, err := secret.ParseKeyring(secret.GenerateKey())
	if err != nil {
		t.Fatal(err)
	}
	conns := dataconn.New(db.Pool, kr)
	if _, err := conns.Create(ctx, dataconn.Connection{Name: "local", Kind: "postgres", URL: "postgres://u:p@127.0.0.1:1/data"}); err != nil {
		t.Fatal(err)
	}
	b := pgbroker.New(db.Pool, pgbroker.Config{}, log)
	t.Cleanup(func() { b.Close() })
	store := tokenstore.New(db.Pool, kr, b)
	if _, err := store.EnsureSigningKey(ctx); err != nil {
		t.Fatal(err)
	}
	w := tokenstore.NewWatcher(store, grant.NewVerifier(nil, nil, grant.VerifierConfig{}), tokenstore.WatcherConfig{}, log)
	if err := w.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cfg := control.Config{Addr: addr, Jobs: control.JobsConfig{Config: jobspec.Config{ImportDir: t.TempDir()}}}
	cfg.Accounts.PublicURL = "http://" + addr
	deps := control.Deps{Log: log, Meta: db.Pool, Broker: b, Tokens: w, TokenStore: store, Connections: conns, Version: "test"}
	if mod != nil {
		mod(&cfg, &deps)
	}
	s, err := control.New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	})
	e := &Env{Base: "http://" + addr, Keyring: kr, DB: db, Tokens: store, Broker: b, Logs: logs,
		Auth: authn.New(cfg.Auth, db.Pool, w, log), ImportDir: cfg.Jobs.ImportDir}
	for i := 0; ; i++ {
		res, err := http.Get(e.Base + "/healthz")
		if err == nil {
			res.Body.Close()
			break
		}
		if i == 200 {
			t.Fatalf("control did not start: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return e
}

// NewOrg creates an organization and returns its id.
func (e *Env) NewOrg(t testing.TB, name string) string {
	t.Helper()
	var id string
	if err := e.DB.Pool.QueryRow(context.Background(), `INSERT INTO organizations (name) VALUES ($1) RETURNING id`, name).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

// NewConnection creates a data connection name of org (its URL is never
// opened by the control plane).
func (e *Env) NewConnection(t testing.TB, org, name string) {
	t.Helper()
	if _, err := dataconn.New(e.DB.Pool, e.Keyring).Create(context.Background(), dataconn.Connection{Org: org, Name: name, URL: "postgres://u:p@127.0.0.1:1/" + name}); err != nil {
		t.Fatal(err)
	}
}

// User is a user made by NewUser, signed in.
type User struct {
	env      *Env
	ID       string
	OrgID    string
	Email    string
	Password string
	Role     identity.Role
	// Cookie is a session cookie (signed in through the API).
	Cookie *http.Cookie
	// Token is a 24-hour user token.
	Token string
}

var userSeq struct {
	sync.Mutex
	n int
}

// NewUser creates a user of org with role, signs them in through
// /accounts-api/login and issues a user token.
func (e *Env) NewUser(t testing.TB, org string, role identity.Role) *User {
	t.Helper()
	ctx := context.Background()
	userSeq.Lock()
	userSeq.n++
	n := userSeq.n
	userSeq.Unlock()
	u := &User{env: e, OrgID: org, Role: role, Password: "pw-" + strings.Repeat("x", 12),
		Email: string(role) + "." + strings.ReplaceAll(org, "-", "")[:min(8, len(strings.ReplaceAll(org, "-", "")))] + "." + itoa(n) + "@example.test"}
	hash, err := identity.HashPassword(ctx, u.Password)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.DB.Pool.QueryRow(ctx, `INSERT INTO users (org_id, email, role, password_hash) VALUES ($1, $2, $3, $4) RETURNING id`,
		org, u.Email, role, hash).Scan(&u.ID); err != nil {
		t.Fatal(err)
	}
	res, _ := e.Do(t, "POST", "/accounts-api/login", map[string]string{"email": u.Email, "password": u.Password}, nil)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("signing in %s: %s", u.Email, res.Status)
	}
	for _, c := range res.Cookies() {
		if c.Name == authn.CookieName {
			u.Cookie = c
		}
	}
	if u.Cookie == nil {
		t.Fatal("no session cookie after sign-in")
	}
	if u.Token, _, err = e.Auth.IssueUserToken(ctx, u.ID, org, ""); err != nil {
		t.Fatal(err)
	}
	return u
}

// NewPlatformAdmin is NewUser with the admin role who also administers
// the platform (the admin console and API).
func (e *Env) NewPlatformAdmin(t testing.TB, org string) *User {
	t.Helper()
	u := e.NewUser(t, org, identity.RoleAdmin)
	if _, err := e.DB.Pool.Exec(context.Background(), `UPDATE users SET platform_admin = true WHERE id = $1`, u.ID); err != nil {
		t.Fatal(err)
	}
	return u
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// Do sends a request; body is JSON-encoded unless it is an io.Reader or
// nil; edit may change the request. It returns the response (body read)
// and the body.
func (e *Env) Do(t testing.TB, method, path string, body any, edit func(*http.Request)) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case io.Reader:
		rd = b
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, e.Base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if edit != nil {
		edit(req)
	}
	res, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	return res, raw
}

// Do sends a request as u with the session cookie.
func (u *User) Do(t testing.TB, method, path string, body any) (*http.Response, []byte) {
	t.Helper()
	return u.env.Do(t, method, path, body, func(r *http.Request) { r.AddCookie(u.Cookie) })
}

// DoToken sends a request as u with the user token.
func (u *User) DoToken(t testing.TB, method, path string, body any) (*http.Response, []byte) {
	t.Helper()
	return u.env.Do(t, method, path, body, func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+u.Token) })
}

// SyncBuffer is a bytes.Buffer safe for concurrent writers.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Want fails t unless res has status; it decodes the JSON body (nil when
// empty) and, for errors, checks the {"error","status","code"} shape.
func Want(t testing.TB, what string, res *http.Response, raw []byte, status int) map[string]any {
	t.Helper()
	if res.StatusCode != status {
		t.Fatalf("%s: status %d, want %d: %s", what, res.StatusCode, status, raw)
	}
	if len(raw) == 0 {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s: answer is not JSON: %v: %s", what, err, raw)
	}
	if status >= 400 && (m["error"] == nil || m["code"] == nil || m["status"] != float64(status)) {
		t.Errorf("%s: error answer %s lacks error/code/status", what, raw)
	}
	return m
}
