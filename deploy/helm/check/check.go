// Package check renders the Helm chart in deploy/helm/meridian with Helm's
// own engine and decodes every object into its Kubernetes API type, so CI
// validates what a cluster would receive (kinds, hooks, probes, env
// wiring) without a cluster or the helm binary. It is its own Go module:
// Helm brings the Kubernetes modules, which the main module does not need.
package check

import (
	"bytes"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"

	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	"sigs.k8s.io/yaml"
)

// Object is one rendered manifest: its source template, kind, name and
// the YAML document, to decode into a typed object with Decode.
type Object struct {
	Template   string
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name        string            `json:"name"`
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
	Doc []byte
}

// Decode strictly decodes the object into v (unknown fields are errors,
// as a Kubernetes API server with field validation would report them).
func (o Object) Decode(v any) error {
	if err := yaml.UnmarshalStrict(o.Doc, v); err != nil {
		return fmt.Errorf("decoding %s %s (%s): %w", o.Kind, o.Metadata.Name, o.Template, err)
	}
	return nil
}

// Render renders the chart in dir as release name in namespace with the
// given values (merged over values.yaml) and returns its objects, hooks
// included, in template order.
func Render(dir, name, namespace string, values map[string]any) ([]Object, error) {
	ch, err := loader.LoadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("loading chart %s: %w", dir, err)
	}
	vals, err := util.ToRenderValues(ch, values, common.ReleaseOptions{Name: name, Namespace: namespace, IsInstall: true, Revision: 1}, nil)
	if err != nil {
		return nil, fmt.Errorf("preparing values: %w", err)
	}
	files, err := engine.Render(ch, vals)
	if err != nil {
		return nil, fmt.Errorf("rendering: %w", err)
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []Object
	var errs []error
	for _, n := range names {
		if path.Ext(n) != ".yaml" {
			continue
		}
		for _, doc := range splitDocs(files[n]) {
			o := Object{Template: n, Doc: doc}
			if err := yaml.Unmarshal(doc, &o); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", n, err))
				continue
			}
			if o.Kind == "" || o.APIVersion == "" || o.Metadata.Name == "" {
				errs = append(errs, fmt.Errorf("%s: a document without kind, apiVersion or name:\n%s", n, doc))
				continue
			}
			out = append(out, o)
		}
	}
	return out, errors.Join(errs...)
}

// splitDocs splits a rendered file into its non-empty YAML documents.
func splitDocs(s string) [][]byte {
	var docs [][]byte
	for _, d := range strings.Split("\n"+s, "\n---") {
		b := bytes.TrimSpace([]byte(d))
		if len(bytes.TrimSpace(stripComments(b))) > 0 {
			docs = append(docs, b)
		}
	}
	return docs
}

func stripComments(b []byte) []byte {
	var out []byte
	for _, l := range bytes.Split(b, []byte("\n")) {
		if t := bytes.TrimSpace(l); len(t) > 0 && t[0] != '#' {
			out = append(out, l...)
			out = append(out, '\n')
		}
	}
	return out
}
