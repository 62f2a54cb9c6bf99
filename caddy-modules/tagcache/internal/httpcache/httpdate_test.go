package httpcache

import (
	"testing"
	"time"
)

func TestParseHTTPDate(t *testing.T) {
	want := time.Date(2050, 8, 18, 2, 1, 18, 0, time.UTC)
	good := []string{
		"Thu, 18 Aug 2050 02:01:18 GMT",
		"THU, 18 AUG 2050 02:01:18 gMT",
		"Thursday, 18-Aug-50 02:01:18 GMT",
		"Thu Aug 18 02:01:18 2050",
	}
	for _, s := range good {
		if got, ok := parseHTTPDate(s); !ok || !got.Equal(want) {
			t.Errorf("parseHTTPDate(%q) = %v, %v; want %v", s, got, ok, want)
		}
	}
	if got, ok := parseHTTPDate("Thu Aug  8 02:01:18 2050"); !ok || got.Day() != 8 {
		t.Errorf("asctime with a one-digit day: %v, %v", got, ok)
	}
	if got, ok := parseHTTPDate("Sunday, 06-Nov-94 08:49:37 GMT"); !ok || got.Year() != 1994 {
		t.Errorf("rfc850 94: %v, %v", got, ok)
	}
	bad := []string{
		"", "0", "Thu, 18  Aug  2050 02:01:18 GMT", "Thu, 18 Aug 2050 2:01:18 GMT",
		"Thu, 18 Aug 50 02:01:18 GMT", "Thu 18 Aug 2050 02:01:18 GMT", "Thu, 18-Aug-2050 02:01:18 GMT",
		"Thu, 18 Aug 2050 02.01.18 GMT", "Thu, 18 Aug 2050 02:01:18 UTC", "Thu, 18 Aug 2050 02:01:18 AEST",
		"Thu, 31 Feb 2050 02:01:18 GMT", "Thu, 18 Aug 2050 24:01:18 GMT", "Xyz, 18 Aug 2050 02:01:18 GMT",
		"Thu, 18 Aug 2050 02:01:18 GMT ", "Thursday, 18-Aug-50 02:01:18 UTC",
	}
	for _, s := range bad {
		if got, ok := parseHTTPDate(s); ok {
			t.Errorf("parseHTTPDate(%q) = %v, want invalid", s, got)
		}
	}
}

func TestParseAge(t *testing.T) {
	cases := []struct {
		lines []string
		v     int64
		ok    bool
	}{
		{[]string{"7200, 0"}, 7200, true},
		{[]string{"0, 7200"}, 0, true},
		{[]string{"7200", "0"}, 7200, true},
		{[]string{"7200;foo=bar"}, 7200, true},
		{[]string{" 30 "}, 30, true},
		{[]string{"-7200"}, 0, false},
		{[]string{"7200.0"}, 0, false},
		{[]string{"abc"}, 0, false},
		{nil, 0, false},
	}
	for _, c := range cases {
		if v, ok := parseAge(c.lines); v != c.v || ok != c.ok {
			t.Errorf("parseAge(%q) = %d, %v; want %d, %v", c.lines, v, ok, c.v, c.ok)
		}
	}
}
