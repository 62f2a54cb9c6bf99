package scenarios

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/meridian-gis/meridian/bench"
	"github.com/meridian-gis/meridian/bench/load"
	"github.com/meridian-gis/meridian/bench/peers"
	"github.com/meridian-gis/meridian/bench/proc"
	"github.com/meridian-gis/meridian/bench/tilebench"
	"github.com/meridian-gis/meridian/control/lds/geocode"
	"github.com/meridian-gis/meridian/control/lds/routing"
	"github.com/meridian-gis/meridian/internal/secret"
)

// ldsConfig is the lds setup, recorded in the report.
type ldsConfig struct {
	// Concurrency of the geocode loads (the "concurrency 8").
	Concurrency int `json:"concurrency"`
	// RouteConcurrency of the route and isoline loads: one per core of
	// the 2-core machine, so that their p50 is the time of one route
	// (several hundred ms of CPU each), not a queue behind seven others.
	RouteConcurrency int `json:"route_concurrency"`
	// Gazetteer counts what `meridian lds load` built.
	Gazetteer map[string]int64 `json:"gazetteer"`
	// Addresses is how many distinct addresses the geocode loads turn
	// over, by kind.
	Addresses map[string]int `json:"addresses"`
	// Batch is the size of the batch variant's one request.
	Batch int `json:"batch"`
	// Routes and Isolines are the trips and origins the loads turn over.
	Routes   []string `json:"routes"`
	Isolines string   `json:"isolines"`
	// SetupSeconds times the setup steps.
	SetupSeconds map[string]float64 `json:"setup_seconds"`
}

// lds measures the Location Data Services (issue 11's speed targets)
// through `meridian up`'s edge against the same lookups run in the bench
// process straight on the data database through pgx (the geocoder's and
// router's own SQL, no HTTP, auth or quota: the floor): geocoding over
// the whole gazetteer (GeoNames places, postal codes of 117 countries,
// OSM addresses of the loaded extracts), Delaware routes, 3-range
// isolines, and one batch of 10,000 addresses.
type lds struct {
	cfg   ldsConfig
	env   *bench.Env
	up    *tilebench.Tiles
	token string
	pool  *pgxpool.Pool
	geo   *geocode.Geocoder
	rt    *routing.Router

	addrs   []ldsAddress
	routes  [][2]routing.Point
	origins []routing.Point
}

// ldsAddress is one geocoding request.
type ldsAddress struct {
	Address string `json:"address"`
	Country string `json:"country,omitempty"`
}

// Ranges of the isolines variants, seconds by car.
var ldsRanges = []float64{300, 600, 900}

func newLDS() bench.Scenario {
	return &lds{cfg: ldsConfig{Concurrency: 8, RouteConcurrency: 2, Batch: 10_000, Addresses: map[string]int{}, SetupSeconds: map[string]float64{}}}
}

func (s *lds) Info() bench.Info {
	return bench.Info{
		Name: "lds",
		Description: fmt.Sprintf("Location Data Services through `meridian up` (HTTP; %d connections for geocoding, %d for routes and isolines) against the same geocoder/router SQL "+
			"run straight through pgx in the bench process (the floor): geocode over the full gazetteer, routes across Delaware, "+
			"3-range car isolines; and one batch of %d addresses.", s.cfg.Concurrency, s.cfg.RouteConcurrency, s.cfg.Batch),
		Variants: []string{"geocode", "geocode-pgx", "route", "route-pgx", "isolines", "isolines-pgx", "batch"},
		Targets: []bench.Target{
			{Variant: "geocode", Metric: "p50", Max: 10},
			{Variant: "geocode", Metric: "p99", Max: 50},
			{Variant: "route", Metric: "p50", Max: 100},
			{Variant: "isolines", Metric: "p50", Max: 300},
			{Variant: "batch", Max: 20_000},
		},
		Config:       &s.cfg,
		RunTimeout:   3 * time.Minute,
		SetupTimeout: 25 * time.Minute,
	}
}

