package spatialindex

// Covers: the cells of one resolution that a polygon filter keeps
// (spatialFiltersMode), as sorted id ranges for SQL. Geometry is planar in
// lon/lat, as PostGIS ST_Intersects is on EPSG:4326 geometries: a
// quadbin's tile is the lon/lat rectangle of its Mercator envelope (what
// ST_Transform(ST_TileEnvelope(z, x, y), 4326) gives), an H3 cell the
// polygon of its boundary vertices.

import (
	"math"
	"slices"

	"github.com/paulmach/orb"
	"github.com/paulmach/orb/planar"

	"github.com/meridian-gis/meridian/internal/tile"
	"github.com/meridian-gis/meridian/tiles/internal/clienterr"
)

// ErrTooManyCells: a spatial filter covers more cells than a request may
// list.
var ErrTooManyCells = clienterr.Kind("spatialindex", "spatial filter too large")

// ErrNoH3: H3 spatial filters need the H3 library, which is C; a binary
// built with CGO_ENABLED=0 refuses them.
var ErrNoH3 = clienterr.Kind("spatialindex", "H3 spatial filters need a binary built with cgo")

// ErrBadMode: an unknown spatialFiltersMode.
var ErrBadMode = clienterr.Kind("spatialindex", "bad spatialFiltersMode")

// Mode is how a cell meets a polygon filter (spatialFiltersMode).
type Mode string

// Modes (@carto/api-client SpatialFilterPolyfillMode).
const (
	// Intersects keeps the cells that meet the polygon (the default).
	Intersects Mode = "intersects"
	// Contains keeps the cells wholly inside the polygon.
	Contains Mode = "contains"
	// Center keeps the cells whose centre is inside the polygon (a
	// quadbin's: its tile's centre in Web Mercator; an H3 cell's: h3-go's).
	Center Mode = "center"
)

// ParseMode reads spatialFiltersMode; "" is Intersects.
func ParseMode(s string) (Mode, error) {
	switch Mode(s) {
	case "":
		return Intersects, nil
	case Intersects, Contains, Center:
		return Mode(s), nil
	}
	return "", clienterr.Errorf(ErrBadMode, " %q: want intersects, contains or center", s)
}

// Range is an inclusive range of cell ids.
type Range struct{ Lo, Hi uint64 }

// Cover returns the cells of resolution res that mode keeps of the
// polygons mp (lon/lat), as sorted, disjoint id ranges. It fails with
// ErrTooManyCells when the work or the answer would exceed maxCells cells
// or ranges.
func (k Kind) Cover(mp orb.MultiPolygon, res int, mode Mode, maxCells int) ([]Range, error) {
	if res < 0 || res > k.MaxRes() {
		return nil, clienterr.Errorf(ErrBadCell, ": resolution %d of %s", res, k)
	}
	var rs []Range
	var err error
	if k == H3 {
		rs, err = h3Cover(mp, res, mode, maxCells)
	} else {
		rs, err = quadbinCover(mp, res, mode, maxCells)
	}
	if err != nil {
		return nil, err
	}
	return mergeRanges(rs, k.step(res)), nil
}

// MergeRanges sorts ranges of ids of cells of k at resolution res and
// joins those that overlap or touch.
func MergeRanges(rs []Range, k Kind, res int) []Range {
	return mergeRanges(rs, k.step(res))
}

// step is the difference between consecutive ids of resolution res.
func (k Kind) step(res int) uint64 {
	if k == H3 {
		return 1 << (3 * (15 - res))
	}
	return 1 << (52 - 2*res)
}

// mergeRanges sorts rs and joins the ranges that touch (the next id after
// one is the first of the other).
func mergeRanges(rs []Range, step uint64) []Range {
	slices.SortFunc(rs, func(a, b Range) int {
		switch {
		case a.Lo < b.Lo:
			return -1
		case a.Lo > b.Lo:
			return 1
		}
		return 0
	})
	out := rs[:0]
	for _, r := range rs {
		if n := len(out); n > 0 && r.Lo <= out[n-1].Hi+step {
			out[n-1].Hi = max(out[n-1].Hi, r.Hi)
			continue
		}
		out = append(out, r)
	}
	return out
}

// maxWork bounds the edge tests of one cover (a cell's test against a
// polygon edge, a point's against a ring's edge): about a second's work.
const maxWork = 1 << 25

// budget counts a cover's work: the cells walked and the edge tests.
type budget struct {
	kind          Kind
	res, maxCells int
	cells, work   int
}

// spend records a cell walked with n edge tests, and fails past the
// bounds.
func (b *budget) spend(n int) error {
	b.cells++
	b.work += n
	if b.cells > 4*b.maxCells || b.work > maxWork {
		return tooMany(b.kind, b.res, b.maxCells)
	}
	return nil
}

