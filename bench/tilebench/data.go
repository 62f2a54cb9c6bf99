package tilebench

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrNoOGR is wrapped by the error of LookOGR when GDAL's ogr2ogr is not
// installed: the scenarios skip on it.
var ErrNoOGR = errors.New("tilebench: ogr2ogr (GDAL) not installed")

// LookOGR returns the path of ogr2ogr.
func LookOGR() (string, error) {
	p, err := exec.LookPath("ogr2ogr")
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrNoOGR, err)
	}
	return p, nil
}

// Dataset is a table of the tile scenarios, loaded from a file of the
// geodata library into schema public with a geometry column named geom
// (SRID 4326) and a GiST index on it.
type Dataset struct {
	// Name labels the dataset in variant names ("admin1").
	Name string `json:"name"`
	// Table is the table name in schema public.
	Table string `json:"table"`
	// Columns are the properties every tile carries, as ANCHORS.md
	// measured.
	Columns []string `json:"columns"`
	// Rows is the row count a load must give.
	Rows int64 `json:"rows"`
	// File is the source file, relative to the data folder.
	File string `json:"file"`

	load func(ctx context.Context, dbURL, path string) error
}

// Admin1 is Natural Earth 10m admin-1 states and provinces: 4,854
// MultiPolygons with about 260 columns, of which tiles carry name, admin
// and iso_3166_2. Loaded by ogr2ogr.
func Admin1() Dataset {
	return Dataset{
		Name:    "admin1",
		Table:   "admin1",
		Columns: []string{"name", "admin", "iso_3166_2"},
		Rows:    4854,
		File:    "polygons/ne_10m_admin_1_states_provinces.geojson.gz",
		load:    loadAdmin1,
	}
}

// Postal is GeoNames postal codes of 117 countries: 1,201,340 Points, of
// which tiles carry zipcode and place. Loaded by COPY (ogr2ogr takes
// minutes on it).
func Postal() Dataset {
	return Dataset{
		Name:    "postal",
		Table:   "postal",
		Columns: []string{"zipcode", "place"},
		Rows:    1201340,
		File:    "points/geonames_postal_codes_117_countries.csv.gz",
		load:    loadPostal,
	}
}

// Load creates d's table in the database at dbURL (a superuser URL:
// PostGIS is created when missing) from the data folder dataDir, indexes
// it, analyzes it and checks its row count. Load datasets one after the
// other: creating the extension concurrently races.
func Load(ctx context.Context, dbURL, dataDir string, d Dataset) error {
	if d.load == nil {
		return fmt.Errorf("loading dataset %q: unknown dataset", d.Name)
	}
	c, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return fmt.Errorf("loading %s: connecting: %w", d.Name, err)
	}
	defer c.Close(context.WithoutCancel(ctx))
	if _, err := c.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS postgis"); err != nil {
		return fmt.Errorf("loading %s: creating postgis: %w", d.Name, err)
	}
	if err := d.load(ctx, dbURL, filepath.Join(dataDir, d.File)); err != nil {
		return fmt.Errorf("loading %s: %w", d.Name, err)
	}
	tbl := pgx.Identifier{"public", d.Table}.Sanitize()
	if _, err := c.Exec(ctx, "VACUUM ANALYZE "+tbl); err != nil {
		return fmt.Errorf("loading %s: analyzing: %w", d.Name, err)
	}
	var n int64
	if err := c.QueryRow(ctx, "SELECT count(*) FROM "+tbl).Scan(&n); err != nil {
		return fmt.Errorf("loading %s: counting: %w", d.Name, err)
	}
	if n != d.Rows {
		return fmt.Errorf("loading %s: %d rows, want %d", d.Name, n, d.Rows)
	}
	return nil
}

