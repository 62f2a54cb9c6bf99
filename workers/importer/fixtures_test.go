package importer_test

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/meridian-gis/meridian/workers/importer"
)

// TestFixtures imports every file of the library's fixtures (and a few
// more) and checks the table against GDAL's own reading of the file:
// ogrinfo's feature count, and its extent for lon/lat sources.
func TestFixtures(t *testing.T) {
	pool := testDB(t)
	csvOO := []string{"-oo", "X_POSSIBLE_NAMES=longitude,lng,lon", "-oo", "Y_POSSIBLE_NAMES=latitude,lat"}
	tests := []struct {
		file      string
		opts      importer.Options
		ogrLayer  string   // layer to compare with; "" for the only one
		ogrArgs   []string // extra ogrinfo arguments
		geomTypes []string // acceptable geometry column types
		lonLat    bool     // source is lon/lat: compare extents
		format    string
		types     map[string]string // some expected column types
	}{
		{file: "fixtures/csv/ne_110m_populated_places.csv", ogrArgs: csvOO, geomTypes: []string{"Point"}, lonLat: true, format: "csv",
			types: map[string]string{"name": "text", "pop_max": "bigint", "latitude": "double precision", "iso_a2": "text"}},
		{file: "fixtures/csv/spdata_world_wkt.csv", ogrArgs: []string{"-oo", "GEOM_POSSIBLE_NAMES=WKT", "-oo", "KEEP_GEOM_COLUMNS=NO"}, geomTypes: []string{"MultiPolygon"}, lonLat: true, format: "csv",
			types: map[string]string{"area_km2": "double precision", "name_long": "text", "pop": "bigint", "lifeexp": "double precision"}},
		{file: "fixtures/csv/us_airports_datagov.csv", ogrArgs: csvOO, geomTypes: []string{"Point"}, lonLat: true, format: "csv",
			types: map[string]string{"iata": "text", "longitude": "double precision"}},
		{file: "fixtures/fgb/flatgeobuf_countries.fgb", geomTypes: []string{"MultiPolygon"}, lonLat: true, format: "fgb"},
		{file: "fixtures/fgb/ne_110m_populated_places.fgb", geomTypes: []string{"Point"}, lonLat: true, format: "fgb"},
		{file: "fixtures/geojson/tiger_roads_manhattan.geojson", geomTypes: []string{"LineString"}, lonLat: true, format: "geojson",
			types: map[string]string{"cfcc": "text", "name": "text"}},
		{file: "fixtures/gpkg/spdata_world.gpkg", geomTypes: []string{"MultiPolygon"}, lonLat: true, format: "gpkg",
			types: map[string]string{"pop": "double precision", "name_long": "text"}},
		{file: "fixtures/gpkg/tegola_natural_earth_minimal.gpkg", geomTypes: []string{"Polygon", "MultiPolygon"}, lonLat: true, format: "gpkg"},
		{file: "fixtures/gpkg/puerto_montt_osm_20170922.gpkg", opts: importer.Options{Layer: "roads_lines"}, ogrLayer: "roads_lines", geomTypes: []string{"MultiLineString"}, lonLat: true, format: "gpkg"},
		{file: "fixtures/gpkg/puerto_montt_osm_20170922.gpkg", opts: importer.Options{Layer: "buildings_polygons"}, ogrLayer: "buildings_polygons", geomTypes: []string{"MultiPolygon"}, lonLat: true, format: "gpkg"},
		{file: "fixtures/kml/ne_10m_airports.kml", geomTypes: []string{"Point", "PointZ"}, lonLat: true, format: "kml"},
		{file: "fixtures/kml/ne_110m_admin_0_countries.kml", geomTypes: []string{"MultiPolygon", "MultiPolygonZ"}, lonLat: true, format: "kml"},
		{file: "fixtures/shapefile/ne_110m_admin_0_countries.zip", geomTypes: []string{"MultiPolygon"}, lonLat: true, format: "shapefile"},
		{file: "fixtures/shapefile/qgis_alaska_airports.zip", geomTypes: []string{"Point"}, format: "shapefile"},
		{file: "fixtures/shapefile/qgis_alaska_boundary.zip", geomTypes: []string{"Polygon", "MultiPolygon"}, format: "shapefile"},
		{file: "fixtures/shapefile/qgis_alaska_majrivers.zip", geomTypes: []string{"LineString", "MultiLineString"}, format: "shapefile"},
		{file: "fixtures/shapefile/qgis_alaska_popp.zip", geomTypes: []string{"Point"}, format: "shapefile"},
		{file: "points/ne_10m_airports.geojson", geomTypes: []string{"Point"}, lonLat: true, format: "geojson"},
		{file: "points/ne_10m_populated_places.geojson.gz", geomTypes: []string{"Point"}, lonLat: true, format: "geojson"},
		{file: "lines/ne_10m_rivers_lake_centerlines.geojson.gz", geomTypes: []string{"MultiLineString"}, lonLat: true, format: "geojson"},
		{file: "polygons/ne_50m_admin_1_states_provinces.geojson.gz", geomTypes: []string{"MultiPolygon"}, lonLat: true, format: "geojson"},
		{file: "polygons/world_atlas_countries_110m.topojson", opts: importer.Options{Layer: "countries"}, ogrLayer: "countries", geomTypes: []string{"MultiPolygon", "Geometry"}, format: "topojson"},
		{file: "lines/osm_delaware_highways.fgb.gz", geomTypes: []string{"LineString"}, lonLat: true, format: "fgb"},
	}
	for i, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			path := data(t, tt.file)
			if tt.format != "csv" && tt.format != "geojson" {
				needGDAL(t)
			}
			table := fmt.Sprintf("fx_%d", i)
			opts := tt.opts
			opts.Table = table
			res, err := importer.Import(ctxT(t), pool, importer.Source{Path: path}, opts)
			if err != nil {
				t.Fatalf("Import: %v", err)
			}
			checkTable(t, pool, table, res)
			if res.Format != tt.format {
				t.Errorf("Format = %q, want %q", res.Format, tt.format)
			}
			if !slices.Contains(tt.geomTypes, res.GeometryType) {
				t.Errorf("GeometryType = %q, want one of %v", res.GeometryType, tt.geomTypes)
			}
			if got := columnTypes(t, pool, table)["geom"]; got != "geometry("+res.GeometryType+",4326)" {
				t.Errorf("geom column is %s, Result says %s", got, res.GeometryType)
			}

			info := ogrInfo(t, path, tt.ogrArgs...)
			var want ogrSummary
			if tt.ogrLayer != "" {
				want = info[tt.ogrLayer]
			} else {
				want = onlyLayer(t, info)
			}
			if res.Rows != want.count {
				t.Errorf("imported %d rows, ogrinfo counts %d", res.Rows, want.count)
			}
			if tt.lonLat && res.InvalidFixed == 0 {
				// ST_Extent works on float4-rounded boxes: allow 1e-4°.
				for k := 0; k < 4; k++ {
					if !closeTo(res.BBox[k], want.extent[k], 1e-4) {
						t.Errorf("BBox = %v, ogrinfo extent %v", res.BBox, want.extent)
						break
					}
				}
			}
			types := columnTypes(t, pool, table)
			for col, typ := range tt.types {
				if types[col] != typ {
					t.Errorf("column %s is %q, want %q (columns: %v)", col, types[col], typ, types)
				}
			}
			for _, c := range res.Columns {
				if types[c.Name] == "" {
					t.Errorf("Result column %q is not in the table", c.Name)
				}
			}
			if len(res.Columns) != len(types) {
				t.Errorf("Result lists %d columns, the table has %d", len(res.Columns), len(types))
			}
		})
	}
}

