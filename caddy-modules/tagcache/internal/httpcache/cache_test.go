package httpcache

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestHitAfterMiss(t *testing.T) {
	e := newEnv(t, Config{})
	e.respond(200, "hello", "Cache-Control: max-age=60", "Surrogate-Key: a b", "Content-Type: text/plain")

	r1 := e.get("/x")
	if r1.body != "hello" || r1.status != 200 {
		t.Fatalf("first: got %d %q, want 200 hello", r1.status, r1.body)
	}
	if got, want := r1.cacheStatus(), "meridian; fwd=uri-miss; stored"; got != want {
		t.Errorf("first Cache-Status = %q, want %q", got, want)
	}
	if got := r1.header.Get("Surrogate-Key"); got != "" {
		t.Errorf("first Surrogate-Key = %q, want stripped", got)
	}
	e.clock.Advance(5 * time.Second)
	r2 := e.get("/x")
	if r2.body != "hello" || !r2.isHit() {
		t.Fatalf("second: got %q %q, want hello from a hit", r2.body, r2.cacheStatus())
	}
	if got, want := r2.cacheStatus(), "meridian; hit; ttl=55"; got != want {
		t.Errorf("second Cache-Status = %q, want %q", got, want)
	}
	if got, want := r2.header.Get("Age"), "5"; got != want {
		t.Errorf("Age = %q, want %q", got, want)
	}
	if got := r2.header.Get("Surrogate-Key"); got != "" {
		t.Errorf("hit Surrogate-Key = %q, want stripped", got)
	}
	if got, want := r2.header.Get("Content-Type"), "text/plain"; got != want {
		t.Errorf("hit Content-Type = %q, want %q", got, want)
	}
	if got := e.hits.Load(); got != 1 {
		t.Errorf("origin hits = %d, want 1", got)
	}
}

func TestKeyNormalization(t *testing.T) {
	e := newEnv(t, Config{})
	e.handle(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, r.URL.RawQuery)
	})
	tests := []struct {
		path    string
		wantHit bool
	}{
		{"/k?b=2&a=1", false},
		{"/k?a=1&b=2", true},
		{"/k?a=1&b=2&access_token=xyz&client=deck&v=3&deckglVersion=9", true},
		{"/k?a=1&b=3", false},
		{"/k?a=2&a=1&b=2", false},
		{"/k?a=1&a=2&b=2", false}, // repeated names keep their order
		{"/k?b=2&a=1&a=2", true},
		{"/k", false},
		{"/k?access_token=1", true},
	}
	for i, tt := range tests {
		r := e.get(tt.path)
		if r.isHit() != tt.wantHit {
			t.Errorf("Test %d: GET %s: Cache-Status %q, want hit=%v", i, tt.path, r.cacheStatus(), tt.wantHit)
		}
	}
}

