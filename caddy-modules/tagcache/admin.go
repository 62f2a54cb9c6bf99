package tagcache

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/caddyserver/caddy/v2"

	"github.com/meridian-gis/meridian/caddy-modules/tagcache/internal/httpcache"
	"github.com/meridian-gis/meridian/internal/cachetag"
)

func init() {
	caddy.RegisterModule(adminAPI{})
}

// Admin API limits.
const (
	maxPurgeBody  = 1 << 20
	maxPurgeItems = 10000
)

// adminAPI is the admin.api.meridian_cache module: cache purges, stats and
// configuration on Caddy's admin endpoint.
//
//	POST /meridian/cache/purge   {"tags":[…],"soft":bool} | {"urls":[…]} | {"prefix":"…"}
//	GET  /meridian/cache/stats
//	GET  /meridian/cache/config
//
// It acts on the meridian_cache app of the running config.
type adminAPI struct{}

// CaddyModule returns the Caddy module information.
func (adminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.meridian_cache",
		New: func() caddy.Module { return new(adminAPI) },
	}
}

// Routes returns the admin routes.
func (a adminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{
		{Pattern: "/meridian/cache/purge", Handler: caddy.AdminHandlerFunc(a.purge)},
		{Pattern: "/meridian/cache/stats", Handler: caddy.AdminHandlerFunc(a.stats)},
		{Pattern: "/meridian/cache/config", Handler: caddy.AdminHandlerFunc(a.config)},
	}
}

// PurgeRequest is the body of POST /meridian/cache/purge. At least one of
// Tags, URLs and Prefix must be set; all that are set are applied.
type PurgeRequest struct {
	// Tags to purge (cachetag syntax).
	Tags []string `json:"tags,omitempty"`
	// URLs whose cached responses to purge, each naming one cache key:
	// host, path and query (parameters left out of keys ignored); a path
	// without a host names it on every host.
	URLs []string `json:"urls,omitempty"`
	// Prefix of the paths to purge ("/api/v3/maps/c1/", or a URL to
	// purge it on one host).
	Prefix string `json:"prefix,omitempty"`
	// Soft marks entries stale (served while one request refetches)
	// instead of removing them.
	Soft bool `json:"soft,omitempty"`
}

// PurgeResponse is the answer to a purge.
type PurgeResponse struct {
	Tags   int  `json:"tags"`
	URLs   int  `json:"urls"`
	Prefix bool `json:"prefix"`
	Soft   bool `json:"soft"`
}

func (a adminAPI) purge(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: errors.New("method not allowed")}
	}
	app, err := runningApp()
	if err != nil {
		return err
	}
	var req PurgeRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, maxPurgeBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("decoding purge request: %w", err)}
	}
	if len(req.Tags) == 0 && len(req.URLs) == 0 && req.Prefix == "" {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: errors.New("purge request needs tags, urls or prefix")}
	}
	if len(req.Tags)+len(req.URLs) > maxPurgeItems {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("purge request has more than %d tags and urls", maxPurgeItems)}
	}
	var prefixes []string
	if req.Prefix != "" {
		prefixes = []string{req.Prefix}
	}
	for _, u := range append(prefixes, req.URLs...) {
		if !cachetag.ValidURL(u) {
			return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("%w: %q: want an http(s) URL or a path starting with /", cachetag.ErrInvalidURL, u)}
		}
	}
	app.Purge(req.Tags, req.Soft)
	app.PurgeURLs(req.URLs, prefixes, req.Soft)
	return writeJSON(w, PurgeResponse{Tags: len(req.Tags), URLs: len(req.URLs), Prefix: req.Prefix != "", Soft: req.Soft})
}

func (a adminAPI) stats(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: errors.New("method not allowed")}
	}
	app, err := runningApp()
	if err != nil {
		return err
	}
	return writeJSON(w, app.Stats())
}

// configResponse is the answer to GET /meridian/cache/config.
type configResponse struct {
	Store httpcache.StoreConfig `json:"store"`
}

func (a adminAPI) config(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: errors.New("method not allowed")}
	}
	app, err := runningApp()
	if err != nil {
		return err
	}
	return writeJSON(w, configResponse{Store: app.StoreConfig()})
}

// runningApp returns the meridian_cache app of the running config.
func runningApp() (*App, error) {
	ctx := caddy.ActiveContext()
	v, err := ctx.AppIfConfigured("meridian_cache")
	if err != nil {
		return nil, caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("meridian_cache is not running: %w", err)}
	}
	app, ok := v.(*App)
	if !ok || app.store == nil {
		return nil, caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Err: errors.New("meridian_cache is not provisioned")}
	}
	return app, nil
}

func writeJSON(w http.ResponseWriter, v any) error {
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(v); err != nil {
		return fmt.Errorf("encoding response: %w", err)
	}
	return nil
}

// Interface guards
var _ caddy.AdminRouter = adminAPI{}