// loadAdmin1 runs ogr2ogr as tiles/internal/geotest does: typed
// MULTIPOLYGON, names kept as they are (LAUNDER=NO). The file has both the
// province's own name/admin fields and the parent country's NAME/ADMIN;
// GDAL renames the lower-case ones name2/admin2, which get their names
// back.
func loadAdmin1(ctx context.Context, dbURL, path string) error {
	ogr, err := LookOGR()
	if err != nil {
		return err
	}
	pg, err := OGRConn(dbURL)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, ogr, "-f", "PostgreSQL", pg, "/vsigzip/"+path,
		"-nln", "admin1", "-nlt", "MULTIPOLYGON",
		"-lco", "GEOMETRY_NAME=geom", "-lco", "FID=id", "-lco", "SPATIAL_INDEX=GIST", "-lco", "LAUNDER=NO")
	cmd.WaitDelay = 5 * time.Second
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("running ogr2ogr: %w: %s", err, tailText(out, 1500))
	}
	c, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	if _, err := c.Exec(ctx, `ALTER TABLE admin1 RENAME COLUMN name2 TO name;
		ALTER TABLE admin1 RENAME COLUMN admin2 TO admin`); err != nil {
		return fmt.Errorf("renaming admin1 columns: %w", err)
	}
	return nil
}

// postalColumns are the CSV's columns, in order (its header line).
const postalColumns = "country_code, zipcode, place, state, state_code, province, province_code, community, community_code, latitude, longitude"

// loadPostal COPYs the GeoNames CSV into a table whose geometry is a
// generated column (no second pass), then builds the GiST index.
func loadPostal(ctx context.Context, dbURL, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	c, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	if _, err := c.Exec(ctx, `CREATE TABLE postal (
		id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
		country_code text, zipcode text, place text, state text, state_code text,
		province text, province_code text, community text, community_code text,
		latitude double precision, longitude double precision,
		geom geometry(Point, 4326) GENERATED ALWAYS AS (ST_SetSRID(ST_MakePoint(longitude, latitude), 4326)) STORED)`); err != nil {
		return fmt.Errorf("creating postal: %w", err)
	}
	if _, err := c.PgConn().CopyFrom(ctx, zr, "COPY postal ("+postalColumns+") FROM STDIN (FORMAT csv, HEADER true)"); err != nil {
		return fmt.Errorf("copying %s: %w", path, err)
	}
	if _, err := c.Exec(ctx, "CREATE INDEX postal_geom_idx ON postal USING gist (geom)"); err != nil {
		return fmt.Errorf("indexing postal: %w", err)
	}
	return nil
}

// OGRConn turns a postgres:// URL into GDAL's "PG:key=value" form (GDAL
// 3.6 does not read URLs). Values with spaces or quotes are refused.
func OGRConn(dbURL string) (string, error) {
	u, err := url.Parse(dbURL)
	if err != nil {
		return "", fmt.Errorf("parsing database URL: %w", err)
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return "", fmt.Errorf("database URL scheme %q: want postgres", u.Scheme)
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
	for _, p := range kv {
		if strings.ContainsAny(p, " '\\\t\n") {
			return "", fmt.Errorf("database URL: %q cannot be passed to GDAL unquoted", strings.SplitN(p, "=", 2)[0])
		}
	}
	return "PG:" + strings.Join(kv, " "), nil
}

// CreateDatabase creates database name through the superuser URL admin
// and returns the URL of the new database.
func CreateDatabase(ctx context.Context, admin, name string) (string, error) {
	c, err := pgx.Connect(ctx, admin)
	if err != nil {
		return "", fmt.Errorf("creating database %s: %w", name, err)
	}
	defer c.Close(context.WithoutCancel(ctx))
	if _, err := c.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("creating database %s: %w", name, err)
	}
	u, err := url.Parse(admin)
	if err != nil {
		return "", fmt.Errorf("creating database %s: %w", name, err)
	}
	u.Path = "/" + name
	return u.String(), nil
}

// tailText returns the last n bytes of b as trimmed text.
func tailText(b []byte, n int) string {
	s := strings.TrimSpace(string(b))
	if len(s) > n {
		s = "…" + s[len(s)-n:]
	}
	return s
}
