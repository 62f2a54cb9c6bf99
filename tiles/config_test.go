package tiles

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/meridian-gis/meridian/internal/config"
)

func TestConfigDefaults(t *testing.T) {
	var c Config
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	if c.Addr != "127.0.0.1:8081" || c.PathPrefix != "/api" || c.TileBudget != 512<<10 || c.TileTimeout.D() != 30*time.Second || c.Peers.Enabled() {
		t.Errorf("defaults = %+v", c)
	}
	if want := int32(max(4, 2*runtime.GOMAXPROCS(0))); c.DataMaxConns != want {
		t.Errorf("DataMaxConns = %d, want %d (twice GOMAXPROCS, at least 4)", c.DataMaxConns, want)
	}
	if c.WarmTimeout.D() != 15*time.Second {
		t.Errorf("WarmTimeout = %v, want 15s", c.WarmTimeout)
	}
}

func TestConfigFromEnv(t *testing.T) {
	env := map[string]string{
		"MERIDIAN_TILES_ADDR":        "0.0.0.0:9000",
		"MERIDIAN_TILES_TILE_BUDGET": "100000",
		"MERIDIAN_TILES_PEERS":       "http://a:8091,http://b:8091",
		"MERIDIAN_TILES_PEER_ADDR":   "10.0.0.5:8091",
		"MERIDIAN_TILES_SQL_TIMEOUT": "5s",
	}
	var c Config
	if err := config.LoadWith("", func(k string) (string, bool) { v, ok := env[k]; return v, ok }, &c); err != nil {
		t.Fatal(err)
	}
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if c.Addr != "0.0.0.0:9000" || c.TileBudget != 100000 || len(c.Peers.List) != 2 || c.Peers.Self != "http://10.0.0.5:8091" || c.SQLTimeout.D() != 5*time.Second {
		t.Errorf("config = %+v", c)
	}
}

func TestConfigValidate(t *testing.T) {
	c := Config{Addr: "nope", PathPrefix: "api/", TileBudget: 10, MaxZoom: 30, DataMaxConns: -1, Peers: PeersConfig{List: []string{"http://a"}}}
	c.SetDefaults()
	err := c.Validate()
	if err == nil {
		t.Fatal("bad config validated")
	}
	for _, want := range []string{"MERIDIAN_TILES_ADDR", "MERIDIAN_TILES_PATH_PREFIX", "MERIDIAN_TILES_TILE_BUDGET", "MERIDIAN_TILES_MAX_ZOOM", "MERIDIAN_TILES_DATA_MAX_CONNS", "MERIDIAN_TILES_PEER_ADDR"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %s: %v", want, err)
		}
	}
}
