// Package netguard is the one SSRF guard: it decides whether an address
// (or a URL naming one) is public, so that servers fetching URLs on a
// user's behalf (control's import API, the workers' fetcher, the import
// preview) never reach loopback, private, link-local or otherwise
// non-public networks.
//
// The check on a literal URL host (CheckURL) is a fast first refusal;
// the authoritative check is Public on every address a dialer actually
// connects to (after DNS and on every redirect), see DialControl.
package netguard

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
)

// Public reports whether a is a public unicast address: not loopback,
// private (RFC 1918, fc00::/7), link-local, multicast, unspecified,
// shared (100.64.0.0/10), documentation, benchmarking, reserved, or an
// IPv6 form that embeds a non-public IPv4 address (IPv4-mapped,
// IPv4-compatible, NAT64 64:ff9b::/96, 6to4 2002::/16).
func Public(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsValid() || a.IsUnspecified() || a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() ||
		a.IsLinkLocalMulticast() || a.IsInterfaceLocalMulticast() || a.IsMulticast() {
		return false
	}
	for _, p := range blocked {
		if p.Contains(a) {
			return false
		}
	}
	if a.Is6() {
		b := a.As16()
		switch {
		case nat64.Contains(a), ipv4Compatible.Contains(a):
			return Public(netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}))
		case sixToFour.Contains(a):
			return Public(netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}))
		}
	}
	return true
}

var (
	nat64          = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour      = netip.MustParsePrefix("2002::/16")
	ipv4Compatible = netip.MustParsePrefix("::/96") // deprecated ::a.b.c.d
	blocked        = []netip.Prefix{
		netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
		netip.MustParsePrefix("100.64.0.0/10"),   // shared address space (CGNAT)
		netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
		netip.MustParsePrefix("192.0.2.0/24"),    // documentation
		netip.MustParsePrefix("192.88.99.0/24"),  // 6to4 relay anycast (deprecated)
		netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
		netip.MustParsePrefix("198.51.100.0/24"), // documentation
		netip.MustParsePrefix("203.0.113.0/24"),  // documentation
		netip.MustParsePrefix("240.0.0.0/4"),     // reserved, broadcast
		netip.MustParsePrefix("fec0::/10"),       // site-local (deprecated)
		netip.MustParsePrefix("2001:db8::/32"),   // documentation
		netip.MustParsePrefix("3fff::/20"),       // documentation (RFC 9637)
		netip.MustParsePrefix("2001::/32"),       // Teredo (embeds an obfuscated IPv4 address)
		netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use NAT64 (RFC 8215)
		netip.MustParsePrefix("100::/64"),        // discard
	}
)

// Kind describes a non-public address for error messages ("a loopback
// address", "a private address", ...).
func Kind(a netip.Addr) string {
	a = a.Unmap()
	switch {
	case a.IsLoopback():
		return "a loopback address"
	case a.IsPrivate():
		return "a private address"
	case a.IsLinkLocalUnicast(), a.IsLinkLocalMulticast():
		return "a link-local address"
	case a.IsUnspecified():
		return "unspecified"
	case a.IsMulticast():
		return "a multicast address"
	}
	return "not a public address"
}

// BlockedAddrError is a refused connection to a non-public address.
type BlockedAddrError struct{ Addr netip.Addr }

func (e *BlockedAddrError) Error() string {
	return fmt.Sprintf("%s is %s; fetching from non-public addresses is disabled", e.Addr, Kind(e.Addr))
}

// ErrBadURL is returned by CheckURL for a URL that is not absolute http(s).
var ErrBadURL = errors.New("want an absolute http or https URL")

// ErrLocalhost is returned by CheckURL for localhost names.
var ErrLocalhost = errors.New("localhost is not allowed; fetching from non-public addresses is disabled")

// CheckURL refuses a URL that is not absolute http(s) (ErrBadURL) and,
// unless allowPrivate, one whose host is a localhost name (ErrLocalhost)
// or a literal non-public address (*BlockedAddrError). DNS names are
// not resolved here: dialers check each address they connect to with
// DialControl.
func CheckURL(raw string, allowPrivate bool) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return ErrBadURL
	}
	if allowPrivate {
		return nil
	}
	host := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return ErrLocalhost
	}
	if a, err := netip.ParseAddr(host); err == nil && !Public(a) {
		return &BlockedAddrError{Addr: a}
	}
	return nil
}

// DialControl is a net.Dialer Control function refusing connections to
// non-public addresses (it sees the resolved address of every attempt,
// so DNS names and redirects are covered).
func DialControl(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("unexpected dial address %q: %w", address, err)
	}
	if !Public(ap.Addr()) {
		return &BlockedAddrError{Addr: ap.Addr()}
	}
	return nil
}
