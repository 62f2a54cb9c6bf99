package httpcache

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// versioned sets an origin answering "<path> v<n>", n counting its hits,
// with the Surrogate-Key given per path by tags.
func versioned(e *env, cc string, tags func(path string) string) {
	var n atomic.Int64
	e.handle(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", cc)
		if tags != nil {
			w.Header().Set("Surrogate-Key", tags(r.URL.Path))
		}
		fmt.Fprintf(w, "%s v%d", r.URL.Path, n.Add(1))
	})
}

func TestPurgeTagsHard(t *testing.T) {
	e := newEnv(t, Config{})
	versioned(e, "max-age=600", func(p string) string {
		if p == "/a" {
			return "src:c/public.a conn:c"
		}
		return "src:c/public.b conn:c"
	})
	e.get("/a")
	e.get("/b")
	e.store.PurgeTags([]string{"src:c/public.a"}, false)
	if r := e.get("/a"); r.isHit() || r.cacheStatus() != "meridian; fwd=miss; stored" {
		t.Errorf("/a after purge: %q, want a stored miss", r.cacheStatus())
	}
	if r := e.get("/b"); !r.isHit() {
		t.Errorf("/b after purging a: %q, want hit", r.cacheStatus())
	}
	e.store.PurgeTags([]string{"conn:c"}, false)
	for _, p := range []string{"/a", "/b"} {
		if r := e.get(p); r.isHit() {
			t.Errorf("%s after purging conn:c: %q, want miss", p, r.cacheStatus())
		}
	}
	if r := e.get("/a"); !r.isHit() {
		t.Errorf("/a refilled: %q, want hit", r.cacheStatus())
	}
}

func TestPurgeTagsSoft(t *testing.T) {
	e := newEnv(t, Config{})
	var n atomic.Int64
	release := make(chan struct{})
	e.handle(func(w http.ResponseWriter, r *http.Request) {
		v := n.Add(1)
		if v == 2 {
			<-release
		}
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Surrogate-Key", "t")
		fmt.Fprintf(w, "v%d", v)
	})
	e.get("/s")
	e.store.PurgeTags([]string{"t"}, true)
	for i := 0; i < 3; i++ {
		r := e.get("/s")
		if r.body != "v1" || !strings.HasSuffix(r.cacheStatus(), "detail=stale") {
			t.Errorf("request %d after soft purge: %q %q, want stale v1", i, r.body, r.cacheStatus())
		}
	}
	if got := e.store.Stats().Misses; got != 2 {
		t.Errorf("fills = %d, want 2 (the first and one refetch)", got)
	}
	waitFor(t, "the refetch to reach the origin", func() bool { return e.hits.Load() == 2 })
	close(release)
	waitFor(t, "refetch stored", func() bool { return e.store.Stats().Stores == 2 })
	if r := e.get("/s"); r.body != "v2" || r.cacheStatus() != "meridian; hit; ttl=600" {
		t.Errorf("after refetch: %q %q, want fresh v2", r.body, r.cacheStatus())
	}
}

func TestPurgeDuringFillWins(t *testing.T) {
	e := newEnv(t, Config{})
	release := make(chan struct{})
	var n atomic.Int64
	e.handle(func(w http.ResponseWriter, r *http.Request) {
		v := n.Add(1)
		if v == 1 {
			<-release
		}
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Surrogate-Key", "t")
		fmt.Fprintf(w, "v%d", v)
	})
	_, wait := concurrentGets(t, e, 1, "/race")
	waitFor(t, "fill to start", func() bool { return n.Load() == 1 })
	e.store.PurgeTags([]string{"t"}, false) // data changed while the old response was in flight
	close(release)
	wait()
	if r := e.get("/race"); r.body != "v2" {
		t.Errorf("after purge during fill: %q %q, want v2 (the in-flight response must not survive)", r.body, r.cacheStatus())
	}
}

func TestPurgePath(t *testing.T) {
	e := newEnv(t, Config{})
	versioned(e, "max-age=600", nil)
	paths := []string{"/p/a?x=1", "/p/a?x=2", "/p/b", "/p/a/c"}
	for _, p := range paths {
		e.get(p)
	}
	e.store.PurgePath("/p/a", false)
	want := map[string]bool{"/p/a?x=1": false, "/p/a?x=2": false, "/p/b": true, "/p/a/c": true}
	for _, p := range paths {
		if r := e.get(p); r.isHit() != want[p] {
			t.Errorf("%s after PurgePath(/p/a): %q, want hit=%v", p, r.cacheStatus(), want[p])
		}
	}
}

func TestPurgePrefix(t *testing.T) {
	paths := []string{
		"/api/v3/maps/c1/t/1/2/3.mvt",
		"/api/v3/maps/c1/u/1/2/3.mvt",
		"/api/v3/maps/c2/t/1/2/3.mvt",
		"/api/v3/sql/c1/query",
		"/a/b/c/d/e/f/g/h/i/j/k",
	}
	tests := []struct {
		prefix string
		purged []bool
	}{
		{"/api/v3/maps/c1/", []bool{true, true, false, false, false}},
		{"/api/v3/maps/c1/t/", []bool{true, false, false, false, false}},
		{"/api/v3/maps/c1", []bool{true, true, false, false, false}}, // not a directory: scanned
		{"/api/v3/maps/c", []bool{true, true, true, false, false}},
		{"/api/v3/maps/c1/t/1/2/3.mvt", []bool{true, false, false, false, false}},
		{"/api/", []bool{true, true, true, true, false}},
		{"/", []bool{true, true, true, true, true}},
		{"/api/v3/sql/?q=ignored", []bool{false, false, false, true, false}},
		{"HOST/api/v3/sql/", []bool{false, false, false, true, false}}, // on the test's host
		{"http://other.example/api/v3/sql/", []bool{false, false, false, false, false}},
		{"/a/b/c/d/e/f/g/h/i/j/", []bool{false, false, false, false, true}}, // deeper than MaxPrefixDepth: scanned
		{"/a/b/c/d/e/f/g/h/i/jj", []bool{false, false, false, false, false}},
	}
	for _, tt := range tests {
		t.Run(tt.prefix, func(t *testing.T) {
			e := newEnv(t, Config{})
			versioned(e, "max-age=600", nil)
			for _, p := range paths {
				e.get(p)
			}
			if err := e.store.PurgePrefix(strings.Replace(tt.prefix, "HOST", e.front.URL, 1), false); err != nil {
				t.Fatal(err)
			}
			for i, p := range paths {
				if r := e.get(p); r.isHit() == tt.purged[i] {
					t.Errorf("%s: %q, want purged=%v", p, r.cacheStatus(), tt.purged[i])
				}
			}
		})
	}
}

