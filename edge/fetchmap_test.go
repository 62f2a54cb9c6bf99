package main

// Published maps through `meridian up`, read by the real @carto/api-client
// fetchMap (compat/fetchmap.mjs) as a developer's deck.gl app reads them:
// table, query, h3 and quadbin datasets, styled layers, the offline
// basemap, tiles fetched with the map token; the edge caching public map
// documents and dropping them on publish and unpublish; a private map's
// document and tiles refused to others, also on a cache HIT.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/meridian-gis/meridian/internal/grant"
)

// session is a signed-in browser-like client of the edge.
type session struct {
	base   string
	cookie string
}

func (s *session) do(t *testing.T, method, path string, body any) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if s.cookie != "" {
		req.Header.Set("Cookie", s.cookie)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	for _, c := range res.Cookies() {
		if c.Name == "meridian_session" && c.Value != "" {
			s.cookie = c.Name + "=" + c.Value
		}
	}
	return res.StatusCode, res.Header, raw
}

// must sends a request and fails t unless the status is want; it decodes
// a JSON answer.
func (s *session) must(t *testing.T, want int, method, path string, body any) map[string]any {
	t.Helper()
	status, _, raw := s.do(t, method, path, body)
	if status != want {
		t.Fatalf("%s %s: %d, want %d: %s", method, path, status, want, raw)
	}
	var out map[string]any
	json.Unmarshal(raw, &out)
	return out
}

// keplerLayer is one layer of a map config; color, when set, is a
// visualChannels colorField {name, type} styled with scale.
func keplerLayer(id, typ, dataID string, color map[string]any, scale string) map[string]any {
	vc := map[string]any{}
	if color != nil {
		vc["colorField"], vc["colorScale"] = color, scale
	}
	return map[string]any{"id": id, "type": typ, "visualChannels": vc, "config": map[string]any{
		"dataId": dataID, "label": id, "isVisible": true,
		"color": []int{18, 147, 154},
		"visConfig": map[string]any{"opacity": 0.8, "filled": true, "stroked": true, "thickness": 0.5, "strokeColor": []int{40, 40, 40},
			"colorRange": map[string]any{"name": "Sunset", "type": "sequential", "category": "CARTO",
				"colors": []string{"#f3e79b", "#fac484", "#f8a07e", "#eb7f86", "#ce6693", "#a059a0", "#5c53a5"}}},
	}}
}

func keplerConfig(lat, lon, zoom float64, layers ...map[string]any) map[string]any {
	ls := []any{}
	for _, l := range layers {
		ls = append(ls, l)
	}
	return map[string]any{"version": "v1", "config": map[string]any{
		"filters":  map[string]any{},
		"mapState": map[string]any{"latitude": lat, "longitude": lon, "zoom": zoom, "pitch": 0, "bearing": 0},
		"mapStyle": map[string]any{"styleType": "custom:meridian-light"},
		"customBaseMaps": map[string]any{"customStyle": map[string]any{"id": "meridian-light", "url": "/basemap/styles/meridian-light.json",
			"customAttribution": "Natural Earth"}},
		"visState": map[string]any{"layers": ls, "layerBlending": "normal",
			"interactionConfig": map[string]any{"tooltip": map[string]any{"enabled": true, "fieldsToShow": map[string]any{}}}},
		"popupSettings":  map[string]any{"layers": map[string]any{}},
		"legendSettings": map[string]any{"layers": map[string]any{}},
		"widgets":        []any{},
		"sqlParameters":  []any{},
	}}
}

// loadH3Table creates public.cells_h3 (h3 text, val float8): the 343
// resolution-8 descendants of one resolution-5 cell over San Francisco.
func loadH3Table(t *testing.T, u *upServer) (parent string) {
	t.Helper()
	parent = "85283083fffffff"
	p, err := strconv.ParseUint(parent, 16, 64)
	if err != nil {
		t.Fatal(err)
	}
	var rows [][]any
	for d := 0; d < 343; d++ {
		c := p&^(0xf<<52) | 8<<52
		c &^= 0x1ff << (3 * (15 - 8))
		c |= uint64(d/49)<<(3*(15-6)) | uint64(d/7%7)<<(3*(15-7)) | uint64(d%7)<<(3*(15-8))
		rows = append(rows, []any{strconv.FormatUint(c, 16), float64(d%11) + 0.5})
	}
	ctx := context.Background()
	if _, err := u.data.Pool.Exec(ctx, `CREATE TABLE public.cells_h3 (h3 text NOT NULL, val float8)`); err != nil {
		t.Fatal(err)
	}
	if _, err := u.data.Pool.CopyFrom(ctx, pgx.Identifier{"public", "cells_h3"}, []string{"h3", "val"}, pgx.CopyFromRows(rows)); err != nil {
		t.Fatal(err)
	}
	return parent
}

