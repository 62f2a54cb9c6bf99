package tagcache

import (
	"fmt"
	"net/http"
	"reflect"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/headers"

	"github.com/meridian-gis/meridian/internal/cachetag"
	"go.uber.org/zap"

	"github.com/meridian-gis/meridian/caddy-modules/tagcache/internal/httpcache"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler is the meridian_cache HTTP handler: a shared HTTP cache (RFC
// 9111) in front of the rest of the route (normally reverse_proxy). It
// stores responses in the meridian_cache app's store, indexed by the tags
// of their Surrogate-Key header (which it strips), coalesces concurrent
// misses, and reports what it did in Cache-Status (RFC 9211).
//
// Keys are scheme, host, path and the query with its parameters sorted and
// the KeyDropQuery ones removed, plus the request fields named by Vary.
type Handler struct {
	// TTLDefault is the freshness lifetime of a heuristically cacheable
	// response with neither explicit expiration nor Last-Modified.
	// Default: 0 (stored only with a validator, revalidated on each use).
	TTLDefault caddy.Duration `json:"ttl_default,omitempty"`
	// HeuristicMax caps heuristic freshness (10% of the time since
	// Last-Modified). Default: 24h.
	HeuristicMax caddy.Duration `json:"heuristic_max,omitempty"`
	// MaxEntrySize is the largest body stored; larger responses are served
	// in full but not kept. Default and upper bound: the app's
	// max_entry_size.
	MaxEntrySize int64 `json:"max_entry_size,omitempty"`
	// AuthorizationChecked declares that an earlier handler verifies every
	// request's credentials for the requested resource, so responses to
	// requests with Authorization are stored and shared among authorized
	// requests without needing public, s-maxage or must-revalidate (RFC
	// 9111 §3.5). Credentials are never part of the key. Default: false.
	AuthorizationChecked bool `json:"authorization_checked,omitempty"`
	// StaleWhileRevalidate is the window during which a stale response
	// is served while one background request refreshes it, when the
	// response has no stale-while-revalidate directive. Default: 0.
	StaleWhileRevalidate caddy.Duration `json:"stale_while_revalidate,omitempty"`
	// StaleIfError is the window, past a stored response's freshness,
	// during which it is served when the origin fails (500, 502, 503, 504
	// or unreachable) and the response has no stale-if-error directive of
	// its own (RFC 5861; never for must-revalidate, no-cache or s-maxage
	// responses, hard-purged ones or callers without a grant). Default:
	// 10m; negative turns it off (Caddyfile: stale_if_error off).
	StaleIfError caddy.Duration `json:"stale_if_error,omitempty"`
	// KeyDropQuery lists the query parameters left out of the cache key.
	// When set it replaces the default: access_token, client, v,
	// deckglVersion.
	KeyDropQuery []string `json:"key_drop_query,omitempty"`
	// FillTimeout bounds one upstream fill. Fills are detached from the
	// client that started them, since other requests wait for them, and
	// cancelled (with the origin's work) when every waiting request has
	// gone away; a background refresh, which nobody waits for, runs until
	// done or FillTimeout. Default: 1m.
	FillTimeout caddy.Duration `json:"fill_timeout,omitempty"`
	// PurgeQuarantine is how long after a purge of a tag responses
	// carrying it are served but not stored, so that an origin that has
	// not yet processed the same invalidation cannot put old data back.
	// Default: 2s; negative turns it off.
	PurgeQuarantine caddy.Duration `json:"purge_quarantine,omitempty"`
	// MaxTags caps the tags indexed per entry (the rest are ignored).
	// Default: 256.
	MaxTags int `json:"max_tags,omitempty"`

	cache  *httpcache.Cache
	logger *zap.Logger
	// httpApp is the http app this handler belongs to, searched once
	// (checkOnce), before the first request, for handlers that edit
	// header values in place (see checkInPlaceEdits).
	httpApp   *caddyhttp.App
	checkOnce *sync.Once
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.meridian_cache",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision connects the handler to the meridian_cache app's store.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	v, err := ctx.App("meridian_cache")
	if err != nil {
		return fmt.Errorf("loading meridian_cache app: %w", err)
	}
	app := v.(*App)
	if h.MaxEntrySize > app.store.Config().MaxEntrySize {
		h.logger.Warn("max_entry_size exceeds the store's; using the store's",
			zap.Int64("max_entry_size", h.MaxEntrySize),
			zap.Int64("store_max_entry_size", app.store.Config().MaxEntrySize))
	}
	h.cache = httpcache.New(app.store, h.cacheConfig(ctx))
	for _, m := range ctx.Modules() {
		if a, ok := m.(*caddyhttp.App); ok {
			h.httpApp, h.checkOnce = a, new(sync.Once)
		}
	}
	return nil
}

func (h *Handler) cacheConfig(ctx caddy.Context) httpcache.Config {
	return httpcache.Config{
		DefaultTTL:           time.Duration(h.TTLDefault),
		HeuristicMax:         time.Duration(h.HeuristicMax),
		MaxEntrySize:         h.MaxEntrySize,
		AuthorizationChecked: h.AuthorizationChecked,
		StaleWhileRevalidate: time.Duration(h.StaleWhileRevalidate),
		StaleIfError:         time.Duration(h.StaleIfError),
		DropQuery:            h.KeyDropQuery,
		FillTimeout:          time.Duration(h.FillTimeout),
		PurgeQuarantine:      time.Duration(h.PurgeQuarantine),
		MaxTags:              h.MaxTags,
		Prepare:              prepareBackground,
		Authorizer:           requestAuthorizer,
		BaseContext:          ctx,
		Logger:               ctx.Slogger(),
	}
}

// Validate checks the configuration.
func (h *Handler) Validate() error {
	if h.TTLDefault < 0 || h.HeuristicMax < 0 || h.MaxEntrySize < 0 || h.StaleWhileRevalidate < 0 ||
		h.FillTimeout < 0 || h.MaxTags < 0 {
		return fmt.Errorf("meridian_cache: sizes, counts and durations must not be negative")
	}
	for _, p := range h.KeyDropQuery {
		if p == "" {
			return fmt.Errorf("meridian_cache: empty key_drop_query parameter")
		}
	}
	return nil
}

// ServeHTTP answers from the cache or through next.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if h.checkOnce != nil {
		h.checkOnce.Do(h.checkInPlaceEdits)
	}
	return h.cache.ServeHTTP(w, r, next)
}

