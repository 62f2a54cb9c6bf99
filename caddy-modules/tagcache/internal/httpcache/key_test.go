package httpcache

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestPrimaryKey(t *testing.T) {
	k := keyer{drop: DefaultDropQuery()}
	tests := []struct {
		url  string
		tls  bool
		want string
	}{
		{"http://Tiles.Example/a/b.mvt", false, "http://tiles.example/a/b.mvt"},
		{"http://h/a?b=2&a=1", false, "http://h/a?a=1&b=2"},
		{"http://h/a?b=2&a=1&a=0", false, "http://h/a?a=1&a=0&b=2"},
		{"http://h/a?access_token=x&client=c&v=1&deckglVersion=9", false, "http://h/a"},
		{"http://h/a?&&x=1&", false, "http://h/a?x=1"},
		{"http://h/a%20b?q=%2F", false, "http://h/a%20b?q=%2F"},
		{"http://h/a", true, "https://h/a"},
	}
	for i, tt := range tests {
		r := httptest.NewRequest(http.MethodGet, tt.url, nil)
		if tt.tls {
			r.TLS = &tls.ConnectionState{}
		}
		if got := string(k.appendPrimary(nil, r)); got != tt.want {
			t.Errorf("Test %d: key(%s) = %q, want %q", i, tt.url, got, tt.want)
		}
	}
}

func TestVaryKeyNormalization(t *testing.T) {
	names := []varyField{{name: "Accept-Encoding"}, {name: "X-A"}}
	key := func(h http.Header) string { return string(appendVary(nil, names, h)) }
	a := key(http.Header{"Accept-Encoding": {"gzip, br"}})
	b := key(http.Header{"Accept-Encoding": {"gzip,br"}})
	c := key(http.Header{"Accept-Encoding": {"gzip", "br"}})
	if a != b || a != c {
		t.Errorf("equivalent values give different keys: %q %q %q", a, b, c)
	}
	if key(http.Header{"X-A": {""}}) == key(http.Header{}) {
		t.Errorf("empty and absent fields give the same key")
	}
}

func BenchmarkKey(b *testing.B) {
	k := keyer{drop: DefaultDropQuery()}
	r := httptest.NewRequest(http.MethodGet, "http://tiles.example/api/v3/maps/local/public.countries/10/512/384.mvt?formatTiles=mvt&access_token=abc&client=deck&v=3.4&spatialIndex=h3", nil)
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = k.appendPrimary(buf[:0], r)
	}
}
