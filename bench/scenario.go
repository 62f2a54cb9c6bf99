// Package bench is Meridian's end-to-end performance harness. Every
// performance target of the project is a scenario here: a side-by-side
// measurement of two or more variants (Meridian against a peer such as
// pg_tileserv, Varnish or ogr2ogr, or against a raw limit such as a bare
// fasthttp handler), run in one process invocation with the variants
// interleaved round by round, so that the drift of a small shared machine
// hits every variant alike. The report gives, per variant and metric, the
// median of the rounds with its spread, the ratios of medians, and a
// PASS/FAIL verdict for each declared target.
//
// A scenario implements Scenario and is registered by name in a Registry
// (see bench/scenarios); the Runner runs the named ones and returns a Report
// that renders as Markdown and JSON. Load generators and process helpers
// live in bench/load and bench/proc.
package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"
)

// Scenario is one side-by-side measurement. The Runner calls Info, then
// Setup once, then Run once per variant and round in an interleaved order,
// then the teardown returned by Setup. A Scenario value is used for one
// invocation only; the Registry builds a fresh one each time.
type Scenario interface {
	// Info describes the scenario. It is called before Setup (for listing
	// and validation) and again after Setup, so Config may record what
	// Setup found (tool versions, ports, data sizes).
	Info() Info
	// Setup starts whatever the variants need (servers, peers, data) and
	// returns the function that stops it. Returning an error made by Skip
	// marks the scenario skipped (a missing tool, say) instead of failed.
	Setup(ctx context.Context, env *Env) (Teardown, error)
	// Run measures one variant once, bounded by env.Duration (and by ctx,
	// which the Runner cancels after a generous timeout). Returning an
	// error made by Skip marks this run of the variant skipped (its peer
	// or module is missing here) instead of failed: skipped runs stay out
	// of the statistics, and targets on a variant that skipped every run
	// are SKIP.
	Run(ctx context.Context, variant string) (Result, error)
}

// Teardown stops what Setup started. The Runner calls it once, even when a
// Run failed, an interrupt stopped the rounds, or Setup itself returned an
// error (a skip included) along with a non-nil Teardown, with a context
// bounded by a timeout.
type Teardown func(ctx context.Context) error

// Info describes a scenario.
type Info struct {
	// Name is the registry key: lowercase words joined by '-' ("http-floor").
	Name string `json:"name"`
	// Description is one line saying what is compared, shown in the report.
	Description string `json:"description"`
	// Variants lists the variants in declaration order. The first one is
	// the baseline of the "vs" column of the report.
	Variants []string `json:"variants"`
	// Targets are the verdicts this scenario owes. None means informational.
	Targets []Target `json:"targets,omitempty"`
	// Config is the scenario's settings, recorded as-is in the JSON report.
	// It must marshal with encoding/json. Optional.
	Config any `json:"config,omitempty"`
	// RunTimeout is how long one Run of this scenario may take when that
	// is longer than the Runner's (work of a fixed size, such as
	// importing a 1 GiB file). Zero: the Runner's.
	RunTimeout time.Duration `json:"run_timeout,omitempty"`
	// SetupTimeout is how long Setup may take when that is longer than
	// the Runner's (loading a large dataset). Zero: the Runner's.
	SetupTimeout time.Duration `json:"setup_timeout,omitempty"`
}

// validate checks the names and that every target refers to a declared
// variant.
func (in Info) validate() error {
	var errs []error
	if in.Name == "" || strings.ContainsAny(in.Name, " ,/") {
		errs = append(errs, fmt.Errorf("bad scenario name %q", in.Name))
	}
	if len(in.Variants) == 0 {
		errs = append(errs, fmt.Errorf("scenario %s: no variants", in.Name))
	}
	seen := make(map[string]bool, len(in.Variants))
	for _, v := range in.Variants {
		if v == "" || strings.Contains(v, "/") {
			errs = append(errs, fmt.Errorf("scenario %s: bad variant name %q", in.Name, v))
		}
		if seen[v] {
			errs = append(errs, fmt.Errorf("scenario %s: duplicate variant %q", in.Name, v))
		}
		seen[v] = true
	}
	for _, t := range in.Targets {
		if err := t.validate(seen); err != nil {
			errs = append(errs, fmt.Errorf("scenario %s: %w", in.Name, err))
		}
	}
	return errors.Join(errs...)
}

