package cachecontrol

import (
	"testing"
)

func TestParse(t *testing.T) {
	absent := Parse(nil)
	tests := []struct {
		name  string
		lines []string
		check func(d Directives) bool
	}{
		{"empty", nil, func(d Directives) bool { return d == absent }},
		{"max-age", []string{"max-age=60"}, func(d Directives) bool { return d.MaxAge == 60 && !d.Invalid }},
		{"case-insensitive", []string{"Max-Age=60, NO-STORE"}, func(d Directives) bool { return d.MaxAge == 60 && d.NoStore }},
		{"quoted delta accepted", []string{`max-age="60"`}, func(d Directives) bool { return d.MaxAge == 60 && !d.Invalid }},
		{"several lines", []string{"public", "s-maxage=5"}, func(d Directives) bool { return d.Public && d.SMaxAge == 5 }},
		{"empty elements", []string{" , max-age=1 ,, "}, func(d Directives) bool { return d.MaxAge == 1 && !d.Invalid }},
		{"overflow clamps", []string{"max-age=99999999999999999999"}, func(d Directives) bool { return d.MaxAge == MaxDelta }},
		{"same duplicate ok", []string{"max-age=5, max-age=5"}, func(d Directives) bool { return d.MaxAge == 5 && !d.Invalid }},
		{"conflicting duplicate", []string{"max-age=5", "max-age=6"}, func(d Directives) bool { return d.Invalid }},
		{"negative", []string{"max-age=-5"}, func(d Directives) bool { return d.Invalid }},
		{"non-numeric", []string{"max-age=soon"}, func(d Directives) bool { return d.Invalid }},
		{"missing value", []string{"max-age"}, func(d Directives) bool { return d.Invalid }},
		{"empty value", []string{"max-age="}, func(d Directives) bool { return d.Invalid }},
		{"unterminated quote", []string{`no-cache="a`}, func(d Directives) bool { return d.Invalid }},
		{"missing comma", []string{"public private"}, func(d Directives) bool { return d.Invalid }},
		{"bad token", []string{"max age=1"}, func(d Directives) bool { return d.Invalid }},
		{"unknown directive ignored", []string{"foo=bar, max-age=3"}, func(d Directives) bool { return d.MaxAge == 3 && !d.Invalid }},
		{"no-cache fields", []string{`no-cache="Set-Cookie, X-A"`}, func(d Directives) bool { return !d.NoCache && d.NoCacheFields == "Set-Cookie, X-A" }},
		{"no-cache token field", []string{`no-cache=X-A`}, func(d Directives) bool { return !d.NoCache && d.NoCacheFields == "X-A" }},
		{"no-cache bare", []string{"no-cache"}, func(d Directives) bool { return d.NoCache && d.NoCacheFields == "" }},
		{"private fields", []string{`private="X-B"`}, func(d Directives) bool { return !d.Private && d.PrivateFields == "X-B" }},
		{"quoted comma inside", []string{`private="a,b", max-age=2`}, func(d Directives) bool { return d.PrivateFields == "a,b" && d.MaxAge == 2 }},
		{"max-stale any", []string{"max-stale"}, func(d Directives) bool { return d.MaxStaleAny && d.MaxStale == Absent }},
		{"max-stale value", []string{"max-stale=10"}, func(d Directives) bool { return !d.MaxStaleAny && d.MaxStale == 10 }},
		{"stale extensions", []string{"stale-while-revalidate=30, stale-if-error=60"}, func(d Directives) bool {
			return d.StaleWhileRevalidate == 30 && d.StaleIfError == 60
		}},
		{"request directives", []string{"min-fresh=5, only-if-cached, no-transform"}, func(d Directives) bool {
			return d.MinFresh == 5 && d.OnlyIfCached && d.NoTransform
		}},
		{"revalidation", []string{"must-revalidate, proxy-revalidate, must-understand, immutable"}, func(d Directives) bool {
			return d.MustRevalidate && d.ProxyRevalidate && d.MustUnderstand && d.Immutable
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Parse(tt.lines); !tt.check(got) {
				t.Errorf("Test %d: Parse(%q) = %+v", i, tt.lines, got)
			}
		})
	}
}

func TestFields(t *testing.T) {
	var got []string
	Fields(" a, b ,,c", func(n string) { got = append(got, n) })
	if len(got) != 3 || got[0] != "a" || got[1] != "b" || got[2] != "c" {
		t.Errorf("Fields = %q, want [a b c]", got)
	}
}

func TestHasToken(t *testing.T) {
	if !HasToken([]string{"x, No-Cache"}, "no-cache") {
		t.Errorf("HasToken(x, No-Cache) = false, want true")
	}
	if HasToken([]string{"no-cachex"}, "no-cache") {
		t.Errorf("HasToken(no-cachex) = true, want false")
	}
}

func BenchmarkParse(b *testing.B) {
	lines := []string{"public, max-age=600, s-maxage=3600, stale-while-revalidate=60"}
	b.ReportAllocs()
	for b.Loop() {
		if Parse(lines).Invalid {
			b.Fatal("invalid")
		}
	}
}
