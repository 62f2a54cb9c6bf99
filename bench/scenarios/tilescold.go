package scenarios

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/meridian-gis/meridian/bench"
	"github.com/meridian-gis/meridian/bench/load"
	"github.com/meridian-gis/meridian/bench/peers"
	"github.com/meridian-gis/meridian/bench/tilebench"
	"github.com/meridian-gis/meridian/internal/pgcluster"
	"github.com/meridian-gis/meridian/internal/secret"
	"github.com/meridian-gis/meridian/internal/tile"
)

// Figures of pg_tileserv 1.0.11 on the ANCHORS.md tile list (tiles/s),
// re-measured side by side with fresh Meridian processes on the same
// database (ANCHORS.md, 2026-12-05): the peer of the "5× / 8× pg_tileserv"
// targets. pg_tileserv itself cannot run here: no package provides it.
const (
	pgTileservAdmin1 = 141
	pgTileservPostal = 27
)

// Issue 12's cold-tile targets: multiples of pg_tileserv per dataset, and
// of the raw-pgx floor measured in the same run.
const (
	timesPgTileservAdmin1 = 5
	timesPgTileservPostal = 8
	timesRawPgx           = 1.5
)

// noOverviews suffixes the variant that renders polygons from their table
// (MERIDIAN_TILES_OVERVIEWS_OFF) instead of the overview built in Setup.
const noOverviews = "-no-overviews"

// tilesConn is the data connection name the scenarios register.
const tilesConn = "local"

// tilesSetupTimeout bounds the setup of the scenarios that load datasets
// (setupTiles): the binary's build, 1.2 M postal codes and the overview
// builds take minutes on a busy machine.
const tilesSetupTimeout = 20 * time.Minute

// tileFetchTimeout bounds one cold tile request (the z0 tiles of the
// postal codes take seconds).
const tileFetchTimeout = time.Minute

// tilesColdConfig is the tiles-cold setup, recorded in the report.
type tilesColdConfig struct {
	Tiles        int                 `json:"tiles"`
	TilesPerZoom []int               `json:"tiles_per_zoom,omitempty"`
	Seed         uint64              `json:"seed"`
	Concurrency  int                 `json:"concurrency"`
	Datasets     []tilebench.Dataset `json:"datasets"`
	// RawSQL is the statement of each raw-pgx variant.
	RawSQL map[string]string `json:"raw_pgx_sql,omitempty"`
	// Meridian says how the meridian variants run.
	Meridian string `json:"meridian"`
	// Headers are sent with every meridian tile request.
	Headers []string `json:"meridian_headers"`
	// PgTileserv says why pg_tileserv is not a variant.
	PgTileserv string `json:"pg_tileserv"`
	// Anchors are the peer figures of ANCHORS.md on the same list.
	Anchors map[string]string `json:"anchors"`
	PostGIS string            `json:"postgis,omitempty"`
	// SetupSeconds times the steps of Setup.
	SetupSeconds map[string]float64 `json:"setup_seconds,omitempty"`

	// maxTiles cuts the list (tests). Zero: the whole list.
	maxTiles int
}

// tilesCold is issue 3's cold-tile target: the ANCHORS.md tile list
// (2,038 tiles, every one requested once per run, concurrency 8) rendered
// by the real `meridian tiles` process, fresh for every run so that its
// tile cache cannot answer, against the floor of one prepared Martin-style
// statement run through pgx from the bench process, on NE admin-1 polygons
// and on GeoNames postal code points in a private PostGIS cluster.
type tilesCold struct {
	cfg      tilesColdConfig
	env      *bench.Env
	list     []tile.Coord
	m        tilebench.Meridian
	token    string
	dataURL  string
	datasets map[string]tilebench.Dataset // variant → dataset
}

