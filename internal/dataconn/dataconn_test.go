package dataconn

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/meridian-gis/meridian/internal/pgdb/pgtest"
	"github.com/meridian-gis/meridian/internal/secret"
)

const pw = "s3cr3t-Pa55word"

func keyring(t *testing.T, cfg string) *secret.Keyring {
	t.Helper()
	kr, err := secret.ParseKeyring(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func testLog(t *testing.T) *slog.Logger { return slog.New(slog.NewTextHandler(t.Output(), nil)) }

func TestCredentialsSealed(t *testing.T) {
	meta := pgtest.Meta(t)
	ctx := t.Context()
	k1 := secret.GenerateKey()
	s := New(meta.Pool, keyring(t, "k1:"+k1))
	url := "postgres://analyst:" + pw + "@db.internal:5432/warehouse?sslmode=disable"
	c, err := s.Create(ctx, Connection{Name: "wh", URL: url, Options: Options{MaxConns: 4, StatementTimeout: 1500 * time.Millisecond, ReadOnly: true}})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if c.ID == "" || c.Org != "default" || c.Kind != KindPostgres || c.CreatedAt.IsZero() {
		t.Errorf("Create = %+v", c)
	}

	var enc []byte
	var keyID string
	if err := meta.Pool.QueryRow(ctx, "SELECT config_enc, key_id FROM connections WHERE name = 'wh'").Scan(&enc, &keyID); err != nil {
		t.Fatal(err)
	}
	for _, clear := range []string{pw, "analyst", "db.internal", "warehouse"} {
		if bytes.Contains(enc, []byte(clear)) {
			t.Errorf("config_enc contains %q in clear", clear)
		}
	}
	if keyID != "k1" {
		t.Errorf("key_id = %q, want k1", keyID)
	}

	got, err := s.Get(ctx, "wh")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	want := Options{MaxConns: 4, StatementTimeout: 1500 * time.Millisecond, ReadOnly: true}
	if got.URL != url || got.Options != want || got.ID != c.ID {
		t.Errorf("Get = %+v / %+v, want URL %q and options %+v", got.Redacted(), got.Options, "(the one given)", want)
	}

	// Nothing meant for display shows the password.
	list, err := s.List(ctx, "default")
	if err != nil || len(list) != 1 {
		t.Fatalf("List = %v, %v", list, err)
	}
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "conn", *got)
	for what, out := range map[string]string{
		"List URL":   list[0].URL,
		"Redacted":   got.Redacted().URL,
		"%v":         fmt.Sprintf("%v", *got),
		"%+v":        fmt.Sprintf("%+v", *got),
		"%#v":        fmt.Sprintf("%#v", *got),
		"%v pointer": fmt.Sprintf("%v", got),
		"slog":       logs.String(),
	} {
		if strings.Contains(out, pw) {
			t.Errorf("%s shows the password: %s", what, out)
		}
		if !strings.Contains(out, "db.internal") {
			t.Errorf("%s lost the host: %s", what, out)
		}
	}
	if list[0].Options != want {
		t.Errorf("List options = %+v, want %+v", list[0].Options, want)
	}

	// A ciphertext moved to another row does not open there.
	if _, err := s.Create(ctx, Connection{Name: "other", URL: "postgres://x@h/db"}); err != nil {
		t.Fatal(err)
	}
	if _, err := meta.Pool.Exec(ctx, "UPDATE connections SET config_enc = $1, key_id = $2 WHERE name = 'other'", enc, keyID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "other"); !errors.Is(err, secret.ErrDecrypt) {
		t.Errorf("Get of a row with another row's ciphertext = %v, want secret.ErrDecrypt", err)
	}

	// Wrong keyrings fail clearly.
	if _, err := New(meta.Pool, keyring(t, "k2:"+secret.GenerateKey())).Get(ctx, "wh"); !errors.Is(err, secret.ErrUnknownKeyID) || !strings.Contains(err.Error(), "wh") || !strings.Contains(err.Error(), `"k1"`) {
		t.Errorf("Get with a keyring lacking k1 = %v, want ErrUnknownKeyID naming the connection and the key", err)
	}
	if _, err := New(meta.Pool, keyring(t, "k1:"+secret.GenerateKey())).Get(ctx, "wh"); !errors.Is(err, secret.ErrDecrypt) {
		t.Errorf("Get with another key named k1 = %v, want secret.ErrDecrypt", err)
	}
	broken, err := New(meta.Pool, keyring(t, "k2:"+secret.GenerateKey())).List(ctx, "default")
	if err != nil || len(broken) != 2 || broken[1].OpenErr == nil || broken[1].URL != "" {
		t.Errorf("List with the wrong keyring = %+v, %v; want entries with OpenErr", broken, err)
	}

	// Master key rotation: reseal under k2, then k1 can go.
	k2 := secret.GenerateKey()
	rotated := New(meta.Pool, keyring(t, "k2:"+k2+",k1:"+k1))
	if _, err := meta.Pool.Exec(ctx, "DELETE FROM connections WHERE name = 'other'"); err != nil {
		t.Fatal(err)
	}
	if n, err := rotated.Reseal(ctx); err != nil || n != 1 {
		t.Fatalf("Reseal = %d, %v; want 1", n, err)
	}
	if got, err := New(meta.Pool, keyring(t, "k2:"+k2)).Get(ctx, "wh"); err != nil || got.URL != url {
		t.Errorf("Get with only k2 after Reseal = %v, %v", got, err)
	}
}

func TestStoreLifecycle(t *testing.T) {
	meta := pgtest.Meta(t)
	ctx := t.Context()
	s := New(meta.Pool, keyring(t, secret.GenerateKey()))
	if _, err := meta.Pool.Exec(ctx, "INSERT INTO organizations (id, name) VALUES ('acme', 'Acme')"); err != nil {
		t.Fatal(err)
	}

	if _, err := s.Create(ctx, Connection{Name: "pg", URL: "postgres://u:p@h/db"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, Connection{Name: "pg", URL: "postgres://u:p@h/db2"}); !errors.Is(err, ErrExists) {
		t.Errorf("Create duplicate = %v, want ErrExists", err)
	}
	if _, err := s.Get(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(unknown) = %v, want ErrNotFound", err)
	}

	up, created, err := s.Upsert(ctx, Connection{Name: "pg", URL: "postgres://u:p@h/db3", Options: Options{ReadOnly: true}})
	if err != nil || created {
		t.Fatalf("Upsert existing = %v, created %v, err %v", up, created, err)
	}
	got, _ := s.Get(ctx, "pg")
	if got.URL != "postgres://u:p@h/db3" || !got.Options.ReadOnly || !got.UpdatedAt.After(got.CreatedAt) {
		t.Errorf("after Upsert: %+v", got.Redacted())
	}
	if _, created, err := s.Upsert(ctx, Connection{Name: "pg2", URL: "postgresql://h/db"}); err != nil || !created {
		t.Errorf("Upsert new: created %v, err %v", created, err)
	}
	if _, _, err := s.Upsert(ctx, Connection{Org: "acme", Name: "pg", URL: "postgres://h/x"}); !errors.Is(err, ErrExists) {
		t.Errorf("Upsert of another org's name = %v, want ErrExists", err)
	}
	if _, err := s.Create(ctx, Connection{Org: "acme", Name: "acme-pg", URL: "postgres://h/x"}); err != nil {
		t.Fatal(err)
	}

	list, err := s.List(ctx, "default")
	if err != nil || len(list) != 2 || list[0].Name != "pg" || list[1].Name != "pg2" {
		t.Errorf("List(default) = %v, %v; want pg, pg2", list, err)
	}
	if list, err := s.List(ctx, "acme"); err != nil || len(list) != 1 {
		t.Errorf("List(acme) = %v, %v; want acme-pg", list, err)
	}

	if err := s.Delete(ctx, "pg2"); err != nil {
		t.Errorf("Delete: %v", err)
	}
	if err := s.Delete(ctx, "pg2"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Delete again = %v, want ErrNotFound", err)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		c    Connection
		want string // "" = valid
	}{
		{"valid", Connection{Name: "pg", URL: "postgres://u:" + pw + "@h:5432/db?sslmode=disable"}, ""},
		{"postgresql scheme", Connection{Name: "pg", URL: "postgresql://h/db"}, ""},
		{"socket host", Connection{Name: "pg", URL: "postgres:///db?host=/var/run/postgresql"}, ""},
		{"bad name", Connection{Name: "p g", URL: "postgres://h/db"}, "name"},
		{"empty name", Connection{URL: "postgres://h/db"}, "name"},
		{"bad kind", Connection{Name: "pg", Kind: "mysql", URL: "postgres://h/db"}, "kind"},
		{"no URL", Connection{Name: "pg"}, "URL is required"},
		{"key=value DSN", Connection{Name: "pg", URL: "host=h password=" + pw}, "scheme"},
		{"http scheme", Connection{Name: "pg", URL: "http://u:" + pw + "@h/db"}, "scheme"},
		{"unparseable", Connection{Name: "pg", URL: "postgres://u:" + pw + "@h:port/db"}, "does not parse"},
		{"driver rejects", Connection{Name: "pg", URL: "postgres://u:" + pw + "@h/db?sslmode=bogus"}, "rejected by the driver"},
		{"driver rejects, password in query", Connection{Name: "pg", URL: "postgres://u@h/db?password=" + pw + "&sslmode=bogus"}, "rejected by the driver"},
		{"max conns", Connection{Name: "pg", URL: "postgres://h/db", Options: Options{MaxConns: -1}}, "max conns"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.c
			err := Validate(&c)
			if tt.want == "" {
				if err != nil {
					t.Errorf("Validate = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate = %v, want ErrInvalid mentioning %q", err, tt.want)
			}
			if strings.Contains(err.Error(), pw) {
				t.Errorf("Validate error shows the password: %v", err)
			}
		})
	}
}

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"postgres://u:" + pw + "@h/db", "postgres://u:xxxxx@h/db"},
		{"postgres://u@h/db", "postgres://u@h/db"},
		{"postgres://h/db?password=" + pw + "&sslmode=require", "postgres://h/db?password=xxxxx&sslmode=require"},
		{"postgres://h/db?sslpassword=" + pw, "postgres://h/db?sslpassword=xxxxx"},
		{"postgres://u:" + pw + "@h:bad/db", "(unparseable URL)"},
	}
	for _, tt := range tests {
		if got := RedactURL(tt.in); got != tt.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestPools(t *testing.T) {
	meta := pgtest.Meta(t)
	data := pgtest.Data(t)
	ctx := t.Context()
	s := New(meta.Pool, keyring(t, secret.GenerateKey()))
	if _, err := s.Create(ctx, Connection{Name: "gis", URL: data.URL, Options: Options{StatementTimeout: 1234 * time.Millisecond}}); err != nil {
		t.Fatal(err)
	}
	pools := NewPools(s, PoolsConfig{}, testLog(t))
	defer pools.Close()

	// Concurrent first use opens one pool.
	const n = 6
	got := make([]any, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := pools.Pool(ctx, "gis")
			if err != nil {
				t.Errorf("Pool: %v", err)
			}
			got[i] = p
		}()
	}
	wg.Wait()
	for i := range n {
		if got[i] != got[0] {
			t.Fatalf("concurrent Pool calls returned different pools")
		}
	}
	pool, _ := pools.Pool(ctx, "gis")

	var version, timeout, readOnly string
	if err := pool.QueryRow(ctx, "SELECT postgis_version()").Scan(&version); err != nil || version == "" {
		t.Fatalf("postgis_version() = %q, %v", version, err)
	}
	if err := pool.QueryRow(ctx, "SELECT current_setting('statement_timeout'), current_setting('default_transaction_read_only')").Scan(&timeout, &readOnly); err != nil {
		t.Fatal(err)
	}
	if timeout != "1234ms" || readOnly != "off" {
		t.Errorf("statement_timeout, read_only = %q, %q; want 1234ms, off", timeout, readOnly)
	}
	if _, err := pool.Exec(ctx, "CREATE TABLE w (id int)"); err != nil {
		t.Errorf("writing on a read-write connection: %v", err)
	}
	if _, err := pool.Exec(ctx, "SELECT pg_sleep(3)"); !isCode(err, "57014") {
		t.Errorf("pg_sleep(3) under a 1234ms statement_timeout = %v, want query_canceled", err)
	}

	// An update through the Store re-opens the pool with the new options.
	if _, _, err := s.Upsert(ctx, Connection{Name: "gis", URL: data.URL, Options: Options{ReadOnly: true, MaxConns: 3}}); err != nil {
		t.Fatal(err)
	}
	pool2, err := pools.Pool(ctx, "gis")
	if err != nil {
		t.Fatal(err)
	}
	if pool2 == pool {
		t.Fatalf("Pool after Upsert returned the old pool")
	}
	if err := pool2.QueryRow(ctx, "SELECT current_setting('statement_timeout'), current_setting('default_transaction_read_only')").Scan(&timeout, &readOnly); err != nil {
		t.Fatal(err)
	}
	if timeout != "30s" || readOnly != "on" || pool2.Config().MaxConns != 3 {
		t.Errorf("after Upsert: statement_timeout %q, read_only %q, max conns %d; want 30s, on, 3", timeout, readOnly, pool2.Config().MaxConns)
	}
	if _, err := pool2.Exec(ctx, "CREATE TABLE w2 (id int)"); !isCode(err, "25006") {
		t.Errorf("writing on a read-only connection = %v, want read_only_sql_transaction", err)
	}

	// A change made by another node is picked up by Refresh.
	other := New(meta.Pool, s.keyring)
	if _, _, err := other.Upsert(ctx, Connection{Name: "gis", URL: data.URL, Options: Options{StatementTimeout: -1}}); err != nil {
		t.Fatal(err)
	}
	if p, _ := pools.Pool(ctx, "gis"); p != pool2 {
		t.Fatalf("pool changed before Refresh")
	}
	if err := pools.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	pool3, err := pools.Pool(ctx, "gis")
	if err != nil || pool3 == pool2 {
		t.Fatalf("Pool after Refresh = same %v, err %v", pool3 == pool2, err)
	}
	if err := pool3.QueryRow(ctx, "SELECT current_setting('statement_timeout')").Scan(&timeout); err != nil || timeout != "0" {
		t.Errorf("statement_timeout with a negative option = %q, %v; want 0", timeout, err)
	}
	if err := pools.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if p, _ := pools.Pool(ctx, "gis"); p != pool3 {
		t.Errorf("Refresh without changes re-opened the pool")
	}

	// Unknown and deleted connections.
	if _, err := pools.Pool(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Pool(unknown) = %v, want ErrNotFound", err)
	}
	if err := other.Delete(ctx, "gis"); err != nil {
		t.Fatal(err)
	}
	if err := pools.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := pools.Pool(ctx, "gis"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Pool after delete = %v, want ErrNotFound", err)
	}

	// An unreachable database fails without caching the failure or
	// leaking the password.
	if _, err := s.Create(ctx, Connection{Name: "down", URL: "postgres://u:" + pw + "@127.0.0.1:1/db?connect_timeout=1"}); err != nil {
		t.Fatal(err)
	}
	_, err = pools.Pool(ctx, "down")
	if err == nil || strings.Contains(err.Error(), pw) {
		t.Errorf("Pool(unreachable) = %v, want an error without the password", err)
	}

	pools.Close()
	if _, err := pools.Pool(ctx, "gis"); !errors.Is(err, ErrClosed) {
		t.Errorf("Pool after Close = %v, want ErrClosed", err)
	}
	if err := pool3.Ping(ctx); err == nil {
		t.Errorf("pool still usable after Close")
	}
}

