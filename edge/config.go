package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/meridian-gis/meridian/control"
	"github.com/meridian-gis/meridian/internal/broker/brokerconfig"
	"github.com/meridian-gis/meridian/internal/config"
	"github.com/meridian-gis/meridian/internal/obs"
	"github.com/meridian-gis/meridian/internal/secret"
	"github.com/meridian-gis/meridian/tiles"
	"github.com/meridian-gis/meridian/workers"
)

// Config is the whole configuration of the meridian binary: one section
// per component plus what they share. It is read from an optional JSON
// file (--config) and then from MERIDIAN_* environment variables, which
// win.
type Config struct {
	// DatabaseURL is the metadata database (PostgreSQL). Required.
	DatabaseURL string `json:"database_url,omitempty" env:"MERIDIAN_DATABASE_URL"`
	// SecretKey seals secrets at rest (data connection credentials,
	// signing keys): a base64 32-byte key, or "id1:key1,id2:key2" where
	// the first is used to seal and all open. Required for every
	// component. Never logged.
	SecretKey string `json:"secret_key,omitempty" env:"MERIDIAN_SECRET_KEY"`
	// PublicURL is the edge's address as clients see it; absolute URLs
	// handed out (TileJSON, tiles) start with it. Default:
	// http://localhost:8080.
	PublicURL string `json:"public_url,omitempty" env:"MERIDIAN_PUBLIC_URL"`
	// Node names this process in fan-out subscriptions and logs. Default:
	// the host name.
	Node string `json:"node,omitempty" env:"MERIDIAN_NODE"`
	// MetaMaxConns caps connections to the metadata database. Default: 10.
	MetaMaxConns int32 `json:"meta_max_conns,omitempty" env:"MERIDIAN_META_MAX_CONNS"`

	Log      obs.LogConfig       `json:"log"`
	Registry RegistryConfig      `json:"registry"`
	Broker   brokerconfig.Config `json:"broker"`
	Edge     EdgeConfig          `json:"edge"`
	Control  control.Config      `json:"control"`
	Worker   workers.Config      `json:"worker"`
	Tiles    tiles.Config        `json:"tiles"`
}

// EdgeConfig configures the edge (the Caddy server) under `meridian up`.
type EdgeConfig struct {
	// Addr the edge listens on for plain HTTP. Default: 127.0.0.1:8080.
	Addr string `json:"addr,omitempty" env:"MERIDIAN_EDGE_ADDR"`
	// SiteAddress, when set to a domain name, makes the edge serve that
	// site with automatic HTTPS instead of plain HTTP on Addr. Optional.
	SiteAddress string `json:"site_address,omitempty" env:"MERIDIAN_SITE_ADDRESS"`
	// AdminAddr is Caddy's admin API (config, metrics, cache purge).
	// Default: 127.0.0.1:2019.
	AdminAddr string `json:"admin_addr,omitempty" env:"MERIDIAN_ADMIN_ADDR"`
	// Caddyfile is the edge configuration to load. Default: the Caddyfile
	// embedded in the binary (the repository's ./Caddyfile).
	Caddyfile string `json:"caddyfile,omitempty" env:"MERIDIAN_CADDYFILE"`
}

// RegistryConfig configures how this process's components register in
// the node registry (internal/noderegistry).
type RegistryConfig struct {
	// Address is the host name or IP other nodes reach this process on;
	// each component registers it with its own port. Default: the host of
	// the component's listen address, or the host name when it listens on
	// every interface.
	Address string `json:"address,omitempty" env:"MERIDIAN_NODE_ADDR"`
	// Heartbeat is how often each component reports its readiness.
	// Default: 5s.
	Heartbeat config.Duration `json:"heartbeat,omitempty" env:"MERIDIAN_NODE_HEARTBEAT"`
}

func (c *Config) setDefaults() {
	if c.PublicURL == "" {
		c.PublicURL = "http://localhost:8080"
	}
	if c.Node == "" {
		c.Node, _ = os.Hostname()
		if c.Node == "" {
			c.Node = "node"
		}
	}
	if c.MetaMaxConns == 0 {
		c.MetaMaxConns = 10
	}
	if c.Registry.Heartbeat == 0 {
		c.Registry.Heartbeat = config.Duration(5 * time.Second)
	}
	c.Broker.SetDefaults()
	if c.Edge.Addr == "" {
		c.Edge.Addr = "127.0.0.1:8080"
	}
	if c.Edge.AdminAddr == "" {
		c.Edge.AdminAddr = "127.0.0.1:2019"
	}
	c.Control.SetDefaults()
	c.Worker.SetDefaults()
	c.Tiles.SetDefaults()
}

// needs says which settings a command requires.
type needs struct {
	db, secret bool
}

// validate returns every problem, each naming its setting.
func (c *Config) validate(n needs) error {
	var errs []error
	if n.db {
		switch {
		case c.DatabaseURL == "":
			errs = append(errs, errors.New("MERIDIAN_DATABASE_URL is not set: the metadata database URL, e.g. postgres://meridian:…@127.0.0.1:5432/meridian"))
		default:
			if _, err := pgxpool.ParseConfig(c.DatabaseURL); err != nil {
				errs = append(errs, errors.New("MERIDIAN_DATABASE_URL is not a valid PostgreSQL URL"))
			}
		}
	}
	if n.secret {
		if c.SecretKey == "" {
			errs = append(errs, errors.New("MERIDIAN_SECRET_KEY is not set: a base64 32-byte key that seals secrets at rest (generate one with: head -c32 /dev/urandom | base64)"))
		} else if _, err := secret.ParseKeyring(c.SecretKey); err != nil {
			errs = append(errs, fmt.Errorf("MERIDIAN_SECRET_KEY: %w", err))
		}
	}
	if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("MERIDIAN_PUBLIC_URL %q: want an absolute http(s) URL", c.PublicURL))
	}
	if err := c.Broker.Validate(); err != nil {
		errs = append(errs, err)
	}
	for name, addr := range map[string]string{
		"MERIDIAN_EDGE_ADDR": c.Edge.Addr, "MERIDIAN_ADMIN_ADDR": c.Edge.AdminAddr,
		"MERIDIAN_CONTROL_ADDR": c.Control.Addr, "MERIDIAN_WORKER_ADDR": c.Worker.Addr, "MERIDIAN_TILES_ADDR": c.Tiles.Addr,
	} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: want host:port", name, addr))
		}
	}
	for _, err := range []error{c.Log.Validate(), c.Control.Validate(), c.Worker.Validate(), c.Tiles.Validate()} {
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// loadConfig reads the file (when path is set) and the environment, sets
// defaults and validates for the command's needs.
func loadConfig(path string, n needs) (*Config, error) {
	var c Config
	if err := config.Load(path, &c); err != nil {
		return nil, err
	}
	c.setDefaults()
	if err := c.validate(n); err != nil {
		return nil, err
	}
	return &c, nil
}

// oneLine flattens a joined error into one line for the terminal.
func oneLine(err error) string {
	s := strings.ReplaceAll(err.Error(), "\n", "; ")
	s = strings.ReplaceAll(s, "\t", "")
	return strings.ReplaceAll(s, ":; ", ": ")
}
