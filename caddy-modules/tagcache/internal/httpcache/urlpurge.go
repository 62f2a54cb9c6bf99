package httpcache

import (
	"errors"
	"fmt"
	"hash/maphash"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Purges by URL and by prefix.
//
// Every stored response carries, besides its path pseudo-tags, a pseudo-tag
// for its URL as the cache keys it without the scheme: host, escaped path
// and normalized query. An exact purge of a URL with a host marks that
// tag's slot, in O(1) per URL and per query normalization in use (see
// register). A purge that cannot name one key — a URL without a host, or
// a path prefix — scans the stored keys once and marks the URL tag of each
// key it matches (or, in a very large store, purges the path or directory
// that contains what it names instead); a prefix that is a whole directory within MaxPrefixDepth
// levels, on every host, marks the directory pseudo-tag instead, without a
// scan.
//
// A scan cannot see a response whose fill is still in flight. So a scanning
// purge is also recorded (the last maxPurgeRecords of them, with the
// purge sequence the oldest forgotten one had): a response stored after
// the scan whose fill began before a recorded purge it matches gets its
// URL tag marked as that purge would have, and one whose fill began before
// a forgotten purge is marked as hard-purged. Like a tag purge racing a
// fill, a URL or prefix purge therefore never lets a pre-purge response
// survive. None of this is on the lookup path: a hit still only reads the
// slots of its entry.

// DefaultPurgeScanLimit is the number of stored entries above which a
// purge that would scan them purges more instead (see Store.PurgeURLs).
const DefaultPurgeScanLimit = 200_000

// maxPurgeRecords bounds the scanning purges remembered for fills in
// flight.
const maxPurgeRecords = 64

// MaxPurgeURLs bounds the URLs and prefixes of one PurgeURLs call.
const MaxPurgeURLs = 10_000

// ErrBadPurgeURL is returned for a purge URL or prefix that is neither an
// absolute http(s) URL nor a path starting with "/".
var ErrBadPurgeURL = errors.New("httpcache: bad purge URL")

type purgeState struct {
	mu      sync.Mutex
	keyers  []keyer       // distinct query normalizations of the caches on the store
	records []purgeRecord // scanning purges, oldest first
	floor   uint64        // sequence of the newest forgotten record
	active  atomic.Bool   // a record was ever made: fills must check
}

// purgeRecord is one scanning purge. Its match set is immutable.
type purgeRecord struct {
	seq  uint64
	soft bool
	set  *matchSet
}

// matchSet is what a scanning purge matches.
type matchSet struct {
	// exact holds "<path>?<query>" of host-less URLs, with the query
	// normalized by each keyer.
	exact map[string]struct{}
	// prefixes are path prefixes, each on one host or every host.
	prefixes []prefixMatch
}

type prefixMatch struct {
	host string // lower-case host[:port]; "" matches every host
	path string // escaped path prefix
}

// match reports whether the key parts match, using buf as scratch space.
func (m *matchSet) match(host, path, query string, buf []byte) bool {
	for _, p := range m.prefixes {
		if (p.host == "" || p.host == host) && strings.HasPrefix(path, p.path) {
			return true
		}
	}
	if len(m.exact) == 0 {
		return false
	}
	buf = append(append(append(buf[:0], path...), '?'), query...)
	_, ok := m.exact[string(buf)]
	return ok
}

// register records the query normalization of a cache using the store,
// so that purges by URL normalize queries the same way.
func (s *Store) register(k keyer) {
	s.purges.mu.Lock()
	defer s.purges.mu.Unlock()
	for _, have := range s.purges.keyers {
		if slices.Equal(have.drop, k.drop) {
			return
		}
	}
	s.purges.keyers = append(s.purges.keyers, keyer{drop: slices.Clone(k.drop)})
}

// PurgeURLs purges the cached responses of urls and of the paths starting
// with prefixes, on this store, in one pass: hard purges make them misses,
// soft purges make them stale (served while one request refetches).
//
// A URL names one cache key: its host (any host when it is a path),
// escaped path and query, with the query parameters the caches leave out
// of keys ignored and the others in any order. The scheme and fragment
// are ignored, and every Vary variant of the key is purged.
// "https://tiles.example/a/1.mvt?access_token=x" purges the response of
// "/a/1.mvt" on tiles.example, not "/a/1.mvt?style=2".
//
// A prefix ("/api/v3/maps/c1", or "https://tiles.example/api/") purges
// every response whose escaped path starts with it, on its host or on
// every host; its query, if any, is ignored.
//
// When the store holds more than DefaultPurgeScanLimit entries, a purge
// that would scan purges more instead, still in O(1): a URL without a host
// purges its path with any query, a prefix the directory that contains it
// (at most MaxPrefixDepth levels deep), on every host. Stats.PurgeWidened
// counts those.
//
// Invalid entries are skipped and reported in the error (ErrBadPurgeURL);
// the others are purged. At most MaxPurgeURLs entries are applied.
func (s *Store) PurgeURLs(urls, prefixes []string, soft bool) error {
	var errs []error
	if n := len(urls) + len(prefixes); n > MaxPurgeURLs {
		errs = append(errs, fmt.Errorf("%w: %d urls and prefixes, want at most %d", ErrBadPurgeURL, n, MaxPurgeURLs))
		urls = urls[:min(len(urls), MaxPurgeURLs)]
		prefixes = prefixes[:min(len(prefixes), MaxPurgeURLs-len(urls))]
	}
	s.purges.mu.Lock()
	keyers := s.purges.keyers
	s.purges.mu.Unlock()
	if len(keyers) == 0 { // no cache yet: nothing stored either
		keyers = []keyer{{drop: DefaultDropQuery()}}
	}

	seq := s.seq.Add(1)
	set := &matchSet{}
	var buf []byte
	var nurls, nprefixes uint64
	for _, raw := range urls {
		host, path, query, err := parsePurgeURL(raw)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		nurls++
		for _, k := range keyers {
			q := strings.TrimPrefix(string(k.appendQuery(buf[:0], query)), "?")
			if host != "" {
				s.mark(s.urlSlot(host, path, q), seq, soft)
				continue
			}
			if set.exact == nil {
				set.exact = map[string]struct{}{}
			}
			set.exact[path+"?"+q] = struct{}{}
		}
	}
	for _, raw := range prefixes {
		host, path, _, err := parsePurgeURL(raw)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		nprefixes++
		if host == "" && strings.HasSuffix(path, "/") && purgeDirDepth(path) <= MaxPrefixDepth {
			s.mark(s.slot(prefixTag(path)), seq, soft) // a whole directory: its pseudo-tag
			continue
		}
		set.prefixes = append(set.prefixes, prefixMatch{host: host, path: path})
	}
	switch {
	case len(set.exact) == 0 && len(set.prefixes) == 0:
	case s.big.Len()+int(s.hot.count.Load()) > s.scanLimit:
		s.widen(set, seq, soft)
	default:
		s.record(purgeRecord{seq: seq, soft: soft, set: set})
		s.scan(set, seq, soft)
	}
	s.stats.purgeURL.Add(nurls)
	s.stats.purgePrefix.Add(nprefixes)
	return errors.Join(errs...)
}

// PurgePrefix purges every cached response whose path starts with prefix
// (see PurgeURLs).
func (s *Store) PurgePrefix(prefix string, soft bool) error {
	return s.PurgeURLs(nil, []string{prefix}, soft)
}

// widen applies set without a scan, to more than it names: a URL without
// a host purges its path with any query, a prefix its directory (see
// purgeDir), on every host.
func (s *Store) widen(set *matchSet, seq uint64, soft bool) {
	for pq := range set.exact {
		path, _, _ := strings.Cut(pq, "?")
		s.mark(s.slot(pathTag(path)), seq, soft)
	}
	for _, p := range set.prefixes {
		s.mark(s.slot(prefixTag(purgeDir(p.path))), seq, soft)
	}
	s.stats.purgeWidened.Add(1)
}

// record remembers a scanning purge for the fills in flight.
func (s *Store) record(r purgeRecord) {
	p := &s.purges
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.records) == maxPurgeRecords {
		p.floor = p.records[0].seq
		p.records = slices.Delete(p.records, 0, 1)
	}
	p.records = append(p.records, r)
	p.active.Store(true)
}

