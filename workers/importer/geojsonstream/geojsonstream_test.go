package geojsonstream_test

import (
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/meridian-gis/meridian/workers/importer/geojsonstream"
)

type got struct {
	index    int64
	geom     string
	props    map[string]string
	id       string
	offset   int64
	hasProps bool
}

func readAll(t *testing.T, r *geojsonstream.Reader) ([]got, error) {
	t.Helper()
	var out []got
	for {
		f, err := r.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		g := got{index: f.Index, geom: string(f.Geometry), id: string(f.ID), offset: f.Offset, props: map[string]string{}, hasProps: f.Props != nil}
		if err := f.Properties(func(k []byte, esc bool, v []byte) error {
			g.props[string(k)] = string(v)
			return nil
		}); err != nil {
			t.Fatalf("Properties: %v", err)
		}
		out = append(out, g)
	}
}

func TestShapes(t *testing.T) {
	pt := `{"type":"Point","coordinates":[1,2]}`
	tests := []struct {
		name     string
		in       string
		want     []string // geometry of each feature
		wantSRID int
	}{
		{"collection", `{"type":"FeatureCollection","features":[{"type":"Feature","geometry":` + pt + `,"properties":{"a":1}},{"type":"Feature","geometry":null,"properties":null}]}`, []string{pt, ""}, 0},
		{"features before type, crs after", `{"features":[{"type":"Feature","properties":{},"geometry":` + pt + `}],"type":"FeatureCollection","crs":{"type":"name","properties":{"name":"urn:ogc:def:crs:EPSG::3857"}}}`, []string{pt}, 3857},
		{"crs84", `{"type":"FeatureCollection","crs":{"type":"name","properties":{"name":"urn:ogc:def:crs:OGC:1.3:CRS84"}},"features":[]}`, nil, 4326},
		{"bare feature", `{"type":"Feature","properties":{"a":"x"},"geometry":` + pt + `}`, []string{pt}, 0},
		{"bare geometry", pt, []string{`{"type":"Point","coordinates":[1,2]}`}, 0},
		{"ndjson", "{\"type\":\"Feature\",\"geometry\":" + pt + ",\"properties\":{}}\n{\"type\":\"Feature\",\"geometry\":" + pt + ",\"properties\":{}}\n", []string{pt, pt}, 0},
		{"geojson text sequence", "\x1e{\"type\":\"Feature\",\"geometry\":" + pt + ",\"properties\":{}}\n\x1e{\"type\":\"Feature\",\"geometry\":" + pt + ",\"properties\":{}}\n", []string{pt, pt}, 0},
		{"empty collection", `{"type":"FeatureCollection","features":[]}`, nil, 0},
		{"empty input", ``, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := geojsonstream.NewReader(iotest.HalfReader(strings.NewReader(tt.in)), geojsonstream.Options{})
			fs, err := readAll(t, r)
			if err != nil {
				t.Fatalf("error: %v", err)
			}
			if len(fs) != len(tt.want) {
				t.Fatalf("got %d features, want %d", len(fs), len(tt.want))
			}
			for i, f := range fs {
				if f.geom != tt.want[i] {
					t.Errorf("feature %d geometry = %s, want %s", i+1, f.geom, tt.want[i])
				}
				if f.index != int64(i+1) {
					t.Errorf("feature %d index = %d", i+1, f.index)
				}
			}
			if got := r.SRID(); got != tt.wantSRID {
				t.Errorf("SRID() = %d, want %d", got, tt.wantSRID)
			}
		})
	}
}

