// Package hangup tells a server that the client of a request in progress
// has closed its connection. An HTTP/1.1 server that reads a connection
// only between requests (fasthttp does) cannot see it otherwise: the
// client's FIN waits, unread, in the socket until the response has been
// written, so work done for a client that left runs to its own deadline.
//
// Probe looks at a connection once: recv(MSG_PEEK|MSG_DONTWAIT) returning
// 0 means the peer sent FIN — it closed the connection, or shut down its
// writing half, which net/http's server treats the same way (it cancels
// the request's context on EOF); an error other than EAGAIN means the
// connection was reset or closed; bytes mean the client sent more (a
// pipelined request): it is still there; EAGAIN means nothing happened.
// Peeking consumes nothing, so the server's next read sees every byte.
//
// A Watcher probes the connections registered with Watch every Interval
// from one goroutine, which runs only while something is watched, and
// calls the watch's function when the peer has gone. Registering is for
// requests that wait (on a query, a render): a request served from memory
// never pays for it.
//
// Only Linux is supported. Elsewhere, and for connections that are not
// sockets (net.Pipe, fakes in tests) and do not unwrap to one through a
// NetConn() method (as *tls.Conn does), Probe reports Unknown and Watch
// returns a nil *Watch, which never fires: requests then end at their
// deadlines, as before.
package hangup

import (
	"net"
	"sync"
	"syscall"
	"time"
)

// State is what Probe saw on a connection.
type State uint8

const (
	// Unknown: the connection cannot be probed (not a socket, or not on
	// this platform).
	Unknown State = iota
	// Open: nothing to read; the client is waiting.
	Open
	// Data: bytes are waiting to be read (a pipelined request); the
	// client is there. What follows them cannot be seen until they are
	// read.
	Data
	// Closed: the peer closed (or half-closed) or reset the connection,
	// or it was closed locally.
	Closed
)

func (s State) String() string {
	switch s {
	case Open:
		return "open"
	case Data:
		return "data"
	case Closed:
		return "closed"
	}
	return "unknown"
}

// Supported reports whether this platform can detect hang-ups.
const Supported = supported

// Probe looks at c once, without blocking and without consuming anything.
func Probe(c net.Conn) State {
	rc := rawConn(c)
	if rc == nil {
		return Unknown
	}
	var p prober
	return p.probe(rc)
}

// rawConn returns c's socket, unwrapping NetConn() wrappers (*tls.Conn);
// nil when there is none.
func rawConn(c net.Conn) syscall.RawConn {
	for range 8 {
		switch x := c.(type) {
		case nil:
			return nil
		case syscall.Conn:
			rc, err := x.SyscallConn()
			if err != nil {
				return nil
			}
			return rc
		case interface{ NetConn() net.Conn }:
			c = x.NetConn()
		default:
			return nil
		}
	}
	return nil
}

// DefaultInterval is the Watcher's default Interval.
const DefaultInterval = 50 * time.Millisecond

// Watcher watches connections for hang-ups. The zero value is ready to
// use.
type Watcher struct {
	// Interval between two probes of a watched connection, the longest a
	// hang-up goes unnoticed. Zero means DefaultInterval. Set it before
	// the first Watch.
	Interval time.Duration

	mu      sync.Mutex
	watches map[*Watch]struct{}
	running bool // the probing goroutine is alive

	// round serializes probing rounds: a Watch's prober keeps its result
	// in place (no allocation), so two rounds must not probe at once.
	round sync.Mutex
}

// Watch is one watched connection.
type Watch struct {
	w    *Watcher
	rc   syscall.RawConn
	gone func()
	p    prober
}

// Watch calls gone, at most once and from the Watcher's goroutine, if c's
// peer closes or resets the connection before Stop is called. Watching
// ends by itself when the peer sends more data (gone is then never
// called). gone may run concurrently with Stop, or just after it if the
// hang-up was seen as Stop was called: it must not touch anything that
// Stop's caller releases (a fasthttp RequestCtx, say); cancelling a
// context is fine. Watch returns nil, a watch that never fires, when c
// cannot be watched.
func (w *Watcher) Watch(c net.Conn, gone func()) *Watch {
	if !Supported {
		return nil
	}
	rc := rawConn(c)
	if rc == nil {
		return nil
	}
	wt := &Watch{w: w, rc: rc, gone: gone}
	wt.p.init()
	w.mu.Lock()
	if w.watches == nil {
		w.watches = map[*Watch]struct{}{}
	}
	w.watches[wt] = struct{}{}
	start := !w.running
	w.running = true
	w.mu.Unlock()
	if start {
		go w.run()
	}
	return wt
}

// Stop ends the watch. It may be called more than once, and on nil.
func (wt *Watch) Stop() {
	if wt == nil {
		return
	}
	wt.w.mu.Lock()
	delete(wt.w.watches, wt)
	wt.w.mu.Unlock()
}

// Watching returns the number of connections being watched.
func (w *Watcher) Watching() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.watches)
}

// run probes the watched connections every Interval until none is left.
func (w *Watcher) run() {
	d := w.Interval
	if d <= 0 {
		d = DefaultInterval
	}
	t := time.NewTicker(d)
	defer t.Stop()
	var batch []*Watch
	for range t.C {
		var more bool
		batch, more = w.check(batch[:0])
		if !more {
			return
		}
	}
}

// check probes every watched connection once, ends the watches of those
// that hung up (calling their functions) or sent data, and reports
// whether watches remain; when none does, the caller's goroutine must
// stop (the next Watch starts another). batch is scratch space, returned
// for reuse.
func (w *Watcher) check(batch []*Watch) ([]*Watch, bool) {
	w.round.Lock()
	defer w.round.Unlock()
	w.mu.Lock()
	if len(w.watches) == 0 {
		w.running = false
		w.mu.Unlock()
		return batch, false
	}
	for wt := range w.watches {
		batch = append(batch, wt)
	}
	w.mu.Unlock()
	for _, wt := range batch {
		st := wt.p.probe(wt.rc)
		if st != Closed && st != Data {
			continue
		}
		w.mu.Lock()
		_, live := w.watches[wt]
		delete(w.watches, wt)
		w.mu.Unlock()
		if live && st == Closed {
			wt.gone()
		}
	}
	clear(batch) // let finished watches go
	return batch, true
}
