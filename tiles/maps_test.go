package tiles

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paulmach/orb/encoding/mvt"
	"github.com/valyala/fasthttp"

	"github.com/meridian-gis/meridian/internal/broker"
	"github.com/meridian-gis/meridian/internal/cachetag"
	"github.com/meridian-gis/meridian/internal/grant"
	"github.com/meridian-gis/meridian/internal/tile"
	"github.com/meridian-gis/meridian/tiles/internal/source"
)

func decodeTile(t testing.TB, r resp) mvt.Layers {
	t.Helper()
	body := r.body
	switch r.header.Get("Content-Encoding") {
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(zr)
	case "br":
		var err error
		if body, err = fasthttp.AppendUnbrotliBytes(nil, body); err != nil {
			t.Fatal(err)
		}
	}
	layers, err := mvt.Unmarshal(body)
	if err != nil {
		t.Fatalf("decoding tile: %v", err)
	}
	return layers
}

func hasFeature(l mvt.Layers, key string, val any) bool {
	for _, layer := range l {
		for _, f := range layer.Features {
			if f.Properties[key] == val {
				return true
			}
		}
	}
	return false
}

func TestMapsTableFlow(t *testing.T) {
	e := newEnv(t)
	tok := e.is.token(t, []grant.API{grant.APIMaps}, "public.admin1")

	// Step 1: instantiation, GET with JSON-encoded parameters.
	r := e.get("/api/v3/maps/pg/table?"+q("v", "3.4", "client", "deck-gl-carto", "name", "public.admin1",
		"spatialDataColumn", "geom", "spatialDataType", "geo", "tileResolution", "0.5",
		"columns", "name,admin,iso_3166_2"), bearer(tok))
	if r.status != 200 {
		t.Fatalf("instantiate: %d %s", r.status, r.body)
	}
	inst := r.json(t)
	schema := inst["schema"].([]any)
	if len(schema) != 4 || schema[0].(map[string]any)["type"] != "geometry" || schema[1].(map[string]any)["name"] != "name" {
		t.Errorf("schema = %v", schema)
	}
	if inst["nrows"].(float64) < 4000 {
		t.Errorf("nrows = %v", inst["nrows"])
	}
	tjURL := inst["tilejson"].(map[string]any)["url"].([]any)[0].(string)
	u, err := url.Parse(tjURL)
	if err != nil || !u.IsAbs() || u.Query().Get("k") == "" || u.Query().Get("cache") == "" || !strings.HasSuffix(u.Path, "/api/v3/maps/pg/table/tilejson") {
		t.Fatalf("tilejson.url = %q: want absolute, with k and cache", tjURL)
	}
	if sk := r.header.Get(cachetag.Header); sk != "src:pg/public.admin1 conn:pg" {
		t.Errorf("instantiation Surrogate-Key = %q", sk)
	}

	// Step 2: TileJSON.
	r = e.get(tjURL+"&v=3.4&client=deck-gl-carto", bearer(tok))
	if r.status != 200 {
		t.Fatalf("TileJSON: %d %s", r.status, r.body)
	}
	tj := r.json(t)
	for _, k := range []string{"tilejson", "tiles", "minzoom", "maxzoom", "bounds", "center", "vector_layers", "tilestats", "scheme"} {
		if _, ok := tj[k]; !ok {
			t.Errorf("TileJSON lacks %q", k)
		}
	}
	tmpl := tj["tiles"].([]any)[0].(string)
	tu, _ := url.Parse(tmpl)
	if !tu.IsAbs() || !strings.HasSuffix(tu.Path, "/{z}/{x}/{y}") || tu.Query().Get("formatTiles") != "mvt" || tu.Query().Get("geomType") != "polygons" {
		t.Errorf("tiles[0] = %q: want absolute …/{z}/{x}/{y}?…formatTiles=mvt&geomType=polygons", tmpl)
	}
	if !strings.HasPrefix(r.header.Get("Cache-Control"), "max-age=86400") {
		t.Errorf("versioned TileJSON Cache-Control = %q", r.header.Get("Cache-Control"))
	}
	vl := tj["vector_layers"].([]any)[0].(map[string]any)
	if vl["id"] != "default" || vl["fields"].(map[string]any)["name"] != "String" || vl["geometry_type"] != "Polygon" {
		t.Errorf("vector_layers = %v", vl)
	}
	ts := tj["tilestats"].(map[string]any)["layers"].([]any)[0].(map[string]any)
	if ts["geometry"] != "Polygon" || ts["attributeCount"].(float64) != 3 {
		t.Errorf("tilestats = %v", ts)
	}
	bounds := tj["bounds"].([]any)
	if bounds[0].(float64) > -170 || bounds[2].(float64) < 170 {
		t.Errorf("bounds = %v, want the world", bounds)
	}

	// Step 3: tiles.
	ny := tile.At(-74, 40.7, 4)
	tileURL := expand(tmpl, ny.Z, ny.X, ny.Y)
	r = e.get(tileURL, bearer(tok), "Accept-Encoding: gzip")
	if r.status != 200 {
		t.Fatalf("tile: %d %s", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/vnd.mapbox-vector-tile" {
		t.Errorf("Content-Type = %q", ct)
	}
	if r.header.Get("Content-Encoding") != "gzip" || r.header.Get("ETag") == "" || r.header.Get("Vary") != "Accept-Encoding" {
		t.Errorf("headers = %v", r.header)
	}
	if cc := r.header.Get("Cache-Control"); cc != "max-age=86400" {
		t.Errorf("versioned tile Cache-Control = %q", cc)
	}
	if sk := r.header.Get(cachetag.Header); sk != "src:pg/public.admin1 conn:pg" {
		t.Errorf("tile Surrogate-Key = %q", sk)
	}
	layers := decodeTile(t, r)
	if len(layers) != 1 || layers[0].Name != "default" || !hasFeature(layers, "iso_3166_2", "US-NY") {
		t.Fatalf("tile %v lacks New York", ny)
	}
	etag := r.header.Get("ETag")

	// The same tile again: from the cache, same ETag; 304 when revalidated.
	hits := e.metric("meridian_tiles_cache_lookups_total")
	r2 := e.get(tileURL, bearer(tok), "Accept-Encoding: gzip")
	if r2.header.Get("ETag") != etag || !bytes.Equal(r2.body, r.body) {
		t.Errorf("second fetch differs")
	}
	if e.metric("meridian_tiles_cache_lookups_total") <= hits {
		t.Errorf("no cache lookup counted")
	}
	r304 := e.get(tileURL, bearer(tok), "Accept-Encoding: gzip", "If-None-Match: "+etag)
	if r304.status != 304 || len(r304.body) != 0 {
		t.Errorf("If-None-Match: %d with %d bytes, want 304", r304.status, len(r304.body))
	}
	// Brotli when asked, identity when nothing is accepted.
	rbr := e.get(tileURL, bearer(tok), "Accept-Encoding: br, gzip")
	if rbr.header.Get("Content-Encoding") != "br" || !hasFeature(decodeTile(t, rbr), "iso_3166_2", "US-NY") {
		t.Errorf("brotli tile: %v", rbr.header)
	}
	rid := e.get(tileURL, bearer(tok))
	if rid.header.Get("Content-Encoding") != "" || !hasFeature(decodeTile(t, rid), "iso_3166_2", "US-NY") {
		t.Errorf("identity tile: %v", rid.header)
	}
	if rid.header.Get("ETag") == etag {
		t.Errorf("identity and gzip share ETag %s", etag)
	}
	// An old cache value: served, but not cached for long.
	old := strings.Replace(tileURL, "cache=", "cache=1", 1)
	if r := e.get(old, bearer(tok)); r.status != 200 || r.header.Get("Cache-Control") != "max-age=60" {
		t.Errorf("stale cache= tile: %d, Cache-Control %q", r.status, r.header.Get("Cache-Control"))
	}
	// An empty tile (open ocean at z6): 204.
	sea := tile.At(-30, -40, 6)
	if r := e.get(expand(tmpl, sea.Z, sea.X, sea.Y), bearer(tok)); r.status != 204 || len(r.body) != 0 {
		t.Errorf("ocean tile: %d, %d bytes; want 204", r.status, len(r.body))
	}
	// access_token works instead of the header.
	if r := e.get(tileURL + "&access_token=" + tok); r.status != 200 {
		t.Errorf("access_token tile: %d %s", r.status, r.body)
	}
	// A MapLibre-style extension is tolerated.
	ext := strings.Replace(tileURL, "/"+ny.String()+"?", "/"+ny.String()+".mvt?", 1)
	if r := e.get(ext, bearer(tok)); r.status != 200 {
		t.Errorf("tile with .mvt: %d %s", r.status, r.body)
	}
}

func TestMapsStatelessTileURL(t *testing.T) {
	e := newEnv(t)
	tok := e.is.token(t, []grant.API{grant.APIMaps}, "places")
	u := "/api/v3/maps/pg/table/0/0/0?" + q("name", "places", "columns", "name,pop_max", "formatTiles", "mvt")
	r := e.get(u, bearer(tok), "Accept-Encoding: gzip")
	if r.status != 200 {
		t.Fatalf("stateless tile: %d %s", r.status, r.body)
	}
	if !hasFeature(decodeTile(t, r), "name", "Paris") {
		t.Errorf("z0 places lacks Paris")
	}
	if cc := r.header.Get("Cache-Control"); cc != "max-age=60" {
		t.Errorf("unversioned Cache-Control = %q", cc)
	}
	// TileJSON the same way.
	r = e.get("/api/v3/maps/pg/table/tilejson?"+q("name", "places"), bearer(tok))
	if r.status != 200 || r.json(t)["tilejson"] != "3.0.0" {
		t.Errorf("stateless TileJSON: %d %s", r.status, r.body)
	}
}

func TestMapsQuerySourcePOST(t *testing.T) {
	e := newEnv(t)
	sql := "SELECT geom, name, pop_max FROM places WHERE pop_max > $1 AND name <> '" + strings.Repeat("x", 7000) + "'"
	tok := e.is.token(t, []grant.API{grant.APIMaps}, sql)
	body, _ := json.Marshal(map[string]any{"v": "3.4", "client": "deck-gl-carto", "spatialDataColumn": "geom",
		"spatialDataType": "geo", "tileResolution": "0.5", "q": sql, "queryParameters": []any{5000000}})
	r := e.do(http.MethodPost, "/api/v3/maps/pg/query", string(body), bearer(tok), "Content-Type: application/json")
	if r.status != 200 {
		t.Fatalf("POST query instantiation: %d %s", r.status, r.body)
	}
	tj := r.json(t)["tilejson"].(map[string]any)["url"].([]any)[0].(string)
	if len(tj) > 7000 {
		t.Errorf("TileJSON URL is %d chars: the key should compress the query", len(tj))
	}
	tmpl := e.tileTemplate(tj, tok)
	r = e.get(expand(tmpl, 0, 0, 0), bearer(tok), "Accept-Encoding: gzip")
	if r.status != 200 {
		t.Fatalf("query tile: %d %s", r.status, r.body)
	}
	l := decodeTile(t, r)
	if !hasFeature(l, "name", "Paris") || hasFeature(l, "name", "Rome") {
		t.Errorf("query tile has the wrong cities")
	}
	// The tables it read, the connection, and the marker that makes the
	// edge serve it from cache only to whole-connection grants.
	if sk, want := r.header.Get(cachetag.Header), "src:pg/public.places conn:pg query:pg"; sk != want {
		t.Errorf("query Surrogate-Key = %q, want %q", sk, want)
	}
	// A key carrying SQL the token does not cover is refused before the
	// SQL runs anywhere.
	evil := source.Spec{Conn: "pg", Type: source.TypeQuery, Geom: "geom", Resolution: 0.5,
		Query: "SELECT geom, pg_sleep(3)::text AS s FROM places"}
	start := time.Now()
	if r := e.get("/api/v3/maps/pg/query/0/0/0?k="+evil.Key(), bearer(tok)); r.status != 403 || time.Since(start) > 2*time.Second {
		t.Errorf("ungranted key: %d after %v, want 403 at once", r.status, time.Since(start))
	}
	// Another query text is not covered by the grant.
	body2, _ := json.Marshal(map[string]any{"q": "SELECT geom FROM admin1"})
	if r := e.do(http.MethodPost, "/api/v3/maps/pg/query", string(body2), bearer(tok), "Content-Type: application/json"); r.status != 403 {
		t.Errorf("ungranted query: %d %s, want 403", r.status, r.body)
	}
}

func TestMapsAuth(t *testing.T) {
	e := newEnv(t)
	placesTok := e.is.token(t, []grant.API{grant.APIMaps}, "public.places")
	sqlOnly := e.is.token(t, []grant.API{grant.APISQL}, "*")
	tjURL := e.instantiate("table", placesTok, "name", "places")
	tmpl := e.tileTemplate(tjURL, placesTok)
	adminTJ := e.instantiate("table", e.all, "name", "admin1")
	adminTmpl := e.tileTemplate(adminTJ, e.all)

	tests := []struct {
		name   string
		url    string
		hdr    []string
		status int
		code   string
	}{
		{"no token", expand(tmpl, 0, 0, 0), nil, 401, "UNAUTHORIZED"},
		{"Bearer undefined", expand(tmpl, 0, 0, 0), []string{"Authorization: Bearer undefined"}, 401, "UNAUTHORIZED"},
		{"garbage token", expand(tmpl, 0, 0, 0), []string{bearer("eyJ.bad.token")}, 401, "UNAUTHORIZED"},
		{"other table's key", expand(adminTmpl, 0, 0, 0), []string{bearer(placesTok)}, 403, "FORBIDDEN"},
		{"other table inline", "/api/v3/maps/pg/table/0/0/0?name=admin1", []string{bearer(placesTok)}, 403, "FORBIDDEN"},
		{"other table instantiate", "/api/v3/maps/pg/table?name=admin1", []string{bearer(placesTok)}, 403, "FORBIDDEN"},
		{"unknown table not revealed", "/api/v3/maps/pg/table?name=secret_table", []string{bearer(placesTok)}, 403, "FORBIDDEN"},
		{"API not allowed", expand(tmpl, 0, 0, 0), []string{bearer(sqlOnly)}, 403, "FORBIDDEN"},
		{"TileJSON needs a token", tjURL, nil, 401, "UNAUTHORIZED"},
		{"granted", expand(tmpl, 0, 0, 0), []string{bearer(placesTok)}, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.get(tt.url, tt.hdr...)
			if r.status != tt.status {
				t.Fatalf("status = %d, want %d: %s", r.status, tt.status, r.body)
			}
			if tt.code != "" {
				m := r.json(t)
				if m["code"] != tt.code || m["error"] == "" || m["status"].(float64) != float64(tt.status) {
					t.Errorf("error body = %s", r.body)
				}
				if r.header.Get(cachetag.Header) != "" {
					t.Errorf("error carries Surrogate-Key")
				}
			}
		})
	}
}

