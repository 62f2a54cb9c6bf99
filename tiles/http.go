package tiles

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"github.com/meridian-gis/meridian/internal/dataconn"
	"github.com/meridian-gis/meridian/internal/grant"
	"github.com/meridian-gis/meridian/tiles/internal/aggexp"
	"github.com/meridian-gis/meridian/tiles/internal/catalog"
	"github.com/meridian-gis/meridian/tiles/internal/clienterr"
	"github.com/meridian-gis/meridian/tiles/internal/engine"
	"github.com/meridian-gis/meridian/tiles/internal/filter"
	"github.com/meridian-gis/meridian/tiles/internal/hangup"
	"github.com/meridian-gis/meridian/tiles/internal/source"
)

var (
	pathHealthz = []byte("/healthz")
	pathReadyz  = []byte("/readyz")
	pathMetrics = []byte("/metrics")
)

// handle routes a request.
func (s *Server) handle(rc *fasthttp.RequestCtx) {
	s.cors(rc)
	if rc.IsOptions() {
		rc.SetStatusCode(fasthttp.StatusNoContent)
		return
	}
	path := rc.Path()
	switch {
	case bytes.Equal(path, pathHealthz):
		rc.SetContentType("application/json")
		rc.SetBodyString(`{"status":"ok"}` + "\n")
		return
	case bytes.Equal(path, pathReadyz):
		s.readyz(rc)
		return
	case bytes.Equal(path, pathMetrics):
		s.metrics.handler(rc)
		return
	}
	rest, ok := bytes.CutPrefix(path, []byte(s.prefix))
	if !ok {
		s.fail(rc, errNotFound)
		return
	}
	switch {
	case bytes.HasPrefix(rest, []byte("/v3/maps/")):
		s.maps(rc, rest[len("/v3/maps/"):])
	case bytes.HasPrefix(rest, []byte("/v3/sql/")):
		s.sqlRoute(rc, rest[len("/v3/sql/"):])
	case bytes.HasPrefix(rest, []byte("/v3/stats/")):
		s.statsAPI(rc, rest[len("/v3/stats/"):]) // stats.go
	default:
		s.fail(rc, errNotFound)
	}
}

// maps routes /v3/maps/{conn}/{type}[/tilejson|/{z}/{x}/{y}].
func (s *Server) maps(rc *fasthttp.RequestCtx, rest []byte) {
	conn, rest, _ := bytes.Cut(rest, []byte("/"))
	typ, rest, more := bytes.Cut(rest, []byte("/"))
	if len(conn) == 0 || len(typ) == 0 {
		s.fail(rc, errNotFound)
		return
	}
	switch {
	case !more && bytes.Equal(typ, []byte("preview")):
		s.preview(rc, conn)
	case !more:
		s.instantiate(rc, conn, typ)
	case bytes.Equal(rest, []byte("tilejson")):
		s.tileJSON(rc, conn, typ)
	case isIndexPath(rc, rest):
		s.indexTile(rc, conn, typ, rest) // spatialindex.go
	default:
		s.tile(rc, conn, typ, rest)
	}
}

func (s *Server) sqlRoute(rc *fasthttp.RequestCtx, rest []byte) {
	conn, op, _ := bytes.Cut(rest, []byte("/"))
	if model, ok := bytes.CutPrefix(op, []byte("model/")); ok && len(conn) > 0 {
		s.model(rc, string(conn), string(model)) // model.go
		return
	}
	if len(conn) == 0 || !bytes.Equal(op, []byte("query")) {
		s.fail(rc, errNotFound)
		return
	}
	s.sqlQuery(rc, string(conn))
}

func (s *Server) readyz(rc *fasthttp.RequestCtx) {
	ctx, cancel := context.WithTimeout(s.base, 5*time.Second)
	defer cancel()
	rep, ok := s.health.Ready(ctx)
	rc.SetContentType("application/json")
	if !ok {
		rc.SetStatusCode(fasthttp.StatusServiceUnavailable)
	}
	json.NewEncoder(rc).Encode(rep)
}

