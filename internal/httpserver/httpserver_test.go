package httpserver

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"
)

// An accepted request finishes during shutdown: nothing accepted is lost.
func TestShutdownLetsInFlightFinish(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		io.WriteString(w, "done")
	})
	s, err := Listen(Config{Addr: "127.0.0.1:0"}, h, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- s.Run(ctx, nil) }()

	type result struct {
		body string
		err  error
	}
	resc := make(chan result, 1)
	go func() {
		res, err := http.Get("http://" + s.Addr().String() + "/")
		if err != nil {
			resc <- result{err: err}
			return
		}
		b, err := io.ReadAll(res.Body)
		res.Body.Close()
		resc <- result{string(b), err}
	}()
	<-started
	cancel()
	time.Sleep(50 * time.Millisecond) // let Shutdown close the listener
	if _, err := http.Get("http://" + s.Addr().String() + "/"); err == nil {
		t.Error("new request after shutdown began: got a response, want a refused connection")
	}
	close(release)
	r := <-resc
	if r.err != nil || r.body != "done" {
		t.Errorf("in-flight request = %q, %v; want \"done\"", r.body, r.err)
	}
	if err := <-runErr; err != nil {
		t.Errorf("Run = %v", err)
	}
}
