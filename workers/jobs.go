package workers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/meridian-gis/meridian/internal/broker"
	"github.com/meridian-gis/meridian/internal/config"
	"github.com/meridian-gis/meridian/internal/dataconn"
	"github.com/meridian-gis/meridian/internal/invalidate"
	"github.com/meridian-gis/meridian/internal/jobspec"
	"github.com/meridian-gis/meridian/workers/importer"
)

// JobsConfig configures the job handlers: imports, batch SQL and workspace
// events.
type JobsConfig struct {
	// Config holds the settings the control plane reads too (import
	// folder, size cap, private addresses, SQL timeout cap): one field
	// per environment variable, in internal/jobspec.
	jobspec.Config
	// FetchTimeout bounds one URL download. Default: 1h.
	FetchTimeout config.Duration `json:"fetch_timeout,omitempty" env:"MERIDIAN_IMPORT_FETCH_TIMEOUT"`
	// ImportTimeout bounds one import attempt (download excluded).
	// Default: 6h.
	ImportTimeout config.Duration `json:"import_timeout,omitempty" env:"MERIDIAN_IMPORT_TIMEOUT"`
	// AckDeadline of the imports and sql-jobs subscriptions: how soon a
	// job whose worker died is redelivered. Default: 30s.
	AckDeadline config.Duration `json:"ack_deadline,omitempty" env:"MERIDIAN_WORKER_ACK_DEADLINE"`
	// MaxAttempts is how many times a job runs before it is marked failed
	// when it keeps failing for reasons other than its input (lost
	// database, worker crashes). Default: 8.
	MaxAttempts int `json:"max_attempts,omitempty" env:"MERIDIAN_WORKER_MAX_ATTEMPTS"`
	// PollInterval is how often a running job saves its progress,
	// refreshes its heartbeat and checks whether it was cancelled.
	// Default: 500ms.
	PollInterval config.Duration `json:"poll_interval,omitempty" env:"MERIDIAN_WORKER_POLL_INTERVAL"`
	// SweepInterval is how often a worker looks for jobs whose message
	// was lost (see RepublishAfter, StaleAfter). Default: 15s.
	SweepInterval config.Duration `json:"sweep_interval,omitempty" env:"MERIDIAN_WORKER_SWEEP_INTERVAL"`
	// RepublishAfter: a pending job whose message was published this long
	// ago without being picked up is published again; one whose publish
	// failed is published at the next sweep. Default: 10m.
	RepublishAfter config.Duration `json:"republish_after,omitempty" env:"MERIDIAN_WORKER_REPUBLISH_AFTER"`
	// StaleAfter: a running job without a heartbeat for this long (its
	// worker died and the broker did not redeliver) is published again.
	// Default: 2m.
	StaleAfter config.Duration `json:"stale_after,omitempty" env:"MERIDIAN_WORKER_STALE_AFTER"`
}

// SetDefaults fills zero fields.
func (c *JobsConfig) SetDefaults() {
	c.Config.SetDefaults()
	if c.FetchTimeout == 0 {
		c.FetchTimeout = config.Duration(time.Hour)
	}
	if c.ImportTimeout == 0 {
		c.ImportTimeout = config.Duration(6 * time.Hour)
	}
	if c.AckDeadline == 0 {
		c.AckDeadline = config.Duration(30 * time.Second)
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 8
	}
	if c.PollInterval == 0 {
		c.PollInterval = config.Duration(500 * time.Millisecond)
	}
	if c.SweepInterval == 0 {
		c.SweepInterval = config.Duration(15 * time.Second)
	}
	if c.RepublishAfter == 0 {
		c.RepublishAfter = config.Duration(10 * time.Minute)
	}
	if c.StaleAfter == 0 {
		c.StaleAfter = config.Duration(2 * time.Minute)
	}
}

// Validate reports every problem in c.
func (c JobsConfig) Validate() error {
	errs := []error{c.Config.Validate("worker")}
	if c.MaxAttempts < 0 {
		errs = append(errs, errors.New("worker max_attempts: must be positive (MERIDIAN_WORKER_MAX_ATTEMPTS)"))
	}
	for name, d := range map[string]config.Duration{
		"MERIDIAN_IMPORT_FETCH_TIMEOUT": c.FetchTimeout, "MERIDIAN_IMPORT_TIMEOUT": c.ImportTimeout,
		"MERIDIAN_WORKER_ACK_DEADLINE":  c.AckDeadline,
		"MERIDIAN_WORKER_POLL_INTERVAL": c.PollInterval, "MERIDIAN_WORKER_SWEEP_INTERVAL": c.SweepInterval,
		"MERIDIAN_WORKER_REPUBLISH_AFTER": c.RepublishAfter, "MERIDIAN_WORKER_STALE_AFTER": c.StaleAfter,
	} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("%s: must not be negative", name))
		}
	}
	return errors.Join(errs...)
}

