package tiles

import (
	"context"
	"errors"
	"hash/fnv"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/meridian-gis/meridian/internal/cachetag"
	"github.com/meridian-gis/meridian/internal/tile"
	"github.com/meridian-gis/meridian/tiles/internal/catalog"
	"github.com/meridian-gis/meridian/tiles/internal/source"
)

// compiled is a source ready to serve: the compiled statement plus what
// responses need, precomputed so that the warm tile path does not
// allocate.
type compiled struct {
	src *source.Source
	// gen is the generation (changes with the data); genStr its text.
	gen    uint64
	genStr string
	// grantName is the table as grant.Claims.Allow reads it (quoted
	// parts); "" for query sources.
	grantName string
	// surrogateKey is the Surrogate-Key header value.
	surrogateKey string
	// geomKind is CARTO's geomType (points, lines, polygons) or "".
	geomKind string
	// epoch is the registry epoch of the connection at compile time.
	epoch uint64

	bounds atomic.Pointer[tile.Bounds]
	// ov holds the statements over the source's overview, made when it
	// is first found ready.
	ov atomic.Pointer[ovStatements]
}

// registry keeps compiled sources by Key and by ID.
type registry struct {
	max int

	mu     sync.RWMutex
	byKey  map[string]*compiled
	byID   map[string]*compiled
	epochs map[string]uint64 // per connection, bumped by dropConn
	// byQuery maps a stateless tile URL's "<conn>/<type>?<raw query>" to
	// its compiled source, so a repeated stateless request skips parsing
	// and compiling; the grant is still checked on every request.
	byQuery map[string]*compiled
}

func newRegistry(max int) *registry {
	return &registry{max: max, byKey: map[string]*compiled{}, byID: map[string]*compiled{}, epochs: map[string]uint64{},
		byQuery: map[string]*compiled{}}
}

// get looks k up without allocating.
func (r *registry) get(k []byte) *compiled {
	r.mu.RLock()
	c := r.byKey[string(k)]
	r.mu.RUnlock()
	return c
}

func (r *registry) getKey(k string) *compiled {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.byKey[k]
}

func (r *registry) getID(id string) *compiled {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.byID[id]
}

func (r *registry) epoch(conn string) uint64 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.epochs[conn]
}

// put stores c unless its connection was dropped since c was compiled.
func (r *registry) put(c *compiled) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.epochs[c.src.Spec.Conn] != c.epoch {
		return
	}
	for len(r.byKey) >= r.max {
		for k, old := range r.byKey { // random victim
			delete(r.byKey, k)
			delete(r.byID, old.src.ID)
			break
		}
	}
	r.byKey[c.src.Key] = c
	r.byID[c.src.ID] = c
}

// getQuery looks a stateless request key up without allocating.
func (r *registry) getQuery(k []byte) *compiled {
	r.mu.RLock()
	c := r.byQuery[string(k)]
	r.mu.RUnlock()
	return c
}

