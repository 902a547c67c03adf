package login_test

// Logout: GET /self-service/logout/browser, GET /self-service/logout?token=,
// DELETE /self-service/logout/api (CONTRACT Part 2 §2.7, §7.2, §12 83–86;
// Part 1 rules 7 and 14).

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/login"
)

const (
	logoutNoSession = `{"error":{"id":"session_inactive","code":401,"status":"Unauthorized",
		"reason":"No active session was found in this request.",
		"message":"request does not have a valid authentication session"}}`
	logoutWrongTokenReason = "Unable to log out because the logout token in the URL query does not match the session cookie."
	logoutNoTokenReason    = "Please include a token in the URL query."
	logoutAPIInvalid       = "The provided Ory Session Token could not be found, is invalid, or otherwise malformed."
)

// logoutBrowser logs a browser in and returns it with its session token.
func (e *env) logoutBrowser() (*http.Client, string) {
	e.t.Helper()
	c := e.browser()
	e.loginBrowser(c)
	token := e.bbJarCookie(c, bbSessCookie)
	require.NotEmpty(e.t, token)
	return c, token
}

// logoutURLOf asks for the browser's logout URL and checks the answer.
func (e *env) logoutURLOf(t testing.TB, c *http.Client, token, query string) *url.URL {
	t.Helper()
	r := e.do(c, http.MethodGet, "/self-service/logout/browser"+query, nil, bbAcceptJSON)
	body := bbBody(t, r, http.StatusOK)
	assert.Len(t, body, 2, "{logout_url, logout_token}")
	assert.Equal(t, bbLogoutToken(token), body["logout_token"], "derived logout token (Part 1 rule 14)")
	raw, _ := body["logout_url"].(string)
	u, err := url.Parse(raw)
	require.NoError(t, err)
	assert.Equal(t, e.srv.URL+"/self-service/logout", (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String())
	assert.Equal(t, bbLogoutToken(token), u.Query().Get("token"))
	return u
}

func TestLogoutBrowserURL(t *testing.T) {
	e := newEnv(t)
	c, token := e.logoutBrowser()
	tests := []struct {
		name         string
		query        string
		header       map[string]string
		wantReturnTo string
	}{
		{"without return_to", "", nil, ""},
		{"with an allowed return_to", "?return_to=" + url.QueryEscape("https://app.example.com/bye"), nil, "https://app.example.com/bye"},
		{"with a relative return_to", "?return_to=%2Fbye", nil, "/bye"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := e.logoutURLOf(t, c, token, tt.query)
			assert.Equal(t, tt.wantReturnTo, u.Query().Get("return_to"))
			wantKeys := 1
			if tt.wantReturnTo != "" {
				wantKeys = 2
			}
			assert.Len(t, u.Query(), wantKeys)
		})
	}
	t.Run("with an API session token", func(t *testing.T) {
		apiToken := e.loginAPI()
		r := e.do(e.api(), http.MethodGet, "/self-service/logout/browser", nil, map[string]string{"X-Session-Token": apiToken})
		body := bbBody(t, r, http.StatusOK)
		assert.Equal(t, bbLogoutToken(apiToken), body["logout_token"])
	})
	t.Run("without Accept", func(t *testing.T) {
		r := e.do(c, http.MethodGet, "/self-service/logout/browser", nil, nil)
		body := bbBody(t, r, http.StatusOK)
		assert.Equal(t, bbLogoutToken(token), body["logout_token"])
	})
}

func TestLogoutBrowserURLWithoutSession(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name   string
		header map[string]string
	}{
		{"JSON request by Accept", bbAcceptJSON},
		{"JSON request by Content-Type", map[string]string{"Content-Type": "application/json"}},
		{"JSON request with a bogus token", map[string]string{"Accept": "application/json", "X-Session-Token": "bogus"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(e.browser(), http.MethodGet, "/self-service/logout/browser", nil, tt.header)
			bbEnvelope(t, r, http.StatusUnauthorized, "session_inactive")
			assert.JSONEq(t, logoutNoSession, string(r.body))
		})
	}
	t.Run("browser navigation goes to the error UI", func(t *testing.T) {
		r := e.do(e.browser(), http.MethodGet, "/self-service/logout/browser", nil, nil)
		got := e.bbForwarded(t, r)
		gotJSON, _ := json.Marshal(map[string]any{"error": got})
		assert.JSONEq(t, logoutNoSession, string(gotJSON))
	})
}

