// Package tile is the Web-Mercator (EPSG:3857) XYZ tile grid: tile
// coordinates, their parsing from "z/x/y" paths, and the bounds of a tile in
// Mercator metres and in longitude/latitude degrees. It imports only the
// standard library so that every part of Meridian can share it.
//
// The grid is the one used by slippy maps, MVT, deck.gl and MapLibre: tile
// 0/0/0 covers the whole Mercator square, x grows eastwards and y grows
// southwards (the "xyz" scheme; TMS flips y).
package tile

import (
	"errors"
	"math"
	"strconv"
)

// MaxZoom is the deepest zoom level accepted. At zoom 24 a tile spans about
// 2.4 m at the equator, far below what any vector source needs (MapLibre
// stops at 24 as well), and x and y still fit easily in 32 bits.
const MaxZoom = 24

// Web-Mercator constants.
const (
	// EarthRadius is the WGS84 semi-major axis used by EPSG:3857, in metres.
	EarthRadius = 6378137.0
	// OriginShift is half the side of the Mercator square: the square spans
	// [-OriginShift, OriginShift] on both axes.
	OriginShift = math.Pi * EarthRadius
	// WorldSize is the side of the Mercator square in metres.
	WorldSize = 2 * OriginShift
	// MaxLat is the latitude of the square's top edge (about 85.0511°).
	MaxLat = 85.05112877980659
)

// Errors returned by New, Parse and ParseBytes.
var (
	// ErrSyntax: the text is not three decimal numbers separated by "/".
	ErrSyntax = errors.New("tile: malformed tile address")
	// ErrOutOfRange: z is above MaxZoom, or x or y is not below 2^z.
	ErrOutOfRange = errors.New("tile: coordinate out of range")
)

// Coord addresses one tile: zoom level Z, column X and row Y.
type Coord struct {
	Z, X, Y uint32
}

// New returns the tile z/x/y, or ErrOutOfRange.
func New(z, x, y uint32) (Coord, error) {
	c := Coord{Z: z, X: x, Y: y}
	if !c.Valid() {
		return Coord{}, ErrOutOfRange
	}
	return c, nil
}

// Valid reports whether c lies on the grid: Z <= MaxZoom and X, Y < 2^Z.
func (c Coord) Valid() bool {
	if c.Z > MaxZoom {
		return false
	}
	n := uint32(1) << c.Z
	return c.X < n && c.Y < n
}

// Parse reads "z/x/y" (decimal, no signs, no leading "/"). Trailing
// extensions are not accepted: strip them first.
func Parse(s string) (Coord, error) {
	var c Coord
	var part, digits int
	var v uint64
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '/' {
			if digits == 0 || part > 2 {
				return Coord{}, ErrSyntax
			}
			switch part {
			case 0:
				c.Z = uint32(v)
			case 1:
				c.X = uint32(v)
			case 2:
				c.Y = uint32(v)
			}
			part++
			digits, v = 0, 0
			continue
		}
		d := s[i] - '0'
		if d > 9 {
			return Coord{}, ErrSyntax
		}
		if digits == 10 { // more than any valid coordinate needs
			return Coord{}, ErrOutOfRange
		}
		v = v*10 + uint64(d)
		if v > math.MaxUint32 {
			return Coord{}, ErrOutOfRange
		}
		digits++
	}
	if part != 3 {
		return Coord{}, ErrSyntax
	}
	if !c.Valid() {
		return Coord{}, ErrOutOfRange
	}
	return c, nil
}

// ParseBytes is Parse on a byte slice; it does not allocate.
func ParseBytes(b []byte) (Coord, error) {
	// The conversion does not escape, so the compiler does not copy.
	return Parse(unsafeString(b))
}

// String returns "z/x/y".
func (c Coord) String() string { return string(c.AppendText(nil)) }

// AppendText appends "z/x/y" to b.
func (c Coord) AppendText(b []byte) []byte {
	b = strconv.AppendUint(b, uint64(c.Z), 10)
	b = append(b, '/')
	b = strconv.AppendUint(b, uint64(c.X), 10)
	b = append(b, '/')
	return strconv.AppendUint(b, uint64(c.Y), 10)
}

