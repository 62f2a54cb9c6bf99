package control

import (
	"encoding/json"
	"time"
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
	if status != "failure" && status != "cancelled" {
		s.RetryReason, s.Error = s.Error, ""
	}
}