func TestMapsErrors(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name   string
		url    string
		status int
		code   string
	}{
		{"unknown table", "/api/v3/maps/pg/table?name=nope", 404, "NOT_FOUND"},
		{"ungranted connection", "/api/v3/maps/other/table?name=places", 403, "FORBIDDEN"},
		{"bad connection name", "/api/v3/maps/a%20b/table?name=places", 404, "CONNECTION_NOT_FOUND"},
		{"unknown column", "/api/v3/maps/pg/table?name=places&columns=name,nope", 400, "COLUMN_NOT_FOUND"},
		{"not a geometry", "/api/v3/maps/pg/table?name=places&spatialDataColumn=name", 400, "BAD_REQUEST"},
		{"bad resolution", "/api/v3/maps/pg/table?name=places&tileResolution=3", 400, "BAD_REQUEST"},
		{"bad filters", "/api/v3/maps/pg/table?name=places&filters=%7B", 400, "BAD_REQUEST"},
		{"tileset type", "/api/v3/maps/pg/tileset?name=places", 400, "BAD_REQUEST"},
		{"bad key", "/api/v3/maps/pg/table/0/0/0?k=1garbage", 400, "BAD_REQUEST"},
		{"zoom too deep", "/api/v3/maps/pg/table/25/0/0?name=places", 400, "BAD_REQUEST"},
		{"x out of range", "/api/v3/maps/pg/table/1/2/0?name=places", 400, "BAD_REQUEST"},
		{"binary tiles", "/api/v3/maps/pg/table/0/0/0?name=places&formatTiles=binary", 400, "BAD_REQUEST"},
		{"query syntax error", "/api/v3/maps/pg/query?q=SELEC+geom+FROM+places", 400, "QUERY_ERROR"},
		{"two statements", "/api/v3/maps/pg/query?q=SELECT+1%3B+SELECT+2", 400, "BAD_REQUEST"},
		{"unknown route", "/api/v3/nope", 404, "NOT_FOUND"},
	}
	other := e.is.tokenOn(t, "other", mapsSQL, "*")
	if r := e.get("/api/v3/maps/other/table?name=places", bearer(other)); r.status != 404 || r.json(t)["code"] != "CONNECTION_NOT_FOUND" {
		t.Errorf("unknown connection: %d %s", r.status, r.body)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.get(tt.url, bearer(e.all))
			if r.status != tt.status {
				t.Fatalf("status = %d, want %d: %s", r.status, tt.status, r.body)
			}
			m := r.json(t)
			if m["code"] != tt.code || m["error"] == "" {
				t.Errorf("body = %s, want code %s", r.body, tt.code)
			}
			if strings.Contains(string(r.body), "SQLSTATE") && tt.code != "QUERY_ERROR" {
				t.Errorf("PostgreSQL internals leaked: %s", r.body)
			}
		})
	}
}

