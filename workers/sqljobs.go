package workers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/meridian-gis/meridian/internal/broker"
	"github.com/meridian-gis/meridian/internal/dataconn"
	"github.com/meridian-gis/meridian/internal/jobspec"
)

// SQLJobResult is what a finished batch SQL job stores in jobs.result.
type SQLJobResult struct {
	// Command is the command tag of the (last) statement: "INSERT 0 5",
	// "UPDATE 3", "SELECT 1"…
	Command string `json:"command"`
	// RowsAffected according to that command tag.
	RowsAffected int64 `json:"rowsAffected"`
	// Wrote is true when the job's transaction wrote something; the
	// connection's cache tag was then invalidated.
	Wrote bool `json:"wrote"`
	// ElapsedMS is the query's running time.
	ElapsedMS int64 `json:"elapsedMs"`
}

// SQLJobHandler handles TopicSQLJobs messages ({"id": jobs.id}): it runs
// the job's query on its data connection in one transaction with a
// statement_timeout and a context deadline, cancellable from the API;
// when the transaction wrote, it invalidates conn:<connection>.
//
// A job runs exactly once: a transaction that wrote records the job ID in
// the data database's public._meridian_jobs table before it commits, so a
// re-run after a crash that came between the commit and the status
// update finds it done (read-only jobs are simply run again). If the
// ledger cannot be written (no CREATE or INSERT right in schema public),
// the job still runs, at least once.
type SQLJobHandler struct {
	j   *Jobs
	log *slog.Logger
}

type sqlJobRow struct {
	id, conn, query, status string
	timeoutMS               int64
	attempts                int
	params                  []byte
	lastErr                 *string
}

// Handle is the broker.Handler.
func (h *SQLJobHandler) Handle(ctx context.Context, m *broker.Message) error {
	id, err := parseJobMessage(m)
	if err != nil {
		h.log.Warn("dropping message", "err", err)
		return nil
	}
	log := h.log.With("job_id", id, "delivery", m.Attempt)
	row, err := h.load(ctx, id)
	if errors.Is(err, pgx.ErrNoRows) {
		log.Info("job no longer exists")
		return nil
	}
	if err != nil {
		return err
	}
	if jobspec.Terminal(row.status) {
		return nil
	}
	maxAttempts := h.j.cfg.MaxAttempts
	if row.attempts >= maxAttempts {
		h.finish(ctx, id, jobspec.StatusFailure, fmt.Sprintf("gave up after %d attempts: %s", row.attempts, deref(row.lastErr)), log)
		return nil
	}
	attempt, ok, err := jobspec.Jobs.Start(ctx, h.j.d.Meta, id)
	if err != nil {
		return err
	}
	if !ok {
		return nil // finished or cancelled meanwhile
	}
	log = log.With("attempt", attempt, "conn", row.conn)

	pool, err := h.j.d.Conns.Pool(ctx, row.conn)
	if err == nil && attempt > 1 {
		// An earlier attempt may have committed before dying.
		var done *SQLJobResult
		if done, err = ledgerLookup(ctx, pool, id); err == nil && done != nil {
			log.Info("job already committed by an earlier attempt")
			return h.succeed(ctx, row, *done, log)
		}
	}
	var out sqlOutcome
	if err != nil {
		out.err = err
	} else {
		out = h.run(ctx, pool, row, log)
	}

	switch {
	case out.err == nil:
		return h.succeed(ctx, row, out.res, log)
	case out.cancelled:
		log.Info("job cancelled")
		return nil
	case ctx.Err() != nil:
		h.requeue(ctx, id, "interrupted: the worker stopped")
		return fmt.Errorf("job %s interrupted: %w", id, ctx.Err())
	case out.timedOut:
		log.Info("job timed out", "err", out.err)
		h.finish(ctx, id, jobspec.StatusFailure, fmt.Sprintf("query timed out after %v (timeout_ms %d)", out.timeout, out.timeout.Milliseconds()), log)
		return nil
	case sqlPermanent(out.err):
		log.Info("job failed", "err", out.err)
		h.finish(ctx, id, jobspec.StatusFailure, sqlMessage(out.err), log)
		return nil
	}
	msg := sqlMessage(out.err)
	if m.Attempt >= maxAttempts || attempt >= maxAttempts {
		log.Error("job failed, no attempts left", "err", out.err)
		h.finish(ctx, id, jobspec.StatusFailure, fmt.Sprintf("failed after %d attempts: %s", attempt, msg), log)
		return nil
	}
	log.Warn("job failed, will retry", "err", out.err)
	h.requeue(ctx, id, msg)
	return fmt.Errorf("job %s: %w", id, out.err)
}

type sqlOutcome struct {
	res       SQLJobResult
	err       error
	cancelled bool
	timedOut  bool
	timeout   time.Duration
}

