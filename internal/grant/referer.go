package grant

import "strings"

// refererPattern is one compiled entry of Claims.Referers.
type refererPattern struct {
	any    bool   // "*": every origin
	scheme string // lower case; "" = http or https
	host   string // lower case host[:port]; for a wildcard, "." + suffix
	wild   bool   // "*.example.com": strict subdomains only
}

// parseRefererPattern compiles a referers entry. Accepted forms:
//
//   - any origin (same as no restriction for browsers)
//     https://app.example.com    that scheme, host and port
//     app.example.com            that host on http or https
//     https://*.example.com      any subdomain (not example.com itself)
//     *.example.com:8443         any subdomain on that port, http or https
//
// A path, query or fragment in an entry is ignored: browsers often send
// only the origin (Origin header, or Referer under the default
// strict-origin-when-cross-origin policy), so only origins can be
// compared reliably.
func parseRefererPattern(s string) (refererPattern, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "*" {
		return refererPattern{any: true}, true
	}
	var p refererPattern
	if i := strings.Index(s, "://"); i >= 0 {
		p.scheme = s[:i]
		s = s[i+3:]
		if p.scheme == "" {
			return p, false
		}
	}
	if i := strings.IndexAny(s, "/?#"); i >= 0 {
		s = s[:i]
	}
	if s == "" || strings.ContainsAny(s, "@ \t\r\n") {
		return p, false
	}
	if s == "*" {
		p.any = p.scheme == ""
		p.host, p.wild = "", true
		return p, true
	}
	if rest, ok := strings.CutPrefix(s, "*."); ok {
		if rest == "" || strings.Contains(rest, "*") {
			return p, false
		}
		p.host, p.wild = "."+rest, true
		return p, true
	}
	if strings.Contains(s, "*") {
		return p, false
	}
	p.host = s
	return p, true
}

// CheckReferer checks a request's Origin header (or, when absent, its
// Referer header) against the token's referers: nil when the token has no
// referers or one matches, else ErrReferer (unwrapped; no allocation for
// verified claims). An empty or unparseable header is refused when the
// token is restricted.
//
// This restricts well-behaved browsers only: any other client can send
// whatever header it likes.
func (c *Claims) CheckReferer(header string) error {
	p := c.prepared()
	if !p.restrictOrigin {
		return nil
	}
	scheme, host, ok := splitOrigin(header)
	if !ok {
		return ErrReferer
	}
	for i := range p.referers {
		if p.referers[i].match(scheme, host) {
			return nil
		}
	}
	return ErrReferer
}

func (p *refererPattern) match(scheme, host string) bool {
	if p.any {
		return true
	}
	if p.scheme != "" {
		if !asciiEqualFold(scheme, p.scheme) {
			return false
		}
	} else if !asciiEqualFold(scheme, "https") && !asciiEqualFold(scheme, "http") {
		return false
	}
	switch {
	case p.wild && p.host == "":
		return true // "https://*"
	case p.wild:
		return len(host) > len(p.host) && asciiEqualFold(host[len(host)-len(p.host):], p.host)
	default:
		return asciiEqualFold(host, p.host)
	}
}

// splitOrigin returns the scheme and host[:port] of an origin or URL.
func splitOrigin(h string) (scheme, host string, ok bool) {
	i := strings.Index(h, "://")
	if i <= 0 {
		return "", "", false
	}
	scheme, host = h[:i], h[i+3:]
	if j := strings.IndexAny(host, "/?#"); j >= 0 {
		host = host[:j]
	}
	if host == "" || strings.IndexByte(host, '@') >= 0 {
		return "", "", false
	}
	return scheme, host, true
}
