package tiles

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/paulmach/orb/encoding/ewkb"
	"github.com/paulmach/orb/encoding/wkt"
	"github.com/paulmach/orb/geojson"
	"github.com/valyala/fasthttp"

	"github.com/meridian-gis/meridian/internal/grant"
	"github.com/meridian-gis/meridian/tiles/internal/catalog"
	"github.com/meridian-gis/meridian/tiles/internal/render"
	"github.com/meridian-gis/meridian/tiles/internal/source"
	"github.com/meridian-gis/meridian/tiles/internal/widget"
)

// sqlQuery answers GET|POST /v3/sql/{conn}/query (CARTO_API.md §3.1): the
// query runs in a READ ONLY transaction with statement_timeout SQLTimeout.
// format=json (default) answers {rows, schema, meta}, built in memory and
// capped at SQLMaxRows; format=ndjson, csv and geojson stream row by row.
// Geometry cells are GeoJSON (a JSON string in json rows, an object in
// ndjson and geojson) and WKT in csv. The query is cancelled when the
// client closes its connection, until the last row is written
// (clientContext).
func (s *Server) sqlQuery(rc *fasthttp.RequestCtx, conn string) {
	claims, err := s.verify(rc)
	if err != nil {
		s.fail(rc, err)
		return
	}
	if !grant.ValidConnectionName(conn) {
		s.fail(rc, &apiError{status: http.StatusNotFound, code: "CONNECTION_NOT_FOUND", msg: "connection not found"})
		return
	}
	p, err := params(rc)
	if err != nil {
		s.fail(rc, err)
		return
	}
	spec, err := source.ParseQuery(p)
	if err != nil {
		s.fail(rc, err)
		return
	}
	q, args := spec.SQL(), spec.Args()
	if err := claims.AllowQuery(grant.APISQL, conn, spec.Query); err != nil {
		s.fail(rc, err)
		return
	}
	format := strings.ToLower(p.String("format"))
	switch format {
	case "":
		format = "json"
	case "json", "ndjson", "csv", "geojson":
	default:
		s.fail(rc, &apiError{status: http.StatusBadRequest, code: "BAD_REQUEST", msg: "format must be json, ndjson, csv or geojson"})
		return
	}

	ctx, cancel := s.clientContext(rc, s.cfg.SQLTimeout.D()+5*time.Second, "sql")
	run, err := s.startQuery(ctx, conn, q, args)
	if err != nil {
		cancel()
		s.fail(rc, err)
		return
	}
	rc.Response.Header.Set("Cache-Control", "no-store")
	if format == "json" {
		defer cancel()
		defer run.close()
		body, err := run.jsonBody(s.cfg.SQLMaxRows)
		if err != nil {
			s.fail(rc, err)
			return
		}
		rc.SetContentType("application/json")
		rc.SetBody(body)
		return
	}
	if name := p.String("filename"); name != "" {
		rc.Response.Header.Set("Content-Disposition", `attachment; filename="`+sanitizeFilename(name)+`"`)
	}
	switch format {
	case "ndjson":
		rc.SetContentType("application/x-ndjson")
	case "csv":
		rc.SetContentType("text/csv; charset=utf-8")
	case "geojson":
		rc.SetContentType("application/geo+json")
	}
	rc.SetBodyStreamWriter(func(w *bufio.Writer) {
		defer cancel()
		defer run.close()
		if err := run.stream(w, format); err != nil {
			if context.Cause(ctx) == errClientGone {
				s.log.Debug("streaming SQL result: the client left", "conn", conn, "format", format, "err", err)
			} else {
				s.log.Warn("streaming SQL result", "conn", conn, "format", format, "err", err)
			}
		}
	})
}

// queryRun is a running SQL API query.
type queryRun struct {
	conn    *pgxpool.Conn
	tx      pgx.Tx
	rows    pgx.Rows
	fields  []pgconn.FieldDescription
	geomOID uint32
	schema  []schemaField
	ctx     context.Context
}

type schemaField struct {
	Name string       `json:"name"`
	Type catalog.Type `json:"type"`
}

