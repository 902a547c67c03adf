package demo

import (
	"context"
	"flag"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/oauth2-proxy/mockoidc"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/login/logintest"
	"github.com/authflow/authflow/login/password"
	"github.com/authflow/authflow/session"
)

func TestParseFlagsDefaults(t *testing.T) {
	o, err := ParseFlags(flag.NewFlagSet("t", flag.ContinueOnError), nil)
	require.NoError(t, err)
	assert.Equal(t, Options{
		Addr:               "127.0.0.1:4433",
		PublicURL:          "http://127.0.0.1:4433",
		Identifier:         "demo@example.com",
		Password:           "correct horse battery staple",
		FlowLifespan:       o.FlowLifespan,
		UIURL:              "http://127.0.0.1:4433/login",
		ErrorURL:           "http://127.0.0.1:4433/error",
		DefaultReturnURL:   "http://127.0.0.1:4433/welcome",
		AllowedReturnURLs:  []string{"http://127.0.0.1:4433/"},
		SessionCookie:      "",
		Hasher:             "argon2id",
		BcryptCost:         12,
		ThrottleFailures:   5,
		ThrottleWindow:     15 * time.Minute,
		RequiredAAL:        "highest_available",
		LoginStyle:         "unified",
		SMTPFrom:           "no-reply@127.0.0.1",
		CodeLifespan:       15 * time.Minute,
		CodeMaxSubmissions: 5,
		WebAuthnRPID:       "localhost",
		WebAuthnOrigins:    []string{"http://127.0.0.1:4433"},
		WebAuthnRPName:     "authflow demo",
	}, o)
	assert.Equal(t, "1h0m0s", o.FlowLifespan.String())
}

func TestParseFlagsPrefixAndOverrides(t *testing.T) {
	o, err := ParseFlags(flag.NewFlagSet("t", flag.ContinueOnError), []string{
		"-addr", "127.0.0.1:9000", "-public-url", "https://example.com/auth/",
		"-allowed-return-url", "https://app.example.com/", "-allowed-return-url", "https://*.example.org/x",
		"-session-cookie", "authflow_session", "-hasher", "bcrypt", "-bcrypt-cost", "10",
	})
	require.NoError(t, err)
	assert.Equal(t, "https://example.com/auth", o.PublicURL)
	assert.Equal(t, "https://example.com/auth/login", o.UIURL)
	assert.Equal(t, []string{"https://app.example.com/", "https://*.example.org/x"}, o.AllowedReturnURLs)
	assert.Equal(t, "authflow_session", o.SessionCookie, "an explicit name is kept verbatim")
	assert.Equal(t, 10, o.BcryptCost)

	_, err = ParseFlags(flag.NewFlagSet("t", flag.ContinueOnError), []string{"-hasher", "md5"})
	assert.ErrorContains(t, err, "-hasher must be argon2id or bcrypt")
}

func TestSeedIsIdempotent(t *testing.T) {
	ctx := context.Background()
	ids := session.NewMemoryIdentityStore()
	h := password.Bcrypt{Cost: 4}
	require.NoError(t, Seed(ctx, ids, h, "Demo@Example.com", "pw one"))
	id1, cred1, err := ids.FindIdentity(ctx, session.CredentialPassword, "demo@example.com")
	require.NoError(t, err)
	require.NoError(t, Seed(ctx, ids, h, "demo@example.com", "pw two"))
	id2, cred2, err := ids.FindIdentity(ctx, session.CredentialPassword, "demo@example.com")
	require.NoError(t, err)
	assert.Equal(t, id1.ID, id2.ID)
	assert.JSONEq(t, string(cred1.Config), string(cred2.Config), "the second seed changes nothing")
	assert.JSONEq(t, `{"email":"Demo@Example.com"}`, string(id1.Traits))
}

var (
	actionRE = regexp.MustCompile(`<form action="([^"]+)" method="POST"`)
	csrfRE   = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)
	logoutRE = regexp.MustCompile(`href="([^"]*self-service/logout[^"]*)"`)
)