// fetchMapReport is what compat/fetchmap.mjs prints.
type fetchMapReport struct {
	Maps map[string]struct {
		OK    bool `json:"ok"`
		Error *struct {
			Message string `json:"message"`
			Status  int    `json:"status"`
		} `json:"error"`
		Title            string         `json:"title"`
		TokenSet         bool           `json:"tokenSet"`
		InitialViewState map[string]any `json:"initialViewState"`
		Basemap          *struct {
			Type  string `json:"type"`
			Style string `json:"style"`
		} `json:"basemap"`
		Layers []*struct {
			Type                string   `json:"type"`
			ID                  string   `json:"id"`
			Pickable            bool     `json:"pickable"`
			Tiles0              string   `json:"tiles0"`
			AccessTokenIsMap    bool     `json:"accessTokenIsMapToken"`
			FillColor           string   `json:"fillColor"`
			FillScale           *string  `json:"fillScale"`
			FillDomain          []any    `json:"fillDomain"`
			TilestatsAttributes []string `json:"tilestatsAttributes"`
			Tile                *struct {
				Status   int      `json:"status"`
				Features int      `json:"features"`
				Cells    int      `json:"cells"`
				Keys     []string `json:"keys"`
				Body     string   `json:"body"`
			} `json:"tile"`
		} `json:"layers"`
	} `json:"maps"`
	Requests []struct {
		Method, Path, Host string
		Status             int
	} `json:"requests"`
}

