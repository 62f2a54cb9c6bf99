package basemap_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/meridian-gis/meridian/internal/basemap"
	"github.com/meridian-gis/meridian/internal/pgdb/pgtest"
)

type testGlyph struct {
	id, width, height, advance uint64
	left, top                  int64
	bitmap                     []byte
}

// decodeGlyphs reads a glyph PBF: glyphs{stacks=1{name=1, range=2, glyphs=3}}.
func decodeGlyphs(t *testing.T, b []byte) (name, rng string, out map[rune]testGlyph) {
	t.Helper()
	out = map[rune]testGlyph{}
	fields := func(b []byte, fn func(num protowire.Number, typ protowire.Type, v []byte, n uint64)) {
		for len(b) > 0 {
			num, typ, l := protowire.ConsumeTag(b)
			if l < 0 {
				t.Fatal("bad tag")
			}
			b = b[l:]
			switch typ {
			case protowire.BytesType:
				v, l := protowire.ConsumeBytes(b)
				fn(num, typ, v, 0)
				b = b[l:]
			case protowire.VarintType:
				v, l := protowire.ConsumeVarint(b)
				fn(num, typ, nil, v)
				b = b[l:]
			default:
				t.Fatalf("unexpected wire type %d", typ)
			}
		}
	}
	fields(b, func(num protowire.Number, _ protowire.Type, stack []byte, _ uint64) {
		fields(stack, func(num protowire.Number, _ protowire.Type, v []byte, _ uint64) {
			switch num {
			case 1:
				name = string(v)
			case 2:
				rng = string(v)
			case 3:
				var g testGlyph
				fields(v, func(num protowire.Number, _ protowire.Type, v []byte, n uint64) {
					switch num {
					case 1:
						g.id = n
					case 2:
						g.bitmap = v
					case 3:
						g.width = n
					case 4:
						g.height = n
					case 5:
						g.left = protowire.DecodeZigZag(n)
					case 6:
						g.top = protowire.DecodeZigZag(n)
					case 7:
						g.advance = n
					}
				})
				out[rune(g.id)] = g
			}
		})
	})
	return name, rng, out
}

func TestGlyphs(t *testing.T) {
	b, err := basemap.Glyphs("Go Regular,Arial Unicode MS Regular", "0-255")
	if err != nil {
		t.Fatal(err)
	}
	name, rng, gs := decodeGlyphs(t, b)
	if name != "Go Regular" || rng != "0-255" {
		t.Errorf("stack %q range %q", name, rng)
	}
	a, ok := gs['A']
	if !ok || a.width == 0 || a.height == 0 || a.advance == 0 {
		t.Fatalf("A: %+v", a)
	}
	if len(a.bitmap) != int((a.width+6)*(a.height+6)) {
		t.Errorf("A bitmap %d bytes for %dx%d", len(a.bitmap), a.width, a.height)
	}
	// Capital letters sit on the baseline: top is above it, near the ascender.
	if a.top > 0 || a.top < -12 || a.height < 12 || a.height > 24 {
		t.Errorf("A metrics: top %d height %d", a.top, a.height)
	}
	// The field: the edge at 191, inside above it, the bitmap's corner
	// (about 4 px out) well below.
	l := gs['l']
	var top byte
	for _, v := range l.bitmap {
		top = max(top, v)
	}
	if top <= 191 || l.bitmap[0] >= 100 {
		t.Errorf("l field: max %d (want > 191), corner %d (want < 100)", top, l.bitmap[0])
	}
	if sp, ok := gs[' ']; !ok || sp.advance == 0 || len(sp.bitmap) != 0 {
		t.Errorf("space: %+v", sp)
	}
	if _, err := basemap.Glyphs("Comic Sans", "0-255"); !errors.Is(err, basemap.ErrNoFont) {
		t.Errorf("unknown font: %v", err)
	}
	for _, r := range []string{"0-254", "1-256", "abc", "65536-65791", "-256-0"} {
		if _, err := basemap.Glyphs("Go Regular", r); err == nil {
			t.Errorf("range %q accepted", r)
		}
	}
}

func TestStyle(t *testing.T) {
	for _, name := range basemap.Styles {
		b, err := basemap.Style(name, basemap.StyleOptions{Base: "http://127.0.0.1:1", Connection: "local", Token: "TOK"})
		if err != nil {
			t.Fatal(err)
		}
		var s struct {
			Version int                       `json:"version"`
			Glyphs  string                    `json:"glyphs"`
			Sources map[string]map[string]any `json:"sources"`
			Layers  []map[string]any          `json:"layers"`
		}
		if err := json.Unmarshal(b, &s); err != nil {
			t.Fatal(err)
		}
		if s.Version != 8 || s.Glyphs != "http://127.0.0.1:1/basemap/fonts/{fontstack}/{range}.pbf" || len(s.Layers) < 8 {
			t.Errorf("%s: %s", name, b)
		}
		for _, l := range append(basemap.Layers, basemap.Layer{Name: "roads"}) {
			src, ok := s.Sources[l.Name]
			if !ok {
				t.Errorf("%s: no source %s", name, l.Name)
				continue
			}
			u := src["tiles"].([]any)[0].(string)
			if !strings.HasPrefix(u, "http://127.0.0.1:1/api/v3/maps/local/table/{z}/{x}/{y}?") || !strings.Contains(u, "access_token=TOK") ||
				!strings.Contains(u, "name=meridian_basemap."+l.Name) {
				t.Errorf("%s: source %s tiles %s", name, l.Name, u)
			}
		}
	}
	if _, err := basemap.Style("positron", basemap.StyleOptions{}); err == nil {
		t.Error("unknown style accepted")
	}
}

