package dataconn

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/meridian-gis/meridian/internal/pgdb"
)

// PoolsConfig tunes Pools. Zero fields take the defaults given.
type PoolsConfig struct {
	// MaxConns caps each connection's pool unless its Options say
	// otherwise. Default: 10.
	MaxConns int32 `json:"max_conns,omitempty"`
	// StatementTimeout is the default statement_timeout of sessions on
	// data connections. Default: 30s; negative: none.
	StatementTimeout time.Duration `json:"-"`
	// ConnectTimeout bounds each connection attempt and the first ping of
	// a new pool. Default: 5s.
	ConnectTimeout time.Duration `json:"-"`
	// ApplicationName shows in pg_stat_activity unless the URL sets
	// application_name. Default: "meridian".
	ApplicationName string `json:"application_name,omitempty"`
	// RefreshInterval is how often Run compares the connections'
	// updated_at with the open pools', to re-open pools of connections
	// changed by another node. Default: 30s.
	RefreshInterval time.Duration `json:"-"`
	// ClientCheckInterval is how often PostgreSQL checks, while a query
	// runs, that the session's client is still connected
	// (client_connection_check_interval): a query whose connection the
	// driver closed — its request abandoned, and the cancel request lost
	// in the protocol's race with the start of the statement — stops
	// within it instead of running to statement_timeout (pgdb.ClientCheck).
	// Default: 1s; negative: off.
	ClientCheckInterval time.Duration `json:"-"`
	// Configure, if set, is called on each pool's configuration before it
	// opens (to add a tracer, AfterConnect hooks, type registrations).
	Configure func(name string, cfg *pgxpool.Config) `json:"-"`
}

// Pools opens pgx pools on data connections lazily and keeps them: one
// per connection, re-opened when the connection changes (at once for
// changes made through the Store it was built on; within RefreshInterval
// for changes made elsewhere, when Run is running). Do not keep a pool
// across requests: ask Pools each time (a map lookup).
type Pools struct {
	store *Store
	cfg   PoolsConfig
	log   *slog.Logger

	mu     sync.RWMutex
	m      map[string]*poolEntry
	closed bool
	bg     sync.WaitGroup // pools being closed in the background
}

type poolEntry struct {
	open sync.Mutex // held while opening
	cur  atomic.Pointer[opened]
}

// opened is an open pool and the updated_at of the connection settings
// it was opened with.
type opened struct {
	pool      *pgxpool.Pool
	updatedAt time.Time
}

// NewPools returns a Pools reading connections from store and registers
// it for the store's changes. A nil log discards.
func NewPools(store *Store, cfg PoolsConfig, log *slog.Logger) *Pools {
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 10
	}
	if cfg.StatementTimeout == 0 {
		cfg.StatementTimeout = 30 * time.Second
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 5 * time.Second
	}
	if cfg.ApplicationName == "" {
		cfg.ApplicationName = "meridian"
	}
	if cfg.RefreshInterval <= 0 {
		cfg.RefreshInterval = 30 * time.Second
	}
	if cfg.ClientCheckInterval == 0 {
		cfg.ClientCheckInterval = time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Pools{store: store, cfg: cfg, log: log, m: map[string]*poolEntry{}}
	store.onChange(p.Invalidate)
	return p
}

// Stats returns the statistics of every open pool, by connection name
// (for metrics).
func (p *Pools) Stats() map[string]*pgxpool.Stat {
	p.mu.RLock()
	defer p.mu.RUnlock()
	out := make(map[string]*pgxpool.Stat, len(p.m))
	for name, e := range p.m {
		if o := e.cur.Load(); o != nil {
			out[name] = o.pool.Stat()
		}
	}
	return out
}

// Pool returns the pool of connection name, opening it on first use.
// Concurrent first calls share one opening. Errors: ErrNotFound,
// ErrClosed, errors opening the sealed settings, connection failures.
func (p *Pools) Pool(ctx context.Context, name string) (*pgxpool.Pool, error) {
	p.mu.RLock()
	e, closed := p.m[name], p.closed
	p.mu.RUnlock()
	if closed {
		return nil, ErrClosed
	}
	if e != nil {
		if o := e.cur.Load(); o != nil {
			return o.pool, nil
		}
	}
	for range 3 {
		pool, retry, err := p.slow(ctx, name)
		if !retry {
			return pool, err
		}
	}
	return nil, fmt.Errorf("opening pool for connection %s: changed repeatedly while opening", name)
}

// slow opens the pool; retry is true when the entry was invalidated
// while opening (the pool opened for the old settings is closed).
func (p *Pools) slow(ctx context.Context, name string) (pool *pgxpool.Pool, retry bool, err error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, false, ErrClosed
	}
	e := p.m[name]
	if e == nil {
		e = &poolEntry{}
		p.m[name] = e
	}
	p.mu.Unlock()

	e.open.Lock()
	defer e.open.Unlock()
	if o := e.cur.Load(); o != nil {
		return o.pool, false, nil
	}
	pool, updatedAt, err := p.openPool(ctx, name)
	p.mu.Lock()
	current := p.m[name] == e && !p.closed
	if err != nil || !current {
		if p.m[name] == e {
			delete(p.m, name) // failures are not cached
		}
		p.mu.Unlock()
		if err != nil {
			return nil, false, err
		}
		pool.Close()
		return nil, true, nil
	}
	e.cur.Store(&opened{pool: pool, updatedAt: updatedAt})
	p.mu.Unlock()
	return pool, false, nil
}

