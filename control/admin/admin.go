// Package admin is the operators' API under /api/admin/ (admin role): the
// nodes of the cluster from the node registry (version, uptime, readiness,
// heartbeat), each edge's cache counters, cluster-wide purges by tag, URL
// or path prefix through the invalidations topic, the broker's subscriptions, backlogs
// and dead letters (inspect, replay, drop), and the effective
// configuration with secrets redacted.
package admin

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/meridian-gis/meridian/control/audit"
	"github.com/meridian-gis/meridian/control/authn"
	"github.com/meridian-gis/meridian/control/httpapi"
	"github.com/meridian-gis/meridian/internal/broker"
	"github.com/meridian-gis/meridian/internal/broker/pgbroker"
	"github.com/meridian-gis/meridian/internal/cachetag"
	"github.com/meridian-gis/meridian/internal/noderegistry"
)

// Deps are the admin API's collaborators.
type Deps struct {
	// Log receives errors. Required.
	Log *slog.Logger
	// Meta is the metadata database (node registry). Required.
	Meta *pgxpool.Pool
	// Broker publishes purges; its dead letters are inspected through it.
	// Required.
	Broker broker.Broker
	// Config is the effective configuration, shown with every secret
	// redacted (see Redact). Optional.
	Config any
	// Require wraps every route: it must let only administrators through
	// (and answer the others itself). Required.
	Require func(http.Handler) http.Handler
	// Timeout bounds each request's database work. Default: 10s.
	Timeout time.Duration
	// ClientIP tells the caller's address for the audit log. Optional.
	ClientIP func(*http.Request) string
}

// Mount adds the admin routes to mux.
func Mount(mux *http.ServeMux, d Deps) error {
	if d.Log == nil || d.Meta == nil || d.Broker == nil || d.Require == nil {
		return errors.New("admin: Log, Meta, Broker and Require are required")
	}
	if d.Timeout <= 0 {
		d.Timeout = 10 * time.Second
	}
	a := &api{d: d}
	for pattern, h := range map[string]func(http.ResponseWriter, *http.Request) error{
		"GET /api/admin/nodes":                                                 a.nodes,
		"GET /api/admin/cache":                                                 a.cache,
		"POST /api/admin/purge":                                                a.purge,
		"GET /api/admin/broker/subscriptions":                                  a.subscriptions,
		"GET /api/admin/broker/subscriptions/{name}/dead-letters":              a.deadLetters,
		"POST /api/admin/broker/subscriptions/{name}/dead-letters/{id}/replay": a.replay,
		"DELETE /api/admin/broker/subscriptions/{name}/dead-letters/{id}":      a.drop,
		"GET /api/admin/config":                                                a.config,
	} {
		mux.Handle(pattern, d.Require(a.handler(h)))
	}
	// Whether the caller may use the admin API, without a 401: the
	// console asks before showing itself or its sign-in.
	mux.HandleFunc("GET /api/admin/session", func(w http.ResponseWriter, r *http.Request) {
		allowed := false
		d.Require(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { allowed = true })).ServeHTTP(discard{}, r)
		httpapi.WriteJSON(w, http.StatusOK, map[string]bool{"admin": allowed})
	})
	return nil
}

// discard is a ResponseWriter that keeps nothing.
type discard struct{}

func (discard) Header() http.Header         { return http.Header{} }
func (discard) Write(b []byte) (int, error) { return len(b), nil }
func (discard) WriteHeader(int)             {}

type api struct{ d Deps }

// handler maps the broker's errors to answers; httpapi does the rest.
func (a *api) handler(fn func(http.ResponseWriter, *http.Request) error) http.Handler {
	return httpapi.Handler(a.d.Log, func(w http.ResponseWriter, r *http.Request) error {
		err := fn(w, r)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, pgbroker.ErrNoDeadLetter):
			return httpapi.NotFound("dead letter")
		case errors.Is(err, broker.ErrBadSubscription):
			return httpapi.NotFound("subscription")
		}
		return err
	})
}

