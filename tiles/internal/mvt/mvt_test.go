package mvt

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meridian-gis/meridian/tiles/internal/catalog"
)

var update = flag.Bool("update", false, "rewrite the golden SQL files")

// goldenLayers are the statement shapes checked against testdata/*.sql.
var goldenLayers = map[string]Layer{
	"polygons_4326": {
		Schema: "public", Table: "admin1", Geom: "geom", SRID: 4326, Shape: catalog.ShapePolygon,
		Props:  []Prop{{Name: "name", Kind: PropText}, {Name: "pop_est", Kind: PropFloat}},
		Extent: 512, Buffer: 16, MaxFeatures: 5000,
	},
	"lines_3857_nocap": {
		Schema: "osm", Table: "Roads", Geom: "way", SRID: 3857, Shape: catalog.ShapeLine,
		Props:  []Prop{{Name: "highway", Kind: PropText}},
		Extent: 4096, Buffer: 64,
	},
	"points_4326": {
		Schema: "public", Table: "postal", Geom: "geom", SRID: 4326, Shape: catalog.ShapePoint,
		Props:  []Prop{{Name: "zipcode", Kind: PropText}, {Name: "id", Kind: PropBigint}, {Name: "updated", Kind: PropTimestamp}},
		Extent: 512, Buffer: 16, AggLevel: 8,
	},
	"points_4326_key": {
		Schema: "public", Table: "postal", Geom: "geom", SRID: 4326, Shape: catalog.ShapePoint,
		Props:  []Prop{{Name: "zipcode", Kind: PropText}, {Name: "place", Kind: PropText}},
		Extent: 512, Buffer: 8, AggLevel: 8, Key: "id",
	},
	"points_2154_aggs": {
		Schema: "public", Table: "stores", Geom: "geom", SRID: 2154, Shape: catalog.ShapePoint,
		Aggs:   []AggExpr{{`sum(g."revenue")::float8`, "total"}},
		Extent: 1024, Buffer: 32, AggLevel: 9,
	},
	"query_filter_params": {
		Query: "SELECT * FROM stores WHERE kind = $1 -- trailing comment", Geom: "geom", SRID: 4326,
		Shape: catalog.ShapeUnknown, Props: []Prop{{Name: "kind", Kind: PropText}, {Name: "attrs", Kind: PropJSON}},
		Filter: `g."revenue" BETWEEN $2 AND $3`, ArgsBefore: 3,
		Extent: 512, Buffer: 16, MaxFeatures: 10000,
	},
	"unknown_srid_points_plain": {
		Schema: "public", Table: "odd", Geom: "geom", Shape: catalog.ShapePoint, NoPointAggregation: true,
		Props:  []Prop{{Name: "ok", Kind: PropBool}},
		Extent: 256, Buffer: 8, MaxFeatures: 100,
	},
}

