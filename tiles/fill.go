package tiles

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/golang/groupcache"
	"github.com/valyala/fasthttp"

	"github.com/meridian-gis/meridian/internal/tile"
	"github.com/meridian-gis/meridian/tiles/internal/catalog"
	"github.com/meridian-gis/meridian/tiles/internal/peercache"
	"github.com/meridian-gis/meridian/tiles/internal/render"
	"github.com/meridian-gis/meridian/tiles/internal/source"
)

// tileKey identifies a finished tile in every cache.
type tileKey struct {
	id  string // source ID
	gen uint64
	c   tile.Coord
}

// groupKey renders k as the groupcache key mvt/<source>/<gen>/<z>/<x>/<y>.
func groupKey(k tileKey) string {
	b := make([]byte, 0, 64)
	b = append(b, "mvt/"...)
	b = append(b, k.id...)
	b = append(b, '/')
	b = strconv.AppendUint(b, k.gen, 10)
	b = append(b, '/')
	b = k.c.AppendText(b)
	return string(b)
}

func parseGroupKey(s string) (tileKey, error) {
	rest, ok := strings.CutPrefix(s, "mvt/")
	id, rest, ok2 := strings.Cut(rest, "/")
	genS, zxy, ok3 := strings.Cut(rest, "/")
	if !ok || !ok2 || !ok3 || len(id) != 16 {
		return tileKey{}, fmt.Errorf("tiles: bad cache key %q", s)
	}
	gen, err := strconv.ParseUint(genS, 10, 64)
	if err != nil {
		return tileKey{}, fmt.Errorf("tiles: bad cache key %q", s)
	}
	c, err := tile.Parse(zxy)
	if err != nil {
		return tileKey{}, fmt.Errorf("tiles: bad cache key %q: %w", s, err)
	}
	return tileKey{id: id, gen: gen, c: c}, nil
}

type compiledKey struct{}

// fetch returns the tile of key tk: from the in-process cache, else
// through one shared fill (the groupcache owner with peers, a local render
// otherwise). ctx may carry the compiled source (withCompiled) or a peer
// hint (its Key). fetch returns ctx.Err() when ctx ends first; the fill
// goes on while other requests wait for it (see fill).
func (s *Server) fetch(ctx context.Context, tk tileKey, gkey string) (*entry, error) {
	if e, ok := s.cache.Get(tk); ok {
		s.metrics.cacheHit.Inc()
		return e, nil
	}
	s.metrics.cacheMiss.Inc()
	e, err, shared := s.fills.Do(ctx, tk, func(ctx context.Context) (*entry, error) {
		return s.fill(ctx, tk, gkey)
	})
	if shared {
		s.metrics.fillShared.Inc()
	}
	return e, err
}

// fill makes the tile of tk for every request waiting on it (fetch) and
// caches it. It runs detached from those requests, bounded by its own
// timeout and by the server's lifetime, and s.fills cancels it when the
// last of them has gone: its deadline passed, or its client hung up
// (clientContext).
//
// A fill nobody waits for is cancelled rather than finished to warm the
// cache: a render holds a data connection and PostgreSQL's CPU, and
// clients leave mostly because the tile went out of view; abandoned
// renders would delay the ones still wanted. With peers this holds across
// nodes: a node's fill asks the key's owner with an HTTP request made
// under the fill's context (peercache), and the owner counts that request
// as one more waiter on its own fill (PeerHandler calls fetch with the
// request's context, which ends when the asking node gives up). So the
// owner's render goes on while any node still wants the tile, and stops
// when none does.
func (s *Server) fill(ctx context.Context, tk tileKey, gkey string) (*entry, error) {
	ctx, cancel := context.WithTimeout(ctx, s.fillTimeout())
	defer cancel()
	defer context.AfterFunc(s.base, cancel)()
	e, err := s.load(ctx, tk, gkey)
	if err != nil {
		if errors.Is(ctx.Err(), context.Canceled) && s.base.Err() == nil {
			s.metrics.fillsAbandoned.Inc()
			s.log.Debug("tile fill cancelled: no request waits for it any more", "source", tk.id, "tile", tk.c.String())
		}
		return nil, err
	}
	s.cache.Put(tk, e, e.size())
	return e, nil
}

// load gets the tile of tk from groupcache (with peers) or renders it.
func (s *Server) load(ctx context.Context, tk tileKey, gkey string) (*entry, error) {
	if s.group == nil {
		c, err := s.compiledFor(ctx, tk)
		if err != nil {
			return nil, err
		}
		return s.render(ctx, c, tk.c)
	}
	if gkey == "" {
		gkey = groupKey(tk)
	}
	var b []byte
	err := s.group.Get(ctx, gkey, groupcache.AllocatingByteSliceSink(&b))
	if err != nil && errors.Is(err, context.Canceled) && ctx.Err() == nil {
		// groupcache runs concurrent loads of a key once, under the first
		// caller's context: this fill joined the load of a fill that was
		// cancelled a moment ago (s.fills had already let it go). Load
		// again.
		b = nil
		err = s.group.Get(ctx, gkey, groupcache.AllocatingByteSliceSink(&b))
	}
	if err != nil {
		return nil, err
	}
	return unmarshalEntry(b)
}

