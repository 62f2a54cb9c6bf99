// Package basemap is Meridian's offline basemap: Natural Earth land,
// lakes, rivers, coastline, admin-1 boundaries and populated places, and
// the OSM roads of the regions `meridian lds load` loaded into the same
// database, loaded into schema meridian_basemap of a data database (Load), served as vector
// tiles by the tiles engine like any table, drawn by MapLibre styles
// (Style: meridian-light, meridian-dark) whose labels use glyphs rendered
// here from the Go fonts (Glyphs). No CDN is needed: Builder maps use
// styleType "custom:meridian-light" and fetchMap takes its offline path.
package basemap

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Schema holds the basemap tables.
const Schema = "meridian_basemap"

// version marks a complete load (the schema's comment); a change of the
// layers below bumps it so that the next run reloads.
const version = "meridian basemap v2"

// roadsFrom is the road graph of the Location Data Services (meridian lds
// load: OSM extracts) whose ways the basemap draws as its roads layer,
// when that graph is in the same database.
const roadsFrom = "meridian_lds.edges"

const loadSchema = "meridian_basemap_load"

// Layer is one table of the basemap.
type Layer struct {
	// Name of the table in Schema, and of the style's source.
	Name string
	// File is the Natural Earth GeoJSON (optionally .gz) below the data
	// folder.
	File string
	// Columns lists the properties kept: column name → SQL expression
	// over p (the feature's properties as jsonb).
	Columns [][2]string
	// Geom is the SQL expression making the stored geometry from g (the
	// feature's geometry, SRID 4326).
	Geom string
}

// Layers are the basemap's tables, from the coarsest.
var Layers = []Layer{
	{Name: "land", File: "polygons/ne_50m_admin_0_countries.geojson.gz",
		Columns: [][2]string{{"name", "p->>'NAME'"}, {"iso_a3", "p->>'ISO_A3'"}, {"mapcolor", "(p->>'MAPCOLOR7')::numeric::int"}},
		Geom:    "ST_Multi(ST_CollectionExtract(ST_MakeValid(g), 3))"},
	{Name: "lakes", File: "polygons/ne_10m_lakes.geojson.gz",
		Columns: [][2]string{{"name", "p->>'name'"}, {"scalerank", "(p->>'scalerank')::numeric::int"}},
		Geom:    "ST_Multi(ST_CollectionExtract(ST_MakeValid(ST_SimplifyPreserveTopology(g, 0.005)), 3))"},
	{Name: "rivers", File: "lines/ne_10m_rivers_lake_centerlines.geojson.gz",
		Columns: [][2]string{{"name", "p->>'name'"}, {"scalerank", "(p->>'scalerank')::numeric::int"}},
		Geom:    "ST_Multi(ST_SimplifyPreserveTopology(g, 0.005))"},
	{Name: "coastline", File: "lines/ne_10m_coastline.geojson.gz",
		Columns: [][2]string{{"scalerank", "(p->>'scalerank')::numeric::int"}},
		Geom:    "ST_Multi(ST_SimplifyPreserveTopology(g, 0.005))"},
	{Name: "admin1", File: "polygons/ne_10m_admin_1_states_provinces.geojson.gz",
		Columns: [][2]string{{"name", "p->>'name'"}, {"iso_a2", "p->>'iso_a2'"}},
		Geom:    "ST_Multi(ST_CollectionExtract(ST_Boundary(ST_SimplifyPreserveTopology(ST_MakeValid(g), 0.01)), 2))"},
	{Name: "places", File: "points/ne_10m_populated_places.geojson.gz",
		Columns: [][2]string{{"name", "p->>'NAME'"}, {"scalerank", "(p->>'SCALERANK')::numeric::int"}, {"pop_max", "(p->>'POP_MAX')::numeric::bigint"},
			{"capital", "(p->>'FEATURECLA') ILIKE '%capital%'"}},
		Geom: "g"},
}

// Progress is told how far a layer's load is: features done of total
// (total is 0 while unknown).
type Progress func(layer string, done, total int64)

