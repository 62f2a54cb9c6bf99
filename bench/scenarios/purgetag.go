package scenarios

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/meridian-gis/meridian/bench"
	"github.com/meridian-gis/meridian/bench/load"
	"github.com/meridian-gis/meridian/bench/peers"
)

// cacheAdminModule is the Caddy ID of meridian_cache's admin API.
const cacheAdminModule = "admin.api.meridian_cache"

// purgeTagConfig is the purge-tag setup, recorded in the report.
type purgeTagConfig struct {
	// Entries is how many distinct URLs carrying the round's tag each
	// round stores before purging it.
	Entries   int    `json:"entries"`
	BodyBytes int    `json:"body_bytes"`
	MaxSize   string `json:"cache_max_size"`
	// FillConnections is the concurrency of the fill (in-process
	// generator, count-bounded).
	FillConnections int `json:"fill_connections"`
	// Sample is how many of the round's URLs are checked to be hits
	// before the purge and misses after it.
	Sample int `json:"sample"`
	// KeepURLs carry another tag and must stay hits through every purge.
	KeepURLs int `json:"keep_urls"`
	// Repeats is how many more purges of the same tag, and admin calls
	// doing nothing, are timed after the checked one.
	Repeats   int    `json:"repeats"`
	Caddyfile string `json:"caddyfile,omitempty"`
}

// purgeTag is issue 4's purge target: purging one tag that 100,000 stored
// entries carry takes under 1 ms. Each round starts a fresh edge process
// (an empty store, admin API on loopback), stores 100k URLs tagged with
// a tag of that round, purges the tag through POST /meridian/cache/purge
// and times that call's round trip, then checks that the purged URLs miss
// while URLs with another tag still hit, and stops the edge. A fresh
// process per round keeps every round alike and the store's memory
// bounded whatever the number of rounds (purged entries stay in the store
// until evicted or expired).
type purgeTag struct {
	cfg    purgeTagConfig
	env    *bench.Env
	edge   peers.Edge
	dir    string // the edge's work folder
	origin *peers.Origin
	client *http.Client
	runs   int
}

// purgeEdge is one edge process of a purge-tag round.
type purgeEdge struct {
	server *peers.Server
	base   string // "http://127.0.0.1:port"
	admin  cacheAdmin
}

func newPurgeTag() bench.Scenario {
	return &purgeTag{cfg: purgeTagConfig{
		Entries: 100_000, BodyBytes: 256, MaxSize: "1GiB", FillConnections: 32,
		Sample: 200, KeepURLs: 50, Repeats: 50,
	}}
}

func (s *purgeTag) Info() bench.Info {
	return bench.Info{
		Name: "purge-tag",
		Description: fmt.Sprintf("Purge of one tag carried by %d stored entries through the edge's admin API "+
			"(POST /meridian/cache/purge, loopback, keep-alive): round trip of the call in ms. Each round starts a "+
			"fresh edge, fills %d URLs tagged for that round (%d-byte bodies, %d connections), checks %d of them hit, "+
			"purges, then checks they miss and %d URLs of another tag still hit. Secondary: the median of %d more "+
			"purges of the same tag, and of as many admin calls that do nothing (the HTTP floor of any admin call).",
			s.cfg.Entries, s.cfg.Entries, s.cfg.BodyBytes, s.cfg.FillConnections, s.cfg.Sample, s.cfg.KeepURLs, s.cfg.Repeats),
		Variants: []string{"meridian"},
		Targets: []bench.Target{
			{Name: "purge of a tag on 100k entries < 1 ms", Variant: "meridian", Max: 1},
		},
		Config: s.cfg,
	}
}

