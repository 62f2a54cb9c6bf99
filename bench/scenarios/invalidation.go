package scenarios

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"cloud.google.com/go/pubsub/v2/pstest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/meridian-gis/meridian/bench"
	"github.com/meridian-gis/meridian/bench/load"
	"github.com/meridian-gis/meridian/bench/peers"
	"github.com/meridian-gis/meridian/internal/broker"
	"github.com/meridian-gis/meridian/internal/broker/brokerconfig"
	"github.com/meridian-gis/meridian/internal/cachetag"
	"github.com/meridian-gis/meridian/internal/pgcluster"
	"github.com/meridian-gis/meridian/internal/pgdb"
)

// edgeAppModule is the Caddy ID of the meridian app (edge connections:
// metadata database, broker).
const edgeAppModule = "meridian"

// invalidationConfig is the invalidation setup, recorded in the report.
type invalidationConfig struct {
	// Probes is how many invalidations each run publishes, paced over the
	// run's duration.
	Probes int `json:"probes_per_run"`
	// PollInterval is how often a probe URL is fetched after the publish
	// until it is no longer a hit.
	PollInterval string `json:"poll_interval"`
	// ProbeTimeout bounds the wait for one purge; a probe still cached
	// then counts as lost, at this latency.
	ProbeTimeout string `json:"probe_timeout"`
	// LoadConnections and LoadURLs shape the background HIT load
	// (in-process generator, keep-alive).
	LoadConnections int `json:"load_connections"`
	LoadURLs        int `json:"load_urls"`
	BodyBytes       int `json:"body_bytes"`
	// Caddyfiles are the edges' configurations, by variant.
	Caddyfiles map[string]string `json:"caddyfiles,omitempty"`
}

// Invalidation scenario settings.
const (
	invalidationPoll         = time.Millisecond
	invalidationProbeTimeout = 5 * time.Second
	// invalidationSetupTimeout bounds the first, unmeasured invalidation
	// of each edge, which proves its subscription works.
	invalidationSetupTimeout = 30 * time.Second
	// invalidationMaxLost stops a run after this many lost probes.
	invalidationMaxLost = 3
	// invalidationRampUp lets the background load settle before the
	// first probe.
	invalidationRampUp = 100 * time.Millisecond
)

// errNotPurged is a probe the edge still served from its cache
// ProbeTimeout after the invalidation was published.
var errNotPurged = errors.New("not purged in time")

// invalidation is issue 4's invalidation target: from publishing an
// invalidation on the broker to the edge no longer serving the tagged
// response takes under 100 ms at p99, on both brokers, with a load
// running. Each variant is one edge process (`meridian run`) whose
// meridian app uses that broker (postgres on a private cluster started
// for the run; pubsub on an in-process pstest server), meridian_cache
// before reverse_proxy to a tagging origin. A run keeps a HIT load on the
// edge while it publishes invalidations of probe URLs one at a time and
// polls each probe until it misses.
type invalidation struct {
	cfg    invalidationConfig
	env    *bench.Env
	origin *peers.Origin
	client *http.Client
	nodes  map[string]*invalidationNode
	runs   int
}

// invalidationNode is one variant: an edge and the broker it listens to.
type invalidationNode struct {
	server   *peers.Server
	broker   broker.Broker
	base     string   // "http://127.0.0.1:port"
	loadURLs []string // the background load's URLs
}

func newInvalidation() bench.Scenario {
	return &invalidation{cfg: invalidationConfig{
		Probes: 50, PollInterval: invalidationPoll.String(), ProbeTimeout: invalidationProbeTimeout.String(),
		LoadConnections: 16, LoadURLs: 1000, BodyBytes: 1 << 10,
	}}
}

