package webapps

import (
	"flag"
	"testing"

	"github.com/meridian-gis/meridian/caddy-modules/internal/adapttest"

	_ "github.com/caddyserver/caddy/v2/modules/caddyfs"              // the filesystem global option
	_ "github.com/caddyserver/caddy/v2/modules/caddyhttp/fileserver" // file_server in the golden files
)

var update = flag.Bool("update", false, "rewrite the JSON of testdata/adapt/*.caddyfiletest")

func TestCaddyfileAdapt(t *testing.T) {
	adapttest.Run(t, "testdata/adapt/*.caddyfiletest", *update)
}
