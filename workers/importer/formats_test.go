package importer_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/meridian-gis/meridian/workers/importer"
)

// TestConvertedFormats covers the formats the library has no file of
// (GML, GPX, GeoJSONSeq) and the containers (KMZ, zip, gzip) by converting
// real fixtures with ogr2ogr or packing them, then importing the result.
func TestConvertedFormats(t *testing.T) {
	needGDAL(t)
	pool := testDB(t)
	dir := t.TempDir()
	convert := func(src, dst string, args ...string) string {
		t.Helper()
		out := filepath.Join(dir, dst)
		cmd := exec.Command("ogr2ogr", append([]string{out, src}, args...)...)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("ogr2ogr %s: %v\n%s", dst, err, b)
		}
		return out
	}
	kml := data(t, "fixtures/kml/ne_10m_airports.kml")
	kmlBytes, _ := os.ReadFile(kml)
	roads := data(t, "fixtures/geojson/tiger_roads_manhattan.geojson")
	roadsBytes, _ := os.ReadFile(roads)
	places := data(t, "fixtures/fgb/ne_110m_populated_places.fgb")

	tests := []struct {
		name   string
		path   string
		opts   importer.Options
		format string
		want   int64
		geom   string
	}{
		{"GML", convert(data(t, "fixtures/gpkg/spdata_world.gpkg"), "world.gml", "-f", "GML"), importer.Options{}, "gml", 177, "MultiPolygon"},
		{"GPX waypoints", convert(places, "places.gpx", "-f", "GPX", "-dsco", "GPX_USE_EXTENSIONS=YES", "-nln", "waypoints", "-sql", "SELECT name FROM populated_places"), importer.Options{}, "gpx", 243, "Point"},
		{"GeoJSONSeq", convert(roads, "roads.geojsonl", "-f", "GeoJSONSeq"), importer.Options{}, "geojsonseq", 8333, "LineString"},
		{"GeoJSON text sequence (RS)", convert(roads, "roads.geojsons", "-f", "GeoJSONSeq", "-lco", "RS=YES"), importer.Options{}, "geojsonseq", 8333, "LineString"},
		{"KMZ", writeFile(t, "airports.kmz", makeZip(t, zipEntry{name: "doc.kml", data: kmlBytes}, zipEntry{name: "files/icon.png", data: []byte("\x89PNG")})), importer.Options{}, "kml", 891, "Point"},
		{"zipped GeoJSON", writeFile(t, "roads.zip", makeZip(t, zipEntry{name: "data/roads.geojson", data: roadsBytes})), importer.Options{}, "geojson", 8333, "LineString"},
		{"gzipped KML", writeFile(t, "airports.kml.gz", gzipBytes(kmlBytes)), importer.Options{}, "kml", 891, "Point"},
		{"GeoJSON named .json, format forced", writeFile(t, "upload.bin", roadsBytes), importer.Options{Format: "geojson"}, "geojson", 8333, "LineString"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := tt.opts
			opts.Table = fmt.Sprintf("conv_%d", i)
			res, err := importer.Import(ctxT(t), pool, importer.Source{Path: tt.path}, opts)
			if err != nil {
				t.Fatal(err)
			}
			checkTable(t, pool, opts.Table, res)
			if res.Rows != tt.want || res.Format != tt.format || res.GeometryType != tt.geom {
				t.Errorf("Result: %d rows, format %s, geometry %s; want %d, %s, %s", res.Rows, res.Format, res.GeometryType, tt.want, tt.format, tt.geom)
			}
		})
	}
}