func TestPropertiesAndID(t *testing.T) {
	in := `{"type":"FeatureCollection","features":[{"type":"Feature","id":"a1","geometry":null,"properties":{"n":1.5,"s":"x\"y","o":{"k":[1,2]},"b":true,"z":null}}]}`
	fs, err := readAll(t, geojsonstream.NewReader(strings.NewReader(in), geojsonstream.Options{}))
	if err != nil || len(fs) != 1 {
		t.Fatalf("readAll = %v, %v", fs, err)
	}
	want := map[string]string{"n": "1.5", "s": `"x\"y"`, "o": `{"k":[1,2]}`, "b": "true", "z": "null"}
	for k, v := range want {
		if fs[0].props[k] != v {
			t.Errorf("property %s = %s, want %s", k, fs[0].props[k], v)
		}
	}
	if fs[0].id != `"a1"` {
		t.Errorf("id = %s, want \"a1\"", fs[0].id)
	}
}

func TestErrorsSayWhere(t *testing.T) {
	f1 := `{"type":"Feature","geometry":null,"properties":{"a":1}}`
	tests := []struct {
		name        string
		in          string
		wantOffset  int64
		wantFeature int64
		wantIs      error
	}{
		{"truncated mid-feature", `{"type":"FeatureCollection","features":[` + f1 + `,{"type":"Feature","prop`, int64(len(`{"type":"FeatureCollection","features":[` + f1 + `,{"type":"Feature","prop`)), 2, io.ErrUnexpectedEOF},
		{"bad token in feature 2", `{"type":"FeatureCollection","features":[` + f1 + `,{"type":"Feature","properties":{"a":tru}}]}`, int64(len(`{"type":"FeatureCollection","features":[`+f1+`,{"type":"Feature","properties":{"a":tru}`) - 1), 2, nil},
		{"features not an array", `{"type":"FeatureCollection","features":{}}`, 40, 0, nil},
		{"element not a feature", `{"type":"FeatureCollection","features":[{"type":"Point","coordinates":[1,2]}]}`, 40, 1, nil},
		{"properties not an object", `{"type":"FeatureCollection","features":[{"type":"Feature","properties":[1]}]}`, 40, 1, nil},
		{"top-level array", `[1,2]`, 1, 0, nil},
		{"not geojson", `{"hello":"world"}`, 0, 0, nil},
		{"topojson", `{"type":"Topology","objects":{}}`, -1, 0, geojsonstream.ErrTopoJSON},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := readAll(t, geojsonstream.NewReader(strings.NewReader(tt.in), geojsonstream.Options{}))
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Fatalf("error = %v, want %v", err, tt.wantIs)
			}
			if tt.wantOffset < 0 {
				return
			}
			var se *geojsonstream.SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("error = %v, want *SyntaxError", err)
			}
			if se.Offset != tt.wantOffset || se.Feature != tt.wantFeature {
				t.Errorf("SyntaxError = %q (offset %d, feature %d), want offset %d feature %d", se, se.Offset, se.Feature, tt.wantOffset, tt.wantFeature)
			}
		})
	}
}

func TestFeatureTooLarge(t *testing.T) {
	big := `{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"a":"` + strings.Repeat("x", 1<<20) + `"}}]}`
	_, err := readAll(t, geojsonstream.NewReader(strings.NewReader(big), geojsonstream.Options{MaxFeatureBytes: 64 << 10}))
	var se *geojsonstream.SyntaxError
	if !errors.Is(err, geojsonstream.ErrFeatureTooLarge) || !errors.As(err, &se) || se.Feature != 1 {
		t.Errorf("error = %v, want ErrFeatureTooLarge in feature 1", err)
	}
}

// TestRealFile streams a real FeatureCollection and checks the count
// against ogrinfo's (SOURCES.md).
func TestRealFile(t *testing.T) {
	dir := os.Getenv("MERIDIAN_TESTDATA")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "..", "shared", "data")
	}
	f, err := os.Open(filepath.Join(dir, "polygons", "ne_10m_lakes.geojson.gz"))
	if err != nil {
		t.Skipf("test data not available (set MERIDIAN_TESTDATA): %v", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	r := geojsonstream.NewReader(zr, geojsonstream.Options{})
	n := 0
	for {
		_, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("feature %d: %v", n+1, err)
		}
		n++
	}
	if n != 1354 {
		t.Errorf("got %d features, want 1354 (ogrinfo)", n)
	}
}
