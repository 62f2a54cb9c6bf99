package httpcache

import (
	"context"
	"fmt"
	"hash/maphash"
	"math/bits"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/allegro/bigcache/v3"
)

// Store defaults.
const (
	DefaultMaxSize      = 256 << 20
	DefaultMaxEntrySize = 8 << 20
	DefaultTagSlots     = 1 << 18
	DefaultMaxStoreTime = 24 * time.Hour

	// MaxPrefixDepth bounds the directory prefixes recorded per entry; a
	// prefix purge deeper than that purges its ancestor at this depth.
	MaxPrefixDepth = 8

	// entryOverhead is the room reserved for an entry's metadata and
	// headers on top of its body when sizing shards.
	entryOverhead = 64 << 10
)

// StoreConfig configures a Store. Zero values get the documented defaults.
type StoreConfig struct {
	// MaxSize is the hard bound of the bigcache store in bytes, rounded
	// down to whole MiB. Default: 256 MiB; minimum 1 MiB.
	MaxSize int64 `json:"max_size,omitempty"`
	// HotSize is the byte budget of the hot tier (decoded entries served
	// without copying). Default: MaxSize/4. Negative disables the tier.
	HotSize int64 `json:"hot_size,omitempty"`
	// MaxEntrySize is the largest body the store accepts. Default: 8 MiB.
	MaxEntrySize int64 `json:"max_entry_size,omitempty"`
	// Shards is the number of bigcache shards, a power of two. Default:
	// the largest power of two (at most 256) that leaves every shard room
	// for two entries of MaxEntrySize.
	Shards int `json:"shards,omitempty"`
	// TagSlots is the size of the tag generation table, rounded up to a
	// power of two; 16 bytes each. Default: 262144 (4 MiB).
	TagSlots int `json:"tag_slots,omitempty"`
	// MaxStoreTime is how long an entry may stay in the store at most,
	// fresh or stale (bigcache's LifeWindow). Default: 24h.
	MaxStoreTime time.Duration `json:"max_store_time,omitempty"`
}

// WithDefaults returns c with defaults applied and derived values set,
// or an error when c is inconsistent.
func (c StoreConfig) WithDefaults() (StoreConfig, error) {
	if c.MaxSize == 0 {
		c.MaxSize = DefaultMaxSize
	}
	if c.MaxSize < 1<<20 {
		return c, fmt.Errorf("max_size %d: must be at least 1 MiB", c.MaxSize)
	}
	if c.HotSize == 0 {
		c.HotSize = c.MaxSize / 4
	}
	if c.MaxEntrySize == 0 {
		c.MaxEntrySize = DefaultMaxEntrySize
	}
	if c.MaxEntrySize < 0 {
		return c, fmt.Errorf("max_entry_size %d: must not be negative", c.MaxEntrySize)
	}
	mb := c.MaxSize >> 20
	perEntry := 2 * (c.MaxEntrySize + entryOverhead)
	if c.Shards == 0 {
		n := (mb << 20) / perEntry
		switch {
		case n < 1:
			n = 1
		case n > 256:
			n = 256
		}
		c.Shards = 1 << (bits.Len64(uint64(n)) - 1)
	}
	if c.Shards <= 0 || c.Shards&(c.Shards-1) != 0 {
		return c, fmt.Errorf("shards %d: must be a power of two", c.Shards)
	}
	if (mb<<20)/int64(c.Shards) < perEntry {
		return c, fmt.Errorf("max_size %d with %d shards leaves no room for entries of max_entry_size %d", c.MaxSize, c.Shards, c.MaxEntrySize)
	}
	if c.TagSlots == 0 {
		c.TagSlots = DefaultTagSlots
	}
	if c.TagSlots < 0 || c.TagSlots > 1<<26 {
		return c, fmt.Errorf("tag_slots %d: must be between 1 and 2^26", c.TagSlots)
	}
	c.TagSlots = 1 << bits.Len(uint(c.TagSlots-1))
	if c.MaxStoreTime == 0 {
		c.MaxStoreTime = DefaultMaxStoreTime
	}
	return c, nil
}