// scan marks the URL tag of every stored key set matches: the bigcache
// keys, then the hot tier (which may hold entries bigcache evicted). It
// visits each key once; bigcache's iterator copies one entry at a time
// under its shard's read lock.
func (s *Store) scan(set *matchSet, seq uint64, soft bool) {
	buf := make([]byte, 0, 256)
	visit := func(key string) {
		host, path, query := keyParts(key)
		if set.match(host, path, query, buf) {
			s.mark(s.urlSlot(host, path, query), seq, soft)
		}
	}
	it := s.big.Iterator()
	for it.SetNext() {
		if info, err := it.Value(); err == nil {
			visit(info.Key())
		}
	}
	for i := range s.hot.slots {
		if e := s.hot.slots[i].Load(); e != nil {
			visit(e.key)
		}
	}
}

// afterPut applies to a response just stored the scanning purges that
// its fill raced with (see the comment at the top of this file).
func (s *Store) afterPut(e *entry) {
	p := &s.purges
	if !p.active.Load() {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.records); n == 0 || p.records[n-1].seq <= e.seq {
		return // every recorded purge came before this fill began
	}
	host, path, query := keyParts(e.key)
	slot := s.urlSlot(host, path, query)
	if e.seq < p.floor {
		s.mark(slot, p.floor, false)
	}
	var buf [256]byte
	for i := len(p.records) - 1; i >= 0 && p.records[i].seq > e.seq; i-- {
		if r := &p.records[i]; r.set.match(host, path, query, buf[:0]) {
			s.mark(slot, r.seq, r.soft)
		}
	}
}

