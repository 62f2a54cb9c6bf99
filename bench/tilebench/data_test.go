package tilebench

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/meridian-gis/meridian/bench/peers"
	"github.com/meridian-gis/meridian/internal/pgdb/pgtest"
	"github.com/meridian-gis/meridian/internal/tile"
)

func TestLoadUnknownDataset(t *testing.T) {
	err := Load(context.Background(), "postgres://127.0.0.1:1/x", t.TempDir(), Dataset{Name: "nope"})
	if err == nil || !strings.Contains(err.Error(), "unknown dataset") {
		t.Errorf("Load(unknown) = %v, want an unknown dataset error", err)
	}
}

// Both datasets load with their row counts and the columns tiles carry,
// and the Martin-style statement renders a small list through a pool:
// every tile answered, the world tile full, ocean tiles empty.
func TestLoadAndRenderAll(t *testing.T) {
	admin := pgtest.AdminURL(t)
	if _, err := LookOGR(); err != nil {
		t.Skip(err)
	}
	root, err := peers.ModuleRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := DataDir(root)
	if err != nil {
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	name := "tilebench_" + strings.ToLower(strings.ReplaceAll(time.Now().Format("150405.000000"), ".", "_"))
	dbURL, err := CreateDatabase(ctx, admin, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), admin)
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	if _, err := CreateDatabase(ctx, admin, name); err == nil {
		t.Error("CreateDatabase twice = nil error, want already exists")
	}

	list := []tile.Coord{{Z: 0}, {Z: 1, X: 0, Y: 0}, {Z: 2, X: 1, Y: 1}, {Z: 3, X: 0, Y: 4}, // ocean south-west of Africa… and the Pacific
		tile.At(2.35, 48.85, 8), tile.At(-160, -40, 6)}
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	for _, d := range []Dataset{Admin1(), Postal()} {
		t.Run(d.Name, func(t *testing.T) {
			if err := Load(ctx, dbURL, dir, d); err != nil {
				t.Fatal(err)
			}
			for _, col := range d.Columns {
				var n int64
				q := "SELECT count(" + pgx.Identifier{col}.Sanitize() + ") FROM " + pgx.Identifier{d.Table}.Sanitize()
				if err := pool.QueryRow(ctx, q).Scan(&n); err != nil || n == 0 {
					t.Errorf("column %s: %d non-null values, %v; want some", col, n, err)
				}
			}
			q, err := LayerOf(d).SQL()
			if err != nil {
				t.Fatal(err)
			}
			res, err := RenderAll(ctx, pool, q, list, 3)
			if err != nil {
				t.Fatal(err)
			}
			if res.Tiles != len(list) || res.Errors != 0 || res.Latency.Count() != uint64(len(list)) {
				t.Errorf("RenderAll = %d tiles, %d errors (%s), %d latencies; want %d, 0, %d",
					res.Tiles, res.Errors, res.FirstError, res.Latency.Count(), len(list), len(list))
			}
			if res.Empty == 0 || res.Empty == len(list) || res.Bytes < 10000 {
				t.Errorf("RenderAll: %d empty tiles, %d bytes; want some empty (ocean), some full (the world)", res.Empty, res.Bytes)
			}
			bad, err := RenderAll(ctx, pool, "SELECT ($1::int + $2::int + $3::int / 0)::text::bytea", list[:2], 2)
			if err != nil || bad.Errors != 2 || !strings.Contains(bad.FirstError, "division by zero") {
				t.Errorf("RenderAll(failing SQL) = %d errors (%q), %v; want 2 counted", bad.Errors, bad.FirstError, err)
			}
		})
	}
}