func (s *invalidation) Info() bench.Info {
	return bench.Info{
		Name: "invalidation",
		Description: fmt.Sprintf("Publish-to-purged latency of cache invalidations with a HIT load running: one edge "+
			"process per broker (postgres driver on a private cluster, LISTEN/NOTIFY; pubsub driver on an in-process "+
			"pstest server, whose delivery loop ticks every 10 ms), each meridian_cache before reverse_proxy to a "+
			"tagging origin. A run keeps %d connections loading %d cached URLs while it publishes %d invalidations, "+
			"one at a time, each of a probe URL with its own tag, and fetches the probe every %s until it is no "+
			"longer a hit (publish call included; the time ends when the first non-hit answer arrives).",
			s.cfg.LoadConnections, s.cfg.LoadURLs, s.cfg.Probes, invalidationPoll),
		Variants: []string{"postgres", "pubsub-pstest"},
		Targets: []bench.Target{
			{Name: "postgres publish-to-purged p99 < 100 ms", Variant: "postgres", Max: 100},
			{Name: "pubsub-pstest publish-to-purged p99 < 100 ms", Variant: "pubsub-pstest", Max: 100},
		},
		Config: s.cfg,
	}
}

func (s *invalidation) Setup(ctx context.Context, env *bench.Env) (_ bench.Teardown, err error) {
	s.env = env
	edge, err := buildEdge(ctx, env)
	if err != nil {
		return nil, err
	}
	for _, m := range []string{peers.CacheHandlerModule, edgeAppModule} {
		if !edge.HasModule(m) {
			return nil, bench.Skip("the edge binary has no %s module (see edge/main.go)", m)
		}
	}
	var stop cleanup
	teardown := func(ctx context.Context) error {
		if s.client != nil {
			s.client.CloseIdleConnections()
		}
		return stop.run(ctx)
	}
	cluster, err := startScratchCluster(ctx, env, &stop)
	if err != nil {
		return teardown, err
	}
	dbURL, err := createDatabase(ctx, cluster, "bench_meta")
	if err != nil {
		return teardown, err
	}
	log := env.Logger
	pool, err := pgdb.NewPool(ctx, dbURL, pgdb.PoolConfig{}, log)
	if err != nil {
		return teardown, err
	}
	stop.add(func(context.Context) error { pool.Close(); return nil })
	if _, err := pgdb.Migrate(ctx, pool); err != nil {
		return teardown, err
	}
	ps := pstest.NewServerWithAddress("127.0.0.1:0")
	stop.add(func(context.Context) error { return ps.Close() })

	s.client = newLoopbackClient()
	if s.origin, err = peers.StartOrigin(peers.OriginConfig{Body: tileBody(s.cfg.BodyBytes), Tags: tagOfPath}); err != nil {
		return teardown, err
	}
	stop.add(s.origin.Stop)

	apps := map[string]peers.EdgeApp{
		"postgres":      {DatabaseURL: dbURL, Broker: "postgres", Node: "bench-postgres"},
		"pubsub-pstest": {DatabaseURL: dbURL, Broker: "pubsub", PubSubProject: "bench", PubSubEndpoint: ps.Addr, Node: "bench-pubsub"},
	}
	s.nodes = make(map[string]*invalidationNode, len(apps))
	s.cfg.Caddyfiles = make(map[string]string, len(apps))
	for _, variant := range s.Info().Variants {
		n, err := s.startNode(ctx, edge, variant, apps[variant], pool, &stop)
		if err != nil {
			return teardown, fmt.Errorf("starting the %s edge: %w", variant, err)
		}
		s.nodes[variant] = n
	}
	return teardown, nil
}