func TestLogoutBrowserCompletes(t *testing.T) {
	tests := []struct {
		name         string
		query        string
		wantLocation string
	}{
		{"to the default return URL", "", defaultReturn},
		{"to an allowed return_to", "?return_to=" + url.QueryEscape("https://app.example.com/bye?x=1"), "https://app.example.com/bye?x=1"},
		{"to a relative return_to resolved", "?return_to=%2Fbye", "https://app.example.com/bye"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			c, token := e.logoutBrowser()
			csrfBefore := e.bbJarCookie(c, bbCSRFCookie)
			u := e.logoutURLOf(t, c, token, tt.query)

			r := e.do(c, http.MethodGet, strings.TrimPrefix(u.String(), e.srv.URL), nil, nil)
			assert.Equal(t, tt.wantLocation, bbRedirect(t, r))

			cleared := r.cookie(bbSessCookie)
			require.NotNil(t, cleared, "session cookie cleared; Set-Cookie: %q", r.header.Values("Set-Cookie"))
			bbCookieAttrs(t, cleared, false)
			assert.Empty(t, cleared.Value)
			assert.Equal(t, -1, cleared.MaxAge, "Max-Age=0 on the wire")
			assert.True(t, cleared.Expires.Equal(time.Unix(1, 0)), "Expires=Thu, 01 Jan 1970 00:00:01 GMT, got %v", cleared.Expires)
			assert.Contains(t, strings.Join(r.header.Values("Set-Cookie"), "\n"), "Max-Age=0")

			csrf := bbCSRFCookieOf(t, r)
			assert.NotEqual(t, csrfBefore, csrf.Value, "the CSRF cookie is rotated (§6.5)")
			assert.Empty(t, e.bbJarCookie(c, bbSessCookie), "the browser dropped the session cookie")

			sessionCheckUnauthorized(t, e.sessionWhoami(http.MethodGet, map[string]string{"X-Session-Token": token}))
			sessionCheckUnauthorized(t, e.sessionWhoami(http.MethodGet, bbSessionCookieHeader(token)))
		})
	}
}

// Config.AfterLogoutURL is where a logout without return_to lands (Kratos'
// logout.after.default_browser_return_url); a return_to still wins, and a
// bad setting is refused at New.
func TestLogoutLandsOnAfterLogoutURL(t *testing.T) {
	const afterLogout = "https://ui.example.com/login?logged_out=1"
	e := newEnv(t, func(c *login.Config) { c.AfterLogoutURL = afterLogout })
	for query, want := range map[string]string{
		"":                  afterLogout,
		"?return_to=%2Fbye": "https://app.example.com/bye",
	} {
		c, token := e.logoutBrowser()
		u := e.logoutURLOf(t, c, token, query)
		r := e.do(c, http.MethodGet, strings.TrimPrefix(u.String(), e.srv.URL), nil, nil)
		assert.Equal(t, want, bbRedirect(t, r), "query %q", query)
	}

	// A login still lands on the default return URL.
	c := e.browser()
	f := e.browserFlow(c, "")
	r := e.submitForm(c, f.ID, url.Values{"method": {"password"}, "identifier": {testIdentifier}, "password": {testPassword}, "csrf_token": {csrfToken(f)}}, nil)
	assert.Equal(t, defaultReturn, bbRedirect(t, r))

	_, err := login.New(login.Config{PublicURL: "https://auth.example.com", LoginUIURL: loginUI, ErrorUIURL: errorUI, DefaultReturnURL: defaultReturn, AfterLogoutURL: "/relative"})
	assert.ErrorContains(t, err, "AfterLogoutURL")
}

