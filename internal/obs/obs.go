// Package obs holds the observability plumbing every component shares:
// structured JSON logs, a Prometheus registry with the Go and process
// collectors, and health checks served as /healthz (alive) and /readyz
// (ready to take traffic).
package obs

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// LogConfig configures NewLogger.
type LogConfig struct {
	// Level is debug, info, warn or error. Default: info.
	Level string `json:"level,omitempty" env:"MERIDIAN_LOG_LEVEL"`
	// Format is json or text. Default: json.
	Format string `json:"format,omitempty" env:"MERIDIAN_LOG_FORMAT"`
}

// Validate checks the level and format names.
func (c LogConfig) Validate() error {
	if _, err := parseLevel(c.Level); err != nil {
		return err
	}
	switch c.Format {
	case "", "json", "text":
		return nil
	}
	return fmt.Errorf("log format %q: want json or text (MERIDIAN_LOG_FORMAT)", c.Format)
}

func parseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "", "info":
		return slog.LevelInfo, nil
	case "debug":
		return slog.LevelDebug, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("log level %q: want debug, info, warn or error (MERIDIAN_LOG_LEVEL)", s)
}

// NewLogger returns a structured logger writing to w.
func NewLogger(w io.Writer, c LogConfig) *slog.Logger {
	lvl, _ := parseLevel(c.Level)
	opts := &slog.HandlerOptions{Level: lvl}
	if c.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// NewRegistry returns a Prometheus registry with the Go runtime and process
// collectors registered.
func NewRegistry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

// MetricsHandler serves r in the Prometheus text format.
func MetricsHandler(r *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(r, promhttp.HandlerOpts{Registry: r})
}

// Check reports whether one dependency is usable; nil means healthy.
type Check func(ctx context.Context) error

// Health tracks a component's readiness: named checks run on /readyz, and
// a draining flag set at shutdown so load balancers stop sending work
// before the listener closes. The zero value is not usable; use NewHealth.
type Health struct {
	// Timeout bounds each /readyz run. Default: 2s.
	Timeout time.Duration

	mu       sync.Mutex
	names    []string
	checks   map[string]Check
	draining atomic.Bool
}

// NewHealth returns a Health with no checks.
func NewHealth() *Health {
	return &Health{Timeout: 2 * time.Second, checks: map[string]Check{}}
}

// Add registers a named readiness check.
func (h *Health) Add(name string, c Check) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.checks[name]; !ok {
		h.names = append(h.names, name)
	}
	h.checks[name] = c
}

// SetDraining marks the component as shutting down: /readyz answers 503.
func (h *Health) SetDraining() { h.draining.Store(true) }

// Report is the body of /readyz.
type Report struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks,omitempty"`
}

// Ready runs every check and reports the result; ok is false when any
// check fails or the component is draining.
func (h *Health) Ready(ctx context.Context) (Report, bool) {
	ctx, cancel := context.WithTimeout(ctx, h.Timeout)
	defer cancel()
	h.mu.Lock()
	names := append([]string(nil), h.names...)
	checks := make([]Check, len(names))
	for i, n := range names {
		checks[i] = h.checks[n]
	}
	h.mu.Unlock()

	rep := Report{Status: "ok", Checks: map[string]string{}}
	ok := true
	if h.draining.Load() {
		rep.Status, ok = "draining", false
	}
	results := make([]error, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = c(ctx)
		}()
	}
	wg.Wait()
	for i, err := range results {
		if err != nil {
			rep.Checks[names[i]] = err.Error()
			if ok {
				rep.Status = "unavailable"
			}
			ok = false
		} else {
			rep.Checks[names[i]] = "ok"
		}
	}
	return rep, ok
}

// Mount registers /healthz and /readyz on mux, and /metrics when reg is
// not nil.
func (h *Health) Mount(mux *http.ServeMux, reg *prometheus.Registry) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"status":"ok"}`+"\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		rep, ok := h.Ready(r.Context())
		w.Header().Set("Content-Type", "application/json")
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		json.NewEncoder(w).Encode(rep)
	})
	if reg != nil {
		mux.Handle("GET /metrics", MetricsHandler(reg))
	}
}
