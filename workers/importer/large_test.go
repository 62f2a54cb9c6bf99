package importer_test

import (
	"context"
	"encoding/binary"
	"encoding/csv"
	"io"
	"os"
	"testing"

	"github.com/paulmach/orb/encoding/wkb"
	"github.com/paulmach/orb/geojson"

	"github.com/meridian-gis/meridian/workers/importer"
	"github.com/meridian-gis/meridian/workers/importer/geojsonstream"
)

// TestNaturalEarthAdmin1 imports the 54 MB admin-1 GeoJSON (gzip) and
// checks it against ogrinfo and against an independent decoder (orb).
func TestNaturalEarthAdmin1(t *testing.T) {
	pool := testDB(t)
	path := data(t, "polygons/ne_10m_admin_1_states_provinces.geojson.gz")
	res, err := importer.Import(ctxT(t), pool, importer.Source{Path: path}, importer.Options{Table: "admin1"})
	if err != nil {
		t.Fatal(err)
	}
	checkTable(t, pool, "admin1", res)
	want := onlyLayer(t, ogrInfo(t, path))
	if res.Rows != want.count {
		t.Errorf("imported %d rows, ogrinfo counts %d", res.Rows, want.count)
	}
	if res.GeometryType != "MultiPolygon" {
		t.Errorf("GeometryType = %s, want MultiPolygon (Polygon and MultiPolygon mix)", res.GeometryType)
	}
	if res.InvalidFixed == 0 || len(res.Warnings) == 0 {
		t.Errorf("InvalidFixed = %d, warnings %q: the file has self-intersecting rings", res.InvalidFixed, res.Warnings)
	}
	types := columnTypes(t, pool, "admin1")
	for col, typ := range map[string]string{"name": "text", "iso_3166_2": "text", "latitude": "double precision", "ne_id": "bigint", "admin": "text", "scalerank": "bigint"} {
		if types[col] != typ {
			t.Errorf("column %s is %q, want %q", col, types[col], typ)
		}
	}
	// Compare the first valid features with orb's decoding of the file.
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := geojsonstream.NewReader(gunzip(t, f), geojsonstream.Options{})
	for i := 1; i <= 25; i++ {
		feat, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		g, err := geojson.UnmarshalGeometry(feat.Geometry)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := wkb.Marshal(g.Geometry(), binary.LittleEndian)
		var equal, valid bool
		var name string
		err = pool.QueryRow(context.Background(), `SELECT ST_IsValid(ST_GeomFromWKB($1)), ST_Equals(geom, ST_GeomFromWKB($1, 4326)), name
			FROM admin1 WHERE cartodb_id = $2`, b, i).Scan(&valid, &equal, &name)
		if err != nil {
			t.Fatal(err)
		}
		var props map[string]any
		geojsonProps(t, feat.Props, &props)
		if name != props["name"] {
			t.Errorf("row %d name = %q, feature %d says %q", i, name, i, props["name"])
		}
		if valid && !equal {
			t.Errorf("row %d geometry differs from orb's decoding of feature %d", i, i)
		}
	}
}

// TestGeoNamesPostalCodes imports the 1.2 M-row CSV (gzip) and checks
// counts, types and values against the file.
func TestGeoNamesPostalCodes(t *testing.T) {
	if testing.Short() {
		t.Skip("large file")
	}
	pool := testDB(t)
	path := data(t, "points/geonames_postal_codes_117_countries.csv.gz")
	res, err := importer.Import(ctxT(t), pool, importer.Source{Path: path}, importer.Options{Table: "postal"})
	if err != nil {
		t.Fatal(err)
	}
	checkTable(t, pool, "postal", res)
	if want := onlyLayer(t, ogrInfo(t, path)); res.Rows != want.count {
		t.Errorf("imported %d rows, ogrinfo counts %d", res.Rows, want.count)
	}
	types := columnTypes(t, pool, "postal")
	for col, typ := range map[string]string{"zipcode": "text", "state_code": "text", "province_code": "text", "latitude": "double precision", "longitude": "double precision", "geom": "geometry(Point,4326)"} {
		if types[col] != typ {
			t.Errorf("column %s is %q, want %q", col, types[col], typ)
		}
	}
	// Every 50,000th row, value by value.
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cr := csv.NewReader(gunzip(t, f))
	header, _ := cr.Read()
	for row := int64(1); ; row++ {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if row%50000 != 1 {
			continue
		}
		var zip, place, state, code *string
		var lat, lon float64
		err = pool.QueryRow(context.Background(), `SELECT zipcode, place, state_code, province_code, ST_Y(geom), ST_X(geom) FROM postal WHERE cartodb_id = $1`, row).
			Scan(&zip, &place, &state, &code, &lat, &lon)
		if err != nil {
			t.Fatal(err)
		}
		for k, got := range map[int]*string{1: zip, 2: place, 4: state, 6: code} {
			want := rec[k]
			if (got == nil) != (want == "") || got != nil && *got != want {
				t.Errorf("row %d %s = %v, file has %q", row, header[k], deref(got), want)
			}
		}
		if rec[9] != "" && (!closeTo(lat, parseF(rec[9]), 1e-12) || !closeTo(lon, parseF(rec[10]), 1e-12)) {
			t.Errorf("row %d point = %v %v, file has %s %s", row, lat, lon, rec[9], rec[10])
		}
	}
}
