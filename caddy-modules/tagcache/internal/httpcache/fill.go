package httpcache

import (
	"bytes"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/meridian-gis/meridian/internal/cachetag"
)

// fillMode is what a fill does with the upstream response.
type fillMode uint8

const (
	modeNone        fillMode = iota // no final header yet
	modePass                        // uncacheable: streamed to the client only
	modeStore                       // streamed and buffered for storing
	modeOversize                    // was modeStore; the body outgrew the limit
	modeRevalidated                 // 304 to the cache's validators
	modeErrorStale                  // server error; a stale entry will be served
)

// fillWriter is the ResponseWriter the next handler writes an upstream
// response to during a fill. It streams the response to the client (if
// any) while buffering it for the store, strips Surrogate-Key, and adds
// Cache-Status. Once the response is known to be cacheable, a client that
// goes away does not abort the fill by itself: writes to it stop and
// buffering goes on while other requests wait for the fill (when none do,
// the fill's context is cancelled; see Cache.leave).
type fillWriter struct {
	c       *Cache
	w       http.ResponseWriter // the client; nil for a background refresh
	req     *http.Request       // the client's request
	rq      request
	f       *flight
	stale   *entry
	reason  fwd
	primary string

	seq      uint64 // purge sequence before the request went upstream
	reqTime  int64
	respTime int64

	header      http.Header
	wroteHeader bool
	status      int
	mode        fillMode
	plan        plan
	buf         *bytes.Buffer
	toClient    bool
	clientErr   error
}

// newFillWriter must be called right before the request goes upstream:
// it records the purge sequence and request_time.
func (c *Cache) newFillWriter(w http.ResponseWriter, req *http.Request, rq request, f *flight, stale *entry, reason fwd, primary string) *fillWriter {
	return &fillWriter{
		c: c, w: w, req: req, rq: rq, f: f, stale: stale, reason: reason, primary: primary,
		seq:     c.store.beginFill(),
		reqTime: c.cfg.Now().UnixNano(),
		header:  make(http.Header),
	}
}

func (fw *fillWriter) Header() http.Header { return fw.header }

func (fw *fillWriter) WriteHeader(code int) {
	if fw.wroteHeader {
		return
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		fw.forward1xx(code)
		return
	}
	fw.wroteHeader = true
	fw.status = code
	fw.respTime = fw.c.cfg.Now().UnixNano()
	switch {
	case fw.stale != nil && code == http.StatusNotModified && fw.stale.hasValidators():
		fw.mode = modeRevalidated
		fw.c.store.stats.revalidated.Add(1)
		return
	case fw.stale != nil && isServerError(code) && fw.c.staleIfErrorOK(fw.stale, fw.rq):
		fw.mode = modeErrorStale
		fw.c.store.stats.upstreamErrors.Add(1)
		return
	}
	fw.plan = fw.c.planResponse(code, fw.header, fw.req, fw.rq.authorized, fw.reqTime, fw.respTime)
	status := "meridian; fwd=" + string(fw.reason)
	if fw.stale != nil {
		status += "; fwd-status=" + strconv.Itoa(code)
	}
	if fw.plan.store {
		fw.mode = modeStore
		fw.buf = fw.c.bodyBufs.Get().(*bytes.Buffer)
		fw.buf.Reset()
		status += "; stored"
	} else {
		fw.mode = modePass
		fw.c.store.stats.uncacheable.Add(1)
		fw.f.release(nil, false) // waiters go upstream themselves, now
		status += "; detail=" + fw.plan.detail
		if fw.stale != nil && !isServerError(code) {
			// The origin no longer lets this be cached: do not keep
			// serving the old response (stale-while-revalidate, soft
			// purge, max-stale).
			fw.c.store.remove(fw.stale.key)
		}
	}
	if fw.w == nil {
		return
	}
	ch := fw.w.Header()
	for k, v := range fw.header {
		if k != cachetag.Header {
			ch[k] = slices.Clone(v) // later handlers may edit in place
		}
	}
	ch["Cache-Status"] = append(ch["Cache-Status"], status)
	if code == http.StatusOK && (len(fw.req.Header["If-None-Match"]) > 0 || len(fw.req.Header["If-Modified-Since"]) > 0) &&
		notModified(fw.req.Header, fw.header.Get("Etag"), fw.header.Get("Last-Modified"), fw.header.Get("Date")) {
		writeNotModified(fw.w)
		return
	}
	fw.w.WriteHeader(code)
	fw.toClient = fw.req.Method != http.MethodHead
}

// forward1xx passes an informational response (e.g. 103 Early Hints)
// through to the client without disturbing its final header.
func (fw *fillWriter) forward1xx(code int) {
	if fw.w == nil {
		return
	}
	ch := fw.w.Header()
	saved := ch.Clone()
	for k, v := range fw.header {
		if k != cachetag.Header {
			ch[k] = v
		}
	}
	fw.w.WriteHeader(code)
	clear(ch)
	maps.Copy(ch, saved)
}

