package httpcache

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

func TestPurgeURLs(t *testing.T) {
	paths := []string{
		"/u/a?x=1&y=2",
		"/u/a?x=2",
		"/u/a",
		"/u/b?x=1",
		"/u/a/c",
	}
	tests := []struct {
		name   string
		url    string
		purged []bool
	}{
		{"host, query reordered, dropped parameter", "HOST/u/a?y=2&x=1&access_token=zzz", []bool{true, false, false, false, false}},
		{"host, no query", "HOST/u/a", []bool{false, false, true, false, false}},
		{"scheme ignored", strings.Replace("HOST/u/b?x=1", "http://", "https://", 1) + "#frag", []bool{false, false, false, true, false}},
		{"path only: every host", "/u/a?x=2", []bool{false, true, false, false, false}},
		{"path only, no query", "/u/a", []bool{false, false, true, false, false}},
		{"other host", "http://other.example/u/a?x=2", []bool{false, false, false, false, false}},
		{"upper-case host", "HOST/u/a/c", []bool{false, false, false, false, true}},
		{"escaped path", "/u/a%2Fc", []bool{false, false, false, false, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Config{})
			versioned(e, "max-age=600", nil)
			for _, p := range paths {
				e.get(p)
			}
			u := strings.Replace(tt.url, "HOST", e.front.URL, 1)
			if tt.name == "upper-case host" {
				u = strings.ToUpper(e.front.URL) + "/u/a/c"
			}
			if err := e.store.PurgeURLs([]string{u}, nil, false); err != nil {
				t.Fatal(err)
			}
			for i, p := range paths {
				if r := e.get(p); r.isHit() == tt.purged[i] {
					t.Errorf("%s after purging %s: %q, want purged=%v", p, u, r.cacheStatus(), tt.purged[i])
				}
			}
			if got := e.store.Stats().PurgeURL; got != 1 {
				t.Errorf("Stats().PurgeURL = %d, want 1", got)
			}
		})
	}
}

func TestPurgeURLsEveryVariant(t *testing.T) {
	e := newEnv(t, Config{})
	e.handle(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Vary", "Accept-Language")
		fmt.Fprintf(w, "%s", r.Header.Get("Accept-Language"))
	})
	for _, url := range []string{e.front.URL + "/v", "/v"} {
		for _, lang := range []string{"en", "fr"} {
			e.get("/v", "Accept-Language: "+lang)
		}
		if err := e.store.PurgeURLs([]string{url}, nil, false); err != nil {
			t.Fatal(err)
		}
		for _, lang := range []string{"en", "fr"} {
			if r := e.get("/v", "Accept-Language: "+lang); r.isHit() {
				t.Errorf("variant %s after purging %s: %q, want a miss", lang, url, r.cacheStatus())
			}
		}
	}
}

func TestPurgeURLsSoft(t *testing.T) {
	for _, tt := range []struct{ name, url, prefix string }{
		{"url with host", "HOST/s/1", ""},
		{"path", "/s/1", ""},
		{"prefix", "", "/s/"},
		{"scanned prefix", "", "/s/1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Config{})
			versioned(e, "max-age=600", nil)
			e.get("/s/1")
			var urls, prefixes []string
			if tt.url != "" {
				urls = []string{strings.Replace(tt.url, "HOST", e.front.URL, 1)}
			} else {
				prefixes = []string{tt.prefix}
			}
			if err := e.store.PurgeURLs(urls, prefixes, true); err != nil {
				t.Fatal(err)
			}
			if r := e.get("/s/1"); r.body != "/s/1 v1" || !strings.HasSuffix(r.cacheStatus(), "detail=stale") {
				t.Errorf("after soft purge: %q %q, want stale v1", r.body, r.cacheStatus())
			}
			waitFor(t, "the refetch to be stored", func() bool { return e.store.Stats().Stores == 2 })
			if r := e.get("/s/1"); r.body != "/s/1 v2" || !r.isHit() {
				t.Errorf("after refetch: %q %q, want a hit on v2", r.body, r.cacheStatus())
			}
		})
	}
}

// A purge that scans cannot see a response still being fetched; the
// response must not survive it anyway.
func TestPurgeURLsDuringFill(t *testing.T) {
	for _, tt := range []struct{ name, url, prefix string }{
		{"url with host", "HOST/race/1?a=b", ""},
		{"path", "/race/1?a=b", ""},
		{"directory", "", "/race/"},
		{"prefix", "", "/race/1"},
		{"prefix on host", "", "HOST/ra"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Config{})
			release := make(chan struct{})
			var n atomic.Int64
			e.handle(func(w http.ResponseWriter, r *http.Request) {
				v := n.Add(1)
				if v == 1 {
					<-release
				}
				w.Header().Set("Cache-Control", "max-age=600")
				fmt.Fprintf(w, "v%d", v)
			})
			_, wait := concurrentGets(t, e, 1, "/race/1?a=b")
			waitFor(t, "fill to start", func() bool { return n.Load() == 1 })
			var urls, prefixes []string
			if tt.url != "" {
				urls = []string{strings.Replace(tt.url, "HOST", e.front.URL, 1)}
			} else {
				prefixes = []string{strings.Replace(tt.prefix, "HOST", e.front.URL, 1)}
			}
			if err := e.store.PurgeURLs(urls, prefixes, false); err != nil {
				t.Fatal(err)
			}
			close(release)
			wait()
			if r := e.get("/race/1?a=b"); r.body != "v2" {
				t.Errorf("after a purge during the fill: %q %q, want v2 (the in-flight response must not survive)", r.body, r.cacheStatus())
			}
			if r := e.get("/race/1?a=b"); !r.isHit() {
				t.Errorf("refilled: %q, want a hit", r.cacheStatus())
			}
		})
	}
}

