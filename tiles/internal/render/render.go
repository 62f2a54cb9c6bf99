// Package render runs a source's tile statement (built by package mvt) on
// PostGIS and keeps the result under a byte budget: when the gzipped tile
// is larger than the budget it renders again one level of detail coarser
// (points on a grid twice as coarse, lines and polygons simplified twice as
// much and capped at half as many features), up to MaxLOD. The budget is
// measured on the compressed bytes because that is what travels and what
// the caches hold.
//
// Table sources run as a single statement bounded by the context's
// deadline (pgx cancels the backend query when the context ends). Query
// sources, whose SQL comes from the client, run in a READ ONLY transaction
// with a server-side statement_timeout as well.
package render

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/klauspost/compress/gzip"

	"github.com/meridian-gis/meridian/internal/tile"
)

// DB is what rendering needs from a data connection's pool.
type DB interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error)
}

// Options bound one render.
type Options struct {
	// Budget is the largest gzipped tile accepted before coarsening;
	// 0: no budget.
	Budget int
	// MaxLOD is the coarsest level of detail tried. Default 0 means 4 when
	// Budget is set.
	MaxLOD int
	// ReadOnlyTx runs the statement in a READ ONLY transaction with
	// StatementTimeout (for client-written SQL).
	ReadOnlyTx bool
	// StatementTimeout is the server-side limit inside that transaction.
	// Default: the context's remaining time, or 30s.
	StatementTimeout time.Duration
}

// Tile is a rendered tile.
type Tile struct {
	// MVT is the uncompressed tile; empty when no feature.
	MVT []byte
	// Gzip is MVT gzipped; empty when MVT is.
	Gzip []byte
	// Kept is the number of features in the tile; Total the number that
	// qualified before the feature cap (Total-Kept were dropped).
	Kept, Total int64
	// LOD is the level of detail used (0 = full).
	LOD int
}

// Render renders tile c of the statement sql, binding args first and then
// z, x, y and the level of detail.
func Render(ctx context.Context, db DB, sql string, args []any, c tile.Coord, o Options) (Tile, error) {
	if o.Budget > 0 && o.MaxLOD <= 0 {
		o.MaxLOD = 4
	}
	all := make([]any, len(args), len(args)+4)
	copy(all, args)
	all = append(all, int32(c.Z), int32(c.X), int32(c.Y), int32(0))
	for lod := 0; ; lod++ {
		all[len(all)-1] = int32(lod)
		t, err := run(ctx, db, sql, all, o)
		if err != nil {
			return Tile{}, err
		}
		t.LOD = lod
		if len(t.MVT) > 0 {
			t.Gzip = Gzip(t.MVT)
		}
		if o.Budget <= 0 || len(t.Gzip) <= o.Budget || lod >= o.MaxLOD {
			return t, nil
		}
	}
}

func run(ctx context.Context, db DB, sql string, args []any, o Options) (Tile, error) {
	var t Tile
	if !o.ReadOnlyTx {
		if err := db.QueryRow(ctx, sql, args...).Scan(&t.MVT, &t.Kept, &t.Total); err != nil {
			return Tile{}, fmt.Errorf("rendering tile: %w", err)
		}
		return t, nil
	}
	tx, err := db.BeginTx(ctx, pgx.TxOptions{BeginQuery: BeginReadOnly(ctx, o.StatementTimeout)})
	if err != nil {
		return Tile{}, fmt.Errorf("starting read-only transaction: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if err := tx.QueryRow(ctx, sql, args...).Scan(&t.MVT, &t.Kept, &t.Total); err != nil {
		return Tile{}, fmt.Errorf("rendering tile: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return Tile{}, fmt.Errorf("committing read-only transaction: %w", err)
	}
	return t, nil
}

// BeginReadOnly returns the statement opening a READ ONLY transaction with
// a statement_timeout of d, or of ctx's remaining time when d is 0 (30s
// without a deadline). It runs in one round trip.
func BeginReadOnly(ctx context.Context, d time.Duration) string {
	if d <= 0 {
		d = 30 * time.Second
		if dl, ok := ctx.Deadline(); ok {
			d = time.Until(dl)
		}
	}
	ms := max(d.Milliseconds(), 1)
	return "BEGIN READ ONLY; SET LOCAL statement_timeout = " + strconv.FormatInt(ms, 10)
}

var gzPool = sync.Pool{New: func() any {
	w, _ := gzip.NewWriterLevel(nil, gzip.DefaultCompression)
	return w
}}

// Gzip compresses b.
func Gzip(b []byte) []byte {
	var buf bytes.Buffer
	buf.Grow(len(b)/3 + 64)
	w := gzPool.Get().(*gzip.Writer)
	w.Reset(&buf)
	w.Write(b)
	w.Close()
	gzPool.Put(w)
	return buf.Bytes()
}

// Gunzip decompresses b.
func Gunzip(b []byte) ([]byte, error) {
	r, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("gunzip: %w", err)
	}
	var out bytes.Buffer
	if _, err := out.ReadFrom(r); err != nil {
		return nil, fmt.Errorf("gunzip: %w", err)
	}
	return out.Bytes(), nil
}
