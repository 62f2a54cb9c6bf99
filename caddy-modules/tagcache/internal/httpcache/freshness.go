package httpcache

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/meridian-gis/meridian/caddy-modules/tagcache/internal/cachecontrol"
	"github.com/meridian-gis/meridian/internal/cachetag"
)

// plan is the storage decision for a response, made when its header
// arrives (RFC 9111 §3 and §4.2).
type plan struct {
	store  bool
	detail string // why not, when !store

	flags      uint8
	lifetime   int64 // freshness_lifetime, ns
	initialAge int64 // corrected_initial_age, ns
	swr, sie   int64 // stale windows, ns
	vary       []varyField
	hasVary    bool
	tags       []string
}

// heuristicStatus reports status codes that are heuristically cacheable
// (RFC 9110 §15.1).
func heuristicStatus(code int) bool {
	switch code {
	case 200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501:
		return true
	}
	return false
}

// understoodStatus reports status codes whose caching semantics this
// cache implements, for must-understand (RFC 9111 §5.2.2.3).
func understoodStatus(code int) bool {
	switch code {
	case 200, 203, 204, 300, 301, 302, 303, 307, 308, 404, 405, 410, 414, 501:
		return true
	}
	return false
}

// planResponse decides whether and how long to keep a response with the
// given status and header, received for req (which carried Authorization
// that has not been checked when authorized is set). reqTime is when the
// request went upstream, respTime when the response header arrived.
func (c *Cache) planResponse(status int, h http.Header, req *http.Request, authorized bool, reqTime, respTime int64) plan {
	cc := cachecontrol.Parse(h["Cache-Control"])
	expires := h["Expires"]
	// RFC 9213: a valid, non-empty CDN-Cache-Control replaces
	// Cache-Control and Expires for this cache.
	if l := h["Cdn-Cache-Control"]; len(l) > 0 {
		if cdn, ok := cachecontrol.ParseCDN(l); ok {
			cc, expires = cdn, nil
		}
	}
	var p plan
	switch {
	case cc.Invalid:
		p.detail = "bad-cache-control"
	case status < 200 || status == http.StatusPartialContent || status == http.StatusNotModified:
		p.detail = "status"
	case cc.NoStore && !(cc.MustUnderstand && understoodStatus(status)):
		p.detail = "no-store"
	case cc.Private:
		p.detail = "private"
	case authorized && !(cc.Public || cc.SMaxAge != cachecontrol.Absent || cc.MustRevalidate):
		p.detail = "authorization"
	case len(h["Set-Cookie"]) > 0:
		p.detail = "set-cookie"
	}
	if p.detail != "" {
		return p
	}
	if vl := h["Vary"]; len(vl) > 0 {
		var star bool
		p.vary, star = varyFields(vl, req.Header)
		if star {
			p.detail = "vary-star"
			return p
		}
		p.hasVary = len(p.vary) > 0
	}
	if cl := h.Get("Content-Length"); cl != "" {
		if n, err := strconv.ParseInt(cl, 10, 64); err == nil && n > c.maxBody {
			p.detail = "too-large"
			return p
		}
	}
	explicit := cc.SMaxAge != cachecontrol.Absent || cc.MaxAge != cachecontrol.Absent || len(expires) > 0
	if !explicit && !heuristicStatus(status) && !cc.Public {
		p.detail = "uncacheable-status"
		return p
	}

	dateV := respTime
	if d, ok := singleDate(h["Date"]); ok {
		dateV = d
	}
	switch {
	case cc.SMaxAge != cachecontrol.Absent:
		p.lifetime = cc.SMaxAge * int64(time.Second)
	case cc.MaxAge != cachecontrol.Absent:
		p.lifetime = cc.MaxAge * int64(time.Second)
	case len(expires) > 0:
		// An invalid or repeated Expires means "already expired".
		if exp, ok := singleDate(expires); ok && exp > dateV {
			p.lifetime = exp - dateV
		}
	default:
		if lm, ok := singleDate(h["Last-Modified"]); ok && lm <= dateV {
			p.lifetime = min((dateV-lm)/10, int64(c.cfg.HeuristicMax))
		} else {
			p.lifetime = int64(c.cfg.DefaultTTL)
		}
	}

	// RFC 9111 §4.2.3
	var ageValue int64
	if v, ok := parseAge(h["Age"]); ok {
		ageValue = v * int64(time.Second)
	}
	apparentAge := max(0, respTime-dateV)
	correctedAge := ageValue + max(0, respTime-reqTime)
	p.initialAge = max(apparentAge, correctedAge)

	if cc.Public || cc.SMaxAge != cachecontrol.Absent || cc.MustRevalidate {
		p.flags |= flagAuthOK
	}
	if cc.NoCache {
		p.flags |= flagNoCache | flagNoStale
	}
	if cc.MustRevalidate || cc.ProxyRevalidate {
		p.flags |= flagNoStale
	}
	explicitStale := cc.StaleWhileRevalidate != cachecontrol.Absent || cc.StaleIfError != cachecontrol.Absent
	if cc.SMaxAge != cachecontrol.Absent && !explicitStale {
		p.flags |= flagNoStale // s-maxage implies proxy-revalidate
	}
	if p.flags&flagNoStale == 0 {
		p.swr = window(cc.StaleWhileRevalidate, c.cfg.StaleWhileRevalidate)
		p.sie = window(cc.StaleIfError, c.cfg.StaleIfError)
	}

	validators := len(h["Etag"]) > 0 || len(h["Last-Modified"]) > 0
	if !validators && p.swr == 0 && p.sie == 0 && (p.lifetime <= p.initialAge || cc.NoCache) {
		p.detail = "no-freshness"
		return p
	}
	if sk := h[cachetag.Header]; len(sk) > 0 {
		v := sk[0]
		if len(sk) > 1 {
			v = strings.Join(sk, " ")
		}
		p.tags = cachetag.Split(v, c.cfg.MaxTags)
	}
	p.store = true
	return p
}