// errClientGone is the cause of a request context cancelled because the
// client closed its connection, and marks the errors that follow.
var errClientGone = errors.New("tiles: the client closed the connection")

// statusClientClosed answers a request whose client left (nginx's 499);
// nobody reads it, but it shows in logs and metrics.
const statusClientClosed = 499

// clientContext returns the context of work a request waits on (a render,
// a query): it ends after timeout, when the server stops, or — watched
// from now on, on Linux sockets (package hangup) — when the client closes
// its connection, with cause errClientGone; the hang-up is logged at debug
// level and counted in client_gone_total{work}. fasthttp reads a
// connection only between requests, so this is the only way to learn that
// a client left. Call it only on the paths that wait (a cache hit must not
// pay for the watch), and call the returned function when the work is
// over, before the handler returns or, for a streamed body, when the
// stream ends.
//
// Work shared by several requests (tile fills, compilations: package
// flight) stops only when every request waiting for it has gone.
func (s *Server) clientContext(rc *fasthttp.RequestCtx, timeout time.Duration, work string) (context.Context, context.CancelFunc) {
	ctx, cancelGone := context.WithCancelCause(s.base)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	path := string(rc.Path()) // gone may run after the handler returns: no rc there
	w := s.hangups.Watch(rc.Conn(), func() {
		s.metrics.clientGone.WithLabelValues(work).Inc()
		s.log.Debug("client closed the connection: cancelling its request", "work", work, "path", path)
		cancelGone(errClientGone)
	})
	return ctx, func() {
		w.Stop()
		cancel()
		cancelGone(context.Canceled)
	}
}

// cors answers every route for browsers (CARTO_API.md §1.7).
func (s *Server) cors(rc *fasthttp.RequestCtx) {
	origin := rc.Request.Header.Peek("Origin")
	if len(origin) == 0 {
		return
	}
	h := &rc.Response.Header
	if len(s.cfg.CORSOrigins) == 1 && s.cfg.CORSOrigins[0] == "*" {
		h.Set("Access-Control-Allow-Origin", "*")
	} else {
		allowed := false
		for _, o := range s.cfg.CORSOrigins {
			if o == "*" || string(origin) == o {
				allowed = true
				break
			}
		}
		if !allowed {
			return
		}
		h.SetBytesV("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Allow-Credentials", "true")
		h.Add("Vary", "Origin")
	}
	if rc.IsOptions() {
		h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Cache-Control, If-Modified-Since, If-None-Match")
		h.Set("Access-Control-Allow-Methods", "GET, POST, PATCH, DELETE, OPTIONS")
		h.Set("Access-Control-Max-Age", "86400")
	}
	h.Set("Access-Control-Expose-Headers", "Content-Type, ETag, Cache-Control")
}

// token returns the request's access token (grant.BearerToken). It does
// not allocate.
func token(rc *fasthttp.RequestCtx) []byte {
	tok := grant.BearerToken(b2s(rc.Request.Header.Peek("Authorization")), b2s(rc.QueryArgs().Peek("access_token")))
	if tok == "" {
		return nil
	}
	return unsafe.Slice(unsafe.StringData(tok), len(tok)) // a view of the request's bytes
}

// verify checks the request's token and referer.
func (s *Server) verify(rc *fasthttp.RequestCtx) (*grant.Claims, error) {
	tok := token(rc)
	if len(tok) == 0 {
		return nil, errNoToken
	}
	claims, err := s.auth.VerifyBytes(tok, time.Now())
	if err != nil {
		return nil, err
	}
	ref := rc.Request.Header.Peek("Origin")
	if len(ref) == 0 {
		ref = rc.Request.Header.Peek("Referer")
	}
	if err := claims.CheckReferer(b2s(ref)); err != nil {
		return nil, err
	}
	return claims, nil
}

