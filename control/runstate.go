package control

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/meridian-gis/meridian/internal/jobspec"
)

// runState is what imports and batch SQL jobs share in the API: attempts,
// outcome and timestamps of work a worker runs.
type runState struct {
	Attempts int `json:"attempts"`
	// Error is why the work failed (status failure or cancelled).
	Error string `json:"error,omitempty"`
	// RetryReason is why the last attempt failed, while a retry is
	// pending.
	RetryReason string          `json:"retryReason,omitempty"`
	Result      json.RawMessage `json:"result,omitempty"`
	CreatedAt   time.Time       `json:"createdAt"`
	UpdatedAt   time.Time       `json:"updatedAt"`
	StartedAt   *time.Time      `json:"startedAt,omitempty"`
	FinishedAt  *time.Time      `json:"finishedAt,omitempty"`
}

// settle fills Result from the stored JSON and, unless the work has
// finished badly, shows the stored error as the reason of a pending
// retry rather than as a failure.
func (s *runState) settle(status string, result []byte) {
	if len(result) > 0 {
		s.Result = result
	}
	if status != jobspec.StatusFailure && status != jobspec.StatusCancelled {
		s.RetryReason, s.Error = s.Error, ""
	}
}

// cancelRun marks the pending or running row id of table (imports or
// jobs: a constant, never client input) cancelled by the user. Work that
// has already finished is a 409 naming its status.
func (s *Server) cancelRun(ctx context.Context, table, what, id, status string) error {
	tag, err := s.d.Meta.Exec(ctx, `UPDATE `+table+` SET status = 'cancelled', error = 'cancelled by the user',
			finished_at = now(), updated_at = now()
		WHERE id = $1 AND status IN ('pending', 'running')`, id)
	if err != nil {
		return fmt.Errorf("cancelling %s %s: %w", what, id, err)
	}
	if tag.RowsAffected() == 0 {
		return apiError{Status: http.StatusConflict, Code: "CONFLICT", Msg: what + " already finished with status " + status}
	}
	return nil
}
