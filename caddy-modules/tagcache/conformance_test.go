package tagcache

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestConformanceThroughCaddy checks, over real HTTP on loopback, the
// RFC 9111 / RFC 9213 behaviours the public cache-tests suite
// (scripts/cachetests) found missing: CDN-Cache-Control, strict
// HTTP-date parsing of Expires, and Age lists. Each case is a path whose
// origin response carries the given fields; the second request must be a
// hit or not.
func TestConformanceThroughCaddy(t *testing.T) {
	now := time.Now().UTC()
	date := now.Format(http.TimeFormat)
	future := now.Add(time.Hour).Format(http.TimeFormat)
	in2050 := "Thu, 18 Aug 2050 02:01:18 GMT"
	cases := []struct {
		name   string
		header []string
		hit    bool
	}{
		// CDN-Cache-Control (RFC 9213) replaces Cache-Control and Expires.
		{"cdn max-age", []string{"CDN-Cache-Control: max-age=3600"}, true},
		{"cdn max-age beyond 2^31", []string{"CDN-Cache-Control: max-age=99999999999"}, true},
		{"cdn max-age=0", []string{"CDN-Cache-Control: max-age=0"}, false},
		{"cdn max-age=0 over future Expires", []string{"CDN-Cache-Control: max-age=0", "Expires: " + future, "Date: " + date}, false},
		{"cdn max-age over past Expires", []string{"CDN-Cache-Control: max-age=3600", "Expires: Thu, 01 Jan 1970 00:00:00 GMT"}, true},
		{"cdn short over long cc", []string{"Cache-Control: max-age=3600", "CDN-Cache-Control: max-age=0"}, false},
		{"cdn long over short cc", []string{"Cache-Control: max-age=0", "CDN-Cache-Control: max-age=3600"}, true},
		{"cdn private", []string{"CDN-Cache-Control: private", "Cache-Control: max-age=10000"}, false},
		{"cdn no-cache", []string{"CDN-Cache-Control: no-cache", "Cache-Control: max-age=10000"}, false},
		{"cdn no-store", []string{"CDN-Cache-Control: no-store", "Cache-Control: max-age=10000"}, false},
		{"cdn fresh over cc no-store", []string{"Cache-Control: no-store", "CDN-Cache-Control: max-age=10000"}, true},
		{"cdn age beyond max-age", []string{"CDN-Cache-Control: max-age=3600", "Age: 7200", "Date: " + date}, false},
		{"cdn extension directive", []string{"CDN-Cache-Control: foobar, max-age=3600"}, true},
		{"cdn invalid structured field ignored", []string{"CDN-Cache-Control: max-age=10000, &&&&&", "Cache-Control: no-store"}, false},
		{"cdn wrong type ignored", []string{`CDN-Cache-Control: max-age="10000"`, "Cache-Control: no-store"}, false},
		{"cdn invalid falls back to cc", []string{"CDN-Cache-Control: max-age =100", "Cache-Control: max-age=3600"}, true},

		// Expires is an HTTP-date in one of its three exact forms.
		{"expires imf-fixdate", []string{"Expires: " + in2050}, true},
		{"expires rfc850", []string{"Expires: Thursday, 18-Aug-50 02:01:18 GMT"}, true},
		{"expires asctime", []string{"Expires: Thu Aug  8 02:01:18 2050"}, true},
		{"expires names in any case", []string{"Expires: THU, 18 AUG 2050 02:01:18 gmt"}, true},
		{"expires doubled spaces", []string{"Expires: Thu, 18  Aug  2050 02:01:18 GMT"}, false},
		{"expires one-digit hour", []string{"Expires: Thu, 18 Aug 2050 2:01:18 GMT"}, false},
		{"expires two-digit year", []string{"Expires: Thu, 18 Aug 50 02:01:18 GMT"}, false},
		{"expires UTC", []string{"Expires: Thu, 18 Aug 2050 02:01:18 UTC"}, false},
		{"expires dashes", []string{"Expires: Thu, 18-Aug-2050 02:01:18 GMT"}, false},

		// Age: the first member of the first line counts.
		{"age list old first", []string{"Cache-Control: max-age=3600", "Date: " + date, "Age: 7200, 0"}, false},
		{"age list fresh first", []string{"Cache-Control: max-age=3600", "Date: " + date, "Age: 0, 7200"}, true},
		{"age two lines old first", []string{"Cache-Control: max-age=3600", "Date: " + date, "Age: 7200", "Age: 0"}, false},
		{"age two lines fresh first", []string{"Cache-Control: max-age=3600", "Date: " + date, "Age: 0", "Age: 7200"}, true},
		{"age with a parameter", []string{"Cache-Control: max-age=3600", "Date: " + date, "Age: 7200;foo=bar"}, false},
		{"age negative ignored", []string{"Cache-Control: max-age=3600", "Date: " + date, "Age: -7200"}, true},
	}

	var mu sync.Mutex
	headers := map[string][]string{}
	o := newOrigin(t)
	o.handle(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		lines := headers[r.URL.Path]
		mu.Unlock()
		for _, l := range lines {
			k, v, _ := strings.Cut(l, ":")
			w.Header().Add(k, strings.TrimSpace(v))
		}
		w.Write([]byte(r.URL.Path))
	})
	port := freePort(t)
	load(t, edge{port: port, origin: o.addr()})
	for i, c := range cases {
		path := fmt.Sprintf("/c/%d", i)
		mu.Lock()
		headers[path] = c.header
		mu.Unlock()
		url := fmt.Sprintf("http://127.0.0.1:%d%s", port, path)
		if r := send(t, "GET", url, nil); r.status != 200 || r.isHit() {
			t.Errorf("%s: first request %d %q, want a miss", c.name, r.status, r.cacheStatus())
			continue
		}
		r := send(t, "GET", url, nil)
		if r.isHit() != c.hit || r.body != path {
			t.Errorf("%s: second request Cache-Status %q, want hit=%v", c.name, r.cacheStatus(), c.hit)
		}
	}
}