// record writes an administrator's change to the audit log: the signed-in
// admin (their organization), or "admin-token" for the bearer secret. A
// failure to record is logged; the change is already made.
func (a *api) record(r *http.Request, action, target string, detail map[string]any) {
	e := audit.Event{ActorID: "admin-token", Action: action, Target: target, Detail: detail}
	if p, ok := authn.Caller(r); ok && p.IsUser() {
		e.OrgID, e.ActorID = p.OrgID, p.UserID
	}
	if a.d.ClientIP != nil {
		e.IP = a.d.ClientIP(r)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), a.d.Timeout)
	defer cancel()
	if err := audit.Record(ctx, a.d.Meta, e); err != nil {
		a.d.Log.Error("recording an admin action", "action", action, "err", err)
	}
}

// nodeView is a node as the console shows it.
type nodeView struct {
	noderegistry.Node
	UptimeSeconds      float64 `json:"uptime_seconds"`
	SinceHeartbeatSecs float64 `json:"seconds_since_heartbeat"`
}

func (a *api) list(r *http.Request, component string) ([]nodeView, error) {
	ctx, cancel := context.WithTimeout(r.Context(), a.d.Timeout)
	defer cancel()
	nodes, err := noderegistry.List(ctx, a.d.Meta, noderegistry.Filter{Component: component})
	if err != nil {
		return nil, err
	}
	now := time.Now()
	out := make([]nodeView, len(nodes))
	for i, n := range nodes {
		out[i] = nodeView{Node: n, UptimeSeconds: now.Sub(n.StartedAt).Seconds(), SinceHeartbeatSecs: max(0, now.Sub(n.HeartbeatAt).Seconds())}
	}
	return out, nil
}

// nodes: GET /api/admin/nodes[?component=tiles]
func (a *api) nodes(w http.ResponseWriter, r *http.Request) error {
	comp := r.URL.Query().Get("component")
	switch comp {
	case "", noderegistry.Edge, noderegistry.Tiles, noderegistry.Control, noderegistry.Worker:
	default:
		return httpapi.BadRequest("component %q: want edge, tiles, control or worker", comp)
	}
	nodes, err := a.list(r, comp)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"nodes": nodes})
	return nil
}

// cache: GET /api/admin/cache — every edge's cache counters as of its last
// heartbeat.
func (a *api) cache(w http.ResponseWriter, r *http.Request) error {
	nodes, err := a.list(r, noderegistry.Edge)
	if err != nil {
		return err
	}
	type edgeCache struct {
		Name     string             `json:"name"`
		Address  string             `json:"address"`
		Alive    bool               `json:"alive"`
		HitRatio *float64           `json:"hit_ratio"`
		Stats    map[string]float64 `json:"stats"`
	}
	out := []edgeCache{}
	for _, n := range nodes {
		e := edgeCache{Name: n.Name, Address: n.Address, Alive: n.Alive, Stats: n.Stats}
		if total := n.Stats["hits_total"] + n.Stats["stale_total"] + n.Stats["misses_total"]; total > 0 {
			v := n.Stats["hits_total"] / total
			e.HitRatio = &v
		}
		out = append(out, e)
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"edges": out})
	return nil
}

// PurgeRequest is the body of POST /api/admin/purge. At least one of
// Tags, URLs and Prefix must be set; all that are set are purged, by one
// invalidation message.
type PurgeRequest struct {
	// Tags to purge on every edge and tiles node (cachetag syntax:
	// src:<conn>/<schema.table>, conn:<conn>, map:<id>, org:<id>).
	Tags []string `json:"tags"`
	// Soft marks entries stale instead of removing them.
	Soft bool `json:"soft,omitempty"`
	// URLs whose cached responses to purge on every edge, each naming one
	// cache key: host, path and query as the edge cache keys them (query
	// parameters left out of keys, such as access_token, ignored; the
	// others in any order; every Vary variant). A path without a host
	// ("/api/v3/maps/…?…") names it on every host. Credentials in the
	// query are removed before the purge is published or recorded.
	URLs []string `json:"urls,omitempty"`
	// Prefix of the paths whose cached responses to purge on every edge
	// ("/api/v3/maps/c1/"), on every host, or on one if it is a URL
	// ("https://maps.example.com/api/v3/maps/c1/").
	Prefix string `json:"prefix,omitempty"`
}

