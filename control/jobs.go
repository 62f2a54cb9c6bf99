package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/meridian-gis/meridian/internal/broker"
	"github.com/meridian-gis/meridian/internal/grant"
)

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

// jobJSON is a batch SQL job as the API shows it (CARTO_API.md §3.2).
type jobJSON struct {
	JobID      string `json:"jobId"`
	ExternalID string `json:"externalId"`
	Status     string `json:"status"`
	Connection string `json:"connection"`
	Query      string `json:"query"`
	TimeoutMS  int64  `json:"timeoutMs"`
	// runState's Result, for a successful job: command tag,
	// rowsAffected, wrote, elapsedMs.
	runState
}

const jobColumns = `j.id, j.org_id, c.name, j.query, j.status, j.timeout_ms, j.attempts, coalesce(j.error, ''), j.result,
	j.created_at, j.updated_at, j.started_at, j.finished_at`

type jobRecord struct {
	jobJSON
	org string
}

func scanJob(row pgx.Row) (*jobRecord, error) {
	var r jobRecord
	var result []byte
	err := row.Scan(&r.JobID, &r.org, &r.Connection, &r.Query, &r.Status, &r.TimeoutMS, &r.Attempts, &r.Error, &result,
		&r.CreatedAt, &r.UpdatedAt, &r.StartedAt, &r.FinishedAt)
	if err != nil {
		return nil, err
	}
	r.ExternalID = r.JobID
	r.settle(r.Status, result)
	return &r, nil
}

// authorizeJobs checks that the token allows the SQL API with a "*" grant
// on conn: a job may read and write anything there.
func (s *Server) authorizeJobs(r *http.Request, conn string) (*grant.Claims, error) {
	claims, err := s.authenticate(r, grant.APISQL)
	if err != nil {
		return nil, err
	}
	if err := claims.AllowConnection(grant.APISQL, conn); err != nil {
		return nil, noGrant(conn, "*")
	}
	return claims, nil
}

// createJob is POST /api/v3/sql/{conn}/job.
func (s *Server) createJob(w http.ResponseWriter, r *http.Request) error {
	conn := r.PathValue("conn")
	claims, err := s.authorizeJobs(r, conn)
	if err != nil {
		return err
	}
	var q jobRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 2<<20)).Decode(&q); err != nil {
		return apiError{Status: http.StatusBadRequest, Code: "BAD_REQUEST", Msg: `body: want {"query": "…"}`, Err: err}
	}
	if strings.TrimSpace(q.Query) == "" {
		return apiError{Status: http.StatusBadRequest, Code: "BAD_REQUEST", Msg: "query is required"}
	}
	if len(q.Query) > 1<<20 {
		return apiError{Status: http.StatusBadRequest, Code: "BAD_REQUEST", Msg: "query: at most 1 MiB"}
	}
	maxMS := s.cfg.Jobs.MaxSQLTimeout.D().Milliseconds()
	switch {
	case q.TimeoutMS == 0:
		q.TimeoutMS = min(time.Hour.Milliseconds(), maxMS)
	case q.TimeoutMS < 0 || q.TimeoutMS > maxMS:
		return apiError{Status: http.StatusBadRequest, Code: "BAD_REQUEST", Msg: fmt.Sprintf("timeout_ms: want 1 to %d", maxMS)}
	}
	var params []byte
	if len(q.QueryParameters) > 0 {
		params, _ = json.Marshal(q.QueryParameters)
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout.D())
	defer cancel()
	connID, err := s.connectionID(ctx, claims, conn)
	if err != nil {
		return err
	}
	rec, err := scanJob(s.d.Meta.QueryRow(ctx, `WITH j AS (
			INSERT INTO jobs (id, org_id, connection_id, query, timeout_ms, params, created_by)
			VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *)
		SELECT `+jobColumns+` FROM j JOIN connections c ON c.id = j.connection_id`,
		newID(), orgOf(claims), connID, q.Query, q.TimeoutMS, params, claims.Subject))
	if err != nil {
		return fmt.Errorf("recording job: %w", err)
	}
	s.enqueue(ctx, "jobs", broker.TopicSQLJobs, rec.JobID)
	writeJSON(w, http.StatusCreated, rec.jobJSON)
	return nil
}