// tooMany is the error of a cover past max cells.
func tooMany(k Kind, res, max int) error {
	return clienterr.Errorf(ErrTooManyCells, ": the spatial filter meets more than %d %s cells at resolution %d "+
		"(the source's cells): draw a smaller or simpler polygon", max, k, res)
}

// segment is one polygon edge.
type segment struct{ a, b orb.Point }

// edges lists the edges of every ring of mp.
func edges(mp orb.MultiPolygon) []segment {
	var out []segment
	for _, p := range mp {
		for _, r := range p {
			for i := 1; i < len(r); i++ {
				out = append(out, segment{r[i-1], r[i]})
			}
			if n := len(r); n > 1 && r[0] != r[n-1] {
				out = append(out, segment{r[n-1], r[0]})
			}
		}
	}
	return out
}

// orient is the sign of the cross product (b-a)×(c-a).
func orient(a, b, c orb.Point) int {
	v := (b[0]-a[0])*(c[1]-a[1]) - (b[1]-a[1])*(c[0]-a[0])
	switch {
	case v > 0:
		return 1
	case v < 0:
		return -1
	}
	return 0
}

// onSegment: c, collinear with a–b, lies within its box.
func onSegment(a, b, c orb.Point) bool {
	return math.Min(a[0], b[0]) <= c[0] && c[0] <= math.Max(a[0], b[0]) &&
		math.Min(a[1], b[1]) <= c[1] && c[1] <= math.Max(a[1], b[1])
}

// crosses reports whether segments p and q meet (touching counts).
func crosses(p, q segment) bool {
	o1, o2 := orient(p.a, p.b, q.a), orient(p.a, p.b, q.b)
	o3, o4 := orient(q.a, q.b, p.a), orient(q.a, q.b, p.b)
	if o1 != o2 && o3 != o4 {
		return true
	}
	return o1 == 0 && onSegment(p.a, p.b, q.a) || o2 == 0 && onSegment(p.a, p.b, q.b) ||
		o3 == 0 && onSegment(q.a, q.b, p.a) || o4 == 0 && onSegment(q.a, q.b, p.b)
}

// segmentMeetsRing reports whether s meets the closed ring r (its edge or
// its inside).
func segmentMeetsRing(s segment, r orb.Ring) bool {
	if planar.RingContains(r, s.a) || planar.RingContains(r, s.b) {
		return true
	}
	for i := 1; i < len(r); i++ {
		if crosses(s, segment{r[i-1], r[i]}) {
			return true
		}
	}
	return false
}

// segmentMeetsBound reports whether s meets the rectangle b.
func segmentMeetsBound(s segment, b orb.Bound) bool {
	sb := orb.Bound{Min: s.a, Max: s.a}.Extend(s.b)
	if !sb.Intersects(b) {
		return false
	}
	if b.Contains(s.a) || b.Contains(s.b) {
		return true
	}
	return segmentMeetsRing(s, b.ToRing())
}

// quadbinCover walks the quadtree from the root: a tile no edge meets is
// wholly in or out of the polygons (its centre tells which); tiles the
// edges meet are split down to res. Each tile gets only the edges that met
// its parent.
func quadbinCover(mp orb.MultiPolygon, res int, mode Mode, maxCells int) ([]Range, error) {
	var out []Range
	bud := budget{kind: Quadbin, res: res, maxCells: maxCells}
	all := edges(mp)
	var walk func(c tile.Coord, es []segment) error
	walk = func(c tile.Coord, es []segment) error {
		if err := bud.spend(len(es)); err != nil {
			return err
		}
		lb := c.LonLatBounds()
		b := orb.Bound{Min: orb.Point{lb.MinX, lb.MinY}, Max: orb.Point{lb.MaxX, lb.MaxY}}
		var in []segment
		for _, s := range es {
			if segmentMeetsBound(s, b) {
				in = append(in, s)
			}
		}
		q := QuadbinFromTile(c.Z, c.X, c.Y)
		whole := func() {
			lo, hi := Quadbin.ChildRange(q, res)
			out = append(out, Range{lo, hi})
		}
		if len(in) == 0 {
			bud.work += len(all)
			if planar.MultiPolygonContains(mp, b.Center()) {
				whole()
			}
			return nil
		}
		if int(c.Z) == res {
			keep := mode == Intersects
			if mode == Center {
				bud.work += len(all)
				mb := c.Bounds()
				lon, lat := tile.ToLonLat((mb.MinX+mb.MaxX)/2, (mb.MinY+mb.MaxY)/2)
				keep = planar.MultiPolygonContains(mp, orb.Point{lon, lat})
			}
			if keep {
				whole()
			}
			if len(out) > maxCells {
				return tooMany(Quadbin, res, maxCells)
			}
			return nil
		}
		for _, ch := range c.Children() {
			if err := walk(ch, in); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(tile.Coord{}, all); err != nil {
		return nil, err
	}
	return out, nil
}
