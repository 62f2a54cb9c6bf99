package scenarios

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/meridian-gis/meridian/bench"
	"github.com/meridian-gis/meridian/bench/load"
	"github.com/meridian-gis/meridian/bench/peers"
)

func TestParseH2Load(t *testing.T) {
	// Captured from h2load nghttp2/1.52.0 against nginx 1.22.1 (-t2 -c64 -m1 -D 3s).
	out, err := os.ReadFile("testdata/h2load.txt")
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseH2Load(string(out))
	if err != nil {
		t.Fatal(err)
	}
	want := h2LoadResult{
		TLSProtocol: "TLSv1.3", Cipher: "TLS_AES_128_GCM_SHA256", ALPN: "h2",
		Elapsed: 3040 * time.Millisecond, RequestsPerSec: 11574.67,
		Total: 34724, Succeeded: 34724,
		Status:     [6]uint64{2: 34724},
		DataBytes:  1066721280,
		RequestMin: 148 * time.Microsecond, RequestMax: 130350 * time.Microsecond,
		RequestMean: 4850 * time.Microsecond, RequestSD: 7240 * time.Microsecond,
	}
	if got != want {
		t.Errorf("parseH2Load(sample) =\n%+v\nwant\n%+v", got, want)
	}
}

func TestParseH2LoadFailures(t *testing.T) {
	sample, err := os.ReadFile("testdata/h2load.txt")
	if err != nil {
		t.Fatal(err)
	}
	s := string(sample)
	tests := []struct {
		name, out, want string
	}{
		{"empty", "", `no "finished in" line`},
		{"connection refused", "starting benchmark...\nclient could not connect to host\n", `no "requests:" line`},
		{"bad rate", strings.Replace(s, "11574.67 req/s", "fast req/s", 1), "fast"},
		{"bad count", strings.Replace(s, "0 errored", "none errored", 1), "none"},
		{"bad time", strings.Replace(s, "4.85ms", "4.85h", 1), "unknown unit"},
		{"short time row", strings.Replace(s, "time for request:      148us    130.35ms", "time for request:", 1), "want min, max, mean and sd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseH2Load(tt.out)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("parseH2Load error = %v, want one containing %q", err, tt.want)
			}
		})
	}

	// A run with failures keeps its counts.
	failed := strings.Replace(s, "34724 succeeded, 0 failed, 0 errored, 0 timeout",
		"34700 succeeded, 24 failed, 3 errored, 2 timeout", 1)
	failed = strings.Replace(failed, "34724 2xx, 0 3xx, 0 4xx, 0 5xx", "34700 2xx, 0 3xx, 0 4xx, 24 5xx", 1)
	got, err := parseH2Load(failed)
	if err != nil {
		t.Fatal(err)
	}
	if got.Succeeded != 34700 || got.Failed != 24 || got.Errored != 3 || got.Timeout != 2 || got.Status[5] != 24 {
		t.Errorf("parseH2Load(failures) = %+v, want 34700 succeeded, 24 failed, 3 errored, 2 timeouts, 24 5xx", got)
	}
}

func TestH2LoadArgs(t *testing.T) {
	tests := []struct {
		name string
		h    h2Load
		want string
	}{
		{"defaults", h2Load{}, "-t 2 -c 64 -m 1 -D 3s --tls13-ciphers=TLS_AES_128_GCM_SHA256 https://127.0.0.1:1/t"},
		{"set", h2Load{Threads: 1, Clients: 8, Streams: 10, Duration: 1500 * time.Millisecond, TLS13Ciphers: "TLS_CHACHA20_POLY1305_SHA256"},
			"-t 1 -c 8 -m 10 -D 1500ms --tls13-ciphers=TLS_CHACHA20_POLY1305_SHA256 https://127.0.0.1:1/t"},
		{"clients below threads", h2Load{Threads: 4, Clients: 2}, "-t 4 -c 4 -m 1 -D 3s --tls13-ciphers=TLS_AES_128_GCM_SHA256 https://127.0.0.1:1/t"},
		{"sub-millisecond rounds up", h2Load{Duration: 2*time.Second + 100*time.Microsecond}, "-t 2 -c 64 -m 1 -D 2001ms --tls13-ciphers=TLS_AES_128_GCM_SHA256 https://127.0.0.1:1/t"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := strings.Join(tt.h.args("https://127.0.0.1:1/t"), " "); got != tt.want {
				t.Errorf("args() = %q, want %q", got, tt.want)
			}
		})
	}
	if _, err := (h2Load{Path: "/nonexistent/h2load"}).run(context.Background(), "https://example.com/t"); err == nil ||
		!strings.Contains(err.Error(), "not loopback") {
		t.Errorf("run(non-loopback) error = %v, want a loopback refusal", err)
	}
	if _, err := (h2Load{Path: "/nonexistent/h2load", Duration: time.Hour}).run(context.Background(), "https://127.0.0.1:1/t"); err == nil ||
		!strings.Contains(err.Error(), "cap") {
		t.Errorf("run(1h) error = %v, want the duration cap", err)
	}
}

