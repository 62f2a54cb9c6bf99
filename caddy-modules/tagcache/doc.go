// Package tagcache is Meridian's edge cache for Caddy: a shared HTTP cache
// (RFC 9111) whose entries are indexed by the cache tags origins send in
// Surrogate-Key (see internal/cachetag), purgeable by tag, URL path or path
// prefix in O(1).
//
// Modules:
//
//   - app "meridian_cache": owns the store (bigcache with a hard memory
//     bound plus a zero-copy hot tier), kept in a caddy.UsagePool so that a
//     config reload with the same store settings keeps it warm; App.Purge is
//     the single entry point for tag purges (admin API, broker);
//   - handler "http.handlers.meridian_cache": the cache, ordered before
//     reverse_proxy (authentication must run before it);
//   - admin API "admin.api.meridian_cache": POST /meridian/cache/purge,
//     GET /meridian/cache/stats, GET /meridian/cache/config.
//
// Caddyfile:
//
//	{
//		meridian_cache {
//			max_size 256MiB
//		}
//	}
//
//	:8080 {
//		meridian_auth …
//		meridian_cache {
//			authorization_checked
//			stale_while_revalidate 30s
//			stale_if_error 1h
//		}
//		reverse_proxy 127.0.0.1:8081
//	}
//
// Costs and bounds:
//
//   - A hit in the hot tier takes no lock, copies no body bytes and makes
//     no allocation: the response header shares the stored entry's value
//     slices (len == cap, so a later Add or Set copies). Handlers must not
//     assign to header values in place; the one Caddy handler that does, a
//     header replace operation on responses anywhere in the http app, makes
//     hits copy the values (one allocation) instead. A hit that has to read
//     bigcache copies the entry once and promotes it to the hot tier.
//   - Memory: max_size (bigcache, hard) + hot_size (approximate) + 16 bytes
//     per tag slot + bigcache's per-entry index (about 12 bytes per entry).
//   - Purge by tag, by path and by prefix are each one atomic update of a
//     generation table, whatever the number of entries; every lookup checks
//     the entry's tag, path and directory-prefix slots (skipped when nothing
//     was purged since the entry was fetched). Slot collisions only cause
//     extra misses. Purge by URL covers every query string of the path;
//     prefixes are recorded at "/" boundaries up to 8 levels deep, a prefix
//     not ending in "/" widens to its directory, and hosts are ignored.
//
// The HTTP logic lives in internal/httpcache, which does not import Caddy.
package tagcache
