package engine

import (
	"context"
	"errors"
	"hash/fnv"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/meridian-gis/meridian/internal/cachetag"
	"github.com/meridian-gis/meridian/internal/tile"
	"github.com/meridian-gis/meridian/tiles/internal/catalog"
	"github.com/meridian-gis/meridian/tiles/internal/source"
)

// ErrUnknownSource: a request named a source by an ID no node can
// rebuild.
var ErrUnknownSource = errors.New("unknown source")

// Source is a compiled source ready to serve: the compiled statement plus
// what responses need, precomputed so that the warm tile path does not
// allocate.
type Source struct {
	*source.Source
	// Gen is the generation (changes with the data); GenStr its text.
	Gen    uint64
	GenStr string
	// GrantName is the table as grant.Claims.Allow reads it (quoted
	// parts); "" for query sources.
	GrantName string
	// SurrogateKey is the Surrogate-Key header value.
	SurrogateKey string
	// GeomKind is CARTO's geomType (points, lines, polygons) or "".
	GeomKind string

	// epoch is the registry epoch of the connection at compile time.
	epoch  uint64
	bounds atomic.Pointer[tile.Bounds]
	// drops is fraction_dropped_per_zoom, computed once (drops.go).
	drops atomic.Pointer[[]float64]
	// ov holds the statements over the source's overview, made when it
	// is first found ready.
	ov atomic.Pointer[ovStatements]
}

// Source compiles spec once for all concurrent callers, and keeps it.
func (e *Engine) Source(ctx context.Context, spec source.Spec) (*Source, error) {
	key := spec.Key()
	if c := e.sources.getKey(key); c != nil {
		return c, nil
	}
	c, err, _ := e.compiles.Do(ctx, key, func(ctx context.Context) (*Source, error) {
		ctx, cancel := context.WithTimeout(ctx, e.cfg.RequestTimeout)
		defer cancel()
		defer context.AfterFunc(e.base, cancel)()
		epoch := e.sources.epoch(spec.Conn)
		src, err := source.Compile(ctx, e.env, spec)
		if err != nil {
			return nil, err
		}
		if cat := e.catalogs.Current(spec.Conn); cat != nil {
			e.noteCatalog(cat)
			if e.sources.epoch(spec.Conn) != epoch { // the catalog changed under us
				epoch = e.sources.epoch(spec.Conn)
				if src, err = source.Compile(ctx, e.env, spec); err != nil {
					return nil, err
				}
			}
		}
		c := &Source{Source: src, epoch: epoch, GeomKind: src.Geom.Shape().GeomKind()}
		genTags := src.Tags
		if src.Table == nil {
			// Query sources may read any table of the connection.
			genTags = append(genTags[:len(genTags):len(genTags)], queriesTag(spec.Conn))
		}
		c.Gen = e.gens.of(src.Fingerprint, genTags)
		c.GenStr = strconv.FormatUint(c.Gen, 10)
		c.SurrogateKey = cachetag.Join(src.Tags...)
		if src.Table == nil {
			// Marks the response as computed from client SQL: the edge
			// serves it from cache only to whole-connection grants.
			c.SurrogateKey += " " + cachetag.Query(spec.Conn)
		}
		if src.Table != nil {
			c.GrantName = pgx.Identifier{src.Table.Schema, src.Table.Name}.Sanitize()
		}
		if t, ok := overviewTable(c); ok && e.overviews != nil {
			// A fresh node finds the overview built before (by itself or
			// another node) now, not after its first tiles rendered from
			// the table.
			e.overviews.Lookup(ctx, t)
		}
		if src.Table != nil {
			e.warmPool(c)
		}
		e.sources.put(c)
		return c, nil
	})
	return c, err
}

// SourceByKey returns the compiled source of a k=… key, compiling it when
// this node has not yet.
func (e *Engine) SourceByKey(ctx context.Context, k string) (*Source, error) {
	if c := e.sources.getKey(k); c != nil {
		return c, nil
	}
	spec, err := source.DecodeKey(k)
	if err != nil {
		return nil, err
	}
	return e.Source(ctx, spec)
}

// Lookup finds a compiled source by its k=… key without allocating; nil
// when it must be compiled (SourceByKey).
func (e *Engine) Lookup(k []byte) *Source { return e.sources.get(k) }

// LookupQuery finds the source remembered for a stateless request key
// (RememberQuery) without allocating.
func (e *Engine) LookupQuery(k []byte) *Source { return e.sources.getQuery(k) }

// RememberQuery remembers the source of a stateless request key, so that
// a repeated request skips parsing and compiling.
func (e *Engine) RememberQuery(k string, c *Source) { e.sources.putQuery(k, c) }

// SourceCount is the number of compiled sources kept.
func (e *Engine) SourceCount() int { return e.sources.len() }

