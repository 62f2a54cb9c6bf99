package scenarios

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meridian-gis/meridian/bench"
	"github.com/meridian-gis/meridian/bench/load"
	"github.com/meridian-gis/meridian/bench/tilebench"
)

// The tile scenarios declare the variants and targets of issue 3.
func TestTilesInfo(t *testing.T) {
	reg := bench.NewRegistry()
	if err := reg.Register(newTilesCold); err != nil {
		t.Fatal(err)
	}
	if err := reg.Register(newTilesWarm); err != nil {
		t.Fatal(err)
	}
	cold := newTilesCold().Info()
	if want := []string{"raw-pgx-admin1", "meridian-admin1", "meridian-admin1-no-overviews", "raw-pgx-postal", "meridian-postal", "meridian-postal-no-overviews"}; !slices.Equal(cold.Variants, want) {
		t.Errorf("tiles-cold variants = %v, want %v", cold.Variants, want)
	}
	// Issue 12: 5× and 8× pg_tileserv side by side (141 and 27 tiles/s),
	// 1.5× the raw-pgx floor.
	want := map[string]float64{
		"meridian-admin1/raw-pgx-admin1": 1.5, "meridian-postal/raw-pgx-postal": 1.5,
		"meridian-admin1": 705, "meridian-postal": 216,
	}
	got := map[string]float64{}
	for _, tg := range cold.Targets {
		got[tg.Ratio+tg.Variant] = tg.Min
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("tiles-cold target %s: Min %g, want %g (all: %v)", k, got[k], v, got)
		}
	}
	warm := newTilesWarm().Info()
	if want := []string{"fasthttp-floor", "meridian", "meridian-tilejson"}; !slices.Equal(warm.Variants, want) {
		t.Errorf("tiles-warm variants = %v, want %v", warm.Variants, want)
	}
	if len(warm.Targets) != 1 || warm.Targets[0].Variant != "meridian" || warm.Targets[0].Min != 20000 {
		t.Errorf("tiles-warm targets = %+v, want meridian ≥ 20000", warm.Targets)
	}
}

// runScenario runs s for one round without warm-up.
func runScenario(t *testing.T, s bench.Scenario, d time.Duration) bench.ScenarioReport {
	t.Helper()
	r := &bench.Runner{Rounds: 1, Duration: d, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	return r.Run(context.Background(), []bench.Scenario{s})[0]
}

// tiles-cold end to end on admin-1 and a cut list: private cluster,
// loading, the meridian binary built and provisioned through its CLI, a
// fresh `meridian tiles` per run, and the raw-pgx floor. Not a timing
// test.
func TestTilesColdSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL, loads admin-1 and builds the meridian binary")
	}
	s := newTilesCold().(*tilesCold)
	s.cfg.Datasets = []tilebench.Dataset{tilebench.Admin1()}
	s.cfg.maxTiles = 40
	rep := runScenario(t, s, time.Second)
	if rep.Skipped != "" {
		t.Skip(rep.Skipped)
	}
	checkServed(t, rep)
	for _, smp := range rep.Samples {
		if smp.Result == nil {
			continue
		}
		if !slices.ContainsFunc(smp.Result.Notes, func(n string) bool { return strings.HasSuffix(n, "of 40 tiles empty") }) {
			t.Errorf("%s: notes %q, want the empty-tile count of 40 tiles", smp.Variant, smp.Result.Notes)
		}
	}
	checkMarkdown(t, rep, "## tiles-cold", "| raw-pgx-admin1 | 1 |", "| meridian-admin1 | 1 |", "| meridian-admin1-no-overviews | 1 |", "throughput tiles/s",
		"meridian-admin1 ≥ 5 × pg_tileserv (141 tiles/s, ANCHORS.md)")
	cfg := rep.Info.Config.(tilesColdConfig)
	if cfg.Tiles != 40 || !strings.Contains(cfg.RawSQL["raw-pgx-admin1"], "ST_TileEnvelope($1, $2, $3, margin => 0.015625)") ||
		!strings.Contains(cfg.PostGIS, "POSTGIS=") {
		t.Errorf("config = %+v, want 40 tiles, the raw SQL and the PostGIS version", cfg)
	}
	if cfg.SetupSeconds["overviews"] <= 0 {
		t.Errorf("setup seconds %v: want the admin-1 overview build timed", cfg.SetupSeconds)
	}
}

// tiles-warm end to end on a cut list: the engine warmed, wrk cycling its
// tiles with no cache miss, the floor on the same script.
func TestTilesWarmSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL, loads admin-1, builds the meridian binary and runs wrk")
	}
	if _, err := load.LookWrk(); err != nil {
		t.Skip("wrk is not installed")
	}
	s := newTilesWarm().(*tilesWarm)
	s.cfg.maxTiles = 120
	rep := runScenario(t, s, time.Second)
	if rep.Skipped != "" {
		t.Skip(rep.Skipped)
	}
	checkServed(t, rep)
	checkMarkdown(t, rep, "## tiles-warm", "| fasthttp-floor | 1 |", "| meridian | 1 |", "| meridian-tilejson | 1 |",
		"throughput tiles/s", "meridian ≥ 20000 warm tiles/s")
	cfg := rep.Info.Config.(tilesWarmConfig)
	if cfg.Listed != 120 || cfg.Tiles == 0 || cfg.Tiles > 120 || cfg.MeanBytes <= 0 || cfg.FloorBytes != cfg.MeanBytes ||
		!strings.Contains(cfg.TileJSONTemplate, "/{z}/{x}/{y}?k=") {
		t.Errorf("config = %+v, want 120 listed, some warm tiles of known size, the floor at their mean, a k= template", cfg)
	}
	for _, smp := range rep.Samples {
		if smp.Variant != "fasthttp-floor" && smp.Result != nil &&
			!slices.ContainsFunc(smp.Result.Notes, func(n string) bool { return strings.HasSuffix(n, " 0 misses during the run") }) {
			t.Errorf("%s notes %q, want 0 cache misses", smp.Variant, smp.Result.Notes)
		}
	}
}

// checkMarkdown renders rep and checks it holds each of want; the report
// is logged (go test -v shows it).
func checkMarkdown(t *testing.T, rep bench.ScenarioReport, want ...string) {
	t.Helper()
	var md strings.Builder
	if err := (&bench.Report{Results: []bench.ScenarioReport{rep}}).WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	t.Logf("report:\n%s", md.String())
	for _, w := range want {
		if !strings.Contains(md.String(), w) {
			t.Errorf("markdown lacks %q", w)
		}
	}
}