func TestCORSAndHealth(t *testing.T) {
	e := newEnv(t)
	r := e.do(http.MethodOptions, "/api/v3/maps/pg/table", "", "Origin: https://app.example.com",
		"Access-Control-Request-Method: POST", "Access-Control-Request-Headers: authorization, content-type")
	if r.status != 204 || r.header.Get("Access-Control-Allow-Origin") != "*" ||
		!strings.Contains(r.header.Get("Access-Control-Allow-Headers"), "Authorization") ||
		!strings.Contains(r.header.Get("Access-Control-Allow-Methods"), "POST") {
		t.Errorf("preflight: %d %v", r.status, r.header)
	}
	r = e.get("/api/v3/maps/pg/table?name=places", "Origin: https://app.example.com", bearer(e.all))
	if r.header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("CORS on GET: %v", r.header)
	}
	if r := e.get("/healthz"); r.status != 200 {
		t.Errorf("/healthz: %d", r.status)
	}
	if r := e.get("/readyz"); r.status != 200 || r.json(t)["checks"].(map[string]any)["data_connections"] != "ok" {
		t.Errorf("/readyz: %d %s", r.status, r.body)
	}
	if r := e.get("/metrics"); r.status != 200 || !strings.Contains(string(r.body), "meridian_tiles_cache_lookups_total") {
		t.Errorf("/metrics: %d", r.status)
	}
}

