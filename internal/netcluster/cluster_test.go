package netcluster_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/meridian-gis/meridian/internal/dataconn"
	"github.com/meridian-gis/meridian/internal/grant"
	"github.com/meridian-gis/meridian/internal/netcluster"
	"github.com/meridian-gis/meridian/internal/noderegistry"
	"github.com/meridian-gis/meridian/internal/pgcluster"
	"github.com/meridian-gis/meridian/internal/secret"
	"github.com/meridian-gis/meridian/internal/tokenstore"
)

// Ports every host uses (each host has its own address).
const (
	pgPort      = 5432
	edgePort    = 8080
	tilesPort   = 8081
	controlPort = 8082
	workerPort  = 8083
	peerPort    = 8091
)

// proc is one process on one host.
type proc struct {
	name string
	host *netcluster.Host
	args []string
	env  []string
	log  string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

func (p *proc) start(t *testing.T, bin string) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exited != nil {
		select {
		case <-p.exited:
		default:
			t.Fatalf("starting %s while its previous process still runs", p.name)
		}
	}
	cmd := p.host.Command(context.Background(), bin, p.args...)
	cmd.Env = append(os.Environ(), p.env...)
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "\n==== start %s %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(p.args, " "))
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", p.name, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); f.Close(); close(exited) }()
	p.cmd, p.exited = cmd, exited
}

func (p *proc) signal(sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && p.cmd.Process != nil {
		p.cmd.Process.Signal(sig)
	}
}

// stop sends sig and waits for the process to exit (SIGKILL after limit).
func (p *proc) stop(sig syscall.Signal, limit time.Duration) {
	p.mu.Lock()
	exited := p.exited
	p.mu.Unlock()
	if exited == nil {
		return
	}
	p.signal(sig)
	select {
	case <-exited:
	case <-time.After(limit):
		p.signal(syscall.SIGKILL)
		<-exited
	}
}

func (p *proc) tail(n int) string {
	b, _ := os.ReadFile(p.log)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// cluster is Meridian on the hosts of a netcluster.Net.
type cluster struct {
	t      *testing.T
	net    *netcluster.Net
	bin    string
	dir    string
	hosts  map[string]*netcluster.Host
	procs  map[string]*proc
	order  []string
	pgData string
	pgBin  string
	pgCred *syscall.SysProcAttr

	metaURL, dataURL string
	pubsubAddr       string // the emulator, when the broker is Pub/Sub
	meta             *pgxpool.Pool
	key              string
	token            string
	client           *http.Client
}

// adminToken opens the admin API in the cluster.
const adminToken = "cluster-admin-secret"

var tilesNodes = []string{"t1", "t2", "t3"}
var edgeNodes = []string{"e1", "e2"}

// meridianBinary returns MERIDIAN_BINARY or builds ./edge into dir.
func meridianBinary(t *testing.T, dir string) string {
	if b := os.Getenv("MERIDIAN_BINARY"); b != "" {
		abs, _ := filepath.Abs(b)
		return abs
	}
	out := filepath.Join(dir, "meridian")
	cmd := exec.Command("go", "build", "-o", out, "./edge")
	cmd.Dir = "../.."
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building meridian: %v\n%s", err, b)
	}
	return out
}

// options vary the cluster.
type options struct {
	// pubsub runs a Pub/Sub emulator (pstest) on host ps and makes it
	// the broker; otherwise the broker is postgres, on the metadata DB.
	pubsub bool
}

// pubsubPort is where the emulator listens on host ps.
const pubsubPort = 8085