// createDatabase creates database name on the cluster and returns its URL.
func createDatabase(ctx context.Context, c *pgcluster.Cluster, name string) (string, error) {
	admin, err := pgx.Connect(ctx, c.SuperuserURL("postgres"))
	if err != nil {
		return "", fmt.Errorf("connecting to the cluster: %w", err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("creating database %s: %w", name, err)
	}
	return c.SuperuserURL(name), nil
}

// startNode opens the variant's broker, creates the edge's invalidation
// subscription (so nothing published from now on is lost while the edge
// starts), starts the edge, warms the load's URLs and checks one
// invalidation end to end.
func (s *invalidation) startNode(ctx context.Context, edge peers.Edge, variant string, app peers.EdgeApp,
	pool *pgxpool.Pool, stop *cleanup) (*invalidationNode, error) {
	bc := brokerconfig.Config{Driver: app.Broker}
	if app.Broker == "pubsub" {
		bc.PubSubProject, bc.PubSubEndpoint, bc.PubSubInsecure = app.PubSubProject, app.PubSubEndpoint, true
	}
	b, err := brokerconfig.Open(ctx, bc, pool, s.env.Logger)
	if err != nil {
		return nil, err
	}
	stop.add(func(context.Context) error { return b.Close() })
	// As the cache's own subscription (caddy-modules/tagcache).
	sub := broker.Subscription{
		Topic:       broker.TopicInvalidations,
		Name:        "edge-" + app.Node + "-invalidations",
		Concurrency: 4,
		ExpireAfter: 7 * 24 * time.Hour,
	}
	if err := b.CreateSubscription(ctx, sub); err != nil {
		return nil, err
	}

	dir, err := openScratch(s.env, "edge-"+variant)
	if err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	site := peers.EdgeSite{
		Listen: addr, Upstream: s.origin.Addr, Meridian: &app,
		WorkDir: dir, Lifetime: peerLifetime(s.env, len(s.Info().Variants)),
	}
	if s.cfg.Caddyfiles[variant], err = site.Caddyfile(); err != nil {
		return nil, err
	}
	srv, err := edge.Start(ctx, site)
	if err != nil {
		return nil, err
	}
	stop.add(srv.Stop)
	n := &invalidationNode{server: srv, broker: b, base: "http://" + srv.Addr}
	loadTag := "bench-load-" + app.Node
	for i := range uint64(s.cfg.LoadURLs) {
		n.loadURLs = append(n.loadURLs, n.base+taggedPath(loadTag, i))
	}
	fill, err := load.HTTP{URLs: n.loadURLs, Requests: uint64(s.cfg.LoadURLs), Concurrency: s.cfg.LoadConnections}.Run(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkFill(fill, s.cfg.LoadURLs); err != nil {
		return nil, err
	}
	for _, i := range spread(20, s.cfg.LoadURLs, 0) {
		if err := warmHit(ctx, s.client, n.loadURLs[i], 2); err != nil {
			return nil, err
		}
	}
	if _, _, err := s.measure(ctx, n, "bench-inv-"+app.Node+"-setup", invalidationSetupTimeout); err != nil {
		return nil, fmt.Errorf("checking the invalidation path: %w", err)
	}
	return n, nil
}

// loadOutcome is what the background load returns.
type loadOutcome struct {
	res load.Result
	err error
}

func (s *invalidation) Run(ctx context.Context, variant string) (bench.Result, error) {
	n := s.nodes[variant]
	if n == nil {
		return bench.Result{}, fmt.Errorf("unknown variant %q", variant)
	}
	if err := n.server.Alive(); err != nil {
		return bench.Result{}, err
	}
	s.runs++
	originBefore := s.origin.Requests()

	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	loadDone := make(chan loadOutcome, 1)
	go func() {
		// Bounded by the cancel below (and by ctx, the Runner's timeout).
		res, err := load.HTTP{URLs: n.loadURLs, Concurrency: s.cfg.LoadConnections, Duration: load.MaxDuration}.Run(loadCtx)
		loadDone <- loadOutcome{res, err}
	}()

	var purged, publish []time.Duration
	lost := 0
	start := time.Now().Add(invalidationRampUp)
	pace := s.env.Duration / time.Duration(s.cfg.Probes)
	var runErr error
	for k := range s.cfg.Probes {
		if err := sleepUntil(ctx, start.Add(time.Duration(k)*pace)); err != nil {
			runErr = err
			break
		}
		tag := fmt.Sprintf("bench-inv-%s-%d-%d", variant, s.runs, k)
		d, p, err := s.measure(ctx, n, tag, invalidationProbeTimeout)
		if errors.Is(err, errNotPurged) {
			lost++
			purged, publish = append(purged, invalidationProbeTimeout), append(publish, p)
			if lost > invalidationMaxLost {
				runErr = fmt.Errorf("%d of %d invalidations not applied within %s", lost, k+1, invalidationProbeTimeout)
				break
			}
			continue
		}
		if err != nil {
			runErr = err
			break
		}
		purged, publish = append(purged, d), append(publish, p)
	}
	stopLoad()
	lo := <-loadDone
	if runErr != nil {
		return bench.Result{}, runErr
	}
	if lo.err != nil {
		return bench.Result{}, lo.err
	}
	return invalidationResult(purged, publish, lost, lo.res, s.origin.Requests()-originBefore)
}

// invalidationResult turns a run's measurements into a bench result:
// publish-to-purged p99 as the primary metric; p50, max, the publish
// call's p50 and the background load's figures as secondary; lost probes,
// load errors and origin requests beyond the probes' own as notes.
func invalidationResult(purged, publish []time.Duration, lost int, lr load.Result, originRequests uint64) (bench.Result, error) {
	if len(purged) == 0 {
		return bench.Result{}, errors.New("no invalidation measured")
	}
	if lr.Requests == 0 {
		return bench.Result{}, fmt.Errorf("the background load got no response (%d errors, first: %s)", lr.Errors, lr.FirstError)
	}
	ms, pm := millis(purged), millis(publish)
	res := bench.Result{
		Primary: bench.Metric{Name: "p99", Unit: unitMs, Better: bench.LowerIsBetter, Value: quantile(ms, 0.99)},
		Secondary: []bench.Metric{
			{Name: "p50", Unit: unitMs, Better: bench.LowerIsBetter, Value: quantile(ms, 0.5)},
			{Name: "max", Unit: unitMs, Better: bench.LowerIsBetter, Value: quantile(ms, 1)},
			{Name: "publish-p50", Unit: unitMs, Better: bench.LowerIsBetter, Value: quantile(pm, 0.5)},
			{Name: "load", Unit: unitReqPerSec, Better: bench.HigherIsBetter, Value: lr.Throughput()},
			latencyMetric("load-p99", lr.Latency.Quantile(0.99).Seconds()),
			{Name: "load-errors", Unit: "req", Better: bench.LowerIsBetter, Value: float64(lr.Errors + lr.Non2xx3xx())},
		},
	}
	if lost > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("%d of %d invalidations not applied within %s (counted at that latency)",
			lost, len(purged), invalidationProbeTimeout))
	}
	if lr.Errors > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("background load: %d request errors, first: %s", lr.Errors, lr.FirstError))
	}
	if n := lr.Non2xx3xx(); n > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("background load: %d responses outside 2xx/3xx", n))
	}
	// Each probe costs the origin one fill when warmed and one refill
	// once purged; anything more is the background load missing, which a
	// probe's tag sharing a tag slot with a load URL's tag, path or prefix
	// causes now and then (by design: collisions only cost misses).
	expected := uint64(2*len(purged) - lost)
	if originRequests > expected {
		res.Notes = append(res.Notes, fmt.Sprintf("the origin served %d requests beyond the probes' %d "+
			"(background load misses, e.g. tag-slot collisions)", originRequests-expected, expected))
	}
	return res, nil
}

