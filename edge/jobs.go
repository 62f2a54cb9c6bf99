package main

import (
	"context"

	"github.com/meridian-gis/meridian/internal/dataconn"
	"github.com/meridian-gis/meridian/workers"
)

// registerJobs subscribes the worker to the job topics it handles
// (imports, batch SQL, workspace events) and adds the background work they
// need: the worker's own data connection pools (writable, see
// workers.WritablePools) and the sweep that republishes lost jobs.
func registerJobs(r *workers.Runner, nd *node) error {
	pools := dataconn.NewPools(dataconn.New(nd.meta, nd.keyring), workers.WritablePools(), nd.log.With("component", "dataconn"))
	jobs, err := workers.Register(r, workers.JobDeps{
		Log:    nd.log.With("component", "worker"),
		Meta:   nd.meta,
		Broker: nd.broker,
		Conns:  pools,
	})
	if err != nil {
		pools.Close()
		return err
	}
	// Subscriptions exist before the control plane of this process
	// publishes its first job (the sweep covers other orders).
	if err := jobs.EnsureSubscriptions(nd.ctx); err != nil {
		pools.Close()
		return err
	}
	nd.background = append(nd.background,
		component{"job sweep", jobs.Run},
		component{"worker data connection pools", func(ctx context.Context) error {
			defer pools.Close()
			return pools.Run(ctx)
		}})
	return nil
}
