package csvsniff_test

import (
	"testing"

	"github.com/meridian-gis/meridian/workers/importer/csvsniff"
)

func TestSniff(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want rune
	}{
		{"comma", "a,b,c\n1,2,3\n4,5,6\n", ','},
		{"semicolon with decimal commas", "name;lat;lon\nA;41,9;12,4\nB;43,9;12,4\n", ';'},
		{"tab", "name\tlat\tlon\nA\t41.9\t12.4\n", '\t'},
		{"pipe", "a|b\n1|2\n", '|'},
		{"quoted delimiters", "\"a,b\";c\n\"1,2\";3\n\"4,5\";6\n", ';'},
		{"cut last line", "a,b\n1,2\n3,", ','},
		{"one column", "wkt\nPOINT(1 2)\n", ','},
	}
	for _, tt := range tests {
		if got := csvsniff.Sniff([]byte(tt.in)); got != tt.want {
			t.Errorf("%s: Sniff = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestDetect(t *testing.T) {
	tests := []struct {
		name   string
		header []string
		rows   [][]string
		want   csvsniff.Geometry
	}{
		{"latitude/longitude", []string{"name", "latitude", "longitude"}, [][]string{{"a", "41.9", "12.4"}}, csvsniff.Geometry{Kind: csvsniff.LatLon, Lat: 1, Lon: 2}},
		{"lng/lat, case and spaces", []string{"LNG ", " Lat", "id"}, [][]string{{"12.4", "41.9", "1"}}, csvsniff.Geometry{Kind: csvsniff.LatLon, Lat: 1, Lon: 0}},
		{"x/y", []string{"id", "x", "y"}, [][]string{{"1", "500000", "4649776"}}, csvsniff.Geometry{Kind: csvsniff.LatLon, Lat: 2, Lon: 1}},
		{"wkt named", []string{"WKT", "name"}, [][]string{{"MULTIPOLYGON (((0 0,1 0,1 1,0 0)))", "a"}}, csvsniff.Geometry{Kind: csvsniff.Column, Column: 0}},
		{"wkt beats lat/lon", []string{"lat", "lon", "the_geom"}, [][]string{{"1", "2", "SRID=4326;POINT(2 1)"}}, csvsniff.Geometry{Kind: csvsniff.Column, Column: 2}},
		{"wkb hex by shape", []string{"id", "g"}, [][]string{{"1", "0101000000000000000000F03F0000000000000040"}}, csvsniff.Geometry{Kind: csvsniff.Column, Column: 1}},
		{"geojson by shape", []string{"id", "shape_json"}, [][]string{{"1", `{"type":"Point","coordinates":[1,2]}`}}, csvsniff.Geometry{Kind: csvsniff.Column, Column: 1}},
		{"lat not numeric", []string{"lat", "lon"}, [][]string{{"north", "east"}}, csvsniff.Geometry{}},
		{"no geometry", []string{"a", "b"}, [][]string{{"1", "2"}}, csvsniff.Geometry{}},
		{"empty geometry values skipped", []string{"lat", "lon"}, [][]string{{"", ""}, {"1", "2"}}, csvsniff.Geometry{Kind: csvsniff.LatLon, Lat: 0, Lon: 1}},
	}
	for _, tt := range tests {
		if got := csvsniff.Detect(tt.header, tt.rows); got != tt.want {
			t.Errorf("%s: Detect = %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

func TestEncoding(t *testing.T) {
	tests := []struct {
		in   string
		want csvsniff.Enc
	}{
		{"POINT(1 2)", csvsniff.WKT},
		{"  multipolygon Z EMPTY", csvsniff.WKT},
		{"SRID=3857;LINESTRING(0 0,1 1)", csvsniff.WKT},
		{"0101000000000000000000F03F0000000000000040", csvsniff.WKBHex},
		{`{"type":"Point","coordinates":[1,2]}`, csvsniff.GeoJSON},
		{"POINTLESS", csvsniff.Unknown},
		{"01", csvsniff.Unknown},
		{`{"a":1}`, csvsniff.Unknown},
	}
	for _, tt := range tests {
		if got := csvsniff.Encoding(tt.in); got != tt.want {
			t.Errorf("Encoding(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
