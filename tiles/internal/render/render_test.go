package render_test

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/paulmach/orb"
	"github.com/paulmach/orb/encoding/mvt"
	"github.com/paulmach/orb/geojson"
	"github.com/paulmach/orb/maptile"

	"github.com/meridian-gis/meridian/internal/tile"
	"github.com/meridian-gis/meridian/tiles/internal/catalog"
	"github.com/meridian-gis/meridian/tiles/internal/geotest"
	mvtsql "github.com/meridian-gis/meridian/tiles/internal/mvt"
	"github.com/meridian-gis/meridian/tiles/internal/render"
	"github.com/meridian-gis/meridian/tiles/internal/source"
)

// fixture is one geodata database with a catalog store over it.
type fixture struct {
	db  *geotest.DB
	env source.Env
}

func newFixture(t *testing.T) *fixture {
	db := geotest.New(t)
	pool := func(ctx context.Context, conn string) (*pgxpool.Pool, error) {
		if conn != "pg" {
			return nil, errors.New("unknown connection")
		}
		return db.Pool, nil
	}
	store := catalog.NewStore(catalog.StoreConfig{}, func(ctx context.Context, conn string) (catalog.Querier, error) {
		return pool(ctx, conn)
	})
	return &fixture{db: db, env: source.Env{Catalogs: store, Pool: pool}}
}

