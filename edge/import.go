package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/meridian-gis/meridian/internal/dataconn"
	"github.com/meridian-gis/meridian/internal/invalidate"
	"github.com/meridian-gis/meridian/workers"
	"github.com/meridian-gis/meridian/workers/importer"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "import",
		Usage: "FILE --table T [--connection local] [--if-exists fail|replace|append] [--format F]",
		Short: "Import a geospatial file into a table of a data connection",
		Long: `Loads FILE (GeoJSON, GeoJSONSeq/NDJSON, CSV, zipped Shapefile, GeoPackage,
KML/KMZ, FlatGeobuf, GPX, TopoJSON, GML; gzip accepted) into a PostGIS table
of a registered data connection, directly (no worker involved), then tells
the edge and tiles nodes that the table changed. Progress goes to stderr.
Needs MERIDIAN_DATABASE_URL and MERIDIAN_SECRET_KEY (the connection's
credentials are in the metadata database).

  meridian import places.geojson --table public.places
  meridian import stores.csv --table stores --if-exists replace --lat y --lon x
  meridian import world.gpkg --table countries --layer countries --connection warehouse`,
		CobraFunc: importCommand,
	})
}

type importFlagsKey struct{}

func importCommand(cmd *cobra.Command) {
	f := cmd.Flags()
	f.String("config", "", "JSON configuration file (MERIDIAN_* environment variables override it)")
	f.String("table", "", "destination table, schema.table or table (schema public); required")
	f.String("connection", "local", "data connection name")
	f.String("if-exists", "fail", "when the table exists: fail, replace (atomic swap) or append")
	f.String("format", "", "force the format: geojson, geojsonseq, csv, shapefile, gpkg, kml, kmz, fgb, gpx, topojson, gml")
	f.String("layer", "", "layer of a multi-layer source (GeoPackage table, KML folder…)")
	f.Int("srid", 0, "source coordinate system (EPSG code) when the file lacks or misstates it")
	f.String("lat", "", "CSV latitude column (with --lon)")
	f.String("lon", "", "CSV longitude column (with --lat)")
	f.String("geom-column", "", "CSV column holding WKT, WKB hex or GeoJSON geometries")
	f.String("delimiter", "", "CSV delimiter (default: sniffed)")
	f.StringArray("type", nil, "column type hint COLUMN=TYPE, repeatable (e.g. --type zip=text)")
	cmd.Args = cobra.ExactArgs(1)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		path, _ := cmd.Flags().GetString("config")
		return runCommand("import", path, needs{db: true, secret: true}, func(ctx context.Context, cfg *Config, args []string) error {
			return runImport(context.WithValue(ctx, importFlagsKey{}, cmd), cfg, args)
		}, args)
	}
}

