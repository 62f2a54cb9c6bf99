// Package audit records security events (sign-ins, failures, role
// changes, token and connection changes, publishes) in the metadata
// database's audit_log, and lists them per organization.
package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Execer is a pool or a transaction.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// Querier is a pool or a transaction.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Event is one audit record. Detail must never hold a secret.
type Event struct {
	ID      int64          `json:"id"`
	OrgID   string         `json:"orgId"`
	ActorID string         `json:"actorId"`
	Action  string         `json:"action"`
	Target  string         `json:"target"`
	IP      string         `json:"ip"`
	Detail  map[string]any `json:"detail,omitempty"`
	At      time.Time      `json:"at"`
}

// Record writes e (At and ID are set by the database). Record it in the
// transaction of the change it describes, so neither exists alone.
func Record(ctx context.Context, db Execer, e Event) error {
	detail := e.Detail
	if detail == nil {
		detail = map[string]any{}
	}
	b, err := json.Marshal(detail)
	if err != nil {
		return fmt.Errorf("audit: encoding detail: %w", err)
	}
	var org any = e.OrgID
	if e.OrgID == "" {
		org = nil
	}
	if _, err := db.Exec(ctx, `INSERT INTO audit_log (org_id, actor_id, action, target, ip, detail) VALUES ($1, $2, $3, $4, $5, $6)`,
		org, e.ActorID, e.Action, e.Target, e.IP, b); err != nil {
		return fmt.Errorf("audit: recording %s: %w", e.Action, err)
	}
	return nil
}

// List returns org's newest events, at most limit, older than before
// (0: from the newest).
func List(ctx context.Context, db Querier, org string, before int64, limit int) ([]Event, error) {
	if limit <= 0 || limit > 500 {
		limit = 100
	}
	rows, err := db.Query(ctx, `SELECT id, coalesce(org_id, ''), coalesce(actor_id, ''), action, target, ip, detail, at
		FROM audit_log WHERE org_id = $1 AND ($2 = 0 OR id < $2) ORDER BY id DESC LIMIT $3`, org, before, limit)
	if err != nil {
		return nil, fmt.Errorf("audit: listing: %w", err)
	}
	events, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Event, error) {
		var e Event
		err := row.Scan(&e.ID, &e.OrgID, &e.ActorID, &e.Action, &e.Target, &e.IP, &e.Detail, &e.At)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("audit: listing: %w", err)
	}
	return events, nil
}

// Recorder records the events of requests outside a transaction: a
// failure is logged, not answered, since the action itself happened.
type Recorder struct {
	DB  Execer
	Log *slog.Logger
	// ClientIP names the caller's address. Optional.
	ClientIP func(*http.Request) string
}

// Request records action on target by actor of org, from r's address.
func (rc Recorder) Request(r *http.Request, org, actor, action, target string, detail map[string]any) {
	ip := ""
	if rc.ClientIP != nil {
		ip = rc.ClientIP(r)
	}
	// The action happened: a client that hangs up now does not cancel
	// its record (bounded, so a stuck database does not hold the handler).
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 10*time.Second)
	defer cancel()
	if err := Record(ctx, rc.DB, Event{OrgID: org, ActorID: actor, Action: action, Target: target, IP: ip, Detail: detail}); err != nil {
		rc.Log.Error("audit", "err", err)
	}
}
