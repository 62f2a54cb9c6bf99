package geomenc_test

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math"
	"testing"

	"github.com/paulmach/orb"
	"github.com/paulmach/orb/encoding/wkb"
	"github.com/paulmach/orb/encoding/wkt"
	"github.com/paulmach/orb/geojson"

	"github.com/meridian-gis/meridian/workers/importer/geomenc"
)

// orbWKB encodes g with orb (an independent 2D encoder) as little-endian WKB.
func orbWKB(t *testing.T, g orb.Geometry) []byte {
	t.Helper()
	b, err := wkb.Marshal(g, binary.LittleEndian)
	if err != nil {
		t.Fatalf("orb wkb.Marshal: %v", err)
	}
	return b
}

var geojsonCases = []struct {
	name string
	in   string
	typ  geomenc.Type
}{
	{"point", `{"type":"Point","coordinates":[-58.2,-32.4]}`, geomenc.Point},
	{"keys in any order with bbox", `{"bbox":[1,2,3,4],"coordinates":[1.5,2.5],"type":"Point"}`, geomenc.Point},
	{"linestring", `{"type":"LineString","coordinates":[[0,0],[1,1],[2,0.5]]}`, geomenc.LineString},
	{"polygon with hole", `{"type":"Polygon","coordinates":[[[0,0],[10,0],[10,10],[0,10],[0,0]],[[2,2],[3,2],[3,3],[2,2]]]}`, geomenc.Polygon},
	{"multipoint", `{"type":"MultiPoint","coordinates":[[0,0],[1,1]]}`, geomenc.MultiPoint},
	{"multilinestring", `{"type":"MultiLineString","coordinates":[[[0,0],[1,1]],[[2,2],[3,3]]]}`, geomenc.MultiLineString},
	{"multipolygon", `{"type":"MultiPolygon","coordinates":[[[[0,0],[1,0],[1,1],[0,0]]],[[[5,5],[6,5],[6,6],[5,5]]]]}`, geomenc.MultiPolygon},
	{"collection", `{"type":"GeometryCollection","geometries":[{"type":"Point","coordinates":[1,2]},{"type":"LineString","coordinates":[[0,0],[1,1]]}]}`, geomenc.GeometryCollection},
	{"exponents and spaces", "{ \"type\" : \"Point\" , \"coordinates\" : [ 1e2 , -2.5E-3 ] }", geomenc.Point},
}

func TestGeoJSONMatchesOrb(t *testing.T) {
	var b geomenc.Builder
	for _, tt := range geojsonCases {
		t.Run(tt.name, func(t *testing.T) {
			ok, err := b.GeoJSON([]byte(tt.in))
			if err != nil || !ok {
				t.Fatalf("GeoJSON(%s) = %v, %v; want ok", tt.in, ok, err)
			}
			g, err := geojson.UnmarshalGeometry([]byte(tt.in))
			if err != nil {
				t.Fatalf("orb: %v", err)
			}
			if want := orbWKB(t, g.Geometry()); hex.EncodeToString(b.Bytes()) != hex.EncodeToString(want) {
				t.Errorf("GeoJSON(%s) =\n %x\nwant (orb)\n %x", tt.in, b.Bytes(), want)
			}
			if got := b.Info().Type; got != tt.typ {
				t.Errorf("Info().Type = %v, want %v", got, tt.typ)
			}
			bound := g.Geometry().Bound()
			want := [4]float64{bound.Min[0], bound.Min[1], bound.Max[0], bound.Max[1]}
			if got := b.Info().BBox; got != want {
				t.Errorf("BBox = %v, want %v", got, want)
			}
		})
	}
}

func TestWKTMatchesOrb(t *testing.T) {
	var b geomenc.Builder
	tests := []string{
		"POINT (1 2)",
		"point(1.5 -2.25)",
		"LINESTRING (0 0, 1 1, 2 0.5)",
		"POLYGON ((0 0, 10 0, 10 10, 0 10, 0 0), (2 2, 3 2, 3 3, 2 2))",
		"MULTIPOINT ((0 0), (1 1))",
		"MULTILINESTRING ((0 0, 1 1), (2 2, 3 3))",
		"MULTIPOLYGON (((180.0 -16.0671326636424,180.0 -16.5552165666392,179.364142661964 -16.8013540769469,180.0 -16.0671326636424)),((0 0,1 0,1 1,0 0)))",
		"GEOMETRYCOLLECTION (POINT (1 2), LINESTRING (0 0, 1 1))",
	}
	for _, in := range tests {
		if err := b.WKT(in); err != nil {
			t.Errorf("WKT(%q) error: %v", in, err)
			continue
		}
		g, err := wkt.Unmarshal(in)
		if in == "MULTIPOINT ((0 0), (1 1))" {
			// The bare form must encode the same way.
			bare := append([]byte(nil), b.Bytes()...)
			if err := b.WKT("MULTIPOINT (0 0, 1 1)"); err != nil || hex.EncodeToString(b.Bytes()) != hex.EncodeToString(bare) {
				t.Errorf("WKT(MULTIPOINT (0 0, 1 1)) = %x, %v; want %x", b.Bytes(), err, bare)
			}
			b.WKT(in)
		}
		if err != nil {
			t.Fatalf("orb wkt.Unmarshal(%q): %v", in, err)
		}
		if want := orbWKB(t, g); hex.EncodeToString(b.Bytes()) != hex.EncodeToString(want) {
			t.Errorf("WKT(%q) =\n %x\nwant (orb)\n %x", in, b.Bytes(), want)
		}
	}
}