func params(t *testing.T, js string) source.Params {
	t.Helper()
	p := source.Params{}
	if err := json.Unmarshal([]byte(js), &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func (f *fixture) compile(t *testing.T, typ source.Type, js string) *source.Source {
	t.Helper()
	spec, err := source.ParseSpec("pg", typ, params(t, js))
	if err != nil {
		t.Fatalf("ParseSpec(%s): %v", js, err)
	}
	src, err := source.Compile(context.Background(), f.env, spec)
	if err != nil {
		t.Fatalf("Compile(%s): %v", js, err)
	}
	return src
}

func (f *fixture) render(t *testing.T, src *source.Source, c tile.Coord, o render.Options) (render.Tile, mvt.Layers) {
	t.Helper()
	o.ReadOnlyTx = src.ReadOnlyTx
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rt, err := render.Render(ctx, f.db.Pool, src.SQL, src.Args, c, o)
	if err != nil {
		t.Fatalf("Render(%v): %v\nSQL:\n%s", c, err, src.SQL)
	}
	if len(rt.MVT) == 0 {
		return rt, nil
	}
	layers, err := mvt.Unmarshal(rt.MVT)
	if err != nil {
		t.Fatalf("decoding tile %v: %v", c, err)
	}
	if len(layers) != 1 || layers[0].Name != mvtsql.LayerName {
		t.Fatalf("tile %v has layers %v, want one named default", c, layers)
	}
	gz, err := render.Gunzip(rt.Gzip)
	if err != nil || string(gz) != string(rt.MVT) {
		t.Errorf("Gzip does not round-trip: %v", err)
	}
	layers.ProjectToWGS84(maptile.New(c.X, c.Y, maptile.Zoom(c.Z)))
	return rt, layers
}

func find(l *mvt.Layer, key string, val any) *geojson.Feature {
	for _, f := range l.Features {
		if f.Properties[key] == val {
			return f
		}
	}
	return nil
}

func TestPolygonsAdmin1(t *testing.T) {
	f := newFixture(t)
	src := f.compile(t, source.TypeTable, `{"name":"public.admin1","columns":"name,admin,iso_3166_2,pop_est"}`)
	if src.Layer.Extent != 512 || src.Layer.Shape != catalog.ShapePolygon {
		t.Errorf("layer = extent %d shape %v, want 512 polygons", src.Layer.Extent, src.Layer.Shape)
	}
	ny := tile.At(-74.0, 40.7, 4) // New York City
	rt, layers := f.render(t, src, ny, render.Options{})
	feat := find(layers[0], "iso_3166_2", "US-NY")
	if feat == nil {
		t.Fatalf("tile %v has no US-NY feature (%d features)", ny, len(layers[0].Features))
	}
	if feat.Properties["name"] != "New York" || feat.Properties["admin"] != "United States of America" {
		t.Errorf("US-NY properties = %v", feat.Properties)
	}
	if _, ok := feat.Properties["pop_est"].(float64); !ok && feat.Properties["pop_est"] != nil {
		t.Errorf("pop_est = %#v, want a number", feat.Properties["pop_est"])
	}
	if len(feat.Properties) > 4 {
		t.Errorf("properties %v: want only the requested columns", feat.Properties)
	}
	if _, ok := feat.Geometry.(orb.MultiPolygon); !ok {
		if _, ok := feat.Geometry.(orb.Polygon); !ok {
			t.Errorf("US-NY geometry is %T, want a polygon", feat.Geometry)
		}
	}
	if b := feat.Geometry.Bound(); !b.Contains(orb.Point{-74.0, 40.75}) && !b.Contains(orb.Point{-75, 42.5}) {
		t.Errorf("US-NY bound %v does not cover New York", b)
	}
	if rt.Kept < int64(len(layers[0].Features)) || rt.Total < rt.Kept {
		t.Errorf("Kept=%d Total=%d, features %d", rt.Kept, rt.Total, len(layers[0].Features))
	}
	if find(layers[0], "iso_3166_2", "AU-NSW") != nil {
		t.Errorf("tile %v holds New South Wales", ny)
	}

	// z0: the whole world stays small with simplification and the cap.
	rt0, layers0 := f.render(t, src, tile.Coord{}, render.Options{Budget: 512 << 10})
	if len(rt0.Gzip) > 512<<10 {
		t.Errorf("z0 admin1 is %d bytes gzipped, over budget", len(rt0.Gzip))
	}
	if n := len(layers0[0].Features); n < 1000 || n > 5000 {
		t.Errorf("z0 admin1 has %d features, want 1000..5000", n)
	}
	t.Logf("admin1 z0: %d features of %d, %d bytes (%d gzipped), lod %d", rt0.Kept, rt0.Total, len(rt0.MVT), len(rt0.Gzip), rt0.LOD)
}

func TestPointsAggregatedPostal(t *testing.T) {
	f := newFixture(t)
	src := f.compile(t, source.TypeTable, `{"name":"postal","columns":["zipcode","place","country_code"]}`)
	const budget = 512 << 10
	rt, layers := f.render(t, src, tile.Coord{}, render.Options{Budget: budget})
	if len(rt.Gzip) > budget {
		t.Errorf("z0 postal is %d bytes gzipped, over the %d budget", len(rt.Gzip), budget)
	}
	var inSquare int64
	f.db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM postal WHERE abs(latitude) <= 85.0511").Scan(&inSquare)
	if rt.Total != inSquare {
		t.Errorf("z0 counts %d points, want %d (every point of the Mercator square in one cell)", rt.Total, inSquare)
	}
	var sum float64
	continents := map[string]orb.Bound{
		"north america": {Min: orb.Point{-170, 15}, Max: orb.Point{-50, 75}},
		"south america": {Min: orb.Point{-82, -56}, Max: orb.Point{-34, 13}},
		"europe":        {Min: orb.Point{-10, 36}, Max: orb.Point{40, 71}},
		"africa":        {Min: orb.Point{-18, -35}, Max: orb.Point{52, 37}},
		"asia":          {Min: orb.Point{60, 0}, Max: orb.Point{150, 60}},
		"oceania":       {Min: orb.Point{110, -48}, Max: orb.Point{180, -10}},
	}
	seen := map[string]int{}
	for _, ft := range layers[0].Features {
		d, ok := ft.Properties[mvtsql.DensityProp].(float64)
		if !ok || d < 1 {
			t.Fatalf("feature without a density: %v", ft.Properties)
		}
		sum += d
		if _, ok := ft.Properties["zipcode"].(string); !ok {
			t.Fatalf("feature without a zipcode: %v", ft.Properties)
		}
		p := ft.Geometry.(orb.Point)
		for name, b := range continents {
			if b.Contains(p) {
				seen[name]++
			}
		}
	}
	if int64(sum) != rt.Total {
		t.Errorf("densities sum to %v, want %d", sum, rt.Total)
	}
	for name := range continents {
		if seen[name] == 0 {
			t.Errorf("z0 has no point in %s", name)
		}
	}
	t.Logf("postal z0: %d cells for %d points, %d bytes (%d gzipped), lod %d, per continent %v",
		rt.Kept, rt.Total, len(rt.MVT), len(rt.Gzip), rt.LOD, seen)

	// A tight budget coarsens the grid instead of cutting off features.
	small, layersSmall := f.render(t, src, tile.Coord{}, render.Options{Budget: 40 << 10, MaxLOD: 6})
	if small.LOD == 0 || len(small.Gzip) > 40<<10 {
		t.Errorf("tight budget: lod %d, %d bytes", small.LOD, len(small.Gzip))
	}
	if small.Total != rt.Total {
		t.Errorf("tight budget counted %d points, want %d", small.Total, rt.Total)
	}
	var west, east int
	for _, ft := range layersSmall[0].Features {
		if ft.Geometry.(orb.Point)[0] < 0 {
			west++
		} else {
			east++
		}
	}
	if west == 0 || east == 0 {
		t.Errorf("coarse tile is lopsided: %d west, %d east", west, east)
	}

	// Deterministic: the same tile renders to the same bytes.
	again, _ := f.render(t, src, tile.Coord{}, render.Options{Budget: budget})
	if string(again.MVT) != string(rt.MVT) {
		t.Errorf("two renders of z0 differ")
	}

	// Zoomed in, points keep their own position and properties.
	c := tile.At(2.3522, 48.8566, 12) // Paris
	_, lz := f.render(t, src, c, render.Options{})
	if lz == nil || find(lz[0], "zipcode", "75001") == nil && find(lz[0], "place", "Paris") == nil {
		t.Errorf("Paris tile %v has no Paris postal code", c)
	}
}

func TestAggregationExp(t *testing.T) {
	f := newFixture(t)
	src := f.compile(t, source.TypeTable, `{"name":"places","aggregationExp":"sum(pop_max) AS total, count(*) AS n, max(name) AS top"}`)
	rt, layers := f.render(t, src, tile.Coord{}, render.Options{})
	var total float64
	for _, ft := range layers[0].Features {
		total += ft.Properties["total"].(float64)
		if _, ok := ft.Properties["top"].(string); !ok {
			t.Fatalf("feature without top: %v", ft.Properties)
		}
		if len(ft.Properties) != 4 {
			t.Errorf("properties %v, want total, n, top, density", ft.Properties)
		}
	}
	var want float64
	f.db.Pool.QueryRow(context.Background(), "SELECT sum(pop_max) FROM places WHERE ST_Y(geom) BETWEEN -85.06 AND 85.06").Scan(&want)
	if total != want || rt.Total != 243 {
		t.Errorf("sum of totals = %v, want %v; Total = %d", total, want, rt.Total)
	}
}

func TestLinesRivers(t *testing.T) {
	f := newFixture(t)
	src := f.compile(t, source.TypeTable, `{"name":"rivers","columns":"name,scalerank"}`)
	if src.Layer.Shape != catalog.ShapeLine {
		t.Errorf("rivers shape = %v, want lines (sampled from the data)", src.Layer.Shape)
	}
	c := tile.At(-90.5, 35, 4) // the Mississippi at Memphis
	_, layers := f.render(t, src, c, render.Options{})
	ft := find(layers[0], "name", "Mississippi")
	if ft == nil {
		t.Fatalf("tile %v has no Mississippi", c)
	}
	switch ft.Geometry.(type) {
	case orb.LineString, orb.MultiLineString:
	default:
		t.Errorf("Mississippi is %T, want a line", ft.Geometry)
	}
}

func TestBuildingsDelaware(t *testing.T) {
	f := newFixture(t)
	src := f.compile(t, source.TypeTable, `{"name":"buildings","tileResolution":"1"}`)
	if src.Layer.Extent != 1024 {
		t.Errorf("extent = %d, want 1024 for tileResolution 1", src.Layer.Extent)
	}
	c := tile.At(-75.5466, 39.7459, 14) // Wilmington
	rt, layers := f.render(t, src, c, render.Options{})
	if layers == nil || len(layers[0].Features) < 10 {
		t.Fatalf("Wilmington z14 has %d buildings, want some", rt.Kept)
	}
	for _, ft := range layers[0].Features {
		if _, ok := ft.Properties["geom"]; ok {
			t.Fatalf("the spatial column leaked into properties: %v", ft.Properties)
		}
	}
	// Far away: an empty tile.
	empty, l := f.render(t, src, tile.At(10, 50, 14), render.Options{})
	if len(empty.MVT) != 0 || l != nil || empty.Kept != 0 {
		t.Errorf("empty tile = %d bytes, %d features", len(empty.MVT), empty.Kept)
	}
}

func TestFeatureCapKeepsBiggest(t *testing.T) {
	f := newFixture(t)
	f.env.Limits.MaxPolygonFeatures = 50
	src := f.compile(t, source.TypeTable, `{"name":"admin1","columns":"iso_3166_2"}`)
	rt, layers := f.render(t, src, tile.Coord{}, render.Options{})
	if rt.Kept > 50 || rt.Total <= rt.Kept {
		t.Fatalf("Kept=%d Total=%d, want at most 50 kept of more", rt.Kept, rt.Total)
	}
	// The biggest provinces survive; small ones are the ones dropped.
	for _, code := range []string{"RU-KYA", "CA-NU"} {
		if find(layers[0], "iso_3166_2", code) == nil {
			t.Errorf("capped z0 lacks %s (one of the biggest)", code)
		}
	}
	if find(layers[0], "iso_3166_2", "US-RI") != nil {
		t.Errorf("capped z0 kept Rhode Island")
	}
}

func TestQuerySource(t *testing.T) {
	f := newFixture(t)
	src := f.compile(t, source.TypeQuery, `{"q":"SELECT geom, name, pop_max FROM places WHERE pop_max > $1 -- big cities","queryParameters":[6000000],
		"filters":{"name":{"in":{"values":["Paris","London","Madrid"]}}}}`)
	if !src.ReadOnlyTx || src.Layer.Shape != catalog.ShapePoint || src.Geom.SRID != 4326 {
		t.Errorf("query source: readonly %v shape %v srid %d", src.ReadOnlyTx, src.Layer.Shape, src.Geom.SRID)
	}
	if len(src.Tags) != 2 || src.Tags[0] != "src:pg/public.places" || src.Tags[1] != "conn:pg" {
		t.Errorf("Tags = %q, want src:pg/public.places conn:pg", src.Tags)
	}
	_, layers := f.render(t, src, tile.Coord{}, render.Options{})
	var names []string
	for _, ft := range layers[0].Features {
		names = append(names, ft.Properties["name"].(string))
	}
	if len(names) != 2 { // Madrid has fewer than 5 M people
		t.Errorf("features = %q, want Paris and London", names)
	}
	// Writing SQL fails: the transaction is read only.
	spec, _ := source.ParseSpec("pg", source.TypeQuery, params(t, `{"q":"WITH d AS (DELETE FROM places RETURNING *) SELECT * FROM d"}`))
	if s, err := source.Compile(context.Background(), f.env, spec); err == nil {
		_, err = render.Render(context.Background(), f.db.Pool, s.SQL, s.Args, tile.Coord{}, render.Options{ReadOnlyTx: true})
		if err == nil {
			t.Errorf("a DELETE in a query source ran")
		}
	}
	var n int
	f.db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM places").Scan(&n)
	if n != 243 {
		t.Errorf("places has %d rows after the DELETE attempt, want 243", n)
	}
}

func TestCompileErrors(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		typ  source.Type
		js   string
		want error
	}{
		{source.TypeTable, `{"name":"nope"}`, catalog.ErrNotFound},
		{source.TypeTable, `{"name":"places","columns":"name,nope"}`, catalog.ErrUnknownColumn},
		{source.TypeTable, `{"name":"places","spatialDataColumn":"name"}`, catalog.ErrNoGeometry},
		{source.TypeTable, `{"name":"places","filters":{"nope":{"in":{"values":[1]}}}}`, catalog.ErrUnknownColumn},
		{source.TypeTable, `{"name":"admin1","aggregationExp":"count(*) AS n"}`, source.ErrBadParams},
		{source.TypeTable, `{"name":"places","aggregationExp":"pg_sleep(1) AS n"}`, source.ErrBadParams},
		{source.TypeQuery, `{"q":"SELECT name FROM places"}`, catalog.ErrUnknownColumn},
		{source.TypeQuery, `{"q":"SELECT name AS geom FROM places"}`, catalog.ErrNoGeometry},
	}
	for _, tt := range tests {
		spec, err := source.ParseSpec("pg", tt.typ, params(t, tt.js))
		if err == nil {
			_, err = source.Compile(context.Background(), f.env, spec)
		}
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: error = %v, want %v", tt.js, err, tt.want)
		}
	}
	// A syntax error in client SQL is a QueryError carrying PostgreSQL's message.
	spec, _ := source.ParseSpec("pg", source.TypeQuery, params(t, `{"q":"SELEC geom FROM places"}`))
	_, err := source.Compile(context.Background(), f.env, spec)
	var qe *source.QueryError
	if !errors.As(err, &qe) {
		t.Errorf("syntax error = %v, want a QueryError", err)
	}
}

