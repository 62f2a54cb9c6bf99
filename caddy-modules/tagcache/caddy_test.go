package tagcache

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/headers"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	dto "github.com/prometheus/client_model/go"
)

// origin is a test origin whose handler each test sets; hits counts the
// requests that reached it.
type origin struct {
	srv  *httptest.Server
	hits atomic.Int64
	h    atomic.Pointer[http.HandlerFunc]
}

func newOrigin(t *testing.T) *origin {
	t.Helper()
	o := &origin{}
	o.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.hits.Add(1)
		(*o.h.Load())(w, r)
	}))
	t.Cleanup(o.srv.Close)
	return o
}

func (o *origin) handle(h http.HandlerFunc) { o.h.Store(&h) }

func (o *origin) addr() string { return strings.TrimPrefix(o.srv.URL, "http://") }

// freePort returns a port that was free a moment ago on 127.0.0.1.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listening: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// edge describes an in-process Caddy config: meridian_cache in front of
// reverse_proxy to an origin.
type edge struct {
	port    int
	admin   string         // admin listen address; "" disables the admin API
	handler map[string]any // meridian_cache handler options
	app     map[string]any // meridian_cache app options; nil: not configured
	origin  string
	before  []any // handlers ahead of meridian_cache in the route
}

func (e edge) json() []byte {
	admin := map[string]any{"disabled": true, "config": map[string]any{"persist": false}}
	if e.admin != "" {
		admin = map[string]any{"listen": e.admin, "config": map[string]any{"persist": false}}
	}
	// Tests refill right after purging: no quarantine unless asked for.
	handler := map[string]any{"handler": "meridian_cache", "purge_quarantine": -1}
	for k, v := range e.handler {
		handler[k] = v
	}
	apps := map[string]any{
		"http": map[string]any{
			"servers": map[string]any{
				"edge": map[string]any{
					"listen":          []string{fmt.Sprintf("127.0.0.1:%d", e.port)},
					"automatic_https": map[string]any{"disable": true},
					"routes": []any{map[string]any{"handle": append(append([]any(nil), e.before...),
						handler,
						map[string]any{"handler": "reverse_proxy", "upstreams": []any{map[string]any{"dial": e.origin}}},
					)}},
				},
			},
		},
	}
	if e.app != nil {
		apps["meridian_cache"] = e.app
	}
	b, _ := json.Marshal(map[string]any{
		"admin":   admin,
		"logging": map[string]any{"logs": map[string]any{"default": map[string]any{"level": "ERROR"}}},
		"apps":    apps,
	})
	return b
}

// load runs cfg in this process; the test stops Caddy when it ends.
func load(t *testing.T, cfg edge) {
	t.Helper()
	if err := caddy.Load(cfg.json(), true); err != nil {
		t.Fatalf("loading config: %v", err)
	}
	t.Cleanup(func() { _ = caddy.Stop() })
}

type reply struct {
	status int
	header http.Header
	body   string
}

func (r reply) cacheStatus() string { return r.header.Get("Cache-Status") }
func (r reply) isHit() bool         { return strings.HasPrefix(r.cacheStatus(), "meridian; hit") }

