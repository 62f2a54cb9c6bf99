package cachecontrol

// CDN-Cache-Control (RFC 9213) is a Structured Field Dictionary (RFC 8941)
// of Cache-Control directives aimed at CDNs and reverse proxies. A cache
// that honours it uses it instead of Cache-Control and Expires when it is
// present, valid and not empty, and ignores it otherwise.

// sfType is the type of a Structured Field bare item or inner list.
type sfType uint8

const (
	sfInteger sfType = iota + 1
	sfDecimal
	sfString
	sfToken
	sfBytes
	sfBoolean
	sfInnerList
)

// ParseCDN parses the field lines of a CDN-Cache-Control response field.
// ok is false when the field is absent, empty, not a valid Structured
// Field Dictionary, or gives a known directive a value of the wrong type
// (e.g. max-age="10"): the caller then ignores it. Directive names are
// case-sensitive (Dictionary keys are lowercase); unknown ones and the
// request-only directives are ignored. Qualified no-cache and private
// (with a String argument) count as their unqualified forms.
func ParseCDN(lines []string) (d Directives, ok bool) {
	d = Parse(nil)
	members := 0
	for _, line := range lines {
		n, good := d.parseSFLine(line)
		if !good {
			return Parse(nil), false
		}
		members += n
	}
	if members == 0 {
		return Parse(nil), false
	}
	return d, true
}

// parseSFLine parses one line as a Dictionary and applies its members.
func (d *Directives) parseSFLine(s string) (members int, ok bool) {
	i := skipSP(s, 0)
	if i == len(s) {
		return 0, true // an empty line adds nothing
	}
	for {
		key, j, ok := sfKey(s, i)
		if !ok {
			return 0, false
		}
		i = j
		typ, val := sfBoolean, "?1"
		if i < len(s) && s[i] == '=' {
			var vs int
			vs = i + 1
			if typ, i, ok = sfItemOrInnerList(s, vs); !ok {
				return 0, false
			}
			val = s[vs:i]
		} else if i, ok = sfParams(s, i); !ok {
			return 0, false
		}
		if !d.applyCDN(key, typ, val) {
			return 0, false
		}
		members++
		i = skipOWS(s, i)
		if i == len(s) {
			return members, true
		}
		if s[i] != ',' {
			return 0, false
		}
		i = skipOWS(s, i+1)
		if i == len(s) {
			return 0, false // trailing comma
		}
	}
}

// applyCDN records one Dictionary member. val is the raw text of the
// value, parameters included.
func (d *Directives) applyCDN(key string, typ sfType, val string) bool {
	if j := indexByte(val, ';'); j >= 0 && typ != sfString && typ != sfInnerList {
		val = val[:j]
	}
	switch key {
	case "max-age", "s-maxage", "stale-while-revalidate", "stale-if-error":
		if typ != sfInteger || val[0] == '-' {
			return false
		}
		return d.apply(key, val, true)
	case "no-store", "public", "must-revalidate", "proxy-revalidate", "must-understand", "immutable", "no-transform":
		if typ != sfBoolean {
			return false
		}
		if val == "?1" {
			return d.apply(key, "", false)
		}
	case "no-cache", "private":
		switch typ {
		case sfBoolean:
			if val == "?1" {
				return d.apply(key, "", false)
			}
		case sfString:
			return d.apply(key, "", false)
		default:
			return false
		}
	}
	return true // unknown or request-only: ignored
}

func indexByte(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}

func skipSP(s string, i int) int {
	for i < len(s) && s[i] == ' ' {
		i++
	}
	return i
}

func isLCAlpha(c byte) bool { return c >= 'a' && c <= 'z' }
func isDigit(c byte) bool   { return c >= '0' && c <= '9' }
func isAlpha(c byte) bool   { return isLCAlpha(c) || (c >= 'A' && c <= 'Z') }