func runImport(ctx context.Context, cfg *Config, args []string) error {
	f := ctx.Value(importFlagsKey{}).(*cobra.Command).Flags()
	str := func(name string) string { v, _ := f.GetString(name); return v }
	opts := importer.Options{
		Table:    str("table"),
		IfExists: str("if-exists"),
		Format:   str("format"),
		Layer:    str("layer"),
	}
	opts.SourceSRID, _ = f.GetInt("srid")
	if opts.Table == "" {
		return errors.New("--table is required, e.g. --table public.places")
	}
	lat, lon, geom := str("lat"), str("lon"), str("geom-column")
	switch {
	case lat != "" || lon != "":
		if lat == "" || lon == "" || geom != "" {
			return errors.New("--lat and --lon go together, without --geom-column")
		}
		opts.GeometryColumns = &importer.CSVGeometry{Latitude: lat, Longitude: lon}
	case geom != "":
		opts.GeometryColumns = &importer.CSVGeometry{Column: geom}
	}
	if d := []rune(str("delimiter")); len(d) == 1 {
		opts.CSVDelimiter = d[0]
	} else if len(d) > 1 {
		return errors.New("--delimiter: want one character")
	}
	types, _ := f.GetStringArray("type")
	for _, t := range types {
		col, typ, ok := strings.Cut(t, "=")
		if !ok || col == "" || typ == "" {
			return fmt.Errorf("--type %q: want COLUMN=TYPE", t)
		}
		if opts.TypeHints == nil {
			opts.TypeHints = map[string]string{}
		}
		opts.TypeHints[col] = typ
	}
	file := args[0]
	if _, err := os.Stat(file); err != nil {
		return fmt.Errorf("reading %s: %w", file, err)
	}
	conn := str("connection")

	nd, err := openNode(ctx, cfg, "import", needs{db: true, secret: true}, true)
	if err != nil {
		return err
	}
	defer nd.close()
	pcfg := workers.WritablePools()
	pcfg.ApplicationName = "meridian-import"
	pools := dataconn.NewPools(dataconn.New(nd.meta, nd.keyring), pcfg, nd.log.With("component", "dataconn"))
	defer pools.Close()
	pool, err := pools.Pool(ctx, conn)
	if err != nil {
		if errors.Is(err, dataconn.ErrNotFound) {
			return fmt.Errorf("connection %q not found (meridian connection list)", conn)
		}
		return err
	}

	bar := newProgressBar(os.Stderr, isTerminal(os.Stderr))
	opts.Progress = bar.update
	opts.Logger = nd.log
	start := time.Now()
	res, err := importer.Import(ctx, pool, importer.Source{Path: file}, opts)
	bar.finish()
	if err != nil {
		if errors.Is(err, importer.ErrTableExists) {
			return fmt.Errorf("%w (use --if-exists replace or append)", err)
		}
		return err
	}
	var size int64
	if fi, err := os.Stat(file); err == nil {
		size = fi.Size()
	}
	fmt.Printf("imported %d rows into %s on %s (%s, %d columns, %s) in %v, %s read\n", res.Rows, res.Table, conn,
		res.GeometryType, len(res.Columns), res.Format, time.Since(start).Round(time.Millisecond), byteSize(size))
	for _, w := range res.Warnings {
		fmt.Printf("warning: %s\n", w)
	}
	// Tell the edges and tiles nodes, and the workers (dataset metadata).
	if err := invalidate.New(nd.meta, nd.broker).Tables(ctx, conn, "meridian import", res.Table); err != nil {
		return fmt.Errorf("the table is imported, but announcing the change failed (cached tiles may be stale): %w", err)
	}
	if err := workers.PublishEvent(ctx, nd.broker, workers.WorkspaceEvent{Connection: conn, Table: res.Table}); err != nil {
		nd.log.Warn("publishing the workspace event", "err", err)
	}
	return nil
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// progressBar draws an import's progress on a terminal (one line redrawn
// with \r, at most five times a second) or, elsewhere, prints a line every
// few seconds.
type progressBar struct {
	w     io.Writer
	tty   bool
	start time.Time

	mu    sync.Mutex
	last  time.Time
	phase string
	width int
	drawn bool
}

func newProgressBar(w io.Writer, tty bool) *progressBar {
	return &progressBar{w: w, tty: tty, start: time.Now()}
}

func (b *progressBar) update(p importer.Progress) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	every := 3 * time.Second
	if b.tty {
		every = 200 * time.Millisecond
	}
	if p.Phase == b.phase && now.Sub(b.last) < every {
		return
	}
	b.phase, b.last = p.Phase, now
	line := renderProgress(p, now.Sub(b.start))
	if !b.tty {
		fmt.Fprintln(b.w, line)
		return
	}
	pad := ""
	if n := b.width - len(line); n > 0 {
		pad = strings.Repeat(" ", n)
	}
	b.width = len(line)
	b.drawn = true
	fmt.Fprint(b.w, "\r"+line+pad)
}

// finish ends the terminal line.
func (b *progressBar) finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.tty && b.drawn {
		fmt.Fprintln(b.w)
	}
}

// renderProgress formats "reading  12.0 MiB / 40.0 MiB  30%  120000 rows
// 4.0 MiB/s  40000 rows/s".
func renderProgress(p importer.Progress, elapsed time.Duration) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%-9s %s", p.Phase, byteSize(p.BytesRead))
	if p.BytesTotal > 0 {
		fmt.Fprintf(&sb, " / %s  %3.0f%%", byteSize(p.BytesTotal), 100*float64(p.BytesRead)/float64(p.BytesTotal))
	}
	fmt.Fprintf(&sb, "  %d rows", p.Rows)
	if s := elapsed.Seconds(); s > 0.5 {
		fmt.Fprintf(&sb, "  %s/s  %.0f rows/s", byteSize(int64(float64(p.BytesRead)/s)), float64(p.Rows)/s)
	}
	return sb.String()
}

func byteSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
