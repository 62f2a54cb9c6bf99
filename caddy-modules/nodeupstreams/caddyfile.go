package nodeupstreams

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// UnmarshalCaddyfile sets up the source from Caddyfile tokens:
//
//	dynamic meridian_nodes [<component>] {
//		refresh         <duration>
//		stale_after     <duration>
//		health_uri      <path>
//		health_interval <duration>
//		health_timeout  <duration>
//	}
func (s *Source) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the source name
	if d.NextArg() {
		s.Component = d.Val()
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		opt := d.Val()
		if !d.NextArg() {
			return d.ArgErr()
		}
		val := d.Val()
		if d.NextArg() {
			return d.ArgErr()
		}
		if opt == "health_uri" {
			s.HealthURI = val
			continue
		}
		dur, err := caddy.ParseDuration(val)
		if err != nil {
			return d.Errf("%s: %v", opt, err)
		}
		switch opt {
		case "refresh":
			s.Refresh = caddy.Duration(dur)
		case "stale_after":
			s.StaleAfter = caddy.Duration(dur)
		case "health_interval":
			s.HealthInterval = caddy.Duration(dur)
		case "health_timeout":
			s.HealthTimeout = caddy.Duration(dur)
		default:
			return d.Errf("unknown meridian_nodes option %q", opt)
		}
	}
	return nil
}

var _ caddyfile.Unmarshaler = (*Source)(nil)