func TestFetchMapCompat(t *testing.T) {
	needTool(t, "node")
	u := startUp(t)
	dir := compatDir(t)
	qbRows, _ := loadQuadbinTable(t, u)
	h3Parent := loadH3Table(t, u)
	if qbRows == 0 {
		t.Fatal("no quadbin rows")
	}

	// The first account of a fresh install is its admin.
	admin := &session{base: u.base}
	admin.must(t, 201, "POST", "/accounts-api/signup", map[string]any{"email": "admin@example.test", "password": "correct horse battery", "name": "Admin"})
	if admin.cookie == "" {
		t.Fatal("no session cookie after sign-up")
	}

	const africa = "SELECT cartodb_id, name, continent, pop_est, geom FROM public.countries WHERE continent = 'Africa'"
	mk := func(title string, datasets []any, cfg map[string]any) string {
		m := admin.must(t, 201, "POST", "/workspace-api/maps", map[string]any{"title": title, "datasets": datasets, "keplerMapConfig": cfg})
		return m["id"].(string)
	}
	vector := mk("World", []any{
		map[string]any{"id": "countries", "type": "table", "source": "public.countries", "connectionName": "local", "geoColumn": "geom",
			"columns": []string{"name", "pop_est", "continent"}},
		map[string]any{"id": "africa", "type": "query", "source": africa, "connectionName": "local", "geoColumn": "geom",
			"columns": []string{"name", "continent"}},
	}, keplerConfig(10, 15, 1.5,
		keplerLayer("by-pop", "mvt", "countries", map[string]any{"name": "pop_est", "type": "real"}, "quantile"),
		keplerLayer("by-continent", "mvt", "africa", map[string]any{"name": "continent", "type": "string"}, "ordinal")))
	index := mk("Cells", []any{
		map[string]any{"id": "hex", "type": "table", "source": "public.cells_h3", "connectionName": "local", "geoColumn": "h3:h3"},
		map[string]any{"id": "qb", "type": "table", "source": "public.countries_qb", "connectionName": "local", "geoColumn": "quadbin:quadbin"},
	}, keplerConfig(37.7, -122.4, 9, keplerLayer("hexes", "h3", "hex", nil, ""), keplerLayer("quads", "quadbin", "qb", nil, "")))
	private := mk("Private", []any{
		map[string]any{"id": "countries", "type": "table", "source": "public.countries", "connectionName": "local"},
	}, keplerConfig(0, 0, 1, keplerLayer("l", "mvt", "countries", nil, "")))

	// A bad layer type is refused before anything is saved.
	status, _, raw := admin.do(t, "PATCH", "/workspace-api/maps/"+index, map[string]any{"keplerMapConfig": keplerConfig(0, 0, 1, keplerLayer("x", "hexagon", "hex", nil, ""))})
	if status != 400 || !strings.Contains(string(raw), "fetchMap rejects") {
		t.Errorf("outdated layer type: %d %s", status, raw)
	}

	admin.must(t, 200, "POST", "/workspace-api/maps/"+vector+"/publish", map[string]any{"privacy": map[string]any{"privacy": "public"}})
	admin.must(t, 200, "POST", "/workspace-api/maps/"+index+"/publish", map[string]any{"privacy": map[string]any{"privacy": "public"}})
	admin.must(t, 200, "POST", "/workspace-api/maps/"+private+"/publish", nil)

	type mapRef struct {
		Name    string            `json:"name"`
		ID      string            `json:"id"`
		Headers map[string]string `json:"headers,omitempty"`
		Cells   map[string]string `json:"cells,omitempty"`
	}
	refs, _ := json.Marshal([]mapRef{
		{Name: "vector", ID: vector},
		{Name: "index", ID: index, Cells: map[string]string{"hexes": h3Parent, "quads": "480fffffffffffff"}},
		{Name: "privateAnonymous", ID: private},
		{Name: "privateOwner", ID: private, Headers: map[string]string{"Cookie": admin.cookie}},
		{Name: "missing", ID: "00000000-0000-0000-0000-00000000dead"},
	})
	out, err := runNode(t, dir, "fetchmap.mjs", 2*time.Minute, "API_BASE_URL="+u.base+"/api", "MAPS="+string(refs))
	saveArtifact(t, "fetchmap-report.json", out)
	if err != nil {
		t.Fatalf("fetchmap.mjs: %v\n%s", err, lastBytes(out, 3000))
	}
	var rep fetchMapReport
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, lastBytes(out, 3000))
	}
	for _, r := range rep.Requests {
		if !strings.HasPrefix(r.Host, "127.0.0.1:") {
			t.Errorf("fetchMap reached outside the test: %s %s%s", r.Method, r.Host, r.Path)
		}
	}

	v := rep.Maps["vector"]
	if !v.OK {
		t.Fatalf("fetchMap(vector): %+v", v.Error)
	}
	if v.Title != "World" || !v.TokenSet || v.InitialViewState["zoom"] != 1.5 || v.InitialViewState["latitude"] != 10.0 {
		t.Errorf("vector map: title %q token %v view %v", v.Title, v.TokenSet, v.InitialViewState)
	}
	if v.Basemap == nil || v.Basemap.Type != "maplibre" || v.Basemap.Style != "/basemap/styles/meridian-light.json" {
		t.Errorf("basemap: %+v (want the offline custom style)", v.Basemap)
	}
	if len(v.Layers) != 2 {
		t.Fatalf("vector layers: %d", len(v.Layers))
	}
	// parseMap returns layers in reverse order.
	wantScale := map[string]string{"by-pop": "quantile", "by-continent": "ordinal"}
	wantKey := map[string]string{"by-pop": "pop_est", "by-continent": "continent"}
	for _, l := range v.Layers {
		if l == nil {
			t.Fatal("fetchMap dropped a layer (parseMap threw)")
		}
		if l.Type != "mvt" || !l.Pickable || !l.AccessTokenIsMap || l.FillColor != "function" {
			t.Errorf("layer %s: %+v", l.ID, l)
		}
		if l.FillScale == nil || *l.FillScale != wantScale[l.ID] || len(l.FillDomain) == 0 {
			t.Errorf("layer %s: fill scale %v domain %v", l.ID, l.FillScale, l.FillDomain)
		}
		if l.Tile == nil || l.Tile.Status != 200 || l.Tile.Features == 0 || !contains(l.Tile.Keys, wantKey[l.ID]) {
			t.Errorf("layer %s: tile %+v", l.ID, l.Tile)
		}
		if !strings.Contains(l.Tiles0, "tag-mapId="+vector) && !strings.Contains(l.Tiles0, u.base) {
			t.Errorf("layer %s: tiles %s", l.ID, l.Tiles0)
		}
	}
	if n := u.count(t, "SELECT count(*) FROM public.countries WHERE continent = 'Africa'"); n == 0 {
		t.Fatal("no African countries")
	}

	x := rep.Maps["index"]
	if !x.OK || len(x.Layers) != 2 {
		t.Fatalf("fetchMap(index): %+v", x)
	}
	for _, l := range x.Layers {
		if l == nil {
			t.Fatal("fetchMap dropped a spatial-index layer")
		}
		want := map[string]string{"hexes": "h3", "quads": "quadbin"}[l.ID]
		if l.Type != want || !strings.Contains(l.Tiles0, "{i}") || l.Tile == nil || l.Tile.Status != 200 || l.Tile.Cells == 0 {
			t.Errorf("layer %s: type %s tiles %s tile %+v", l.ID, l.Type, l.Tiles0, l.Tile)
		}
	}

	if p := rep.Maps["privateAnonymous"]; p.OK || p.Error == nil || p.Error.Status != 404 {
		t.Errorf("a private map opened without credentials: %+v", p)
	}
	if p := rep.Maps["privateOwner"]; !p.OK || len(p.Layers) != 1 || p.Layers[0] == nil || p.Layers[0].Tile == nil || p.Layers[0].Tile.Status != 200 {
		t.Errorf("the owner's fetchMap of their private map: %+v", p)
	}
	if p := rep.Maps["missing"]; p.OK || p.Error == nil || p.Error.Status != 404 {
		t.Errorf("a missing map: %+v", p)
	}

	// A plain customer page: @deck.gl/carto's fetchMap drawn by deck.gl,
	// from another origin; the canvas shows the layers.
	fetchMapPage(t, dir, u, map[string]string{"vector": vector, "index": index})

	// The edge caches the public document and drops it on publish.
	anon := &session{base: u.base}
	// (Right after a purge, the edge serves but does not store responses
	// with that tag for a moment: PurgeQuarantine.)
	waitFor(t, 10*time.Second, "the public map document served from the edge cache", func() bool {
		_, h, _ := anon.do(t, "GET", "/api/v3/maps/public/"+vector+"?v=3.4&client=deck-gl-carto", nil)
		if h.Get("Surrogate-Key") != "" {
			t.Error("the edge forwards Surrogate-Key to clients")
		}
		return isHit(h.Get("Cache-Status"))
	})
	admin.must(t, 200, "PATCH", "/workspace-api/maps/"+vector, map[string]any{"title": "World v2"})
	admin.must(t, 200, "POST", "/workspace-api/maps/"+vector+"/publish", nil)
	last := ""
	waitFor(t, 10*time.Second, "the republished title at the edge", func() bool {
		st, h, raw := anon.do(t, "GET", "/api/v3/maps/public/"+vector+"?v=3.4&client=deck-gl-carto", nil)
		ok := strings.Contains(string(raw), `"title":"World v2"`)
		if seen := fmt.Sprintf("%d %q age %q v2 %v", st, h.Get("Cache-Status"), h.Get("Age"), ok); seen != last {
			t.Logf("%s after republishing: %s", time.Now().Format("15:04:05.000"), seen)
			last = seen
		}
		return ok
	})

	// A private map's document is never stored; its tiles need its token.
	for i := 0; i < 2; i++ {
		_, h, _ := admin.do(t, "GET", "/api/v3/maps/public/"+private, nil)
		if isHit(h.Get("Cache-Status")) {
			t.Error("a private map document was served from the edge cache")
		}
	}
	if st, _, _ := anon.do(t, "GET", "/api/v3/maps/public/"+private, nil); st != 404 {
		t.Errorf("anonymous, private map after the owner's reads: %d", st)
	}
	privTiles := rep.Maps["privateOwner"].Layers[0].Tiles0
	tileURL := strings.NewReplacer("{z}", "0", "{x}", "0", "{y}", "0").Replace(privTiles)
	tileURL = stripParam(tileURL, "access_token")
	other := u.token(t, []grant.API{grant.APIMaps}, "public.cells_h3")
	for _, c := range []struct {
		token string
		want  int
	}{{"", 401}, {other, 403}} {
		req, _ := http.NewRequest("GET", tileURL, nil)
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != c.want || isHit(res.Header.Get("Cache-Status")) {
			t.Errorf("a private map's cached tile to a caller without its grant: %d %s", res.StatusCode, res.Header.Get("Cache-Status"))
		}
	}

	// Unpublish: the document leaves the edge and the map token stops working.
	doc := anon.must(t, 200, "GET", "/api/v3/maps/public/"+index, nil)
	mapToken := doc["token"].(string)
	admin.must(t, 200, "DELETE", "/workspace-api/maps/"+index+"/publish", nil)
	// (The purge crosses the broker; under CI's load, with every package's
	// tests running at once, that has taken over 10 s.)
	last = ""
	waitFor(t, 30*time.Second, "the unpublished document gone from the edge", func() bool {
		st, h, _ := anon.do(t, "GET", "/api/v3/maps/public/"+index, nil)
		if seen := fmt.Sprintf("%d %q age %q", st, h.Get("Cache-Status"), h.Get("Age")); seen != last {
			t.Logf("%s after unpublishing: %s", time.Now().Format("15:04:05.000"), seen)
			last = seen
		}
		return st == 404
	})
	waitFor(t, 30*time.Second, "the revoked map token refused at the edge", func() bool {
		req, _ := http.NewRequest("GET", u.base+"/api/v3/maps/local/table?name=public.cells_h3&spatialDataColumn=h3&spatialDataType=h3", nil)
		req.Header.Set("Authorization", "Bearer "+mapToken)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode == 401
	})
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// stripParam removes query parameter name from raw.
func stripParam(raw, name string) string {
	i := strings.IndexByte(raw, '?')
	if i < 0 {
		return raw
	}
	var keep []string
	for _, kv := range strings.Split(raw[i+1:], "&") {
		if !strings.HasPrefix(kv, name+"=") {
			keep = append(keep, kv)
		}
	}
	return raw[:i] + "?" + strings.Join(keep, "&")
}

