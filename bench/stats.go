package bench

import (
	"math"
	"slices"
	"strings"
)

// Summary describes the samples of one metric of one variant.
type Summary struct {
	N      int     `json:"n"`
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	// Q1 and Q3 are the quartiles (linear interpolation between closest
	// ranks); Q3-Q1 is the interquartile range.
	Q1   float64 `json:"q1"`
	Q3   float64 `json:"q3"`
	Mean float64 `json:"mean"`
}

// Summarize returns the summary of xs (which it does not modify). The zero
// Summary is returned for no samples.
func Summarize(xs []float64) Summary {
	if len(xs) == 0 {
		return Summary{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	var sum float64
	for _, x := range s {
		sum += x
	}
	return Summary{
		N:      len(s),
		Median: quantileSorted(s, 0.5),
		Min:    s[0],
		Max:    s[len(s)-1],
		Q1:     quantileSorted(s, 0.25),
		Q3:     quantileSorted(s, 0.75),
		Mean:   sum / float64(len(s)),
	}
}

// Median returns the median of xs (the mean of the two middle values for
// an even count), or NaN for no samples.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return quantileSorted(s, 0.5)
}

// quantileSorted returns the q-quantile of sorted s by linear
// interpolation between closest ranks (R type 7, as numpy's default).
func quantileSorted(s []float64, q float64) float64 {
	if len(s) == 1 {
		return s[0]
	}
	pos := q * float64(len(s)-1)
	lo := int(math.Floor(pos))
	hi := int(math.Ceil(pos))
	frac := pos - float64(lo)
	return s[lo] + (s[hi]-s[lo])*frac
}

// VariantStats holds the summaries of every metric of one variant.
type VariantStats struct {
	Variant string `json:"variant"`
	// Runs is the number of measured runs; Errors of them failed.
	// Skipped runs are not counted in either.
	Runs   int `json:"runs"`
	Errors int `json:"errors"`
	// Skipped counts the measured runs that skipped (Sample.Skipped);
	// SkipReason is the reason of the first of them.
	Skipped    int           `json:"skipped,omitempty"`
	SkipReason string        `json:"skip_reason,omitempty"`
	Metrics    []MetricStats `json:"metrics"`
}

// onlySkipped reports whether every measured run of the variant skipped
// (and there was at least one).
func (vs VariantStats) onlySkipped() bool { return vs.Skipped > 0 && vs.Runs == 0 }

// MetricStats is the summary of one metric over the measured rounds.
type MetricStats struct {
	Name    string    `json:"name"`
	Unit    string    `json:"unit"`
	Better  Direction `json:"better"`
	Primary bool      `json:"primary,omitempty"`
	Summary
}

// Ratio is the ratio of two variants' medians for one metric.
type Ratio struct {
	// Name is "a/b".
	Name   string  `json:"name"`
	Metric string  `json:"metric"`
	Value  float64 `json:"value"`
}

// computeStats groups the successful measured samples by variant and
// metric, keeping the declared variant order and the metric order of the
// first sample. Skipped samples are counted apart and left out.
func computeStats(variants []string, samples []Sample) []VariantStats {
	out := make([]VariantStats, 0, len(variants))
	for _, variant := range variants {
		vs := VariantStats{Variant: variant}
		values := map[string][]float64{}
		var order []Metric
		primary := ""
		for _, s := range samples {
			if s.Variant != variant || s.Warmup {
				continue
			}
			if s.Skipped != "" {
				if vs.Skipped == 0 {
					vs.SkipReason = s.Skipped
				}
				vs.Skipped++
				continue
			}
			vs.Runs++
			if s.Error != "" || s.Result == nil {
				vs.Errors++
				continue
			}
			if primary == "" {
				primary = s.Result.Primary.Name
			}
			for _, m := range s.Result.metrics() {
				if _, ok := values[m.Name]; !ok {
					order = append(order, m)
				}
				values[m.Name] = append(values[m.Name], m.Value)
			}
		}
		for _, m := range order {
			vs.Metrics = append(vs.Metrics, MetricStats{
				Name: m.Name, Unit: m.Unit, Better: m.Better,
				Primary: m.Name == primary,
				Summary: Summarize(values[m.Name]),
			})
		}
		out = append(out, vs)
	}
	return out
}

// primaryOf returns the primary metric stats of a variant, if any.
func (vs VariantStats) primaryOf() (MetricStats, bool) {
	for _, m := range vs.Metrics {
		if m.Primary {
			return m, true
		}
	}
	return MetricStats{}, false
}

// computeRatios returns, for the primary metric, each variant's median over
// the baseline's (the first variant), followed by the target ratios that
// are not already listed.
func computeRatios(stats []VariantStats, targets []Target) []Ratio {
	if len(stats) == 0 {
		return nil
	}
	find := func(variant, metric string) (MetricStats, bool) {
		for _, vs := range stats {
			if vs.Variant != variant {
				continue
			}
			for _, m := range vs.Metrics {
				if m.Name == metric || (metric == "" && m.Primary) {
					return m, true
				}
			}
		}
		return MetricStats{}, false
	}
	var out []Ratio
	seen := map[string]bool{}
	add := func(a, b, metric string) {
		ma, okA := find(a, metric)
		mb, okB := find(b, metric)
		if !okA || !okB || mb.Median == 0 || seen[a+"/"+b+" "+ma.Name] {
			return
		}
		seen[a+"/"+b+" "+ma.Name] = true
		out = append(out, Ratio{Name: a + "/" + b, Metric: ma.Name, Value: ma.Median / mb.Median})
	}
	base := stats[0].Variant
	for _, vs := range stats[1:] {
		add(vs.Variant, base, "")
	}
	for _, t := range targets {
		if a, b, ok := strings.Cut(t.Ratio, "/"); ok {
			add(a, b, t.Metric)
		}
	}
	return out
}