// TestBrowserLoginThroughPages drives the demo like a browser without
// JavaScript: init, the login page, a wrong password, the right one, the
// welcome page, logout.
func TestBrowserLoginThroughPages(t *testing.T) {
	for _, prefix := range []string{"", "/auth"} {
		t.Run("prefix="+prefix, func(t *testing.T) {
			mux := http.NewServeMux()
			ts := httptest.NewServer(mux)
			defer ts.Close()
			o, err := ParseFlags(flag.NewFlagSet("t", flag.ContinueOnError), []string{
				"-public-url", ts.URL + prefix, "-hasher", "bcrypt", "-bcrypt-cost", "4"})
			require.NoError(t, err)
			srv, err := New(context.Background(), o, Stores{}, slog.New(slog.DiscardHandler))
			require.NoError(t, err)
			mux.Handle("/", srv)

			jar, _ := cookiejar.New(nil)
			c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			get := func(u string) (*http.Response, string) {
				t.Helper()
				resp, err := c.Get(u)
				require.NoError(t, err)
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return resp, string(b)
			}
			post := func(u string, v url.Values) *http.Response {
				t.Helper()
				resp, err := c.PostForm(u, v)
				require.NoError(t, err)
				resp.Body.Close()
				return resp
			}

			resp, _ := get(o.PublicURL + "/self-service/login/browser")
			require.Equal(t, http.StatusSeeOther, resp.StatusCode)
			loginURL := resp.Header.Get("Location")
			require.True(t, strings.HasPrefix(loginURL, o.PublicURL+"/login?flow="), loginURL)

			resp, page := get(loginURL)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			assert.Contains(t, page, `<label for="field-identifier">E-Mail</label>`)
			assert.Contains(t, page, `autocomplete="username" autofocus`)
			assert.Contains(t, page, `autocomplete="current-password"`)
			assert.Contains(t, page, `>Sign in with password</button>`)
			action := html.UnescapeString(actionRE.FindStringSubmatch(page)[1])
			csrf := html.UnescapeString(csrfRE.FindStringSubmatch(page)[1])
			assert.True(t, strings.HasPrefix(action, o.PublicURL+"/self-service/login?flow="), action)

			resp = post(action, url.Values{"csrf_token": {csrf}, "identifier": {"demo@example.com"}, "password": {"wrong"}, "method": {"password"}})
			require.Equal(t, http.StatusSeeOther, resp.StatusCode)
			resp, page = get(resp.Header.Get("Location"))
			require.Equal(t, http.StatusOK, resp.StatusCode)
			assert.Contains(t, page, `data-message-id="4000006"`)
			assert.Contains(t, page, `value="demo@example.com"`, "the identifier is kept")
			csrf = html.UnescapeString(csrfRE.FindStringSubmatch(page)[1])

			resp = post(action, url.Values{"csrf_token": {csrf}, "identifier": {"demo@example.com"}, "password": {"correct horse battery staple"}, "method": {"password"}})
			require.Equal(t, http.StatusSeeOther, resp.StatusCode)
			require.Equal(t, o.PublicURL+"/welcome", resp.Header.Get("Location"))
			resp, page = get(o.PublicURL + "/welcome")
			require.Equal(t, http.StatusOK, resp.StatusCode)
			assert.Contains(t, page, "Welcome, demo@example.com")

			logout := html.UnescapeString(logoutRE.FindStringSubmatch(page)[1])
			resp, _ = get(logout)
			require.Equal(t, http.StatusSeeOther, resp.StatusCode)
			resp, _ = get(o.PublicURL + "/welcome")
			assert.Equal(t, http.StatusSeeOther, resp.StatusCode, "after logout the welcome page asks to log in")
			assert.Contains(t, resp.Header.Get("Location"), "/self-service/login/browser")
		})
	}
}

func TestErrorPage(t *testing.T) {
	mux := http.NewServeMux()
	ts := httptest.NewServer(mux)
	defer ts.Close()
	o, err := ParseFlags(flag.NewFlagSet("t", flag.ContinueOnError), []string{"-public-url", ts.URL, "-hasher", "bcrypt", "-bcrypt-cost", "4"})
	require.NoError(t, err)
	srv, err := New(context.Background(), o, Stores{}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	mux.Handle("/", srv)
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	// A forbidden return_to is forwarded to the error page.
	resp, err := c.Get(ts.URL + "/self-service/login/browser?return_to=https://evil.example.net/")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	resp, err = c.Get(resp.Header.Get("Location"))
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, html.UnescapeString(string(b)), `Requested return_to URL "https://evil.example.net/" is not allowed.`)
}