func TestFreshness(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		header  []string
		advance time.Duration
		wantHit bool // second request, after advance
	}{
		{"max-age fresh", 200, []string{"Cache-Control: max-age=10"}, 9 * time.Second, true},
		{"max-age stale", 200, []string{"Cache-Control: max-age=10"}, 11 * time.Second, false},
		{"s-maxage over max-age", 200, []string{"Cache-Control: max-age=100, s-maxage=5"}, 6 * time.Second, false},
		{"s-maxage longer than max-age", 200, []string{"Cache-Control: max-age=1, s-maxage=100"}, 50 * time.Second, true},
		{"max-age over Expires", 200, []string{"Cache-Control: max-age=100", "Expires: Thu, 01 Jan 1970 00:00:00 GMT"}, 50 * time.Second, true},
		{"Expires", 200, []string{"Expires: +30s"}, 20 * time.Second, true},
		{"Expires passed", 200, []string{"Expires: +30s"}, 31 * time.Second, false},
		{"invalid Expires is expired", 200, []string{"Expires: 0"}, 0, false},
		{"heuristic 10% of Last-Modified", 200, []string{"Last-Modified: -1000s"}, 90 * time.Second, true},
		{"heuristic expired", 200, []string{"Last-Modified: -1000s"}, 110 * time.Second, false},
		{"heuristic for 404", 404, []string{"Last-Modified: -1000s"}, 50 * time.Second, true},
		{"no heuristic for 500", 500, []string{"Last-Modified: -1000s"}, 0, false},
		{"explicit for 500", 500, []string{"Cache-Control: max-age=60"}, 0, true},
		{"no freshness, no validator", 200, nil, 0, false},
		{"public allows heuristic on 302", 302, []string{"Cache-Control: public", "Last-Modified: -1000s", "Location: /y"}, 10 * time.Second, true},
		{"206 never stored", 206, []string{"Cache-Control: max-age=60", "Content-Range: bytes 0-1/2"}, 0, false},
		{"Age counts", 200, []string{"Cache-Control: max-age=60", "Age: 55"}, 6 * time.Second, false},
		{"Age counts fresh", 200, []string{"Cache-Control: max-age=60", "Age: 55"}, 4 * time.Second, true},
		{"apparent age from Date", 200, []string{"Cache-Control: max-age=60", "Date: -50s"}, 11 * time.Second, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Config{})
			e.handle(func(w http.ResponseWriter, r *http.Request) {
				now := e.clock.Now()
				for _, l := range tt.header {
					k, v, _ := strings.Cut(l, ":")
					v = strings.TrimSpace(v)
					if (k == "Expires" || k == "Last-Modified" || k == "Date") && (v[0] == '+' || v[0] == '-') {
						d, _ := time.ParseDuration(v)
						v = now.Add(d).UTC().Format(http.TimeFormat)
					}
					w.Header().Add(k, v)
				}
				if w.Header().Get("Date") == "" {
					w.Header().Set("Date", now.UTC().Format(http.TimeFormat))
				}
				w.WriteHeader(tt.status)
				fmt.Fprint(w, "body")
			})
			e.get("/f")
			e.clock.Advance(tt.advance)
			r := e.get("/f")
			if r.isHit() != tt.wantHit {
				t.Errorf("second request: Cache-Status %q, want hit=%v", r.cacheStatus(), tt.wantHit)
			}
		})
	}
}

func TestAgeHeaderIncludesUpstreamAge(t *testing.T) {
	e := newEnv(t, Config{})
	e.respond(200, "x", "Cache-Control: max-age=600", "Age: 100")
	e.get("/a")
	e.clock.Advance(20 * time.Second)
	r := e.get("/a")
	age, _ := strconv.Atoi(r.header.Get("Age"))
	if age < 120 || age > 121 {
		t.Errorf("Age = %d, want 120 (100 upstream + 20 resident)", age)
	}
}

func TestNotStored(t *testing.T) {
	tests := []struct {
		name       string
		reqHeader  []string
		respHeader []string
		wantDetail string
	}{
		{"response no-store", nil, []string{"Cache-Control: max-age=60, no-store"}, "no-store"},
		{"response private", nil, []string{"Cache-Control: private, max-age=60"}, "private"},
		{"Vary star", nil, []string{"Cache-Control: max-age=60", "Vary: *"}, "vary-star"},
		{"Set-Cookie", nil, []string{"Cache-Control: max-age=60", "Set-Cookie: a=b"}, "set-cookie"},
		{"Authorization without public", []string{"Authorization: Bearer x"}, []string{"Cache-Control: max-age=60"}, "authorization"},
		{"malformed: bad delta", nil, []string{"Cache-Control: max-age=abc"}, "bad-cache-control"},
		{"malformed: negative", nil, []string{"Cache-Control: max-age=-1"}, "bad-cache-control"},
		{"malformed: conflicting duplicates", nil, []string{"Cache-Control: max-age=60, max-age=10"}, "bad-cache-control"},
		{"malformed: unterminated quote", nil, []string{`Cache-Control: max-age=60, private="x`}, "bad-cache-control"},
		{"malformed: garbage", nil, []string{"Cache-Control: max-age=60 s-maxage=1"}, "bad-cache-control"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Config{})
			e.respond(200, "x", tt.respHeader...)
			r1 := e.get("/n", tt.reqHeader...)
			if got, want := r1.cacheStatus(), "meridian; fwd=uri-miss; detail="+tt.wantDetail; got != want {
				t.Errorf("first Cache-Status = %q, want %q", got, want)
			}
			r2 := e.get("/n", tt.reqHeader...)
			if r2.isHit() || r2.body != "x" {
				t.Errorf("second: Cache-Status %q body %q, want a miss with x", r2.cacheStatus(), r2.body)
			}
			if got := e.hits.Load(); got != 2 {
				t.Errorf("origin hits = %d, want 2", got)
			}
		})
	}
}

