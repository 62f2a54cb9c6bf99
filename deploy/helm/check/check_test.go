package check

import (
	"encoding/base64"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

const chartDir = "../meridian"

// base are the values a minimal install needs.
func base() map[string]any {
	return map[string]any{
		"database":  map[string]any{"url": "postgres://meridian:pw@db.example:5432/meridian"},
		"secretKey": map[string]any{"value": base64.StdEncoding.EncodeToString(make([]byte, 32))},
	}
}

// rendered holds a rendering's objects decoded by kind.
type rendered struct {
	objs        []Object
	deployments map[string]*appsv1.Deployment
	services    map[string]*corev1.Service
	hpas        map[string]*autoscalingv2.HorizontalPodAutoscaler
	jobs        map[string]*batchv1.Job
	secrets     map[string]*corev1.Secret
	configMaps  map[string]*corev1.ConfigMap
}

func render(t *testing.T, values map[string]any) *rendered {
	t.Helper()
	objs, err := Render(chartDir, "prod", "geo", values)
	if err != nil {
		t.Fatal(err)
	}
	r := &rendered{objs: objs, deployments: map[string]*appsv1.Deployment{}, services: map[string]*corev1.Service{},
		hpas: map[string]*autoscalingv2.HorizontalPodAutoscaler{}, jobs: map[string]*batchv1.Job{},
		secrets: map[string]*corev1.Secret{}, configMaps: map[string]*corev1.ConfigMap{}}
	for _, o := range objs {
		for _, msg := range validation.IsDNS1123Subdomain(o.Metadata.Name) {
			t.Errorf("%s %q: %s", o.Kind, o.Metadata.Name, msg)
		}
		var err error
		switch o.Kind {
		case "Deployment":
			v := new(appsv1.Deployment)
			err, r.deployments[o.Metadata.Name] = o.Decode(v), v
		case "Service":
			v := new(corev1.Service)
			err, r.services[o.Metadata.Name] = o.Decode(v), v
		case "HorizontalPodAutoscaler":
			v := new(autoscalingv2.HorizontalPodAutoscaler)
			err, r.hpas[o.Metadata.Name] = o.Decode(v), v
		case "Job":
			v := new(batchv1.Job)
			err, r.jobs[o.Metadata.Name] = o.Decode(v), v
		case "Secret":
			v := new(corev1.Secret)
			err, r.secrets[o.Metadata.Name] = o.Decode(v), v
		case "ConfigMap":
			v := new(corev1.ConfigMap)
			err, r.configMaps[o.Metadata.Name] = o.Decode(v), v
		case "ServiceAccount":
			err = o.Decode(new(corev1.ServiceAccount))
		default:
			t.Errorf("unexpected kind %s (%s)", o.Kind, o.Metadata.Name)
		}
		if err != nil {
			t.Error(err)
		}
	}
	return r
}

func env(c corev1.Container, name string) (corev1.EnvVar, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e, true
		}
	}
	return corev1.EnvVar{}, false
}

func TestChartLints(t *testing.T) {
	res := lint.RunAll(chartDir, base(), "geo")
	for _, m := range res.Messages {
		if m.Severity >= support.WarningSev {
			t.Errorf("helm lint: %s", m)
		}
	}
}