// -after-logout-url is where a logout without return_to lands.
func TestAfterLogoutURL(t *testing.T) {
	mux := http.NewServeMux()
	ts := httptest.NewServer(mux)
	defer ts.Close()
	o, err := ParseFlags(flag.NewFlagSet("t", flag.ContinueOnError), []string{"-public-url", ts.URL, "-hasher", "bcrypt", "-bcrypt-cost", "4", "-after-logout-url", ts.URL + "/login?signed_out=1"})
	require.NoError(t, err)
	srv, err := New(context.Background(), o, Stores{}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	mux.Handle("/", srv)

	cookies, err := (&logintest.Client{Handler: srv}).SignInBrowser(t.Context(), logintest.Password(o.Identifier, o.Password))
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/self-service/logout/browser", nil)
	req.Header.Set("Accept", "application/json")
	for _, c := range cookies {
		req.AddCookie(c)
	}
	srv.ServeHTTP(rec, req)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	logout := regexp.MustCompile(`"logout_url":"([^"]+)"`).FindStringSubmatch(rec.Body.String())
	require.Len(t, logout, 2, rec.Body.String())
	u, err := url.Parse(logout[1])
	require.NoError(t, err)

	rec = httptest.NewRecorder()
	req = httptest.NewRequest(http.MethodGet, u.RequestURI(), nil)
	for _, c := range cookies {
		req.AddCookie(c)
	}
	srv.ServeHTTP(rec, req)
	require.Equal(t, http.StatusSeeOther, rec.Code, rec.Body.String())
	assert.Equal(t, ts.URL+"/login?signed_out=1", rec.Header().Get("Location"))
}

func TestThrottleFlags(t *testing.T) {
	for _, tc := range []struct {
		failures   string
		wantThird  int
		wantStatus string
	}{
		{"2", http.StatusTooManyRequests, "the third failure within the window is throttled"},
		{"0", http.StatusBadRequest, "0 turns throttling off"},
	} {
		t.Run("failures="+tc.failures, func(t *testing.T) {
			mux := http.NewServeMux()
			ts := httptest.NewServer(mux)
			defer ts.Close()
			o, err := ParseFlags(flag.NewFlagSet("t", flag.ContinueOnError), []string{
				"-public-url", ts.URL, "-hasher", "bcrypt", "-bcrypt-cost", "4", "-throttle-failures", tc.failures, "-throttle-window", "1m"})
			require.NoError(t, err)
			srv, err := New(context.Background(), o, Stores{}, slog.New(slog.DiscardHandler))
			require.NoError(t, err)
			mux.Handle("/", srv)

			var status int
			for range 3 {
				resp, err := http.Get(ts.URL + "/self-service/login/api")
				require.NoError(t, err)
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				id := regexp.MustCompile(`"id":"([^"]+)"`).FindStringSubmatch(string(b))[1]
				resp, err = http.Post(ts.URL+"/self-service/login?flow="+id, "application/json",
					strings.NewReader(`{"method":"password","identifier":"demo@example.com","password":"wrong"}`))
				require.NoError(t, err)
				resp.Body.Close()
				status = resp.StatusCode
			}
			assert.Equal(t, tc.wantThird, status, tc.wantStatus)
		})
	}
}

func TestParseFlagsOIDC(t *testing.T) {
	parse := func(args ...string) (Options, error) {
		return ParseFlags(flag.NewFlagSet("t", flag.ContinueOnError), args)
	}
	o, err := parse(
		"-oidc-provider", "id=test,issuer=http://127.0.0.1:9999/oidc,client-id=cid,client-secret=s3cr=t",
		"-oidc-provider", "id=corp, issuer=https://corp.example.com ,client-id=c2",
		"-oidc-link", "provider=test,subject=1234567890,email=oidc@example.com",
		"-oidc-link", "email=Demo@Example.com,provider=corp,subject=u-1")
	require.NoError(t, err)
	assert.Equal(t, []OIDCProvider{
		{ID: "test", Issuer: "http://127.0.0.1:9999/oidc", ClientID: "cid", ClientSecret: "s3cr=t"},
		{ID: "corp", Issuer: "https://corp.example.com", ClientID: "c2"},
	}, o.OIDCProviders)
	assert.Equal(t, []OIDCLink{
		{Provider: "test", Subject: "1234567890", Email: "oidc@example.com"},
		{Provider: "corp", Subject: "u-1", Email: "Demo@Example.com"},
	}, o.OIDCLinks)

	const p = "id=test,issuer=http://idp.example.com,client-id=cid"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-oidc-provider", "issuer=http://idp.example.com,client-id=cid"}, "missing id"},
		{[]string{"-oidc-provider", "id=test,client-id=cid"}, "missing issuer"},
		{[]string{"-oidc-provider", "id=test,issuer=http://idp.example.com"}, "missing client-id"},
		{[]string{"-oidc-provider", "id=test"}, "missing issuer, client-id"},
		{[]string{"-oidc-provider", p + ",scope=profile"}, `unknown key "scope"`},
		{[]string{"-oidc-provider", p + ",oops"}, `"oops" is not key=value`},
		{[]string{"-oidc-provider", p + ",id=again"}, `key "id" given twice`},
		{[]string{"-oidc-provider", "id=a:b,issuer=http://idp.example.com,client-id=cid"}, "must not contain"},
		{[]string{"-oidc-provider", "id=test,issuer=idp.example.com,client-id=cid"}, "is not an absolute http(s) URL"},
		{[]string{"-oidc-provider", p, "-oidc-provider", p}, `provider "test" is configured twice`},
		{[]string{"-oidc-provider", p, "-oidc-link", "provider=other,subject=s,email=a@example.com"}, `provider "other" is not configured by an -oidc-provider`},
		{[]string{"-oidc-link", "provider=test,subject=s,email=a@example.com"}, `provider "test" is not configured`},
		{[]string{"-oidc-provider", p, "-oidc-link", "provider=test,email=a@example.com"}, "missing subject"},
		{[]string{"-oidc-provider", p, "-oidc-link", "provider=test,subject=s"}, "missing email"},
		{[]string{"-oidc-provider", p, "-oidc-link", "provider=test,subject=s,email=a@example.com,name=x"}, `unknown key "name"`},
	} {
		_, err := parse(tc.args...)
		assert.ErrorContains(t, err, tc.want, "%q", tc.args)
	}
}

