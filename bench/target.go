package bench

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Target is a verdict a scenario owes: a bound on a ratio of two variants'
// medians, or on one variant's median. A value passes when
// Min <= value < Max; a zero Min or Max means no bound on that side, so the
// issue wording maps directly: "≥ 3× pg_tileserv" is
// Target{Ratio: "meridian/pg_tileserv", Min: 3}, "p99 < 100 ms" is
// Target{Variant: "meridian", Metric: "p99", Max: 100} (in the metric's
// unit, here ms).
//
// Medians are taken over the measured rounds: for a percentile metric such
// as p99 that is the median of the per-run p99s.
type Target struct {
	// Name labels the target in the report. Default: generated from the
	// other fields ("meridian/pg_tileserv throughput ≥ 3").
	Name string `json:"name,omitempty"`
	// Ratio is "a/b": the target bounds median(a) / median(b). Exclusive
	// with Variant.
	Ratio string `json:"ratio,omitempty"`
	// Variant is the variant whose median the target bounds. Exclusive
	// with Ratio.
	Variant string `json:"variant,omitempty"`
	// Metric is the metric name. Default: the primary metric.
	Metric string `json:"metric,omitempty"`
	// Min is the inclusive lower bound. Zero: none.
	Min float64 `json:"min,omitempty"`
	// Max is the exclusive upper bound. Zero: none.
	Max float64 `json:"max,omitempty"`
}

// validate checks the target's shape against the declared variants.
func (t Target) validate(variants map[string]bool) error {
	if t.Min == 0 && t.Max == 0 {
		return fmt.Errorf("target %q: neither Min nor Max set", t.Label())
	}
	if t.Max != 0 && t.Min >= t.Max {
		return fmt.Errorf("target %q: Min %g not below Max %g", t.Label(), t.Min, t.Max)
	}
	switch {
	case t.Ratio != "" && t.Variant != "":
		return fmt.Errorf("target %q: both Ratio and Variant set", t.Label())
	case t.Ratio != "":
		a, b, ok := strings.Cut(t.Ratio, "/")
		if !ok || a == b {
			return fmt.Errorf("target %q: Ratio must be \"a/b\" with two variants", t.Label())
		}
		var errs []error
		for _, v := range []string{a, b} {
			if !variants[v] {
				errs = append(errs, fmt.Errorf("target %q: unknown variant %q", t.Label(), v))
			}
		}
		return errors.Join(errs...)
	case t.Variant != "":
		if !variants[t.Variant] {
			return fmt.Errorf("target %q: unknown variant %q", t.Label(), t.Variant)
		}
		return nil
	default:
		return fmt.Errorf("target %q: set Ratio or Variant", t.Label())
	}
}

// variants returns the variants t refers to.
func (t Target) variants() []string {
	if a, b, ok := strings.Cut(t.Ratio, "/"); ok {
		return []string{a, b}
	}
	return []string{t.Variant}
}

// Label is Name, or a description generated from the bounds.
func (t Target) Label() string { return t.label("primary") }

// label is Label with the name of the primary metric when known.
func (t Target) label(primary string) string {
	if t.Name != "" {
		return t.Name
	}
	subject := t.Ratio
	if subject == "" {
		subject = t.Variant
	}
	metric := t.Metric
	if metric == "" {
		metric = primary
	}
	var bounds []string
	if t.Min != 0 {
		bounds = append(bounds, "≥ "+strconv.FormatFloat(t.Min, 'g', -1, 64))
	}
	if t.Max != 0 {
		bounds = append(bounds, "< "+strconv.FormatFloat(t.Max, 'g', -1, 64))
	}
	return subject + " " + metric + " " + strings.Join(bounds, " and ")
}

// Status is the outcome of a target.
type Status string

// Statuses of a Verdict.
const (
	// Pass: the value is within the bounds.
	Pass Status = "PASS"
	// Fail: the value is out of bounds, or could not be computed because a
	// variant has no successful sample.
	Fail Status = "FAIL"
	// Skipped: the scenario did not run here, or a variant the target
	// refers to skipped every measured run (see the reason).
	Skipped Status = "SKIP"
)

// Verdict is a target checked against a scenario's statistics.
type Verdict struct {
	Target Target `json:"target"`
	// Label is Target.Label(), kept for readers of the JSON.
	Label string `json:"label"`
	// Value is the median (or ratio of medians) compared with the bounds;
	// absent when it could not be computed.
	Value *float64 `json:"value,omitempty"`
	// Unit is the metric's unit, or "×" for a ratio.
	Unit   string `json:"unit"`
	Status Status `json:"status"`
	// Reason explains a FAIL or SKIP that has no value.
	Reason string `json:"reason,omitempty"`
}

// evaluate computes the verdict of t from per-variant statistics. A target
// on a variant that skipped every measured run is SKIP (with the skip
// reason), whatever the other variant did.
func (t Target) evaluate(stats []VariantStats) Verdict {
	v := Verdict{Target: t, Label: t.Label(), Status: Fail}
	for _, name := range t.variants() {
		for _, vs := range stats {
			if vs.Variant == name && vs.onlySkipped() {
				v.Status, v.Reason = Skipped, name+" skipped: "+vs.SkipReason
				return v
			}
		}
	}
	// median finds a variant's summary of the target metric, and names the
	// label after the primary metric on the way.
	median := func(variant string) (Summary, string, error) {
		for _, vs := range stats {
			if vs.Variant != variant {
				continue
			}
			if len(vs.Metrics) == 0 {
				break
			}
			for _, ms := range vs.Metrics {
				if ms.Name == t.Metric || (t.Metric == "" && ms.Primary) {
					v.Label = t.label(ms.Name)
					return ms.Summary, ms.Unit, nil
				}
			}
			return Summary{}, "", fmt.Errorf("variant %s has no metric %q", variant, t.Metric)
		}
		return Summary{}, "", fmt.Errorf("no successful sample of variant %s", variant)
	}
	var value float64
	if t.Ratio != "" {
		a, b, _ := strings.Cut(t.Ratio, "/")
		sa, _, errA := median(a)
		sb, _, errB := median(b)
		if err := errors.Join(errA, errB); err != nil {
			v.Reason = err.Error()
			return v
		}
		if sb.Median == 0 {
			v.Reason = fmt.Sprintf("median of %s is zero", b)
			return v
		}
		value, v.Unit = sa.Median/sb.Median, "×"
	} else {
		s, unit, err := median(t.Variant)
		if err != nil {
			v.Reason = err.Error()
			return v
		}
		value, v.Unit = s.Median, unit
	}
	v.Value = &value
	if (t.Min == 0 || value >= t.Min) && (t.Max == 0 || value < t.Max) {
		v.Status = Pass
	}
	return v
}