func newTilesCold() bench.Scenario {
	return &tilesCold{cfg: tilesColdConfig{
		Seed:        tilebench.ListSeed,
		Tiles:       tilebench.AnchorsListLen,
		Concurrency: 8,
		Datasets:    []tilebench.Dataset{tilebench.Admin1(), tilebench.Postal()},
		Meridian: "a fresh `meridian tiles` process per run (start, /readyz and source instantiation " +
			"excluded from the timing); the run checks its in-process cache served no hit",
		Headers: []string{"Authorization: Bearer <token>", "Accept-Encoding: gzip"},
		PgTileserv: "not a variant: not installable here (`apt-cache policy pg-tileserv` knows no such " +
			"package); its ANCHORS.md figures are the absolute targets",
		Anchors: map[string]string{
			"pg_tileserv 1.0.11":               "admin1 181 tiles/s (p99 0.40 s), postal 73 tiles/s (p99 2.3 s)",
			"pg_tileserv 1.0.11, side by side": "admin1 134–146 tiles/s, postal 26–29 tiles/s (fresh Meridian processes on the same database: 469–479 and 140–158)",
			"tegola (mvt_postgis)":             "admin1 143 tiles/s (p99 0.35 s), postal 94 tiles/s (p99 1.8 s)",
			"raw pgx, Martin-style, no gzip":   "admin1 162 tiles/s, postal 305 tiles/s",
		},
	}}
}

func (s *tilesCold) Info() bench.Info {
	var variants []string
	var targets []bench.Target
	for _, d := range s.cfg.Datasets {
		m, raw := "meridian-"+d.Name, "raw-pgx-"+d.Name
		variants = append(variants, raw, m, m+noOverviews)
		targets = append(targets, bench.Target{Ratio: m + "/" + raw, Min: timesRawPgx})
		times, peer := timesPgTileservAdmin1, pgTileservAdmin1
		if d.Name == "postal" {
			times, peer = timesPgTileservPostal, pgTileservPostal
		}
		targets = append(targets, bench.Target{Variant: m, Min: float64(times * peer),
			Name: fmt.Sprintf("%s ≥ %d × pg_tileserv (%d tiles/s, ANCHORS.md)", m, times, peer)})
	}
	return bench.Info{
		SetupTimeout: tilesSetupTimeout,
		Name:         "tiles-cold",
		Description: fmt.Sprintf("Cold tiles/s on the ANCHORS.md list (%d tiles: all z0–4 plus z5–12 around the "+
			"243 NE 110m places, shuffled with seed %d, each requested once per run, concurrency %d), on NE 10m "+
			"admin-1 (name, admin, iso_3166_2) and GeoNames postal codes (zipcode, place) in a private PostGIS. "+
			"meridian-*: the `meridian tiles` process, a fresh one per run (cold cache), stateless tile URL, "+
			"gzip accepted (bytes are gzip). raw-pgx-*: the floor, one prepared Martin-style statement "+
			"(`&&` ST_TileEnvelope margin, ST_AsMVTGeom, LIMIT %d, no gzip) through pgx from the bench process. "+
			"The engine does more per tile (simplification, budgets, point aggregation, gzip): that is what "+
			"the ratio bounds. meridian-* render from the overviews the engine builds the first time it "+
			"renders a large table (admin-1: simplified per zoom and cut in pieces; postal codes: the "+
			"aggregation grid of every level to z8; Setup waits for them, their build time is "+
			"setup_seconds.overviews); meridian-*"+noOverviews+" render from the tables. Peers (ANCHORS.md, not run here): pg_tileserv 141 / 27 tiles/s re-measured side by side (181 / 73 first), "+
			"raw pgx 162 / 305 tiles/s (admin-1 / postal).",
			s.cfg.Tiles, s.cfg.Seed, s.cfg.Concurrency, tilebench.DefaultLimit),
		Variants: variants,
		Targets:  targets,
		Config:   s.cfg,
	}
}

