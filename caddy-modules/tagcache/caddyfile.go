package tagcache

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("meridian_cache", parseHandler)
	httpcaddyfile.RegisterDirectiveOrder("meridian_cache", httpcaddyfile.Before, "reverse_proxy")
	httpcaddyfile.RegisterGlobalOption("meridian_cache", parseGlobal)
}

func parseHandler(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(Handler)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	meridian_cache {
//		ttl_default            <duration>
//		heuristic_max          <duration>
//		max_entry_size         <size>
//		authorization_checked
//		stale_while_revalidate <duration>
//		stale_if_error         <duration>|off
//		key_drop_query         <param...>
//		fill_timeout           <duration>
//		purge_quarantine       <duration>|off
//		max_tags               <count>
//	}
//
// Sizes accept units (8MiB, 500KB). key_drop_query replaces the default
// list (access_token client v deckglVersion).
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		var err error
		switch d.Val() {
		case "ttl_default":
			err = parseDuration(d, &h.TTLDefault)
		case "heuristic_max":
			err = parseDuration(d, &h.HeuristicMax)
		case "max_entry_size":
			err = parseSize(d, &h.MaxEntrySize)
		case "authorization_checked":
			if d.NextArg() {
				return d.ArgErr()
			}
			h.AuthorizationChecked = true
		case "stale_while_revalidate":
			err = parseDuration(d, &h.StaleWhileRevalidate)
		case "stale_if_error":
			err = parseDurationOrOff(d, &h.StaleIfError)
		case "key_drop_query":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			h.KeyDropQuery = append(h.KeyDropQuery, args...)
		case "fill_timeout":
			err = parseDuration(d, &h.FillTimeout)
		case "purge_quarantine":
			err = parseDurationOrOff(d, &h.PurgeQuarantine)
		case "max_tags":
			err = parseInt(d, &h.MaxTags)
		default:
			return d.Errf("unrecognized meridian_cache subdirective '%s'", d.Val())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// parseGlobal sets up the meridian_cache app from the global option of
// the same name. Syntax:
//
//	{
//		meridian_cache {
//			max_size       <size>
//			hot_size       <size>
//			max_entry_size <size>
//			shards         <count>
//			tag_slots      <count>
//			max_store_time <duration>
//		}
//	}
func parseGlobal(d *caddyfile.Dispenser, _ any) (any, error) {
	app := new(App)
	if err := app.UnmarshalCaddyfile(d); err != nil {
		return nil, err
	}
	return httpcaddyfile.App{
		Name:  "meridian_cache",
		Value: caddyconfig.JSON(app, nil),
	}, nil
}

// UnmarshalCaddyfile sets up the app from the meridian_cache global
// option (see parseGlobal for the syntax).
func (a *App) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // option name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		var err error
		switch d.Val() {
		case "max_size":
			err = parseSize(d, &a.MaxSize)
		case "hot_size":
			err = parseSize(d, &a.HotSize)
		case "max_entry_size":
			err = parseSize(d, &a.MaxEntrySize)
		case "shards":
			err = parseInt(d, &a.Shards)
		case "tag_slots":
			err = parseInt(d, &a.TagSlots)
		case "max_store_time":
			err = parseDuration(d, &a.MaxStoreTime)
		default:
			return d.Errf("unrecognized meridian_cache option '%s'", d.Val())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func oneArg(d *caddyfile.Dispenser) (string, error) {
	if !d.NextArg() {
		return "", d.ArgErr()
	}
	v := d.Val()
	if d.NextArg() {
		return "", d.ArgErr()
	}
	return v, nil
}

func parseDuration(d *caddyfile.Dispenser, dst *caddy.Duration) error {
	return durationArg(d, dst, false)
}

// parseDurationOrOff is parseDuration where "off" sets -1: the setting's
// feature turned off.
func parseDurationOrOff(d *caddyfile.Dispenser, dst *caddy.Duration) error {
	return durationArg(d, dst, true)
}

func durationArg(d *caddyfile.Dispenser, dst *caddy.Duration, off bool) error {
	name := d.Val()
	v, err := oneArg(d)
	if err != nil {
		return err
	}
	if off && v == "off" {
		*dst = -1
		return nil
	}
	dur, err := caddy.ParseDuration(v)
	if err != nil {
		return d.Errf("parsing %s %q: %v", name, v, err)
	}
	*dst = caddy.Duration(dur)
	return nil
}

func parseSize(d *caddyfile.Dispenser, dst *int64) error {
	name := d.Val()
	v, err := oneArg(d)
	if err != nil {
		return err
	}
	n, err := humanize.ParseBytes(v)
	if err != nil || n > 1<<62 {
		return d.Errf("parsing %s %q: not a size", name, v)
	}
	*dst = int64(n)
	return nil
}

func parseInt(d *caddyfile.Dispenser, dst *int) error {
	name := d.Val()
	v, err := oneArg(d)
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return d.Errf("parsing %s %q: not a count", name, v)
	}
	*dst = n
	return nil
}

// Interface guards
var (
	_ caddyfile.Unmarshaler = (*Handler)(nil)
	_ caddyfile.Unmarshaler = (*App)(nil)
)
