package spatialindex

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
)

// Known values: CARTO's QUADBIN_FROMZXY(4, 9, 8) and QUADBIN_TOPARENT
// docs examples; the rest computed with the quadbin and h3-js npm
// packages (compat/node_modules).
func TestQuadbinKnown(t *testing.T) {
	q := QuadbinFromTile(4, 9, 8)
	if q != 5209574053332910079 {
		t.Fatalf("QuadbinFromTile(4,9,8) = %d, want 5209574053332910079", q)
	}
	if Hex(q) != "484c1fffffffffff" {
		t.Fatalf("hex %s", Hex(q))
	}
	if p := Quadbin.Parent(q, 3); p != 5205105638077628415 {
		t.Fatalf("parent(3) = %d, want 5205105638077628415", p)
	}
	if p := Quadbin.Parent(q, 2); Hex(p) != "482cffffffffffff" {
		t.Fatalf("parent(2) = %s", Hex(p))
	}
	if h := Hex(QuadbinFromTile(0, 0, 0)); h != "480fffffffffffff" {
		t.Fatalf("root %s", h)
	}
	lo, hi := Quadbin.ChildRange(q, 6)
	if Hex(lo) != "486c10ffffffffff" || Hex(hi) != "486c1fffffffffff" {
		t.Fatalf("children range %s..%s", Hex(lo), Hex(hi))
	}
	z, x, y := QuadbinToTile(q)
	if z != 4 || x != 9 || y != 8 {
		t.Fatalf("QuadbinToTile = %d/%d/%d", z, x, y)
	}
	if c, err := Quadbin.Parse("484c1fffffffffff"); err != nil || c != q {
		t.Fatalf("Parse: %x %v", c, err)
	}
}

// Every descendant of a quadbin at a finer level is in its child range,
// and no other cell of that level is.
func TestQuadbinRangeExhaustive(t *testing.T) {
	for z := uint32(0); z <= 3; z++ {
		for x := uint32(0); x < 1<<z; x++ {
			for y := uint32(0); y < 1<<z; y++ {
				T := QuadbinFromTile(z, x, y)
				for dz := uint32(0); dz <= 3; dz++ {
					r := z + dz
					lo, hi := Quadbin.ChildRange(T, int(r))
					for cx := uint32(0); cx < 1<<r; cx++ {
						for cy := uint32(0); cy < 1<<r; cy++ {
							c := QuadbinFromTile(r, cx, cy)
							in := c >= lo && c <= hi
							desc := cx>>dz == x && cy>>dz == y
							if in != desc {
								t.Fatalf("tile %d/%d/%d child %d/%d/%d: in range %v, descendant %v", z, x, y, r, cx, cy, in, desc)
							}
							if desc && Quadbin.Parent(c, int(z)) != T {
								t.Fatalf("parent of %d/%d/%d at %d = %x, want %x", r, cx, cy, z, Quadbin.Parent(c, int(z)), T)
							}
							if Quadbin.Check(c) != nil {
								t.Fatalf("check %x", c)
							}
						}
					}
				}
			}
		}
	}
}