// purge: POST /api/admin/purge {"tags":[…],"urls":[…],"prefix":"…","soft":false}
// publishes one invalidation every edge (and, for tags, tiles) node
// applies.
func (a *api) purge(w http.ResponseWriter, r *http.Request) error {
	var req PurgeRequest
	if err := httpapi.Decode(w, r, &req, 0); err != nil {
		return err
	}
	if len(req.Tags) == 0 && len(req.URLs) == 0 && req.Prefix == "" {
		return httpapi.BadRequest("want tags, urls or a prefix to purge")
	}
	if len(req.Tags) > 1000 || len(req.URLs) > 1000 {
		return httpapi.BadRequest("want at most 1000 tags and 1000 urls")
	}
	for _, tag := range req.Tags {
		kind, _, ok := strings.Cut(tag, ":")
		if !ok || strings.ContainsAny(tag, " \t\n,") || !validKind(kind) {
			return httpapi.BadRequest("tag %q: want src:<conn>/<schema.table>, conn:<conn>, map:<id> or org:<id>", tag)
		}
	}
	inv := cachetag.Invalidation{Tags: req.Tags, Soft: req.Soft, Reason: "admin purge"}
	for _, u := range req.URLs {
		if !cachetag.ValidURL(u) {
			return httpapi.BadRequest("url %q: want an http(s) URL or a path starting with /", u)
		}
		inv.URLs = append(inv.URLs, withoutCredentials(u))
	}
	if req.Prefix != "" {
		if !cachetag.ValidURL(req.Prefix) {
			return httpapi.BadRequest("prefix %q: want a path starting with / or an http(s) URL", req.Prefix)
		}
		inv.Prefixes = []string{withoutCredentials(req.Prefix)}
	}
	if err := inv.Validate(); err != nil {
		return httpapi.BadRequest("%s", err)
	}
	data, _ := json.Marshal(inv)
	ctx, cancel := context.WithTimeout(r.Context(), a.d.Timeout)
	defer cancel()
	id, err := a.d.Broker.Publish(ctx, broker.TopicInvalidations, data, nil)
	if err != nil {
		return fmt.Errorf("publishing purge: %w", err)
	}
	detail := map[string]any{"soft": req.Soft, "message_id": id}
	if len(inv.URLs) > 0 {
		detail["urls"] = inv.URLs
	}
	if len(inv.Prefixes) > 0 {
		detail["prefix"] = inv.Prefixes[0]
	}
	a.record(r, "admin.purge", strings.Join(slices.Concat(inv.Tags, inv.URLs, inv.Prefixes), " "), detail)
	out := map[string]any{"message_id": id, "tags": inv.Tags, "soft": req.Soft}
	if len(inv.URLs) > 0 {
		out["urls"] = inv.URLs
	}
	if len(inv.Prefixes) > 0 {
		out["prefix"] = inv.Prefixes[0]
	}
	httpapi.WriteJSON(w, http.StatusAccepted, out)
	return nil
}

// withoutCredentials removes from a purge URL's query the parameters
// that name a secret (access_token, api_key, …): the edge cache leaves
// credentials out of its keys, and they must not reach the broker or the
// audit log. The other parameters are kept as written.
func withoutCredentials(raw string) string {
	base, query, ok := strings.Cut(raw, "?")
	if !ok {
		return raw
	}
	query, frag, hasFrag := strings.Cut(query, "#")
	var kept []string
	for _, p := range strings.Split(query, "&") {
		name, _, _ := strings.Cut(p, "=")
		if n, err := url.QueryUnescape(name); err == nil && secretKey.MatchString(n) {
			continue
		}
		if p != "" {
			kept = append(kept, p)
		}
	}
	out := base
	if len(kept) > 0 {
		out += "?" + strings.Join(kept, "&")
	}
	if hasFrag {
		out += "#" + frag
	}
	return out
}

func validKind(k string) bool {
	switch k {
	case "src", "conn", "map", "org":
		return true
	}
	return false
}

