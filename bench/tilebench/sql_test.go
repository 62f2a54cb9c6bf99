package tilebench

import (
	"strings"
	"testing"

	"github.com/meridian-gis/meridian/internal/tile"
)

func TestLayerSQL(t *testing.T) {
	tests := []struct {
		name    string
		in      Layer
		want    string
		wantErr string
	}{
		{
			name: "admin1 as ANCHORS measured",
			in:   LayerOf(Admin1()),
			want: `SELECT ST_AsMVT(t, 'default', 4096, 'geom') FROM (SELECT ` +
				`ST_AsMVTGeom(ST_Transform("geom", 3857), ST_TileEnvelope($1, $2, $3), 4096, 64, true) AS geom, ` +
				`"name", "admin", "iso_3166_2" FROM "public"."admin1" ` +
				`WHERE "geom" && ST_Transform(ST_TileEnvelope($1, $2, $3, margin => 0.015625), 4326) LIMIT 50000) AS t`,
		},
		{
			name: "postal",
			in:   LayerOf(Postal()),
			want: `SELECT ST_AsMVT(t, 'default', 4096, 'geom') FROM (SELECT ` +
				`ST_AsMVTGeom(ST_Transform("geom", 3857), ST_TileEnvelope($1, $2, $3), 4096, 64, true) AS geom, ` +
				`"zipcode", "place" FROM "public"."postal" ` +
				`WHERE "geom" && ST_Transform(ST_TileEnvelope($1, $2, $3, margin => 0.015625), 4326) LIMIT 50000) AS t`,
		},
		{
			name: "web mercator source, no limit, other extent",
			in: Layer{Schema: "osm", Table: `Roads "x"`, Geom: "way", SRID: 3857, Extent: 512, Buffer: 8,
				Limit: -1, Name: "roads"},
			want: `SELECT ST_AsMVT(t, 'roads', 512, 'geom') FROM (SELECT ` +
				`ST_AsMVTGeom("way", ST_TileEnvelope($1, $2, $3), 512, 8, true) AS geom ` +
				`FROM "osm"."Roads ""x""" WHERE "way" && ST_TileEnvelope($1, $2, $3, margin => 0.015625)) AS t`,
		},
		{name: "no table", in: Layer{}, wantErr: "no table"},
		{name: "buffer above extent", in: Layer{Table: "t", Extent: 256, Buffer: 300}, wantErr: "buffer"},
		{name: "quote in layer name", in: Layer{Table: "t", Name: "a'b"}, wantErr: "layer name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.in.SQL()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("SQL() = %q, %v; want an error with %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("SQL() =\n%s, %v\nwant\n%s", got, err, tt.want)
			}
		})
	}
}

func TestOGRConn(t *testing.T) {
	tests := []struct {
		in, want, wantErr string
	}{
		{"postgres://postgres@127.0.0.1:5433/bench_data?sslmode=disable",
			"PG:host=127.0.0.1 dbname=bench_data port=5433 user=postgres", ""},
		{"postgresql://u:pw@127.0.0.1/d", "PG:host=127.0.0.1 dbname=d user=u password=pw", ""},
		{"postgres://u:a%20b@127.0.0.1/d", "", "unquoted"},
		{"mysql://127.0.0.1/d", "", "scheme"},
	}
	for _, tt := range tests {
		got, err := OGRConn(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("OGRConn(%q) = %q, %v; want an error with %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("OGRConn(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestPaths(t *testing.T) {
	if got, want := TilePath("local", Admin1(), tile.Coord{Z: 5, X: 16, Y: 11}),
		"/api/v3/maps/local/table/5/16/11?name=admin1&columns=name,admin,iso_3166_2&formatTiles=mvt"; got != want {
		t.Errorf("TilePath = %q, want %q", got, want)
	}
	if got, want := SourcePath("local", Postal()), "/api/v3/maps/local/table?name=postal&columns=zipcode,place"; got != want {
		t.Errorf("SourcePath = %q, want %q", got, want)
	}
	d := Dataset{Table: "my table", Columns: []string{"a&b"}}
	if got, want := SourcePath("c", d), "/api/v3/maps/c/table?name=my+table&columns=a%26b"; got != want {
		t.Errorf("SourcePath(odd names) = %q, want %q", got, want)
	}
}

func TestExpandTemplate(t *testing.T) {
	tmpl := "/api/v3/maps/local/table/{z}/{x}/{y}?k=abc&cache=12&formatTiles=mvt"
	got := ExpandTemplate(tmpl, tile.Coord{Z: 12, X: 2047, Y: 1362})
	if want := "/api/v3/maps/local/table/12/2047/1362?k=abc&cache=12&formatTiles=mvt"; got != want {
		t.Errorf("ExpandTemplate = %q, want %q", got, want)
	}
}

func TestParseCacheLookups(t *testing.T) {
	tests := []struct {
		name         string
		in           string
		hits, misses float64
		wantErr      string
	}{
		{name: "both", in: `# HELP meridian_tiles_cache_lookups_total In-process tile cache lookups by result.
# TYPE meridian_tiles_cache_lookups_total counter
meridian_tiles_cache_lookups_total{result="hit"} 12345
meridian_tiles_cache_lookups_total{result="miss"} 2038
meridian_tiles_cache_entries 2038
`, hits: 12345, misses: 2038},
		{name: "misses only", in: "meridian_tiles_cache_lookups_total{result=\"miss\"} 3e+06\n", misses: 3e6},
		{name: "absent (no lookup yet)", in: "meridian_tiles_sources 0\n", wantErr: "no meridian_tiles_cache_lookups_total"},
		{name: "bad value", in: "meridian_tiles_cache_lookups_total{result=\"hit\"} x\n", wantErr: "parsing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, m, err := parseCacheLookups([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseCacheLookups = %g, %g, %v; want an error with %q", h, m, err, tt.wantErr)
				}
				return
			}
			if err != nil || h != tt.hits || m != tt.misses {
				t.Errorf("parseCacheLookups = %g, %g, %v; want %g, %g", h, m, err, tt.hits, tt.misses)
			}
		})
	}
}

func TestLastLineAndRedact(t *testing.T) {
	if got := lastLine("note\n\nabc.def.ghi\n\n"); got != "abc.def.ghi" {
		t.Errorf("lastLine = %q, want the token", got)
	}
	got := strings.Join(redactArgs([]string{"connection", "add", "x", "--url", "postgres://u:secret@h/d"}), " ")
	if strings.Contains(got, "secret") {
		t.Errorf("redactArgs kept the URL: %q", got)
	}
}