// TestPreparedStatementReuse checks that rendering many tiles of a source
// prepares its statement once per connection (pgx's statement cache keys
// on the SQL text, which does not change from tile to tile).
func TestPreparedStatementReuse(t *testing.T) {
	f := newFixture(t)
	src := f.compile(t, source.TypeTable, `{"name":"places","columns":"name"}`)
	ctx := context.Background()
	conn, err := f.db.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	for _, c := range []tile.Coord{{Z: 0}, {Z: 1, X: 1, Y: 0}, {Z: 2, X: 1, Y: 1}, {Z: 3, X: 4, Y: 2}} {
		args := append(append([]any{}, src.Args...), int32(c.Z), int32(c.X), int32(c.Y), int32(0))
		var b []byte
		var k, n int64
		if err := conn.QueryRow(ctx, src.SQL, args...).Scan(&b, &k, &n); err != nil {
			t.Fatal(err)
		}
	}
	var prepared int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_prepared_statements WHERE statement = $1", src.SQL).Scan(&prepared); err != nil {
		t.Fatal(err)
	}
	if prepared != 1 {
		t.Errorf("statement prepared %d times on the connection, want 1", prepared)
	}
}

// TestCancel checks that a render whose context ends stops the backend
// query instead of letting it run on.
func TestCancel(t *testing.T) {
	f := newFixture(t)
	src := f.compile(t, source.TypeQuery, `{"q":"SELECT geom, pg_sleep(0.2)::text AS s FROM places"}`)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := render.Render(ctx, f.db.Pool, src.SQL, src.Args, tile.Coord{}, render.Options{ReadOnlyTx: true})
	if err == nil {
		t.Fatal("render of a sleeping query succeeded")
	}
	if el := time.Since(start); el > 4*time.Second {
		t.Errorf("render returned after %v, want soon after the deadline", el)
	}
	var running int
	for range 50 {
		f.db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(0.2)%' AND state = 'active' AND pid <> pg_backend_pid()").Scan(&running)
		if running == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if running != 0 {
		t.Errorf("%d backend queries still running after cancel", running)
	}
}

// TestWorldEdgeTiles checks tiles on the antimeridian and poles: the
// buffered envelope must not wrap around to the other side of the world.
func TestWorldEdgeTiles(t *testing.T) {
	f := newFixture(t)
	src := f.compile(t, source.TypeTable, `{"name":"places","columns":"name"}`)
	for _, tt := range []struct {
		c    tile.Coord
		name string
	}{
		{tile.Coord{Z: 2, X: 0, Y: 2}, "Apia"},       // west edge
		{tile.Coord{Z: 2, X: 3, Y: 2}, "Wellington"}, // east edge
		{tile.Coord{Z: 3, X: 4, Y: 2}, "Oslo"},       // north, inner
		{tile.Coord{Z: 1, X: 0, Y: 0}, "Reykjavík"},  // top-left
	} {
		_, layers := f.render(t, src, tt.c, render.Options{})
		if layers == nil || find(layers[0], "name", tt.name) == nil {
			t.Errorf("tile %v lacks %s", tt.c, tt.name)
		}
	}
}

// TestOtherSRIDs renders sources stored in Lambert-93 (EPSG:2154) and
// Web-Mercator, checking that features land where they belong.
func TestOtherSRIDs(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	_, err := f.db.Pool.Exec(ctx, `
		CREATE TABLE places_l93 AS SELECT id, name, ST_Transform(geom, 2154)::geometry(Point, 2154) AS geom
			FROM places WHERE iso_a2 IN ('FR', 'BE', 'ES', 'GB', 'DE', 'IT', 'CH', 'NL');
		CREATE INDEX ON places_l93 USING gist (geom);
		CREATE TABLE admin1_merc AS SELECT id, name, ST_Transform(geom, 3857)::geometry(MultiPolygon, 3857) AS geom
			FROM admin1 WHERE admin IN ('France', 'Spain');
		CREATE INDEX ON admin1_merc USING gist (geom);
		ANALYZE places_l93, admin1_merc;`)
	if err != nil {
		t.Fatal(err)
	}
	// Aggregated points in Lambert-93.
	src := f.compile(t, source.TypeTable, `{"name":"places_l93","columns":"name"}`)
	c := tile.At(2.35, 48.85, 5)
	_, layers := f.render(t, src, c, render.Options{})
	paris := find(layers[0], "name", "Paris")
	if paris == nil {
		t.Fatalf("tile %v lacks Paris", c)
	}
	p := paris.Geometry.(orb.Point)
	if d := planar(p, orb.Point{2.35, 48.86}); d > 0.1 {
		t.Errorf("Paris drawn at %v, %.3f° away", p, d)
	}
	for _, ft := range layers[0].Features {
		if b := c.LonLatBounds().Expand(1); !b.Contains(ft.Geometry.(orb.Point)[0], ft.Geometry.(orb.Point)[1]) {
			t.Errorf("feature %v at %v is outside the buffered tile", ft.Properties["name"], ft.Geometry)
		}
	}
	// Polygons in Web-Mercator.
	src = f.compile(t, source.TypeTable, `{"name":"admin1_merc","columns":"name"}`)
	_, layers = f.render(t, src, tile.At(-3.7, 40.4, 6), render.Options{})
	if layers == nil || find(layers[0], "name", "Madrid") == nil {
		t.Errorf("Madrid province missing from the Web-Mercator source")
	}
}

func planar(a, b orb.Point) float64 {
	dx, dy := a[0]-b[0], a[1]-b[1]
	return math.Sqrt(dx*dx + dy*dy)
}
