package controltest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/meridian-gis/meridian/internal/grant"
	"github.com/meridian-gis/meridian/internal/identity"
	"github.com/meridian-gis/meridian/internal/tokenstore"
)

// What the APIs that take API access tokens (imports, batch SQL jobs)
// need in tests: tokens with grants, calls with a bearer token, uploads
// and the shared test data (the broker's messages: brokertest.Subscribe).

// Token creates an API access token of the default organization allowing
// apis with grants.
func (e *Env) Token(t testing.TB, apis []grant.API, grants ...grant.Grant) string {
	t.Helper()
	return e.OrgToken(t, identity.DefaultOrg, apis, grants...)
}

// OrgToken creates an API access token of org allowing apis with grants.
func (e *Env) OrgToken(t testing.TB, org string, apis []grant.API, grants ...grant.Grant) string {
	t.Helper()
	if org == identity.DefaultOrg {
		org = "" // as tokens of the default organization are made
	}
	tok, _, err := e.Tokens.Create(context.Background(), tokenstore.Spec{Org: org, Owner: "tester", Grants: grants, APIs: apis})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Call sends a request with token as its bearer (none when empty) and
// decodes the JSON answer into out (when not nil); it returns the status
// and the answer as a map. It fails t when the answer is not JSON.
func (e *Env) Call(t testing.TB, method, path, token, contentType string, body io.Reader, out any) (int, map[string]any) {
	t.Helper()
	res, raw := e.Do(t, method, path, body, func(r *http.Request) {
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		if contentType != "" {
			r.Header.Set("Content-Type", contentType)
		}
	})
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q, want application/json (body %s)", method, path, ct, raw)
	}
	var m map[string]any
	json.Unmarshal(raw, &m)
	if out != nil {
		json.Unmarshal(raw, out)
	}
	return res.StatusCode, m
}

// PostJSON is Call with v as a JSON body.
func (e *Env) PostJSON(t testing.TB, path, token string, v any, out any) (int, map[string]any) {
	t.Helper()
	b, _ := json.Marshal(v)
	return e.Call(t, "POST", path, token, "application/json", bytes.NewReader(b), out)
}

// Multipart builds an upload: fields first (in order), then the file (a
// part named "file") unless filename is empty.
func Multipart(t testing.TB, fields [][2]string, filename string, content []byte) (contentType string, body *bytes.Buffer) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, f := range fields {
		mw.WriteField(f[0], f[1])
	}
	if filename != "" {
		fw, err := mw.CreateFormFile("file", filename)
		if err != nil {
			t.Fatal(err)
		}
		fw.Write(content)
	}
	mw.Close()
	return mw.FormDataContentType(), &buf
}

// Files lists a folder (the import folder).
func Files(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, filepath.Join(dir, e.Name()))
	}
	return out
}

// Testdata returns a file of the shared geodata library
// ($MERIDIAN_TESTDATA, default shared/data beside the checkout), skipping
// t without it.
func Testdata(t testing.TB, rel string) string {
	t.Helper()
	dir := os.Getenv("MERIDIAN_TESTDATA")
	if dir == "" {
		_, file, _, _ := runtime.Caller(0) // <checkout>/control/controltest/apitoken.go
		dir = filepath.Join(filepath.Dir(file), "..", "..", "..", "shared", "data")
	}
	p := filepath.Join(dir, rel)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("test data %s: %v (set MERIDIAN_TESTDATA)", rel, err)
	}
	return p
}
