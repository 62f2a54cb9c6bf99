package httpcache

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meridian-gis/meridian/internal/cachetag"
)

// concurrentGets sends n GETs for path at once and returns their results.
func concurrentGets(t *testing.T, e *env, n int, path string) ([]result, func()) {
	t.Helper()
	results := make([]result, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = e.fetch(context.Background(), http.MethodGet, path)
		}()
	}
	return results, func() {
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("request %d: %v", i, err)
			}
		}
	}
}

func TestCoalescing(t *testing.T) {
	e := newEnv(t, Config{})
	release := make(chan struct{})
	e.handle(func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "shared")
	})
	const n = 20
	results, wait := concurrentGets(t, e, n, "/co")
	waitFor(t, "waiters to join", func() bool { return e.store.Stats().Coalesced == n-1 })
	close(release)
	wait()
	if got := e.hits.Load(); got != 1 {
		t.Errorf("origin hits = %d, want 1", got)
	}
	collapsed := 0
	for i, r := range results {
		if r.body != "shared" || r.status != 200 {
			t.Errorf("request %d: got %d %q, want 200 shared", i, r.status, r.body)
		}
		if strings.Contains(r.cacheStatus(), "collapsed") {
			collapsed++
		}
	}
	if collapsed != n-1 {
		t.Errorf("collapsed responses = %d, want %d", collapsed, n-1)
	}
}

func TestCoalescingUncacheableReleasesWaiters(t *testing.T) {
	e := newEnv(t, Config{})
	release := make(chan struct{})
	var first atomic.Bool
	e.handle(func(w http.ResponseWriter, r *http.Request) {
		if first.CompareAndSwap(false, true) {
			<-release
		}
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprint(w, "private")
	})
	const n = 10
	results, wait := concurrentGets(t, e, n, "/un")
	waitFor(t, "waiters to join", func() bool { return e.store.Stats().Coalesced == n-1 })
	close(release)
	wait()
	if got := e.hits.Load(); got != n {
		t.Errorf("origin hits = %d, want %d (every waiter goes upstream itself)", got, n)
	}
	for i, r := range results {
		if r.body != "private" {
			t.Errorf("request %d: body %q, want private", i, r.body)
		}
	}
}

func TestSlowFillDoesNotBlockOtherKeys(t *testing.T) {
	e := newEnv(t, Config{})
	release := make(chan struct{})
	e.handle(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, r.URL.Path)
	})
	results, wait := concurrentGets(t, e, 3, "/slow")
	waitFor(t, "slow fill to start", func() bool { return e.store.Stats().Coalesced == 2 })
	if r := e.get("/fast"); r.body != "/fast" {
		t.Errorf("fast while slow in flight: %q, want /fast", r.body)
	}
	close(release)
	wait()
	for i, r := range results {
		if r.body != "/slow" {
			t.Errorf("slow request %d: %q", i, r.body)
		}
	}
}

func TestLeaderLeavingDoesNotFailWaiters(t *testing.T) {
	e := newEnv(t, Config{})
	release := make(chan struct{})
	started := make(chan struct{})
	e.handle(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "done")
	})
	ctx, cancel := context.WithCancel(context.Background())
	leaderDone := make(chan error, 1)
	go func() {
		_, err := e.fetch(ctx, http.MethodGet, "/lead")
		leaderDone <- err
	}()
	<-started
	results, wait := concurrentGets(t, e, 3, "/lead")
	waitFor(t, "waiters to join", func() bool { return e.store.Stats().Coalesced == 3 })
	cancel()
	if err := <-leaderDone; err == nil {
		t.Errorf("leader request: want a cancellation error")
	}
	close(release)
	wait()
	for i, r := range results {
		if r.body != "done" {
			t.Errorf("waiter %d: %q, want done", i, r.body)
		}
	}
	if r := e.get("/lead"); !r.isHit() {
		t.Errorf("after fill: %q, want the leader's fill stored", r.cacheStatus())
	}
	if got := e.hits.Load(); got != 1 {
		t.Errorf("origin hits = %d, want 1", got)
	}
}

