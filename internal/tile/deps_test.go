package tile

import (
	"os/exec"
	"strings"
	"testing"
)

// TestStdlibOnly keeps the package a leaf every part of Meridian can use.
func TestStdlibOnly(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if p != "github.com/meridian-gis/meridian/internal/tile" {
			t.Errorf("internal/tile depends on %s; it must import only the standard library", p)
		}
	}
}
