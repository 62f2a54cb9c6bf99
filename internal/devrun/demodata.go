package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// demoConnection is the data connection make run registers.
const demoConnection = "local"

// loadSchema is where a demo table is loaded before it is moved into
// public in one statement, so that a load cut short never leaves a
// half-filled public table (the next run drops the schema and retries).
const loadSchema = "meridian_demo_load"

// demoTable is one table of demo data.
type demoTable struct {
	// Table is the table's name in schema public.
	Table string
	// File is the source file, relative to the data folder.
	File string
	// Multi promotes polygons to multipolygons so that one geometry type fits all rows.
	Multi bool
}

// demoTables returns the demo tables (Natural Earth, public domain).
func demoTables() []demoTable {
	return []demoTable{
		{Table: "countries", File: "polygons/ne_50m_admin_0_countries.geojson.gz", Multi: true},
		{Table: "populated_places", File: "points/ne_10m_populated_places.geojson.gz"},
	}
}

// loadDemoData loads every demo table that dataURL's database lacks, as
// the role in dataURL (so that role owns them), with a GIST index on geom.
func loadDemoData(ctx context.Context, dataURL, dataDir string, log *slog.Logger) error {
	tables := demoTables()
	var missing []string
	for _, t := range tables {
		if _, err := os.Stat(filepath.Join(dataDir, t.File)); err != nil {
			missing = append(missing, filepath.Join(dataDir, t.File))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("demo data not found: %s; set MERIDIAN_TESTDATA (or -data) to the geodata folder "+
			"that holds polygons/ and points/ (the shared one is ../shared/data, see its SOURCES.md)",
			strings.Join(missing, ", "))
	}
	conn, err := pgx.Connect(ctx, dataURL)
	if err != nil {
		return fmt.Errorf("connecting to the data database: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for _, t := range tables {
		if err := loadDemoTable(ctx, conn, dataURL, dataDir, t, log); err != nil {
			return err
		}
	}
	return nil
}

func loadDemoTable(ctx context.Context, conn *pgx.Conn, dataURL, dataDir string, t demoTable, log *slog.Logger) error {
	public := pgx.Identifier{"public", t.Table}.Sanitize()
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", "public."+t.Table).Scan(&exists); err != nil {
		return fmt.Errorf("checking table %s: %w", public, err)
	}
	if exists {
		log.Info("demo table already loaded", "table", "public."+t.Table)
		return nil
	}
	ogr, err := exec.LookPath("ogr2ogr")
	if err != nil {
		return errors.New("ogr2ogr not found: install gdal-bin (scripts/ensure-deps.sh does)")
	}
	staging := pgx.Identifier{loadSchema}.Sanitize()
	if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+staging+" CASCADE; CREATE SCHEMA "+staging); err != nil {
		return fmt.Errorf("preparing schema %s: %w", loadSchema, err)
	}
	pg, password, err := ogrConnString(dataURL)
	if err != nil {
		return err
	}
	src := filepath.Join(dataDir, t.File)
	if strings.HasSuffix(src, ".gz") {
		src = "/vsigzip/" + src
	}
	args := []string{
		"-f", "PostgreSQL", pg, src,
		"-nln", t.Table,
		"-lco", "SCHEMA=" + loadSchema,
		"-lco", "GEOMETRY_NAME=geom",
		"-lco", "FID=cartodb_id",
		"-lco", "SPATIAL_INDEX=GIST",
		"-t_srs", "EPSG:4326",
		"-gt", "65536",
	}
	if t.Multi {
		args = append(args, "-nlt", "PROMOTE_TO_MULTI")
	}
	log.Info("loading demo table", "table", "public."+t.Table, "from", filepath.Join(dataDir, t.File))
	start := time.Now()
	cmd := exec.CommandContext(ctx, ogr, args...)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+password, "PGAPPNAME=meridian-devrun")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("loading %s with ogr2ogr: %w\n%s", t.File, err, out)
	}

	// ogr2ogr makes the GIST index (SPATIAL_INDEX=GIST); make sure, then
	// move the table into public and record where it came from.
	staged := pgx.Identifier{loadSchema, t.Table}.Sanitize()
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		var gist bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_index i
			JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam
			WHERE i.indrelid = $1::regclass AND am.amname = 'gist')`, loadSchema+"."+t.Table).Scan(&gist); err != nil {
			return err
		}
		if !gist {
			idx := pgx.Identifier{t.Table + "_geom_geom_idx"}.Sanitize()
			if _, err := tx.Exec(ctx, "CREATE INDEX "+idx+" ON "+staged+" USING gist (geom)"); err != nil {
				return err
			}
		}
		// GeoJSON layers that mix Polygon and MultiPolygon come out as a
		// generic geometry column even when promoted to multi; type the
		// column when every row has one type, so catalogs and tilestats
		// see "MultiPolygon" rather than "Geometry".
		var types []string
		if err := tx.QueryRow(ctx, "SELECT coalesce(array_agg(DISTINCT GeometryType(geom)) FILTER (WHERE geom IS NOT NULL), '{}') FROM "+staged).Scan(&types); err != nil {
			return err
		}
		if len(types) == 1 && isGeometryTypeName(types[0]) {
			if _, err := tx.Exec(ctx, "ALTER TABLE "+staged+" ALTER COLUMN geom TYPE geometry("+types[0]+", 4326)"); err != nil {
				return err
			}
		}
		comment := "Meridian demo data: " + t.File + " (Natural Earth, public domain), loaded by make run"
		if _, err := tx.Exec(ctx, "COMMENT ON TABLE "+staged+" IS "+quoteLiteral(comment)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "ALTER TABLE "+staged+" SET SCHEMA public"); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "DROP SCHEMA "+staging)
		return err
	})
	if err != nil {
		return fmt.Errorf("moving %s into public: %w", t.Table, err)
	}
	if _, err := conn.Exec(ctx, "ANALYZE "+public); err != nil {
		return fmt.Errorf("analyzing %s: %w", public, err)
	}
	var n int64
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+public).Scan(&n); err != nil {
		return fmt.Errorf("counting %s: %w", public, err)
	}
	log.Info("demo table loaded", "table", "public."+t.Table, "rows", n, "elapsed", time.Since(start).Round(time.Millisecond))
	return nil
}

// ogrConnString turns a postgres:// URL into GDAL's "PG:key=value ..."
// form; the password is returned apart, to be passed as PGPASSWORD so it
// never shows on a command line.
func ogrConnString(dataURL string) (pg, password string, err error) {
	u, err := url.Parse(dataURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", "", errors.New("the data database URL must be a postgres:// URL")
	}
	kv := []string{}
	add := func(k, v string) {
		if v != "" {
			kv = append(kv, k+"="+quoteConnValue(v))
		}
	}
	add("host", u.Hostname())
	add("port", u.Port())
	add("dbname", strings.TrimPrefix(u.Path, "/"))
	add("user", u.User.Username())
	q := u.Query()
	if q.Get("sslmode") == "" {
		q.Set("sslmode", "prefer")
	}
	for _, k := range []string{"sslmode", "sslrootcert", "sslcert", "sslkey", "connect_timeout"} {
		add(k, q.Get(k))
	}
	password, _ = u.User.Password()
	return "PG:" + strings.Join(kv, " "), password, nil
}

// quoteConnValue quotes a libpq connection-string value when needed.
func quoteConnValue(v string) string {
	if v != "" && !strings.ContainsAny(v, ` '\`) {
		return v
	}
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// quoteLiteral quotes s as an SQL string literal (COMMENT takes no parameters).
func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// isGeometryTypeName reports whether s is a PostGIS geometry type name such
// as "MULTIPOLYGON" (upper-case letters only), safe to splice into a typmod.
func isGeometryTypeName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < 'A' || r > 'Z' {
			return false
		}
	}
	return true
}

// ldsLoaded reports whether the data database has an LDS gazetteer with
// at least one OSM region (meridian lds load ran to its end) in the
// current layout (area_parts and the name indexes: a gazetteer from
// before them is loaded again).
func ldsLoaded(ctx context.Context, dataURL string) (bool, error) {
	conn, err := pgx.Connect(ctx, dataURL)
	if err != nil {
		return false, fmt.Errorf("connecting to the data database: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var ok bool
	err = conn.QueryRow(ctx, `SELECT to_regclass('meridian_lds.regions') IS NOT NULL`).Scan(&ok)
	if err != nil || !ok {
		return false, err
	}
	err = conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM meridian_lds.regions)
		AND to_regclass('meridian_lds.area_parts') IS NOT NULL
		AND to_regclass('meridian_lds.area_parts_name') IS NOT NULL
		AND to_regclass('meridian_lds.place_names_country_norm') IS NOT NULL`).Scan(&ok)
	if err != nil || !ok {
		return false, err
	}
	err = conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM meridian_lds.area_parts)`).Scan(&ok)
	return ok, err
}