func TestStaleWhileRevalidate(t *testing.T) {
	for _, tt := range []struct {
		name   string
		cc     string
		config time.Duration
	}{
		{"directive", "max-age=1, stale-while-revalidate=60", 0},
		{"config default", "max-age=1", time.Minute},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Config{StaleWhileRevalidate: tt.config})
			var version atomic.Int64
			release := make(chan struct{})
			e.handle(func(w http.ResponseWriter, r *http.Request) {
				v := version.Add(1)
				if v == 2 {
					<-release // hold the background refresh
				}
				w.Header().Set("Cache-Control", tt.cc)
				w.Header().Set("Date", e.clock.Now().UTC().Format(http.TimeFormat))
				fmt.Fprintf(w, "v%d", v)
			})
			e.get("/swr")
			e.clock.Advance(5 * time.Second)
			for i := 0; i < 5; i++ {
				r := e.get("/swr")
				if r.body != "v1" || !strings.HasSuffix(r.cacheStatus(), "detail=stale") {
					t.Errorf("stale request %d: %q %q, want stale v1", i, r.body, r.cacheStatus())
				}
			}
			if got := e.store.Stats().Misses; got != 2 {
				t.Errorf("fills = %d, want 2 (the first and one background refresh)", got)
			}
			waitFor(t, "the refresh to reach the origin", func() bool { return e.hits.Load() == 2 })
			close(release)
			waitFor(t, "refresh stored", func() bool { return e.store.Stats().Stores == 2 })
			if r := e.get("/swr"); r.body != "v2" || !r.isHit() || strings.Contains(r.cacheStatus(), "stale") {
				t.Errorf("after refresh: %q %q, want fresh v2", r.body, r.cacheStatus())
			}
			e.clock.Advance(120 * time.Second) // beyond the window: synchronous
			if r := e.get("/swr"); r.body != "v3" {
				t.Errorf("beyond window: %q %q, want v3", r.body, r.cacheStatus())
			}
		})
	}
}

func TestStaleIfError(t *testing.T) {
	tests := []struct {
		name      string
		cc        string
		config    time.Duration
		reqHeader []string
		advance   time.Duration
		failure   string // "503" or "unreachable"
		purge     bool   // hard-purge the response's tag before the failure
		wantStale bool
	}{
		{"directive, 503", "max-age=1, stale-if-error=60", -1, nil, 5 * time.Second, "503", false, true},
		{"directive, unreachable", "max-age=1, stale-if-error=60", -1, nil, 5 * time.Second, "unreachable", false, true},
		{"directive, beyond window", "max-age=1, stale-if-error=60", 0, nil, 100 * time.Second, "503", false, false},
		{"config window", "max-age=1", time.Minute, nil, 5 * time.Second, "503", false, true},
		{"config window passed", "max-age=1", time.Minute, nil, 2 * time.Minute, "503", false, false},
		{"default window", "max-age=1", 0, nil, 9 * time.Minute, "503", false, true},
		{"default window, unreachable", "max-age=1", 0, nil, 9 * time.Minute, "unreachable", false, true},
		{"default window passed", "max-age=1", 0, nil, DefaultStaleIfError + 2*time.Second, "503", false, false},
		{"default, hard-purged", "max-age=1", 0, nil, 5 * time.Second, "503", true, false},
		{"request directive", "max-age=1", -1, []string{"Cache-Control: stale-if-error=60"}, 5 * time.Second, "503", false, true},
		{"off", "max-age=1", -1, nil, 5 * time.Second, "503", false, false},
		{"must-revalidate wins", "max-age=1, must-revalidate, stale-if-error=60", 0, nil, 5 * time.Second, "503", false, false},
		{"s-maxage wins over the default", "s-maxage=1", 0, nil, 5 * time.Second, "503", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Config{StaleIfError: tt.config})
			e.respond(200, "good", "Cache-Control: "+tt.cc, "Surrogate-Key: sie")
			e.get("/sie")
			e.clock.Advance(tt.advance)
			if tt.purge {
				e.store.PurgeTags([]string{"sie"}, false)
			}
			if tt.failure == "503" {
				e.respond(503, "down")
			} else {
				e.upstreamErr.Store(true)
			}
			r := e.get("/sie", tt.reqHeader...)
			gotStale := r.status == 200 && r.body == "good"
			if gotStale != tt.wantStale {
				t.Errorf("got %d %q %q, want stale=%v", r.status, r.body, r.cacheStatus(), tt.wantStale)
			}
			if gotStale && !strings.Contains(r.cacheStatus(), "detail=stale-if-error") {
				t.Errorf("Cache-Status %q, want detail=stale-if-error", r.cacheStatus())
			}
		})
	}
}

