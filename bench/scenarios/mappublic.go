package scenarios

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/meridian-gis/meridian/bench"
	"github.com/meridian-gis/meridian/bench/load"
	"github.com/meridian-gis/meridian/bench/peers"
	"github.com/meridian-gis/meridian/bench/proc"
	"github.com/meridian-gis/meridian/bench/tilebench"
)

// mapPublicConfig is the map-public setup, recorded in the report.
type mapPublicConfig struct {
	// Layers of the published map: a table, a query, a query of points.
	Layers []string `json:"layers"`
	// Concurrency of the document and tile loads.
	Concurrency int `json:"concurrency"`
	// Visits are the first-paint samples per run, each in a fresh
	// browser context.
	Visits int `json:"visits"`
	// FloorLayers is the map of first-paint-floor: one layer of one point
	// over the same basemap and view, what a published map costs the
	// page before its data (the bundle, fetchMap, MapLibre and deck.gl
	// starting, the basemap drawn).
	FloorLayers []string `json:"floor_layers"`
	// DocURL and TileURL are what the two load variants request.
	DocURL  string `json:"doc_url"`
	TileURL string `json:"tile_url"`
	// Basemap says whether the offline basemap was loaded (the first
	// paint waits for it too).
	Basemap      string             `json:"basemap"`
	SetupSeconds map[string]float64 `json:"setup_seconds"`
}

// mapPublic measures a published Builder map (issue 10's speed targets):
// its public document served from the edge cache against a tile served
// from the same cache (the document must come at ≥ 0.9× the tile's
// rate), and the first paint of the map in Chromium (navigation start to
// every tile of the first view drawn, deck.gl's layers and the basemap)
// with a warm server, under 1.5 s.
type mapPublic struct {
	cfg     mapPublicConfig
	env     *bench.Env
	node    string
	up      *tilebench.Tiles
	token   string
	viewer  string
	floor   string // the viewer of the floor map
	compat  string
	chrome  string
	headers http.Header
}

func newMapPublic() bench.Scenario {
	return &mapPublic{cfg: mapPublicConfig{Concurrency: 8, Visits: 3, SetupSeconds: map[string]float64{}}}
}

func (s *mapPublic) Info() bench.Info {
	return bench.Info{
		SetupTimeout: tilesSetupTimeout,
		Name:         "map-public",
		Description: fmt.Sprintf("A published 3-layer Builder map on Natural Earth admin-1 through `meridian up`: its public document "+
			"(GET /api/v3/maps/public/{id}) and one of its tiles, both edge-cache hits, from %d connections; and its first paint "+
			"in Chromium (%d fresh visits per run: navigation start to all tiles of the first view drawn); first-paint-floor is the "+
			"first paint of a published map of one point over the same basemap and view, what the page costs before any data.", s.cfg.Concurrency, s.cfg.Visits),
		Variants: []string{"doc-hit", "tile-hit", "first-paint", "first-paint-floor"},
		Targets: []bench.Target{
			{Ratio: "doc-hit/tile-hit", Min: 0.9},
			{Variant: "first-paint", Max: 1500},
		},
		// A first-paint run is Visits browser visits (firstPaint gives
		// firstpaint.mjs 3 minutes), longer than 4 × -duration + 30 s.
		RunTimeout: 3*time.Minute + 30*time.Second,
		Config:     &s.cfg,
	}
}

