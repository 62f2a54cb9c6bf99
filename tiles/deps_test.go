package tiles

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps keeps the data flow one-way (ARCHITECTURE.md): tiles meets
// control, workers and the Caddy modules only through the database, the
// broker and HTTP.
func TestDeps(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	const mod = "github.com/meridian-gis/meridian/"
	for _, p := range strings.Fields(string(out)) {
		for _, banned := range []string{"control", "workers", "caddy-modules", "edge"} {
			if p == mod+banned || strings.HasPrefix(p, mod+banned+"/") {
				t.Errorf("tiles depends on %s", p)
			}
		}
		if strings.HasPrefix(p, "github.com/caddyserver/") {
			t.Errorf("tiles depends on Caddy (%s)", p)
		}
	}
}