// TestStaleIfErrorNeedsGrant: the default stale-if-error window serves a
// stored response through an origin failure only to callers granted its
// source; the others get the origin's error.
func TestStaleIfErrorNeedsGrant(t *testing.T) {
	e := newEnv(t, Config{Authorizer: func(r *http.Request) cachetag.Authorizer { return grantHeader{r} }})
	e.respond(200, "good", "Cache-Control: max-age=1", "Surrogate-Key: src:c/public.t")
	e.get("/g", "X-Grant: yes")
	waitFor(t, "the fill to be stored", func() bool { return e.store.Stats().Stores >= 1 })
	e.clock.Advance(5 * time.Second)
	e.respond(503, "down")
	if r := e.get("/g", "X-Grant: no"); r.status != 503 || r.body != "down" {
		t.Errorf("without a grant: %d %q %q, want the origin's 503", r.status, r.body, r.cacheStatus())
	}
	if r := e.get("/g", "X-Grant: yes"); r.status != 200 || r.body != "good" || !strings.Contains(r.cacheStatus(), "stale-if-error") {
		t.Errorf("granted: %d %q %q, want the stale response", r.status, r.body, r.cacheStatus())
	}
}

func TestRefreshToUncacheableDropsStale(t *testing.T) {
	e := newEnv(t, Config{})
	e.respond(200, "old", "Cache-Control: max-age=1, stale-while-revalidate=600")
	e.get("/d")
	e.clock.Advance(5 * time.Second)
	e.respond(200, "new", "Cache-Control: no-store")
	if r := e.get("/d"); r.body != "old" {
		t.Fatalf("stale: %q, want old", r.body)
	}
	waitFor(t, "refresh", func() bool { return e.hits.Load() == 2 })
	waitFor(t, "stale entry dropped", func() bool { return e.store.get([]byte("http://"+e.front.Listener.Addr().String()+"/d")) == nil })
	if r := e.get("/d"); r.body != "new" {
		t.Errorf("after an uncacheable refresh: %q %q, want new from the origin", r.body, r.cacheStatus())
	}
}

// TestConcurrentMix runs lookups, fills, revalidations, soft and hard
// purges and evictions at once (bounded), for the race detector and to
// check that every response is whole.
func TestConcurrentMix(t *testing.T) {
	e := newEnvStore(t, Config{StaleWhileRevalidate: time.Minute}, StoreConfig{MaxSize: 2 << 20, HotSize: 256 << 10, MaxEntrySize: 64 << 10, Shards: 4})
	e.handle(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=1")
		w.Header().Set("ETag", `"`+r.URL.Path+`"`)
		w.Header().Set("Surrogate-Key", "all k"+r.URL.Path[1:])
		if r.Header.Get("If-None-Match") == `"`+r.URL.Path+`"` && r.URL.Path[1] == '1' {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		fmt.Fprintf(w, "%s:%s", r.URL.Path, strings.Repeat("z", 10<<10))
	})
	var wg sync.WaitGroup
	for g := 0; g < 6; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 150; i++ {
				p := fmt.Sprintf("/%d", (i*7+g)%40)
				r, err := e.fetch(context.Background(), http.MethodGet, p)
				if err != nil {
					t.Errorf("GET %s: %v", p, err)
					return
				}
				if want := p + ":" + strings.Repeat("z", 10<<10); r.body != want {
					t.Errorf("GET %s: %d bytes %q…, want whole body", p, len(r.body), r.body[:min(20, len(r.body))])
					return
				}
				switch i % 50 {
				case 10:
					e.store.PurgeTags([]string{"k" + p[1:]}, i%2 == 0)
				case 20:
					e.clock.Advance(time.Second)
				case 30:
					e.store.PurgePrefix("/", true)
				}
			}
		}()
	}
	wg.Wait()
}

