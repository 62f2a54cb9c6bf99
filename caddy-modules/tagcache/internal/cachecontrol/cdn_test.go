package cachecontrol

import "testing"

func TestParseCDN(t *testing.T) {
	cases := []struct {
		lines  []string
		ok     bool
		maxAge int64
		check  func(Directives) bool
	}{
		{[]string{"max-age=3600"}, true, 3600, nil},
		{[]string{"max-age=99999999999"}, true, MaxDelta, nil},
		{[]string{"foobar, max-age=3600"}, true, 3600, nil},
		{[]string{"max-age=60;x=1, stale-if-error=5"}, true, 60, func(d Directives) bool { return d.StaleIfError == 5 }},
		{[]string{"private"}, true, Absent, func(d Directives) bool { return d.Private }},
		{[]string{`no-cache="set-cookie"`}, true, Absent, func(d Directives) bool { return d.NoCache }},
		{[]string{"no-store, ext=(a b);p=?0, tok=a/b, bin=:aGk=:, dec=1.5"}, true, Absent, func(d Directives) bool { return d.NoStore }},
		{[]string{"max-age=1", "s-maxage=2"}, true, 1, func(d Directives) bool { return d.SMaxAge == 2 }},
		{[]string{"public=?0"}, true, Absent, func(d Directives) bool { return !d.Public }},
		{nil, false, Absent, nil},
		{[]string{""}, false, Absent, nil},
		{[]string{"max-age=10000, &&&&&"}, false, Absent, nil},
		{[]string{`max-age="10000"`}, false, Absent, nil},
		{[]string{"max-age=-1"}, false, Absent, nil},
		{[]string{"max-age=1.5"}, false, Absent, nil},
		{[]string{"max-age =100"}, false, Absent, nil},
		{[]string{"max-age= 100"}, false, Absent, nil},
		{[]string{"MaX-aGe=3600"}, false, Absent, nil},
		{[]string{"max-age=1,"}, false, Absent, nil},
		{[]string{"no-store=1"}, false, Absent, nil},
		{[]string{`a="unterminated`}, false, Absent, nil},
		{[]string{"a=1234567890123456"}, false, Absent, nil},
	}
	for _, c := range cases {
		d, ok := ParseCDN(c.lines)
		if ok != c.ok || d.MaxAge != c.maxAge || (c.check != nil && !c.check(d)) {
			t.Errorf("ParseCDN(%q) = %+v, %v; want ok=%v max-age=%d", c.lines, d, ok, c.ok, c.maxAge)
		}
	}
}