func send(t *testing.T, method, url string, body io.Reader, header ...string) reply {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatalf("NewRequest: %v", err)
	}
	for _, l := range header {
		k, v, _ := strings.Cut(l, ":")
		req.Header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	// A connection accepted by the outgoing server while a config reload
	// shuts it down ends with EOF or a reset; a bodiless GET is safe to
	// send again.
	for i := 0; i < 3 && err != nil && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)) && body == nil && method == "GET"; i++ {
		time.Sleep(20 * time.Millisecond)
		resp, err = client.Do(req)
	}
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading %s %s: %v", method, url, err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// metricValue returns the value of a meridian_cache metric (with the given
// label value, if any) from the running config's registry.
func metricValue(t *testing.T, name, label string) float64 {
	t.Helper()
	ctx := caddy.ActiveContext()
	mfs, err := ctx.GetMetricsRegistry().Gather()
	if err != nil {
		t.Fatalf("gathering metrics: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label != "" && !hasLabelValue(m, label) {
				continue
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("metric %s{%s} not found", name, label)
	return 0
}

func hasLabelValue(m *dto.Metric, v string) bool {
	for _, l := range m.GetLabel() {
		if l.GetValue() == v {
			return true
		}
	}
	return false
}

func TestEndToEndThroughCaddy(t *testing.T) {
	o := newOrigin(t)
	body := bytes.Repeat([]byte("t"), 30<<10)
	var version atomic.Int64
	o.handle(func(w http.ResponseWriter, r *http.Request) {
		v := version.Add(1)
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Surrogate-Key", "src:c/public.t conn:c")
		w.Header().Set("ETag", fmt.Sprintf(`"v%d"`, v))
		w.Header().Set("Content-Type", "application/vnd.mapbox-vector-tile")
		if r.Method == http.MethodPost {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.Write(body)
	})
	port := freePort(t)
	load(t, edge{port: port, origin: o.addr(), handler: map[string]any{"authorization_checked": true}})
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	tile := base + "/api/v3/maps/c/public.t/1/0/0.mvt"

	r := send(t, "GET", tile+"?access_token=A", nil, "Authorization: Bearer A")
	if r.status != 200 || r.body != string(body) || r.cacheStatus() != "meridian; fwd=uri-miss; stored" {
		t.Fatalf("first: %d %d bytes %q", r.status, len(r.body), r.cacheStatus())
	}
	if r.header.Get("Surrogate-Key") != "" {
		t.Errorf("Surrogate-Key reached the client: %q", r.header.Get("Surrogate-Key"))
	}
	r = send(t, "GET", tile+"?access_token=B", nil, "Authorization: Bearer B")
	if !r.isHit() || r.body != string(body) || r.header.Get("Age") == "" || r.header.Get("Surrogate-Key") != "" {
		t.Errorf("second: %q %d bytes Age %q Surrogate-Key %q, want a hit", r.cacheStatus(), len(r.body), r.header.Get("Age"), r.header.Get("Surrogate-Key"))
	}
	if r := send(t, "HEAD", tile, nil); !r.isHit() || r.body != "" {
		t.Errorf("HEAD: %q %q, want a hit without body", r.cacheStatus(), r.body)
	}
	if r := send(t, "GET", tile, nil, `If-None-Match: "v1"`); r.status != http.StatusNotModified {
		t.Errorf("conditional: %d, want 304", r.status)
	}

	app, err := runningApp()
	if err != nil {
		t.Fatal(err)
	}
	app.Purge([]string{"src:c/public.t"}, false)
	if r := send(t, "GET", tile, nil); r.isHit() || r.header.Get("Etag") != `"v2"` {
		t.Errorf("after hard purge: %q ETag %q, want a miss for v2", r.cacheStatus(), r.header.Get("Etag"))
	}

	// Soft purge: stale while one background refresh goes through
	// reverse_proxy after the triggering request has finished.
	app.Purge([]string{"conn:c"}, true)
	if r := send(t, "GET", tile, nil); r.header.Get("Etag") != `"v2"` || !strings.HasSuffix(r.cacheStatus(), "detail=stale") {
		t.Errorf("after soft purge: %q ETag %q, want stale v2", r.cacheStatus(), r.header.Get("Etag"))
	}
	waitFor(t, "background refresh stored", func() bool { return app.Stats().Stores == 3 })
	if r := send(t, "GET", tile, nil); !r.isHit() || r.header.Get("Etag") != `"v3"` || strings.Contains(r.cacheStatus(), "stale") {
		t.Errorf("after refresh: %q ETag %q, want fresh v3", r.cacheStatus(), r.header.Get("Etag"))
	}

	if r := send(t, "POST", tile, strings.NewReader("x")); r.status != http.StatusNoContent {
		t.Errorf("POST: %d", r.status)
	}
	if r := send(t, "GET", tile, nil); r.isHit() {
		t.Errorf("after POST: %q, want invalidated", r.cacheStatus())
	}

	if got := metricValue(t, "meridian_cache_hits_total", ""); got < 3 {
		t.Errorf("meridian_cache_hits_total = %v, want >= 3", got)
	}
	if got := metricValue(t, "meridian_cache_purges_total", "tag_soft"); got != 1 {
		t.Errorf("meridian_cache_purges_total{kind=tag_soft} = %v, want 1", got)
	}
	if got := metricValue(t, "meridian_cache_entries", ""); got < 1 {
		t.Errorf("meridian_cache_entries = %v, want >= 1", got)
	}
	// This suite runs without a purge quarantine: the counter is
	// exported, at zero.
	if got := metricValue(t, "meridian_cache_quarantined_total", ""); got != 0 {
		t.Errorf("meridian_cache_quarantined_total = %v, want 0", got)
	}
}

func TestReloadKeepsStoreWarm(t *testing.T) {
	o := newOrigin(t)
	o.handle(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		fmt.Fprint(w, "warm")
	})
	port := freePort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d/w", port)
	appCfg := map[string]any{"max_size": 32 << 20, "max_entry_size": 1 << 20}
	load(t, edge{port: port, origin: o.addr(), app: appCfg})
	send(t, "GET", url, nil)
	first, _ := runningApp()
	key := first.poolKey

	// Same store settings, other handler settings: same store, still warm,
	// metrics registered on the new registry without a panic.
	load(t, edge{port: port, origin: o.addr(), app: appCfg, handler: map[string]any{"ttl_default": "1m"}})
	if r := send(t, "GET", url, nil); !r.isHit() {
		t.Errorf("after reload: %q, want hit from the warm store", r.cacheStatus())
	}
	if got := metricValue(t, "meridian_cache_hits_total", ""); got != 1 {
		t.Errorf("hits after reload = %v, want 1 (counters survive reloads)", got)
	}
	if refs, ok := stores.References(key); !ok || refs != 1 {
		t.Errorf("store references = %d %v, want 1", refs, ok)
	}

	// Other store settings: a new, cold store; the old one is released.
	load(t, edge{port: port, origin: o.addr(), app: map[string]any{"max_size": 16 << 20, "max_entry_size": 1 << 20}})
	if r := send(t, "GET", url, nil); r.isHit() {
		t.Errorf("after store change: %q, want miss", r.cacheStatus())
	}
	if _, ok := stores.References(key); ok {
		t.Errorf("old store still pooled after its last config went away")
	}
}

func TestAdminAPI(t *testing.T) {
	o := newOrigin(t)
	o.handle(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Surrogate-Key", "map:1 "+strings.Trim(r.URL.Path, "/"))
		fmt.Fprint(w, r.URL.Path)
	})
	port := freePort(t)
	admin := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	load(t, edge{port: port, origin: o.addr(), admin: admin})
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	api := "http://" + admin + "/meridian/cache"
	paths := []string{"/a/1", "/a/2", "/b/1", "/c/1"}
	fill := func() {
		for _, p := range paths {
			send(t, "GET", base+p, nil)
		}
	}
	hits := func() (out []bool) {
		for _, p := range paths {
			out = append(out, send(t, "GET", base+p, nil).isHit())
		}
		return out
	}
	tests := []struct {
		body       string
		wantStatus int
		wantHits   []bool
	}{
		{`{"tags":["a/1"]}`, 200, []bool{false, true, true, true}},
		{`{"tags":["map:1"],"soft":true}`, 200, []bool{true, true, true, true}},        // stale hits
		{`{"urls":["http://other.example/b/1"]}`, 200, []bool{true, true, true, true}}, // another host
		{`{"urls":["/b/1?x=y"]}`, 200, []bool{true, true, true, true}},                 // another query
		{`{"urls":["/b/1"]}`, 200, []bool{true, true, false, true}},
		{`{"urls":["BASE/c/1?access_token=t"]}`, 200, []bool{true, true, true, false}},
		{`{"prefix":"/a/"}`, 200, []bool{false, false, true, true}},
		{`{"prefix":"/a"}`, 200, []bool{false, false, true, true}},
		{`{"prefix":"BASE/b"}`, 200, []bool{true, true, false, true}},
		{`{"urls":["b/1"]}`, 400, []bool{true, true, true, true}},
		{`{"prefix":"ftp://x/"}`, 400, []bool{true, true, true, true}},
		{`{}`, 400, []bool{true, true, true, true}},
		{`{"tag":["x"]}`, 400, []bool{true, true, true, true}},
		{`not json`, 400, []bool{true, true, true, true}},
	}
	for i, tt := range tests {
		fill()
		body := strings.ReplaceAll(tt.body, "BASE", base)
		r := send(t, "POST", api+"/purge", strings.NewReader(body), "Content-Type: application/json")
		if r.status != tt.wantStatus {
			t.Errorf("Test %d: POST purge %s: %d %s, want %d", i, tt.body, r.status, r.body, tt.wantStatus)
		}
		got := hits()
		for j := range paths {
			if got[j] != tt.wantHits[j] {
				t.Errorf("Test %d: after purge %s: %s hit=%v, want %v", i, tt.body, paths[j], got[j], tt.wantHits[j])
			}
		}
	}
	if r := send(t, "GET", api+"/purge", nil); r.status != http.StatusMethodNotAllowed {
		t.Errorf("GET purge: %d, want 405", r.status)
	}

	r := send(t, "GET", api+"/stats", nil)
	var st struct {
		Hits, Stores int
	}
	if err := json.Unmarshal([]byte(r.body), &st); err != nil || r.status != 200 || st.Hits == 0 || st.Stores == 0 {
		t.Errorf("stats: %d %s (%v)", r.status, r.body, err)
	}
	r = send(t, "GET", api+"/config", nil)
	var cfg struct {
		Store struct {
			MaxSize int64 `json:"max_size"`
			Shards  int   `json:"shards"`
		} `json:"store"`
	}
	if err := json.Unmarshal([]byte(r.body), &cfg); err != nil || cfg.Store.MaxSize != 256<<20 || cfg.Store.Shards != 8 {
		t.Errorf("config: %d %s (%v)", r.status, r.body, err)
	}
}

func TestCaddyfileConfigRuns(t *testing.T) {
	o := newOrigin(t)
	o.handle(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("ETag", `"x"`)
		if r.URL.Path == "/old" {
			w.Header().Set("Age", "120") // stale on arrival
		}
		if r.Header.Get("If-None-Match") == `"x"` {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "from caddyfile "+r.URL.RawQuery)
	})
	port := freePort(t)
	caddyfile := fmt.Sprintf(`{
	admin off
	persist_config off
	auto_https off
	meridian_cache {
		max_size 32MiB
		max_entry_size 1MiB
	}
}

http://127.0.0.1:%d {
	reverse_proxy %s
	meridian_cache {
		stale_if_error 1h
		key_drop_query token
	}
}
`, port, o.addr())
	cfg, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), nil)
	if err != nil {
		t.Fatalf("adapting: %v", err)
	}
	for _, w := range warnings {
		t.Errorf("warning: %s", w.Message)
	}
	if err := caddy.Load(cfg, true); err != nil {
		t.Fatalf("loading: %v", err)
	}
	t.Cleanup(func() { _ = caddy.Stop() })
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	send(t, "GET", base+"/cf?a=1&token=secret", nil)
	if r := send(t, "GET", base+"/cf?token=other&a=1", nil); !r.isHit() || r.body != "from caddyfile a=1&token=secret" {
		t.Errorf("second: %q %q, want a hit (token dropped from the key)", r.cacheStatus(), r.body)
	}
	app, err := runningApp()
	if err != nil {
		t.Fatal(err)
	}
	if got := app.StoreConfig().MaxSize; got != 32<<20 {
		t.Errorf("store max_size = %d, want %d", got, 32<<20)
	}
	// stale_if_error from the Caddyfile: the origin fails the revalidation.
	send(t, "GET", base+"/old", nil)
	if r := send(t, "GET", base+"/old", nil); r.status != 200 || !strings.Contains(r.cacheStatus(), "stale-if-error") {
		t.Errorf("origin failing: %d %q, want the stale response", r.status, r.cacheStatus())
	}
}