// urlSlot returns the slot of the URL pseudo-tag of a key's parts.
func (s *Store) urlSlot(host, path, query string) uint32 {
	var h maphash.Hash
	h.SetSeed(s.seed)
	h.WriteString("\x00k")
	h.WriteString(host)
	h.WriteByte(0)
	h.WriteString(path)
	h.WriteByte('?')
	h.WriteString(query)
	return uint32(h.Sum64()) & s.mask
}

// keySlot returns the slot of the URL pseudo-tag of a primary key.
func (s *Store) keySlot(key string) uint32 {
	return s.urlSlot(keyParts(key))
}

// keyParts splits a cache key (see keyer) into its host, escaped path and
// normalized query (without "?"), leaving out the scheme and Vary part.
func keyParts(key string) (host, path, query string) {
	if i := strings.IndexByte(key, 0); i >= 0 {
		key = key[:i]
	}
	if i := strings.Index(key, "://"); i >= 0 {
		key = key[i+3:]
	}
	i := strings.IndexByte(key, '/')
	if i < 0 {
		return key, "/", ""
	}
	host = key[:i]
	path, query, _ = strings.Cut(key[i:], "?")
	return host, path, query
}

// parsePurgeURL returns the lower-case host (empty for a path), escaped
// path and raw query of a purge URL or prefix.
func parsePurgeURL(raw string) (host, path, rawQuery string, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", "", fmt.Errorf("%w %q: %v", ErrBadPurgeURL, raw, err)
	}
	switch {
	case u.Host != "" && (u.Scheme == "http" || u.Scheme == "https" || u.Scheme == ""):
	case u.Host == "" && u.Scheme == "" && strings.HasPrefix(u.Path, "/"):
	default:
		return "", "", "", fmt.Errorf("%w %q: want an http(s) URL or a path starting with /", ErrBadPurgeURL, raw)
	}
	path = u.EscapedPath()
	if path == "" {
		path = "/"
	}
	return strings.ToLower(u.Host), path, u.RawQuery, nil
}
