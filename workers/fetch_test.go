package workers

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
)

func TestPublicAddr(t *testing.T) {
	tests := []struct {
		addr string
		want bool
	}{
		{"8.8.8.8", true},
		{"151.101.1.69", true},
		{"2606:4700::1111", true},
		{"127.0.0.1", false},
		{"127.255.0.9", false},
		{"::1", false},
		{"::ffff:127.0.0.1", false},
		{"10.0.0.1", false},
		{"172.16.5.4", false},
		{"192.168.0.1", false},
		{"169.254.169.254", false},
		{"fe80::1", false},
		{"fc00::1", false},
		{"fd12:3456::1", false},
		{"0.0.0.0", false},
		{"::", false},
		{"100.64.1.1", false},
		{"224.0.0.1", false},
		{"ff02::1", false},
		{"255.255.255.255", false},
		{"64:ff9b::7f00:1", false}, // NAT64 of 127.0.0.1
		{"64:ff9b::808:808", true}, // NAT64 of 8.8.8.8
		{"2002:7f00:1::", false},   // 6to4 of 127.0.0.1
		{"2002:c0a8:101::", false}, // 6to4 of 192.168.1.1
		{"198.18.0.1", false},      // benchmarking
		{"192.0.2.1", false},       // documentation
		{"2001:db8::1", false},     // documentation
		{"203.0.113.7", false},     // documentation
		{"192.0.0.170", false},     // IETF assignments
		{"240.1.2.3", false},       // reserved
		{"::ffff:169.254.169.254", false},
	}
	for _, tt := range tests {
		if got := PublicAddr(netip.MustParseAddr(tt.addr)); got != tt.want {
			t.Errorf("PublicAddr(%s) = %v, want %v", tt.addr, got, tt.want)
		}
	}
}

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
