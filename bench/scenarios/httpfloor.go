package scenarios

import (
	"context"
	"errors"
	"fmt"

	"github.com/meridian-gis/meridian/bench"
	"github.com/meridian-gis/meridian/bench/load"
)

// httpFloorConfig is the http-floor setup, recorded in the report.
type httpFloorConfig struct {
	BodyBytes   int         `json:"body_bytes"`
	Concurrency int         `json:"concurrency"`
	Client      load.Engine `json:"client"`
}

// httpFloor measures the in-process load generator against a bare net/http
// handler and a bare fasthttp handler serving the same 30 KiB object: the
// ceiling any Meridian HTTP path on this machine works under, and an end to
// end check of the harness. Informational: no target.
type httpFloor struct {
	cfg     httpFloorConfig
	env     *bench.Env
	servers map[string]*server
}

func newHTTPFloor() bench.Scenario {
	return &httpFloor{cfg: httpFloorConfig{BodyBytes: objectSize, Concurrency: 64, Client: load.FastHTTP}}
}

func (s *httpFloor) Info() bench.Info {
	return bench.Info{
		Name: "http-floor",
		Description: fmt.Sprintf("In-process load generator (%s client, %d keep-alive connections) against a bare "+
			"net/http handler and a bare fasthttp handler serving the same %d KiB body on 127.0.0.1, "+
			"client and server sharing the cores. The machine's HTTP ceiling; informational.",
			s.cfg.Client, s.cfg.Concurrency, s.cfg.BodyBytes>>10),
		Variants: []string{"nethttp", "fasthttp"},
		Config:   s.cfg,
	}
}

func (s *httpFloor) Setup(_ context.Context, env *bench.Env) (bench.Teardown, error) {
	s.env = env
	body := object(s.cfg.BodyBytes)
	nh, err := startNetHTTP(body)
	if err != nil {
		return nil, err
	}
	fh, err := startFastHTTP(body)
	if err != nil {
		return nil, errors.Join(err, nh.Stop(context.Background()))
	}
	s.servers = map[string]*server{"nethttp": nh, "fasthttp": fh}
	return func(ctx context.Context) error {
		return errors.Join(nh.Stop(ctx), fh.Stop(ctx))
	}, nil
}

func (s *httpFloor) Run(ctx context.Context, variant string) (bench.Result, error) {
	srv := s.servers[variant]
	if srv == nil {
		return bench.Result{}, fmt.Errorf("unknown variant %q", variant)
	}
	res, err := load.HTTP{
		URLs:        []string{srv.URL},
		Concurrency: s.cfg.Concurrency,
		Duration:    s.env.Duration,
		Engine:      s.cfg.Client,
	}.Run(ctx)
	if err != nil {
		return bench.Result{}, err
	}
	return fromLoad(res)
}
