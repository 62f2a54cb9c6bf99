package scenarios

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/meridian-gis/meridian/bench"
	"github.com/meridian-gis/meridian/bench/load"
	"github.com/meridian-gis/meridian/bench/tilebench"
	"github.com/meridian-gis/meridian/internal/tile"
)

// tilesWarmConfig is the tiles-warm setup, recorded in the report.
type tilesWarmConfig struct {
	Dataset tilebench.Dataset `json:"dataset"`
	// Listed is the size of the ANCHORS.md list warmed; Tiles the
	// non-empty ones loaded by wrk (empty tiles, answered 204, are left
	// out so that cheap answers do not inflate the rate).
	Listed      int    `json:"listed"`
	Tiles       int    `json:"tiles"`
	Threads     int    `json:"wrk_threads"`
	Connections int    `json:"connections"`
	Duration    string `json:"duration,omitempty"`
	WrkVersion  string `json:"wrk_version,omitempty"`
	// Headers are sent with every request of both variants.
	Headers []string `json:"headers"`
	// TileJSONTemplate is the tile URL template of the meridian-tilejson
	// variant, as the engine's TileJSON gives it (host elided).
	TileJSONTemplate string `json:"tilejson_template,omitempty"`
	// Body sizes of the warm tiles (gzip), in bytes; the floor serves
	// FloorBytes (their mean) at every path.
	MeanBytes   int `json:"mean_tile_bytes"`
	MedianBytes int `json:"median_tile_bytes"`
	MaxBytes    int `json:"max_tile_bytes"`
	FloorBytes  int `json:"floor_body_bytes"`
	// MaxMisses is how many tile cache misses a measured meridian run
	// may cause before it fails.
	MaxMisses    int                `json:"max_misses"`
	SetupSeconds map[string]float64 `json:"setup_seconds,omitempty"`

	// maxTiles cuts the list before warming (tests). Zero: all of it.
	maxTiles int
}

// tilesWarm is issue 3's warm-tile target: tiles answered from the tiles
// engine's in-process cache, at least 20,000 per second on the 2 cores
// (client included), measured with wrk -t2 -c64 cycling over the
// non-empty admin-1 tiles of the ANCHORS.md list, against a bare fasthttp
// handler serving a body of their mean size to the same wrk script. The
// meridian variant requests the stateless tile URLs (name=…&columns=…,
// resolved on every request), meridian-tilejson the URLs of the engine's
// TileJSON (k=…&cache=…, what CARTO clients request); both hit the same
// cache entries.
type tilesWarm struct {
	cfg     tilesWarmConfig
	env     *bench.Env
	wrk     string
	scripts map[string]string // variant → wrk Lua script file
	tiles   *tilebench.Tiles
	floor   *server
	token   string
}

func newTilesWarm() bench.Scenario {
	return &tilesWarm{cfg: tilesWarmConfig{
		Dataset: tilebench.Admin1(), Threads: 2, Connections: 64, MaxMisses: 0,
		Headers: []string{"Authorization: Bearer <token>", "Accept-Encoding: gzip"},
	}}
}

func (s *tilesWarm) Info() bench.Info {
	return bench.Info{
		SetupTimeout: tilesSetupTimeout,
		Name:         "tiles-warm",
		Description: fmt.Sprintf("Warm tiles/s: `meridian tiles` answering from its in-process cache the non-empty "+
			"%s tiles of the ANCHORS.md list (warmed first; a run fails if the engine's cache misses), "+
			"URLs in turn from a wrk Lua script, wrk -t%d -c%d, Authorization and Accept-Encoding: gzip. "+
			"meridian: the stateless tile URLs (name=…&columns=…); meridian-tilejson: the same tiles at the "+
			"URLs of the engine's TileJSON (k=…&cache=…, what CARTO clients request); fasthttp-floor: a bare "+
			"fasthttp handler serving a body of the tiles' mean size to the stateless script. Client and "+
			"server share the 2 cores.",
			s.cfg.Dataset.Name, s.cfg.Threads, s.cfg.Connections),
		Variants: []string{"fasthttp-floor", "meridian", "meridian-tilejson"},
		Targets:  []bench.Target{{Variant: "meridian", Min: 20000, Name: "meridian ≥ 20000 warm tiles/s"}},
		Config:   s.cfg,
	}
}