func TestChartObjects(t *testing.T) {
	r := render(t, base())

	// One Deployment per component, each running its own subcommand.
	wantArgs := map[string]string{"prod-meridian-edge": "run", "prod-meridian-tiles": "tiles",
		"prod-meridian-control": "control", "prod-meridian-worker": "worker"}
	if len(r.deployments) != len(wantArgs) {
		t.Errorf("Deployments = %d, want %d", len(r.deployments), len(wantArgs))
	}
	for name, arg := range wantArgs {
		d, ok := r.deployments[name]
		if !ok {
			t.Errorf("no Deployment %s", name)
			continue
		}
		if sel := d.Spec.Selector.MatchLabels; !subset(sel, d.Spec.Template.Labels) {
			t.Errorf("%s: selector %v does not match pod labels %v", name, sel, d.Spec.Template.Labels)
		}
		c := d.Spec.Template.Spec.Containers[0]
		if len(c.Args) == 0 || c.Args[0] != arg {
			t.Errorf("%s: args %v, want %s first", name, c.Args, arg)
		}
		checkProbes(t, name, c)
		checkEnv(t, r, name, c)
		checkVolumes(t, name, d.Spec.Template.Spec, c)
		if d.Spec.Template.Spec.SecurityContext == nil || d.Spec.Template.Spec.SecurityContext.RunAsNonRoot == nil || !*d.Spec.Template.Spec.SecurityContext.RunAsNonRoot {
			t.Errorf("%s: pods must run as non-root", name)
		}
	}

	// HPA for edge and tiles only, targeting their Deployments (which then
	// leave replicas to the HPA).
	if len(r.hpas) != 2 {
		t.Errorf("HPAs = %d, want 2 (edge, tiles)", len(r.hpas))
	}
	for _, name := range []string{"prod-meridian-edge", "prod-meridian-tiles"} {
		h, ok := r.hpas[name]
		if !ok {
			t.Errorf("no HPA %s", name)
			continue
		}
		if h.Spec.ScaleTargetRef.Kind != "Deployment" || r.deployments[h.Spec.ScaleTargetRef.Name] == nil {
			t.Errorf("HPA %s targets %s %s, not one of the chart's Deployments", name, h.Spec.ScaleTargetRef.Kind, h.Spec.ScaleTargetRef.Name)
		}
		if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 2 || h.Spec.MaxReplicas < *h.Spec.MinReplicas {
			t.Errorf("HPA %s: replicas %v..%d", name, h.Spec.MinReplicas, h.Spec.MaxReplicas)
		}
		if d := r.deployments[name]; d != nil && d.Spec.Replicas != nil {
			t.Errorf("%s: replicas set while an HPA scales it", name)
		}
	}

	// The headless Service of the groupcache peers: the name tiles resolve,
	// at the port they serve peers on, including pods not ready yet.
	tiles := r.deployments["prod-meridian-tiles"].Spec.Template.Spec.Containers[0]
	peers := r.services["prod-meridian-tiles-peers"]
	if peers == nil {
		t.Fatal("no headless Service prod-meridian-tiles-peers")
	}
	if peers.Spec.ClusterIP != corev1.ClusterIPNone || !peers.Spec.PublishNotReadyAddresses {
		t.Errorf("peers Service: clusterIP %q publishNotReadyAddresses %v, want None/true", peers.Spec.ClusterIP, peers.Spec.PublishNotReadyAddresses)
	}
	if e, _ := env(tiles, "MERIDIAN_TILES_PEER_DNS"); e.Value != "prod-meridian-tiles-peers.geo.svc" {
		t.Errorf("MERIDIAN_TILES_PEER_DNS = %q, want the headless Service's name", e.Value)
	}
	peerAddr, _ := env(tiles, "MERIDIAN_TILES_PEER_ADDR")
	if port := peers.Spec.Ports[0].Port; !strings.HasSuffix(peerAddr.Value, ":"+strconv.Itoa(int(port))) {
		t.Errorf("tiles peer addr %q, headless Service port %d", peerAddr.Value, port)
	}
	if e, _ := env(tiles, "MERIDIAN_TILES_PEER_TOKEN"); e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
		t.Error("tiles peer token does not come from a Secret")
	}

	// Services select their Deployment's pods and point at named ports.
	for name, s := range r.services {
		if s.Spec.ClusterIP == corev1.ClusterIPNone {
			continue
		}
		d := r.deployments[name]
		if d == nil || !subset(s.Spec.Selector, d.Spec.Template.Labels) {
			t.Errorf("Service %s selects no Deployment of the same name", name)
			continue
		}
		for _, p := range s.Spec.Ports {
			if !hasPort(d.Spec.Template.Spec.Containers[0], p.TargetPort.String()) {
				t.Errorf("Service %s: target port %s is not a container port", name, p.TargetPort.String())
			}
		}
	}

	// The edge reaches tiles and control through their Services, and
	// discovers tiles pods from the node registry.
	edge := r.deployments["prod-meridian-edge"].Spec.Template.Spec.Containers[0]
	for envName, svc := range map[string]string{"MERIDIAN_TILES_UPSTREAMS": "prod-meridian-tiles", "MERIDIAN_CONTROL_UPSTREAMS": "prod-meridian-control"} {
		e, _ := env(edge, envName)
		host, port, _ := strings.Cut(e.Value, ":")
		s := r.services[host]
		if host != svc || s == nil || strconv.Itoa(int(s.Spec.Ports[0].Port)) != port {
			t.Errorf("edge %s = %q, want %s at its Service port", envName, e.Value, svc)
		}
	}
	ctl := r.deployments["prod-meridian-control"].Spec.Template.Spec.Containers[0]
	if e, _ := env(ctl, "MERIDIAN_CONTROL_ADMIN_TOKEN"); e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil ||
		r.secrets[e.ValueFrom.SecretKeyRef.Name].Data[e.ValueFrom.SecretKeyRef.Key] == nil {
		t.Error("control's admin token does not come from a key of the chart's Secret")
	}
	if e, _ := env(edge, "MERIDIAN_EDGE_ADVERTISE"); e.Value != "$(POD_IP):8080" {
		t.Errorf("edge MERIDIAN_EDGE_ADVERTISE = %q", e.Value)
	}
	if e, _ := env(edge, "MERIDIAN_TILES_DYNAMIC"); e.Value != "dynamic meridian_nodes tiles" {
		t.Errorf("edge MERIDIAN_TILES_DYNAMIC = %q, want the node registry upstream source", e.Value)
	}
	// The edge's Caddyfile imports the one in the image and adds metrics.
	cm := r.configMaps["prod-meridian-edge"]
	if cm == nil || !strings.Contains(cm.Data["Caddyfile"], "import /etc/meridian/Caddyfile") || !strings.Contains(cm.Data["Caddyfile"], "metrics") {
		t.Errorf("edge ConfigMap Caddyfile = %v", cm)
	}
	containerfile, err := os.ReadFile("../../Containerfile")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(containerfile), "/etc/meridian/Caddyfile") {
		t.Error("deploy/Containerfile does not install the Caddyfile the edge ConfigMap imports")
	}

	// Migrations: a Job hook before install and upgrade, after the Secret
	// it reads.
	job := r.jobs["prod-meridian-migrate"]
	if job == nil {
		t.Fatal("no migrations Job")
	}
	jobObj := find(r.objs, "Job", "prod-meridian-migrate")
	hooks := strings.Split(jobObj.Metadata.Annotations["helm.sh/hook"], ",")
	if !slices.Contains(hooks, "pre-install") || !slices.Contains(hooks, "pre-upgrade") {
		t.Errorf("migrations Job hooks %v, want pre-install and pre-upgrade", hooks)
	}
	if args := job.Spec.Template.Spec.Containers[0].Args; len(args) != 1 || args[0] != "migrate" {
		t.Errorf("migrations Job args %v, want [migrate]", args)
	}
	if job.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyNever || job.Spec.ActiveDeadlineSeconds == nil {
		t.Error("migrations Job: want restartPolicy Never and a deadline")
	}
	checkEnv(t, r, "migrate Job", job.Spec.Template.Spec.Containers[0])
	secObj := find(r.objs, "Secret", "prod-meridian")
	if secObj == nil {
		t.Fatal("no Secret prod-meridian")
	}
	sw, _ := strconv.Atoi(secObj.Metadata.Annotations["helm.sh/hook-weight"])
	jw, _ := strconv.Atoi(jobObj.Metadata.Annotations["helm.sh/hook-weight"])
	if !strings.Contains(secObj.Metadata.Annotations["helm.sh/hook"], "pre-install") || sw >= jw {
		t.Errorf("Secret hook %q weight %d, Job weight %d: the Secret must exist before the Job", secObj.Metadata.Annotations["helm.sh/hook"], sw, jw)
	}
	if secObj.Metadata.Annotations["helm.sh/resource-policy"] != "keep" {
		t.Error("the Secret holding the sealing key must be kept on uninstall")
	}
}