var wktPointRE = regexp.MustCompile(`POINT \(([-0-9.e]+) ([-0-9.e]+)\)`)

// TestReprojectedShapefile checks that EPSG:2964 (Alaska Albers, US feet)
// features land where PostGIS puts them, for a sample of points.
func TestReprojectedShapefile(t *testing.T) {
	needGDAL(t)
	pool := testDB(t)
	path := data(t, "fixtures/shapefile/qgis_alaska_popp.zip")
	res, err := importer.Import(ctxT(t), pool, importer.Source{Path: path}, importer.Options{Table: "popp"})
	if err != nil {
		t.Fatal(err)
	}
	if res.SourceSRID != 0 && res.SourceSRID != 2964 {
		t.Errorf("SourceSRID = %d", res.SourceSRID)
	}
	for _, fid := range []int{0, 500, 1890} {
		out, err := exec.Command("ogrinfo", "-ro", "-al", "-q", "-fid", fmt.Sprint(fid), gdalPath(path)).Output()
		if err != nil {
			t.Fatal(err)
		}
		m := wktPointRE.FindStringSubmatch(string(out))
		if m == nil {
			t.Fatalf("no point in ogrinfo output for fid %d", fid)
		}
		var dist float64
		err = pool.QueryRow(context.Background(), `SELECT ST_Distance(geom, ST_Transform(ST_SetSRID(ST_MakePoint($1::float8, $2::float8), 2964), 4326))
			FROM popp WHERE cartodb_id = $3`, m[1], m[2], fid+1).Scan(&dist)
		if err != nil {
			t.Fatal(err)
		}
		if dist > 1e-7 {
			t.Errorf("feature %d is %g° from PostGIS's own EPSG:2964→4326 transform", fid, dist)
		}
	}
	if !strings.HasPrefix(res.GeometryType, "Point") || res.BBox[0] > -130 || res.BBox[3] < 60 {
		t.Errorf("Result = %+v: not Alaskan points", res)
	}
}