// checkInPlaceEdits makes hits copy the stored header values when the
// config has a handler that may assign to response header values in place
// (Caddy's header replace operations); by default hits share them and
// allocate nothing. It runs before the first request, when the http app
// is fully provisioned (it is not yet during Provision).
func (h *Handler) checkInPlaceEdits() {
	for name, srv := range h.httpApp.Servers {
		lists := []caddyhttp.RouteList{srv.Routes}
		if srv.Errors != nil {
			lists = append(lists, srv.Errors.Routes)
		}
		for _, rt := range srv.NamedRoutes {
			if rt != nil {
				lists = append(lists, caddyhttp.RouteList{*rt})
			}
		}
		for _, routes := range lists {
			if editsHeaderValues(routes, 0) {
				h.cache.SetCopyHeaderValues(true)
				h.logger.Info("a header handler replaces response header values in place: cache hits copy them",
					zap.String("server", name))
				return
			}
		}
	}
}

// editsHeaderValues reports whether routes hold a header handler with
// replace operations on the response, which assign to header values in
// place. Routes nested in handlers (subroute, handle_response of
// reverse_proxy and intercept, and any handler with such fields) are
// searched too; an implausibly deep nesting counts as yes.
func editsHeaderValues(routes caddyhttp.RouteList, depth int) bool {
	if depth > 32 {
		return true
	}
	for _, rt := range routes {
		for _, mh := range rt.Handlers {
			if hh, ok := mh.(*headers.Handler); ok && hh.Response != nil && hh.Response.HeaderOps != nil && len(hh.Response.Replace) > 0 {
				return true
			}
			for _, nested := range nestedRoutes(mh) {
				if editsHeaderValues(nested, depth+1) {
					return true
				}
			}
		}
	}
	return false
}

var (
	routeListType        = reflect.TypeFor[caddyhttp.RouteList]()
	responseHandlersType = reflect.TypeFor[[]caddyhttp.ResponseHandler]()
)

// nestedRoutes returns the route lists held in the exported fields of a
// handler: RouteList fields (subroute) and the routes of
// []ResponseHandler fields (handle_response).
func nestedRoutes(h caddyhttp.MiddlewareHandler) []caddyhttp.RouteList {
	v := reflect.ValueOf(h)
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return nil
	}
	var out []caddyhttp.RouteList
	for i := range v.NumField() {
		f := v.Type().Field(i)
		if !f.IsExported() {
			continue
		}
		switch f.Type {
		case routeListType:
			out = append(out, v.Field(i).Interface().(caddyhttp.RouteList))
		case responseHandlersType:
			for _, rh := range v.Field(i).Interface().([]caddyhttp.ResponseHandler) {
				out = append(out, rh.Routes)
			}
		}
	}
	return out
}

// requestAuthorizer returns the authorizer the meridian_auth handler left
// in the request's variables, if any.
func requestAuthorizer(r *http.Request) cachetag.Authorizer {
	a, _ := caddyhttp.GetVar(r.Context(), cachetag.AuthorizerVar).(cachetag.Authorizer)
	return a
}

// prepareBackground gives a background refresh, which outlives the client
// request it was cloned from, its own replacer and vars so that the next
// handlers (reverse_proxy) do not share them with the finished request.
func prepareBackground(r *http.Request) *http.Request {
	srv, _ := r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	return caddyhttp.PrepareRequest(r, caddy.NewReplacer(), discardWriter{h: make(http.Header)}, srv)
}

// discardWriter stands in for the client of a background refresh when
// the replacer is set up.
type discardWriter struct{ h http.Header }

func (d discardWriter) Header() http.Header         { return d.h }
func (d discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d discardWriter) WriteHeader(int)             {}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