// TestStaleIfErrorDefault: without a stale_if_error setting, a stored
// response past its freshness is served when the origin fails (RFC 5861
// with the default window); "stale_if_error": -1 (Caddyfile: off) passes
// the origin's error on.
func TestStaleIfErrorDefault(t *testing.T) {
	o := newOrigin(t)
	o.handle(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("ETag", `"x"`)
		w.Header().Set("Age", "120") // stale on arrival, 60 s past its lifetime
		if r.Header.Get("If-None-Match") == `"x"` {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "stored")
	})
	for _, tt := range []struct {
		name    string
		handler map[string]any
		want    int
	}{
		{"default", nil, http.StatusOK},
		{"off", map[string]any{"stale_if_error": -1}, http.StatusServiceUnavailable},
	} {
		t.Run(tt.name, func(t *testing.T) {
			port := freePort(t)
			load(t, edge{port: port, origin: o.addr(), handler: tt.handler})
			url := fmt.Sprintf("http://127.0.0.1:%d/sie-%s", port, tt.name)
			send(t, "GET", url, nil)
			r := send(t, "GET", url, nil)
			if r.status != tt.want || (tt.want == http.StatusOK && (r.body != "stored" || !strings.Contains(r.cacheStatus(), "stale-if-error"))) {
				t.Errorf("origin failing: %d %q %q, want %d", r.status, r.body, r.cacheStatus(), tt.want)
			}
		})
	}
}

