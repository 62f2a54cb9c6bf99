package tilebench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/meridian-gis/meridian/bench/load"
	"github.com/meridian-gis/meridian/internal/tile"
)

// RenderResult is what one RenderAll run measured.
type RenderResult struct {
	// Tiles counts the tiles rendered (empty ones included).
	Tiles int
	// Empty counts the tiles without a feature.
	Empty int
	// Bytes is the total size of the MVT bodies (uncompressed).
	Bytes int64
	// Errors counts the tiles whose query failed; FirstError is the first.
	Errors     int
	FirstError string
	// Elapsed is the wall time from the start to the last answer.
	Elapsed time.Duration
	// Latency holds the latency of every rendered tile.
	Latency *load.Histogram
}

// Throughput returns tiles per second.
func (r RenderResult) Throughput() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Tiles) / r.Elapsed.Seconds()
}

// RenderAll renders every tile of list once with sql (as built by
// Layer.SQL: $1..$3 = z, x, y) through pool, from concurrency workers that
// take the next tile of the list as they finish one. pgx prepares the
// statement once per connection and reuses it. A failed tile is counted,
// not fatal; the run stops early only when ctx ends, which is an error.
func RenderAll(ctx context.Context, pool *pgxpool.Pool, sql string, list []tile.Coord, concurrency int) (RenderResult, error) {
	if concurrency < 1 {
		return RenderResult{}, errors.New("rendering tiles: concurrency must be positive")
	}
	type worker struct {
		hist         load.Histogram
		tiles, empty int
		bytes        int64
		errors       int
		firstErr     error
		last         time.Time
	}
	var next atomic.Int64
	workers := make([]*worker, concurrency)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range workers {
		w := &worker{}
		workers[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			var body []byte
			for ctx.Err() == nil {
				k := int(next.Add(1) - 1)
				if k >= len(list) {
					return
				}
				c := list[k]
				t0 := time.Now()
				err := pool.QueryRow(ctx, sql, int32(c.Z), int32(c.X), int32(c.Y)).Scan(&body)
				now := time.Now()
				w.last = now
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					w.errors++
					if w.firstErr == nil {
						w.firstErr = fmt.Errorf("tile %s: %w", c, err)
					}
					continue
				}
				w.hist.Record(now.Sub(t0))
				w.tiles++
				w.bytes += int64(len(body))
				if len(body) == 0 {
					w.empty++
				}
			}
		}()
	}
	wg.Wait()
	res := RenderResult{Latency: &load.Histogram{}}
	var last time.Time
	for _, w := range workers {
		res.Latency.Merge(&w.hist)
		res.Tiles += w.tiles
		res.Empty += w.empty
		res.Bytes += w.bytes
		res.Errors += w.errors
		if res.FirstError == "" && w.firstErr != nil {
			res.FirstError = w.firstErr.Error()
		}
		if w.last.After(last) {
			last = w.last
		}
	}
	if last.IsZero() {
		last = time.Now()
	}
	res.Elapsed = last.Sub(start)
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("rendering tiles: stopped after %d of %d: %w", res.Tiles+res.Errors, len(list), err)
	}
	return res, nil
}
