package catalog

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/meridian-gis/meridian/internal/pgdb/pgtest"
	"github.com/meridian-gis/meridian/tiles/internal/geotest"
)

func TestSplitName(t *testing.T) {
	tests := []struct {
		in            string
		schema, table string
		ok            bool
	}{
		{"countries", "public", "countries", true},
		{"public.countries", "public", "countries", true},
		{"mydb.geo.countries", "geo", "countries", true},
		{`"My Schema"."Odd.Name"`, "My Schema", "Odd.Name", true},
		{`"a""b".c`, `a"b`, "c", true},
		{"a.b.c.d", "", "", false},
		{"", "", "", false},
		{"public.", "", "", false},
	}
	for _, tt := range tests {
		s, tb, ok := SplitName(tt.in)
		if s != tt.schema || tb != tt.table || ok != tt.ok {
			t.Errorf("SplitName(%q) = %q, %q, %v; want %q, %q, %v", tt.in, s, tb, ok, tt.schema, tt.table, tt.ok)
		}
	}
}

func TestMapType(t *testing.T) {
	tests := []struct {
		name, cat string
		want      Type
	}{
		{"int4", "N", TypeNumber}, {"int8", "N", TypeBigint}, {"numeric", "N", TypeNumber},
		{"float8", "N", TypeNumber}, {"varchar", "S", TypeString}, {"uuid", "U", TypeString},
		{"geometry", "U", TypeGeometry}, {"timestamptz", "D", TypeTimestamp}, {"date", "D", TypeTimestamp},
		{"jsonb", "U", TypeObject}, {"_int4", "A", TypeObject}, {"bool", "B", TypeBoolean},
		{"inet", "I", TypeUnknown}, {"mycomposite", "C", TypeObject},
	}
	for _, tt := range tests {
		if got := MapType(tt.name, tt.cat); got != tt.want {
			t.Errorf("MapType(%q, %q) = %q, want %q", tt.name, tt.cat, got, tt.want)
		}
	}
}

func TestShapeOf(t *testing.T) {
	for in, want := range map[string]Shape{
		"POINT": ShapePoint, "point": ShapePoint, "POINTZ": ShapePoint, "MULTIPOINT": ShapeMultiPoint,
		"LINESTRING": ShapeLine, "MULTILINESTRING": ShapeLine, "POLYGON": ShapePolygon,
		"MULTIPOLYGON": ShapePolygon, "GEOMETRY": ShapeUnknown, "GEOMETRYCOLLECTION": ShapeUnknown,
	} {
		if got := ShapeOf(in); got != want {
			t.Errorf("ShapeOf(%q) = %v, want %v", in, got, want)
		}
	}
}

const fixtureSQL = `
CREATE DOMAIN short_text AS varchar(10);
CREATE TABLE stores (id serial PRIMARY KEY, name text, revenue numeric(12,2), big int8, opened_at timestamptz,
	open bool, tags text[], attrs jsonb, code short_text, addr inet, geom geometry(Point, 4326));
INSERT INTO stores (name, revenue, geom) VALUES ('a', 10, ST_SetSRID(ST_MakePoint(2.35, 48.85), 4326)),
	('b', 20, ST_SetSRID(ST_MakePoint(-73.99, 40.75), 4326));
CREATE SCHEMA "Geo Data";
CREATE TABLE "Geo Data"."Mixed Case" (id int, "Name" text, geom geometry, centroid geometry(Point, 3857));
INSERT INTO "Geo Data"."Mixed Case" VALUES (1, 'x', ST_SetSRID(ST_GeomFromText('LINESTRING(0 0, 1 1)'), 4326), ST_SetSRID(ST_MakePoint(0, 0), 3857));
CREATE VIEW store_view AS SELECT id, name, geom FROM stores WHERE revenue > 15;
CREATE MATERIALIZED VIEW store_mv AS SELECT id, geom FROM stores;
CREATE TABLE nogeom (id int);
CREATE TABLE secret (id int, geom geometry(Polygon, 4326));
CREATE ROLE {{role}} LOGIN;
GRANT USAGE ON SCHEMA public, "Geo Data" TO {{role}};
GRANT SELECT ON stores, store_view, "Geo Data"."Mixed Case" TO {{role}};
ANALYZE;
`

// fixture creates the fixture tables and a reader role (roles are
// cluster-wide: the name is unique per test) and returns the role.
func fixture(t *testing.T, db *pgtest.DB) string {
	t.Helper()
	var b [4]byte
	rand.Read(b[:])
	role := "catalog_reader_" + hex.EncodeToString(b[:])
	if _, err := db.Pool.Exec(context.Background(), strings.ReplaceAll(fixtureSQL, "{{role}}", role)); err != nil {
		t.Fatalf("creating fixture: %v", err)
	}
	t.Cleanup(func() {
		db.Pool.Exec(context.Background(), "DROP OWNED BY "+role+"; DROP ROLE IF EXISTS "+role)
	})
	return role
}