func isCode(err error, code string) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == code
}

// A query whose client closed its connection without a cancel request
// (a request abandoned while the cancel raced the start of the statement)
// stops on the server instead of running to its end.
func TestPoolsClientCheck(t *testing.T) {
	meta := pgtest.Meta(t)
	data := pgtest.Data(t)
	ctx := t.Context()
	s := New(meta.Pool, keyring(t, secret.GenerateKey()))
	if _, err := s.Create(ctx, Connection{Name: "gis", URL: data.URL}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		interval time.Duration
		want     string
	}{{0, "1s"}, {250 * time.Millisecond, "250ms"}, {-1, "0"}} {
		pools := NewPools(s, PoolsConfig{ClientCheckInterval: tc.interval}, testLog(t))
		pool, err := pools.Pool(ctx, "gis")
		if err != nil {
			t.Fatal(err)
		}
		var got string
		if err := pool.QueryRow(ctx, "SELECT current_setting('client_connection_check_interval')").Scan(&got); err != nil || got != tc.want {
			t.Errorf("ClientCheckInterval %v: client_connection_check_interval = %q, %v; want %q", tc.interval, got, err, tc.want)
		}
		pools.Close()
	}

	pools := NewPools(s, PoolsConfig{}, testLog(t))
	defer pools.Close()
	pool, err := pools.Pool(ctx, "gis")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Taken from the pool and from the driver, which would send a cancel
	// request when its socket fails: this client just goes.
	hc, err := conn.Hijack().PgConn().Hijack()
	if err != nil {
		t.Fatal(err)
	}
	pid := hc.PID
	hc.Frontend.Send(&pgproto3.Query{String: "SELECT pg_sleep(30)"})
	if err := hc.Frontend.Flush(); err != nil {
		t.Fatal(err)
	}
	running := func() bool {
		var n int
		if err := data.Pool.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND state = 'active' AND query LIKE '%pg_sleep(30)%'", pid).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 1
	}
	deadline := time.Now().Add(15 * time.Second)
	for !running() {
		if time.Now().After(deadline) {
			t.Fatal("the query never ran")
		}
		time.Sleep(10 * time.Millisecond)
	}
	hc.Conn.Close() // no cancel request, no Terminate
	deadline = time.Now().Add(15 * time.Second)
	for running() {
		if time.Now().After(deadline) {
			t.Fatal("the query of a closed connection still runs after 15 s of its 30")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
