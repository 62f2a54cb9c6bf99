package load

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// testServer is a real HTTP server on 127.0.0.1 that answers every path
// with size bytes, except /missing (404), and counts requests and HTTP/2.
type testServer struct {
	URL      string
	requests atomic.Int64
	http2    atomic.Int64
}

func startTestServer(t *testing.T, size int) *testServer {
	t.Helper()
	body := strings.Repeat("x", size)
	ts := &testServer{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ts.requests.Add(1)
		if r.ProtoMajor == 2 {
			ts.http2.Add(1)
		}
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = w.Write([]byte(body))
	}))
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)
	ts.URL = srv.URL
	return ts
}

func TestHTTPRunCountBound(t *testing.T) {
	for _, engine := range []Engine{FastHTTP, NetHTTP} {
		t.Run(string(engine), func(t *testing.T) {
			srv := startTestServer(t, 3000)
			res, err := HTTP{
				URLs:        []string{srv.URL + "/a", srv.URL + "/missing"},
				Concurrency: 4,
				Requests:    200,
				Engine:      engine,
				Header:      http.Header{"X-Bench": {"1"}},
			}.Run(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if res.Requests != 200 || res.Errors != 0 || srv.requests.Load() != 200 {
				t.Errorf("requests %d, errors %d, server saw %d; want 200, 0, 200 (first error %q)",
					res.Requests, res.Errors, srv.requests.Load(), res.FirstError)
			}
			if res.Status[200] != 100 || res.Status[404] != 100 || res.Non2xx3xx() != 100 {
				t.Errorf("status = %v, want 100×200 and 100×404", res.Status)
			}
			notFound := len("404 page not found\n")
			if want := uint64(100*3000 + 100*notFound); res.BodyBytes != want {
				t.Errorf("body bytes = %d, want %d", res.BodyBytes, want)
			}
			if res.Latency.Count() != 200 || res.Latency.Quantile(0.99) <= 0 || res.Elapsed <= 0 || res.Throughput() <= 0 {
				t.Errorf("latency count %d, p99 %v, elapsed %v, throughput %v; want 200 and positive values",
					res.Latency.Count(), res.Latency.Quantile(0.99), res.Elapsed, res.Throughput())
			}
		})
	}
}

func TestHTTPRunDurationBoundAndURLFunc(t *testing.T) {
	srv := startTestServer(t, 100)
	var maxI atomic.Uint64
	res, err := HTTP{
		URL: func(i uint64) string {
			if i > maxI.Load() {
				maxI.Store(i)
			}
			return srv.URL + "/tile/" + strconv.FormatUint(i%7, 10)
		},
		Concurrency: 2,
		Duration:    150 * time.Millisecond,
	}.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests == 0 || res.Errors != 0 {
		t.Fatalf("requests %d errors %d (%s), want some and none", res.Requests, res.Errors, res.FirstError)
	}
	if res.Elapsed > 10*time.Second {
		t.Errorf("elapsed %v, want the run to stop near its 150ms bound", res.Elapsed)
	}
	if maxI.Load()+1 < res.Requests {
		t.Errorf("URL called up to i=%d for %d requests, want one index per request", maxI.Load(), res.Requests)
	}
}

func TestHTTPRunHTTP2(t *testing.T) {
	srv := startTestServer(t, 500)
	res, err := HTTP{URLs: []string{srv.URL}, Concurrency: 8, Requests: 50, Engine: NetHTTP, HTTP2: true}.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 50 || srv.http2.Load() != 50 {
		t.Errorf("requests %d, of which HTTP/2 %d; want 50 and 50 (first error %q)", res.Requests, srv.http2.Load(), res.FirstError)
	}
}

func TestHTTPRunTLS(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(r.Proto))
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	tlsCfg := srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()

	for _, tt := range []struct {
		name  string
		h     HTTP
		proto string
	}{
		{"fasthttp over TLS", HTTP{Engine: FastHTTP}, "HTTP/1.1"},
		{"net/http h2 over TLS", HTTP{Engine: NetHTTP, HTTP2: true}, "HTTP/2.0"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.h
			h.URLs, h.Requests, h.Concurrency, h.TLSConfig = []string{srv.URL}, 10, 2, tlsCfg
			res, err := h.Run(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if res.Status[200] != 10 || res.BodyBytes != uint64(10*len(tt.proto)) {
				t.Errorf("status %v, body bytes %d; want 10×200 answering %q (first error %q)",
					res.Status, res.BodyBytes, tt.proto, res.FirstError)
			}
		})
	}
}

func TestHTTPRunCountsErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now

	res, err := HTTP{URLs: []string{"http://" + addr + "/"}, Concurrency: 2, Requests: 6, Timeout: time.Second}.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 0 || res.Errors != 6 || res.FirstError == "" {
		t.Errorf("requests %d errors %d first %q; want 0, 6 and an error", res.Requests, res.Errors, res.FirstError)
	}
}

func TestHTTPRefusesNonLoopback(t *testing.T) {
	// A URL function is checked when dialling: the request fails, nothing
	// leaves the machine.
	res, err := HTTP{URL: func(uint64) string { return "http://192.0.2.1/" }, Requests: 3, Concurrency: 1}.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 3 || !strings.Contains(res.FirstError, "not loopback") {
		t.Errorf("errors %d first %q; want 3 loopback refusals", res.Errors, res.FirstError)
	}
	for _, engine := range []Engine{FastHTTP, NetHTTP} {
		res, err := HTTP{URL: func(uint64) string { return "http://example.com/" }, Requests: 1, Engine: engine}.Run(context.Background())
		if err != nil || !strings.Contains(res.FirstError, "not loopback") {
			t.Errorf("%s: err %v first %q; want a loopback refusal", engine, err, res.FirstError)
		}
	}
}

func TestHTTPValidate(t *testing.T) {
	tests := []struct {
		name    string
		h       HTTP
		wantErr string
	}{
		{"unbounded", HTTP{URLs: []string{"http://127.0.0.1:1/"}}, "must be bounded"},
		{"no url", HTTP{Requests: 1}, "exactly one of URLs and URL"},
		{"both urls", HTTP{URLs: []string{"http://127.0.0.1/"}, URL: func(uint64) string { return "" }, Requests: 1}, "exactly one"},
		{"remote url", HTTP{URLs: []string{"http://10.0.0.1/"}, Requests: 1}, "not loopback"},
		{"too long", HTTP{URLs: []string{"http://127.0.0.1/"}, Duration: time.Hour}, "above the 10m0s cap"},
		{"too many", HTTP{URLs: []string{"http://127.0.0.1/"}, Requests: 1, Concurrency: 5000}, "above the 4096 cap"},
		{"h2 on fasthttp", HTTP{URLs: []string{"http://127.0.0.1/"}, Requests: 1, HTTP2: true}, "needs the net/http engine"},
		{"engine", HTTP{URLs: []string{"http://127.0.0.1/"}, Requests: 1, Engine: "curl"}, `unknown engine "curl"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.h.Run(context.Background())
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Run error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestCheckLoopback(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{"127.0.0.1:8080", true}, {"127.1.2.3", true}, {"[::1]:443", true}, {"localhost:80", true}, {"localhost", true},
		{"10.0.0.1:80", false}, {"example.com:80", false}, {"0.0.0.0:80", false}, {"", false},
	}
	for _, tt := range tests {
		if err := CheckLoopback(tt.in); (err == nil) != tt.ok {
			t.Errorf("CheckLoopback(%q) = %v, want ok=%v", tt.in, err, tt.ok)
		}
	}
}