// waiters returns the number of requests waiting for fills in flight.
func (g *flightGroup) waiters() int {
	n := 0
	for i := range g.shards {
		s := &g.shards[i]
		s.mu.Lock()
		for _, f := range s.m {
			n += f.waiters
		}
		s.mu.Unlock()
	}
	return n
}

// blockingOrigin makes e's origin hold its requests until release is
// closed (then answer body, cacheable) or their context ends (then count
// them in cancelled). started receives one value per request.
type blockingOrigin struct {
	started   chan struct{}
	release   chan struct{}
	cancelled atomic.Int64
}

func newBlockingOrigin(t *testing.T, e *env, body string) *blockingOrigin {
	o := &blockingOrigin{started: make(chan struct{}, 16), release: make(chan struct{})}
	quit := make(chan struct{})
	t.Cleanup(func() { close(quit) }) // before the origin closes
	e.handle(func(w http.ResponseWriter, r *http.Request) {
		o.started <- struct{}{}
		select {
		case <-o.release:
		case <-r.Context().Done():
			o.cancelled.Add(1)
			return
		case <-quit:
			return
		}
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, body)
	})
	return o
}

// awaitCancelled waits until the origin has seen n requests cancelled.
func (o *blockingOrigin) awaitCancelled(t *testing.T, n int64) {
	t.Helper()
	waitFor(t, "the origin's request to be cancelled", func() bool { return o.cancelled.Load() == n })
}

// TestAbandonedFillIsCancelled: the only client waiting for a fill hangs
// up; the upstream request is cancelled, and the next request starts a
// fill of its own.
func TestAbandonedFillIsCancelled(t *testing.T) {
	e := newEnv(t, Config{FillTimeout: time.Hour}) // only abandonment can end it
	o := newBlockingOrigin(t, e, "later")
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := e.fetch(ctx, http.MethodGet, "/gone")
		errc <- err
	}()
	<-o.started
	cancel()
	if err := <-errc; err == nil {
		t.Fatal("cancelled request: want an error")
	}
	o.awaitCancelled(t, 1)
	if st := e.store.Stats(); st.Abandoned != 1 || st.UpstreamErrors != 0 {
		t.Errorf("abandoned = %d, upstream errors = %d, want 1 and 0", st.Abandoned, st.UpstreamErrors)
	}
	close(o.release)
	if r := e.get("/gone"); r.body != "later" || !strings.Contains(r.cacheStatus(), "stored") || strings.Contains(r.cacheStatus(), "collapsed") {
		t.Errorf("next request: %q %q, want a fill of its own, stored", r.body, r.cacheStatus())
	}
	if got := e.hits.Load(); got != 2 {
		t.Errorf("origin requests = %d, want 2", got)
	}
}

