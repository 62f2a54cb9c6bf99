package load

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Wrk runs wrk(1) (https://github.com/wg/wrk) against a loopback URL with
// --latency and parses its report. Scenarios whose issue asks for
// "wrk -t2 -c64" use it; check LookWrk first and skip when it is missing.
type Wrk struct {
	// Path of the wrk binary. Default: "wrk" looked up on PATH.
	Path string
	// Threads is wrk -t. Default: 2.
	Threads int
	// Connections is wrk -c. Default: 64.
	Connections int
	// Duration is wrk -d, rounded up to whole seconds (wrk's resolution).
	// Default: 3s. Max: MaxDuration.
	Duration time.Duration
	// Timeout is wrk --timeout, per request. Default: 10s.
	Timeout time.Duration
	// Headers are passed as -H "Name: value". Optional.
	Headers []string
	// Script is a Lua script passed as -s. Optional.
	Script string
}

// LookWrk returns the path of wrk on PATH, or an error when it is not
// installed (apt-get install wrk).
func LookWrk() (string, error) {
	p, err := exec.LookPath("wrk")
	if err != nil {
		return "", fmt.Errorf("looking for wrk: %w", err)
	}
	return p, nil
}

// WrkVersion returns the first line of `wrk --version` without its
// copyright ("wrk debian/4.1.0-3+b2 [epoll]"), or "" when it cannot be run.
func WrkVersion(ctx context.Context, path string) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, path, "--version").CombinedOutput() // exits 1 after printing
	line, _, _ := strings.Cut(string(out), "\n")
	line, _, _ = strings.Cut(line, " Copyright")
	return strings.TrimSpace(line)
}

func (w *Wrk) setDefaults() {
	if w.Path == "" {
		w.Path = "wrk"
	}
	if w.Threads <= 0 {
		w.Threads = 2
	}
	if w.Connections <= 0 {
		w.Connections = 64
	}
	if w.Connections < w.Threads {
		w.Connections = w.Threads // wrk refuses fewer connections than threads
	}
	if w.Duration <= 0 {
		w.Duration = 3 * time.Second
	}
	if w.Timeout <= 0 {
		w.Timeout = 10 * time.Second
	}
}

// Args returns wrk's command-line arguments for target.
func (w Wrk) Args(target string) []string {
	w.setDefaults()
	secs := int(math.Ceil(w.Duration.Seconds()))
	args := []string{
		"-t", strconv.Itoa(w.Threads),
		"-c", strconv.Itoa(w.Connections),
		"-d", strconv.Itoa(secs) + "s",
		"--timeout", strconv.Itoa(int(math.Ceil(w.Timeout.Seconds()))) + "s",
		"--latency",
	}
	for _, h := range w.Headers {
		args = append(args, "-H", h)
	}
	if w.Script != "" {
		args = append(args, "-s", w.Script)
	}
	return append(args, target)
}

// Run runs wrk against target, which must be a loopback URL, and parses its
// output.
func (w Wrk) Run(ctx context.Context, target string) (WrkResult, error) {
	w.setDefaults()
	if err := CheckTarget("wrk", target, w.Duration); err != nil {
		return WrkResult{}, err
	}
	out, err := RunTool(ctx, "wrk", w.Path, w.Args(target), w.Duration+w.Timeout+30*time.Second)
	if err != nil {
		return WrkResult{}, err
	}
	res, err := ParseWrk(string(out))
	if err != nil {
		return WrkResult{}, fmt.Errorf("parsing wrk output: %w", err)
	}
	return res, nil
}

// WrkResult is a parsed wrk report. Latency figures are per request;
// RequestsPerSec and TransferPerSec are totals over all threads.
type WrkResult struct {
	URL         string `json:"url"`
	Threads     int    `json:"threads"`
	Connections int    `json:"connections"`
	// LatencyAvg, LatencyStdev and LatencyMax are the "Thread Stats"
	// Latency row.
	LatencyAvg   time.Duration `json:"latency_avg"`
	LatencyStdev time.Duration `json:"latency_stdev"`
	LatencyMax   time.Duration `json:"latency_max"`
	// Percentiles is the "Latency Distribution" (needs --latency).
	Percentiles []Percentile `json:"percentiles,omitempty"`
	// Requests completed in Elapsed, and the bytes read (headers included).
	Requests  uint64        `json:"requests"`
	Elapsed   time.Duration `json:"elapsed"`
	BytesRead uint64        `json:"bytes_read"`
	// RequestsPerSec and TransferPerSec (bytes/s) are the closing lines.
	RequestsPerSec float64 `json:"requests_per_sec"`
	TransferPerSec float64 `json:"transfer_per_sec"`
	// Socket errors by kind; all zero when wrk printed no such line.
	ConnectErrors uint64 `json:"connect_errors"`
	ReadErrors    uint64 `json:"read_errors"`
	WriteErrors   uint64 `json:"write_errors"`
	Timeouts      uint64 `json:"timeouts"`
	// Non2xx3xx counts responses with another status.
	Non2xx3xx uint64 `json:"non_2xx_3xx"`
}

// Percentile is one row of wrk's latency distribution.
type Percentile struct {
	// Q is the quantile, 0.5 for "50%".
	Q       float64       `json:"q"`
	Latency time.Duration `json:"latency"`
}

// Quantile returns the latency at quantile q (0.5, 0.99) if wrk reported it.
func (r WrkResult) Quantile(q float64) (time.Duration, bool) {
	for _, p := range r.Percentiles {
		if math.Abs(p.Q-q) < 1e-9 {
			return p.Latency, true
		}
	}
	return 0, false
}

