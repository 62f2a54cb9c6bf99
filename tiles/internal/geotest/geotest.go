// Package geotest gives the tiles engine's integration tests a PostGIS
// database holding real geodata from the shared data library
// (/work/shared/data, see SOURCES.md): Natural Earth admin-1 polygons and
// rivers, GeoNames postal codes (1.2 M points), Natural Earth 110m populated
// places and OSM Delaware buildings.
//
// Loading takes about 15 s, so it happens once per test cluster: the first
// caller builds a template database under an advisory lock and every test
// gets its own copy (CREATE DATABASE … TEMPLATE), dropped at cleanup.
//
// The data folder is $MERIDIAN_TESTDATA, or ../shared/data next to the
// repository root. Tests are skipped when it is missing, and (as with
// pgtest) when no test cluster is configured.
package geotest

import (
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/meridian-gis/meridian/internal/pgdb"
	"github.com/meridian-gis/meridian/internal/pgdb/pgtest"
)

// Tables loaded into every database, all in schema public with a geometry
// column named geom:
const (
	// Admin1 is NE 10m admin-1 states and provinces: 4,854 MultiPolygons
	// (SRID 4326, typed MULTIPOLYGON) with ~300 columns such as name
	// ("New York"), admin ("United States of America"), iso_3166_2
	// ("US-NY"), and upper-case columns of the parent country (NAME, ADMIN…).
	Admin1 = "admin1"
	// Postal is GeoNames postal codes: 1,201,340 Points (SRID 4326) with
	// id, country_code, zipcode, place, state, latitude, longitude.
	Postal = "postal"
	// Rivers is NE 10m rivers and lake centre lines: 1,454 lines in an
	// untyped geometry column (SRID 4326), with name, scalerank.
	Rivers = "rivers"
	// Places is NE 110m populated places: 243 Points with name, adm0name,
	// iso_a2, pop_max.
	Places = "places"
	// Buildings is OSM Delaware buildings: 8,260 MultiPolygons.
	Buildings = "buildings"
)

// templateName changes whenever the loaded content changes.
const templateName = "meridian_tmpl_geodata_v5"

// lockID serializes template builds across test processes.
const lockID int64 = 0x6d657267656f64

// DataDir returns the shared data folder, or skips t when it is missing.
func DataDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("MERIDIAN_TESTDATA")
	if dir == "" {
		root, err := repoRoot()
		if err != nil {
			t.Skipf("geodata: %v", err)
		}
		dir = filepath.Join(root, "..", "shared", "data")
	}
	if _, err := os.Stat(filepath.Join(dir, "SOURCES.md")); err != nil {
		t.Skipf("geodata library not found at %s (set MERIDIAN_TESTDATA)", dir)
	}
	return dir
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("repository root (go.mod) not found")
		}
		dir = parent
	}
}

// DB is one throwaway copy of the geodata database.
type DB struct {
	// URL is a superuser URL of the copy.
	URL string
	// Pool is open on URL.
	Pool *pgxpool.Pool
}

// New returns a fresh copy of the geodata database, building the template
// first if this cluster has none yet.
func New(t testing.TB) *DB {
	t.Helper()
	admin := pgtest.AdminURL(t)
	dir := DataDir(t)
	if _, err := exec.LookPath("ogr2ogr"); err != nil {
		t.Skip("ogr2ogr (GDAL) is not installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("connecting to test cluster: %v", err)
	}
	defer conn.Close(context.Background())
	if err := ensureTemplate(ctx, conn, admin, dir); err != nil {
		t.Fatalf("building geodata template: %v", err)
	}
	var b [6]byte
	rand.Read(b[:])
	name := "g_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name+" TEMPLATE "+templateName); err != nil {
		t.Fatalf("copying geodata template: %v", err)
	}
	u := withDB(admin, name)
	db := &DB{URL: u}
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
	// Sessions check their client as data connections do (dataconn.Pools).
	db.Pool, err = pgdb.NewPool(ctx, u, pgdb.PoolConfig{MaxConns: 8, ClientCheckInterval: time.Second}, nil)
	if err != nil {
		t.Fatalf("opening geodata copy: %v", err)
	}
	return db
}

func withDB(admin, name string) string {
	u, _ := url.Parse(admin)
	u.Path = "/" + name
	return u.String()
}

