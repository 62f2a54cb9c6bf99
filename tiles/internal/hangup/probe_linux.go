//go:build linux

package hangup

import "syscall"

const supported = true

// prober peeks at a socket. Its fields keep the RawConn.Control callback
// and its results so that a probe does not allocate.
type prober struct {
	fn    func(fd uintptr)
	state State
	buf   [1]byte
}

func (p *prober) init() { p.fn = p.peek }

func (p *prober) probe(rc syscall.RawConn) State {
	if p.fn == nil {
		p.init()
	}
	p.state = Unknown
	// Control, not Read: it neither waits for readability nor honours
	// the read deadline the server has set on the connection; it only
	// keeps the descriptor from being closed (and its number reused)
	// while the callback runs.
	if err := rc.Control(p.fn); err != nil {
		return Closed // closed locally
	}
	return p.state
}

func (p *prober) peek(fd uintptr) {
	for {
		n, _, err := syscall.Recvfrom(int(fd), p.buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			p.state = Open
		case err != nil: // ECONNRESET, ETIMEDOUT…
			p.state = Closed
		case n == 0:
			p.state = Closed // EOF
		default:
			p.state = Data
		}
		return
	}
}
