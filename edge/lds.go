package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/meridian-gis/meridian/control/lds/ldsload"
)

func init() {
	register("lds", "load [DATA_DIR | EXTRACT.osm.pbf ...]",
		"Build the Location Data Services gazetteer and road graph",
		`meridian lds load [DATA_DIR] loads, into schema meridian_lds of the data
database MERIDIAN_LDS_DATABASE_URL, Natural Earth admin-0/admin-1, GeoNames
cities and postal codes, and every OSM extract of DATA_DIR/osm (addresses,
streets, road graph for pgRouting). DATA_DIR defaults to $MERIDIAN_TESTDATA,
else ../shared/data. Arguments naming OSM extracts (.osm.pbf, .osm.bz2, .osm)
load only those regions. Needs osmium (osmium-tool) and, in the database,
postgis and pgrouting. Safe to run again: each part replaces its rows.`,
		needs{}, runLDS)
}

func runLDS(ctx context.Context, cfg *Config, args []string) error {
	if len(args) == 0 || args[0] != "load" {
		return errors.New("usage: meridian lds load [DATA_DIR | EXTRACT.osm.pbf ...]")
	}
	url := cfg.Control.LDS.DatabaseURL
	if url == "" {
		return errors.New("MERIDIAN_LDS_DATABASE_URL is not set: the data database to build the LDS gazetteer in")
	}
	var opts ldsload.Options
	var regions []ldsload.Region
	dir := ""
	for _, a := range args[1:] {
		if st, err := os.Stat(a); err == nil && st.IsDir() {
			dir = a
		} else {
			regions = append(regions, ldsload.Region{File: a})
		}
	}
	if len(regions) > 0 && dir == "" {
		opts.Regions = regions
	} else {
		if dir == "" {
			dir = os.Getenv("MERIDIAN_TESTDATA")
		}
		if dir == "" {
			dir = filepath.Join("..", "shared", "data")
		}
		var err error
		if opts, err = ldsload.Standard(dir); err != nil {
			return err
		}
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("connecting to the LDS database: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	bar := &stageBar{start: time.Now()}
	l := ldsload.New(conn, bar.update, func(format string, a ...any) {
		bar.clear()
		fmt.Fprintf(os.Stderr, format+"\n", a...)
	})
	if err := l.Load(ctx, opts); err != nil {
		bar.clear()
		return err
	}
	bar.clear()
	fmt.Fprintf(os.Stderr, "lds load: done in %s\n", time.Since(bar.start).Round(time.Second))
	return nil
}

// stageBar draws "stage [#####-----] 52%" on stderr.
type stageBar struct {
	start time.Time
	last  time.Time
	drawn bool
}

func (b *stageBar) update(stage string, done, total int64) {
	if time.Since(b.last) < 200*time.Millisecond && done != total {
		return
	}
	b.last = time.Now()
	pct := 0.0
	if total > 0 {
		pct = float64(done) / float64(total)
	}
	const width = 30
	n := int(pct * width)
	fmt.Fprintf(os.Stderr, "\r%-28s [%s%s] %3.0f%% %s", stage, strings.Repeat("#", n), strings.Repeat("-", width-n),
		pct*100, time.Since(b.start).Round(time.Second))
	b.drawn = true
}

func (b *stageBar) clear() {
	if b.drawn {
		fmt.Fprint(os.Stderr, "\r\033[K")
		b.drawn = false
	}
}
