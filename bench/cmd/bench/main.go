// Command bench runs Meridian's benchmark scenarios and reports medians,
// ratios and target verdicts as Markdown (stdout and a file) and JSON.
//
//	go run ./bench/cmd/bench -scenarios all -rounds 5
//	go run ./bench/cmd/bench -scenarios http-floor -rounds 3 -duration 2s -out ''
//	go run ./bench/cmd/bench -list
//
// Exit status: 0 when the run completed (even with failed targets), 1 with
// -strict when a target failed or a scenario ended in error, 2 on bad
// flags.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/meridian-gis/meridian/bench"
	"github.com/meridian-gis/meridian/bench/scenarios"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is main without the process: flags in, report out, exit status back.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		names    = fs.String("scenarios", "all", "comma-separated scenario names, or all")
		rounds   = fs.Int("rounds", 5, "measured rounds per scenario")
		warmup   = fs.Int("warmup", 1, "warm-up rounds run first and left out of the statistics")
		duration = fs.Duration("duration", 3*time.Second, "duration of one run of one variant")
		order    = fs.String("order", string(bench.Rotate), "order of variants within a round: rotate or shuffle")
		seed     = fs.Uint64("seed", 1, "seed of the shuffle order")
		out      = fs.String("out", "bench/results", "directory for the .md and .json reports; empty: none")
		strict   = fs.Bool("strict", false, "exit 1 when a target fails or a scenario errors")
		list     = fs.Bool("list", false, "list the scenarios and exit")
		quiet    = fs.Bool("quiet", false, "log warnings and errors only")
		cpuProf  = fs.String("cpuprofile", "", "write a CPU profile of the whole run (servers and load generator in this process) to this file")
	)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "bench: unexpected arguments %q\n", fs.Args())
		return 2
	}
	level := slog.LevelInfo
	if *quiet {
		level = slog.LevelWarn
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	reg := bench.NewRegistry()
	if err := scenarios.Register(reg); err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 2
	}
	if *list {
		for _, info := range reg.Infos() {
			fmt.Fprintf(stdout, "%-24s %s\n", info.Name, strings.Join(info.Variants, ", "))
		}
		return 0
	}
	ord, err := bench.ParseOrder(*order)
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 2
	}
	if *rounds < 1 || *warmup < 0 || *duration <= 0 {
		fmt.Fprintln(stderr, "bench: -rounds must be ≥ 1, -warmup ≥ 0, -duration > 0")
		return 2
	}
	picked, err := reg.Select(strings.Split(*names, ","))
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 2
	}

	if *cpuProf != "" {
		stopProf, err := startCPUProfile(*cpuProf)
		if err != nil {
			fmt.Fprintf(stderr, "bench: %v\n", err)
			return 2
		}
		defer stopProf()
	}

	runner := &bench.Runner{
		Rounds: *rounds, Warmup: *warmup, Duration: *duration,
		Order: ord, Seed: *seed, Logger: log,
	}
	rep := &bench.Report{
		Commit:   bench.GitCommit(ctx, "."),
		Date:     time.Now().UTC(),
		Machine:  bench.CollectMachine(),
		Settings: runner.Settings(),
		Args:     args,
	}
	rep.Results = runner.Run(ctx, picked)

	if err := rep.WriteMarkdown(stdout); err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 1
	}
	if *out != "" {
		md, js, err := rep.WriteFiles(*out)
		if err != nil {
			fmt.Fprintf(stderr, "bench: %v\n", err)
			return 1
		}
		log.Info("report written", "markdown", md, "json", js)
	}
	if *strict && rep.Failed() {
		return 1
	}
	return 0
}

// startCPUProfile starts profiling into path and returns the function that
// stops it and closes the file.
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("creating cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting cpu profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