func TestCoalescingThroughCaddy(t *testing.T) {
	o := newOrigin(t)
	release := make(chan struct{})
	o.handle(func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.Header().Set("Cache-Control", "max-age=600")
		fmt.Fprint(w, "once")
	})
	port := freePort(t)
	load(t, edge{port: port, origin: o.addr()})
	app, err := runningApp()
	if err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/co", port)
	const n = 10
	bodies := make(chan string, n)
	for range n {
		go func() {
			resp, err := http.Get(url)
			if err != nil {
				bodies <- err.Error()
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			bodies <- string(b)
		}()
	}
	waitFor(t, "waiters to join", func() bool { return app.Stats().Coalesced == n-1 })
	close(release)
	for range n {
		if b := <-bodies; b != "once" {
			t.Errorf("body %q, want once", b)
		}
	}
	if got := o.hits.Load(); got != 1 {
		t.Errorf("origin hits = %d, want 1", got)
	}
}

// TestHeaderReplaceDoesNotEditStoredValues runs a deferred header replace
// operation around the cache: hits then copy the stored header values, so
// the replacement applies once to every response instead of accumulating
// in the stored entry that hits share otherwise.
func TestHeaderReplaceDoesNotEditStoredValues(t *testing.T) {
	o := newOrigin(t)
	o.handle(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("X-Tile", "abc")
		fmt.Fprint(w, "tile")
	})
	port := freePort(t)
	replace := map[string]any{"handler": "headers", "response": map[string]any{
		"deferred": true,
		"replace":  map[string]any{"X-Tile": []any{map[string]any{"search": "a", "replace": "aa"}}},
	}}
	load(t, edge{port: port, origin: o.addr(), before: []any{replace}})
	url := fmt.Sprintf("http://127.0.0.1:%d/r", port)
	for i := range 4 {
		r := send(t, "GET", url, nil)
		if got := r.header.Get("X-Tile"); got != "aabc" {
			t.Errorf("request %d (%q): X-Tile %q, want aabc", i, r.cacheStatus(), got)
		}
		if i > 0 && !r.isHit() {
			t.Errorf("request %d: %q, want a hit", i, r.cacheStatus())
		}
	}
}

