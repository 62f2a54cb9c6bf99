// Package jobs serves the batch SQL jobs API, /api/v3/sql/{conn}/job
// (CARTO_API.md §3.2): a query becomes a jobs row that a worker runs in a
// transaction on the connection (internal/jobspec is the contract with
// the workers). Callers are API access tokens (control/authn) with the sql
// API and a "*" grant on the connection; every lookup is scoped to the
// token's organization, and another organization's job answers 404.
package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/meridian-gis/meridian/control/authn"
	"github.com/meridian-gis/meridian/control/httpapi"
	"github.com/meridian-gis/meridian/internal/broker"
	"github.com/meridian-gis/meridian/internal/grant"
	"github.com/meridian-gis/meridian/internal/jobspec"
)

// Deps are the jobs API's collaborators and settings.
type Deps struct {
	Log  *slog.Logger
	Meta *pgxpool.Pool
	// Broker publishes jobs to the workers; without it (or when a publish
	// fails) the workers' sweep picks them up.
	Broker broker.Broker
	// MaxSQLTimeout caps a job's timeout_ms (jobspec.Config). Default: 24h.
	MaxSQLTimeout time.Duration
	// RequestTimeout bounds one request's database work. Default: 30s.
	RequestTimeout time.Duration
}

type api struct{ d Deps }

// Routes registers the jobs API on mux.
func Routes(mux *http.ServeMux, d Deps) {
	if d.MaxSQLTimeout <= 0 {
		d.MaxSQLTimeout = 24 * time.Hour
	}
	if d.RequestTimeout <= 0 {
		d.RequestTimeout = 30 * time.Second
	}
	a := &api{d}
	h := func(fn func(w http.ResponseWriter, r *http.Request) error) http.HandlerFunc {
		return httpapi.Handler(d.Log, fn)
	}
	mux.HandleFunc("POST /api/v3/sql/{conn}/job", h(a.create))
	mux.HandleFunc("GET /api/v3/sql/{conn}/job", h(a.list))
	mux.HandleFunc("GET /api/v3/sql/{conn}/job/{id}", h(a.get))
	mux.HandleFunc("DELETE /api/v3/sql/{conn}/job/{id}", h(a.cancel))
	mux.HandleFunc("POST /api/v3/sql/{conn}/job/{id}/cancel", h(a.cancel))
	mux.HandleFunc("GET /api/v3/sql/jobs", h(a.list))
}

// authorize answers 401 or 403 unless the request's token allows the sql
// API (control/authn) and, when conn is not empty, has a "*" grant on
// conn: a job may read and write anything there.
func authorize(r *http.Request, conn string) (authn.Token, error) {
	tok, err := authn.APIToken(r, grant.APISQL)
	if err != nil {
		return authn.Token{}, err
	}
	if conn != "" && tok.AllowConnection(grant.APISQL, conn) != nil {
		return authn.Token{}, authn.NoGrant(conn, "*")
	}
	return tok, nil
}

// jobRequest is the body of POST /api/v3/sql/{conn}/job.
type jobRequest struct {
	Query string `json:"query"`
	// TimeoutMS bounds the job's running time. Default: 1h; at most
	// MaxSQLTimeout.
	TimeoutMS int64 `json:"timeout_ms,omitempty"`
	// QueryParameters are bound to $1, $2… (then the query must be one
	// statement).
	QueryParameters []any `json:"queryParameters,omitempty"`
}

// Job is a batch SQL job as the API shows it (CARTO_API.md §3.2).
type Job struct {
	JobID      string `json:"jobId"`
	ExternalID string `json:"externalId"`
	Status     string `json:"status"`
	Connection string `json:"connection"`
	Query      string `json:"query"`
	TimeoutMS  int64  `json:"timeoutMs"`
	// Run's Result, for a successful job: command tag,
	// rowsAffected, wrote, elapsedMs.
	jobspec.Run
}

const jobColumns = `j.id, c.name, j.query, j.status, j.timeout_ms, j.attempts, coalesce(j.error, ''), j.result,
	j.created_at, j.updated_at, j.started_at, j.finished_at`

func scanJob(row pgx.Row) (*Job, error) {
	var r Job
	var result []byte
	err := row.Scan(&r.JobID, &r.Connection, &r.Query, &r.Status, &r.TimeoutMS, &r.Attempts, &r.Error, &result,
		&r.CreatedAt, &r.UpdatedAt, &r.StartedAt, &r.FinishedAt)
	if err != nil {
		return nil, err
	}
	r.ExternalID = r.JobID
	r.Settle(r.Status, result)
	return &r, nil
}