// ConnPools gives the pool of a data connection by name;
// *dataconn.Pools implements it. Jobs write, so the pools must not be
// read-only (see WritablePools).
type ConnPools interface {
	Pool(ctx context.Context, name string) (*pgxpool.Pool, error)
}

// JobDeps are the job handlers' collaborators, built by main.
type JobDeps struct {
	// Log receives the handlers' logs. Required.
	Log *slog.Logger
	// Meta is the metadata database (imports, jobs, sources). Required.
	Meta *pgxpool.Pool
	// Broker publishes invalidations, workspace events and swept jobs.
	// Required.
	Broker broker.Broker
	// Conns opens data connections. Required.
	Conns ConnPools
}

// WritablePools returns the dataconn.PoolsConfig workers use: no default
// statement_timeout (each job sets its own), sessions not read-only even
// for connections marked ReadOnly (imports and batch SQL write; the token
// checks are done by the control plane), and a context cancellation that
// sends PostgreSQL a cancel request, so that cancelling a job stops its
// query on the server instead of only dropping the connection.
func WritablePools() dataconn.PoolsConfig {
	return dataconn.PoolsConfig{
		ApplicationName:  "meridian-worker",
		StatementTimeout: -1,
		Configure: func(_ string, cfg *pgxpool.Config) {
			delete(cfg.ConnConfig.RuntimeParams, "default_transaction_read_only")
			cfg.ConnConfig.BuildContextWatcherHandler = func(pc *pgconn.PgConn) ctxwatch.Handler {
				return &pgconn.CancelRequestContextWatcherHandler{Conn: pc, DeadlineDelay: 10 * time.Second}
			}
		},
	}
}

// Jobs is the set of job handlers of one worker process.
type Jobs struct {
	cfg     JobsConfig
	d       JobDeps
	notify  *invalidate.Notifier
	Imports *ImportHandler
	SQL     *SQLJobHandler
	Events  *EventHandler
}

// NewJobs builds the handlers (without registering them).
func NewJobs(cfg JobsConfig, d JobDeps) (*Jobs, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if d.Log == nil || d.Meta == nil || d.Broker == nil || d.Conns == nil {
		return nil, errors.New("workers: Log, Meta, Broker and Conns are required")
	}
	j := &Jobs{cfg: cfg, d: d, notify: invalidate.New(d.Meta, d.Broker)}
	j.Imports = &ImportHandler{j: j, log: d.Log.With("job", "import"), fetch: NewFetcher(FetchConfig{
		AllowPrivate: cfg.AllowPrivate, MaxBytes: cfg.MaxImportBytes, Timeout: cfg.FetchTimeout.D(),
	})}
	j.SQL = &SQLJobHandler{j: j, log: d.Log.With("job", "sql")}
	j.Events = &EventHandler{j: j, log: d.Log.With("job", "workspace-event")}
	return j, nil
}

// Register builds the handlers with the Runner's JobsConfig and registers
// them on r for TopicImports, TopicSQLJobs and TopicWorkspaceEvents.
// Run the returned Jobs' Run beside the Runner (it sweeps lost jobs).
func Register(r *Runner, d JobDeps) (*Jobs, error) {
	j, err := NewJobs(r.cfg.Jobs, d)
	if err != nil {
		return nil, err
	}
	r.Handle(broker.TopicImports, j.Subscription(broker.TopicImports), j.Imports.Handle)
	r.Handle(broker.TopicSQLJobs, j.Subscription(broker.TopicSQLJobs), j.SQL.Handle)
	r.Handle(broker.TopicWorkspaceEvents, j.Subscription(broker.TopicWorkspaceEvents), j.Events.Handle)
	return j, nil
}

// Subscription is the shared subscription workers use for topic
// (Concurrency left to the Runner's setting).
func (j *Jobs) Subscription(topic string) broker.Subscription {
	return broker.Subscription{
		Topic:       topic,
		Name:        "workers-" + topic,
		AckDeadline: j.cfg.AckDeadline.D(),
		MaxAttempts: j.cfg.MaxAttempts,
	}
}

// EnsureSubscriptions creates the job subscriptions, so that jobs
// published before the first worker receives are kept. Optional: the
// sweep republishes jobs whose message was lost anyway.
func (j *Jobs) EnsureSubscriptions(ctx context.Context) error {
	for _, t := range []string{broker.TopicImports, broker.TopicSQLJobs, broker.TopicWorkspaceEvents} {
		if err := j.d.Broker.CreateSubscription(ctx, j.Subscription(t)); err != nil {
			return fmt.Errorf("creating subscription for %s: %w", t, err)
		}
	}
	return nil
}

// stagingCleanupInterval is how often Run drops the staging tables that
// crashed imports left behind and nobody retried.
const stagingCleanupInterval = time.Hour

