package basemap

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/image/font"
	"golang.org/x/image/font/gofont/gobold"
	"golang.org/x/image/font/gofont/goregular"
	"golang.org/x/image/font/sfnt"
	"golang.org/x/image/math/fixed"
	"google.golang.org/protobuf/encoding/protowire"
)

// Fonts are the font stacks the basemap styles use, each served as
// MapLibre glyph ranges: signed distance fields at 24 px with a 3 px
// border, as node-fontnik makes them, rendered from the Go fonts (BSD
// licence, shipped inside the binary), which cover Latin, Greek and
// Cyrillic.
var Fonts = map[string][]byte{
	"Go Regular": goregular.TTF,
	"Go Bold":    gobold.TTF,
}

// ErrNoFont is returned for a font stack with no font of ours.
var ErrNoFont = errors.New("basemap: no such font")

const (
	glyphSize   = 24   // px: MapLibre's glyph size
	glyphBorder = 3    // px around each bitmap
	sdfRadius   = 8.0  // px over which the field goes from 0 to 255
	sdfCutoff   = 0.25 // fraction of the range below the edge
)

// glyphCache keeps rendered ranges: the same few are asked by every map.
var glyphCache sync.Map // "stack/start" → []byte

// Glyphs returns the glyph range "start-end" (256 code points, start a
// multiple of 256) of fontstack, a comma-separated list of font names of
// which the first we have is used.
func Glyphs(fontstack, rng string) ([]byte, error) {
	a, b, ok := strings.Cut(rng, "-")
	start, err1 := strconv.Atoi(a)
	end, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || start < 0 || start%256 != 0 || end != start+255 || end > 0xffff {
		return nil, fmt.Errorf("basemap: bad glyph range %q (want e.g. 0-255)", rng)
	}
	var name string
	var ttf []byte
	for _, n := range strings.Split(fontstack, ",") {
		n = strings.TrimSpace(n)
		if f, ok := Fonts[n]; ok {
			name, ttf = n, f
			break
		}
	}
	if ttf == nil {
		return nil, fmt.Errorf("%w: %q (have Go Regular, Go Bold)", ErrNoFont, fontstack)
	}
	key := name + "/" + a
	if v, ok := glyphCache.Load(key); ok {
		return v.([]byte), nil
	}
	out, err := renderRange(name, ttf, start, end)
	if err != nil {
		return nil, err
	}
	glyphCache.Store(key, out)
	return out, nil
}

type glyph struct {
	id                 rune
	width, height      int
	left, top, advance int
	bitmap             []byte
}

func renderRange(name string, ttf []byte, start, end int) ([]byte, error) {
	f, err := sfnt.Parse(ttf)
	if err != nil {
		return nil, fmt.Errorf("basemap: font %s: %w", name, err)
	}
	var buf sfnt.Buffer
	ppem := fixed.I(glyphSize)
	m, err := f.Metrics(&buf, ppem, font.HintingNone)
	if err != nil {
		return nil, fmt.Errorf("basemap: font %s: %w", name, err)
	}
	ascender := m.Ascent.Round()
	var stack []byte
	stack = protowire.AppendTag(stack, 1, protowire.BytesType)
	stack = protowire.AppendString(stack, name)
	stack = protowire.AppendTag(stack, 2, protowire.BytesType)
	stack = protowire.AppendString(stack, fmt.Sprintf("%d-%d", start, end))
	for r := rune(start); r <= rune(end); r++ {
		gi, err := f.GlyphIndex(&buf, r)
		if err != nil || gi == 0 {
			continue
		}
		g, err := renderGlyph(f, &buf, gi, ppem)
		if err != nil {
			continue
		}
		g.id = r
		g.top -= ascender
		stack = appendGlyph(stack, g)
	}
	var out []byte
	out = protowire.AppendTag(out, 1, protowire.BytesType)
	out = protowire.AppendBytes(out, stack)
	return out, nil
}

// appendGlyph encodes one glyph message (field 3 of a fontstack).
func appendGlyph(b []byte, g glyph) []byte {
	var m []byte
	m = protowire.AppendTag(m, 1, protowire.VarintType)
	m = protowire.AppendVarint(m, uint64(g.id))
	if len(g.bitmap) > 0 {
		m = protowire.AppendTag(m, 2, protowire.BytesType)
		m = protowire.AppendBytes(m, g.bitmap)
	}
	m = protowire.AppendTag(m, 3, protowire.VarintType)
	m = protowire.AppendVarint(m, uint64(g.width))
	m = protowire.AppendTag(m, 4, protowire.VarintType)
	m = protowire.AppendVarint(m, uint64(g.height))
	m = protowire.AppendTag(m, 5, protowire.VarintType)
	m = protowire.AppendVarint(m, protowire.EncodeZigZag(int64(g.left)))
	m = protowire.AppendTag(m, 6, protowire.VarintType)
	m = protowire.AppendVarint(m, protowire.EncodeZigZag(int64(g.top)))
	m = protowire.AppendTag(m, 7, protowire.VarintType)
	m = protowire.AppendVarint(m, uint64(g.advance))
	b = protowire.AppendTag(b, 3, protowire.BytesType)
	return protowire.AppendBytes(b, m)
}

