package importer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/meridian-gis/meridian/workers/importer/geojsonstream"
	"github.com/meridian-gis/meridian/workers/importer/geomenc"
	"github.com/meridian-gis/meridian/workers/importer/internal/textcheck"
)

// staged describes what a loader left in its table.
type staged struct {
	// table holds the rows: j.stage, or j.final for a direct load.
	table tableName
	// direct: the table already has its final shape (typed columns,
	// cartodb_id, typed geom); finish only narrows text columns, indexes
	// and swaps.
	direct bool
	rows   int64
	cols   []stagedCol
	// orderBy is the column holding the source order (1-based row or
	// feature number), which becomes cartodb_id; unused by direct loads.
	orderBy string
	// srid of the staged coordinates; geometries of native staging carry
	// none, GDAL's carry it already (sridSet).
	srid    int
	sridSet bool
	// sourceSRID is the file's coordinate system when it differs from
	// srid (GDAL reprojects while loading); 0: same as srid.
	sourceSRID int
	// geomStats counts geometries by type and dimensions when the loader
	// parsed them (native loads); nil means finish asks the database.
	geomStats map[geomKey]int64
	// outOfRange is the first geometry outside lon/lat bounds, an error
	// only if srid turns out to be 4326.
	outOfRange *InputError
	// hasGeom is false for a GDAL layer without geometry column.
	hasGeom bool
	// sourceSet: sourceSRID is meaningful even when 0 (a GDAL layer whose
	// coordinate system has no EPSG code).
	sourceSet bool
	// declared is the geometry type the source's schema declares (GDAL),
	// 0 when none: a declared Multi type is kept even when every feature
	// happens to be single.
	declared geomenc.Type
}

type stagedCol struct {
	stage  string // column name in the staging table
	name   string // final column name
	source string // field name in the file
	kinds  kind   // native loads: the shapes of the values seen
	// typ is the column's type in the staging table; for native staging
	// "text" (the final type comes from kinds or a hint).
	typ string
	// gdal: typ was chosen by GDAL (keep it unless hinted).
	gdal bool
	// final is the type in the final table, decided by finish.
	final string
}

type geomKey struct {
	t    geomenc.Type
	z, m bool
}

// errRestart aborts a direct load that met a value its typed column
// cannot take without losing its text; the load reruns through staging.
var errRestart = errors.New("importer: direct load needs a restart through staging")

// errTopoJSON reroutes a .json that turned out to be TopoJSON to GDAL.
var errTopoJSON = geojsonstream.ErrTopoJSON

// markTable comments a new table with its import, for CleanupStale.
func (j *job) markTable(ctx context.Context, t tableName) error {
	c := fmt.Sprintf("meridian import %s started %s", j.id, time.Now().UTC().Format(time.RFC3339))
	_, err := j.conn.Exec(ctx, "COMMENT ON TABLE "+t.Sanitized()+" IS '"+c+"'")
	return err
}

// storeGeomUncompressed sets STORAGE EXTERNAL on t's geom: large
// geometries are TOASTed without compression. Coordinates barely compress
// (NE admin-1: 34 MB with pglz, 33 MB without) while pglz costs most of an
// INSERT's time, and uncompressed TOAST lets PostGIS read a geometry's
// bounding box without fetching all of it.
func (j *job) storeGeomUncompressed(ctx context.Context, t tableName) error {
	if _, err := j.conn.Exec(ctx, "ALTER TABLE "+t.Sanitized()+" ALTER COLUMN geom SET STORAGE EXTERNAL"); err != nil {
		return fmt.Errorf("configuring %s: %w", t, err)
	}
	return nil
}

// createNativeStaging creates the UNLOGGED text staging table of a native
// load: source order, geometry without SRID, then attribute columns.
func (j *job) createNativeStaging(ctx context.Context, cols []stagedCol) error {
	var b strings.Builder
	b.WriteString("CREATE UNLOGGED TABLE " + j.stage.Sanitized() + " (_mi_row bigint, geom geometry")
	for _, c := range cols {
		b.WriteString(", " + quoteIdent(c.stage) + " text")
	}
	b.WriteString(")")
	if _, err := j.conn.Exec(ctx, b.String()); err != nil {
		return fmt.Errorf("creating the staging table: %w", err)
	}
	if err := j.storeGeomUncompressed(ctx, j.stage); err != nil {
		return err
	}
	return j.markTable(ctx, j.stage)
}

// columnList renders "(a, b, c)".
func columnList(names ...string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = quoteIdent(n)
	}
	return "(" + strings.Join(q, ", ") + ")"
}

// textErr converts the errors of the text layers (encoding, limits) into
// InputErrors; others pass through.
func textErr(err error) error {
	var ee *textcheck.EncodingError
	switch {
	case errors.As(err, &ee):
		return &InputError{Kind: ErrEncoding, Reason: ee.Reason + " (the file must be UTF-8)", Offset: ee.Offset, HasOffset: true, Line: ee.Line, Err: err}
	case errors.Is(err, textcheck.ErrUTF16):
		return &InputError{Kind: ErrEncoding, Reason: "the file is UTF-16; save it as UTF-8", Err: err}
	}
	return err
}

// lonLatSlack tolerates the float noise real files carry at the edges
// of the world (Natural Earth has 180.00000000000014).
const lonLatSlack = 1e-6

// lonLatOK reports whether a bounding box fits EPSG:4326 bounds.
func lonLatOK(bb [4]float64) bool {
	return bb[0] >= -180-lonLatSlack && bb[2] <= 180+lonLatSlack && bb[1] >= -90-lonLatSlack && bb[3] <= 90+lonLatSlack
}

// lineAt counts the lines of in's content up to offset (for errors only:
// it reads the file again).
func (j *job) lineAt(in *input, offset int64) int64 {
	var read countingReader
	rc, err := j.openStream(in, &read)
	if err != nil {
		return 0
	}
	defer rc.Close()
	line := int64(1)
	buf := make([]byte, 64<<10)
	for offset > 0 {
		n, err := rc.Read(buf[:min(int64(len(buf)), offset)])
		line += int64(bytes.Count(buf[:n], []byte{'\n'}))
		offset -= int64(n)
		if err != nil {
			break
		}
	}
	return line
}
