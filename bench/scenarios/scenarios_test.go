package scenarios

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/meridian-gis/meridian/bench"
	"github.com/meridian-gis/meridian/bench/load"
)

func registry(t *testing.T) *bench.Registry {
	t.Helper()
	reg := bench.NewRegistry()
	if err := Register(reg); err != nil {
		t.Fatalf("Register: %v", err)
	}
	return reg
}

// run runs the named scenarios for one short round, no warm-up.
func run(t *testing.T, d time.Duration, names ...string) []bench.ScenarioReport {
	t.Helper()
	picked, err := registry(t).Select(names)
	if err != nil {
		t.Fatal(err)
	}
	r := &bench.Runner{Rounds: 1, Duration: d, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	return r.Run(context.Background(), picked)
}

// checkServed asserts every variant of rep produced throughput and latency.
func checkServed(t *testing.T, rep bench.ScenarioReport) {
	t.Helper()
	if rep.Error != "" {
		t.Fatalf("%s: %s", rep.Info.Name, rep.Error)
	}
	if len(rep.Stats) != len(rep.Info.Variants) {
		t.Fatalf("%s: stats for %d variants, want %d", rep.Info.Name, len(rep.Stats), len(rep.Info.Variants))
	}
	for _, vs := range rep.Stats {
		if vs.Errors > 0 || len(vs.Metrics) == 0 {
			t.Errorf("%s/%s: %d failed runs, %d metrics; want 0 and some (samples %+v)",
				rep.Info.Name, vs.Variant, vs.Errors, len(vs.Metrics), rep.Samples)
			continue
		}
		got := map[string]float64{}
		for _, m := range vs.Metrics {
			got[m.Name] = m.Median
		}
		if got["throughput"] <= 0 || got["p50"] <= 0 || got["p99"] < got["p50"] {
			t.Errorf("%s/%s: medians %v, want positive throughput and p50 ≤ p99", rep.Info.Name, vs.Variant, got)
		}
	}
}

// TestHTTPFloorSmoke runs the whole pipeline once, briefly: servers, load
// generator, runner, statistics and report. Not a timing test.
func TestHTTPFloorSmoke(t *testing.T) {
	reps := run(t, 150*time.Millisecond, "http-floor")
	checkServed(t, reps[0])
	for _, s := range reps[0].Samples {
		for _, n := range s.Result.Notes {
			t.Errorf("%s: unexpected note %q (errors or bad statuses from a bare server)", s.Variant, n)
		}
	}
	var md strings.Builder
	if err := (&bench.Report{Results: reps}).WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"## http-floor", "| nethttp | 1 |", "| fasthttp | 1 |", "vs nethttp"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, md.String())
		}
	}
}

func TestWrkVsLoadgenSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("wrk runs whole seconds; skipped in -short")
	}
	reps := run(t, time.Second, "wrk-vs-loadgen")
	if reps[0].Skipped != "" {
		if _, err := load.LookWrk(); err == nil {
			t.Fatalf("skipped (%s) although wrk is installed", reps[0].Skipped)
		}
		t.Skip(reps[0].Skipped)
	}
	checkServed(t, reps[0])
}

func TestServersServeTheSameObject(t *testing.T) {
	body := object(objectSize)
	if len(body) != 30<<10 || string(body) != string(object(objectSize)) {
		t.Fatalf("object(%d) is %d bytes or not deterministic", objectSize, len(body))
	}
	for name, start := range map[string]func([]byte) (*server, error){"nethttp": startNetHTTP, "fasthttp": startFastHTTP} {
		t.Run(name, func(t *testing.T) {
			srv, err := start(body)
			if err != nil {
				t.Fatal(err)
			}
			res, err := load.HTTP{URLs: []string{srv.URL}, Requests: 5, Concurrency: 1}.Run(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if res.Status[200] != 5 || res.BodyBytes != 5*uint64(len(body)) {
				t.Errorf("status %v, body bytes %d; want 5×200 of %d bytes", res.Status, res.BodyBytes, len(body))
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := srv.Stop(ctx); err != nil {
				t.Errorf("Stop: %v", err)
			}
		})
	}
}

func TestFromLoad(t *testing.T) {
	if _, err := fromLoad(load.Result{Errors: 3, FirstError: "refused", Latency: &load.Histogram{}}); err == nil ||
		!strings.Contains(err.Error(), "3 errors, first: refused") {
		t.Errorf("fromLoad(no response) error = %v, want one naming the errors", err)
	}
	h := &load.Histogram{}
	h.Record(2 * time.Millisecond)
	h.Record(2 * time.Millisecond)
	res, err := fromLoad(load.Result{
		Requests: 2, Errors: 1, FirstError: "reset", Status: map[int]uint64{200: 1, 503: 1},
		BodyBytes: 2e6, Elapsed: time.Second, Latency: h,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Primary.Value != 2 || res.Primary.Unit != "req/s" || res.Primary.Better != bench.HigherIsBetter {
		t.Errorf("primary = %+v, want 2 req/s, higher is better", res.Primary)
	}
	if p50 := res.Secondary[0]; p50.Name != "p50" || p50.Value < 1.97 || p50.Value > 2.03 || p50.Better != bench.LowerIsBetter {
		t.Errorf("p50 = %+v, want ≈2 ms, lower is better", p50)
	}
	if body := res.Secondary[2]; body.Value != 2 {
		t.Errorf("body rate = %+v, want 2 MB/s", body)
	}
	if got := strings.Join(res.Notes, "; "); got != "1 request errors, first: reset; 1 responses outside 2xx/3xx" {
		t.Errorf("notes = %q", got)
	}
}

func TestFromWrk(t *testing.T) {
	res, err := fromWrk(load.WrkResult{
		Requests: 10, RequestsPerSec: 5,
		Percentiles: []load.Percentile{{Q: 0.5, Latency: time.Millisecond}, {Q: 0.99, Latency: 3 * time.Millisecond}},
		Timeouts:    2,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Primary.Value != 5 || len(res.Secondary) != 2 || res.Secondary[1].Value != 3 {
		t.Errorf("result = %+v, want 5 req/s, p50 1 ms, p99 3 ms", res)
	}
	if len(res.Notes) != 1 || !strings.Contains(res.Notes[0], "timeout 2") {
		t.Errorf("notes = %q, want the socket errors", res.Notes)
	}
	if _, err := fromWrk(load.WrkResult{}); err == nil {
		t.Error("fromWrk(no request) = nil error, want one")
	}
}
