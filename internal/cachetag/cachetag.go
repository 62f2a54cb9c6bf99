// Package cachetag defines the cache-tag contract between origins (the
// tiles engine, the control plane) and the edge cache: which tags exist,
// how they are spelled, and how they travel in the Surrogate-Key response
// header (space-separated, as Fastly does). Purges and invalidation
// messages name the same tags.
//
// Tags:
//
//	src:<conn>/<schema.table>   one source (table) of a connection
//	conn:<conn>                 everything served from a connection
//	query:<conn>                marks a response computed from a client's SQL
//	                            query: it may have read any table, so it is
//	                            served from cache only to whole-connection grants
//	map:<id>                    one saved map
//	org:<id>                    everything of an organization
package cachetag

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// Header is the response header that carries tags from origin to edge. The
// edge strips it before answering the client.
const Header = "Surrogate-Key"

// MaxTagLen bounds one tag; longer ones are refused by Valid.
const MaxTagLen = 512

// ErrInvalid is returned for a malformed tag.
var ErrInvalid = errors.New("cachetag: invalid tag")

// Source returns the tag of table (schema.table) on connection conn.
// Names are lower-cased as PostgreSQL folds unquoted identifiers, so that
// "Public.Countries" and "public.countries" purge the same entries.
func Source(conn, table string) string {
	return "src:" + strings.ToLower(conn) + "/" + strings.ToLower(table)
}

// Conn returns the tag of every source of connection conn.
func Conn(conn string) string { return "conn:" + strings.ToLower(conn) }

// Query returns the marker tag of responses computed from a client's SQL
// query on connection conn.
func Query(conn string) string { return "query:" + strings.ToLower(conn) }

// QueryOf returns the connection of a "query:<conn>" tag.
func QueryOf(tag string) (conn string, ok bool) { return strings.CutPrefix(tag, "query:") }

// Map returns the tag of a saved map.
func Map(id string) string { return "map:" + id }

// Org returns the tag of an organization.
func Org(id string) string { return "org:" + id }

// Valid reports whether tag can travel in a Surrogate-Key header: not
// empty, not longer than MaxTagLen, no spaces or control characters.
func Valid(tag string) bool {
	if tag == "" || len(tag) > MaxTagLen {
		return false
	}
	for i := 0; i < len(tag); i++ {
		if c := tag[i]; c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// Join renders tags as a Surrogate-Key header value.
func Join(tags ...string) string { return strings.Join(tags, " ") }

// Split parses a Surrogate-Key header value, dropping invalid and duplicate
// tags and keeping at most max tags (max <= 0: no limit). It tolerates
// commas as separators too, since some origins send them.
func Split(v string, max int) []string {
	var out []string
	for len(v) > 0 {
		i := strings.IndexAny(v, " ,\t")
		var t string
		if i < 0 {
			t, v = v, ""
		} else {
			t, v = v[:i], v[i+1:]
		}
		if !Valid(t) || contains(out, t) {
			continue
		}
		if max > 0 && len(out) == max {
			break
		}
		out = append(out, t)
	}
	return out
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// Invalidation is the message published on the broker's invalidations
// topic: purge, on every node, every entry carrying any of Tags, the
// responses of URLs and the responses under Prefixes. Tiles nodes apply
// only Tags (their caches are keyed by source generation, not by URL).
type Invalidation struct {
	// Tags to purge.
	Tags []string `json:"tags"`
	// URLs whose cached responses to purge on every edge, each naming one
	// cache key: host, escaped path and query, as the edge cache keys
	// them (query parameters left out of keys ignored, the others in any
	// order; scheme ignored; every Vary variant). A path without a host
	// ("/api/v3/maps/x?y=1") names that path and query on every host.
	URLs []string `json:"urls,omitempty"`
	// Prefixes of the paths whose cached responses to purge on every edge
	// ("/api/v3/maps/c1/" or "https://tiles.example/api/"), on the host
	// if given, else on every host.
	Prefixes []string `json:"prefixes,omitempty"`
	// Soft marks entries stale (served while one request refetches)
	// instead of removing them.
	Soft bool `json:"soft,omitempty"`
	// Reason is free text for logs ("import imp_123 finished").
	Reason string `json:"reason,omitempty"`
}

// MaxInvalidationItems bounds the tags, URLs and prefixes of one
// Invalidation.
const MaxInvalidationItems = 1000

// MaxURLLen bounds one purge URL or prefix.
const MaxURLLen = 4096

// ErrInvalidURL is returned for a malformed purge URL or prefix.
var ErrInvalidURL = errors.New("cachetag: invalid purge URL")

// ErrEmpty is returned for an invalidation that names nothing.
var ErrEmpty = errors.New("cachetag: invalidation names no tag, URL or prefix")

// ValidURL reports whether raw can name a purge URL or prefix: an
// http(s) URL with a host, or a path starting with "/", at most MaxURLLen
// bytes, without spaces or control characters.
func ValidURL(raw string) bool {
	if raw == "" || len(raw) > MaxURLLen {
		return false
	}
	for i := 0; i < len(raw); i++ {
		if c := raw[i]; c <= ' ' || c == 0x7f {
			return false
		}
	}
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	if u.Host != "" {
		return u.Scheme == "http" || u.Scheme == "https"
	}
	return u.Scheme == "" && u.Opaque == "" && strings.HasPrefix(u.Path, "/") && !strings.HasPrefix(raw, "//")
}

// Validate reports what is wrong with inv: nothing named (ErrEmpty), more
// than MaxInvalidationItems, an invalid tag (ErrInvalid) or an invalid
// URL or prefix (ErrInvalidURL).
func (inv Invalidation) Validate() error {
	n := len(inv.Tags) + len(inv.URLs) + len(inv.Prefixes)
	if n == 0 {
		return ErrEmpty
	}
	if n > MaxInvalidationItems {
		return fmt.Errorf("cachetag: %d tags, urls and prefixes: want at most %d", n, MaxInvalidationItems)
	}
	for _, t := range inv.Tags {
		if !Valid(t) {
			return fmt.Errorf("%w: %q", ErrInvalid, t)
		}
	}
	for _, u := range slices.Concat(inv.URLs, inv.Prefixes) {
		if !ValidURL(u) {
			return fmt.Errorf("%w: %q", ErrInvalidURL, u)
		}
	}
	return nil
}

// Authorizer decides whether the caller of the current request may receive
// a stored response that carries tags. The edge's auth module puts one in
// the request (under AuthorizerVar) after verifying the caller's token;
// the cache asks it before serving a hit and goes to the origin — which
// checks the grant itself — when it says no. It must not allocate.
type Authorizer interface {
	AllowTags(tags []string) bool
}

// AuthorizerVar is the Caddy request variable holding the Authorizer.
const AuthorizerVar = "meridian.authorizer"

// SourceOf splits a "src:<conn>/<table>" tag; ok is false for other tags.
func SourceOf(tag string) (conn, table string, ok bool) {
	rest, ok := strings.CutPrefix(tag, "src:")
	if !ok {
		return "", "", false
	}
	return strings.Cut(rest, "/")
}

// ConnTagOf returns the connection of a "conn:<conn>" tag.
func ConnTagOf(tag string) (conn string, ok bool) { return strings.CutPrefix(tag, "conn:") }

// ConnOf returns the connection a "src:<conn>/<table>" or "conn:<conn>"
// tag is about; ok is false for other tags.
func ConnOf(tag string) (conn string, ok bool) {
	if conn, _, ok := SourceOf(tag); ok {
		return conn, true
	}
	return ConnTagOf(tag)
}