// checkProbes: readiness on /readyz and liveness on /healthz, on a port the
// container declares.
func checkProbes(t *testing.T, name string, c corev1.Container) {
	t.Helper()
	for _, p := range []struct {
		kind  string
		probe *corev1.Probe
		path  string
	}{{"readiness", c.ReadinessProbe, "/readyz"}, {"liveness", c.LivenessProbe, "/healthz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("%s: no HTTP %s probe", name, p.kind)
			continue
		}
		if p.probe.HTTPGet.Path != p.path {
			t.Errorf("%s: %s probe path %q, want %q", name, p.kind, p.probe.HTTPGet.Path, p.path)
		}
		if !hasPort(c, p.probe.HTTPGet.Port.String()) {
			t.Errorf("%s: %s probe port %s is not a container port", name, p.kind, p.probe.HTTPGet.Port.String())
		}
	}
}

// checkEnv: the metadata database and sealing key come from Secret keys
// that exist, and every $(VAR) reference names a variable defined before.
func checkEnv(t *testing.T, r *rendered, name string, c corev1.Container) {
	t.Helper()
	for _, want := range []string{"MERIDIAN_DATABASE_URL", "MERIDIAN_SECRET_KEY"} {
		e, ok := env(c, want)
		if !ok || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
			t.Errorf("%s: %s not from a Secret", name, want)
			continue
		}
		ref := e.ValueFrom.SecretKeyRef
		if s := r.secrets[ref.Name]; s != nil {
			if _, ok := s.Data[ref.Key]; !ok {
				t.Errorf("%s: %s from Secret %s key %s, which the Secret lacks", name, want, ref.Name, ref.Key)
			}
		}
	}
	for _, want := range []string{"MERIDIAN_BROKER", "MERIDIAN_NODE", "MERIDIAN_NODE_ADDR"} {
		if _, ok := env(c, want); !ok {
			t.Errorf("%s: %s not set", name, want)
		}
	}
	ref := regexp.MustCompile(`\$\(([A-Z_]+)\)`)
	defined := map[string]bool{}
	for _, e := range c.Env {
		for _, m := range ref.FindAllStringSubmatch(e.Value, -1) {
			if !defined[m[1]] {
				t.Errorf("%s: %s refers to $(%s), not defined before it", name, e.Name, m[1])
			}
		}
		if defined[e.Name] {
			t.Errorf("%s: %s set twice", name, e.Name)
		}
		defined[e.Name] = true
	}
}

