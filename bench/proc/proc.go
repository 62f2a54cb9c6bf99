// Package proc runs external programs for bench scenarios and measures
// them: wall time, CPU time and peak resident memory of a command (an
// ogr2ogr import against Meridian's importer, say), and the memory of a
// long-running child such as a peer server. Linux only: memory comes from
// /proc/<pid>/status and wait4's rusage.
package proc

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Mem is a process's resident memory, from /proc/<pid>/status.
type Mem struct {
	// RSS is VmRSS: resident now.
	RSS int64 `json:"rss_bytes"`
	// HWM is VmHWM: the peak resident set since the process started.
	HWM int64 `json:"hwm_bytes"`
}

// ReadMem reads VmRSS and VmHWM of pid. A process that has exited (or is a
// zombie) has neither, which is an error.
func ReadMem(pid int) (Mem, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return Mem{}, fmt.Errorf("reading memory of pid %d: %w", pid, err)
	}
	m, err := parseStatus(b)
	if err != nil {
		return Mem{}, fmt.Errorf("reading memory of pid %d: %w", pid, err)
	}
	return m, nil
}

// parseStatus extracts VmRSS and VmHWM (in kB) from a /proc status file.
func parseStatus(b []byte) (Mem, error) {
	var m Mem
	var found int
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || (f[0] != "VmRSS:" && f[0] != "VmHWM:") {
			continue
		}
		kb, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return Mem{}, fmt.Errorf("parsing %s: %w", f[0], err)
		}
		if f[0] == "VmRSS:" {
			m.RSS = kb * 1024
		} else {
			m.HWM = kb * 1024
		}
		found++
	}
	if found < 2 {
		return Mem{}, errors.New("no VmRSS/VmHWM (process exited?)")
	}
	return m, nil
}

// Sampler polls the memory of one process in the background, so that the
// peak is known even after the process exits (VmHWM vanishes with it).
type Sampler struct {
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
	mu       sync.Mutex
	peak     Mem // largest RSS and HWM seen
	n        int
}

// Sample starts polling pid every interval (default 50ms when ≤ 0) until
// Stop or ctx is done.
func Sample(ctx context.Context, pid int, interval time.Duration) *Sampler {
	if interval <= 0 {
		interval = 50 * time.Millisecond
	}
	s := &Sampler{stop: make(chan struct{}), done: make(chan struct{})}
	go s.loop(ctx, pid, interval)
	return s
}

func (s *Sampler) loop(ctx context.Context, pid int, interval time.Duration) {
	defer close(s.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		s.poll(pid)
		select {
		case <-ctx.Done():
			return
		case <-s.stop:
			return
		case <-t.C:
		}
	}
}

func (s *Sampler) poll(pid int) {
	m, err := ReadMem(pid)
	if err != nil {
		return
	}
	s.mu.Lock()
	s.peak.RSS = max(s.peak.RSS, m.RSS)
	s.peak.HWM = max(s.peak.HWM, m.HWM)
	s.n++
	s.mu.Unlock()
}

// Peak returns the largest RSS and HWM seen so far and the number of
// successful samples.
func (s *Sampler) Peak() (Mem, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak, s.n
}

// Stop ends the polling and returns Peak.
func (s *Sampler) Stop() (Mem, int) {
	s.stopOnce.Do(func() { close(s.stop) })
	<-s.done
	return s.Peak()
}

// Command is an external command to time. It runs in its own process group,
// killed as a whole when Timeout passes or ctx is done.
type Command struct {
	// Path and Args as for exec.Command (Args excludes the program name).
	Path string
	Args []string
	// Dir is the working directory. Default: the current one.
	Dir string
	// Env is added to the current environment ("K=V"). Optional.
	Env []string
	// Stdin is fed to the command. Optional.
	Stdin io.Reader
	// Timeout bounds the run. Default: 10m.
	Timeout time.Duration
	// SampleEvery is the memory polling interval. Default: 50ms.
	SampleEvery time.Duration
	// OutputLimit is how many trailing bytes of stdout and of stderr are
	// kept in the result. Default: 4 KiB.
	OutputLimit int
}

// CommandResult is what a command did and cost.
type CommandResult struct {
	ExitCode int           `json:"exit_code"`
	Elapsed  time.Duration `json:"elapsed"`
	UserCPU  time.Duration `json:"user_cpu"`
	SysCPU   time.Duration `json:"sys_cpu"`
	// PeakRSS is the larger of wait4's ru_maxrss (exact, covers the waited
	// descendants too) and the sampled VmHWM.
	PeakRSS int64 `json:"peak_rss_bytes"`
	// Samples is the number of memory samples taken while it ran.
	Samples int `json:"samples"`
	// Stdout and Stderr are the trailing OutputLimit bytes of each.
	Stdout string `json:"stdout,omitempty"`
	Stderr string `json:"stderr,omitempty"`
}

