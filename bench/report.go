package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Report is everything one bench invocation measured, as written to
// bench/results/<timestamp>-<commit>.json.
type Report struct {
	// Commit is `git rev-parse HEAD`, with "+dirty" when the tree has
	// uncommitted changes; "unknown" outside a work tree.
	Commit   string           `json:"commit"`
	Date     time.Time        `json:"date"`
	Machine  Machine          `json:"machine"`
	Settings Settings         `json:"settings"`
	Args     []string         `json:"args,omitempty"`
	Results  []ScenarioReport `json:"scenarios"`
}

// Settings are the Runner settings of a report.
type Settings struct {
	Rounds   int    `json:"rounds"`
	Warmup   int    `json:"warmup"`
	Duration string `json:"duration"`
	Order    Order  `json:"order"`
	Seed     uint64 `json:"seed"`
}

// ScenarioReport is the outcome of one scenario.
type ScenarioReport struct {
	Info Info `json:"info"`
	// Skipped is the skip reason, when Setup skipped the scenario.
	Skipped string `json:"skipped,omitempty"`
	// Error is a setup, teardown or interruption error.
	Error string `json:"error,omitempty"`
	// Samples are every run, warm-up included, in execution order.
	Samples  []Sample       `json:"samples"`
	Stats    []VariantStats `json:"stats"`
	Ratios   []Ratio        `json:"ratios,omitempty"`
	Verdicts []Verdict      `json:"verdicts,omitempty"`
}

// Failed reports whether any target failed or any scenario ended in error.
// Skipped scenarios do not count.
func (r *Report) Failed() bool {
	for _, s := range r.Results {
		if s.Error != "" {
			return true
		}
		for _, v := range s.Verdicts {
			if v.Status == Fail {
				return true
			}
		}
	}
	return false
}

// BaseName is the file name, without extension, of the report:
// "<UTC timestamp>-<short commit>".
func (r *Report) BaseName() string {
	commit := r.Commit
	dirty := strings.HasSuffix(commit, "+dirty")
	commit = strings.TrimSuffix(commit, "+dirty")
	if len(commit) > 12 {
		commit = commit[:12]
	}
	if dirty {
		commit += "-dirty"
	}
	return r.Date.UTC().Format("20060102T150405Z") + "-" + commit
}

// WriteFiles writes <dir>/<BaseName>.md and .json, creating dir, and
// returns the two paths.
func (r *Report) WriteFiles(dir string) (mdPath, jsonPath string, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", fmt.Errorf("creating results dir: %w", err)
	}
	base := filepath.Join(dir, r.BaseName())
	var md strings.Builder
	if err := r.WriteMarkdown(&md); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(base+".md", []byte(md.String()), 0o644); err != nil {
		return "", "", fmt.Errorf("writing markdown report: %w", err)
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", "", fmt.Errorf("encoding json report: %w", err)
	}
	if err := os.WriteFile(base+".json", append(js, '\n'), 0o644); err != nil {
		return "", "", fmt.Errorf("writing json report: %w", err)
	}
	return base + ".md", base + ".json", nil
}

// WriteMarkdown renders the report: a header with the commit, machine and
// settings, a table of every target's verdict, then one section per
// scenario with a row per variant (median of the primary metric, its
// min–max and IQR, the medians of the secondary metrics, the ratio to the
// baseline variant) and its notes.
func (r *Report) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# Meridian bench %s\n\n", r.Date.UTC().Format("2006-01-02 15:04:05Z"))
	fmt.Fprintf(&b, "- commit: `%s`\n", r.Commit)
	fmt.Fprintf(&b, "- machine: %s\n", r.Machine.String())
	s := r.Settings
	fmt.Fprintf(&b, "- run: %d rounds (+%d warm-up), %s per run, order %s (seed %d)",
		s.Rounds, s.Warmup, s.Duration, s.Order, s.Seed)
	if len(r.Args) > 0 {
		fmt.Fprintf(&b, ", args `%s`", strings.Join(r.Args, " "))
	}
	b.WriteString("\n\n")

	b.WriteString("## Targets\n\n")
	b.WriteString("| scenario | target | value | verdict |\n|---|---|---:|---|\n")
	n := 0
	for _, sr := range r.Results {
		for _, v := range sr.Verdicts {
			n++
			val := "–"
			if v.Value != nil {
				val = withUnit(*v.Value, v.Unit)
			}
			verdict := string(v.Status)
			if v.Reason != "" {
				verdict += " (" + escapeCell(v.Reason) + ")"
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", sr.Info.Name, escapeCell(v.Label), val, verdict)
		}
	}
	if n == 0 {
		b.WriteString("| – | no targets in the scenarios run | – | – |\n")
	}
	b.WriteString("\n")

	for _, sr := range r.Results {
		writeScenario(&b, sr)
	}
	_, err := io.WriteString(w, b.String())
	if err != nil {
		return fmt.Errorf("writing markdown report: %w", err)
	}
	return nil
}

