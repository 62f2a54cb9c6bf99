// Package nodeupstreams is the reverse proxy upstream source
// "meridian_nodes": the nodes of one component (tiles by default) that the
// node registry lists as alive and ready, each confirmed by this edge's
// own health probe, so the edge balances over the tiles nodes itself.
//
// Caddy runs no active health checks for dynamic upstreams and its passive
// checks forget a host no request refers to, so the source does both:
// it probes every listed node (health_uri, every health_interval) and
// returns only those that answered, and when Caddy retries a request after
// a failure (ResetCache) it ejects the node that failed until a probe finds
// it healthy again. If the registry cannot be read (a database outage) the
// last known nodes stay in use; with no healthy node the source reports an
// error and Caddy falls back to the handler's static upstreams.
package nodeupstreams

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"

	"github.com/meridian-gis/meridian/caddy-modules/edgeapp"
	"github.com/meridian-gis/meridian/internal/noderegistry"
)

func init() {
	caddy.RegisterModule(Source{})
}

// ErrNoNodes means no node of the component is known to be healthy.
var ErrNoNodes = errors.New("meridian_nodes: no healthy node")

// Source lists the healthy nodes of one component.
type Source struct {
	// Component whose nodes are the upstreams. Default: tiles.
	Component string `json:"component,omitempty"`
	// Refresh is how often the registry is read. Default: 1s.
	Refresh caddy.Duration `json:"refresh,omitempty"`
	// StaleAfter: a node whose heartbeat is older is left out. Default:
	// 15s.
	StaleAfter caddy.Duration `json:"stale_after,omitempty"`
	// HealthURI is probed on every node (GET, 200 is healthy). Default:
	// /healthz.
	HealthURI string `json:"health_uri,omitempty"`
	// HealthInterval between probes of each node. Default: 1s.
	HealthInterval caddy.Duration `json:"health_interval,omitempty"`
	// HealthTimeout bounds one probe. Default: 1s.
	HealthTimeout caddy.Duration `json:"health_timeout,omitempty"`

	log    *slog.Logger
	edge   *edgeapp.App
	client *http.Client
	cancel context.CancelFunc
	done   chan struct{}
	kick   chan struct{}

	st *state
}

// state is what the loop keeps and requests read.
type state struct {
	mu        sync.RWMutex
	listed    []string                          // addresses the registry gave last
	upstreams map[string]*reverseproxy.Upstream // every address seen, for stable pointers
	healthy   []*reverseproxy.Upstream          // listed, and passed the last probe
	ejected   map[string]bool                   // failed a proxied request; out until a probe passes
}

// CaddyModule returns the Caddy module information.
func (Source) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.reverse_proxy.upstreams.meridian_nodes", New: func() caddy.Module { return new(Source) }}
}

// Provision sets defaults and starts the refresh loop.
func (s *Source) Provision(ctx caddy.Context) error {
	s.log = ctx.Slogger()
	if s.Component == "" {
		s.Component = noderegistry.Tiles
	}
	if s.Refresh <= 0 {
		s.Refresh = caddy.Duration(time.Second)
	}
	if s.StaleAfter <= 0 {
		s.StaleAfter = caddy.Duration(15 * time.Second)
	}
	if s.HealthURI == "" {
		s.HealthURI = "/healthz"
	}
	if s.HealthInterval <= 0 {
		s.HealthInterval = caddy.Duration(time.Second)
	}
	if s.HealthTimeout <= 0 {
		s.HealthTimeout = caddy.Duration(time.Second)
	}
	if err := s.Validate(); err != nil {
		return err
	}
	app, err := ctx.App("meridian")
	if err != nil {
		return fmt.Errorf("meridian_nodes: loading the meridian app: %w", err)
	}
	s.edge = app.(*edgeapp.App)
	s.client = &http.Client{Timeout: time.Duration(s.HealthTimeout),
		Transport: &http.Transport{DisableKeepAlives: true}}
	s.st = &state{upstreams: map[string]*reverseproxy.Upstream{}, ejected: map[string]bool{}}
	s.kick = make(chan struct{}, 1)
	s.done = make(chan struct{})
	var loopCtx context.Context
	loopCtx, s.cancel = context.WithCancel(context.Background())
	go s.loop(loopCtx)
	return nil
}

// Validate checks the component name.
func (s *Source) Validate() error {
	switch s.Component {
	case noderegistry.Tiles, noderegistry.Control, noderegistry.Edge, noderegistry.Worker:
		return nil
	}
	return fmt.Errorf("meridian_nodes: unknown component %q", s.Component)
}