// Env is what the Runner hands to Setup: the run settings every scenario
// honours.
type Env struct {
	// Duration bounds one Run of one variant (the load phase, not the
	// setup). Scenarios that measure a fixed amount of work (an import)
	// may ignore it.
	Duration time.Duration
	// Rounds is the number of measured rounds (warm-up rounds excluded).
	Rounds int
	// TempDir is a scratch directory owned by this scenario, removed by the
	// Runner after the teardown.
	TempDir string
	// Logger receives progress and diagnostics; never nil.
	Logger *slog.Logger
}

// Direction says which way a metric is better.
type Direction string

// Directions of a metric.
const (
	HigherIsBetter Direction = "higher"
	LowerIsBetter  Direction = "lower"
)

// Metric is one measured value with its unit and direction.
type Metric struct {
	// Name identifies the metric within its scenario ("throughput", "p99").
	Name string `json:"name"`
	// Unit is shown next to the value ("req/s", "ms", "MB/s").
	Unit string `json:"unit"`
	// Better says whether higher or lower values are better.
	Better Direction `json:"better"`
	// Value is the measurement.
	Value float64 `json:"value"`
}

// Result is what one Run measured.
type Result struct {
	// Primary is the metric the scenario is about: ratios and the "vs"
	// column use it, and targets without a Metric refer to it.
	Primary Metric `json:"primary"`
	// Secondary metrics (latency percentiles, bytes, RSS, allocations).
	Secondary []Metric `json:"secondary,omitempty"`
	// Notes are free-form remarks (errors seen, non-2xx counts, versions).
	Notes []string `json:"notes,omitempty"`
}

// metrics returns the primary metric followed by the secondary ones.
func (r Result) metrics() []Metric {
	return append([]Metric{r.Primary}, r.Secondary...)
}

// SkipError marks a scenario (returned by Setup) or one run of a variant
// (returned by Run) that cannot run here: a peer or tool is not installed.
// The report lists it as skipped with the reason.
type SkipError struct {
	// Reason is shown in the report.
	Reason string
}

func (e *SkipError) Error() string { return "skipped: " + e.Reason }

// Skip returns the error Setup returns to skip its scenario, or Run
// returns to skip one run of a variant.
func Skip(format string, args ...any) error {
	return &SkipError{Reason: fmt.Sprintf(format, args...)}
}

// Registry maps scenario names to constructors. It has no global instance:
// the main builds one and registers the scenarios it ships.
type Registry struct {
	news  map[string]func() Scenario
	names []string
}

// NewRegistry returns an empty Registry.
func NewRegistry() *Registry {
	return &Registry{news: make(map[string]func() Scenario)}
}

// Register adds the scenario built by newFn under the name its Info gives.
// It fails on an invalid Info or a duplicate name.
func (r *Registry) Register(newFn func() Scenario) error {
	info := newFn().Info()
	if err := info.validate(); err != nil {
		return fmt.Errorf("registering scenario: %w", err)
	}
	if _, dup := r.news[info.Name]; dup {
		return fmt.Errorf("registering scenario: duplicate name %q", info.Name)
	}
	r.news[info.Name] = newFn
	r.names = append(r.names, info.Name)
	return nil
}

// Names returns the registered names in registration order.
func (r *Registry) Names() []string {
	return append([]string(nil), r.names...)
}

// Infos returns the Info of every registered scenario, in registration
// order.
func (r *Registry) Infos() []Info {
	out := make([]Info, 0, len(r.names))
	for _, n := range r.names {
		out = append(out, r.news[n]().Info())
	}
	return out
}

// Select returns fresh scenarios for a list of names; "all" (alone or in
// the list) selects every registered scenario in registration order.
// Unknown names are an error that lists the known ones.
func (r *Registry) Select(names []string) ([]Scenario, error) {
	for _, n := range names {
		if strings.TrimSpace(n) == "all" {
			names = r.names
			break
		}
	}
	var out []Scenario
	seen := make(map[string]bool)
	for _, n := range names {
		n = strings.TrimSpace(n)
		if n == "" || seen[n] {
			continue
		}
		newFn := r.news[n]
		if newFn == nil {
			known := r.Names()
			sort.Strings(known)
			return nil, fmt.Errorf("unknown scenario %q (known: %s)", n, strings.Join(known, ", "))
		}
		seen[n] = true
		out = append(out, newFn())
	}
	if len(out) == 0 {
		return nil, errors.New("no scenario selected")
	}
	return out, nil
}