// Bounds returns the lon/lat extent of c, computed once (world bounds
// when it cannot be computed).
func (e *Engine) Bounds(ctx context.Context, c *Source) tile.Bounds {
	if b := c.bounds.Load(); b != nil {
		return *b
	}
	b := tile.Bounds{MinX: -180, MinY: -85.0511, MaxX: 180, MaxY: 85.0511}
	pool, err := e.pool(ctx, c.Spec.Conn)
	if err == nil {
		ectx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if c.Table != nil {
			b, err = catalog.Extent(ectx, pool, c.Table, c.Geom)
		} else {
			var tx pgx.Tx
			tx, err = pool.BeginTx(ectx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
			if err == nil {
				b, err = catalog.QueryExtent(ectx, tx, c.Spec.SQL(), c.Geom.Name, c.Spec.Args())
				tx.Rollback(context.WithoutCancel(ectx))
			}
		}
		cancel()
	}
	if err != nil {
		e.log.Warn("computing source extent", "source", c.ID, "err", err)
	}
	b.MinY, b.MaxY = max(b.MinY, -85.0511), min(b.MaxY, 85.0511)
	if ctx.Err() == nil {
		// A request that ended (its client hung up) leaves the world
		// bounds to itself, not to the next one.
		c.bounds.Store(&b)
	}
	return b
}

// registry keeps compiled sources by Key and by ID.
type registry struct {
	max int

	mu     sync.RWMutex
	byKey  map[string]*Source
	epochs map[string]uint64 // per connection, bumped by dropConn
	// byQuery maps a stateless tile URL's "<conn>/<type>?<raw query>" to
	// its compiled source, so a repeated stateless request skips parsing
	// and compiling; the grant is still checked on every request.
	byQuery map[string]*Source
}

func newRegistry(max int) *registry {
	return &registry{max: max, byKey: map[string]*Source{}, epochs: map[string]uint64{}, byQuery: map[string]*Source{}}
}

// get looks k up without allocating.
func (r *registry) get(k []byte) *Source {
	r.mu.RLock()
	c := r.byKey[string(k)]
	r.mu.RUnlock()
	return c
}

func (r *registry) getKey(k string) *Source {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.byKey[k]
}

func (r *registry) epoch(conn string) uint64 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.epochs[conn]
}

// put stores c unless its connection was dropped since c was compiled.
func (r *registry) put(c *Source) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.epochs[c.Spec.Conn] != c.epoch {
		return
	}
	for len(r.byKey) >= r.max {
		for k := range r.byKey { // random victim
			delete(r.byKey, k)
			break
		}
	}
	r.byKey[c.Key] = c
}

// getQuery looks a stateless request key up without allocating.
func (r *registry) getQuery(k []byte) *Source {
	r.mu.RLock()
	c := r.byQuery[string(k)]
	r.mu.RUnlock()
	return c
}

// putQuery remembers the source of a stateless request key, unless c's
// connection was dropped since c was compiled.
func (r *registry) putQuery(k string, c *Source) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.epochs[c.Spec.Conn] != c.epoch {
		return
	}
	for len(r.byQuery) >= r.max {
		for k := range r.byQuery { // random victim
			delete(r.byQuery, k)
			break
		}
	}
	r.byQuery[k] = c
}

// dropConn forgets every source of conn; they are compiled again (with
// a fresh catalog and generation) on next use.
func (r *registry) dropConn(conn string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.epochs[conn]++
	for k, c := range r.byKey {
		if c.Spec.Conn == conn {
			delete(r.byKey, k)
		}
	}
	for k, c := range r.byQuery {
		if c.Spec.Conn == conn {
			delete(r.byQuery, k)
		}
	}
}

func (r *registry) len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.byKey)
}

// generations holds the last invalidation time of each cache tag, as
// stamped by the broker when the invalidation was published, so that every
// node derives the same generation from the same messages.
type generations struct {
	mu     sync.RWMutex
	stamps map[string]int64
}

func newGenerations() *generations { return &generations{stamps: map[string]int64{}} }

// bump records an invalidation of tag at ms (Unix milliseconds); older
// stamps never replace newer ones, so redeliveries are harmless.
func (g *generations) bump(tag string, ms int64) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if ms <= g.stamps[tag] {
		return false
	}
	g.stamps[tag] = ms
	return true
}

// of returns the generation of a source with data fingerprint fp and
// cache tags tags.
func (g *generations) of(fp uint64, tags []string) uint64 {
	h := fnv.New64a()
	var b [8]byte
	put := func(v uint64) {
		for i := range 8 {
			b[i] = byte(v >> (8 * i))
		}
		h.Write(b[:])
	}
	put(fp)
	g.mu.RLock()
	for _, t := range tags {
		put(uint64(g.stamps[t]))
	}
	g.mu.RUnlock()
	return h.Sum64() & (1<<53 - 1) // exact in JavaScript numbers
}

// Invalidate applies a cache invalidation published at at: every tag's
// generation moves on (to at, so that all nodes agree), the catalogs of
// the connections concerned are reloaded, and their compiled sources are
// dropped, so the next requests get new cache keys and fresh tiles.
// Tags other than src:… and conn:… are ignored, and so are URLs and
// prefixes (purges of the edge caches; tiles are cached by generation).
func (e *Engine) Invalidate(ctx context.Context, inv cachetag.Invalidation, at time.Time) {
	if len(inv.Tags) == 0 {
		return
	}
	conns := map[string]bool{}
	for _, tag := range inv.Tags {
		conn, ok := cachetag.ConnOf(tag)
		if !ok {
			continue
		}
		e.gens.bump(tag, at.UnixMilli())
		conns[conn] = true
	}
	for conn := range conns {
		e.holdOverviews(conn)
		// Query sources depend on the whole connection.
		e.gens.bump(queriesTag(conn), at.UnixMilli())
		e.sources.dropConn(conn)
		if e.catalogs.Current(conn) != nil {
			if cat, err := e.catalogs.Refresh(ctx, conn); err == nil {
				e.noteCatalog(cat)
			} else if ctx.Err() == nil {
				e.log.Warn("refreshing catalog after invalidation", "conn", conn, "err", err)
			}
		}
	}
	e.log.Info("cache invalidation", "tags", inv.Tags, "reason", inv.Reason)
}

// queriesTag is the generation tag shared by the query sources of conn:
// any invalidation on the connection moves it.
func queriesTag(conn string) string { return cachetag.Conn(conn) + "#queries" }