func window(directive int64, def time.Duration) int64 {
	if directive != cachecontrol.Absent {
		return directive * int64(time.Second)
	}
	return int64(def)
}

// singleDate parses a header holding exactly one HTTP-date (strictly, see
// parseHTTPDate).
func singleDate(lines []string) (int64, bool) {
	if len(lines) != 1 {
		return 0, false
	}
	t, ok := parseHTTPDate(strings.TrimSpace(lines[0]))
	if !ok {
		return 0, false
	}
	return t.UnixNano(), true
}

// parseAge returns the Age of a response, in seconds: the first member of
// the first field line (an origin or cache that appended its own value
// made a list; "7200, 0" is as old as 7200), without parameters. A value
// that is not delta-seconds (negative, decimal, words) is ignored.
func parseAge(lines []string) (int64, bool) {
	if len(lines) == 0 {
		return 0, false
	}
	v := lines[0]
	if i := strings.IndexAny(v, ",;"); i >= 0 {
		v = v[:i]
	}
	return cachecontrol.ParseDelta(strings.TrimSpace(v))
}

// hopByHop lists header fields never stored or copied from a 304.
var hopByHop = [...]string{
	"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer",
	"Transfer-Encoding", "Upgrade", "Proxy-Authenticate", "Proxy-Authorization",
}

// storedHeader returns the fields of h kept in a stored response: no
// hop-by-hop fields, no Surrogate-Key, Cache-Status or Age, none named by
// no-cache="…" or private="…", and a Content-Length matching the body.
func storedHeader(h http.Header, bodyLen int, status int) http.Header {
	out := make(http.Header, len(h)+1)
	for k, v := range h {
		if len(v) == 0 || strings.HasPrefix(k, http.TrailerPrefix) {
			continue
		}
		out[k] = v
	}
	for _, k := range hopByHop {
		delete(out, k)
	}
	for _, line := range h["Connection"] {
		for _, n := range strings.Split(line, ",") {
			delete(out, http.CanonicalHeaderKey(strings.TrimSpace(n)))
		}
	}
	delete(out, cachetag.Header)
	delete(out, "Cache-Status")
	delete(out, "Age")
	cc := cachecontrol.Parse(h["Cache-Control"])
	drop := func(name string) { delete(out, http.CanonicalHeaderKey(name)) }
	cachecontrol.Fields(cc.NoCacheFields, drop)
	cachecontrol.Fields(cc.PrivateFields, drop)
	if status == http.StatusNoContent || status == http.StatusNotModified {
		delete(out, "Content-Length")
	} else {
		out["Content-Length"] = []string{strconv.Itoa(bodyLen)}
	}
	return out
}

// mergeNotModified applies the fields of a 304 to a stored header
// (RFC 9111 §3.2), except Content-Length and the fields never stored. The
// 304's tags (cachetag.Header) are kept in the result, so that the
// freshened entry is planned, and purgeable, with them; storedHeader
// drops them again before anything is stored or served.
func mergeNotModified(stored, h304 http.Header) http.Header {
	out := stored
	delete(out, "Age")
	for k, v := range h304 {
		if k == "Content-Length" || k == "Cache-Status" || len(v) == 0 ||
			strings.HasPrefix(k, http.TrailerPrefix) || slices.Contains(hopByHop[:], k) {
			continue
		}
		out[k] = v
	}
	return out
}
