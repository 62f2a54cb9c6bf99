package engine

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/meridian-gis/meridian/internal/tile"
	"github.com/meridian-gis/meridian/tiles/internal/overview"
)

// warmStatement loads what a PostgreSQL backend loads on its first tile:
// the PostGIS library, PROJ (ST_Transform) and the MVT encoder. A fresh
// backend pays tens of milliseconds for it.
const warmStatement = `SELECT ST_AsMVT(t) FROM (SELECT ST_AsMVTGeom(ST_Transform(ST_SetSRID(ST_MakePoint(0, 0), 4326), 3857),
	ST_TileEnvelope(0, 0, 0)) AS geom) t`

// warmTimeout bounds a warm-up.
const warmTimeout = 30 * time.Second

// warmPool readies the pool of src's connection for tiles, once per pool,
// in the background: it opens the pool's connections at once (instead of
// one by one under the first tiles), loads PostGIS in each backend, and
// prepares src's tile statements on each (table and overview), so that a
// freshly started node does not pay for them on its first tiles.
func (e *Engine) warmPool(src *Source) {
	ctx, cancel := context.WithTimeout(e.base, warmTimeout)
	pool, err := e.pool(ctx, src.Spec.Conn)
	if err != nil {
		cancel()
		return
	}
	e.mu.Lock()
	if e.warmed == nil {
		e.warmed = map[*pgxpool.Pool]bool{}
	}
	done := e.warmed[pool]
	e.warmed[pool] = true
	e.mu.Unlock()
	if done {
		cancel()
		return
	}
	stmts := []string{src.SQL}
	if st := e.statement(src, tile.Coord{}); st.overview {
		if ov := src.ov.Load(); ov != nil {
			stmts = ov.sql
		}
		stmts = append(stmts, src.SQL)
	}
	go func() {
		defer cancel()
		start := time.Now()
		opened, _ := onEachConn(ctx, pool, func(c *pgxpool.Conn) error {
			if _, err := c.Exec(ctx, warmStatement); err != nil {
				return err // no PostGIS here: tiles will say so
			}
			for _, sql := range stmts {
				if _, err := c.Conn().Prepare(ctx, sql, sql); err != nil {
					return err
				}
			}
			return nil
		})
		e.log.Debug("data connection warmed", "conn", src.Spec.Conn, "connections", opened,
			"statements", len(stmts), "seconds", time.Since(start).Seconds())
	}()
}

// onEachConn acquires all of pool's connections at once (at most 32), so
// that each is a different backend, runs fn on each, releases them and
// returns on how many fn succeeded and the first error.
func onEachConn(ctx context.Context, pool *pgxpool.Pool, fn func(*pgxpool.Conn) error) (int, error) {
	n := int(min(pool.Config().MaxConns, 32))
	conns := make([]*pgxpool.Conn, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := pool.Acquire(ctx)
			if err != nil {
				errs[i] = err
				return
			}
			conns[i] = c
			errs[i] = fn(c)
		}()
	}
	wg.Wait()
	ok := 0
	var first error
	for i, c := range conns {
		if c != nil {
			c.Release()
		}
		if errs[i] == nil {
			ok++
		} else if first == nil {
			first = errs[i]
		}
	}
	return ok, first
}

// WarmUp readies this node's pools before it takes traffic. For each data
// connection of conns whose database holds overview copies (the mark of
// tables served a lot), it opens the pool's connections at once, loads
// PostGIS and PROJ in each backend and plans a read of every copy and its
// table there (overview.WarmStatements), so that a restarted or newly
// scaled node renders its first tiles as fast as a warm one. Connections
// without copies stay as they are, opened on first use. It returns the
// backends it readied; a connection it cannot warm is logged and skipped
// (its tiles will say what is wrong). ctx bounds the whole warm-up.
func (e *Engine) WarmUp(ctx context.Context, conns []string) int {
	warmed := 0
	for _, conn := range conns {
		if ctx.Err() != nil {
			break
		}
		n, err := e.warmConn(ctx, conn)
		if err != nil {
			e.log.Warn("warming a data connection", "conn", conn, "err", err)
		}
		warmed += n
	}
	return warmed
}

// warmConn is WarmUp for one connection.
func (e *Engine) warmConn(ctx context.Context, conn string) (int, error) {
	if e.overviews == nil {
		return 0, nil // tiles read the tables: nothing is known to be hot
	}
	start := time.Now()
	pool, err := e.pool(ctx, conn)
	if err != nil {
		return 0, err
	}
	stmts, err := overview.WarmStatements(ctx, pool)
	if err != nil || len(stmts) == 0 {
		return 0, err
	}
	warmed, err := onEachConn(ctx, pool, func(c *pgxpool.Conn) error {
		if _, err := c.Exec(ctx, warmStatement); err != nil {
			return fmt.Errorf("loading PostGIS: %w", err)
		}
		for _, sql := range stmts {
			if _, err := c.Exec(ctx, sql); err != nil {
				return fmt.Errorf("planning a read of an overview copy: %w", err)
			}
		}
		return nil
	})
	e.metrics.warmBackends.Add(float64(warmed))
	e.log.Info("data connection warmed", "conn", conn, "backends", warmed, "statements", len(stmts),
		"seconds", time.Since(start).Seconds())
	return warmed, err
}