func (s *lds) Setup(ctx context.Context, env *bench.Env) (bench.Teardown, error) {
	s.env = env
	var stop cleanup
	teardown := func(ctx context.Context) error { return stop.run(ctx) }
	lap := func(step string, since time.Time) {
		s.cfg.SetupSeconds[step] = time.Since(since).Round(10 * time.Millisecond).Seconds()
	}
	root, err := peers.ModuleRoot(".")
	if err != nil {
		return teardown, err
	}
	dataDir, err := tilebench.DataDir(root)
	if errors.Is(err, tilebench.ErrNoData) {
		return teardown, bench.Skip("%v", err)
	}
	if err != nil {
		return teardown, err
	}
	t0 := time.Now()
	cluster, err := startScratchCluster(ctx, env, &stop)
	if err != nil {
		return teardown, err
	}
	admin := cluster.SuperuserURL("postgres")
	metaURL, err := tilebench.CreateDatabase(ctx, admin, "bench_meta")
	if err != nil {
		return teardown, err
	}
	dataURL, err := tilebench.CreateDatabase(ctx, admin, "bench_lds")
	if err != nil {
		return teardown, err
	}
	lap("cluster", t0)
	t0 = time.Now()
	edge, err := buildEdge(ctx, env)
	if err != nil {
		return teardown, err
	}
	lap("build", t0)
	home, err := openScratch(env, "meridian-home")
	if err != nil {
		return teardown, err
	}
	m := tilebench.Meridian{Bin: edge.Path, DatabaseURL: metaURL, SecretKey: secret.GenerateKey(), Dir: home,
		Env: []string{"MERIDIAN_LDS_DATABASE_URL=" + dataURL,
			// Quotas large enough for every round's calls.
			"MERIDIAN_LDS_GEOCODING_QUOTA=1000000000000", "MERIDIAN_LDS_ROUTING_QUOTA=1000000000000", "MERIDIAN_LDS_ISOLINES_QUOTA=1000000000000"}}

	// The whole gazetteer and every OSM extract, as `make run` loads it.
	t0 = time.Now()
	env.Logger.Info("lds: meridian lds load (GeoNames, postal codes, OSM extracts)", "data", dataDir)
	if _, err := m.CommandWithin(ctx, 20*time.Minute, "lds", "load", dataDir); err != nil {
		return teardown, err
	}
	lap("lds_load", t0)
	if _, err := m.Provision(ctx, "bench", dataURL); err != nil {
		return teardown, err
	}
	out, err := m.Command(ctx, "token", "create", "--grant", "bench:*", "--api", "lds", "--name", "lds-bench")
	if err != nil {
		return teardown, err
	}
	s.token = lastLineOf(out)

	pc, err := pgxpool.ParseConfig(dataURL)
	if err != nil {
		return teardown, err
	}
	pc.MaxConns = int32(s.cfg.Concurrency)
	pc.AfterConnect = geocode.AfterConnect
	if s.pool, err = pgxpool.NewWithConfig(ctx, pc); err != nil {
		return teardown, err
	}
	stop.add(func(context.Context) error { s.pool.Close(); return nil })
	s.geo, s.rt = geocode.New(s.pool), routing.New(s.pool)
	if err := s.sample(ctx); err != nil {
		return teardown, err
	}

	t0 = time.Now()
	if s.up, err = m.StartUp(ctx, peerLifetime(env, 7)); err != nil {
		return teardown, err
	}
	stop.add(s.up.Stop)
	lap("start", t0)
	// One call of each kind checks the token and warms the pools.
	for _, u := range []string{s.geocodeURL(0), s.routeURL(0), s.isolinesURL(0)} {
		status, body, _, err := s.up.Get(ctx, u, []string{"Authorization: Bearer " + s.token})
		if err != nil {
			return teardown, err
		}
		if status != http.StatusOK || bytes.Contains(body, []byte(`"error":"`)) {
			return teardown, fmt.Errorf("lds: GET %s: %d %s", u, status, tailText(body, 300))
		}
	}
	return teardown, nil
}

