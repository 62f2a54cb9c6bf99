//go:build cgo

package spatialindex

import (
	"testing"

	"github.com/paulmach/orb"
	"github.com/paulmach/orb/planar"
	"github.com/uber/h3-go/v4"
)

// The H3 cover is what testing every cell of the area gives, also next
// to the antimeridian (Fiji, on both sides).
func TestH3Cover(t *testing.T) {
	polys := map[string]orb.MultiPolygon{
		"antimeridian west": {{{{-179.95, -18.2}, {-178.1, -18.4}, {-178.5, -16.1}, {-179.95, -18.2}}}},
		"antimeridian east": {{{{178.1, -18.2}, {179.97, -18.4}, {179.5, -16.1}, {178.1, -18.2}}}},
		"svalbard":          {{{{10.2, 76.3}, {29.6, 76.1}, {27.1, 80.2}, {11.3, 79.9}, {10.2, 76.3}}}},
		"chukotka west":     {{{{-179.9, 64.2}, {-172.3, 64.6}, {-175.1, 68.3}, {-179.9, 64.2}}}},
		"chukotka east":     {{{{172.4, 64.1}, {179.95, 64.4}, {176.2, 68.9}, {172.4, 64.1}}}},
	}
	for name, mp := range coverPolygons {
		polys[name] = mp
	}
	for name, mp := range polys {
		for _, res := range []int{3, 5, 7} {
			if (name == "holed and triangle") && res == 7 {
				continue
			}
			cover := map[Mode][]Range{}
			for _, m := range []Mode{Intersects, Contains, Center} {
				rs, err := H3.Cover(mp, res, m, MaxTestCells)
				if err != nil {
					t.Fatal(err)
				}
				cover[m] = rs
			}
			b := mp.Bound()
			area := h3.GeoPolygon{GeoLoop: h3.GeoLoop{{Lat: b.Min[1] - 1, Lng: b.Min[0] - 4}, {Lat: b.Min[1] - 1, Lng: b.Max[0] + 4},
				{Lat: b.Max[1] + 1, Lng: b.Max[0] + 4}, {Lat: b.Max[1] + 1, Lng: b.Min[0] - 4}}}
			n := [3]int{}
			for _, c := range h3.PolygonToCells(area, res) {
				ring := cellRing(c)
				meets, covered := bruteMeets(ring, mp)
				centre := planar.MultiPolygonContains(mp, cellCentre(c, ring))
				if ring.Bound().Max[0] > 180 { // across: the west side too
					m, cv := bruteMeets(shiftRing(ring, -360), mp)
					p := cellCentre(c, ring)
					meets, covered = meets || m, covered || cv
					centre = centre || planar.MultiPolygonContains(mp, orb.Point{p[0] - 360, p[1]})
				}
				for i, tc := range []struct {
					m    Mode
					want bool
				}{{Intersects, meets}, {Contains, covered}, {Center, centre}} {
					if got := inRanges(cover[tc.m], uint64(c)); got != tc.want {
						t.Errorf("%s res %d %s: cell %s in cover %v, want %v", name, res, tc.m, c, got, tc.want)
					}
					if tc.want {
						n[i]++
					}
				}
			}
			if n[0] == 0 || name == "holed and triangle" && res >= 5 && n[1] == 0 {
				t.Errorf("%s res %d: counts %v: want cells", name, res, n)
			}
		}
	}
}

// A cell's descendants lie within its bounding box grown by h3Margin
// average edges of its resolution (what h3Cover takes a whole cell to
// be); they do for 0.4 edges too.
func TestH3DescendantsNearCell(t *testing.T) {
	var cells []h3.Cell
	for _, c := range h3.Res0Cells() {
		cells = append(cells, c, c.Children(1)[2], c.Children(4)[5], c.Children(7)[40])
	}
	for _, c := range cells {
		r := c.Resolution()
		ring := cellRing(c)
		b := grow(ring.Bound(), h3Margin*h3.HexagonEdgeLengthAvgKm(r)/111.32)
		if b.Max[0]-b.Min[0] > 180 {
			continue // polar
		}
		for _, d := range c.Children(r + 3) {
			for _, p := range cellRing(d) {
				if !b.Contains(p) && !b.Contains(orb.Point{p[0] + 360, p[1]}) && !b.Contains(orb.Point{p[0] - 360, p[1]}) {
					t.Fatalf("cell %s (res %d): descendant %s's vertex %v outside %v", c, r, d, p, b)
				}
			}
		}
	}
}
