package pgdb_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/meridian-gis/meridian/internal/pgdb"
	"github.com/meridian-gis/meridian/internal/pgdb/pgtest"
)

func TestMigrationsWellFormed(t *testing.T) {
	ms, err := pgdb.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 {
		t.Fatal("no embedded migrations")
	}
	for i := 1; i < len(ms); i++ {
		if ms[i].Version <= ms[i-1].Version {
			t.Errorf("migration %d after %d: not in order", ms[i].Version, ms[i-1].Version)
		}
	}
}

func TestMigrateTwiceAndConcurrently(t *testing.T) {
	db := pgtest.New(t, pgtest.Options{})
	ctx := context.Background()
	ms, _ := pgdb.Migrations()

	var wg sync.WaitGroup
	applied := make([][]int, 4)
	errs := make([]error, 4)
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			applied[i], errs[i] = pgdb.Migrate(ctx, db.Pool)
		}()
	}
	wg.Wait()
	total := 0
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Migrate #%d: %v", i, err)
		}
		total += len(applied[i])
	}
	if total != len(ms) {
		t.Errorf("concurrent Migrate applied %d migrations in all, want %d (each exactly once)", total, len(ms))
	}
	again, err := pgdb.Migrate(ctx, db.Pool)
	if err != nil || len(again) != 0 {
		t.Errorf("second Migrate = %v, %v; want nothing applied", again, err)
	}
	var n int
	db.Pool.QueryRow(ctx, "SELECT count(*) FROM schema_migrations").Scan(&n)
	if n != len(ms) {
		t.Errorf("schema_migrations has %d rows, want %d", n, len(ms))
	}
}

func TestNewPoolErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := pgdb.NewPool(ctx, "postgres://u:secret@127.0.0.1:1/x?connect_timeout=1", pgdb.PoolConfig{}, nil); err == nil {
		t.Error("unreachable database: got nil error")
	} else if s := err.Error(); strings.Contains(s, "secret") {
		t.Errorf("error leaks the password: %s", s)
	}
	if _, err := pgdb.NewPool(ctx, "::not a url::", pgdb.PoolConfig{}, nil); err == nil {
		t.Error("bad URL: got nil error")
	}
}
