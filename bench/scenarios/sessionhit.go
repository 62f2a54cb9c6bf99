package scenarios

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/meridian-gis/meridian/bench"
	"github.com/meridian-gis/meridian/bench/load"
	"github.com/meridian-gis/meridian/bench/tilebench"
)

// sessionHitConfig is the session-hit setup, recorded in the report.
type sessionHitConfig struct {
	// Concurrency of both loads.
	Concurrency int `json:"concurrency"`
	// TileURL is the edge-cache hit both variants request.
	TileURL      string             `json:"tile_url"`
	SetupSeconds map[string]float64 `json:"setup_seconds"`
}

// sessionHit measures issue 9's speed target: a tile served from the
// edge cache to a signed-in user of the web apps (the data token their
// session exchanges at POST /accounts-api/session/token) against the
// same tile for an API token made with `meridian token create`, through
// `meridian up`, in the same run: the session path must keep ≥ 0.95× the
// token path's rate.
type sessionHit struct {
	cfg          sessionHitConfig
	env          *bench.Env
	up           *tilebench.Tiles
	apiToken     string
	sessionToken string
}

func newSessionHit() bench.Scenario {
	return &sessionHit{cfg: sessionHitConfig{Concurrency: 8, SetupSeconds: map[string]float64{}}}
}

func (s *sessionHit) Info() bench.Info {
	return bench.Info{
		SetupTimeout: tilesSetupTimeout,
		Name:         "session-hit",
		Description: fmt.Sprintf("One admin-1 tile, an edge-cache hit through `meridian up`, from %d connections: with the data token a "+
			"signed-in session exchanges (the web apps' path) against an API token from `meridian token create`.", s.cfg.Concurrency),
		Variants: []string{"token-hit", "session-hit"},
		Targets:  []bench.Target{{Ratio: "session-hit/token-hit", Min: 0.95}},
		Config:   &s.cfg,
	}
}

func (s *sessionHit) Setup(ctx context.Context, env *bench.Env) (bench.Teardown, error) {
	s.env = env
	var stop cleanup
	teardown := func(ctx context.Context) error { return stop.run(ctx) }
	ts, err := setupTiles(ctx, env, []tilebench.Dataset{tilebench.Admin1()}, &stop)
	if err != nil {
		return teardown, err
	}
	for k, v := range ts.seconds {
		s.cfg.SetupSeconds[k] = v
	}
	s.apiToken = ts.token
	t0 := time.Now()
	if s.up, err = ts.m.StartUp(ctx, peerLifetime(env, 2)); err != nil {
		return teardown, err
	}
	stop.add(s.up.Stop)
	s.cfg.SetupSeconds["start"] = time.Since(t0).Round(10 * time.Millisecond).Seconds()
	if s.sessionToken, err = s.signIn(ctx); err != nil {
		return teardown, err
	}
	// The tile, named by the source's TileJSON as a client finds it.
	auth := http.Header{"Authorization": {"Bearer " + s.apiToken}}
	var inst struct {
		TileJSON struct {
			URL []string `json:"url"`
		} `json:"tilejson"`
	}
	q := url.Values{"name": {"public.admin1"}, "columns": {"name,admin"}, "formatTiles": {"mvt"}}
	if err := getJSON(ctx, s.up.URL+"/api/v3/maps/"+tilesConn+"/table?"+q.Encode(), auth, &inst); err != nil {
		return teardown, err
	}
	if len(inst.TileJSON.URL) == 0 {
		return teardown, errors.New("session-hit: the instantiation names no TileJSON")
	}
	var tj struct {
		Tiles []string `json:"tiles"`
	}
	if err := getJSON(ctx, inst.TileJSON.URL[0], auth, &tj); err != nil {
		return teardown, err
	}
	if len(tj.Tiles) == 0 {
		return teardown, errors.New("session-hit: the TileJSON has no tiles")
	}
	s.cfg.TileURL = strings.NewReplacer("{z}", "2", "{x}", "1", "{y}", "1").Replace(tj.Tiles[0])
	for _, tok := range []string{s.apiToken, s.sessionToken} {
		if err := warmUntilHit(ctx, s.cfg.TileURL, http.Header{"Authorization": {"Bearer " + tok}}); err != nil {
			return teardown, err
		}
	}
	return teardown, nil
}

// signIn signs up the first account (the admin) and exchanges its
// session for a data token, as the web apps do.
func (s *sessionHit) signIn(ctx context.Context) (string, error) {
	call := accountCaller(ctx, s.up.URL, &cookieJar{})
	if err := call("POST", "/accounts-api/signup", map[string]string{"email": "bench@example.test", "password": "a long bench password", "name": "Bench"}, nil); err != nil {
		return "", err
	}
	var t struct {
		Token string `json:"token"`
	}
	if err := call("POST", "/accounts-api/session/token", nil, &t); err != nil {
		return "", err
	}
	if t.Token == "" {
		return "", errors.New("session-hit: the session exchange gave no token")
	}
	return t.Token, nil
}

func (s *sessionHit) Run(ctx context.Context, variant string) (bench.Result, error) {
	tok := s.apiToken
	switch variant {
	case "token-hit":
	case "session-hit":
		tok = s.sessionToken
	default:
		return bench.Result{}, errors.New("unknown variant " + variant)
	}
	r, err := load.HTTP{URLs: []string{s.cfg.TileURL}, Header: http.Header{"Authorization": {"Bearer " + tok}},
		Concurrency: s.cfg.Concurrency, Duration: s.env.Duration}.Run(ctx)
	if err != nil {
		return bench.Result{}, err
	}
	return fromLoad(r)
}
