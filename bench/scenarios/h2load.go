package scenarios

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

	"github.com/meridian-gis/meridian/bench"
	"github.com/meridian-gis/meridian/bench/load"
)

// h2Load runs h2load(1) (Debian nghttp2-client) for a fixed duration
// against a loopback URL and parses its report. It is to HTTP/2 what wrk is
// to HTTP/1.1: a C client that keeps up with a fast server on two cores.
// (A candidate for bench/load next to Wrk.)
type h2Load struct {
	// Path of h2load. Default: "h2load".
	Path string
	// Threads is -t. Default: 2.
	Threads int
	// Clients is -c, the number of connections. Default: 64.
	Clients int
	// Streams is -m, the concurrent streams per connection. Default: 1.
	Streams int
	// Duration is -D (timing-based run, no warm-up). Default: 3s; at most
	// load.MaxDuration.
	Duration time.Duration
	// TLS13Ciphers is --tls13-ciphers, so that every server is measured
	// with the same cipher. Default: TLS_AES_128_GCM_SHA256.
	TLS13Ciphers string
}

// lookH2Load returns the path of h2load, or an error when it is not
// installed.
func lookH2Load() (string, error) {
	p, err := exec.LookPath("h2load")
	if err != nil {
		return "", fmt.Errorf("looking for h2load: %w", err)
	}
	return p, nil
}

// h2LoadVersion returns "h2load nghttp2/1.52.0", or "".
func h2LoadVersion(ctx context.Context, path string) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, path, "--version").Output()
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line)
}

func (h *h2Load) setDefaults() {
	if h.Path == "" {
		h.Path = "h2load"
	}
	if h.Threads <= 0 {
		h.Threads = 2
	}
	if h.Clients <= 0 {
		h.Clients = 64
	}
	if h.Clients < h.Threads {
		h.Clients = h.Threads // h2load refuses fewer clients than threads
	}
	if h.Streams <= 0 {
		h.Streams = 1
	}
	if h.Duration <= 0 {
		h.Duration = 3 * time.Second
	}
	if h.TLS13Ciphers == "" {
		h.TLS13Ciphers = "TLS_AES_128_GCM_SHA256"
	}
}

// h2LoadDuration renders d as h2load wants it: an integer and a unit.
func h2LoadDuration(d time.Duration) string {
	if d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return strconv.FormatInt(int64(math.Ceil(float64(d)/float64(time.Millisecond))), 10) + "ms"
}

// args returns h2load's command-line arguments for target.
func (h h2Load) args(target string) []string {
	h.setDefaults()
	return []string{
		"-t", strconv.Itoa(h.Threads),
		"-c", strconv.Itoa(h.Clients),
		"-m", strconv.Itoa(h.Streams),
		"-D", h2LoadDuration(h.Duration),
		"--tls13-ciphers=" + h.TLS13Ciphers,
		target,
	}
}

// run runs h2load against target, which must be a loopback URL.
func (h h2Load) run(ctx context.Context, target string) (h2LoadResult, error) {
	h.setDefaults()
	if err := load.CheckTarget("h2load", target, h.Duration); err != nil {
		return h2LoadResult{}, err
	}
	out, err := load.RunTool(ctx, "h2load", h.Path, h.args(target), h.Duration+30*time.Second)
	if err != nil {
		return h2LoadResult{}, err
	}
	res, err := parseH2Load(string(out))
	if err != nil {
		return h2LoadResult{}, fmt.Errorf("parsing h2load output: %w", err)
	}
	return res, nil
}

