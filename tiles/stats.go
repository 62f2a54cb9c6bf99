package tiles

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/valyala/fasthttp"

	"github.com/meridian-gis/meridian/tiles/internal/catalog"
	"github.com/meridian-gis/meridian/tiles/internal/source"
	"github.com/meridian-gis/meridian/tiles/internal/widget"
)

// statsAPI answers the Stats API (CARTO_API.md §4.5), GET|POST
//
//	/v3/stats/{conn}/{table}/{column}          a table's column
//	/v3/stats/{conn}/{column}?q=…              a query's column (queryParameters)
//
// within filters (and spatialFilters): the extent of a geometry column
// (widgetSource.getExtent), or the statistics of another (fetchMap's
// tilestats); see widget.Stats for the bodies. Grants, transaction and
// cache headers are the model API's.
func (s *Server) statsAPI(rc *fasthttp.RequestCtx, rest []byte) {
	claims, err := s.verify(rc)
	if err != nil {
		s.fail(rc, err)
		return
	}
	conn, rest, _ := bytes.Cut(rest, []byte("/"))
	first, second, named := bytes.Cut(rest, []byte("/"))
	if len(first) == 0 || named && (len(second) == 0 || bytes.IndexByte(second, '/') >= 0) {
		s.fail(rc, &apiError{status: http.StatusNotFound, code: "NOT_FOUND",
			msg: "not found: want /v3/stats/{connection}/{table}/{column} or /v3/stats/{connection}/{column}?q=…"})
		return
	}
	p, err := params(rc)
	if err != nil {
		s.fail(rc, err)
		return
	}
	column := string(first)
	typ, name := string(source.TypeQuery), p["q"]
	if named {
		column = string(second)
		typ = string(source.TypeTable)
		name, _ = json.Marshal(string(first))
	} else if p.String("q") == "" {
		s.fail(rc, &apiError{status: http.StatusBadRequest, code: "BAD_REQUEST",
			msg: "q is required for a query source (or name the table: /v3/stats/{connection}/{table}/{column})"})
		return
	}
	// The source's spatial column: spatialDataColumn, else the column
	// itself when it is a geometry (getExtent), else geom.
	geoms := []string{p.String("spatialDataColumn")}
	if geoms[0] == "" {
		geoms = []string{column}
		if column != "geom" {
			geoms = append(geoms, "geom")
		}
	}
	api := widgetAPI(claims)
	ctx, cancel := s.clientContext(rc, s.cfg.RequestTimeout.D()+s.cfg.SQLTimeout.D(), "stats")
	defer cancel()
	var c *compiled
	for i, g := range geoms {
		p["spatialDataColumn"], _ = json.Marshal(g)
		spec, err := widgetSpec(string(conn), typ, name, p)
		if err == nil {
			err = allowSpec(claims, api, spec)
		}
		if err == nil {
			c, err = s.engine.Source(ctx, spec)
		}
		if err == nil {
			err = authorize(claims, api, c)
		}
		if err != nil {
			retry := i+1 < len(geoms) && (errors.Is(err, catalog.ErrNoGeometry) || errors.Is(err, catalog.ErrUnknownColumn))
			if retry {
				continue
			}
			s.fail(rc, err)
			return
		}
		break
	}
	scope, err := widget.ParseScope(p.JSON("filters"), p.String("filtersLogicalOperator"), p.JSON("spatialFilters"),
		p.String("spatialFiltersMode"))
	if err != nil {
		s.fail(rc, widgetError(err))
		return
	}
	plan, err := widget.Stats(widgetSource(c), scope, column)
	s.answerWidget(ctx, rc, c, plan, err, s.fail)
}