func (p *Pools) openPool(ctx context.Context, name string) (*pgxpool.Pool, time.Time, error) {
	// Shared by concurrent callers: not cancelled by the first one.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*p.cfg.ConnectTimeout)
	defer cancel()
	c, err := p.store.Get(ctx, name)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("opening pool: %w", err)
	}
	cfg, err := p.poolConfig(c)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("opening pool for connection %s: %w", name, err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("opening pool for connection %s: %w", name, err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, time.Time{}, fmt.Errorf("opening pool for connection %s (%s): %w", name, RedactURL(c.URL), err)
	}
	p.log.LogAttrs(ctx, slog.LevelInfo, "data connection pool opened", slog.Any("conn", c),
		slog.Int("max_conns", int(cfg.MaxConns)), slog.String("statement_timeout", cfg.ConnConfig.RuntimeParams["statement_timeout"]),
		slog.Bool("read_only", c.Options.ReadOnly))
	return pool, c.UpdatedAt, nil
}

func (p *Pools) poolConfig(c *Connection) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(c.URL)
	if err != nil {
		return nil, fmt.Errorf("%w: URL rejected by the driver", ErrInvalid)
	}
	cfg.MaxConns = p.cfg.MaxConns
	if c.Options.MaxConns > 0 {
		cfg.MaxConns = c.Options.MaxConns
	}
	cfg.ConnConfig.ConnectTimeout = p.cfg.ConnectTimeout
	rp := cfg.ConnConfig.RuntimeParams
	if rp["application_name"] == "" {
		rp["application_name"] = p.cfg.ApplicationName
	}
	st := p.cfg.StatementTimeout
	if c.Options.StatementTimeout != 0 {
		st = c.Options.StatementTimeout
	}
	if st > 0 {
		rp["statement_timeout"] = strconv.FormatInt(max(st.Milliseconds(), 1), 10)
	}
	if c.Options.ReadOnly {
		rp["default_transaction_read_only"] = "on"
	}
	if p.cfg.Configure != nil {
		p.cfg.Configure(c.Name, cfg)
	}
	if ci := p.cfg.ClientCheckInterval; ci > 0 {
		cfg.AfterConnect = pgdb.ClientCheck(ci, cfg.AfterConnect, p.log.With("conn", c.Name))
	}
	return cfg, nil
}

// Invalidate forgets connection name's pool: the next Pool call opens a
// new one with the current settings. The old pool is closed in the
// background once its connections are released.
func (p *Pools) Invalidate(name string) {
	p.mu.Lock()
	e := p.m[name]
	delete(p.m, name)
	if e != nil {
		p.bg.Add(1)
	}
	p.mu.Unlock()
	if e == nil {
		return
	}
	go func() {
		defer p.bg.Done()
		e.open.Lock() // wait for an opening in progress (it will notice)
		o := e.cur.Swap(nil)
		e.open.Unlock()
		if o != nil {
			o.pool.Close()
		}
	}()
}

// Refresh re-opens pools whose connection changed or disappeared since
// the pool was opened, as seen in the metadata database.
func (p *Pools) Refresh(ctx context.Context) error {
	versions, err := p.store.Versions(ctx)
	if err != nil {
		return fmt.Errorf("refreshing pools: %w", err)
	}
	p.mu.RLock()
	var stale []string
	for name, e := range p.m {
		o := e.cur.Load()
		if o == nil {
			continue // opening: it reads the current settings
		}
		if v, ok := versions[name]; !ok || !v.Equal(o.updatedAt) {
			stale = append(stale, name)
		}
	}
	p.mu.RUnlock()
	for _, name := range stale {
		p.log.LogAttrs(ctx, slog.LevelInfo, "data connection changed: re-opening its pool", slog.String("conn", name))
		p.Invalidate(name)
	}
	return nil
}

// Run calls Refresh every RefreshInterval until ctx is done (errors are
// logged) and returns nil then.
func (p *Pools) Run(ctx context.Context) error {
	t := time.NewTicker(p.cfg.RefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := p.Refresh(ctx); err != nil && ctx.Err() == nil {
				p.log.LogAttrs(ctx, slog.LevelWarn, "refreshing data connection pools", slog.Any("err", err))
			}
		}
	}
}

// Close closes every pool (waiting for their connections to be
// released); Pool fails with ErrClosed afterwards.
func (p *Pools) Close() {
	p.mu.Lock()
	p.closed = true
	entries := p.m
	p.m = map[string]*poolEntry{}
	p.mu.Unlock()
	for _, e := range entries {
		e.open.Lock()
		if o := e.cur.Swap(nil); o != nil {
			o.pool.Close()
		}
		e.open.Unlock()
	}
	p.bg.Wait()
}
