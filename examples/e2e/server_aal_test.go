package e2e

// Required AAL through the real example server binary, started with
// -totp-secret and each -required-aal: what whoami and a page behind
// Handler.RequireSession (the demo's /settings) answer to the aal1
// session of the password login, as a JSON client (session token) and as a
// browser (session cookie) sees it. Every name of this file starts with
// "aalServer"; the server helpers are those of browser_helpers_test.go.
//
//	cd examples/e2e && go test -v -run ServerRequiredAAL ./...

import (
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// aalServerBrowserAccept is Chromium's Accept header for a navigation.
const aalServerBrowserAccept = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7"

func TestServerRequiredAAL(t *testing.T) {
	bin := browserBuildServer(t)
	for _, tc := range []struct {
		requiredAAL string
		// what the aal1 session of an identity with a second factor gets
		wantAPIIdentity    bool   // the password login's answer shows session.identity
		wantWhoami         int    // GET /sessions/whoami
		wantJSONPage       int    // GET /settings as JSON with the token
		wantBrowserLogin   string // Location after the browser's password form (path and query)
		wantBrowserPage    int    // GET /settings with the cookie
		wantBrowserPageLoc string // and its Location
	}{
		{
			requiredAAL: "highest_available", wantAPIIdentity: false,
			wantWhoami: http.StatusForbidden, wantJSONPage: http.StatusForbidden,
			wantBrowserLogin: "/self-service/login/browser?aal=aal2",
			wantBrowserPage:  http.StatusSeeOther, wantBrowserPageLoc: "/self-service/login/browser?aal=aal2",
		},
		{
			requiredAAL: "aal1", wantAPIIdentity: true,
			wantWhoami: http.StatusOK, wantJSONPage: http.StatusOK,
			wantBrowserLogin: "/welcome",
			wantBrowserPage:  http.StatusOK,
		},
	} {
		t.Run(tc.requiredAAL, func(t *testing.T) {
			srv := browserStartServer(t, bin, "-totp-secret", aalE2ESecret, "-required-aal", tc.requiredAAL)
			public := srv.URL
			stepUp := public + "/self-service/login/browser?aal=aal2"

			// A JSON client: the password login's token.
			token, login := aalServerAPILogin(t, public)
			assert.Equal(t, "aal1", login.Session.AAL)
			assert.Equal(t, tc.wantAPIIdentity, login.Session.Identity != nil, "session.identity in the password login's answer")

			resp, body := aalServerDo(t, http.DefaultClient, http.MethodGet, public+"/sessions/whoami",
				map[string]string{"X-Session-Token": token})
			require.Equal(t, tc.wantWhoami, resp.StatusCode, body)
			if tc.wantWhoami == http.StatusForbidden {
				aalServerAssertAAL2Required(t, resp, body, stepUp)
			} else {
				assert.Contains(t, body, `"authenticator_assurance_level":"aal1"`)
			}

			resp, body = aalServerDo(t, http.DefaultClient, http.MethodGet, public+"/settings",
				map[string]string{"X-Session-Token": token, "Accept": "application/json"})
			require.Equal(t, tc.wantJSONPage, resp.StatusCode, body)
			if tc.wantJSONPage == http.StatusForbidden {
				aalServerAssertAAL2Required(t, resp, body, stepUp)
			} else {
				assert.Contains(t, body, "<h1>Security settings</h1>", "RequireSession serves the page")
			}
			resp, body = aalServerDo(t, http.DefaultClient, http.MethodGet, public+"/settings", map[string]string{"Accept": "application/json"})
			assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "without a session: 401")
			assert.Contains(t, body, `"id":"session_inactive"`)

			// A browser: the password form, then the page with the cookie.
			b := aalServerBrowser(t)
			loc := aalServerBrowserLogin(t, b, public)
			assert.Equal(t, public+tc.wantBrowserLogin, loc, "where the password form sends the browser")
			resp, body = aalServerDo(t, b, http.MethodGet, public+"/settings", map[string]string{"Accept": aalServerBrowserAccept})
			require.Equal(t, tc.wantBrowserPage, resp.StatusCode, body)
			if tc.wantBrowserPageLoc != "" {
				assert.Equal(t, public+tc.wantBrowserPageLoc+"&return_to="+url.QueryEscape(public+"/settings"), resp.Header.Get("Location"), "RequireSession sends the browser to the step-up, and back")
			} else {
				assert.Contains(t, body, "<h1>Security settings</h1>")
				assert.Contains(t, body, `<dd id="session-aal">aal1</dd>`)
			}
			resp, body = aalServerDo(t, b, http.MethodGet, public+"/sessions/whoami", nil)
			assert.Equal(t, tc.wantWhoami, resp.StatusCode, "whoami by the session cookie: %s", body)

			nobody := aalServerBrowser(t)
			resp, _ = aalServerDo(t, nobody, http.MethodGet, public+"/settings", map[string]string{"Accept": aalServerBrowserAccept})
			assert.Equal(t, http.StatusSeeOther, resp.StatusCode)
			assert.Equal(t, public+"/self-service/login/browser?return_to="+url.QueryEscape(public+"/settings"), resp.Header.Get("Location"), "without a session: the login, and back")
		})
	}
}