func TestLogoutBrowserJSONRequestGets204(t *testing.T) {
	for _, header := range []map[string]string{
		{"Accept": "application/json"},
		{"Content-Type": "application/json"},
	} {
		e := newEnv(t)
		c, token := e.logoutBrowser()
		u := e.logoutURLOf(t, c, token, "?return_to="+url.QueryEscape("https://app.example.com/bye"))
		r := e.do(c, http.MethodGet, strings.TrimPrefix(u.String(), e.srv.URL), nil, header)
		assert.Equal(t, http.StatusNoContent, r.status, "header %v: body %s", header, r.body)
		bbNoStore(t, r)
		assert.Empty(t, r.body)
		assert.Empty(t, r.header.Get("Location"))
		if cleared := r.cookie(bbSessCookie); assert.NotNil(t, cleared) {
			assert.Equal(t, -1, cleared.MaxAge)
		}
		bbCSRFCookieOf(t, r)
		sessionCheckUnauthorized(t, e.sessionWhoami(http.MethodGet, map[string]string{"X-Session-Token": token}))
	}
}

func TestLogoutBrowserRefusals(t *testing.T) {
	e := newEnv(t)
	c, token := e.logoutBrowser()
	good := bbLogoutToken(token)
	otherToken := e.loginAPI()
	tests := []struct {
		name       string
		query      string
		header     map[string]string
		client     *http.Client
		wantStatus int
		wantID     string
		wantReason string
	}{
		{"wrong token", "?token=wrong", bbAcceptJSON, c, 403, "", logoutWrongTokenReason},
		{"the session token itself", "?token=" + url.QueryEscape(token), bbAcceptJSON, c, 403, "", logoutWrongTokenReason},
		{"another session's logout token", "?token=" + bbLogoutToken(otherToken), bbAcceptJSON, c, 403, "", logoutWrongTokenReason},
		{"no token", "", bbAcceptJSON, c, 400, "", logoutNoTokenReason},
		{"empty token", "?token=", bbAcceptJSON, c, 400, "", logoutNoTokenReason},
		{"no session", "?token=" + good, bbAcceptJSON, e.api(), 401, "session_inactive", "No active session was found in this request."},
		{"forbidden return_to", "?token=" + good + "&return_to=" + url.QueryEscape("https://evil.example.net/"), bbAcceptJSON, c, 400,
			"security_identity_mismatch", `Requested return_to URL "https://evil.example.net/" is not allowed.`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(tt.client, http.MethodGet, "/self-service/logout"+tt.query, nil, tt.header)
			errObj := bbEnvelope(t, r, tt.wantStatus, tt.wantID)
			assert.Equal(t, tt.wantReason, errObj["reason"])
			assert.Nil(t, r.cookie(bbSessCookie), "the session cookie is not cleared")
		})
	}
	t.Run("wrong token from a browser navigation goes to the error UI", func(t *testing.T) {
		r := e.do(c, http.MethodGet, "/self-service/logout?token=wrong", nil, nil)
		got := e.bbForwarded(t, r)
		assert.EqualValues(t, 403, got["code"])
		assert.Equal(t, logoutWrongTokenReason, got["reason"])
	})
	t.Run("no token from a browser navigation goes to the error UI", func(t *testing.T) {
		r := e.do(c, http.MethodGet, "/self-service/logout", nil, nil)
		got := e.bbForwarded(t, r)
		assert.EqualValues(t, 400, got["code"])
		assert.Equal(t, logoutNoTokenReason, got["reason"])
	})
	// None of these logged the browser out.
	bbBody(t, e.do(c, http.MethodGet, "/sessions/whoami", nil, nil), http.StatusOK)
}

func TestLogoutBrowserURLForbiddenReturnTo(t *testing.T) {
	e := newEnv(t)
	c, _ := e.logoutBrowser()
	raw := "https://evil.example.net/"
	r := e.do(c, http.MethodGet, "/self-service/logout/browser?return_to="+url.QueryEscape(raw), nil, bbAcceptJSON)
	bbEnvelope(t, r, http.StatusBadRequest, "security_identity_mismatch")
	assert.JSONEq(t, initReturnToForbidden(raw), string(r.body))

	r = e.do(c, http.MethodGet, "/self-service/logout/browser?return_to="+url.QueryEscape(raw), nil, nil)
	got := e.bbForwarded(t, r)
	assert.Equal(t, "security_identity_mismatch", got["id"])
}