func TestLoad(t *testing.T) {
	db := pgtest.Data(t)
	ctx := context.Background()
	role := fixture(t, db)
	// An import in progress: its staging table is not a source.
	if _, err := db.Pool.Exec(ctx, `CREATE TABLE public._mi_0123abcd_stage (id int, geom geometry(Point, 4326))`); err != nil {
		t.Fatal(err)
	}
	cat, err := Load(ctx, db.Pool, "pg")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	var names []string
	for _, tb := range cat.Tables {
		names = append(names, tb.FQN())
	}
	want := []string{"Geo Data.Mixed Case", "public.secret", "public.store_mv", "public.store_view", "public.stores"}
	if len(names) != len(want) {
		t.Fatalf("tables = %q, want %q", names, want)
	}
	for i := range want {
		if names[i] != want[i] {
			t.Errorf("tables[%d] = %q, want %q", i, names[i], want[i])
		}
	}

	stores, err := cat.Lookup("stores")
	if err != nil {
		t.Fatalf("Lookup(stores): %v", err)
	}
	wantTypes := map[string]Type{"id": TypeNumber, "name": TypeString, "revenue": TypeNumber, "big": TypeBigint,
		"opened_at": TypeTimestamp, "open": TypeBoolean, "tags": TypeObject, "attrs": TypeObject,
		"code": TypeString, "addr": TypeUnknown, "geom": TypeGeometry}
	if len(stores.Columns) != len(wantTypes) {
		t.Errorf("stores has %d columns, want %d", len(stores.Columns), len(wantTypes))
	}
	for _, c := range stores.Columns {
		if c.Type != wantTypes[c.Name] {
			t.Errorf("stores.%s type = %q, want %q", c.Name, c.Type, wantTypes[c.Name])
		}
	}
	if c, _ := stores.Column("revenue"); c.PGType != "numeric(12,2)" {
		t.Errorf("revenue PGType = %q, want numeric(12,2)", c.PGType)
	}
	g, err := stores.Geom("geom")
	if err != nil || g.SRID != 4326 || g.GeomType != "POINT" || g.Shape() != ShapePoint {
		t.Errorf("stores.geom = %+v, %v; want SRID 4326 POINT", g, err)
	}
	if stores.EstRows != 2 || stores.Kind != KindTable || stores.Fingerprint == 0 {
		t.Errorf("stores EstRows=%d Kind=%s Fingerprint=%d", stores.EstRows, stores.Kind, stores.Fingerprint)
	}
	if _, err := stores.Geom("name"); !errors.Is(err, ErrNoGeometry) {
		t.Errorf("Geom(name) error = %v, want ErrNoGeometry", err)
	}
	if _, err := stores.Geom("nope"); !errors.Is(err, ErrUnknownColumn) {
		t.Errorf("Geom(nope) error = %v, want ErrUnknownColumn", err)
	}

	// Untyped geometry column: SRID and type sampled from the data.
	mixed, err := cat.Lookup(`"Geo Data"."Mixed Case"`)
	if err != nil {
		t.Fatalf("Lookup(mixed): %v", err)
	}
	if g, _ := mixed.Geom("geom"); g.SRID != 4326 || g.GeomType != "LINESTRING" {
		t.Errorf("mixed.geom = %+v, want sampled 4326 LINESTRING", g)
	}
	if g, _ := mixed.Geom("centroid"); g.SRID != 3857 {
		t.Errorf("mixed.centroid = %+v, want 3857", g)
	}
	if c, ok := mixed.Column("name"); !ok || c.Name != "Name" {
		t.Errorf(`Column("name") = %+v, %v; want case-insensitive match of "Name"`, c, ok)
	}
	view, _ := cat.Lookup("public.store_view")
	if view == nil || view.Kind != KindView || view.Fingerprint != 0 {
		t.Errorf("store_view = %+v, want a view with no fingerprint", view)
	}
	if _, err := cat.Lookup("nogeom"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Lookup(nogeom) error = %v, want ErrNotFound", err)
	}
	if _, err := cat.Lookup("STORES"); err != nil {
		t.Errorf("Lookup(STORES) error = %v, want the lower-cased match", err)
	}

	// A role without privileges does not see the tables it cannot read.
	cfg, _ := pgxpool.ParseConfig(db.URL)
	cfg.ConnConfig.User = role
	rp, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("connecting as reader: %v", err)
	}
	defer rp.Close()
	rcat, err := Load(ctx, rp, "pg")
	if err != nil {
		t.Fatalf("Load as reader: %v", err)
	}
	if len(rcat.Tables) != 3 {
		t.Errorf("reader sees %d tables, want 3 (stores, store_view, Mixed Case)", len(rcat.Tables))
	}
	if _, err := rcat.Lookup("secret"); !errors.Is(err, ErrNotFound) {
		t.Errorf("reader Lookup(secret) error = %v, want ErrNotFound", err)
	}

	// Fingerprints change with the data.
	if _, err := db.Pool.Exec(ctx, "INSERT INTO stores (name) VALUES ('c')"); err != nil {
		t.Fatal(err)
	}
	// Statistics reach the shared counters when the backend goes idle.
	var cat2 *Catalog
	for range 50 {
		if cat2, err = Load(ctx, db.Pool, "pg"); err != nil {
			t.Fatal(err)
		}
		if s2, _ := cat2.Lookup("stores"); s2.Fingerprint != stores.Fingerprint {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if s2, _ := cat2.Lookup("stores"); s2.Fingerprint == stores.Fingerprint {
		t.Errorf("stores fingerprint unchanged after an insert")
	}
	if cat2.Fingerprint == cat.Fingerprint {
		t.Errorf("catalog fingerprint unchanged after an insert")
	}
}

func TestExtent(t *testing.T) {
	db := geotest.New(t)
	ctx := context.Background()
	cat, err := Load(ctx, db.Pool, "pg")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		table      string
		minX, maxX float64
		minY, maxY float64
	}{
		{geotest.Places, -176, 179, -42, 65},
		{geotest.Postal, -180, 180, -90, 90},
		{geotest.Buildings, -76, -75, 38, 40},
		{geotest.Admin1, -180, 180, -90, 84},
	}
	for _, tt := range tests {
		tb, err := cat.Lookup(tt.table)
		if err != nil {
			t.Fatalf("Lookup(%s): %v", tt.table, err)
		}
		g, _ := tb.Geom("geom")
		b, err := Extent(ctx, db.Pool, tb, g)
		if err != nil {
			t.Fatalf("Extent(%s): %v", tt.table, err)
		}
		if b.MinX < tt.minX-1 || b.MaxX > tt.maxX+1 || b.MinY < tt.minY-1 || b.MaxY > tt.maxY+1 ||
			b.MaxX-b.MinX < (tt.maxX-tt.minX)/2 {
			t.Errorf("Extent(%s) = %+v, want about [%v %v %v %v]", tt.table, b, tt.minX, tt.minY, tt.maxX, tt.maxY)
		}
	}
	b, err := QueryExtent(ctx, db.Pool, "SELECT geom FROM places WHERE iso_a2 = $1", "geom", []any{"FR"})
	if err != nil || b.MinX < 2 || b.MaxX > 3 || b.MinY < 48 || b.MaxY > 49 {
		t.Errorf("QueryExtent(France) = %+v, %v; want Paris", b, err)
	}
}

