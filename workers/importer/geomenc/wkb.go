package geomenc

import (
	"encoding/binary"
	"encoding/hex"
	"math"
)

// WKBHex decodes a hex string and builds the WKB/EWKB geometry it holds
// (see WKB).
func (b *Builder) WKBHex(s string) error {
	b.Reset()
	raw, err := hex.DecodeString(s)
	if err != nil {
		return invalid("WKB hex: %v", err)
	}
	return b.WKB(raw)
}

// WKB resets b and rebuilds the ISO WKB or EWKB geometry raw, in either
// byte order, as little-endian EWKB without SRID (an EWKB SRID is reported
// in Info.SRID). Trailing bytes are an error.
func (b *Builder) WKB(raw []byte) error {
	b.Reset()
	r := wkbReader{raw: raw, b: b}
	if err := r.geometry(0); err != nil {
		return err
	}
	if r.i != len(raw) {
		return invalid("%d bytes after the WKB geometry", len(raw)-r.i)
	}
	return nil
}

type wkbReader struct {
	raw   []byte
	i     int
	order binary.ByteOrder
	b     *Builder
}

func (r *wkbReader) u32() (uint32, error) {
	if len(r.raw)-r.i < 4 {
		return 0, invalid("WKB is truncated")
	}
	v := r.order.Uint32(r.raw[r.i:])
	r.i += 4
	return v, nil
}

// count reads an item count and checks it against the bytes left, each
// item taking at least min bytes, so a forged count cannot make us
// allocate or loop far beyond the input.
func (r *wkbReader) count(min int) (int, error) {
	n, err := r.u32()
	if err != nil {
		return 0, err
	}
	if int64(n)*int64(min) > int64(len(r.raw)-r.i) {
		return 0, invalid("WKB count %d exceeds the data", n)
	}
	return int(n), nil
}

// geometry reads one geometry; parent is the enclosing collection's type,
// 0 for the outermost geometry.
func (r *wkbReader) geometry(parent Type) error {
	outer := parent == 0
	if r.i >= len(r.raw) {
		return invalid("WKB is truncated")
	}
	switch r.raw[r.i] {
	case 0:
		r.order = binary.BigEndian
	case 1:
		r.order = binary.LittleEndian
	default:
		return invalid("WKB byte order %d is neither 0 nor 1", r.raw[r.i])
	}
	r.i++
	code, err := r.u32()
	if err != nil {
		return err
	}
	z, m := code&ewkbZ != 0, code&ewkbM != 0
	if code&ewkbSRID != 0 {
		srid, err := r.u32()
		if err != nil {
			return err
		}
		if outer {
			r.b.info.SRID = int(srid)
		}
	}
	base := code &^ (ewkbZ | ewkbM | ewkbSRID)
	switch base / 1000 {
	case 1:
		z = true
	case 2:
		m = true
	case 3:
		z, m = true, true
	}
	t := Type(base % 1000)
	if t < Point || t > GeometryCollection {
		return invalid("unsupported WKB geometry type %d", base)
	}
	if parent >= MultiPoint && parent <= MultiPolygon && t != parent.Single() {
		return invalid("WKB %s holds a %s", parent, t)
	}
	if outer {
		r.b.setDims(z, m)
	} else if z != r.b.info.HasZ || m != r.b.info.HasM {
		return invalid("WKB collection members mix dimensions")
	}
	if err := r.b.begin(t); err != nil {
		return err
	}
	posSize := 8 * r.b.dims
	switch t {
	case Point:
		if len(r.raw)-r.i < posSize {
			return invalid("WKB is truncated")
		}
		if math.IsNaN(r.f64(r.i)) && math.IsNaN(r.f64(r.i+8)) {
			r.b.emptyPoint()
			r.i += posSize
		} else if err := r.positions(1); err != nil {
			return err
		}
	case LineString:
		n, err := r.count(posSize)
		if err != nil {
			return err
		}
		if err := r.positions(n); err != nil {
			return err
		}
	case Polygon:
		rings, err := r.count(4)
		if err != nil {
			return err
		}
		for k := 0; k < rings; k++ {
			n, err := r.count(posSize)
			if err != nil {
				return err
			}
			r.b.beginRing()
			if err := r.positions(n); err != nil {
				return err
			}
			if err := r.b.endRing(); err != nil {
				return err
			}
		}
	default:
		n, err := r.count(5)
		if err != nil {
			return err
		}
		for k := 0; k < n; k++ {
			order := r.order
			if err := r.geometry(t); err != nil {
				return err
			}
			r.order = order
		}
	}
	return r.b.end(t)
}

func (r *wkbReader) f64(at int) float64 {
	return math.Float64frombits(r.order.Uint64(r.raw[at:]))
}

func (r *wkbReader) positions(n int) error {
	d := r.b.dims
	if len(r.raw)-r.i < n*8*d {
		return invalid("WKB is truncated")
	}
	var c [4]float64
	for k := 0; k < n; k++ {
		for o := 0; o < d; o++ {
			c[o] = r.f64(r.i)
			r.i += 8
		}
		if err := r.b.position(c[:]); err != nil {
			return err
		}
	}
	return nil
}