func startCluster(t *testing.T, opts ...options) *cluster {
	var o options
	if len(opts) > 0 {
		o = opts[0]
	}
	ctx := context.Background()
	if _, err := pgcluster.BinDir(); err != nil {
		if os.Getenv("MERIDIAN_REQUIRE_DB") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	dir, err := os.MkdirTemp("", "meridian-cluster-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	t.Cleanup(func() {
		if !t.Failed() {
			os.RemoveAll(dir)
		} else {
			t.Logf("cluster files kept in %s", dir)
		}
	})
	n, err := netcluster.New(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n.Fallback {
		if os.Getenv("MERIDIAN_REQUIRE_NETNS") != "" {
			t.Fatalf("network namespaces unavailable: %s", n.Reason)
		}
		t.Logf("NOTE: network namespaces unavailable (%s): hosts are loopback addresses 127.0.x.y; the partition test is skipped", n.Reason)
	}
	c := &cluster{t: t, net: n, dir: dir, hosts: map[string]*netcluster.Host{}, procs: map[string]*proc{},
		client: &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 32}}}
	t.Cleanup(func() {
		for i := len(c.order) - 1; i >= 0; i-- {
			c.procs[c.order[i]].stop(syscall.SIGTERM, 10*time.Second)
		}
		if t.Failed() {
			for _, name := range c.order {
				t.Logf("---- %s log tail:\n%s", name, c.procs[name].tail(3000))
			}
		}
		if c.meta != nil {
			c.meta.Close()
		}
		n.Close()
	})
	c.bin = meridianBinary(t, dir)
	hostNames := []string{"pg", "ctl", "wrk", "e1", "e2", "t1", "t2", "t3"}
	if o.pubsub {
		hostNames = append(hostNames, "ps")
	}
	for i, name := range hostNames {
		h, err := n.AddHost(ctx, name, 10+i)
		if err != nil {
			t.Fatal(err)
		}
		c.hosts[name] = h
	}
	c.startPostgres(t)
	c.prepareData(t)
	var brokerEnv []string
	if o.pubsub {
		addr := c.hosts["ps"].Addr(pubsubPort)
		c.procs["ps"] = &proc{name: "ps", host: c.hosts["ps"], log: filepath.Join(dir, "ps.log"),
			env: []string{"NETCLUSTER_HELPER=pstest", "NETCLUSTER_ADDR=" + addr}}
		c.order = append(c.order, "ps")
		c.procs["ps"].start(t, os.Args[0])
		for deadline := time.Now().Add(20 * time.Second); ; {
			if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
				conn.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("pstest did not listen on %s", addr)
			}
			time.Sleep(50 * time.Millisecond)
		}
		c.pubsubAddr = addr
		brokerEnv = []string{"MERIDIAN_BROKER=pubsub", "MERIDIAN_PUBSUB_PROJECT=meridian-cluster", "PUBSUB_EMULATOR_HOST=" + addr}
	}

	common := func(name string) []string {
		h := c.hosts[name]
		home := filepath.Join(dir, name)
		os.MkdirAll(home, 0o755)
		return append([]string{
			"MERIDIAN_DATABASE_URL=" + c.metaURL,
			"MERIDIAN_SECRET_KEY=" + c.key,
			"MERIDIAN_NODE=" + name,
			"MERIDIAN_NODE_ADDR=" + h.IP,
			"MERIDIAN_NODE_HEARTBEAT=1s",
			"MERIDIAN_PUBLIC_URL=http://" + c.hosts["e1"].Addr(edgePort),
			"MERIDIAN_IMPORT_DIR=" + filepath.Join(dir, "imports"),
			"MERIDIAN_IMPORT_ALLOW_PRIVATE=true",
			"HOME=" + home, "XDG_DATA_HOME=" + home, "XDG_CONFIG_HOME=" + home,
		}, brokerEnv...)
	}
	os.MkdirAll(filepath.Join(dir, "imports"), 0o777)
	var peers []string
	var upstreams []string
	for _, name := range tilesNodes {
		peers = append(peers, "http://"+c.hosts[name].Addr(peerPort))
		upstreams = append(upstreams, c.hosts[name].Addr(tilesPort))
	}
	add := func(name, host string, args []string, env ...string) {
		c.procs[name] = &proc{name: name, host: c.hosts[host], args: args, env: append(common(name), env...),
			log: filepath.Join(dir, name+".log")}
		c.order = append(c.order, name)
	}
	add("ctl", "ctl", []string{"control"}, "MERIDIAN_CONTROL_ADDR="+c.hosts["ctl"].Addr(controlPort),
		"MERIDIAN_CONTROL_ADMIN_TOKEN="+adminToken)
	add("wrk", "wrk", []string{"worker"}, "MERIDIAN_WORKER_ADDR="+c.hosts["wrk"].Addr(workerPort))
	for _, name := range tilesNodes {
		h := c.hosts[name]
		add(name, name, []string{"tiles"},
			"MERIDIAN_TILES_ADDR="+h.Addr(tilesPort),
			"MERIDIAN_TILES_PEER_ADDR="+h.Addr(peerPort),
			"MERIDIAN_TILES_PEER_SELF=http://"+h.Addr(peerPort),
			"MERIDIAN_TILES_PEERS="+strings.Join(peers, ","),
			"MERIDIAN_TILES_PEER_TOKEN=cluster-peer-secret")
	}
	caddyfile, _ := filepath.Abs("../../Caddyfile")
	for _, name := range edgeNodes {
		h := c.hosts[name]
		add(name, name, []string{"run", "--config", caddyfile, "--adapter", "caddyfile"},
			"MERIDIAN_SITE_ADDRESS=http://:"+strconv.Itoa(edgePort),
			"MERIDIAN_EDGE_BIND="+h.IP,
			"MERIDIAN_ADMIN_ADDR="+net.JoinHostPort(h.LocalIP(), "2019"),
			"MERIDIAN_TILES_UPSTREAMS="+strings.Join(upstreams, " "),
			"MERIDIAN_TILES_DYNAMIC=dynamic meridian_nodes tiles {\nrefresh 500ms\nhealth_interval 500ms\n}",
			"MERIDIAN_CONTROL_UPSTREAMS="+c.hosts["ctl"].Addr(controlPort),
			"MERIDIAN_EDGE_ADVERTISE="+h.Addr(edgePort),
			"MERIDIAN_GRACE_PERIOD=10s")
	}
	// Control first (it makes the signing key), then the rest at once.
	c.procs["ctl"].start(t, c.bin)
	c.waitHTTP(t, "ctl", "http://"+c.hosts["ctl"].Addr(controlPort)+"/readyz", 60*time.Second)
	rest := []string{"wrk", "t1", "t2", "t3", "e1", "e2"}
	for _, name := range rest {
		c.procs[name].start(t, c.bin)
	}
	c.waitReady(t, append([]string{"ctl"}, rest...), 90*time.Second)
	tok, _, err := tokenstore.New(c.meta, mustKeyring(t, c.key), nil).Create(ctx, tokenstore.Spec{Owner: "cluster-test",
		Grants: []grant.Grant{{Connection: "local", Source: "public.places"}, {Connection: "local", Source: "public.outage_places"}}, APIs: []grant.API{grant.APIMaps, grant.APIImports}})
	if err != nil {
		t.Fatal(err)
	}
	c.token = tok
	return c
}

