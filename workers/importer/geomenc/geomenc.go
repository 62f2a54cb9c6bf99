// Package geomenc turns the geometry encodings found in uploaded files —
// GeoJSON geometry objects, WKT/EWKT text and WKB/EWKB bytes — into
// little-endian EWKB that PostGIS accepts as geometry input, in one pass
// and without an intermediate object tree.
//
// It exists because the obvious route (github.com/paulmach/orb and its
// encoders) is two-dimensional: Z and M values would be dropped silently.
// The Builder keeps them, and it applies the same checks PostGIS applies
// when it parses WKB (LW_PARSER_CHECK_ALL): a LineString needs two
// positions, a ring four, and a ring must be closed. Unclosed rings are
// closed here (counted in Info.ClosedRings) rather than refused, since
// that is the common defect of hand-made files; the other defects are
// errors, returned before PostgreSQL ever sees the geometry, so the
// importer can say which feature or row was wrong.
//
// Output never carries an SRID: the importer sets it in SQL. An SRID found
// in the input (EWKT "SRID=n;", EWKB flag) is reported in Info.SRID.
package geomenc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Type is an OGC geometry type code, as used in WKB.
type Type uint32

// The seven OGC simple-feature types.
const (
	Point              Type = 1
	LineString         Type = 2
	Polygon            Type = 3
	MultiPoint         Type = 4
	MultiLineString    Type = 5
	MultiPolygon       Type = 6
	GeometryCollection Type = 7
)

var typeNames = [...]string{"", "Point", "LineString", "Polygon", "MultiPoint", "MultiLineString", "MultiPolygon", "GeometryCollection"}

// String returns the OGC name ("MultiPolygon"), as PostGIS typmods spell it.
func (t Type) String() string {
	if t >= 1 && t <= 7 {
		return typeNames[t]
	}
	return fmt.Sprintf("Type(%d)", uint32(t))
}

// Multi returns the multi type of a single type (Polygon → MultiPolygon);
// other types are returned unchanged.
func (t Type) Multi() Type {
	if t >= Point && t <= Polygon {
		return t + 3
	}
	return t
}

// Single returns the member type of a multi type (MultiPolygon → Polygon);
// other types are returned unchanged.
func (t Type) Single() Type {
	if t >= MultiPoint && t <= MultiPolygon {
		return t - 3
	}
	return t
}

// ErrInvalid is wrapped by every error about malformed geometry input.
var ErrInvalid = errors.New("invalid geometry")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// Info describes the geometry most recently built.
type Info struct {
	// Type of the outermost geometry.
	Type Type
	// HasZ and HasM tell which ordinates follow X and Y.
	HasZ, HasM bool
	// Empty is true when the geometry has no positions at all.
	Empty bool
	// BBox is minX, minY, maxX, maxY over all positions; meaningless when
	// Empty.
	BBox [4]float64
	// SRID is the SRID carried by EWKT or EWKB input; 0 when none.
	SRID int
	// ClosedRings counts polygon rings closed by appending their first
	// position.
	ClosedRings int
}

// maxDepth bounds GeometryCollection nesting.
const maxDepth = 32

const (
	ewkbZ    = 0x80000000
	ewkbM    = 0x40000000
	ewkbSRID = 0x20000000
)

type frame struct {
	countPos int  // offset of the uint32 count to patch
	count    int  // items so far (positions, rings or geometries)
	ring     bool // the frame is a polygon ring
	line     bool // the frame is a LineString
	first    int  // offset of the first position (rings), -1 before it
}

// Builder accumulates one EWKB geometry. The zero value is ready to use;
// Reset starts the next geometry and keeps the buffer.
type Builder struct {
	buf   []byte
	stack []frame
	dims  int // ordinates per position: 2, 3 or 4
	info  Info
	depth int
}

// Reset discards the geometry being built, keeping allocated memory.
func (b *Builder) Reset() {
	b.buf = b.buf[:0]
	b.stack = b.stack[:0]
	b.info = Info{Empty: true, BBox: [4]float64{math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)}}
	b.depth = 0
	b.dims = 0
}

// Bytes returns the EWKB built since the last Reset. It aliases the
// Builder's buffer: valid until the next Reset.
func (b *Builder) Bytes() []byte { return b.buf }

// Info describes the geometry built since the last Reset.
func (b *Builder) Info() Info { return b.info }

