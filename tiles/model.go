package tiles

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/valyala/fasthttp"

	"github.com/meridian-gis/meridian/internal/grant"
	"github.com/meridian-gis/meridian/tiles/internal/catalog"
	"github.com/meridian-gis/meridian/tiles/internal/mvt"
	"github.com/meridian-gis/meridian/tiles/internal/render"
	"github.com/meridian-gis/meridian/tiles/internal/source"
	"github.com/meridian-gis/meridian/tiles/internal/widget"
)

// model answers GET|POST /v3/sql/{conn}/model/{model} (CARTO_API.md §4):
// the widget models over a table or query source (type, source,
// queryParameters, spatialDataColumn), within filters and spatialFilters.
// The source is resolved and granted as a map source is (a query needs a
// grant holding its text, or "*"); the statements run in one READ ONLY
// transaction with statement_timeout SQLTimeout. Answers carry the
// source's Surrogate-Key and a short max-age, so the edge caches GETs and
// purges them with the source.
func (s *Server) model(rc *fasthttp.RequestCtx, conn, model string) {
	claims, err := s.verify(rc)
	if err != nil {
		s.failModel(rc, err)
		return
	}
	if !slices.Contains(widget.Models, model) {
		s.failModel(rc, &apiError{status: http.StatusNotFound, code: "NOT_FOUND",
			msg: "unknown widget model " + strconv.Quote(model) + ": want one of " + strings.Join(widget.Models, ", ")})
		return
	}
	p, err := params(rc)
	if err != nil {
		s.failModel(rc, err)
		return
	}
	spec, err := widgetSpec(conn, p.String("type"), p["source"], p)
	if err != nil {
		s.failModel(rc, err)
		return
	}
	api := widgetAPI(claims)
	if err := allowSpec(claims, api, spec); err != nil {
		s.failModel(rc, err)
		return
	}
	scope, err := widget.ParseScope(p.JSON("filters"), p.String("filtersLogicalOperator"), p.JSON("spatialFilters"),
		p.String("spatialFiltersMode"))
	if err != nil {
		s.failModel(rc, widgetError(err))
		return
	}
	ctx, cancel := s.clientContext(rc, s.cfg.RequestTimeout.D()+s.cfg.SQLTimeout.D(), "widget")
	defer cancel()
	c, err := s.engine.Source(ctx, spec)
	if err == nil {
		err = authorize(claims, api, c)
	}
	if err != nil {
		s.failModel(rc, err)
		return
	}
	plan, err := widget.Build(model, p.JSON("params"), widgetSource(c), scope, widget.Limits{MaxRows: s.cfg.SQLMaxRows, Covers: &s.covers})
	s.answerWidget(ctx, rc, c, plan, err, s.failModel)
}

// answerWidget runs plan on c and answers with its body and c's cache
// headers, or answers planErr (the plan's building error) or the run's
// error with fail.
func (s *Server) answerWidget(ctx context.Context, rc *fasthttp.RequestCtx, c *compiled, plan *widget.Plan, planErr error,
	fail func(*fasthttp.RequestCtx, error)) {
	if planErr != nil {
		fail(rc, widgetError(planErr))
		return
	}
	body, err := s.runWidget(ctx, c, plan)
	if err != nil {
		fail(rc, err)
		return
	}
	s.cacheHeaders(rc, c, false)
	writeJSON(rc, body)
}

// failModel is fail, with the body CARTO's widget client turns into an
// InvalidColumnError for an unknown column: {"error": "Column not found",
// "column_name": …}.
func (s *Server) failModel(rc *fasthttp.RequestCtx, err error) {
	s.fail(rc, err)
	var ce *widget.ColumnError
	if errors.As(err, &ce) && rc.Response.StatusCode() == http.StatusBadRequest {
		b, _ := json.Marshal(struct {
			Error      string `json:"error"`
			ColumnName string `json:"column_name"`
			Status     int    `json:"status"`
			Code       string `json:"code"`
		}{"Column not found", ce.Name, http.StatusBadRequest, "COLUMN_NOT_FOUND"})
		rc.SetBody(b)
	}
}

// widgetSpec builds the Spec of the source a widget or stats request
// names: a table, or a query with its queryParameters (name is the
// parameter value naming either), with its spatial column and type (a
// geometry, or h3 or quadbin cells). Filters are not
// part of it: they change with every widget interaction, while the
// compiled source is shared.
func widgetSpec(conn, typ string, name json.RawMessage, p source.Params) (source.Spec, error) {
	if !grant.ValidConnectionName(conn) {
		return source.Spec{}, &apiError{status: http.StatusNotFound, code: "CONNECTION_NOT_FOUND", msg: "connection not found"}
	}
	sp := source.Params{}
	for _, k := range []string{"queryParameters", "spatialDataColumn", "spatialDataType"} {
		if v, ok := p[k]; ok {
			sp[k] = v
		}
	}
	switch typ {
	case string(source.TypeTable):
		sp["name"] = name
	case string(source.TypeQuery):
		sp["q"] = name
	case "tileset", "raster":
		return source.Spec{}, &apiError{status: http.StatusBadRequest, code: "BAD_REQUEST",
			msg: "widgets on " + typ + " sources are computed by the client from the tiles"}
	case "":
		return source.Spec{}, &apiError{status: http.StatusBadRequest, code: "BAD_REQUEST", msg: "type is required (table or query)"}
	default:
		return source.Spec{}, &apiError{status: http.StatusBadRequest, code: "BAD_REQUEST",
			msg: "source type " + strconv.Quote(typ) + " is not supported (table or query)"}
	}
	return source.ParseSpec(conn, source.Type(typ), sp)
}