func TestEditsHeaderValues(t *testing.T) {
	route := func(hs ...caddyhttp.MiddlewareHandler) caddyhttp.RouteList {
		return caddyhttp.RouteList{{Handlers: hs}}
	}
	replace := &headers.Handler{Response: &headers.RespHeaderOps{Deferred: true, HeaderOps: &headers.HeaderOps{
		Replace: map[string][]headers.Replacement{"X-Tile": {{Search: "a", Replace: "b"}}},
	}}}
	setDelete := &headers.Handler{Response: &headers.RespHeaderOps{Deferred: true, HeaderOps: &headers.HeaderOps{
		Set: http.Header{"X-Content-Type-Options": {"nosniff"}}, Delete: []string{"Server"},
	}}}
	request := &headers.Handler{Request: &headers.HeaderOps{
		Replace: map[string][]headers.Replacement{"X-Tile": {{Search: "a", Replace: "b"}}},
	}}
	tests := []struct {
		name   string
		routes caddyhttp.RouteList
		want   bool
	}{
		{"set and delete only", route(setDelete, request, &Handler{}), false},
		{"response replace", route(setDelete, replace, &Handler{}), true},
		{"in a subroute", route(setDelete, &caddyhttp.Subroute{Routes: route(replace)}), true},
		{"in handle_response", route(&reverseproxy.Handler{HandleResponse: []caddyhttp.ResponseHandler{{Routes: route(replace)}}}), true},
		{"nested, harmless", route(&caddyhttp.Subroute{Routes: route(&caddyhttp.Subroute{Routes: route(setDelete)})}), false},
	}
	for _, tt := range tests {
		if got := editsHeaderValues(tt.routes, 0); got != tt.want {
			t.Errorf("%s: editsHeaderValues = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestAbandonedFillThroughCaddy: the only client of a fill hangs up; the
// cache cancels the fill, reverse_proxy its request, and the origin sees
// its request context end.
func TestAbandonedFillThroughCaddy(t *testing.T) {
	o := newOrigin(t)
	started := make(chan struct{}, 4)
	cancelled := make(chan struct{}, 4)
	quit := make(chan struct{})
	t.Cleanup(func() { close(quit) })
	o.handle(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		select {
		case <-r.Context().Done():
			cancelled <- struct{}{}
		case <-quit:
		}
	})
	port := freePort(t)
	load(t, edge{port: port, origin: o.addr(), handler: map[string]any{"fill_timeout": "1h"}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("http://127.0.0.1:%d/tile", port), nil)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		client := &http.Client{Transport: &http.Transport{}}
		defer client.CloseIdleConnections()
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	<-started
	cancel()
	if err := <-errc; err == nil {
		t.Fatal("cancelled request: want an error")
	}
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("the origin's request was not cancelled")
	}
	waitFor(t, "the abandoned fill to be counted", func() bool { return metricValue(t, "meridian_cache_abandoned_total", "") == 1 })
	if got := metricValue(t, "meridian_cache_upstream_errors_total", ""); got != 0 {
		t.Errorf("meridian_cache_upstream_errors_total = %v, want 0", got)
	}
}
