package tilebench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/meridian-gis/meridian/bench/proc"
	"github.com/meridian-gis/meridian/internal/tile"
)

// Meridian drives the meridian binary (a build of ./edge) through its
// command line, against one metadata database: the same steps an operator
// takes (migrate, connection add, token create, then `meridian tiles`).
type Meridian struct {
	// Bin is the meridian binary. Required.
	Bin string
	// DatabaseURL is the metadata database (MERIDIAN_DATABASE_URL).
	// Required.
	DatabaseURL string
	// SecretKey is MERIDIAN_SECRET_KEY (secret.GenerateKey makes one).
	// Required.
	SecretKey string
	// Dir is the working directory and HOME of every process. Required.
	Dir string
	// Env is added to the environment of every process ("K=V"), after
	// the settings above. Optional.
	Env []string
}

// env returns the environment of a meridian process: the caller's, then
// the metadata database, the key, a node name, quiet logs, the postgres
// broker (on the metadata database), then m.Env and extra.
func (m Meridian) env(extra ...string) []string {
	env := []string{
		"MERIDIAN_DATABASE_URL=" + m.DatabaseURL,
		"MERIDIAN_SECRET_KEY=" + m.SecretKey,
		"MERIDIAN_NODE=bench-tiles",
		"MERIDIAN_LOG_LEVEL=warn",
		"MERIDIAN_BROKER=postgres",
		"HOME=" + m.Dir,
	}
	env = append(env, m.Env...)
	return append(env, extra...)
}

// Command runs `meridian args…` to its end (bounded by two minutes) and
// returns its standard output.
func (m Meridian) Command(ctx context.Context, args ...string) (string, error) {
	return m.CommandWithin(ctx, 2*time.Minute, args...)
}

// CommandWithin is Command bounded by limit instead (a long load).
func (m Meridian) CommandWithin(ctx context.Context, limit time.Duration, args ...string) (string, error) {
	res, err := proc.Command{
		Path: m.Bin, Args: args, Dir: m.Dir, Env: m.env(),
		Timeout: limit, OutputLimit: 64 << 10,
	}.Run(ctx)
	if err != nil {
		return "", fmt.Errorf("running meridian %s: %w: %s", strings.Join(redactArgs(args), " "), err,
			tailText([]byte(res.Stderr+res.Stdout), 1500))
	}
	return res.Stdout, nil
}

// redactArgs hides the value of --url (it holds credentials) in error
// messages.
func redactArgs(args []string) []string {
	out := append([]string(nil), args...)
	for i := range out {
		if out[i] == "--url" && i+1 < len(out) {
			out[i+1] = "…"
		}
	}
	return out
}

// Provision migrates the metadata database, registers the data connection
// conn at dataURL and returns a new token granting every source of conn
// on the maps and SQL APIs.
func (m Meridian) Provision(ctx context.Context, conn, dataURL string) (string, error) {
	if _, err := m.Command(ctx, "migrate"); err != nil {
		return "", err
	}
	if _, err := m.Command(ctx, "connection", "add", conn, "--url", dataURL); err != nil {
		return "", err
	}
	out, err := m.Command(ctx, "token", "create", "--grant", conn+":*", "--api", "maps,sql", "--name", "bench")
	if err != nil {
		return "", err
	}
	tok := lastLine(out)
	if strings.Count(tok, ".") != 2 || strings.ContainsAny(tok, " \t") {
		return "", fmt.Errorf("meridian token create printed %q, want a token", tailText([]byte(out), 200))
	}
	return tok, nil
}

// lastLine returns the last non-empty line of s, trimmed.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// Tiles is a running `meridian tiles` process.
type Tiles struct {
	// Addr is the "127.0.0.1:port" it serves on.
	Addr string
	// URL is "http://" + Addr.
	URL string

	p      *proc.Process
	client *http.Client
}

