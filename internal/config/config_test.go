package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type inner struct {
	Addr    string   `json:"addr" env:"T_ADDR"`
	Timeout Duration `json:"timeout" env:"T_TIMEOUT"`
}

type outer struct {
	Name  string   `json:"name" env:"T_NAME"`
	Conns int      `json:"conns" env:"T_CONNS"`
	Debug bool     `json:"debug" env:"T_DEBUG"`
	Peers []string `json:"peers" env:"T_PEERS"`
	Inner inner    `json:"inner"`
}

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestLoadFileThenEnv(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.json")
	os.WriteFile(p, []byte(`{"name":"file","conns":4,"inner":{"addr":":1","timeout":"2s"}}`), 0o600)
	var c outer
	err := LoadWith(p, env(map[string]string{"T_NAME": "env", "T_PEERS": "a, b,,c", "T_TIMEOUT": "3s"}), &c)
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "env" || c.Conns != 4 || c.Inner.Addr != ":1" || c.Inner.Timeout.D() != 3*time.Second {
		t.Errorf("got %+v", c)
	}
	if strings.Join(c.Peers, "|") != "a|b|c" {
		t.Errorf("peers = %q, want a|b|c", c.Peers)
	}
}

func TestLoadErrorsNameTheSetting(t *testing.T) {
	tests := []struct {
		name, file string
		env        map[string]string
		want       string
	}{
		{"bad int", "", map[string]string{"T_CONNS": "many"}, "T_CONNS"},
		{"bad bool", "", map[string]string{"T_DEBUG": "maybe"}, "T_DEBUG"},
		{"bad duration", "", map[string]string{"T_TIMEOUT": "soon"}, "T_TIMEOUT"},
		{"unknown field", `{"nmae":"x"}`, nil, "nmae"},
		{"bad json duration", `{"inner":{"timeout":"later"}}`, nil, "later"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := ""
			if tt.file != "" {
				p = filepath.Join(t.TempDir(), "c.json")
				os.WriteFile(p, []byte(tt.file), 0o600)
			}
			var c outer
			err := LoadWith(p, env(tt.env), &c)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("LoadWith error = %v, want one naming %q", err, tt.want)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	var c outer
	if err := LoadWith("/nonexistent/meridian.json", env(nil), &c); err == nil {
		t.Error("missing file: got nil error")
	}
}
