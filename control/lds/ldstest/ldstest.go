// Package ldstest gives tests one LDS fixture database per test cluster:
// Natural Earth admin-0/admin-1, GeoNames cities, the postal codes of US,
// LI and AD, and the Delaware, Liechtenstein and Andorra OSM extracts,
// loaded once by `ldsload` into database meridian_lds_fixture (under an
// advisory lock, so test packages running at once share one load; about
// half a minute on two cores) and read by every test afterwards. Tests
// must treat it as read-only. The marker table meridian_lds.fixture_v5
// says a load completed; bump its version when the schema changes.
package ldstest

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/meridian-gis/meridian/control/lds/geocode"
	"github.com/meridian-gis/meridian/control/lds/ldsload"
	"github.com/meridian-gis/meridian/internal/pgdb/pgtest"
)

// dbName is the fixture database.
const dbName = "meridian_lds_fixture"

const fixtureLock int64 = 0x6c6473666978

// DataDir is the shared geodata folder (MERIDIAN_TESTDATA, else ../shared/data
// from the repository root).
func DataDir(t testing.TB) string {
	t.Helper()
	d := os.Getenv("MERIDIAN_TESTDATA")
	if d == "" {
		wd, _ := os.Getwd()
		for dir := wd; dir != "/"; dir = filepath.Dir(dir) {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				d = filepath.Join(dir, "..", "shared", "data")
				break
			}
		}
	}
	if _, err := os.Stat(filepath.Join(d, "osm", "delaware-2016-08-10.osm.pbf")); err != nil {
		t.Fatalf("LDS test data not found in %q: set MERIDIAN_TESTDATA to the shared geodata folder", d)
	}
	return d
}

// Options are what the fixture loads from dataDir.
func Options(dataDir string) ldsload.Options {
	return ldsload.Options{
		Admin0:            dataDir + "/polygons/ne_10m_admin_0_countries.geojson.gz",
		Admin1:            dataDir + "/polygons/ne_10m_admin_1_states_provinces.geojson.gz",
		Places:            dataDir + "/points/geonames_cities1000.csv.gz",
		Postcodes:         dataDir + "/points/geonames_postal_codes_117_countries.csv.gz",
		PostcodeCountries: []string{"US", "LI", "AD"},
		Regions: []ldsload.Region{
			{File: dataDir + "/osm/delaware-2016-08-10.osm.pbf"},
			{File: dataDir + "/osm/liechtenstein-2013-08-03.osm.pbf"},
			{File: dataDir + "/osm/andorra-2018-03-01.osm.bz2"},
		},
	}
}

// URL returns the fixture database's superuser URL, loading it first if
// this cluster has none yet.
func URL(t testing.TB) string {
	t.Helper()
	admin := pgtest.AdminURL(t)
	dataDir := DataDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("connecting to the test cluster: %v", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", fixtureLock); err != nil {
		t.Fatal(err)
	}
	defer conn.Exec(context.Background(), "SELECT pg_advisory_unlock($1)", fixtureLock)
	u, _ := url.Parse(admin)
	u.Path = "/" + dbName
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", dbName).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		dc, err := pgx.Connect(ctx, u.String())
		if err != nil {
			t.Fatal(err)
		}
		var done bool
		dc.QueryRow(ctx, "SELECT to_regclass('meridian_lds.fixture_v5') IS NOT NULL").Scan(&done)
		dc.Close(context.Background())
		if done {
			return u.String()
		}
		if _, err := conn.Exec(ctx, "DROP DATABASE "+dbName+" WITH (FORCE)"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+dbName); err != nil {
		t.Fatal(err)
	}
	dc, err := pgx.Connect(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer dc.Close(context.Background())
	for _, ext := range []string{"postgis", "pgrouting"} {
		if _, err := dc.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS "+ext); err != nil {
			t.Fatalf("creating extension %s (Debian: postgresql-15-postgis-3, postgresql-15-pgrouting; scripts/ensure-deps.sh installs them): %v", ext, err)
		}
	}
	start := time.Now()
	l := ldsload.New(dc, nil, func(f string, a ...any) { t.Logf("ldstest: "+f, a...) })
	if err := l.Load(ctx, Options(dataDir)); err != nil {
		t.Fatalf("loading the LDS fixture: %v", err)
	}
	if _, err := dc.Exec(ctx, "CREATE TABLE meridian_lds.fixture_v5 ()"); err != nil {
		t.Fatal(err)
	}
	t.Logf("ldstest: fixture loaded in %s", time.Since(start).Round(time.Second))
	return u.String()
}

// Pool opens a pool on the fixture database (as the service configures
// it), closed when t ends.
func Pool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pc, err := pgxpool.ParseConfig(URL(t))
	if err != nil {
		t.Fatal(err)
	}
	pc.AfterConnect = geocode.AfterConnect
	p, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}
