package sso_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"

	"github.com/oauth2-proxy/mockoidc"

	"github.com/meridian-gis/meridian/control"
	"github.com/meridian-gis/meridian/control/controltest"
	"github.com/meridian-gis/meridian/internal/identity"
)

// browser follows redirects with a cookie jar, as a browser does, and
// stops on the first answer that is not a redirect.
func browser(t *testing.T) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar}
}

func ssoSignIn(t *testing.T, e *controltest.Env, c *http.Client, next string) (*http.Response, string) {
	t.Helper()
	res, err := c.Get(e.Base + "/accounts-api/sso/login?next=" + url.QueryEscape(next))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res, res.Request.URL.Path + "?" + res.Request.URL.RawQuery
}

func me(t *testing.T, e *controltest.Env, c *http.Client) map[string]any {
	t.Helper()
	res, err := c.Get(e.Base + "/accounts-api/session")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var m map[string]any
	json.NewDecoder(res.Body).Decode(&m)
	return m
}

func TestSSOWithAnOIDCProvider(t *testing.T) {
	op, err := mockoidc.Run()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { op.Shutdown() })
	cfg := op.Config()
	e := controltest.Start(t, func(c *control.Config, _ *control.Deps) {
		c.SSO = control.Config{}.SSO
		c.SSO.Issuer, c.SSO.ClientID, c.SSO.ClientSecret = cfg.Issuer, cfg.ClientID, cfg.ClientSecret
		c.SSO.Scopes = "openid email profile groups"
		c.SSO.RoleMap = "meridian-admins=admin, gis=editor"
		c.SSO.Name = "Test IdP"
	})
	ctx := context.Background()

	res, raw := e.Do(t, "GET", "/accounts-api/status", nil, nil)
	if res.StatusCode != 200 || !strings.Contains(string(raw), `"name":"Test IdP"`) {
		t.Errorf("status does not offer SSO: %s", raw)
	}

	// A new user, created on first sign-in with the role their group maps to.
	op.QueueUser(&mockoidc.MockUser{Subject: "u-1", Email: "grace@example.test", EmailVerified: true, Groups: []string{"staff", "meridian-admins"}})
	c := browser(t)
	res, landed := ssoSignIn(t, e, c, "/maps?x=1")
	if !strings.HasPrefix(landed, "/maps?x=1") {
		t.Errorf("after SSO landed on %q, want /maps?x=1", landed)
	}
	who := me(t, e, c)
	if who["signedIn"] != true || who["via"] != "session" {
		t.Fatalf("after SSO: %v", who)
	}
	u := who["user"].(map[string]any)
	if u["email"] != "grace@example.test" || u["role"] != "admin" || u["emailVerified"] != true || u["orgId"] != identity.DefaultOrg {
		t.Errorf("SSO user %v; want grace, admin of the default org, verified", u)
	}

	// An existing password user is matched by email; groups change the role.
	ed := e.NewUser(t, identity.DefaultOrg, identity.RoleViewer)
	op.QueueUser(&mockoidc.MockUser{Subject: "u-2", Email: strings.ToUpper(ed.Email), EmailVerified: true, Groups: []string{"gis"}})
	c2 := browser(t)
	ssoSignIn(t, e, c2, "/")
	if u := me(t, e, c2)["user"].(map[string]any); u["id"] != ed.ID || u["role"] != "editor" {
		t.Errorf("matched user %v; want %s promoted to editor by the gis group", u, ed.ID)
	}
	res, _ = ed.Do(t, "GET", "/accounts-api/me", nil)
	if res.StatusCode != 401 {
		t.Errorf("the user's older session survived a role change by SSO: %d", res.StatusCode)
	}

	// No verified email: refused, no account, no session.
	op.QueueUser(&mockoidc.MockUser{Subject: "u-3", Email: "mallory@example.test", EmailVerified: false})
	c3 := browser(t)
	_, landed = ssoSignIn(t, e, c3, "/")
	if !strings.HasPrefix(landed, "/acc/?error=") || me(t, e, c3)["signedIn"] != false {
		t.Errorf("unverified email: landed %q, session %v", landed, me(t, e, c3))
	}
	var n int
	e.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM users WHERE email = 'mallory@example.test'`).Scan(&n)
	if n != 0 {
		t.Error("an unverified SSO email made an account")
	}

	// A callback with a made-up or replayed state is refused.
	c4 := browser(t)
	res, err = c4.Get(e.Base + "/accounts-api/sso/callback?code=whatever&state=forged")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if !strings.HasPrefix(res.Request.URL.Path+"?"+res.Request.URL.RawQuery, "/acc/?error=") || me(t, e, c4)["signedIn"] != false {
		t.Errorf("forged state: landed %s", res.Request.URL)
	}
	// The provider's error is shown, not trusted.
	res, _ = c4.Get(e.Base + "/accounts-api/sso/callback?error=access_denied&state=x")
	res.Body.Close()
	if !strings.Contains(res.Request.URL.RawQuery, "access_denied") {
		t.Errorf("provider error: landed %s", res.Request.URL)
	}
	// An off-site next is not followed.
	op.QueueUser(&mockoidc.MockUser{Subject: "u-1", Email: "grace@example.test", EmailVerified: true})
	c5 := browser(t)
	c5.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.URL.Host != strings.TrimPrefix(e.Base, "http://") && !strings.HasPrefix(req.URL.String(), cfg.Issuer) {
			return http.ErrUseLastResponse
		}
		return nil
	}
	res, _ = ssoSignIn(t, e, c5, "//evil.example/x")
	if loc := res.Request.URL; loc.Host != strings.TrimPrefix(e.Base, "http://") || loc.Path != "/" {
		t.Errorf("next=//evil.example led to %s", loc)
	}
	var logins int
	e.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM audit_log WHERE action = 'login' AND detail->>'method' = 'sso'`).Scan(&logins)
	if logins != 3 {
		t.Errorf("%d SSO sign-ins audited, want 3", logins)
	}
	if strings.Contains(e.Logs.String(), cfg.ClientSecret) {
		t.Error("the client secret reached the logs")
	}
}