// sfKey parses a key (RFC 8941 §3.1.2).
func sfKey(s string, i int) (string, int, bool) {
	if i >= len(s) || !(isLCAlpha(s[i]) || s[i] == '*') {
		return "", i, false
	}
	start := i
	for i < len(s) {
		c := s[i]
		if !(isLCAlpha(c) || isDigit(c) || c == '_' || c == '-' || c == '.' || c == '*') {
			break
		}
		i++
	}
	return s[start:i], i, true
}

// sfItemOrInnerList parses an Item or an Inner List, parameters included.
func sfItemOrInnerList(s string, i int) (sfType, int, bool) {
	if i < len(s) && s[i] == '(' {
		i++
		for {
			i = skipSP(s, i)
			if i >= len(s) {
				return 0, i, false
			}
			if s[i] == ')' {
				j, ok := sfParams(s, i+1)
				return sfInnerList, j, ok
			}
			_, j, ok := sfBareItem(s, i)
			if !ok {
				return 0, i, false
			}
			if i, ok = sfParams(s, j); !ok {
				return 0, i, false
			}
			if i < len(s) && s[i] != ' ' && s[i] != ')' {
				return 0, i, false
			}
		}
	}
	typ, j, ok := sfBareItem(s, i)
	if !ok {
		return 0, j, false
	}
	j, ok = sfParams(s, j)
	return typ, j, ok
}

// sfParams parses parameters (";key[=bare-item]" repeated).
func sfParams(s string, i int) (int, bool) {
	for i < len(s) && s[i] == ';' {
		i = skipSP(s, i+1)
		_, j, ok := sfKey(s, i)
		if !ok {
			return i, false
		}
		i = j
		if i < len(s) && s[i] == '=' {
			if _, i, ok = sfBareItem(s, i+1); !ok {
				return i, false
			}
		}
	}
	return i, true
}

// sfBareItem parses a bare item (RFC 8941 §4.2.3.1).
func sfBareItem(s string, i int) (sfType, int, bool) {
	if i >= len(s) {
		return 0, i, false
	}
	c := s[i]
	switch {
	case c == '-' || isDigit(c):
		return sfNumber(s, i)
	case c == '"':
		for i++; i < len(s); i++ {
			switch c := s[i]; {
			case c == '\\':
				i++
				if i >= len(s) || (s[i] != '"' && s[i] != '\\') {
					return 0, i, false
				}
			case c == '"':
				return sfString, i + 1, true
			case c < 0x20 || c > 0x7e:
				return 0, i, false
			}
		}
		return 0, i, false
	case c == '*' || isAlpha(c):
		for i++; i < len(s) && (isTchar(s[i]) || s[i] == ':' || s[i] == '/'); i++ {
		}
		return sfToken, i, true
	case c == ':':
		for i++; i < len(s); i++ {
			c := s[i]
			if c == ':' {
				return sfBytes, i + 1, true
			}
			if !(isAlpha(c) || isDigit(c) || c == '+' || c == '/' || c == '=') {
				return 0, i, false
			}
		}
		return 0, i, false
	case c == '?':
		if i+1 < len(s) && (s[i+1] == '0' || s[i+1] == '1') {
			return sfBoolean, i + 2, true
		}
	}
	return 0, i, false
}

// sfNumber parses an Integer (up to 15 digits) or a Decimal (up to 12
// integer and 3 fractional digits).
func sfNumber(s string, i int) (sfType, int, bool) {
	if s[i] == '-' {
		i++
	}
	start, dot := i, -1
	for ; i < len(s); i++ {
		c := s[i]
		if c == '.' && dot < 0 {
			if i-start > 12 {
				return 0, i, false
			}
			dot = i
			continue
		}
		if !isDigit(c) {
			break
		}
	}
	switch {
	case i == start:
		return 0, i, false
	case dot < 0:
		if i-start > 15 {
			return 0, i, false
		}
		return sfInteger, i, true
	case dot == i-1 || i-dot-1 > 3:
		return 0, i, false
	}
	return sfDecimal, i, true
}