// SocketErrors returns the sum of all socket errors.
func (r WrkResult) SocketErrors() uint64 {
	return r.ConnectErrors + r.ReadErrors + r.WriteErrors + r.Timeouts
}

// ParseWrk parses the text wrk prints. It needs at least the "N requests
// in T" and "Requests/sec" lines; the rest is optional.
func ParseWrk(out string) (WrkResult, error) {
	var r WrkResult
	var errs []error
	fail := func(line string, err error) {
		errs = append(errs, fmt.Errorf("line %q: %w", strings.TrimSpace(line), err))
	}
	var haveTotal, haveRate, inDist bool
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if inDist && strings.HasSuffix(f[0], "%") && len(f) == 2 {
			q, err1 := strconv.ParseFloat(strings.TrimSuffix(f[0], "%"), 64)
			d, err2 := parseWrkTime(f[1])
			if err := errors.Join(err1, err2); err != nil {
				fail(line, err)
				continue
			}
			r.Percentiles = append(r.Percentiles, Percentile{Q: q / 100, Latency: d})
			continue
		}
		inDist = false
		switch {
		case f[0] == "Running" && len(f) >= 5 && f[3] == "@":
			r.URL = f[4]
		case len(f) == 5 && f[1] == "threads" && f[4] == "connections":
			t, err1 := strconv.Atoi(f[0])
			c, err2 := strconv.Atoi(f[3])
			if err := errors.Join(err1, err2); err != nil {
				fail(line, err)
			}
			r.Threads, r.Connections = t, c
		case f[0] == "Latency" && len(f) == 2 && f[1] == "Distribution":
			inDist = true
		case f[0] == "Latency" && len(f) >= 4:
			avg, err1 := parseWrkTime(f[1])
			sd, err2 := parseWrkTime(f[2])
			mx, err3 := parseWrkTime(f[3])
			if err := errors.Join(err1, err2, err3); err != nil {
				fail(line, err)
			}
			r.LatencyAvg, r.LatencyStdev, r.LatencyMax = avg, sd, mx
		case len(f) >= 6 && f[1] == "requests" && f[2] == "in" && f[len(f)-1] == "read":
			// "89013 requests in 1.00s, 2.57GB read"
			n, err1 := strconv.ParseUint(f[0], 10, 64)
			d, err2 := parseWrkTime(strings.TrimSuffix(f[3], ","))
			b, err3 := parseWrkBytes(f[4])
			if err := errors.Join(err1, err2, err3); err != nil {
				fail(line, err)
				continue
			}
			r.Requests, r.Elapsed, r.BytesRead, haveTotal = n, d, uint64(b), true
		case f[0] == "Socket" && len(f) >= 3 && f[1] == "errors:":
			// "Socket errors: connect 0, read 0, write 0, timeout 12"
			for i := 2; i+1 < len(f); i += 2 {
				n, err := strconv.ParseUint(strings.TrimSuffix(f[i+1], ","), 10, 64)
				if err != nil {
					fail(line, err)
					break
				}
				switch f[i] {
				case "connect":
					r.ConnectErrors = n
				case "read":
					r.ReadErrors = n
				case "write":
					r.WriteErrors = n
				case "timeout":
					r.Timeouts = n
				}
			}
		case strings.HasPrefix(strings.TrimSpace(line), "Non-2xx or 3xx responses:"):
			n, err := strconv.ParseUint(f[len(f)-1], 10, 64)
			if err != nil {
				fail(line, err)
			}
			r.Non2xx3xx = n
		case f[0] == "Requests/sec:" && len(f) == 2:
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				fail(line, err)
				continue
			}
			r.RequestsPerSec, haveRate = v, true
		case f[0] == "Transfer/sec:" && len(f) == 2:
			b, err := parseWrkBytes(f[1])
			if err != nil {
				fail(line, err)
			}
			r.TransferPerSec = b
		}
	}
	if !haveTotal {
		errs = append(errs, errors.New(`no "N requests in T, B read" line`))
	}
	if !haveRate {
		errs = append(errs, errors.New(`no "Requests/sec:" line`))
	}
	if err := errors.Join(errs...); err != nil {
		return WrkResult{}, err
	}
	return r, nil
}

// parseWrkTime parses wrk's time values: "511.00us", "1.37ms", "2.00s",
// "1.50m", "1.00h".
func parseWrkTime(s string) (time.Duration, error) {
	units := []struct {
		suffix string
		scale  float64
	}{
		{"us", float64(time.Microsecond)},
		{"ms", float64(time.Millisecond)},
		{"s", float64(time.Second)},
		{"m", float64(time.Minute)},
		{"h", float64(time.Hour)},
	}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseFloat(num, 64)
			if err != nil {
				return 0, fmt.Errorf("parsing wrk time %q: %w", s, err)
			}
			return time.Duration(math.Round(v * u.scale)), nil
		}
	}
	return 0, fmt.Errorf("parsing wrk time %q: unknown unit", s)
}

// parseWrkBytes parses wrk's binary sizes: "512.00B", "2.57GB", "30.10KB"
// (powers of 1024).
func parseWrkBytes(s string) (float64, error) {
	num, ok := strings.CutSuffix(s, "B")
	if !ok {
		return 0, fmt.Errorf("parsing wrk size %q: no B suffix", s)
	}
	scale := 1.0
	if n := len(num); n > 0 {
		if i := strings.IndexByte("KMGTP", num[n-1]); i >= 0 {
			scale = math.Pow(1024, float64(i+1))
			num = num[:n-1]
		}
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("parsing wrk size %q: %w", s, err)
	}
	return v * scale, nil
}