func (s *Server) fillTimeout() time.Duration {
	if s.group != nil {
		return s.cfg.Peers.FillTimeout.D()
	}
	return s.cfg.TileTimeout.D()
}

// withCompiled returns ctx carrying c for the fill and its key for peers.
func withCompiled(ctx context.Context, c *compiled) context.Context {
	return peercache.WithHint(context.WithValue(ctx, compiledKey{}, c), c.src.Key)
}

// compiledFor finds the source of a fill: the one the request carried,
// the one named by a peer's hint, or one compiled here before.
func (s *Server) compiledFor(ctx context.Context, tk tileKey) (*compiled, error) {
	if c, ok := ctx.Value(compiledKey{}).(*compiled); ok && c.src.ID == tk.id {
		return c, nil
	}
	if h := peercache.HintFrom(ctx); h != "" && source.ID(h) == tk.id {
		return s.sourceByKey(ctx, []byte(h))
	}
	if c := s.sources.getID(tk.id); c != nil {
		return c, nil
	}
	return nil, fmt.Errorf("%w %s", errUnknownSource, tk.id)
}

// groupFill is the groupcache Getter: this node owns the key.
func (s *Server) groupFill(ctx context.Context, key string, dest groupcache.Sink) error {
	tk, err := parseGroupKey(key)
	if err != nil {
		return err
	}
	c, err := s.compiledFor(ctx, tk)
	if err != nil {
		return err
	}
	e, err := s.render(ctx, c, tk.c)
	if err != nil {
		return err
	}
	return dest.SetBytes(e.marshal())
}

// render renders tile co of c on its data connection.
func (s *Server) render(ctx context.Context, c *compiled, co tile.Coord) (*entry, error) {
	pool, err := s.conns.Pool(ctx, c.src.Spec.Conn)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	opts := render.Options{
		Budget:     s.cfg.TileBudget,
		MaxLOD:     s.cfg.MaxLOD,
		ReadOnlyTx: c.src.ReadOnlyTx,
	}
	sql := c.src.SQL
	ovSQL, ovt, fromOverview := s.overviewSQL(c, co)
	if fromOverview {
		sql = ovSQL
	}
	rt, err := render.Render(ctx, pool, sql, c.src.Args, co, opts)
	if err != nil && fromOverview && isUndefinedTable(err) {
		// Dropped by a node that built a newer one: the table itself.
		s.overviews.Forget(ovt)
		fromOverview = false
		rt, err = render.Render(ctx, pool, c.src.SQL, c.src.Args, co, opts)
	}
	if fromOverview && err == nil {
		s.metrics.overviewTiles.Inc()
	}
	if err != nil {
		if c.src.ReadOnlyTx && ctx.Err() == nil {
			return nil, &source.QueryError{Err: err}
		}
		return nil, err
	}
	s.metrics.renderSeconds.Observe(time.Since(start).Seconds())
	s.metrics.renderBytes.Observe(float64(len(rt.Gzip)))
	if rt.LOD > 0 {
		s.metrics.coarsened.Inc()
	}
	if c.src.Layer.Shape != catalog.ShapePoint {
		s.stats.add(c.src.ID, co.Z, rt.Kept, rt.Total)
	}
	return newEntry(rt.Gzip), nil
}

// entry is a finished tile as cached: gzip bytes (nil for an empty tile),
// strong ETags per content coding, and a brotli copy made on first demand.
type entry struct {
	gz                   []byte
	etag, etagGz, etagBr string
	br                   atomic.Pointer[[]byte]
}

func newEntry(gz []byte) *entry {
	e := &entry{gz: gz}
	if len(gz) > 0 {
		h := sha256.Sum256(gz)
		base := hex.EncodeToString(h[:12])
		e.etag, e.etagGz, e.etagBr = `"`+base+`"`, `"`+base+`-gz"`, `"`+base+`-br"`
	}
	return e
}

func (e *entry) size() int64 { return int64(len(e.gz)) + 256 }

// Encoded forms travel between nodes as one version byte and the gzip.
const entryVersion = 1

func (e *entry) marshal() []byte {
	b := make([]byte, 1+len(e.gz))
	b[0] = entryVersion
	copy(b[1:], e.gz)
	return b
}

func unmarshalEntry(b []byte) (*entry, error) {
	if len(b) == 0 || b[0] != entryVersion {
		return nil, errors.New("tiles: bad cached tile")
	}
	var gz []byte
	if len(b) > 1 {
		gz = b[1:]
	}
	return newEntry(gz), nil
}

// brotli returns the tile brotli-compressed, computing it once.
func (e *entry) brotli() ([]byte, error) {
	if p := e.br.Load(); p != nil {
		return *p, nil
	}
	raw, err := render.Gunzip(e.gz)
	if err != nil {
		return nil, err
	}
	br := fasthttp.AppendBrotliBytesLevel(nil, raw, fasthttp.CompressBrotliDefaultCompression)
	e.br.Store(&br)
	return br, nil
}