func (s *Server) startQuery(ctx context.Context, connName, q string, args []any) (*queryRun, error) {
	pool, err := s.conns.Pool(ctx, connName)
	if err != nil {
		return nil, err
	}
	cat, err := s.engine.Catalog(ctx, connName)
	if err != nil {
		return nil, err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("acquiring connection: %w", err)
	}
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{BeginQuery: render.BeginReadOnly(ctx, s.cfg.SQLTimeout.D())})
	if err != nil {
		conn.Release()
		return nil, fmt.Errorf("starting read-only transaction: %w", err)
	}
	rows, err := tx.Query(ctx, q, args...)
	if err == nil {
		err = rows.Err()
	}
	if err != nil {
		tx.Rollback(context.WithoutCancel(ctx))
		conn.Release()
		return nil, &source.QueryError{Err: err}
	}
	r := &queryRun{conn: conn, tx: tx, rows: rows, fields: rows.FieldDescriptions(), geomOID: cat.GeometryOID, ctx: ctx}
	tm := conn.Conn().TypeMap()
	for _, f := range r.fields {
		t := catalog.TypeUnknown
		switch {
		case f.DataTypeOID == cat.GeometryOID || f.DataTypeOID == cat.GeographyOID:
			t = catalog.TypeGeometry
		default:
			if pt, ok := tm.TypeForOID(f.DataTypeOID); ok {
				name := pt.Name
				cat := ""
				if strings.HasPrefix(name, "_") {
					cat = "A"
				}
				t = catalog.MapType(name, cat)
			}
		}
		r.schema = append(r.schema, schemaField{Name: f.Name, Type: t})
	}
	return r, nil
}

func (r *queryRun) close() {
	r.rows.Close()
	r.tx.Rollback(context.WithoutCancel(r.ctx))
	r.conn.Release()
}

// values returns the current row as JSON-friendly values (widget.Plain:
// integers beyond 2^53 as decimal strings); geometry columns become orb
// geometries (or their raw text when undecodable).
func (r *queryRun) values() ([]any, error) {
	vals, err := r.rows.Values()
	if err != nil {
		return nil, err
	}
	for i, v := range vals {
		switch x := v.(type) {
		default:
			vals[i] = widget.Plain(v)
		case time.Time:
			// Kept whole: every format writes it to the microsecond.
		case pgtype.Numeric:
			if f, err := x.Float64Value(); err == nil && f.Valid {
				vals[i] = f.Float64
			}
		case string:
			if r.fields[i].DataTypeOID == r.geomOID && r.geomOID != 0 {
				if b, err := hex.DecodeString(x); err == nil {
					if g, _, err := ewkb.Unmarshal(b); err == nil {
						vals[i] = geojson.NewGeometry(g)
					}
				}
			}
		}
	}
	return vals, nil
}

func (r *queryRun) jsonBody(maxRows int) ([]byte, error) {
	var rows []json.RawMessage
	for r.rows.Next() {
		if len(rows) >= maxRows {
			return nil, &apiError{status: http.StatusBadRequest, code: "TOO_MANY_ROWS",
				msg: "the result has more than " + strconv.Itoa(maxRows) + " rows: add a LIMIT, or use format=ndjson, csv or geojson, which stream"}
		}
		vals, err := r.values()
		if err != nil {
			return nil, &source.QueryError{Err: err}
		}
		obj := make(map[string]any, len(vals))
		for i, v := range vals {
			if g, ok := v.(*geojson.Geometry); ok {
				b, _ := g.MarshalJSON()
				v = string(b) // CARTO-style: geometry as a GeoJSON string
			}
			obj[r.fields[i].Name] = v
		}
		b, err := json.Marshal(orderedRow{r.fields, obj})
		if err != nil {
			return nil, err
		}
		rows = append(rows, b)
	}
	if err := r.rows.Err(); err != nil {
		return nil, &source.QueryError{Err: err}
	}
	if rows == nil {
		rows = []json.RawMessage{}
	}
	return json.Marshal(struct {
		Rows   []json.RawMessage `json:"rows"`
		Schema []schemaField     `json:"schema"`
		Meta   map[string]any    `json:"meta"`
	}{rows, r.schema, map[string]any{"cacheHit": false, "location": "local", "totalBytesProcessed": "0", "rowCount": len(rows)}})
}

