package workers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/meridian-gis/meridian/internal/broker"
	"github.com/meridian-gis/meridian/internal/dataconn"
	"github.com/meridian-gis/meridian/internal/invalidate"
	"github.com/meridian-gis/meridian/internal/pgdb"
)

// WorkspaceEvent is the payload of TopicWorkspaceEvents: a dataset
// (table) of a connection changed and its metadata must be refreshed.
type WorkspaceEvent struct {
	// Connection is the data connection's name.
	Connection string `json:"connection"`
	// Table is "schema.table".
	Table string `json:"table"`
	// ImportID is the import that changed it, if any.
	ImportID string `json:"import_id,omitempty"`
}

// PublishEvent publishes ev on TopicWorkspaceEvents.
func PublishEvent(ctx context.Context, pub invalidate.Publisher, ev WorkspaceEvent) error {
	return publishEvent(ctx, pub, ev)
}

func publishEvent(ctx context.Context, pub invalidate.Publisher, ev WorkspaceEvent) error {
	data, _ := json.Marshal(ev)
	if _, err := pub.Publish(ctx, broker.TopicWorkspaceEvents, data, nil); err != nil {
		return fmt.Errorf("publishing workspace event for %s/%s: %w", ev.Connection, ev.Table, err)
	}
	return nil
}

// EventHandler handles TopicWorkspaceEvents: it measures the dataset
// (TableStats) and upserts its metadata in the sources table, bumping the
// source's generation. Re-running it only refreshes the numbers.
type EventHandler struct {
	j   *Jobs
	log *slog.Logger
}

// statsTimeout bounds the measurement of one table.
const statsTimeout = 5 * time.Minute

// Handle is the broker.Handler.
func (h *EventHandler) Handle(ctx context.Context, m *broker.Message) error {
	var ev WorkspaceEvent
	if err := json.Unmarshal(m.Data, &ev); err != nil || ev.Connection == "" || ev.Table == "" {
		h.log.Warn("dropping malformed workspace event", "id", m.ID, "data", truncate(string(m.Data), 200))
		return nil
	}
	log := h.log.With("conn", ev.Connection, "table", ev.Table)
	pool, err := h.j.d.Conns.Pool(ctx, ev.Connection)
	if errors.Is(err, dataconn.ErrNotFound) {
		log.Info("workspace event for a connection that no longer exists")
		return nil
	}
	if err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(ctx, statsTimeout)
	defer cancel()
	st, err := TableStats(sctx, pool, ev.Table)
	if errors.Is(err, ErrNoTable) || pgdb.IsUndefinedTable(err) { // dropped since, or while measuring
		log.Info("workspace event for a table that no longer exists")
		return nil
	}
	if err != nil {
		return fmt.Errorf("measuring %s/%s: %w", ev.Connection, ev.Table, err)
	}
	st.ImportID = ev.ImportID
	js, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encoding stats: %w", err)
	}
	tag, err := h.j.d.Meta.Exec(ctx, `INSERT INTO sources (connection_id, name, stats)
		SELECT c.id, $2, $3 FROM connections c WHERE c.name = $1
		ON CONFLICT (connection_id, name) DO UPDATE
		SET stats = EXCLUDED.stats, generation = sources.generation + 1, updated_at = now()`, ev.Connection, st.Table, js)
	if err != nil {
		return fmt.Errorf("saving stats of %s/%s: %w", ev.Connection, ev.Table, err)
	}
	if tag.RowsAffected() == 0 {
		log.Info("workspace event for a connection that no longer exists")
		return nil
	}
	log.Info("dataset metadata refreshed", "rows", st.Rows, "geometry", st.GeometryType, "attributes", len(st.Tilestats.Layers[0].Attributes))
	return nil
}

// ErrNoTable: the table to measure does not exist.
var ErrNoTable = errors.New("workers: table not found")