// measure warms the probe URL of tag, publishes an invalidation of tag on
// n's broker and fetches the probe every invalidationPoll until it is not
// a hit. It returns the time from just before the publish to the first
// non-hit answer, and the publish call's own time. A probe still a hit
// after timeout is errNotPurged.
func (s *invalidation) measure(ctx context.Context, n *invalidationNode, tag string, timeout time.Duration) (purged, publish time.Duration, err error) {
	url := n.base + taggedPath(tag, 0)
	if err := warmHit(ctx, s.client, url, 5); err != nil {
		return 0, 0, err
	}
	data, err := json.Marshal(cachetag.Invalidation{Tags: []string{tag}, Reason: "bench invalidation"})
	if err != nil {
		return 0, 0, fmt.Errorf("encoding invalidation: %w", err)
	}
	start := time.Now()
	if _, err := n.broker.Publish(ctx, broker.TopicInvalidations, data, nil); err != nil {
		return 0, 0, fmt.Errorf("publishing invalidation: %w", err)
	}
	publish = time.Since(start)
	for {
		sent := time.Now()
		hit, err := probe(ctx, s.client, url)
		if err != nil {
			return 0, publish, err
		}
		if !hit {
			return time.Since(start), publish, nil
		}
		if time.Since(start) > timeout {
			return 0, publish, fmt.Errorf("%s still a hit %s after the publish: %w", url, timeout, errNotPurged)
		}
		if err := sleepUntil(ctx, sent.Add(invalidationPoll)); err != nil {
			return 0, publish, err
		}
	}
}

// sleepUntil waits until t or until ctx is done.
func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}
