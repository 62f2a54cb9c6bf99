// Command withpg runs a command with a throwaway PostgreSQL cluster: it
// starts a fast (fsync off) cluster in a temporary folder on a free
// loopback port, exports its superuser URL as MERIDIAN_TEST_DATABASE, runs
// the command, then stops the cluster and removes the folder. The test
// harness (`make test`) uses it so that integration tests never touch the
// `make run` cluster or a system one.
//
//	go run ./internal/pgcluster/withpg -- go test ./...
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/meridian-gis/meridian/internal/pgcluster"
)

func main() {
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: withpg -- command [args...]")
		os.Exit(2)
	}
	os.Exit(run(args))
}

func run(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	dir, err := os.MkdirTemp("", "meridian-testpg-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "withpg:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	c, err := pgcluster.Open(ctx, dir, pgcluster.Options{Fast: true})
	if err == nil {
		err = c.Start(ctx)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "withpg:", err)
		return 1
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.Stop(sctx); err != nil {
			fmt.Fprintln(os.Stderr, "withpg:", err)
		}
	}()
	fmt.Fprintf(os.Stderr, "withpg: throwaway cluster on 127.0.0.1:%d\n", c.Port)
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), "MERIDIAN_TEST_DATABASE="+c.SuperuserURL("postgres"))
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 30 * time.Second
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		fmt.Fprintln(os.Stderr, "withpg:", err)
		return 1
	}
	return 0
}