func TestFromH2Load(t *testing.T) {
	ok := h2LoadResult{
		TLSProtocol: "TLSv1.3", Cipher: "TLS_AES_128_GCM_SHA256", ALPN: "h2",
		Elapsed: 2 * time.Second, RequestsPerSec: 1000, Total: 2000, Succeeded: 2000,
		Status: [6]uint64{2: 1990, 5: 10}, DataBytes: 4e6, RequestMean: 3 * time.Millisecond, RequestMax: 9 * time.Millisecond,
		Failed: 1,
	}
	res, err := fromH2Load(ok)
	if err != nil {
		t.Fatal(err)
	}
	if res.Primary.Value != 1000 || res.Primary.Unit != "req/s" || res.Primary.Better != bench.HigherIsBetter {
		t.Errorf("primary = %+v, want 1000 req/s, higher is better", res.Primary)
	}
	got := map[string]float64{}
	for _, m := range res.Secondary {
		got[m.Name] = m.Value
	}
	if got["mean"] != 3 || got["max"] != 9 || got["body"] != 2 {
		t.Errorf("secondary = %v, want mean 3 ms, max 9 ms, body 2 MB/s", got)
	}
	notes := strings.Join(res.Notes, "; ")
	for _, want := range []string{"TLSv1.3 TLS_AES_128_GCM_SHA256 h2", "1 failed", "10 responses outside 2xx/3xx"} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes %q lack %q", notes, want)
		}
	}

	h1 := ok
	h1.ALPN = "http/1.1"
	if _, err := fromH2Load(h1); err == nil || !strings.Contains(err.Error(), "not h2") {
		t.Errorf("fromH2Load(http/1.1) error = %v, want one refusing it", err)
	}
	if _, err := fromH2Load(h2LoadResult{Errored: 64}); err == nil || !strings.Contains(err.Error(), "64 errored") {
		t.Errorf("fromH2Load(nothing succeeded) error = %v, want one with the counts", err)
	}
}

func TestCacheStatusHit(t *testing.T) {
	tests := []struct {
		name   string
		values []string
		want   bool
	}{
		{"meridian hit", []string{"meridian; hit; ttl=3599"}, true},
		{"stale hit", []string{"meridian; hit; ttl=-2; detail=stale"}, true},
		{"miss", []string{"meridian; fwd=uri-miss; stored"}, false},
		{"hit in a later member", []string{"origin; fwd=miss, meridian; hit"}, true},
		{"hit in a second field line", []string{"cdn; fwd=miss", "meridian;hit"}, true},
		{"cache named hit", []string{"hit; fwd=miss"}, false},
		{"hit-like parameter", []string{"meridian; hits=3"}, false},
		{"none", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := cacheStatusHit(tt.values); got != tt.want {
				t.Errorf("cacheStatusHit(%q) = %t, want %t", tt.values, got, tt.want)
			}
		})
	}
	h := http.Header{}
	h.Set("X-Varnish", "32770 3")
	h.Set("X-Cache-Status", "HIT")
	if !varnishHit(h) || !nginxHit(h) || meridianHit(h) {
		t.Errorf("hit checks on %v: varnish %t nginx %t meridian %t, want true true false", h, varnishHit(h), nginxHit(h), meridianHit(h))
	}
	h.Set("X-Varnish", "2")
	h.Set("X-Cache-Status", "MISS")
	if varnishHit(h) || nginxHit(h) {
		t.Errorf("hit checks on %v: varnish %t nginx %t, want misses", h, varnishHit(h), nginxHit(h))
	}
}

func TestTileBody(t *testing.T) {
	b := tileBody(objectSize)
	if len(b) != objectSize || !bytes.Equal(b, tileBody(objectSize)) {
		t.Fatalf("tileBody(%d) is %d bytes or not deterministic", objectSize, len(b))
	}
	if bytes.ContainsAny(b, "`{}\n") {
		t.Error("tileBody holds a backtick, a brace or a newline: it cannot go into a Caddyfile respond")
	}
	// Still about as varied as base64 gets: no byte value dominates.
	var counts [256]int
	for _, c := range b {
		counts[c]++
	}
	for c, n := range counts {
		if n > len(b)/32 {
			t.Errorf("byte %q appears %d times in %d", rune(c), n, len(b))
		}
	}
}

