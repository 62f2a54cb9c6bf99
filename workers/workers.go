// Package workers runs Meridian's background work: consumers of the
// broker's job topics (imports, batch SQL, workspace events). A Runner
// owns one broker subscription per registered topic, all workers of a
// deployment sharing it (competing consumers), and a small HTTP server for
// /healthz, /readyz and /metrics.
//
// Shutdown loses no accepted work: on cancel the Runner stops claiming new
// messages, lets running handlers finish within Config.DrainTimeout, and
// only then cancels them; a handler cut off that way nacks, so its message
// is redelivered (handlers are idempotent).
package workers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meridian-gis/meridian/internal/broker"
	"github.com/meridian-gis/meridian/internal/config"
	"github.com/meridian-gis/meridian/internal/httpserver"
	"github.com/meridian-gis/meridian/internal/obs"
)

// Config configures a worker process.
type Config struct {
	// Addr serves /healthz, /readyz and /metrics. Default: 127.0.0.1:8083.
	Addr string `json:"addr,omitempty" env:"MERIDIAN_WORKER_ADDR"`
	// DrainTimeout is how long running jobs may go on after shutdown
	// begins before they are cancelled (and redelivered later).
	// Default: 60s.
	DrainTimeout config.Duration `json:"drain_timeout,omitempty" env:"MERIDIAN_WORKER_DRAIN_TIMEOUT"`
	// Concurrency is how many messages of each topic one worker handles at
	// once. Default: 2.
	Concurrency int `json:"concurrency,omitempty" env:"MERIDIAN_WORKER_CONCURRENCY"`
	// Jobs configures the job handlers Register adds (imports, batch SQL,
	// workspace events).
	Jobs JobsConfig `json:"jobs"`
}

// SetDefaults fills zero fields.
func (c *Config) SetDefaults() {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:8083"
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = config.Duration(time.Minute)
	}
	if c.Concurrency == 0 {
		c.Concurrency = 2
	}
	c.Jobs.SetDefaults()
}

// Validate reports every problem in c.
func (c Config) Validate() error {
	var errs []error
	if c.Concurrency < 0 {
		errs = append(errs, fmt.Errorf("worker concurrency %d: must be positive (MERIDIAN_WORKER_CONCURRENCY)", c.Concurrency))
	}
	if c.DrainTimeout < 0 {
		errs = append(errs, errors.New("worker drain_timeout: must not be negative (MERIDIAN_WORKER_DRAIN_TIMEOUT)"))
	}
	if err := c.Jobs.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Deps are the Runner's collaborators, built by main.
type Deps struct {
	// Log receives the runner's logs. Required.
	Log *slog.Logger
	// Broker delivers the jobs. Required.
	Broker broker.Broker
	// Metrics is where the runner registers its collectors. Optional.
	Metrics *prometheus.Registry
	// Health carries readiness checks (e.g. the metadata DB); the runner
	// adds its own. Optional.
	Health *obs.Health
}

// Runner consumes job topics until its context ends.
type Runner struct {
	cfg    Config
	d      Deps
	jobs   []job
	health *obs.Health

	handled *prometheus.CounterVec
	running *prometheus.GaugeVec
	seconds *prometheus.HistogramVec
}

type job struct {
	sub broker.Subscription
	h   broker.Handler
}

// New returns a Runner with no handlers.
func New(cfg Config, d Deps) (*Runner, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if d.Log == nil || d.Broker == nil {
		return nil, errors.New("workers: Log and Broker are required")
	}
	r := &Runner{cfg: cfg, d: d, health: d.Health}
	if r.health == nil {
		r.health = obs.NewHealth()
	}
	r.handled = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "meridian", Subsystem: "worker", Name: "messages_total",
		Help: "Messages handled, by topic and outcome (ack, nack, redelivered).",
	}, []string{"topic", "outcome"})
	r.running = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "meridian", Subsystem: "worker", Name: "running",
		Help: "Handlers running now, by topic.",
	}, []string{"topic"})
	r.seconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "meridian", Subsystem: "worker", Name: "handle_seconds",
		Help: "Time spent handling one message, by topic.", Buckets: prometheus.ExponentialBuckets(0.005, 4, 10),
	}, []string{"topic"})
	if d.Metrics != nil {
		for _, c := range []prometheus.Collector{r.handled, r.running, r.seconds} {
			if err := d.Metrics.Register(c); err != nil {
				return nil, fmt.Errorf("registering worker metrics: %w", err)
			}
		}
	}
	return r, nil
}

// Handle registers h for topic. The subscription is shared by every worker
// ("workers-" + topic) unless sub.Name is set; sub.Concurrency defaults to
// Config.Concurrency. Call before Run.
func (r *Runner) Handle(topic string, sub broker.Subscription, h broker.Handler) {
	sub.Topic = topic
	if sub.Name == "" {
		sub.Name = "workers-" + topic
	}
	if sub.Concurrency == 0 {
		sub.Concurrency = r.cfg.Concurrency
	}
	r.jobs = append(r.jobs, job{sub: sub, h: h})
}

// Run serves health and consumes every registered topic until ctx ends,
// then drains as the package doc describes.
func (r *Runner) Run(ctx context.Context) error {
	mux := http.NewServeMux()
	r.health.Mount(mux, r.d.Metrics)
	srv, err := httpserver.Listen(httpserver.Config{Addr: r.cfg.Addr}, mux, r.d.Log)
	if err != nil {
		return err
	}
	// Handlers run under workCtx, which outlives ctx by DrainTimeout.
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	stopDrain := context.AfterFunc(ctx, func() {
		r.health.SetDraining()
		r.d.Log.Info("draining", "timeout", r.cfg.DrainTimeout.D().String())
		t := time.AfterFunc(r.cfg.DrainTimeout.D(), cancelWork)
		context.AfterFunc(workCtx, func() { t.Stop() })
	})
	defer stopDrain()

	var wg sync.WaitGroup
	errs := make([]error, len(r.jobs)+1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		errs[0] = srv.Run(ctx, r.health.SetDraining)
	}()
	for i, j := range r.jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.d.Log.Info("consuming", "topic", j.sub.Topic, "subscription", j.sub.Name, "concurrency", j.sub.Concurrency)
			if err := r.d.Broker.Receive(ctx, j.sub, r.wrap(workCtx, j)); err != nil {
				errs[i+1] = fmt.Errorf("consuming %s: %w", j.sub.Topic, err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// wrap runs h under workCtx instead of the broker's delivery context, so
// that a shutdown lets it finish, and records metrics.
func (r *Runner) wrap(workCtx context.Context, j job) broker.Handler {
	topic := j.sub.Topic
	return func(_ context.Context, m *broker.Message) error {
		r.running.WithLabelValues(topic).Inc()
		defer r.running.WithLabelValues(topic).Dec()
		if m.Redelivered() {
			r.handled.WithLabelValues(topic, "redelivered").Inc()
		}
		start := time.Now()
		err := j.h(workCtx, m)
		r.seconds.WithLabelValues(topic).Observe(time.Since(start).Seconds())
		if err != nil {
			r.handled.WithLabelValues(topic, "nack").Inc()
			r.d.Log.Warn("job failed", "topic", topic, "id", m.ID, "attempt", m.Attempt, "err", err)
			return err
		}
		r.handled.WithLabelValues(topic, "ack").Inc()
		return nil
	}
}