func ensureTemplate(ctx context.Context, conn *pgx.Conn, admin, dir string) error {
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", lockID); err != nil {
		return err
	}
	defer conn.Exec(context.Background(), "SELECT pg_advisory_unlock($1)", lockID)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1 AND datistemplate)", templateName).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	building := templateName + "_building"
	conn.Exec(ctx, "DROP DATABASE IF EXISTS "+building+" WITH (FORCE)")
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+building); err != nil {
		return err
	}
	u := withDB(admin, building)
	if err := load(ctx, u, dir); err != nil {
		conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+building+" WITH (FORCE)")
		return err
	}
	if _, err := conn.Exec(ctx, "ALTER DATABASE "+building+" RENAME TO "+templateName); err != nil {
		return err
	}
	_, err := conn.Exec(ctx, "ALTER DATABASE "+templateName+" WITH is_template true")
	return err
}

func load(ctx context.Context, dbURL, dir string) error {
	c, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS postgis"); err != nil {
		return fmt.Errorf("creating postgis: %w", err)
	}
	pg, err := ogrConn(dbURL)
	if err != nil {
		return err
	}
	ogr := []struct {
		table, file string
		args        []string
	}{
		{Admin1, "/vsigzip/" + filepath.Join(dir, "polygons/ne_10m_admin_1_states_provinces.geojson.gz"), []string{"-nlt", "MULTIPOLYGON", "-lco", "LAUNDER=NO"}},
		{Rivers, "/vsigzip/" + filepath.Join(dir, "lines/ne_10m_rivers_lake_centerlines.geojson.gz"), nil},
		{Places, filepath.Join(dir, "points/ne_110m_populated_places.geojson"), nil},
		{Buildings, filepath.Join(dir, "buildings/osm_delaware_buildings.fgb"), nil},
	}
	for _, o := range ogr {
		args := append([]string{"-f", "PostgreSQL", pg, o.file, "-nln", o.table,
			"-lco", "GEOMETRY_NAME=geom", "-lco", "FID=id", "-lco", "SPATIAL_INDEX=GIST"}, o.args...)
		cmd := exec.CommandContext(ctx, "ogr2ogr", args...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("ogr2ogr %s: %w: %s", o.table, err, out)
		}
	}
	// GDAL renamed admin-1's own name and admin fields (the file also has
	// upper-case NAME and ADMIN fields of the parent country).
	if _, err := c.Exec(ctx, `ALTER TABLE admin1 RENAME COLUMN name2 TO name;
		ALTER TABLE admin1 RENAME COLUMN admin2 TO admin`); err != nil {
		return fmt.Errorf("renaming admin1 columns: %w", err)
	}
	if err := loadPostal(ctx, c, filepath.Join(dir, "points/geonames_postal_codes_117_countries.csv.gz")); err != nil {
		return fmt.Errorf("loading postal codes: %w", err)
	}
	if _, err := c.Exec(ctx, "VACUUM ANALYZE"); err != nil {
		return fmt.Errorf("analyzing: %w", err)
	}
	return nil
}

// loadPostal COPYs the GeoNames CSV; the geometry is a generated column, so
// no second pass over the table is needed.
func loadPostal(ctx context.Context, c *pgx.Conn, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return err
	}
	_, err = c.Exec(ctx, `CREATE TABLE postal (
		id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
		country_code text, zipcode text, place text, state text, state_code text,
		province text, province_code text, community text, community_code text,
		latitude double precision, longitude double precision,
		geom geometry(Point, 4326) GENERATED ALWAYS AS (ST_SetSRID(ST_MakePoint(longitude, latitude), 4326)) STORED)`)
	if err != nil {
		return err
	}
	_, err = c.PgConn().CopyFrom(ctx, io.Reader(zr), `COPY postal (country_code, zipcode, place, state, state_code,
		province, province_code, community, community_code, latitude, longitude) FROM STDIN (FORMAT csv, HEADER true)`)
	if err != nil {
		return err
	}
	_, err = c.Exec(ctx, "CREATE INDEX postal_geom_idx ON postal USING gist (geom)")
	return err
}

// ogrConn turns a postgres:// URL into GDAL's "PG:key=value" form (GDAL
// 3.6 does not read URLs).
func ogrConn(dbURL string) (string, error) {
	u, err := url.Parse(dbURL)
	if err != nil {
		return "", err
	}
	kv := []string{"host=" + u.Hostname(), "dbname=" + strings.TrimPrefix(u.Path, "/")}
	if p := u.Port(); p != "" {
		kv = append(kv, "port="+p)
	}
	if u.User != nil {
		kv = append(kv, "user="+u.User.Username())
		if pw, ok := u.User.Password(); ok {
			kv = append(kv, "password="+pw)
		}
	}
	return "PG:" + strings.Join(kv, " "), nil
}
