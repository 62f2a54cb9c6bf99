package httpcache

import "time"

// parseHTTPDate parses an HTTP-date (RFC 9110 §5.6.7) strictly: the
// IMF-fixdate form ("Sun, 06 Nov 1994 08:49:37 GMT") and the two obsolete
// forms, RFC 850 ("Sunday, 06-Nov-94 08:49:37 GMT") and asctime ("Sun Nov
// 6 08:49:37 1994"), each with its exact spacing and field widths. Names
// compare case-insensitively; the day name is not checked against the
// date. Unlike net/http.ParseTime it refuses one-digit hours, doubled
// spaces, zones other than GMT and two-digit years in IMF-fixdate, which
// RFC 9111 §5.3 requires to count as invalid (an invalid Expires means
// "already expired").
func parseHTTPDate(s string) (time.Time, bool) {
	switch {
	case len(s) == 29 && s[3] == ',':
		// IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
		if dayName(s[:3]) < 0 || s[4] != ' ' || s[7] != ' ' || s[11] != ' ' || s[16] != ' ' || s[25] != ' ' ||
			!eqFold(s[26:], "GMT") {
			return time.Time{}, false
		}
		return assemble(s[12:16], s[8:11], s[5:7], s[17:25])
	case len(s) == 24 && s[3] == ' ':
		// asctime: "Sun Nov  6 08:49:37 1994"
		if dayName(s[:3]) < 0 || s[7] != ' ' || s[10] != ' ' || s[19] != ' ' {
			return time.Time{}, false
		}
		day := s[8:10]
		if day[0] == ' ' {
			day = "0" + day[1:]
		}
		return assemble(s[20:], s[4:7], day, s[11:19])
	}
	// RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT"
	comma := -1
	for i := 0; i < len(s) && i < 10; i++ {
		if s[i] == ',' {
			comma = i
			break
		}
	}
	if comma < 0 || !longDayName(s[:comma]) {
		return time.Time{}, false
	}
	r := s[comma:]
	if len(r) != 24 || r[1] != ' ' || r[4] != '-' || r[8] != '-' || r[11] != ' ' || r[20] != ' ' || !eqFold(r[21:], "GMT") {
		return time.Time{}, false
	}
	yy, ok := digits(r[9:11])
	if !ok {
		return time.Time{}, false
	}
	// Two-digit years: the same pivot as net/http (69–99 are 19xx).
	year := 2000 + yy
	if yy >= 69 {
		year = 1900 + yy
	}
	return assembleYear(year, r[5:8], r[2:4], r[12:20])
}

func assemble(year, month, day, hms string) (time.Time, bool) {
	y, ok := digits(year)
	if !ok || len(year) != 4 {
		return time.Time{}, false
	}
	return assembleYear(y, month, day, hms)
}

func assembleYear(year int, month, day, hms string) (time.Time, bool) {
	m := monthName(month)
	d, ok1 := digits(day)
	h, ok2 := digits(hms[0:2])
	mi, ok3 := digits(hms[3:5])
	sec, ok4 := digits(hms[6:8])
	if m < 0 || !ok1 || !ok2 || !ok3 || !ok4 || hms[2] != ':' || hms[5] != ':' ||
		d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 {
		return time.Time{}, false
	}
	if time.Date(year, time.Month(m+1), d, 0, 0, 0, 0, time.UTC).Day() != d { // 31 Feb and the like
		return time.Time{}, false
	}
	return time.Date(year, time.Month(m+1), d, h, mi, sec, 0, time.UTC), true
}

// digits parses a string of ASCII digits.
func digits(s string) (int, bool) {
	if s == "" {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func eqFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i]|0x20, b[i]|0x20
		if x != y || x < 'a' || x > 'z' {
			return false
		}
	}
	return true
}

var (
	dayNames     = [...]string{"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"}
	longDayNames = [...]string{"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"}
	monthNames   = [...]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}
)

func dayName(s string) int {
	for i, n := range dayNames {
		if eqFold(s, n) {
			return i
		}
	}
	return -1
}

func longDayName(s string) bool {
	for _, n := range longDayNames {
		if eqFold(s, n) {
			return true
		}
	}
	return false
}

func monthName(s string) int {
	for i, n := range monthNames {
		if eqFold(s, n) {
			return i
		}
	}
	return -1
}
