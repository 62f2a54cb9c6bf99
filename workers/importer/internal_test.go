package importer

import (
	"archive/zip"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/meridian-gis/meridian/workers/importer/geomenc"
)

func TestClassifyText(t *testing.T) {
	tests := []struct {
		in   string
		want kind
	}{
		{"0", kInt}, {"42", kInt}, {"-7", kInt}, {"9007199254740992", kInt}, {"9007199254740993", kInt64},
		{"9223372036854775807", kInt64}, {"9223372036854775808", kHugeInt},
		{"007", kText}, {"-0", kText}, {"+5", kText}, {"-05", kText},
		{"1.5", kFloat}, {"-0.25", kFloat}, {".5", kFloat}, {"5.", kFloat}, {"1e5", kFloat}, {"+1.5", kFloat}, {"2.5E-3", kFloat},
		{"01.5", kText}, {"1e400", kText}, {"1e-400", kText}, {"NaN", kText}, {"inf", kText}, {"0x1p3", kText}, {"1,5", kText}, {" 5", kText}, {"1.2.3", kText},
		{"true", kBool}, {"FALSE", kBool}, {"True", kBool}, {"t", kText}, {"yes", kText},
		{"2020-02-29", kDate}, {"2021-02-29", kText}, {"2020-13-01", kText}, {"0000-01-01", kText},
		{"2020-01-02T03:04", kTimestamp}, {"2020-01-02 03:04:05", kTimestamp}, {"2020-01-02T03:04:05.123456789", kTimestamp},
		{"2020-01-02T03:04:05Z", kTimestampTZ}, {"2020-01-02T03:04:05+05:30", kTimestampTZ}, {"2020-01-02 03:04:05-0800", kTimestampTZ}, {"2020-01-02T03:04:05+01", kTimestampTZ},
		{"2020-01-02T24:00", kText}, {"2020-01-02T03:04:60", kText}, {"2020-01-02X03:04", kText}, {"20200102", kInt},
		{"AD100", kText}, {"hello", kText},
	}
	for _, tt := range tests {
		if got := classifyText(tt.in); got != tt.want {
			t.Errorf("classifyText(%q) = %b, want %b", tt.in, got, tt.want)
		}
	}
}

func TestClassifyJSON(t *testing.T) {
	tests := []struct {
		in   string
		want kind
	}{
		{`1`, kInt}, {`-0`, kInt}, {`1.0`, kFloat}, {`1e3`, kFloat}, {`12345678901234567890`, kHugeInt},
		{`"12"`, kText}, {`"2020-01-02"`, kDate}, {`"2020-01-02T03:04:05Z"`, kTimestampTZ},
		{`true`, kBool}, {`false`, kBool}, {`{"a":[1,2]}`, kJSON}, {`[1,"x"]`, kJSON},
		{`{"a":"\u0000"}`, kText}, {`["\ud83d"]`, kText}, {`["\\u0000"]`, kJSON},
	}
	for _, tt := range tests {
		if got := classifyJSON([]byte(tt.in)); got != tt.want {
			t.Errorf("classifyJSON(%s) = %b, want %b", tt.in, got, tt.want)
		}
	}
}

func TestTypeOf(t *testing.T) {
	tests := []struct {
		in   kind
		want string
	}{
		{0, "text"}, {kInt, "bigint"}, {kInt | kInt64, "bigint"}, {kInt | kFloat, "double precision"},
		{kInt64 | kFloat, "numeric"}, {kHugeInt | kInt, "numeric"}, {kBool, "boolean"}, {kBool | kInt, "text"},
		{kDate, "date"}, {kDate | kTimestamp, "timestamp"}, {kTimestamp | kTimestampTZ, "timestamptz"}, {kDate | kInt, "text"},
		{kJSON, "jsonb"}, {kJSON | kInt, "text"}, {kText | kInt, "text"},
	}
	for _, tt := range tests {
		if got := typeOf(tt.in); got != tt.want {
			t.Errorf("typeOf(%b) = %q, want %q", tt.in, got, tt.want)
		}
	}
	for _, tt := range []struct {
		from, to string
		seen     kind
		want     bool
	}{
		{"bigint", "text", kInt, true}, {"bigint", "numeric", kInt64, false}, {"bigint", "double precision", kInt, true},
		{"bigint", "double precision", kInt64, false}, {"double precision", "text", kFloat, false}, {"boolean", "text", kBool, false},
	} {
		if got := losslessWiden(tt.from, tt.to, tt.seen); got != tt.want {
			t.Errorf("losslessWiden(%s, %s, %b) = %v, want %v", tt.from, tt.to, tt.seen, got, tt.want)
		}
	}
}

