package geomenc

import (
	"strconv"
	"strings"
)

// WKT resets b and builds the geometry written as WKT or EWKT (an optional
// "SRID=n;" prefix, reported in Info.SRID). Keywords are case-insensitive;
// the dimension comes from a Z, M or ZM tag or, without one, from the
// number of ordinates of the first position (3 → Z, 4 → ZM). Curved and
// surface types (CIRCULARSTRING, TIN…) are refused.
func (b *Builder) WKT(s string) error {
	b.Reset()
	p := wktParser{s: s, b: b}
	p.skip()
	if len(s)-p.i >= 5 && strings.EqualFold(s[p.i:p.i+5], "SRID=") {
		p.i += 5
		j := strings.IndexByte(s[p.i:], ';')
		if j < 0 {
			return invalid(`EWKT "SRID=" prefix without ";"`)
		}
		srid, err := strconv.Atoi(strings.TrimSpace(s[p.i : p.i+j]))
		if err != nil || srid < 0 {
			return invalid("EWKT SRID %q is not a number", s[p.i:p.i+j])
		}
		b.info.SRID = srid
		p.i += j + 1
	}
	t, z, m, tagged, err := p.header()
	if err != nil {
		return err
	}
	if !tagged {
		switch p.firstPositionLen() {
		case 3:
			z = true
		case 4:
			z, m = true, true
		}
	}
	b.setDims(z, m)
	if err := p.body(t); err != nil {
		return err
	}
	p.skip()
	if p.i != len(s) {
		return invalid("unexpected %q after WKT geometry", p.rest())
	}
	return nil
}

type wktParser struct {
	s string
	i int
	b *Builder
}

func (p *wktParser) skip() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *wktParser) rest() string {
	r := p.s[p.i:]
	if len(r) > 20 {
		r = r[:20] + "…"
	}
	return r
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// word reads a keyword; "" when the next token is not one.
func (p *wktParser) word() string {
	p.skip()
	j := p.i
	for j < len(p.s) && isLetter(p.s[j]) {
		j++
	}
	w := p.s[p.i:j]
	p.i = j
	return w
}

func (p *wktParser) peek() byte {
	p.skip()
	if p.i < len(p.s) {
		return p.s[p.i]
	}
	return 0
}

func (p *wktParser) expect(c byte) error {
	if p.peek() != c {
		if p.i >= len(p.s) {
			return invalid("WKT ends where %q was expected", c)
		}
		return invalid("expected %q in WKT at %q", c, p.rest())
	}
	p.i++
	return nil
}

var wktTypes = map[string]Type{
	"POINT": Point, "LINESTRING": LineString, "POLYGON": Polygon,
	"MULTIPOINT": MultiPoint, "MULTILINESTRING": MultiLineString,
	"MULTIPOLYGON": MultiPolygon, "GEOMETRYCOLLECTION": GeometryCollection,
}

// header reads "TYPE [Z|M|ZM]" (the tag may also be glued: POINTZ).
func (p *wktParser) header() (t Type, z, m, tagged bool, err error) {
	w := strings.ToUpper(p.word())
	if w == "" {
		return 0, false, false, false, invalid("WKT does not start with a geometry type: %q", p.rest())
	}
	var ok bool
	t, ok = wktTypes[w]
	if !ok {
		for _, tag := range []string{"ZM", "Z", "M"} {
			if strings.HasSuffix(w, tag) {
				if t, ok = wktTypes[strings.TrimSuffix(w, tag)]; ok {
					return t, strings.Contains(tag, "Z"), strings.Contains(tag, "M"), true, nil
				}
			}
		}
		return 0, false, false, false, invalid("unsupported WKT geometry type %q", w)
	}
	save := p.i
	switch strings.ToUpper(p.word()) {
	case "Z":
		return t, true, false, true, nil
	case "M":
		return t, false, true, true, nil
	case "ZM":
		return t, true, true, true, nil
	}
	p.i = save
	return t, false, false, false, nil
}

// firstPositionLen counts the numbers of the first position, without
// consuming input.
func (p *wktParser) firstPositionLen() int {
	save := p.i
	defer func() { p.i = save }()
	n := 0
	for p.i < len(p.s) {
		c := p.peek()
		switch {
		case c == '-' || c == '+' || c == '.' || c >= '0' && c <= '9':
			if _, err := p.number(); err != nil {
				return n
			}
			n++
		case n > 0:
			return n
		default:
			p.i++
		}
	}
	return n
}

func (p *wktParser) number() (float64, error) {
	p.skip()
	j := p.i
	for j < len(p.s) {
		c := p.s[j]
		if c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' {
			j++
			continue
		}
		break
	}
	if j == p.i {
		if p.i >= len(p.s) {
			return 0, invalid("WKT ends where a number was expected")
		}
		return 0, invalid("expected a number in WKT at %q", p.rest())
	}
	v, err := strconv.ParseFloat(p.s[p.i:j], 64)
	if err != nil {
		return 0, invalid("bad number %q in WKT", p.s[p.i:j])
	}
	p.i = j
	return v, nil
}

