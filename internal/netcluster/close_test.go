package netcluster_test

import (
	"context"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/meridian-gis/meridian/internal/netcluster"
)

// Close kills what still runs on its hosts: a process the test forgot
// does not outlive the cluster.
func TestCloseKillsLeftoverProcesses(t *testing.T) {
	ctx := context.Background()
	n, err := netcluster.New(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if n.Fallback {
		t.Skip("loopback fallback: no namespace to sweep")
	}
	h, err := n.AddHost(ctx, "a", 10)
	if err != nil {
		t.Fatal(err)
	}
	cmd := h.Command(ctx, os.Args[0])
	cmd.Env = append(os.Environ(), "NETCLUSTER_HELPER=serve", "NETCLUSTER_ADDR="+h.Addr(8000))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	time.Sleep(300 * time.Millisecond)
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		cmd.Process.Signal(syscall.SIGKILL)
		t.Fatal("a process on a host outlived Close")
	}
}
