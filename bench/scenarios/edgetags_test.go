package scenarios

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meridian-gis/meridian/bench"
	"github.com/meridian-gis/meridian/bench/load"
	"github.com/meridian-gis/meridian/internal/cachetag"
)

func TestTaggedPath(t *testing.T) {
	p := taggedPath("bench-purge-3", 99999)
	if p != "/t/bench-purge-3/99999.mvt" {
		t.Errorf("taggedPath = %q, want /t/bench-purge-3/99999.mvt", p)
	}
	tests := []struct {
		path string
		want []string
	}{
		{p, []string{"bench-purge-3"}},
		{taggedPath("bench-keep", 0), []string{"bench-keep"}},
		{"/t/only-a-tag", nil},
		{"/t//1.mvt", nil},
		{"/tiles/bench/12/2047/1362.mvt", nil},
		{"/", nil},
	}
	for _, tt := range tests {
		got := tagOfPath(tt.path)
		if !slices.Equal(got, tt.want) {
			t.Errorf("tagOfPath(%q) = %q, want %q", tt.path, got, tt.want)
		}
		for _, tag := range got {
			if !cachetag.Valid(tag) {
				t.Errorf("tagOfPath(%q) gave %q, not a valid cache tag", tt.path, tag)
			}
		}
	}
}

func TestQuantile(t *testing.T) {
	xs := []float64{5, 1, 4, 2, 3}
	tests := []struct {
		q, want float64
	}{{0, 1}, {0.5, 3}, {0.25, 2}, {1, 5}, {0.99, 4.96}}
	for _, tt := range tests {
		if got := quantile(xs, tt.q); math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("quantile(%v, %v) = %v, want %v", xs, tt.q, got, tt.want)
		}
	}
	if !slices.Equal(xs, []float64{5, 1, 4, 2, 3}) {
		t.Errorf("quantile reordered its input: %v", xs)
	}
	if got := quantile([]float64{7}, 0.99); got != 7 {
		t.Errorf("quantile(one sample) = %v, want 7", got)
	}
	if got := quantile(nil, 0.5); !math.IsNaN(got) {
		t.Errorf("quantile(none) = %v, want NaN", got)
	}
	if got := millis([]time.Duration{1500 * time.Microsecond}); got[0] != 1.5 {
		t.Errorf("millis(1.5ms) = %v, want 1.5", got)
	}
}

func TestSpread(t *testing.T) {
	tests := []struct {
		n, total, offset int
		want             []uint64
	}{
		{4, 100, 0, []uint64{0, 25, 50, 75}},
		{4, 100, 3, []uint64{3, 28, 53, 78}},
		{3, 10, 9, []uint64{9, 2, 5}},
		{5, 3, 0, []uint64{0, 1, 2}}, // at most total
	}
	for _, tt := range tests {
		if got := spread(tt.n, tt.total, tt.offset); !slices.Equal(got, tt.want) {
			t.Errorf("spread(%d, %d, %d) = %v, want %v", tt.n, tt.total, tt.offset, got, tt.want)
		}
	}
}

func TestCheckFill(t *testing.T) {
	ok := load.Result{Requests: 10, Status: map[int]uint64{200: 10}}
	if err := checkFill(ok, 10); err != nil {
		t.Errorf("checkFill(10×200) = %v, want nil", err)
	}
	tests := []struct {
		name string
		res  load.Result
	}{
		{"short", load.Result{Requests: 9, Status: map[int]uint64{200: 9}}},
		{"errors", load.Result{Requests: 10, Status: map[int]uint64{200: 10}, Errors: 1, FirstError: "reset"}},
		{"bad status", load.Result{Requests: 10, Status: map[int]uint64{200: 9, 502: 1}}},
	}
	for _, tt := range tests {
		if err := checkFill(tt.res, 10); err == nil {
			t.Errorf("checkFill(%s) = nil, want an error", tt.name)
		}
	}
}