func (s *tilesWarm) Setup(ctx context.Context, env *bench.Env) (_ bench.Teardown, err error) {
	s.env = env
	if s.wrk, err = load.LookWrk(); err != nil {
		return nil, bench.Skip("wrk is not installed (apt-get install wrk)")
	}
	s.cfg.WrkVersion = load.WrkVersion(ctx, s.wrk)
	s.cfg.Duration = (time.Duration(math.Ceil(env.Duration.Seconds())) * time.Second).String()
	var stop cleanup
	teardown := func(ctx context.Context) error { return stop.run(ctx) }
	ts, err := setupTiles(ctx, env, []tilebench.Dataset{s.cfg.Dataset}, &stop)
	if err != nil {
		return teardown, err
	}
	s.cfg.SetupSeconds, s.token = ts.seconds, ts.token
	list := ts.list
	if s.cfg.maxTiles > 0 && len(list) > s.cfg.maxTiles {
		list = list[:s.cfg.maxTiles]
	}
	s.cfg.Listed = len(list)

	t0 := time.Now()
	if s.tiles, err = ts.m.StartTiles(ctx, peerLifetime(env, 3)); err != nil {
		return teardown, err
	}
	stop.add(s.tiles.Stop)
	paths := make([]string, len(list))
	for i, c := range list {
		paths[i] = tilebench.TilePath(tilesConn, s.cfg.Dataset, c)
	}
	headers := s.headers()
	got, err := s.tiles.FetchAll(ctx, paths, headers, 8)
	if err != nil {
		return teardown, fmt.Errorf("warming the tiles: %w", err)
	}
	var warm []string
	var coords []tile.Coord
	var sizes []int
	for i, f := range got {
		switch f.Status {
		case http.StatusOK:
			warm = append(warm, f.Path)
			coords = append(coords, list[i])
			sizes = append(sizes, f.BodyBytes)
		case http.StatusNoContent:
		default:
			return teardown, fmt.Errorf("warming the tiles: %s answered %d", f.Path, f.Status)
		}
	}
	if len(warm) == 0 {
		return teardown, errors.New("warming the tiles: every tile is empty")
	}
	s.cfg.Tiles = len(warm)
	s.cfg.MeanBytes, s.cfg.MedianBytes, s.cfg.MaxBytes = sizeStats(sizes)
	// The same tiles at the TileJSON's URLs.
	tmpl, err := s.tiles.TileJSONTemplate(ctx, tilesConn, s.token, s.cfg.Dataset)
	if err != nil {
		return teardown, err
	}
	tmplPath, ok := strings.CutPrefix(tmpl, s.tiles.URL)
	if !ok {
		return teardown, fmt.Errorf("TileJSON template %q is not under %s", tmpl, s.tiles.URL)
	}
	s.cfg.TileJSONTemplate = tmplPath
	viaTileJSON := make([]string, len(coords))
	for i, c := range coords {
		viaTileJSON[i] = tilebench.ExpandTemplate(tmplPath, c)
	}
	// A pass over both URL sets must be all hits: the cache holds the
	// whole set, and both kinds of URL name the same entries.
	for _, paths := range [][]string{warm, viaTileJSON} {
		if err := s.checkWarm(ctx, paths); err != nil {
			return teardown, err
		}
	}
	s.env.Logger.Info("tiles warm", "tiles", len(warm), "listed", len(list), "mean_bytes", s.cfg.MeanBytes)
	s.cfg.SetupSeconds["warm"] = time.Since(t0).Round(10 * time.Millisecond).Seconds()

	s.scripts = map[string]string{}
	for variant, paths := range map[string][]string{"meridian": warm, "meridian-tilejson": viaTileJSON} {
		script, err := tilebench.WrkScript(paths, s.cfg.Threads)
		if err != nil {
			return teardown, err
		}
		file := filepath.Join(env.TempDir, variant+".lua")
		if err := os.WriteFile(file, []byte(script), 0o644); err != nil {
			return teardown, fmt.Errorf("writing wrk script: %w", err)
		}
		s.scripts[variant] = file
	}
	s.scripts["fasthttp-floor"] = s.scripts["meridian"]
	s.cfg.FloorBytes = s.cfg.MeanBytes
	if s.floor, err = startFastHTTP(object(s.cfg.FloorBytes)); err != nil {
		return teardown, err
	}
	stop.add(s.floor.Stop)
	return teardown, nil
}

