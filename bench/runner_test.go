package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
)

// fakeScenario returns scripted values, so the Runner's bookkeeping can be
// checked without timing anything.
type fakeScenario struct {
	info        Info
	values      map[string][]float64 // per variant, one per run in order
	setupErr    error
	runErr      map[string]error
	runSkip     map[string]string // variant → reason Run skips with
	teardownErr error
	noTeardown  bool

	calls   []string
	tempDir string
	runs    map[string]int
}

func (f *fakeScenario) Info() Info { return f.info }

func (f *fakeScenario) Setup(_ context.Context, env *Env) (Teardown, error) {
	f.calls = append(f.calls, "setup")
	f.tempDir = env.TempDir
	if _, err := os.Stat(env.TempDir); err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	f.runs = map[string]int{}
	f.info.Config = map[string]string{"set": "in setup"}
	if f.noTeardown {
		return nil, f.setupErr
	}
	return func(context.Context) error {
		f.calls = append(f.calls, "teardown")
		return f.teardownErr
	}, f.setupErr
}

func (f *fakeScenario) Run(_ context.Context, variant string) (Result, error) {
	f.calls = append(f.calls, variant)
	if err := f.runErr[variant]; err != nil {
		return Result{}, err
	}
	if reason := f.runSkip[variant]; reason != "" {
		return Result{}, fmt.Errorf("checking the peer: %w", Skip("%s", reason))
	}
	i := f.runs[variant]
	f.runs[variant]++
	v := f.values[variant][i]
	return Result{
		Primary:   Metric{Name: "throughput", Unit: "req/s", Better: HigherIsBetter, Value: v},
		Secondary: []Metric{{Name: "p99", Unit: "ms", Better: LowerIsBetter, Value: v / 10}},
		Notes:     []string{"note of " + variant},
	}, nil
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newFake() *fakeScenario {
	return &fakeScenario{
		info: Info{
			Name: "fake", Description: "a scripted scenario", Variants: []string{"a", "b"},
			Targets: []Target{
				{Ratio: "a/b", Min: 4},
				{Variant: "b", Min: 6},
				{Variant: "a", Metric: "p99", Max: 2.5},
			},
		},
		values: map[string][]float64{
			"a": {999, 10, 30, 20}, // the first is the warm-up
			"b": {1, 5, 4, 6},
		},
	}
}

func TestRunnerInterleavesAndSummarizes(t *testing.T) {
	f := newFake()
	r := &Runner{Rounds: 3, Warmup: 1, Logger: discardLogger()}
	reps := r.Run(context.Background(), []Scenario{f})
	if len(reps) != 1 {
		t.Fatalf("got %d reports, want 1", len(reps))
	}
	rep := reps[0]

	wantCalls := []string{"setup", "a", "b", "b", "a", "a", "b", "b", "a", "teardown"}
	if !slices.Equal(f.calls, wantCalls) {
		t.Errorf("calls = %v, want %v", f.calls, wantCalls)
	}
	if _, err := os.Stat(f.tempDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temp dir %s still there after the scenario (stat: %v)", f.tempDir, err)
	}
	if rep.Error != "" || rep.Skipped != "" {
		t.Errorf("error %q, skipped %q; want neither", rep.Error, rep.Skipped)
	}
	if got, want := fmt.Sprint(rep.Info.Config), "map[set:in setup]"; got != want {
		t.Errorf("config = %s, want %s (Info read again after Setup)", got, want)
	}

	var order []string
	for _, s := range rep.Samples {
		order = append(order, fmt.Sprintf("%d.%d:%s:%v", s.Round, s.Position, s.Variant, s.Warmup))
	}
	wantOrder := []string{"0.0:a:true", "0.1:b:true", "1.0:b:false", "1.1:a:false",
		"2.0:a:false", "2.1:b:false", "3.0:b:false", "3.1:a:false"}
	if !slices.Equal(order, wantOrder) {
		t.Errorf("samples = %v, want %v", order, wantOrder)
	}

	medians := map[string]float64{}
	for _, vs := range rep.Stats {
		pm, ok := vs.primaryOf()
		if !ok {
			t.Fatalf("variant %s has no primary stats", vs.Variant)
		}
		if pm.N != 3 || vs.Runs != 3 || vs.Errors != 0 {
			t.Errorf("variant %s: n=%d runs=%d errors=%d, want 3, 3, 0", vs.Variant, pm.N, vs.Runs, vs.Errors)
		}
		medians[vs.Variant] = pm.Median
	}
	if medians["a"] != 20 || medians["b"] != 5 {
		t.Errorf("medians = %v, want a=20 b=5 (warm-up left out)", medians)
	}

	wantRatios := []Ratio{
		{Name: "b/a", Metric: "throughput", Value: 0.25}, // vs the baseline
		{Name: "a/b", Metric: "throughput", Value: 4},    // the target's
	}
	if !slices.Equal(rep.Ratios, wantRatios) {
		t.Errorf("ratios = %+v, want %+v", rep.Ratios, wantRatios)
	}

	var verdicts []string
	for _, v := range rep.Verdicts {
		verdicts = append(verdicts, string(v.Status))
	}
	if want := []string{"PASS", "FAIL", "PASS"}; !slices.Equal(verdicts, want) {
		t.Errorf("verdicts = %v, want %v", verdicts, want)
	}
	full := &Report{Results: reps}
	if !full.Failed() {
		t.Error("Failed() = false with a failed target, want true")
	}
}

func TestRunnerSkipsAndFails(t *testing.T) {
	tests := []struct {
		name        string
		modify      func(*fakeScenario)
		ctx         func() context.Context
		wantCalls   []string
		wantSkipped string
		wantError   string // substring
		wantStatus  Status // of every verdict
		wantFailed  bool
	}{
		{
			name:        "skip",
			modify:      func(f *fakeScenario) { f.setupErr = Skip("no %s here", "varnish"); f.noTeardown = true },
			wantCalls:   []string{"setup"},
			wantSkipped: "no varnish here",
			wantStatus:  Skipped,
		},
		{
			name:        "skip with a teardown tears down",
			modify:      func(f *fakeScenario) { f.setupErr = Skip("half started") },
			wantCalls:   []string{"setup", "teardown"},
			wantSkipped: "half started",
			wantStatus:  Skipped,
		},
		{
			name:       "setup error still tears down",
			modify:     func(f *fakeScenario) { f.setupErr = errors.New("port taken") },
			wantCalls:  []string{"setup", "teardown"},
			wantError:  "setting up: port taken",
			wantStatus: Fail,
			wantFailed: true,
		},
		{
			name:       "teardown error",
			modify:     func(f *fakeScenario) { f.teardownErr = errors.New("stuck"); f.info.Targets = nil },
			wantCalls:  []string{"setup", "a", "b", "teardown"},
			wantError:  "tearing down: stuck",
			wantFailed: true,
		},
		{
			name:       "cancelled before start",
			ctx:        func() context.Context { ctx, cancel := context.WithCancel(context.Background()); cancel(); return ctx },
			wantCalls:  nil,
			wantError:  "not run",
			wantStatus: Fail,
			wantFailed: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake()
			if tt.modify != nil {
				tt.modify(f)
			}
			ctx := context.Background()
			if tt.ctx != nil {
				ctx = tt.ctx()
			}
			r := &Runner{Rounds: 1, Logger: discardLogger()}
			rep := r.Run(ctx, []Scenario{f})[0]
			if !slices.Equal(f.calls, tt.wantCalls) {
				t.Errorf("calls = %v, want %v", f.calls, tt.wantCalls)
			}
			if rep.Skipped != tt.wantSkipped {
				t.Errorf("skipped = %q, want %q", rep.Skipped, tt.wantSkipped)
			}
			if (tt.wantError == "") != (rep.Error == "") || !strings.Contains(rep.Error, tt.wantError) {
				t.Errorf("error = %q, want one containing %q", rep.Error, tt.wantError)
			}
			for _, v := range rep.Verdicts {
				if v.Status != tt.wantStatus {
					t.Errorf("verdict %q = %s, want %s", v.Label, v.Status, tt.wantStatus)
				}
			}
			if got := (&Report{Results: []ScenarioReport{rep}}).Failed(); got != tt.wantFailed {
				t.Errorf("Failed() = %v, want %v", got, tt.wantFailed)
			}
		})
	}
}