func (s *mapPublic) Setup(ctx context.Context, env *bench.Env) (bench.Teardown, error) {
	s.env = env
	var stop cleanup
	teardown := func(ctx context.Context) error { return stop.run(ctx) }
	root, err := peers.ModuleRoot(".")
	if err != nil {
		return teardown, err
	}
	if err := s.browserReady(root); err != nil {
		return teardown, err
	}
	ts, err := setupTiles(ctx, env, []tilebench.Dataset{tilebench.Admin1()}, &stop)
	if err != nil {
		return teardown, err
	}
	for k, v := range ts.seconds {
		s.cfg.SetupSeconds[k] = v
	}
	// The offline basemap, as `make run` loads it.
	t0 := time.Now()
	dataDir, _ := tilebench.DataDir(root)
	if _, err := ts.m.Command(ctx, "basemap", "load", dataDir); err != nil {
		s.cfg.Basemap = "not loaded: " + tailText([]byte(err.Error()), 200)
	} else {
		s.cfg.Basemap = "meridian-light (Natural Earth)"
		s.cfg.SetupSeconds["basemap"] = time.Since(t0).Round(10 * time.Millisecond).Seconds()
	}
	if s.up, err = ts.m.StartUp(ctx, peerLifetime(env, 3), "MERIDIAN_BASEMAP_CONNECTION="+tilesConn); err != nil {
		return teardown, err
	}
	stop.add(s.up.Stop)
	call := accountCaller(ctx, s.up.URL, &cookieJar{})
	if err := call("POST", "/accounts-api/signup", map[string]string{"email": "bench@example.test", "password": "a long bench password", "name": "Bench"}, nil); err != nil {
		return teardown, err
	}
	id, err := s.publish(call)
	if err != nil {
		return teardown, err
	}
	s.viewer = s.up.URL + "/map/" + id
	floor, err := s.publishFloor(call)
	if err != nil {
		return teardown, err
	}
	s.floor = s.up.URL + "/map/" + floor
	s.cfg.DocURL = s.up.URL + "/api/v3/maps/public/" + id + "?v=3.4&client=deck-gl-carto"
	var doc struct {
		Token string `json:"token"`
	}
	if err := getJSON(ctx, s.cfg.DocURL, nil, &doc); err != nil {
		return teardown, err
	}
	s.token = doc.Token
	s.headers = http.Header{"Authorization": {"Bearer " + s.token}}
	// The maps API instantiates the source (CARTO_API.md §2.1); its
	// TileJSON names the tiles.
	var inst struct {
		TileJSON struct {
			URL []string `json:"url"`
		} `json:"tilejson"`
	}
	q := url.Values{"name": {"public.admin1"}, "columns": {"name,admin"}, "formatTiles": {"mvt"}}
	if err := getJSON(ctx, s.up.URL+"/api/v3/maps/"+tilesConn+"/table?"+q.Encode(), s.headers, &inst); err != nil {
		return teardown, err
	}
	if len(inst.TileJSON.URL) == 0 {
		return teardown, errors.New("map-public: the source's instantiation names no TileJSON")
	}
	var tj struct {
		Tiles []string `json:"tiles"`
	}
	if err := getJSON(ctx, inst.TileJSON.URL[0], s.headers, &tj); err != nil {
		return teardown, err
	}
	if len(tj.Tiles) == 0 {
		return teardown, errors.New("map-public: the layer's TileJSON has no tiles")
	}
	r := strings.NewReplacer("{z}", "2", "{x}", "1", "{y}", "1")
	s.cfg.TileURL = r.Replace(tj.Tiles[0])
	// Both URLs are edge-cache hits before any run.
	for _, u := range []struct {
		url string
		h   http.Header
	}{{s.cfg.DocURL, nil}, {s.cfg.TileURL, s.headers}} {
		if err := warmUntilHit(ctx, u.url, u.h); err != nil {
			return teardown, err
		}
	}
	return teardown, nil
}

// browserReady checks for node, Chromium, the compat npm install and the
// Builder bundle in the binary's sources.
func (s *mapPublic) browserReady(root string) error {
	node, err := exec.LookPath("node")
	if err != nil {
		return bench.Skip("no node (the first paint runs in Chromium through playwright-core)")
	}
	s.node = node
	s.chrome = os.Getenv("CHROMIUM")
	if s.chrome == "" {
		p, err := exec.LookPath("chromium")
		if err != nil {
			return bench.Skip("no chromium (apt-get install chromium)")
		}
		s.chrome = p
	}
	s.compat = filepath.Join(root, "compat")
	for _, f := range []string{filepath.Join(s.compat, "node_modules", "playwright-core"), filepath.Join(root, "static", "builder", "dist", "builder.js")} {
		if _, err := os.Stat(f); err != nil {
			return bench.Skip("%s is missing: run make static", f)
		}
	}
	return nil
}

// publish signs up the first account (the admin) and makes a public map
// of three layers: admin-1 coloured by a number, a query coloured by
// category, and a query of points.
func (s *mapPublic) publish(call apiCaller) (string, error) {
	ds := []map[string]any{
		{"id": "states", "type": "table", "source": "public.admin1", "connectionName": tilesConn, "columns": []string{"name", "admin", "latitude"}},
		{"id": "americas", "type": "query", "connectionName": tilesConn,
			"source": "SELECT name, admin, geom FROM public.admin1 WHERE admin IN ('United States of America', 'Canada', 'Mexico', 'Brazil')"},
		{"id": "centres", "type": "query", "connectionName": tilesConn, "source": "SELECT name, ST_PointOnSurface(geom) AS geom FROM public.admin1"},
	}
	layer := func(id, dataID string, color map[string]any, scale string, colors []string) map[string]any {
		vc := map[string]any{}
		if color != nil {
			vc["colorField"], vc["colorScale"] = color, scale
		}
		s.cfg.Layers = append(s.cfg.Layers, id)
		return map[string]any{"id": id, "type": "mvt", "visualChannels": vc, "config": map[string]any{
			"dataId": dataID, "label": id, "isVisible": true, "color": []int{18, 147, 154},
			"visConfig": map[string]any{"opacity": 0.8, "filled": true, "stroked": true, "thickness": 0.5, "radius": 3,
				"strokeColor": []int{255, 255, 255}, "colorRange": map[string]any{"name": "x", "type": "custom", "category": "CARTO", "colors": colors}},
		}}
	}
	sunset := []string{"#f3e79b", "#fac484", "#f8a07e", "#eb7f86", "#ce6693", "#a059a0"}
	bold := []string{"#7F3C8D", "#11A579", "#3969AC", "#F2B701", "#E73F74", "#80BA5A"}
	layers := []any{
		layer("centres", "centres", nil, "", nil),
		layer("americas", "americas", map[string]any{"name": "admin", "type": "string"}, "ordinal", bold),
		layer("states", "states", map[string]any{"name": "latitude", "type": "real"}, "quantile", sunset),
	}
	return s.publishMap(call, "Bench map", ds, layers)
}

