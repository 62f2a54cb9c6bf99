// Package httpserver runs a net/http server for a component's lifetime:
// explicit timeouts, a listener bound before Run returns control, and a
// graceful shutdown that lets accepted requests finish.
package httpserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Config holds the server's address and timeouts. Zero fields take the
// defaults given.
type Config struct {
	// Addr to listen on. Required.
	Addr string
	// ReadHeaderTimeout default: 10s. ReadTimeout default: 60s.
	// WriteTimeout default: 5m (streamed responses). IdleTimeout default: 2m.
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// ShutdownTimeout bounds the graceful drain. Default: 20s.
	ShutdownTimeout time.Duration
}

// Server is a started listener and its http.Server.
type Server struct {
	srv *http.Server
	ln  net.Listener
	cfg Config
	log *slog.Logger
}

// Listen binds cfg.Addr so that the port is taken (and known, for ":0")
// before the caller goes on.
func Listen(cfg Config, h http.Handler, log *slog.Logger) (*Server, error) {
	if cfg.ReadHeaderTimeout == 0 {
		cfg.ReadHeaderTimeout = 10 * time.Second
	}
	if cfg.ReadTimeout == 0 {
		cfg.ReadTimeout = time.Minute
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = 5 * time.Minute
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 2 * time.Minute
	}
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = 20 * time.Second
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", cfg.Addr, err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return &Server{srv: srv, ln: ln, cfg: cfg, log: log}, nil
}

// Addr is the bound address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Run serves until ctx is cancelled, then shuts down gracefully: the
// listener closes, in-flight requests get ShutdownTimeout to finish.
// beforeShutdown, when not nil, runs first (e.g. to mark /readyz as
// draining).
func (s *Server) Run(ctx context.Context, beforeShutdown func()) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	s.log.Info("listening", "addr", s.ln.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("serving on %s: %w", s.cfg.Addr, err)
	case <-ctx.Done():
	}
	if beforeShutdown != nil {
		beforeShutdown()
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	err := s.srv.Shutdown(sctx)
	if e := <-errc; !errors.Is(e, http.ErrServerClosed) && err == nil {
		err = e
	}
	if err != nil {
		return fmt.Errorf("shutting down %s: %w", s.cfg.Addr, err)
	}
	s.log.Info("stopped", "addr", s.cfg.Addr)
	return nil
}