func TestRequestDirectives(t *testing.T) {
	tests := []struct {
		name       string
		header     []string
		advance    time.Duration
		wantHit    bool
		wantStatus int
	}{
		{"plain", nil, 0, true, 200},
		{"no-store bypasses", []string{"Cache-Control: no-store"}, 0, false, 200},
		{"no-cache revalidates", []string{"Cache-Control: no-cache"}, 0, false, 200},
		{"Pragma no-cache", []string{"Pragma: no-cache"}, 0, false, 200},
		{"Pragma ignored with Cache-Control", []string{"Pragma: no-cache", "Cache-Control: max-stale"}, 0, true, 200},
		{"max-age=0", []string{"Cache-Control: max-age=0"}, time.Second, false, 200},
		{"max-age satisfied", []string{"Cache-Control: max-age=20"}, 10 * time.Second, true, 200},
		{"max-age not satisfied", []string{"Cache-Control: max-age=5"}, 10 * time.Second, false, 200},
		{"min-fresh satisfied", []string{"Cache-Control: min-fresh=10"}, 20 * time.Second, true, 200},
		{"min-fresh not satisfied", []string{"Cache-Control: min-fresh=50"}, 20 * time.Second, false, 200},
		{"stale without max-stale", nil, 70 * time.Second, false, 200},
		{"max-stale any", []string{"Cache-Control: max-stale"}, 70 * time.Second, true, 200},
		{"max-stale enough", []string{"Cache-Control: max-stale=20"}, 70 * time.Second, true, 200},
		{"max-stale too short", []string{"Cache-Control: max-stale=5"}, 70 * time.Second, false, 200},
		{"malformed request cache-control bypasses", []string{"Cache-Control: max-age=x"}, 0, false, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Config{})
			e.respond(200, "x", "Cache-Control: max-age=60")
			e.get("/r")
			e.clock.Advance(tt.advance)
			r := e.get("/r", tt.header...)
			if r.isHit() != tt.wantHit || r.status != tt.wantStatus {
				t.Errorf("got %d %q, want %d hit=%v", r.status, r.cacheStatus(), tt.wantStatus, tt.wantHit)
			}
		})
	}
}

func TestOnlyIfCached(t *testing.T) {
	e := newEnv(t, Config{})
	e.respond(200, "x", "Cache-Control: max-age=60")
	if r := e.get("/o", "Cache-Control: only-if-cached"); r.status != http.StatusGatewayTimeout {
		t.Errorf("uncached: got %d, want 504", r.status)
	}
	e.get("/o")
	if r := e.get("/o", "Cache-Control: only-if-cached"); r.status != 200 || !r.isHit() {
		t.Errorf("cached: got %d %q, want 200 hit", r.status, r.cacheStatus())
	}
	if got := e.hits.Load(); got != 1 {
		t.Errorf("origin hits = %d, want 1", got)
	}
}