func TestCacheTargetChecksTheOrigin(t *testing.T) {
	o, err := peers.StartOrigin(peers.OriginConfig{Body: []byte("tile")})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Stop(context.Background())
	tgt := &cacheTarget{origin: o}
	get := func(n int) {
		for range n {
			resp, err := http.Get(o.URL + tilePath)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
	}
	get(2) // before the run: not counted
	start := o.Requests()
	get(maxOriginRequests)
	res, err := tgt.after("varnish", start, bench.Result{})
	if err != nil {
		t.Fatalf("after(%d origin requests) = %v, want within the allowance", maxOriginRequests, err)
	}
	if len(res.Notes) != 1 || res.Notes[0] != "origin requests during the run: 5" {
		t.Errorf("notes = %q, want the origin count", res.Notes)
	}
	if len(res.Secondary) != 1 || res.Secondary[0].Name != "origin" || res.Secondary[0].Value != 5 {
		t.Errorf("secondary = %+v, want origin = 5", res.Secondary)
	}
	get(1)
	if _, err := tgt.after("varnish", start, bench.Result{}); err == nil || !strings.Contains(err.Error(), "not answering from its cache") {
		t.Errorf("after(%d origin requests) error = %v, want a failed run", maxOriginRequests+1, err)
	}

	skipped := &cacheTarget{skip: "no module"}
	if _, err := skipped.before(); err == nil || !strings.Contains(err.Error(), "skipped: no module") {
		t.Errorf("before(skipped variant) error = %v, want the skip reason", err)
	}
	static := &cacheTarget{}
	if res, err := static.after("caddy-static", 0, bench.Result{}); err != nil || len(res.Notes) != 0 {
		t.Errorf("after(no origin) = %+v, %v; want nothing added", res, err)
	}
}

func TestVerify(t *testing.T) {
	body := []byte("tile")
	o, err := peers.StartOrigin(peers.OriginConfig{Body: body})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Stop(context.Background())
	ctx := context.Background()
	if err := verify(ctx, http.DefaultClient, o.URL+tilePath, body, "HTTP/1.1", nil); err != nil {
		t.Errorf("verify(body only) = %v, want nil", err)
	}
	if err := verify(ctx, http.DefaultClient, o.URL+tilePath, []byte("other"), "HTTP/1.1", nil); err == nil {
		t.Error("verify(other body) = nil, want an error")
	}
	if err := verify(ctx, http.DefaultClient, o.URL+tilePath, body, "HTTP/2.0", nil); err == nil {
		t.Error("verify(want HTTP/2 from an HTTP/1.1 server) = nil, want an error")
	}
	before := o.Requests()
	if err := verify(ctx, http.DefaultClient, o.URL+tilePath, body, "HTTP/1.1", meridianHit); err == nil ||
		!strings.Contains(err.Error(), "no cache hit after 3 requests") {
		t.Errorf("verify(origin is no cache) = %v, want no hit", err)
	}
	if n := o.Requests() - before; n != 3 {
		t.Errorf("verify sent %d requests, want 3", n)
	}
}

// TestCacheScenariosSmoke runs both scenarios once, briefly, with the real
// peers when they are installed. Not a timing test: it checks every
// variant served hits, its origin stayed idle, and the bookkeeping.
func TestCacheScenariosSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the edge binary and starts Varnish and nginx")
	}
	for _, name := range []string{"cache-hit", "cache-hit-h2"} {
		t.Run(name, func(t *testing.T) {
			rep := run(t, time.Second, name)[0]
			if rep.Skipped != "" {
				_, wrkErr := load.LookWrk()
				_, vErr := peers.LookVarnishd("")
				_, nErr := peers.LookNginx("")
				if wrkErr == nil && vErr == nil && nErr == nil {
					t.Fatalf("skipped (%s) although wrk, varnishd and nginx are installed", rep.Skipped)
				}
				t.Skip(rep.Skipped)
			}
			if rep.Error != "" {
				t.Fatalf("%s: %s", name, rep.Error)
			}
			for _, s := range rep.Samples {
				if s.Skipped != "" {
					t.Logf("%s skipped: %s", s.Variant, s.Skipped)
					continue
				}
				if s.Error != "" || s.Result == nil || s.Result.Primary.Value <= 0 {
					t.Errorf("%s: error %q, result %+v; want a throughput", s.Variant, s.Error, s.Result)
					continue
				}
				if s.Variant == "caddy-static" {
					continue
				}
				var origin = -1.0
				for _, m := range s.Result.Secondary {
					if m.Name == "origin" {
						origin = m.Value
					}
				}
				if origin < 0 || origin > maxOriginRequests {
					t.Errorf("%s: origin requests %v, want 0 to %d", s.Variant, origin, maxOriginRequests)
				}
			}
			if len(rep.Verdicts) != len(rep.Info.Targets) {
				t.Errorf("%d verdicts for %d targets", len(rep.Verdicts), len(rep.Info.Targets))
			}
		})
	}
}
