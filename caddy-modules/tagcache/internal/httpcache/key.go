package httpcache

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// DefaultDropQuery returns the query parameters left out of cache keys by
// default: credentials and client identification that do not change the
// response (authorization is checked per request before the lookup).
func DefaultDropQuery() []string {
	return []string{"access_token", "client", "v", "deckglVersion"}
}

// maxKeyLen bounds cache keys; requests with longer keys bypass the cache.
const maxKeyLen = 8 << 10

// keyer builds cache keys:
//
//	scheme "://" lower(host) escaped-path ["?" normalized-query] [vary part]
//
// The normalized query drops the configured parameters and sorts the rest
// by name, keeping the relative order of repeated names. The method is not
// part of the key: only GET is stored and HEAD is answered from it.
type keyer struct {
	drop []string
}

// appendPrimary appends the key of r without its Vary part.
func (k *keyer) appendPrimary(b []byte, r *http.Request) []byte {
	if r.TLS != nil {
		b = append(b, "https://"...)
	} else {
		b = append(b, "http://"...)
	}
	b = appendLower(b, r.Host)
	p := r.URL.EscapedPath()
	if p == "" {
		p = "/"
	}
	b = append(b, p...)
	return k.appendQuery(b, r.URL.RawQuery)
}

func (k *keyer) appendQuery(b []byte, raw string) []byte {
	if raw == "" {
		return b
	}
	var arr [32]string
	ps := arr[:0]
	for raw != "" {
		var p string
		if i := strings.IndexByte(raw, '&'); i >= 0 {
			p, raw = raw[:i], raw[i+1:]
		} else {
			p, raw = raw, ""
		}
		if p == "" || k.dropped(paramName(p)) {
			continue
		}
		ps = append(ps, p)
	}
	if len(ps) == 0 {
		return b
	}
	slices.SortStableFunc(ps, func(a, b string) int { return strings.Compare(paramName(a), paramName(b)) })
	b = append(b, '?')
	for i, p := range ps {
		if i > 0 {
			b = append(b, '&')
		}
		b = append(b, p...)
	}
	return b
}

func (k *keyer) dropped(name string) bool {
	for _, d := range k.drop {
		if d == name {
			return true
		}
	}
	return false
}

func paramName(p string) string {
	if i := strings.IndexByte(p, '='); i >= 0 {
		return p[:i]
	}
	return p
}

// appendVary appends the Vary part of a key: for each selecting field
// name, whether the request has it and its normalized value.
func appendVary(b []byte, names []varyField, h http.Header) []byte {
	b = append(b, 0, 'v')
	for _, f := range names {
		b = append(b, 0)
		b = append(b, f.name...)
		lines, ok := h[f.name]
		if !ok {
			b = append(b, '!')
			continue
		}
		b = append(b, '=')
		b = appendVaryValue(b, lines)
	}
	return b
}

// appendVaryValue appends the field lines joined by "," with whitespace
// around list elements removed (RFC 9111 §4.1 allows both).
func appendVaryValue(b []byte, lines []string) []byte {
	first := true
	for _, line := range lines {
		for line != "" {
			var el string
			if i := strings.IndexByte(line, ','); i >= 0 {
				el, line = line[:i], line[i+1:]
			} else {
				el, line = line, ""
			}
			el = strings.Trim(el, " \t")
			if el == "" {
				continue
			}
			if !first {
				b = append(b, ',')
			}
			first = false
			b = append(b, el...)
		}
	}
	return b
}

// varyFields returns the request fields selected by a response's Vary
// lines: canonical names, sorted, deduplicated. star reports "Vary: *".
func varyFields(lines []string, req http.Header) (fields []varyField, star bool) {
	for _, line := range lines {
		for _, n := range strings.Split(line, ",") {
			n = strings.TrimSpace(n)
			if n == "" {
				continue
			}
			if n == "*" {
				return nil, true
			}
			n = http.CanonicalHeaderKey(n)
			if !slices.ContainsFunc(fields, func(f varyField) bool { return f.name == n }) {
				fields = append(fields, varyField{name: n})
			}
		}
	}
	slices.SortFunc(fields, func(a, b varyField) int { return strings.Compare(a.name, b.name) })
	for i := range fields {
		if lines, ok := req[fields[i].name]; ok {
			fields[i].present = true
			fields[i].value = string(appendVaryValue(nil, lines))
		}
	}
	return fields, false
}

// varyMatches reports whether req selects the same variant as the stored
// request fields, using buf as scratch space.
func varyMatches(fields []varyField, req http.Header, buf []byte) bool {
	for _, f := range fields {
		lines, ok := req[f.name]
		if ok != f.present {
			return false
		}
		if ok && string(appendVaryValue(buf[:0], lines)) != f.value {
			return false
		}
	}
	return true
}

// urlPath returns the escaped path (and the host, empty when relative)
// of a purge or Location URL.
func urlPath(raw string) (host, path string, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", err
	}
	p := u.EscapedPath()
	if p == "" {
		p = "/"
	}
	return u.Host, p, nil
}

func appendLower(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	return b
}
