package proc

import (
	"context"
	"fmt"
	"net"
	"time"
)

// FreeLoopbackAddr returns a "127.0.0.1:port" that was free a moment ago,
// for a peer server that must be told its port on the command line. (The
// port may be taken by someone else before the peer binds it; in-process
// servers should listen on 127.0.0.1:0 instead.)
func FreeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("finding a free port: %w", err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		return "", fmt.Errorf("finding a free port: %w", err)
	}
	return addr, nil
}

// WaitListening polls addr until a TCP connection succeeds or ctx is done.
func WaitListening(ctx context.Context, addr string) error {
	var d net.Dialer
	for {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			return c.Close()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s to listen: %w (last: %w)", addr, ctx.Err(), err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
