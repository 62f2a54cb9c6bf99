package workers

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
)

// The address table is internal/netguard's TestPublic.

// The fetcher refuses loopback targets however they are named (the check
// runs on every resolved address, in the dialer), and non-HTTP URLs.
func TestFetchRefusesLoopback(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("a,b\n1,2\n"))
	}))
	defer srv.Close()
	port := srv.URL[strings.LastIndex(srv.URL, ":")+1:]
	f := NewFetcher(FetchConfig{})
	for _, u := range []string{srv.URL, "http://localhost:" + port + "/x.csv", "http://127.0.0.2:" + port} {
		_, err := f.Fetch(context.Background(), u, filepath.Join(t.TempDir(), "x"), nil)
		var fe *FetchError
		var be *BlockedAddrError
		if !errors.As(err, &fe) || !fe.Permanent || !errors.As(err, &be) {
			t.Errorf("Fetch(%s) = %v, want a permanent FetchError wrapping BlockedAddrError", u, err)
		}
	}
	allowed := NewFetcher(FetchConfig{AllowPrivate: true})
	name, err := allowed.Fetch(context.Background(), srv.URL+"/dir/data.csv?x=1", filepath.Join(t.TempDir(), "x"), nil)
	if err != nil || name != "data.csv" {
		t.Errorf("Fetch with AllowPrivate = %q, %v, want data.csv", name, err)
	}
	for _, u := range []string{"ftp://example.com/x", "file:///etc/passwd", "/relative"} {
		if _, err := f.Fetch(context.Background(), u, filepath.Join(t.TempDir(), "x"), nil); err == nil || !strings.Contains(err.Error(), "http or https") {
			t.Errorf("Fetch(%s) = %v, want a scheme error", u, err)
		}
	}
}
