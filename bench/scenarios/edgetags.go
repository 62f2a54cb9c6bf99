package scenarios

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// What the tag scenarios (purge-tag, invalidation) share: tagged URL
// paths that the origin turns into Surrogate-Key tags, a client of the
// edge's cache admin API, a hit probe and exact quantiles of a few
// samples.

// taggedPrefix starts every tagged path: "/t/<tag>/<i>.mvt".
const taggedPrefix = "/t/"

// taggedPath returns the path of object i carrying tag alone.
func taggedPath(tag string, i uint64) string {
	return taggedPrefix + tag + "/" + strconv.FormatUint(i, 10) + ".mvt"
}

// tagOfPath is the origin's tag function: a path made by taggedPath
// carries its tag, any other path none.
func tagOfPath(path string) []string {
	rest, ok := strings.CutPrefix(path, taggedPrefix)
	if !ok {
		return nil
	}
	tag, _, ok := strings.Cut(rest, "/")
	if !ok || tag == "" {
		return nil
	}
	return []string{tag}
}

// newLoopbackClient returns an HTTP/1.1 client with its own keep-alive
// connections, no proxy and a per-request timeout.
func newLoopbackClient() *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			MaxIdleConnsPerHost: 4,
			IdleConnTimeout:     time.Minute,
			DisableCompression:  true,
		},
	}
}

// cacheStats are the fields of GET /meridian/cache/stats the scenarios
// read (the tagcache module's Stats, whose package is internal to it).
type cacheStats struct {
	Hits      uint64 `json:"hits"`
	Misses    uint64 `json:"misses"`
	Stores    uint64 `json:"stores"`
	Evictions uint64 `json:"evictions"`
	PurgeHard uint64 `json:"purge_tags_hard"`
	Entries   int    `json:"entries"`
	// StoreBytes is what bigcache has allocated (bounded by max_size).
	StoreBytes int64  `json:"store_bytes"`
	PurgeSeq   uint64 `json:"purge_seq"`
}

// purgeRequest is the body of POST /meridian/cache/purge.
type purgeRequest struct {
	Tags []string `json:"tags"`
	Soft bool     `json:"soft,omitempty"`
}

// purgeResponse is its answer.
type purgeResponse struct {
	Tags int  `json:"tags"`
	Soft bool `json:"soft"`
}

// cacheAdmin calls the meridian_cache endpoints of an edge's admin API.
type cacheAdmin struct {
	// base is "http://127.0.0.1:port".
	base   string
	client *http.Client
}

// call sends one admin request and returns its round trip (from sending
// the request to having read the whole answer) and the answer's body. A
// status other than 200 is an error.
func (a cacheAdmin) call(ctx context.Context, method, path string, body []byte) (time.Duration, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return 0, nil, fmt.Errorf("calling admin %s: %w", path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	start := time.Now()
	resp, err := a.client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("calling admin %s: %w", path, err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	rtt := time.Since(start)
	if err != nil {
		return 0, nil, fmt.Errorf("calling admin %s: reading answer: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return 0, nil, fmt.Errorf("calling admin %s: status %d: %s", path, resp.StatusCode, tailText(got, 300))
	}
	return rtt, got, nil
}

// stats reads the cache's counters.
func (a cacheAdmin) stats(ctx context.Context) (cacheStats, error) {
	_, body, err := a.call(ctx, http.MethodGet, "/meridian/cache/stats", nil)
	if err != nil {
		return cacheStats{}, err
	}
	var st cacheStats
	if err := json.Unmarshal(body, &st); err != nil {
		return cacheStats{}, fmt.Errorf("decoding cache stats: %w", err)
	}
	return st, nil
}

// purge hard-purges tags and returns the round trip of the call.
func (a cacheAdmin) purge(ctx context.Context, tags []string) (time.Duration, error) {
	body, err := json.Marshal(purgeRequest{Tags: tags})
	if err != nil {
		return 0, fmt.Errorf("encoding purge request: %w", err)
	}
	rtt, got, err := a.call(ctx, http.MethodPost, "/meridian/cache/purge", body)
	if err != nil {
		return 0, err
	}
	var res purgeResponse
	if err := json.Unmarshal(got, &res); err != nil || res.Tags != len(tags) || res.Soft {
		return 0, fmt.Errorf("purging %v: answer %s (%v), want %d hard-purged tags", tags, tailText(got, 300), err, len(tags))
	}
	return rtt, nil
}

// floor times an admin call that does no work (GET /meridian/cache/config):
// the HTTP cost inside every admin round trip.
func (a cacheAdmin) floor(ctx context.Context) (time.Duration, error) {
	rtt, _, err := a.call(ctx, http.MethodGet, "/meridian/cache/config", nil)
	return rtt, err
}

// probe fetches url and reports whether the edge answered from its cache
// (Cache-Status with "hit"). Any status other than 200 is an error.
func probe(ctx context.Context, c *http.Client, url string) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, fmt.Errorf("fetching %s: %w", url, err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return false, fmt.Errorf("fetching %s: %w", url, err)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return false, fmt.Errorf("fetching %s: reading body: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("fetching %s: status %d", url, resp.StatusCode)
	}
	return meridianHit(resp.Header), nil
}

// warmHit fetches url until the edge answers it from its cache (at most
// tries times: the first request fills the cache).
func warmHit(ctx context.Context, c *http.Client, url string, tries int) error {
	for range tries {
		hit, err := probe(ctx, c, url)
		if err != nil {
			return err
		}
		if hit {
			return nil
		}
	}
	return fmt.Errorf("warming %s: no cache hit after %d requests", url, tries)
}

// quantile returns the q-quantile of xs by linear interpolation between
// closest ranks (as bench's own statistics), NaN for no samples. It does
// not modify xs.
func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	pos := q * float64(len(s)-1)
	lo, hi := int(math.Floor(pos)), int(math.Ceil(pos))
	return s[lo] + (s[hi]-s[lo])*(pos-float64(lo))
}

// millis converts durations to float milliseconds.
func millis(ds []time.Duration) []float64 {
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = float64(d) / float64(time.Millisecond)
	}
	return out
}

// spread returns n indices in [0, total) spread evenly, shifted by
// offset so that successive rounds check different entries.
func spread(n, total, offset int) []uint64 {
	if n > total {
		n = total
	}
	out := make([]uint64, n)
	for i := range out {
		out[i] = uint64((i*total/n + offset) % total)
	}
	return out
}

// tailText returns the end of b as one trimmed line.
func tailText(b []byte, n int) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > n {
		s = "…" + s[len(s)-n:]
	}
	return s
}
