//go:build cgo

package spatialindex

import (
	"math"

	"github.com/paulmach/orb"
	"github.com/paulmach/orb/planar"
	"github.com/uber/h3-go/v4"
)

// h3Cover walks the H3 hierarchy from the resolution-0 cells, as
// quadbinCover walks the quadtree. A cell's descendants stray outside its
// hexagon by less than half an edge of the cell; so a cell is whole (its
// descendants at res all in, or all out, as its centre is) when no
// polygon edge meets its box (cellBox: around its centre, so that only
// the cells tested at res need their boundary). Other cells are split
// down to res, where each is tested against the edges: Intersects keeps
// the cells an edge meets or whose centre is inside, Contains the cells
// whose centre is inside and no edge meets, Center the cells whose centre
// is inside. Longitudes of cells across the antimeridian are moved past
// 180, and such cells are tested on both sides (polygons are taken in
// [-180, 180]).
func h3Cover(mp orb.MultiPolygon, res int, mode Mode, maxCells int) ([]Range, error) {
	var out []Range
	bud := budget{kind: H3, res: res, maxCells: maxCells}
	all := edges(mp)
	var walk, walkChildren func(c h3.Cell, r int, es []segment) error
	walk = func(c h3.Cell, r int, es []segment) error {
		if err := bud.spend(len(es)); err != nil {
			return err
		}
		centre, b, alt := cellBox(c, r)
		var in []segment
		for _, s := range es {
			if segmentMeetsBound(s, b) || alt != nil && segmentMeetsBound(s, *alt) {
				in = append(in, s)
			}
		}
		whole := func() {
			lo, hi := H3.ChildRange(uint64(c), res)
			out = append(out, Range{lo, hi})
		}
		if len(in) == 0 {
			// Past the antimeridian (alt), a polygon (in [-180, 180])
			// without an edge near the cell does not reach it: a cell
			// whose centre is inside is then split.
			bud.work += len(all)
			inside := planar.MultiPolygonContains(mp, centre)
			switch {
			case inside && (alt == nil || r == res):
				whole()
			case inside:
				return walkChildren(c, r, nil)
			}
			return nil
		}
		if r == res {
			ring := cellRing(c)
			centre := cellCentre(c, ring)
			across := ring.Bound().Max[0] > 180
			bud.work += len(all) + len(in)*len(ring)
			meets, inside := cellMeets(mp, in, ring, centre)
			if across {
				m, i := cellMeets(mp, in, shiftRing(ring, -360), orb.Point{centre[0] - 360, centre[1]})
				meets, inside = meets || m, inside || i
			}
			if mode == Intersects && (meets || inside) || mode == Contains && inside && !meets || mode == Center && inside {
				whole()
			}
			if len(out) > maxCells {
				return tooMany(H3, res, maxCells)
			}
			return nil
		}
		return walkChildren(c, r, in)
	}
	walkChildren = func(c h3.Cell, r int, es []segment) error {
		for _, ch := range c.Children(r + 1) {
			if err := walk(ch, r+1, es); err != nil {
				return err
			}
		}
		return nil
	}
	for _, c := range h3.Res0Cells() {
		if err := walk(c, 0, all); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// cellMeets reports whether the edges es meet ring, and whether centre is
// inside mp.
func cellMeets(mp orb.MultiPolygon, es []segment, ring orb.Ring, centre orb.Point) (meets, inside bool) {
	for _, s := range es {
		if meets = segmentMeetsRing(s, ring); meets {
			break
		}
	}
	return meets, planar.MultiPolygonContains(mp, centre)
}

func shiftBound(b orb.Bound, dx float64) orb.Bound {
	return orb.Bound{Min: orb.Point{b.Min[0] + dx, b.Min[1]}, Max: orb.Point{b.Max[0] + dx, b.Max[1]}}
}

func shiftRing(r orb.Ring, dx float64) orb.Ring {
	out := make(orb.Ring, len(r))
	for i, p := range r {
		out[i] = orb.Point{p[0] + dx, p[1]}
	}
	return out
}

// grow returns b grown by d degrees of latitude on every side (more in
// longitude, by the latitude's shrinking of a degree of longitude).
func grow(b orb.Bound, d float64) orb.Bound {
	lat := math.Min(89, math.Max(math.Abs(b.Min[1]), math.Abs(b.Max[1]))+d)
	dx := d / math.Max(math.Cos(lat*math.Pi/180), 0.01)
	return orb.Bound{Min: orb.Point{b.Min[0] - dx, b.Min[1] - d}, Max: orb.Point{b.Max[0] + dx, b.Max[1] + d}}
}

// cellRing is c's boundary as a closed lon/lat ring; a ring across the
// antimeridian has its western longitudes moved past 180.
func cellRing(c h3.Cell) orb.Ring {
	b := h3.CellToBoundary(c)
	r := make(orb.Ring, 0, len(b)+1)
	minLon, maxLon := 180.0, -180.0
	for _, ll := range b {
		r = append(r, orb.Point{ll.Lng, ll.Lat})
		minLon, maxLon = math.Min(minLon, ll.Lng), math.Max(maxLon, ll.Lng)
	}
	if maxLon-minLon > 180 {
		for i := range r {
			if r[i][0] < 0 {
				r[i][0] += 360
			}
		}
	}
	return append(r, r[0])
}

// cellCentre is c's centre, on the same side of the antimeridian as ring.
func cellCentre(c h3.Cell, ring orb.Ring) orb.Point {
	ll := h3.CellToLatLng(c)
	p := orb.Point{ll.Lng, ll.Lat}
	if p[0] < 0 && ring.Bound().Max[0] > 180 {
		p[0] += 360
	}
	return p
}

// h3Margin is how far, in average edges of a cell's resolution, its
// descendants may lie outside its bounding box; h3Reach how far from its
// centre its vertices may lie (1.27 at most away from the poles).
const (
	h3Margin = 1.0
	h3Reach  = 1.6
)

// cellBox returns c's centre and a box holding c and its descendants:
// around the centre, by h3Reach+h3Margin edges (by the boundary near the
// poles, where a degree of longitude shrinks fast). alt is the box's part
// past ±180 moved to the other side, nil when there is none.
func cellBox(c h3.Cell, r int) (centre orb.Point, b orb.Bound, alt *orb.Bound) {
	edge := h3.HexagonEdgeLengthAvgKm(r) / 111.32
	ll := h3.CellToLatLng(c)
	centre = orb.Point{ll.Lng, ll.Lat}
	if math.Abs(ll.Lat)+(h3Reach+h3Margin)*edge < 75 {
		b = grow(orb.Bound{Min: centre, Max: centre}, (h3Reach+h3Margin)*edge)
	} else {
		ring := cellRing(c)
		centre = cellCentre(c, ring)
		b = grow(ring.Bound(), h3Margin*edge)
	}
	switch {
	case b.Max[0] > 180:
		a := shiftBound(b, -360)
		alt = &a
	case b.Min[0] < -180:
		a := shiftBound(b, 360)
		alt = &a
	}
	return centre, b, alt
}
