package main

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

// openBroker opens the configured broker driver. The postgres driver keeps
// its messages in the metadata database (meta); pubsub talks to Google
// Cloud Pub/Sub or an emulator.
func openBroker(ctx context.Context, cfg *Config, meta *pgxpool.Pool, log *slog.Logger) (broker.Broker, error) {
	log = log.With("component", "broker", "driver", cfg.Broker.Driver)
	switch cfg.Broker.Driver {
	case "postgres":
		if meta == nil {
			return nil, errors.New("MERIDIAN_BROKER=postgres needs the metadata database")
		}
		return pgbroker.New(meta, pgbroker.Config{}, log), nil
	case "pubsub":
		pc := pubsubbroker.Config{
			ProjectID: cfg.Broker.PubSubProject,
			Endpoint:  cfg.Broker.PubSubEndpoint,
			Prefix:    cfg.Broker.PubSubPrefix,
			Insecure:  cfg.Broker.PubSubInsecure,
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
	return nil, fmt.Errorf("MERIDIAN_BROKER %q: want postgres or pubsub", cfg.Broker.Driver)
}