// run executes the query in a transaction.
func (h *SQLJobHandler) run(parent context.Context, pool *pgxpool.Pool, row *sqlJobRow, log *slog.Logger) (out sqlOutcome) {
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	w := startWatcher(ctx, h.j.cfg.PollInterval.D(), cancel, log, func(ctx context.Context) (string, error) {
		return jobspec.Jobs.Heartbeat(ctx, h.j.d.Meta, row.id, nil)
	})
	timeout := time.Duration(row.timeoutMS) * time.Millisecond
	if max := h.j.cfg.MaxSQLTimeout.D(); timeout <= 0 || timeout > max {
		timeout = max
	}
	defer func() {
		w.Stop()
		out.timeout = timeout
		if out.err != nil {
			out.cancelled = errors.Is(context.Cause(ctx), errCancelled)
			out.timedOut = !out.cancelled && parent.Err() == nil && (pgQueryCanceled(out.err) || errors.Is(out.err, context.DeadlineExceeded))
		}
	}()

	var args []any
	if len(row.params) > 0 {
		if err := json.Unmarshal(row.params, &args); err != nil {
			return sqlOutcome{err: &jobError{msg: "queryParameters: want a JSON array", err: err}}
		}
	}
	// statement_timeout stops a statement on the server; the deadline
	// (a little later) covers everything else, e.g. many statements.
	qctx, qcancel := context.WithTimeout(ctx, timeout+2*time.Second)
	defer qcancel()
	conn, err := pool.Acquire(qctx)
	if err != nil {
		return sqlOutcome{err: fmt.Errorf("connecting: %w", err)}
	}
	defer conn.Release()
	tx, err := conn.Begin(qctx)
	if err != nil {
		return sqlOutcome{err: fmt.Errorf("beginning the job's transaction: %w", err)}
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(qctx, "SELECT set_config('statement_timeout', $1, true)", strconv.FormatInt(max(timeout.Milliseconds(), 1), 10)); err != nil {
		return sqlOutcome{err: fmt.Errorf("setting the job's timeout: %w", err)}
	}
	start := time.Now()
	tag, err := tx.Exec(qctx, row.query, args...)
	if err != nil {
		return sqlOutcome{err: err}
	}
	res := SQLJobResult{Command: tag.String(), RowsAffected: tag.RowsAffected(), ElapsedMS: time.Since(start).Milliseconds()}
	if conn.Conn().PgConn().TxStatus() == 'I' {
		// The script ended the transaction itself (COMMIT): what it
		// changed is committed, and we cannot tell whether it wrote.
		res.Wrote = true
		flushStats(qctx, conn)
		return sqlOutcome{res: res}
	}
	if err := tx.QueryRow(qctx, "SELECT pg_current_xact_id_if_assigned() IS NOT NULL").Scan(&res.Wrote); err != nil {
		return sqlOutcome{err: fmt.Errorf("checking for writes: %w", err)}
	}
	if res.Wrote {
		ledgerRecord(qctx, tx, row.id, res, log)
	}
	if err := tx.Commit(qctx); err != nil {
		return sqlOutcome{err: fmt.Errorf("committing: %w", err)}
	}
	if res.Wrote {
		flushStats(qctx, conn)
	}
	return sqlOutcome{res: res}
}

// flushStats makes the session's table statistics visible now rather than
// up to 10 s later: the tiles engine's catalog fingerprints (and the
// overviews keyed by them) read the insert/update/delete counters, and the
// invalidation this job publishes makes it look at once. Best effort:
// PostgreSQL before 15 has no such function.
func flushStats(ctx context.Context, conn *pgxpool.Conn) {
	conn.Exec(ctx, "SELECT pg_stat_force_next_flush()")
}

// succeed announces the writes, then marks the job successful (a failed
// publish is retried, and the re-run finds the job in the ledger).
func (h *SQLJobHandler) succeed(ctx context.Context, row *sqlJobRow, res SQLJobResult, log *slog.Logger) error {
	if res.Wrote {
		if err := h.j.notify.Connection(ctx, row.conn, "sql job "+row.id); err != nil {
			return err
		}
	}
	js, _ := json.Marshal(res)
	if err := jobspec.Jobs.Succeed(ctx, h.j.d.Meta, row.id, js); err != nil {
		return err
	}
	log.Info("job done", "command", res.Command, "wrote", res.Wrote, "elapsed_ms", res.ElapsedMS)
	return nil
}

func (h *SQLJobHandler) finish(ctx context.Context, id, status, msg string, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := jobspec.Jobs.Finish(ctx, h.j.d.Meta, id, status, msg); err != nil {
		log.Error("recording the job's final status", "status", status, "err", err)
	}
}

func (h *SQLJobHandler) requeue(ctx context.Context, id, msg string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := jobspec.Jobs.Requeue(ctx, h.j.d.Meta, id, msg); err != nil {
		h.log.Warn("requeueing job", "job_id", id, "err", err)
	}
}

func (h *SQLJobHandler) load(ctx context.Context, id string) (*sqlJobRow, error) {
	r := &sqlJobRow{}
	err := h.j.d.Meta.QueryRow(ctx, `SELECT j.id, c.name, j.query, j.status, j.timeout_ms, j.attempts, j.params, j.error
		FROM jobs j JOIN connections c ON c.id = j.connection_id WHERE j.id = $1`, id).Scan(
		&r.id, &r.conn, &r.query, &r.status, &r.timeoutMS, &r.attempts, &r.params, &r.lastErr)
	if err != nil {
		return nil, fmt.Errorf("loading job %s: %w", id, err)
	}
	return r, nil
}

// ledgerTable records, in the data database, the jobs whose writes
// committed.
const ledgerTable = "public._meridian_jobs"

// ledgerLockKey serializes the ledger's creation ("meridianjobledger").
const ledgerLockKey int64 = 0x6d6a6f626c656467

// ledgerRecord adds the job to the ledger inside its transaction. A
// failure (no rights) is logged and rolled back to a savepoint: the job
// commits anyway.
func ledgerRecord(ctx context.Context, tx pgx.Tx, id string, res SQLJobResult, log *slog.Logger) {
	if _, err := tx.Exec(ctx, "SAVEPOINT meridian_ledger"); err != nil {
		log.Warn("job ledger unavailable", "err", err)
		return
	}
	err := func() error {
		var exists bool
		if err := tx.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", ledgerTable).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", ledgerLockKey); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+ledgerTable+` (job_id text PRIMARY KEY,
				command text NOT NULL, rows_affected bigint NOT NULL, finished_at timestamptz NOT NULL DEFAULT now())`); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, "INSERT INTO "+ledgerTable+" (job_id, command, rows_affected) VALUES ($1, $2, $3)", id, res.Command, res.RowsAffected)
		return err
	}()
	if err != nil {
		log.Warn("recording the job in the ledger failed; a re-run after a crash could apply it twice", "err", err)
		tx.Exec(ctx, "ROLLBACK TO SAVEPOINT meridian_ledger")
		return
	}
	tx.Exec(ctx, "RELEASE SAVEPOINT meridian_ledger")
}