func (s *tilesCold) Setup(ctx context.Context, env *bench.Env) (bench.Teardown, error) {
	s.env = env
	var stop cleanup
	teardown := func(ctx context.Context) error { return stop.run(ctx) }
	ts, err := setupTiles(ctx, env, s.cfg.Datasets, &stop)
	if err != nil {
		return teardown, err
	}
	s.m, s.token, s.dataURL = ts.m, ts.token, ts.dataURL
	s.cfg.SetupSeconds, s.cfg.PostGIS = ts.seconds, ts.postgis
	if _, err := exec.LookPath("pg_tileserv"); err == nil {
		s.cfg.PgTileserv = "installed, but not a variant yet; its ANCHORS.md figures are the absolute targets"
	}
	s.list = ts.list
	if s.cfg.maxTiles > 0 && len(s.list) > s.cfg.maxTiles {
		s.list = s.list[:s.cfg.maxTiles]
	}
	s.cfg.Tiles, s.cfg.TilesPerZoom = len(s.list), tilebench.ZoomCounts(s.list)
	s.cfg.RawSQL = map[string]string{}
	s.datasets = map[string]tilebench.Dataset{}
	for _, d := range s.cfg.Datasets {
		q, err := tilebench.LayerOf(d).SQL()
		if err != nil {
			return teardown, err
		}
		s.cfg.RawSQL["raw-pgx-"+d.Name] = q
		s.datasets["raw-pgx-"+d.Name], s.datasets["meridian-"+d.Name] = d, d
		s.datasets["meridian-"+d.Name+noOverviews] = d
	}
	// One meridian process serves one tile of each dataset before any
	// measurement: a wrong setup fails here, with its message.
	return teardown, s.check(ctx)
}

// check starts a meridian process, fetches tile 2/1/1 of each dataset and
// stops the process.
func (s *tilesCold) check(ctx context.Context) (err error) {
	// The first tile renders from the table (its overview does not exist
	// yet): on a loaded machine (CI runs every package's tests at once,
	// with the race detector) that can take longer than the engine's
	// default 30 s, and this probe is setup, not a measurement.
	t, err := s.m.StartTiles(ctx, 20*time.Minute, "MERIDIAN_TILES_TILE_TIMEOUT=3m")
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		err = errors.Join(err, t.Stop(sctx))
	}()
	overviews := 0
	for _, d := range s.cfg.Datasets {
		status, body, h, err := t.Get(ctx, tilebench.TilePath(tilesConn, d, tile.Coord{Z: 2, X: 1, Y: 1}),
			[]string{"Authorization: Bearer " + s.token})
		if err != nil {
			return err
		}
		if status != http.StatusOK || h.Get("Content-Type") != "application/vnd.mapbox-vector-tile" {
			return fmt.Errorf("checking meridian tiles on %s: tile 2/1/1 = %d %q: %.300s",
				d.Name, status, h.Get("Content-Type"), body)
		}
		overviews++ // both datasets are large enough to get one
	}
	// The first tile of each dataset started the build of its overview:
	// wait for them, so that every run finds them.
	t0 := time.Now()
	for overviews > 0 {
		n, err := t.Metric(ctx, "meridian_tiles_overview_builds_total")
		if err != nil {
			return err
		}
		if int(n) >= overviews {
			break
		}
		if time.Since(t0) > 15*time.Minute {
			return fmt.Errorf("overviews: %v of %d built after %v", n, overviews, time.Since(t0).Round(time.Second))
		}
		if err := t.Alive(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	if overviews > 0 {
		s.cfg.SetupSeconds["overviews"] = time.Since(t0).Round(10 * time.Millisecond).Seconds()
	}
	return nil
}

func (s *tilesCold) Run(ctx context.Context, variant string) (bench.Result, error) {
	d, ok := s.datasets[variant]
	if !ok {
		return bench.Result{}, fmt.Errorf("unknown variant %q", variant)
	}
	if variant == "raw-pgx-"+d.Name {
		return s.runRaw(ctx, variant)
	}
	if strings.HasSuffix(variant, noOverviews) {
		return s.runMeridian(ctx, d, "MERIDIAN_TILES_OVERVIEWS_OFF=true")
	}
	return s.runMeridian(ctx, d)
}

// runRaw renders the list through a fresh pool (the meridian process
// opens fresh connections too), its statement prepared on each
// connection's first use.
func (s *tilesCold) runRaw(ctx context.Context, variant string) (bench.Result, error) {
	cfg, err := pgxpool.ParseConfig(s.dataURL)
	if err != nil {
		return bench.Result{}, fmt.Errorf("parsing data URL: %w", err)
	}
	cfg.MaxConns = int32(s.cfg.Concurrency)
	cfg.ConnConfig.RuntimeParams["application_name"] = "bench-raw-pgx"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return bench.Result{}, fmt.Errorf("opening raw-pgx pool: %w", err)
	}
	defer pool.Close()
	if err := pool.Ping(ctx); err != nil {
		return bench.Result{}, fmt.Errorf("opening raw-pgx pool: %w", err)
	}
	rr, err := tilebench.RenderAll(ctx, pool, s.cfg.RawSQL[variant], s.list, s.cfg.Concurrency)
	if err != nil {
		return bench.Result{}, err
	}
	if rr.Errors > 0 {
		return bench.Result{}, fmt.Errorf("%d of %d tiles failed, first: %s", rr.Errors, len(s.list), rr.FirstError)
	}
	return tileRunResult(rr.Tiles, rr.Empty, rr.Bytes, rr.Elapsed, rr.Latency), nil
}

