package netcluster_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2/pstest"

	"github.com/meridian-gis/meridian/internal/netcluster"
)

// The test binary doubles as a tiny server and client run on hosts.
func TestMain(m *testing.M) {
	switch os.Getenv("NETCLUSTER_HELPER") {
	case "pstest":
		// A Pub/Sub emulator on a host of the cluster: the in-process
		// fake of cloud.google.com/go/pubsub/v2/pstest behind its gRPC
		// server, until killed.
		srv := pstest.NewServerWithAddress(os.Getenv("NETCLUSTER_ADDR"))
		defer srv.Close()
		select {}
	case "serve":
		http.ListenAndServe(os.Getenv("NETCLUSTER_ADDR"), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "hello from "+os.Getenv("NETCLUSTER_ADDR"))
		}))
		os.Exit(0)
	case "get":
		c := &http.Client{Timeout: 2 * time.Second}
		res, err := c.Get(os.Getenv("NETCLUSTER_URL"))
		if err != nil {
			os.Stdout.WriteString("error: " + err.Error())
			os.Exit(1)
		}
		io.Copy(os.Stdout, res.Body)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// Two hosts reach each other and the test reaches both; a partition cuts
// one off and healing restores it; Close leaves nothing behind.
func TestHostsPartitionAndCleanup(t *testing.T) {
	ctx := context.Background()
	n, err := netcluster.New(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n.Fallback {
		if os.Getenv("MERIDIAN_REQUIRE_NETNS") != "" {
			t.Fatalf("network namespaces unavailable: %s", n.Reason)
		}
		t.Logf("network namespaces unavailable (%s): hosts are loopback addresses", n.Reason)
	}
	defer n.Close()
	a, err := n.AddHost(ctx, "a", 10)
	if err != nil {
		t.Fatal(err)
	}
	b, err := n.AddHost(ctx, "b", 11)
	if err != nil {
		t.Fatal(err)
	}
	srv := a.Command(ctx, os.Args[0])
	srv.Env = append(os.Environ(), "NETCLUSTER_HELPER=serve", "NETCLUSTER_ADDR="+a.Addr(8000))
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", a.Addr(8000), time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("server on host a never listened: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	fromB := func() string {
		cmd := b.Command(ctx, os.Args[0])
		cmd.Env = append(os.Environ(), "NETCLUSTER_HELPER=get", "NETCLUSTER_URL=http://"+a.Addr(8000)+"/")
		out, _ := cmd.Output()
		return string(out)
	}
	if got := fromB(); !strings.HasPrefix(got, "hello from") {
		t.Fatalf("host b -> host a: %q", got)
	}
	if n.Fallback {
		return
	}
	if err := a.Partition(ctx); err != nil {
		t.Fatal(err)
	}
	if got := fromB(); !strings.HasPrefix(got, "error") {
		t.Errorf("host b reached partitioned host a: %q", got)
	}
	if err := a.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	if got := fromB(); !strings.HasPrefix(got, "hello from") {
		t.Errorf("host b -> healed host a: %q", got)
	}
	srv.Process.Kill()
	srv.Wait()
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	out, _ := exec.Command("ip", "netns", "list").Output()
	links, _ := exec.Command("ip", "-o", "link", "show").Output()
	if strings.Contains(string(out), n.Prefix) || strings.Contains(string(links), n.Prefix) {
		t.Errorf("left behind:\n%s\n%s", out, links)
	}
}
