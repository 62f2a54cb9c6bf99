package main

import (
	"context"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/meridian-gis/meridian/internal/broker"
	"github.com/meridian-gis/meridian/internal/broker/brokerconfig"
)

// openBroker opens the configured broker driver (see brokerconfig).
func openBroker(ctx context.Context, cfg *Config, meta *pgxpool.Pool, log *slog.Logger) (broker.Broker, error) {
	return brokerconfig.Open(ctx, cfg.Broker, meta, log)
}