// h2LoadResult is a parsed h2load report.
type h2LoadResult struct {
	// TLSProtocol, Cipher and ALPN are what the first connection
	// negotiated ("TLSv1.3", "TLS_AES_128_GCM_SHA256", "h2").
	TLSProtocol string `json:"tls_protocol,omitempty"`
	Cipher      string `json:"cipher,omitempty"`
	ALPN        string `json:"alpn,omitempty"`
	// Elapsed and RequestsPerSec are the "finished in" line.
	Elapsed        time.Duration `json:"elapsed"`
	RequestsPerSec float64       `json:"requests_per_sec"`
	// The "requests:" line.
	Total     uint64 `json:"total"`
	Succeeded uint64 `json:"succeeded"`
	Failed    uint64 `json:"failed"`
	Errored   uint64 `json:"errored"`
	Timeout   uint64 `json:"timeout"`
	// Status counts by class: Status[2] is the 2xx count.
	Status [6]uint64 `json:"status"`
	// DataBytes is the response body bytes (the "traffic:" line).
	DataBytes uint64 `json:"data_bytes"`
	// The "time for request:" row.
	RequestMin  time.Duration `json:"request_min"`
	RequestMax  time.Duration `json:"request_max"`
	RequestMean time.Duration `json:"request_mean"`
	RequestSD   time.Duration `json:"request_sd"`
}

// parseH2Load parses h2load's report. It needs the "finished in" and
// "requests:" lines; the rest is optional.
func parseH2Load(out string) (h2LoadResult, error) {
	var r h2LoadResult
	var errs []error
	fail := func(line string, err error) {
		errs = append(errs, fmt.Errorf("line %q: %w", strings.TrimSpace(line), err))
	}
	var haveFinished, haveRequests bool
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		key, rest, ok := strings.Cut(line, ":")
		switch {
		case strings.HasPrefix(line, "finished in "):
			// "finished in 3.04s, 11574.67 req/s, 340.55MB/s"
			f := strings.Fields(strings.ReplaceAll(strings.TrimPrefix(line, "finished in "), ",", ""))
			if len(f) < 3 || f[2] != "req/s" {
				fail(line, errors.New("unexpected shape"))
				continue
			}
			d, err1 := parseH2LoadTime(f[0])
			rps, err2 := strconv.ParseFloat(f[1], 64)
			if err := errors.Join(err1, err2); err != nil {
				fail(line, err)
				continue
			}
			r.Elapsed, r.RequestsPerSec, haveFinished = d, rps, true
		case !ok:
		case key == "TLS Protocol":
			r.TLSProtocol = strings.TrimSpace(rest)
		case key == "Cipher":
			r.Cipher = strings.TrimSpace(rest)
		case key == "Application protocol":
			r.ALPN = strings.TrimSpace(rest)
		case key == "requests":
			// "34724 total, 34788 started, 34724 done, 34724 succeeded, 0 failed, 0 errored, 0 timeout"
			counts, err := countList(rest)
			if err != nil {
				fail(line, err)
				continue
			}
			r.Total, r.Succeeded, r.Failed = counts["total"], counts["succeeded"], counts["failed"]
			r.Errored, r.Timeout = counts["errored"], counts["timeout"]
			haveRequests = true
		case key == "status codes":
			// "34724 2xx, 0 3xx, 0 4xx, 0 5xx"
			counts, err := countList(rest)
			if err != nil {
				fail(line, err)
				continue
			}
			for c := 1; c <= 5; c++ {
				r.Status[c] = counts[strconv.Itoa(c)+"xx"]
			}
		case key == "traffic":
			// "… headers (space savings 33.85%), 1017.30MB (1066721280) data"
			f := strings.Fields(rest)
			if len(f) >= 3 && f[len(f)-1] == "data" {
				n, err := strconv.ParseUint(strings.Trim(f[len(f)-2], "()"), 10, 64)
				if err != nil {
					fail(line, err)
					continue
				}
				r.DataBytes = n
			}
		case key == "time for request":
			// "148us    130.35ms      4.85ms      7.24ms    90.61%"
			f := strings.Fields(rest)
			if len(f) < 4 {
				fail(line, errors.New("want min, max, mean and sd"))
				continue
			}
			var ds [4]time.Duration
			var perr []error
			for i := range ds {
				d, err := parseH2LoadTime(f[i])
				ds[i] = d
				perr = append(perr, err)
			}
			if err := errors.Join(perr...); err != nil {
				fail(line, err)
				continue
			}
			r.RequestMin, r.RequestMax, r.RequestMean, r.RequestSD = ds[0], ds[1], ds[2], ds[3]
		}
	}
	if !haveFinished {
		errs = append(errs, errors.New(`no "finished in" line`))
	}
	if !haveRequests {
		errs = append(errs, errors.New(`no "requests:" line`))
	}
	if err := errors.Join(errs...); err != nil {
		return h2LoadResult{}, err
	}
	return r, nil
}

