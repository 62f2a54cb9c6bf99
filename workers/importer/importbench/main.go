// Command importbench times one import, Meridian's engine or GDAL's
// ogr2ogr on the same file, and reports throughput and peak RSS. Run one
// case per process so that the peak RSS is the case's own:
//
//	importbench -db $URL -file points/geonames_postal_codes_117_countries.csv.gz
//	importbench -db $URL -file ... -ogr        # ogr2ogr -f PostgreSQL baseline
//	importbench -db $URL -file polygons/ne_10m_admin_1_states_provinces.geojson.gz -big 1g
//
// -big builds a GeoJSON of about that size in a temp dir by repeating the
// features of -file, imports it and deletes it.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"compress/gzip"

	"github.com/meridian-gis/meridian/internal/pgdb"
	"github.com/meridian-gis/meridian/workers/importer"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "importbench:", err)
		os.Exit(1)
	}
}

type report struct {
	Engine     string   `json:"engine"`
	File       string   `json:"file"`
	Bytes      int64    `json:"bytes"` // uncompressed input bytes
	Rows       int64    `json:"rows"`
	Seconds    float64  `json:"seconds"`
	MBPerSec   float64  `json:"mb_per_s"`
	RowsPerSec float64  `json:"rows_per_s"`
	MaxRSSMB   float64  `json:"max_rss_mb"`
	Warnings   []string `json:"warnings,omitempty"`
}

func run() error {
	db := flag.String("db", os.Getenv("MERIDIAN_TEST_DATABASE"), "database URL")
	file := flag.String("file", "", "input file")
	table := flag.String("table", "bench_import", "destination table")
	ogr := flag.Bool("ogr", false, "time ogr2ogr -f PostgreSQL instead")
	ogrTyped := flag.Bool("ogr-typed", false, "with -ogr on a CSV: -oo AUTODETECT_TYPE=YES")
	big := flag.String("big", "", "build a GeoJSON of about this size (e.g. 1g) from -file's features and import that")
	tmp := flag.String("tmp", os.TempDir(), "temp dir for -big")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the import")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	if *db == "" || *file == "" {
		return fmt.Errorf("-db and -file are required")
	}
	ctx := context.Background()
	path := *file
	size := uncompressedSize(path)
	if *big != "" {
		target, err := parseSize(*big)
		if err != nil {
			return err
		}
		dir, err := os.MkdirTemp(*tmp, "importbench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		path = filepath.Join(dir, "big.geojson")
		out, err := os.Create(path)
		if err != nil {
			return err
		}
		src := *file
		n, w, err := importer.GenerateGeoJSON(ctx, out, func() (io.ReadCloser, error) { return openMaybeGzip(src) }, target)
		out.Close()
		if err != nil {
			return err
		}
		size = w
		fmt.Fprintf(os.Stderr, "built %s: %d features, %d bytes\n", path, n, w)
	}
	rep := report{File: *file, Bytes: size}
	start := time.Now()
	if *ogr {
		rep.Engine = "ogr2ogr"
		rows, rss, err := runOGR(ctx, *db, path, *table, *ogrTyped)
		if err != nil {
			return err
		}
		rep.Rows, rep.MaxRSSMB = rows, rss
	} else {
		rep.Engine = "meridian"
		pool, err := pgdb.NewPool(ctx, *db, pgdb.PoolConfig{MaxConns: 4}, nil)
		if err != nil {
			return err
		}
		defer pool.Close()
		res, err := importer.Import(ctx, pool, importer.Source{Path: path}, importer.Options{
			Table: *table, IfExists: importer.IfExistsReplace, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})),
		})
		if err != nil {
			return err
		}
		rep.Rows, rep.Warnings = res.Rows, res.Warnings
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		rep.MaxRSSMB = float64(ru.Maxrss) / 1024
	}
	rep.Seconds = time.Since(start).Seconds()
	rep.MBPerSec = float64(rep.Bytes) / 1e6 / rep.Seconds
	rep.RowsPerSec = float64(rep.Rows) / rep.Seconds
	return json.NewEncoder(os.Stdout).Encode(rep)
}

// runOGR loads path with ogr2ogr the way ANCHORS.md measured it.
func runOGR(ctx context.Context, db, path, table string, typed bool) (int64, float64, error) {
	u, err := url.Parse(db)
	if err != nil {
		return 0, 0, err
	}
	pw, _ := u.User.Password()
	pg := fmt.Sprintf("PG:host=%s port=%s dbname=%s user=%s", u.Hostname(), u.Port(), strings.TrimPrefix(u.Path, "/"), u.User.Username())
	src := path
	if strings.HasSuffix(path, ".gz") {
		src = "/vsigzip/" + path
	}
	args := []string{"-f", "PostgreSQL", pg, src, "-nln", table, "-overwrite", "-lco", "GEOMETRY_NAME=geom"}
	if strings.Contains(path, ".csv") {
		args = append(args, "-oo", "X_POSSIBLE_NAMES=longitude,lng,lon", "-oo", "Y_POSSIBLE_NAMES=latitude,lat", "-a_srs", "EPSG:4326")
		if typed {
			args = append(args, "-oo", "AUTODETECT_TYPE=YES")
		}
	}
	cmd := exec.CommandContext(ctx, "ogr2ogr", args...)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+pw)
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return 0, 0, fmt.Errorf("ogr2ogr: %w", err)
	}
	rss := float64(cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss) / 1024
	out, err := exec.CommandContext(ctx, "psql", db, "-Atc", "SELECT count(*) FROM "+table).Output()
	if err != nil {
		return 0, rss, fmt.Errorf("counting: %w", err)
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	return n, rss, nil
}

func openMaybeGzip(p string) (io.ReadCloser, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	if !strings.HasSuffix(p, ".gz") {
		return f, nil
	}
	zr, err := gzip.NewReader(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{zr, f}, nil
}

func uncompressedSize(p string) int64 {
	r, err := openMaybeGzip(p)
	if err != nil {
		return 0
	}
	defer r.Close()
	n, _ := io.Copy(io.Discard, r)
	return n
}

func parseSize(s string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "g"):
		mult, s = 1<<30, strings.TrimSuffix(s, "g")
	case strings.HasSuffix(s, "m"):
		mult, s = 1<<20, strings.TrimSuffix(s, "m")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n * mult, err
}
