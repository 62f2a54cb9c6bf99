package importer

import (
	"math"
	"strconv"
)

// kind is a bit set of the value shapes seen in a column. A column's type
// is the least upper bound of its kinds (typeOf), so it accepts every
// value: the classifiers below only claim a kind when PostgreSQL's input
// function for the matching type accepts the text, and (for the kinds a
// load may later widen to text) when PostgreSQL's output gives the same
// text back.
type kind uint16

const (
	kBool        kind = 1 << iota // true / false (any case)
	kInt                          // canonical integer, |v| <= 2^53
	kInt64                        // canonical integer beyond 2^53, within int64
	kHugeInt                      // integer beyond int64
	kFloat                        // decimal or exponent number, finite as float8
	kDate                         // YYYY-MM-DD
	kTimestamp                    // YYYY-MM-DD[T ]hh:mm[:ss[.f]]
	kTimestampTZ                  // … with Z or ±hh[:mm]
	kJSON                         // JSON object or array (GeoJSON properties)
	kText                         // anything else
)

const (
	kNumeric  = kInt | kInt64 | kHugeInt | kFloat
	kTemporal = kDate | kTimestamp | kTimestampTZ
)

// typeOf returns the PostgreSQL type of a column whose values have kinds m.
func typeOf(m kind) string {
	switch {
	case m == 0, m&kText != 0:
		return "text"
	case m == kJSON:
		return "jsonb"
	case m == kBool:
		return "boolean"
	case m&^kNumeric == 0:
		switch {
		case m&kHugeInt != 0, m&kFloat != 0 && m&kInt64 != 0:
			return "numeric"
		case m&kFloat != 0:
			return "double precision"
		default:
			return "bigint"
		}
	case m&^kTemporal == 0:
		switch {
		case m&kTimestampTZ != 0:
			return "timestamptz"
		case m&kTimestamp != 0:
			return "timestamp"
		default:
			return "date"
		}
	}
	return "text"
}

// fits reports whether a value of kind k can be stored as-is in a column
// of PostgreSQL type t (the text is accepted by t's input function).
func fits(k kind, t string) bool {
	switch t {
	case "text":
		return true
	case "bigint":
		return k&^(kInt|kInt64) == 0
	case "double precision":
		return k&^(kInt|kFloat) == 0
	case "numeric":
		return k&^kNumeric == 0
	case "boolean":
		return k == kBool
	case "date":
		return k == kDate
	case "timestamp":
		return k&^(kDate|kTimestamp) == 0
	case "timestamptz":
		return k&^kTemporal == 0
	case "jsonb":
		return k == kJSON
	}
	return false
}

// losslessWiden reports whether a column of type from holding values of
// kinds seen can be converted in place (ALTER … TYPE to USING col::to)
// without changing any value's text. Integers are canonical, so
// bigint→text is exact, and bigint→double precision is exact while every
// integer is within ±2^53 (no kInt64 seen). (bigint→numeric would be
// exact too, but numeric has no simple binary COPY encoding: such files
// take the staging path.)
func losslessWiden(from, to string, seen kind) bool {
	if from != "bigint" {
		return false
	}
	switch to {
	case "text":
		return true
	case "double precision":
		return seen&kInt64 == 0
	}
	return false
}

// classifyText classifies a CSV value (never empty: empty is NULL).
func classifyText(s string) kind {
	switch c := s[0]; {
	case c == '-' || c == '+' || c == '.' || c >= '0' && c <= '9':
		if k := classifyNumber(s); k != 0 {
			return k
		}
		if len(s) >= 10 && c >= '0' && c <= '9' {
			return classifyTemporal(s)
		}
		return kText
	case c == 't' || c == 'T' || c == 'f' || c == 'F':
		if len(s) == 4 && (s == "true" || s == "TRUE" || s == "True") || len(s) == 5 && (s == "false" || s == "FALSE" || s == "False") {
			return kBool
		}
	}
	return kText
}

// classifyNumber returns the numeric kind of s, or 0 when s is not a
// number PostgreSQL would read back identically (leading zeros, "+5" and
// "-0" are not; they stay text so that "007" survives).
func classifyNumber(s string) kind {
	i := 0
	neg := false
	if s[0] == '-' || s[0] == '+' {
		neg = s[0] == '-'
		i = 1
	}
	digits := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
		digits++
	}
	intEnd := i
	if i == len(s) {
		// An integer.
		if digits == 0 || s[0] == '+' {
			return 0
		}
		start := 0
		if neg {
			start = 1
		}
		if digits > 1 && s[start] == '0' || neg && digits == 1 && s[1] == '0' {
			return 0
		}
		if digits <= 15 {
			return kInt
		}
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return kHugeInt
		}
		if v > 1<<53 || v < -(1<<53) {
			return kInt64
		}
		return kInt
	}
	// A decimal: digits [. digits] [e[+-]digits]
	if s[i] == '.' {
		i++
		frac := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			frac++
		}
		if digits+frac == 0 {
			return 0
		}
	} else if digits == 0 {
		return 0
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		exp := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			exp++
		}
		if exp == 0 {
			return 0
		}
	}
	if i != len(s) {
		return 0
	}
	start := 0
	if s[0] == '-' || s[0] == '+' {
		start = 1
	}
	if intEnd-start > 1 && s[start] == '0' {
		return 0 // "01.5"
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(v, 0) {
		return 0
	}
	if v == 0 && hasNonZeroDigit(s) {
		return 0 // underflow: float8in refuses it
	}
	return kFloat
}

