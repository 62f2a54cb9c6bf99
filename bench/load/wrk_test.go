package load

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// Captured from wrk 4.1.0 (Debian) on this machine: a Python http.server
// answering 404, and the same server serving a 30 KiB file to 200
// connections.
const (
	wrkOut404 = `Running 1s test @ http://127.0.0.1:18765/nope
  2 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     4.93ms    3.46ms  28.84ms   86.51%
    Req/Sec   631.55    111.01   790.00     80.00%
  Latency Distribution
     50%    3.70ms
     75%    6.17ms
     90%    9.26ms
     99%   19.22ms
  1259 requests in 1.00s, 639.34KB read
  Non-2xx or 3xx responses: 1259
Requests/sec:   1257.79
Transfer/sec:    638.72KB
`
	wrkOutFile = `Running 2s test @ http://127.0.0.1:18765/obj
  2 threads and 200 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     8.75ms   42.51ms 834.40ms   99.05%
    Req/Sec   603.67    223.95     1.10k    65.00%
  Latency Distribution
     50%    4.29ms
     75%    6.26ms
     90%    8.29ms
     99%   24.47ms
  2406 requests in 2.01s, 70.95MB read
Requests/sec:   1199.54
Transfer/sec:     35.37MB
`
	// wrk's layout with microsecond latencies, gigabytes and a socket error
	// line (wrk prints it only when some error occurred).
	wrkOutFast = `Running 3s test @ http://127.0.0.1:40123/
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   759.42us    1.02ms  24.26ms   93.45%
    Req/Sec    22.37k     1.57k   24.91k    72.00%
  Latency Distribution
     50%  511.00us
     75%  797.00us
     90%    1.37ms
     99%    4.77ms
  133581 requests in 3.00s, 3.86GB read
  Socket errors: connect 0, read 2, write 0, timeout 12
Requests/sec:  44525.13
Transfer/sec:      1.29GB
`
)

func TestParseWrk(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want WrkResult
	}{
		{"404 with non-2xx", wrkOut404, WrkResult{
			URL: "http://127.0.0.1:18765/nope", Threads: 2, Connections: 8,
			LatencyAvg: 4930 * time.Microsecond, LatencyStdev: 3460 * time.Microsecond, LatencyMax: 28840 * time.Microsecond,
			Percentiles: []Percentile{{0.5, 3700 * time.Microsecond}, {0.75, 6170 * time.Microsecond}, {0.9, 9260 * time.Microsecond}, {0.99, 19220 * time.Microsecond}},
			Requests:    1259, Elapsed: time.Second, BytesRead: bytesOf(639.34, 1),
			RequestsPerSec: 1257.79, TransferPerSec: 638.72 * 1024, Non2xx3xx: 1259,
		}},
		{"megabytes", wrkOutFile, WrkResult{
			URL: "http://127.0.0.1:18765/obj", Threads: 2, Connections: 200,
			LatencyAvg: 8750 * time.Microsecond, LatencyStdev: 42510 * time.Microsecond, LatencyMax: 834400 * time.Microsecond,
			Percentiles: []Percentile{{0.5, 4290 * time.Microsecond}, {0.75, 6260 * time.Microsecond}, {0.9, 8290 * time.Microsecond}, {0.99, 24470 * time.Microsecond}},
			Requests:    2406, Elapsed: 2010 * time.Millisecond, BytesRead: bytesOf(70.95, 2),
			RequestsPerSec: 1199.54, TransferPerSec: 35.37 * 1024 * 1024,
		}},
		{"microseconds, gigabytes, socket errors", wrkOutFast, WrkResult{
			URL: "http://127.0.0.1:40123/", Threads: 2, Connections: 64,
			LatencyAvg: 759420 * time.Nanosecond, LatencyStdev: 1020 * time.Microsecond, LatencyMax: 24260 * time.Microsecond,
			Percentiles: []Percentile{{0.5, 511 * time.Microsecond}, {0.75, 797 * time.Microsecond}, {0.9, 1370 * time.Microsecond}, {0.99, 4770 * time.Microsecond}},
			Requests:    133581, Elapsed: 3 * time.Second, BytesRead: bytesOf(3.86, 3),
			RequestsPerSec: 44525.13, TransferPerSec: 1.29 * 1024 * 1024 * 1024,
			ReadErrors: 2, Timeouts: 12,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseWrk(tt.in)
			if err != nil {
				t.Fatalf("ParseWrk: %v", err)
			}
			if !slices.Equal(got.Percentiles, tt.want.Percentiles) {
				t.Errorf("percentiles = %v, want %v", got.Percentiles, tt.want.Percentiles)
			}
			got.Percentiles, tt.want.Percentiles = nil, nil
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseWrk =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}

	r, _ := ParseWrk(wrkOutFast)
	if p99, ok := r.Quantile(0.99); !ok || p99 != 4770*time.Microsecond {
		t.Errorf("Quantile(0.99) = %v, %v; want 4.77ms, true", p99, ok)
	}
	if _, ok := r.Quantile(0.999); ok {
		t.Error("Quantile(0.999) found, want not reported")
	}
	if got := r.SocketErrors(); got != 14 {
		t.Errorf("SocketErrors() = %d, want 14", got)
	}
}

// bytesOf is v × 1024^exp truncated, as wrk sizes parse.
func bytesOf(v float64, exp int) uint64 {
	for range exp {
		v *= 1024
	}
	return uint64(v)
}

func TestParseWrkErrors(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr string
	}{
		{"empty", "", "no \"N requests in T, B read\" line"},
		{"usage text", "Usage: wrk <options> <url>\n  Options:\n", "no \"Requests/sec:\" line"},
		{"bad unit", strings.Replace(wrkOut404, "4.93ms", "4.93xs", 1), `parsing wrk time "4.93xs"`},
		{"bad size", strings.Replace(wrkOut404, "639.34KB", "639.34KiB", 1), `parsing wrk size`},
		{"bad rate", strings.Replace(wrkOut404, "1257.79", "fast", 1), `parsing "fast"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseWrk(tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseWrk error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestWrkArgs(t *testing.T) {
	got := Wrk{Duration: 1500 * time.Millisecond, Headers: []string{"Accept: */*"}}.Args("http://127.0.0.1:1/x")
	want := []string{"-t", "2", "-c", "64", "-d", "2s", "--timeout", "10s", "--latency", "-H", "Accept: */*", "http://127.0.0.1:1/x"}
	if !slices.Equal(got, want) {
		t.Errorf("Args = %q, want %q", got, want)
	}
}

func TestWrkRefusesNonLoopback(t *testing.T) {
	_, err := Wrk{Path: "/bin/false", Duration: time.Second}.Run(context.Background(), "http://192.0.2.1/")
	if err == nil || !strings.Contains(err.Error(), "not loopback") {
		t.Errorf("Run(non-loopback) error = %v, want a loopback error", err)
	}
}

func TestWrkRun(t *testing.T) {
	path, err := LookWrk()
	if err != nil {
		t.Skip("wrk not installed")
	}
	srv := startTestServer(t, 1000)
	res, err := Wrk{Path: path, Threads: 1, Connections: 2, Duration: time.Second}.Run(context.Background(), srv.URL+"/")
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests == 0 || res.RequestsPerSec <= 0 || len(res.Percentiles) != 4 || res.Connections != 2 {
		t.Errorf("wrk result = %+v, want requests, a rate, 4 percentiles and 2 connections", res)
	}
	if v := WrkVersion(context.Background(), path); !strings.HasPrefix(v, "wrk") {
		t.Errorf("WrkVersion = %q, want it to start with wrk", v)
	}
}