// stats is the postgres broker's operator view.
type stats interface {
	Subscriptions(ctx context.Context) ([]pgbroker.SubscriptionStats, error)
	ReplayDeadLetter(ctx context.Context, subscription, id string) (string, error)
	DropDeadLetter(ctx context.Context, subscription, id string) error
}

func (a *api) pg() (stats, error) {
	s, ok := a.d.Broker.(stats)
	if !ok {
		return nil, notImplemented("this broker (Pub/Sub) is managed in the cloud console")
	}
	return s, nil
}

// subscriptions: GET /api/admin/broker/subscriptions
func (a *api) subscriptions(w http.ResponseWriter, r *http.Request) error {
	s, err := a.pg()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.d.Timeout)
	defer cancel()
	subs, err := s.Subscriptions(ctx)
	if err != nil {
		return err
	}
	if subs == nil {
		subs = []pgbroker.SubscriptionStats{}
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"subscriptions": subs})
	return nil
}

// deadLetters: GET /api/admin/broker/subscriptions/{name}/dead-letters[?limit=]
func (a *api) deadLetters(w http.ResponseWriter, r *http.Request) error {
	limit := 100
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return httpapi.BadRequest("limit: want 1 to 1000")
		}
		limit = n
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.d.Timeout)
	defer cancel()
	msgs, err := a.d.Broker.DeadLetters(ctx, r.PathValue("name"), limit)
	if err != nil {
		return err
	}
	type letter struct {
		ID          string            `json:"id"`
		Topic       string            `json:"topic"`
		Data        json.RawMessage   `json:"data,omitempty"`
		DataText    string            `json:"data_text,omitempty"`
		Attributes  map[string]string `json:"attributes,omitempty"`
		PublishedAt time.Time         `json:"published_at"`
		Attempts    int               `json:"attempts"`
		LastError   string            `json:"last_error"`
	}
	out := []letter{}
	for _, m := range msgs {
		l := letter{ID: m.ID, Topic: m.Topic, Attributes: m.Attributes, PublishedAt: m.PublishedAt, Attempts: m.Attempt, LastError: m.LastError}
		if json.Valid(m.Data) {
			l.Data = m.Data
		} else {
			l.DataText = string(m.Data)
		}
		out = append(out, l)
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"dead_letters": out})
	return nil
}

// replay: POST …/dead-letters/{id}/replay
func (a *api) replay(w http.ResponseWriter, r *http.Request) error {
	s, err := a.pg()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.d.Timeout)
	defer cancel()
	id, err := s.ReplayDeadLetter(ctx, r.PathValue("name"), r.PathValue("id"))
	if err != nil {
		return err
	}
	a.record(r, "admin.dead_letter.replay", r.PathValue("name")+"/"+r.PathValue("id"), map[string]any{"message_id": id})
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"replayed": r.PathValue("id"), "message_id": id})
	return nil
}

// drop: DELETE …/dead-letters/{id}
func (a *api) drop(w http.ResponseWriter, r *http.Request) error {
	s, err := a.pg()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.d.Timeout)
	defer cancel()
	if err := s.DropDeadLetter(ctx, r.PathValue("name"), r.PathValue("id")); err != nil {
		return err
	}
	a.record(r, "admin.dead_letter.drop", r.PathValue("name")+"/"+r.PathValue("id"), nil)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func notImplemented(msg string) *httpapi.Error {
	return &httpapi.Error{Status: http.StatusNotImplemented, Code: "NOT_IMPLEMENTED", Msg: msg, Quiet: true}
}

// config: GET /api/admin/config
func (a *api) config(w http.ResponseWriter, r *http.Request) error {
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"config": Redact(a.d.Config)})
	return nil
}

// BearerSecret lets through requests whose bearer token is secret: the
// interim admin gate until administrators sign in with the admin role.
// An empty secret lets no one through.
func BearerSecret(secret string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
			if secret == "" || !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), []byte(secret)) != 1 {
				httpapi.WriteError(w, httpapi.Unauthorized("administrator credentials required"))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}
