package spatialindex

import (
	"errors"
	"slices"
	"testing"

	"github.com/paulmach/orb"
	"github.com/paulmach/orb/planar"

	"github.com/meridian-gis/meridian/internal/tile"
)

// coverPolygons: a polygon with a hole (France to Germany, hole around
// Paris) and a triangle (northern Italy); a small polygon inside one
// tile; a polygon whose edges run along tile edges.
var coverPolygons = map[string]orb.MultiPolygon{
	"holed and triangle": {
		{{{-4.8, 43.2}, {3.1, 42.3}, {8.3, 46.9}, {11.7, 52.4}, {6.1, 54.1}, {-1.3, 49.9}, {-4.8, 43.2}},
			{{1.3, 48.3}, {3.4, 48.2}, {3.6, 49.4}, {1.6, 49.2}, {1.3, 48.3}}},
		{{{7.1, 44.1}, {13.9, 45.2}, {10.4, 47.1}, {7.1, 44.1}}},
	},
	"small": {{{{2.31, 48.85}, {2.36, 48.85}, {2.34, 48.87}, {2.31, 48.85}}}},
}

// bruteMeets reports whether ring r (a cell) meets mp, and whether mp
// covers it, by testing every pair of edges and every vertex.
func bruteMeets(r orb.Ring, mp orb.MultiPolygon) (meets, covered bool) {
	crossing := false
	for _, s := range edges(mp) {
		for i := 1; i < len(r); i++ {
			if crosses(s, segment{r[i-1], r[i]}) {
				crossing = true
			}
		}
		if planar.RingContains(r, s.a) {
			crossing = true
		}
	}
	allIn, anyIn := true, false
	for _, p := range r {
		in := planar.MultiPolygonContains(mp, p)
		allIn, anyIn = allIn && in, anyIn || in
	}
	return crossing || anyIn, allIn && !crossing
}

func inRanges(rs []Range, c uint64) bool {
	for _, r := range rs {
		if c >= r.Lo && c <= r.Hi {
			return true
		}
	}
	return false
}

// The quadbin cover is what testing every tile of the area gives.
func TestQuadbinCover(t *testing.T) {
	for name, mp := range coverPolygons {
		for _, res := range []int{4, 7, 10} {
			cover := map[Mode][]Range{}
			for _, m := range []Mode{Intersects, Contains, Center} {
				rs, err := Quadbin.Cover(mp, res, m, MaxTestCells)
				if err != nil {
					t.Fatal(err)
				}
				cover[m] = rs
			}
			b := mp.Bound()
			lo, hi := tile.At(b.Min[0]-1, b.Max[1]+1, uint32(res)), tile.At(b.Max[0]+1, b.Min[1]-1, uint32(res))
			n := [3]int{}
			for x := lo.X; x <= hi.X; x++ {
				for y := lo.Y; y <= hi.Y; y++ {
					c := tile.Coord{Z: uint32(res), X: x, Y: y}
					lb := c.LonLatBounds()
					ring := orb.Bound{Min: orb.Point{lb.MinX, lb.MinY}, Max: orb.Point{lb.MaxX, lb.MaxY}}.ToRing()
					meets, covered := bruteMeets(ring, mp)
					mb := c.Bounds()
					lon, lat := tile.ToLonLat((mb.MinX+mb.MaxX)/2, (mb.MinY+mb.MaxY)/2)
					centre := planar.MultiPolygonContains(mp, orb.Point{lon, lat})
					q := QuadbinFromTile(c.Z, c.X, c.Y)
					for i, tc := range []struct {
						m    Mode
						want bool
					}{{Intersects, meets}, {Contains, covered}, {Center, centre}} {
						if got := inRanges(cover[tc.m], q); got != tc.want {
							t.Errorf("%s res %d %s: tile %d/%d/%d in cover %v, want %v", name, res, tc.m, c.Z, c.X, c.Y, got, tc.want)
						}
						if tc.want {
							n[i]++
						}
					}
				}
			}
			if n[0] == 0 || name != "small" && res >= 7 && n[1] == 0 {
				t.Errorf("%s res %d: counts %v: want cells", name, res, n)
			}
		}
	}
}