// Parent returns the tile one level up that contains c. The parent of
// 0/0/0 is itself.
func (c Coord) Parent() Coord {
	if c.Z == 0 {
		return c
	}
	return Coord{Z: c.Z - 1, X: c.X >> 1, Y: c.Y >> 1}
}

// Children returns the four tiles one level down, in the order top-left,
// top-right, bottom-left, bottom-right. The caller must check that c.Z <
// MaxZoom if it needs valid children.
func (c Coord) Children() [4]Coord {
	z, x, y := c.Z+1, c.X<<1, c.Y<<1
	return [4]Coord{{z, x, y}, {z, x + 1, y}, {z, x, y + 1}, {z, x + 1, y + 1}}
}

// Bounds is an axis-aligned rectangle.
type Bounds struct {
	MinX, MinY, MaxX, MaxY float64
}

// Expand returns b grown by d on every side.
func (b Bounds) Expand(d float64) Bounds {
	return Bounds{b.MinX - d, b.MinY - d, b.MaxX + d, b.MaxY + d}
}

// Contains reports whether (x, y) lies in b, edges included.
func (b Bounds) Contains(x, y float64) bool {
	return x >= b.MinX && x <= b.MaxX && y >= b.MinY && y <= b.MaxY
}

// Intersects reports whether b and o overlap (touching counts).
func (b Bounds) Intersects(o Bounds) bool {
	return b.MinX <= o.MaxX && o.MinX <= b.MaxX && b.MinY <= o.MaxY && o.MinY <= b.MaxY
}

// Size returns the side of a tile at zoom z in Mercator metres.
func Size(z uint32) float64 { return WorldSize / float64(uint64(1)<<z) }

// Bounds returns the tile's rectangle in Mercator metres (EPSG:3857), the
// same as PostGIS ST_TileEnvelope(z, x, y).
func (c Coord) Bounds() Bounds {
	s := Size(c.Z)
	minX := -OriginShift + float64(c.X)*s
	maxY := OriginShift - float64(c.Y)*s
	return Bounds{MinX: minX, MinY: maxY - s, MaxX: minX + s, MaxY: maxY}
}

// LonLatBounds returns the tile's rectangle in degrees (EPSG:4326):
// MinX/MaxX are longitudes, MinY/MaxY latitudes.
func (c Coord) LonLatBounds() Bounds {
	b := c.Bounds()
	w, s := ToLonLat(b.MinX, b.MinY)
	e, n := ToLonLat(b.MaxX, b.MaxY)
	return Bounds{MinX: w, MinY: s, MaxX: e, MaxY: n}
}

// FromLonLat projects a longitude/latitude in degrees to Mercator metres.
// Latitudes beyond ±MaxLat are clamped to the edge of the square.
func FromLonLat(lon, lat float64) (x, y float64) {
	lat = math.Max(-MaxLat, math.Min(MaxLat, lat))
	x = lon * OriginShift / 180
	y = math.Log(math.Tan((90+lat)*math.Pi/360)) * EarthRadius
	return x, y
}

// ToLonLat unprojects Mercator metres to longitude/latitude in degrees.
func ToLonLat(x, y float64) (lon, lat float64) {
	lon = x / OriginShift * 180
	lat = 360/math.Pi*math.Atan(math.Exp(y/EarthRadius)) - 90
	return lon, lat
}

// At returns the tile at zoom z containing the point lon/lat (degrees).
// Points on the square's east or south edge belong to the last column or
// row. z must not exceed MaxZoom.
func At(lon, lat float64, z uint32) Coord {
	x, y := FromLonLat(lon, lat)
	n := float64(uint64(1) << z)
	fx := math.Floor((x + OriginShift) / WorldSize * n)
	fy := math.Floor((OriginShift - y) / WorldSize * n)
	clamp := func(v float64) uint32 { return uint32(math.Max(0, math.Min(n-1, v))) }
	return Coord{Z: z, X: clamp(fx), Y: clamp(fy)}
}
