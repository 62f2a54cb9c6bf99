package jobspec

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/meridian-gis/meridian/internal/broker"
)

// The statements below are the imports' and jobs' state machine, the part
// of those tables control and workers both write:
//
//	pending ──Start──▶ running ──Succeed──▶ success
//	   │                  │  └────Finish───▶ failure | cancelled
//	   │                  └─Requeue─▶ pending (a retry)
//	   └──Cancel (control) or Finish──▶ cancelled | failure
//
// The control plane inserts rows (pending), publishes them and cancels
// them; workers run them. Sweep republishes rows whose message was lost.
// Each statement names its statuses here, once.

// Table is a table of work that workers run: Imports or Jobs.
type Table struct {
	name  string // SQL name (a constant, never client input)
	topic string // the broker topic its work is published on
	// reset is what starting, finishing and requeueing a run also clear.
	reset string
	// done is what a success also sets.
	done string
	// progress: the table has phase, bytes and rows columns.
	progress bool
}

// The two tables of work.
var (
	Imports = Table{name: "imports", topic: broker.TopicImports, reset: ", phase = NULL", done: ", phase = 'done'", progress: true}
	Jobs    = Table{name: "jobs", topic: broker.TopicSQLJobs}
)

// Name is the table's SQL name.
func (t Table) Name() string { return t.name }

// Topic is the broker topic the table's work is published on.
func (t Table) Topic() string { return t.topic }

// DB is a pool, a connection or a transaction.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Message is the payload of the TopicImports and TopicSQLJobs messages.
type Message struct {
	// ID of the imports or jobs row.
	ID string `json:"id"`
}

// ParseMessage reads a message's row id.
func ParseMessage(data []byte) (string, error) {
	var m Message
	if err := json.Unmarshal(data, &m); err != nil || m.ID == "" {
		return "", errors.New("malformed job message")
	}
	return m.ID, nil
}

// Publish publishes row id on the table's topic.
func (t Table) Publish(ctx context.Context, b broker.Broker, id string) error {
	if b == nil {
		return errors.New("no broker")
	}
	data, _ := json.Marshal(Message{ID: id})
	if _, err := b.Publish(ctx, t.topic, data, nil); err != nil {
		return fmt.Errorf("publishing %s %s: %w", t.name, id, err)
	}
	return nil
}

// Enqueue publishes row id; when that fails it marks the row for the
// sweep (Unpublished), so the work is not lost, and returns the failure.
func (t Table) Enqueue(ctx context.Context, db DB, b broker.Broker, id string) error {
	err := t.Publish(ctx, b, id)
	if err == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	return errors.Join(err, t.Unpublished(ctx, db, id))
}

// Unpublished marks row id as not published (enqueued_at NULL): the next
// sweep publishes it.
func (t Table) Unpublished(ctx context.Context, db DB, id string) error {
	if _, err := db.Exec(ctx, `UPDATE `+t.name+` SET enqueued_at = NULL WHERE id = $1`, id); err != nil {
		return fmt.Errorf("marking %s %s for the sweep: %w", t.name, id, err)
	}
	return nil
}

// Cancel marks row id cancelled by the user if it is pending or running;
// false when it has already finished (or does not exist).
func (t Table) Cancel(ctx context.Context, db DB, id string) (bool, error) {
	tag, err := db.Exec(ctx, `UPDATE `+t.name+` SET status = 'cancelled', error = 'cancelled by the user',
			finished_at = now(), updated_at = now()
		WHERE id = $1 AND status IN ('pending', 'running')`, id)
	if err != nil {
		return false, fmt.Errorf("cancelling %s %s: %w", t.name, id, err)
	}
	return tag.RowsAffected() == 1, nil
}

// Start marks row id running and counts the attempt; ok is false when it
// is no longer pending or running (finished or cancelled meanwhile).
func (t Table) Start(ctx context.Context, db DB, id string) (attempt int, ok bool, err error) {
	err = db.QueryRow(ctx, `UPDATE `+t.name+` SET status = 'running', attempts = attempts + 1,
			started_at = coalesce(started_at, now()), heartbeat_at = now(), updated_at = now()`+t.reset+`
		WHERE id = $1 AND status IN ('pending', 'running') RETURNING attempts`, id).Scan(&attempt)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("starting %s %s: %w", t.name, id, err)
	}
	return attempt, true, nil
}