// Cleanup stops the refresh loop.
func (s *Source) Cleanup() error {
	if s.cancel != nil {
		s.cancel()
		<-s.done
	}
	return nil
}

// GetUpstreams returns the healthy nodes, or ErrNoNodes (Caddy then uses
// the static upstreams).
func (s *Source) GetUpstreams(*http.Request) ([]*reverseproxy.Upstream, error) {
	s.st.mu.RLock()
	defer s.st.mu.RUnlock()
	if len(s.st.healthy) == 0 {
		return nil, ErrNoNodes
	}
	return s.st.healthy, nil
}

// ResetCache is called by Caddy before it retries a request that failed:
// the node that failed is ejected until a probe finds it healthy, and a
// probe round starts now.
func (s *Source) ResetCache(r *http.Request) error {
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		if addr, ok := repl.GetString("http.reverse_proxy.upstream.hostport"); ok && addr != "" {
			s.st.mu.Lock()
			if _, known := s.st.upstreams[addr]; known && !s.st.ejected[addr] {
				s.st.ejected[addr] = true
				s.st.healthy = without(s.st.healthy, addr)
				s.log.Warn("node ejected after a failed request", "component", s.Component, "address", addr)
			}
			s.st.mu.Unlock()
		}
	}
	select {
	case s.kick <- struct{}{}:
	default:
	}
	return nil
}

func without(ups []*reverseproxy.Upstream, addr string) []*reverseproxy.Upstream {
	out := make([]*reverseproxy.Upstream, 0, len(ups))
	for _, u := range ups {
		if u.Dial != addr {
			out = append(out, u)
		}
	}
	return out
}

// loop reads the registry every Refresh and probes every HealthInterval
// (or at once when kicked).
func (s *Source) loop(ctx context.Context) {
	defer close(s.done)
	refresh := time.NewTicker(time.Duration(s.Refresh))
	defer refresh.Stop()
	probe := time.NewTicker(time.Duration(s.HealthInterval))
	defer probe.Stop()
	registryDown := false
	read := func() {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		nodes, err := noderegistry.List(rctx, s.edge.Pool(), noderegistry.Filter{
			Component: s.Component, StaleAfter: time.Duration(s.StaleAfter), LiveReadyOnly: true})
		if err != nil {
			if !registryDown && ctx.Err() == nil {
				s.log.Warn("reading the node registry; keeping the last known nodes", "component", s.Component, "err", err)
			}
			registryDown = true
			return
		}
		if registryDown {
			s.log.Info("node registry readable again", "component", s.Component)
		}
		registryDown = false
		addrs := make([]string, 0, len(nodes))
		for _, n := range nodes {
			if n.Address != "" {
				addrs = append(addrs, n.Address)
			}
		}
		sort.Strings(addrs)
		s.st.mu.Lock()
		s.st.listed = addrs
		s.st.mu.Unlock()
	}
	read()
	s.probe(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-refresh.C:
			read()
		case <-probe.C:
			s.probe(ctx)
		case <-s.kick:
			s.probe(ctx)
		}
	}
}

// probe checks every listed node at once and rebuilds the healthy list.
func (s *Source) probe(ctx context.Context) {
	s.st.mu.RLock()
	listed := append([]string(nil), s.st.listed...)
	s.st.mu.RUnlock()
	ok := make([]bool, len(listed))
	var wg sync.WaitGroup
	for i, addr := range listed {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok[i] = s.check(ctx, addr)
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return
	}
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	healthy := make([]*reverseproxy.Upstream, 0, len(listed))
	for i, addr := range listed {
		if !ok[i] {
			continue
		}
		if s.st.ejected[addr] {
			delete(s.st.ejected, addr)
			s.log.Info("node healthy again", "component", s.Component, "address", addr)
		}
		u := s.st.upstreams[addr]
		if u == nil {
			u = &reverseproxy.Upstream{Dial: addr}
			s.st.upstreams[addr] = u
		}
		healthy = append(healthy, u)
	}
	s.st.healthy = healthy
}

func (s *Source) check(ctx context.Context, addr string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+s.HealthURI, nil)
	if err != nil {
		return false
	}
	res, err := s.client.Do(req)
	if err != nil {
		return false
	}
	res.Body.Close()
	return res.StatusCode == http.StatusOK
}

// Interface guards
var (
	_ caddy.Provisioner                  = (*Source)(nil)
	_ caddy.Validator                    = (*Source)(nil)
	_ caddy.CleanerUpper                 = (*Source)(nil)
	_ reverseproxy.UpstreamSource        = (*Source)(nil)
	_ reverseproxy.CachingUpstreamSource = (*Source)(nil)
)