func (b *Builder) setDims(z, m bool) {
	b.info.HasZ, b.info.HasM = z, m
	b.dims = 2
	if z {
		b.dims++
	}
	if m {
		b.dims++
	}
}

// begin writes a geometry header. For the outermost geometry it also
// records the type. Every geometry but a Point gets a count placeholder.
func (b *Builder) begin(t Type) error {
	if b.depth >= maxDepth {
		return invalid("geometry collections nested deeper than %d", maxDepth)
	}
	if len(b.stack) > 0 {
		b.stack[len(b.stack)-1].count++
	} else if b.depth == 0 {
		b.info.Type = t
	}
	b.depth++
	code := uint32(t)
	if b.info.HasZ {
		code |= ewkbZ
	}
	if b.info.HasM {
		code |= ewkbM
	}
	b.buf = append(b.buf, 1)
	b.buf = binary.LittleEndian.AppendUint32(b.buf, code)
	if t == Point {
		return nil
	}
	b.stack = append(b.stack, frame{countPos: len(b.buf), line: t == LineString, first: -1})
	b.buf = append(b.buf, 0, 0, 0, 0)
	return nil
}

// end closes the geometry opened by the matching begin.
func (b *Builder) end(t Type) error {
	b.depth--
	if t == Point {
		return nil
	}
	f := b.stack[len(b.stack)-1]
	b.stack = b.stack[:len(b.stack)-1]
	if f.line && f.count == 1 {
		return invalid("LineString has 1 position, needs at least 2")
	}
	binary.LittleEndian.PutUint32(b.buf[f.countPos:], uint32(f.count))
	return nil
}

func (b *Builder) beginRing() {
	b.stack[len(b.stack)-1].count++
	b.stack = append(b.stack, frame{countPos: len(b.buf), ring: true, first: -1})
	b.buf = append(b.buf, 0, 0, 0, 0)
}

func (b *Builder) endRing() error {
	f := &b.stack[len(b.stack)-1]
	if f.count > 0 {
		n := 8 * b.dims
		last := len(b.buf) - n
		if last != f.first && !equalBytes(b.buf[f.first:f.first+n], b.buf[last:]) {
			b.buf = append(b.buf, b.buf[f.first:f.first+n]...)
			f.count++
			b.info.ClosedRings++
		}
	}
	if f.count < 4 {
		return invalid("polygon ring has %d positions, needs at least 4", f.count)
	}
	binary.LittleEndian.PutUint32(b.buf[f.countPos:], uint32(f.count))
	b.stack = b.stack[:len(b.stack)-1]
	return nil
}

func equalBytes(a, c []byte) bool {
	for i := range a {
		if a[i] != c[i] {
			return false
		}
	}
	return true
}

// position appends one position; c holds the ordinates in X, Y, [Z], [M]
// order, exactly b.dims of them.
func (b *Builder) position(c []float64) error {
	for _, v := range c[:b.dims] {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return invalid("coordinate %v is not a finite number", v)
		}
	}
	if len(b.stack) > 0 {
		if f := &b.stack[len(b.stack)-1]; f.ring || f.line {
			if f.count == 0 {
				f.first = len(b.buf)
			}
			f.count++
		}
	}
	for _, v := range c[:b.dims] {
		b.buf = binary.LittleEndian.AppendUint64(b.buf, math.Float64bits(v))
	}
	x, y := c[0], c[1]
	bb := &b.info.BBox
	if x < bb[0] {
		bb[0] = x
	}
	if y < bb[1] {
		bb[1] = y
	}
	if x > bb[2] {
		bb[2] = x
	}
	if y > bb[3] {
		bb[3] = y
	}
	b.info.Empty = false
	return nil
}

// emptyPoint writes the coordinates of POINT EMPTY (NaN ordinates, as
// PostGIS and GEOS encode it).
func (b *Builder) emptyPoint() {
	for i := 0; i < b.dims; i++ {
		b.buf = binary.LittleEndian.AppendUint64(b.buf, math.Float64bits(math.NaN()))
	}
}

// PointXY builds a two-dimensional Point, the fast path for coordinate
// columns. It resets the Builder first.
func (b *Builder) PointXY(x, y float64) error {
	b.Reset()
	b.setDims(false, false)
	b.begin(Point)
	var c [2]float64
	c[0], c[1] = x, y
	if err := b.position(c[:]); err != nil {
		return err
	}
	return b.end(Point)
}