// checkWarm fetches paths once and fails unless every one is a 200
// answered from the cache.
func (s *tilesWarm) checkWarm(ctx context.Context, paths []string) error {
	_, before, err := s.tiles.CacheLookups(ctx)
	if err != nil {
		return err
	}
	got, err := s.tiles.FetchAll(ctx, paths, s.headers(), 8)
	if err != nil {
		return fmt.Errorf("checking the warm tiles: %w", err)
	}
	for _, f := range got {
		if f.Status != http.StatusOK {
			return fmt.Errorf("checking the warm tiles: %s answered %d, want 200", f.Path, f.Status)
		}
	}
	_, after, err := s.tiles.CacheLookups(ctx)
	if err != nil {
		return err
	}
	if after != before {
		return fmt.Errorf("checking the warm tiles: %g cache misses over %d warm tiles, want 0", after-before, len(paths))
	}
	return nil
}

// headers are the request headers of every variant.
func (s *tilesWarm) headers() []string {
	return []string{"Authorization: Bearer " + s.token, "Accept-Encoding: gzip"}
}

func (s *tilesWarm) Run(ctx context.Context, variant string) (bench.Result, error) {
	var base string
	engine := variant != "fasthttp-floor"
	switch variant {
	case "meridian", "meridian-tilejson":
		if err := s.tiles.Alive(); err != nil {
			return bench.Result{}, err
		}
		base = s.tiles.URL + "/"
	case "fasthttp-floor":
		base = s.floor.URL
	default:
		return bench.Result{}, fmt.Errorf("unknown variant %q", variant)
	}
	var hits0, misses0 float64
	if engine {
		var err error
		if hits0, misses0, err = s.tiles.CacheLookups(ctx); err != nil {
			return bench.Result{}, err
		}
	}
	wr, err := load.Wrk{
		Path:        s.wrk,
		Threads:     s.cfg.Threads,
		Connections: s.cfg.Connections,
		Duration:    s.env.Duration,
		Headers:     s.headers(),
		Script:      s.scripts[variant],
	}.Run(ctx, base)
	if err != nil {
		return bench.Result{}, err
	}
	res, err := fromWrk(wr)
	if err != nil {
		return bench.Result{}, err
	}
	res.Primary.Unit = unitTilesPerSec
	res.Secondary = append(res.Secondary, bench.Metric{Name: "transfer", Unit: "MB/s", Better: bench.HigherIsBetter, Value: wr.TransferPerSec / 1e6})
	if !engine {
		return res, nil
	}
	hits, misses, err := s.tiles.CacheLookups(ctx)
	if err != nil {
		return bench.Result{}, err
	}
	res.Notes = append(res.Notes, fmt.Sprintf("tile cache: %g hits, %g misses during the run", hits-hits0, misses-misses0))
	if misses-misses0 > float64(s.cfg.MaxMisses) {
		return res, fmt.Errorf("the tile cache missed %g times during the run (at most %d allowed): not a warm run",
			misses-misses0, s.cfg.MaxMisses)
	}
	return res, nil
}

// sizeStats returns the mean, median and maximum of sizes (not empty).
func sizeStats(sizes []int) (mean, median, largest int) {
	s := slices.Clone(sizes)
	slices.Sort(s)
	var sum int
	for _, n := range s {
		sum += n
	}
	return sum / len(s), s[len(s)/2], s[len(s)-1]
}