// testData is the shared geodata folder.
func testData(t *testing.T) string {
	dir := os.Getenv("MERIDIAN_TESTDATA")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "shared", "data")
	}
	if _, err := os.Stat(filepath.Join(dir, basemap.Layers[0].File)); err != nil {
		if os.Getenv("MERIDIAN_REQUIRE_DB") != "" || os.Getenv("CI") != "" {
			t.Fatalf("test data: %v", err)
		}
		t.Skipf("test data: %v", err)
	}
	return dir
}

func TestLoad(t *testing.T) {
	dir := testData(t)
	db := pgtest.Data(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, db.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := basemap.Load(ctx, conn, t.TempDir(), nil); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("missing files: %v", err)
	}
	if ok, _ := basemap.Loaded(ctx, conn); ok {
		t.Fatal("loaded before loading")
	}
	var seen []string
	if err := basemap.Load(ctx, conn, dir, func(layer string, done, total int64) {
		if len(seen) == 0 || seen[len(seen)-1] != layer {
			seen = append(seen, layer)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if ok, err := basemap.Loaded(ctx, conn); !ok || err != nil {
		t.Fatalf("not loaded after Load: %v", err)
	}
	if len(seen) != len(basemap.Layers)+1 || seen[len(seen)-1] != "roads" {
		t.Errorf("progress for %v", seen)
	}
	want := map[string][2]int{"land": {200, 300}, "lakes": {1000, 1400}, "rivers": {1000, 1600}, "coastline": {3000, 5000}, "admin1": {4000, 5000}, "places": {7000, 7400}}
	for name, r := range want {
		var n int
		var typ string
		if err := conn.QueryRow(ctx, "SELECT count(*), coalesce(max(GeometryType(geom)), '') FROM "+basemap.Schema+"."+name).Scan(&n, &typ); err != nil {
			t.Fatal(err)
		}
		if n < r[0] || n > r[1] {
			t.Errorf("%s: %d rows, want %d–%d", name, n, r[0], r[1])
		}
		if name == "admin1" && typ != "MULTILINESTRING" {
			t.Errorf("admin1 boundaries are %s", typ)
		}
	}
	var paris int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM meridian_basemap.places WHERE name = 'Paris' AND capital AND scalerank <= 2
		AND ST_DWithin(geom, ST_SetSRID(ST_MakePoint(2.35, 48.86), 4326), 0.2)`).Scan(&paris); err != nil || paris != 1 {
		t.Errorf("Paris: %d %v", paris, err)
	}
	var roads int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM meridian_basemap.roads`).Scan(&roads); err != nil || roads != 0 {
		t.Errorf("roads without an LDS road graph: %d %v, want an empty table", roads, err)
	}

	// An LDS road graph loaded afterwards (meridian lds load; its edges
	// table, as ldsload makes it, in short) makes the basemap stale; the
	// next load draws its roads, by rank, without paths.
	if _, err := conn.Exec(ctx, `CREATE SCHEMA meridian_lds;
		CREATE TABLE meridian_lds.edges (id bigserial PRIMARY KEY, highway text NOT NULL, name text, geom geometry(LineString, 4326) NOT NULL);
		INSERT INTO meridian_lds.edges (highway, name, geom) VALUES
			('motorway', 'I 95', 'SRID=4326;LINESTRING(-75.6 39.6, -75.5 39.7)'),
			('residential', 'Main Street', 'SRID=4326;LINESTRING(-75.55 39.74, -75.54 39.75)'),
			('footway', NULL, 'SRID=4326;LINESTRING(-75.55 39.74, -75.55 39.745)')`); err != nil {
		t.Fatal(err)
	}
	if ok, err := basemap.Loaded(ctx, conn); ok || err != nil {
		t.Fatalf("loaded = %v (%v) with roads to draw, want a reload", ok, err)
	}
	if err := basemap.Load(ctx, conn, dir, nil); err != nil {
		t.Fatal(err)
	}
	if ok, err := basemap.Loaded(ctx, conn); !ok || err != nil {
		t.Fatalf("not loaded after the reload: %v", err)
	}
	var ranks string
	if err := conn.QueryRow(ctx, `SELECT string_agg(class || ':' || rank, ',' ORDER BY rank) FROM meridian_basemap.roads`).Scan(&ranks); err != nil || ranks != "motorway:1,residential:5" {
		t.Errorf("roads: %q %v, want motorway:1,residential:5", ranks, err)
	}
	var leftover bool
	if err := conn.QueryRow(ctx, `SELECT to_regnamespace('meridian_basemap_load') IS NOT NULL`).Scan(&leftover); err != nil || leftover {
		t.Errorf("staging schema left behind: %v", err)
	}
}
