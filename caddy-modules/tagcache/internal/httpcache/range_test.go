package httpcache

import (
	"net/http"
	"testing"

	"github.com/meridian-gis/meridian/internal/cachetag"
)

type grantHeader struct{ r *http.Request }

// AllowTags allows the tags when the request carries "X-Grant: yes".
func (g grantHeader) AllowTags([]string) bool { return g.r.Header.Get("X-Grant") == "yes" }

// TestRangeNeedsGrant: a range served from a stored response is checked
// against the caller's grant like any hit; a caller without one goes to
// the origin.
func TestRangeNeedsGrant(t *testing.T) {
	e := newEnv(t, Config{Authorizer: func(r *http.Request) cachetag.Authorizer { return grantHeader{r} }})
	e.respond(200, "0123456789", "Cache-Control: max-age=600", "Surrogate-Key: src:c/public.t")
	if r := e.get("/t", "X-Grant: yes"); r.status != 200 || r.isHit() {
		t.Fatalf("fill: %d %q", r.status, r.cacheStatus())
	}
	waitFor(t, "the fill to be stored", func() bool { return e.store.Stats().Stores >= 1 })
	if r := e.get("/t", "X-Grant: yes", "Range: bytes=2-3"); r.status != 206 || r.body != "23" || !r.isHit() {
		t.Errorf("granted range: %d %q %q, want a 206 hit", r.status, r.body, r.cacheStatus())
	}
	before := e.hits.Load()
	if r := e.get("/t", "X-Grant: no", "Range: bytes=2-3"); r.isHit() || e.hits.Load() != before+1 {
		t.Errorf("range without a grant: %q, origin hits +%d; want it forwarded", r.cacheStatus(), e.hits.Load()-before)
	}
}

func TestParseByteRange(t *testing.T) {
	cases := []struct {
		h           string
		first, last int64
		ok          bool
	}{
		{"bytes=0-1", 0, 1, true},
		{"bytes=1-", 1, 10, true},
		{"bytes=-1", 10, 10, true},
		{"bytes=-50", 0, 10, true},
		{"bytes=5-50", 5, 10, true},
		{"bytes=11-", 0, 0, false},
		{"bytes=3-2", 0, 0, false},
		{"bytes=-0", 0, 0, false},
		{"bytes=0-1,2-3", 0, 0, false},
		{"items=0-1", 0, 0, false},
		{"bytes=a-b", 0, 0, false},
		{"bytes=+1-2", 0, 0, false},
	}
	for _, c := range cases {
		f, l, ok := parseByteRange([]string{c.h}, 11)
		if f != c.first || l != c.last || ok != c.ok {
			t.Errorf("parseByteRange(%q) = %d, %d, %v; want %d, %d, %v", c.h, f, l, ok, c.first, c.last, c.ok)
		}
	}
}
