package brokertest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meridian-gis/meridian/internal/broker"
)

// CrashEnv holds, in the environment of the subscriber process RunCrash
// starts, the JSON Subscription CrashChild receives on.
const CrashEnv = "BROKERTEST_CRASH_SUBSCRIPTION"

// crashAcks is how many messages the child acks before it blocks in every
// handler.
const crashAcks = 3

// RunCrash checks that a subscriber process killed with SIGKILL while its
// handlers are in the middle of messages loses nothing: it publishes
// messages on b, runs start(env) (a command running CrashChild on a broker
// on the same backend, with env added to its environment), waits until
// the child has acked a few messages and is blocked in every handler slot,
// kills it, and receives the rest on b. Every message must be acked in the
// end, and every message the child had seen must come again as a
// redelivery (Attempt > 1).
func RunCrash(t *testing.T, b broker.Broker, start func(env []string) *exec.Cmd) {
	sub := broker.Subscription{Topic: "crash", Name: "crash", AckDeadline: 2 * time.Second, MaxAttempts: 20,
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, Concurrency: 3}
	create(t, b, sub)
	ids := publishN(t, b, sub.Topic, 12)

	js, _ := json.Marshal(sub)
	cmd := start([]string{CrashEnv + "=" + string(js)})
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting subscriber process: %v", err)
	}
	var (
		mu      sync.Mutex
		seen    = map[string][]int{} // attempts the child got, by ID
		done    = map[string]bool{}  // handlers that returned nil in the child
		lines   []string
		scanned = make(chan struct{})
	)
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) < 3 || f[0] != "brokertest:" {
				continue
			}
			mu.Lock()
			lines = append(lines, sc.Text())
			switch f[1] {
			case "got":
				n, _ := strconv.Atoi(f[3])
				seen[f[2]] = append(seen[f[2]], n)
			case "done":
				done[f[2]] = true
			}
			mu.Unlock()
		}
	}()
	busy := func() bool {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, as := range seen {
			n += len(as)
		}
		return len(done) >= crashAcks && n-len(done) >= sub.Concurrency
	}
	deadline := time.Now().Add(patience)
	for !busy() {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			mu.Lock()
			defer mu.Unlock()
			t.Fatalf("subscriber process never got busy; output %q, stderr:\n%s", lines, stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatalf("killing subscriber process: %v", err)
	}
	cmd.Wait()
	<-scanned

	rec := newRecorder()
	receive(t, b, sub, rec.handler("parent"))
	eventually(t, "every message the child did not finish", func() bool {
		acked := rec.ackedIDs()
		for id := range ids {
			if !acked[id] && !done[id] {
				return false
			}
		}
		return true
	})
	time.Sleep(500 * time.Millisecond) // late redeliveries of the child's acks, if any
	var ds []delivery
	for id, as := range seen {
		for _, a := range as {
			ds = append(ds, delivery{who: "child", msg: broker.Message{ID: id, Attempt: a}})
		}
	}
	ds = append(ds, rec.deliveries()...)
	acked := rec.ackedIDs()
	for id := range done {
		acked[id] = true
	}
	checkRedeliveries(t, ds, ids, acked)
	for _, d := range rec.deliveries() {
		if len(seen[d.msg.ID]) > 0 && !d.msg.Redelivered() {
			t.Errorf("message %s, seen by the killed subscriber, came again with Attempt %d, want a redelivery", d.msg.ID, d.msg.Attempt)
		}
	}
	if t.Failed() {
		t.Logf("child output: %q", lines)
	}
}

// CrashChild is the subscriber process of RunCrash. It receives on the
// subscription in CrashEnv, prints each delivery to stdout, acks the first
// few messages and then blocks in every handler until it is killed. Call
// it from a test that skips itself unless CrashEnv is set.
func CrashChild(t *testing.T, b broker.Broker) {
	var sub broker.Subscription
	if err := json.Unmarshal([]byte(os.Getenv(CrashEnv)), &sub); err != nil {
		t.Fatalf("reading %s: %v", CrashEnv, err)
	}
	var (
		mu    sync.Mutex
		acked int
	)
	err := b.Receive(context.Background(), sub, func(ctx context.Context, m *broker.Message) error {
		mu.Lock()
		fmt.Printf("brokertest: got %s %d\n", m.ID, m.Attempt)
		ack := acked < crashAcks
		if ack {
			acked++
			fmt.Printf("brokertest: done %s\n", m.ID)
		}
		mu.Unlock()
		if ack {
			return nil
		}
		select {} // until killed
	})
	t.Fatalf("Receive returned %v; want to be killed", err)
}
