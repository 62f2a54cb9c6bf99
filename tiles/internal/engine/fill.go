package engine

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/golang/groupcache"

	"github.com/meridian-gis/meridian/internal/tile"
	"github.com/meridian-gis/meridian/tiles/internal/render"
	"github.com/meridian-gis/meridian/tiles/internal/source"
)

// tileKey identifies a finished tile in the in-process cache.
type tileKey struct {
	id  string // source ID
	gen uint64
	c   tile.Coord
}

// groupKey renders the groupcache key of tk:
// mvt/<gen>/<z>/<x>/<y>/<source key>. It is self-contained: the owner
// node rebuilds the source from it (parseGroupKey), so nothing travels
// beside the key.
func groupKey(src *Source, tk tileKey) string {
	b := make([]byte, 0, 48+len(src.Key))
	b = append(b, "mvt/"...)
	b = strconv.AppendUint(b, tk.gen, 10)
	b = append(b, '/')
	b = tk.c.AppendText(b)
	b = append(b, '/')
	b = append(b, src.Key...)
	return string(b)
}

// parseGroupKey finds the source and tile of a groupcache key.
func (e *Engine) parseGroupKey(ctx context.Context, s string) (*Source, tileKey, error) {
	bad := func(err error) (*Source, tileKey, error) {
		return nil, tileKey{}, fmt.Errorf("engine: bad cache key %.80q: %w", s, err)
	}
	rest, ok := strings.CutPrefix(s, "mvt/")
	if !ok {
		return bad(errors.New("no mvt/ prefix"))
	}
	genS, rest, _ := strings.Cut(rest, "/")
	gen, err := strconv.ParseUint(genS, 10, 64)
	if err != nil {
		return bad(err)
	}
	i := 0
	for range 3 {
		j := strings.IndexByte(rest[i:], '/')
		if j < 0 {
			return bad(errors.New("no source key"))
		}
		i += j + 1
	}
	c, err := tile.Parse(rest[:i-1])
	if err != nil {
		return bad(err)
	}
	src, err := e.SourceByKey(ctx, rest[i:])
	if err != nil {
		return nil, tileKey{}, err
	}
	return src, tileKey{id: src.ID, gen: gen, c: c}, nil
}

// Cached returns tile co of src from the in-process cache, without
// allocating.
func (e *Engine) Cached(src *Source, co tile.Coord) (*Tile, bool) {
	t, ok := e.cache.Get(tileKey{id: src.ID, gen: src.Gen, c: co})
	if ok {
		e.metrics.cacheHit.Inc()
	}
	return t, ok
}

// Tile returns tile co of src: from the in-process cache, else through
// one shared fill (the groupcache owner with peers, a local render
// otherwise). It returns ctx's error when ctx ends first; the fill goes on
// while other requests wait for it (see fill).
func (e *Engine) Tile(ctx context.Context, src *Source, co tile.Coord) (*Tile, error) {
	return e.fetch(ctx, src, tileKey{id: src.ID, gen: src.Gen, c: co})
}

func (e *Engine) fetch(ctx context.Context, src *Source, tk tileKey) (*Tile, error) {
	if t, ok := e.cache.Get(tk); ok {
		e.metrics.cacheHit.Inc()
		return t, nil
	}
	e.metrics.cacheMiss.Inc()
	t, err, shared := e.fills.Do(ctx, tk, func(ctx context.Context) (*Tile, error) {
		return e.fill(ctx, src, tk, e.load)
	})
	if shared {
		e.metrics.fillShared.Inc()
	}
	return t, err
}

// fill makes the tile of tk for every request waiting on it and caches
// it. It runs detached from those requests, bounded by its own timeout
// and by the engine's lifetime, and e.fills cancels it when the last of
// them has gone: its deadline passed, or its client hung up.
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
func (e *Engine) fill(ctx context.Context, src *Source, tk tileKey,
	produce func(context.Context, *Source, tileKey) (*Tile, error)) (*Tile, error) {
	ctx, cancel := context.WithTimeout(ctx, e.fillTimeout())
	defer cancel()
	defer context.AfterFunc(e.base, cancel)()
	t, err := produce(ctx, src, tk)
	if err != nil {
		if errors.Is(ctx.Err(), context.Canceled) && e.base.Err() == nil {
			e.metrics.fillsAbandoned.Inc()
			e.log.Debug("tile fill cancelled: no request waits for it any more", "source", tk.id, "tile", tk.c.String())
		}
		return nil, err
	}
	e.cache.Put(tk, t, t.size())
	return t, nil
}

// load gets the tile of tk from groupcache (with peers) or renders it.
func (e *Engine) load(ctx context.Context, src *Source, tk tileKey) (*Tile, error) {
	if e.group == nil {
		return e.render(ctx, src, tk.c)
	}
	gkey := groupKey(src, tk)
	var b []byte
	err := e.group.Get(ctx, gkey, groupcache.AllocatingByteSliceSink(&b))
	if err != nil && errors.Is(err, context.Canceled) && ctx.Err() == nil {
		// groupcache runs concurrent loads of a key once, under the first
		// caller's context: this fill joined the load of a fill that was
		// cancelled a moment ago (e.fills had already let it go). Load
		// again.
		b = nil
		err = e.group.Get(ctx, gkey, groupcache.AllocatingByteSliceSink(&b))
	}
	if err != nil {
		return nil, err
	}
	return unmarshalTile(b)
}

func (e *Engine) fillTimeout() time.Duration {
	if e.group != nil {
		return e.cfg.Peers.FillTimeout
	}
	return e.cfg.TileTimeout
}

// groupFill is the groupcache Getter: this node owns the key.
func (e *Engine) groupFill(ctx context.Context, key string, dest groupcache.Sink) error {
	src, tk, err := e.parseGroupKey(ctx, key)
	if err != nil {
		return err
	}
	t, err := e.render(ctx, src, tk.c)
	if err != nil {
		return err
	}
	return dest.SetBytes(t.marshal())
}

// render renders tile co of src on its data connection.
func (e *Engine) render(ctx context.Context, src *Source, co tile.Coord) (*Tile, error) {
	pool, err := e.pool(ctx, src.Spec.Conn)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	opts := render.Options{
		Budget:     e.cfg.TileBudget,
		MaxLOD:     e.cfg.MaxLOD,
		ReadOnlyTx: src.ReadOnlyTx,
	}
	st := e.statement(src, co)
	rt, err := render.Render(ctx, pool, st.sql, src.Args, co, opts)
	if err != nil && st.overview && isUndefinedTable(err) {
		// Dropped by a node that built a newer one: the table itself.
		e.overviews.Forget(st.table)
		st = statement{sql: src.SQL}
		rt, err = render.Render(ctx, pool, st.sql, src.Args, co, opts)
	}
	if err != nil {
		if src.ReadOnlyTx && ctx.Err() == nil {
			return nil, &source.QueryError{Err: err}
		}
		return nil, err
	}
	if st.overview {
		e.metrics.overviewTiles.Inc()
	}
	e.metrics.renderSeconds.Observe(time.Since(start).Seconds())
	e.metrics.renderBytes.Observe(float64(len(rt.Gzip)))
	if rt.LOD > 0 {
		e.metrics.coarsened.Inc()
	}
	return NewTile(rt.Gzip), nil
}
