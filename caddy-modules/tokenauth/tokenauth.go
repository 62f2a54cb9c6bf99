// Package tokenauth is the edge's access-token check, the Caddy handler
// http.handlers.meridian_auth. Placed before the cache on the API routes,
// it verifies the caller's token offline (signature, expiry, revocation,
// allowed API, referer), refuses early when the request names a source the
// token does not grant, and hands the cache an authorizer so that a stored
// response is never served to a caller without a grant for its sources.
// The origin (the tiles engine) checks grants again on every miss.
package tokenauth

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/meridian-gis/meridian/caddy-modules/edgeapp"
	"github.com/meridian-gis/meridian/internal/cachetag"
	"github.com/meridian-gis/meridian/internal/grant"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler checks access tokens on Meridian's API routes.
type Handler struct {
	// Prefix is where the CARTO-compatible API is mounted. Default: /api.
	Prefix string `json:"prefix,omitempty"`

	app     *edgeapp.App
	logger  *zap.Logger
	results *prometheus.CounterVec
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.meridian_auth", New: func() caddy.Module { return new(Handler) }}
}

// Provision finds the meridian app and registers metrics.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	if h.Prefix == "" {
		h.Prefix = "/api"
	}
	h.Prefix = strings.TrimSuffix(h.Prefix, "/")
	app, err := ctx.App("meridian")
	if err != nil {
		return err
	}
	h.app = app.(*edgeapp.App)
	h.results = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "meridian", Subsystem: "edge_auth", Name: "requests_total",
		Help: "Token checks at the edge, by result.",
	}, []string{"result"})
	if err := ctx.GetMetricsRegistry().Register(h.results); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return err
		}
		h.results = are.ExistingCollector.(*prometheus.CounterVec)
	}
	return nil
}

// ServeHTTP checks the token and calls next when it allows the request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if r.Method == http.MethodOptions { // CORS preflight carries no token
		return next.ServeHTTP(w, r)
	}
	rt := parseRoute(r.URL.Path, h.Prefix)
	if rt.api == "" {
		return next.ServeHTTP(w, r)
	}
	tok := token(r)
	if tok == "" {
		return h.refuse(w, http.StatusUnauthorized, "UNAUTHORIZED", "Token not defined", nil)
	}
	claims, err := h.app.Tokens().Verify(r.Context(), tok, time.Now())
	if err != nil {
		return h.refuse(w, http.StatusUnauthorized, "UNAUTHORIZED", tokenMessage(err), err)
	}
	api := rt.api
	if api == apiStats { // widgets and stats are called with the map's token
		api = grant.APIMaps
		if !claims.HasAPI(api) {
			api = grant.APISQL
		}
	}
	if !claims.HasAPI(api) {
		return h.refuse(w, http.StatusForbidden, "FORBIDDEN", "Token not allowed for the "+string(api)+" API", nil)
	}
	if err := claims.CheckReferer(referer(r)); err != nil {
		return h.refuse(w, http.StatusForbidden, "FORBIDDEN", "Referer not allowed by this token", err)
	}
	if rt.conn != "" {
		q := r.URL.Query()
		switch {
		case rt.sqlParam && q.Get("q") != "":
			err = claims.AllowQuery(api, rt.conn, q.Get("q"))
		case rt.nameParam && q.Get("name") != "":
			err = claims.Allow(api, rt.conn, q.Get("name"))
		case rt.table != "":
			err = claims.Allow(api, rt.conn, rt.table)
		}
		if err != nil {
			return h.refuse(w, http.StatusForbidden, "FORBIDDEN", "Token does not grant access to this source", err)
		}
	}
	caddyhttp.SetVar(r.Context(), cachetag.AuthorizerVar, authorizer(claims, api))
	h.results.WithLabelValues("allowed").Inc()
	return next.ServeHTTP(w, r)
}