// authorize checks that claims cover c through api. Table sources need a
// grant on the table (or its schema, or "*"); query sources need "*" on the
// connection or a grant holding the same query text (after whitespace and
// comment normalization): grants never extend from tables to the queries
// that read them, since deciding what a query reads needs more than a
// parser (functions such as query_to_xml read any table).
func authorize(claims *grant.Claims, api grant.API, c *compiled) error {
	if c.Table != nil {
		return claims.Allow(api, c.Spec.Conn, c.GrantName)
	}
	return claims.AllowQuery(api, c.Spec.Conn, c.Spec.Query)
}

// params merges a request's parameters (CARTO_API.md §1.3): the query
// string, then a JSON object body or a form body, whose fields win.
// Query-string and form values become JSON strings.
func params(rc *fasthttp.RequestCtx) (source.Params, error) {
	p := source.Params{}
	for k, v := range rc.QueryArgs().All() {
		b, _ := json.Marshal(string(v))
		p[string(k)] = b
	}
	if !rc.IsPost() {
		return p, nil
	}
	body := bytes.TrimSpace(rc.PostBody())
	ct := rc.Request.Header.ContentType()
	switch {
	case bytes.HasPrefix(ct, []byte("application/x-www-form-urlencoded")):
		for k, v := range rc.PostArgs().All() {
			b, _ := json.Marshal(string(v))
			p[string(k)] = b
		}
	case len(body) == 0:
	case body[0] == '{':
		var m map[string]json.RawMessage
		if err := json.Unmarshal(body, &m); err != nil {
			return nil, &apiError{status: http.StatusBadRequest, code: "BAD_REQUEST", msg: "the request body is not valid JSON"}
		}
		for k, v := range m {
			p[k] = v
		}
	default:
		return nil, &apiError{status: http.StatusBadRequest, code: "BAD_REQUEST", msg: "the request body must be a JSON object or a form"}
	}
	return p, nil
}

// apiError is an error with its HTTP answer. msg goes to the client; err
// (if any) only to the logs.
type apiError struct {
	status int
	code   string
	msg    string
	err    error
}

func (e *apiError) Error() string {
	if e.err != nil {
		return e.msg + ": " + e.err.Error()
	}
	return e.msg
}

func (e *apiError) Unwrap() error { return e.err }

var (
	errNotFound = &apiError{status: http.StatusNotFound, code: "NOT_FOUND", msg: "not found"}
	errNoToken  = &apiError{status: http.StatusUnauthorized, code: "UNAUTHORIZED", msg: "Token not defined"}
)

// classify maps an error to its HTTP answer (the only place that does).
func classify(err error) *apiError {
	var ae *apiError
	var qe *source.QueryError
	var pe *pgconn.PgError
	switch {
	case errors.Is(err, errClientGone):
		return &apiError{status: statusClientClosed, code: "CLIENT_CLOSED_REQUEST", msg: "the client closed the connection", err: err}
	case errors.As(err, &ae):
		return ae
	case errors.Is(err, grant.ErrNoGrant), errors.Is(err, grant.ErrAPINotAllowed), errors.Is(err, grant.ErrReferer):
		return &apiError{status: http.StatusForbidden, code: "FORBIDDEN", msg: "Unauthorized access: " + strings.TrimPrefix(rootMessage(err), "grant: "), err: err}
	case errors.Is(err, grant.ErrExpired):
		return &apiError{status: http.StatusUnauthorized, code: "UNAUTHORIZED", msg: "token expired", err: err}
	case isGrantError(err):
		return &apiError{status: http.StatusUnauthorized, code: "UNAUTHORIZED", msg: "invalid token", err: err}
	case errors.Is(err, dataconn.ErrNotFound):
		return &apiError{status: http.StatusNotFound, code: "CONNECTION_NOT_FOUND", msg: "connection not found", err: err}
	case errors.As(err, new(*pgconn.ConnectError)):
		return &apiError{status: http.StatusServiceUnavailable, code: "CONNECTION_UNAVAILABLE", msg: "the data connection is unavailable", err: err}
	case errors.Is(err, catalog.ErrNotFound):
		return &apiError{status: http.StatusNotFound, code: "NOT_FOUND", msg: clientMessage(err), err: err}
	case errors.Is(err, catalog.ErrUnknownColumn):
		return &apiError{status: http.StatusBadRequest, code: "COLUMN_NOT_FOUND", msg: "Column not found: " + clientMessage(err), err: err}
	case errors.Is(err, catalog.ErrNoGeometry), errors.Is(err, source.ErrBadParams), errors.Is(err, source.ErrBadKey),
		errors.Is(err, filter.ErrInvalid), errors.Is(err, aggexp.ErrInvalid):
		return &apiError{status: http.StatusBadRequest, code: "BAD_REQUEST", msg: clientMessage(err), err: err}
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &pe) && pe.Code == "57014":
		return &apiError{status: http.StatusGatewayTimeout, code: "TIMEOUT", msg: "the query took too long", err: err}
	case errors.As(err, &qe) && errors.As(err, &pe):
		// The client wrote this SQL: PostgreSQL's own words help them.
		msg := pe.Message
		if pe.Hint != "" {
			msg += " (" + pe.Hint + ")"
		}
		return &apiError{status: http.StatusBadRequest, code: "QUERY_ERROR", msg: msg, err: err}
	case errors.Is(err, engine.ErrUnknownSource):
		return &apiError{status: http.StatusNotFound, code: "NOT_FOUND", msg: "unknown source", err: err}
	}
	return &apiError{status: http.StatusInternalServerError, code: "INTERNAL", msg: "internal error", err: err}
}