// writeScenario renders one scenario section.
func writeScenario(b *strings.Builder, sr ScenarioReport) {
	fmt.Fprintf(b, "## %s\n\n", sr.Info.Name)
	if sr.Info.Description != "" {
		fmt.Fprintf(b, "%s\n\n", sr.Info.Description)
	}
	if sr.Skipped != "" {
		fmt.Fprintf(b, "Skipped: %s\n\n", sr.Skipped)
		return
	}
	if sr.Error != "" {
		fmt.Fprintf(b, "**Error:** %s\n\n", sr.Error)
	}

	// Columns: the primary metric, then every secondary metric in order of
	// first appearance across variants.
	var primary *MetricStats
	var secondary []MetricStats
	seen := map[string]bool{}
	for _, vs := range sr.Stats {
		for i, m := range vs.Metrics {
			if m.Primary {
				if primary == nil {
					primary = &vs.Metrics[i]
				}
				continue
			}
			if !seen[m.Name] {
				seen[m.Name] = true
				secondary = append(secondary, m)
			}
		}
	}
	if primary == nil {
		b.WriteString("No successful run.\n\n")
		writeNotes(b, sr)
		return
	}
	base := sr.Stats[0]
	basePrimary, baseOK := base.primaryOf()

	head := []string{"variant", "runs",
		fmt.Sprintf("%s %s %s", primary.Name, primary.Unit, arrow(primary.Better)),
		"min – max", "IQR"}
	for _, m := range secondary {
		head = append(head, fmt.Sprintf("%s %s %s", m.Name, m.Unit, arrow(m.Better)))
	}
	head = append(head, "vs "+base.Variant)
	b.WriteString("| " + strings.Join(head, " | ") + " |\n")
	b.WriteString("|---|---:|" + strings.Repeat("---:|", len(head)-2) + "\n")

	for _, vs := range sr.Stats {
		runs := runsCell(vs)
		row := []string{vs.Variant, runs}
		pm, ok := vs.primaryOf()
		if !ok {
			row = append(row, "–", "–", "–")
		} else {
			row = append(row,
				"**"+formatNumber(pm.Median)+"**",
				formatNumber(pm.Min)+" – "+formatNumber(pm.Max),
				formatNumber(pm.Q3-pm.Q1))
		}
		for _, col := range secondary {
			cell := "–"
			for _, m := range vs.Metrics {
				if m.Name == col.Name {
					cell = formatNumber(m.Median)
				}
			}
			row = append(row, cell)
		}
		switch {
		case !ok || !baseOK || basePrimary.Median == 0:
			row = append(row, "–")
		case vs.Variant == base.Variant:
			row = append(row, "1×")
		default:
			row = append(row, formatNumber(pm.Median/basePrimary.Median)+"×")
		}
		b.WriteString("| " + strings.Join(row, " | ") + " |\n")
	}
	b.WriteString("\n")

	var extra []string
	for _, rt := range sr.Ratios {
		if _, b, _ := strings.Cut(rt.Name, "/"); b == base.Variant && rt.Metric == primary.Name {
			continue // already in the "vs" column
		}
		extra = append(extra, fmt.Sprintf("%s %s = %s×", rt.Name, rt.Metric, formatNumber(rt.Value)))
	}
	if len(extra) > 0 {
		fmt.Fprintf(b, "Ratios of medians: %s.\n\n", strings.Join(extra, "; "))
	}
	writeNotes(b, sr)
}

// writeNotes lists the distinct notes, run errors and skip reasons of a
// scenario, with the variants and rounds they came from.
func writeNotes(b *strings.Builder, sr ScenarioReport) {
	var order []string
	notes := map[string][]string{} // note → where it was seen
	add := func(text, where string) {
		if _, ok := notes[text]; !ok {
			order = append(order, text)
		}
		notes[text] = append(notes[text], where)
	}
	for _, s := range sr.Samples {
		where := fmt.Sprintf("%s r%d", s.Variant, s.Round)
		if s.Error != "" {
			add("error: "+s.Error, where)
		}
		if s.Skipped != "" {
			add("skipped: "+s.Skipped, where)
		}
		if s.Result != nil {
			for _, n := range s.Result.Notes {
				add(n, where)
			}
		}
	}
	if len(order) == 0 {
		return
	}
	b.WriteString("Notes:\n")
	for _, text := range order {
		where := notes[text]
		if len(where) > 4 {
			where = append(where[:4:4], fmt.Sprintf("+%d more", len(where)-4))
		}
		fmt.Fprintf(b, "- %s (%s)\n", escapeCell(text), strings.Join(where, ", "))
	}
	b.WriteString("\n")
}

// runsCell is the "runs" cell of a variant: its successful measured runs,
// then how many failed or skipped ("2 (1 failed, 1 skipped)").
func runsCell(vs VariantStats) string {
	cell := fmt.Sprintf("%d", vs.Runs-vs.Errors)
	var extra []string
	if vs.Errors > 0 {
		extra = append(extra, fmt.Sprintf("%d failed", vs.Errors))
	}
	if vs.Skipped > 0 {
		extra = append(extra, fmt.Sprintf("%d skipped", vs.Skipped))
	}
	if len(extra) > 0 {
		cell += " (" + strings.Join(extra, ", ") + ")"
	}
	return cell
}

// withUnit formats a value with its unit ("4.00×", "80.0 ms").
func withUnit(v float64, unit string) string {
	if unit == "×" {
		return formatNumber(v) + unit
	}
	return formatNumber(v) + " " + unit
}

// arrow marks a metric's better direction in a column header.
func arrow(d Direction) string {
	if d == LowerIsBetter {
		return "↓"
	}
	return "↑"
}

// escapeCell keeps a value on one Markdown table line.
func escapeCell(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	return strings.ReplaceAll(s, "|", "\\|")
}

// formatNumber prints v with about three significant digits, without
// exponent for the magnitudes benchmarks produce.
func formatNumber(v float64) string {
	a := v
	if a < 0 {
		a = -a
	}
	switch {
	case a == 0:
		return "0"
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	case a >= 0.001:
		return fmt.Sprintf("%.3f", v)
	default:
		return fmt.Sprintf("%.3g", v)
	}
}