// hexOf builds expected little-endian EWKB from a type code and numbers.
func hexOf(parts ...any) string {
	var out []byte
	for _, p := range parts {
		switch v := p.(type) {
		case byte:
			out = append(out, v)
		case uint32:
			out = binary.LittleEndian.AppendUint32(out, v)
		case float64:
			out = binary.LittleEndian.AppendUint64(out, math.Float64bits(v))
		}
	}
	return hex.EncodeToString(out)
}

func TestDimensionsAndSRID(t *testing.T) {
	const z = 0x80000000
	pointZ := hexOf(byte(1), uint32(1|z), 1.0, 2.0, 3.0)
	var b geomenc.Builder
	tests := []struct {
		name     string
		build    func() error
		wantHex  string
		wantZ    bool
		wantSRID int
	}{
		{"geojson 3D point", func() error { _, err := b.GeoJSON([]byte(`{"type":"Point","coordinates":[1,2,3]}`)); return err }, pointZ, true, 0},
		{"wkt POINT Z", func() error { return b.WKT("POINT Z (1 2 3)") }, pointZ, true, 0},
		{"wkt untagged 3 ordinates", func() error { return b.WKT("POINT(1 2 3)") }, pointZ, true, 0},
		{"ewkt srid", func() error { return b.WKT("SRID=3857;POINT Z (1 2 3)") }, pointZ, true, 3857},
		{"ewkb hex with srid, big endian", func() error {
			return b.WKBHex("00" + "a0000001" + "00000f11" + "3ff0000000000000" + "4000000000000000" + "4008000000000000")
		}, pointZ, true, 3857},
		{"iso wkb 1001", func() error { return b.WKBHex(hexOf(byte(1), uint32(1001), 1.0, 2.0, 3.0)) }, pointZ, true, 0},
		{"geojson 2D point in 3D collection gets z=0", func() error {
			_, err := b.GeoJSON([]byte(`{"type":"LineString","coordinates":[[1,2,3],[4,5]]}`))
			return err
		}, hexOf(byte(1), uint32(2|z), uint32(2), 1.0, 2.0, 3.0, 4.0, 5.0, 0.0), true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.build(); err != nil {
				t.Fatalf("error: %v", err)
			}
			if got := hex.EncodeToString(b.Bytes()); got != tt.wantHex {
				t.Errorf("EWKB = %s, want %s", got, tt.wantHex)
			}
			if got := b.Info(); got.HasZ != tt.wantZ || got.SRID != tt.wantSRID {
				t.Errorf("Info = %+v, want HasZ %v SRID %d", got, tt.wantZ, tt.wantSRID)
			}
		})
	}
}

func TestRingsClosedAndEmpty(t *testing.T) {
	var b geomenc.Builder
	ok, err := b.GeoJSON([]byte(`{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1]]]}`))
	if err != nil || !ok {
		t.Fatalf("unclosed ring: %v", err)
	}
	if got := b.Info().ClosedRings; got != 1 {
		t.Errorf("ClosedRings = %d, want 1", got)
	}
	want := orbWKB(t, orb.Polygon{{{0, 0}, {1, 0}, {1, 1}, {0, 0}}})
	if hex.EncodeToString(b.Bytes()) != hex.EncodeToString(want) {
		t.Errorf("closed ring EWKB = %x, want %x", b.Bytes(), want)
	}

	if ok, err := b.GeoJSON([]byte(`null`)); ok || err != nil {
		t.Errorf("GeoJSON(null) = %v, %v; want false, nil", ok, err)
	}
	if err := b.WKT("POINT EMPTY"); err != nil || !b.Info().Empty {
		t.Errorf("WKT(POINT EMPTY) = %v, Empty %v", err, b.Info().Empty)
	}
	emptyPoint := b.Bytes()
	if err := b.WKB(append([]byte(nil), emptyPoint...)); err != nil || !b.Info().Empty {
		t.Errorf("WKB(empty point) = %v, Empty %v", err, b.Info().Empty)
	}
	if _, err := b.GeoJSON([]byte(`{"type":"Point","coordinates":[]}`)); err != nil || !b.Info().Empty {
		t.Errorf("GeoJSON empty point = %v, Empty %v", err, b.Info().Empty)
	}
	if err := b.WKT("MULTIPOLYGON EMPTY"); err != nil {
		t.Errorf("WKT(MULTIPOLYGON EMPTY) = %v", err)
	}
}