func TestPrivateAndNoCacheFieldsStripped(t *testing.T) {
	e := newEnv(t, Config{})
	e.respond(200, "x", `Cache-Control: max-age=60, private="X-Secret", no-cache="X-Session"`,
		"X-Secret: s", "X-Session: t", "X-Public: p")
	r1 := e.get("/p")
	if r1.header.Get("X-Secret") != "s" {
		t.Errorf("miss: X-Secret = %q, want s (the origin's own response)", r1.header.Get("X-Secret"))
	}
	r2 := e.get("/p")
	if !r2.isHit() {
		t.Fatalf("second: %q, want hit", r2.cacheStatus())
	}
	if got := r2.header.Get("X-Secret"); got != "" {
		t.Errorf("hit X-Secret = %q, want stripped", got)
	}
	if got := r2.header.Get("X-Session"); got != "" {
		t.Errorf("hit X-Session = %q, want stripped", got)
	}
	if got := r2.header.Get("X-Public"); got != "p" {
		t.Errorf("hit X-Public = %q, want p", got)
	}
}

func TestNoCacheResponseRevalidates(t *testing.T) {
	e := newEnv(t, Config{})
	var conditional int
	e.handle(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache, max-age=600")
		w.Header().Set("ETag", `"v1"`)
		if r.Header.Get("If-None-Match") == `"v1"` {
			conditional++
			w.WriteHeader(http.StatusNotModified)
			return
		}
		fmt.Fprint(w, "body")
	})
	e.get("/nc")
	for i := 0; i < 3; i++ {
		r := e.get("/nc")
		if r.status != 200 || r.body != "body" {
			t.Fatalf("request %d: got %d %q, want 200 body", i, r.status, r.body)
		}
		if got, want := r.cacheStatus(), "meridian; fwd=stale; fwd-status=304"; got != want {
			t.Errorf("request %d: Cache-Status %q, want %q", i, got, want)
		}
	}
	if conditional != 3 {
		t.Errorf("conditional requests = %d, want 3", conditional)
	}
}

func TestMustRevalidateNeverStale(t *testing.T) {
	for _, cc := range []string{"max-age=1, must-revalidate", "max-age=1, proxy-revalidate", "s-maxage=1"} {
		t.Run(cc, func(t *testing.T) {
			e := newEnv(t, Config{StaleWhileRevalidate: time.Hour, StaleIfError: time.Hour})
			e.respond(200, "x", "Cache-Control: "+cc)
			e.get("/m")
			e.clock.Advance(5 * time.Second)
			if r := e.get("/m", "Cache-Control: max-stale"); r.isHit() {
				t.Errorf("max-stale: %q, want no stale hit", r.cacheStatus())
			}
			e.respond(503, "down")
			e.clock.Advance(5 * time.Second)
			if r := e.get("/m"); r.status != 503 {
				t.Errorf("origin down: got %d %q, want the 503", r.status, r.cacheStatus())
			}
		})
	}
}

func TestVaryVariants(t *testing.T) {
	e := newEnv(t, Config{})
	e.handle(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "Accept-Encoding, X-Lang")
		fmt.Fprintf(w, "%s|%s", r.Header.Get("Accept-Encoding"), r.Header.Get("X-Lang"))
	})
	steps := []struct {
		header   []string
		wantBody string
		wantHit  bool
	}{
		{[]string{"Accept-Encoding: gzip"}, "gzip|", false},
		{[]string{"Accept-Encoding: br"}, "br|", false},
		{[]string{"Accept-Encoding: gzip"}, "gzip|", true},
		{[]string{"Accept-Encoding: br"}, "br|", true},
		{[]string{"Accept-Encoding: gzip", "X-Lang: fr"}, "gzip|fr", false},
		{[]string{"Accept-Encoding: gzip", "X-Lang: fr"}, "gzip|fr", true},
		{[]string{"Accept-Encoding: gzip,  br"}, "gzip,  br|", false},
		{[]string{"Accept-Encoding: gzip,br"}, "gzip,  br|", true}, // whitespace normalized
		{[]string{"Accept-Encoding: identity"}, "identity|", false},
		{nil, "|", false},
		{nil, "|", true},
	}
	for i, s := range steps {
		r := e.get("/v", s.header...)
		if r.body != s.wantBody || r.isHit() != s.wantHit {
			t.Errorf("Test %d: got %q %q, want %q hit=%v", i, r.body, r.cacheStatus(), s.wantBody, s.wantHit)
		}
		if i == 1 && !strings.Contains(r.cacheStatus(), "fwd=vary-miss") {
			t.Errorf("Test %d: Cache-Status %q, want fwd=vary-miss", i, r.cacheStatus())
		}
	}
}