// DatasetStats is a dataset's metadata, kept in sources.stats.
type DatasetStats struct {
	// Table is "schema.table".
	Table string `json:"table"`
	// Rows in the table (an estimate from the planner's statistics when
	// RowsEstimated, for tables above 5 million rows).
	Rows          int64 `json:"rows"`
	RowsEstimated bool  `json:"rowsEstimated,omitempty"`
	// BBox is minX, minY, maxX, maxY in EPSG:4326, absent for a table
	// without geometries.
	BBox []float64 `json:"bbox,omitempty"`
	// GeometryColumn, GeometryType (PostGIS: POINT, MULTIPOLYGON,
	// GEOMETRY…) and SRID of the first geometry column, if any.
	GeometryColumn string `json:"geometryColumn,omitempty"`
	GeometryType   string `json:"geometryType,omitempty"`
	SRID           int    `json:"srid,omitempty"`
	// Columns of the table with their PostgreSQL types.
	Columns []ColumnInfo `json:"columns"`
	// Tilestats are the column statistics as TileJSON tilestats (one
	// layer named "default").
	Tilestats Tilestats `json:"tilestats"`
	// Sampled is true when the attribute statistics come from a sample
	// (about a million rows) rather than every row.
	Sampled bool `json:"sampled,omitempty"`
	// ImportID is the import that last changed the table, if known.
	ImportID string `json:"importId,omitempty"`
	// RefreshedAt is when these numbers were measured.
	RefreshedAt time.Time `json:"refreshedAt"`
}

// ColumnInfo is one column of a table.
type ColumnInfo struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// Tilestats is the TileJSON tilestats object (CARTO_API.md §2.2).
type Tilestats struct {
	LayerCount int              `json:"layerCount"`
	Layers     []TilestatsLayer `json:"layers"`
}

// TilestatsLayer describes one layer.
type TilestatsLayer struct {
	Layer          string               `json:"layer"`
	Count          int64                `json:"count"`
	Geometry       string               `json:"geometry,omitempty"`
	AttributeCount int                  `json:"attributeCount"`
	Attributes     []TilestatsAttribute `json:"attributes"`
}

// TilestatsAttribute describes one column: Number with min, max, avg
// and sum; String and Boolean with their most frequent categories;
// Timestamp with min and max (ISO 8601).
type TilestatsAttribute struct {
	Attribute  string     `json:"attribute"`
	Type       string     `json:"type"`
	Min        any        `json:"min,omitempty"`
	Max        any        `json:"max,omitempty"`
	Avg        *float64   `json:"avg,omitempty"`
	Sum        *float64   `json:"sum,omitempty"`
	Categories []Category `json:"categories,omitempty"`
}

// Category is one value of a String or Boolean attribute and how many
// rows (of the sample, when sampled) hold it.
type Category struct {
	Category  any   `json:"category"`
	Frequency int64 `json:"frequency"`
}

// Limits of TableStats.
const (
	maxStatsColumns = 100     // attributes measured
	topCategories   = 10      // categories kept per attribute
	sampleRows      = 1 << 20 // rows above which attributes are sampled
	estimateRows    = 5000000 // rows above which counts and extents are estimated
)

