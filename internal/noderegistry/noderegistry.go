// Package noderegistry keeps the metadata database's list of running nodes:
// each component of each process (edge, tiles, control, worker) registers
// with its version, address and start time, then heartbeats its readiness.
// Readers (the edge's upstream source, the admin API) take a node as alive
// while its heartbeat is fresher than their stale bound; a node that stops
// cleanly removes its row, and rows silent for ExpireAfter are deleted by
// any heartbeater, so a crashed node's row does not linger.
//
// Times are the database's (now()), so nodes with skewed clocks agree.
package noderegistry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Components that register.
const (
	Edge    = "edge"
	Tiles   = "tiles"
	Control = "control"
	Worker  = "worker"
)

// ErrBadNode is returned for a Node missing its component or name.
var ErrBadNode = errors.New("noderegistry: node needs a known component and a name")

// Node is one registered component of one process.
type Node struct {
	Component   string            `json:"component"`
	Name        string            `json:"name"`
	Version     string            `json:"version"`
	Address     string            `json:"address"`
	StartedAt   time.Time         `json:"started_at"`
	HeartbeatAt time.Time         `json:"heartbeat_at"`
	Ready       bool              `json:"ready"`
	Checks      map[string]string `json:"checks,omitempty"`
	// Stats are counters the node reports (an edge: its cache's).
	Stats map[string]float64 `json:"stats,omitempty"`
	// Alive is set by List: the heartbeat is fresher than its stale bound.
	Alive bool `json:"alive"`
}

func (n Node) validate() error {
	switch n.Component {
	case Edge, Tiles, Control, Worker:
	default:
		return fmt.Errorf("%w: component %q", ErrBadNode, n.Component)
	}
	if n.Name == "" {
		return fmt.Errorf("%w: empty name", ErrBadNode)
	}
	return nil
}

// Beat upserts n's row: a new start (StartedAt differs) replaces the row,
// a heartbeat refreshes heartbeat_at, readiness and checks.
func Beat(ctx context.Context, db *pgxpool.Pool, n Node) error {
	if err := n.validate(); err != nil {
		return err
	}
	checks, stats := []byte("{}"), []byte("{}")
	if n.Checks != nil {
		checks, _ = json.Marshal(n.Checks)
	}
	if n.Stats != nil {
		stats, _ = json.Marshal(n.Stats)
	}
	_, err := db.Exec(ctx, `
INSERT INTO nodes (component, name, version, address, started_at, heartbeat_at, ready, checks, stats)
VALUES ($1, $2, $3, $4, $5, now(), $6, $7, $8)
ON CONFLICT (component, name) DO UPDATE SET version = EXCLUDED.version, address = EXCLUDED.address,
    started_at = EXCLUDED.started_at, heartbeat_at = now(), ready = EXCLUDED.ready, checks = EXCLUDED.checks,
    stats = EXCLUDED.stats`,
		n.Component, n.Name, n.Version, n.Address, n.StartedAt, n.Ready, checks, stats)
	if err != nil {
		return fmt.Errorf("heartbeat of %s/%s: %w", n.Component, n.Name, err)
	}
	return nil
}

// Remove deletes n's row (a clean stop).
func Remove(ctx context.Context, db *pgxpool.Pool, component, name string) error {
	if _, err := db.Exec(ctx, `DELETE FROM nodes WHERE component = $1 AND name = $2`, component, name); err != nil {
		return fmt.Errorf("removing %s/%s: %w", component, name, err)
	}
	return nil
}

// Expire deletes rows whose heartbeat is older than after and returns how
// many.
func Expire(ctx context.Context, db *pgxpool.Pool, after time.Duration) (int64, error) {
	tag, err := db.Exec(ctx, `DELETE FROM nodes WHERE heartbeat_at < now() - make_interval(secs => $1)`, after.Seconds())
	if err != nil {
		return 0, fmt.Errorf("expiring nodes: %w", err)
	}
	return tag.RowsAffected(), nil
}

// Filter narrows List.
type Filter struct {
	// Component, when set, keeps that component's nodes only.
	Component string
	// StaleAfter: a node whose heartbeat is older is not Alive. Default:
	// 15s.
	StaleAfter time.Duration
	// LiveReadyOnly keeps only alive, ready nodes.
	LiveReadyOnly bool
}

type nodeRow struct {
	Component   string    `db:"component"`
	Name        string    `db:"name"`
	Version     string    `db:"version"`
	Address     string    `db:"address"`
	StartedAt   time.Time `db:"started_at"`
	HeartbeatAt time.Time `db:"heartbeat_at"`
	Ready       bool      `db:"ready"`
	Checks      []byte    `db:"checks"`
	Stats       []byte    `db:"stats"`
	Alive       bool      `db:"alive"`
}