func TestVaryStarNeverMatches(t *testing.T) {
	e := newEnv(t, Config{})
	e.respond(200, "x", "Cache-Control: max-age=60", "Vary: *")
	for i := 0; i < 3; i++ {
		if r := e.get("/vs"); r.isHit() {
			t.Errorf("request %d: %q, want miss", i, r.cacheStatus())
		}
	}
	if got := e.hits.Load(); got != 3 {
		t.Errorf("origin hits = %d, want 3", got)
	}
}

func TestHeadFromGet(t *testing.T) {
	e := newEnv(t, Config{})
	var methods []string
	e.handle(func(w http.ResponseWriter, r *http.Request) {
		methods = append(methods, r.Method)
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "0123456789")
	})
	e.get("/h")
	r := e.do(http.MethodHead, "/h")
	if !r.isHit() || r.body != "" || r.header.Get("Content-Length") != "10" {
		t.Errorf("HEAD after GET: %q body %q Content-Length %q, want hit, no body, 10", r.cacheStatus(), r.body, r.header.Get("Content-Length"))
	}
	// HEAD first: fetched with GET upstream, so a later GET hits.
	r = e.do(http.MethodHead, "/h2")
	if r.body != "" || r.header.Get("Content-Length") != "10" {
		t.Errorf("HEAD miss: body %q Content-Length %q, want none and 10", r.body, r.header.Get("Content-Length"))
	}
	if r = e.get("/h2"); !r.isHit() || r.body != "0123456789" {
		t.Errorf("GET after HEAD: %q %q, want hit with body", r.cacheStatus(), r.body)
	}
	if got := strings.Join(methods, ","); got != "GET,GET" {
		t.Errorf("origin methods = %s, want GET,GET", got)
	}
}

func TestRevalidationUpdatesStoredHeaders(t *testing.T) {
	e := newEnv(t, Config{})
	version := "1"
	var sawINM, sawIMS string
	e.handle(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=10")
		w.Header().Set("X-Version", version)
		if inm := r.Header.Get("If-None-Match"); inm != "" {
			sawINM, sawIMS = inm, r.Header.Get("If-Modified-Since")
			w.Header().Set("Cache-Control", "max-age=100")
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", `"e1"`)
		w.Header().Set("Last-Modified", "Mon, 02 Jan 2006 15:04:05 GMT")
		w.Header().Set("Content-Type", "text/x-original")
		fmt.Fprint(w, "stored body")
	})
	e.get("/rv")
	e.clock.Advance(20 * time.Second)
	version = "2"
	r := e.get("/rv")
	if sawINM != `"e1"` || sawIMS != "Mon, 02 Jan 2006 15:04:05 GMT" {
		t.Errorf("conditional request had If-None-Match %q If-Modified-Since %q", sawINM, sawIMS)
	}
	if r.status != 200 || r.body != "stored body" || r.header.Get("X-Version") != "2" {
		t.Errorf("revalidated: %d %q X-Version %q, want 200, stored body, 2", r.status, r.body, r.header.Get("X-Version"))
	}
	e.clock.Advance(50 * time.Second) // fresh for 100s after the 304
	r = e.get("/rv")
	if !r.isHit() || r.header.Get("X-Version") != "2" || r.header.Get("Content-Type") != "text/x-original" {
		t.Errorf("after 304: %q X-Version %q Content-Type %q, want hit with updated headers", r.cacheStatus(), r.header.Get("X-Version"), r.header.Get("Content-Type"))
	}
	if got := e.hits.Load(); got != 2 {
		t.Errorf("origin hits = %d, want 2", got)
	}
}

