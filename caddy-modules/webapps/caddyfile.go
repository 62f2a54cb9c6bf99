package webapps

import "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

// UnmarshalCaddyfile sets up the file system from Caddyfile tokens; it
// takes no arguments and no options:
//
//	filesystem <name> meridian_webapps
func (f *FS) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the module name
	if d.NextArg() {
		return d.ArgErr()
	}
	if d.NextBlock(0) {
		return d.Errf("meridian_webapps takes no options, got %q", d.Val())
	}
	return nil
}

var _ caddyfile.Unmarshaler = (*FS)(nil)
