package tiles

import (
	"encoding/json"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/meridian-gis/meridian/internal/cachetag"
	"github.com/meridian-gis/meridian/internal/grant"
)

// extentOf decodes the extent of a Geometry stats answer.
func extentOf(t *testing.T, r resp) [4]float64 {
	t.Helper()
	if r.status != 200 {
		t.Fatalf("stats: %d %s", r.status, r.body)
	}
	var b struct {
		Attribute string `json:"attribute"`
		Type      string `json:"type"`
		Extent    struct{ Xmin, Ymin, Xmax, Ymax float64 }
	}
	if err := json.Unmarshal(r.body, &b); err != nil || b.Type != "Geometry" {
		t.Fatalf("stats body %s: %v", r.body, err)
	}
	return [4]float64{b.Extent.Xmin, b.Extent.Ymin, b.Extent.Xmax, b.Extent.Ymax}
}

// sqlExtent is the lon/lat extent computed by PostGIS.
func (e *env) sqlExtent(sql string, args ...any) [4]float64 {
	e.t.Helper()
	var b [4]float64
	err := e.db.Pool.QueryRow(e.t.Context(), "SELECT ST_XMin(x), ST_YMin(x), ST_XMax(x), ST_YMax(x) FROM (SELECT ST_Transform(ST_SetSRID(ST_Extent(geom)::geometry, ST_SRID(min(geom))), 4326) AS x FROM ("+sql+") q) s", args...).
		Scan(&b[0], &b[1], &b[2], &b[3])
	if err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
	return b
}

func nearBox(a, b [4]float64) bool {
	for i := range a {
		if math.Abs(a[i]-b[i]) > 1e-6 {
			return false
		}
	}
	return true
}

// getExtent as @carto/api-client sends it: filters and spatialDataType
// (and q, queryParameters for queries), by GET or, past 7000 characters,
// POST.
func TestStatsExtent(t *testing.T) {
	e := widgetEnv(t)
	france := map[string]any{"admin": map[string]any{"in": map[string]any{"values": []string{"France"}}}}
	want := e.sqlExtent("SELECT geom FROM admin1 WHERE admin = 'France'")
	if want[2]-want[0] < 50 { // overseas departments make it wide
		t.Fatalf("test data: extent of France %v", want)
	}

	r := e.get("/api/v3/stats/pg/public.admin1/geom?"+q("v", "3.4", "client", "deck-gl-carto", "filters", france, "spatialDataType", "geo"), bearer(e.all))
	if got := extentOf(t, r); !nearBox(got, want) {
		t.Errorf("table extent = %v, want %v", got, want)
	}
	if sk := r.header.Get(cachetag.Header); sk != "src:pg/public.admin1 conn:pg" {
		t.Errorf("Surrogate-Key = %q", sk)
	}

	whole := e.sqlExtent("SELECT geom FROM admin1")
	if got := extentOf(t, e.get("/api/v3/stats/pg/admin1/geom?filters=%7B%7D", bearer(e.all))); !nearBox(got, whole) || nearBox(whole, want) {
		t.Errorf("unfiltered extent = %v, want %v", got, whole)
	}

	// Query source, with queryParameters and filters after them.
	sql := "SELECT * FROM admin1 WHERE admin = $1"
	r = e.get("/api/v3/stats/pg/geom?"+q("filters", map[string]any{"name": map[string]any{"in": map[string]any{"values": []string{"Corse-du-Sud", "Haute-Corse"}}}},
		"spatialDataType", "geo", "q", sql, "queryParameters", []any{"France"}), bearer(e.all))
	corsica := e.sqlExtent("SELECT geom FROM admin1 WHERE admin = 'France' AND name IN ('Corse-du-Sud', 'Haute-Corse')")
	if got := extentOf(t, r); !nearBox(got, corsica) || corsica[0] < 8 || corsica[2] > 10 {
		t.Errorf("query extent = %v, want %v", got, corsica)
	}

	// POST: a query longer than the URL limit, parameters as JSON values.
	long := sql + "\n/* " + strings.Repeat("padding ", 1000) + "*/"
	body, _ := json.Marshal(map[string]any{"v": "3.4", "client": "deck-gl-carto", "filters": france, "spatialDataType": "geo", "q": long, "queryParameters": []any{"France"}})
	r = e.do(http.MethodPost, "/api/v3/stats/pg/geom", string(body), bearer(e.all), "Content-Type: application/json")
	if got := extentOf(t, r); !nearBox(got, want) {
		t.Errorf("POSTed query extent = %v, want %v", got, want)
	}

	// Another SRID comes back in lon/lat.
	if got, w := extentOf(t, e.get("/api/v3/stats/pg/places3857/geom", bearer(e.all))), e.sqlExtent("SELECT geom FROM places"); !nearBox(got, w) {
		t.Errorf("Web Mercator extent = %v, want %v", got, w)
	}

	// Nothing in scope: null bounds.
	r = e.get("/api/v3/stats/pg/admin1/geom?"+q("filters", map[string]any{"admin": map[string]any{"in": map[string]any{"values": []string{"Atlantis"}}}}), bearer(e.all))
	if r.status != 200 || !strings.Contains(string(r.body), `"extent":{"xmax":null,"xmin":null,"ymax":null,"ymin":null}`) {
		t.Errorf("empty extent: %d %s", r.status, r.body)
	}
}