// A fill that began before more scanning purges than are remembered is
// not kept, whatever it is: nothing can tell whether one of them matched.
func TestPurgeURLsForgottenRecords(t *testing.T) {
	e := newEnv(t, Config{})
	release := make(chan struct{})
	var n atomic.Int64
	e.handle(func(w http.ResponseWriter, r *http.Request) {
		v := n.Add(1)
		if v == 1 {
			<-release
		}
		w.Header().Set("Cache-Control", "max-age=600")
		fmt.Fprintf(w, "v%d", v)
	})
	_, wait := concurrentGets(t, e, 1, "/slow")
	waitFor(t, "fill to start", func() bool { return n.Load() == 1 })
	for i := range maxPurgeRecords + 1 {
		if err := e.store.PurgePrefix(fmt.Sprintf("/other/%d", i), false); err != nil {
			t.Fatal(err)
		}
	}
	close(release)
	wait()
	if r := e.get("/slow"); r.body != "v2" {
		t.Errorf("after forgotten purges: %q %q, want v2", r.body, r.cacheStatus())
	}
	// A fill that began after them is kept.
	if r := e.get("/slow"); !r.isHit() {
		t.Errorf("refilled: %q, want a hit", r.cacheStatus())
	}
}

func TestPurgeURLsBad(t *testing.T) {
	e := newEnv(t, Config{})
	versioned(e, "max-age=600", nil)
	e.get("/ok")
	bad := []string{"ftp://h/x", "relative/path", "/bad%zz", "mailto:a@b"}
	err := e.store.PurgeURLs(append(bad, "/ok"), []string{"no-slash"}, false)
	if !errors.Is(err, ErrBadPurgeURL) {
		t.Fatalf("PurgeURLs(bad) = %v, want ErrBadPurgeURL", err)
	}
	for _, b := range append(bad, "no-slash") {
		if !strings.Contains(err.Error(), b) {
			t.Errorf("error %q does not name %q", err, b)
		}
	}
	if r := e.get("/ok"); r.isHit() {
		t.Errorf("/ok (valid, in the same call): %q, want purged", r.cacheStatus())
	}
	if err := e.store.PurgeURLs(make([]string, MaxPurgeURLs+1), nil, false); !errors.Is(err, ErrBadPurgeURL) {
		t.Errorf("PurgeURLs(%d urls) = %v, want ErrBadPurgeURL", MaxPurgeURLs+1, err)
	}
}

func TestKeyParts(t *testing.T) {
	tests := []struct{ key, host, path, query string }{
		{"http://h.example/a/b?x=1&y=2", "h.example", "/a/b", "x=1&y=2"},
		{"https://h.example:8443/", "h.example:8443", "/", ""},
		{"http://h/a?x=1\x00v\x00Accept-Language=en", "h", "/a", "x=1"},
		{"http://h", "h", "/", ""},
	}
	for _, tt := range tests {
		h, p, q := keyParts(tt.key)
		if h != tt.host || p != tt.path || q != tt.query {
			t.Errorf("keyParts(%q) = %q, %q, %q, want %q, %q, %q", tt.key, h, p, q, tt.host, tt.path, tt.query)
		}
	}
}

// Above the scan limit, purges that would scan purge more instead: the
// path with any query, the directory of a prefix.
func TestPurgeURLsWidenedInLargeStores(t *testing.T) {
	paths := []string{"/w/a?x=1", "/w/a?x=2", "/w/b", "/w/c/d", "/z"}
	tests := []struct {
		name           string
		urls, prefixes []string
		purged         []bool
	}{
		{"path with query", []string{"/w/a?x=1"}, nil, []bool{true, true, false, false, false}},
		{"prefix", nil, []string{"/w/c"}, []bool{true, true, true, true, false}},
		{"url with host: still exact", []string{"HOST/w/a?x=2"}, nil, []bool{false, true, false, false, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Config{})
			e.store.scanLimit = 2
			versioned(e, "max-age=600", nil)
			for _, p := range paths {
				e.get(p)
			}
			for i := range tt.urls {
				tt.urls[i] = strings.Replace(tt.urls[i], "HOST", e.front.URL, 1)
			}
			if err := e.store.PurgeURLs(tt.urls, tt.prefixes, false); err != nil {
				t.Fatal(err)
			}
			for i, p := range paths {
				if r := e.get(p); r.isHit() == tt.purged[i] {
					t.Errorf("%s: %q, want purged=%v", p, r.cacheStatus(), tt.purged[i])
				}
			}
			wantWidened := uint64(1)
			if tt.name == "url with host: still exact" {
				wantWidened = 0
			}
			if got := e.store.Stats().PurgeWidened; got != wantWidened {
				t.Errorf("PurgeWidened = %d, want %d", got, wantWidened)
			}
		})
	}
}
