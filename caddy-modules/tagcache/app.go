package tagcache

import (
	"errors"
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/meridian-gis/meridian/caddy-modules/edgeapp"

	"github.com/meridian-gis/meridian/caddy-modules/tagcache/internal/httpcache"
	"github.com/meridian-gis/meridian/internal/cachetag"
)

func init() {
	caddy.RegisterModule(App{})
}

// stores keeps the stores across config reloads, keyed by their
// configuration: a reload with the same store settings reuses the warm
// store; changed settings start a new one, and the old one is closed when
// the last config using it is cleaned up. Caddy's pattern for state that
// outlives a config (as reverse_proxy's host pool).
var stores = caddy.NewUsagePool()

// App is the meridian_cache app: it owns the cache store shared by every
// meridian_cache handler and applies purges to it.
type App struct {
	// MaxSize is the hard memory bound of the store in bytes, rounded
	// down to whole MiB. Default: 256 MiB.
	MaxSize int64 `json:"max_size,omitempty"`
	// HotSize is the byte budget of the hot tier: decoded entries served
	// without copying, on top of MaxSize. Default: MaxSize/4; negative
	// disables the tier.
	HotSize int64 `json:"hot_size,omitempty"`
	// MaxEntrySize is the largest response body stored. Larger responses
	// are served but not kept. Default: 8 MiB.
	MaxEntrySize int64 `json:"max_entry_size,omitempty"`
	// Shards is the number of store shards, a power of two. Default: the
	// largest power of two (at most 256) leaving each shard room for two
	// entries of MaxEntrySize.
	Shards int `json:"shards,omitempty"`
	// TagSlots is the size of the tag generation table (16 bytes per
	// slot, rounded up to a power of two). Tags sharing a slot only cause
	// extra misses. Default: 262144 (4 MiB).
	TagSlots int `json:"tag_slots,omitempty"`
	// MaxStoreTime is the longest an entry stays in the store, fresh or
	// stale. Default: 24h.
	MaxStoreTime caddy.Duration `json:"max_store_time,omitempty"`

	store   *httpcache.Store
	resolve httpcache.StoreConfig
	poolKey string
	logger  *zap.Logger
	// edge is the meridian app when configured: it carries the broker
	// this node receives invalidations from.
	edge *edgeapp.App
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "meridian_cache",
		New: func() caddy.Module { return new(App) },
	}
}

func (a *App) storeConfig() httpcache.StoreConfig {
	return httpcache.StoreConfig{
		MaxSize:      a.MaxSize,
		HotSize:      a.HotSize,
		MaxEntrySize: a.MaxEntrySize,
		Shards:       a.Shards,
		TagSlots:     a.TagSlots,
		MaxStoreTime: time.Duration(a.MaxStoreTime),
	}
}

// Provision gets the store from the pool (or creates it) and registers
// the cache metrics on the config's registry.
func (a *App) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	cfg, err := a.storeConfig().WithDefaults()
	if err != nil {
		return fmt.Errorf("configuring meridian_cache store: %w", err)
	}
	a.resolve = cfg
	key := fmt.Sprintf("%+v", cfg)
	v, loaded, err := stores.LoadOrNew(key, func() (caddy.Destructor, error) {
		s, err := httpcache.NewStore(cfg)
		if err != nil {
			return nil, err
		}
		return pooledStore{s}, nil
	})
	if err != nil {
		return fmt.Errorf("creating meridian_cache store: %w", err)
	}
	a.poolKey = key
	a.store = v.(pooledStore).Store
	if err := registerMetrics(ctx.GetMetricsRegistry(), a.store); err != nil {
		return fmt.Errorf("registering meridian_cache metrics: %w", err)
	}
	switch m, err := ctx.AppIfConfigured("meridian"); {
	case err == nil:
		a.edge = m.(*edgeapp.App)
	case !errors.Is(err, caddy.ErrNotConfigured):
		return fmt.Errorf("loading meridian app for invalidations: %w", err)
	}
	a.logger.Info("cache store ready",
		zap.Bool("reused", loaded),
		zap.Int64("max_size", cfg.MaxSize),
		zap.Int64("hot_size", cfg.HotSize),
		zap.Int64("max_entry_size", cfg.MaxEntrySize),
		zap.Int("shards", cfg.Shards),
		zap.Int("tag_slots", cfg.TagSlots))
	return nil
}

// Validate checks the configuration.
func (a *App) Validate() error {
	if a.MaxSize < 0 || a.MaxEntrySize < 0 || a.Shards < 0 || a.TagSlots < 0 || a.MaxStoreTime < 0 {
		return fmt.Errorf("meridian_cache: sizes and durations must not be negative")
	}
	return nil
}

// Start starts the app. The store needs no goroutine of its own.
func (a *App) Start() error {
	if a.edge != nil {
		a.subscribe(a.edge)
	}
	return nil
}

// Stop stops the app; the store stays in the pool until Cleanup.
func (a *App) Stop() error { return nil }

// Cleanup releases this config's reference to the store.
func (a *App) Cleanup() error {
	if a.poolKey == "" {
		return nil
	}
	_, err := stores.Delete(a.poolKey)
	a.poolKey = ""
	return err
}

// Purge purges, on this node, every entry carrying any of tags: hard
// purges turn them into misses, soft purges into stale entries served
// while one request refetches. It costs O(len(tags)), never a scan.
// Invalid tags (see cachetag.Valid) are ignored. It is the single entry
// point for tag purges (admin API, broker invalidations).
func (a *App) Purge(tags []string, soft bool) {
	valid := tags[:0:0]
	for _, t := range tags {
		if cachetag.Valid(t) {
			valid = append(valid, t)
		}
	}
	a.store.PurgeTags(valid, soft)
	if c := a.logger.Check(zap.DebugLevel, "purged tags"); c != nil {
		c.Write(zap.Strings("tags", valid), zap.Bool("soft", soft))
	}
}

// PurgeURLs purges, on this node, the cached responses of urls (each
// naming one cache key: host, path and query; a path without host names
// it on every host) and of the paths starting with prefixes. See
// httpcache.Store.PurgeURLs; invalid URLs are logged and skipped.
func (a *App) PurgeURLs(urls, prefixes []string, soft bool) {
	if len(urls) == 0 && len(prefixes) == 0 {
		return
	}
	if err := a.store.PurgeURLs(urls, prefixes, soft); err != nil {
		a.logger.Warn("purging urls", zap.Error(err))
	}
	if c := a.logger.Check(zap.DebugLevel, "purged urls"); c != nil {
		c.Write(zap.Strings("urls", urls), zap.Strings("prefixes", prefixes), zap.Bool("soft", soft))
	}
}

// Apply purges, on this node, what an invalidation names: its tags, URLs
// and prefixes.
func (a *App) Apply(inv cachetag.Invalidation) {
	if len(inv.Tags) > 0 {
		a.Purge(inv.Tags, inv.Soft)
	}
	a.PurgeURLs(inv.URLs, inv.Prefixes, inv.Soft)
}

// Stats returns the store's counters and sizes.
func (a *App) Stats() httpcache.Stats { return a.store.Stats() }

// StoreConfig returns the store configuration with defaults applied.
func (a *App) StoreConfig() httpcache.StoreConfig { return a.resolve }

// pooledStore lets the usage pool close a store no config uses any more.
type pooledStore struct{ *httpcache.Store }

func (p pooledStore) Destruct() error { return p.Close() }

// Interface guards
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.Validator    = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
	_ caddy.Destructor   = pooledStore{}
)