// fetchMap's tilestats: GET /v3/stats/{conn}/{table}/{attribute}.
func TestStatsAttributes(t *testing.T) {
	e := widgetEnv(t)
	var body map[string]any
	get := func(path string) {
		t.Helper()
		r := e.get(path, bearer(e.all))
		if r.status != 200 {
			t.Fatalf("%s: %d %s", path, r.status, r.body)
		}
		body = r.json(t)
	}

	get("/api/v3/stats/pg/public.places/pop_max?client=deck-gl-carto&tag-mapId=m1")
	if body["type"] != "Number" || body["attribute"] != "pop_max" {
		t.Fatalf("body = %v", body)
	}
	for k, sql := range map[string]string{
		"min": "min(pop_max)::float8", "max": "max(pop_max)::float8", "avg": "avg(pop_max)::float8", "sum": "sum(pop_max)::float8", "count": "count(pop_max)",
	} {
		if w := num(e.scalar("SELECT " + sql + " FROM places")); !near(num(body[k]), w) {
			t.Errorf("%s = %v, want %v", k, body[k], w)
		}
	}
	quantiles, _ := body["quantiles"].(map[string]any)
	var q4 [5]float64
	if err := e.db.Pool.QueryRow(t.Context(), "SELECT percentile_disc(ARRAY[0, 0.25, 0.5, 0.75, 1]) WITHIN GROUP (ORDER BY pop_max::float8) FROM places").Scan(&q4); err != nil {
		t.Fatal(err)
	}
	got4, _ := quantiles["4"].([]any)
	if len(got4) != 5 {
		t.Fatalf("quantiles[4] = %v, want 5 breaks", quantiles["4"])
	}
	for i := range q4 {
		if num(got4[i]) != q4[i] {
			t.Errorf("quantiles[4] = %v, want %v", got4, q4)
			break
		}
	}
	for n := 2; n <= 20; n++ {
		if br, _ := quantiles[itoa(n)].([]any); len(br) != n+1 || num(br[0]) != num(body["min"]) || num(br[n]) != num(body["max"]) {
			t.Errorf("quantiles[%d] = %v, want %d breaks from min to max", n, br, n+1)
		}
	}

	get("/api/v3/stats/pg/places/adm0name")
	cats, _ := body["categories"].([]any)
	if body["type"] != "String" || len(cats) < 150 {
		t.Fatalf("body = %.300v", body)
	}
	first := cats[0].(map[string]any)
	var topName string
	var topN float64
	if err := e.db.Pool.QueryRow(t.Context(), "SELECT adm0name, count(*)::float8 FROM places GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1").Scan(&topName, &topN); err != nil {
		t.Fatal(err)
	}
	if first["category"] != topName || num(first["frequency"]) != topN {
		t.Errorf("first category = %v, want %s × %v", first, topName, topN)
	}
	var sum float64
	for _, c := range cats {
		sum += num(c.(map[string]any)["frequency"])
	}
	if sum != 243 {
		t.Errorf("categories count %v rows, want 243", sum)
	}

	get("/api/v3/stats/pg/places/founded")
	mn := e.scalar("SELECT min(founded) FROM places").(time.Time)
	if body["type"] != "Timestamp" || body["min"] != mn.UTC().Format("2006-01-02T15:04:05.000Z") || num(body["count"]) != 219 {
		t.Errorf("timestamp stats = %v", body)
	}

	// A query's attribute, a boolean.
	get("/api/v3/stats/pg/big?" + q("q", "SELECT *, pop_max > $1 AS big FROM places", "queryParameters", []any{5_000_000}))
	bigs := num(e.scalar("SELECT count(*) FROM places WHERE pop_max > 5000000"))
	if body["type"] != "Boolean" || !strings.Contains(mustJSON(body["categories"]), `{"category":true,"frequency":`+itoa(int(bigs))+`}`) {
		t.Errorf("boolean stats = %v, want %v true", body, bigs)
	}
}

func TestStatsErrors(t *testing.T) {
	e := widgetEnv(t)
	placesTok := e.is.token(t, []grant.API{grant.APIMaps}, "public.places")
	otherConn := e.is.tokenOn(t, "nope", []grant.API{grant.APIMaps}, "*")
	for _, tt := range []struct {
		name, path, tok string
		status          int
		code            string
	}{
		{"unknown column", "/api/v3/stats/pg/places/nope", e.all, 400, "COLUMN_NOT_FOUND"},
		{"unknown table", "/api/v3/stats/pg/nope/geom", e.all, 404, "NOT_FOUND"},
		{"no q", "/api/v3/stats/pg/geom", e.all, 400, "BAD_REQUEST"},
		{"bad filters", "/api/v3/stats/pg/places/geom?filters=%7B", e.all, 400, "BAD_REQUEST"},
		{"too deep", "/api/v3/stats/pg/places/geom/x", e.all, 404, "NOT_FOUND"},
		{"unknown connection", "/api/v3/stats/nope/places/geom", otherConn, 404, "CONNECTION_NOT_FOUND"},
		{"connection not granted", "/api/v3/stats/nope/places/geom", e.all, 403, "FORBIDDEN"},
		{"not granted", "/api/v3/stats/pg/admin1/geom", placesTok, 403, "FORBIDDEN"},
		{"query not granted", "/api/v3/stats/pg/geom?q=SELECT+*+FROM+places", placesTok, 403, "FORBIDDEN"},
		{"granted", "/api/v3/stats/pg/places/geom", placesTok, 200, ""},
		{"no token", "/api/v3/stats/pg/places/geom", "", 401, "UNAUTHORIZED"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var hdr []string
			if tt.tok != "" {
				hdr = append(hdr, bearer(tt.tok))
			}
			r := e.get(tt.path, hdr...)
			if r.status != tt.status {
				t.Fatalf("status = %d, want %d: %s", r.status, tt.status, r.body)
			}
			if tt.code != "" && r.json(t)["code"] != tt.code {
				t.Errorf("body = %s, want code %s", r.body, tt.code)
			}
		})
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }
