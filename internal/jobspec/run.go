package jobspec

import (
	"encoding/json"
	"time"
)

// Run is what imports and batch SQL jobs share in the control plane's
// API: attempts, outcome and timestamps of work a worker runs, read from
// the row's columns of the same names.
type Run struct {
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

// Settle fills Result from the stored JSON and, unless the work has
// finished badly, shows the stored error (Requeue keeps why the last
// attempt failed there) as the reason of a pending retry rather than as a
// failure.
func (r *Run) Settle(status string, result []byte) {
	if len(result) > 0 {
		r.Result = result
	}
	if status != StatusFailure && status != StatusCancelled {
		r.RetryReason, r.Error = r.Error, ""
	}
}
