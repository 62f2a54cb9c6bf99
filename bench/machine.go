package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
)

// Machine describes the host a report was measured on. Fields that cannot
// be read are left empty.
type Machine struct {
	Hostname string `json:"hostname"`
	// CPUs is the number of CPUs usable by this process (as nproc).
	CPUs       int    `json:"cpus"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	CPUModel   string `json:"cpu_model"`
	// MemoryBytes is MemTotal from /proc/meminfo.
	MemoryBytes int64  `json:"memory_bytes"`
	Kernel      string `json:"kernel"`
	GoVersion   string `json:"go_version"`
	OS          string `json:"os"`
	Arch        string `json:"arch"`
	// LoadAvg is /proc/loadavg's 1, 5 and 15 minute averages when the run
	// started: a busy shared machine shows here.
	LoadAvg string `json:"loadavg"`
}

// CollectMachine reads the machine description from the OS.
func CollectMachine() Machine {
	m := Machine{
		CPUs:       runtime.NumCPU(),
		GOMAXPROCS: runtime.GOMAXPROCS(0),
		GoVersion:  runtime.Version(),
		OS:         runtime.GOOS,
		Arch:       runtime.GOARCH,
	}
	m.Hostname, _ = os.Hostname()
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		m.CPUModel = cpuModel(b)
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		m.MemoryBytes = memTotal(b)
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			m.LoadAvg = strings.Join(f[:3], " ")
		}
	}
	return m
}

// String is the one-line form used in the Markdown header.
func (m Machine) String() string {
	parts := []string{m.Hostname, fmt.Sprintf("%d CPUs (GOMAXPROCS %d)", m.CPUs, m.GOMAXPROCS)}
	if m.CPUModel != "" {
		parts = append(parts, m.CPUModel)
	}
	if m.MemoryBytes > 0 {
		parts = append(parts, fmt.Sprintf("%.1f GiB", float64(m.MemoryBytes)/(1<<30)))
	}
	if m.Kernel != "" {
		parts = append(parts, m.OS+" "+m.Kernel)
	}
	parts = append(parts, m.GoVersion+" "+m.Arch)
	if m.LoadAvg != "" {
		parts = append(parts, "load "+m.LoadAvg)
	}
	return strings.Join(parts, " · ")
}

// cpuModel returns the first "model name" of /proc/cpuinfo.
func cpuModel(cpuinfo []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(cpuinfo))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// memTotal returns MemTotal of /proc/meminfo in bytes.
func memTotal(meminfo []byte) int64 {
	sc := bufio.NewScanner(bytes.NewReader(meminfo))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "MemTotal:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				return 0
			}
			return kb * 1024
		}
	}
	return 0
}

// GitCommit returns `git rev-parse HEAD` of the work tree at dir, with
// "+dirty" appended when `git status --porcelain` lists changes, or
// "unknown" when git or the work tree is missing. It only reads the
// repository (--no-optional-locks keeps status from refreshing the index).
func GitCommit(ctx context.Context, dir string) string {
	git := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "git", append([]string{"--no-optional-locks"}, args...)...)
		cmd.Dir = dir
		out, err := cmd.Output()
		return strings.TrimSpace(string(out)), err
	}
	head, err := git("rev-parse", "HEAD")
	if err != nil || head == "" {
		return "unknown"
	}
	if status, err := git("status", "--porcelain"); err == nil && status != "" {
		head += "+dirty"
	}
	return head
}