// TestSingleFlight checks that concurrent requests for one uncached tile
// render it once.
func TestSingleFlight(t *testing.T) {
	e := newEnv(t)
	tmpl := e.tileTemplate(e.instantiate("table", e.all, "name", "postal", "columns", "zipcode"), e.all)
	u := expand(tmpl, 0, 0, 0)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := e.get(u, bearer(e.all)); r.status != 200 {
				t.Errorf("tile: %d %s", r.status, r.body)
			}
		}()
	}
	wg.Wait()
	if n := e.metric("meridian_tiles_render_seconds"); n != 1 {
		t.Errorf("z0 rendered %v times for 8 concurrent requests, want 1", n)
	}
}

// TestInvalidate checks that new data shows after an invalidation: the
// generation (cache=) moves and tiles are rendered again.
func TestInvalidate(t *testing.T) {
	e := newEnv(t)
	tjURL := e.instantiate("table", e.all, "name", "places", "columns", "name")
	tmpl := e.tileTemplate(tjURL, e.all)
	c := tile.At(-140, -10, 5) // open Pacific
	if r := e.get(expand(tmpl, c.Z, c.X, c.Y), bearer(e.all)); r.status != 204 {
		t.Fatalf("Pacific tile before: %d", r.status)
	}
	if _, err := e.db.Pool.Exec(context.Background(), "INSERT INTO places (name, geom) VALUES ('Null Island', ST_SetSRID(ST_MakePoint(-140, -10), 4326))"); err != nil {
		t.Fatal(err)
	}
	e.srv.Invalidate(context.Background(), cachetag.Invalidation{Tags: []string{cachetag.Source("pg", "public.places")}}, time.Now())
	tjURL2 := e.instantiate("table", e.all, "name", "places", "columns", "name")
	if tjURL2 == tjURL {
		t.Fatalf("TileJSON URL unchanged after invalidation: %s", tjURL)
	}
	tmpl2 := e.tileTemplate(tjURL2, e.all)
	r := e.get(expand(tmpl2, c.Z, c.X, c.Y), bearer(e.all))
	if r.status != 200 || !hasFeature(decodeTile(t, r), "name", "Null Island") {
		t.Errorf("null island after: %d", r.status)
	}
	// The old URL (old k, old cache=) also gets current data, briefly cached.
	r = e.get(expand(tmpl, c.Z, c.X, c.Y), bearer(e.all))
	if r.status != 200 || r.header.Get("Cache-Control") != "max-age=60" {
		t.Errorf("old URL after invalidation: %d %q", r.status, r.header.Get("Cache-Control"))
	}
}