// Store holds cache entries: bigcache for the bytes, a hot tier of
// decoded entries, and the tag generation table. It is safe for
// concurrent use. See the package doc.
type Store struct {
	cfg  StoreConfig
	big  *bigcache.BigCache
	hot  hotTier
	seed maphash.Seed

	// seq is the global purge sequence; gens holds, per tag slot, the
	// sequence of the last hard and soft purge of a tag in that slot.
	seq  atomic.Uint64
	gens []tagGen
	mask uint32

	stats counters

	// purges guards the state of purges by URL and prefix; nothing on
	// the lookup path takes it.
	purges purgeState
	// scanLimit is the number of entries above which purges by URL and
	// prefix do not scan (DefaultPurgeScanLimit; tests lower it).
	scanLimit int
}

type tagGen struct {
	hard atomic.Uint64
	soft atomic.Uint64
	// at is when a tag in this slot was last purged (Unix ns).
	at atomic.Int64
}

// NewStore creates a Store. Call Close to release it.
func NewStore(cfg StoreConfig) (*Store, error) {
	cfg, err := cfg.WithDefaults()
	if err != nil {
		return nil, fmt.Errorf("configuring store: %w", err)
	}
	s := &Store{
		cfg:  cfg,
		seed: maphash.MakeSeed(),
		gens: make([]tagGen, cfg.TagSlots),
		mask: uint32(cfg.TagSlots - 1),

		scanLimit: DefaultPurgeScanLimit,
	}
	bc := bigcache.Config{
		Shards:             cfg.Shards,
		LifeWindow:         cfg.MaxStoreTime,
		CleanWindow:        time.Minute,
		MaxEntriesInWindow: cfg.Shards * 64,
		MaxEntrySize:       4 << 10,
		HardMaxCacheSize:   int(cfg.MaxSize >> 20),
		Logger:             nopLogger{},
		OnRemoveWithReason: s.onRemove,
	}
	// bigcache prints to stdout when its context ends; Close stops it
	// quietly instead.
	s.big, err = bigcache.New(context.Background(), bc)
	if err != nil {
		return nil, fmt.Errorf("creating bigcache: %w", err)
	}
	if cfg.HotSize > 0 {
		s.hot.init(cfg.HotSize)
	}
	return s, nil
}

// Close releases the store's memory and goroutines.
func (s *Store) Close() error {
	s.hot.reset()
	return s.big.Close()
}

// Config returns the store's configuration with defaults applied.
func (s *Store) Config() StoreConfig { return s.cfg }

// maxBody is the largest body the store accepts.
func (s *Store) maxBody() int64 { return s.cfg.MaxEntrySize }

func (s *Store) onRemove(_ string, _ []byte, reason bigcache.RemoveReason) {
	switch reason {
	case bigcache.NoSpace:
		s.stats.evictions.Add(1)
	case bigcache.Expired:
		s.stats.expired.Add(1)
	}
}

// get returns the entry stored under key, or nil. key is not retained.
func (s *Store) get(key []byte) *entry {
	h := maphash.Bytes(s.seed, key)
	if e := s.hot.get(h, key); e != nil {
		return e
	}
	blob, err := s.big.Get(unsafe.String(unsafe.SliceData(key), len(key)))
	if err != nil {
		return nil
	}
	e, err := decodeEntry(blob)
	if err != nil {
		// Not ours or corrupt: drop it rather than fail every lookup.
		_ = s.big.Delete(unsafe.String(unsafe.SliceData(key), len(key)))
		return nil
	}
	s.hot.put(h, e)
	return e
}

// put stores e under e.key, replacing any previous entry.
func (s *Store) put(e *entry) error {
	if err := s.big.Set(e.key, e.blob); err != nil {
		return fmt.Errorf("storing %d bytes: %w", len(e.blob), err)
	}
	s.hot.put(maphash.String(s.seed, e.key), e)
	if e.kind == kindResponse {
		s.afterPut(e)
	}
	s.stats.stores.Add(1)
	return nil
}

// remove deletes the entry stored under key, if any.
func (s *Store) remove(key string) {
	_ = s.big.Delete(key)
	s.hot.remove(maphash.String(s.seed, key), key)
}

// slot returns the tag slot of tag.
func (s *Store) slot(tag string) uint32 {
	return uint32(maphash.String(s.seed, tag)) & s.mask
}

