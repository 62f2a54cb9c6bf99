package load

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Bounds every HTTP run respects, whatever its settings.
const (
	// MaxDuration caps HTTP.Duration.
	MaxDuration = 10 * time.Minute
	// MaxConcurrency caps HTTP.Concurrency.
	MaxConcurrency = 4096
)

// Engine is the HTTP client implementation of the generator.
type Engine string

// Engines of HTTP.
const (
	// FastHTTP uses a fasthttp.Client: HTTP/1.1 (plain or TLS), no
	// allocation per request. The default: it keeps the generator from
	// being the bottleneck.
	FastHTTP Engine = "fasthttp"
	// NetHTTP uses a net/http Transport; needed for HTTP/2 (see HTTP.HTTP2).
	NetHTTP Engine = "net/http"
)

// HTTP is a closed-loop load generator: Concurrency workers each send a
// request, wait for the whole response, record its latency and send the
// next, over keep-alive connections, until Duration has passed or Requests
// have been sent (whichever comes first) or ctx is done. Only loopback
// addresses are dialled.
type HTTP struct {
	// URLs are requested in turn (request i gets URLs[i%len(URLs)]).
	// Exclusive with URL.
	URLs []string
	// URL returns the URL of request i (0, 1, 2, … across all workers).
	// It is called concurrently. Exclusive with URLs.
	URL func(i uint64) string
	// Method of every request. Default: GET.
	Method string
	// Header is added to every request. Optional.
	Header http.Header
	// Concurrency is the number of workers, hence of connections (HTTP/1.1).
	// Default: 64. Max: MaxConcurrency.
	Concurrency int
	// Duration bounds the run. Zero: bounded by Requests only. Max:
	// MaxDuration.
	Duration time.Duration
	// Requests bounds the number of requests sent. Zero: bounded by
	// Duration only. One of Duration and Requests must be set.
	Requests uint64
	// Timeout bounds each request. Default: 10s.
	Timeout time.Duration
	// Engine selects the client. Default: FastHTTP.
	Engine Engine
	// TLSConfig is used for https URLs. Optional.
	TLSConfig *tls.Config
	// HTTP2 makes the NetHTTP engine speak HTTP/2 only: over TLS via ALPN,
	// or in clear text with prior knowledge for http URLs.
	HTTP2 bool
}

// Result is what an HTTP run measured.
type Result struct {
	// Requests counts the requests that got a response (any status).
	Requests uint64 `json:"requests"`
	// Errors counts the requests that got none (connect, timeout, reset).
	Errors uint64 `json:"errors"`
	// FirstError is the text of the first error, if any.
	FirstError string `json:"first_error,omitempty"`
	// Status counts responses by status code.
	Status map[int]uint64 `json:"status"`
	// BodyBytes is the total size of the response bodies read.
	BodyBytes uint64 `json:"body_bytes"`
	// Elapsed is the wall time from start to the last response.
	Elapsed time.Duration `json:"elapsed"`
	// Latency holds the latency of every request that got a response.
	Latency *Histogram `json:"-"`
}

// Throughput returns responses per second.
func (r Result) Throughput() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Requests) / r.Elapsed.Seconds()
}

// BodyRate returns response body bytes per second.
func (r Result) BodyRate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.BodyBytes) / r.Elapsed.Seconds()
}

// Non2xx3xx counts responses with a status outside 200–399 (as wrk does).
func (r Result) Non2xx3xx() uint64 {
	var n uint64
	for code, c := range r.Status {
		if code < 200 || code > 399 {
			n += c
		}
	}
	return n
}

func (h *HTTP) setDefaults() {
	if h.Method == "" {
		h.Method = http.MethodGet
	}
	if h.Concurrency <= 0 {
		h.Concurrency = 64
	}
	if h.Timeout <= 0 {
		h.Timeout = 10 * time.Second
	}
	if h.Engine == "" {
		h.Engine = FastHTTP
	}
}