// runMeridian starts a fresh `meridian tiles`, compiles the source, then
// times the list; the process stops after the run.
func (s *tilesCold) runMeridian(ctx context.Context, d tilebench.Dataset, env ...string) (_ bench.Result, err error) {
	t, err := s.m.StartTiles(ctx, 10*time.Minute, env...)
	if err != nil {
		return bench.Result{}, err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		err = errors.Join(err, t.Stop(sctx))
	}()
	if err := t.Instantiate(ctx, tilesConn, s.token, d); err != nil {
		return bench.Result{}, err
	}
	urls := make([]string, len(s.list))
	for i, c := range s.list {
		urls[i] = t.URL + tilebench.TilePath(tilesConn, d, c)
	}
	lr, err := load.HTTP{
		URLs:        urls,
		Requests:    uint64(len(urls)),
		Concurrency: s.cfg.Concurrency,
		Timeout:     tileFetchTimeout,
		Header:      http.Header{"Authorization": {"Bearer " + s.token}, "Accept-Encoding": {"gzip"}},
	}.Run(ctx)
	if err != nil {
		return bench.Result{}, err
	}
	if err := ctx.Err(); err != nil {
		return bench.Result{}, fmt.Errorf("run stopped after %d of %d tiles: %w", lr.Requests, len(urls), err)
	}
	if aliveErr := t.Alive(); aliveErr != nil {
		return bench.Result{}, aliveErr
	}
	ok := lr.Status[http.StatusOK] + lr.Status[http.StatusNoContent]
	if lr.Errors > 0 || ok != uint64(len(urls)) {
		return bench.Result{}, fmt.Errorf("%d of %d tiles answered 200 or 204 (statuses %v; %d request errors, first: %s)",
			ok, len(urls), lr.Status, lr.Errors, lr.FirstError)
	}
	hits, misses, err := t.CacheLookups(ctx)
	if err != nil {
		return bench.Result{}, err
	}
	if hits > 0 {
		return bench.Result{}, fmt.Errorf("the tile cache answered %g of %g lookups: the run was not cold", hits, hits+misses)
	}
	return tileRunResult(int(lr.Requests), int(lr.Status[http.StatusNoContent]), int64(lr.BodyBytes), lr.Elapsed, lr.Latency), nil
}

// unitTilesPerSec is the unit of tile throughput.
const unitTilesPerSec = "tiles/s"

// tileRunResult is the result of one pass over a tile list: tiles/s
// primary; p50, p99 and the bytes of the run secondary; the empty tiles
// as a note.
func tileRunResult(tiles, empty int, bytes int64, elapsed time.Duration, lat *load.Histogram) bench.Result {
	var rate float64
	if elapsed > 0 {
		rate = float64(tiles) / elapsed.Seconds()
	}
	return bench.Result{
		Primary: bench.Metric{Name: "throughput", Unit: unitTilesPerSec, Better: bench.HigherIsBetter, Value: rate},
		Secondary: []bench.Metric{
			latencyMetric("p50", lat.Quantile(0.50).Seconds()),
			latencyMetric("p99", lat.Quantile(0.99).Seconds()),
			{Name: "bytes", Unit: "MB", Better: bench.LowerIsBetter, Value: float64(bytes) / 1e6},
		},
		Notes: []string{fmt.Sprintf("%d of %d tiles empty", empty, tiles)},
	}
}