// TableStats measures table ("schema.table" or "table") on pool: row
// count, extent, geometry type and per-column statistics.
func TableStats(ctx context.Context, pool *pgxpool.Pool, table string) (*DatasetStats, error) {
	schema, name, ok := strings.Cut(table, ".")
	if !ok {
		schema, name = "public", table
	}
	ident := pgx.Identifier{schema, name}.Sanitize()
	var exists bool
	if err := pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", ident).Scan(&exists); err != nil {
		return nil, fmt.Errorf("looking up %s: %w", table, err)
	}
	if !exists {
		return nil, fmt.Errorf("%w: %s", ErrNoTable, table)
	}
	st := &DatasetStats{Table: schema + "." + name, RefreshedAt: time.Now().UTC()}

	type col struct{ name, typ, typname, cat string }
	rows, err := pool.Query(ctx, `SELECT a.attname, format_type(a.atttypid, a.atttypmod), t.typname, t.typcategory
		FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
		WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`, ident)
	if err != nil {
		return nil, fmt.Errorf("listing columns of %s: %w", table, err)
	}
	var cols []col
	for rows.Next() {
		var c col
		if err := rows.Scan(&c.name, &c.typ, &c.typname, &c.cat); err != nil {
			rows.Close()
			return nil, fmt.Errorf("listing columns of %s: %w", table, err)
		}
		cols = append(cols, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing columns of %s: %w", table, err)
	}

	// Rows: exact unless the planner says the table is huge.
	var est float64
	if err := pool.QueryRow(ctx, "SELECT reltuples FROM pg_class WHERE oid = $1::regclass", ident).Scan(&est); err != nil {
		return nil, fmt.Errorf("estimating rows of %s: %w", table, err)
	}
	if est > estimateRows {
		st.Rows, st.RowsEstimated = int64(est), true
	} else if err := pool.QueryRow(ctx, "SELECT count(*) FROM "+ident).Scan(&st.Rows); err != nil {
		return nil, fmt.Errorf("counting rows of %s: %w", table, err)
	}
	from := ident
	if st.Rows > sampleRows {
		pct := math.Max(100*float64(sampleRows)/float64(st.Rows), 0.01)
		from = fmt.Sprintf("%s TABLESAMPLE SYSTEM (%.4f)", ident, pct)
		st.Sampled = true
	}

	// Geometry: the first geometry column (geom or the_geom preferred).
	var attrs []col
	for _, c := range cols {
		st.Columns = append(st.Columns, ColumnInfo{Name: c.name, Type: c.typ})
		if c.typname == "geometry" {
			if st.GeometryColumn == "" || c.name == "geom" || c.name == "the_geom" && st.GeometryColumn != "geom" {
				st.GeometryColumn = c.name
			}
			continue
		}
		attrs = append(attrs, c)
	}
	layer := TilestatsLayer{Layer: "default", Count: st.Rows, Attributes: []TilestatsAttribute{}}
	if st.GeometryColumn != "" {
		dominant, err := geometryStats(ctx, pool, st, schema, name, ident, from)
		if err != nil {
			return nil, err
		}
		layer.Geometry = tilestatsGeometry(dominant)
	}

	if len(attrs) > maxStatsColumns {
		attrs = attrs[:maxStatsColumns]
	}
	var numeric []int
	for i, c := range attrs {
		a := TilestatsAttribute{Attribute: c.name}
		switch {
		case c.cat == "N":
			a.Type = "Number"
			numeric = append(numeric, i)
		case c.cat == "B":
			a.Type = "Boolean"
		case c.cat == "D":
			a.Type = "Timestamp"
		case c.cat == "S" || c.typname == "uuid":
			a.Type = "String"
		default:
			continue // json, arrays, ranges…: no statistics
		}
		layer.Attributes = append(layer.Attributes, a)
	}
	if err := attributeStats(ctx, pool, from, layer.Attributes); err != nil {
		return nil, err
	}
	layer.AttributeCount = len(layer.Attributes)
	st.Tilestats = Tilestats{LayerCount: 1, Layers: []TilestatsLayer{layer}}
	return st, nil
}

// geometryStats fills the geometry fields of st and returns the dominant
// geometry type of the data.
func geometryStats(ctx context.Context, pool *pgxpool.Pool, st *DatasetStats, schema, name, ident, from string) (string, error) {
	geom := pgx.Identifier{st.GeometryColumn}.Sanitize()
	err := pool.QueryRow(ctx, `SELECT type, srid FROM geometry_columns
		WHERE f_table_schema = $1 AND f_table_name = $2 AND f_geometry_column = $3`, schema, name, st.GeometryColumn).
		Scan(&st.GeometryType, &st.SRID)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("reading the geometry type of %s: %w", st.Table, err)
	}
	dominant := st.GeometryType
	if st.GeometryType == "" || strings.EqualFold(st.GeometryType, "GEOMETRY") {
		// Mixed or unconstrained: the most frequent type in the data.
		var t *string
		if err := pool.QueryRow(ctx, "SELECT upper(GeometryType("+geom+")) FROM "+from+" WHERE "+geom+
			" IS NOT NULL GROUP BY 1 ORDER BY count(*) DESC LIMIT 1").Scan(&t); err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return "", fmt.Errorf("reading the geometry types of %s: %w", st.Table, err)
		}
		if t != nil {
			dominant = *t
		}
		if st.GeometryType == "" {
			st.GeometryType = "GEOMETRY"
		}
	}
	extent := "ST_Extent(" + geom + ")"
	if st.RowsEstimated {
		extent = fmt.Sprintf("ST_EstimatedExtent(%s, %s, %s)", quoteLiteral(schema), quoteLiteral(name), quoteLiteral(st.GeometryColumn))
	}
	box := "ST_SetSRID(" + extent + "::geometry, " + fmt.Sprint(st.SRID) + ")"
	if st.SRID != 0 && st.SRID != 4326 {
		box = "ST_Transform(" + box + ", 4326)"
	}
	q := "SELECT ST_XMin(b), ST_YMin(b), ST_XMax(b), ST_YMax(b) FROM (SELECT " + box + " AS b"
	if !st.RowsEstimated {
		q += " FROM " + ident
	}
	q += ") s"
	var x0, y0, x1, y1 *float64
	if err := pool.QueryRow(ctx, q).Scan(&x0, &y0, &x1, &y1); err != nil {
		return "", fmt.Errorf("measuring the extent of %s: %w", st.Table, err)
	}
	if x0 != nil {
		st.BBox = []float64{*x0, *y0, *x1, *y1}
	}
	return dominant, nil
}