// validate checks the settings, including that every listed URL is
// loopback (URL functions are checked when dialling).
func (h *HTTP) validate() error {
	var errs []error
	if (len(h.URLs) == 0) == (h.URL == nil) {
		errs = append(errs, errors.New("set exactly one of URLs and URL"))
	}
	for _, u := range h.URLs {
		pu, err := url.Parse(u)
		if err != nil {
			errs = append(errs, fmt.Errorf("parsing url %q: %w", u, err))
			continue
		}
		if err := CheckLoopback(pu.Host); err != nil {
			errs = append(errs, err)
		}
	}
	if h.Duration <= 0 && h.Requests == 0 {
		errs = append(errs, errors.New("set Duration or Requests: the run must be bounded"))
	}
	if h.Duration > MaxDuration {
		errs = append(errs, fmt.Errorf("duration %s above the %s cap", h.Duration, MaxDuration))
	}
	if h.Concurrency > MaxConcurrency {
		errs = append(errs, fmt.Errorf("concurrency %d above the %d cap", h.Concurrency, MaxConcurrency))
	}
	switch h.Engine {
	case FastHTTP:
		if h.HTTP2 {
			errs = append(errs, errors.New("HTTP2 needs the net/http engine"))
		}
	case NetHTTP:
	default:
		errs = append(errs, fmt.Errorf("unknown engine %q", h.Engine))
	}
	return errors.Join(errs...)
}

// CheckLoopback returns an error unless hostport names a loopback address
// ("127.0.0.1:8080", "[::1]:443", "localhost:80"; the port is optional).
func CheckLoopback(hostport string) error {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("address %q is not loopback: bench only loads local servers", hostport)
}

// dialLoopback dials addr after checking it is loopback.
func dialLoopback(ctx context.Context, network, addr string) (net.Conn, error) {
	if err := CheckLoopback(addr); err != nil {
		return nil, err
	}
	d := net.Dialer{Timeout: 5 * time.Second}
	return d.DialContext(ctx, network, addr)
}

// Run generates the load and returns what it measured. It fails only on
// invalid settings; request errors are counted in the Result.
func (h HTTP) Run(ctx context.Context) (Result, error) {
	h.setDefaults()
	if err := h.validate(); err != nil {
		return Result{}, fmt.Errorf("configuring http load: %w", err)
	}
	runCtx := ctx
	if h.Duration > 0 {
		var cancel context.CancelFunc
		// The workers stop at the deadline on their own; the context
		// deadline only cuts requests still in flight much later.
		runCtx, cancel = context.WithTimeout(ctx, h.Duration+h.Timeout)
		defer cancel()
	}

	var send sender
	switch h.Engine {
	case NetHTTP:
		send = newNetHTTPSender(&h)
	default:
		send = newFastHTTPSender(&h)
	}
	defer send.close()

	urlOf := h.URL
	if urlOf == nil {
		urls := h.URLs
		urlOf = func(i uint64) string { return urls[i%uint64(len(urls))] }
	}
	start := time.Now()
	var deadline time.Time
	if h.Duration > 0 {
		deadline = start.Add(h.Duration)
	}
	shared := &runState{limit: h.Requests, deadline: deadline, urlOf: urlOf}
	workers := make([]*worker, h.Concurrency)
	var wg sync.WaitGroup
	for i := range workers {
		w := &worker{state: shared, send: send.requester()}
		workers[i] = w
		wg.Add(1)
		go w.run(runCtx, &wg)
	}
	wg.Wait()

	res := Result{Status: map[int]uint64{}, Latency: &Histogram{}}
	var last time.Time
	for _, w := range workers {
		res.Latency.Merge(&w.hist)
		res.Requests += w.hist.Count()
		res.Errors += w.errors
		res.BodyBytes += w.bytes
		for code, c := range w.status {
			if c > 0 {
				res.Status[code] += c
			}
		}
		if res.FirstError == "" && w.firstErr != nil {
			res.FirstError = w.firstErr.Error()
		}
		if w.last.After(last) {
			last = w.last
		}
	}
	if last.IsZero() {
		last = time.Now()
	}
	res.Elapsed = last.Sub(start)
	return res, nil
}

// runState is shared by the workers of one run.
type runState struct {
	next     atomic.Uint64
	limit    uint64 // 0: no count bound
	deadline time.Time
	urlOf    func(i uint64) string
}

// sender is a client shared by the workers of one run.
type sender interface {
	// requester returns the per-worker handle that sends requests.
	requester() requester
	close()
}

// requester sends one request and reads the whole response. Each worker
// has its own, so it may keep scratch buffers without locking.
type requester interface {
	// do returns the status and body size, or an error when no response
	// arrived.
	do(ctx context.Context, url string) (status, n int, err error)
}