// tilesSetup is what setupTiles prepared.
type tilesSetup struct {
	m       tilebench.Meridian
	token   string
	dataURL string
	list    []tile.Coord
	postgis string
	seconds map[string]float64
}

// setupTiles prepares what the tile scenarios share: the ANCHORS.md tile
// list, a private PostgreSQL cluster holding a metadata database and a
// data database with datasets loaded, the meridian binary (built while
// the data loads), migrated, with the data connection tilesConn and a
// token for it. Missing data, GDAL, PostgreSQL or go skip the scenario.
// What it starts is stopped by stop.
func setupTiles(ctx context.Context, env *bench.Env, datasets []tilebench.Dataset, stop *cleanup) (tilesSetup, error) {
	ts := tilesSetup{seconds: map[string]float64{}}
	lap := func(step string, since time.Time) {
		ts.seconds[step] = time.Since(since).Round(10 * time.Millisecond).Seconds()
	}
	root, err := peers.ModuleRoot(".")
	if err != nil {
		return ts, err
	}
	dataDir, err := tilebench.DataDir(root)
	if errors.Is(err, tilebench.ErrNoData) {
		return ts, bench.Skip("%v", err)
	}
	if err != nil {
		return ts, err
	}
	if _, err := tilebench.LookOGR(); err != nil {
		return ts, bench.Skip("%v (apt-get install gdal-bin)", err)
	}
	places, err := tilebench.ReadPoints(filepath.Join(dataDir, tilebench.PlacesFile))
	if err != nil {
		return ts, err
	}
	ts.list = tilebench.List(places, tilebench.ListSeed)

	t0 := time.Now()
	pgDir, err := openScratch(env, "pg")
	if err != nil {
		return ts, err
	}
	cluster, err := pgcluster.Open(ctx, pgDir, pgcluster.Options{Fast: true})
	if errors.Is(err, pgcluster.ErrNoBinaries) {
		return ts, bench.Skip("no PostgreSQL server binaries")
	}
	if err != nil {
		return ts, err
	}
	if err := cluster.Start(ctx); err != nil {
		return ts, err
	}
	stop.add(cluster.Stop)
	admin := cluster.SuperuserURL("postgres")
	metaURL, err := tilebench.CreateDatabase(ctx, admin, "bench_meta")
	if err != nil {
		return ts, err
	}
	if ts.dataURL, err = tilebench.CreateDatabase(ctx, admin, "bench_data"); err != nil {
		return ts, err
	}
	lap("cluster", t0)

	// Build while the data loads.
	type built struct {
		edge peers.Edge
		err  error
		took time.Duration
	}
	bc := make(chan built, 1)
	go func() {
		t0 := time.Now()
		e, err := buildEdge(ctx, env)
		bc <- built{e, err, time.Since(t0)}
	}()
	var loadErr error
	for _, d := range datasets {
		t0 := time.Now()
		env.Logger.Info("loading dataset", "dataset", d.Name, "rows", d.Rows)
		if loadErr = tilebench.Load(ctx, ts.dataURL, dataDir, d); loadErr != nil {
			break
		}
		lap("load_"+d.Name, t0)
	}
	b := <-bc
	if err := errors.Join(b.err, loadErr); err != nil {
		return ts, err
	}
	ts.seconds["build"] = b.took.Round(10 * time.Millisecond).Seconds()
	if c, err := pgx.Connect(ctx, ts.dataURL); err == nil {
		_ = c.QueryRow(ctx, "SELECT postgis_full_version()").Scan(&ts.postgis)
		c.Close(ctx)
	}

	t0 = time.Now()
	dir, err := openScratch(env, "meridian-home")
	if err != nil {
		return ts, err
	}
	ts.m = tilebench.Meridian{Bin: b.edge.Path, DatabaseURL: metaURL, SecretKey: secret.GenerateKey(), Dir: dir}
	if ts.token, err = ts.m.Provision(ctx, tilesConn, ts.dataURL); err != nil {
		return ts, err
	}
	lap("provision", t0)
	return ts, nil
}