// orderedRow marshals a row with its columns in query order.
type orderedRow struct {
	fields []pgconn.FieldDescription
	vals   map[string]any
}

func (o orderedRow) MarshalJSON() ([]byte, error) {
	b := []byte{'{'}
	for i, f := range o.fields {
		if i > 0 {
			b = append(b, ',')
		}
		k, _ := json.Marshal(f.Name)
		b = append(b, k...)
		b = append(b, ':')
		v, err := json.Marshal(o.vals[f.Name])
		if err != nil {
			return nil, err
		}
		b = append(b, v...)
	}
	return append(b, '}'), nil
}

// stream writes the rows to w in format, flushing as it goes.
func (r *queryRun) stream(w *bufio.Writer, format string) error {
	var cw *csv.Writer
	switch format {
	case "csv":
		cw = csv.NewWriter(w)
		names := make([]string, len(r.fields))
		for i, f := range r.fields {
			names[i] = f.Name
		}
		cw.Write(names)
	case "geojson":
		w.WriteString(`{"type":"FeatureCollection","features":[`)
	}
	n := 0
	for r.rows.Next() {
		vals, err := r.values()
		if err != nil {
			return err
		}
		switch format {
		case "ndjson":
			b, err := json.Marshal(orderedRow{r.fields, rowMap(r.fields, vals)})
			if err != nil {
				return err
			}
			w.Write(b)
			w.WriteByte('\n')
		case "csv":
			rec := make([]string, len(vals))
			for i, v := range vals {
				rec[i] = csvCell(v)
			}
			cw.Write(rec)
		case "geojson":
			if n > 0 {
				w.WriteByte(',')
			}
			b, err := r.feature(vals)
			if err != nil {
				return err
			}
			w.Write(b)
		}
		n++
		if n%256 == 0 {
			if cw != nil {
				cw.Flush()
			}
			if err := w.Flush(); err != nil {
				return err // the client went away
			}
		}
	}
	err := r.rows.Err()
	switch format {
	case "csv":
		cw.Flush()
	case "geojson":
		if err == nil {
			w.WriteString("]}\n")
		}
	case "ndjson":
		if err != nil {
			b, _ := json.Marshal(map[string]string{"error": err.Error()})
			w.Write(b)
			w.WriteByte('\n')
		}
	}
	w.Flush()
	return err
}

func rowMap(fields []pgconn.FieldDescription, vals []any) map[string]any {
	m := make(map[string]any, len(vals))
	for i, v := range vals {
		m[fields[i].Name] = v
	}
	return m
}

// feature makes a GeoJSON Feature of a row: the first geometry column is
// the geometry, the other columns the properties.
func (r *queryRun) feature(vals []any) ([]byte, error) {
	f := geojson.Feature{Type: "Feature", Properties: geojson.Properties{}}
	var geom json.RawMessage = []byte("null")
	found := false
	for i, v := range vals {
		if g, ok := v.(*geojson.Geometry); ok && !found {
			b, err := g.MarshalJSON()
			if err != nil {
				return nil, err
			}
			geom, found = b, true
			continue
		}
		f.Properties[r.fields[i].Name] = v
	}
	props, err := json.Marshal(f.Properties)
	if err != nil {
		return nil, err
	}
	return []byte(`{"type":"Feature","geometry":` + string(geom) + `,"properties":` + string(props) + `}`), nil
}

func csvCell(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case *geojson.Geometry:
		return wkt.MarshalString(x.Geometry())
	case time.Time:
		return x.Format(time.RFC3339Nano)
	case []byte:
		return hex.EncodeToString(x)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case map[string]any, []any:
		b, _ := json.Marshal(x)
		return string(b)
	}
	return fmt.Sprint(v)
}

func sanitizeFilename(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 32 || r == '"' || r == '\\' || r == '/' || r > 126 {
			return '_'
		}
		return r
	}, s)
}