// attributeStats fills the statistics of attrs from rows of from.
func attributeStats(ctx context.Context, pool *pgxpool.Pool, from string, attrs []TilestatsAttribute) error {
	// Numbers and timestamps: one scan for all of them.
	var sel []string
	var idx []int
	for i, a := range attrs {
		c := pgx.Identifier{a.Attribute}.Sanitize()
		switch a.Type {
		case "Number":
			sel = append(sel, "min("+c+")::float8", "max("+c+")::float8", "avg("+c+")::float8", "sum("+c+")::float8")
			idx = append(idx, i)
		case "Timestamp":
			sel = append(sel, "to_json(min("+c+"))#>>'{}'", "to_json(max("+c+"))#>>'{}'")
			idx = append(idx, i)
		}
	}
	if len(sel) > 0 {
		vals := make([]any, len(sel))
		ptrs := make([]any, len(sel))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := pool.QueryRow(ctx, "SELECT "+strings.Join(sel, ", ")+" FROM "+from).Scan(ptrs...); err != nil {
			return fmt.Errorf("measuring columns: %w", err)
		}
		k := 0
		for _, i := range idx {
			a := &attrs[i]
			if a.Type == "Number" {
				a.Min, a.Max = finite(vals[k]), finite(vals[k+1])
				if f, ok := finite(vals[k+2]).(float64); ok {
					a.Avg = &f
				}
				if f, ok := finite(vals[k+3]).(float64); ok {
					a.Sum = &f
				}
				k += 4
			} else {
				a.Min, a.Max = vals[k], vals[k+1]
				k += 2
			}
		}
	}
	// Strings and booleans: the most frequent values, one scan each.
	for i := range attrs {
		a := &attrs[i]
		if a.Type != "String" && a.Type != "Boolean" {
			continue
		}
		c := pgx.Identifier{a.Attribute}.Sanitize()
		v := c + "::text"
		if a.Type == "Boolean" {
			v = c
		}
		rows, err := pool.Query(ctx, fmt.Sprintf("SELECT %s, count(*) FROM %s WHERE %s IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT %d",
			v, from, c, topCategories))
		if err != nil {
			return fmt.Errorf("measuring column %s: %w", a.Attribute, err)
		}
		for rows.Next() {
			var cat Category
			if err := rows.Scan(&cat.Category, &cat.Frequency); err != nil {
				rows.Close()
				return fmt.Errorf("measuring column %s: %w", a.Attribute, err)
			}
			a.Categories = append(a.Categories, cat)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("measuring column %s: %w", a.Attribute, err)
		}
	}
	return nil
}

// finite returns v unless it is a NaN or infinite float (not JSON).
func finite(v any) any {
	if f, ok := v.(float64); ok && (math.IsNaN(f) || math.IsInf(f, 0)) {
		return nil
	}
	return v
}

// tilestatsGeometry maps a PostGIS geometry type to the tilestats
// geometry: Point, LineString or Polygon.
func tilestatsGeometry(t string) string {
	t = strings.ToUpper(t)
	t = strings.TrimRight(strings.TrimPrefix(t, "MULTI"), "ZM")
	switch t {
	case "POINT":
		return "Point"
	case "LINESTRING":
		return "LineString"
	case "POLYGON":
		return "Polygon"
	}
	return ""
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
