package obs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHealthEndpoints(t *testing.T) {
	h := NewHealth()
	fail := false
	h.Add("db", func(context.Context) error {
		if fail {
			return errors.New("db down")
		}
		return nil
	})
	mux := http.NewServeMux()
	h.Mount(mux, NewRegistry())
	srv := httptest.NewServer(mux)
	defer srv.Close()

	get := func(path string) (int, string) {
		res, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(res.Body)
		return res.StatusCode, b.String()
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz = %d, want 200", code)
	}
	if code, body := get("/readyz"); code != 200 || !strings.Contains(body, `"db":"ok"`) {
		t.Errorf("/readyz = %d %s, want 200 with db ok", code, body)
	}
	fail = true
	code, body := get("/readyz")
	var rep Report
	json.Unmarshal([]byte(body), &rep)
	if code != 503 || rep.Checks["db"] != "db down" {
		t.Errorf("/readyz with failing check = %d %s, want 503 naming db", code, body)
	}
	fail = false
	h.SetDraining()
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "draining") {
		t.Errorf("/readyz while draining = %d %s, want 503 draining", code, body)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "go_goroutines") {
		t.Errorf("/metrics = %d, want 200 with go collector", code)
	}
}

func TestLogConfigValidate(t *testing.T) {
	tests := []struct {
		c    LogConfig
		want bool
	}{
		{LogConfig{}, true},
		{LogConfig{Level: "debug", Format: "text"}, true},
		{LogConfig{Level: "loud"}, false},
		{LogConfig{Format: "xml"}, false},
	}
	for _, tt := range tests {
		if err := tt.c.Validate(); (err == nil) != tt.want {
			t.Errorf("Validate(%+v) = %v, want ok=%v", tt.c, err, tt.want)
		}
	}
}