func (s *purgeTag) Setup(ctx context.Context, env *bench.Env) (_ bench.Teardown, err error) {
	s.env = env
	if s.edge, err = buildEdge(ctx, env); err != nil {
		return nil, err
	}
	for _, m := range []string{peers.CacheHandlerModule, cacheAdminModule} {
		if !s.edge.HasModule(m) {
			return nil, bench.Skip("the edge binary has no %s module (edge/main.go does not import caddy-modules/tagcache)", m)
		}
	}
	if s.dir, err = openScratch(env, "edge"); err != nil {
		return nil, err
	}
	var stop cleanup
	teardown := func(ctx context.Context) error {
		if s.client != nil {
			s.client.CloseIdleConnections()
		}
		return stop.run(ctx)
	}
	s.client = newLoopbackClient()
	s.origin, err = peers.StartOrigin(peers.OriginConfig{Body: tileBody(s.cfg.BodyBytes), Tags: tagOfPath})
	if err != nil {
		return teardown, err
	}
	stop.add(s.origin.Stop)
	// One edge started and stopped here: a broken build or config fails
	// the setup rather than every round.
	e, err := s.startEdge(ctx)
	if err != nil {
		return teardown, err
	}
	return teardown, s.stopEdge(ctx, e)
}

// startEdge starts an edge with an empty store, waits for its admin API
// and stores the URLs of keepTag.
func (s *purgeTag) startEdge(ctx context.Context) (*purgeEdge, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	adminAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	site := peers.EdgeSite{
		Listen: addr, Upstream: s.origin.Addr, CacheMaxSize: s.cfg.MaxSize, Admin: adminAddr,
		WorkDir: s.dir, Lifetime: peerLifetime(s.env, 1),
	}
	if s.cfg.Caddyfile, err = site.Caddyfile(); err != nil {
		return nil, err
	}
	srv, err := s.edge.Start(ctx, site)
	if err != nil {
		return nil, err
	}
	e := &purgeEdge{server: srv, base: "http://" + srv.Addr, admin: cacheAdmin{base: "http://" + adminAddr, client: s.client}}
	if err := waitAdmin(ctx, e.admin); err != nil {
		return nil, errors.Join(err, s.stopEdge(ctx, e))
	}
	for i := range uint64(s.cfg.KeepURLs) {
		if err := warmHit(ctx, s.client, e.base+taggedPath(keepTag, i), 3); err != nil {
			return nil, errors.Join(err, s.stopEdge(ctx, e))
		}
	}
	return e, nil
}

// stopEdge stops an edge, even when ctx is already cancelled.
func (s *purgeTag) stopEdge(ctx context.Context, e *purgeEdge) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	s.client.CloseIdleConnections()
	return e.server.Stop(ctx)
}

// keepTag is carried by the URLs no purge-tag round purges.
const keepTag = "bench-keep"

// waitAdmin waits until the admin API answers (it starts listening with
// the config, before or after the site's listener).
func waitAdmin(ctx context.Context, a cacheAdmin) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		_, err := a.stats(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the edge's admin API: %w", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *purgeTag) Run(ctx context.Context, variant string) (_ bench.Result, err error) {
	if variant != "meridian" {
		return bench.Result{}, fmt.Errorf("unknown variant %q", variant)
	}
	e, err := s.startEdge(ctx)
	if err != nil {
		return bench.Result{}, err
	}
	defer func() {
		if stopErr := s.stopEdge(ctx, e); stopErr != nil {
			err = errors.Join(err, stopErr)
		}
	}()
	s.runs++
	return s.measure(ctx, e, fmt.Sprintf("bench-purge-%d", s.runs))
}