// publishFloor publishes the floor map: one layer of one point.
func (s *mapPublic) publishFloor(call apiCaller) (string, error) {
	ds := []map[string]any{{"id": "one", "type": "query", "connectionName": tilesConn,
		"source": "SELECT name, ST_PointOnSurface(geom) AS geom FROM public.admin1 WHERE iso_3166_2 = 'CA-QC'"}}
	s.cfg.FloorLayers = []string{"one"}
	layer := map[string]any{"id": "one", "type": "mvt", "visualChannels": map[string]any{}, "config": map[string]any{
		"dataId": "one", "label": "one", "isVisible": true, "color": []int{18, 147, 154},
		"visConfig": map[string]any{"opacity": 0.8, "filled": true, "stroked": true, "thickness": 0.5, "radius": 3, "strokeColor": []int{255, 255, 255}},
	}}
	return s.publishMap(call, "Bench floor map", ds, []any{layer})
}

// publishMap creates a public map of datasets ds and layers at the bench
// view, over the offline basemap, and returns its id.
func (s *mapPublic) publishMap(call apiCaller, title string, ds []map[string]any, layers []any) (string, error) {
	cfg := map[string]any{"version": "v1", "config": map[string]any{
		"filters":        map[string]any{},
		"mapState":       map[string]any{"latitude": 20, "longitude": -60, "zoom": 2, "pitch": 0, "bearing": 0},
		"mapStyle":       map[string]any{"styleType": "custom:meridian-light"},
		"customBaseMaps": map[string]any{"customStyle": map[string]any{"id": "meridian-light", "url": s.up.URL + "/basemap/styles/meridian-light.json"}},
		"visState": map[string]any{"layerBlending": "normal", "interactionConfig": map[string]any{"tooltip": map[string]any{"enabled": true, "fieldsToShow": map[string]any{}}},
			"layers": layers},
	}}
	var m struct {
		ID string `json:"id"`
	}
	if err := call("POST", "/workspace-api/maps", map[string]any{"title": title, "datasets": ds, "keplerMapConfig": cfg}, &m); err != nil {
		return "", err
	}
	if err := call("PATCH", "/workspace-api/maps/"+m.ID, map[string]any{"privacy": map[string]any{"privacy": "public"}}, nil); err != nil {
		return "", err
	}
	return m.ID, nil
}

// apiCaller calls a JSON API of a `meridian up` as one signed-in user.
type apiCaller func(method, path string, body, out any) error

// get fetches u with headers h and returns the response with its body read.
func get(ctx context.Context, u string, h http.Header) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, err
	}
	for k, v := range h {
		req.Header[k] = v
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("GET %s: %w", u, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	return res, raw, err
}

// getJSON fetches u with headers h and decodes its 200 answer into out.
func getJSON(ctx context.Context, u string, h http.Header, out any) error {
	res, raw, err := get(ctx, u, h)
	if err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", u, res.StatusCode, tailText(raw, 300))
	}
	return json.Unmarshal(raw, out)
}

