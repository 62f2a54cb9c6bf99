package tiles

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/meridian-gis/meridian/internal/config"
	"github.com/meridian-gis/meridian/internal/grant"
)

func TestSQLJSON(t *testing.T) {
	e := newEnv(t)
	sql := "SELECT name, pop_max, pop_max > 5000000 AS big, geom FROM places WHERE iso_a2 = $1 ORDER BY pop_max DESC"
	r := e.get("/api/v3/sql/pg/query?"+q("q", sql, "queryParameters", []any{"FR"}, "v", "3.4"), bearer(e.all))
	if r.status != 200 {
		t.Fatalf("SQL: %d %s", r.status, r.body)
	}
	var body struct {
		Rows   []map[string]any `json:"rows"`
		Schema []struct{ Name, Type string }
		Meta   map[string]any `json:"meta"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatal(err)
	}
	if len(body.Rows) != 1 || body.Rows[0]["name"] != "Paris" || body.Rows[0]["big"] != true {
		t.Fatalf("rows = %v", body.Rows)
	}
	if !bytes.Contains(r.body, []byte(`{"name":"Paris","pop_max":`)) {
		t.Errorf("columns not in query order: %s", r.body)
	}
	g, ok := body.Rows[0]["geom"].(string)
	if !ok || !strings.Contains(g, `"type":"Point"`) {
		t.Errorf("geom = %#v, want a GeoJSON string", body.Rows[0]["geom"])
	}
	want := []string{"name:string", "pop_max:number", "big:boolean", "geom:geometry"}
	for i, w := range want {
		if got := body.Schema[i].Name + ":" + body.Schema[i].Type; got != w {
			t.Errorf("schema[%d] = %s, want %s", i, got, w)
		}
	}
	// Integers JavaScript cannot hold exactly (quadbin ids) come as
	// decimal strings; smaller ones stay numbers.
	sql = "SELECT 5256684166837174271::bigint AS cell, 9007199254740991::bigint AS safe, -9007199254740993::bigint AS neg"
	for _, format := range []string{"json", "ndjson"} {
		r := e.get("/api/v3/sql/pg/query?"+q("q", sql, "format", format), bearer(e.all))
		if want := `{"cell":"5256684166837174271","safe":9007199254740991,"neg":"-9007199254740993"}`; r.status != 200 || !bytes.Contains(r.body, []byte(want)) {
			t.Errorf("%s big integers: %d %s, want %s", format, r.status, r.body, want)
		}
	}
	// Times keep their microseconds.
	r = e.get("/api/v3/sql/pg/query?"+q("q", "SELECT '2024-01-02 03:04:05.123456+00'::timestamptz AS t"), bearer(e.all))
	var ts struct{ Rows []struct{ T string } }
	if err := json.Unmarshal(r.body, &ts); err != nil || len(ts.Rows) != 1 {
		t.Fatalf("time: %d %s (%v)", r.status, r.body, err)
	}
	if got, err := time.Parse(time.RFC3339Nano, ts.Rows[0].T); err != nil || !got.Equal(time.Date(2024, 1, 2, 3, 4, 5, 123456000, time.UTC)) {
		t.Errorf("time = %q (%v), want 2024-01-02T03:04:05.123456Z", ts.Rows[0].T, err)
	}
	if body.Meta["totalBytesProcessed"] != "0" || r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("meta = %v, Cache-Control %q", body.Meta, r.header.Get("Cache-Control"))
	}
}

func TestSQLPostForms(t *testing.T) {
	e := newEnv(t)
	// JSON body.
	b, _ := json.Marshal(map[string]any{"q": "SELECT $1::int + 1 AS n", "queryParameters": []any{41}})
	r := e.do(http.MethodPost, "/api/v3/sql/pg/query", string(b), bearer(e.all), "Content-Type: application/json")
	if r.status != 200 || !bytes.Contains(r.body, []byte(`"rows":[{"n":42}]`)) {
		t.Errorf("JSON POST: %d %s", r.status, r.body)
	}
	// Form body, as the QGIS plugin posts it.
	form := url.Values{"q": {"-- 1234\nSELECT 'x' AS s"}}.Encode()
	r = e.do(http.MethodPost, "/api/v3/sql/pg/query", form, bearer(e.all), "Content-Type: application/x-www-form-urlencoded")
	if r.status != 200 || !bytes.Contains(r.body, []byte(`"rows":[{"s":"x"}]`)) {
		t.Errorf("form POST: %d %s", r.status, r.body)
	}
}

func TestSQLStreams(t *testing.T) {
	e := newEnv(t)
	sql := "SELECT id, zipcode, place, geom FROM postal WHERE country_code = 'LU' ORDER BY id"
	var n int
	e.db.Pool.QueryRow(t.Context(), "SELECT count(*) FROM postal WHERE country_code = 'LU'").Scan(&n)

	r := e.get("/api/v3/sql/pg/query?"+q("q", sql, "format", "ndjson"), bearer(e.all))
	if r.status != 200 || r.header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("ndjson: %d %v", r.status, r.header)
	}
	lines := 0
	sc := bufio.NewScanner(bytes.NewReader(r.body))
	for sc.Scan() {
		var row map[string]any
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			t.Fatalf("ndjson line %d: %v", lines, err)
		}
		if _, ok := row["geom"].(map[string]any); !ok {
			t.Fatalf("ndjson geom = %#v, want a GeoJSON object", row["geom"])
		}
		lines++
	}
	if lines != n || n < 100 {
		t.Errorf("ndjson has %d lines, want %d", lines, n)
	}

	r = e.get("/api/v3/sql/pg/query?"+q("q", sql, "format", "csv", "filename", "lu.csv"), bearer(e.all))
	recs, err := csv.NewReader(bytes.NewReader(r.body)).ReadAll()
	if err != nil || len(recs) != n+1 || strings.Join(recs[0], ",") != "id,zipcode,place,geom" || !strings.HasPrefix(recs[1][3], "POINT(") {
		t.Errorf("csv: %v, %d records, first %v", err, len(recs), recs[:min(2, len(recs))])
	}
	if cd := r.header.Get("Content-Disposition"); cd != `attachment; filename="lu.csv"` {
		t.Errorf("Content-Disposition = %q", cd)
	}

	r = e.get("/api/v3/sql/pg/query?"+q("q", sql, "format", "geojson"), bearer(e.all))
	var fc struct {
		Type     string `json:"type"`
		Features []struct {
			Geometry   map[string]any `json:"geometry"`
			Properties map[string]any `json:"properties"`
		} `json:"features"`
	}
	if err := json.Unmarshal(r.body, &fc); err != nil || fc.Type != "FeatureCollection" || len(fc.Features) != n {
		t.Fatalf("geojson: %v, %d features", err, len(fc.Features))
	}
	if fc.Features[0].Geometry["type"] != "Point" || fc.Features[0].Properties["zipcode"] == nil || fc.Features[0].Properties["geom"] != nil {
		t.Errorf("feature = %+v", fc.Features[0])
	}
}

func TestSQLErrors(t *testing.T) {
	e := newEnv(t, withConfig(func(c *Config) {
		c.SQLTimeout = config.Duration(500 * time.Millisecond)
		c.SQLMaxRows = 10
	}))
	sqlTok := e.is.token(t, []grant.API{grant.APISQL}, "SELECT 1 AS one")
	mapsTok := e.is.token(t, []grant.API{grant.APIMaps}, "*")
	tests := []struct {
		name   string
		q      string
		tok    string
		status int
		code   string
	}{
		{"syntax error", "SELEC 1", e.all, 400, "QUERY_ERROR"},
		{"unknown table", "SELECT * FROM nope", e.all, 400, "QUERY_ERROR"},
		{"write refused", "DELETE FROM places", e.all, 400, "QUERY_ERROR"},
		{"create refused", "CREATE TABLE x (a int)", e.all, 400, "QUERY_ERROR"},
		{"two statements", "SELECT 1; DROP TABLE places", e.all, 400, "BAD_REQUEST"},
		{"missing parameter", "SELECT $1", e.all, 400, "BAD_REQUEST"},
		{"timeout", "SELECT pg_sleep(3)", e.all, 504, "TIMEOUT"},
		{"too many rows", "SELECT * FROM generate_series(1, 11)", e.all, 400, "TOO_MANY_ROWS"},
		{"exact query grant", "SELECT  1 AS one;", sqlTok, 200, ""},
		{"other query", "SELECT 2 AS two", sqlTok, 403, "FORBIDDEN"},
		{"maps token", "SELECT 1 AS one", mapsTok, 403, "FORBIDDEN"},
		{"no token", "SELECT 1", "", 401, "UNAUTHORIZED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hdr []string
			if tt.tok != "" {
				hdr = append(hdr, bearer(tt.tok))
			}
			r := e.get("/api/v3/sql/pg/query?"+q("q", tt.q), hdr...)
			if r.status != tt.status {
				t.Fatalf("status = %d, want %d: %s", r.status, tt.status, r.body)
			}
			if tt.code != "" && r.json(t)["code"] != tt.code {
				t.Errorf("body = %s, want code %s", r.body, tt.code)
			}
		})
	}
	var n int
	e.db.Pool.QueryRow(t.Context(), "SELECT count(*) FROM places").Scan(&n)
	if n != 243 {
		t.Errorf("places has %d rows, want 243", n)
	}
	// The streamed formats are not capped.
	r := e.get("/api/v3/sql/pg/query?"+q("q", "SELECT * FROM generate_series(1, 50) g", "format", "ndjson"), bearer(e.all))
	if r.status != 200 || bytes.Count(r.body, []byte("\n")) != 50 {
		t.Errorf("ndjson over the cap: %d, %d lines", r.status, bytes.Count(r.body, []byte("\n")))
	}
}

// TestNamedQueryParameters: an object of queryParameters binds :name and
// @name placeholders on the SQL API and on query sources (tiles and
// widgets), and grants name the query as written.
func TestNamedQueryParameters(t *testing.T) {
	e := newEnv(t)
	b, _ := json.Marshal(map[string]any{"q": "SELECT :n::int + 1 AS n, @s::text AS s, 'x::y' AS lit", "queryParameters": map[string]any{"n": 41, "s": "a"}})
	r := e.do(http.MethodPost, "/api/v3/sql/pg/query", string(b), bearer(e.all), "Content-Type: application/json")
	if r.status != 200 || !bytes.Contains(r.body, []byte(`"rows":[{"n":42,"s":"a","lit":"x::y"}]`)) {
		t.Errorf("named SQL: %d %s", r.status, r.body)
	}
	// A $n placeholder with an object, and a value that is no scalar.
	for _, c := range []map[string]any{
		{"q": "SELECT $1::int AS n", "queryParameters": map[string]any{"n": 1}},
		{"q": "SELECT :n AS n", "queryParameters": map[string]any{"n": []int{1}}},
	} {
		b, _ := json.Marshal(c)
		r := e.do(http.MethodPost, "/api/v3/sql/pg/query", string(b), bearer(e.all), "Content-Type: application/json")
		if r.status != 400 || !bytes.Contains(r.body, []byte("queryParameters")) {
			t.Errorf("%v: %d %s", c, r.status, r.body)
		}
	}
	// A map source whose token grants exactly the query as written.
	sql := "SELECT geom, name, pop_max FROM places WHERE pop_max > :min AND iso_a2 = @cc"
	tok := e.is.token(t, []grant.API{grant.APIMaps}, sql)
	body, _ := json.Marshal(map[string]any{"v": "3.4", "client": "deck-gl-carto", "spatialDataColumn": "geom",
		"spatialDataType": "geo", "q": sql, "queryParameters": map[string]any{"min": 1000000, "cc": "FR"}})
	r = e.do(http.MethodPost, "/api/v3/maps/pg/query", string(body), bearer(tok), "Content-Type: application/json")
	if r.status != 200 {
		t.Fatalf("named query instantiation: %d %s", r.status, r.body)
	}
	tj := r.json(t)["tilejson"].(map[string]any)["url"].([]any)[0].(string)
	l := decodeTile(t, e.get(expand(e.tileTemplate(tj, tok), 0, 0, 0), bearer(tok), "Accept-Encoding: gzip"))
	if !hasFeature(l, "name", "Paris") || hasFeature(l, "name", "Rome") {
		t.Errorf("named query tile has the wrong cities")
	}
	// A widget on it counts the same rows as SQL.
	var want int
	e.db.Pool.QueryRow(t.Context(), "SELECT count(*) FROM places WHERE pop_max > 1000000 AND iso_a2 = 'FR'").Scan(&want)
	r = e.get("/api/v3/sql/pg/model/formula?"+q("type", "query", "client", "deck-gl-carto", "source", sql,
		"queryParameters", map[string]any{"min": 1000000, "cc": "FR"}, "params", map[string]any{"column": "*", "operation": "count"}, "spatialDataType", "geo", "spatialDataColumn", "geom"), bearer(tok))
	if r.status != 200 || !bytes.Contains(r.body, []byte(fmt.Sprintf(`"value":%d`, want))) {
		t.Errorf("formula on a named query: %d %s (want %d)", r.status, r.body, want)
	}
}