func TestRunnerCountsRunErrors(t *testing.T) {
	f := newFake()
	f.runErr = map[string]error{"b": errors.New("connection refused")}
	r := &Runner{Rounds: 2, Logger: discardLogger()}
	rep := r.Run(context.Background(), []Scenario{f})[0]
	b := rep.Stats[1]
	if b.Variant != "b" || b.Runs != 2 || b.Errors != 2 || len(b.Metrics) != 0 {
		t.Errorf("stats of b = %+v, want 2 runs, 2 errors, no metrics", b)
	}
	v := rep.Verdicts[0]
	if v.Status != Fail || !strings.Contains(v.Reason, "no successful sample of variant b") {
		t.Errorf("ratio verdict = %+v, want FAIL for want of b", v)
	}
	var md strings.Builder
	if err := (&Report{Results: []ScenarioReport{rep}}).WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md.String(), "error: connection refused (b r0, b r1)") {
		t.Errorf("markdown does not list the run errors:\n%s", md.String())
	}
}

func TestRegistry(t *testing.T) {
	reg := NewRegistry()
	newA := func() Scenario { return &fakeScenario{info: Info{Name: "a", Variants: []string{"x"}}} }
	newB := func() Scenario { return &fakeScenario{info: Info{Name: "b", Variants: []string{"x"}}} }
	newBad := func() Scenario { return &fakeScenario{info: Info{Name: "bad"}} }
	if err := reg.Register(newA); err != nil {
		t.Fatal(err)
	}
	if err := reg.Register(newB); err != nil {
		t.Fatal(err)
	}
	if err := reg.Register(newA); err == nil || !strings.Contains(err.Error(), "duplicate") {
		t.Errorf("second Register(a) = %v, want a duplicate error", err)
	}
	if err := reg.Register(newBad); err == nil {
		t.Error("Register(no variants) = nil, want an error")
	}

	names := func(ss []Scenario) []string {
		var out []string
		for _, s := range ss {
			out = append(out, s.Info().Name)
		}
		return out
	}
	tests := []struct {
		in      []string
		want    []string
		wantErr string
	}{
		{[]string{"all"}, []string{"a", "b"}, ""},
		{[]string{"b", "all"}, []string{"a", "b"}, ""},
		{[]string{"b", " a", "b"}, []string{"b", "a"}, ""},
		{[]string{"c"}, nil, `unknown scenario "c" (known: a, b)`},
		{[]string{""}, nil, "no scenario selected"},
	}
	for _, tt := range tests {
		got, err := reg.Select(tt.in)
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("Select(%q) error = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !slices.Equal(names(got), tt.want) {
			t.Errorf("Select(%q) = %v, %v; want %v", tt.in, names(got), err, tt.want)
		}
	}
	s1, _ := reg.Select([]string{"a"})
	s2, _ := reg.Select([]string{"a"})
	if s1[0] == s2[0] {
		t.Error("Select returned the same scenario value twice, want a fresh one per call")
	}
}