func TestLogoutAPI(t *testing.T) {
	e := newEnv(t)
	token := e.loginAPI()
	del := func(body string) *result {
		return e.do(e.api(), http.MethodDelete, "/self-service/logout/api", strings.NewReader(body), map[string]string{"Content-Type": "application/json"})
	}
	tokenBody, _ := json.Marshal(map[string]string{"session_token": token})

	r := del(string(tokenBody))
	assert.Equal(t, http.StatusNoContent, r.status, "body: %s", r.body)
	assert.Empty(t, r.body)
	bbNoStore(t, r)
	bbNoSetCookie(t, r)
	sessionCheckUnauthorized(t, e.sessionWhoami(http.MethodGet, map[string]string{"X-Session-Token": token}))

	again := del(string(tokenBody))
	assert.Equal(t, http.StatusNoContent, again.status, "revoking a revoked session succeeds again; body: %s", again.body)
	bbNoSetCookie(t, again)

	for _, tc := range []struct{ name, body string }{
		{"unknown token", `{"session_token":"bogus"}`},
		{"empty object", `{}`},
		{"empty token", `{"session_token":""}`},
		{"not JSON", `session_token=x`},
		{"the token hash", `{"session_token":"` + bbHashToken(token) + `"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := del(tc.body)
			errObj := bbEnvelope(t, r, http.StatusForbidden, "")
			assert.Equal(t, logoutAPIInvalid, errObj["reason"])
			bbNoSetCookie(t, r)
		})
	}
}

func TestLogoutAPIDoesNotTouchCookies(t *testing.T) {
	e := newEnv(t)
	c, token := e.logoutBrowser()
	body, _ := json.Marshal(map[string]string{"session_token": token})
	r := e.do(c, http.MethodDelete, "/self-service/logout/api", bytes.NewReader(body), map[string]string{"Content-Type": "application/json"})
	assert.Equal(t, http.StatusNoContent, r.status, "body: %s", r.body)
	bbNoSetCookie(t, r)
	assert.Equal(t, token, e.bbJarCookie(c, bbSessCookie), "the jar keeps its cookie")
	sessionCheckUnauthorized(t, e.sessionWhoami(http.MethodGet, bbSessionCookieHeader(token)))
}

// TestLogoutHTTPSClearsPrefixedCookie: the cleared session cookie has the
// attributes of the one it replaces, or browsers keep the __Host- cookie
// (Part 1 rule 13).
func TestLogoutHTTPSClearsPrefixedCookie(t *testing.T) {
	const public = "https://auth.example.com"
	d := bbNewDirect(t, public)
	created := d.serve(t, http.MethodGet, public+"/self-service/login/browser", nil, bbAcceptJSON)
	require.Equal(t, http.StatusOK, created.status)
	csrf := created.cookie("__Host-authflow_csrf")
	require.NotNil(t, csrf)
	f := created.flow(t)
	body, _ := json.Marshal(credentials(testIdentifier, testPassword, csrfToken(f)))
	login := d.serve(t, http.MethodPost, public+"/self-service/login?flow="+f.ID, bytes.NewReader(body), map[string]string{
		"Content-Type": "application/json", "Accept": "application/json", "Cookie": csrf.Name + "=" + csrf.Value,
	})
	require.Equal(t, http.StatusOK, login.status, "body: %s", login.body)
	sc := login.cookie("__Host-authflow_session")
	require.NotNil(t, sc)
	newCSRF := login.cookie("__Host-authflow_csrf")
	require.NotNil(t, newCSRF)

	cookies := map[string]string{"Cookie": sc.Name + "=" + sc.Value + "; " + newCSRF.Name + "=" + newCSRF.Value}
	r := d.serve(t, http.MethodGet, public+"/self-service/logout?token="+bbLogoutToken(sc.Value), nil, cookies)
	assert.Equal(t, defaultReturn, bbRedirect(t, r))
	cleared := r.cookie("__Host-authflow_session")
	require.NotNil(t, cleared, "Set-Cookie: %q", r.header.Values("Set-Cookie"))
	bbCookieAttrs(t, cleared, true)
	assert.Equal(t, -1, cleared.MaxAge)
	rotated := r.cookie("__Host-authflow_csrf")
	require.NotNil(t, rotated)
	bbCookieAttrs(t, rotated, true)
	assert.NotEqual(t, newCSRF.Value, rotated.Value)
}
