package tagcache

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meridian-gis/meridian/caddy-modules/tagcache/internal/httpcache"
)

// collector exports a store's counters. The counters live in the store
// (which survives reloads), and Caddy makes a new registry per config, so
// each config registers one collector reading the same store.
type collector struct {
	store *httpcache.Store

	hits, stale, misses, coalesced, bypass, revalidated        *prometheus.Desc
	stores, uncacheable, upstreamErrors, invalidations, denied *prometheus.Desc
	abandoned, quarantined                                     *prometheus.Desc
	purges, evictions, expired                                 *prometheus.Desc
	entries, bytes                                             *prometheus.Desc
}

func newCollector(s *httpcache.Store) *collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("meridian_cache_"+name, help, labels, nil)
	}
	return &collector{
		store:          s,
		hits:           d("hits_total", "Requests answered from a fresh stored response."),
		stale:          d("stale_total", "Requests answered with a stale response (stale-while-revalidate, soft purge, max-stale, stale-if-error)."),
		misses:         d("misses_total", "Fills sent upstream (misses, revalidations, background refreshes)."),
		coalesced:      d("coalesced_total", "Requests that waited for another request's fill instead of going upstream."),
		bypass:         d("bypass_total", "Requests passed upstream without cache lookup (unsafe methods, no-store, Range, ...)."),
		revalidated:    d("revalidated_total", "Stored responses freshened by a 304."),
		stores:         d("stores_total", "Responses stored."),
		uncacheable:    d("uncacheable_total", "Upstream responses not stored (directives, size, truncation)."),
		denied:         d("denied_total", "Stored responses not served because the caller's token lacks a grant for their sources."),
		upstreamErrors: d("upstream_errors_total", "Fills that failed or got a server error."),
		abandoned:      d("abandoned_total", "Fills cancelled because every request waiting for them went away (background refreshes never are)."),
		quarantined:    d("quarantined_total", "Responses not stored because their tags were purged moments before (purge_quarantine)."),
		invalidations:  d("invalidations_total", "URLs invalidated by unsafe requests."),
		purges:         d("purges_total", "Purges applied, by kind (tag_hard, tag_soft, url, prefix; widened: URL and prefix purges that purged a whole path or directory rather than scan a very large store).", "kind"),
		evictions:      d("evictions_total", "Entries evicted to stay within max_size."),
		expired:        d("expired_total", "Entries dropped after max_store_time."),
		entries:        d("entries", "Entries in the store."),
		bytes:          d("bytes", "Memory held, by tier.", "tier"),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.hits, c.stale, c.misses, c.coalesced, c.bypass, c.revalidated,
		c.stores, c.uncacheable, c.upstreamErrors, c.abandoned, c.quarantined, c.invalidations, c.denied, c.purges, c.evictions, c.expired, c.entries, c.bytes} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.store.Stats()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter(c.hits, s.Hits)
	counter(c.stale, s.Stale)
	counter(c.misses, s.Misses)
	counter(c.coalesced, s.Coalesced)
	counter(c.bypass, s.Bypass)
	counter(c.revalidated, s.Revalidated)
	counter(c.stores, s.Stores)
	counter(c.uncacheable, s.Uncacheable)
	counter(c.denied, s.Denied)
	counter(c.upstreamErrors, s.UpstreamErrors)
	counter(c.abandoned, s.Abandoned)
	counter(c.quarantined, s.Quarantined)
	counter(c.invalidations, s.Invalidations)
	counter(c.purges, s.PurgeHard, "tag_hard")
	counter(c.purges, s.PurgeSoft, "tag_soft")
	counter(c.purges, s.PurgeURL, "url")
	counter(c.purges, s.PurgePrefix, "prefix")
	counter(c.purges, s.PurgeWidened, "widened")
	counter(c.evictions, s.Evictions)
	counter(c.expired, s.Expired)
	gauge(c.entries, float64(s.Entries))
	gauge(c.bytes, float64(s.StoreBytes), "store")
	gauge(c.bytes, float64(s.HotBytes), "hot")
}

// registerMetrics registers the store's collector on reg once: a second
// registration on the same registry (same config) is not an error.
func registerMetrics(reg prometheus.Registerer, s *httpcache.Store) error {
	if reg == nil {
		return nil
	}
	err := reg.Register(newCollector(s))
	if are := (prometheus.AlreadyRegisteredError{}); errors.As(err, &are) {
		return nil
	}
	return err
}