// TestSeedOIDCLinksIsIdempotent: a link to the demo identity's email joins
// it; links with a new email create one identity, which later links with
// the same email join; seeding again changes nothing.
func TestSeedOIDCLinksIsIdempotent(t *testing.T) {
	ctx := context.Background()
	ids := session.NewMemoryIdentityStore()
	require.NoError(t, Seed(ctx, ids, password.Bcrypt{Cost: 4}, "demo@example.com", "pw"))
	demo, _, err := ids.FindIdentity(ctx, session.CredentialPassword, "demo@example.com")
	require.NoError(t, err)
	links := []OIDCLink{
		{Provider: "test", Subject: "sub-demo", Email: "Demo@Example.com"},
		{Provider: "test", Subject: "sub-new", Email: "new@example.com"},
		{Provider: "corp", Subject: "sub-new-corp", Email: "new@example.com"},
	}
	type snapshot map[string]string // identifier -> identity id
	snap := func() (snapshot, map[string][]session.Credential) {
		s := snapshot{}
		creds := map[string][]session.Credential{}
		for _, l := range links {
			id, _, err := ids.FindIdentity(ctx, session.CredentialOIDC, l.Provider+":"+l.Subject)
			require.NoError(t, err, "%s:%s is linked", l.Provider, l.Subject)
			s[l.Provider+":"+l.Subject] = id.ID
			creds[id.ID], err = ids.Credentials(ctx, id.ID)
			require.NoError(t, err)
		}
		return s, creds
	}
	require.NoError(t, SeedOIDCLinks(ctx, ids, links))
	first, creds := snap()
	assert.Equal(t, demo.ID, first["test:sub-demo"], "linked to the demo identity, not a second account")
	assert.NotEqual(t, demo.ID, first["test:sub-new"])
	assert.Equal(t, first["test:sub-new"], first["corp:sub-new-corp"], "one identity per email")
	assert.Len(t, creds[demo.ID], 2, "the demo identity keeps its password and gains the oidc credential")
	created, err := ids.Identity(ctx, first["test:sub-new"])
	require.NoError(t, err)
	assert.JSONEq(t, `{"email":"new@example.com"}`, string(created.Traits))
	require.Len(t, creds[created.ID], 1)
	assert.ElementsMatch(t, []string{"test:sub-new", "corp:sub-new-corp"}, creds[created.ID][0].Identifiers)
	assert.JSONEq(t, `{"providers":[{"provider":"test","subject":"sub-new"},{"provider":"corp","subject":"sub-new-corp"}]}`,
		string(creds[created.ID][0].Config))

	require.NoError(t, SeedOIDCLinks(ctx, ids, links))
	again, credsAgain := snap()
	assert.Equal(t, first, again)
	assert.Equal(t, creds, credsAgain, "the second seed changes nothing")

	// A restart with one more link for an email seeded before joins it.
	links = append(links, OIDCLink{Provider: "other", Subject: "x", Email: "NEW@example.com"})
	require.NoError(t, SeedOIDCLinks(ctx, ids, links))
	third, _ := snap()
	assert.Equal(t, first["test:sub-new"], third["other:x"])
}

