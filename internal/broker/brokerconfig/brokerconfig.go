// Package brokerconfig turns configuration into a broker: it is the one
// place that knows every driver, so that the meridian binary and the
// edge's Caddy modules open brokers the same way.
package brokerconfig

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/meridian-gis/meridian/internal/broker"
	"github.com/meridian-gis/meridian/internal/broker/pgbroker"
	"github.com/meridian-gis/meridian/internal/broker/pubsubbroker"
)

// Config chooses and configures the message broker.
type Config struct {
	// Driver is "postgres" (messages in the metadata database; no extra
	// server) or "pubsub" (Google Cloud Pub/Sub). Default: postgres.
	Driver string `json:"driver,omitempty" env:"MERIDIAN_BROKER"`
	// PubSubProject is the Google Cloud project (pubsub driver). Required
	// with that driver.
	PubSubProject string `json:"pubsub_project,omitempty" env:"MERIDIAN_PUBSUB_PROJECT"`
	// PubSubEndpoint overrides the Pub/Sub endpoint, e.g. an emulator's
	// host:port (PUBSUB_EMULATOR_HOST is honoured too). Optional.
	PubSubEndpoint string `json:"pubsub_endpoint,omitempty" env:"MERIDIAN_PUBSUB_ENDPOINT"`
	// PubSubPrefix is prepended to topic and subscription names so that
	// several deployments can share a project. Default: "meridian-".
	PubSubPrefix string `json:"pubsub_prefix,omitempty" env:"MERIDIAN_PUBSUB_PREFIX"`
	// PubSubInsecure talks plain text without credentials to
	// PubSubEndpoint (emulators, pstest). Default: false.
	PubSubInsecure bool `json:"pubsub_insecure,omitempty" env:"MERIDIAN_PUBSUB_INSECURE"`
}

// SetDefaults fills zero fields.
func (c *Config) SetDefaults() {
	if c.Driver == "" {
		c.Driver = "postgres"
	}
	if c.PubSubPrefix == "" {
		c.PubSubPrefix = "meridian-"
	}
}

// Validate reports every problem, naming the environment variable.
func (c Config) Validate() error {
	switch c.Driver {
	case "postgres", "":
		return nil
	case "pubsub":
		if c.PubSubProject == "" {
			return errors.New("MERIDIAN_PUBSUB_PROJECT is not set (required with MERIDIAN_BROKER=pubsub)")
		}
		return nil
	}
	return fmt.Errorf("MERIDIAN_BROKER %q: want postgres or pubsub", c.Driver)
}

// Open opens the configured driver. The postgres driver keeps its
// messages in the metadata database (meta); pubsub talks to Google Cloud
// Pub/Sub or an emulator.
func Open(ctx context.Context, c Config, meta *pgxpool.Pool, log *slog.Logger) (broker.Broker, error) {
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	log = log.With("component", "broker", "driver", c.Driver)
	switch c.Driver {
	case "postgres":
		if meta == nil {
			return nil, errors.New("MERIDIAN_BROKER=postgres needs the metadata database")
		}
		return pgbroker.New(meta, pgbroker.Config{}, log), nil
	default:
		pc := pubsubbroker.Config{
			ProjectID: c.PubSubProject,
			Endpoint:  c.PubSubEndpoint,
			Prefix:    c.PubSubPrefix,
			Insecure:  c.PubSubInsecure,
			// Emulators (plain-text endpoints) ignore retry policies.
			ClientBackoff: c.PubSubInsecure,
		}
		if pc.Endpoint == "" && os.Getenv("PUBSUB_EMULATOR_HOST") != "" {
			pc.Endpoint, pc.Insecure, pc.ClientBackoff = os.Getenv("PUBSUB_EMULATOR_HOST"), true, true
		}
		b, err := pubsubbroker.New(ctx, pc, log)
		if err != nil {
			return nil, fmt.Errorf("MERIDIAN_BROKER=pubsub: %w", err)
		}
		return b, nil
	}
}