// putQuery remembers the source of a stateless request key, unless c's
// connection was dropped since c was compiled.
func (r *registry) putQuery(k string, c *compiled) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.epochs[c.src.Spec.Conn] != c.epoch {
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
		if c.src.Spec.Conn == conn {
			delete(r.byKey, k)
			delete(r.byID, c.src.ID)
		}
	}
	for k, c := range r.byQuery {
		if c.src.Spec.Conn == conn {
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

// sourceByKey returns the compiled source of a k=… key.
func (s *Server) sourceByKey(ctx context.Context, k []byte) (*compiled, error) {
	if c := s.sources.get(k); c != nil {
		return c, nil
	}
	spec, err := source.DecodeKey(string(k))
	if err != nil {
		return nil, err
	}
	return s.compile(ctx, spec)
}

// compile compiles spec once for all concurrent requests, and keeps it.
func (s *Server) compile(ctx context.Context, spec source.Spec) (*compiled, error) {
	key := spec.Key()
	if c := s.sources.getKey(key); c != nil {
		return c, nil
	}
	c, err, _ := s.compiles.Do(ctx, key, func(ctx context.Context) (*compiled, error) {
		ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout.D())
		defer cancel()
		defer context.AfterFunc(s.base, cancel)()
		epoch := s.sources.epoch(spec.Conn)
		src, err := source.Compile(ctx, s.env, spec)
		if err != nil {
			return nil, err
		}
		if cat := s.catalogs.Current(spec.Conn); cat != nil {
			s.noteCatalog(cat)
			if s.sources.epoch(spec.Conn) != epoch { // the catalog changed under us
				epoch = s.sources.epoch(spec.Conn)
				if src, err = source.Compile(ctx, s.env, spec); err != nil {
					return nil, err
				}
			}
		}
		c := &compiled{src: src, epoch: epoch, geomKind: src.Geom.Shape().GeomKind()}
		genTags := src.Tags
		if src.Table == nil {
			// Query sources may read any table of the connection.
			genTags = append(genTags[:len(genTags):len(genTags)], queriesTag(spec.Conn))
		}
		c.gen = s.gens.of(src.Fingerprint, genTags)
		c.genStr = strconv.FormatUint(c.gen, 10)
		c.surrogateKey = cachetag.Join(src.Tags...)
		if src.Table == nil {
			// Marks the response as computed from client SQL: the edge
			// serves it from cache only to whole-connection grants.
			c.surrogateKey += " " + cachetag.Query(spec.Conn)
		}
		if src.Table != nil {
			c.grantName = pgx.Identifier{src.Table.Schema, src.Table.Name}.Sanitize()
		}
		s.sources.put(c)
		return c, nil
	})
	return c, err
}

// boundsOf returns the lon/lat extent of c, computed once.
func (s *Server) boundsOf(ctx context.Context, c *compiled) tile.Bounds {
	if b := c.bounds.Load(); b != nil {
		return *b
	}
	b := tile.Bounds{MinX: -180, MinY: -85.0511, MaxX: 180, MaxY: 85.0511}
	pool, err := s.conns.Pool(ctx, c.src.Spec.Conn)
	if err == nil {
		ectx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if c.src.Table != nil {
			b, err = catalog.Extent(ectx, pool, c.src.Table, c.src.Geom)
		} else {
			var tx pgx.Tx
			tx, err = pool.BeginTx(ectx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
			if err == nil {
				b, err = catalog.QueryExtent(ectx, tx, c.src.Spec.Query, c.src.Geom.Name, c.src.Spec.Args())
				tx.Rollback(context.WithoutCancel(ectx))
			}
		}
		cancel()
	}
	if err != nil {
		s.log.Warn("computing source extent", "source", c.src.ID, "err", err)
	}
	b.MinY, b.MaxY = max(b.MinY, -85.0511), min(b.MaxY, 85.0511)
	if ctx.Err() == nil {
		// A request that ended (its client hung up) leaves the world
		// bounds to itself, not to the next one.
		c.bounds.Store(&b)
	}
	return b
}

// Invalidate applies a cache invalidation published at at: every tag's
// generation moves on (to at, so that all nodes agree), the catalogs of
// the connections concerned are reloaded, and their compiled sources are
// dropped, so the next requests get new cache keys and fresh tiles.
// Tags other than src:… and conn:… are ignored.
func (s *Server) Invalidate(ctx context.Context, inv cachetag.Invalidation, at time.Time) {
	conns := map[string]bool{}
	for _, tag := range inv.Tags {
		var conn string
		switch {
		case strings.HasPrefix(tag, "src:"):
			conn, _, _ = strings.Cut(tag[len("src:"):], "/")
		case strings.HasPrefix(tag, "conn:"):
			conn = tag[len("conn:"):]
		default:
			continue
		}
		s.gens.bump(tag, at.UnixMilli())
		conns[conn] = true
	}
	for conn := range conns {
		s.holdOverviews(conn)
		// Query sources depend on the whole connection.
		s.gens.bump(queriesTag(conn), at.UnixMilli())
		s.sources.dropConn(conn)
		if s.catalogs.Current(conn) != nil {
			if cat, err := s.catalogs.Refresh(ctx, conn); err == nil {
				s.noteCatalog(cat)
			} else if ctx.Err() == nil {
				s.log.Warn("refreshing catalog after invalidation", "conn", conn, "err", err)
			}
		}
	}
	s.log.Info("cache invalidation", "tags", inv.Tags, "reason", inv.Reason)
}

// queriesTag is the generation tag shared by the query sources of conn:
// any invalidation on the connection moves it.
func queriesTag(conn string) string { return cachetag.Conn(conn) + "#queries" }

// errUnknownSource: a peer asked for a source it sent no key for.
var errUnknownSource = errors.New("tiles: unknown source")