// create is POST /api/v3/sql/{conn}/job.
func (a *api) create(w http.ResponseWriter, r *http.Request) error {
	conn := r.PathValue("conn")
	claims, err := authorize(r, conn)
	if err != nil {
		return err
	}
	var q jobRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 2<<20)).Decode(&q); err != nil {
		return &httpapi.Error{Status: http.StatusBadRequest, Code: "BAD_REQUEST", Msg: `body: want {"query": "…"}`, Err: err}
	}
	if strings.TrimSpace(q.Query) == "" {
		return httpapi.BadRequest("query is required")
	}
	if len(q.Query) > 1<<20 {
		return httpapi.BadRequest("query: at most 1 MiB")
	}
	maxMS := a.d.MaxSQLTimeout.Milliseconds()
	switch {
	case q.TimeoutMS == 0:
		q.TimeoutMS = min(time.Hour.Milliseconds(), maxMS)
	case q.TimeoutMS < 0 || q.TimeoutMS > maxMS:
		return httpapi.BadRequest("timeout_ms: want 1 to %d", maxMS)
	}
	var params []byte
	if len(q.QueryParameters) > 0 {
		params, _ = json.Marshal(q.QueryParameters)
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.d.RequestTimeout)
	defer cancel()
	rec, err := scanJob(a.d.Meta.QueryRow(ctx, `WITH j AS (
			INSERT INTO jobs (org_id, connection_id, query, timeout_ms, params, created_by)
			SELECT $1, c.id, $3, $4::integer, $5::jsonb, $6 FROM connections c WHERE c.name = $2 AND c.org_id = $1 RETURNING *)
		SELECT `+jobColumns+` FROM j JOIN connections c ON c.id = j.connection_id`,
		claims.OrgID, conn, q.Query, q.TimeoutMS, params, claims.Subject))
	if errors.Is(err, pgx.ErrNoRows) {
		return httpapi.NotFound("connection " + conn) // none of this organization's
	}
	if err != nil {
		return fmt.Errorf("recording job: %w", err)
	}
	if err := jobspec.Jobs.Enqueue(ctx, a.d.Meta, a.d.Broker, rec.JobID); err != nil {
		a.d.Log.Warn("publishing the job failed; a worker's sweep will pick it up", "id", rec.JobID, "err", err)
	}
	httpapi.WriteJSON(w, http.StatusCreated, rec)
	return nil
}

// load authorizes the request and returns the job of its path ({conn},
// {id}) in the token's organization: another organization's job is a 404
// as a missing one is.
func (a *api) load(ctx context.Context, r *http.Request) (*Job, error) {
	conn, id := r.PathValue("conn"), r.PathValue("id")
	claims, err := authorize(r, conn)
	if err != nil {
		return nil, err
	}
	rec, err := scanJob(a.d.Meta.QueryRow(ctx, `SELECT `+jobColumns+`
		FROM jobs j JOIN connections c ON c.id = j.connection_id WHERE j.id = $1 AND j.org_id = $2 AND c.name = $3`, id, claims.OrgID, conn))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, httpapi.NotFound("job " + id)
	}
	if err != nil {
		return nil, fmt.Errorf("loading job %s: %w", id, err)
	}
	return rec, nil
}

// get is GET /api/v3/sql/{conn}/job/{id}.
func (a *api) get(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), a.d.RequestTimeout)
	defer cancel()
	rec, err := a.load(ctx, r)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, rec)
	return nil
}

// cancel is DELETE /api/v3/sql/{conn}/job/{id} and POST …/cancel: a
// pending or running job becomes cancelled; the worker running it cancels
// its query within its poll interval (PostgreSQL rolls the transaction
// back). 409 for a finished job.
func (a *api) cancel(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), a.d.RequestTimeout)
	defer cancel()
	rec, err := a.load(ctx, r)
	if err != nil {
		return err
	}
	ok, err := jobspec.Jobs.Cancel(ctx, a.d.Meta, rec.JobID)
	if err != nil {
		return err
	}
	if !ok {
		return httpapi.Conflict("job already finished with status " + rec.Status)
	}
	if rec, err = a.load(ctx, r); err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, rec)
	return nil
}

// list is GET /api/v3/sql/{conn}/job (one connection) and GET
// /api/v3/sql/jobs (every connection the token has "*" on), newest
// first. Query: limit (default 50, at most 500), status.
func (a *api) list(w http.ResponseWriter, r *http.Request) error {
	conn := r.PathValue("conn")
	claims, err := authorize(r, conn)
	if err != nil {
		return err
	}
	limit, err := httpapi.Limit(r, 50, 500)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.d.RequestTimeout)
	defer cancel()
	status := r.URL.Query().Get("status")
	rows, err := a.d.Meta.Query(ctx, `SELECT `+jobColumns+`
		FROM jobs j JOIN connections c ON c.id = j.connection_id
		WHERE j.org_id = $1 AND ($2 = '' OR c.name = $2) AND ($3 = '' OR j.status = $3)
		ORDER BY j.created_at DESC LIMIT $4`, claims.OrgID, conn, status, limit*4)
	if err != nil {
		return fmt.Errorf("listing jobs: %w", err)
	}
	defer rows.Close()
	out := []Job{}
	for rows.Next() {
		rec, err := scanJob(rows)
		if err != nil {
			return fmt.Errorf("listing jobs: %w", err)
		}
		if claims.AllowConnection(grant.APISQL, rec.Connection) == nil && len(out) < limit {
			out = append(out, *rec)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("listing jobs: %w", err)
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"jobs": out})
	return nil
}