func (p *wktParser) position() error {
	var c [4]float64
	for k := 0; k < p.b.dims; k++ {
		v, err := p.number()
		if err != nil {
			return err
		}
		c[k] = v
	}
	if ch := p.peek(); ch != ',' && ch != ')' {
		return invalid("position has more ordinates than the geometry's dimension, at %q", p.rest())
	}
	return p.b.position(c[:])
}

// empty consumes EMPTY when it comes next.
func (p *wktParser) empty() bool {
	save := p.i
	if strings.EqualFold(p.word(), "EMPTY") {
		return true
	}
	p.i = save
	return false
}

// list parses "( item {, item} )".
func (p *wktParser) list(item func() error) error {
	if err := p.expect('('); err != nil {
		return err
	}
	for {
		if err := item(); err != nil {
			return err
		}
		if p.peek() == ',' {
			p.i++
			continue
		}
		return p.expect(')')
	}
}

// body parses what follows a geometry header: EMPTY or the coordinates.
func (p *wktParser) body(t Type) error {
	if err := p.b.begin(t); err != nil {
		return err
	}
	if p.empty() {
		if t == Point {
			p.b.emptyPoint()
		}
		return p.b.end(t)
	}
	var err error
	switch t {
	case Point:
		err = p.list(p.position)
	case LineString:
		err = p.list(p.position)
	case Polygon:
		err = p.list(p.ring)
	case MultiPoint:
		err = p.list(func() error {
			if err := p.b.begin(Point); err != nil {
				return err
			}
			switch {
			case p.empty():
				p.b.emptyPoint()
			case p.peek() == '(':
				if err := p.list(p.position); err != nil {
					return err
				}
			default:
				if err := p.position(); err != nil {
					return err
				}
			}
			return p.b.end(Point)
		})
	case MultiLineString:
		err = p.list(func() error { return p.member(LineString) })
	case MultiPolygon:
		err = p.list(func() error { return p.member(Polygon) })
	case GeometryCollection:
		err = p.list(func() error {
			st, z, m, tagged, err := p.header()
			if err != nil {
				return err
			}
			if tagged && (z != p.b.info.HasZ || m != p.b.info.HasM) {
				return invalid("GeometryCollection members mix dimensions")
			}
			return p.body(st)
		})
	}
	if err != nil {
		return err
	}
	return p.b.end(t)
}

// member parses an untagged member of a multi geometry.
func (p *wktParser) member(t Type) error {
	if err := p.b.begin(t); err != nil {
		return err
	}
	if !p.empty() {
		var err error
		if t == LineString {
			err = p.list(p.position)
		} else {
			err = p.list(p.ring)
		}
		if err != nil {
			return err
		}
	}
	return p.b.end(t)
}

func (p *wktParser) ring() error {
	p.b.beginRing()
	if !p.empty() {
		if err := p.list(p.position); err != nil {
			return err
		}
	}
	return p.b.endRing()
}
