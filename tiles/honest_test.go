package tiles

import (
	"testing"
)

// Small polygons at low zoom (Andorra's parishes, a few kilometres
// across, like NYC's boroughs or NC's counties) are smaller than a pixel
// at z0–1: their tiles are empty (204) and the TileJSON says so, the same
// on a node that rendered nothing.
func TestDroppedFractionOfSmallPolygons(t *testing.T) {
	e := newEnv(t)
	const sql = "SELECT * FROM admin1 WHERE admin = 'Andorra'"
	if n := num(e.scalar("SELECT count(*) FROM admin1 WHERE admin = 'Andorra'")); n < 5 {
		t.Fatalf("test data: %v parishes of Andorra, want some", n)
	}
	tjURL := e.instantiate("query", e.all, "q", sql)
	tj := e.get(tjURL, bearer(e.all)).json(t) // nothing rendered yet
	fr := tj["fraction_dropped_per_zoom"].([]any)
	if len(fr) != 21 || fr[0].(float64) != 1 || fr[1].(float64) != 1 || fr[12].(float64) != 0 {
		t.Fatalf("fraction_dropped_per_zoom = %v, want 1 at z0 and z1, 0 at z12", fr)
	}
	t.Logf("Andorra: fraction_dropped_per_zoom %v", fr)
	tmpl := e.tileTemplate(tjURL, e.all)
	for _, z := range []uint32{0, 1} {
		if r := e.get(expand(tmpl, z, z, 0), bearer(e.all)); r.status != 204 {
			t.Errorf("z%d tile: %d, want 204 (every parish under a pixel)", z, r.status)
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
