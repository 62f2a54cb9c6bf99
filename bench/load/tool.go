package load

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os/exec"
	"strings"
	"time"
)

// CheckTarget checks what every external load run must respect: a
// loopback target and a duration within MaxDuration.
func CheckTarget(name, target string, d time.Duration) error {
	u, err := url.Parse(target)
	if err != nil {
		return fmt.Errorf("parsing %s target: %w", name, err)
	}
	if err := CheckLoopback(u.Host); err != nil {
		return err
	}
	if d > MaxDuration {
		return fmt.Errorf("%s duration %s above the %s cap", name, d, MaxDuration)
	}
	return nil
}

// RunTool runs an external load tool (wrk, h2load) at path with args for
// at most limit, and returns its standard output; a failure carries the
// tool's standard error.
func RunTool(ctx context.Context, name, path string, args []string, limit time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && len(ee.Stderr) > 0 {
			return nil, fmt.Errorf("running %s: %w: %s", name, err, strings.TrimSpace(string(ee.Stderr)))
		}
		return nil, fmt.Errorf("running %s: %w", name, err)
	}
	return out, nil
}
