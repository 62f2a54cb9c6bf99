package bench

import (
	"strings"
	"testing"
)

// statsOf builds per-variant stats with a primary "throughput" and a
// secondary "p99" from fixed medians.
func statsOf(medians map[string][2]float64, order ...string) []VariantStats {
	var out []VariantStats
	for _, v := range order {
		m := medians[v]
		out = append(out, VariantStats{Variant: v, Runs: 3, Metrics: []MetricStats{
			{Name: "throughput", Unit: "req/s", Better: HigherIsBetter, Primary: true, Summary: Summary{N: 3, Median: m[0]}},
			{Name: "p99", Unit: "ms", Better: LowerIsBetter, Summary: Summary{N: 3, Median: m[1]}},
		}})
	}
	return out
}

func TestTargetEvaluate(t *testing.T) {
	stats := statsOf(map[string][2]float64{
		"meridian":    {3000, 80},
		"pg_tileserv": {1000, 400},
		"zero":        {0, 0},
	}, "meridian", "pg_tileserv", "zero")

	tests := []struct {
		name       string
		target     Target
		wantStatus Status
		wantValue  float64 // checked when the verdict has a value
		wantUnit   string
		wantReason string // substring
	}{
		{"ratio at the bound passes", Target{Ratio: "meridian/pg_tileserv", Min: 3}, Pass, 3, "×", ""},
		{"ratio below the bound fails", Target{Ratio: "meridian/pg_tileserv", Min: 3.01}, Fail, 3, "×", ""},
		{"inverse ratio", Target{Ratio: "pg_tileserv/meridian", Max: 0.5}, Pass, 1.0 / 3, "×", ""},
		{"ratio on a secondary metric", Target{Ratio: "meridian/pg_tileserv", Metric: "p99", Max: 0.25}, Pass, 0.2, "×", ""},
		{"exclusive max on a ratio", Target{Ratio: "meridian/pg_tileserv", Metric: "p99", Max: 0.2}, Fail, 0.2, "×", ""},
		{"absolute max is exclusive", Target{Variant: "meridian", Metric: "p99", Max: 80}, Fail, 80, "ms", ""},
		{"absolute max passes below", Target{Variant: "meridian", Metric: "p99", Max: 100}, Pass, 80, "ms", ""},
		{"absolute min on primary", Target{Variant: "meridian", Min: 2000}, Pass, 3000, "req/s", ""},
		{"band", Target{Variant: "meridian", Min: 3500, Max: 4000}, Fail, 3000, "req/s", ""},
		{"missing variant", Target{Ratio: "meridian/varnish", Min: 1}, Fail, 0, "", "no successful sample of variant varnish"},
		{"missing metric", Target{Variant: "meridian", Metric: "rss", Max: 1}, Fail, 0, "", `no metric "rss"`},
		{"zero denominator", Target{Ratio: "meridian/zero", Min: 1}, Fail, 0, "", "median of zero is zero"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.target.evaluate(stats)
			if got.Status != tt.wantStatus {
				t.Errorf("status = %s, want %s (verdict %+v)", got.Status, tt.wantStatus, got)
			}
			if tt.wantReason != "" {
				if got.Value != nil || !strings.Contains(got.Reason, tt.wantReason) {
					t.Errorf("value %v, reason %q; want no value and a reason containing %q", got.Value, got.Reason, tt.wantReason)
				}
				return
			}
			if got.Value == nil {
				t.Fatalf("no value, reason %q", got.Reason)
			}
			if diff := *got.Value - tt.wantValue; diff > 1e-9 || diff < -1e-9 {
				t.Errorf("value = %v, want %v", *got.Value, tt.wantValue)
			}
			if got.Unit != tt.wantUnit {
				t.Errorf("unit = %q, want %q", got.Unit, tt.wantUnit)
			}
		})
	}
}