func TestInvalid(t *testing.T) {
	var b geomenc.Builder
	tests := []struct {
		name  string
		build func() error
	}{
		{"unknown type", func() error { _, err := b.GeoJSON([]byte(`{"type":"Circle","coordinates":[1,2]}`)); return err }},
		{"no type", func() error { _, err := b.GeoJSON([]byte(`{"coordinates":[1,2]}`)); return err }},
		{"no coordinates", func() error { _, err := b.GeoJSON([]byte(`{"type":"Point"}`)); return err }},
		{"one-position line", func() error { _, err := b.GeoJSON([]byte(`{"type":"LineString","coordinates":[[1,2]]}`)); return err }},
		{"two-position ring", func() error {
			_, err := b.GeoJSON([]byte(`{"type":"Polygon","coordinates":[[[1,2],[3,4]]]}`))
			return err
		}},
		{"string coordinate", func() error { _, err := b.GeoJSON([]byte(`{"type":"Point","coordinates":["1",2]}`)); return err }},
		{"one-number position", func() error { _, err := b.GeoJSON([]byte(`{"type":"Point","coordinates":[1]}`)); return err }},
		{"not an object", func() error { _, err := b.GeoJSON([]byte(`[1,2]`)); return err }},
		{"truncated json", func() error { _, err := b.GeoJSON([]byte(`{"type":"Point","coordinates":[1,`)); return err }},
		{"wkt garbage", func() error { return b.WKT("hello") }},
		{"wkt curve", func() error { return b.WKT("CIRCULARSTRING(0 0,1 1,2 0)") }},
		{"wkt unbalanced", func() error { return b.WKT("POINT (1 2") }},
		{"wkt trailing", func() error { return b.WKT("POINT (1 2) x") }},
		{"wkt nan", func() error { return b.WKT("POINT (nan 2)") }},
		{"wkt too many ordinates", func() error { return b.WKT("POINT Z (1 2 3 4)") }},
		{"wkb truncated", func() error { return b.WKBHex("0101000000000000000000f03f") }},
		{"wkb bad hex", func() error { return b.WKBHex("zz") }},
		{"wkb huge count", func() error { return b.WKBHex(hexOf(byte(1), uint32(2), uint32(0xffffffff))) }},
		{"wkb wrong member", func() error {
			return b.WKBHex(hexOf(byte(1), uint32(6), uint32(1), byte(1), uint32(1), 1.0, 2.0))
		}},
		{"wkb infinite", func() error { return b.WKBHex(hexOf(byte(1), uint32(1), math.Inf(1), 2.0)) }},
		{"deep collection", func() error {
			s := ""
			for i := 0; i < 40; i++ {
				s += `{"type":"GeometryCollection","geometries":[`
			}
			s += `{"type":"Point","coordinates":[1,2]}`
			for i := 0; i < 40; i++ {
				s += `]}`
			}
			_, err := b.GeoJSON([]byte(s))
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.build()
			if !errors.Is(err, geomenc.ErrInvalid) {
				t.Errorf("error = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestPointXY(t *testing.T) {
	var b geomenc.Builder
	if err := b.PointXY(-89.23450472, 31.95376472); err != nil {
		t.Fatal(err)
	}
	want := orbWKB(t, orb.Point{-89.23450472, 31.95376472})
	if hex.EncodeToString(b.Bytes()) != hex.EncodeToString(want) {
		t.Errorf("PointXY = %x, want %x", b.Bytes(), want)
	}
}

func BenchmarkGeoJSONPolygon(b *testing.B) {
	raw := []byte(`{"type":"Polygon","coordinates":[[[-58.200112,-32.44713],[-58.200124,-32.447201],[-58.200429,-32.444594],[-58.220082,-32.489516],[-58.222808,-32.534275],[-58.211578,-32.657322],[-58.192983,-32.725844],[-58.200112,-32.44713]]]}`)
	var g geomenc.Builder
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if _, err := g.GeoJSON(raw); err != nil {
			b.Fatal(err)
		}
	}
}