// widgetAPI is the API a widget or stats call is checked against, as the
// edge does: maps when the token has it (widgets are called with the
// map's token), else sql.
func widgetAPI(claims *grant.Claims) grant.API {
	if claims.HasAPI(grant.APIMaps) {
		return grant.APIMaps
	}
	return grant.APISQL
}

// allowSpec checks the grant on what the client named before the catalog
// is consulted (see preauthorize).
func allowSpec(claims *grant.Claims, api grant.API, spec source.Spec) error {
	if spec.Type == source.TypeTable {
		return claims.Allow(api, spec.Conn, spec.Name)
	}
	return claims.AllowQuery(api, spec.Conn, spec.Query)
}

// widgetSource describes a compiled source for package widget: a table
// with its catalog columns, or a query with the columns it returns.
func widgetSource(c *compiled) *widget.Source {
	src := c.Source
	ws := &widget.Source{Args: src.Spec.Args()}
	if ix := src.Index; ix != nil {
		return indexWidgetSource(src, ix, ws)
	}
	if t := src.Table; t != nil {
		ws.Schema, ws.Table, ws.Columns, ws.Geoms = t.Schema, t.Name, t.Columns, t.Geoms
		ws.RowIDs = t.Kind == catalog.KindTable || t.Kind == catalog.KindMatView
		return ws
	}
	ws.Query = src.Spec.SQL()
	cols := src.Schema // the spatial column, then every other column…
	if n := len(cols); src.Geom.Shape() == catalog.ShapePoint && n > 1 && cols[n-1].Name == mvt.DensityProp {
		cols = cols[:n-1] // …and, for points, the tiles' density property
	}
	ws.Columns = cols
	ws.Geoms = []catalog.GeomColumn{src.Geom}
	return ws
}

// indexWidgetSource completes ws for a spatial-index source: its rows'
// columns (the cell column among them), not the aggregated ones of its
// tiles.
func indexWidgetSource(src *source.Source, ix *source.Index, ws *widget.Source) *widget.Source {
	ws.Index = &widget.Index{Kind: ix.Kind, Column: ix.Column.Name, Text: ix.Text, DataRes: ix.DataRes}
	ws.Columns = ix.Columns
	if t := src.Table; t != nil {
		ws.Schema, ws.Table, ws.Geoms = t.Schema, t.Name, t.Geoms
		ws.RowIDs = t.Kind == catalog.KindTable || t.Kind == catalog.KindMatView
		return ws
	}
	ws.Query = src.Spec.SQL()
	return ws
}

// widgetError maps package widget's errors to their HTTP answers.
func widgetError(err error) error {
	msg := clientMessage(err)
	switch {
	case errors.Is(err, widget.ErrUnknownModel):
		return &apiError{status: http.StatusNotFound, code: "NOT_FOUND", msg: msg, err: err}
	case errors.Is(err, widget.ErrNotSupported):
		return &apiError{status: http.StatusNotImplemented, code: "NOT_SUPPORTED", msg: msg, err: err}
	case errors.Is(err, widget.ErrTooManyRows):
		return &apiError{status: http.StatusBadRequest, code: "TOO_MANY_ROWS", msg: msg, err: err}
	case errors.Is(err, widget.ErrInvalid):
		return &apiError{status: http.StatusBadRequest, code: "BAD_REQUEST", msg: msg, err: err}
	}
	return err
}

// runWidget runs plan's statements in one READ ONLY transaction with
// statement_timeout SQLTimeout on c's connection, and shapes the answer.
func (s *Server) runWidget(ctx context.Context, c *compiled, plan *widget.Plan) (any, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.SQLTimeout.D()+5*time.Second)
	defer cancel()
	pool, err := s.conns.Pool(ctx, c.Spec.Conn)
	if err != nil {
		return nil, err
	}
	tx, err := pool.BeginTx(ctx, pgx.TxOptions{BeginQuery: render.BeginReadOnly(ctx, s.cfg.SQLTimeout.D())})
	if err != nil {
		return nil, fmt.Errorf("starting read-only transaction: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	res := make([]widget.Result, 0, len(plan.Statements))
	for _, st := range plan.Statements {
		r, err := collect(ctx, tx, st)
		if err != nil {
			var pe *pgconn.PgError
			// Errors of the client's SQL, or of the client's values (class
			// 22, data exceptions), are theirs to read.
			if c.Table == nil || errors.As(err, &pe) && strings.HasPrefix(pe.Code, "22") {
				err = &source.QueryError{Err: err}
			}
			return nil, fmt.Errorf("running widget statement: %w", err)
		}
		res = append(res, r)
	}
	body, err := plan.Response(res)
	if err != nil {
		return nil, widgetError(err)
	}
	return body, nil
}

// collect runs one statement and reads all its rows.
func collect(ctx context.Context, tx pgx.Tx, st widget.Statement) (widget.Result, error) {
	var r widget.Result
	rows, err := tx.Query(ctx, st.SQL, st.Args...)
	if err != nil {
		return r, err
	}
	defer rows.Close()
	for _, f := range rows.FieldDescriptions() {
		r.Columns = append(r.Columns, f.Name)
	}
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return r, err
		}
		r.Rows = append(r.Rows, vals)
	}
	return r, rows.Err()
}