func hasNonZeroDigit(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == 'e' || s[i] == 'E' {
			return false
		}
		if s[i] >= '1' && s[i] <= '9' {
			return true
		}
	}
	return false
}

func digitsAt(s string, i, n int) (int, bool) {
	if i+n > len(s) {
		return 0, false
	}
	v := 0
	for k := i; k < i+n; k++ {
		c := s[k]
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}

var daysIn = [13]int{0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}

// classifyTemporal recognises ISO 8601 dates and timestamps.
func classifyTemporal(s string) kind {
	y, ok1 := digitsAt(s, 0, 4)
	mo, ok2 := digitsAt(s, 5, 2)
	d, ok3 := digitsAt(s, 8, 2)
	if !ok1 || !ok2 || !ok3 || s[4] != '-' || s[7] != '-' || y == 0 || mo < 1 || mo > 12 || d < 1 || d > daysIn[mo] {
		return kText
	}
	if mo == 2 && d == 29 && !(y%4 == 0 && (y%100 != 0 || y%400 == 0)) {
		return kText
	}
	if len(s) == 10 {
		return kDate
	}
	if s[10] != 'T' && s[10] != ' ' {
		return kText
	}
	h, ok1 := digitsAt(s, 11, 2)
	mi, ok2 := digitsAt(s, 14, 2)
	if !ok1 || !ok2 || s[13] != ':' || h > 23 || mi > 59 {
		return kText
	}
	i := 16
	if i < len(s) && s[i] == ':' {
		sec, ok := digitsAt(s, i+1, 2)
		if !ok || sec > 59 {
			return kText
		}
		i += 3
		if i < len(s) && s[i] == '.' {
			i++
			n := 0
			for i < len(s) && s[i] >= '0' && s[i] <= '9' {
				i++
				n++
			}
			if n == 0 {
				return kText
			}
		}
	}
	if i == len(s) {
		return kTimestamp
	}
	switch s[i] {
	case 'Z':
		if i+1 == len(s) {
			return kTimestampTZ
		}
	case '+', '-':
		zh, ok := digitsAt(s, i+1, 2)
		if !ok || zh > 15 {
			return kText
		}
		rest := s[i+3:]
		switch {
		case rest == "":
			return kTimestampTZ
		case len(rest) == 3 && rest[0] == ':':
			if zm, ok := digitsAt(rest, 1, 2); ok && zm < 60 {
				return kTimestampTZ
			}
		case len(rest) == 2:
			if zm, ok := digitsAt(rest, 0, 2); ok && zm < 60 {
				return kTimestampTZ
			}
		}
	}
	return kText
}

// classifyJSON classifies a raw GeoJSON property value. Strings are text
// unless they are ISO dates or timestamps (JSON has no date type);
// numbers follow classifyNumber; objects and arrays are JSON unless they
// hold a \u0000 or a lone surrogate escape, which jsonb refuses.
func classifyJSON(raw []byte) kind {
	switch c := raw[0]; {
	case c == '"':
		s := raw[1 : len(raw)-1]
		if len(s) >= 10 && len(s) <= 35 && s[0] >= '0' && s[0] <= '9' {
			if k := classifyTemporal(string(s)); k != kText {
				return k
			}
		}
		return kText
	case c == 't' || c == 'f':
		return kBool
	case c == '{' || c == '[':
		if jsonbUnsafe(raw) {
			return kText
		}
		return kJSON
	default:
		return classifyJSONNumber(raw)
	}
}

// classifyJSONNumber classifies a JSON number literal. JSON forbids
// leading zeros and "+", so every literal is one PostgreSQL reads.
func classifyJSONNumber(raw []byte) kind {
	s := string(raw)
	integral := true
	for i := 0; i < len(raw); i++ {
		if c := raw[i]; c == '.' || c == 'e' || c == 'E' {
			integral = false
			break
		}
	}
	if integral {
		v, err := strconv.ParseInt(s, 10, 64)
		switch {
		case err != nil:
			return kHugeInt
		case v > 1<<53 || v < -(1<<53):
			return kInt64
		}
		return kInt
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(v, 0) || v == 0 && hasNonZeroDigit(s) {
		return kText
	}
	return kFloat
}

// jsonbUnsafe reports escapes jsonb input rejects: \u0000 and surrogates
// that do not pair up. It is conservative: any surrogate escape counts.
func jsonbUnsafe(raw []byte) bool {
	for i := 0; i+5 < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		if raw[i+1] != 'u' {
			i++ // skip the escaped character (it may be a backslash)
			continue
		}
		h := raw[i+2 : i+6]
		if string(h) == "0000" || (h[0] == 'd' || h[0] == 'D') && (h[1] >= '8' && h[1] <= '9' || h[1] >= 'a' && h[1] <= 'f' || h[1] >= 'A' && h[1] <= 'F') {
			return true
		}
		i += 5
	}
	return false
}
