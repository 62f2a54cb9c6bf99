package main

import (
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/meridian-gis/meridian"
	"github.com/meridian-gis/meridian/static"
)

// The shipped Caddyfile's routes for the web apps and the control plane,
// in process and without a database: the config adapted from the real
// Caddyfile minus what needs the metadata database (the meridian and
// meridian_cache apps, and the routes through meridian_auth or
// meridian_cache), in front of a stand-in control plane answering as the
// real one does.
func TestRootCaddyfileServesWebApps(t *testing.T) {
	control := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/api/version" || r.URL.Path == "/healthz" {
			fmt.Fprint(w, `{"version":"stand-in"}`)
			return
		}
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, `{"error":"no route for %s %s","status":404,"code":"NOT_FOUND"}`, r.Method, r.URL.Path)
	}))
	t.Cleanup(control.Close)
	port := freePort(t)
	home := t.TempDir() // Caddy's data and config folders
	t.Setenv("HOME", home)
	t.Setenv("XDG_DATA_HOME", home)
	t.Setenv("XDG_CONFIG_HOME", home)
	t.Setenv("MERIDIAN_SITE_ADDRESS", fmt.Sprintf("http://127.0.0.1:%d", port))
	t.Setenv("MERIDIAN_CONTROL_UPSTREAMS", strings.TrimPrefix(control.URL, "http://"))
	js, _, err := caddyconfig.GetAdapter("caddyfile").Adapt(meridian.Caddyfile, map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(js, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["admin"] = map[string]any{"disabled": true, "config": map[string]any{"persist": false}}
	apps := cfg["apps"].(map[string]any)
	delete(apps, "meridian")
	delete(apps, "meridian_cache")
	servers := apps["http"].(map[string]any)["servers"].(map[string]any)
	for _, srv := range servers {
		srv := srv.(map[string]any)
		srv["routes"] = withoutDBRoutes(srv["routes"].([]any))
	}
	js, _ = json.Marshal(cfg)
	if err := caddy.Load(js, true); err != nil {
		t.Fatalf("loading the adapted Caddyfile: %v", err)
	}
	t.Cleanup(func() { caddy.Stop() })
	checkWebAppRoutes(t, fmt.Sprintf("http://127.0.0.1:%d", port))
}

// withoutDBRoutes drops, at any depth, the routes with a handler that
// needs the meridian app.
func withoutDBRoutes(routes []any) []any {
	var out []any
	for _, r := range routes {
		keep := true
		for _, h := range r.(map[string]any)["handle"].([]any) {
			h := h.(map[string]any)
			switch h["handler"] {
			case "meridian_auth", "meridian_cache":
				keep = false
			case "subroute":
				h["routes"] = withoutDBRoutes(h["routes"].([]any))
			}
		}
		if keep {
			out = append(out, r)
		}
	}
	return out
}

// webReply is one answer from the edge, body decoded.
type webReply struct {
	status int
	header http.Header
	body   string
}

// webGet sends a request to the edge without following redirects or
// asking for compression (unless hdr asks).
func webGet(t *testing.T, method, url string, hdr ...string) webReply {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	var body io.Reader = res.Body
	if res.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(res.Body)
		if err != nil {
			t.Fatalf("%s %s: bad gzip: %v", method, url, err)
		}
		body = zr
	}
	b, err := io.ReadAll(body)
	if err != nil {
		t.Fatalf("%s %s: reading: %v", method, url, err)
	}
	return webReply{res.StatusCode, res.Header, string(b)}
}

var assetLinkRE = regexp.MustCompile(`\s(?:src|href)="(/assets/[^"]+)"`)

