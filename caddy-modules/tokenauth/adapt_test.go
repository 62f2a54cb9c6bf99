package tokenauth

import (
	"flag"
	"testing"

	"github.com/meridian-gis/meridian/caddy-modules/internal/adapttest"

	_ "github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	_ "github.com/meridian-gis/meridian/caddy-modules/tagcache" // meridian_cache in the golden files
)

var update = flag.Bool("update", false, "rewrite the JSON of testdata/adapt/*.caddyfiletest")

func TestCaddyfileAdapt(t *testing.T) {
	adapttest.Run(t, "testdata/adapt/*.caddyfiletest", *update)
}
