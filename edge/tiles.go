package main

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/meridian-gis/meridian/internal/broker"
	"github.com/meridian-gis/meridian/internal/dataconn"
	"github.com/meridian-gis/meridian/internal/grant"
	"github.com/meridian-gis/meridian/internal/tokenstore"
	"github.com/meridian-gis/meridian/tiles"
)

// tilesComponent builds a tiles node: data connection pools (credentials
// opened with the keyring), the node's token verifier, and its own
// invalidation subscription ("tiles-<node>-invalidations"), so that every
// tiles node bumps the generations of what changed.
func (nd *node) tilesComponent() (component, error) {
	store := dataconn.New(nd.meta, nd.keyring)
	pools := dataconn.NewPools(store, dataconn.PoolsConfig{ApplicationName: "meridian-tiles", MaxConns: nd.cfg.Tiles.DataMaxConns}, nd.log.With("component", "dataconn"))
	srv, err := tiles.New(nd.cfg.Tiles, tiles.Deps{
		Log:       nd.log.With("component", "tiles"),
		Conns:     pools,
		Auth:      watcherAuth{ctx: nd.ctx, w: nd.tokens},
		Metrics:   nd.metrics,
		PublicURL: nd.cfg.PublicURL,
		// Every connection: the engine warms those whose databases hold
		// overview copies (tables served a lot).
		WarmConns: func(ctx context.Context) ([]string, error) {
			v, err := store.Versions(ctx)
			return slices.Sorted(maps.Keys(v)), err
		},
	})
	if err != nil {
		pools.Close()
		return component{}, err
	}
	if nd.broker != nil {
		sub := broker.Subscription{
			Topic:       broker.TopicInvalidations,
			Name:        "tiles-" + nd.cfg.Node + "-invalidations",
			Concurrency: 4,
			ExpireAfter: 7 * 24 * time.Hour,
			// Purging is cheap and idempotent: purge from the publish
			// notification, without waiting for the claim's round trip.
			EarlyDelivery: true,
		}
		nd.background = append(nd.background, component{"tiles invalidations", func(ctx context.Context) error {
			return nd.broker.Receive(ctx, sub, srv.HandleInvalidation)
		}})
	}
	// Saturation of the data connections' pools, as data/<connection>.
	nd.pools.AddSource(func() map[string]*pgxpool.Stat {
		out := map[string]*pgxpool.Stat{}
		for name, st := range pools.Stats() {
			out["data/"+name] = st
		}
		return out
	})
	// The pools close only once the server has drained: a request still
	// in flight at shutdown must not find them closed.
	drained := make(chan struct{})
	nd.background = append(nd.background, component{"data connection pools", func(ctx context.Context) error {
		defer pools.Close()
		err := pools.Run(ctx)
		<-drained
		return err
	}})
	return component{"tiles", func(ctx context.Context) error {
		defer close(drained)
		return srv.Run(ctx)
	}}, nil
}

// watcherAuth lets the tiles engine verify tokens through the node's
// watcher, which reloads signing keys when a token names an unknown one;
// that reload runs under the process's context (it is shared and
// rate-limited, not tied to the request that noticed the new key).
type watcherAuth struct {
	ctx context.Context
	w   *tokenstore.Watcher
}

func (a watcherAuth) VerifyBytes(tok []byte, now time.Time) (*grant.Claims, error) {
	return a.w.VerifyBytes(a.ctx, tok, now)
}
