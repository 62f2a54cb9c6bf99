//go:build !linux

package hangup

import "syscall"

const supported = false

type prober struct{}

func (p *prober) init() {}

func (p *prober) probe(syscall.RawConn) State { return Unknown }