// sample picks the addresses, trips and origins from the loaded data:
// GeoNames places by name and country (a third of them misspelt by one
// dropped letter), places by "name, state", postal codes, and OSM
// addresses of Delaware as "number street, city"; deterministic.
func (s *lds) sample(ctx context.Context) error {
	queries := []struct {
		kind, sql string
	}{
		{"place", `SELECT CASE WHEN i % 3 = 0 AND length(name) > 5 THEN left(name, 2) || substr(name, 4) ELSE name END, country_code
			FROM (SELECT name, country_code, row_number() OVER (ORDER BY md5(name || id)) i FROM meridian_lds.places WHERE kind = 'city') x
			WHERE i <= 1000`},
		{"place-state", `SELECT p.name || ', ' || a.name, '' FROM meridian_lds.places p
			JOIN meridian_lds.areas a ON a.kind = 'state' AND a.country_code = p.country_code AND ST_Intersects(a.geom, p.geom)
			WHERE p.kind = 'city' AND p.country_code = 'US' ORDER BY md5(p.name) LIMIT 300`},
		{"postcode", `SELECT code || CASE WHEN place IS NOT NULL THEN ', ' || place ELSE '' END, country_code
			FROM meridian_lds.postcodes ORDER BY md5(code || country_code) LIMIT 400`},
		{"address", `SELECT housenumber || ' ' || street || coalesce(', ' || city, ''), country_code
			FROM meridian_lds.addresses ORDER BY md5(housenumber || street) LIMIT 300`},
	}
	for _, q := range queries {
		rows, err := s.pool.Query(ctx, q.sql)
		if err != nil {
			return fmt.Errorf("lds: sampling %s addresses: %w", q.kind, err)
		}
		n := 0
		for rows.Next() {
			var a ldsAddress
			if err := rows.Scan(&a.Address, &a.Country); err != nil {
				return err
			}
			s.addrs = append(s.addrs, a)
			n++
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("lds: sampling %s addresses: %w", q.kind, err)
		}
		s.cfg.Addresses[q.kind] = n
	}
	// Interleave the kinds so that every stretch of the load mixes them.
	for i := range s.addrs {
		j := (i * 7919) % len(s.addrs)
		s.addrs[i], s.addrs[j] = s.addrs[j], s.addrs[i]
	}
	s.cfg.Gazetteer = map[string]int64{}
	for _, t := range []string{"places", "place_names", "postcodes", "addresses", "streets", "edges"} {
		var n int64
		if err := s.pool.QueryRow(ctx, "SELECT count(*) FROM meridian_lds."+t).Scan(&n); err != nil {
			return err
		}
		s.cfg.Gazetteer[t] = n
	}
	towns := map[string]routing.Point{
		"Wilmington": {Lon: -75.5466, Lat: 39.7459}, "Dover": {Lon: -75.5244, Lat: 39.1582},
		"Newark": {Lon: -75.7497, Lat: 39.6837}, "Georgetown": {Lon: -75.3852, Lat: 38.6901},
		"Middletown": {Lon: -75.7163, Lat: 39.4496}, "Milford": {Lon: -75.4277, Lat: 38.9126},
		"Lewes": {Lon: -75.1393, Lat: 38.7746}, "Seaford": {Lon: -75.6105, Lat: 38.6412},
	}
	for _, trip := range [][2]string{{"Wilmington", "Dover"}, {"Newark", "Georgetown"}, {"Middletown", "Lewes"},
		{"Dover", "Seaford"}, {"Milford", "Wilmington"}, {"Seaford", "Newark"}} {
		s.routes = append(s.routes, [2]routing.Point{towns[trip[0]], towns[trip[1]]})
		s.cfg.Routes = append(s.cfg.Routes, trip[0]+"–"+trip[1])
	}
	for _, t := range []string{"Wilmington", "Dover", "Newark", "Georgetown", "Middletown", "Milford"} {
		s.origins = append(s.origins, towns[t])
	}
	s.cfg.Isolines = "car, 300/600/900 s, from 6 Delaware towns"
	return nil
}

func lonLat(p routing.Point) string { return fmt.Sprintf("%g,%g", p.Lon, p.Lat) }

func (s *lds) geocodeURL(i uint64) string {
	a := s.addrs[i%uint64(len(s.addrs))]
	q := url.Values{"address": {a.Address}}
	if a.Country != "" {
		q.Set("country", a.Country)
	}
	return "/api/v3/lds/geocoding/geocode?" + q.Encode()
}

func (s *lds) routeURL(i uint64) string {
	r := s.routes[i%uint64(len(s.routes))]
	return "/api/v3/lds/routing?mode=car&origin=" + lonLat(r[0]) + "&destination=" + lonLat(r[1])
}

func (s *lds) isolinesURL(i uint64) string {
	return "/api/v3/lds/isolines?mode=car&range=300,600,900&range_type=time&origin=" + lonLat(s.origins[i%uint64(len(s.origins))])
}

func (s *lds) Run(ctx context.Context, variant string) (bench.Result, error) {
	overHTTP := func(path func(uint64) string, concurrency int) (bench.Result, error) {
		r, err := load.HTTP{
			URL:         func(i uint64) string { return s.up.URL + path(i) },
			Header:      http.Header{"Authorization": {"Bearer " + s.token}},
			Concurrency: concurrency, Duration: s.env.Duration, Timeout: 30 * time.Second,
		}.Run(ctx)
		if err != nil {
			return bench.Result{}, err
		}
		return fromLoad(r)
	}
	switch variant {
	case "geocode":
		return overHTTP(s.geocodeURL, s.cfg.Concurrency)
	case "route":
		return overHTTP(s.routeURL, s.cfg.RouteConcurrency)
	case "isolines":
		return overHTTP(s.isolinesURL, s.cfg.RouteConcurrency)
	case "geocode-pgx":
		return s.direct(ctx, s.cfg.Concurrency, func(ctx context.Context, i uint64) error {
			a := s.addrs[i%uint64(len(s.addrs))]
			_, err := s.geo.Geocode(ctx, geocode.Query{Address: a.Address, Country: a.Country})
			return err
		})
	case "route-pgx":
		return s.direct(ctx, s.cfg.RouteConcurrency, func(ctx context.Context, i uint64) error {
			r := s.routes[i%uint64(len(s.routes))]
			_, err := s.rt.Route(ctx, r[0], r[1], nil, routing.Car)
			return err
		})
	case "isolines-pgx":
		return s.direct(ctx, s.cfg.RouteConcurrency, func(ctx context.Context, i uint64) error {
			_, err := s.rt.Isolines(ctx, s.origins[i%uint64(len(s.origins))], routing.Car, ldsRanges, routing.Time)
			return err
		})
	case "batch":
		return s.batch(ctx)
	}
	return bench.Result{}, errors.New("unknown variant " + variant)
}