func TestRunnerSkipsAVariant(t *testing.T) {
	f := newFake()
	f.runSkip = map[string]string{"b": "nginx not installed"}
	r := &Runner{Rounds: 2, Warmup: 1, Logger: discardLogger()}
	rep := r.Run(context.Background(), []Scenario{f})[0]
	if rep.Error != "" || rep.Skipped != "" {
		t.Errorf("scenario error %q, skipped %q; want neither (only a variant skipped)", rep.Error, rep.Skipped)
	}
	for _, s := range rep.Samples {
		if want := map[string]string{"a": "", "b": "nginx not installed"}[s.Variant]; s.Skipped != want || s.Error != "" {
			t.Errorf("sample %s r%d: skipped %q, error %q; want skipped %q, no error", s.Variant, s.Round, s.Skipped, s.Error, want)
		}
	}
	b := rep.Stats[1]
	if b.Variant != "b" || b.Runs != 0 || b.Errors != 0 || b.Skipped != 2 || b.SkipReason != "nginx not installed" || len(b.Metrics) != 0 {
		t.Errorf("stats of b = %+v, want 0 runs, 0 errors, 2 skipped (warm-up left out) with the reason, no metrics", b)
	}
	if a := rep.Stats[0]; a.Runs != 2 || a.Skipped != 0 {
		t.Errorf("stats of a = %+v, want 2 runs, none skipped", a)
	}

	var got []string
	for _, v := range rep.Verdicts {
		got = append(got, string(v.Status)+" "+v.Reason)
	}
	want := []string{
		"SKIP b skipped: nginx not installed", // a/b
		"SKIP b skipped: nginx not installed", // b alone
		"PASS ",                               // a's p99: a ran
	}
	if !slices.Equal(got, want) {
		t.Errorf("verdicts = %q, want %q", got, want)
	}
	full := &Report{Results: []ScenarioReport{rep}}
	if full.Failed() {
		t.Error("Failed() = true with only skipped and passed targets, want false")
	}

	var md strings.Builder
	if err := full.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| fake | a/b primary ≥ 4 | – | SKIP (b skipped: nginx not installed) |",
		"| b | 0 (2 skipped) | – | – | – | – | – |",
		"- skipped: nginx not installed (b r0, b r1, b r2)",
	} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, md.String())
		}
	}
	if strings.Contains(md.String(), "error:") {
		t.Errorf("markdown reports a skip as an error:\n%s", md.String())
	}

	js, err := json.Marshal(full)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	if s := back.Results[0].Samples[1]; s.Variant != "b" || s.Skipped != "nginx not installed" {
		t.Errorf("json sample = %+v, want b skipped with the reason", s)
	}
	if vs := back.Results[0].Stats[1]; vs.Skipped != 2 || vs.SkipReason != "nginx not installed" {
		t.Errorf("json stats of b = %+v, want 2 skipped with the reason", vs)
	}
	if v := back.Results[0].Verdicts[0]; v.Status != Skipped {
		t.Errorf("json verdict = %+v, want SKIP", v)
	}
}