// TestInvalidateStateless checks the same for the stateless URL form,
// whose source is remembered by its query string: an invalidation must
// drop that too.
func TestInvalidateStateless(t *testing.T) {
	e := newEnv(t)
	c := tile.At(-140, -10, 5) // open Pacific
	u := fmt.Sprintf("/api/v3/maps/pg/table/%d/%d/%d?name=places&columns=name&formatTiles=mvt", c.Z, c.X, c.Y)
	for range 2 { // the second request finds the source by its query
		if r := e.get(u, bearer(e.all)); r.status != 204 {
			t.Fatalf("Pacific tile before: %d", r.status)
		}
	}
	if _, err := e.db.Pool.Exec(context.Background(), "INSERT INTO places (name, geom) VALUES ('Null Island', ST_SetSRID(ST_MakePoint(-140, -10), 4326))"); err != nil {
		t.Fatal(err)
	}
	e.srv.Invalidate(context.Background(), cachetag.Invalidation{Tags: []string{cachetag.Source("pg", "public.places")}}, time.Now())
	r := e.get(u, bearer(e.all))
	if r.status != 200 || !hasFeature(decodeTile(t, r), "name", "Null Island") {
		t.Errorf("stateless tile after invalidation: %d, want Null Island", r.status)
	}
	// Another token without the grant is refused, even with the source
	// remembered.
	if r := e.get(u, bearer(e.is.token(t, mapsSQL, "public.admin1"))); r.status != http.StatusForbidden {
		t.Errorf("stateless tile with a token for another table: %d, want 403", r.status)
	}
}