// Run runs the command to its end and measures it. A non-zero exit is an
// error that wraps *exec.ExitError; the result is filled in either way.
func (c Command) Run(ctx context.Context) (CommandResult, error) {
	p, err := c.Start(ctx)
	if err != nil {
		return CommandResult{}, err
	}
	return p.Wait()
}

// Process is a started Command: a peer server, say, measured while a
// scenario loads it and stopped by the teardown.
type Process struct {
	cmd     *exec.Cmd
	path    string
	ctx     context.Context
	cancel  context.CancelFunc
	sampler *Sampler
	start   time.Time
	stdout  *tailBuffer
	stderr  *tailBuffer
	done    chan struct{}
	stopped atomic.Bool // Stop signalled the process

	// Set before done is closed:
	waitErr error
	ctxErr  error // the context's error when the process exited
	elapsed time.Duration
}

// Start starts the command and the memory sampler. The process is killed
// (with its group) when Timeout passes or ctx is done.
func (c Command) Start(ctx context.Context) (*Process, error) {
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Minute
	}
	if c.OutputLimit <= 0 {
		c.OutputLimit = 4 << 10
	}
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	cmd := exec.CommandContext(ctx, c.Path, c.Args...)
	cmd.Dir = c.Dir
	if len(c.Env) > 0 {
		cmd.Env = append(os.Environ(), c.Env...)
	}
	cmd.Stdin = c.Stdin
	p := &Process{
		cmd: cmd, path: c.Path, ctx: ctx, cancel: cancel,
		stdout: &tailBuffer{limit: c.OutputLimit},
		stderr: &tailBuffer{limit: c.OutputLimit},
		done:   make(chan struct{}),
	}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	setGroup(cmd)
	p.start = time.Now()
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("starting %s: %w", c.Path, err)
	}
	p.sampler = Sample(ctx, cmd.Process.Pid, c.SampleEvery)
	go p.wait()
	return p, nil
}

// wait reaps the process; it runs once, in its own goroutine.
func (p *Process) wait() {
	p.waitErr = p.cmd.Wait()
	p.elapsed = time.Since(p.start)
	p.ctxErr = p.ctx.Err()
	close(p.done)
}

// PID returns the process id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Mem reads the process's memory now.
func (p *Process) Mem() (Mem, error) { return ReadMem(p.PID()) }

// Wait waits for the process to exit and returns its measurements.
func (p *Process) Wait() (CommandResult, error) {
	<-p.done
	peak, n := p.sampler.Stop()
	ps := p.cmd.ProcessState
	res := CommandResult{
		ExitCode: ps.ExitCode(),
		Elapsed:  p.elapsed,
		UserCPU:  ps.UserTime(),
		SysCPU:   ps.SystemTime(),
		PeakRSS:  peak.HWM,
		Samples:  n,
		Stdout:   p.stdout.String(),
		Stderr:   p.stderr.String(),
	}
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		res.PeakRSS = max(res.PeakRSS, ru.Maxrss*1024) // Linux reports kB
	}
	p.cancel()
	var ee *exec.ExitError
	switch {
	case p.waitErr == nil:
		return res, nil
	case p.stopped.Load() && p.ctxErr == nil && errors.As(p.waitErr, &ee):
		return res, nil // ended by Stop's signal
	case p.ctxErr != nil:
		return res, fmt.Errorf("running %s: %w (%w)", p.path, p.waitErr, p.ctxErr)
	default:
		return res, fmt.Errorf("running %s: %w", p.path, p.waitErr)
	}
}

// Stop sends SIGTERM to the process group, waits for the exit until ctx is
// done, then kills the group, and returns the measurements. The error of a
// process that exits on the SIGTERM is dropped.
func (p *Process) Stop(ctx context.Context) (CommandResult, error) {
	select {
	case <-p.done:
		return p.Wait()
	default:
	}
	p.stopped.Store(true)
	_ = syscall.Kill(-p.PID(), syscall.SIGTERM)
	select {
	case <-p.done:
	case <-ctx.Done():
		_ = syscall.Kill(-p.PID(), syscall.SIGKILL)
		<-p.done
	}
	return p.Wait()
}

// setGroup puts cmd in its own process group and makes cancellation kill
// the whole group (a shell script's children included).
func setGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = 5 * time.Second
}

// tailBuffer keeps the last limit bytes written to it.
type tailBuffer struct {
	mu    sync.Mutex
	buf   []byte
	limit int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.limit; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
