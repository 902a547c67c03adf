package demo

import (
	"context"
	"flag"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/login/password"
	"github.com/authflow/authflow/session"
)

func TestParseFlagsDefaults(t *testing.T) {
	o, err := ParseFlags(flag.NewFlagSet("t", flag.ContinueOnError), nil)
	require.NoError(t, err)
	assert.Equal(t, Options{
		Addr:              "127.0.0.1:4433",
		PublicURL:         "http://127.0.0.1:4433",
		Identifier:        "demo@example.com",
		Password:          "correct horse battery staple",
		FlowLifespan:      o.FlowLifespan,
		UIURL:             "http://127.0.0.1:4433/login",
		ErrorURL:          "http://127.0.0.1:4433/error",
		DefaultReturnURL:  "http://127.0.0.1:4433/welcome",
		AllowedReturnURLs: []string{"http://127.0.0.1:4433/"},
		SessionCookie:     "",
		Hasher:            "argon2id",
		BcryptCost:        12,
		ThrottleFailures:  5,
		ThrottleWindow:    15 * time.Minute,
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