// TestGracefulShutdown checks that a request in flight completes when the
// server is stopped.
func TestGracefulShutdown(t *testing.T) {
	e := newEnv(t)
	done := make(chan resp, 1)
	go func() {
		done <- e.get("/api/v3/sql/pg/query?"+q("q", "SELECT pg_sleep(1)::text AS s"), bearer(e.all))
	}()
	time.Sleep(300 * time.Millisecond)
	e.stop()
	e.stop = nil
	r := <-done
	if r.status != 200 {
		t.Errorf("in-flight request: %d %s", r.status, r.body)
	}
	if _, err := http.Get(e.base + "/healthz"); err == nil {
		t.Errorf("server still answers after shutdown")
	}
}

// TestDroppedFractionAndBrokerInvalidation checks fraction_dropped_per_zoom
// after a capped tile, and invalidations arriving as broker messages.
func TestDroppedFractionAndBrokerInvalidation(t *testing.T) {
	e := newEnv(t, withConfig(func(c *Config) { c.MaxPolygonFeatures = 50 }))
	tjURL := e.instantiate("table", e.all, "name", "admin1", "columns", "iso_3166_2")
	tmpl := e.tileTemplate(tjURL, e.all)
	if r := e.get(expand(tmpl, 0, 0, 0), bearer(e.all)); r.status != 200 {
		t.Fatalf("z0: %d", r.status)
	}
	tj := e.get(tjURL, bearer(e.all)).json(t)
	fr := tj["fraction_dropped_per_zoom"].([]any)
	// 50 polygons a tile: at most 50 of 4854 at z0, 200 at z1, then the
	// cap leaves the whole table (the drops come from the table, not from
	// the tiles this node happened to render).
	if len(fr) != 21 || fr[0].(float64) < 0.98 || fr[1].(float64) < 0.9 || fr[20].(float64) > 0.01 {
		t.Errorf("fraction_dropped_per_zoom = %v, want about 0.99 at z0, 0.95 at z1, 0 at z20", fr)
	}
	for z := 1; z < len(fr); z++ {
		if fr[z].(float64) > fr[z-1].(float64) {
			t.Errorf("fraction_dropped_per_zoom = %v: more dropped at z%d than at z%d", fr, z, z-1)
		}
	}

	data, _ := json.Marshal(cachetag.Invalidation{Tags: []string{cachetag.Conn("pg")}, Reason: "test"})
	if err := e.srv.HandleInvalidation(context.Background(), &broker.Message{ID: "m1", Data: data, PublishedAt: time.Now()}); err != nil {
		t.Fatalf("HandleInvalidation: %v", err)
	}
	if got := e.instantiate("table", e.all, "name", "admin1", "columns", "iso_3166_2"); got == tjURL {
		t.Errorf("TileJSON URL unchanged after a conn: invalidation")
	}
	if err := e.srv.HandleInvalidation(context.Background(), &broker.Message{ID: "m2", Data: []byte("{"), PublishedAt: time.Now()}); err != nil {
		t.Errorf("malformed message should be acked, got %v", err)
	}
}
