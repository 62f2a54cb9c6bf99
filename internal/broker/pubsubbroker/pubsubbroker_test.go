package pubsubbroker_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/pubsub/v2/pstest"

	"github.com/meridian-gis/meridian/internal/broker"
	"github.com/meridian-gis/meridian/internal/broker/brokertest"
	"github.com/meridian-gis/meridian/internal/broker/pubsubbroker"
)

const project = "meridian-test"

func logger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func newServer(t *testing.T) *pstest.Server {
	srv := pstest.NewServer()
	t.Cleanup(func() { srv.Close() })
	return srv
}

func testConfig(addr string) pubsubbroker.Config {
	return pubsubbroker.Config{ProjectID: project, Endpoint: addr, Insecure: true, ClientBackoff: true}
}

func newBroker(t *testing.T, addr string) *pubsubbroker.Broker {
	b, err := pubsubbroker.New(context.Background(), testConfig(addr), logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestContract(t *testing.T) {
	brokertest.Run(t, func(t *testing.T) broker.Broker {
		return newBroker(t, newServer(t).Addr)
	})
}

// crashAddrEnv passes the server address to the subscriber process of
// TestCrashedSubscriber.
const crashAddrEnv = "PUBSUBBROKER_CRASH_ADDR"

func TestCrashedSubscriber(t *testing.T) {
	addr := newServerProcess(t)
	b := newBroker(t, addr)
	brokertest.RunCrash(t, b, func(env []string) *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.v")
		cmd.Env = append(append(os.Environ(), crashAddrEnv+"="+addr), env...)
		return cmd
	})
}

// fakeServerEnv makes this test binary a process that serves the Pub/Sub
// fake only (TestFakeServer).
const fakeServerEnv = "PUBSUBBROKER_FAKE_SERVER"

// fakeAddrPrefix starts the line where TestFakeServer prints its address.
const fakeAddrPrefix = "pstest listening on "

// newServerProcess runs the pstest fake in a child process of this test
// binary and returns its address; the child stops with the test. The
// fake has a data race of its own on redeliveries under a dead-letter
// policy (tryDeliverMessage sets DeliveryAttempt on a message a stream may
// still be marshalling): in a child process the race detector reports it
// there, instead of failing the test of our broker that only talks to it.
func newServerProcess(t *testing.T) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestFakeServer$")
	cmd.Env = append(os.Environ(), fakeServerEnv+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the Pub/Sub fake: %v", err)
	}
	t.Cleanup(func() {
		stdin.Close() // the child stops when its input ends
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), fakeAddrPrefix); ok {
				addr <- a
			}
		}
		close(addr)
	}()
	select {
	case a, ok := <-addr:
		if !ok {
			t.Fatal("the Pub/Sub fake process exited without an address")
		}
		return a
	case <-time.After(30 * time.Second):
		t.Fatal("the Pub/Sub fake process printed no address in 30 s")
	}
	return ""
}

// TestFakeServer is the process newServerProcess starts: the pstest fake,
// until its standard input ends.
func TestFakeServer(t *testing.T) {
	if os.Getenv(fakeServerEnv) == "" {
		t.Skip("the Pub/Sub fake process of TestCrashedSubscriber")
	}
	srv := pstest.NewServer()
	defer srv.Close()
	fmt.Println(fakeAddrPrefix + srv.Addr)
	io.Copy(io.Discard, os.Stdin)
}

// TestCrashChild is the subscriber process TestCrashedSubscriber kills.
func TestCrashChild(t *testing.T) {
	addr := os.Getenv(crashAddrEnv)
	if addr == "" || os.Getenv(brokertest.CrashEnv) == "" {
		t.Skip("subscriber process of TestCrashedSubscriber")
	}
	brokertest.CrashChild(t, newBroker(t, addr))
}

func TestLatency(t *testing.T) {
	b := newBroker(t, newServer(t).Addr)
	p50, p99, err := brokertest.MeasureLatency(context.Background(), b, 500)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("pubsub broker (pstest) publish-to-handler latency over 500 messages: p50 %v, p99 %v", p50, p99)
}

// TestSubscriptionSettings checks what CreateSubscription asks of Pub/Sub,
// clamped to its limits.
func TestSubscriptionSettings(t *testing.T) {
	srv := newServer(t)
	b := newBroker(t, srv.Addr)
	tests := []struct {
		name                string
		sub                 broker.Subscription
		ackSecs             int32
		minBackoff, maxBack time.Duration
		maxDelivery         int32
		ttl                 time.Duration // 0: never expires
	}{
		{"defaults", broker.Subscription{}, 30, time.Second, time.Minute, 5, 0},
		{"short deadline and few attempts", broker.Subscription{AckDeadline: time.Second, MaxAttempts: 2,
			MinBackoff: 50 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, ExpireAfter: time.Hour},
			10, 50 * time.Millisecond, 100 * time.Millisecond, 5, 24 * time.Hour},
		{"beyond the maximums", broker.Subscription{AckDeadline: time.Hour, MaxAttempts: 500,
			MinBackoff: time.Hour, MaxBackoff: time.Hour, ExpireAfter: 72 * time.Hour},
			600, 600 * time.Second, 600 * time.Second, 100, 72 * time.Hour},
	}
	ctx := context.Background()
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sub := tt.sub
			sub.Topic, sub.Name = "settings", "settings-"+string(rune('a'+i))
			if err := b.CreateSubscription(ctx, sub); err != nil {
				t.Fatal(err)
			}
			got, err := srv.GServer.GetSubscription(ctx, &pubsubpb.GetSubscriptionRequest{
				Subscription: "projects/" + project + "/subscriptions/meridian-" + sub.Name})
			if err != nil {
				t.Fatal(err)
			}
			if got.Topic != "projects/"+project+"/topics/meridian-settings" {
				t.Errorf("Topic = %q, want the prefixed topic", got.Topic)
			}
			if got.AckDeadlineSeconds != tt.ackSecs {
				t.Errorf("AckDeadlineSeconds = %d, want %d", got.AckDeadlineSeconds, tt.ackSecs)
			}
			if g := got.GetRetryPolicy(); g.GetMinimumBackoff().AsDuration() != tt.minBackoff || g.GetMaximumBackoff().AsDuration() != tt.maxBack {
				t.Errorf("RetryPolicy = %v, want %v to %v", g, tt.minBackoff, tt.maxBack)
			}
			dl := got.GetDeadLetterPolicy()
			if dl.GetMaxDeliveryAttempts() != tt.maxDelivery || !strings.HasSuffix(dl.GetDeadLetterTopic(), "/topics/meridian-dead-letters") {
				t.Errorf("DeadLetterPolicy = %v, want %d attempts to meridian-dead-letters", dl, tt.maxDelivery)
			}
			if got.GetExpirationPolicy() == nil || got.GetExpirationPolicy().GetTtl().AsDuration() != tt.ttl {
				t.Errorf("ExpirationPolicy = %v, want TTL %v", got.GetExpirationPolicy(), tt.ttl)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  pubsubbroker.Config
		want string // substring of the error; empty: valid
	}{
		{"minimal", pubsubbroker.Config{ProjectID: "p", Prefix: "m-"}, ""},
		{"no project", pubsubbroker.Config{Prefix: "m-"}, "project_id"},
		{"prefix starting with a digit", pubsubbroker.Config{ProjectID: "p", Prefix: "1x"}, "prefix"},
		{"insecure without endpoint", pubsubbroker.Config{ProjectID: "p", Prefix: "m-", Insecure: true}, "endpoint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Validate() = %v, want an error about %s", err, tt.want)
			}
		})
	}
}
