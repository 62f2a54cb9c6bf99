// Package catalog serves the Data Explorer's view of a data connection
// under /workspace-api/connections/{name}/: schemas, tables (geometry
// column and type, estimated rows, size), columns and types, sample rows;
// and, for editors, renaming and dropping tables (the change is announced
// as an invalidation, so no cached tile of the old table survives).
//
// Every query runs on the data connection (never the metadata database),
// reading in read-only transactions with a statement timeout; identifiers
// are passed as parameters or quoted with pgx.Identifier.
package catalog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/meridian-gis/meridian/control/audit"
	"github.com/meridian-gis/meridian/control/authn"
	"github.com/meridian-gis/meridian/control/httpapi"
	"github.com/meridian-gis/meridian/internal/dataconn"
	"github.com/meridian-gis/meridian/internal/identity"
	"github.com/meridian-gis/meridian/internal/invalidate"
)

// Deps are the Catalog API's collaborators.
type Deps struct {
	Log  *slog.Logger
	Meta *pgxpool.Pool
	// Pools opens data connections.
	Pools *dataconn.Pools
	// Notifier announces renamed and dropped tables. Optional.
	Notifier *invalidate.Notifier
	// ClientIP names the caller's address for the audit log.
	ClientIP func(*http.Request) string
	// Timeout bounds one catalog query. Default: 15s.
	Timeout time.Duration
}

type api struct{ d Deps }

// Routes registers the Catalog API on mux.
func Routes(mux *http.ServeMux, d Deps) {
	if d.Timeout == 0 {
		d.Timeout = 15 * time.Second
	}
	a := &api{d}
	h := func(fn func(w http.ResponseWriter, r *http.Request) error) http.HandlerFunc {
		return httpapi.Handler(d.Log, fn)
	}
	mux.HandleFunc("GET /workspace-api/connections/{conn}/schemas", h(a.schemas))
	mux.HandleFunc("GET /workspace-api/connections/{conn}/schemas/{schema}/tables", h(a.tables))
	mux.HandleFunc("GET /workspace-api/connections/{conn}/tables/{table}", h(a.table))
	mux.HandleFunc("GET /workspace-api/connections/{conn}/tables/{table}/sample", h(a.sample))
	mux.HandleFunc("PATCH /workspace-api/connections/{conn}/tables/{table}", h(a.rename))
	mux.HandleFunc("DELETE /workspace-api/connections/{conn}/tables/{table}", h(a.drop))
}

// hidden schemas: the system's and Meridian's own.
const hiddenSchemas = `nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast', 'topology', 'meridian_overviews', 'meridian_import')
	AND nspname NOT LIKE 'pg_temp%' AND nspname NOT LIKE 'pg_toast_temp%'`

// pool returns the data pool of the path's connection if the caller may use it.
func (a *api) pool(r *http.Request, min identity.Role) (identity.Principal, string, *pgxpool.Pool, error) {
	p, err := authn.User(r, min)
	if err != nil {
		return p, "", nil, err
	}
	conn := r.PathValue("conn")
	ok, err := dataconn.MayUse(r.Context(), a.d.Meta, p.OrgID, p.UserID, conn)
	if err != nil {
		return p, "", nil, fmt.Errorf("catalog: %w", err)
	}
	if !ok {
		return p, "", nil, httpapi.NotFound("connection")
	}
	pool, err := a.d.Pools.Pool(r.Context(), conn)
	if err != nil {
		return p, "", nil, &httpapi.Error{Status: http.StatusBadGateway, Code: "CONNECTION_FAILED", Msg: "cannot reach the data connection " + conn + "; test it under Connections", Err: err}
	}
	return p, conn, pool, nil
}

