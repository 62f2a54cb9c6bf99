package importpreview

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func testdata(t *testing.T, rel string) string {
	t.Helper()
	dir := os.Getenv("MERIDIAN_TESTDATA")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "shared", "data")
	}
	return filepath.Join(dir, rel)
}

// Real files from ../shared/data: format, layers, counts, columns,
// geometry guess and rows, without a database.
func TestDescribe(t *testing.T) {
	tests := []struct {
		file, format string
		features     int64
		geomKind     string
		column       string
	}{
		{"fixtures/csv/us_airports_datagov.csv", "csv", 3376, "latlon", ""},
		{"fixtures/csv/spdata_world_wkt.csv", "csv", -2, "wkt", ""},
		{"fixtures/geojson/tiger_roads_manhattan.geojson", "geojson", 8333, "native", ""},
		{"fixtures/fgb/flatgeobuf_countries.fgb", "fgb", 179, "native", ""},
		{"fixtures/kml/ne_110m_admin_0_countries.kml", "kml", -2, "native", ""},
		{"fixtures/shapefile/ne_110m_admin_0_countries.zip", "shapefile", 177, "native", ""},
		{"polygons/ne_50m_urban_areas.geojson.gz", "geojson", -2, "native", ""},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.file), func(t *testing.T) {
			p, err := Describe(context.Background(), testdata(t, tt.file), Options{Rows: 3})
			if err != nil {
				t.Fatal(err)
			}
			if p.Format != tt.format || len(p.Layers) == 0 || p.Geometry.Kind != tt.geomKind || len(p.Rows) != 3 || len(p.Columns) == 0 {
				t.Fatalf("preview = %+v", p)
			}
			if tt.features != -2 && p.Layers[0].Features != tt.features {
				t.Errorf("features = %d, want %d", p.Layers[0].Features, tt.features)
			}
			if tt.geomKind == "native" && p.Rows[0]["geometry"] == nil {
				t.Errorf("first row has no geometry: %v", p.Rows[0])
			}
			t.Logf("%s: %s layers %+v geometry %+v columns %d first row keys %d", tt.file, p.Format, p.Layers, p.Geometry, len(p.Columns), len(p.Rows[0]))
		})
	}
}

func TestDescribeBadInput(t *testing.T) {
	dir := t.TempDir()
	corrupt := filepath.Join(dir, "broken.fgb")
	os.WriteFile(corrupt, []byte("fgb\x03\x00garbage garbage garbage"), 0o600)
	unknown := filepath.Join(dir, "data.xyz")
	os.WriteFile(unknown, []byte("hello, this is not geodata"), 0o600)
	badJSON := filepath.Join(dir, "x.geojson")
	os.WriteFile(badJSON, []byte(`{"type":"FeatureCollection","features":[{"type":`), 0o600)
	if _, err := Describe(context.Background(), corrupt, Options{}); !errors.Is(err, ErrUnreadable) {
		t.Errorf("corrupt fgb: %v, want ErrUnreadable", err)
	}
	if _, err := Describe(context.Background(), unknown, Options{}); !errors.Is(err, ErrUnknownFormat) {
		t.Errorf("unknown: %v, want ErrUnknownFormat", err)
	}
	if _, err := Describe(context.Background(), badJSON, Options{}); !errors.Is(err, ErrUnreadable) {
		t.Errorf("truncated geojson: %v, want ErrUnreadable", err)
	}
	if _, err := Describe(context.Background(), testdata(t, "fixtures/fgb/flatgeobuf_countries.fgb"), Options{Layer: "nope"}); !errors.Is(err, ErrNoLayer) {
		t.Errorf("unknown layer: %v, want ErrNoLayer", err)
	}
}

// The stored file's own name does not matter: Options.Name picks the format.
func TestDescribeStoredUnderAnotherName(t *testing.T) {
	for _, tt := range []struct{ file, name, format string }{
		{"fixtures/shapefile/ne_110m_admin_0_countries.zip", "countries.zip", "shapefile"},
		{"polygons/ne_50m_urban_areas.geojson.gz", "urban.geojson.gz", "geojson"},
		{"fixtures/kml/ne_110m_admin_0_countries.kml", "countries.kml", "kml"},
		{"fixtures/csv/us_airports_datagov.csv", "airports.csv", "csv"},
	} {
		b, err := os.ReadFile(testdata(t, tt.file))
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "abc.preview")
		os.WriteFile(path, b, 0o600)
		p, err := Describe(context.Background(), path, Options{Name: tt.name, Rows: 1})
		if err != nil || p.Format != tt.format || len(p.Rows) != 1 {
			t.Errorf("%s stored as abc.preview: %+v, %v", tt.name, p, err)
		}
	}
}

// A multi-layer TopoJSON lists every layer with its count and says a
// layer must be chosen (the import refuses without one).
func TestDescribeTopoJSONLayers(t *testing.T) {
	topo := `{"type":"Topology","arcs":[[[0,0],[1,0],[0,1],[-1,0],[0,-1]]],
"objects":{"parcels":{"type":"GeometryCollection","geometries":[{"type":"Polygon","arcs":[[0]],"properties":{"id":1}}]},
"stops":{"type":"GeometryCollection","geometries":[{"type":"Point","coordinates":[0.5,0.5],"properties":{"id":2}},{"type":"Point","coordinates":[0.2,0.2],"properties":{"id":3}}]}}}`
	path := filepath.Join(t.TempDir(), "x.topojson")
	os.WriteFile(path, []byte(topo), 0o600)
	p, err := Describe(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Format != "topojson" || !p.LayerRequired || len(p.Layers) != 2 {
		t.Fatalf("preview = %+v, want two layers and layerRequired", p)
	}
	counts := map[string]int64{}
	for _, l := range p.Layers {
		counts[l.Name] = l.Features
	}
	if counts["parcels"] != 1 || counts["stops"] != 2 {
		t.Errorf("layers = %+v, want parcels 1, stops 2", p.Layers)
	}
	if q, err := Describe(context.Background(), path, Options{Layer: "stops"}); err != nil || q.Layer != "stops" || len(q.Rows) != 2 {
		t.Errorf("layer stops = %+v, %v", q, err)
	}
}