// List returns the registered nodes ordered by component and name.
func List(ctx context.Context, db *pgxpool.Pool, f Filter) ([]Node, error) {
	if f.StaleAfter <= 0 {
		f.StaleAfter = 15 * time.Second
	}
	rows, err := db.Query(ctx, `
SELECT component, name, version, address, started_at, heartbeat_at, ready, checks, stats,
       heartbeat_at >= now() - make_interval(secs => $2) AS alive
FROM nodes
WHERE ($1 = '' OR component = $1)
  AND (NOT $3 OR (ready AND heartbeat_at >= now() - make_interval(secs => $2)))
ORDER BY component, name`, f.Component, f.StaleAfter.Seconds(), f.LiveReadyOnly)
	if err != nil {
		return nil, fmt.Errorf("listing nodes: %w", err)
	}
	rs, err := pgx.CollectRows(rows, pgx.RowToStructByName[nodeRow])
	if err != nil {
		return nil, fmt.Errorf("listing nodes: %w", err)
	}
	out := make([]Node, len(rs))
	for i, r := range rs {
		out[i] = Node{Component: r.Component, Name: r.Name, Version: r.Version, Address: r.Address,
			StartedAt: r.StartedAt, HeartbeatAt: r.HeartbeatAt, Ready: r.Ready, Alive: r.Alive}
		if len(r.Checks) > 2 {
			json.Unmarshal(r.Checks, &out[i].Checks)
		}
		if len(r.Stats) > 2 {
			json.Unmarshal(r.Stats, &out[i].Stats)
		}
	}
	return out, nil
}

// ReadyFunc reports a component's readiness and its checks.
type ReadyFunc func(ctx context.Context) (bool, map[string]string)

// Heartbeater registers one node and keeps its row fresh.
type Heartbeater struct {
	// Node is registered as given; StartedAt defaults to the time Run
	// starts, HeartbeatAt and Ready are set on every beat.
	Node Node
	// Ready is asked before each beat. Nil: always ready.
	Ready ReadyFunc
	// Stats, when set, is asked before each beat for the node's counters.
	Stats func() map[string]float64
	// Interval between beats. Default: 5s.
	Interval time.Duration
	// ExpireAfter: rows silent this long are deleted (by every
	// heartbeater, about once a minute). Default: 10m.
	ExpireAfter time.Duration
	// Log receives failed beats (once per outage, and the recovery).
	Log *slog.Logger
}

// Run beats until ctx ends, then removes the row. A database outage only
// delays beats: the node keeps running, readers see it go stale.
func (h *Heartbeater) Run(ctx context.Context, db *pgxpool.Pool) error {
	if err := h.Node.validate(); err != nil {
		return err
	}
	if h.Interval <= 0 {
		h.Interval = 5 * time.Second
	}
	if h.ExpireAfter <= 0 {
		h.ExpireAfter = 10 * time.Minute
	}
	log := h.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if h.Node.StartedAt.IsZero() {
		h.Node.StartedAt = time.Now()
	}
	t := time.NewTicker(h.Interval)
	defer t.Stop()
	failing := false
	lastExpire := time.Time{}
	for {
		bctx, cancel := context.WithTimeout(ctx, max(h.Interval, 2*time.Second))
		n := h.Node
		n.Ready, n.Checks = true, nil
		if h.Ready != nil {
			n.Ready, n.Checks = h.Ready(bctx)
		}
		if h.Stats != nil {
			n.Stats = h.Stats()
		}
		err := Beat(bctx, db, n)
		if err == nil && time.Since(lastExpire) > time.Minute {
			lastExpire = time.Now()
			if _, err := Expire(bctx, db, h.ExpireAfter); err != nil {
				log.Warn("expiring silent nodes", "err", err)
			}
		}
		cancel()
		switch {
		case err != nil && !failing && ctx.Err() == nil:
			failing = true
			log.Warn("node heartbeat failing", "component", n.Component, "err", err)
		case err == nil && failing:
			failing = false
			log.Info("node heartbeat recovered", "component", n.Component)
		}
		select {
		case <-ctx.Done():
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer cancel()
			Remove(rctx, db, n.Component, n.Name)
			return nil
		case <-t.C:
		}
	}
}

// HTTPReady returns a ReadyFunc asking a component's own /readyz at url
// (the obs.Health report: {"status", "checks"}); any answer but 200 is not
// ready.
func HTTPReady(client *http.Client, url string) ReadyFunc {
	return func(ctx context.Context) (bool, map[string]string) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return false, map[string]string{"readyz": err.Error()}
		}
		res, err := client.Do(req)
		if err != nil {
			return false, map[string]string{"readyz": err.Error()}
		}
		defer res.Body.Close()
		var rep struct {
			Status string            `json:"status"`
			Checks map[string]string `json:"checks"`
		}
		json.NewDecoder(io.LimitReader(res.Body, 64<<10)).Decode(&rep)
		if rep.Checks == nil {
			rep.Checks = map[string]string{}
		}
		if rep.Status != "" && rep.Status != "ok" {
			rep.Checks["status"] = rep.Status
		}
		return res.StatusCode == http.StatusOK, rep.Checks
	}
}

// Advertised returns the address peers reach a component listening on
// listen at: host (when set) with listen's port, else listen itself unless
// it names every interface, else fallback with listen's port.
func Advertised(listen, host, fallback string) string {
	h, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	switch {
	case host != "":
		return net.JoinHostPort(host, port)
	case h != "" && h != "0.0.0.0" && h != "::":
		return listen
	}
	return net.JoinHostPort(fallback, port)
}

// LocalURL returns an http URL reaching a component listening on listen
// from the same host (loopback when it listens on every interface).
func LocalURL(listen, path string) string {
	h, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "http://" + listen + path
	}
	if h == "" || h == "0.0.0.0" {
		h = "127.0.0.1"
	} else if h == "::" {
		h = "::1"
	}
	return "http://" + net.JoinHostPort(h, port) + path
}
