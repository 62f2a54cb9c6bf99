// Package spatialindex holds the pure parts of spatial-index sources
// (CARTO_API.md §2.4, spatialDataType quadbin and h3): the bit layouts of
// quadbin and H3 cell ids (parse, resolution, parent, the id range of a
// cell's descendants), the SQL that aggregates a source's cells to the
// children of a tile cell, the encodings of the result (CARTO's
// spatial-index tile protobuf, and JSON), and the covers of widgets'
// spatial filters: the id ranges of the cells a polygon keeps (cover.go;
// H3's walk uses h3-go, which needs cgo), which Covers shares.
//
// The SQL computes parents with bigint bit arithmetic only, so it runs on
// PostgreSQL without H3 or quadbin extensions, and selects the data by one
// contiguous range of cell ids, so a btree on the cell column serves it.
package spatialindex

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/meridian-gis/meridian/tiles/internal/clienterr"
)

// ErrBadCell: a cell id does not parse or is not a valid cell.
var ErrBadCell = clienterr.Kind("spatialindex", "bad cell")

// Kind is a spatial index scheme.
type Kind string

// Kinds served.
const (
	Quadbin Kind = "quadbin"
	H3      Kind = "h3"
)

// ParseKind reads a spatialDataType value; ok is false for other types.
func ParseKind(s string) (Kind, bool) {
	switch Kind(s) {
	case Quadbin, H3:
		return Kind(s), true
	}
	return "", false
}

// MaxRes is the finest resolution of k.
func (k Kind) MaxRes() int {
	if k == H3 {
		return 15
	}
	return 26
}

// DefaultResLevel is the aggregationResLevel the clients default to
// (@carto/api-client DEFAULT_AGGREGATION_RES_LEVEL_*).
func (k Kind) DefaultResLevel() int {
	if k == H3 {
		return 4
	}
	return 6
}

// Scheme is the value of the tile's scheme field (deck.gl: 0 h3, 1 quadbin).
func (k Kind) Scheme() uint64 {
	if k == H3 {
		return 0
	}
	return 1
}

// Quadbin layout (CARTO): bit 62 set, mode 1 in bits 59–61, resolution z
// in bits 52–56, then 2·z bits of interleaved x/y (x in the even bit of
// each pair), and every lower bit set to 1.
const (
	qHeader  = uint64(0x4000000000000000) | 1<<59
	qResMask = uint64(0x1f) << 52
	qLow     = uint64(1)<<52 - 1 // 0xfffffffffffff
)

// H3 layout: bit 63 zero, mode (1: cell) in bits 59–62, bits 56–58 zero,
// resolution in bits 52–55, base cell in bits 45–51, then 15 digits of 3
// bits (digit 1 highest); the digits past the resolution are 7.
const (
	hResMask  = uint64(0xf) << 52
	hBaseCell = 122
)

// hDigits returns the mask of the digits finer than res.
func hDigits(res int) uint64 { return uint64(1)<<(3*(15-res)) - 1 }

// qLowMask returns the fill bits of a quadbin at level z.
func qLowMask(z int) uint64 { return qLow >> (2 * z) }

// Parse reads a cell id as hex (the {i} of tile URLs; an optional "0x" is
// accepted) and checks that it is a valid cell of k.
func (k Kind) Parse(s string) (uint64, error) {
	t := strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	if len(t) == 0 || len(t) > 16 {
		return 0, clienterr.Errorf(ErrBadCell, " %q: want a hexadecimal %s cell", s, k)
	}
	c, err := strconv.ParseUint(t, 16, 64)
	if err != nil {
		return 0, clienterr.Errorf(ErrBadCell, " %q: want a hexadecimal %s cell", s, k)
	}
	if err := k.Check(c); err != nil {
		return 0, clienterr.Errorf(ErrBadCell, " %q: %w", s, err)
	}
	return c, nil
}

// Check reports whether c is a valid cell of k.
func (k Kind) Check(c uint64) error {
	switch k {
	case Quadbin:
		if c&^(qResMask|qLow) != qHeader {
			return errors.New("not a quadbin cell (header bits)")
		}
		z := int(c >> 52 & 0x1f)
		if z > 26 {
			return errors.New("quadbin resolution above 26")
		}
		if m := qLowMask(z); c&m != m {
			return errors.New("not a quadbin cell (fill bits)")
		}
		return nil
	case H3:
		if c>>59 != 1 || c>>56&7 != 0 {
			return errors.New("not an H3 cell (mode bits)")
		}
		res := int(c >> 52 & 0xf)
		if c>>45&0x7f >= hBaseCell {
			return errors.New("not an H3 cell (base cell)")
		}
		for i := 1; i <= 15; i++ {
			d := c >> (3 * (15 - i)) & 7
			if i <= res && d == 7 || i > res && d != 7 {
				return errors.New("not an H3 cell (digits)")
			}
		}
		return nil
	}
	return fmt.Errorf("unknown spatial index %q", k)
}

// Res returns the resolution of cell c.
func (k Kind) Res(c uint64) int {
	if k == H3 {
		return int(c >> 52 & 0xf)
	}
	return int(c >> 52 & 0x1f)
}

// ParentMasks returns and, or such that (c & and) | or is the ancestor at
// resolution res of any cell c at resolution ≥ res (what the SQL does).
func (k Kind) ParentMasks(res int) (and, or uint64) {
	if k == H3 {
		d := hDigits(res)
		return ^(hResMask | d), uint64(res)<<52 | d
	}
	m := qLowMask(res)
	return ^(qResMask | m), uint64(res)<<52 | m
}

// Parent returns the ancestor of c at resolution res (≤ Res(c)).
func (k Kind) Parent(c uint64, res int) uint64 {
	and, or := k.ParentMasks(res)
	return c&and | or
}

// ChildRange returns the smallest and largest ids of the descendants of
// c at resolution res (≥ Res(c)): every descendant lies in [lo, hi], and
// no cell of resolution res that is not a descendant does.
func (k Kind) ChildRange(c uint64, res int) (lo, hi uint64) {
	r := k.Res(c)
	if k == H3 {
		base := c&^hResMask | uint64(res)<<52
		lo = base&^hDigits(r) | hDigits(res)
		hi = lo
		for i := r + 1; i <= res; i++ {
			hi |= 6 << (3 * (15 - i))
		}
		return lo, hi
	}
	base := c&^qResMask | uint64(res)<<52
	return base&^qLowMask(r) | qLowMask(res), base
}

// Hex is the id as CARTO's clients spell it (lower-case hex).
func Hex(c uint64) string { return strconv.FormatUint(c, 16) }

// QuadbinFromTile returns the quadbin of tile z/x/y (z ≤ 26).
func QuadbinFromTile(z, x, y uint32) uint64 {
	var xy uint64
	for i := range z {
		bx := uint64(x>>(z-1-i)) & 1
		by := uint64(y>>(z-1-i)) & 1
		xy = xy<<2 | by<<1 | bx
	}
	return qHeader | uint64(z)<<52 | xy<<(52-2*z) | qLowMask(int(z))
}

// QuadbinToTile returns the tile z/x/y of a quadbin.
func QuadbinToTile(c uint64) (z, x, y uint32) {
	z = uint32(c >> 52 & 0x1f)
	xy := c & qLow >> (52 - 2*z)
	for i := range z {
		pair := xy >> (2 * (z - 1 - i)) & 3
		x = x<<1 | uint32(pair&1)
		y = y<<1 | uint32(pair>>1)
	}
	return z, x, y
}
