package scenarios

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/meridian-gis/meridian/bench"
	"github.com/meridian-gis/meridian/bench/peers"
)

// cacheTestsConfig is the cache-tests setup, recorded in the report.
type cacheTestsConfig struct {
	// Suite is the checkout of github.com/http-tests/cache-tests run (kept
	// outside the repository).
	Suite string `json:"suite"`
	// SuiteCommit is its git commit, when known.
	SuiteCommit string `json:"suite_commit,omitempty"`
	// Settings are the meridian_cache settings of the run: the defaults.
	Settings string `json:"settings"`
	// Peers are the published scores of other caches on the same suite
	// (cache-tests.fyi, required tests), for the report's reader.
	Peers map[string]int `json:"peers"`
}

// cacheTestsMirror is where the tool library's fetch puts the suite.
const cacheTestsMirror = "/work/.mirror/http-tests+cache-tests/repo"

// cacheTestsTarget is issue 12's bar: past every published cache.
const cacheTestsTarget = 150

// cacheTests runs the public HTTP caching suite (http-tests/cache-tests,
// the one behind cache-tests.fyi) against meridian_cache with its default
// settings, in front of the suite's own origin on loopback, through
// scripts/cachetests/run.sh, and reports the required tests passed. The
// score is a count, not a timing: one round is enough. Skipped when the
// suite or Node.js is not on this machine.
type cacheTests struct {
	cfg  cacheTestsConfig
	root string
	dir  string
	runs int
}

func newCacheTests() bench.Scenario {
	return &cacheTests{cfg: cacheTestsConfig{
		Settings: "meridian_cache defaults (no subdirective)",
		Peers: map[string]int{"Apache Traffic Server": 132, "Apache httpd": 131, "Squid": 122, "Souin": 121,
			"Varnish": 119, "nginx": 99},
	}}
}

func (s *cacheTests) Info() bench.Info {
	return bench.Info{
		Name: "cache-tests",
		Description: fmt.Sprintf("The public HTTP cache-tests suite (github.com/http-tests/cache-tests) against "+
			"meridian_cache with default settings in front of the suite's origin on loopback: required tests passed "+
			"(of 160; browser-only tests excluded, dependencies honoured, as cache-tests.fyi counts). Published "+
			"scores: Traffic Server 132, httpd 131, Squid 122, Souin 121, Varnish 119, nginx 99. Target ≥ %d.",
			cacheTestsTarget),
		Variants:   []string{"meridian-cache"},
		Targets:    []bench.Target{{Variant: "meridian-cache", Min: cacheTestsTarget}},
		Config:     s.cfg,
		RunTimeout: 15 * time.Minute,
	}
}

func (s *cacheTests) Setup(ctx context.Context, env *bench.Env) (bench.Teardown, error) {
	if _, err := exec.LookPath("node"); err != nil {
		return nil, bench.Skip("node is not installed (the suite runs on Node.js 18+)")
	}
	root, err := peers.ModuleRoot(".")
	if err != nil {
		return nil, err
	}
	s.root, s.dir = root, env.TempDir
	// A checkout of one's own (CACHE_TESTS_DIR) is recorded by its own
	// commit; the default one is what run.sh extracts from the mirror.
	suite := os.Getenv("CACHE_TESTS_DIR")
	gitDir := []string{"-C", suite}
	if suite == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			return nil, fmt.Errorf("locating the suite: %w", err)
		}
		suite = filepath.Join(cache, "meridian", "cache-tests")
		gitDir = []string{"--git-dir", cacheTestsMirror}
	}
	if _, err := os.Stat(filepath.Join(suite, "test-engine", "cli.mjs")); err != nil {
		if _, err := os.Stat(cacheTestsMirror); err != nil {
			return nil, bench.Skip("the cache-tests suite is not here: fetch github.com/http-tests/cache-tests "+
				"(to %s) or set CACHE_TESTS_DIR to a checkout", cacheTestsMirror)
		}
		gitDir = []string{"--git-dir", cacheTestsMirror}
	}
	s.cfg.Suite = suite
	if out, err := exec.CommandContext(ctx, "git", append(gitDir, "rev-parse", "HEAD")...).Output(); err == nil {
		s.cfg.SuiteCommit = strings.TrimSpace(string(out))
	}
	return nil, nil
}

// passedLine is count.mjs's summary line.
var passedLine = regexp.MustCompile(`(?m)^required passed: (\d+)/(\d+)$`)

func (s *cacheTests) Run(ctx context.Context, variant string) (bench.Result, error) {
	if variant != "meridian-cache" {
		return bench.Result{}, errors.New("unknown variant " + variant)
	}
	s.runs++
	results := filepath.Join(s.dir, "results-"+strconv.Itoa(s.runs)+".json")
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(s.root, "scripts", "cachetests", "run.sh"), "-o", results, s.cfg.Suite)
	cmd.Dir = s.root
	cmd.Env = append(os.Environ(), "CACHE_TESTS_EXTRA=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return bench.Result{}, fmt.Errorf("scripts/cachetests/run.sh: %w: %s", err, tailText(out, 1500))
	}
	m := passedLine.FindSubmatchIndex(out)
	if m == nil {
		return bench.Result{}, fmt.Errorf("scripts/cachetests/run.sh printed no score: %s", tailText(out, 1500))
	}
	passed, _ := strconv.Atoi(string(out[m[2]:m[3]]))
	required, _ := strconv.Atoi(string(out[m[4]:m[5]]))
	res := bench.Result{
		Primary:   bench.Metric{Name: "required passed", Unit: "tests", Better: bench.HigherIsBetter, Value: float64(passed)},
		Secondary: []bench.Metric{{Name: "required", Unit: "tests", Better: bench.HigherIsBetter, Value: float64(required)}},
	}
	// The failing tests, one note each, as count.mjs lists them.
	for _, line := range strings.Split(string(out[m[1]:]), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			res.Notes = append(res.Notes, "not passed: "+line)
		}
	}
	return res, nil
}