func mustKeyring(t *testing.T, key string) *secret.Keyring {
	kr, err := secret.ParseKeyring(key)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// startPostgres runs a private PostgreSQL cluster on host pg.
func (c *cluster) startPostgres(t *testing.T) {
	ctx := context.Background()
	pc, err := pgcluster.Open(ctx, filepath.Join(c.dir, "pg"), pgcluster.Options{Fast: true, Port: pgPort})
	if err != nil {
		t.Fatal(err)
	}
	c.pgData = filepath.Join(pc.Dir, "data")
	c.pgBin, _ = pgcluster.BinDir()
	hba, err := os.OpenFile(filepath.Join(c.pgData, "pg_hba.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(hba, "host all all %s/16 trust\nhost all all 127.0.0.0/8 trust\n", c.hosts["pg"].IP)
	hba.Close()
	c.procs["pg"] = &proc{name: "pg", host: c.hosts["pg"], log: filepath.Join(c.dir, "pg.log")}
	c.order = append(c.order, "pg")
	c.startPG(t)
	pgHost := c.hosts["pg"].Addr(pgPort)
	admin := "postgres://postgres@" + pgHost + "/postgres?sslmode=disable"
	pool, err := pgxpool.New(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	for _, q := range []string{"CREATE DATABASE meridian", "CREATE DATABASE geodata"} {
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	c.metaURL = "postgres://postgres@" + pgHost + "/meridian?sslmode=disable"
	c.dataURL = "postgres://postgres@" + pgHost + "/geodata?sslmode=disable"
}

// startPG (re)starts postgres on host pg and waits until it answers.
func (c *cluster) startPG(t *testing.T) {
	p := c.procs["pg"]
	u, err := user.Lookup("postgres")
	args := []string{filepath.Join(c.pgBin, "postgres"), "-D", c.pgData, "-p", strconv.Itoa(pgPort),
		"-c", "listen_addresses=" + c.hosts["pg"].IP, "-c", "unix_socket_directories="}
	if os.Geteuid() == 0 {
		if err != nil {
			t.Fatal(err)
		}
		p.args = append([]string{"--reuid=" + u.Uid, "--regid=" + u.Gid, "--init-groups"}, args...)
		p.start(t, "setpriv")
	} else {
		p.args = args[1:]
		p.start(t, args[0])
	}
	deadline := time.Now().Add(30 * time.Second)
	admin := "postgres://postgres@" + c.hosts["pg"].Addr(pgPort) + "/postgres?sslmode=disable&connect_timeout=2"
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, admin)
		if err == nil {
			err = conn.Ping(ctx)
			conn.Close(ctx)
		}
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("postgres did not listen: %v\n%s", err, p.tail(2000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// prepareData migrates the metadata database (with the binary, as a
// deployment's migrations job does), registers the data connection and
// fills public.places with points around the world.
func (c *cluster) prepareData(t *testing.T) {
	ctx := context.Background()
	c.key = secret.GenerateKey()
	cmd := c.hosts["ctl"].Command(ctx, c.bin, "migrate")
	cmd.Env = append(os.Environ(), "MERIDIAN_DATABASE_URL="+c.metaURL, "HOME="+c.dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("meridian migrate on host ctl: %v\n%s", err, out)
	}
	var err error
	c.meta, err = pgxpool.New(ctx, c.metaURL)
	if err != nil {
		t.Fatal(err)
	}
	data, err := pgxpool.New(ctx, c.dataURL)
	if err != nil {
		t.Fatal(err)
	}
	defer data.Close()
	if _, err := data.Exec(ctx, `CREATE EXTENSION postgis;
		CREATE TABLE public.places (cartodb_id serial PRIMARY KEY, name text, geom geometry(Point, 4326));
		SELECT setseed(0.42);
		INSERT INTO public.places (name, geom)
		SELECT 'p' || i, ST_SetSRID(ST_MakePoint(random() * 340 - 170, random() * 160 - 80), 4326) FROM generate_series(1, 3000) i;
		CREATE INDEX ON public.places USING gist (geom); ANALYZE public.places;`); err != nil {
		t.Fatal(err)
	}
	if _, err := dataconn.New(c.meta, mustKeyring(t, c.key)).Create(ctx, dataconn.Connection{Name: "local", Kind: "postgres", URL: c.dataURL}); err != nil {
		t.Fatal(err)
	}
}

func (c *cluster) waitHTTP(t *testing.T, name, url string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		res, err := c.client.Get(url)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return
			}
		}
		select {
		case <-c.procs[name].exited:
			t.Fatalf("%s exited while starting:\n%s", name, c.procs[name].tail(3000))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s not ready within %v (%v)\n%s", name, url, limit, err, c.procs[name].tail(3000))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// readyURL is where a component reports readiness.
func (c *cluster) readyURL(name string) string {
	h := c.hosts[name]
	switch {
	case name == "ctl":
		return "http://" + h.Addr(controlPort) + "/readyz"
	case name == "wrk":
		return "http://" + h.Addr(workerPort) + "/readyz"
	case name[0] == 't':
		return "http://" + h.Addr(tilesPort) + "/readyz"
	}
	return "http://" + h.Addr(edgePort) + "/readyz"
}

// waitReady waits until every named process answers its readiness URL and
// the registry lists it as ready.
func (c *cluster) waitReady(t *testing.T, names []string, limit time.Duration) {
	t.Helper()
	for _, name := range names {
		c.waitHTTP(t, name, c.readyURL(name), limit)
	}
	deadline := time.Now().Add(limit)
	for {
		nodes, err := noderegistry.List(context.Background(), c.meta, noderegistry.Filter{LiveReadyOnly: true, StaleAfter: 5 * time.Second})
		have := map[string]bool{}
		for _, n := range nodes {
			have[n.Name] = true
		}
		missing := []string{}
		for _, name := range names {
			if !have[name] {
				missing = append(missing, name)
			}
		}
		if err == nil && len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("registry lacks ready %v after %v (%v)", missing, limit, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func tilePath(z, x, y int) string {
	return fmt.Sprintf("/api/v3/maps/local/table/%d/%d/%d?name=public.places&formatTiles=mvt", z, x, y)
}

// get fetches path from an edge with the cluster's token.
func (c *cluster) get(edge, path string) (int, http.Header, []byte, error) {
	req, _ := http.NewRequest("GET", "http://"+c.hosts[edge].Addr(edgePort)+path, nil)
	req.Header.Set("Authorization", "Bearer "+c.token)
	res, err := c.client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, b, err
}

// metric sums the samples of name (any labels) in a node's /metrics.
func (c *cluster) metric(t *testing.T, url, name string) float64 {
	t.Helper()
	res, err := c.client.Get(url)
	if err != nil {
		t.Fatalf("scraping %s: %v", url, err)
	}
	defer res.Body.Close()
	var sum float64
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		f := strings.Fields(line)
		v, _ := strconv.ParseFloat(f[len(f)-1], 64)
		sum += v
	}
	return sum
}

func (c *cluster) tilesMetric(t *testing.T, node, name string) float64 {
	return c.metric(t, "http://"+c.hosts[node].Addr(tilesPort)+"/metrics", name)
}

// loadResult counts a bounded load's requests.
type loadResult struct {
	total, failed atomic.Int64
	mu            sync.Mutex
	errors        []string
}

func (r *loadResult) fail(msg string) {
	r.failed.Add(1)
	r.mu.Lock()
	if len(r.errors) < 10 {
		r.errors = append(r.errors, msg)
	}
	r.mu.Unlock()
}

// load runs workers requesting path(i) through both edges, alternating,
// until stop is closed, dur passes or max requests were made. The load
// plays the external load balancer in front of the edges: a request that
// could not be sent or got no response from one edge (connection refused
// while that edge restarts) is sent to the other; any answer but 200/204,
// or no answer from either edge, is a failure.
func (c *cluster) load(workers, max int, dur time.Duration, path func(i int64) string, stop <-chan struct{}) *loadResult {
	r := &loadResult{}
	var n atomic.Int64
	deadline := time.Now().Add(dur)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := n.Add(1)
				if i > int64(max) || time.Now().After(deadline) {
					return
				}
				select {
				case <-stop:
					return
				default:
				}
				p := path(i)
				var lastErr error
				answered := false
				for k := 0; k < 2 && !answered; k++ {
					edge := edgeNodes[(int(i)+k)%2]
					code, _, _, err := c.get(edge, p)
					if err != nil {
						lastErr = err
						continue
					}
					answered = true
					if code != 200 && code != 204 {
						r.fail(fmt.Sprintf("%s %s: %d", edge, p, code))
					}
				}
				if !answered {
					r.fail(fmt.Sprintf("%s: no edge answered: %v", p, lastErr))
				}
				r.total.Add(1)
			}
		}()
	}
	wg.Wait()
	return r
}

func (r *loadResult) check(t *testing.T, what string) {
	t.Helper()
	t.Logf("%s: %d requests, %d failed", what, r.total.Load(), r.failed.Load())
	if r.failed.Load() != 0 {
		t.Errorf("%s: %d of %d requests failed: %v", what, r.failed.Load(), r.total.Load(), r.errors)
	}
	if r.total.Load() == 0 {
		t.Errorf("%s: no request made", what)
	}
}

// coldTile returns tile paths at zoom 9..11 never asked before, so each
// request reaches a tiles node.
func coldTiles(seed uint64) func(i int64) string {
	return func(i int64) string {
		rng := rand.New(rand.NewPCG(seed, uint64(i)))
		z := 9 + rng.IntN(3)
		return tilePath(z, rng.IntN(1<<z), rng.IntN(1<<z))
	}
}

// upload imports a GeoJSON file replacing public.places through edge e1
// and waits until the import succeeds.
func (c *cluster) upload(t *testing.T, geojson []byte) {
	t.Helper()
	c.waitImport(t, c.sendImport(t, geojson), 60*time.Second)
}

// sendImport uploads a GeoJSON file replacing public.places through edge
// e1 and returns the queued import's ID.
func (c *cluster) sendImport(t *testing.T, geojson []byte) string {
	t.Helper()
	return c.sendImportTo(t, "public.places", geojson)
}

// sendImportTo uploads geojson into table dest (replacing it) through e1
// and returns the import's id.
func (c *cluster) sendImportTo(t *testing.T, dest string, geojson []byte) string {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	mw.WriteField("connection", "local")
	mw.WriteField("destination", dest)
	mw.WriteField("if_exists", "replace")
	fw, _ := mw.CreateFormFile("file", "places.geojson")
	fw.Write(geojson)
	mw.Close()
	req, _ := http.NewRequest("POST", "http://"+c.hosts["e1"].Addr(edgePort)+"/api/v3/imports", &buf)
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	res, err := c.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("import upload = %d %s", res.StatusCode, body)
	}
	return jsonField(body, "id")
}

// waitImport polls an import until it succeeds (and fails the test if it
// fails, is cancelled or takes longer than limit).
func (c *cluster) waitImport(t *testing.T, id string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		req, _ := http.NewRequest("GET", "http://"+c.hosts["e1"].Addr(edgePort)+"/api/v3/imports/"+id, nil)
		req.Header.Set("Authorization", "Bearer "+c.token)
		res, err := c.client.Do(req)
		if err == nil {
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			switch jsonField(b, "status") {
			case "success":
				return
			case "failure", "cancelled":
				t.Fatalf("import %s: %s", id, b)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("import %s not done within %v", id, limit)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// jsonField extracts a top-level string field without a schema.
func jsonField(b []byte, name string) string {
	key := `"` + name + `":"`
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return ""
	}
	rest := b[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return ""
	}
	return string(rest[:j])
}

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return fmt.Sprintf("%x", s[:6])
}

func geojsonPoints(names ...string) []byte {
	var fs []string
	for i, n := range names {
		fs = append(fs, fmt.Sprintf(`{"type":"Feature","geometry":{"type":"Point","coordinates":[%d,%d]},"properties":{"name":%q}}`, -150+i*25, -60+i*10, n))
	}
	return []byte(`{"type":"FeatureCollection","features":[` + strings.Join(fs, ",") + `]}`)
}

// direct asks a tiles node itself, bypassing the edges.
func (c *cluster) direct(t *testing.T, node, path string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+c.hosts[node].Addr(tilesPort)+path, nil)
	req.Header.Set("Authorization", "Bearer "+c.token)
	res, err := c.client.Do(req)
	if err != nil {
		t.Fatalf("tiles %s: %v", node, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

// isHit reports whether an edge answered from its cache.
func isHit(h http.Header) bool { return strings.Contains(h.Get("Cache-Status"), "hit") }

// waitCached polls until every edge answers p from its cache.
func (c *cluster) waitCached(t *testing.T, p string, limit time.Duration, edges ...string) {
	t.Helper()
	for _, e := range edges {
		for deadline := time.Now().Add(limit); ; {
			if _, h, _, _ := c.get(e, p); h != nil && isHit(h) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never cached %s within %v", e, p, limit)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// waitPurged polls until every edge stops answering p from its cache and
// returns how long each took.
func (c *cluster) waitPurged(t *testing.T, p string, since time.Time, limit time.Duration, edges ...string) map[string]time.Duration {
	t.Helper()
	out := map[string]time.Duration{}
	for _, e := range edges {
		for {
			if _, h, _, err := c.get(e, p); err == nil && !isHit(h) {
				out[e] = time.Since(since)
				break
			}
			if time.Since(since) > limit {
				t.Fatalf("%s still serves %s from its cache %v later", e, p, limit)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return out
}
