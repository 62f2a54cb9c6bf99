package check

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// TestEdgeCaddyfileAdapts feeds the edge ConfigMap's Caddyfile (which
// imports the image's /etc/meridian/Caddyfile, here the repository's) to
// the real binary's `meridian adapt` with the edge Deployment's
// environment, so the chart's env wiring and the Caddyfile agree: the
// tiles upstreams come from the node registry with the Service as the
// fallback, and the metrics listener exists. It needs MERIDIAN_BINARY
// (make test sets it); without it the test is skipped, or fails under
// MERIDIAN_REQUIRE_DB (CI).
func TestEdgeCaddyfileAdapts(t *testing.T) {
	bin := os.Getenv("MERIDIAN_BINARY")
	if bin == "" {
		if os.Getenv("MERIDIAN_REQUIRE_DB") != "" {
			t.Fatal("MERIDIAN_BINARY is not set (make test builds bin/meridian and sets it)")
		}
		t.Skip("set MERIDIAN_BINARY to a built meridian binary")
	}
	r := render(t, base())
	cm := r.configMaps["prod-meridian-edge"]
	root, _ := filepath.Abs(filepath.Join(repoRoot, "Caddyfile"))
	cf := strings.Replace(cm.Data["Caddyfile"], "import /etc/meridian/Caddyfile", "import "+root, 1)
	path := filepath.Join(t.TempDir(), "Caddyfile")
	if err := os.WriteFile(path, []byte(cf), 0o600); err != nil {
		t.Fatal(err)
	}
	edge := r.deployments["prod-meridian-edge"].Spec.Template.Spec.Containers[0]
	cmd := exec.Command(bin, "adapt", "--config", path, "--adapter", "caddyfile")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	for _, e := range edge.Env {
		if e.ValueFrom == nil {
			cmd.Env = append(cmd.Env, e.Name+"="+expand(e.Value, edge.Env))
		}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("meridian adapt of the chart's edge Caddyfile: %v\n%s", err, out)
	}
	js := string(out)
	for _, want := range []string{
		`"source":"meridian_nodes"`,         // tiles from the node registry
		`"dial":"prod-meridian-tiles:8081"`, // the Service as the fallback
		`"dial":"prod-meridian-control:8082"`,
		`"handler":"metrics"`, // the metrics listener
		`":9180"`,
		`"handler":"meridian_tile_metrics"`,
	} {
		if !strings.Contains(js, want) {
			t.Errorf("adapted edge config lacks %s:\n%s", want, js)
		}
	}
}

// expand replaces $(NAME) references the way Kubernetes does, with a
// placeholder for values that come from the pod (fieldRef, secrets).
func expand(v string, env []corev1.EnvVar) string {
	for _, e := range env {
		val := e.Value
		if e.ValueFrom != nil {
			val = "10.0.0.1"
		}
		v = strings.ReplaceAll(v, "$("+e.Name+")", val)
	}
	return v
}
