package scenarios

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/meridian-gis/meridian/bench"
	"github.com/meridian-gis/meridian/bench/peers"
	"github.com/meridian-gis/meridian/bench/proc"
	"github.com/meridian-gis/meridian/bench/tilebench"
)

// importFiles are the two comparison files, relative to the data
// folder.
var importFiles = map[string]string{
	"postal": "points/geonames_postal_codes_117_countries.csv.gz",
	"admin1": "polygons/ne_10m_admin_1_states_provinces.geojson.gz",
}

// importConfig is the import scenarios' setup, recorded in the report.
type importConfig struct {
	Files map[string]string `json:"files"`
	// Big is the size of the generated GeoJSON of import-big.
	Big string `json:"big,omitempty"`
}

// importScenario times Meridian's importer against `ogr2ogr -f
// PostgreSQL` on the same files into the same private PostGIS, one
// process per run (workers/importer/importbench, which runs either), so
// each run's peak RSS is its own. Throughput is uncompressed input MB/s.
type importScenario struct {
	name    string
	big     bool
	cfg     importConfig
	bin     string
	dbURL   string
	dataDir string
}

func newImport() bench.Scenario {
	return &importScenario{name: "import", cfg: importConfig{Files: importFiles}}
}

func newImportBig() bench.Scenario {
	return &importScenario{name: "import-big", big: true, cfg: importConfig{Files: map[string]string{"admin1": importFiles["admin1"]}, Big: "1g"}}
}

func (s *importScenario) Info() bench.Info {
	if s.big {
		return bench.Info{
			Name: s.name,
			Description: "Peak RSS of Meridian's importer on a GeoJSON of about 1 GiB built by repeating the NE admin-1 " +
				"features (generated in the scratch folder each run, deleted after): the streaming importer must stay " +
				"under 256 MB whatever the file size.",
			Variants:   []string{"meridian"},
			Targets:    []bench.Target{{Variant: "meridian", Metric: "peak_rss", Max: 256}},
			Config:     s.cfg,
			RunTimeout: 15 * time.Minute,
		}
	}
	return bench.Info{
		Name: s.name,
		Description: "Import into a private PostGIS, Meridian's importer vs `ogr2ogr -f PostgreSQL`, one process per " +
			"run: GeoNames postal codes CSV (1.2 M points, typed columns on our side) and NE 10m admin-1 GeoJSON. " +
			"Throughput is uncompressed input MB/s, including indexes and ANALYZE on our side.",
		Variants: []string{"ogr2ogr-postal", "meridian-postal", "ogr2ogr-admin1", "meridian-admin1"},
		Targets: []bench.Target{
			{Ratio: "meridian-postal/ogr2ogr-postal", Min: 2},
			{Ratio: "meridian-admin1/ogr2ogr-admin1", Min: 2},
		},
		Config:     s.cfg,
		RunTimeout: 10 * time.Minute,
	}
}

func (s *importScenario) Setup(ctx context.Context, env *bench.Env) (bench.Teardown, error) {
	if _, err := exec.LookPath("ogr2ogr"); err != nil && !s.big {
		return nil, bench.Skip("ogr2ogr is not installed (Debian gdal-bin)")
	}
	root, err := peers.ModuleRoot(".")
	if err != nil {
		return nil, err
	}
	if s.dataDir, err = tilebench.DataDir(root); err != nil {
		return nil, bench.Skip("no geodata: %v", err)
	}
	s.bin = filepath.Join(env.TempDir, "importbench")
	build := exec.CommandContext(ctx, "go", "build", "-o", s.bin, "./workers/importer/importbench")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building importbench: %w\n%s", err, out)
	}
	var stop cleanup
	teardown := stop.run
	cluster, err := startScratchCluster(ctx, env, &stop)
	if err != nil {
		return teardown, err
	}
	if s.dbURL, err = createDatabase(ctx, cluster, "bench_import"); err != nil {
		return teardown, err
	}
	conn, err := pgx.Connect(ctx, s.dbURL)
	if err != nil {
		return teardown, err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS postgis"); err != nil {
		return teardown, fmt.Errorf("creating postgis: %w", err)
	}
	return teardown, nil
}

// importReport is importbench's JSON output.
type importReport struct {
	Rows     int64   `json:"rows"`
	Seconds  float64 `json:"seconds"`
	MBPerSec float64 `json:"mb_per_s"`
}

func (s *importScenario) Run(ctx context.Context, variant string) (bench.Result, error) {
	engine, dataset, ok := strings.Cut(variant, "-")
	if s.big {
		engine, dataset, ok = "meridian", "admin1", true
	}
	file, known := s.cfg.Files[dataset]
	if !ok || !known {
		return bench.Result{}, fmt.Errorf("unknown variant %q", variant)
	}
	args := []string{"-db", s.dbURL, "-file", filepath.Join(s.dataDir, file), "-table", "bench_" + strings.ReplaceAll(variant, "-", "_")}
	if engine == "ogr2ogr" {
		args = append(args, "-ogr")
	}
	if s.big {
		args = append(args, "-big", s.cfg.Big, "-tmp", filepath.Dir(s.bin))
	}
	res, err := proc.Command{Path: s.bin, Args: args, Timeout: 20 * time.Minute}.Run(ctx)
	if err != nil {
		return bench.Result{}, fmt.Errorf("%w\n%s", err, res.Stderr)
	}
	var rep importReport
	if err := json.Unmarshal([]byte(lastLine(res.Stdout)), &rep); err != nil {
		return bench.Result{}, fmt.Errorf("reading importbench output %q: %w", lastLine(res.Stdout), err)
	}
	rss := bench.Metric{Name: "peak_rss", Unit: "MB", Better: bench.LowerIsBetter, Value: float64(res.PeakRSS) / (1 << 20)}
	tput := bench.Metric{Name: "throughput", Unit: "MB/s", Better: bench.HigherIsBetter, Value: rep.MBPerSec}
	secs := bench.Metric{Name: "seconds", Unit: "s", Better: bench.LowerIsBetter, Value: rep.Seconds}
	rows := bench.Metric{Name: "rows", Unit: "rows", Better: bench.HigherIsBetter, Value: float64(rep.Rows)}
	if s.big {
		return bench.Result{Primary: rss, Secondary: []bench.Metric{tput, secs, rows}}, nil
	}
	return bench.Result{Primary: tput, Secondary: []bench.Metric{secs, rss, rows}}, nil
}

// lastLine returns the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