// Run sweeps every SweepInterval, and drops stale staging tables every
// hour, until ctx ends (errors are logged); it returns nil then.
func (j *Jobs) Run(ctx context.Context) error {
	t := time.NewTicker(j.cfg.SweepInterval.D())
	defer t.Stop()
	var cleaned time.Time
	for {
		if _, err := j.Sweep(ctx); err != nil && ctx.Err() == nil {
			j.d.Log.Warn("sweeping jobs", "err", err)
		}
		if time.Since(cleaned) > stagingCleanupInterval {
			cleaned = time.Now()
			if err := j.CleanupStaging(ctx, stagingCleanupInterval); err != nil && ctx.Err() == nil {
				j.d.Log.Warn("dropping stale staging tables", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Sweep publishes again the jobs whose message may be lost: pending ones
// whose publish failed or happened more than RepublishAfter ago, and
// running ones without a heartbeat for StaleAfter (set back to pending).
// Workers sharing the database split the rows (SKIP LOCKED). It returns
// how many jobs it published.
func (j *Jobs) Sweep(ctx context.Context) (int, error) {
	n := 0
	var errs []error
	for _, t := range []jobspec.Table{jobspec.Imports, jobspec.Jobs} {
		ids, err := t.Sweep(ctx, j.d.Meta, j.cfg.RepublishAfter.D(), j.cfg.StaleAfter.D())
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, id := range ids {
			if err := t.Publish(ctx, j.d.Broker, id); err != nil {
				errs = append(errs, err)
				t.Unpublished(ctx, j.d.Meta, id)
				continue
			}
			n++
			j.d.Log.Info("republished job", "topic", t.Topic(), "id", id)
		}
	}
	return n, errors.Join(errs...)
}

// CleanupStaging drops, on every connection imported into during the
// last week, the staging tables of imports that started more than
// olderThan ago and are not running (importer.CleanupStale): what an
// import killed and never retried leaves.
func (j *Jobs) CleanupStaging(ctx context.Context, olderThan time.Duration) error {
	rows, err := j.d.Meta.Query(ctx, `SELECT DISTINCT c.name FROM imports i JOIN connections c ON c.id = i.connection_id
		WHERE i.created_at > now() - interval '7 days'`)
	if err != nil {
		return fmt.Errorf("listing import connections: %w", err)
	}
	var conns []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err == nil {
			conns = append(conns, c)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("listing import connections: %w", err)
	}
	var errs []error
	for _, c := range conns {
		pool, err := j.d.Conns.Pool(ctx, c)
		if err != nil {
			errs = append(errs, fmt.Errorf("connection %s: %w", c, err))
			continue
		}
		dropped, err := importer.CleanupStale(ctx, pool, olderThan)
		if err != nil {
			errs = append(errs, fmt.Errorf("connection %s: %w", c, err))
		}
		if len(dropped) > 0 {
			j.d.Log.Info("dropped stale staging tables", "conn", c, "tables", dropped)
		}
	}
	return errors.Join(errs...)
}

// parseJobMessage reads a job message (internal/jobspec); a malformed
// one is logged and acked by the caller (redelivering it cannot help).
func parseJobMessage(m *broker.Message) (string, error) {
	id, err := jobspec.ParseMessage(m.Data)
	if err != nil {
		return "", fmt.Errorf("malformed job message %s: %q", m.ID, truncate(string(m.Data), 200))
	}
	return id, nil
}

// watcher runs beside a job: every PollInterval it calls tick (which
// saves progress and the heartbeat and returns the job's status) and
// cancels the job's context with errCancelled when the status says so.
type watcher struct {
	stop context.CancelFunc
	done chan struct{}
}

// errCancelled is the cause of a job context cancelled by the user.
var errCancelled = errors.New("cancelled by the user")

func startWatcher(ctx context.Context, every time.Duration, cancelJob context.CancelCauseFunc, log *slog.Logger,
	tick func(ctx context.Context) (status string, err error)) *watcher {
	wctx, stop := context.WithCancel(ctx)
	w := &watcher{stop: stop, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-wctx.Done():
				return
			case <-t.C:
			}
			status, err := tick(wctx)
			switch {
			case err != nil:
				if wctx.Err() == nil {
					log.Warn("saving job progress", "err", err)
				}
			case status == jobspec.StatusCancelled || status == "":
				// "" means the row is gone: nobody wants the result.
				cancelJob(errCancelled)
				return
			}
		}
	}()
	return w
}

// Stop stops the watcher and waits for it, so that its last write does
// not land after the job's final status.
func (w *watcher) Stop() {
	w.stop()
	<-w.done
}

// progress is the latest progress of a running import, shared between the
// importer's callback and the watcher.
type progress struct {
	mu          sync.Mutex
	phase       string
	done, total int64
	rows        int64
}

func (p *progress) set(phase string, done, total, rows int64) {
	p.mu.Lock()
	p.phase, p.done, p.total, p.rows = phase, done, total, rows
	p.mu.Unlock()
}

func (p *progress) get() (phase string, done, total, rows int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.phase, p.done, p.total, p.rows
}

// jobError is a job failure that retrying cannot fix, with its message
// for the user.
type jobError struct {
	msg string
	err error
}

func (e *jobError) Error() string { return e.msg }
func (e *jobError) Unwrap() error { return e.err }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