func TestTargetLabel(t *testing.T) {
	tests := []struct {
		in   Target
		want string
	}{
		{Target{Ratio: "meridian/pg_tileserv", Min: 3}, "meridian/pg_tileserv primary ≥ 3"},
		{Target{Variant: "meridian", Metric: "p99", Max: 100}, "meridian p99 < 100"},
		{Target{Variant: "m", Min: 0.5, Max: 2}, "m primary ≥ 0.5 and < 2"},
		{Target{Name: "purge < 1 ms", Variant: "m", Max: 1}, "purge < 1 ms"},
	}
	for _, tt := range tests {
		if got := tt.in.Label(); got != tt.want {
			t.Errorf("Label(%+v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestInfoValidate(t *testing.T) {
	base := func(targets ...Target) Info {
		return Info{Name: "s", Variants: []string{"a", "b"}, Targets: targets}
	}
	tests := []struct {
		name    string
		in      Info
		wantErr string // substring; "" for valid
	}{
		{"valid", base(Target{Ratio: "a/b", Min: 1}, Target{Variant: "a", Max: 5}), ""},
		{"no variants", Info{Name: "s"}, "no variants"},
		{"bad name", Info{Name: "a b", Variants: []string{"x"}}, "bad scenario name"},
		{"slash in variant", Info{Name: "s", Variants: []string{"net/http"}}, "bad variant name"},
		{"duplicate variant", Info{Name: "s", Variants: []string{"a", "a"}}, "duplicate variant"},
		{"no bound", base(Target{Ratio: "a/b"}), "neither Min nor Max"},
		{"min above max", base(Target{Variant: "a", Min: 5, Max: 5}), "not below Max"},
		{"unknown ratio variant", base(Target{Ratio: "a/c", Min: 1}), `unknown variant "c"`},
		{"ratio of one variant", base(Target{Ratio: "a/a", Min: 1}), "two variants"},
		{"ratio and variant", base(Target{Ratio: "a/b", Variant: "a", Min: 1}), "both Ratio and Variant"},
		{"no subject", base(Target{Min: 1}), "set Ratio or Variant"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.in.validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("validate() = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("validate() = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestTargetEvaluateSkippedVariants(t *testing.T) {
	stats := statsOf(map[string][2]float64{"meridian": {3000, 80}, "partly": {1000, 40}}, "meridian", "partly")
	stats[1].Skipped = 1 // partly skipped one run and ran three: evaluated on those
	stats = append(stats,
		VariantStats{Variant: "varnish", Skipped: 3, SkipReason: "varnishd not installed"},
		VariantStats{Variant: "broken", Runs: 2, Errors: 2, Skipped: 1, SkipReason: "later gone"},
	)
	tests := []struct {
		name       string
		target     Target
		wantStatus Status
		wantReason string
	}{
		{"ratio with a skipped numerator", Target{Ratio: "varnish/meridian", Min: 1}, Skipped, "varnish skipped: varnishd not installed"},
		{"ratio with a skipped denominator", Target{Ratio: "meridian/varnish", Min: 1}, Skipped, "varnish skipped: varnishd not installed"},
		{"absolute on a skipped variant", Target{Variant: "varnish", Metric: "p99", Max: 1}, Skipped, "varnishd not installed"},
		{"partly skipped is evaluated", Target{Ratio: "meridian/partly", Min: 3}, Pass, ""},
		{"failed runs beside a skip still fail", Target{Variant: "broken", Max: 1}, Fail, "no successful sample of variant broken"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.target.evaluate(stats)
			if got.Status != tt.wantStatus || !strings.Contains(got.Reason, tt.wantReason) {
				t.Errorf("verdict = %s %q, want %s with a reason containing %q", got.Status, got.Reason, tt.wantStatus, tt.wantReason)
			}
			if got.Status == Skipped && got.Value != nil {
				t.Errorf("SKIP verdict has a value %v, want none", *got.Value)
			}
		})
	}
}