// countList parses "34724 total, 34788 started, 0 failed" into a map from
// the word to the count.
func countList(s string) (map[string]uint64, error) {
	out := make(map[string]uint64)
	for item := range strings.SplitSeq(s, ",") {
		f := strings.Fields(item)
		if len(f) != 2 {
			return nil, fmt.Errorf("item %q: want a count and a word", strings.TrimSpace(item))
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("item %q: %w", strings.TrimSpace(item), err)
		}
		out[f[1]] = n
	}
	return out, nil
}

// parseH2LoadTime parses h2load's durations: "148us", "4.85ms", "3.04s".
func parseH2LoadTime(s string) (time.Duration, error) {
	for _, u := range []struct {
		suffix string
		scale  float64
	}{
		{"ns", float64(time.Nanosecond)},
		{"us", float64(time.Microsecond)},
		{"ms", float64(time.Millisecond)},
		{"s", float64(time.Second)},
	} {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseFloat(num, 64)
			if err != nil {
				return 0, fmt.Errorf("parsing h2load time %q: %w", s, err)
			}
			return time.Duration(math.Round(v * u.scale)), nil
		}
	}
	return 0, fmt.Errorf("parsing h2load time %q: unknown unit", s)
}

// fromH2Load turns an h2load run into a bench result: throughput as the
// primary metric; mean and max request time and body MB/s as secondary
// (h2load reports no percentiles); failures as notes. A run without a
// successful request, or that did not speak HTTP/2, fails.
func fromH2Load(res h2LoadResult) (bench.Result, error) {
	if res.Succeeded == 0 {
		return bench.Result{}, fmt.Errorf("h2load completed no request (%d failed, %d errored, %d timeouts)",
			res.Failed, res.Errored, res.Timeout)
	}
	if res.ALPN != "h2" {
		return bench.Result{}, fmt.Errorf("h2load negotiated %q, not h2", res.ALPN)
	}
	out := bench.Result{
		Primary: bench.Metric{Name: "throughput", Unit: unitReqPerSec, Better: bench.HigherIsBetter, Value: res.RequestsPerSec},
		Secondary: []bench.Metric{
			latencyMetric("mean", res.RequestMean.Seconds()),
			latencyMetric("max", res.RequestMax.Seconds()),
		},
	}
	if res.Elapsed > 0 {
		out.Secondary = append(out.Secondary, bench.Metric{Name: "body", Unit: "MB/s", Better: bench.HigherIsBetter,
			Value: float64(res.DataBytes) / res.Elapsed.Seconds() / 1e6})
	}
	out.Notes = append(out.Notes, fmt.Sprintf("h2load negotiated %s %s %s", res.TLSProtocol, res.Cipher, res.ALPN))
	if n := res.Failed + res.Errored + res.Timeout; n > 0 {
		out.Notes = append(out.Notes, fmt.Sprintf("h2load: %d failed, %d errored, %d timeouts", res.Failed, res.Errored, res.Timeout))
	}
	if n := res.Status[1] + res.Status[4] + res.Status[5]; n > 0 {
		out.Notes = append(out.Notes, fmt.Sprintf("%d responses outside 2xx/3xx", n))
	}
	return out, nil
}