// loadJob returns job id of connection conn in the token's organization.
func (s *Server) loadJob(ctx context.Context, claims *grant.Claims, conn, id string) (*jobRecord, error) {
	rec, err := scanJob(s.d.Meta.QueryRow(ctx, `SELECT `+jobColumns+`
		FROM jobs j JOIN connections c ON c.id = j.connection_id WHERE j.id = $1 AND c.name = $2`, id, conn))
	if errors.Is(err, pgx.ErrNoRows) || err == nil && rec.org != orgOf(claims) {
		return nil, apiError{Status: http.StatusNotFound, Code: "NOT_FOUND", Msg: "job " + id + " not found"}
	}
	if err != nil {
		return nil, fmt.Errorf("loading job %s: %w", id, err)
	}
	return rec, nil
}

// getJob is GET /api/v3/sql/{conn}/job/{id}.
func (s *Server) getJob(w http.ResponseWriter, r *http.Request) error {
	conn := r.PathValue("conn")
	claims, err := s.authorizeJobs(r, conn)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout.D())
	defer cancel()
	rec, err := s.loadJob(ctx, claims, conn, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rec.jobJSON)
	return nil
}

// cancelJob is DELETE /api/v3/sql/{conn}/job/{id} and POST …/cancel: a
// pending or running job becomes cancelled; the worker running it cancels
// its query within its poll interval (PostgreSQL rolls the transaction
// back). 409 for a finished job.
func (s *Server) cancelJob(w http.ResponseWriter, r *http.Request) error {
	conn := r.PathValue("conn")
	claims, err := s.authorizeJobs(r, conn)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout.D())
	defer cancel()
	rec, err := s.loadJob(ctx, claims, conn, r.PathValue("id"))
	if err != nil {
		return err
	}
	if err := s.cancelRun(ctx, "jobs", "job", rec.JobID, rec.Status); err != nil {
		return err
	}
	if rec, err = s.loadJob(ctx, claims, conn, rec.JobID); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rec.jobJSON)
	return nil
}

// listJobs is GET /api/v3/sql/{conn}/job (one connection) and GET
// /api/v3/sql/jobs (every connection the token has "*" on), newest
// first. Query: limit (default 50, at most 500), status.
func (s *Server) listJobs(w http.ResponseWriter, r *http.Request) error {
	conn := r.PathValue("conn")
	var claims *grant.Claims
	var err error
	if conn != "" {
		claims, err = s.authorizeJobs(r, conn)
	} else {
		claims, err = s.authenticate(r, grant.APISQL)
	}
	if err != nil {
		return err
	}
	limit, err := listLimit(r)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout.D())
	defer cancel()
	status := r.URL.Query().Get("status")
	rows, err := s.d.Meta.Query(ctx, `SELECT `+jobColumns+`
		FROM jobs j JOIN connections c ON c.id = j.connection_id
		WHERE j.org_id = $1 AND ($2 = '' OR c.name = $2) AND ($3 = '' OR j.status = $3)
		ORDER BY j.created_at DESC LIMIT $4`, orgOf(claims), conn, status, limit*4)
	if err != nil {
		return fmt.Errorf("listing jobs: %w", err)
	}
	defer rows.Close()
	out := []jobJSON{}
	for rows.Next() {
		rec, err := scanJob(rows)
		if err != nil {
			return fmt.Errorf("listing jobs: %w", err)
		}
		if claims.AllowConnection(grant.APISQL, rec.Connection) == nil && len(out) < limit {
			out = append(out, rec.jobJSON)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("listing jobs: %w", err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"jobs": out})
	return nil
}
