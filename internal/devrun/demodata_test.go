package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meridian-gis/meridian/internal/pgdb/pgtest"
)

// testDataDir returns the shared geodata folder, or skips (fails under
// MERIDIAN_REQUIRE_DB, as CI has it beside the clone).
func testDataDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("MERIDIAN_TESTDATA")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "shared", "data")
	}
	if _, err := os.Stat(filepath.Join(dir, demoTables()[0].File)); err != nil {
		if os.Getenv("MERIDIAN_REQUIRE_DB") != "" {
			t.Fatalf("demo data not found in %s (set MERIDIAN_TESTDATA): %v", dir, err)
		}
		t.Skipf("demo data not found in %s (set MERIDIAN_TESTDATA)", dir)
	}
	abs, _ := filepath.Abs(dir)
	return abs
}

func TestOgrConnString(t *testing.T) {
	tests := []struct {
		url, want, wantPW string
	}{
		{
			"postgres://meridian_data:s3cr%2Ft@127.0.0.1:5433/meridian_data?sslmode=disable",
			"PG:host=127.0.0.1 port=5433 dbname=meridian_data user=meridian_data sslmode=disable", "s3cr/t",
		},
		{
			"postgresql://u@db.example.com/my%20db",
			"PG:host=db.example.com dbname='my db' user=u sslmode=prefer", "",
		},
		{
			"postgres://o%27neil:pw@h/d?sslmode=verify-full&sslrootcert=/etc/ca.pem",
			`PG:host=h dbname=d user='o\'neil' sslmode=verify-full sslrootcert=/etc/ca.pem`, "pw",
		},
	}
	for _, tt := range tests {
		got, pw, err := ogrConnString(tt.url)
		if err != nil || got != tt.want || pw != tt.wantPW {
			t.Errorf("ogrConnString(%q) = %q, %q, %v; want %q, %q", tt.url, got, pw, err, tt.want, tt.wantPW)
		}
		if strings.Contains(got, tt.wantPW) && tt.wantPW != "" {
			t.Errorf("ogrConnString(%q) = %q: the password must not be on the command line", tt.url, got)
		}
	}
	if _, _, err := ogrConnString("host=localhost dbname=x"); err == nil {
		t.Error("ogrConnString(keyword/value string) succeeded, want an error")
	}
}

func TestLoadDemoDataMissingFiles(t *testing.T) {
	err := loadDemoData(context.Background(), "postgres://nobody@127.0.0.1:1/x", t.TempDir(), testLogger(t))
	if err == nil || !strings.Contains(err.Error(), "MERIDIAN_TESTDATA") || !strings.Contains(err.Error(), "ne_50m_admin_0_countries") {
		t.Errorf("loadDemoData(empty folder) = %v, want an error naming the file and MERIDIAN_TESTDATA", err)
	}
}

func TestLoadDemoData(t *testing.T) {
	dataDir := testDataDir(t)
	db := pgtest.Data(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// Leftovers of a load cut short must not get in the way.
	if _, err := db.Pool.Exec(ctx, "CREATE SCHEMA "+loadSchema+"; CREATE TABLE "+loadSchema+".countries (x int)"); err != nil {
		t.Fatal(err)
	}
	if err := loadDemoData(ctx, db.URL, dataDir, testLogger(t)); err != nil {
		t.Fatalf("loadDemoData: %v", err)
	}

	tests := []struct {
		table, geomType string
		rows            int
	}{
		{"countries", "MULTIPOLYGON", 241},
		{"populated_places", "POINT", 7343},
	}
	oids := map[string]uint32{}
	for _, tt := range tests {
		var rows int
		var typ string
		var srid int
		var oid uint32
		err := db.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM public.`+tt.table+`), type, srid, $1::regclass::oid
			FROM geometry_columns WHERE f_table_schema = 'public' AND f_table_name = $2 AND f_geometry_column = 'geom'`,
			"public."+tt.table, tt.table).Scan(&rows, &typ, &srid, &oid)
		if err != nil {
			t.Errorf("%s: %v", tt.table, err)
			continue
		}
		oids[tt.table] = oid
		if rows != tt.rows || typ != tt.geomType || srid != 4326 {
			t.Errorf("%s: %d rows of %s/%d, want %d rows of %s/4326", tt.table, rows, typ, srid, tt.rows, tt.geomType)
		}
		var gist, pk bool
		if err := db.Pool.QueryRow(ctx, `SELECT
			EXISTS (SELECT 1 FROM pg_indexes WHERE schemaname = 'public' AND tablename = $1 AND indexdef LIKE '%USING gist (geom)%'),
			EXISTS (SELECT 1 FROM pg_indexes WHERE schemaname = 'public' AND tablename = $1 AND indexdef LIKE '%UNIQUE%(cartodb_id)%')`,
			tt.table).Scan(&gist, &pk); err != nil || !gist || !pk {
			t.Errorf("%s: GIST index on geom %v, unique cartodb_id %v (err %v), want both", tt.table, gist, pk, err)
		}
	}
	var staging bool
	db.Pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", loadSchema).Scan(&staging)
	if staging {
		t.Errorf("schema %s left behind", loadSchema)
	}

	// A second run finds the tables and leaves them alone.
	if err := loadDemoData(ctx, db.URL, dataDir, testLogger(t)); err != nil {
		t.Fatalf("second loadDemoData: %v", err)
	}
	for table, oid := range oids {
		var now uint32
		if err := db.Pool.QueryRow(ctx, "SELECT $1::regclass::oid", "public."+table).Scan(&now); err != nil || now != oid {
			t.Errorf("%s reloaded by the second run (oid %d -> %d, err %v)", table, oid, now, err)
		}
	}
}