// TestRangeFromStoredResponse: a single byte range of a fresh stored
// complete response is served from it as a 206 with the stored header
// fields; other range requests go to the origin, and nothing they bring
// back is stored.
func TestRangeFromStoredResponse(t *testing.T) {
	o := newOrigin(t)
	o.handle(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Header().Set("ETag", `"e1"`)
		w.Header().Set("A", "1")
		http.ServeContent(w, r, "", time.Time{}, strings.NewReader("01234567890"))
	})
	port := freePort(t)
	load(t, edge{port: port, origin: o.addr()})
	url := fmt.Sprintf("http://127.0.0.1:%d/r", port)

	// Before anything is stored, a range goes to the origin.
	if r := send(t, "GET", url, nil, "Range: bytes=0-1"); r.status != 206 || r.body != "01" || r.cacheStatus() != "meridian; fwd=bypass" {
		t.Fatalf("range before fill: %d %q %q", r.status, r.body, r.cacheStatus())
	}
	if r := send(t, "GET", url, nil); r.status != 200 || r.isHit() {
		t.Fatalf("fill: %d %q", r.status, r.cacheStatus())
	}
	hits := o.hits.Load()
	for _, c := range []struct{ rng, body, cr string }{
		{"bytes=0-1", "01", "bytes 0-1/11"},
		{"bytes=1-", "1234567890", "bytes 1-10/11"},
		{"bytes=-1", "0", "bytes 10-10/11"},
		{"bytes=9-99", "90", "bytes 9-10/11"},
	} {
		r := send(t, "GET", url, nil, "Range: "+c.rng)
		if r.status != 206 || r.body != c.body || r.header.Get("Content-Range") != c.cr ||
			r.header.Get("Content-Length") != fmt.Sprint(len(c.body)) || r.header.Get("A") != "1" || !r.isHit() {
			t.Errorf("%s: %d %q Content-Range %q Content-Length %q A %q Cache-Status %q", c.rng, r.status, r.body,
				r.header.Get("Content-Range"), r.header.Get("Content-Length"), r.header.Get("A"), r.cacheStatus())
		}
	}
	if r := send(t, "GET", url, nil, "Range: bytes=0-1", `If-None-Match: "e1"`); r.status != 304 {
		t.Errorf("conditional range: %d, want 304", r.status)
	}
	if got := o.hits.Load(); got != hits {
		t.Errorf("ranges of a stored response reached the origin %d times", got-hits)
	}
	// Several ranges, an unsatisfiable one, If-Range and a request that
	// refuses stored responses go to the origin.
	for _, hdr := range [][]string{
		{"Range: bytes=0-1,3-4"},
		{"Range: bytes=50-"},
		{"Range: bytes=0-1", `If-Range: "e1"`},
		{"Range: bytes=0-1", "Cache-Control: no-cache"},
	} {
		before := o.hits.Load()
		if r := send(t, "GET", url, nil, hdr...); r.isHit() || o.hits.Load() != before+1 {
			t.Errorf("%q: Cache-Status %q, origin hits +%d; want it forwarded", hdr, r.cacheStatus(), o.hits.Load()-before)
		}
	}
	// The full response is still the stored one.
	if r := send(t, "GET", url, nil); !r.isHit() || r.body != "01234567890" || r.header.Get("Content-Range") != "" {
		t.Errorf("full after ranges: %q %q", r.cacheStatus(), r.body)
	}
}
