package main

import (
	"strings"
	"testing"

	"github.com/meridian-gis/meridian/internal/secret"
)

// Each bad setting stops startup with a message naming the setting.
func TestConfigErrorsNameTheSetting(t *testing.T) {
	good := map[string]string{
		"MERIDIAN_DATABASE_URL": "postgres://u:p@127.0.0.1:5432/meta",
		"MERIDIAN_SECRET_KEY":   secret.GenerateKey(),
	}
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"missing database URL", map[string]string{"MERIDIAN_DATABASE_URL": ""}, "MERIDIAN_DATABASE_URL is not set"},
		{"bad database URL", map[string]string{"MERIDIAN_DATABASE_URL": "postgres://u:p@host:notaport/x"}, "MERIDIAN_DATABASE_URL is not a valid"},
		{"missing secret key", map[string]string{"MERIDIAN_SECRET_KEY": ""}, "MERIDIAN_SECRET_KEY is not set"},
		{"short secret key", map[string]string{"MERIDIAN_SECRET_KEY": "c2hvcnQ="}, "MERIDIAN_SECRET_KEY"},
		{"unknown broker", map[string]string{"MERIDIAN_BROKER": "kafka"}, "MERIDIAN_BROKER"},
		{"pubsub without project", map[string]string{"MERIDIAN_BROKER": "pubsub"}, "MERIDIAN_PUBSUB_PROJECT"},
		{"bad public URL", map[string]string{"MERIDIAN_PUBLIC_URL": "localhost:8080"}, "MERIDIAN_PUBLIC_URL"},
		{"bad edge address", map[string]string{"MERIDIAN_EDGE_ADDR": "8080"}, "MERIDIAN_EDGE_ADDR"},
		{"bad log level", map[string]string{"MERIDIAN_LOG_LEVEL": "loud"}, "MERIDIAN_LOG_LEVEL"},
		{"bad worker concurrency", map[string]string{"MERIDIAN_WORKER_CONCURRENCY": "lots"}, "MERIDIAN_WORKER_CONCURRENCY"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range good {
				t.Setenv(k, v)
			}
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			_, err := loadConfig("", needs{db: true, secret: true})
			if err == nil {
				t.Fatalf("loadConfig: got nil error, want one naming %s", tt.want)
			}
			if line := oneLine(err); !strings.Contains(line, tt.want) || strings.Contains(line, "\n") {
				t.Errorf("loadConfig error = %q, want one line containing %q", line, tt.want)
			}
			if strings.Contains(err.Error(), good["MERIDIAN_SECRET_KEY"]) {
				t.Error("error echoes the secret key")
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	t.Setenv("MERIDIAN_DATABASE_URL", "postgres://u@127.0.0.1/meta")
	t.Setenv("MERIDIAN_SECRET_KEY", secret.GenerateKey())
	c, err := loadConfig("", needs{db: true, secret: true})
	if err != nil {
		t.Fatal(err)
	}
	if c.Edge.Addr != "127.0.0.1:8080" || c.Control.Addr != "127.0.0.1:8082" || c.Worker.Addr != "127.0.0.1:8083" || c.Broker.Driver != "postgres" {
		t.Errorf("defaults = %+v", c)
	}
}