// TestCacheAdminClient checks the admin client's requests and its
// handling of bad answers against a plain server on 127.0.0.1 that
// answers as the edge's admin API does (the real one runs in the smoke
// tests below).
func TestCacheAdminClient(t *testing.T) {
	var gotBody string
	mux := http.NewServeMux()
	mux.HandleFunc("POST /meridian/cache/purge", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		gotBody = string(b)
		var req purgeRequest
		if err := json.Unmarshal(b, &req); err != nil || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		n := len(req.Tags)
		if slices.Contains(req.Tags, "wrong-count") {
			n = 0
		}
		json.NewEncoder(w).Encode(purgeResponse{Tags: n})
	})
	mux.HandleFunc("GET /meridian/cache/stats", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"hits":3,"stores":100000,"entries":100050,"purge_tags_hard":2,"evictions":0}`)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	client := newLoopbackClient()
	defer client.CloseIdleConnections()
	a := cacheAdmin{base: "http://" + ln.Addr().String(), client: client}
	ctx := context.Background()
	if _, err := a.purge(ctx, []string{"bench-purge-1"}); err != nil {
		t.Errorf("purge = %v, want nil", err)
	}
	if want := `{"tags":["bench-purge-1"]}`; gotBody != want {
		t.Errorf("purge body = %s, want %s", gotBody, want)
	}
	if _, err := a.purge(ctx, []string{"wrong-count"}); err == nil || !strings.Contains(err.Error(), "want 1 hard-purged") {
		t.Errorf("purge(answer counts 0 tags) = %v, want an error", err)
	}
	st, err := a.stats(ctx)
	if err != nil || st != (cacheStats{Hits: 3, Stores: 100000, Entries: 100050, PurgeHard: 2}) {
		t.Errorf("stats = %+v, %v; want the decoded counters", st, err)
	}
	if _, err := a.floor(ctx); err == nil || !strings.Contains(err.Error(), "status 404") {
		t.Errorf("floor(no such route) = %v, want a status error", err)
	}
}

func TestInvalidationResult(t *testing.T) {
	ms := func(v ...float64) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x * float64(time.Millisecond))
		}
		return out
	}
	h := &load.Histogram{}
	for range 100 {
		h.Record(2 * time.Millisecond)
	}
	lr := load.Result{Requests: 100, Elapsed: time.Second, Latency: h, Status: map[int]uint64{200: 99, 502: 1},
		Errors: 2, FirstError: "timeout"}
	purged := ms(10, 20, 30, 40, 5000)
	res, err := invalidationResult(purged, ms(1, 1, 2, 2, 3), 1, lr, 9+4)
	if err != nil {
		t.Fatal(err)
	}
	if res.Primary.Name != "p99" || res.Primary.Unit != "ms" || res.Primary.Better != bench.LowerIsBetter ||
		math.Abs(res.Primary.Value-4801.6) > 1e-6 {
		t.Errorf("primary = %+v, want p99 4801.6 ms, lower is better", res.Primary)
	}
	got := map[string]float64{}
	for _, m := range res.Secondary {
		got[m.Name] = m.Value
	}
	want := map[string]float64{"p50": 30, "max": 5000, "publish-p50": 2, "load": 100, "load-errors": 3}
	for name, w := range want {
		if math.Abs(got[name]-w) > 1e-6 {
			t.Errorf("%s = %v, want %v", name, got[name], w)
		}
	}
	if p := got["load-p99"]; p < 1.9 || p > 2.1 {
		t.Errorf("load-p99 = %v, want ≈2 ms", p)
	}
	notes := strings.Join(res.Notes, "; ")
	for _, w := range []string{
		"1 of 5 invalidations not applied within 5s",
		"2 request errors, first: timeout",
		"1 responses outside 2xx/3xx",
		"4 requests beyond the probes' 9",
	} {
		if !strings.Contains(notes, w) {
			t.Errorf("notes %q lack %q", notes, w)
		}
	}

	if _, err := invalidationResult(nil, nil, 0, lr, 0); err == nil {
		t.Error("invalidationResult(no probe) = nil error, want one")
	}
	if _, err := invalidationResult(purged, purged, 0, load.Result{Latency: h}, 0); err == nil {
		t.Error("invalidationResult(no load response) = nil error, want one")
	}
}

// runOne runs one scenario value for rounds rounds of d.
func runOne(t *testing.T, s bench.Scenario, d time.Duration, rounds int) bench.ScenarioReport {
	t.Helper()
	r := &bench.Runner{Rounds: rounds, Duration: d, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	return r.Run(context.Background(), []bench.Scenario{s})[0]
}

// TestPurgeTagSmoke runs purge-tag with a small fill against the real
// edge. Not a timing test: it checks the purge was checked and measured.
func TestPurgeTagSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the edge binary")
	}
	s := newPurgeTag().(*purgeTag)
	s.cfg.Entries, s.cfg.Sample, s.cfg.KeepURLs, s.cfg.Repeats = 2000, 20, 5, 5
	rep := runOne(t, s, time.Second, 2)
	if rep.Skipped != "" {
		t.Skip(rep.Skipped)
	}
	if rep.Error != "" {
		t.Fatal(rep.Error)
	}
	for _, smp := range rep.Samples {
		if smp.Error != "" || smp.Result == nil || smp.Result.Primary.Value <= 0 {
			t.Errorf("round %d: error %q, result %+v; want a purge time", smp.Round, smp.Error, smp.Result)
		}
	}
	if len(rep.Verdicts) != 1 || rep.Verdicts[0].Value == nil {
		t.Errorf("verdicts = %+v, want one with a value", rep.Verdicts)
	}
}

// TestInvalidationSmoke runs invalidation briefly on both brokers with the
// real edge, PostgreSQL and pstest. Not a timing test.
func TestInvalidationSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the edge binary and starts PostgreSQL")
	}
	s := newInvalidation().(*invalidation)
	s.cfg.Probes, s.cfg.LoadURLs = 5, 50
	rep := runOne(t, s, 300*time.Millisecond, 1)
	if rep.Skipped != "" {
		t.Skip(rep.Skipped)
	}
	if rep.Error != "" {
		t.Fatal(rep.Error)
	}
	if len(rep.Samples) != 2 {
		t.Fatalf("%d samples, want one per broker", len(rep.Samples))
	}
	for _, smp := range rep.Samples {
		if smp.Error != "" || smp.Result == nil || smp.Result.Primary.Value <= 0 {
			t.Errorf("%s: error %q, result %+v; want a p99", smp.Variant, smp.Error, smp.Result)
			continue
		}
		for _, n := range smp.Result.Notes {
			if strings.Contains(n, "not applied") {
				t.Errorf("%s: %s", smp.Variant, n)
			}
		}
	}
}