// MaxTestCells is the cover bound of the tests.
const MaxTestCells = 100_000

func TestCoverErrors(t *testing.T) {
	if _, err := ParseMode("nearby"); !errors.Is(err, ErrBadMode) {
		t.Errorf("ParseMode(nearby) = %v", err)
	}
	if m, err := ParseMode(""); m != Intersects || err != nil {
		t.Errorf("ParseMode('') = %v %v", m, err)
	}
	// A comb of long teeth meets too many level-18 tiles.
	var ring orb.Ring
	for i := range 200 {
		x := -170.3 + float64(i)*1.7
		ring = append(ring, orb.Point{x, -60}, orb.Point{x, 60}, orb.Point{x + 0.85, 60}, orb.Point{x + 0.85, -59})
	}
	ring = append(ring, orb.Point{169.7, -60}, orb.Point{169.7, -70}, orb.Point{-170.3, -70}, orb.Point{-170.3, -60})
	comb := orb.MultiPolygon{{ring}}
	for _, k := range []Kind{Quadbin, H3} {
		if _, err := k.Cover(comb, map[Kind]int{Quadbin: 18, H3: 9}[k], Intersects, MaxTestCells); !errors.Is(err, ErrTooManyCells) {
			t.Errorf("%s comb: %v, want ErrTooManyCells", k, err)
		}
	}
	// The whole world is a handful of ranges.
	world := orb.MultiPolygon{{{{-180.5, -86}, {180.5, -86}, {180.5, 86}, {-180.5, 86}, {-180.5, -86}}}}
	rs, err := Quadbin.Cover(world, 26, Intersects, MaxTestCells)
	if err != nil || len(rs) != 1 {
		t.Errorf("world cover: %d ranges, %v", len(rs), err)
	}
}

func TestMergeRanges(t *testing.T) {
	got := mergeRanges([]Range{{10, 12}, {1, 3}, {4, 5}, {7, 8}}, 1)
	want := []Range{{1, 5}, {7, 8}, {10, 12}}
	if len(got) != len(want) {
		t.Fatalf("%v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("%v, want %v", got, want)
		}
	}
}

// Covers answers as Cover, keeps the answer (the same slice the next
// time), computes once for concurrent callers, and drops old covers past
// its bound.
func TestCovers(t *testing.T) {
	var cs Covers
	mp := coverPolygons["holed and triangle"]
	const gj = `{"holed":"and triangle"}` // the key only
	want, err := Quadbin.Cover(mp, 10, Intersects, MaxTestCells)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan []Range)
	for range 4 {
		go func() {
			rs, err := cs.Cover(Quadbin, gj, mp, 10, Intersects, MaxTestCells)
			if err != nil {
				t.Error(err)
			}
			done <- rs
		}()
	}
	for range 4 {
		if rs := <-done; !slices.Equal(rs, want) {
			t.Fatalf("cover differs: %d ranges, want %d", len(rs), len(want))
		}
	}
	a, _ := cs.Cover(Quadbin, gj, mp, 10, Intersects, MaxTestCells)
	b, _ := cs.Cover(Quadbin, gj, mp, 10, Intersects, MaxTestCells)
	if &a[0] != &b[0] || len(cs.entries) != 1 {
		t.Errorf("not kept: %d entries", len(cs.entries))
	}
	if c, _ := cs.Cover(Quadbin, gj, mp, 10, Contains, MaxTestCells); slices.Equal(c, a) || len(cs.entries) != 2 {
		t.Errorf("mode not in the key: %d entries", len(cs.entries))
	}
	for i := range 1100 {
		cs.keep(coverKey{res: i}, []Range{{1, 2}})
	}
	if len(cs.entries) != 1024 || len(cs.order) != 1024 {
		t.Errorf("%d entries, %d in order, want 1024", len(cs.entries), len(cs.order))
	}
	if _, err := (*Covers)(nil).Cover(Quadbin, gj, mp, 10, Intersects, MaxTestCells); err != nil {
		t.Error(err)
	}
}