// Progress is what a running import reports at each heartbeat.
type Progress struct {
	Phase            string
	BytesDone, Total int64 // Total < 0: unknown
	Rows             int64
}

// Heartbeat refreshes row id's heartbeat (with p, on the imports table:
// and its progress) and returns its status, "" when the row is gone.
func (t Table) Heartbeat(ctx context.Context, db DB, id string, p *Progress) (string, error) {
	var status string
	var err error
	if p != nil && t.progress {
		err = db.QueryRow(ctx, `UPDATE `+t.name+` SET
				status = CASE WHEN status = 'pending' THEN 'running' ELSE status END,
				phase = coalesce(nullif($2, ''), phase), bytes_done = $3,
				bytes_total = CASE WHEN $4::bigint >= 0 THEN $4::bigint ELSE bytes_total END,
				rows_done = $5, heartbeat_at = now(), updated_at = now()
			WHERE id = $1 RETURNING status`, id, p.Phase, p.BytesDone, p.Total, p.Rows).Scan(&status)
	} else {
		err = db.QueryRow(ctx, `UPDATE `+t.name+` SET heartbeat_at = now(),
				status = CASE WHEN status = 'pending' THEN 'running' ELSE status END
			WHERE id = $1 RETURNING status`, id).Scan(&status)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	return status, err
}

// Succeed marks row id successful, with result when not nil. A cancel
// that came while the work committed lost the race: the work is done, so
// a cancelled row becomes successful too.
func (t Table) Succeed(ctx context.Context, db DB, id string, result []byte) error {
	if _, err := db.Exec(ctx, `UPDATE `+t.name+` SET status = 'success', result = coalesce($2, result), error = NULL,
			finished_at = now(), updated_at = now()`+t.done+`
		WHERE id = $1 AND status IN ('pending', 'running', 'cancelled')`, id, result); err != nil {
		return fmt.Errorf("finishing %s %s: %w", t.name, id, err)
	}
	return nil
}

// Finish sets a final status (StatusFailure or StatusCancelled) with its
// message, unless row id has already finished.
func (t Table) Finish(ctx context.Context, db DB, id, status, msg string) error {
	if status != StatusFailure && status != StatusCancelled {
		return fmt.Errorf("jobspec: Finish with status %q", status)
	}
	if _, err := db.Exec(ctx, `UPDATE `+t.name+` SET status = $2, error = $3, finished_at = now(), updated_at = now()`+t.reset+`
		WHERE id = $1 AND status IN ('pending', 'running')`, id, status, msg); err != nil {
		return fmt.Errorf("finishing %s %s: %w", t.name, id, err)
	}
	return nil
}

// Requeue puts running row id back to pending, to be retried, with why the
// attempt failed.
func (t Table) Requeue(ctx context.Context, db DB, id, msg string) error {
	if _, err := db.Exec(ctx, `UPDATE `+t.name+` SET status = 'pending', error = $2, heartbeat_at = NULL,
			enqueued_at = now(), updated_at = now()`+t.reset+`
		WHERE id = $1 AND status = 'running'`, id, msg); err != nil {
		return fmt.Errorf("requeueing %s %s: %w", t.name, id, err)
	}
	return nil
}

// Sweep sets back to pending, and returns, the rows whose message may be
// lost: pending ones never published (enqueued_at NULL) or published more
// than republishAfter ago, and running ones without a heartbeat for
// staleAfter. Callers sharing the database split the rows (SKIP LOCKED);
// at most 100 at a time.
func (t Table) Sweep(ctx context.Context, db DB, republishAfter, staleAfter time.Duration) ([]string, error) {
	rows, err := db.Query(ctx, `UPDATE `+t.name+` t SET status = 'pending', enqueued_at = now()
		WHERE t.id IN (SELECT id FROM `+t.name+`
			WHERE status = 'pending' AND (enqueued_at IS NULL OR enqueued_at < now() - $1 * interval '1 microsecond')
			   OR status = 'running' AND coalesce(heartbeat_at, started_at, updated_at) < now() - $2 * interval '1 microsecond'
			FOR UPDATE SKIP LOCKED LIMIT 100)
		RETURNING t.id`, republishAfter.Microseconds(), staleAfter.Microseconds())
	if err != nil {
		return nil, fmt.Errorf("sweeping %s: %w", t.name, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("sweeping %s: %w", t.name, err)
	}
	return ids, nil
}