// StartTiles starts `meridian tiles` on a free loopback port and waits
// until it answers /readyz with 200, as a load balancer would before
// sending it work (a node warms its hot data connections first). The
// process is detached from ctx (which bounds the wait only) and killed
// after lifetime at the latest; call Stop. extraEnv ("K=V") is added to
// the process environment.
func (m Meridian) StartTiles(ctx context.Context, lifetime time.Duration, extraEnv ...string) (*Tiles, error) {
	addr, err := proc.FreeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	p, err := proc.Command{
		Path: m.Bin, Args: []string{"tiles"}, Dir: m.Dir,
		Env:     m.env(append([]string{"MERIDIAN_TILES_ADDR=" + addr, "MERIDIAN_PUBLIC_URL=http://" + addr}, extraEnv...)...),
		Timeout: lifetime, OutputLimit: 16 << 10,
	}.Start(context.WithoutCancel(ctx))
	if err != nil {
		return nil, fmt.Errorf("starting meridian tiles: %w", err)
	}
	t := &Tiles{Addr: addr, URL: "http://" + addr, p: p, client: &http.Client{
		Timeout: 2 * time.Minute,
		// Compression is the engine's business: bodies are read as sent.
		Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 4},
	}}
	if err := t.waitReady(ctx, "meridian tiles", "/readyz", time.Minute); err != nil {
		return nil, err
	}
	return t, nil
}

// PID returns the process id.
func (t *Tiles) PID() int { return t.p.PID() }

// Alive returns nil while the process runs, else an error with the tail
// of its output.
func (t *Tiles) Alive() error {
	select {
	case <-t.p.Done():
		res, err := t.p.Wait()
		return fmt.Errorf("meridian tiles exited (code %d, %v): %s", res.ExitCode, err,
			tailText([]byte(res.Stderr+res.Stdout), 1500))
	default:
		return nil
	}
}

// Stop stops the process (SIGTERM, then SIGKILL when ctx ends) and
// returns the error of an abnormal exit.
func (t *Tiles) Stop(ctx context.Context) error {
	t.client.CloseIdleConnections()
	res, err := t.p.Stop(ctx)
	if err != nil {
		return fmt.Errorf("stopping meridian tiles: %w: %s", err, tailText([]byte(res.Stderr), 1000))
	}
	return nil
}

// Get fetches pathQuery ("/healthz", a TilePath) with the headers given
// ("Name: value") and returns the status, the body as sent and the
// response header.
func (t *Tiles) Get(ctx context.Context, pathQuery string, headers []string) (int, []byte, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.URL+pathQuery, nil)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("fetching %s: %w", pathQuery, err)
	}
	for _, h := range headers {
		k, v, ok := strings.Cut(h, ":")
		if !ok {
			return 0, nil, nil, fmt.Errorf("fetching %s: bad header %q", pathQuery, h)
		}
		req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	resp, err := t.client.Do(req)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("fetching %s: %w", pathQuery, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("fetching %s: reading body: %w", pathQuery, err)
	}
	return resp.StatusCode, body, resp.Header, nil
}

// Instantiate asks the engine for d's source on conn (compiling it: the
// catalog is loaded, the statement built) without rendering a tile.
func (t *Tiles) Instantiate(ctx context.Context, conn, token string, d Dataset) error {
	status, body, _, err := t.Get(ctx, SourcePath(conn, d), []string{"Authorization: Bearer " + token})
	if err != nil {
		return fmt.Errorf("instantiating %s: %w", d.Name, err)
	}
	if status != http.StatusOK {
		return fmt.Errorf("instantiating %s: status %d: %s", d.Name, status, tailText(body, 500))
	}
	return nil
}

// ErrNoMetric is returned by CacheLookups when /metrics lacks the
// engine's cache counters.
var ErrNoMetric = errors.New("tilebench: no meridian_tiles_cache_lookups_total in /metrics")

// CacheLookups reads the engine's in-process tile cache counters (hits
// and misses since the start) from /metrics.
func (t *Tiles) CacheLookups(ctx context.Context) (hits, misses float64, err error) {
	status, body, _, err := t.Get(ctx, "/metrics", nil)
	if err != nil {
		return 0, 0, err
	}
	if status != http.StatusOK {
		return 0, 0, fmt.Errorf("fetching /metrics: status %d", status)
	}
	return parseCacheLookups(body)
}

