// Command meridian is Meridian's single binary: a custom Caddy v2 build
// (the standard modules plus Meridian's own) whose extra subcommands run
// the other components: `up` runs everything in one process, `tiles`,
// `control` and `worker` run one component each, and `migrate`, `token`,
// `connection` manage the metadata database. `meridian run` is Caddy's own
// run command: the edge alone, configured by a Caddyfile.
package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	"github.com/meridian-gis/meridian/caddy-modules/edgeapp"
	_ "github.com/meridian-gis/meridian/caddy-modules/nodeupstreams"
	_ "github.com/meridian-gis/meridian/caddy-modules/tagcache"
	_ "github.com/meridian-gis/meridian/caddy-modules/tilemetrics"
	_ "github.com/meridian-gis/meridian/caddy-modules/tokenauth"
	_ "github.com/meridian-gis/meridian/caddy-modules/webapps"
)

// version is set at build time: -ldflags "-X main.version=…".
var version = "dev"

func main() {
	edgeapp.BinaryVersion = version
	// Caddy registers its own "version" command; ours names both.
	if len(os.Args) == 2 && (os.Args[1] == "version" || os.Args[1] == "--version") {
		fmt.Println(versionString())
		return
	}
	caddycmd.Main()
}

func versionString() string {
	caddyVersion := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/caddyserver/caddy/v2" {
				caddyVersion = d.Version
			}
		}
	}
	return fmt.Sprintf("meridian %s (caddy %s, %s %s/%s)", version, caddyVersion, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