func TestBuildGolden(t *testing.T) {
	for name, l := range goldenLayers {
		t.Run(name, func(t *testing.T) {
			got, err := Build(l)
			if err != nil {
				t.Fatalf("Build: %v", err)
			}
			path := filepath.Join("testdata", name+".sql")
			if *update {
				if err := os.WriteFile(path, []byte(got+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("reading golden file (run with -update): %v", err)
			}
			if got+"\n" != string(want) {
				t.Errorf("Build(%s) =\n%s\nwant\n%s", name, got, want)
			}
		})
	}
}

func TestBuildInvalid(t *testing.T) {
	base := goldenLayers["polygons_4326"]
	tests := []struct {
		name string
		mod  func(l *Layer)
	}{
		{"no relation", func(l *Layer) { l.Table = "" }},
		{"table and query", func(l *Layer) { l.Query = "SELECT 1" }},
		{"no geometry", func(l *Layer) { l.Geom = "" }},
		{"extent too small", func(l *Layer) { l.Extent = 16 }},
		{"buffer too big", func(l *Layer) { l.Buffer = 1000 }},
		{"aggs on polygons", func(l *Layer) { l.Aggs = []AggExpr{{"count(*)", "n"}} }},
		{"reserved property name", func(l *Layer) { l.Props = []Prop{{Name: "__mvt_geom", Kind: PropText}} }},
		{"empty property name", func(l *Layer) { l.Props = []Prop{{Name: "", Kind: PropText}} }},
	}
	for _, tt := range tests {
		l := base
		tt.mod(&l)
		if _, err := Build(l); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Build error = %v, want ErrInvalid", tt.name, err)
		}
	}
}

func TestPropOf(t *testing.T) {
	tests := []struct {
		col  catalog.Column
		want PropKind
		ok   bool
	}{
		{catalog.Column{Name: "a", Type: catalog.TypeNumber, PGType: "integer"}, PropInt, true},
		{catalog.Column{Name: "a", Type: catalog.TypeNumber, PGType: "smallint"}, PropInt, true},
		{catalog.Column{Name: "a", Type: catalog.TypeNumber, PGType: "numeric(12,2)"}, PropFloat, true},
		{catalog.Column{Name: "a", Type: catalog.TypeNumber, PGType: "double precision"}, PropFloat, true},
		{catalog.Column{Name: "a", Type: catalog.TypeBigint, PGType: "bigint"}, PropBigint, true},
		{catalog.Column{Name: "a", Type: catalog.TypeString, PGType: "text"}, PropText, true},
		{catalog.Column{Name: "a", Type: catalog.TypeBoolean, PGType: "boolean"}, PropBool, true},
		{catalog.Column{Name: "a", Type: catalog.TypeTimestamp, PGType: "date"}, PropTimestamp, true},
		{catalog.Column{Name: "a", Type: catalog.TypeObject, PGType: "jsonb"}, PropJSON, true},
		{catalog.Column{Name: "a", Type: catalog.TypeUnknown, PGType: "inet"}, PropText, true},
		{catalog.Column{Name: "a", Type: catalog.TypeGeometry, PGType: "geometry"}, 0, false},
	}
	for _, tt := range tests {
		got, ok := PropOf(tt.col)
		if ok != tt.ok || (ok && got.Kind != tt.want) {
			t.Errorf("PropOf(%+v) = %+v, %v; want kind %v, %v", tt.col, got, ok, tt.want, tt.ok)
		}
	}
}

func TestArgs(t *testing.T) {
	z, x, y, lod := Layer{ArgsBefore: 2}.Args()
	if z != "$3::int" || x != "$4::int" || y != "$5::int" || lod != "$6::int" {
		t.Errorf("Args() = %s %s %s %s", z, x, y, lod)
	}
}

func BenchmarkBuild(b *testing.B) {
	l := goldenLayers["polygons_4326"]
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Build(l); err != nil {
			b.Fatal(err)
		}
	}
}

func TestBuildOverview(t *testing.T) {
	ov := Overview{Schema: "meridian_overviews", Table: "o1_2_3", Key: "id", Bands: 10}
	l := Layer{Schema: "public", Table: "admin1", Geom: "geom", SRID: 4326, Shape: catalog.ShapePolygon,
		Props: []Prop{{Name: "name"}}, Extent: 512, Buffer: 8, MaxFeatures: 5000}
	sql, err := BuildOverview(l, ov, 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`FROM "meridian_overviews"."o1_2_3_3" o`, `JOIN "public"."admin1" g ON g."id" = f.__mk`,
		"GROUP BY o.key", "LIMIT (5000 >> $4::int)", "ST_Collect(o.geom)"} {
		if !strings.Contains(sql, want) {
			t.Errorf("overview statement lacks %q:\n%s", want, sql)
		}
	}
	for name, bad := range map[string]Layer{
		"query":  {Query: "SELECT 1", Geom: "geom", SRID: 4326, Shape: catalog.ShapePolygon, Extent: 512},
		"filter": {Schema: "public", Table: "t", Geom: "geom", SRID: 4326, Shape: catalog.ShapePolygon, Extent: 512, Filter: "true"},
		"points": {Schema: "public", Table: "t", Geom: "geom", SRID: 4326, Shape: catalog.ShapePoint, Extent: 512},
		"srid":   {Schema: "public", Table: "t", Geom: "geom", SRID: 2154, Shape: catalog.ShapePolygon, Extent: 512},
	} {
		if _, err := BuildOverview(bad, ov, 0); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
	if _, err := BuildOverview(l, ov, 11); !errors.Is(err, ErrInvalid) {
		t.Errorf("band beyond Bands: err = %v", err)
	}
	for _, c := range []struct{ z, extent, band int }{{0, 512, 0}, {3, 512, 3}, {3, 4096, 6}, {3, 256, 2}, {0, 256, 0}, {9, 4096, 10}, {15, 512, 10}} {
		if got := ov.Band(c.z, c.extent); got != c.band {
			t.Errorf("Band(%d, %d) = %d, want %d", c.z, c.extent, got, c.band)
		}
	}
}