// read runs fn in a read-only transaction with the statement timeout.
func (a *api) read(ctx context.Context, pool *pgxpool.Pool, fn func(pgx.Tx) error) error {
	ctx, cancel := context.WithTimeout(ctx, a.d.Timeout)
	defer cancel()
	return pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL statement_timeout = `+strconv.FormatInt(a.d.Timeout.Milliseconds(), 10)); err != nil {
			return err
		}
		return fn(tx)
	})
}

// dataErr maps data-side errors to answers.
func dataErr(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "42P01", "3F000":
			return httpapi.NotFound("table")
		case "42501":
			return httpapi.Forbidden("the connection's database role may not do this: " + pe.Message)
		case "57014":
			return &httpapi.Error{Status: http.StatusGatewayTimeout, Code: "TIMEOUT", Msg: "the catalog query took too long", Quiet: true}
		case "42P07":
			return httpapi.Conflict("a table with this name exists")
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &httpapi.Error{Status: http.StatusGatewayTimeout, Code: "TIMEOUT", Msg: "the catalog query took too long", Quiet: true}
	}
	return err
}

// Schema is a schema with its number of tables.
type Schema struct {
	Name   string `json:"name"`
	Tables int    `json:"tables"`
}

func (a *api) schemas(w http.ResponseWriter, r *http.Request) error {
	_, _, pool, err := a.pool(r, identity.RoleViewer)
	if err != nil {
		return err
	}
	out := []Schema{}
	err = a.read(r.Context(), pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(r.Context(), `SELECT n.nspname, count(c.oid) FILTER (WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f'))
			FROM pg_namespace n LEFT JOIN pg_class c ON c.relnamespace = n.oid
			WHERE `+hiddenSchemas+` AND has_schema_privilege(n.oid, 'USAGE')
			GROUP BY n.nspname ORDER BY n.nspname`)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Schema, error) {
			var s Schema
			return s, row.Scan(&s.Name, &s.Tables)
		})
		return err
	})
	if err != nil {
		return dataErr(err)
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"schemas": out})
	return nil
}

// Table describes a table, view or materialized view.
type Table struct {
	Name           string   `json:"name"`   // schema.table
	Schema         string   `json:"schema"` //
	Table          string   `json:"table"`
	Kind           string   `json:"kind"` // table, view, materialized_view, foreign_table
	GeometryColumn string   `json:"geometryColumn,omitempty"`
	GeometryType   string   `json:"geometryType,omitempty"`
	SRID           int      `json:"srid,omitempty"`
	EstimatedRows  int64    `json:"estimatedRows"`
	SizeBytes      int64    `json:"sizeBytes"`
	Columns        []Column `json:"columns,omitempty"`
}

// Column is a column and its type.
type Column struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	Nullable bool   `json:"nullable"`
}

const tableSQL = `SELECT n.nspname, c.relname,
	CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized_view' WHEN 'f' THEN 'foreign_table' ELSE 'table' END,
	coalesce(g.f_geometry_column, ''), coalesce(g.type, ''), coalesce(g.srid, 0),
	greatest(c.reltuples, 0)::bigint, CASE WHEN c.relkind IN ('r', 'm', 'p') THEN pg_total_relation_size(c.oid) ELSE 0 END
	FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	LEFT JOIN LATERAL (SELECT f_geometry_column, type, srid FROM geometry_columns gc
		WHERE gc.f_table_schema = n.nspname AND gc.f_table_name = c.relname ORDER BY f_geometry_column LIMIT 1) g ON true
	WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f') AND has_table_privilege(c.oid, 'SELECT') AND `

func scanTable(row pgx.Row) (Table, error) {
	var t Table
	err := row.Scan(&t.Schema, &t.Table, &t.Kind, &t.GeometryColumn, &t.GeometryType, &t.SRID, &t.EstimatedRows, &t.SizeBytes)
	t.Name = t.Schema + "." + t.Table
	return t, err
}

func (a *api) tables(w http.ResponseWriter, r *http.Request) error {
	_, _, pool, err := a.pool(r, identity.RoleViewer)
	if err != nil {
		return err
	}
	schema := r.PathValue("schema")
	out := []Table{}
	err = a.read(r.Context(), pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(r.Context(), tableSQL+`n.nspname = $1 AND NOT c.relispartition AND `+hiddenSchemas+` ORDER BY c.relname LIMIT 5000`, schema)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Table, error) { return scanTable(row) })
		return err
	})
	if err != nil {
		return dataErr(err)
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"tables": out})
	return nil
}

