package bench

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// fixedReport runs the fake scenario and a skipped one and stamps the
// report with fixed metadata, so its Markdown is deterministic.
func fixedReport(t *testing.T) *Report {
	t.Helper()
	skipped := newFake()
	skipped.info.Name = "needs-varnish"
	skipped.info.Description = "Cache HIT against Varnish."
	skipped.info.Targets = []Target{{Name: "HIT ≥ 0.7× Varnish", Ratio: "a/b", Min: 0.7}}
	skipped.setupErr = Skip("varnishd not installed")
	skipped.noTeardown = true

	r := &Runner{Rounds: 3, Warmup: 1, Duration: 2 * time.Second, Logger: discardLogger()}
	return &Report{
		Commit: "0123456789abcdef0123456789abcdef01234567+dirty",
		Date:   time.Date(2025, 11, 21, 10, 42, 5, 0, time.UTC),
		Machine: Machine{
			Hostname: "vm", CPUs: 2, GOMAXPROCS: 2, CPUModel: "AMD EPYC", MemoryBytes: 24 << 30,
			Kernel: "6.1.0", GoVersion: "go1.26.8", OS: "linux", Arch: "amd64", LoadAvg: "0.10 0.20 0.30",
		},
		Settings: r.Settings(),
		Args:     []string{"-rounds", "3"},
		Results:  r.Run(context.Background(), []Scenario{newFake(), skipped}),
	}
}

func TestWriteMarkdownGolden(t *testing.T) {
	rep := fixedReport(t)
	var b strings.Builder
	if err := rep.WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "report.md")
	if *update {
		if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("reading golden file (run go test -update once): %v", err)
	}
	if got := b.String(); got != string(want) {
		t.Errorf("markdown differs from %s (go test ./bench -run Golden -update to accept)\n--- got ---\n%s\n--- want ---\n%s", golden, got, want)
	}
}

func TestWriteFiles(t *testing.T) {
	rep := fixedReport(t)
	dir := filepath.Join(t.TempDir(), "results")
	md, js, err := rep.WriteFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	wantBase := filepath.Join(dir, "20251121T104205Z-0123456789ab-dirty")
	if md != wantBase+".md" || js != wantBase+".json" {
		t.Errorf("paths = %s, %s; want %s.{md,json}", md, js, wantBase)
	}
	raw, err := os.ReadFile(js)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatalf("decoding the json report: %v", err)
	}
	if back.Commit != rep.Commit || back.Machine != rep.Machine || back.Settings != rep.Settings {
		t.Errorf("json header = %s %+v %+v, want %s %+v %+v",
			back.Commit, back.Machine, back.Settings, rep.Commit, rep.Machine, rep.Settings)
	}
	if len(back.Results) != 2 {
		t.Fatalf("json has %d scenarios, want 2", len(back.Results))
	}
	fake := back.Results[0]
	if len(fake.Samples) != 8 || fake.Samples[0].Result == nil || fake.Samples[0].Result.Primary.Value != 999 {
		t.Errorf("json samples = %+v, want all 8 raw samples, warm-up included", fake.Samples)
	}
	if len(fake.Verdicts) != 3 || fake.Verdicts[0].Value == nil || *fake.Verdicts[0].Value != 4 {
		t.Errorf("json verdicts = %+v, want 3 with the a/b ratio 4 first", fake.Verdicts)
	}
	if cfg, ok := fake.Info.Config.(map[string]any); !ok || cfg["set"] != "in setup" {
		t.Errorf("json config = %#v, want the scenario config", fake.Info.Config)
	}
	if back.Results[1].Skipped != "varnishd not installed" {
		t.Errorf("skip reason = %q, want it kept", back.Results[1].Skipped)
	}
}

func TestFormatNumber(t *testing.T) {
	tests := []struct {
		in   float64
		want string
	}{
		{0, "0"}, {45123.7, "45124"}, {123.4, "123"}, {12.34, "12.3"}, {1.234, "1.23"},
		{0.1234, "0.123"}, {0.0001234, "0.000123"}, {-2.5, "-2.50"},
	}
	for _, tt := range tests {
		if got := formatNumber(tt.in); got != tt.want {
			t.Errorf("formatNumber(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestMachineParsing(t *testing.T) {
	cpuinfo := []byte("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu\n\nprocessor\t: 1\nmodel name\t: AMD EPYC 7B13\n")
	if got, want := cpuModel(cpuinfo), "AMD EPYC 7B13"; got != want {
		t.Errorf("cpuModel = %q, want %q", got, want)
	}
	meminfo := []byte("MemTotal:       24683660 kB\nMemFree:        23516884 kB\n")
	if got, want := memTotal(meminfo), int64(24683660*1024); got != want {
		t.Errorf("memTotal = %d, want %d", got, want)
	}
	if m := CollectMachine(); m.CPUs < 1 || m.GoVersion == "" {
		t.Errorf("CollectMachine() = %+v, want CPUs and Go version set", m)
	}
}

func TestGitCommit(t *testing.T) {
	if got := GitCommit(context.Background(), t.TempDir()); got != "unknown" {
		t.Errorf("GitCommit(outside a repo) = %q, want unknown", got)
	}
	got := GitCommit(context.Background(), ".")
	if got == "unknown" {
		t.Skip("not in a git work tree")
	}
	if sha := strings.TrimSuffix(got, "+dirty"); len(sha) != 40 {
		t.Errorf("GitCommit(.) = %q, want a 40-hex sha, maybe +dirty", got)
	}
}