func TestClientConditionalFromCache(t *testing.T) {
	e := newEnv(t, Config{})
	e.respond(200, "x", "Cache-Control: max-age=60", `ETag: "abc"`, "Last-Modified: Mon, 02 Jan 2006 15:04:05 GMT")
	tests := []struct {
		header []string
		want   int
	}{
		{[]string{`If-None-Match: "abc"`}, 304},
		{[]string{`If-None-Match: W/"abc"`}, 304},
		{[]string{`If-None-Match: "zzz", "abc"`}, 304},
		{[]string{`If-None-Match: *`}, 304},
		{[]string{`If-None-Match: "zzz"`}, 200},
		{[]string{"If-Modified-Since: Mon, 02 Jan 2006 15:04:05 GMT"}, 304},
		{[]string{"If-Modified-Since: Sun, 01 Jan 2006 15:04:05 GMT"}, 200},
		{[]string{`If-None-Match: "zzz"`, "If-Modified-Since: Mon, 02 Jan 2006 15:04:05 GMT"}, 200},
	}
	// the first one is a miss answered from the fill
	for i, tt := range tests {
		r := e.get("/c", tt.header...)
		if r.status != tt.want {
			t.Errorf("Test %d: %v: got %d, want %d", i, tt.header, r.status, tt.want)
		}
	}
	if got := e.hits.Load(); got != 1 {
		t.Errorf("origin hits = %d, want 1", got)
	}
}

func TestUnsafeMethodInvalidates(t *testing.T) {
	tests := []struct {
		name        string
		method      string
		status      int
		respHeader  []string
		path        string // GET after the unsafe request
		wantInvalid bool
	}{
		{"POST 200", "POST", 200, nil, "/u/a?x=1", true},
		{"PUT 204", "PUT", 204, nil, "/u/a?x=1", true},
		{"DELETE 303", "DELETE", 303, nil, "/u/a?x=1", true},
		{"PATCH 500 keeps", "PATCH", 500, nil, "/u/a?x=1", false},
		{"POST 404 keeps", "POST", 404, nil, "/u/a?x=1", false},
		{"Location same host", "POST", 201, []string{"Location: /u/b"}, "/u/b", true},
		{"Content-Location relative", "POST", 200, []string{"Content-Location: b"}, "/u/b", true},
		{"Location other host", "POST", 201, []string{"Location: http://elsewhere.example/u/b"}, "/u/b", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Config{})
			e.handle(func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodGet {
					setHeader(w.Header(), tt.respHeader...)
					w.WriteHeader(tt.status)
					return
				}
				w.Header().Set("Cache-Control", "max-age=60")
				fmt.Fprint(w, "x")
			})
			e.get(tt.path)
			r := e.do(tt.method, "/u/a?x=1")
			if r.status != tt.status {
				t.Fatalf("%s: got %d, want %d", tt.method, r.status, tt.status)
			}
			if got := r.cacheStatus(); got != "meridian; fwd=method" {
				t.Errorf("%s Cache-Status = %q", tt.method, got)
			}
			if r := e.get(tt.path); r.isHit() == tt.wantInvalid {
				t.Errorf("GET %s after %s: %q, want invalidated=%v", tt.path, tt.method, r.cacheStatus(), tt.wantInvalid)
			}
		})
	}
}

