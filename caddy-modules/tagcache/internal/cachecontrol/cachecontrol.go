// Package cachecontrol parses the Cache-Control header field of HTTP
// requests and responses (RFC 9111 §5.2) without allocating.
//
// Parsing is strict where it matters for a shared cache: a malformed list,
// an unterminated quoted string, a delta-seconds argument that is not a
// non-negative integer, or two different values for the same freshness
// directive all set Directives.Invalid, and callers are expected to neither
// store nor serve from cache on such a message. Unknown directives are
// ignored, as RFC 9111 §5.2.3 requires.
package cachecontrol

import "strings"

// Absent is the value of a delta-seconds directive that is not present.
const Absent = -1

// MaxDelta is the value used for a delta-seconds argument too large to
// represent (RFC 9111 §1.2.2: 2^31).
const MaxDelta = 2147483648

// Directives are the Cache-Control directives of one message. Numeric
// fields are in seconds and are Absent when the directive is missing.
type Directives struct {
	MaxAge               int64
	SMaxAge              int64
	MaxStale             int64 // request; see MaxStaleAny
	MinFresh             int64 // request
	StaleWhileRevalidate int64 // response (RFC 5861)
	StaleIfError         int64 // request and response (RFC 5861)

	// MaxStaleAny is set for a request "max-stale" without an argument:
	// any staleness is acceptable.
	MaxStaleAny bool

	NoStore         bool
	NoCache         bool
	Private         bool
	Public          bool
	MustRevalidate  bool
	ProxyRevalidate bool
	MustUnderstand  bool
	OnlyIfCached    bool
	NoTransform     bool
	Immutable       bool

	// NoCacheFields and PrivateFields hold the field-name list argument
	// of no-cache and private (without quotes), or "" when the directive
	// has no argument. Iterate them with Fields.
	NoCacheFields string
	PrivateFields string

	// Invalid reports parse trouble (see the package doc).
	Invalid bool
}

// Parse parses the field lines of a Cache-Control header field (as found
// in http.Header["Cache-Control"]). A nil or empty slice yields all
// directives absent.
func Parse(lines []string) Directives {
	d := Directives{
		MaxAge:               Absent,
		SMaxAge:              Absent,
		MaxStale:             Absent,
		MinFresh:             Absent,
		StaleWhileRevalidate: Absent,
		StaleIfError:         Absent,
	}
	for _, line := range lines {
		if !d.parseLine(line) {
			d.Invalid = true
		}
	}
	return d
}

// parseLine parses one field line; it reports false on a syntax error.
func (d *Directives) parseLine(s string) bool {
	i := 0
	for {
		i = skipOWS(s, i)
		if i == len(s) {
			return true
		}
		if s[i] == ',' { // empty list element
			i++
			continue
		}
		start := i
		for i < len(s) && isTchar(s[i]) {
			i++
		}
		if i == start {
			return false
		}
		name := s[start:i]
		var arg string
		hasArg := false
		if i < len(s) && s[i] == '=' {
			i++
			hasArg = true
			if i < len(s) && s[i] == '"' {
				i++
				as := i
				for i < len(s) && s[i] != '"' {
					if s[i] == '\\' {
						i++
					}
					i++
				}
				if i >= len(s) {
					return false // unterminated quoted-string
				}
				arg = s[as:i]
				i++ // closing quote
			} else {
				as := i
				for i < len(s) && isTchar(s[i]) {
					i++
				}
				arg = s[as:i]
			}
		}
		if !d.apply(name, arg, hasArg) {
			return false
		}
		i = skipOWS(s, i)
		if i < len(s) {
			if s[i] != ',' {
				return false
			}
			i++
		}
	}
}

// apply records one directive; it reports false when the argument of a
// known directive is malformed or conflicts with an earlier occurrence.
func (d *Directives) apply(name, arg string, hasArg bool) bool {
	switch {
	case strings.EqualFold(name, "max-age"):
		return setDelta(&d.MaxAge, arg, hasArg)
	case strings.EqualFold(name, "s-maxage"):
		return setDelta(&d.SMaxAge, arg, hasArg)
	case strings.EqualFold(name, "min-fresh"):
		return setDelta(&d.MinFresh, arg, hasArg)
	case strings.EqualFold(name, "stale-while-revalidate"):
		return setDelta(&d.StaleWhileRevalidate, arg, hasArg)
	case strings.EqualFold(name, "stale-if-error"):
		return setDelta(&d.StaleIfError, arg, hasArg)
	case strings.EqualFold(name, "max-stale"):
		if !hasArg {
			d.MaxStaleAny = true
			return true
		}
		return setDelta(&d.MaxStale, arg, hasArg)
	case strings.EqualFold(name, "no-store"):
		d.NoStore = true
	case strings.EqualFold(name, "no-cache"):
		if hasArg && arg != "" {
			if d.NoCacheFields != "" && d.NoCacheFields != arg {
				return false
			}
			d.NoCacheFields = arg
			return true
		}
		d.NoCache = true
	case strings.EqualFold(name, "private"):
		if hasArg && arg != "" {
			if d.PrivateFields != "" && d.PrivateFields != arg {
				return false
			}
			d.PrivateFields = arg
			return true
		}
		d.Private = true
	case strings.EqualFold(name, "public"):
		d.Public = true
	case strings.EqualFold(name, "must-revalidate"):
		d.MustRevalidate = true
	case strings.EqualFold(name, "proxy-revalidate"):
		d.ProxyRevalidate = true
	case strings.EqualFold(name, "must-understand"):
		d.MustUnderstand = true
	case strings.EqualFold(name, "only-if-cached"):
		d.OnlyIfCached = true
	case strings.EqualFold(name, "no-transform"):
		d.NoTransform = true
	case strings.EqualFold(name, "immutable"):
		d.Immutable = true
	}
	return true
}

// setDelta parses a delta-seconds argument into *dst. A repeated
// directive with the same value is accepted; a different value is not.
func setDelta(dst *int64, arg string, hasArg bool) bool {
	if !hasArg {
		return false
	}
	v, ok := ParseDelta(arg)
	if !ok {
		return false
	}
	if *dst != Absent && *dst != v {
		return false
	}
	*dst = v
	return true
}

// ParseDelta parses delta-seconds (1*DIGIT), clamping values beyond
// MaxDelta to MaxDelta. It reports false for an empty or non-digit string.
func ParseDelta(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	var v int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if v < MaxDelta {
			v = v*10 + int64(c-'0')
		}
	}
	if v > MaxDelta {
		v = MaxDelta
	}
	return v, true
}

// Fields calls fn for each field name of a no-cache or private argument
// (a comma-separated list), trimmed of whitespace.
func Fields(list string, fn func(name string)) {
	for list != "" {
		var f string
		if i := strings.IndexByte(list, ','); i >= 0 {
			f, list = list[:i], list[i+1:]
		} else {
			f, list = list, ""
		}
		if f = strings.TrimSpace(f); f != "" {
			fn(f)
		}
	}
}

// HasToken reports whether any line of a comma-separated header field
// contains token (case-insensitively), as for "Pragma: no-cache".
func HasToken(lines []string, token string) bool {
	for _, line := range lines {
		for line != "" {
			var f string
			if i := strings.IndexByte(line, ','); i >= 0 {
				f, line = line[:i], line[i+1:]
			} else {
				f, line = line, ""
			}
			if strings.EqualFold(strings.TrimSpace(f), token) {
				return true
			}
		}
	}
	return false
}

func skipOWS(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	return i
}

// isTchar reports whether c is a token character (RFC 9110 §5.6.2).
func isTchar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}
