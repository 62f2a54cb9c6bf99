package tagcache

import (
	"flag"
	"testing"

	"github.com/meridian-gis/meridian/caddy-modules/internal/adapttest"
)

var update = flag.Bool("update", false, "rewrite the JSON of testdata/adapt/*.caddyfiletest")

func TestCaddyfileAdapt(t *testing.T) {
	adapttest.Run(t, "testdata/adapt/*.caddyfiletest", *update)
}