// aalServerLogin is the part of a native login's answer the test reads.
type aalServerLogin struct {
	SessionToken string `json:"session_token"`
	Session      struct {
		AAL      string           `json:"authenticator_assurance_level"`
		Identity *json.RawMessage `json:"identity"`
	} `json:"session"`
}

// aalServerAPILogin logs the demo identity in with its password through an
// API flow and returns the session token and the answer.
func aalServerAPILogin(t *testing.T, public string) (string, aalServerLogin) {
	t.Helper()
	resp, body := aalServerDo(t, http.DefaultClient, http.MethodGet, public+"/self-service/login/api", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	var f struct{ ID string }
	require.NoError(t, json.Unmarshal([]byte(body), &f))
	req, err := http.NewRequest(http.MethodPost, public+"/self-service/login?flow="+f.ID,
		strings.NewReader(`{"method":"password","identifier":"`+browserIdentifier+`","password":"`+browserPassword+`"}`))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", b)
	var out aalServerLogin
	require.NoError(t, json.Unmarshal(b, &out))
	require.NotEmpty(t, out.SessionToken)
	return out.SessionToken, out
}

// aalServerAssertAAL2Required checks the 403 session_aal2_required
// envelope (CONTRACT-AAL §9).
func aalServerAssertAAL2Required(t *testing.T, resp *http.Response, body, stepUp string) {
	t.Helper()
	assert.Equal(t, "session_aal2_required", resp.Header.Get("Ory-Error-Id"))
	assert.True(t, strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json"), resp.Header.Get("Content-Type"))
	var env struct {
		Error struct {
			ID      string         `json:"id"`
			Code    int            `json:"code"`
			Status  string         `json:"status"`
			Reason  string         `json:"reason"`
			Details map[string]any `json:"details"`
			Message string         `json:"message"`
		} `json:"error"`
		RedirectBrowserTo string `json:"redirect_browser_to"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &env), body)
	assert.Equal(t, "session_aal2_required", env.Error.ID)
	assert.Equal(t, http.StatusForbidden, env.Error.Code)
	assert.Equal(t, "Forbidden", env.Error.Status)
	assert.Equal(t, "An active session was found but it does not fulfill the requested Authenticator Assurance Level. Please verify yourself with a second factor to resolve this issue.", env.Error.Reason)
	assert.Equal(t, "Session does not fulfill the requested Authenticator Assurance Level", env.Error.Message)
	assert.Equal(t, map[string]any{"redirect_browser_to": stepUp}, env.Error.Details)
	assert.Equal(t, stepUp, env.RedirectBrowserTo)
}

// aalServerBrowser is a browser without JavaScript: a cookie jar,
// redirects handed back.
func aalServerBrowser(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func aalServerDo(t *testing.T, c *http.Client, method, u string, header map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	require.NoError(t, err)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

var (
	aalServerActionRE = regexp.MustCompile(`<form action="([^"]+)" method="POST"`)
	aalServerCSRFRE   = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)
)

// aalServerBrowserLogin submits the demo's login form with the password and
// returns where the answer (a 303) sends the browser.
func aalServerBrowserLogin(t *testing.T, b *http.Client, public string) string {
	t.Helper()
	resp, _ := aalServerDo(t, b, http.MethodGet, public+"/self-service/login/browser", map[string]string{"Accept": aalServerBrowserAccept})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	resp, page := aalServerDo(t, b, http.MethodGet, resp.Header.Get("Location"), map[string]string{"Accept": aalServerBrowserAccept})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	action := html.UnescapeString(aalServerActionRE.FindStringSubmatch(page)[1])
	csrf := html.UnescapeString(aalServerCSRFRE.FindStringSubmatch(page)[1])
	resp, err := b.PostForm(action, url.Values{
		"csrf_token": {csrf}, "identifier": {browserIdentifier}, "password": {browserPassword}, "method": {"password"},
	})
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	return resp.Header.Get("Location")
}