// TestOIDCLoginThroughPages: with -oidc-provider the login page shows a
// plain submit button per provider; posting the page's form as a browser
// without JavaScript would (empty password fields included) goes through
// the provider and back to the welcome page of the linked identity; an
// unlinked subject is back on the login page with 4000037.
func TestOIDCLoginThroughPages(t *testing.T) {
	idp, err := mockoidc.Run()
	require.NoError(t, err)
	t.Cleanup(func() { _ = idp.Shutdown() })
	mux := http.NewServeMux()
	ts := httptest.NewServer(mux)
	defer ts.Close()
	o, err := ParseFlags(flag.NewFlagSet("t", flag.ContinueOnError), []string{
		"-public-url", ts.URL, "-hasher", "bcrypt", "-bcrypt-cost", "4",
		"-oidc-provider", "id=test,issuer=" + idp.Issuer() + ",client-id=" + idp.ClientID + ",client-secret=" + idp.ClientSecret,
		"-oidc-link", "provider=test,subject=linked-sub,email=oidc@example.com"})
	require.NoError(t, err)
	srv, err := New(context.Background(), o, Stores{}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	mux.Handle("/", srv)

	jar, _ := cookiejar.New(nil)
	// Follows redirects (to the provider and back), like a browser.
	c := &http.Client{Jar: jar}
	separateRE := regexp.MustCompile(`(?s)<form class="separate" action="([^"]+)" method="POST">(.*?)</form>`)
	loginPage := func() (string, string, url.Values) {
		t.Helper()
		resp, err := c.Get(ts.URL + "/self-service/login/browser")
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, "/login", resp.Request.URL.Path)
		page := string(b)
		m := separateRE.FindStringSubmatch(page)
		require.NotNil(t, m, "the provider buttons have a form of their own: %s", page)
		action := html.UnescapeString(m[1])
		csrf := html.UnescapeString(csrfRE.FindStringSubmatch(m[2])[1])
		return page, action, url.Values{"csrf_token": {csrf}, "provider": {"test"}} // what the browser posts
	}
	page, action, form := loginPage()
	assert.Contains(t, page, `<button type="submit" name="provider" value="test">Sign in with test</button>`)
	// Enter in a field submits its form's first button: the password
	// form's own, never a provider.
	pwForm := regexp.MustCompile(`(?s)<form action="[^"]+" method="POST" novalidate>(.*?)</form>`).FindStringSubmatch(page)
	require.NotNil(t, pwForm, page)
	assert.Contains(t, pwForm[1], `name="password"`)
	assert.NotContains(t, pwForm[1], `name="provider"`)
	assert.Contains(t, pwForm[1], `>Sign in with password</button>`)
	assert.NotContains(t, page, "<script", "no JavaScript needed")

	idp.QueueUser(&mockoidc.MockUser{Subject: "linked-sub", Email: "oidc@example.com"})
	resp, err := c.PostForm(action, form)
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, ts.URL+"/welcome", resp.Request.URL.String())
	assert.Contains(t, string(b), "Welcome, oidc@example.com")

	jar2, _ := cookiejar.New(nil)
	c.Jar = jar2
	_, action, form = loginPage()
	idp.QueueUser(&mockoidc.MockUser{Subject: "stranger", Email: "stranger@example.com"})
	resp, err = c.PostForm(action, form)
	require.NoError(t, err)
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "/login", resp.Request.URL.Path, "an unlinked subject is back on the login page")
	assert.Contains(t, string(b), `data-message-id="4000037"`)
	assert.NotContains(t, string(b), "Welcome")
}