func TestParseTableName(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"airports", "public.airports", true},
		{"Geo.Airports", "geo.airports", true},
		{"a1_b", "public.a1_b", true},
		{"1abc", "", false},
		{"a-b", "", false},
		{"a.b.c", "", false},
		{`x"; DROP TABLE y; --`, "", false},
		{"_mi_x", "", false},
		{"pg_catalog.x", "", false},
		{strings.Repeat("a", 64), "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		got, err := parseTableName(tt.in)
		if (err == nil) != tt.ok || tt.ok && got.String() != tt.want {
			t.Errorf("parseTableName(%q) = %v, %v; want %q ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("parseTableName(%q) error %v does not wrap ErrInvalidOptions", tt.in, err)
		}
	}
}

func TestLaunder(t *testing.T) {
	l := newLaunderer("cartodb_id", "geom")
	tests := []struct{ in, want string }{
		{"Name", "name"}, {"NAME", "name_2"}, {"pop max", "pop_max"}, {"Città", "città"}, {"%%", "column_5"},
		{"geom", "geom_2"}, {"cartodb_id", "cartodb_id_2"}, {"_private", "_private"}, {"a--b", "a_b"},
		{strings.Repeat("x", 70), strings.Repeat("x", 63)}, {strings.Repeat("x", 70), strings.Repeat("x", 61) + "_2"},
	}
	for i, tt := range tests {
		if got := l.name(tt.in, i); got != tt.want {
			t.Errorf("name(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestDetectFormat(t *testing.T) {
	tests := []struct {
		name, head string
		want       string
		wantErr    error
	}{
		{"a.geojson", `{"type":"FeatureCollection"`, FormatGeoJSON, nil},
		{"a.json", ` {"type":"Topology","objects":{}}`, FormatTopoJSON, nil},
		{"a.ndjson", `{"type":"Feature"}` + "\n", FormatGeoJSONSeq, nil},
		{"noext", "\x1e{\"type\":\"Feature\"}", FormatGeoJSONSeq, nil},
		{"a.txt", "name,lat,lon\n", FormatCSV, nil},
		{"upload", "name;lat;lon\n", FormatCSV, nil},
		{"x.zip", "PK\x03\x04....", formatZip, nil},
		{"x.kmz", "PK\x03\x04....", FormatKMZ, nil},
		{"x.bin", "SQLite format 3\x00...", FormatGPKG, nil},
		{"x", "fgb\x03fgb\x00", FormatFGB, nil},
		{"x.xml", `<?xml version="1.0"?><kml xmlns="http://www.opengis.net/kml/2.2">`, FormatKML, nil},
		{"x.xml", `<?xml version="1.0"?><gpx version="1.1">`, FormatGPX, nil},
		{"x.gml", `<?xml version="1.0"?><ogr:FeatureCollection xmlns:gml="http://www.opengis.net/gml">`, FormatGML, nil},
		{"x.gml", `<OGRVRTDataSource><OGRVRTLayer name="gml">`, "", ErrUnsupportedFormat},
		{"x.xml", `<html>`, "", ErrUnsupportedFormat},
		{"x.shp", "\x00\x00\x27\x0a....", "", ErrUnsupportedFormat},
		{"x.dat", "\x00\x01\x02", "", ErrUnsupportedFormat},
	}
	for _, tt := range tests {
		got, err := detectFormat(tt.name, []byte(tt.head), false)
		if got != tt.want || !errors.Is(err, tt.wantErr) && !(err == nil && tt.wantErr == nil) {
			t.Errorf("detectFormat(%q, %q) = %q, %v; want %q, %v", tt.name, tt.head, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestSafeEntryPath(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
		want string
	}{
		{"a.shp", true, "a.shp"}, {"dir/a.shp", true, "dir/a.shp"}, {"./dir//a.shp", true, "dir/a.shp"},
		{"../evil.shp", false, ""}, {"dir/../../evil", false, ""}, {`..\evil.shp`, false, ""}, {"/etc/passwd", false, ""},
		{`C:\evil`, false, ""}, {"a\x00b", false, ""},
	}
	for _, tt := range tests {
		got, err := safeEntryPath(&zip.File{FileHeader: zip.FileHeader{Name: tt.name}})
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("safeEntryPath(%q) = %q, %v; want %q ok=%v", tt.name, got, err, tt.want, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrUnsafePath) {
			t.Errorf("safeEntryPath(%q) error %v is not ErrUnsafePath", tt.name, err)
		}
	}
}

func TestDecideGeometry(t *testing.T) {
	k := func(t geomenc.Type) geomKey { return geomKey{t: t} }
	tests := []struct {
		name     string
		stats    map[geomKey]int64
		want     string
		multi    bool
		warns    int
		force2   bool
		declared geomenc.Type
	}{
		{"points", map[geomKey]int64{k(geomenc.Point): 5}, "Point", false, 0, false, 0},
		{"polygons and multipolygons", map[geomKey]int64{k(geomenc.Polygon): 5, k(geomenc.MultiPolygon): 1}, "MultiPolygon", true, 0, false, 0},
		{"lines and multilines", map[geomKey]int64{k(geomenc.LineString): 5, k(geomenc.MultiLineString): 1}, "MultiLineString", true, 0, false, 0},
		{"points and lines", map[geomKey]int64{k(geomenc.Point): 5, k(geomenc.LineString): 1}, "Geometry", false, 1, false, 0},
		{"collections", map[geomKey]int64{k(geomenc.GeometryCollection): 5}, "Geometry", false, 1, false, 0},
		{"3D points", map[geomKey]int64{{t: geomenc.Point, z: true}: 5}, "PointZ", false, 0, false, 0},
		{"mixed dims", map[geomKey]int64{{t: geomenc.Point, z: true}: 5, k(geomenc.Point): 1}, "Point", false, 1, true, 0},
		{"none", map[geomKey]int64{}, "Geometry", false, 1, false, 0},
		{"declared multi", map[geomKey]int64{k(geomenc.Polygon): 5}, "MultiPolygon", true, 0, false, geomenc.MultiPolygon},
		{"declared multi, other family", map[geomKey]int64{k(geomenc.Point): 5}, "Point", false, 0, false, geomenc.MultiPolygon},
	}
	for _, tt := range tests {
		d := decideGeometry(tt.stats, tt.declared)
		if d.name != tt.want || d.multi != tt.multi || len(d.warnings) != tt.warns || d.force2D != tt.force2 {
			t.Errorf("%s: decideGeometry = %+v, want %s multi=%v warnings=%d force2D=%v", tt.name, d, tt.want, tt.multi, tt.warns, tt.force2)
		}
	}
}

func TestGDALConnHidesPassword(t *testing.T) {
	// (pgconn would read the CA file; the config and the string differ
	// only by it.)
	cfg, err := pgconn.ParseConfig("postgres://bob:s3cr%27et@db.example:5433/geo?sslmode=require")
	if err != nil {
		t.Fatal(err)
	}
	conn, env, err := gdalConn(*cfg, "postgres://bob:s3cr%27et@db.example:5433/geo?sslmode=verify-full&sslrootcert=/etc/ca.pem")
	if err != nil {
		t.Fatal(err)
	}
	want := "PG:host='db.example' port='5433' dbname='geo' user='bob' sslmode='verify-full' sslrootcert='/etc/ca.pem' application_name='meridian-import'"
	if conn != want {
		t.Errorf("gdalConn = %s\nwant %s", conn, want)
	}
	if strings.Contains(conn, "s3cr") {
		t.Errorf("connection string %q holds the password", conn)
	}
	if len(env) != 1 || env[0] != "PGPASSWORD=s3cr'et" {
		t.Errorf("env = %q, want the password in PGPASSWORD", env)
	}
	if got := redact("FATAL: password s3cr'et rejected", env); strings.Contains(got, "s3cr") {
		t.Errorf("redact left the password: %q", got)
	}
}

func TestParseOGRInfo(t *testing.T) {
	out := `INFO: Open of ` + "`x'" + `
      using driver ` + "`GPKG'" + ` successful.

Layer name: roads
Geometry: 3D Multi Line String
Feature Count: 3561
Extent: (1.0, 2.0) - (3.0, 4.0)
Layer SRS WKT:
GEOGCRS["WGS 84",
    CS[ellipsoidal,2],
        AXIS["geodetic latitude (Lat)",north,
            ANGLEUNIT["degree",0.0174532925199433]],
    ID["EPSG",4326]]
Data axis to CRS axis mapping: 2,1
FID Column = fid
Geometry Column = geom
osm_id: Real (0.0)
Name Here: String (80.0)
tags: StringList (0.0)
Layer name: empty
Geometry: Point
Feature Count: 0
Layer SRS WKT:
(unknown)
`
	ls := parseOGRInfo(out)
	if len(ls) != 2 {
		t.Fatalf("got %d layers, want 2", len(ls))
	}
	if l := ls[0]; l.Name != "roads" || l.Features != 3561 || !l.is3D || l.epsg != 4326 || l.noSRS || strings.Join(l.fields, "|") != "osm_id|Name Here|tags" {
		t.Errorf("layer 0 = %+v", l)
	}
	if l := ls[1]; l.Name != "empty" || l.Features != 0 || !l.noSRS {
		t.Errorf("layer 1 = %+v", l)
	}
}