// direct runs call from concurrency goroutines for the run's duration
// and reports it like fromLoad: throughput, p50, p99. An error other
// than an input error (an address the gazetteer rejects) fails the run.
func (s *lds) direct(ctx context.Context, concurrency int, call func(context.Context, uint64) error) (bench.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, s.env.Duration)
	defer cancel()
	var next atomic.Uint64
	var mu sync.Mutex
	hist := &load.Histogram{}
	var firstErr error
	start := time.Now()
	var wg sync.WaitGroup
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := &load.Histogram{}
			for ctx.Err() == nil {
				t0 := time.Now()
				err := call(ctx, next.Add(1)-1)
				if ctx.Err() != nil {
					break
				}
				if err != nil && !errors.Is(err, geocode.ErrAbsurdAddress) && !errors.Is(err, geocode.ErrUnknownCountry) {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					continue
				}
				h.Record(time.Since(t0))
			}
			mu.Lock()
			hist.Merge(h)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		return bench.Result{}, firstErr
	}
	if hist.Count() == 0 {
		return bench.Result{}, errors.New("no call completed")
	}
	return bench.Result{
		Primary: bench.Metric{Name: "throughput", Unit: unitReqPerSec, Better: bench.HigherIsBetter, Value: float64(hist.Count()) / elapsed.Seconds()},
		Secondary: []bench.Metric{
			latencyMetric("p50", hist.Quantile(0.50).Seconds()),
			latencyMetric("p99", hist.Quantile(0.99).Seconds()),
		},
	}, nil
}

// batch posts one batch of Batch addresses (the sample, repeated) and
// times it to the last byte of the streamed answer; it samples the
// server's resident memory meanwhile and checks every entry came back.
func (s *lds) batch(ctx context.Context) (bench.Result, error) {
	items := make([]ldsAddress, s.cfg.Batch)
	for i := range items {
		items[i] = s.addrs[i%len(s.addrs)]
	}
	body, err := json.Marshal(map[string]any{"addresses": items})
	if err != nil {
		return bench.Result{}, err
	}
	before, err := proc.ReadMem(s.up.PID())
	if err != nil {
		return bench.Result{}, err
	}
	peak := before.RSS
	done := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-done:
				return
			case <-time.After(50 * time.Millisecond):
				if m, err := proc.ReadMem(s.up.PID()); err == nil && m.RSS > peak {
					peak = m.RSS
				}
			}
		}
	}()
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.up.URL+"/api/v3/lds/geocoding/batch", bytes.NewReader(body))
	if err != nil {
		close(done)
		return bench.Result{}, err
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	var out []struct {
		Error *string `json:"error"`
	}
	if err == nil {
		err = json.NewDecoder(res.Body).Decode(&out)
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	took := time.Since(start)
	close(done)
	<-sampled
	if err != nil {
		return bench.Result{}, fmt.Errorf("lds batch: %w", err)
	}
	if res.StatusCode != http.StatusOK || len(out) != len(items) {
		return bench.Result{}, fmt.Errorf("lds batch: %d with %d entries for %d addresses", res.StatusCode, len(out), len(items))
	}
	failed := 0
	for _, e := range out {
		if e.Error != nil {
			failed++
		}
	}
	r := bench.Result{
		Primary: bench.Metric{Name: "batch time", Unit: unitMs, Better: bench.LowerIsBetter, Value: float64(took.Milliseconds())},
		Secondary: []bench.Metric{
			{Name: "addresses", Unit: "1/s", Better: bench.HigherIsBetter, Value: float64(len(items)) / took.Seconds()},
			{Name: "rss growth", Unit: "MB", Better: bench.LowerIsBetter, Value: float64(peak-before.RSS) / 1e6},
		},
	}
	if failed > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d of %d entries answered an error", failed, len(items)))
	}
	return r, nil
}
