package scenarios

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/meridian-gis/meridian/bench"
	"github.com/meridian-gis/meridian/bench/load"
)

// wrkVsLoadgenConfig is the wrk-vs-loadgen setup, recorded in the report.
type wrkVsLoadgenConfig struct {
	BodyBytes   int    `json:"body_bytes"`
	Threads     int    `json:"wrk_threads"`
	Connections int    `json:"connections"`
	Duration    string `json:"duration"`
	WrkPath     string `json:"wrk_path,omitempty"`
	WrkVersion  string `json:"wrk_version,omitempty"`
}

// wrkVsLoadgen measures one bare fasthttp server with wrk -t2 -c64 and with
// the in-process generator (fasthttp and net/http clients) at the same
// connection count, so that figures taken with either tool can be compared
// across reports. Skipped when wrk is not installed.
type wrkVsLoadgen struct {
	cfg      wrkVsLoadgenConfig
	duration time.Duration
	srv      *server
}

func newWrkVsLoadgen() bench.Scenario {
	return &wrkVsLoadgen{cfg: wrkVsLoadgenConfig{BodyBytes: objectSize, Threads: 2, Connections: 64}}
}

func (s *wrkVsLoadgen) Info() bench.Info {
	return bench.Info{
		Name: "wrk-vs-loadgen",
		Description: fmt.Sprintf("One bare fasthttp server (%d KiB body) measured by wrk -t%d -c%d --latency and by "+
			"the in-process generator at %d connections (fasthttp client, then net/http client), same duration "+
			"(whole seconds, wrk's resolution). Calibrates the two tools against each other; informational.",
			s.cfg.BodyBytes>>10, s.cfg.Threads, s.cfg.Connections, s.cfg.Connections),
		Variants: []string{"wrk", "loadgen", "loadgen-nethttp"},
		Config:   s.cfg,
	}
}

func (s *wrkVsLoadgen) Setup(ctx context.Context, env *bench.Env) (bench.Teardown, error) {
	path, err := load.LookWrk()
	if err != nil {
		return nil, bench.Skip("wrk is not installed (apt-get install wrk)")
	}
	s.cfg.WrkPath = path
	s.cfg.WrkVersion = load.WrkVersion(ctx, path)
	// wrk counts in whole seconds: give the in-process runs the same span.
	s.duration = time.Duration(math.Ceil(env.Duration.Seconds())) * time.Second
	s.cfg.Duration = s.duration.String()

	srv, err := startFastHTTP(object(s.cfg.BodyBytes))
	if err != nil {
		return nil, err
	}
	s.srv = srv
	return srv.Stop, nil
}

func (s *wrkVsLoadgen) Run(ctx context.Context, variant string) (bench.Result, error) {
	switch variant {
	case "wrk":
		res, err := load.Wrk{
			Path:        s.cfg.WrkPath,
			Threads:     s.cfg.Threads,
			Connections: s.cfg.Connections,
			Duration:    s.duration,
		}.Run(ctx, s.srv.URL)
		if err != nil {
			return bench.Result{}, err
		}
		return fromWrk(res)
	case "loadgen", "loadgen-nethttp":
		engine := load.FastHTTP
		if variant == "loadgen-nethttp" {
			engine = load.NetHTTP
		}
		res, err := load.HTTP{
			URLs:        []string{s.srv.URL},
			Concurrency: s.cfg.Connections,
			Duration:    s.duration,
			Engine:      engine,
		}.Run(ctx)
		if err != nil {
			return bench.Result{}, err
		}
		return fromLoad(res)
	}
	return bench.Result{}, errors.New("unknown variant " + variant)
}
