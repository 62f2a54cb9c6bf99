package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime"
	"time"
)

// Order is how the variants are ordered within each round.
type Order string

// Orders of variants within a round.
const (
	// Rotate shifts the declared order by one each round (A B C, B C A,
	// C A B, …), so every variant runs in every position equally often
	// over a multiple of len(variants) rounds.
	Rotate Order = "rotate"
	// Shuffle draws a random order each round from the Runner's seed.
	Shuffle Order = "shuffle"
)

// ParseOrder checks an order name.
func ParseOrder(s string) (Order, error) {
	switch o := Order(s); o {
	case Rotate, Shuffle:
		return o, nil
	}
	return "", fmt.Errorf("unknown order %q (want %s or %s)", s, Rotate, Shuffle)
}

// Schedule returns, for each of rounds rounds, the order in which to run
// variants. The rng is used by Shuffle only.
func Schedule(variants []string, rounds int, order Order, rng *rand.Rand) [][]string {
	out := make([][]string, rounds)
	for r := range out {
		round := make([]string, len(variants))
		switch order {
		case Shuffle:
			copy(round, variants)
			rng.Shuffle(len(round), func(i, j int) { round[i], round[j] = round[j], round[i] })
		default:
			for i := range variants {
				round[i] = variants[(i+r)%len(variants)]
			}
		}
		out[r] = round
	}
	return out
}

// Runner runs scenarios with interleaved variants. The zero value is not
// usable; set at least Rounds and Duration.
type Runner struct {
	// Rounds is the number of measured rounds per scenario. Default: 5.
	Rounds int
	// Warmup is the number of rounds run first and left out of the
	// statistics (kept in the JSON, marked warmup). Default: 0.
	Warmup int
	// Duration bounds each Run (passed to scenarios as Env.Duration).
	// Default: 3s.
	Duration time.Duration
	// Order of the variants within a round. Default: Rotate.
	Order Order
	// Seed of the Shuffle order, recorded in the report. Default: 1.
	Seed uint64
	// RunTimeout cancels a Run that overruns. Default: 4×Duration + 30s.
	RunTimeout time.Duration
	// SetupTimeout bounds Setup and Teardown. Default: 2m.
	SetupTimeout time.Duration
	// Logger receives progress. Default: discard.
	Logger *slog.Logger
}

func (r *Runner) setDefaults() {
	if r.Rounds <= 0 {
		r.Rounds = 5
	}
	if r.Warmup < 0 {
		r.Warmup = 0
	}
	if r.Duration <= 0 {
		r.Duration = 3 * time.Second
	}
	if r.Order == "" {
		r.Order = Rotate
	}
	if r.Seed == 0 {
		r.Seed = 1
	}
	if r.RunTimeout <= 0 {
		r.RunTimeout = 4*r.Duration + 30*time.Second
	}
	if r.SetupTimeout <= 0 {
		r.SetupTimeout = 2 * time.Minute
	}
	if r.Logger == nil {
		r.Logger = slog.New(slog.DiscardHandler)
	}
}

// Settings returns the settings the Runner uses, defaults applied, as
// recorded in the report.
func (r *Runner) Settings() Settings {
	cfg := *r
	cfg.setDefaults()
	return Settings{
		Rounds: cfg.Rounds, Warmup: cfg.Warmup, Duration: cfg.Duration.String(),
		Order: cfg.Order, Seed: cfg.Seed,
	}
}

// Sample is one Run of one variant.
type Sample struct {
	// Round counts from 0 over warm-up and measured rounds alike.
	Round int `json:"round"`
	// Position is the variant's place in its round, from 0.
	Position int    `json:"position"`
	Variant  string `json:"variant"`
	// Warmup samples are left out of the statistics.
	Warmup  bool      `json:"warmup,omitempty"`
	Start   time.Time `json:"start"`
	Elapsed float64   `json:"elapsed_s"`
	Result  *Result   `json:"result,omitempty"`
	Error   string    `json:"error,omitempty"`
	// Skipped is the reason Run gave with a *SkipError: this variant
	// cannot run here (its peer or module is missing). A skipped sample is
	// neither a run nor an error: it is left out of the statistics, and a
	// target on a variant with only skipped samples is SKIP, not FAIL.
	Skipped string `json:"skipped,omitempty"`
}

// Run runs each scenario in turn and returns their reports, in order. A
// scenario that fails to set up is reported with its error and the others
// still run; a cancelled ctx stops the remaining runs.
func (r *Runner) Run(ctx context.Context, scenarios []Scenario) []ScenarioReport {
	cfg := *r
	cfg.setDefaults()
	rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))
	out := make([]ScenarioReport, 0, len(scenarios))
	for _, s := range scenarios {
		out = append(out, cfg.runOne(ctx, s, rng))
	}
	return out
}