// Metric returns the sum of the samples of metric name (any labels) in
// the engine's /metrics, or ErrNoMetric.
func (t *Tiles) Metric(ctx context.Context, name string) (float64, error) {
	status, body, _, err := t.Get(ctx, "/metrics", nil)
	if err != nil {
		return 0, err
	}
	if status != http.StatusOK {
		return 0, fmt.Errorf("fetching /metrics: status %d", status)
	}
	var sum float64
	var found bool
	for _, line := range strings.Split(string(body), "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		if i := strings.LastIndexByte(rest, ' '); i >= 0 {
			v, err := strconv.ParseFloat(rest[i+1:], 64)
			if err != nil {
				return 0, fmt.Errorf("parsing %q: %w", line, err)
			}
			sum, found = sum+v, true
		}
	}
	if !found {
		return 0, fmt.Errorf("%w (%s)", ErrNoMetric, name)
	}
	return sum, nil
}

// parseCacheLookups finds the hit and miss samples of
// meridian_tiles_cache_lookups_total in a Prometheus text exposition.
func parseCacheLookups(b []byte) (hits, misses float64, err error) {
	const name = "meridian_tiles_cache_lookups_total{"
	var found int
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok {
			continue
		}
		labels, value, ok := strings.Cut(rest, "} ")
		if !ok {
			continue
		}
		v, perr := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if perr != nil {
			return 0, 0, fmt.Errorf("parsing %q: %w", line, perr)
		}
		switch labels {
		case `result="hit"`:
			hits, found = v, found|1
		case `result="miss"`:
			misses, found = v, found|2
		}
	}
	if err := sc.Err(); err != nil {
		return 0, 0, fmt.Errorf("reading /metrics: %w", err)
	}
	if found == 0 {
		return 0, 0, ErrNoMetric
	}
	return hits, misses, nil
}

// APIPrefix is where the engine mounts the CARTO API (its default).
const APIPrefix = "/api"

// SourcePath returns the path and query that instantiate d's table source
// on connection conn: /api/v3/maps/{conn}/table?name=…&columns=….
func SourcePath(conn string, d Dataset) string {
	return APIPrefix + "/v3/maps/" + url.PathEscape(conn) + "/table?" + sourceQuery(d)
}

// TilePath returns the path and query of the stateless tile URL of tile c
// of d on conn:
// /api/v3/maps/{conn}/table/{z}/{x}/{y}?name=…&columns=…&formatTiles=mvt.
func TilePath(conn string, d Dataset, c tile.Coord) string {
	return APIPrefix + "/v3/maps/" + url.PathEscape(conn) + "/table/" + c.String() + "?" + sourceQuery(d) + "&formatTiles=mvt"
}

// sourceQuery is name=…&columns=a,b,c (commas left as they are).
func sourceQuery(d Dataset) string {
	cols := make([]string, len(d.Columns))
	for i, c := range d.Columns {
		cols[i] = url.QueryEscape(c)
	}
	return "name=" + url.QueryEscape(d.Table) + "&columns=" + strings.Join(cols, ",")
}

// Fetched is the answer to one path of FetchAll.
type Fetched struct {
	// Path is the path and query fetched.
	Path string
	// Status is the HTTP status; BodyBytes the body's size as sent.
	Status    int
	BodyBytes int
}

// FetchAll fetches every path once with the headers given, from
// concurrency workers, and returns the answers in the order of paths. It
// fails on the first transport error.
func (t *Tiles) FetchAll(ctx context.Context, paths, headers []string, concurrency int) ([]Fetched, error) {
	if concurrency < 1 {
		concurrency = 1
	}
	out := make([]Fetched, len(paths))
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	done := make(chan struct{})
	for range concurrency {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range next {
				status, body, _, err := t.Get(ctx, paths[i], headers)
				if err != nil {
					cancel(err)
					continue
				}
				out[i] = Fetched{Path: paths[i], Status: status, BodyBytes: len(body)}
			}
		}()
	}
feed:
	for i := range paths {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	for range concurrency {
		<-done
	}
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	return out, nil
}

