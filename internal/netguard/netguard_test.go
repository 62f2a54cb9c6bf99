package netguard

import (
	"errors"
	"net/netip"
	"testing"
)

func TestPublic(t *testing.T) {
	tests := []struct {
		addr string
		want bool
	}{
		{"8.8.8.8", true},
		{"151.101.1.69", true},
		{"2606:4700::1111", true},
		{"2a00:1450:4001::200e", true},
		{"64:ff9b::808:808", true}, // NAT64 of 8.8.8.8
		{"2002:808:808::", true},   // 6to4 of 8.8.8.8
		{"::ffff:8.8.8.8", true},
		{"127.0.0.1", false},
		{"127.255.0.9", false},
		{"::1", false},
		{"::ffff:127.0.0.1", false},
		{"::127.0.0.1", false}, // IPv4-compatible
		{"::10.0.0.1", false},
		{"10.0.0.1", false},
		{"172.16.5.4", false},
		{"192.168.0.1", false},
		{"169.254.169.254", false}, // cloud metadata
		{"::ffff:169.254.169.254", false},
		{"fe80::1", false},
		{"fc00::1", false},
		{"fd12:3456::1", false},
		{"fec0::1", false}, // site-local
		{"0.0.0.0", false},
		{"0.1.2.3", false},
		{"::", false},
		{"100.64.1.1", false},
		{"224.0.0.1", false},
		{"ff02::1", false},
		{"ff0e::1", false},
		{"255.255.255.255", false},
		{"64:ff9b::7f00:1", false},     // NAT64 of 127.0.0.1
		{"64:ff9b::a9fe:a9fe", false},  // NAT64 of 169.254.169.254
		{"64:ff9b:1::1", false},        // local-use NAT64
		{"2002:7f00:1::", false},       // 6to4 of 127.0.0.1
		{"2002:c0a8:101::", false},     // 6to4 of 192.168.1.1
		{"2001:0:4136:e378::1", false}, // Teredo
		{"198.18.0.1", false},          // benchmarking
		{"192.0.2.1", false},           // documentation
		{"198.51.100.9", false},        // documentation
		{"203.0.113.7", false},         // documentation
		{"2001:db8::1", false},         // documentation
		{"3fff::1", false},             // documentation
		{"192.0.0.170", false},         // IETF assignments
		{"192.88.99.1", false},         // 6to4 relay anycast
		{"240.1.2.3", false},           // reserved
		{"100::1", false},              // discard
	}
	for _, tt := range tests {
		if got := Public(netip.MustParseAddr(tt.addr)); got != tt.want {
			t.Errorf("Public(%s) = %v, want %v", tt.addr, got, tt.want)
		}
	}
	if Public(netip.Addr{}) {
		t.Error("Public(zero Addr) = true")
	}
}

func TestCheckURL(t *testing.T) {
	var blocked *BlockedAddrError
	tests := []struct {
		url          string
		allowPrivate bool
		want         func(error) bool
	}{
		{"https://example.com/a.csv", false, func(err error) bool { return err == nil }},
		{"http://8.8.8.8/a.csv", false, func(err error) bool { return err == nil }},
		{"http://127.0.0.1:8080/a.csv", true, func(err error) bool { return err == nil }},
		{"http://localhost/a", true, func(err error) bool { return err == nil }},
		{"ftp://example.com/a", false, func(err error) bool { return errors.Is(err, ErrBadURL) }},
		{"file:///etc/passwd", true, func(err error) bool { return errors.Is(err, ErrBadURL) }},
		{"/relative", false, func(err error) bool { return errors.Is(err, ErrBadURL) }},
		{"http://", false, func(err error) bool { return errors.Is(err, ErrBadURL) }},
		{"http://localhost:9/a", false, func(err error) bool { return errors.Is(err, ErrLocalhost) }},
		{"http://LOCALHOST./a", false, func(err error) bool { return errors.Is(err, ErrLocalhost) }},
		{"http://x.localhost/a", false, func(err error) bool { return errors.Is(err, ErrLocalhost) }},
		{"http://127.0.0.1/a", false, func(err error) bool { return errors.As(err, &blocked) }},
		{"http://[::1]:80/a", false, func(err error) bool { return errors.As(err, &blocked) }},
		{"http://[64:ff9b::a00:1]/a", false, func(err error) bool { return errors.As(err, &blocked) }},
		{"http://169.254.169.254/latest/meta-data", false, func(err error) bool { return errors.As(err, &blocked) }},
	}
	for _, tt := range tests {
		if err := CheckURL(tt.url, tt.allowPrivate); !tt.want(err) {
			t.Errorf("CheckURL(%q, %v) = %v", tt.url, tt.allowPrivate, err)
		}
	}
}

func TestDialControl(t *testing.T) {
	var blocked *BlockedAddrError
	if err := DialControl("tcp", "127.0.0.1:80", nil); !errors.As(err, &blocked) {
		t.Errorf("DialControl(loopback) = %v", err)
	}
	if err := DialControl("tcp", "[2002:a00:1::]:443", nil); !errors.As(err, &blocked) {
		t.Errorf("DialControl(6to4 private) = %v", err)
	}
	if err := DialControl("tcp", "8.8.8.8:443", nil); err != nil {
		t.Errorf("DialControl(public) = %v", err)
	}
	if err := DialControl("tcp", "nonsense", nil); err == nil {
		t.Error("DialControl(nonsense) = nil")
	}
}
