package hangup

import (
	"crypto/tls"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// pair returns the two ends of a loopback TCP connection: the client's
// and the server's.
func pair(t *testing.T) (client, server *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	if s == nil {
		t.FailNow()
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

// probeUntil probes c until it reports something other than Open (what
// the peer did takes a moment to arrive), for at most 10 s.
func probeUntil(t *testing.T, c net.Conn) State {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := Probe(c)
		if st != Open || time.Now().After(deadline) {
			return st
		}
		time.Sleep(time.Millisecond)
	}
}

func requireSupported(t *testing.T) {
	if !Supported {
		t.Skip("hang-up detection is not supported on this platform")
	}
}

func TestProbe(t *testing.T) {
	requireSupported(t)
	t.Run("idle peer", func(t *testing.T) {
		_, s := pair(t)
		if st := Probe(s); st != Open {
			t.Errorf("Probe = %v, want open", st)
		}
	})
	t.Run("peer closed", func(t *testing.T) {
		c, s := pair(t)
		c.Close()
		if st := probeUntil(t, s); st != Closed {
			t.Errorf("Probe = %v, want closed", st)
		}
	})
	t.Run("peer half-closed", func(t *testing.T) {
		c, s := pair(t)
		c.CloseWrite()
		if st := probeUntil(t, s); st != Closed {
			t.Errorf("Probe = %v, want closed", st)
		}
	})
	t.Run("peer reset", func(t *testing.T) {
		c, s := pair(t)
		c.SetLinger(0) // close sends RST
		c.Close()
		if st := probeUntil(t, s); st != Closed {
			t.Errorf("Probe = %v, want closed", st)
		}
	})
	t.Run("closed here", func(t *testing.T) {
		_, s := pair(t)
		s.Close()
		if st := Probe(s); st != Closed {
			t.Errorf("Probe = %v, want closed", st)
		}
	})
	t.Run("pipelined bytes are not consumed", func(t *testing.T) {
		c, s := pair(t)
		if _, err := c.Write([]byte("GET /next")); err != nil {
			t.Fatal(err)
		}
		c.Close() // what follows the bytes stays hidden behind them
		if st := probeUntil(t, s); st != Data {
			t.Fatalf("Probe = %v, want data", st)
		}
		if st := Probe(s); st != Data {
			t.Errorf("second Probe = %v, want data", st)
		}
		b, err := io.ReadAll(s)
		if err != nil || string(b) != "GET /next" {
			t.Errorf("read after probing = %q, %v; want every byte", b, err)
		}
	})
	t.Run("TLS wrapper unwrapped", func(t *testing.T) {
		c, s := pair(t)
		ts := tls.Server(s, &tls.Config{})
		if st := Probe(ts); st != Open {
			t.Errorf("Probe = %v, want open", st)
		}
		c.Close()
		if st := probeUntil(t, ts); st != Closed {
			t.Errorf("Probe = %v, want closed", st)
		}
	})
	t.Run("not a socket", func(t *testing.T) {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		if st := Probe(a); st != Unknown {
			t.Errorf("Probe(net.Pipe) = %v, want unknown", st)
		}
		var w Watcher
		if wt := w.Watch(a, func() {}); wt != nil {
			t.Errorf("Watch(net.Pipe) = %v, want nil", wt)
		}
		var nilWatch *Watch
		nilWatch.Stop() // must not panic
	})
}

func TestWatcher(t *testing.T) {
	requireSupported(t)
	var w Watcher
	w.Interval = time.Millisecond
	closing, closingS := pair(t)
	_, idleS := pair(t)
	pipelining, pipeliningS := pair(t)
	_, stoppedS := pair(t)

	var idleGone, pipeGone, stoppedGone atomic.Int32
	gone := make(chan struct{})
	wClosing := w.Watch(closingS, func() { close(gone) })
	wIdle := w.Watch(idleS, func() { idleGone.Add(1) })
	wPipe := w.Watch(pipeliningS, func() { pipeGone.Add(1) })
	wStopped := w.Watch(stoppedS, func() { stoppedGone.Add(1) })
	for _, wt := range []*Watch{wClosing, wIdle, wPipe, wStopped} {
		if wt == nil {
			t.Fatal("Watch returned nil for a TCP connection")
		}
	}
	if n := w.Watching(); n != 4 {
		t.Errorf("Watching() = %d, want 4", n)
	}

	// A stopped watch never fires, even when its peer leaves afterwards.
	wStopped.Stop()
	wStopped.Stop()
	if _, err := pipelining.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	pipelining.Close()
	closing.Close()
	select {
	case <-gone:
	case <-time.After(10 * time.Second):
		t.Fatal("the closed connection was not reported")
	}
	// The pipelining watch ends without firing once its byte is seen.
	deadline := time.Now().Add(10 * time.Second)
	for w.Watching() > 1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := w.Watching(); n != 1 {
		t.Errorf("Watching() = %d after the hang-up and the pipelined byte, want 1 (the idle one)", n)
	}
	// More rounds, run here so that they are sure to have happened.
	for range 3 {
		w.check(nil)
	}
	if idleGone.Load() != 0 || pipeGone.Load() != 0 || stoppedGone.Load() != 0 {
		t.Errorf("gone called for idle %d, pipelining %d, stopped %d times; want 0",
			idleGone.Load(), pipeGone.Load(), stoppedGone.Load())
	}
	b := make([]byte, 1)
	if _, err := io.ReadFull(pipeliningS, b); err != nil || b[0] != 'x' {
		t.Errorf("pipelined byte after watching = %q, %v", b, err)
	}

	// With nothing left, the goroutine stops; a new Watch starts it again.
	wIdle.Stop()
	deadline = time.Now().Add(10 * time.Second)
	for running(&w) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if running(&w) {
		t.Error("the watcher's goroutine still runs with nothing to watch")
	}
	c2, s2 := pair(t)
	gone2 := make(chan struct{})
	defer w.Watch(s2, func() { close(gone2) }).Stop()
	c2.Close()
	select {
	case <-gone2:
	case <-time.After(10 * time.Second):
		t.Fatal("a hang-up after a restart was not reported")
	}
}

func running(w *Watcher) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.running
}

// BenchmarkCheck measures one round over 100 idle connections.
func BenchmarkCheck(b *testing.B) {
	if !Supported {
		b.Skip("unsupported platform")
	}
	var w Watcher
	w.Interval = time.Hour
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	for range 100 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		s, err := ln.Accept()
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		defer s.Close()
		defer w.Watch(s, func() {}).Stop()
	}
	var batch []*Watch
	b.ReportAllocs()
	for b.Loop() {
		batch, _ = w.check(batch[:0])
	}
}