type pt struct{ x, y float64 }

// renderGlyph flattens the glyph's outline into rings (y up) and computes
// its signed distance field: for each pixel the distance to the nearest
// edge, negative inside, scaled so the edge sits at 255-64.
func renderGlyph(f *sfnt.Font, buf *sfnt.Buffer, gi sfnt.GlyphIndex, ppem fixed.Int26_6) (glyph, error) {
	adv, err := f.GlyphAdvance(buf, gi, ppem, font.HintingNone)
	if err != nil {
		return glyph{}, err
	}
	g := glyph{advance: adv.Round()}
	segs, err := f.LoadGlyph(buf, gi, ppem, nil)
	if err != nil {
		return glyph{}, err
	}
	var rings [][]pt
	var ring []pt
	cv := func(p fixed.Point26_6) pt { return pt{float64(p.X) / 64, -float64(p.Y) / 64} } // sfnt's y grows down
	for _, s := range segs {
		switch s.Op {
		case sfnt.SegmentOpMoveTo:
			if len(ring) > 1 {
				rings = append(rings, closeRing(ring))
			}
			ring = []pt{cv(s.Args[0])}
		case sfnt.SegmentOpLineTo:
			ring = append(ring, cv(s.Args[0]))
		case sfnt.SegmentOpQuadTo:
			p0, p1, p2 := ring[len(ring)-1], cv(s.Args[0]), cv(s.Args[1])
			for i := 1; i <= 8; i++ {
				t := float64(i) / 8
				u := 1 - t
				ring = append(ring, pt{u*u*p0.x + 2*u*t*p1.x + t*t*p2.x, u*u*p0.y + 2*u*t*p1.y + t*t*p2.y})
			}
		case sfnt.SegmentOpCubeTo:
			p0, p1, p2, p3 := ring[len(ring)-1], cv(s.Args[0]), cv(s.Args[1]), cv(s.Args[2])
			for i := 1; i <= 10; i++ {
				t := float64(i) / 10
				u := 1 - t
				ring = append(ring, pt{u*u*u*p0.x + 3*u*u*t*p1.x + 3*u*t*t*p2.x + t*t*t*p3.x,
					u*u*u*p0.y + 3*u*u*t*p1.y + 3*u*t*t*p2.y + t*t*t*p3.y})
			}
		}
	}
	if len(ring) > 1 {
		rings = append(rings, closeRing(ring))
	}
	if len(rings) == 0 {
		return g, nil // a space: advance only
	}
	minX, minY, maxX, maxY := math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)
	for _, r := range rings {
		for _, p := range r {
			minX, minY = math.Min(minX, p.x), math.Min(minY, p.y)
			maxX, maxY = math.Max(maxX, p.x), math.Max(maxY, p.y)
		}
	}
	minX, minY, maxX, maxY = math.Round(minX), math.Round(minY), math.Round(maxX), math.Round(maxY)
	if maxX == minX || maxY == minY {
		return g, nil
	}
	g.left, g.top = int(minX), int(maxY)
	g.width, g.height = int(maxX-minX), int(maxY-minY)
	bw, bh := g.width+2*glyphBorder, g.height+2*glyphBorder
	g.bitmap = make([]byte, bw*bh)
	for y := 0; y < bh; y++ {
		for x := 0; x < bw; x++ {
			// Pixel centre in glyph units (y up from the bitmap's bottom).
			p := pt{float64(x) + 0.5 + minX - glyphBorder, float64(y) + 0.5 + minY - glyphBorder}
			d := math.Min(minDistance(rings, p), sdfRadius) * (256 / sdfRadius)
			if inside(rings, p) {
				d = -d
			}
			d += sdfCutoff * 256
			n := int(math.Max(0, math.Min(255, d)))
			g.bitmap[(bh-1-y)*bw+x] = byte(255 - n)
		}
	}
	return g, nil
}

func closeRing(r []pt) []pt {
	if r[0] != r[len(r)-1] {
		r = append(r, r[0])
	}
	return r
}

func minDistance(rings [][]pt, p pt) float64 {
	best := math.Inf(1)
	for _, r := range rings {
		for i := 1; i < len(r); i++ {
			v, w := r[i-1], r[i]
			dx, dy := w.x-v.x, w.y-v.y
			l2 := dx*dx + dy*dy
			t := 0.0
			if l2 > 0 {
				t = math.Max(0, math.Min(1, ((p.x-v.x)*dx+(p.y-v.y)*dy)/l2))
			}
			ex, ey := p.x-(v.x+t*dx), p.y-(v.y+t*dy)
			if d := ex*ex + ey*ey; d < best {
				best = d
			}
		}
	}
	return math.Sqrt(best)
}

// inside is the even-odd rule, as fontnik's PolyContainsPoint.
func inside(rings [][]pt, p pt) bool {
	c := false
	for _, r := range rings {
		for i := 1; i < len(r); i++ {
			a, b := r[i-1], r[i]
			if (a.y > p.y) != (b.y > p.y) && p.x < (b.x-a.x)*(p.y-a.y)/(b.y-a.y)+a.x {
				c = !c
			}
		}
	}
	return c
}
