package importer_test

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/meridian-gis/meridian/workers/importer"
)

// An empty polygon comes out the same from every format: a NULL geom
// (never an EMPTY geometry), next to the other rows.
func TestEmptyPolygonIsNull(t *testing.T) {
	needGDAL(t)
	pool := testDB(t)
	gj := `{"type":"FeatureCollection","features":[
{"type":"Feature","properties":{"name":"square"},"geometry":{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,1],[0,0]]]}},
{"type":"Feature","properties":{"name":"empty"},"geometry":{"type":"Polygon","coordinates":[]}}]}`
	src := writeFile(t, "empty.geojson", []byte(gj))
	files := map[string]string{
		"geojson": src,
		"csv":     writeFile(t, "empty.csv", []byte("name,wkt\nsquare,\"POLYGON((0 0,1 0,1 1,0 1,0 0))\"\nempty,POLYGON EMPTY\n")),
	}
	// FlatGeobuf is not here: GDAL 3.6's writer drops features whose
	// geometry is empty or null, so no FlatGeobuf file carries one.
	for _, f := range []struct{ format, driver, ext, src string }{{"gpkg", "GPKG", "gpkg", src}, {"kml", "KML", "kml", src}} {
		dst := filepath.Join(t.TempDir(), "empty."+f.ext)
		if out, err := exec.Command("ogr2ogr", "-f", f.driver, dst, f.src).CombinedOutput(); err != nil {
			t.Fatalf("ogr2ogr %s: %v %s", f.driver, err, out)
		}
		files[f.format] = dst
	}
	for format, path := range files {
		t.Run(format, func(t *testing.T) {
			table := "empty_" + format
			res, err := importer.Import(ctxT(t), pool, importer.Source{Path: path}, importer.Options{Table: table, IfExists: importer.IfExistsReplace})
			if err != nil {
				t.Fatal(err)
			}
			if res.Rows != 2 {
				t.Errorf("rows = %d, want 2", res.Rows)
			}
			empty := count(t, pool, "SELECT count(*) FROM "+table+" WHERE ST_IsEmpty(geom)")
			null := count(t, pool, "SELECT count(*) FROM "+table+" WHERE geom IS NULL")
			emptyRow := count(t, pool, "SELECT count(*) FROM "+table+" WHERE geom IS NULL AND name = 'empty'")
			if empty != 0 || null != 1 || emptyRow != 1 {
				t.Errorf("%s: %d EMPTY, %d NULL (%d of them the empty feature), want 0 EMPTY and the empty feature NULL", format, empty, null, emptyRow)
			}
		})
	}
}
