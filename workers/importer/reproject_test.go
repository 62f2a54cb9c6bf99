package importer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/paulmach/orb"
	"github.com/paulmach/orb/geojson"

	"github.com/meridian-gis/meridian/workers/importer"
)

// mercator is EPSG:3857 (spherical Web Mercator).
func mercator(lon, lat float64) (x, y float64) {
	const r = 6378137.0
	return r * lon * math.Pi / 180, r * math.Log(math.Tan(math.Pi/4+lat*math.Pi/360))
}

// TestReprojectNative: native loads honour a legacy "crs" member and
// Options.SourceSRID, and land on the original lon/lat.
func TestReprojectNative(t *testing.T) {
	pool := testDB(t)
	raw, err := os.ReadFile(data(t, "points/ne_110m_populated_places.geojson"))
	if err != nil {
		t.Fatal(err)
	}
	fc, err := geojson.UnmarshalFeatureCollection(raw)
	if err != nil {
		t.Fatal(err)
	}
	var orig []orb.Point
	for _, f := range fc.Features {
		p := f.Geometry.(orb.Point)
		orig = append(orig, p)
		x, y := mercator(p[0], p[1])
		f.Geometry = orb.Point{x, y}
	}
	out, _ := fc.MarshalJSON()
	var m map[string]any
	json.Unmarshal(out, &m)
	m["crs"] = map[string]any{"type": "name", "properties": map[string]any{"name": "urn:ogc:def:crs:EPSG::3857"}}
	out, _ = json.Marshal(m)
	path := writeFile(t, "places_3857.geojson", out)

	var csv strings.Builder
	csv.WriteString("name,x,y\n")
	for i, p := range orig {
		x, y := mercator(p[0], p[1])
		fmt.Fprintf(&csv, "p%d,%.6f,%.6f\n", i, x, y)
	}
	csvPath := writeFile(t, "places_3857.csv", []byte(csv.String()))

	for _, tt := range []struct {
		name string
		path string
		opts importer.Options
	}{
		{"geojson crs member", path, importer.Options{Table: "merc_geojson"}},
		{"csv x/y with SourceSRID", csvPath, importer.Options{Table: "merc_csv", SourceSRID: 3857}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res, err := importer.Import(ctxT(t), pool, importer.Source{Path: tt.path}, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			checkTable(t, pool, tt.opts.Table, res)
			if res.SourceSRID != 3857 || res.Rows != int64(len(orig)) {
				t.Errorf("Result: SourceSRID %d, Rows %d; want 3857, %d", res.SourceSRID, res.Rows, len(orig))
			}
			for i, p := range orig {
				var d float64
				err := pool.QueryRow(context.Background(), "SELECT ST_Distance(geom, ST_SetSRID(ST_MakePoint($1, $2), 4326)) FROM "+tt.opts.Table+" WHERE cartodb_id = $3", p[0], p[1], i+1).Scan(&d)
				if err != nil {
					t.Fatal(err)
				}
				if d > 1e-6 {
					t.Errorf("feature %d is %g° from where it started", i+1, d)
				}
			}
		})
	}
}