// TestFillContinuesWhileSomeoneWaits: of two coalesced requests, one
// leaves; the fill goes on, and the other gets the body, stored.
func TestFillContinuesWhileSomeoneWaits(t *testing.T) {
	for _, leaving := range []string{"leader", "follower"} {
		t.Run(leaving+" leaves", func(t *testing.T) {
			e := newEnv(t, Config{FillTimeout: time.Hour})
			o := newBlockingOrigin(t, e, "kept")
			type res struct {
				r   result
				err error
			}
			ctxs := map[string]context.Context{}
			cancels := map[string]context.CancelFunc{}
			done := map[string]chan res{}
			for _, who := range []string{"leader", "follower"} {
				ctxs[who], cancels[who] = context.WithCancel(context.Background())
				defer cancels[who]()
				done[who] = make(chan res, 1)
			}
			fetch := func(who string) {
				r, err := e.fetch(ctxs[who], http.MethodGet, "/both")
				done[who] <- res{r, err}
			}
			go fetch("leader")
			<-o.started
			go fetch("follower")
			waitFor(t, "the follower to join", func() bool { return e.store.Stats().Coalesced == 1 })
			cancels[leaving]()
			if got := <-done[leaving]; got.err == nil {
				t.Fatalf("%s: want a cancellation error", leaving)
			}
			waitFor(t, "the departure to be counted", func() bool { return e.cache.flights.waiters() == 1 })
			close(o.release)
			stayed := "follower"
			if leaving == "follower" {
				stayed = "leader"
			}
			if got := <-done[stayed]; got.err != nil || got.r.status != 200 || got.r.body != "kept" {
				t.Errorf("%s: %v %d %q, want 200 kept", stayed, got.err, got.r.status, got.r.body)
			}
			waitFor(t, "the fill to be stored", func() bool { return e.store.Stats().Stores == 1 })
			if r := e.get("/both"); !r.isHit() || r.body != "kept" {
				t.Errorf("after the fill: %q %q, want a hit", r.body, r.cacheStatus())
			}
			if st := e.store.Stats(); o.cancelled.Load() != 0 || st.Abandoned != 0 || e.hits.Load() != 1 {
				t.Errorf("origin cancellations %d, abandoned %d, origin requests %d; want 0, 0, 1",
					o.cancelled.Load(), st.Abandoned, e.hits.Load())
			}
		})
	}
}

// TestBackgroundRefreshNotAbandoned: a stale-while-revalidate refresh has
// no waiter; neither the client that triggered it finishing nor a request
// that joins it and leaves cancels it.
func TestBackgroundRefreshNotAbandoned(t *testing.T) {
	e := newEnv(t, Config{FillTimeout: time.Hour})
	var version atomic.Int64
	release := make(chan struct{})
	quit := make(chan struct{})
	t.Cleanup(func() { close(quit) })
	var cancelled atomic.Bool
	e.handle(func(w http.ResponseWriter, r *http.Request) {
		v := version.Add(1)
		if v == 2 {
			select {
			case <-release:
			case <-r.Context().Done():
				cancelled.Store(true)
				return
			case <-quit:
				return
			}
		}
		w.Header().Set("Cache-Control", "max-age=1, stale-while-revalidate=600")
		w.Header().Set("Date", e.clock.Now().UTC().Format(http.TimeFormat))
		fmt.Fprintf(w, "v%d", v)
	})
	e.get("/bg")
	waitFor(t, "v1 stored", func() bool { return e.store.Stats().Stores == 1 })
	e.clock.Advance(5 * time.Second)
	if r := e.get("/bg"); r.body != "v1" || !strings.HasSuffix(r.cacheStatus(), "detail=stale") {
		t.Fatalf("stale request: %q %q, want stale v1", r.body, r.cacheStatus())
	}
	e.client.CloseIdleConnections() // the triggering client is gone
	waitFor(t, "the refresh to reach the origin", func() bool { return e.hits.Load() == 2 })

	// A request that may not have the stale response joins the refresh,
	// then leaves.
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := e.fetch(ctx, http.MethodGet, "/bg", "Cache-Control: max-age=0")
		errc <- err
	}()
	waitFor(t, "the request to join the refresh", func() bool { return e.store.Stats().Coalesced == 1 })
	cancel()
	if err := <-errc; err == nil {
		t.Fatal("cancelled request: want an error")
	}
	waitFor(t, "its departure to be counted", func() bool { return e.cache.flights.waiters() == 1 })
	if got := e.store.Stats().Abandoned; got != 0 {
		t.Errorf("abandoned = %d, want 0", got)
	}
	close(release)
	waitFor(t, "the refresh to be stored", func() bool { return e.store.Stats().Stores == 2 })
	if r := e.get("/bg"); r.body != "v2" || !r.isHit() {
		t.Errorf("after the refresh: %q %q, want a fresh v2", r.body, r.cacheStatus())
	}
	if cancelled.Load() {
		t.Error("the refresh's origin request was cancelled")
	}
}
