// Package webapps is the Caddy file system "caddy.fs.meridian_webapps":
// Meridian's web apps (the workspace and the accounts app) as embedded in
// the binary, laid out as static.WebApps serves them (index.html,
// acc/index.html, assets/…). A Caddyfile names it with the global
// filesystem option and serves it with file_server:
//
//	{
//		filesystem webapps meridian_webapps
//	}
//	… {
//		fs webapps
//		file_server
//	}
package webapps

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/caddyserver/caddy/v2"

	"github.com/meridian-gis/meridian/static"
)

func init() {
	caddy.RegisterModule(FS{})
}

// FS serves the web apps embedded in the binary. It has no options.
type FS struct {
	apps fs.FS
}

// CaddyModule returns the Caddy module information.
func (FS) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "caddy.fs.meridian_webapps", New: func() caddy.Module { return new(FS) }}
}

// Provision loads the apps (built once per process and shared).
func (f *FS) Provision(caddy.Context) error {
	apps, err := static.WebApps()
	if err != nil {
		return fmt.Errorf("loading the web apps: %w", err)
	}
	f.apps = apps
	return nil
}

// Open implements fs.FS.
func (f *FS) Open(name string) (fs.File, error) {
	if f.apps == nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: errors.New("meridian_webapps: not provisioned")}
	}
	return f.apps.Open(name)
}

// Interface guards.
var (
	_ fs.FS             = (*FS)(nil)
	_ caddy.Provisioner = (*FS)(nil)
)
