package tilebench

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Defaults of Layer, as Martin and ANCHORS.md use them.
const (
	DefaultExtent = 4096
	DefaultBuffer = 64
	// DefaultLimit is the feature limit per tile of the ANCHORS.md
	// measurements.
	DefaultLimit = 50000
	// DefaultLayerName is the MVT layer name (the engine's as well).
	DefaultLayerName = "default"
)

// Layer describes the table one Martin-style statement renders.
type Layer struct {
	// Schema of the table. Default: public.
	Schema string
	// Table name. Required.
	Table string
	// Geom is the geometry column. Default: geom.
	Geom string
	// SRID of the geometry column. Default: 4326. Anything but 3857 is
	// transformed, and the tile envelope is transformed to it for the
	// index test (Martin's handling of 4326 sources).
	SRID int
	// Columns are the properties, in order. Optional.
	Columns []string
	// Extent and Buffer of the tile, in tile units. Defaults: 4096, 64.
	Extent, Buffer int
	// Limit caps the features per tile; negative means none. Default:
	// DefaultLimit.
	Limit int
	// Name is the MVT layer name. Default: DefaultLayerName.
	Name string
}

func (l *Layer) setDefaults() {
	if l.Schema == "" {
		l.Schema = "public"
	}
	if l.Geom == "" {
		l.Geom = "geom"
	}
	if l.SRID == 0 {
		l.SRID = 4326
	}
	if l.Extent == 0 {
		l.Extent = DefaultExtent
	}
	if l.Buffer == 0 {
		l.Buffer = DefaultBuffer
	}
	if l.Limit == 0 {
		l.Limit = DefaultLimit
	}
	if l.Name == "" {
		l.Name = DefaultLayerName
	}
}

// SQL returns the statement that renders one tile of l the way Martin
// does: one statement whose tile address is bound ($1 = z, $2 = x,
// $3 = y, int4), so a prepared plan serves every tile; `&&` against
// ST_TileEnvelope with margin => buffer/extent; ST_AsMVTGeom of the
// geometry transformed to 3857, clipped at the buffer; an optional LIMIT;
// no compression. It returns one row with one bytea column (empty when no
// feature falls in the tile).
func (l Layer) SQL() (string, error) {
	l.setDefaults()
	var errs []error
	if l.Table == "" {
		errs = append(errs, errors.New("no table"))
	}
	if l.Extent < 1 || l.Buffer < 0 || l.Buffer > l.Extent {
		errs = append(errs, fmt.Errorf("extent %d and buffer %d: want 0 <= buffer <= extent", l.Extent, l.Buffer))
	}
	if l.SRID < 0 {
		errs = append(errs, fmt.Errorf("srid %d", l.SRID))
	}
	if strings.ContainsAny(l.Name, `'\`) {
		errs = append(errs, fmt.Errorf("layer name %q: no quotes or backslashes", l.Name))
	}
	if err := errors.Join(errs...); err != nil {
		return "", fmt.Errorf("building tile SQL: %w", err)
	}
	geom := pgx.Identifier{l.Geom}.Sanitize()
	env := "ST_TileEnvelope($1, $2, $3)"
	margin := strconv.FormatFloat(float64(l.Buffer)/float64(l.Extent), 'g', -1, 64)
	filter := "ST_TileEnvelope($1, $2, $3, margin => " + margin + ")"
	mvtGeom := geom
	if l.SRID != 3857 {
		filter = "ST_Transform(" + filter + ", " + strconv.Itoa(l.SRID) + ")"
		mvtGeom = "ST_Transform(" + geom + ", 3857)"
	}
	var b strings.Builder
	b.WriteString("SELECT ST_AsMVT(t, '" + l.Name + "', " + strconv.Itoa(l.Extent) + ", 'geom') FROM (SELECT ")
	b.WriteString("ST_AsMVTGeom(" + mvtGeom + ", " + env + ", " + strconv.Itoa(l.Extent) + ", " + strconv.Itoa(l.Buffer) + ", true) AS geom")
	for _, c := range l.Columns {
		b.WriteString(", " + pgx.Identifier{c}.Sanitize())
	}
	b.WriteString(" FROM " + pgx.Identifier{l.Schema, l.Table}.Sanitize())
	b.WriteString(" WHERE " + geom + " && " + filter)
	if l.Limit > 0 {
		b.WriteString(" LIMIT " + strconv.Itoa(l.Limit))
	}
	b.WriteString(") AS t")
	return b.String(), nil
}

// LayerOf returns the Layer of dataset d with the defaults of ANCHORS.md.
func LayerOf(d Dataset) Layer {
	return Layer{Table: d.Table, Columns: d.Columns}
}
