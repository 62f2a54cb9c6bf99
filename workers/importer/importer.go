package importer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// IfExists values.
const (
	IfExistsFail    = "fail"
	IfExistsReplace = "replace"
	IfExistsAppend  = "append"
)

// Formats accepted in Options.Format (and reported in Result.Format).
const (
	FormatGeoJSON    = "geojson"
	FormatGeoJSONSeq = "geojsonseq"
	FormatCSV        = "csv"
	FormatShapefile  = "shapefile"
	FormatGPKG       = "gpkg"
	FormatKML        = "kml"
	FormatKMZ        = "kmz"
	FormatFGB        = "fgb"
	FormatGPX        = "gpx"
	FormatTopoJSON   = "topojson"
	FormatGML        = "gml"
)

// Source is the file to import.
type Source struct {
	// Path is the file on local disk (uploads are stored first). Required.
	Path string
	// Name is the file's original name, used to detect the format and to
	// name things in messages. Default: the base name of Path.
	Name string
}

// CSVGeometry says where a CSV keeps its geometry. Set either Latitude and
// Longitude, or Column.
type CSVGeometry struct {
	// Latitude and Longitude name the coordinate columns (Y and X in
	// SourceSRID units when it is projected).
	Latitude, Longitude string
	// Column names a column of WKT/EWKT, WKB/EWKB hex or GeoJSON geometry
	// (the encoding is recognized per value). The column itself is not
	// kept as an attribute.
	Column string
}

// Options tune one import. The zero value (plus Table) imports with the
// defaults given field by field.
type Options struct {
	// Table is the destination, "schema.table" or "table" (schema public).
	// Folded to lower case; letters, digits and _ only. Required.
	Table string
	// IfExists says what to do when Table exists: "fail" (default, an
	// ErrTableExists error), "replace" (atomic swap) or "append" (rows
	// inserted in one statement, columns matched by name and cast to the
	// existing types).
	IfExists string
	// Format forces the input format (one of the Format* constants);
	// default: detected from the name and the content's first bytes.
	Format string
	// Layer picks the layer of a multi-layer source (GeoPackage tables,
	// KML folders, GPX waypoints/tracks, TopoJSON objects, shapefiles in
	// one zip). Default: the only layer, or the only non-empty one; with
	// several, Import fails with ErrLayerRequired (Layers lists them).
	Layer string
	// SourceSRID overrides the source's coordinate system (EPSG code), for
	// files that lack or misstate it. Default: what the file says, else
	// 4326.
	SourceSRID int
	// GeometryColumns says where a CSV's geometry is. Default: detected
	// from column names (latitude/lat/y, longitude/lon/lng/x, wkt, geom,
	// the_geom, geometry…) and value shapes.
	GeometryColumns *CSVGeometry
	// CSVDelimiter forces the CSV field delimiter. Default: sniffed among
	// , ; tab |.
	CSVDelimiter rune
	// TypeHints forces column types: column (source or final name) → a
	// PostgreSQL type (text, bigint, integer, double precision, numeric,
	// boolean, date, timestamp, timestamptz, jsonb, uuid…). A value that
	// does not convert fails the import.
	TypeHints map[string]string
	// MaxBytes refuses a file larger than this, and a decompressed stream
	// (gzip, zip) larger than MaxUncompressedBytes. Default: 10 GiB.
	MaxBytes int64
	// MaxUncompressedBytes caps the bytes a gzip or zip input may expand
	// to. Default: 4 × MaxBytes.
	MaxUncompressedBytes int64
	// MaxCompressionRatio refuses archives expanding more than this many
	// times their compressed size, once past 64 MiB expanded. Default: 200.
	MaxCompressionRatio int64
	// MaxFeatureBytes refuses a single GeoJSON feature or CSV row larger
	// than this, bounding memory. Default: 256 MiB.
	MaxFeatureBytes int64
	// ImportID names the staging tables and makes the import idempotent:
	// a re-run with the same ID first drops what a crashed run left, and
	// a run whose swap already committed is not applied twice (Result.
	// AlreadyApplied). Letters, digits, _ and -, at most 40 bytes.
	// Default: random (no idempotence).
	ImportID string
	// TempDir holds unpacked archives and decompressed GDAL inputs.
	// Default: os.TempDir().
	TempDir string
	// OGR2OGR and OGRInfo are the GDAL programs. Default: "ogr2ogr",
	// "ogrinfo" from PATH.
	OGR2OGR, OGRInfo string
	// LockTimeout bounds the wait for readers of the old table at swap
	// time. Default: 60s.
	LockTimeout time.Duration
	// Progress, when set, is called with the import's progress at most
	// about five times per second, from one goroutine at a time.
	Progress func(Progress)
	// Logger receives debug and warning logs. Default: discarded.
	Logger *slog.Logger
}