// beginFill returns the purge sequence to record in an entry whose
// upstream request is about to be sent.
func (s *Store) beginFill() uint64 { return s.seq.Load() }

// state reports whether e survived every purge since its fill began
// (valid), and whether a soft purge has marked it stale (soft).
func (s *Store) state(e *entry) (valid, soft bool) {
	if s.seq.Load() == e.seq {
		return true, false // no purge at all since the fill began
	}
	for i, n := 0, e.nslots(); i < n; i++ {
		g := &s.gens[e.slotAt(i)&s.mask]
		if g.hard.Load() > e.seq {
			return false, false
		}
		if g.soft.Load() > e.seq {
			soft = true
		}
	}
	return true, soft
}

// purgedSince reports whether a tag in any of slots was purged at or
// after since (Unix ns).
func (s *Store) purgedSince(slots []uint32, since int64) bool {
	for _, i := range slots {
		if s.gens[i&s.mask].at.Load() >= since {
			return true
		}
	}
	return false
}

// PurgeTags purges every entry carrying any of tags, in O(len(tags)):
// hard purges make them misses, soft purges make them stale (served while
// one request refetches).
func (s *Store) PurgeTags(tags []string, soft bool) {
	if len(tags) == 0 {
		return
	}
	seq := s.seq.Add(1)
	for _, t := range tags {
		s.mark(s.slot(t), seq, soft)
	}
	if soft {
		s.stats.purgeSoft.Add(uint64(len(tags)))
	} else {
		s.stats.purgeHard.Add(uint64(len(tags)))
	}
}

// PurgePath purges every cached response for a URL path, whatever its
// query string and host. path is an escaped path ("/a%20b") or a URL,
// whose query and host are ignored.
func (s *Store) PurgePath(path string, soft bool) {
	path = pathOf(path)
	seq := s.seq.Add(1)
	s.mark(s.slot(pathTag(path)), seq, soft)
	s.stats.purgeURL.Add(1)
}

// mark records a purge of sequence seq in slot i (monotonically).
func (s *Store) mark(i uint32, seq uint64, soft bool) {
	g := &s.gens[i]
	g.at.Store(time.Now().UnixNano())
	p := &g.hard
	if soft {
		p = &g.soft
	}
	for {
		old := p.Load()
		if old >= seq || p.CompareAndSwap(old, seq) {
			return
		}
	}
}

// pathOf returns the escaped path of a path or URL ("/" if none).
func pathOf(s string) string {
	if strings.HasPrefix(s, "/") && !strings.ContainsAny(s, "?#") {
		return s
	}
	if _, p, err := urlPath(s); err == nil {
		return p
	}
	return "/"
}

// Pseudo-tags start with a NUL byte, which real tags cannot contain.
func pathTag(path string) string   { return "\x00u" + path }
func prefixTag(dir string) string  { return "\x00p" + dir }
func purgeDirDepth(dir string) int { return strings.Count(dir, "/") }

// purgeDir maps a purge prefix to the directory prefix recorded in
// entries: up to its last "/" and at most MaxPrefixDepth levels deep.
func purgeDir(prefix string) string {
	i := strings.LastIndexByte(prefix, '/')
	if i < 0 {
		return "/"
	}
	dir := prefix[:i+1]
	if dir[0] != '/' {
		return "/"
	}
	for purgeDirDepth(dir) > MaxPrefixDepth {
		dir = dir[:strings.LastIndexByte(dir[:len(dir)-1], '/')+1]
	}
	return dir
}

// pathSlots returns the slots of the pseudo-tags of path: the path itself
// and each directory prefix up to MaxPrefixDepth levels.
func (s *Store) pathSlots(path string, dst []uint32) []uint32 {
	if path == "" {
		path = "/"
	}
	dst = append(dst, s.slot(pathTag(path)))
	for i, depth := 0, 0; i < len(path) && depth < MaxPrefixDepth; i++ {
		if path[i] == '/' {
			dst = append(dst, s.slot(prefixTag(path[:i+1])))
			depth++
		}
	}
	return dst
}