// measure fills the round's URLs, checks them, and times the purge of
// their tag.
func (s *purgeTag) measure(ctx context.Context, e *purgeEdge, tag string) (bench.Result, error) {
	before, err := e.admin.stats(ctx)
	if err != nil {
		return bench.Result{}, err
	}

	// Fill: every URL once, each a miss stored with the round's tag.
	base := e.base
	fill, err := load.HTTP{
		URL:         func(i uint64) string { return base + taggedPath(tag, i) },
		Requests:    uint64(s.cfg.Entries),
		Concurrency: s.cfg.FillConnections,
	}.Run(ctx)
	if err != nil {
		return bench.Result{}, err
	}
	if err := checkFill(fill, s.cfg.Entries); err != nil {
		return bench.Result{}, err
	}
	after, err := e.admin.stats(ctx)
	if err != nil {
		return bench.Result{}, err
	}
	stored := after.Stores - before.Stores
	if stored < uint64(s.cfg.Entries) || after.Entries < s.cfg.Entries+s.cfg.KeepURLs {
		return bench.Result{}, fmt.Errorf("the fill stored %d entries (store holds %d), want %d (and the %d kept)",
			stored, after.Entries, s.cfg.Entries, s.cfg.KeepURLs)
	}
	if after.Evictions > 0 {
		return bench.Result{}, fmt.Errorf("the store evicted %d entries: max_size %s is too small", after.Evictions, s.cfg.MaxSize)
	}
	sample := spread(s.cfg.Sample, s.cfg.Entries, s.runs)
	if err := s.checkSample(ctx, e, tag, sample, true); err != nil {
		return bench.Result{}, fmt.Errorf("before the purge: %w", err)
	}

	// The measured purge, on a warm keep-alive connection.
	if _, err := e.admin.floor(ctx); err != nil {
		return bench.Result{}, err
	}
	rtt, err := e.admin.purge(ctx, []string{tag})
	if err != nil {
		return bench.Result{}, err
	}
	if err := s.checkSample(ctx, e, tag, sample, false); err != nil {
		return bench.Result{}, fmt.Errorf("after the purge: %w", err)
	}
	keep := spread(s.cfg.KeepURLs, s.cfg.KeepURLs, 0)
	if err := s.checkSample(ctx, e, keepTag, keep, true); err != nil {
		return bench.Result{}, fmt.Errorf("after the purge, another tag: %w", err)
	}

	// More purges of the same tag (the same work: one generation bump)
	// and admin calls that do nothing, interleaved.
	var purges, floors []time.Duration
	for range s.cfg.Repeats {
		d, err := e.admin.purge(ctx, []string{tag})
		if err != nil {
			return bench.Result{}, err
		}
		purges = append(purges, d)
		if d, err = e.admin.floor(ctx); err != nil {
			return bench.Result{}, err
		}
		floors = append(floors, d)
	}
	final, err := e.admin.stats(ctx)
	if err != nil {
		return bench.Result{}, err
	}
	if n := final.PurgeHard - after.PurgeHard; n != uint64(1+s.cfg.Repeats) {
		return bench.Result{}, fmt.Errorf("the store counted %d tag purges, want %d", n, 1+s.cfg.Repeats)
	}

	pm, fm := millis(purges), millis(floors)
	return bench.Result{
		Primary: latencyMetric("purge", rtt.Seconds()),
		Secondary: []bench.Metric{
			{Name: "repeat-p50", Unit: unitMs, Better: bench.LowerIsBetter, Value: quantile(pm, 0.5)},
			{Name: "repeat-p99", Unit: unitMs, Better: bench.LowerIsBetter, Value: quantile(pm, 0.99)},
			{Name: "admin-floor-p50", Unit: unitMs, Better: bench.LowerIsBetter, Value: quantile(fm, 0.5)},
			{Name: "fill", Unit: unitReqPerSec, Better: bench.HigherIsBetter, Value: fill.Throughput()},
		},
		Notes: []string{fmt.Sprintf("stored %d entries with the round's tag, then purged it; the store held %d entries in %d MiB",
			stored, after.Entries, after.StoreBytes>>20)},
	}, nil
}

// checkFill checks a fill answered every request with a 200.
func checkFill(res load.Result, want int) error {
	if res.Errors > 0 || res.Requests != uint64(want) || res.Status[http.StatusOK] != uint64(want) {
		return fmt.Errorf("filling %d URLs: %d responses (%d with 200), %d errors (first: %s)",
			want, res.Requests, res.Status[http.StatusOK], res.Errors, res.FirstError)
	}
	return nil
}

// checkSample fetches the sample of tag's URLs and checks each is a hit
// (wantHit) or not. A miss refills the entry, so a sample is checked once
// after a purge.
func (s *purgeTag) checkSample(ctx context.Context, e *purgeEdge, tag string, idx []uint64, wantHit bool) error {
	var wrong []uint64
	for _, i := range idx {
		hit, err := probe(ctx, s.client, e.base+taggedPath(tag, i))
		if err != nil {
			return err
		}
		if hit != wantHit {
			wrong = append(wrong, i)
		}
	}
	if len(wrong) > 0 {
		what := "not a hit"
		if !wantHit {
			what = "still a hit"
		}
		return fmt.Errorf("%d of %d sampled URLs of tag %s %s (first: %s)",
			len(wrong), len(idx), tag, what, taggedPath(tag, wrong[0]))
	}
	return nil
}
