package scenarios

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/meridian-gis/meridian/bench"
	"github.com/meridian-gis/meridian/bench/load"
	"github.com/meridian-gis/meridian/control"
	"github.com/meridian-gis/meridian/internal/identity"
	"github.com/meridian-gis/meridian/internal/pgdb"
)

// signInConfig is the sign-in setup, recorded in the report.
type signInConfig struct {
	// Clients sign in concurrently, each in a loop.
	Clients int `json:"clients"`
	// LoadConnections pull a tile-sized body from a fasthttp server during
	// the under-load variant (the warm tile path's shape: bytes from memory).
	LoadConnections int    `json:"load_connections"`
	TileBytes       int    `json:"tile_bytes"`
	Argon2          string `json:"argon2"`
}

// signIn measures password sign-in (argon2id verification, session
// creation, audit) through the real control plane on a scratch cluster,
// alone and while a tile load keeps the 2 cores busy. Issue 9's target:
// p99 under 250 ms under load.
type signIn struct {
	cfg    signInConfig
	env    *bench.Env
	url    string
	body   []byte
	tile   string
	client *http.Client
}

func newSignIn() bench.Scenario {
	return &signIn{cfg: signInConfig{Clients: 2, LoadConnections: 8, TileBytes: 30 << 10, Argon2: "argon2id t=2 m=32MiB p=2"}}
}

func (s *signIn) Info() bench.Info {
	return bench.Info{
		Name: "signin",
		Description: fmt.Sprintf("POST /accounts-api/login (%s) from %d looping clients through the control plane, alone and while "+
			"%d connections pull %d KiB tiles from a fasthttp server on the same cores.", s.cfg.Argon2, s.cfg.Clients, s.cfg.LoadConnections, s.cfg.TileBytes>>10),
		Variants: []string{"alone", "under-tile-load"},
		Targets:  []bench.Target{{Variant: "under-tile-load", Metric: "p99", Max: 250}},
		Config:   s.cfg,
	}
}

func (s *signIn) Setup(ctx context.Context, env *bench.Env) (_ bench.Teardown, err error) {
	s.env = env
	var stop cleanup
	teardown := func(ctx context.Context) error { return stop.run(ctx) }
	cluster, err := startScratchCluster(ctx, env, &stop)
	if err != nil {
		return teardown, err
	}
	admin, err := pgx.Connect(ctx, cluster.SuperuserURL("postgres"))
	if err == nil {
		_, err = admin.Exec(ctx, "CREATE DATABASE bench_signin")
		admin.Close(ctx)
	}
	if err != nil {
		return teardown, err
	}
	log := slog.New(slog.DiscardHandler)
	pool, err := pgdb.NewPool(ctx, cluster.SuperuserURL("bench_signin"), pgdb.PoolConfig{MaxConns: 8}, log)
	if err != nil {
		return teardown, err
	}
	stop.add(func(context.Context) error { pool.Close(); return nil })
	if _, err := pgdb.Migrate(ctx, pool); err != nil {
		return teardown, err
	}
	const email, password = "bench@example.test", "a long enough bench password"
	hash, err := identity.HashPassword(ctx, password)
	if err != nil {
		return teardown, err
	}
	if _, err := pool.Exec(ctx, `INSERT INTO users (org_id, email, role, password_hash) VALUES ('default', $1, 'editor', $2)`, email, hash); err != nil {
		return teardown, err
	}
	addr, err := freeAddr()
	if err != nil {
		return teardown, err
	}
	cfg := control.Config{Addr: addr}
	// The bench signs in thousands of times from one address: no throttle.
	cfg.Accounts.MaxFailuresPerAccount, cfg.Accounts.MaxFailuresPerIP = 1<<30, 1<<30
	srv, err := control.New(cfg, control.Deps{Log: log, Meta: pool, Version: "bench"})
	if err != nil {
		return teardown, err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(runCtx) }()
	stop.add(func(context.Context) error { cancel(); return <-done })
	s.url = "http://" + addr + "/accounts-api/login"
	s.body = []byte(fmt.Sprintf(`{"email":%q,"password":%q}`, email, password))
	s.client = &http.Client{Timeout: 10 * time.Second}
	for i := 0; ; i++ {
		if _, err := s.signInOnce(ctx); err == nil {
			break
		} else if i == 100 {
			return teardown, fmt.Errorf("control did not answer sign-ins: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	tile, err := startFastHTTP(tileBody(s.cfg.TileBytes))
	if err != nil {
		return teardown, err
	}
	stop.add(tile.Stop)
	s.tile = tile.URL
	return teardown, nil
}

func (s *signIn) signInOnce(ctx context.Context) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", s.url, bytes.NewReader(s.body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	res, err := s.client.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("sign-in answered %s", res.Status)
	}
	return time.Since(start), nil
}

func (s *signIn) Run(ctx context.Context, variant string) (bench.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, s.env.Duration)
	defer cancel()
	var tiles chan load.Result
	if variant == "under-tile-load" {
		tiles = make(chan load.Result, 1)
		go func() {
			r, _ := load.HTTP{URLs: []string{s.tile}, Concurrency: s.cfg.LoadConnections, Duration: s.env.Duration}.Run(context.WithoutCancel(ctx))
			tiles <- r
		}()
	} else if variant != "alone" {
		return bench.Result{}, errors.New("unknown variant " + variant)
	}
	var mu sync.Mutex
	hist := &load.Histogram{}
	var firstErr error
	var wg sync.WaitGroup
	for range s.cfg.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				d, err := s.signInOnce(ctx)
				mu.Lock()
				if err != nil && ctx.Err() == nil && firstErr == nil {
					firstErr = err
				} else if err == nil {
					hist.Record(d)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return bench.Result{}, firstErr
	}
	if hist.Count() == 0 {
		return bench.Result{}, errors.New("no sign-in completed")
	}
	res := bench.Result{
		Primary: latencyMetric("p99", hist.Quantile(0.99).Seconds()),
		Secondary: []bench.Metric{
			latencyMetric("p50", hist.Quantile(0.50).Seconds()),
			{Name: "sign-ins", Unit: "1/s", Better: bench.HigherIsBetter, Value: float64(hist.Count()) / s.env.Duration.Seconds()},
		},
	}
	if tiles != nil {
		r := <-tiles
		res.Secondary = append(res.Secondary, bench.Metric{Name: "tiles", Unit: unitReqPerSec, Better: bench.HigherIsBetter, Value: r.Throughput()})
	}
	return res, nil
}