// TileJSONTemplate returns the tile URL template of d's source that the
// engine's TileJSON hands to clients (CARTO's clients request these):
// absolute, under the engine's public URL, with k=… (the source key) and
// cache=… (its generation), and {z}/{x}/{y} to fill in (ExpandTemplate).
func (t *Tiles) TileJSONTemplate(ctx context.Context, conn, token string, d Dataset) (string, error) {
	p := APIPrefix + "/v3/maps/" + url.PathEscape(conn) + "/table/tilejson?" + sourceQuery(d)
	status, body, _, err := t.Get(ctx, p, []string{"Authorization: Bearer " + token})
	if err != nil {
		return "", fmt.Errorf("fetching the TileJSON of %s: %w", d.Name, err)
	}
	if status != http.StatusOK {
		return "", fmt.Errorf("fetching the TileJSON of %s: status %d: %s", d.Name, status, tailText(body, 500))
	}
	var tj struct {
		Tiles []string `json:"tiles"`
	}
	if err := json.Unmarshal(body, &tj); err != nil {
		return "", fmt.Errorf("reading the TileJSON of %s: %w", d.Name, err)
	}
	if len(tj.Tiles) == 0 || !strings.Contains(tj.Tiles[0], "{z}/{x}/{y}") {
		return "", fmt.Errorf("reading the TileJSON of %s: tiles %q, want a {z}/{x}/{y} template", d.Name, tj.Tiles)
	}
	return tj.Tiles[0], nil
}

// ExpandTemplate fills {z}, {x} and {y} of a tile URL template with c.
func ExpandTemplate(tmpl string, c tile.Coord) string {
	return strings.NewReplacer(
		"{z}", strconv.FormatUint(uint64(c.Z), 10),
		"{x}", strconv.FormatUint(uint64(c.X), 10),
		"{y}", strconv.FormatUint(uint64(c.Y), 10),
	).Replace(tmpl)
}

// StartUp starts `meridian up` (edge, control, tiles and worker in one
// process) with the edge on a free loopback port, and waits until the
// control plane answers through the edge. The result's Addr and URL are
// the edge's; Get goes through it. Like StartTiles, the process is
// detached from ctx and killed after lifetime at the latest.
func (m Meridian) StartUp(ctx context.Context, lifetime time.Duration, extraEnv ...string) (*Tiles, error) {
	addrs := make([]string, 5)
	for i := range addrs {
		a, err := proc.FreeLoopbackAddr()
		if err != nil {
			return nil, err
		}
		addrs[i] = a
	}
	edge := addrs[0]
	p, err := proc.Command{
		Path: m.Bin, Args: []string{"up"}, Dir: m.Dir,
		Env: m.env(append([]string{"MERIDIAN_EDGE_ADDR=" + edge, "MERIDIAN_ADMIN_ADDR=" + addrs[1], "MERIDIAN_TILES_ADDR=" + addrs[2],
			"MERIDIAN_CONTROL_ADDR=" + addrs[3], "MERIDIAN_WORKER_ADDR=" + addrs[4], "MERIDIAN_PUBLIC_URL=http://" + edge}, extraEnv...)...),
		Timeout: lifetime, OutputLimit: 16 << 10,
	}.Start(context.WithoutCancel(ctx))
	if err != nil {
		return nil, fmt.Errorf("starting meridian up: %w", err)
	}
	t := &Tiles{Addr: edge, URL: "http://" + edge, p: p, client: &http.Client{
		Timeout:   2 * time.Minute,
		Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 4},
	}}
	if err := t.waitReady(ctx, "meridian up", "/accounts-api/status", 2*time.Minute); err != nil {
		return nil, err
	}
	return t, nil
}

// waitReady polls path until it answers 200 (within limit), or the
// process exits; on failure it stops the process and returns an error
// with the tail of its output.
func (t *Tiles) waitReady(ctx context.Context, what, path string, limit time.Duration) error {
	wctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		if err := t.Alive(); err != nil {
			return fmt.Errorf("starting %s: %w", what, err)
		}
		status, _, _, err := t.Get(wctx, path, nil)
		if err == nil && status == http.StatusOK {
			return nil
		}
		select {
		case <-wctx.Done():
			sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer scancel()
			res, _ := t.p.Stop(sctx)
			return fmt.Errorf("starting %s: no answer from %s on %s: %w (last: %v): %s",
				what, path, t.Addr, wctx.Err(), err, tailText([]byte(res.Stderr), 1500))
		case <-time.After(50 * time.Millisecond):
		}
	}
}