// Loaded reports whether a complete basemap is in the database.
func Loaded(ctx context.Context, conn *pgx.Conn) (bool, error) {
	var comment *string
	err := conn.QueryRow(ctx, `SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = $1`, Schema).Scan(&comment)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("basemap: checking %s: %w", Schema, err)
	}
	if comment == nil || *comment != version {
		return false, nil
	}
	// Roads loaded since the basemap was: load it again to draw them.
	var stale bool
	err = conn.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL AND NOT EXISTS (SELECT 1 FROM `+pgx.Identifier{Schema, "roads"}.Sanitize()+`)`,
		roadsFrom).Scan(&stale)
	if err != nil {
		return false, fmt.Errorf("basemap: checking its roads: %w", err)
	}
	return !stale, nil
}

// roadRank orders OSM highway classes for the roads layer (1 the
// biggest); the classes left out are not drawn (paths, tracks, steps).
const roadRank = `CASE
		WHEN highway IN ('motorway', 'motorway_link', 'trunk', 'trunk_link') THEN 1
		WHEN highway IN ('primary', 'primary_link') THEN 2
		WHEN highway IN ('secondary', 'secondary_link') THEN 3
		WHEN highway IN ('tertiary', 'tertiary_link') THEN 4
		WHEN highway IN ('residential', 'unclassified', 'living_street', 'road', 'pedestrian') THEN 5
		WHEN highway = 'service' THEN 6
	END`

// loadRoads makes the roads layer from the LDS road graph when it is in
// this database, else an empty one (the styles draw nothing then).
func loadRoads(ctx context.Context, conn *pgx.Conn, progress Progress) error {
	tbl := pgx.Identifier{loadSchema, "roads"}.Sanitize()
	var present bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, roadsFrom).Scan(&present); err != nil {
		return fmt.Errorf("basemap: roads: %w", err)
	}
	create := "CREATE TABLE " + tbl + " (cartodb_id bigint PRIMARY KEY, class text NOT NULL, rank int NOT NULL, name text, geom geometry(LineString, 4326) NOT NULL)"
	if present {
		create = "CREATE TABLE " + tbl + " AS SELECT e.id AS cartodb_id, e.highway AS class, r.rank, e.name, e.geom FROM " + roadsFrom + " e " +
			"CROSS JOIN LATERAL (SELECT " + strings.ReplaceAll(roadRank, "highway", "e.highway") + " AS rank) r WHERE r.rank IS NOT NULL"
	}
	stmts := []string{create}
	if present {
		stmts = append(stmts, "ALTER TABLE "+tbl+" ADD PRIMARY KEY (cartodb_id)")
	}
	stmts = append(stmts, "CREATE INDEX ON "+tbl+" USING gist (geom)", "ANALYZE "+tbl)
	for _, q := range stmts {
		if _, err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("basemap: building roads: %w", err)
		}
	}
	var n int64
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+tbl).Scan(&n); err != nil {
		return fmt.Errorf("basemap: roads: %w", err)
	}
	progress("roads", n, n)
	return nil
}

// Load builds the basemap from the Natural Earth files below dataDir into
// a staging schema, then swaps it for Schema in one transaction: a load cut
// short leaves the previous basemap (or none) in place. It needs PostGIS.
func Load(ctx context.Context, conn *pgx.Conn, dataDir string, progress Progress) error {
	if progress == nil {
		progress = func(string, int64, int64) {}
	}
	var missing []string
	for _, l := range Layers {
		if _, err := os.Stat(filepath.Join(dataDir, l.File)); err != nil {
			missing = append(missing, filepath.Join(dataDir, l.File))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("basemap: Natural Earth files not found: %s (the data folder is ../shared/data or $MERIDIAN_TESTDATA)", strings.Join(missing, ", "))
	}
	stage := pgx.Identifier{loadSchema}.Sanitize()
	if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+stage+" CASCADE; CREATE SCHEMA "+stage); err != nil {
		return fmt.Errorf("basemap: preparing %s: %w", loadSchema, err)
	}
	for _, l := range Layers {
		if err := loadLayer(ctx, conn, filepath.Join(dataDir, l.File), l, progress); err != nil {
			return err
		}
	}
	if err := loadRoads(ctx, conn, progress); err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		final := pgx.Identifier{Schema}.Sanitize()
		for _, q := range []string{
			"DROP SCHEMA IF EXISTS " + final + " CASCADE",
			"ALTER SCHEMA " + stage + " RENAME TO " + final,
			"COMMENT ON SCHEMA " + final + " IS '" + version + "'",
		} {
			if _, err := tx.Exec(ctx, q); err != nil {
				return fmt.Errorf("basemap: installing %s: %w", Schema, err)
			}
		}
		return nil
	})
}

// loadLayer streams one GeoJSON file's features into a raw staging table
// (COPY), then makes the layer's table from it with SQL.
func loadLayer(ctx context.Context, conn *pgx.Conn, path string, l Layer, progress Progress) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("basemap: %w", err)
	}
	defer f.Close()
	var r io.Reader = bufio.NewReaderSize(f, 1<<16)
	if strings.HasSuffix(path, ".gz") {
		z, err := gzip.NewReader(r)
		if err != nil {
			return fmt.Errorf("basemap: %s: %w", path, err)
		}
		defer z.Close()
		r = z
	}
	raw := pgx.Identifier{loadSchema, l.Name + "_raw"}
	if _, err := conn.Exec(ctx, "CREATE TABLE "+raw.Sanitize()+" (p jsonb, g text)"); err != nil {
		return fmt.Errorf("basemap: %s: %w", l.Name, err)
	}
	feats := &featureRows{dec: json.NewDecoder(r), layer: l.Name, progress: progress}
	if err := feats.start(); err != nil {
		return fmt.Errorf("basemap: %s: %w", path, err)
	}
	if _, err := conn.CopyFrom(ctx, raw, []string{"p", "g"}, feats); err != nil {
		if feats.err != nil {
			err = feats.err
		}
		return fmt.Errorf("basemap: loading %s: %w", path, err)
	}
	progress(l.Name, feats.n, feats.n)
	cols := make([]string, 0, len(l.Columns)+1)
	for _, c := range l.Columns {
		cols = append(cols, c[1]+" AS "+pgx.Identifier{c[0]}.Sanitize())
	}
	tbl := pgx.Identifier{loadSchema, l.Name}.Sanitize()
	for _, q := range []string{
		"CREATE TABLE " + tbl + " AS SELECT row_number() OVER () AS cartodb_id, " + strings.Join(cols, ", ") + ", " + l.Geom + " AS geom " +
			"FROM (SELECT p, ST_SetSRID(ST_GeomFromGeoJSON(g), 4326) AS g FROM " + raw.Sanitize() + " WHERE g IS NOT NULL) s",
		"DELETE FROM " + tbl + " WHERE geom IS NULL OR ST_IsEmpty(geom)",
		"DROP TABLE " + raw.Sanitize(),
		"ALTER TABLE " + tbl + " ADD PRIMARY KEY (cartodb_id)",
		"CREATE INDEX ON " + tbl + " USING gist (geom)",
		"ANALYZE " + tbl,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("basemap: building %s: %w", l.Name, err)
		}
	}
	return nil
}

// featureRows streams a FeatureCollection's features as COPY rows
// (properties, geometry GeoJSON), keeping one feature in memory.
type featureRows struct {
	dec      *json.Decoder
	layer    string
	progress Progress
	row      [2]any
	n        int64
	err      error
}

// start advances the decoder into the "features" array.
func (f *featureRows) start() error {
	for {
		tok, err := f.dec.Token()
		if err != nil {
			return fmt.Errorf("no features array: %w", err)
		}
		if k, ok := tok.(string); ok && k == "features" {
			if tok, err = f.dec.Token(); err != nil || tok != json.Delim('[') {
				return errors.New(`"features" is not an array`)
			}
			return nil
		}
	}
}

func (f *featureRows) Next() bool {
	if f.err != nil || !f.dec.More() {
		return false
	}
	var feat struct {
		Properties json.RawMessage `json:"properties"`
		Geometry   json.RawMessage `json:"geometry"`
	}
	if err := f.dec.Decode(&feat); err != nil {
		f.err = fmt.Errorf("feature %d: %w", f.n+1, err)
		return false
	}
	var g any
	if len(feat.Geometry) > 0 && string(feat.Geometry) != "null" {
		g = string(feat.Geometry)
	}
	props := string(feat.Properties)
	if props == "" || props == "null" {
		props = "{}"
	}
	f.row = [2]any{props, g}
	f.n++
	if f.n%500 == 0 {
		f.progress(f.layer, f.n, 0)
	}
	return true
}

func (f *featureRows) Values() ([]any, error) { return f.row[:], nil }
func (f *featureRows) Err() error             { return f.err }