func (h *Handler) refuse(w http.ResponseWriter, status int, code, msg string, err error) error {
	h.results.WithLabelValues(code).Inc()
	if c := h.logger.Check(zapcore.DebugLevel, "token refused"); c != nil {
		c.Write(zap.Int("status", status), zap.String("reason", msg), zap.Error(err))
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, werr := w.Write([]byte(`{"error":"` + msg + `","status":` + statusText(status) + `,"code":"` + code + `"}`))
	return werr
}

func statusText(s int) string {
	if s == http.StatusForbidden {
		return "403"
	}
	return "401"
}

// tokenMessage turns a verification error into the client's message.
func tokenMessage(err error) string {
	switch {
	case errors.Is(err, grant.ErrExpired):
		return "Token expired"
	case errors.Is(err, grant.ErrRevoked):
		return "Token revoked"
	case errors.Is(err, grant.ErrNotYetValid):
		return "Token not yet valid"
	default:
		return "Invalid token"
	}
}

// token returns the request's access token (grant.BearerToken); the query
// is parsed only when it may hold one.
func token(r *http.Request) string {
	param := ""
	if r.URL.RawQuery != "" && strings.Contains(r.URL.RawQuery, "access_token=") {
		param = r.URL.Query().Get("access_token")
	}
	return grant.BearerToken(r.Header.Get("Authorization"), param)
}

func referer(r *http.Request) string {
	if o := r.Header.Get("Origin"); o != "" {
		return o
	}
	return r.Header.Get("Referer")
}

// apiStats marks the stats routes, which take the maps or the sql API.
const apiStats grant.API = "stats"

// route is what the edge can tell about a request from its path.
type route struct {
	api  grant.API
	conn string
	// table is a source named in the path (stats).
	table string
	// nameParam and sqlParam say that the name / q query parameters name
	// the source.
	nameParam, sqlParam bool
}

// parseRoute reads /v3/maps/{conn}/{type}[/…], /v3/sql/{conn}/…,
// /v3/stats/{conn}/{table}/{column}, /v3/imports…, /v3/lds/… below prefix.
func parseRoute(path, prefix string) route {
	rest, ok := strings.CutPrefix(path, prefix+"/v3/")
	if !ok {
		return route{}
	}
	kind, rest, _ := strings.Cut(rest, "/")
	conn, rest, _ := strings.Cut(rest, "/")
	switch kind {
	case "maps":
		if conn == "" || conn == "public" {
			return route{} // public maps: control checks them
		}
		typ, _, _ := strings.Cut(rest, "/")
		rt := route{api: grant.APIMaps, conn: conn}
		switch typ {
		case "query":
			rt.sqlParam = true
		case "table", "tileset", "raster":
			rt.nameParam = true
		}
		return rt
	case "sql":
		if conn == "" {
			return route{}
		}
		op, _, _ := strings.Cut(rest, "/")
		switch op {
		case "query":
			return route{api: grant.APISQL, conn: conn, sqlParam: true}
		case "model":
			return route{api: apiStats, conn: conn}
		}
		return route{} // jobs: control checks them
	case "stats":
		if conn == "" {
			return route{}
		}
		table, col, ok := strings.Cut(rest, "/")
		rt := route{api: apiStats, conn: conn}
		if ok && col != "" {
			rt.table = table
		}
		return rt
	}
	return route{}
}

// Per-API views of verified claims: converting the (shared, cached)
// *grant.Claims to one of these and boxing it in an interface costs no
// allocation.
type (
	mapsAuthz grant.Claims
	sqlAuthz  grant.Claims
)

func (a *mapsAuthz) AllowTags(tags []string) bool {
	return allowTags((*grant.Claims)(a), grant.APIMaps, tags)
}

func (a *sqlAuthz) AllowTags(tags []string) bool {
	return allowTags((*grant.Claims)(a), grant.APISQL, tags)
}

func authorizer(c *grant.Claims, api grant.API) cachetag.Authorizer {
	if api == grant.APISQL {
		return (*sqlAuthz)(c)
	}
	return (*mapsAuthz)(c)
}

// allowTags allows a stored response when it names at least one source
// and the claims grant every source it names. A response computed from a
// client's query (a query:<conn> tag) may have read any table of the
// connection, so it needs a whole-connection grant; narrower query grants
// are checked by the origin on every request.
func allowTags(c *grant.Claims, api grant.API, tags []string) bool {
	n := 0
	for _, t := range tags {
		if conn, ok := cachetag.QueryOf(t); ok {
			if c.AllowConnection(api, conn) != nil {
				return false
			}
			n++
			continue
		}
		conn, table, ok := cachetag.SourceOf(t)
		if !ok {
			continue
		}
		if c.Allow(api, conn, table) != nil {
			return false
		}
		n++
	}
	return n > 0
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
	_ cachetag.Authorizer         = (*mapsAuthz)(nil)
)