func TestDescribeQuery(t *testing.T) {
	db := pgtest.Data(t)
	ctx := context.Background()
	fixture(t, db)
	c, err := db.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release()
	cols, err := DescribeQuery(ctx, c.Conn(), "SELECT id, name AS label, revenue * 2 AS r2, code, geom, ST_Buffer(geom, 1) AS b FROM stores WHERE revenue > $1")
	if err != nil {
		t.Fatalf("DescribeQuery: %v", err)
	}
	want := []Column{{"id", TypeNumber, "integer"}, {"label", TypeString, "text"}, {"r2", TypeNumber, "numeric"},
		{"code", TypeString, "character varying"}, {"geom", TypeGeometry, "geometry"}, {"b", TypeGeometry, "geometry"}}
	if len(cols) != len(want) {
		t.Fatalf("DescribeQuery = %+v, want %+v", cols, want)
	}
	for i := range want {
		if cols[i] != want[i] {
			t.Errorf("column %d = %+v, want %+v", i, cols[i], want[i])
		}
	}
	if _, err := DescribeQuery(ctx, c.Conn(), "SELEC 1"); err == nil {
		t.Errorf("DescribeQuery(syntax error) succeeded")
	}
}

func TestStore(t *testing.T) {
	db := pgtest.Data(t)
	ctx := context.Background()
	if _, err := db.Pool.Exec(ctx, "CREATE TABLE a (id int, geom geometry(Point, 4326))"); err != nil {
		t.Fatal(err)
	}
	loads := 0
	s := NewStore(StoreConfig{MissRefreshGap: time.Hour}, func(ctx context.Context, conn string) (Querier, error) {
		if conn != "pg" {
			return nil, errors.New("no such connection")
		}
		loads++
		return db.Pool, nil
	})
	if _, _, err := s.Lookup(ctx, "pg", "a"); err != nil {
		t.Fatalf("Lookup(a): %v", err)
	}
	if _, err := db.Pool.Exec(ctx, "CREATE TABLE b (id int, geom geometry(Point, 4326))"); err != nil {
		t.Fatal(err)
	}
	// First miss reloads and finds the new table.
	if _, _, err := s.Lookup(ctx, "pg", "b"); err != nil {
		t.Fatalf("Lookup(b) after creation: %v", err)
	}
	// A second miss within the gap does not reload.
	n := loads
	if _, _, err := s.Lookup(ctx, "pg", "missing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Lookup(missing) error = %v, want ErrNotFound", err)
	}
	if _, _, err := s.Lookup(ctx, "pg", "missing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Lookup(missing) error = %v, want ErrNotFound", err)
	}
	if loads > n+1 {
		t.Errorf("misses caused %d reloads, want at most 1", loads-n)
	}
	if _, err := s.Get(ctx, "other"); err == nil {
		t.Errorf("Get(other) succeeded")
	}
	if got := s.Conns(); len(got) != 1 || got[0] != "pg" {
		t.Errorf("Conns() = %q, want [pg]", got)
	}
}