// runOne sets a scenario up, runs its schedule and tears it down.
func (r *Runner) runOne(ctx context.Context, s Scenario, rng *rand.Rand) (rep ScenarioReport) {
	info := s.Info()
	rep.Info = info
	log := r.Logger.With("scenario", info.Name)
	defer func() { rep.finish() }()
	if err := info.validate(); err != nil {
		rep.Error = err.Error()
		return rep
	}
	if err := ctx.Err(); err != nil {
		rep.Error = fmt.Sprintf("not run: %v", err)
		return rep
	}

	tmp, err := os.MkdirTemp("", "meridian-bench-"+info.Name+"-")
	if err != nil {
		rep.Error = fmt.Sprintf("creating temp dir: %v", err)
		return rep
	}
	defer os.RemoveAll(tmp)
	env := &Env{Duration: r.Duration, Rounds: r.Rounds, TempDir: tmp, Logger: log}

	log.Info("setting up")
	setupCtx, cancel := context.WithTimeout(ctx, max(r.SetupTimeout, info.SetupTimeout))
	teardown, err := s.Setup(setupCtx, env)
	cancel()
	var skip *SkipError
	switch {
	case errors.As(err, &skip):
		log.Info("skipped", "reason", skip.Reason)
		rep.Skipped = skip.Reason
		if teardown != nil {
			_ = r.teardown(ctx, log, teardown) // logged; a skip stays a skip
		}
		return rep
	case err != nil:
		log.Error("setup failed", "err", err)
		rep.Error = fmt.Sprintf("setting up: %v", err)
		if teardown != nil {
			_ = r.teardown(ctx, log, teardown) // logged; the setup error is the one reported
		}
		return rep
	}
	defer func() {
		if teardown != nil {
			if err := r.teardown(ctx, log, teardown); err != nil && rep.Error == "" {
				rep.Error = fmt.Sprintf("tearing down: %v", err)
			}
		}
	}()
	rep.Info = s.Info() // Config may now reflect what Setup found.
	rep.Info.Targets = info.Targets
	rep.Info.Variants = info.Variants

	schedule := Schedule(info.Variants, r.Warmup+r.Rounds, r.Order, rng)
	for round, order := range schedule {
		for pos, variant := range order {
			if ctx.Err() != nil {
				rep.Error = fmt.Sprintf("interrupted: %v", ctx.Err())
				return rep
			}
			sample := r.runVariant(ctx, s, variant)
			sample.Round, sample.Position, sample.Warmup = round, pos, round < r.Warmup
			switch {
			case sample.Skipped != "":
				log.Info("run skipped", "round", round, "variant", variant, "reason", sample.Skipped)
			case sample.Error != "":
				log.Warn("run failed", "round", round, "variant", variant, "err", sample.Error)
			default:
				log.Info("run", "round", round, "variant", variant, "warmup", sample.Warmup,
					"value", sampleValue(sample))
			}
			rep.Samples = append(rep.Samples, sample)
		}
	}
	return rep
}

// runVariant runs one variant once under RunTimeout (or the scenario's
// own, when longer), after a GC so that
// the previous run's garbage is not charged to this one. A *SkipError from
// Run makes a skipped sample.
func (r *Runner) runVariant(ctx context.Context, s Scenario, variant string) Sample {
	runtime.GC()
	timeout := max(r.RunTimeout, s.Info().RunTimeout)
	runCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	res, err := s.Run(runCtx, variant)
	sample := Sample{Variant: variant, Start: start.UTC(), Elapsed: time.Since(start).Seconds()}
	var skip *SkipError
	switch {
	case errors.As(err, &skip):
		sample.Skipped = skip.Reason
		return sample
	case err != nil:
		sample.Error = err.Error()
		return sample
	}
	sample.Result = &res
	return sample
}

// teardown calls td with a bounded context that survives the cancellation
// of ctx (an interrupted run must still stop its servers).
func (r *Runner) teardown(ctx context.Context, log *slog.Logger, td Teardown) error {
	tdCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.SetupTimeout)
	defer cancel()
	if err := td(tdCtx); err != nil {
		log.Error("teardown failed", "err", err)
		return err
	}
	return nil
}

// sampleValue is the primary value of a sample for logs.
func sampleValue(s Sample) string {
	if s.Result == nil {
		return "-"
	}
	return formatNumber(s.Result.Primary.Value) + " " + s.Result.Primary.Unit
}

// finish computes the statistics, ratios and verdicts of a report.
func (rep *ScenarioReport) finish() {
	rep.Stats = computeStats(rep.Info.Variants, rep.Samples)
	rep.Ratios = computeRatios(rep.Stats, rep.Info.Targets)
	rep.Verdicts = rep.Verdicts[:0]
	for _, t := range rep.Info.Targets {
		v := t.evaluate(rep.Stats)
		switch {
		case rep.Skipped != "":
			v = Verdict{Target: t, Label: t.Label(), Status: Skipped, Reason: rep.Skipped}
		case rep.Error != "" && v.Status == Fail && v.Value == nil:
			v.Reason = rep.Error
		}
		rep.Verdicts = append(rep.Verdicts, v)
	}
}