func isGrantError(err error) bool {
	for _, e := range []error{grant.ErrMalformed, grant.ErrBadSignature, grant.ErrUnknownKey, grant.ErrNotYetValid, grant.ErrRevoked} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func rootMessage(err error) string {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err.Error()
		}
		err = u
	}
}

// clientMessage is the client's text of a client error (clienterr).
func clientMessage(err error) string {
	if m, ok := clienterr.Message(err); ok {
		return m
	}
	return "bad request"
}

// fail answers with err as a JSON error, logging server-side failures.
// A cancellation is the client's doing when its connection says it left.
func (s *Server) fail(rc *fasthttp.RequestCtx, err error) {
	if errors.Is(err, context.Canceled) && !errors.Is(err, errClientGone) && hangup.Probe(rc.Conn()) == hangup.Closed {
		err = fmt.Errorf("%w: %w", errClientGone, err)
	}
	ae := classify(err)
	switch {
	case ae.status >= 500:
		s.log.Error("request failed", "path", string(rc.Path()), "status", ae.status, "err", err)
	case ae.status == statusClientClosed:
		s.log.Debug("request abandoned by its client", "path", string(rc.Path()), "err", err)
		rc.SetConnectionClose()
	case ae.err != nil:
		s.log.Debug("request refused", "path", string(rc.Path()), "status", ae.status, "err", err)
	}
	rc.Response.Header.Del("Surrogate-Key")
	rc.Response.Header.Set("Cache-Control", "no-store")
	rc.SetStatusCode(ae.status)
	rc.SetContentType("application/json")
	body := struct {
		Error  string `json:"error"`
		Status int    `json:"status"`
		Code   string `json:"code"`
	}{ae.msg, ae.status, ae.code}
	b, _ := json.Marshal(body)
	rc.SetBody(b)
	s.metrics.errors.WithLabelValues(strconv.Itoa(ae.status)).Inc()
}

// writeJSON answers v as JSON.
func writeJSON(rc *fasthttp.RequestCtx, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		rc.SetStatusCode(http.StatusInternalServerError)
		return
	}
	rc.SetContentType("application/json")
	rc.SetBody(b)
}

func (m *metrics) handler(rc *fasthttp.RequestCtx) {
	if m.reg == nil {
		rc.SetStatusCode(http.StatusNotFound)
		return
	}
	m.once.Do(func() {
		m.httpHandler = fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	})
	m.httpHandler(rc)
}
