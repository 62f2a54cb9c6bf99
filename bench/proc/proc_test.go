package proc

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The test binary doubles as the measured child: with PROC_TEST_ALLOC_MB
// set it touches that many MiB, prints "done" and exits.
func TestMain(m *testing.M) {
	if mb := os.Getenv("PROC_TEST_ALLOC_MB"); mb != "" {
		n, _ := strconv.Atoi(mb)
		b := make([]byte, n<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		os.Stdout.WriteString("done " + strconv.Itoa(int(b[len(b)-4096])) + "\n")
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestCommandRunPeakRSS(t *testing.T) {
	res, err := Command{
		Path:    os.Args[0],
		Env:     []string{"PROC_TEST_ALLOC_MB=96"},
		Timeout: time.Minute,
	}.Run(context.Background())
	if err != nil {
		t.Fatalf("Run: %v (stderr %q)", err, res.Stderr)
	}
	if res.PeakRSS < 96<<20 {
		t.Errorf("PeakRSS = %d MiB, want ≥ 96 MiB", res.PeakRSS>>20)
	}
	if res.PeakRSS > 1<<30 {
		t.Errorf("PeakRSS = %d MiB, want a plausible figure", res.PeakRSS>>20)
	}
	if res.ExitCode != 0 || res.Stdout != "done 1\n" || res.Elapsed <= 0 || res.UserCPU+res.SysCPU <= 0 {
		t.Errorf("result = %+v, want exit 0, stdout \"done 1\", elapsed and cpu time", res)
	}
}

func TestCommandRunExitCode(t *testing.T) {
	res, err := Command{Path: "sh", Args: []string{"-c", "echo oops >&2; exit 3"}}.Run(context.Background())
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("Run error = %v, want an *exec.ExitError", err)
	}
	if res.ExitCode != 3 || res.Stderr != "oops\n" {
		t.Errorf("exit %d stderr %q; want 3 and \"oops\\n\"", res.ExitCode, res.Stderr)
	}
}

func TestCommandRunTimeoutKillsGroup(t *testing.T) {
	// The shell's child sleep must die with it, or Wait would hang on the
	// inherited stdout until WaitDelay.
	res, err := Command{Path: "sh", Args: []string{"-c", "sleep 30; echo late"}, Timeout: 200 * time.Millisecond}.Run(context.Background())
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run error = %v, want a deadline error", err)
	}
	if strings.Contains(res.Stdout, "late") {
		t.Errorf("stdout = %q, want the command killed before it printed", res.Stdout)
	}
	if res.Elapsed > 5*time.Second {
		t.Errorf("elapsed %v, want the kill right after the 200ms timeout", res.Elapsed)
	}
}

func TestCommandStartStop(t *testing.T) {
	p, err := Command{Path: "sleep", Args: []string{"30"}, SampleEvery: 10 * time.Millisecond}.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	m, err := p.Mem()
	if err != nil || m.RSS <= 0 || m.HWM < m.RSS {
		t.Errorf("Mem() = %+v, %v; want RSS > 0 and HWM ≥ RSS", m, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := p.Stop(ctx)
	if err != nil {
		t.Errorf("Stop: %v, want nil for a process ended by our SIGTERM", err)
	}
	if res.PeakRSS <= 0 {
		t.Errorf("PeakRSS = %d, want > 0", res.PeakRSS)
	}
	select {
	case <-p.Done():
	default:
		t.Error("Done() not closed after Stop")
	}
	if _, err := p.Stop(ctx); err != nil {
		t.Errorf("second Stop: %v, want nil", err)
	}
}

func TestStartMissingBinary(t *testing.T) {
	if _, err := (Command{Path: "/nonexistent/ogr2ogr"}).Start(context.Background()); err == nil {
		t.Error("Start(missing binary) = nil error, want one")
	}
}

func TestParseStatus(t *testing.T) {
	status := []byte("Name:\tsleep\nVmPeak:\t   8000 kB\nVmHWM:\t    1024 kB\nVmRSS:\t     900 kB\nThreads:\t1\n")
	got, err := parseStatus(status)
	if err != nil || got != (Mem{RSS: 900 << 10, HWM: 1024 << 10}) {
		t.Errorf("parseStatus = %+v, %v; want RSS 900 KiB, HWM 1024 KiB", got, err)
	}
	if _, err := parseStatus([]byte("Name:\tzombie\nState:\tZ (zombie)\n")); err == nil {
		t.Error("parseStatus(zombie) = nil error, want one")
	}
	if _, err := ReadMem(-1); err == nil {
		t.Error("ReadMem(-1) = nil error, want one")
	}
}

func TestTailBuffer(t *testing.T) {
	b := &tailBuffer{limit: 5}
	for _, s := range []string{"abc", "defg", "h"} {
		if n, err := b.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	if got := b.String(); got != "defgh" {
		t.Errorf("tail = %q, want %q", got, "defgh")
	}
}

func TestFreeAddrAndWaitListening(t *testing.T) {
	addr, err := FreeLoopbackAddr()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Errorf("FreeLoopbackAddr = %q, want 127.0.0.1:port", addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := WaitListening(ctx, addr); err == nil {
		t.Error("WaitListening on a closed port = nil, want a timeout error")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("port %s taken meanwhile: %v", addr, err)
	}
	defer ln.Close()
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	if err := WaitListening(ctx2, addr); err != nil {
		t.Errorf("WaitListening on a listening port = %v, want nil", err)
	}
}
