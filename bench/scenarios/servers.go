package scenarios

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"
)

// objectSize is the size of the static object of the HTTP floor and cache
// scenarios: 30 KiB, as in the cache figures of ANCHORS.md.
const objectSize = 30 << 10

// object returns n incompressible bytes, the same on every call.
func object(n int) []byte {
	rng := rand.New(rand.NewPCG(30, 1024))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// server is an in-process HTTP server on 127.0.0.1.
type server struct {
	// URL is the base URL ("http://127.0.0.1:port/").
	URL  string
	stop func(context.Context) error
	done chan error
}

// Stop shuts the server down gracefully within ctx and returns the error of
// its serve loop, if any.
func (s *server) Stop(ctx context.Context) error {
	err := s.stop(ctx)
	return errors.Join(err, <-s.done)
}

// startNetHTTP serves body from a bare net/http handler: two headers set
// from preallocated values, one Write.
func startNetHTTP(body []byte) (*server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listening for net/http: %w", err)
	}
	ctype := []string{"application/octet-stream"}
	clen := []string{strconv.Itoa(len(body))}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			h := w.Header()
			h["Content-Type"] = ctype
			h["Content-Length"] = clen
			_, _ = w.Write(body)
		}),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       30 * time.Second,
	}
	s := &server{URL: "http://" + ln.Addr().String() + "/", stop: srv.Shutdown, done: make(chan error, 1)}
	go func() {
		err := srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.done <- err
	}()
	return s, nil
}

// startFastHTTP serves body from a bare fasthttp handler that hands the
// bytes to the response without copying them.
func startFastHTTP(body []byte) (*server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listening for fasthttp: %w", err)
	}
	srv := &fasthttp.Server{
		Handler: func(rc *fasthttp.RequestCtx) {
			rc.SetContentType("application/octet-stream")
			rc.Response.SetBodyRaw(body)
		},
		NoDefaultServerHeader: true,
		ReadTimeout:           30 * time.Second,
		IdleTimeout:           30 * time.Second,
	}
	s := &server{URL: "http://" + ln.Addr().String() + "/", stop: srv.ShutdownWithContext, done: make(chan error, 1)}
	go func() { s.done <- srv.Serve(ln) }()
	return s, nil
}
