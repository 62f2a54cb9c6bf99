package tilemetrics

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("meridian_tile_metrics", parseCaddyfile)
	// First in a tiles route: it times the token check and the cache too.
	httpcaddyfile.RegisterDirectiveOrder("meridian_tile_metrics", httpcaddyfile.Before, "forward_auth")
}

// parseCaddyfile sets up the handler; it takes no arguments:
//
//	meridian_tile_metrics
func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	h.Next()
	if h.NextArg() || h.NextBlock(0) {
		return nil, h.ArgErr()
	}
	return new(Handler), nil
}