func TestParseFlagsTrustedProxies(t *testing.T) {
	o, err := ParseFlags(flag.NewFlagSet("t", flag.ContinueOnError), []string{
		"-trusted-proxy", "10.1.2.3/8", "-trusted-proxy", "2001:db8::1", "-trusted-proxy", " 127.0.0.1/32 "})
	require.NoError(t, err)
	assert.Equal(t, []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("2001:db8::1/128"),
		netip.MustParsePrefix("127.0.0.1/32"),
	}, o.TrustedProxies)
	_, err = ParseFlags(flag.NewFlagSet("t", flag.ContinueOnError), []string{"-trusted-proxy", "proxy.example.com"})
	assert.ErrorContains(t, err, `-trusted-proxy "proxy.example.com"`)
	_, err = ParseFlags(flag.NewFlagSet("t", flag.ContinueOnError), []string{"-trusted-proxy", "10.0.0.0/33"})
	assert.ErrorContains(t, err, `-trusted-proxy "10.0.0.0/33"`)
}

// Behind a trusted proxy the client address comes from X-Forwarded-For:
// throttling counts an IPv6 client by its /64, and the session records
// the forwarded address. Without the flag the header is ignored.
func TestTrustedProxyFlag(t *testing.T) {
	for _, trusted := range []bool{true, false} {
		t.Run(map[bool]string{true: "trusted", false: "untrusted"}[trusted], func(t *testing.T) {
			mux := http.NewServeMux()
			ts := httptest.NewServer(mux)
			defer ts.Close()
			args := []string{"-public-url", ts.URL, "-hasher", "bcrypt", "-bcrypt-cost", "4"}
			if trusted {
				args = append(args, "-trusted-proxy", "127.0.0.1/32")
			}
			o, err := ParseFlags(flag.NewFlagSet("t", flag.ContinueOnError), args)
			require.NoError(t, err)
			srv, err := New(context.Background(), o, Stores{}, slog.New(slog.DiscardHandler))
			require.NoError(t, err)
			mux.Handle("/", srv)

			login := func(secret, forwardedFor string) (int, string) {
				resp, err := http.Get(ts.URL + "/self-service/login/api")
				require.NoError(t, err)
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				id := regexp.MustCompile(`"id":"([^"]+)"`).FindStringSubmatch(string(b))[1]
				req, err := http.NewRequest(http.MethodPost, ts.URL+"/self-service/login?flow="+id,
					strings.NewReader(`{"method":"password","identifier":"demo@example.com","password":"`+secret+`"}`))
				require.NoError(t, err)
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-Forwarded-For", forwardedFor)
				resp, err = http.DefaultClient.Do(req)
				require.NoError(t, err)
				b, _ = io.ReadAll(resp.Body)
				resp.Body.Close()
				return resp.StatusCode, string(b)
			}
			status, body := login("correct horse battery staple", "2001:db8:7:7::1")
			require.Equal(t, http.StatusOK, status, body)
			if trusted {
				assert.Contains(t, body, `"ip_address":"2001:db8:7:7::1"`, "the session records the forwarded address")
			} else {
				assert.Contains(t, body, `"ip_address":"127.0.0.1"`, "an untrusted X-Forwarded-For is ignored")
			}
			for i := range 5 {
				status, _ := login("wrong", fmt.Sprintf("2001:db8:1:2::%x", i+1))
				require.Equal(t, http.StatusBadRequest, status, "failure %d", i+1)
			}
			status, _ = login("wrong", "2001:db8:1:2::ff")
			assert.Equal(t, http.StatusTooManyRequests, status, "a sixth address of the /64 is throttled")
			status, _ = login("wrong", "2001:db8:1:3::1")
			if trusted {
				assert.Equal(t, http.StatusBadRequest, status, "another /64 has its own count")
			} else {
				assert.Equal(t, http.StatusTooManyRequests, status, "without the flag every request is the proxy's")
			}
		})
	}
}
