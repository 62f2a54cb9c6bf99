package tiles

import (
	"context"
	"testing"

	"github.com/meridian-gis/meridian/internal/tile"
	"github.com/meridian-gis/meridian/tiles/internal/mvt"
	"github.com/meridian-gis/meridian/tiles/internal/render"
	"github.com/meridian-gis/meridian/tiles/internal/source"
)

// Small polygons at low zoom (Andorra's parishes, a few kilometres
// across, like NYC's boroughs or NC's counties) are smaller than a pixel
// at z0–1: rendered from their table they stay, each as a one-pixel
// square, so the map is not empty, and the TileJSON drops nothing, the
// same on a node that rendered nothing.
func TestDroppedFractionOfSmallPolygons(t *testing.T) {
	e := newEnv(t)
	const sql = "SELECT * FROM admin1 WHERE admin = 'Andorra'"
	if n := num(e.scalar("SELECT count(*) FROM admin1 WHERE admin = 'Andorra'")); n < 5 {
		t.Fatalf("test data: %v parishes of Andorra, want some", n)
	}
	tjURL := e.instantiate("query", e.all, "q", sql)
	tj := e.get(tjURL, bearer(e.all)).json(t) // nothing rendered yet
	fr := tj["fraction_dropped_per_zoom"].([]any)
	for z := range fr {
		if fr[z].(float64) != 0 {
			t.Fatalf("fraction_dropped_per_zoom = %v, want zeros (small polygons kept as a pixel)", fr)
		}
	}
	t.Logf("Andorra: fraction_dropped_per_zoom %v", fr)
	tmpl := e.tileTemplate(tjURL, e.all)
	n := num(e.scalar("SELECT count(*) FROM admin1 WHERE admin = 'Andorra'"))
	for _, z := range []uint32{0, 1} {
		r := e.get(expand(tmpl, z, z, 0), bearer(e.all), "Accept-Encoding: gzip")
		if r.status != 200 {
			t.Fatalf("z%d tile: %d, want 200 (every parish as a pixel)", z, r.status)
		}
		features := 0
		for _, l := range decodeTile(t, r) {
			for _, f := range l.Features {
				features++
				if f.Geometry.GeoJSONType() != "Polygon" {
					t.Errorf("z%d: feature of type %s, want a Polygon", z, f.Geometry.GeoJSONType())
				}
			}
		}
		t.Logf("z%d: %d parishes as pixels in %d gzip bytes", z, features, len(r.body))
		if float64(features) != n {
			t.Errorf("z%d tile: %d features, want the %v parishes", z, features, n)
		}
	}
	// Another node on the same data answers the same without rendering.
	other := newEnv(t)
	tj2 := other.get(other.instantiate("query", other.all, "q", sql), bearer(other.all)).json(t)
	fr2 := tj2["fraction_dropped_per_zoom"].([]any)
	for z := range fr {
		if fr[z] != fr2[z] {
			t.Fatalf("second node: fraction_dropped_per_zoom = %v, first node %v", fr2, fr)
		}
	}
}

// A source across the antimeridian (the United States with the
// Aleutians) gets bounds whose west is east of their east and a center
// in the middle of them, not at the world's.
func TestTileJSONAcrossTheAntimeridian(t *testing.T) {
	e := newEnv(t)
	tj := e.get(e.instantiate("query", e.all, "q", "SELECT * FROM admin1 WHERE admin = 'United States of America'"), bearer(e.all)).json(t)
	b := tj["bounds"].([]any)
	c := tj["center"].([]any)
	t.Logf("United States: bounds %v, center %v", b, c)
	west, east := b[0].(float64), b[2].(float64)
	if west < 170 || west > 180 || east > -60 || east < -70 {
		t.Errorf("bounds = %v, want west ≈ 172 (Attu) and east ≈ -67 (Maine)", b)
	}
	if lon, lat, z := c[0].(float64), c[1].(float64), c[2].(float64); lon < -140 || lon > -110 || lat < 35 || lat > 55 || z < 1 || z > 3 {
		t.Errorf("center = %v, want the middle of the bounds (about -127, 45, zoom 2)", c)
	}
}

// TestKeepSmallPolygonsBytes measures what keeping polygons under a
// pixel costs: the z0–2 tiles of NE admin-1 (4,854 provinces) rendered
// from the table with and without the one-pixel squares.
func TestKeepSmallPolygonsBytes(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	src, err := e.srv.engine.Source(ctx, source.Spec{Conn: "pg", Type: source.TypeTable, Name: "admin1", Geom: "geom",
		Columns: []string{"iso_3166_2"}, Resolution: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	for _, co := range []tile.Coord{{Z: 0}, {Z: 1, X: 1, Y: 0}, {Z: 2, X: 2, Y: 1}} {
		var sizes [2]int
		var kept [2]int64
		for i, keep := range []bool{false, true} {
			l := src.Layer
			l.KeepSmall = keep
			sql, err := mvt.Build(l)
			if err != nil {
				t.Fatal(err)
			}
			rt, err := render.Render(ctx, e.db.Pool, sql, src.Args, co, render.Options{})
			if err != nil {
				t.Fatal(err)
			}
			sizes[i], kept[i] = len(rt.Gzip), rt.Kept
		}
		t.Logf("tile %v: culled %d features in %d gzip bytes; kept as pixels %d features in %d bytes (+%.1f%%)",
			co, kept[0], sizes[0], kept[1], sizes[1], 100*float64(sizes[1]-sizes[0])/float64(sizes[0]))
		if kept[1] < kept[0] || sizes[1] < sizes[0] {
			t.Errorf("tile %v: keeping small polygons gave %d features, %d bytes; culling %d, %d", co, kept[1], sizes[1], kept[0], sizes[0])
		}
	}
}
