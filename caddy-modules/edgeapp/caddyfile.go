package edgeapp

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

func init() {
	httpcaddyfile.RegisterGlobalOption("meridian", parseGlobal)
}

// parseGlobal sets up the meridian app from the global option:
//
//	meridian {
//		database_url   <url>
//		broker         postgres|pubsub [<project>]
//		pubsub_endpoint <host:port>
//		pubsub_insecure
//		node           <name>
//		address        <host:port>
//		version        <version>
//		max_conns      <n>
//		reload_interval <duration>
//	}
func parseGlobal(d *caddyfile.Dispenser, _ any) (any, error) {
	app := new(App)
	d.Next() // the option name
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "database_url":
			if !d.NextArg() {
				return nil, d.ArgErr()
			}
			app.DatabaseURL = d.Val()
		case "broker":
			if !d.NextArg() {
				return nil, d.ArgErr()
			}
			app.Broker.Driver = d.Val()
			if d.NextArg() {
				app.Broker.PubSubProject = d.Val()
			}
		case "pubsub_endpoint":
			if !d.NextArg() {
				return nil, d.ArgErr()
			}
			app.Broker.PubSubEndpoint = d.Val()
		case "pubsub_insecure":
			app.Broker.PubSubInsecure = true
		case "node":
			if !d.NextArg() {
				return nil, d.ArgErr()
			}
			app.Node = d.Val()
		case "address":
			if !d.NextArg() {
				return nil, d.ArgErr()
			}
			app.Address = d.Val()
		case "version":
			if !d.NextArg() {
				return nil, d.ArgErr()
			}
			app.Version = d.Val()
		case "max_conns":
			if !d.NextArg() {
				return nil, d.ArgErr()
			}
			n, err := strconv.ParseInt(d.Val(), 10, 32)
			if err != nil {
				return nil, d.Errf("max_conns: %v", err)
			}
			app.MaxConns = int32(n)
		case "reload_interval":
			if !d.NextArg() {
				return nil, d.ArgErr()
			}
			dur, err := caddy.ParseDuration(d.Val())
			if err != nil {
				return nil, d.Errf("reload_interval: %v", err)
			}
			app.ReloadInterval = caddy.Duration(dur)
		default:
			return nil, d.Errf("unknown meridian option %q", d.Val())
		}
	}
	return httpcaddyfile.App{Name: "meridian", Value: caddyconfig.JSON(app, nil)}, nil
}