func TestAuthorizationChecked(t *testing.T) {
	tests := []struct {
		name    string
		checked bool
		cc      string
		wantHit bool
	}{
		{"unchecked max-age", false, "max-age=60", false},
		{"unchecked public", false, "public, max-age=60", true},
		{"unchecked s-maxage", false, "s-maxage=60", true},
		{"unchecked must-revalidate", false, "max-age=60, must-revalidate", true},
		{"checked max-age", true, "max-age=60", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Config{AuthorizationChecked: tt.checked})
			e.respond(200, "x", "Cache-Control: "+tt.cc)
			e.get("/z", "Authorization: Bearer one")
			r := e.get("/z", "Authorization: Bearer two")
			if r.isHit() != tt.wantHit {
				t.Errorf("second: %q, want hit=%v", r.cacheStatus(), tt.wantHit)
			}
		})
	}
	t.Run("unauthenticated entry not served to Authorization", func(t *testing.T) {
		e := newEnv(t, Config{})
		e.respond(200, "x", "Cache-Control: max-age=60")
		e.get("/z")
		if r := e.get("/z", "Authorization: Bearer one"); r.isHit() {
			t.Errorf("with Authorization: %q, want miss", r.cacheStatus())
		}
	})
}

func TestOversizeServedNotStored(t *testing.T) {
	for _, known := range []bool{true, false} {
		t.Run(fmt.Sprintf("content-length=%v", known), func(t *testing.T) {
			e := newEnv(t, Config{MaxEntrySize: 1000})
			body := strings.Repeat("b", 5000)
			e.handle(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Cache-Control", "max-age=60")
				if known {
					w.Header().Set("Content-Length", strconv.Itoa(len(body)))
				}
				for i := 0; i < len(body); i += 500 {
					fmt.Fprint(w, body[i:i+500])
					w.(http.Flusher).Flush()
				}
			})
			for i := 0; i < 2; i++ {
				r := e.get("/big")
				if r.body != body {
					t.Fatalf("request %d: got %d bytes, want %d", i, len(r.body), len(body))
				}
				if r.isHit() {
					t.Errorf("request %d: %q, want not cached", i, r.cacheStatus())
				}
			}
			if got := e.hits.Load(); got != 2 {
				t.Errorf("origin hits = %d, want 2", got)
			}
		})
	}
}

func TestUpstreamDiesMidBody(t *testing.T) {
	e := newEnv(t, Config{})
	e.handle(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Length", "1000")
		fmt.Fprint(w, strings.Repeat("x", 400))
		w.(http.Flusher).Flush()
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	})
	req, _ := http.NewRequest(http.MethodGet, e.front.URL+"/die", nil)
	if resp, err := e.client.Do(req); err == nil {
		b := make([]byte, 2000)
		n, _ := resp.Body.Read(b)
		for err == nil {
			var m int
			m, err = resp.Body.Read(b[n:])
			n += m
		}
		resp.Body.Close()
		if n >= 1000 {
			t.Errorf("client read %d bytes of a truncated response", n)
		}
	}
	e.respond(200, "whole", "Cache-Control: max-age=60")
	if r := e.get("/die"); r.isHit() || r.body != "whole" {
		t.Errorf("after truncated fill: %q %q, want a miss", r.cacheStatus(), r.body)
	}
}

func TestThousandsOfTags(t *testing.T) {
	e := newEnv(t, Config{})
	tags := make([]string, 5000)
	for i := range tags {
		tags[i] = fmt.Sprintf("t%d", i)
	}
	e.respond(200, "x", "Cache-Control: max-age=60", "Surrogate-Key: "+strings.Join(tags, " "))
	e.get("/tags")
	if r := e.get("/tags"); !r.isHit() {
		t.Fatalf("second: %q, want hit", r.cacheStatus())
	}
	// A tag beyond the cap is not indexed: purging it changes nothing
	// (pick one whose slot no indexed tag shares, collisions being legal).
	used := map[uint32]bool{}
	for _, p := range e.store.pathSlots("/tags", nil) {
		used[p] = true
	}
	for _, tag := range tags[:DefaultMaxTags] {
		used[e.store.slot(tag)] = true
	}
	unindexed := ""
	for _, tag := range tags[DefaultMaxTags:] {
		if !used[e.store.slot(tag)] {
			unindexed = tag
			break
		}
	}
	e.store.PurgeTags([]string{unindexed}, false)
	if r := e.get("/tags"); !r.isHit() {
		t.Errorf("after purging an unindexed tag: %q, want hit", r.cacheStatus())
	}
	e.store.PurgeTags([]string{"t200"}, false)
	if r := e.get("/tags"); r.isHit() {
		t.Errorf("after purging t200: %q, want miss", r.cacheStatus())
	}
}