// warmUntilHit requests u until the edge answers it from its cache.
func warmUntilHit(ctx context.Context, u string, h http.Header) error {
	for range 100 {
		res, _, err := get(ctx, u, h)
		if err != nil {
			return err
		}
		if res.StatusCode == http.StatusOK && strings.Contains(res.Header.Get("Cache-Status"), "hit") {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s never became an edge-cache hit", u)
}

func (s *mapPublic) Run(ctx context.Context, variant string) (bench.Result, error) {
	switch variant {
	case "doc-hit":
		r, err := load.HTTP{URLs: []string{s.cfg.DocURL}, Concurrency: s.cfg.Concurrency, Duration: s.env.Duration}.Run(ctx)
		if err != nil {
			return bench.Result{}, err
		}
		return fromLoad(r)
	case "tile-hit":
		r, err := load.HTTP{URLs: []string{s.cfg.TileURL}, Header: s.headers, Concurrency: s.cfg.Concurrency, Duration: s.env.Duration}.Run(ctx)
		if err != nil {
			return bench.Result{}, err
		}
		return fromLoad(r)
	case "first-paint":
		return s.firstPaint(ctx, s.viewer, len(s.cfg.Layers))
	case "first-paint-floor":
		return s.firstPaint(ctx, s.floor, len(s.cfg.FloorLayers))
	}
	return bench.Result{}, errors.New("unknown variant " + variant)
}

// firstPaint runs compat/firstpaint.mjs: the median of its visits is the
// primary metric (ms); the slowest, and the median time to every tile of
// the first view loaded and parsed (before the frame that draws them:
// what the page does, without the rasterization, which runs on the CPU
// here), are secondary ones.
func (s *mapPublic) firstPaint(ctx context.Context, viewer string, layers int) (bench.Result, error) {
	res, err := proc.Command{
		Path: s.node, Args: []string{filepath.Join(s.compat, "firstpaint.mjs")}, Dir: s.compat,
		Env:     append(os.Environ(), "URL="+viewer, fmt.Sprintf("ROUNDS=%d", s.cfg.Visits), fmt.Sprintf("LAYERS=%d", layers), "CHROMIUM="+s.chrome),
		Timeout: 3 * time.Minute, OutputLimit: 64 << 10,
	}.Run(ctx)
	if err != nil {
		return bench.Result{}, fmt.Errorf("firstpaint.mjs: %w: %s", err, tailText([]byte(res.Stderr), 800))
	}
	var out struct {
		Samples []float64 `json:"samples_ms"`
		Ready   []float64 `json:"ready_ms"`
		Errors  []string  `json:"errors"`
	}
	if err := json.Unmarshal([]byte(lastLineOf(res.Stdout)), &out); err != nil {
		return bench.Result{}, fmt.Errorf("firstpaint.mjs: %w: %s", err, tailText([]byte(res.Stdout), 300))
	}
	if len(out.Errors) > 0 || len(out.Samples) == 0 {
		return bench.Result{}, fmt.Errorf("firstpaint.mjs: %d visits drew the map; errors: %s", len(out.Samples), strings.Join(out.Errors, "; "))
	}
	slices.Sort(out.Samples)
	med := out.Samples[len(out.Samples)/2]
	r := bench.Result{
		Primary:   bench.Metric{Name: "first paint p50", Unit: unitMs, Better: bench.LowerIsBetter, Value: med},
		Secondary: []bench.Metric{{Name: "first paint max", Unit: unitMs, Better: bench.LowerIsBetter, Value: out.Samples[len(out.Samples)-1]}},
	}
	if len(out.Ready) > 0 {
		slices.Sort(out.Ready)
		r.Secondary = append(r.Secondary, bench.Metric{Name: "layers ready p50", Unit: unitMs, Better: bench.LowerIsBetter, Value: out.Ready[len(out.Ready)/2]})
	}
	return r, nil
}

func lastLineOf(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// accountCaller returns a function that calls the web apps' APIs at base
// as a browser of that origin does (JSON, Origin, the session cookies in
// jar) and decodes a 2xx answer into out (when not nil).
func accountCaller(ctx context.Context, base string, jar *cookieJar) apiCaller {
	return func(method, path string, body, out any) error {
		b, _ := json.Marshal(body)
		req, err := http.NewRequestWithContext(ctx, method, base+path, bytes.NewReader(b))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Origin", base)
		jar.apply(req)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
		defer res.Body.Close()
		jar.keep(res)
		raw, _ := io.ReadAll(res.Body)
		if res.StatusCode/100 != 2 {
			return fmt.Errorf("%s %s: %d %s", method, path, res.StatusCode, tailText(raw, 400))
		}
		if out != nil {
			return json.Unmarshal(raw, out)
		}
		return nil
	}
}

// cookieJar keeps the session cookie of the bench's admin.
type cookieJar struct{ cookies []*http.Cookie }

func (j *cookieJar) apply(r *http.Request) {
	for _, c := range j.cookies {
		r.AddCookie(c)
	}
}

func (j *cookieJar) keep(res *http.Response) {
	for _, c := range res.Cookies() {
		j.cookies = slices.DeleteFunc(j.cookies, func(o *http.Cookie) bool { return o.Name == c.Name })
		j.cookies = append(j.cookies, c)
	}
}