func TestPurgeDir(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "/"},
		{"/", "/"},
		{"/a", "/"},
		{"/a/", "/a/"},
		{"/a/b.mvt", "/a/"},
		{"http://h/a/b/", "/"}, // callers pass paths; a URL without a leading slash widens to all
		{"/1/2/3/4/5/6/7/8/9/10/", "/1/2/3/4/5/6/7/"},
	}
	for _, tt := range tests {
		if got := purgeDir(tt.in); got != tt.want {
			t.Errorf("purgeDir(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestWaiterAfterPurgeGoesUpstream(t *testing.T) {
	e := newEnv(t, Config{})
	release := make(chan struct{})
	var n atomic.Int64
	e.handle(func(w http.ResponseWriter, r *http.Request) {
		v := n.Add(1)
		if v == 1 {
			<-release
		}
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Surrogate-Key", "t")
		fmt.Fprintf(w, "v%d", v)
	})
	leader, waitLeader := concurrentGets(t, e, 1, "/wp")
	waitFor(t, "fill to start", func() bool { return n.Load() == 1 })
	waiters, wait := concurrentGets(t, e, 2, "/wp")
	waitFor(t, "waiters to join", func() bool { return e.store.Stats().Coalesced == 2 })
	e.store.PurgeTags([]string{"t"}, false)
	close(release)
	waitLeader()
	wait()
	if leader[0].body != "v1" {
		t.Errorf("leader: %q, want v1 (its own fetch)", leader[0].body)
	}
	for i, r := range waiters {
		if r.body == "v1" {
			t.Errorf("waiter %d got the pre-purge response %q (%q)", i, r.body, r.cacheStatus())
		}
	}
}

// After a purge, responses carrying the purged tag are served but not
// stored for PurgeQuarantine: an origin that has not yet applied the same
// invalidation must not put old data back into the cache.
func TestPurgeQuarantine(t *testing.T) {
	e := newEnv(t, Config{PurgeQuarantine: time.Second})
	versioned(e, "max-age=600", func(p string) string {
		if p == "/a" {
			return "src:c/public.a conn:c"
		}
		return "src:c/public.b"
	})
	e.get("/a")
	e.get("/b")
	e.store.PurgeTags([]string{"src:c/public.a"}, false)
	// (Cache-Status says "stored" once the headers pass; the entry is then
	// dropped, so the next request is still a miss.)
	for i := range 2 {
		if r := e.get("/a"); r.isHit() {
			t.Errorf("/a request %d inside the quarantine: %q, want a miss", i, r.cacheStatus())
		}
	}
	if r := e.get("/b"); !r.isHit() {
		t.Errorf("/b (other tag): %q, want hit", r.cacheStatus())
	}
	if got := e.store.Stats().Quarantined; got != 2 {
		t.Errorf("Quarantined = %d, want 2", got)
	}
	e.clock.Advance(2 * time.Second)
	e.get("/a")
	if r := e.get("/a"); !r.isHit() {
		t.Errorf("/a again: %q, want hit", r.cacheStatus())
	}
}

// A response freshened by a 304 stays reachable by its tags, whether the
// 304 repeats them (the origin's tags replace the stored ones) or not
// (the stored ones are kept). A 304 carrying tags once lost them all, so
// a purge left the freshened response served for its whole lifetime.
func TestPurgeReachesRevalidatedEntry(t *testing.T) {
	for _, repeat := range []bool{true, false} {
		t.Run(fmt.Sprintf("304 repeats tags %v", repeat), func(t *testing.T) {
			e := newEnv(t, Config{})
			e.handle(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Cache-Control", "max-age=10")
				if repeat || r.Header.Get("If-None-Match") == "" {
					w.Header().Set("Surrogate-Key", "map:m1 org:o1")
				}
				w.Header().Set("ETag", `"e1"`)
				if r.Header.Get("If-None-Match") == `"e1"` {
					w.Header().Set("Cache-Control", "max-age=100")
					w.WriteHeader(http.StatusNotModified)
					return
				}
				fmt.Fprint(w, "doc")
			})
			e.get("/doc")
			e.clock.Advance(20 * time.Second)
			if r := e.get("/doc"); r.cacheStatus() != "meridian; fwd=stale; fwd-status=304" {
				t.Fatalf("second request: %q, want a revalidation", r.cacheStatus())
			}
			if r := e.get("/doc"); !r.isHit() {
				t.Fatalf("after the 304: %q, want a hit", r.cacheStatus())
			}
			e.store.PurgeTags([]string{"map:m1"}, false)
			if r := e.get("/doc"); r.isHit() {
				t.Errorf("after purging map:m1: %q, want a miss", r.cacheStatus())
			}
		})
	}
}