// worker is one closed-loop client; its counters are private until the
// run ends.
type worker struct {
	state    *runState
	send     requester
	hist     Histogram
	status   [600]uint64
	bytes    uint64
	errors   uint64
	firstErr error
	last     time.Time
}

func (w *worker) run(ctx context.Context, wg *sync.WaitGroup) {
	defer wg.Done()
	s := w.state
	now := time.Now()
	for ctx.Err() == nil {
		i := s.next.Add(1) - 1
		if s.limit > 0 && i >= s.limit {
			return
		}
		if !s.deadline.IsZero() && !now.Before(s.deadline) {
			return
		}
		start := now
		code, n, err := w.send.do(ctx, s.urlOf(i))
		now = time.Now()
		w.last = now
		if err != nil {
			w.errors++
			if w.firstErr == nil {
				w.firstErr = err
			}
			continue
		}
		w.hist.Record(now.Sub(start))
		if code >= 0 && code < len(w.status) {
			w.status[code]++
		}
		w.bytes += uint64(n)
	}
}

// fastHTTPSender sends with a fasthttp.Client.
type fastHTTPSender struct {
	client  *fasthttp.Client
	method  string
	header  http.Header
	timeout time.Duration
}

func newFastHTTPSender(h *HTTP) *fastHTTPSender {
	return &fastHTTPSender{
		client: &fasthttp.Client{
			Dial: func(addr string) (net.Conn, error) {
				return dialLoopback(context.Background(), "tcp", addr)
			},
			TLSConfig:                     h.TLSConfig,
			MaxConnsPerHost:               h.Concurrency,
			MaxIdemponentCallAttempts:     1, // a retry would hide an error
			ReadTimeout:                   h.Timeout,
			WriteTimeout:                  h.Timeout,
			MaxConnWaitTimeout:            h.Timeout,
			DisableHeaderNamesNormalizing: true,
			DisablePathNormalizing:        true,
		},
		method:  h.Method,
		header:  h.Header,
		timeout: h.Timeout,
	}
}

func (s *fastHTTPSender) requester() requester {
	return &fastRequester{s: s, req: new(fasthttp.Request), resp: new(fasthttp.Response)}
}

func (s *fastHTTPSender) close() { s.client.CloseIdleConnections() }

// fastRequester reuses one request and one response for all its requests.
type fastRequester struct {
	s    *fastHTTPSender
	req  *fasthttp.Request
	resp *fasthttp.Response
}

func (r *fastRequester) do(_ context.Context, url string) (int, int, error) {
	r.req.Reset()
	r.req.SetRequestURI(url)
	r.req.Header.SetMethod(r.s.method)
	for k, vs := range r.s.header {
		for _, v := range vs {
			r.req.Header.Add(k, v)
		}
	}
	if err := r.s.client.DoTimeout(r.req, r.resp, r.s.timeout); err != nil {
		return 0, 0, err
	}
	return r.resp.StatusCode(), len(r.resp.Body()), nil
}

// netHTTPSender sends with a net/http Transport.
type netHTTPSender struct {
	client *http.Client
	tr     *http.Transport
	method string
	header http.Header
}

func newNetHTTPSender(h *HTTP) *netHTTPSender {
	tr := &http.Transport{
		DialContext:         dialLoopback,
		TLSClientConfig:     h.TLSConfig,
		MaxIdleConns:        h.Concurrency,
		MaxIdleConnsPerHost: h.Concurrency,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
		Protocols:           new(http.Protocols),
	}
	if h.HTTP2 {
		tr.Protocols.SetHTTP2(true)
		tr.Protocols.SetUnencryptedHTTP2(true)
	} else {
		tr.Protocols.SetHTTP1(true)
	}
	return &netHTTPSender{
		client: &http.Client{
			Transport: tr,
			Timeout:   h.Timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse // measure the redirect itself
			},
		},
		tr:     tr,
		method: h.Method,
		header: h.Header,
	}
}

func (s *netHTTPSender) requester() requester { return s }

func (s *netHTTPSender) do(ctx context.Context, url string) (int, int, error) {
	req, err := http.NewRequestWithContext(ctx, s.method, url, nil)
	if err != nil {
		return 0, 0, fmt.Errorf("building request: %w", err)
	}
	for k, vs := range s.header {
		req.Header[k] = vs
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		return 0, 0, fmt.Errorf("reading body: %w", err)
	}
	return resp.StatusCode, int(n), nil
}

func (s *netHTTPSender) close() { s.tr.CloseIdleConnections() }
