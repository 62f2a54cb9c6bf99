package httpcache

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// clock is a settable clock shared by the cache and the test origin.
type clock struct{ off atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *clock) Advance(d time.Duration) { c.off.Add(int64(d)) }

// env is a test origin behind a Cache served by a front server. Each test
// sets the origin's handler; hits counts requests that reached it.
type env struct {
	t      *testing.T
	clock  *clock
	store  *Store
	cache  *Cache
	origin *httptest.Server
	front  *httptest.Server
	hits   atomic.Int64
	h      atomic.Pointer[http.HandlerFunc]
	// upstreamErr makes next return an error instead of proxying.
	upstreamErr atomic.Bool
	client      *http.Client
}

func newEnv(t *testing.T, cfg Config) *env {
	t.Helper()
	return newEnvStore(t, cfg, StoreConfig{MaxSize: 64 << 20, MaxEntrySize: 1 << 20})
}

func newEnvStore(t *testing.T, cfg Config, scfg StoreConfig) *env {
	t.Helper()
	e := &env{t: t, clock: new(clock)}
	store, err := NewStore(scfg)
	if err != nil {
		t.Fatalf("NewStore: %v", err)
	}
	t.Cleanup(func() { store.Close() })
	e.store = store
	if cfg.Now == nil {
		cfg.Now = e.clock.Now
	}
	if cfg.PurgeQuarantine == 0 { // tests refill right after purging
		cfg.PurgeQuarantine = -1
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cfg.BaseContext = ctx
	e.cache = New(store, cfg)

	e.origin = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.hits.Add(1)
		if h := e.h.Load(); h != nil {
			(*h)(w, r)
			return
		}
		http.Error(w, "no handler", http.StatusInternalServerError)
	}))
	t.Cleanup(e.origin.Close)
	target, _ := url.Parse(e.origin.URL)
	transport := &http.Transport{DisableCompression: true}
	t.Cleanup(transport.CloseIdleConnections)
	next := HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		if e.upstreamErr.Load() {
			return errors.New("upstream unreachable")
		}
		var perr error
		rp := &httputil.ReverseProxy{
			Rewrite:       func(pr *httputil.ProxyRequest) { pr.SetURL(target); pr.Out.Host = pr.In.Host },
			ErrorHandler:  func(_ http.ResponseWriter, _ *http.Request, err error) { perr = err },
			FlushInterval: -1,
			Transport:     transport,
		}
		rp.ServeHTTP(w, r)
		return perr
	})
	e.front = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := e.cache.ServeHTTP(w, r, next); err != nil {
			w.WriteHeader(http.StatusBadGateway)
		}
	}))
	t.Cleanup(e.front.Close)
	// no automatic Accept-Encoding: tests control Vary'd fields
	e.client = &http.Client{
		Transport:     &http.Transport{DisableCompression: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	t.Cleanup(e.client.CloseIdleConnections)
	return e
}

// handle sets the origin's handler.
func (e *env) handle(h http.HandlerFunc) { e.h.Store(&h) }

// respond sets an origin that answers body with the given header lines
// ("Name: value"), a Date from the test clock unless given.
func (e *env) respond(status int, body string, header ...string) {
	e.handle(func(w http.ResponseWriter, r *http.Request) {
		setHeader(w.Header(), header...)
		if w.Header().Get("Date") == "" {
			w.Header().Set("Date", e.clock.Now().UTC().Format(http.TimeFormat))
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	})
}

func setHeader(h http.Header, lines ...string) {
	for _, l := range lines {
		k, v, _ := strings.Cut(l, ":")
		h.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
}

type result struct {
	status int
	header http.Header
	body   string
}

// do sends a request to the front server.
func (e *env) do(method, path string, header ...string) result {
	e.t.Helper()
	r, err := e.fetch(context.Background(), method, path, header...)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

// fetch is do for use off the test goroutine.
func (e *env) fetch(ctx context.Context, method, path string, header ...string) (result, error) {
	req, err := http.NewRequestWithContext(ctx, method, e.front.URL+path, nil)
	if err != nil {
		return result{}, err
	}
	setHeader(req.Header, header...)
	resp, err := e.client.Do(req)
	if err != nil {
		return result{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return result{}, err
	}
	return result{status: resp.StatusCode, header: resp.Header, body: string(b)}, nil
}

// waitFor polls cond until it holds, failing the test after 10s.
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

func (e *env) get(path string, header ...string) result {
	e.t.Helper()
	return e.do(http.MethodGet, path, header...)
}

func (r result) cacheStatus() string { return r.header.Get("Cache-Status") }

func (r result) isHit() bool { return strings.HasPrefix(r.cacheStatus(), "meridian; hit") }