// Stats is a snapshot of a store's counters (shared by every Cache using
// the store) and sizes.
type Stats struct {
	Hits           uint64 `json:"hits"`            // fresh responses served from the store
	Stale          uint64 `json:"stale"`           // stale responses served (swr, soft purge, max-stale, stale-if-error)
	Misses         uint64 `json:"misses"`          // fills sent upstream, background refreshes included
	Coalesced      uint64 `json:"coalesced"`       // requests that waited for another request's fill
	Bypass         uint64 `json:"bypass"`          // requests passed through without lookup
	Revalidated    uint64 `json:"revalidated"`     // 304s that freshened a stored response
	Stores         uint64 `json:"stores"`          // entries written
	Uncacheable    uint64 `json:"uncacheable"`     // upstream responses not stored
	Denied         uint64 `json:"denied"`          // stored responses not served: the caller's token lacks a grant
	Quarantined    uint64 `json:"quarantined"`     // responses not stored: their tags were purged moments ago
	UpstreamErrors uint64 `json:"upstream_errors"` // fills that failed or got 500/502/503/504
	Abandoned      uint64 `json:"abandoned"`       // fills cancelled: every request waiting for them went away
	PurgeHard      uint64 `json:"purge_tags_hard"` // tags hard-purged
	PurgeSoft      uint64 `json:"purge_tags_soft"` // tags soft-purged
	PurgeURL       uint64 `json:"purge_urls"`      // paths purged
	PurgePrefix    uint64 `json:"purge_prefixes"`  // prefixes purged
	PurgeWidened   uint64 `json:"purge_widened"`   // URL and prefix purges widened instead of scanning a very large store
	Invalidations  uint64 `json:"invalidations"`   // URLs invalidated by unsafe requests
	Evictions      uint64 `json:"evictions"`       // entries evicted for space
	Expired        uint64 `json:"expired"`         // entries dropped after MaxStoreTime
	Entries        int    `json:"entries"`         // entries in bigcache
	StoreBytes     int64  `json:"store_bytes"`     // bytes allocated by bigcache (bounded by MaxSize)
	HotEntries     int64  `json:"hot_entries"`     // entries in the hot tier
	HotBytes       int64  `json:"hot_bytes"`       // approximate bytes held by the hot tier
	PurgeSeq       uint64 `json:"purge_seq"`       // purges applied since the store was created
}

type counters struct {
	hits, stale, misses, coalesced, bypass, revalidated  atomic.Uint64
	stores, uncacheable, upstreamErrors, denied          atomic.Uint64
	quarantined, abandoned                               atomic.Uint64
	purgeHard, purgeSoft, purgeURL, purgePrefix, invalid atomic.Uint64
	purgeWidened                                         atomic.Uint64
	evictions, expired                                   atomic.Uint64
}

// Stats returns a snapshot of the store's counters and sizes.
func (s *Store) Stats() Stats {
	c := &s.stats
	return Stats{
		Hits:           c.hits.Load(),
		Stale:          c.stale.Load(),
		Misses:         c.misses.Load(),
		Coalesced:      c.coalesced.Load(),
		Bypass:         c.bypass.Load(),
		Revalidated:    c.revalidated.Load(),
		Stores:         c.stores.Load(),
		Uncacheable:    c.uncacheable.Load(),
		Denied:         c.denied.Load(),
		Quarantined:    c.quarantined.Load(),
		UpstreamErrors: c.upstreamErrors.Load(),
		Abandoned:      c.abandoned.Load(),
		PurgeHard:      c.purgeHard.Load(),
		PurgeSoft:      c.purgeSoft.Load(),
		PurgeURL:       c.purgeURL.Load(),
		PurgePrefix:    c.purgePrefix.Load(),
		PurgeWidened:   c.purgeWidened.Load(),
		Invalidations:  c.invalid.Load(),
		Evictions:      c.evictions.Load(),
		Expired:        c.expired.Load(),
		Entries:        s.big.Len(),
		StoreBytes:     int64(s.big.Capacity()),
		HotEntries:     s.hot.count.Load(),
		HotBytes:       s.hot.bytes.Load(),
		PurgeSeq:       s.seq.Load(),
	}
}

type nopLogger struct{}

func (nopLogger) Printf(string, ...any) {}
