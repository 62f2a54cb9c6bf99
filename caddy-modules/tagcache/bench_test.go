package tagcache

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/meridian-gis/meridian/caddy-modules/tagcache/internal/httpcache"
)

// benchWriter is a reusable ResponseWriter that discards the body.
type benchWriter struct {
	h      http.Header
	status int
	n      int
}

func (w *benchWriter) Header() http.Header         { return w.h }
func (w *benchWriter) WriteHeader(code int)        { w.status = code }
func (w *benchWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }
func (w *benchWriter) reset()                      { clear(w.h); w.status, w.n = 0, 0 }

// benchHandler returns a Handler on its own store, with one 30 KiB tile
// stored, and the request that hits it.
func benchHandler(b testing.TB, scfg httpcache.StoreConfig) (*Handler, *http.Request, caddyhttp.Handler, int) {
	b.Helper()
	store, err := httpcache.NewStore(scfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	h := &Handler{cache: httpcache.New(store, httpcache.Config{BaseContext: context.Background()})}
	body := bytes.Repeat([]byte("m"), 30<<10)
	date := time.Now().UTC().Format(http.TimeFormat)
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Header().Set("Content-Type", "application/vnd.mapbox-vector-tile")
		w.Header().Set("ETag", `"3f2a9c"`)
		w.Header().Set("Surrogate-Key", "src:local/public.countries conn:local")
		w.Header().Set("Date", date)
		_, err := w.Write(body)
		return err
	})
	r := httptest.NewRequest(http.MethodGet, "http://tiles.example/api/v3/maps/local/public.countries/10/512/384.mvt?access_token=abc&client=deck", nil)
	r.Header.Set("Accept-Encoding", "gzip, br")
	w := &benchWriter{h: make(http.Header)}
	if err := h.ServeHTTP(w, r, next); err != nil {
		b.Fatal(err)
	}
	return h, r, next, len(body)
}

func checkHit(b testing.TB, w *benchWriter, n int) {
	if w.status != 200 || w.n != n || !strings.HasPrefix(w.h.Get("Cache-Status"), "meridian; hit") {
		b.Fatalf("not a hit: %d %d bytes %q", w.status, w.n, w.h.Get("Cache-Status"))
	}
}

// TestHitAllocatesNothing: a hit served by Handler.ServeHTTP to a reused
// ResponseWriter makes no allocation (the header values are shared with
// the stored entry), and one when hits must copy them.
func TestHitAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	h, r, next, n := benchHandler(t, httpcache.StoreConfig{MaxSize: 64 << 20})
	w := &benchWriter{h: make(http.Header)}
	serve := func() {
		w.reset()
		if err := h.ServeHTTP(w, r, next); err != nil {
			t.Fatal(err)
		}
	}
	if allocs := testing.AllocsPerRun(100, serve); allocs != 0 {
		t.Errorf("shared values: %v allocations per hit, want 0", allocs)
	}
	checkHit(t, w, n)
	h.cache.SetCopyHeaderValues(true)
	if allocs := testing.AllocsPerRun(100, serve); allocs != 1 {
		t.Errorf("copied values: %v allocations per hit, want 1", allocs)
	}
	checkHit(t, w, n)
}

// BenchmarkHit serves a stored 30 KiB tile through Handler.ServeHTTP.
func BenchmarkHit(b *testing.B) {
	h, r, next, n := benchHandler(b, httpcache.StoreConfig{MaxSize: 64 << 20})
	w := &benchWriter{h: make(http.Header)}
	b.ReportAllocs()
	b.SetBytes(int64(n))
	for b.Loop() {
		w.reset()
		if err := h.ServeHTTP(w, r, next); err != nil {
			b.Fatal(err)
		}
	}
	checkHit(b, w, n)
}

// BenchmarkHitParallel is BenchmarkHit from GOMAXPROCS goroutines.
func BenchmarkHitParallel(b *testing.B) {
	h, r, next, n := benchHandler(b, httpcache.StoreConfig{MaxSize: 64 << 20})
	b.ReportAllocs()
	b.SetBytes(int64(n))
	b.ResetTimer() // the store's setup is not per hit
	b.RunParallel(func(pb *testing.PB) {
		w := &benchWriter{h: make(http.Header)}
		for pb.Next() {
			w.reset()
			if err := h.ServeHTTP(w, r, next); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkHitNoHotTier serves the same hit from bigcache alone, which
// copies the entry on every read: the cost the hot tier avoids.
func BenchmarkHitNoHotTier(b *testing.B) {
	h, r, next, n := benchHandler(b, httpcache.StoreConfig{MaxSize: 64 << 20, HotSize: -1})
	w := &benchWriter{h: make(http.Header)}
	b.ReportAllocs()
	b.SetBytes(int64(n))
	for b.Loop() {
		w.reset()
		if err := h.ServeHTTP(w, r, next); err != nil {
			b.Fatal(err)
		}
	}
	checkHit(b, w, n)
}

// BenchmarkHitAfterPurge is BenchmarkHit once a purge (of other tags,
// URLs and prefixes) has happened since the tile was stored: each hit
// then checks every slot of the entry (tags and URL/path pseudo-tags).
func BenchmarkHitAfterPurge(b *testing.B) {
	h, r, next, n := benchHandler(b, httpcache.StoreConfig{MaxSize: 64 << 20})
	h.cache.Store().PurgeTags([]string{"src:local/public.other"}, false)
	if err := h.cache.Store().PurgeURLs([]string{"http://tiles.example/api/v3/maps/local/public.other/1/1/1.mvt"}, []string{"/api/v3/sql/"}, false); err != nil {
		b.Fatal(err)
	}
	w := &benchWriter{h: make(http.Header)}
	b.ReportAllocs()
	b.SetBytes(int64(n))
	for b.Loop() {
		w.reset()
		if err := h.ServeHTTP(w, r, next); err != nil {
			b.Fatal(err)
		}
	}
	checkHit(b, w, n)
}