// checkWebAppRoutes checks what the edge at base serves besides the
// maps API: the two apps with their client-side routes and assets, and
// /api/ still answered by the control plane.
func checkWebAppRoutes(t *testing.T, base string) {
	t.Helper()
	apps, err := static.WebApps()
	if err != nil {
		t.Fatal(err)
	}
	page := func(name string) string {
		b, err := fs.ReadFile(apps, name)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	workspace, accounts := page("index.html"), page("acc/index.html")

	// The pages, at their paths and at any client-side route.
	for _, tt := range []struct{ path, want string }{
		{"/", workspace},
		{"/sql", workspace},
		{"/some/deep/link?x=1", workspace},
		{"/acc/", accounts},
		{"/acc/tokens", accounts},
		{"/acc/a/b", accounts},
	} {
		r := webGet(t, "GET", base+tt.path)
		if r.status != http.StatusOK || r.body != tt.want {
			t.Errorf("GET %s = %d, %d bytes (%.80q); want 200 and the %s page", tt.path, r.status, len(r.body), r.body,
				map[bool]string{true: "workspace", false: "accounts"}[tt.want == workspace])
			continue
		}
		if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
			t.Errorf("GET %s: Content-Type %q, want text/html", tt.path, ct)
		}
		if cc := r.header.Get("Cache-Control"); cc != "no-cache" {
			t.Errorf("GET %s: Cache-Control %q, want no-cache (pages are revalidated)", tt.path, cc)
		}
		csp := r.header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("GET %s: Content-Security-Policy %q lacks %q", tt.path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-") {
			t.Errorf("GET %s: Content-Security-Policy %q allows unsafe sources", tt.path, csp)
		}
		if r.header.Get("X-Content-Type-Options") != "nosniff" || r.header.Get("Server") != "" {
			t.Errorf("GET %s: X-Content-Type-Options %q, Server %q; want nosniff and none", tt.path,
				r.header.Get("X-Content-Type-Options"), r.header.Get("Server"))
		}
	}
	if r := webGet(t, "GET", base+"/", "Accept-Encoding", "gzip"); r.header.Get("Content-Encoding") != "gzip" || r.body != workspace {
		t.Errorf("GET / with Accept-Encoding gzip: Content-Encoding %q; want the page gzipped", r.header.Get("Content-Encoding"))
	}
	for _, tt := range []struct{ path, location string }{
		{"/acc", "/acc/"},
		{"/acc?next=%2Fsql", "/acc/?next=%2Fsql"},
	} {
		if r := webGet(t, "GET", base+tt.path); r.status != http.StatusPermanentRedirect || r.header.Get("Location") != tt.location {
			t.Errorf("GET %s = %d to %q, want 308 to %s", tt.path, r.status, r.header.Get("Location"), tt.location)
		}
	}
	if r := webGet(t, "POST", base+"/"); r.status != http.StatusMethodNotAllowed {
		t.Errorf("POST / = %d, want 405", r.status)
	}

	// Every asset the pages name: immutable, typed, compressed when big.
	var assets []string
	for _, m := range assetLinkRE.FindAllStringSubmatch(workspace+accounts, -1) {
		assets = append(assets, m[1])
	}
	if len(assets) < 6 {
		t.Fatalf("the pages name %d assets (%q), want the style sheet, the icon and the scripts", len(assets), assets)
	}
	types := map[string]string{".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
	for _, a := range assets {
		want, err := fs.ReadFile(apps, a[1:])
		if err != nil {
			t.Fatal(err)
		}
		r := webGet(t, "GET", base+a, "Accept-Encoding", "gzip")
		if r.status != http.StatusOK || r.body != string(want) {
			t.Errorf("GET %s = %d, %d bytes; want 200 and the file (%d bytes)", a, r.status, len(r.body), len(want))
			continue
		}
		if cc := r.header.Get("Cache-Control"); cc != "public, max-age=31536000, immutable" {
			t.Errorf("GET %s: Cache-Control %q, want a year, immutable", a, cc)
		}
		ext := a[strings.LastIndex(a, "."):]
		if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, types[ext]) {
			t.Errorf("GET %s: Content-Type %q, want %s", a, ct, types[ext])
		}
		if len(want) > 1024 && r.header.Get("Content-Encoding") != "gzip" {
			t.Errorf("GET %s (%d bytes): Content-Encoding %q, want gzip", a, len(want), r.header.Get("Content-Encoding"))
		}
	}
	// A missing asset is a plain 404, not a page, and not cached for good.
	if r := webGet(t, "GET", base+"/assets/missing.0123456789.js"); r.status != http.StatusNotFound ||
		strings.Contains(r.body, "<html") || strings.Contains(r.header.Get("Cache-Control"), "immutable") {
		t.Errorf("GET a missing asset = %d, Cache-Control %q, body %.80q; want a 404 that is not the page nor immutable",
			r.status, r.header.Get("Cache-Control"), r.body)
	}
	// The preview page's sources are not web app files.
	if r := webGet(t, "GET", base+"/preview/preview.js"); r.body != workspace {
		t.Errorf("GET /preview/preview.js = %d %.80q, want the workspace page (no such file)", r.status, r.body)
	}

	// /api/ stays the control plane's: JSON, its own 404s, no page CSP.
	for _, tt := range []struct {
		path   string
		status int
		want   string
	}{
		{"/api/version", http.StatusOK, `"version"`},
		{"/api/nope", http.StatusNotFound, `"code":"NOT_FOUND"`},
	} {
		r := webGet(t, "GET", base+tt.path)
		if r.status != tt.status || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") ||
			!strings.Contains(r.body, tt.want) || !json.Valid([]byte(r.body)) {
			t.Errorf("GET %s = %d %q %.120q; want %d, JSON holding %s", tt.path, r.status, r.header.Get("Content-Type"), r.body, tt.status, tt.want)
		}
		if r.header.Get("Content-Security-Policy") != "" {
			t.Errorf("GET %s carries the web apps' Content-Security-Policy", tt.path)
		}
	}
	// /api itself is the control plane's too (net/http redirects it to /api/).
	if r := webGet(t, "GET", base+"/api"); r.body == workspace || r.header.Get("Content-Security-Policy") != "" {
		t.Errorf("GET /api = %d, the workspace page; want the control plane's answer", r.status)
	}
}
