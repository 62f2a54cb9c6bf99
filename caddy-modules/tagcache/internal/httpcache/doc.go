// Package httpcache is the Caddy-free core of Meridian's edge cache: a
// shared HTTP cache (RFC 9111) whose entries are indexed by cache tags and
// can be purged by tag (in O(1)), by URL or by path prefix.
//
// # Store
//
// A Store keeps serialized entries in bigcache (a GC-free, sharded byte
// store with a hard memory bound). Every bigcache read copies the entry
// (bigcache v3's Get and GetWithInfo both copy the value and allocate a
// copy of the key to compare it), so a Store also keeps a small hot tier:
// a direct-mapped, lock-free array of decoded, immutable entries that share
// memory with their blob. A hit in the hot tier takes no lock and copies
// nothing; a hit that has to go to bigcache promotes the copy bigcache just
// made into the hot tier, so the copy is made once, not per request. The
// hot tier has its own byte budget (HotSize) on top of MaxSize.
//
// # Purges
//
// Purges by tag never scan entries. The store keeps one global purge
// sequence and a fixed-size table of tag slots, each holding the sequence
// number of the last hard and the last soft purge of the tags hashed to it.
// An entry records the sequence number read just before its upstream
// request was sent and the slots of its tags; a lookup whose entry has a
// slot purged after that point treats it as a miss (hard) or as stale
// (soft). A purge racing with a fill therefore never lets the pre-purge
// response survive. Two tags sharing a slot only cause extra misses.
// Besides the origin's tags (Surrogate-Key), every entry carries
// pseudo-tags for its URL as keyed (host, path, normalized query), for its
// path and for each directory prefix of it (up to MaxPrefixDepth levels).
// So a purge of a URL on a host, of a path (unsafe-method invalidation) or
// of a whole directory is O(1); a purge of a URL on every host or of any
// other prefix scans the keys once and marks the URL pseudo-tags of those
// it matches (see urlpurge.go for how it stays exact for fills in flight).
//
// # Cache
//
// A Cache is the HTTP side: key building, freshness and age (RFC 9111 §4),
// CDN-Cache-Control (RFC 9213, which overrides Cache-Control and Expires
// when valid), Vary, revalidation, request coalescing,
// stale-while-revalidate and stale-if-error (RFC 5861), single byte ranges
// answered from stored complete responses, unsafe-method invalidation
// (§4.4) and Cache-Status (RFC 9211). Responses with Set-Cookie are
// deliberately not stored. It calls the next handler, in Caddy the
// reverse proxy, to reach the origin.
package httpcache