// identRE is a plain SQL identifier; anything else must be double-quoted
// in the path, as in "My Schema"."Odd.Name".
var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_$]{0,62}$`)

// splitName parses schema.table (each part plain or double-quoted).
func splitName(s string) (schema, table string, err error) {
	var parts []string
	for len(s) > 0 && len(parts) < 3 {
		var part string
		if s[0] == '"' {
			end := 1
			var b strings.Builder
			for ; end < len(s); end++ {
				if s[end] == '"' {
					if end+1 < len(s) && s[end+1] == '"' {
						b.WriteByte('"')
						end++
						continue
					}
					break
				}
				b.WriteByte(s[end])
			}
			if end >= len(s) {
				return "", "", httpapi.BadRequest("table %q: unterminated quoted name", s)
			}
			part, s = b.String(), s[end+1:]
		} else {
			i := strings.IndexByte(s, '.')
			if i < 0 {
				i = len(s)
			}
			part, s = s[:i], s[i:]
			if !identRE.MatchString(part) {
				return "", "", httpapi.BadRequest("table: %q is not a plain identifier; double-quote it", part)
			}
			part = strings.ToLower(part)
		}
		if part == "" || len(part) > 63 {
			return "", "", httpapi.BadRequest("table: empty or over-long name part")
		}
		parts = append(parts, part)
		if s == "" {
			break
		}
		if s[0] != '.' {
			return "", "", httpapi.BadRequest("table: expected schema.table")
		}
		s = s[1:]
	}
	if len(parts) != 2 || s != "" {
		return "", "", httpapi.BadRequest("table: expected schema.table, e.g. public.countries")
	}
	return parts[0], parts[1], nil
}

func (a *api) describe(ctx context.Context, tx pgx.Tx, schema, table string) (Table, error) {
	t, err := scanTable(tx.QueryRow(ctx, tableSQL+`n.nspname = $1 AND c.relname = $2 AND `+hiddenSchemas, schema, table))
	if errors.Is(err, pgx.ErrNoRows) {
		return t, httpapi.NotFound("table")
	}
	if err != nil {
		return t, err
	}
	rows, err := tx.Query(ctx, `SELECT a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull
		FROM pg_attribute a WHERE a.attrelid = (quote_ident($1) || '.' || quote_ident($2))::regclass AND a.attnum > 0 AND NOT a.attisdropped
		ORDER BY a.attnum`, schema, table)
	if err != nil {
		return t, err
	}
	t.Columns, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Column, error) {
		var c Column
		return c, row.Scan(&c.Name, &c.Type, &c.Nullable)
	})
	return t, err
}

func (a *api) table(w http.ResponseWriter, r *http.Request) error {
	_, _, pool, err := a.pool(r, identity.RoleViewer)
	if err != nil {
		return err
	}
	schema, name, err := splitName(r.PathValue("table"))
	if err != nil {
		return err
	}
	var t Table
	err = a.read(r.Context(), pool, func(tx pgx.Tx) error {
		t, err = a.describe(r.Context(), tx, schema, name)
		return err
	})
	if err != nil {
		return dataErr(err)
	}
	httpapi.WriteJSON(w, http.StatusOK, t)
	return nil
}

// sample answers the first rows (limit ≤ 100, default 10); geometries as
// GeoJSON, long text cut to 1,000 characters.
func (a *api) sample(w http.ResponseWriter, r *http.Request) error {
	_, _, pool, err := a.pool(r, identity.RoleViewer)
	if err != nil {
		return err
	}
	schema, name, err := splitName(r.PathValue("table"))
	if err != nil {
		return err
	}
	limit := 10
	if s := r.URL.Query().Get("limit"); s != "" {
		if limit, err = strconv.Atoi(s); err != nil || limit < 1 || limit > 100 {
			return httpapi.BadRequest("limit: 1 to 100")
		}
	}
	var t Table
	var out []map[string]any
	err = a.read(r.Context(), pool, func(tx pgx.Tx) error {
		if t, err = a.describe(r.Context(), tx, schema, name); err != nil {
			return err
		}
		sel := make([]string, 0, len(t.Columns))
		for _, c := range t.Columns {
			id := pgx.Identifier{c.Name}.Sanitize()
			switch {
			case strings.HasPrefix(c.Type, "geometry") || strings.HasPrefix(c.Type, "geography"):
				sel = append(sel, "ST_AsGeoJSON("+id+", 6)::json AS "+id)
			case c.Type == "bytea":
				sel = append(sel, "length("+id+") AS "+id)
			default:
				sel = append(sel, "left("+id+"::text, 1000) AS "+id)
			}
		}
		if len(sel) == 0 {
			out = []map[string]any{}
			return nil
		}
		rows, err := tx.Query(r.Context(), "SELECT "+strings.Join(sel, ", ")+" FROM "+pgx.Identifier{schema, name}.Sanitize()+" LIMIT "+strconv.Itoa(limit))
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, pgx.RowToMap)
		return err
	})
	if err != nil {
		return dataErr(err)
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"columns": t.Columns, "rows": out})
	return nil
}

type renameReq struct {
	Name string `json:"name"`
}

func (a *api) rename(w http.ResponseWriter, r *http.Request) error {
	p, conn, pool, err := a.pool(r, identity.RoleEditor)
	if err != nil {
		return err
	}
	schema, name, err := splitName(r.PathValue("table"))
	if err != nil {
		return err
	}
	var req renameReq
	if err := httpapi.Decode(w, r, &req, 4<<10); err != nil {
		return err
	}
	if !identRE.MatchString(req.Name) {
		return httpapi.BadRequest("name: a plain identifier of letters, digits and _, at most 63 characters (the schema stays)")
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.d.Timeout)
	defer cancel()
	var t Table
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := a.describe(ctx, tx, schema, name); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "ALTER TABLE "+pgx.Identifier{schema, name}.Sanitize()+" RENAME TO "+pgx.Identifier{req.Name}.Sanitize()); err != nil {
			return err
		}
		t, err = a.describe(ctx, tx, schema, req.Name)
		return err
	})
	if err != nil {
		return dataErr(err)
	}
	a.changed(r, p, conn, "table.renamed", schema+"."+name, map[string]any{"to": t.Name}, schema+"."+name, t.Name)
	httpapi.WriteJSON(w, http.StatusOK, t)
	return nil
}

func (a *api) drop(w http.ResponseWriter, r *http.Request) error {
	p, conn, pool, err := a.pool(r, identity.RoleEditor)
	if err != nil {
		return err
	}
	schema, name, err := splitName(r.PathValue("table"))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.d.Timeout)
	defer cancel()
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		t, err := a.describe(ctx, tx, schema, name)
		if err != nil {
			return err
		}
		kind := map[string]string{"view": "VIEW", "materialized_view": "MATERIALIZED VIEW", "foreign_table": "FOREIGN TABLE"}[t.Kind]
		if kind == "" {
			kind = "TABLE"
		}
		_, err = tx.Exec(ctx, "DROP "+kind+" "+pgx.Identifier{schema, name}.Sanitize())
		return err
	})
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "2BP01" {
		return httpapi.Conflict("other objects depend on this table (views, foreign keys): " + pe.Message)
	}
	if err != nil {
		return dataErr(err)
	}
	a.changed(r, p, conn, "table.dropped", schema+"."+name, nil, schema+"."+name)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// changed audits a table change and announces it, so caches drop the
// table's tiles. A failed announcement is logged: the change happened.
func (a *api) changed(r *http.Request, p identity.Principal, conn, action, target string, detail map[string]any, tables ...string) {
	audit.Recorder{DB: a.d.Meta, Log: a.d.Log, ClientIP: a.d.ClientIP}.Request(r, p.OrgID, p.UserID, action, conn+":"+target, detail)
	if a.d.Notifier != nil {
		if err := a.d.Notifier.Tables(r.Context(), conn, action, tables...); err != nil {
			a.d.Log.Warn("announcing a table change failed; caches keep old tiles until their TTL", "conn", conn, "err", err)
		}
	}
}