// ledgerLookup returns the ledger's record of job id, or nil.
func ledgerLookup(ctx context.Context, pool *pgxpool.Pool, id string) (*SQLJobResult, error) {
	var exists bool
	if err := pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", ledgerTable).Scan(&exists); err != nil || !exists {
		return nil, err
	}
	res := &SQLJobResult{Wrote: true}
	err := pool.QueryRow(ctx, "SELECT command, rows_affected FROM "+ledgerTable+" WHERE job_id = $1", id).Scan(&res.Command, &res.RowsAffected)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the job ledger: %w", err)
	}
	return res, nil
}

func pgQueryCanceled(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "57014"
}

// sqlPermanent: an error from the job's own SQL fails the job; connection
// trouble, resource shortage, serialization failures and server restarts
// are retried.
func sqlPermanent(err error) bool {
	var pe *pgconn.PgError
	var je *jobError
	switch {
	case errors.As(err, &je):
		return true
	case errors.Is(err, dataconn.ErrNotFound), errors.Is(err, dataconn.ErrInvalid):
		return true
	case errors.As(err, &pe):
		switch {
		case strings.HasPrefix(pe.Code, "08"), strings.HasPrefix(pe.Code, "40"), strings.HasPrefix(pe.Code, "53"),
			strings.HasPrefix(pe.Code, "57P"), strings.HasPrefix(pe.Code, "58"):
			return false
		}
		return true
	}
	return false
}

// sqlMessage is the error text kept for the user. PostgreSQL's message
// about the user's own query is shown; other errors are summarized.
func sqlMessage(err error) string {
	var pe *pgconn.PgError
	var je *jobError
	var ce *pgconn.ConnectError
	switch {
	case errors.As(err, &pe):
		s := "ERROR: " + pe.Message
		if pe.Detail != "" {
			s += " (" + pe.Detail + ")"
		}
		if pe.Position > 0 {
			s += fmt.Sprintf(" at character %d", pe.Position)
		}
		return s + " (SQLSTATE " + pe.Code + ")"
	case errors.As(err, &je):
		return je.msg
	case errors.Is(err, dataconn.ErrNotFound):
		return "data connection not found"
	case errors.As(err, &ce):
		return "cannot connect to the data connection's database"
	}
	return "internal error (details are in the worker's logs)"
}