// Progress is a snapshot of a running import.
type Progress struct {
	// Phase is "reading" (parsing and loading), "finishing" (validity,
	// typing, indexing) or "done".
	Phase string
	// BytesRead of BytesTotal bytes of the file as stored (compressed
	// bytes for gzip input); for GDAL inputs, estimated from its progress.
	BytesRead, BytesTotal int64
	// Rows loaded so far.
	Rows int64
}

// Column describes one column of the imported table.
type Column struct {
	// Name of the column in the table.
	Name string
	// Type is its PostgreSQL type.
	Type string
	// Source is the field name in the file ("" for cartodb_id and geom).
	Source string
}

// Result describes a completed import.
type Result struct {
	// Table is "schema.table".
	Table string
	// Rows imported (appended, for append).
	Rows int64
	// Columns of the table, cartodb_id and geom included.
	Columns []Column
	// GeometryType as in the geometry column's type: "Point",
	// "MultiPolygon", "LineStringZ", "Geometry" for mixed types.
	GeometryType string
	// SRID of the geom column: 4326.
	SRID int
	// SourceSRID is the coordinate system the file was read in.
	SourceSRID int
	// BBox is minX, minY, maxX, maxY of geom (EPSG:4326).
	BBox [4]float64
	// Format detected or forced, and the Layer imported (GDAL sources).
	Format, Layer string
	// InvalidFixed counts geometries repaired with ST_MakeValid.
	InvalidFixed int64
	// Warnings worth showing the user (repairs, mixed types, dropped
	// values).
	Warnings []string
	// AlreadyApplied is true when ImportID had already been applied by an
	// earlier run: nothing was done and only Table and Rows are set.
	AlreadyApplied bool
}

var importIDRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,40}$`)

// job is one running import.
type job struct {
	opts   Options
	pool   *pgxpool.Pool
	conn   *pgx.Conn // dedicated connection, holds the import's advisory lock
	log    *slog.Logger
	target tableName
	id     string // sanitized import id
	stage  tableName
	final  tableName
	hints  map[string]string
	tmp    []string // temp paths to remove

	srcName  string
	srcSize  int64
	format   string
	layer    string
	warnings []string

	progMu   sync.Mutex
	lastProg time.Time
}

// Import loads src into the table opts.Table. See the package doc.
func Import(ctx context.Context, pool *pgxpool.Pool, src Source, opts Options) (res Result, err error) {
	j, err := newJob(pool, src, opts)
	if err != nil {
		return Result{}, err
	}
	defer j.removeTemp()

	if err := j.connect(ctx); err != nil {
		return Result{}, err
	}
	defer j.disconnect(context.WithoutCancel(ctx))

	var schemaOK bool
	if err := j.conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", j.target.Schema).Scan(&schemaOK); err != nil {
		return Result{}, fmt.Errorf("checking schema %s: %w", j.target.Schema, err)
	}
	if !schemaOK {
		return Result{}, fmt.Errorf("%w: schema %q does not exist", ErrInvalidOptions, j.target.Schema)
	}
	if opts.ImportID != "" {
		if rows, applied, err := j.ledgerLookup(ctx); err != nil {
			return Result{}, err
		} else if applied {
			return Result{Table: j.target.String(), Rows: rows, AlreadyApplied: true}, nil
		}
	}
	if err := j.dropStaging(ctx); err != nil {
		return Result{}, err
	}
	defer func() {
		// Whatever happened, no staging table survives this call. The
		// context may be cancelled: clean up on a detached one.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if derr := j.dropStagingFresh(cctx); derr != nil {
			j.log.Warn("dropping staging tables", "err", derr, "import_id", j.id)
		}
	}()
	if j.opts.IfExists == IfExistsFail {
		exists, err := j.tableExists(ctx, j.target)
		if err != nil {
			return Result{}, err
		}
		if exists {
			return Result{}, fmt.Errorf("%w: %s", ErrTableExists, j.target)
		}
	}

	in, err := j.resolve(ctx, src.Path, j.srcName, 0)
	if err != nil {
		return Result{}, err
	}
	j.format = in.format

	var st *staged
	switch in.format {
	case FormatGeoJSON, FormatGeoJSONSeq:
		st, err = j.loadGeoJSON(ctx, in)
		if errors.Is(err, errTopoJSON) {
			in.format = FormatTopoJSON
			j.format = FormatTopoJSON
			if err = j.dropStaging(ctx); err == nil {
				st, err = j.loadGDAL(ctx, in)
			}
		}
	case FormatCSV:
		st, err = j.loadCSV(ctx, in)
	default:
		st, err = j.loadGDAL(ctx, in)
	}
	if err != nil {
		return Result{}, err
	}
	return j.finish(ctx, st)
}

func newJob(pool *pgxpool.Pool, src Source, opts Options) (*job, error) {
	if pool == nil {
		return nil, fmt.Errorf("%w: nil pool", ErrInvalidOptions)
	}
	target, err := parseTableName(opts.Table)
	if err != nil {
		return nil, err
	}
	switch opts.IfExists {
	case "":
		opts.IfExists = IfExistsFail
	case IfExistsFail, IfExistsReplace, IfExistsAppend:
	default:
		return nil, fmt.Errorf("%w: if_exists %q: want fail, replace or append", ErrInvalidOptions, opts.IfExists)
	}
	if opts.SourceSRID < 0 {
		return nil, fmt.Errorf("%w: source SRID %d", ErrInvalidOptions, opts.SourceSRID)
	}
	if g := opts.GeometryColumns; g != nil {
		if (g.Latitude == "") != (g.Longitude == "") || (g.Latitude == "") == (g.Column == "") {
			return nil, fmt.Errorf("%w: geometry columns: set latitude and longitude, or column", ErrInvalidOptions)
		}
	}
	hints := map[string]string{}
	for col, t := range opts.TypeHints {
		ct, ok := canonicalType(t)
		if !ok {
			return nil, fmt.Errorf("%w: type hint %q for column %q: unsupported type", ErrInvalidOptions, t, col)
		}
		hints[col] = ct
	}
	id := opts.ImportID
	if id == "" {
		var b [8]byte
		rand.Read(b[:])
		id = hex.EncodeToString(b[:])
	} else if !importIDRE.MatchString(id) {
		return nil, fmt.Errorf("%w: import ID %q: letters, digits, _ and -, at most 40", ErrInvalidOptions, id)
	}
	j, err := newProbe(src, opts)
	if err != nil {
		return nil, err
	}
	sid := strings.ToLower(strings.ReplaceAll(id, "-", "_"))
	j.pool = pool
	j.log = j.log.With("import_id", id, "table", target.String())
	j.target = target
	j.id = id
	j.stage = tableName{Schema: target.Schema, Name: "_mi_" + sid + "_s"}
	j.final = tableName{Schema: target.Schema, Name: "_mi_" + sid + "_n"}
	j.hints = hints
	if fi, err := os.Stat(src.Path); err == nil && fi.Mode().IsRegular() {
		j.srcSize = fi.Size() // the file as stored: finishing and done report it read
	}
	return j, nil
}

// newProbe is a job that can read the source but has no database.
func newProbe(src Source, opts Options) (*job, error) {
	if opts.Format != "" {
		opts.Format = strings.ToLower(opts.Format)
		if !gdalFormats[opts.Format] && opts.Format != FormatGeoJSON && opts.Format != FormatGeoJSONSeq && opts.Format != FormatCSV {
			return nil, fmt.Errorf("%w: format %q", ErrInvalidOptions, opts.Format)
		}
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = 10 << 30
	}
	if opts.MaxUncompressedBytes <= 0 {
		opts.MaxUncompressedBytes = 4 * opts.MaxBytes
	}
	if opts.MaxCompressionRatio <= 0 {
		opts.MaxCompressionRatio = 200
	}
	if opts.MaxFeatureBytes <= 0 {
		opts.MaxFeatureBytes = 256 << 20
	}
	if opts.TempDir == "" {
		opts.TempDir = os.TempDir()
	}
	if opts.OGR2OGR == "" {
		opts.OGR2OGR = "ogr2ogr"
	}
	if opts.OGRInfo == "" {
		opts.OGRInfo = "ogrinfo"
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = time.Minute
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if src.Path == "" {
		return nil, fmt.Errorf("%w: no source path", ErrInvalidOptions)
	}
	name := src.Name
	if name == "" {
		name = filepath.Base(src.Path)
	}
	return &job{opts: opts, log: log, srcName: name}, nil
}

// Layers lists the layers of src, after unpacking archives, so that a
// caller can offer the choice of Options.Layer (only Format, Layer and the
// size limits of opts matter). GeoJSON and CSV files have one layer, named
// after the file; its feature count is -1 (not counted).
func Layers(ctx context.Context, src Source, opts Options) ([]Layer, error) {
	opts.Layer = ""
	j, err := newProbe(src, opts)
	if err != nil {
		return nil, err
	}
	defer j.removeTemp()
	in, err := j.resolve(ctx, src.Path, j.srcName, 0)
	if err != nil {
		var ie *InputError
		if errors.As(err, &ie) && ie.Kind == ErrLayerRequired {
			// Several files in an archive: each is a layer.
			return j.archiveLayers(ctx, src)
		}
		return nil, err
	}
	switch in.format {
	case FormatGeoJSON, FormatGeoJSONSeq, FormatCSV:
		base := strings.TrimSuffix(in.name, filepath.Ext(in.name))
		return []Layer{{Name: base, GeometryType: "Unknown (any)", Features: -1}}, nil
	}
	ls, err := j.ogrLayers(ctx, in.path)
	if err != nil {
		return nil, err
	}
	out := make([]Layer, len(ls))
	for i, l := range ls {
		out[i] = l.Layer
	}
	return out, nil
}

// connect takes a dedicated connection out of the pool (its session
// settings and advisory lock must not leak to other users) and takes the
// import's lock, so two deliveries of the same import never interleave.
func (j *job) connect(ctx context.Context) error {
	pc, err := j.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("connecting: %w", err)
	}
	j.conn = pc.Hijack()
	var ok bool
	if err := j.conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", j.lockKey()).Scan(&ok); err != nil {
		j.conn.Close(ctx)
		return fmt.Errorf("locking the import: %w", err)
	}
	if !ok {
		j.conn.Close(ctx)
		return fmt.Errorf("%w: %s", ErrImportRunning, j.id)
	}
	// Session settings for the load: no statement timeout inherited from
	// the pool's defaults, deterministic date parsing, quiet notices
	// (ST_IsValid emits one per invalid geometry), staging writes need no
	// synchronous commit.
	_, err = j.conn.Exec(ctx, `SET statement_timeout = 0; SET idle_in_transaction_session_timeout = 0;
		SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET client_min_messages = warning;
		SET synchronous_commit = off; SET maintenance_work_mem = '256MB'`)
	if err != nil {
		j.conn.Close(ctx)
		return fmt.Errorf("configuring the import session: %w", err)
	}
	return nil
}

// disconnect releases the import lock (synchronously, so that a retry
// right after this call finds it free) and closes the connection.
func (j *job) disconnect(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if !j.conn.IsClosed() {
		j.conn.Exec(ctx, "SELECT pg_advisory_unlock($1)", j.lockKey())
	}
	j.conn.Close(ctx)
}

func (j *job) lockKey() int64 { return lockKey("import:" + j.target.Schema + ":" + j.id) }

// lockKey maps a name to an advisory lock key.
func lockKey(name string) int64 {
	h := fnv.New64a()
	io.WriteString(h, "meridian/importer/"+name)
	return int64(h.Sum64())
}

func (j *job) tableExists(ctx context.Context, t tableName) (bool, error) {
	var ok bool
	err := j.conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", t.Sanitized()).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("checking table %s: %w", t, err)
	}
	return ok, nil
}

// dropStaging drops this import's staging tables (left by a crash, or by
// a failed attempt).
func (j *job) dropStaging(ctx context.Context) error {
	if _, err := j.conn.Exec(ctx, "DROP TABLE IF EXISTS "+j.stage.Sanitized()+", "+j.final.Sanitized()); err != nil {
		return fmt.Errorf("dropping staging tables: %w", err)
	}
	return nil
}

// dropStagingFresh is dropStaging on a new connection: the import's own
// may be broken by a cancelled query.
func (j *job) dropStagingFresh(ctx context.Context) error {
	if !j.conn.IsClosed() {
		if err := j.dropStaging(ctx); err == nil {
			return nil
		}
	}
	_, err := j.pool.Exec(ctx, "DROP TABLE IF EXISTS "+j.stage.Sanitized()+", "+j.final.Sanitized())
	return err
}

func (j *job) removeTemp() {
	for _, p := range j.tmp {
		os.RemoveAll(p)
	}
}

func (j *job) warn(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	j.warnings = append(j.warnings, msg)
	j.log.Info("import warning", "warning", msg)
}

// progress reports p, at most every 200ms unless force.
func (j *job) progress(p Progress, force bool) {
	if j.opts.Progress == nil {
		return
	}
	j.progMu.Lock()
	now := time.Now()
	if !force && now.Sub(j.lastProg) < 200*time.Millisecond {
		j.progMu.Unlock()
		return
	}
	j.lastProg = now
	j.progMu.Unlock()
	j.opts.Progress(p)
}

// timed logs, at debug level, how long a phase took: defer j.timed("x")().
func (j *job) timed(phase string) func() {
	start := time.Now()
	return func() { j.log.Debug("import phase", "phase", phase, "elapsed", time.Since(start)) }
}