func (fw *fillWriter) Write(p []byte) (int, error) {
	if !fw.wroteHeader {
		fw.WriteHeader(http.StatusOK)
	}
	switch fw.mode {
	case modeRevalidated, modeErrorStale:
		return len(p), nil
	case modeStore:
		if int64(fw.buf.Len()+len(p)) > fw.c.maxBody {
			fw.mode = modeOversize
			fw.putBuf()
			fw.c.store.stats.uncacheable.Add(1)
			fw.f.release(nil, false)
		} else {
			fw.buf.Write(p)
		}
	}
	if !fw.toClient {
		return len(p), nil
	}
	if fw.clientErr != nil {
		if fw.mode == modeStore {
			return len(p), nil
		}
		return 0, fw.clientErr
	}
	n, err := fw.w.Write(p)
	if err != nil {
		fw.clientErr = err
		if fw.mode == modeStore {
			return len(p), nil
		}
		return n, err
	}
	return n, nil
}

// FlushError flushes the client's writer (http.ResponseController uses it).
func (fw *fillWriter) FlushError() error {
	if !fw.wroteHeader {
		fw.WriteHeader(http.StatusOK)
	}
	if !fw.toClient || fw.clientErr != nil {
		return nil
	}
	err := http.NewResponseController(fw.w).Flush()
	if err != nil && fw.mode == modeStore {
		fw.clientErr = err
		return nil
	}
	return err
}

// Flush implements http.Flusher.
func (fw *fillWriter) Flush() { _ = fw.FlushError() }

// Unwrap lets http.ResponseController reach the client's writer.
func (fw *fillWriter) Unwrap() http.ResponseWriter { return fw.w }

// finish completes a fill whose next handler returned without error:
// it stores or freshens the entry, releases the waiters, and returns the
// entry to serve (nil when the response was already streamed).
func (fw *fillWriter) finish() *entry {
	if !fw.wroteHeader {
		fw.WriteHeader(http.StatusOK)
	}
	if fw.w != nil {
		for k, v := range fw.header {
			if strings.HasPrefix(k, http.TrailerPrefix) {
				fw.w.Header()[k] = v
			}
		}
	}
	switch fw.mode {
	case modeStore:
		body := fw.buf.Bytes()
		if cl := fw.header.Get("Content-Length"); cl != "" && cl != strconv.Itoa(len(body)) {
			fw.c.store.stats.uncacheable.Add(1)
			return nil // truncated: never store part of a body
		}
		e := fw.c.storeResponse(&fw.plan, fw.status, fw.header, body, fw.req, fw.primary, fw.seq, fw.reqTime, fw.respTime, nil, nil)
		fw.f.release(e, false)
		return nil
	case modeRevalidated:
		e := fw.freshen()
		fw.f.release(e, false)
		return e
	case modeErrorStale:
		fw.f.release(fw.stale, true)
		return fw.stale
	}
	return nil
}

// freshen applies a 304 to the stale entry (RFC 9111 §4.3.4) and stores
// the result when it is still storable. It returns the entry to serve.
func (fw *fillWriter) freshen() *entry {
	c, s := fw.c, fw.stale
	merged := mergeNotModified(s.headerMap(), fw.header)
	p := c.planResponse(s.status, merged, fw.req, fw.rq.authorized, fw.reqTime, fw.respTime)
	var tags []uint32
	if len(fw.header[cachetag.Header]) == 0 {
		tags = s.tagSlots()
	}
	if p.store {
		p.hasVary, p.vary = len(s.vary) > 0, s.vary
		if e := c.storeResponse(&p, s.status, merged, s.body, fw.req, fw.primary, fw.seq, fw.reqTime, fw.respTime, tags, s.srcTags); e != nil {
			return e
		}
	} else {
		c.store.remove(s.key)
	}
	// Not storable any more: serve the freshened response once.
	d := draft{kind: kindResponse, status: s.status, reqTime: fw.reqTime, respTime: fw.respTime,
		initialAge: p.initialAge, lifetime: p.lifetime, key: s.key,
		header: storedHeader(merged, len(s.body), s.status), body: s.body}
	if e, err := d.encode(); err == nil {
		return e
	}
	return s
}

func (fw *fillWriter) putBuf() {
	if fw.buf == nil {
		return
	}
	if fw.buf.Cap() <= 1<<20 {
		fw.c.bodyBufs.Put(fw.buf)
	}
	fw.buf = nil
}

// close returns the body buffer; the fill must not be used afterwards.
func (fw *fillWriter) close() { fw.putBuf() }
