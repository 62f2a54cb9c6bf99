package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meridian-gis/meridian/bench"
)

// TestRunWritesReports runs http-floor with tiny runs through the command's
// whole path: flags, registry, runner, Markdown on stdout, .md and .json
// files.
func TestRunWritesReports(t *testing.T) {
	dir := t.TempDir()
	var stdout, stderr strings.Builder
	code := run(context.Background(), []string{
		"-scenarios", "http-floor", "-rounds", "2", "-warmup", "0", "-duration", "100ms",
		"-order", "shuffle", "-seed", "42", "-out", dir, "-quiet", "-strict",
	}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d, want 0; stderr:\n%s", code, stderr.String())
	}
	for _, want := range []string{"# Meridian bench", "## http-floor", "order shuffle (seed 42)", "| fasthttp | 2 |"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout.String())
		}
	}
	mds, _ := filepath.Glob(filepath.Join(dir, "*.md"))
	jss, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	if len(mds) != 1 || len(jss) != 1 {
		t.Fatalf("files %v %v, want one .md and one .json", mds, jss)
	}
	md, _ := os.ReadFile(mds[0])
	if string(md) != stdout.String() {
		t.Error("the .md file differs from stdout")
	}
	raw, _ := os.ReadFile(jss[0])
	var rep bench.Report
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Commit == "" || rep.Machine.CPUs == 0 || rep.Settings.Rounds != 2 || len(rep.Results) != 1 ||
		len(rep.Results[0].Samples) != 4 {
		t.Errorf("json report = commit %q, cpus %d, settings %+v, %d scenarios; want all filled and 4 samples",
			rep.Commit, rep.Machine.CPUs, rep.Settings, len(rep.Results))
	}
}

func TestRunFlags(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string // substring of stdout+stderr
	}{
		{"list", []string{"-list"}, 0, "http-floor"},
		{"unknown scenario", []string{"-scenarios", "nope"}, 2, `unknown scenario "nope"`},
		{"bad order", []string{"-order", "random"}, 2, `unknown order "random"`},
		{"bad rounds", []string{"-rounds", "0"}, 2, "-rounds must be ≥ 1"},
		{"bad flag", []string{"-fast"}, 2, "flag provided but not defined"},
		{"stray argument", []string{"http-floor"}, 2, "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr strings.Builder
			code := run(context.Background(), tt.args, &stdout, &stderr)
			out := stdout.String() + stderr.String()
			if code != tt.wantCode || !strings.Contains(out, tt.wantOut) {
				t.Errorf("run(%q) = %d with output %q; want %d and %q", tt.args, code, out, tt.wantCode, tt.wantOut)
			}
		})
	}
}
