package main

import (
	"context"
	"net/http"
	"time"

	"github.com/meridian-gis/meridian/internal/noderegistry"
)

// register adds a background heartbeat that keeps comp's row in the
// node registry: its advertised address, this binary's version, and the
// readiness its own /readyz reports.
func (nd *node) register(comp string) {
	if nd.meta == nil {
		return
	}
	listen := map[string]string{
		noderegistry.Tiles:   nd.cfg.Tiles.Addr,
		noderegistry.Control: nd.cfg.Control.Addr,
		noderegistry.Worker:  nd.cfg.Worker.Addr,
	}[comp]
	h := &noderegistry.Heartbeater{
		Node: noderegistry.Node{
			Component: comp,
			Name:      nd.cfg.Node,
			Version:   version,
			Address:   noderegistry.Advertised(listen, nd.cfg.Registry.Address, nd.cfg.Node),
			StartedAt: time.Now(),
		},
		Ready:    noderegistry.HTTPReady(&http.Client{Timeout: 2 * time.Second}, noderegistry.LocalURL(listen, "/readyz")),
		Interval: nd.cfg.Registry.Heartbeat.D(),
		Log:      nd.log.With("component", "noderegistry"),
	}
	nd.background = append(nd.background, component{"node registry " + comp, func(ctx context.Context) error {
		return h.Run(ctx, nd.meta)
	}})
}