// Known H3 values from the H3 docs (8928308280fffff) and h3-js.
func TestH3Known(t *testing.T) {
	c, err := H3.Parse("8928308280fffff")
	if err != nil {
		t.Fatal(err)
	}
	if H3.Res(c) != 9 {
		t.Fatalf("res %d", H3.Res(c))
	}
	for res, want := range map[int]string{8: "8828308281fffff", 5: "85283083fffffff", 0: "8029fffffffffff", 9: "8928308280fffff"} {
		if got := Hex(H3.Parent(c, res)); got != want {
			t.Errorf("parent(%d) = %s, want %s", res, got, want)
		}
	}
	p := H3.Parent(c, 5)
	lo, hi := H3.ChildRange(p, 7)
	if Hex(lo) != "872830800ffffff" || Hex(hi) != "872830836ffffff" {
		t.Fatalf("children range %s..%s", Hex(lo), Hex(hi))
	}
	// Pentagon 820807fffffffff: children at 3 are 830800… to 830806….
	pent, _ := H3.Parse("820807fffffffff")
	lo, hi = H3.ChildRange(pent, 3)
	if Hex(lo) != "830800fffffffff" || Hex(hi) != "830806fffffffff" {
		t.Fatalf("pentagon children %s..%s", Hex(lo), Hex(hi))
	}
	for _, s := range []string{"87283472bffffff", "891fb466257ffff"} {
		if _, err := H3.Parse(s); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
}

func TestParseRejects(t *testing.T) {
	for _, tc := range []struct {
		k Kind
		s string
	}{
		{Quadbin, ""}, {Quadbin, "zz"}, {Quadbin, "484c1ffffffffff0"}, {Quadbin, "8928308280fffff"},
		{Quadbin, "11111111111111111"},
		{H3, "484c1fffffffffff"}, {H3, "8928308280ffff0"}, {H3, "8928308287fffff0"}, {H3, "80f5fffffffffff"},
		{H3, "8928308280fffff7"},
	} {
		if _, err := tc.k.Parse(tc.s); err == nil {
			t.Errorf("%s %q: accepted", tc.k, tc.s)
		}
	}
}

// The H3 child range holds every child (found by enumerating digits) and
// the parent of each is the cell.
func TestH3Children(t *testing.T) {
	p, _ := H3.Parse("85283083fffffff")
	lo, hi := H3.ChildRange(p, 7)
	n := 0
	for d1 := uint64(0); d1 < 7; d1++ {
		for d2 := uint64(0); d2 < 7; d2++ {
			c := p&^(0xf<<52) | 7<<52
			c &^= 0x3f << (3 * (15 - 7))
			c |= d1<<(3*(15-6)) | d2<<(3*(15-7))
			if H3.Check(c) != nil {
				t.Fatalf("child %x invalid", c)
			}
			if c < lo || c > hi || H3.Parent(c, 5) != p {
				t.Fatalf("child %x: range %x..%x parent %x", c, lo, hi, H3.Parent(c, 5))
			}
			n++
		}
	}
	if n != 49 {
		t.Fatal(n)
	}
}

func TestBuild(t *testing.T) {
	q := Query{Kind: H3, From: `"public"."cells"`, Column: "h3", Text: true,
		Aggs: []Agg{{SQL: "(sum(g.\"pop\"))::float8", Alias: "total"}}, Filter: `g."x" = $2`, ArgsBefore: 2, Limit: 10}
	sql := Build(q)
	for _, want := range []string{`('x' || lpad(g."h3", 16, '0'))::bit(64)::int8 & $3::int8) | $4::int8 AS __cell`,
		`AS "total"`, `FROM "public"."cells" g`, `WHERE g."h3" BETWEEN $5 AND $6 AND (g."x" = $2)`, "GROUP BY 1 ORDER BY 1 LIMIT 10"} {
		if !strings.Contains(sql, want) {
			t.Errorf("missing %q in\n%s", want, sql)
		}
	}
	p, _ := H3.Parse("85283083fffffff")
	args := q.Args(p, 7, 9)
	if args[2] != "892830800ffffff" && args[2] != Hex(mustLo(p, 9)) {
		t.Errorf("lo %v", args[2])
	}
	if _, ok := args[3].(string); !ok {
		t.Errorf("text range args: %T", args[3])
	}
}

func mustLo(c uint64, res int) uint64 { lo, _ := H3.ChildRange(c, res); return lo }

func TestEncode(t *testing.T) {
	s := "a\"b"
	tl := &Tile{Kind: Quadbin, Cells: []uint64{QuadbinFromTile(1, 0, 0), QuadbinFromTile(1, 1, 1)},
		Cols: []Column{{Name: "n", Numeric: true, Num: []float64{1.5, math.NaN()}}, {Name: "s", Str: []*string{&s, nil}}}}
	var got []map[string]any
	if err := json.Unmarshal(EncodeJSON(tl), &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0]["id"] != "4813ffffffffffff" || got[0]["properties"].(map[string]any)["n"] != 1.5 ||
		got[0]["properties"].(map[string]any)["s"] != s || got[1]["properties"].(map[string]any)["n"] != nil {
		t.Fatalf("json %v", got)
	}
	b := EncodeBinary(tl)
	// scheme=1 (quadbin), then field 2 (cells).
	if b[0] != 0x08 || b[1] != 1 || b[2] != 0x12 {
		t.Fatalf("header % x", b[:3])
	}
	d, err := DecodeBinary(b)
	if err != nil {
		t.Fatal(err)
	}
	if d.Kind != Quadbin || len(d.Cells) != 2 || d.Cells[1] != tl.Cells[1] || len(d.Cols) != 2 ||
		d.Cols[0].Name != "n" || d.Cols[0].Num[0] != 1.5 || !math.IsNaN(d.Cols[0].Num[1]) ||
		d.Cols[1].Name != "s" || *d.Cols[1].Str[0] != s || d.Cols[1].Str[1] != nil {
		t.Fatalf("decoded %+v", d)
	}
	// Without string columns, no Properties messages.
	tl.Cols = tl.Cols[:1]
	tl.Kind = H3
	d, err = DecodeBinary(EncodeBinary(tl))
	if err != nil || d.Kind != H3 || len(d.Cols) != 1 || len(d.Cells) != 2 {
		t.Fatalf("decoded %+v %v", d, err)
	}
	if _, err := DecodeBinary([]byte{0x12, 0x05, 0x01}); err == nil {
		t.Fatal("truncated tile accepted")
	}
}