// checkVolumes: every mount names a volume of the pod.
func checkVolumes(t *testing.T, name string, pod corev1.PodSpec, c corev1.Container) {
	t.Helper()
	for _, m := range c.VolumeMounts {
		if !slices.ContainsFunc(pod.Volumes, func(v corev1.Volume) bool { return v.Name == m.Name }) {
			t.Errorf("%s: mount %s has no volume", name, m.Name)
		}
	}
}

func TestChartPubSub(t *testing.T) {
	v := base()
	v["broker"] = map[string]any{"driver": "pubsub", "pubsub": map[string]any{"project": "geo-prod", "credentialsSecret": "pubsub-sa"}}
	v["database"] = map[string]any{"existingSecret": "managed-pg", "existingSecretKey": "url"}
	r := render(t, v)
	for name, d := range r.deployments {
		c := d.Spec.Template.Spec.Containers[0]
		if e, _ := env(c, "MERIDIAN_BROKER"); e.Value != "pubsub" {
			t.Errorf("%s: MERIDIAN_BROKER = %q", name, e.Value)
		}
		if e, _ := env(c, "MERIDIAN_PUBSUB_PROJECT"); e.Value != "geo-prod" {
			t.Errorf("%s: MERIDIAN_PUBSUB_PROJECT = %q", name, e.Value)
		}
		e, _ := env(c, "GOOGLE_APPLICATION_CREDENTIALS")
		if !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return strings.HasPrefix(e.Value, m.MountPath+"/") }) {
			t.Errorf("%s: GOOGLE_APPLICATION_CREDENTIALS %q is not on a mounted volume", name, e.Value)
		}
		if db, _ := env(c, "MERIDIAN_DATABASE_URL"); db.ValueFrom.SecretKeyRef.Name != "managed-pg" || db.ValueFrom.SecretKeyRef.Key != "url" {
			t.Errorf("%s: external Postgres secret not used: %+v", name, db.ValueFrom.SecretKeyRef)
		}
		checkVolumes(t, name, d.Spec.Template.Spec, c)
	}
	if s := r.secrets["prod-meridian"]; s == nil || s.Data["database-url"] != nil {
		t.Error("with database.existingSecret the chart's Secret must not hold a database URL")
	}
}

func TestChartRejectsMissingSettings(t *testing.T) {
	tests := []struct {
		name   string
		values map[string]any
		want   string
	}{
		{"no database", map[string]any{"secretKey": map[string]any{"value": "x"}}, "database.url"},
		{"no secret key", map[string]any{"database": map[string]any{"url": "postgres://x"}}, "secretKey.value"},
		{"pubsub without project", func() map[string]any {
			v := base()
			v["broker"] = map[string]any{"driver": "pubsub"}
			return v
		}(), "broker.pubsub.project"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Render(chartDir, "prod", "geo", tt.values)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Render error = %v, want one naming %s", err, tt.want)
			}
		})
	}
}

func TestChartWithoutHPA(t *testing.T) {
	v := base()
	v["edge"] = map[string]any{"hpa": map[string]any{"enabled": false}, "replicas": 3}
	r := render(t, v)
	if _, ok := r.hpas["prod-meridian-edge"]; ok {
		t.Error("edge HPA rendered with edge.hpa.enabled=false")
	}
	if d := r.deployments["prod-meridian-edge"]; d.Spec.Replicas == nil || *d.Spec.Replicas != 3 {
		t.Errorf("edge replicas = %v, want 3", d.Spec.Replicas)
	}
}

func subset(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func hasPort(c corev1.Container, port string) bool {
	for _, p := range c.Ports {
		if p.Name == port || strconv.Itoa(int(p.ContainerPort)) == port {
			return true
		}
	}
	return false
}

func find(objs []Object, kind, name string) *Object {
	for i := range objs {
		if objs[i].Kind == kind && objs[i].Metadata.Name == name {
			return &objs[i]
		}
	}
	return nil
}
