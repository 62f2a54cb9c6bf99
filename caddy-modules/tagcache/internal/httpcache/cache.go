package httpcache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meridian-gis/meridian/caddy-modules/tagcache/internal/cachecontrol"
	"github.com/meridian-gis/meridian/internal/cachetag"
)

// Handler is the next handler in the chain (caddyhttp.Handler has this
// shape): in the edge, the reverse proxy to the origin.
type Handler interface {
	ServeHTTP(http.ResponseWriter, *http.Request) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(http.ResponseWriter, *http.Request) error

// ServeHTTP calls f(w, r).
func (f HandlerFunc) ServeHTTP(w http.ResponseWriter, r *http.Request) error { return f(w, r) }

// Cache defaults.
const (
	DefaultHeuristicMax = 24 * time.Hour
	DefaultFillTimeout  = time.Minute
	DefaultMaxTags      = 256
	DefaultStaleIfError = 10 * time.Minute
)

// Config configures a Cache. Zero values get the documented defaults.
type Config struct {
	// DefaultTTL is the freshness lifetime of a heuristically cacheable
	// response (RFC 9111 §4.2.2) that has neither explicit expiration nor
	// Last-Modified. Default: 0 (stored only if it has a validator, and
	// then revalidated on every use).
	DefaultTTL time.Duration
	// HeuristicMax caps heuristic freshness (10% of the time since
	// Last-Modified). Default: 24h.
	HeuristicMax time.Duration
	// MaxEntrySize is the largest body stored; larger responses are
	// served in full but not kept. Default and upper bound: the store's.
	MaxEntrySize int64
	// AuthorizationChecked declares that every request reaching the cache
	// had its Authorization verified for this very resource by an earlier
	// handler, so responses to such requests may be stored and served to
	// other authorized requests without public/s-maxage/must-revalidate
	// (RFC 9111 §3.5 otherwise). The token is never part of the key.
	AuthorizationChecked bool
	// StaleWhileRevalidate is the window applied when a response has no
	// stale-while-revalidate directive of its own (and no must-revalidate,
	// proxy-revalidate, no-cache or s-maxage). Default: 0.
	StaleWhileRevalidate time.Duration
	// StaleIfError is the window, past a stored response's freshness,
	// during which it is served when the origin fails (500, 502, 503,
	// 504, or no answer), for responses without a stale-if-error
	// directive of their own and under the same conditions (RFC 5861 §4).
	// It keeps cached maps up through a short origin outage, bounded so
	// that a long one shows. Hard-purged responses and responses the
	// caller has no grant for are never served. Default:
	// DefaultStaleIfError; negative turns it off (stale only where the
	// response or the request allows it).
	StaleIfError time.Duration
	// DropQuery lists query parameters left out of the key. Default:
	// DefaultDropQuery().
	DropQuery []string
	// FillTimeout bounds one upstream fill. A fill is detached from the
	// client that triggered it, so that the requests coalesced onto it
	// are not cancelled with it; it is cancelled when every one of them
	// has gone away, except a background refresh (stale-while-
	// revalidate, soft purge), which nobody waits for. Default: 1m.
	FillTimeout time.Duration
	// MaxTags caps the tags kept per entry. Default: 256.
	MaxTags int
	// PurgeQuarantine is how long after a purge of a tag responses
	// carrying that tag are served but not stored. Several origins learn
	// of a change from their own copies of an invalidation message, a few
	// milliseconds apart: a request in between would otherwise store the
	// old data again, right after the purge, until the next one.
	// Default: 2s; negative disables.
	PurgeQuarantine time.Duration

	// Now returns the current time. Default: time.Now.
	Now func() time.Time
	// Prepare adapts a clone of a client request for a background
	// refresh that outlives the client's request (in Caddy: a fresh
	// replacer and vars). Default: none.
	Prepare func(*http.Request) *http.Request
	// BaseContext is cancelled when the cache is unloaded; fills in
	// flight are cancelled with it. Default: context.Background().
	BaseContext context.Context
	// Logger receives debug and error logs. Default: discard.
	Logger *slog.Logger
	// Authorizer returns who is asking, when an auth module verified the
	// caller's token (see cachetag.Authorizer): a stored response, or a
	// coalesced one fetched for someone else, is served only when it
	// allows the response's source tags; otherwise the request goes to
	// the origin, which checks the grant itself. nil, or a nil result:
	// no per-caller check (a cache without auth).
	Authorizer func(*http.Request) cachetag.Authorizer
}

// Cache is a shared HTTP cache over a Store. See the package doc.
type Cache struct {
	store   *Store
	cfg     Config
	maxBody int64
	keys    keyer
	flights *flightGroup
	log     *slog.Logger

	keyBufs  sync.Pool // *[]byte
	bodyBufs sync.Pool // *bytes.Buffer

	// copyValues makes hits copy the stored header values (see
	// SetCopyHeaderValues).
	copyValues atomic.Bool
}

// SetCopyHeaderValues sets whether hits give each response its own copy
// of the stored header values. By default they share the entry's
// (read-only) value slices, which is safe with handlers that Set, Add or
// Del header fields, but not with one that assigns to a value in place
// (in Caddy: a deferred header replace operation wrapping the cache).
func (c *Cache) SetCopyHeaderValues(on bool) { c.copyValues.Store(on) }

// New returns a Cache using store, which may be shared by several caches.
func New(store *Store, cfg Config) *Cache {
	if cfg.PurgeQuarantine == 0 {
		cfg.PurgeQuarantine = 2 * time.Second
	}
	switch {
	case cfg.StaleIfError == 0:
		cfg.StaleIfError = DefaultStaleIfError
	case cfg.StaleIfError < 0:
		cfg.StaleIfError = 0
	}
	if cfg.HeuristicMax == 0 {
		cfg.HeuristicMax = DefaultHeuristicMax
	}
	if cfg.FillTimeout == 0 {
		cfg.FillTimeout = DefaultFillTimeout
	}
	if cfg.MaxTags == 0 {
		cfg.MaxTags = DefaultMaxTags
	}
	if cfg.DropQuery == nil {
		cfg.DropQuery = DefaultDropQuery()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.BaseContext == nil {
		cfg.BaseContext = context.Background()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Cache{
		store:   store,
		cfg:     cfg,
		maxBody: store.maxBody(),
		keys:    keyer{drop: cfg.DropQuery},
		flights: newFlightGroup(),
		log:     cfg.Logger,
	}
	store.register(c.keys)
	if cfg.MaxEntrySize > 0 && cfg.MaxEntrySize < c.maxBody {
		c.maxBody = cfg.MaxEntrySize
	}
	c.keyBufs.New = func() any { b := make([]byte, 0, 512); return &b }
	c.bodyBufs.New = func() any { return new(bytes.Buffer) }
	return c
}

// Store returns the store the cache uses.
func (c *Cache) Store() *Store { return c.store }

// MaxBody returns the largest body this cache stores.
func (c *Cache) MaxBody() int64 { return c.maxBody }

// request holds what the cache needs from a client request.
type request struct {
	cc         cachecontrol.Directives
	authorized bool // carries Authorization the cache may not ignore
}

func (c *Cache) parseRequest(r *http.Request) request {
	rq := request{cc: cachecontrol.Parse(r.Header["Cache-Control"])}
	if len(r.Header["Cache-Control"]) == 0 && cachecontrol.HasToken(r.Header["Pragma"], "no-cache") {
		rq.cc.NoCache = true // RFC 9111 §5.4
	}
	rq.authorized = !c.cfg.AuthorizationChecked && len(r.Header["Authorization"]) > 0
	return rq
}

// fwd is the reason a request went upstream (RFC 9211 fwd parameter).
type fwd string

const (
	fwdURIMiss  fwd = "uri-miss"
	fwdVaryMiss fwd = "vary-miss"
	fwdMiss     fwd = "miss"
	fwdStale    fwd = "stale"
	fwdRequest  fwd = "request"
)

// ServeHTTP answers r from the cache or through next, storing what it may.
func (c *Cache) ServeHTTP(w http.ResponseWriter, r *http.Request, next Handler) error {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodOptions, http.MethodTrace, http.MethodConnect:
		return c.pass(w, r, next, "meridian; fwd=method")
	default:
		return c.serveUnsafe(w, r, next)
	}
	ranged := len(r.Header["Range"]) > 0
	if (ranged && r.Method != http.MethodGet) || len(r.Header["Upgrade"]) > 0 {
		return c.pass(w, r, next, "meridian; fwd=bypass")
	}
	rq := c.parseRequest(r)
	if rq.cc.Invalid {
		return c.pass(w, r, next, "meridian; fwd=request; detail=bad-cache-control")
	}
	if rq.cc.NoStore {
		return c.pass(w, r, next, "meridian; fwd=request; detail=no-store")
	}

	kp := c.keyBufs.Get().(*[]byte)
	defer c.keyBufs.Put(kp)
	key := c.keys.appendPrimary((*kp)[:0], r)
	if len(key) > maxKeyLen {
		return c.pass(w, r, next, "meridian; fwd=bypass; detail=key-too-long")
	}
	primaryLen := len(key)
	reason := fwdURIMiss
	e := c.store.get(key)
	if e != nil && e.kind == kindVary {
		key = appendVary(key, e.vary, r.Header)
		if e = c.store.get(key); e == nil {
			reason = fwdVaryMiss
		}
	}
	if cap(key) <= 2*maxKeyLen {
		*kp = key[:0] // keep the grown buffer, not a huge one
	}

	now := c.cfg.Now().UnixNano()
	soft := false
	if e != nil {
		var valid bool
		if valid, soft = c.store.state(e); !valid {
			e, reason = nil, fwdMiss
		}
	}
	if e != nil && rq.authorized && !e.has(flagAuthOK) {
		e, reason = nil, fwdRequest
	}
	if e != nil && !c.allowed(r, e) {
		c.store.stats.denied.Add(1)
		e, reason = nil, fwdRequest
	}
	if ranged {
		// A range of a fresh stored complete response is served from it
		// (RFC 9111 §3.4 lets a cache answer a range request from a stored
		// response); anything else goes to the origin and is not stored.
		if e != nil && !soft && c.serveRange(w, r, e, rq, now) {
			c.store.stats.hits.Add(1)
			return nil
		}
		return c.pass(w, r, next, "meridian; fwd=bypass")
	}
	if e != nil {
		age := e.currentAge(now)
		staleness := age - e.lifetime // >= 0: stale
		fresh := staleness < 0 && !e.has(flagNoCache)
		reqOK := !rq.cc.NoCache &&
			(rq.cc.MaxAge == cachecontrol.Absent || age <= rq.cc.MaxAge*int64(time.Second)) &&
			(rq.cc.MinFresh == cachecontrol.Absent || -staleness >= rq.cc.MinFresh*int64(time.Second))
		switch {
		case fresh && reqOK && !soft:
			c.store.stats.hits.Add(1)
			return c.serveEntry(w, r, e, now, hitFresh)
		case fresh && reqOK && soft:
			// Soft-purged but still fresh by HTTP: serve it while one
			// background request refetches.
			c.refresh(r, next, e, rq)
			c.store.stats.stale.Add(1)
			return c.serveEntry(w, r, e, now, hitStale)
		case !fresh && !e.has(flagNoStale) && staleness >= 0 && !rq.cc.NoCache:
			if rq.cc.MaxStaleAny || (rq.cc.MaxStale != cachecontrol.Absent && staleness <= rq.cc.MaxStale*int64(time.Second)) {
				c.store.stats.stale.Add(1)
				return c.serveEntry(w, r, e, now, hitStale)
			}
			if staleness < e.swr && rq.cc.MaxAge == cachecontrol.Absent && rq.cc.MinFresh == cachecontrol.Absent {
				c.refresh(r, next, e, rq)
				c.store.stats.stale.Add(1)
				return c.serveEntry(w, r, e, now, hitStale)
			}
		}
		if fresh {
			reason = fwdRequest
		} else {
			reason = fwdStale
		}
	}
	if rq.cc.OnlyIfCached {
		w.Header()["Cache-Status"] = []string{"meridian; detail=only-if-cached"}
		w.WriteHeader(http.StatusGatewayTimeout)
		return nil
	}
	return c.fill(w, r, next, rq, string(key), string(key[:primaryLen]), e, reason)
}

// serveRange answers a GET with a single byte range from e when e is a
// complete 200 response that is fresh for r; it reports false, having
// written nothing, when the request must go to the origin instead
// (stale, If-Range, several or unsatisfiable ranges).
func (c *Cache) serveRange(w http.ResponseWriter, r *http.Request, e *entry, rq request, now int64) bool {
	if e.kind != kindResponse || e.status != http.StatusOK || len(r.Header["If-Range"]) > 0 {
		return false
	}
	age := e.currentAge(now)
	staleness := age - e.lifetime
	if staleness >= 0 || e.has(flagNoCache) || rq.cc.NoCache ||
		(rq.cc.MaxAge != cachecontrol.Absent && age > rq.cc.MaxAge*int64(time.Second)) ||
		(rq.cc.MinFresh != cachecontrol.Absent && -staleness < rq.cc.MinFresh*int64(time.Second)) {
		return false
	}
	first, last, ok := parseByteRange(r.Header["Range"], int64(len(e.body)))
	if !ok {
		return false
	}
	h := w.Header()
	copyValues := c.copyValues.Load()
	for i := range e.fields {
		f := &e.fields[i]
		if copyValues {
			h[f.name] = slices.Clone(f.values)
		} else {
			h[f.name] = f.values
		}
	}
	m := e.memoFor(now)
	h["Age"] = []string{m.age[0]}
	h["Cache-Status"] = []string{m.hit[0] + "; detail=range"}
	if (len(r.Header["If-None-Match"]) > 0 || len(r.Header["If-Modified-Since"]) > 0) &&
		notModified(r.Header, e.etag, e.lastModified, e.date) {
		writeNotModified(w)
		return true
	}
	h["Content-Range"] = []string{"bytes " + strconv.FormatInt(first, 10) + "-" + strconv.FormatInt(last, 10) + "/" + strconv.Itoa(len(e.body))}
	h["Content-Length"] = []string{strconv.FormatInt(last-first+1, 10)}
	w.WriteHeader(http.StatusPartialContent)
	_, _ = w.Write(e.body[first : last+1])
	return true
}

// parseByteRange parses a Range header holding one satisfiable byte range
// of a representation of size bytes (RFC 9110 §14.1.2): "first-last",
// "first-" or "-suffix". It returns the first and last byte positions.
func parseByteRange(lines []string, size int64) (first, last int64, ok bool) {
	if len(lines) != 1 || size == 0 {
		return 0, 0, false
	}
	spec, found := strings.CutPrefix(strings.TrimSpace(lines[0]), "bytes=")
	if !found || strings.IndexByte(spec, ',') >= 0 {
		return 0, 0, false
	}
	a, b, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, 0, false
	}
	num := func(s string) (int64, bool) {
		if s == "" || len(s) > 18 {
			return 0, false
		}
		n, err := strconv.ParseInt(s, 10, 64)
		return n, err == nil && s[0] != '+' && s[0] != '-'
	}
	if a == "" { // suffix
		n, ok := num(b)
		if !ok || n == 0 {
			return 0, 0, false
		}
		return max(0, size-n), size - 1, true
	}
	first, ok = num(a)
	if !ok || first >= size {
		return 0, 0, false
	}
	last = size - 1
	if b != "" {
		l, ok := num(b)
		if !ok || l < first {
			return 0, 0, false
		}
		last = min(l, size-1)
	}
	return first, last, true
}

type hitKind uint8

const (
	hitFresh hitKind = iota
	hitStale
	hitOther // status given explicitly
)

// serveEntry writes e as the response to r.
//
// On the hot path (hitFresh and hitStale) it allocates nothing: the
// header map gets the entry's own value slices and the memoized Age and
// Cache-Status ones, shared by every hit. They have len == cap, so a later
// handler's Add or Set makes its own copy; only assigning to an element in
// place would write into the entry, and a cache whose config may do that
// (SetCopyHeaderValues) copies the values into one new slice per hit.
func (c *Cache) serveEntry(w http.ResponseWriter, r *http.Request, e *entry, now int64, kind hitKind, status ...string) error {
	h := w.Header()
	if kind != hitOther && !c.copyValues.Load() {
		for i := range e.fields {
			f := &e.fields[i]
			h[f.name] = f.values
		}
		m := e.memoFor(now)
		h["Age"] = m.age
		if kind == hitFresh {
			h["Cache-Status"] = m.hit
		} else {
			h["Cache-Status"] = m.stale
		}
	} else {
		vals := make([]string, e.nvalues+2)
		n := 0
		for i := range e.fields {
			f := &e.fields[i]
			k := copy(vals[n:], f.values)
			h[f.name] = vals[n : n+k : n+k]
			n += k
		}
		m := e.memoFor(now)
		vals[n] = m.age[0]
		h["Age"] = vals[n : n+1 : n+1]
		switch kind {
		case hitFresh:
			vals[n+1] = m.hit[0]
		case hitStale:
			vals[n+1] = m.stale[0]
		default:
			vals[n+1] = status[0]
		}
		h["Cache-Status"] = vals[n+1 : n+2 : n+2]
	}
	if e.status == http.StatusOK && (len(r.Header["If-None-Match"]) > 0 || len(r.Header["If-Modified-Since"]) > 0) &&
		notModified(r.Header, e.etag, e.lastModified, e.date) {
		writeNotModified(w)
		return nil
	}
	w.WriteHeader(e.status)
	if r.Method != http.MethodHead && len(e.body) > 0 {
		_, _ = w.Write(e.body) // a client gone away is not our error
	}
	return nil
}

// writeNotModified answers 304 with the header already in w, minus the
// representation fields a 304 should not carry (RFC 9110 §15.4.5).
func writeNotModified(w http.ResponseWriter) {
	h := w.Header()
	for _, k := range [...]string{"Content-Length", "Content-Type", "Content-Encoding", "Content-Language", "Content-Range", "Transfer-Encoding"} {
		delete(h, k)
	}
	w.WriteHeader(http.StatusNotModified)
}

// notModified evaluates the client's If-None-Match, or else its
// If-Modified-Since, against a response's validators (RFC 9111 §4.3.2).
func notModified(req http.Header, etag, lastModified, date string) bool {
	if inm := req["If-None-Match"]; len(inm) > 0 {
		return etag != "" && etagMatchWeak(inm, etag)
	}
	ims, ok := singleDate(req["If-Modified-Since"])
	if !ok {
		return false
	}
	lm := lastModified
	if lm == "" {
		lm = date
	}
	t, ok := singleDate([]string{lm})
	return ok && t <= ims
}

// etagMatchWeak reports whether any entity-tag of an If-None-Match list
// matches etag by weak comparison, or the list is "*".
func etagMatchWeak(lines []string, etag string) bool {
	etag = strings.TrimPrefix(etag, "W/")
	for _, line := range lines {
		for line != "" {
			var t string
			if i := strings.IndexByte(line, ','); i >= 0 {
				t, line = line[:i], line[i+1:]
			} else {
				t, line = line, ""
			}
			t = strings.TrimSpace(t)
			if t == "*" || strings.TrimPrefix(t, "W/") == etag {
				return true
			}
		}
	}
	return false
}

// allowed reports whether the caller of r may receive e: always without an
// Authorizer, else when it allows e's source tags (an entry without any is
// refused, since nothing proves what it shows).
func (c *Cache) allowed(r *http.Request, e *entry) bool {
	if c.cfg.Authorizer == nil {
		return true
	}
	a := c.cfg.Authorizer(r)
	if a == nil {
		return true
	}
	return a.AllowTags(e.srcTags)
}

// usableFor reports whether a fill's result may answer a waiting request.
func (c *Cache) usableFor(e *entry, r *http.Request, rq request) bool {
	if e.kind != kindResponse || (rq.authorized && !e.has(flagAuthOK)) || !c.allowed(r, e) {
		return false
	}
	if len(e.vary) == 0 {
		return true
	}
	kp := c.keyBufs.Get().(*[]byte)
	defer c.keyBufs.Put(kp)
	return varyMatches(e.vary, r.Header, *kp)
}

// valid reports whether e survived every hard purge since its fill began.
func (c *Cache) valid(e *entry) bool {
	v, _ := c.store.state(e)
	return v
}

// staleIfErrorOK reports whether e may be served because the origin
// failed (RFC 5861 §4: the response's window, or the request's).
func (c *Cache) staleIfErrorOK(e *entry, rq request) bool {
	if e == nil || e.has(flagNoStale) {
		return false
	}
	staleness := e.currentAge(c.cfg.Now().UnixNano()) - e.lifetime
	win := e.sie
	if rq.cc.StaleIfError != cachecontrol.Absent {
		win = max(win, rq.cc.StaleIfError*int64(time.Second))
	}
	return staleness < win
}

func isServerError(code int) bool {
	switch code {
	case http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// fill forwards r upstream, coalescing with other requests for key, and
// stores the response when it may. stale is the stored entry being
// replaced or revalidated, if any.
func (c *Cache) fill(w http.ResponseWriter, r *http.Request, next Handler, rq request, key, primary string, stale *entry, reason fwd) error {
	f, leader := c.flights.join(key)
	if !leader {
		c.store.stats.coalesced.Add(1)
		select {
		case <-f.done:
			c.leave(f) // a pass-through fill may still be streaming to its leader
		case <-r.Context().Done():
			c.leave(f)
			return r.Context().Err()
		}
		// A result fetched before a purge that arrived meanwhile must not
		// answer a request that may have come after it.
		if res := f.res; res != nil && c.usableFor(res, r, rq) && c.valid(res) {
			st := "meridian; fwd=" + string(reason) + "; collapsed"
			if f.staleErr {
				st = "meridian; fwd=" + string(reason) + "; collapsed; detail=stale-if-error"
			}
			return c.serveEntry(w, r, res, c.cfg.Now().UnixNano(), hitOther, st)
		}
		return c.pass(w, r, next, "meridian; fwd="+string(reason)+"; detail=not-collapsed")
	}
	defer f.release(nil, false)
	c.store.stats.misses.Add(1)

	ctx, abandon, cancel := c.fillContext(r)
	defer cancel()
	// The fill goes on while anyone waits for it: this client, or
	// requests that joined it. When the last of them leaves, it is
	// cancelled (and the origin's work with it).
	f.cancelWhenAbandoned(abandon)
	stop := context.AfterFunc(r.Context(), func() { c.leave(f) })
	defer stop()
	defer f.cancelWhenAbandoned(nil) // also when next panics
	up := c.upstreamRequest(r.Clone(ctx), stale)
	fw := c.newFillWriter(w, r, rq, f, stale, reason, primary)
	defer fw.close()
	err := next.ServeHTTP(fw, up)
	f.cancelWhenAbandoned(nil) // the upstream work is over
	if err != nil && errors.Is(context.Cause(ctx), errAbandoned) {
		return err // nobody is left to answer
	}
	if err != nil {
		c.store.stats.upstreamErrors.Add(1)
		// Nothing reached the client yet in these cases.
		switch {
		case (!fw.wroteHeader || fw.mode == modeErrorStale) && c.staleIfErrorOK(stale, rq):
			f.release(stale, true)
			c.store.stats.stale.Add(1)
			return c.serveEntry(w, r, stale, c.cfg.Now().UnixNano(), hitOther, "meridian; fwd="+string(reason)+"; detail=stale-if-error")
		case fw.mode == modeRevalidated:
			return c.serveEntry(w, r, stale, c.cfg.Now().UnixNano(), hitOther, "meridian; fwd="+string(reason)+"; fwd-status=304")
		}
		return err
	}
	res := fw.finish()
	switch fw.mode {
	case modeRevalidated:
		st := "meridian; fwd=" + string(reason) + "; fwd-status=304"
		if res == nil {
			res = stale
		}
		return c.serveEntry(w, r, res, c.cfg.Now().UnixNano(), hitOther, st)
	case modeErrorStale:
		c.store.stats.stale.Add(1)
		st := fmt.Sprintf("meridian; fwd=%s; fwd-status=%d; detail=stale-if-error", reason, fw.status)
		return c.serveEntry(w, r, stale, c.cfg.Now().UnixNano(), hitOther, st)
	}
	return nil
}

// refresh starts one background fill for e's key unless one is running.
func (c *Cache) refresh(r *http.Request, next Handler, e *entry, rq request) {
	f, leader := c.flights.join(e.key)
	if !leader {
		return
	}
	c.store.stats.misses.Add(1)
	// No client waits for a background refresh: it holds its own
	// reference to the flight, so waiters that join and leave never
	// cancel it; FillTimeout bounds it.
	ctx, _, cancel := c.fillContext(r)
	up := r.Clone(ctx)
	if c.cfg.Prepare != nil {
		up = c.cfg.Prepare(up)
	}
	up = c.upstreamRequest(up, e)
	primary := e.key
	if i := strings.Index(primary, "\x00v"); i >= 0 {
		primary = primary[:i]
	}
	fw := c.newFillWriter(nil, r.Clone(ctx), rq, f, e, fwdStale, primary)
	go c.runBackground(fw, next, up, cancel)
}

// runBackground runs a background fill to completion.
func (c *Cache) runBackground(fw *fillWriter, next Handler, up *http.Request, cancel context.CancelFunc) {
	defer cancel()
	defer fw.f.release(nil, false)
	defer fw.close()
	defer func() {
		if v := recover(); v != nil && v != http.ErrAbortHandler {
			c.log.Error("background refresh panicked", "panic", fmt.Sprint(v), "url", up.URL.String())
		}
	}()
	if err := next.ServeHTTP(fw, up); err != nil {
		c.store.stats.upstreamErrors.Add(1)
		if c.log.Enabled(context.Background(), slog.LevelDebug) {
			c.log.Debug("background refresh failed", "url", up.URL.String(), "error", err)
		}
		return
	}
	fw.finish()
}

// fillContext detaches a fill from its client (waiters must not fail
// because the first client left) but bounds it by FillTimeout and the
// cache's lifetime. abandon cancels it with a cause; cancel releases it.
func (c *Cache) fillContext(r *http.Request) (ctx context.Context, abandon context.CancelCauseFunc, cancel context.CancelFunc) {
	ctx, abandon = context.WithCancelCause(context.WithoutCancel(r.Context()))
	ctx, timeout := context.WithTimeout(ctx, c.cfg.FillTimeout)
	stop := context.AfterFunc(c.cfg.BaseContext, timeout)
	return ctx, abandon, func() { stop(); timeout(); abandon(nil) }
}

// leave drops a waiter from f, counting the fill as abandoned when it
// was the last one.
func (c *Cache) leave(f *flight) {
	if f.leave() {
		c.store.stats.abandoned.Add(1)
		c.log.Debug("fill abandoned: every waiting request went away", "key", f.key)
	}
}

// conditionalFields are the client's preconditions, never forwarded on a
// fill: the cache needs a full response to store, and evaluates them
// itself.
var conditionalFields = [...]string{"If-None-Match", "If-Modified-Since", "If-Match", "If-Unmodified-Since", "If-Range"}

// upstreamRequest turns a clone of the client request into the fill
// request: GET (HEAD is answered from a stored GET), no body, the cache's
// own validators instead of the client's.
func (c *Cache) upstreamRequest(up *http.Request, stale *entry) *http.Request {
	up.Method = http.MethodGet
	up.Body = http.NoBody
	up.ContentLength = 0
	up.GetBody = nil
	for _, k := range conditionalFields {
		delete(up.Header, k)
	}
	if stale != nil {
		if stale.etag != "" {
			up.Header["If-None-Match"] = []string{stale.etag}
		}
		if stale.lastModified != "" {
			up.Header["If-Modified-Since"] = []string{stale.lastModified}
		}
	}
	return up
}

// storeResponse builds and stores the entry for a response; it returns
// nil when the response cannot be stored after all.
//
// Responses without Vary are stored under primary (replacing a Vary
// index); responses with Vary under primary plus the request's values of
// the Vary fields, with a Vary index under primary.
func (c *Cache) storeResponse(p *plan, status int, h http.Header, body []byte, clientReq *http.Request, primary string, seq uint64, reqTime, respTime int64, tagSlots []uint32, srcTags []string) *entry {
	d := draft{
		kind:       kindResponse,
		flags:      p.flags,
		status:     status,
		reqTime:    reqTime,
		respTime:   respTime,
		initialAge: p.initialAge,
		lifetime:   p.lifetime,
		swr:        p.swr,
		sie:        p.sie,
		seq:        seq,
		header:     storedHeader(h, len(body), status),
		body:       body,
	}
	d.slots = c.store.pathSlots(clientReq.URL.EscapedPath(), make([]uint32, 0, MaxPrefixDepth+3+len(p.tags)))
	d.slots = append(d.slots, c.store.keySlot(primary))
	d.npseudo = len(d.slots)
	if tagSlots != nil {
		d.slots = append(d.slots, tagSlots...)
		d.srcTags = srcTags
	} else {
		for _, t := range p.tags {
			d.slots = append(d.slots, c.store.slot(t))
			if _, _, ok := cachetag.SourceOf(t); ok {
				d.srcTags = append(d.srcTags, t)
			}
		}
	}
	if q := c.cfg.PurgeQuarantine; q > 0 && c.store.purgedSince(d.slots[d.npseudo:], c.cfg.Now().Add(-q).UnixNano()) {
		c.store.stats.quarantined.Add(1)
		c.log.Debug("not storing a response whose tags were just purged", "key", primary)
		return nil
	}
	d.key = primary
	if p.hasVary {
		vk := appendVary([]byte(primary), p.vary, clientReq.Header)
		d.key = string(vk)
		d.vary = p.vary
	}
	e, err := d.encode()
	if err == nil {
		err = c.store.put(e)
	}
	if err != nil {
		c.store.stats.uncacheable.Add(1)
		c.log.Debug("not storing response", "key", d.key, "error", err)
		return nil
	}
	if p.hasVary {
		names := make([]varyField, len(p.vary))
		for i, v := range p.vary {
			names[i].name = v.name
		}
		idx := draft{kind: kindVary, key: primary, vary: names, seq: seq, reqTime: reqTime, respTime: respTime}
		if ie, err := idx.encode(); err == nil {
			_ = c.store.put(ie)
		}
	}
	return e
}

// serveUnsafe forwards a request with an unsafe (or unknown) method and,
// on a non-error response, invalidates its URL and the same-host URLs in
// Location and Content-Location (RFC 9111 §4.4).
func (c *Cache) serveUnsafe(w http.ResponseWriter, r *http.Request, next Handler) error {
	sw := &passWriter{ResponseWriter: w, status: "meridian; fwd=method"}
	err := next.ServeHTTP(sw, r)
	if err != nil || sw.code < 200 || sw.code >= 400 {
		return err
	}
	c.invalidate(r, r.URL.String())
	for _, k := range [...]string{"Location", "Content-Location"} {
		if v := w.Header().Get(k); v != "" {
			c.invalidate(r, v)
		}
	}
	return nil
}

// invalidate purges the path of target if it is on r's host.
func (c *Cache) invalidate(r *http.Request, target string) {
	host, path, err := urlPath(target)
	if err != nil || (host != "" && !strings.EqualFold(host, r.Host)) {
		return
	}
	if !strings.HasPrefix(path, "/") { // relative reference
		base := r.URL.EscapedPath()
		path = base[:strings.LastIndexByte(base, '/')+1] + path
	}
	c.store.PurgePath(path, false)
	c.store.stats.invalid.Add(1)
}

// pass forwards r without storing, stripping Surrogate-Key from the
// response and adding status to Cache-Status.
func (c *Cache) pass(w http.ResponseWriter, r *http.Request, next Handler, status string) error {
	c.store.stats.bypass.Add(1)
	return next.ServeHTTP(&passWriter{ResponseWriter: w, status: status}, r)
}

// passWriter strips Surrogate-Key and adds Cache-Status when the header is
// written, and records the status code.
type passWriter struct {
	http.ResponseWriter
	status string
	code   int
}

func (pw *passWriter) WriteHeader(code int) {
	if pw.code == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		pw.code = code
		h := pw.Header()
		delete(h, cachetag.Header)
		h["Cache-Status"] = append(h["Cache-Status"], pw.status)
	}
	pw.ResponseWriter.WriteHeader(code)
}

func (pw *passWriter) Write(p []byte) (int, error) {
	if pw.code == 0 {
		pw.WriteHeader(http.StatusOK)
	}
	return pw.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (pw *passWriter) Unwrap() http.ResponseWriter { return pw.ResponseWriter }
