// Package pgtest gives integration tests a fresh database on the throwaway
// cluster named by MERIDIAN_TEST_DATABASE (a superuser URL; `make test`
// starts such a cluster with internal/pgcluster/withpg). Each call makes a
// new database, so tests never see each other's rows, and drops it when
// the test ends.
//
// Without MERIDIAN_TEST_DATABASE, or with -short, tests are skipped — unless
// MERIDIAN_REQUIRE_DB is set (CI), in which case they fail, so a broken
// harness can never pass as "all skipped".
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/meridian-gis/meridian/internal/pgdb"
)

// EnvURL names the variable holding the test cluster's superuser URL.
const EnvURL = "MERIDIAN_TEST_DATABASE"

// templateLock serializes template creation across test processes.
const templateLock int64 = 0x6d6572746d706c

// AdminURL returns the superuser URL of the test cluster, or skips t.
func AdminURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(EnvURL)
	if u == "" || testing.Short() {
		if os.Getenv("MERIDIAN_REQUIRE_DB") != "" {
			t.Fatalf("%s is not set but MERIDIAN_REQUIRE_DB is: run tests through `make test`", EnvURL)
		}
		t.Skipf("integration test: set %s (make test does) and do not use -short", EnvURL)
	}
	return u
}

// Options choose what a new database starts with.
type Options struct {
	// PostGIS creates the postgis extension.
	PostGIS bool
	// Migrate applies the metadata schema (pgdb.Migrate).
	Migrate bool
}

// DB is one throwaway database.
type DB struct {
	Name string
	URL  string // superuser URL of this database
	Pool *pgxpool.Pool
}

// New creates a database for t with opts and drops it at cleanup.
func New(t testing.TB, opts Options) *DB {
	t.Helper()
	admin := AdminURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("connecting to test cluster: %v", err)
	}
	defer conn.Close(context.Background())

	tmpl := "template1"
	if opts.PostGIS {
		tmpl = "meridian_tmpl_postgis"
		if err := ensureTemplate(ctx, conn, tmpl); err != nil {
			t.Fatalf("creating postgis template: %v", err)
		}
	}
	var b [6]byte
	rand.Read(b[:])
	name := "t_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name+" TEMPLATE "+tmpl); err != nil {
		t.Fatalf("creating test database: %v", err)
	}
	u, _ := url.Parse(admin)
	u.Path = "/" + name
	db := &DB{Name: name, URL: u.String()}
	t.Cleanup(func() {
		if db.Pool != nil {
			db.Pool.Close()
		}
		c, err := pgx.Connect(context.Background(), admin)
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	db.Pool, err = pgdb.NewPool(ctx, db.URL, pgdb.PoolConfig{MaxConns: 20}, nil)
	if err != nil {
		t.Fatalf("opening test database: %v", err)
	}
	if opts.Migrate {
		if _, err := pgdb.Migrate(ctx, db.Pool); err != nil {
			t.Fatalf("migrating test database: %v", err)
		}
	}
	return db
}

// Meta returns a fresh migrated metadata database.
func Meta(t testing.TB) *DB { return New(t, Options{Migrate: true}) }

// Data returns a fresh database with PostGIS, as a data connection would be.
func Data(t testing.TB) *DB { return New(t, Options{PostGIS: true}) }

func ensureTemplate(ctx context.Context, conn *pgx.Conn, name string) error {
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", templateLock); err != nil {
		return err
	}
	defer conn.Exec(context.Background(), "SELECT pg_advisory_unlock($1)", templateLock)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return err
	}
	u, _ := url.Parse(conn.Config().ConnString())
	if u == nil || u.Host == "" {
		return fmt.Errorf("cannot derive template URL")
	}
	u.Path = "/" + name
	tc, err := pgx.Connect(ctx, u.String())
	if err != nil {
		return err
	}
	_, err = tc.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS postgis")
	tc.Close(context.Background())
	if err != nil {
		conn.Exec(ctx, "DROP DATABASE "+name)
		return err
	}
	_, err = conn.Exec(ctx, "ALTER DATABASE "+name+" WITH is_template true")
	return err
}