// waitFor polls cond until it holds or limit passes.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, limit)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

var _ = fmt.Sprint

// fetchMapPage runs compat/fetchmap-page.mjs (web/examples/fetchmap.js in
// Chromium) on the published maps ids (name -> id) and checks that each
// drew its two layers.
func fetchMapPage(t *testing.T, dir string, u *upServer, ids map[string]string) {
	t.Helper()
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = needTool(t, "chromium")
	}
	if _, err := os.Stat(filepath.Join(dir, "..", "web", "examples", "dist", "fetchmap.js")); err != nil {
		skipOrFail(t, "the fetchMap example page is not built: run make static first")
	}
	var refs []map[string]string
	for name, id := range ids {
		refs = append(refs, map[string]string{"name": name, "id": id})
	}
	js, _ := json.Marshal(refs)
	shots := os.Getenv(envArtifacts)
	if shots == "" {
		shots = t.TempDir()
	}
	out, err := runNode(t, dir, "fetchmap-page.mjs", 4*time.Minute, "API_BASE_URL="+u.base+"/api", "MAPS="+string(js), "SCREENSHOT_DIR="+shots, "CHROMIUM="+chromium)
	saveArtifact(t, "fetchmap-page-report.json", out)
	var rep struct {
		Maps map[string]struct {
			OK       bool
			Error    *string
			Layers   []struct{ ID, Type string }
			Drawn    float64
			Requests []string
		}
	}
	if jerr := json.Unmarshal(out, &rep); jerr != nil {
		t.Fatalf("fetchmap-page.mjs: %v / %v\n%s", err, jerr, lastBytes(out, 3000))
	}
	for name := range ids {
		m := rep.Maps[name]
		if !m.OK || len(m.Layers) != 2 || m.Drawn < 0.01 {
			t.Errorf("the customer page of %s: ok %v error %v layers %v drew %.3f of the canvas", name, m.OK, m.Error, m.Layers, m.Drawn)
		}
		for _, r := range m.Requests {
			host := strings.Fields(r)[1]
			if !strings.HasPrefix(host, "127.0.0.1:") && !strings.HasPrefix(host, "localhost:") && !strings.HasPrefix(host, "unpkg.com/") {
				t.Errorf("the customer page of %s reached %s", name, r)
			}
		}
	}
}
