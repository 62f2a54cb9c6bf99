package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oauth2-proxy/mockoidc"
)

// The accounts app through `meridian up`, in headless Chromium
// (compat/accounts.mjs): first-run sign-up makes the admin, who lands on
// the workspace; an invite link (shown to the admin, no mail server) makes
// a viewer, who sees only their account; a form on another origin cannot
// sign the admin out (CSRF); sign out everywhere ends the sessions of both
// of the admin's browsers.
func TestAccountsInBrowser(t *testing.T) {
	needTool(t, "node")
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = needTool(t, "chromium")
	}
	appBuilt(t, "acc/index.html", "accounts")
	appBuilt(t, "index.html", "workspace")
	op, oerr := mockoidc.Run()
	if oerr != nil {
		t.Fatal(oerr)
	}
	t.Cleanup(func() { op.Shutdown() })
	oc := op.Config()
	op.QueueUser(&mockoidc.MockUser{Subject: "sso-1", Email: "sso.user@example.test", EmailVerified: true, Groups: []string{"gis"}})
	u := startImpUp(t, "MERIDIAN_OIDC_ISSUER="+oc.Issuer, "MERIDIAN_OIDC_CLIENT_ID="+oc.ClientID, "MERIDIAN_OIDC_CLIENT_SECRET="+oc.ClientSecret,
		"MERIDIAN_OIDC_SCOPES=openid email profile groups", "MERIDIAN_OIDC_ROLE_MAP=gis=editor", "MERIDIAN_OIDC_NAME=Test IdP")
	dir := compatDir(t)

	// A hostile page on another origin (another port of 127.0.0.1).
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	evil := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<!doctype html><form method="post" action="%s/accounts-api/logout-all"><button id="go">Win a prize</button></form>`, u.base)
	})}
	go evil.Serve(l)
	t.Cleanup(func() { evil.Close() })

	var shots string
	if a := os.Getenv(envArtifacts); a != "" {
		shots = filepath.Join(a, "accounts")
		os.MkdirAll(shots, 0o755)
	}
	out, err := runNode(t, dir, "accounts.mjs", 4*time.Minute,
		"BASE_URL="+u.base, "EVIL_URL=http://"+l.Addr().String()+"/", "CHROMIUM="+chromium,
		"SCREENSHOT_DIR="+shots, "TIMEOUT_MS=30000")
	saveArtifact(t, "accounts-report.json", out)
	var rep struct {
		OK             bool     `json:"ok"`
		Problems       []string `json:"problems"`
		PageErrors     []string `json:"pageErrors"`
		ConsoleErrors  []string `json:"consoleErrors"`
		FailedRequests []string `json:"failedRequests"`
		BadResponses   []string `json:"badResponses"`
		Steps          []struct {
			Name       string `json:"name"`
			Redirected string `json:"redirected"`
			URL        string `json:"url"`
			Title      string `json:"title"`
			Cookie     *struct {
				HTTPOnly bool   `json:"httpOnly"`
				SameSite string `json:"sameSite"`
				Secure   bool   `json:"secure"`
			} `json:"cookie"`
			Link            string   `json:"link"`
			Prefilled       string   `json:"prefilled"`
			Role            string   `json:"role"`
			PeopleStatus    int      `json:"peopleStatus"`
			DataTokenStatus int      `json:"dataTokenStatus"`
			ReuseStatus     int      `json:"reuseStatus"`
			Status          int      `json:"status"`
			Body            string   `json:"body"`
			StillSignedIn   bool     `json:"stillSignedIn"`
			Connections     int      `json:"connections"`
			Created         bool     `json:"created"`
			Grants          []string `json:"grants"`
			Label           string   `json:"label"`
			Email           string   `json:"email"`
			Before          []bool   `json:"before"`
			After           []bool   `json:"after"`
		} `json:"steps"`
	}
	if jerr := json.Unmarshal(out, &rep); jerr != nil {
		t.Fatalf("accounts.mjs (exit %v) printed no JSON report: %v\n%s", err, jerr, lastBytes(out, 4000))
	}
	if !rep.OK || err != nil {
		t.Errorf("accounts.mjs: ok=%v exit %v, problems %q", rep.OK, err, rep.Problems)
	}
	if len(rep.PageErrors)+len(rep.ConsoleErrors)+len(rep.FailedRequests)+len(rep.BadResponses) > 0 {
		t.Errorf("page errors %q\nconsole errors %q\nfailed requests %q\nresponses >= 400 %q",
			rep.PageErrors, rep.ConsoleErrors, rep.FailedRequests, rep.BadResponses)
	}
	for _, s := range rep.Steps {
		switch s.Name {
		case "firstRun":
			if s.Redirected != "/acc/?next=%2F" || s.URL != "/" || s.Title != "Meridian · Imports" {
				t.Errorf("first run: sent to %q, then at %q titled %q; want the sign-in with a setup link, then the workspace", s.Redirected, s.URL, s.Title)
			}
			if s.Cookie == nil || !s.Cookie.HTTPOnly || s.Cookie.SameSite != "Lax" || s.Cookie.Secure {
				t.Errorf("session cookie %+v; want HttpOnly, SameSite=Lax, not Secure over plain HTTP", s.Cookie)
			}
		case "invite":
			if !strings.HasPrefix(s.Link, u.base+"/acc/invite?token=") {
				t.Errorf("invite link %q", s.Link)
			}
		case "accept":
			if s.Prefilled != "vic@example.test" || s.Role != "viewer" {
				t.Errorf("accepted invite: email %q, role %q; want vic@example.test as viewer", s.Prefilled, s.Role)
			}
			if s.PeopleStatus != 403 || s.DataTokenStatus != 403 || s.ReuseStatus != 410 {
				t.Errorf("viewer: people %d, data token %d, reused invite %d; want 403, 403, 410", s.PeopleStatus, s.DataTokenStatus, s.ReuseStatus)
			}
		case "csrf":
			if s.Status != 403 || !s.StillSignedIn {
				t.Errorf("cross-origin sign-out: %d %q, still signed in %v; want 403 and the session intact", s.Status, s.Body, s.StillSignedIn)
			}
		case "token":
			if s.Connections != 1 || !s.Created || len(s.Grants) != 1 || s.Grants[0] != "local:public.*" {
				t.Errorf("tokens page: %d connections listed, created %v, tokens %q; want local, a token granting local:public.*", s.Connections, s.Created, s.Grants)
			}
		case "sso":
			if s.Label != "Sign in with Test IdP" || s.Email != "sso.user@example.test" || s.Role != "editor" {
				t.Errorf("SSO: button %q, signed in as %q (%s); want the Test IdP button and sso.user@example.test as editor", s.Label, s.Email, s.Role)
			}
		case "signOutEverywhere":
			if len(s.Before) != 2 || !s.Before[0] || !s.Before[1] || len(s.After) != 2 || s.After[0] || s.After[1] {
				t.Errorf("sessions before %v, after sign out everywhere %v; want both, then neither", s.Before, s.After)
			}
		}
	}
	if strings.Contains(string(out), "analytical engine") {
		t.Error("the report holds a password")
	}
}
