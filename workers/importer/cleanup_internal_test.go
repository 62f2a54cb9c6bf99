package importer

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/meridian-gis/meridian/internal/pgdb/pgtest"
)

func TestCleanupStale(t *testing.T) {
	db := pgtest.Data(t)
	ctx := context.Background()
	old := time.Now().Add(-48 * time.Hour).UTC().Format(time.RFC3339)
	for _, q := range []string{
		"CREATE TABLE _mi_old_s (a int)", "COMMENT ON TABLE _mi_old_s IS 'meridian import old started " + old + "'",
		"CREATE TABLE _mi_new_s (a int)", "COMMENT ON TABLE _mi_new_s IS 'meridian import new started " + time.Now().UTC().Format(time.RFC3339) + "'",
		"CREATE TABLE _mi_held_s (a int)", "COMMENT ON TABLE _mi_held_s IS 'meridian import held started " + old + "'",
		"CREATE TABLE _mi_user_table (a int)", // not ours: no comment
	} {
		if _, err := db.Pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	// A running import holds its lock.
	conn, err := db.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", lockKey("import:public:held")); err != nil {
		t.Fatal(err)
	}
	defer conn.Exec(ctx, "SELECT pg_advisory_unlock($1)", lockKey("import:public:held"))

	dropped, err := CleanupStale(ctx, db.Pool, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(dropped, []string{"public._mi_old_s"}) {
		t.Errorf("CleanupStale dropped %v, want [public._mi_old_s]", dropped)
	}
	for _, name := range []string{"_mi_new_s", "_mi_held_s", "_mi_user_table"} {
		var ok bool
		db.Pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", name).Scan(&ok)
		if !ok {
			t.Errorf("%s was dropped", name)
		}
	}
}