func TestInformationalResponsePassesThrough(t *testing.T) {
	e := newEnv(t, Config{})
	e.handle(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "final")
	})
	r := e.get("/103")
	if r.status != 200 || r.body != "final" || r.header.Get("Link") != "" {
		t.Errorf("got %d %q Link %q, want 200 final without the 103's Link", r.status, r.body, r.header.Get("Link"))
	}
	if r := e.get("/103"); !r.isHit() {
		t.Errorf("second: %q, want hit", r.cacheStatus())
	}
}

func TestCacheStatusBypass(t *testing.T) {
	e := newEnv(t, Config{})
	e.respond(200, "x", "Cache-Control: max-age=60", "Surrogate-Key: a")
	tests := []struct {
		method string
		header []string
		want   string
	}{
		{"GET", []string{"Range: bytes=0-0"}, "meridian; fwd=bypass"},
		{"OPTIONS", nil, "meridian; fwd=method"},
		{"GET", []string{"Cache-Control: no-store"}, "meridian; fwd=request; detail=no-store"},
	}
	for i, tt := range tests {
		r := e.do(tt.method, "/cs", tt.header...)
		if got := r.cacheStatus(); got != tt.want {
			t.Errorf("Test %d: %s %v: Cache-Status %q, want %q", i, tt.method, tt.header, got, tt.want)
		}
		if r.header.Get("Surrogate-Key") != "" {
			t.Errorf("Test %d: Surrogate-Key not stripped", i)
		}
	}
}

// TestHitHeaderValuesShared: hits share the stored header values, so a
// later handler adding to a field or setting one must not change what the
// next hit sends; with SetCopyHeaderValues even an assignment in place
// does not.
func TestHitHeaderValuesShared(t *testing.T) {
	e := newEnv(t, Config{})
	e.respond(200, "v", "Cache-Control: max-age=60", "Vary: Accept", "Content-Type: text/plain", "X-Two: a", "X-Two: b")
	e.get("/s")
	waitFor(t, "the fill to be stored", func() bool { return e.store.Stats().Stores == 2 }) // and its Vary index
	next := HandlerFunc(func(http.ResponseWriter, *http.Request) error {
		t.Error("a hit reached next")
		return nil
	})
	req := httptest.NewRequest(http.MethodGet, e.front.URL+"/s", nil)
	hit := func() http.Header {
		t.Helper()
		rec := httptest.NewRecorder()
		if err := e.cache.ServeHTTP(rec, req, next); err != nil {
			t.Fatal(err)
		}
		if st := rec.Header().Get("Cache-Status"); !strings.HasPrefix(st, "meridian; hit") {
			t.Fatalf("Cache-Status %q, want a hit", st)
		}
		return rec.Header()
	}
	want := func(h http.Header) {
		t.Helper()
		if got := h["Vary"]; len(got) != 1 || got[0] != "Accept" {
			t.Errorf("Vary %q, want [Accept]", got)
		}
		if got := h["X-Two"]; len(got) != 2 || got[0] != "a" || got[1] != "b" {
			t.Errorf("X-Two %q, want [a b]", got)
		}
		if got := h["Cache-Status"]; len(got) != 1 {
			t.Errorf("Cache-Status %q, want one value", got)
		}
	}
	h := hit()
	h.Add("Vary", "Accept-Encoding") // as the encode handler does
	h.Add("X-Two", "c")
	h.Add("Cache-Status", "other; hit")
	h.Set("Content-Type", "application/json")
	want(hit())

	e.cache.SetCopyHeaderValues(true)
	h = hit()
	h["X-Two"][0] = "edited" // as a header replace operation does
	h["Cache-Status"][0] = "edited"
	want(hit())
}
