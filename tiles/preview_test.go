package tiles

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/meridian-gis/meridian/internal/grant"
	"github.com/meridian-gis/meridian/static"
)

// The preview page needs no database: a server without data connections
// serves it.
func TestPreview(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	is := newIssuer(t)
	srv, err := New(Config{Addr: ln.Addr().String()}, Deps{
		Log:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		Conns:     conns{},
		Auth:      is.verifier,
		PublicURL: base,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	page, err := static.Preview()
	if err != nil {
		t.Fatal(err)
	}
	maps := is.token(t, []grant.API{grant.APIMaps}, "public.countries")
	sqlOnly := is.token(t, []grant.API{grant.APISQL}, "*")
	client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{DisableCompression: true}}

	const path = "/api/v3/maps/pg/preview?name=public.countries"
	tests := []struct {
		name       string
		method     string
		url        string
		hdr        []string
		wantStatus int
		wantBody   []byte // nil: not checked
		wantCE     string
	}{
		{name: "no token", url: path, wantStatus: 401},
		{name: "bad token", url: path + "&access_token=nope", wantStatus: 401},
		{name: "token without maps", url: path + "&access_token=" + sqlOnly, wantStatus: 403},
		{name: "access_token", url: path + "&access_token=" + maps, wantStatus: 200, wantBody: page.Body},
		{name: "bearer", url: path, hdr: []string{"Authorization", "Bearer " + maps}, wantStatus: 200, wantBody: page.Body},
		{name: "gzip", url: path + "&access_token=" + maps, hdr: []string{"Accept-Encoding", "br, gzip"}, wantStatus: 200, wantBody: page.Gzip, wantCE: "gzip"},
		{name: "not modified", url: path + "&access_token=" + maps, hdr: []string{"If-None-Match", page.ETag}, wantStatus: 304},
		{name: "other validator", url: path + "&access_token=" + maps, hdr: []string{"If-None-Match", `"x"`}, wantStatus: 200, wantBody: page.Body},
		{name: "POST", method: "POST", url: path + "&access_token=" + maps, wantStatus: 405},
		{name: "bad connection name", url: "/api/v3/maps/-x/preview?access_token=" + maps, wantStatus: 404},
		{name: "below a source type", url: "/api/v3/maps/pg/table/preview?access_token=" + maps, wantStatus: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = http.MethodGet
			}
			req, _ := http.NewRequest(method, base+tt.url, nil)
			for i := 0; i+1 < len(tt.hdr); i += 2 {
				req.Header.Set(tt.hdr[i], tt.hdr[i+1])
			}
			res, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != tt.wantStatus {
				t.Fatalf("%s %s = %d %s, want %d", method, tt.url, res.StatusCode, body, tt.wantStatus)
			}
			switch {
			case res.StatusCode >= 400:
				if ct := res.Header.Get("Content-Type"); ct != "application/json" || !bytes.Contains(body, []byte(`"error":`)) {
					t.Errorf("error answer %q %s, want a JSON error", ct, body)
				}
				return
			case res.StatusCode == 304:
				if len(body) != 0 {
					t.Errorf("304 with a %d-byte body", len(body))
				}
			default:
				if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
					t.Errorf("Content-Type = %q, want text/html", ct)
				}
				if !bytes.Equal(body, tt.wantBody) {
					t.Errorf("body: %d bytes, want the %d of the page", len(body), len(tt.wantBody))
				}
			}
			if got := res.Header.Get("Content-Encoding"); got != tt.wantCE {
				t.Errorf("Content-Encoding = %q, want %q", got, tt.wantCE)
			}
			if got := res.Header.Get("Cache-Control"); got != "private, no-cache" {
				t.Errorf("Cache-Control = %q, want private, no-cache (the URL holds a token)", got)
			}
			if got := res.Header.Get("ETag"); got != page.ETag {
				t.Errorf("ETag = %q, want %q", got, page.ETag)
			}
			if got := res.Header.Get("Surrogate-Key"); got != "" {
				t.Errorf("Surrogate-Key = %q, want none", got)
			}
		})
	}
}
