package login_test

// Flow creation: GET /self-service/login/browser and /self-service/login/api
// (CONTRACT Part 2 §2.1–2.3, §12 "Init" 1–22, as changed by Part 1 rules
// 6, 7, 13, 18 and 20).

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/internal/uuid"
	"github.com/authflow/authflow/login"
)

// initFreshNodes are the nodes of a fresh first-factor flow (§4.2, Part 1
// rule 20), the csrf_token value replaced by csrf.
func initFreshNodes(csrf, label string) string {
	return `[
	{"type":"input","group":"default","attributes":{"name":"csrf_token","type":"hidden","value":"` + csrf + `","required":true,"disabled":false,"node_type":"input"},"messages":[],"meta":{}},
	{"type":"input","group":"default","attributes":{"name":"identifier","type":"text","value":"","required":true,"autocomplete":"username","disabled":false,"node_type":"input"},"messages":[],"meta":{"label":` + label + `}},
	{"type":"input","group":"password","attributes":{"name":"password","type":"password","required":true,"autocomplete":"current-password","disabled":false,"node_type":"input"},"messages":[],"meta":{"label":{"id":1070001,"text":"Password","type":"info"}}},
	{"type":"input","group":"password","attributes":{"name":"method","type":"submit","value":"password","disabled":false,"node_type":"input"},"messages":[],"meta":{"label":{"id":1010022,"text":"Sign in with password","type":"info"}}}
]`
}

const initLabelID = `{"id":1070004,"text":"ID","type":"info"}`

// initNodesJSON returns the flow's nodes as JSON with a non-empty csrf_token
// value replaced by "<csrf>".
func initNodesJSON(t testing.TB, f map[string]any) string {
	t.Helper()
	nodes := bbNodes(t, f)
	for _, n := range nodes {
		a := n["attributes"].(map[string]any)
		if a["name"] == "csrf_token" {
			if v, _ := a["value"].(string); v != "" {
				a["value"] = "<csrf>"
			}
		}
	}
	b, err := json.Marshal(nodes)
	require.NoError(t, err)
	return string(b)
}

// initUnmask returns the raw token a masked csrf_token value carries (§6.2).
func initUnmask(t testing.TB, masked string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(masked)
	require.NoError(t, err, "csrf_token value is standard base64")
	require.Len(t, b, 64, "masked token is pad ‖ token^pad")
	out := make([]byte, 32)
	for i := range out {
		out[i] = b[i] ^ b[32+i]
	}
	return out
}

// initCheckFresh checks what every fresh flow shares (§4.1, §12 Init 2–5).
func initCheckFresh(t *testing.T, e *env, f map[string]any, typ string) {
	t.Helper()
	id, _ := f["id"].(string)
	_, ok := uuid.Parse(id)
	require.True(t, ok, "id %q is a UUID", id)
	assert.Equal(t, typ, f["type"])
	assert.Equal(t, false, f["refresh"])
	assert.Equal(t, "aal1", f["requested_aal"])
	assert.Equal(t, "choose_method", f["state"])
	if assert.Contains(t, f, "organization_id", "organization_id is always present") {
		assert.Nil(t, f["organization_id"])
	}
	assert.NotContains(t, f, "active")
	ui := f["ui"].(map[string]any)
	assert.Equal(t, "POST", ui["method"])
	assert.Equal(t, e.srv.URL+"/self-service/login?flow="+id, ui["action"])
	assert.NotContains(t, ui, "messages", "a fresh flow has no ui.messages key")
	issued, expires := bbTime(t, f["issued_at"]), bbTime(t, f["expires_at"])
	assert.True(t, issued.Equal(e.clock.Now()), "issued_at is now")
	assert.Equal(t, time.Hour, expires.Sub(issued), "expires_at − issued_at")
	assert.True(t, bbTime(t, f["created_at"]).Equal(issued))
	assert.True(t, bbTime(t, f["updated_at"]).Equal(issued))
	assert.Equal(t, []string{"csrf_token", "identifier", "password", "method"}, bbNodeNames(t, f))
}

func TestInitBrowserNavigationRedirectsToLoginUI(t *testing.T) {
	e := newEnv(t)
	c := e.browser()
	r := e.do(c, http.MethodGet, "/self-service/login/browser", nil, nil)

	loc := bbRedirect(t, r)
	id, ok := strings.CutPrefix(loc, loginUI+"?flow=")
	require.True(t, ok, "Location %q", loc)
	_, ok = uuid.Parse(id)
	assert.True(t, ok, "flow id %q is a UUID", id)
	cookie := bbCSRFCookieOf(t, r)

	// The UI fetches the flow with the browser's cookies.
	got := e.do(c, http.MethodGet, "/self-service/login/flows?id="+id, nil, nil)
	f := bbBody(t, got, http.StatusOK)
	initCheckFresh(t, e, f, "browser")
	masked, _ := bbNode(t, f, "csrf_token")["attributes"].(map[string]any)["value"].(string)
	want, _ := base64.StdEncoding.DecodeString(cookie.Value)
	assert.Equal(t, want, initUnmask(t, masked), "the flow's token is the cookie's, masked (§6.2)")
}

func TestInitBrowserJSONReturnsFlow(t *testing.T) {
	e := newEnv(t)
	c := e.browser()
	r := e.do(c, http.MethodGet, "/self-service/login/browser", nil, bbAcceptJSON)

	f := bbBody(t, r, http.StatusOK)
	initCheckFresh(t, e, f, "browser")
	assert.Equal(t, e.srv.URL+"/self-service/login/browser", f["request_url"])
	assert.NotContains(t, f, "return_to", "return_to is omitted when empty")
	cookie := bbCSRFCookieOf(t, r)
	masked, _ := bbNode(t, f, "csrf_token")["attributes"].(map[string]any)["value"].(string)
	want, _ := base64.StdEncoding.DecodeString(cookie.Value)
	assert.Equal(t, want, initUnmask(t, masked), "the flow's token is the cookie's, masked (§6.2)")
	assert.JSONEq(t, initFreshNodes("<csrf>", initLabelID), initNodesJSON(t, f))
}

func TestInitBrowserReusesCSRFCookie(t *testing.T) {
	e := newEnv(t)
	c := e.browser()
	first := e.do(c, http.MethodGet, "/self-service/login/browser", nil, bbAcceptJSON)
	cookie := bbCSRFCookieOf(t, first)

	second := e.do(c, http.MethodGet, "/self-service/login/browser", nil, bbAcceptJSON)
	f2 := bbBody(t, second, http.StatusOK)
	bbNoSetCookie(t, second)
	f1 := first.json(t)
	v1 := bbNode(t, f1, "csrf_token")["attributes"].(map[string]any)["value"].(string)
	v2 := bbNode(t, f2, "csrf_token")["attributes"].(map[string]any)["value"].(string)
	assert.NotEqual(t, v1, v2, "each rendering is masked afresh (§6.2)")
	want, _ := base64.StdEncoding.DecodeString(cookie.Value)
	assert.Equal(t, want, initUnmask(t, v2))
}

func TestInitAPIFlow(t *testing.T) {
	e := newEnv(t)
	r := e.do(e.api(), http.MethodGet, "/self-service/login/api", nil, nil)

	f := bbBody(t, r, http.StatusOK)
	initCheckFresh(t, e, f, "api")
	assert.Equal(t, e.srv.URL+"/self-service/login/api", f["request_url"])
	assert.JSONEq(t, initFreshNodes("", initLabelID), initNodesJSON(t, f), "API flows: csrf_token value \"\"")
	bbNoSetCookie(t, r)
}

func TestInitAPIFlowIgnoresAcceptAndSetsNoCookieForBrowsers(t *testing.T) {
	e := newEnv(t)
	r := e.do(e.browser(), http.MethodGet, "/self-service/login/api", nil, map[string]string{"Accept": "text/html"})
	f := bbBody(t, r, http.StatusOK)
	assert.Equal(t, "api", f["type"])
	bbNoSetCookie(t, r)
}

func TestInitFlowLifespanConfigured(t *testing.T) {
	e := newEnv(t, func(c *login.Config) { c.FlowLifespan = 10 * time.Minute })
	for _, path := range []string{"/self-service/login/api", "/self-service/login/browser"} {
		r := e.do(e.browser(), http.MethodGet, path, nil, bbAcceptJSON)
		f := bbBody(t, r, http.StatusOK)
		assert.Equal(t, 10*time.Minute, bbTime(t, f["expires_at"]).Sub(bbTime(t, f["issued_at"])), path)
	}
}

func TestInitIdentifierLabelConfigured(t *testing.T) {
	e := newEnv(t, func(c *login.Config) { c.IdentifierLabel = "E-Mail" })
	f := bbBody(t, e.do(e.api(), http.MethodGet, "/self-service/login/api", nil, nil), http.StatusOK)

	label, ok := bbNode(t, f, "identifier")["meta"].(map[string]any)["label"].(map[string]any)
	require.True(t, ok, "identifier has a label")
	assert.EqualValues(t, 1070002, label["id"])
	assert.Equal(t, "E-Mail", label["text"])
	assert.Equal(t, "info", label["type"])
	ctx, ok := label["context"].(map[string]any)
	require.True(t, ok, "1070002 has a context")
	assert.Equal(t, "E-Mail", ctx["title"])
	name, _ := ctx["name"].(string)
	assert.NotEmpty(t, name, "context.name")
	assert.Len(t, ctx, 2, "context is {title, name}")
	// The rest of the form is unchanged.
	labelJSON, _ := json.Marshal(label)
	assert.JSONEq(t, initFreshNodes("", string(labelJSON)), initNodesJSON(t, f))
}

func TestInitRequestURLFromPublicURL(t *testing.T) {
	e := newEnv(t)
	forwarded := map[string]string{
		"Accept":            "application/json",
		"X-Forwarded-Host":  "evil.example.net",
		"X-Forwarded-Proto": "https",
		"Forwarded":         "host=evil.example.net;proto=https",
	}
	const query = "?return_to=https%3A%2F%2Fapp.example.com%2Fafter&x=1"
	r := e.do(e.browser(), http.MethodGet, "/self-service/login/browser"+query, nil, forwarded)
	f := bbBody(t, r, http.StatusOK)
	assert.Equal(t, e.srv.URL+"/self-service/login/browser"+query, f["request_url"], "Part 1 rule 18: forwarded headers are not trusted")
	assert.Equal(t, "https://app.example.com/after", f["return_to"])
	assert.Equal(t, e.srv.URL+"/self-service/login?flow="+f["id"].(string), f["ui"].(map[string]any)["action"])
}

func TestInitMountPrefix(t *testing.T) {
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	d := bbNewDirect(t, srv.URL+"/auth")
	mux.Handle("/auth/", http.StripPrefix("/auth", d.h))
	client := &http.Client{CheckRedirect: noRedirects}

	for _, path := range []string{"/auth/self-service/login/browser?refresh=foo", "/auth/self-service/login/api"} {
		t.Run(path, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, srv.URL+path, nil)
			require.NoError(t, err)
			req.Header.Set("Accept", "application/json")
			resp, err := client.Do(req)
			require.NoError(t, err)
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.NoError(t, err)
			f := bbBody(t, &result{status: resp.StatusCode, header: resp.Header, body: b, resp: resp}, http.StatusOK)
			assert.Equal(t, srv.URL+path, f["request_url"])
			assert.Equal(t, srv.URL+"/auth/self-service/login?flow="+f["id"].(string), f["ui"].(map[string]any)["action"])

			// The flow is fetchable under the prefix (API flows need no cookie).
			if strings.Contains(path, "/api") {
				get, err := client.Get(srv.URL + "/auth/self-service/login/flows?id=" + f["id"].(string))
				require.NoError(t, err)
				get.Body.Close()
				assert.Equal(t, http.StatusOK, get.StatusCode)
			}
		})
	}
}

func TestInitLoginUIURLShapes(t *testing.T) {
	tests := []struct {
		name       string
		loginUI    string
		wantPrefix string
	}{
		{"existing query of the UI URL is kept", "https://ui.example.com/login?lang=de", "https://ui.example.com/login?"},
		{"relative UI URL gives a relative Location", "/login", "/login?flow="},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(c *login.Config) { c.LoginUIURL = tt.loginUI })
			loc := bbRedirect(t, e.do(e.browser(), http.MethodGet, "/self-service/login/browser", nil, nil))
			assert.True(t, strings.HasPrefix(loc, tt.wantPrefix), "Location %q", loc)
			u, err := url.Parse(loc)
			require.NoError(t, err)
			_, ok := uuid.Parse(u.Query().Get("flow"))
			assert.True(t, ok, "flow parameter in %q", loc)
			if strings.Contains(tt.loginUI, "lang=de") {
				assert.Equal(t, "de", u.Query().Get("lang"))
			}
		})
	}
}

// TestInitCSRFCookieNames drives handlers with https public URLs in
// process: the httptest server is plain http (Part 1 rule 13).
func TestInitCSRFCookieNames(t *testing.T) {
	tests := []struct {
		name       string
		public     string
		configure  func(*login.Config)
		wantName   string
		wantSecure bool
		wantDomain string
	}{
		{"https default name gets __Host-", "https://auth.example.com", nil, "__Host-authflow_csrf", true, ""},
		{"https with a mount prefix still gets __Host-", "https://example.com/auth", nil, "__Host-authflow_csrf", true, ""},
		{"https with a cookie domain keeps the plain name", "https://auth.example.com",
			func(c *login.Config) { c.CookieDomain = "example.com" }, "authflow_csrf", true, "example.com"},
		{"https configured name is used verbatim", "https://auth.example.com",
			func(c *login.Config) { c.CSRFCookieName = "my_csrf" }, "my_csrf", true, ""},
		{"http default name, not Secure", "http://auth.example.com", nil, "authflow_csrf", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var conf []func(*login.Config)
			if tt.configure != nil {
				conf = append(conf, tt.configure)
			}
			d := bbNewDirect(t, tt.public, conf...)
			prefix := strings.TrimSuffix(tt.public, "/")
			pu, err := url.Parse(tt.public)
			require.NoError(t, err)
			// The handler sees the path below its mount point (as after
			// http.StripPrefix).
			target := pu.Scheme + "://" + pu.Host + "/self-service/login/browser"
			for _, accept := range []string{"", "application/json"} {
				r := d.serve(t, http.MethodGet, target, nil, map[string]string{"Accept": accept})
				require.Contains(t, []int{http.StatusOK, http.StatusSeeOther}, r.status)
				bbNoStore(t, r)
				cookies := r.resp.Cookies()
				require.Len(t, cookies, 1, "Set-Cookie: %q", r.header.Values("Set-Cookie"))
				c := cookies[0]
				assert.Equal(t, tt.wantName, c.Name)
				assert.Equal(t, tt.wantSecure, c.Secure, "Secure exactly on https")
				assert.True(t, c.HttpOnly)
				assert.Equal(t, http.SameSiteLaxMode, c.SameSite)
				assert.Equal(t, "/", c.Path)
				assert.Equal(t, tt.wantDomain, c.Domain)
				assert.Equal(t, bbCSRFMaxAge, c.MaxAge)
				if accept != "" {
					f := r.json(t)
					assert.Equal(t, prefix+"/self-service/login?flow="+f["id"].(string), f["ui"].(map[string]any)["action"])
				}
			}
		})
	}
}

// --- already signed in (Part 1 rule 6, §12 Init 12–14) ---

const initAlreadySignedIn = `{"error":{"id":"session_already_available","code":400,"status":"Bad Request",
	"reason":"A valid session was detected and thus login is not possible. Did you forget to set ` + "`?refresh=true`" + `?",
	"message":"you are already logged in"}}`

func TestInitAlreadySignedIn(t *testing.T) {
	e := newEnv(t)
	token := e.loginAPI()
	tests := []struct {
		name     string
		path     string
		header   map[string]string
		status   int    // 400 envelope, or 303
		location string // for 303
	}{
		{"API flow with X-Session-Token", "/self-service/login/api", map[string]string{"X-Session-Token": token}, 400, ""},
		{"API flow with Authorization Bearer", "/self-service/login/api", map[string]string{"Authorization": "Bearer " + token}, 400, ""},
		{"API flow with the session cookie", "/self-service/login/api", bbSessionCookieHeader(token), 400, ""},
		{"API flow with refresh=false", "/self-service/login/api?refresh=false", map[string]string{"X-Session-Token": token}, 400, ""},
		{"API flow with aal=aal1", "/self-service/login/api?aal=aal1", map[string]string{"X-Session-Token": token}, 400, ""},
		{"browser JSON with the session cookie", "/self-service/login/browser",
			map[string]string{"Accept": "application/json", "Cookie": bbSessCookie + "=" + token}, 400, ""},
		{"browser JSON with an allowed return_to", "/self-service/login/browser?return_to=https%3A%2F%2Fapp.example.com%2Fafter",
			map[string]string{"Accept": "application/json", "Cookie": bbSessCookie + "=" + token}, 400, ""},
		{"browser navigation goes to the default return URL", "/self-service/login/browser",
			bbSessionCookieHeader(token), 303, defaultReturn},
		{"browser navigation goes to the allowed return_to", "/self-service/login/browser?return_to=https%3A%2F%2Fapp.example.com%2Fafter",
			bbSessionCookieHeader(token), 303, "https://app.example.com/after"},
		{"browser navigation resolves a relative return_to", "/self-service/login/browser?return_to=%2Fdash",
			bbSessionCookieHeader(token), 303, "https://app.example.com/dash"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(e.api(), http.MethodGet, tt.path, nil, tt.header)
			if tt.status == http.StatusSeeOther {
				assert.Equal(t, tt.location, bbRedirect(t, r))
				return
			}
			bbEnvelope(t, r, http.StatusBadRequest, "session_already_available")
			assert.JSONEq(t, initAlreadySignedIn, string(r.body))
		})
	}
}

func TestInitAlreadySignedInWithBrowserCookieJar(t *testing.T) {
	e := newEnv(t)
	c := e.browser()
	e.loginBrowser(c)
	r := e.do(c, http.MethodGet, "/self-service/login/browser", nil, nil)
	assert.Equal(t, defaultReturn, bbRedirect(t, r))
	r = e.do(c, http.MethodGet, "/self-service/login/browser", nil, bbAcceptJSON)
	bbEnvelope(t, r, http.StatusBadRequest, "session_already_available")
}

// --- refresh (§12 Init 7, 8, 15) ---

const initRefreshMessage = `[{"id":1010003,"text":"Please confirm this action by verifying that it is you.","type":"info"}]`

// initCheckRefreshFlow checks a refresh flow for the test identity (§4.2).
func initCheckRefreshFlow(t *testing.T, f map[string]any) {
	t.Helper()
	assert.Equal(t, true, f["refresh"])
	msgs, _ := json.Marshal(f["ui"].(map[string]any)["messages"])
	assert.JSONEq(t, initRefreshMessage, string(msgs))
	assert.Equal(t, []string{"csrf_token", "identifier", "password", "method"}, bbNodeNames(t, f))

	id := bbNode(t, f, "identifier")
	a := id["attributes"].(map[string]any)
	assert.Equal(t, "default", id["group"])
	assert.Equal(t, "hidden", a["type"], "identifier is hidden")
	assert.Equal(t, testIdentifier, a["value"], "identifier carries the user's identifier")
	assert.NotContains(t, a, "required", "identifier is not required")
	assert.Equal(t, false, a["disabled"])
	assert.Equal(t, "input", a["node_type"])
	assert.NotContains(t, id["meta"], "label", "the hidden identifier has no label")

	pw := bbNode(t, f, "password")
	pwJSON, _ := json.Marshal(pw)
	assert.JSONEq(t, `{"type":"input","group":"password","attributes":{"name":"password","type":"password","required":true,"autocomplete":"current-password","disabled":false,"node_type":"input"},"messages":[],"meta":{"label":{"id":1070001,"text":"Password","type":"info"}}}`, string(pwJSON))

	method := bbNode(t, f, "method")
	methodJSON, _ := json.Marshal(method)
	assert.JSONEq(t, `{"type":"input","group":"password","attributes":{"name":"method","type":"submit","value":"password","disabled":false,"node_type":"input"},"messages":[],"meta":{"label":{"id":1010001,"text":"Sign in","type":"info"}}}`, string(methodJSON))
}

func TestInitRefreshWithSession(t *testing.T) {
	t.Run("API flow with X-Session-Token", func(t *testing.T) {
		e := newEnv(t)
		token := e.loginAPI()
		r := e.do(e.api(), http.MethodGet, "/self-service/login/api?refresh=true", nil, map[string]string{"X-Session-Token": token})
		f := bbBody(t, r, http.StatusOK)
		initCheckRefreshFlow(t, f)
		assert.Equal(t, "", bbNode(t, f, "csrf_token")["attributes"].(map[string]any)["value"])
	})
	t.Run("browser flow with the session cookie", func(t *testing.T) {
		e := newEnv(t)
		c := e.browser()
		e.loginBrowser(c)
		r := e.do(c, http.MethodGet, "/self-service/login/browser?refresh=true", nil, bbAcceptJSON)
		f := bbBody(t, r, http.StatusOK)
		initCheckRefreshFlow(t, f)
		assert.NotEmpty(t, bbNode(t, f, "csrf_token")["attributes"].(map[string]any)["value"])
	})
}

func TestInitRefreshParsing(t *testing.T) {
	e := newEnv(t)
	token := e.loginAPI()
	withSession := map[string]string{"X-Session-Token": token}
	tests := []struct {
		name        string
		refresh     string
		header      map[string]string
		wantStatus  int
		wantRefresh bool
	}{
		{"true with a session", "true", withSession, 200, true},
		{"1 with a session", "1", withSession, 200, true},
		{"True with a session", "True", withSession, 200, true},
		{"TRUE with a session", "TRUE", withSession, 200, true},
		{"t with a session", "t", withSession, 200, true},
		{"foo with a session is false, so already signed in", "foo", withSession, 400, false},
		{"0 with a session is false, so already signed in", "0", withSession, 400, false},
		{"yes with a session is false, so already signed in", "yes", withSession, 400, false},
		{"true without a session is forced to false", "true", nil, 200, false},
		{"1 without a session is forced to false", "1", nil, 200, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(e.api(), http.MethodGet, "/self-service/login/api?refresh="+url.QueryEscape(tt.refresh), nil, tt.header)
			if tt.wantStatus == http.StatusBadRequest {
				bbEnvelope(t, r, http.StatusBadRequest, "session_already_available")
				return
			}
			f := bbBody(t, r, http.StatusOK)
			assert.Equal(t, tt.wantRefresh, f["refresh"])
			if !tt.wantRefresh {
				assert.NotContains(t, f["ui"], "messages")
				assert.Equal(t, "text", bbNode(t, f, "identifier")["attributes"].(map[string]any)["type"])
			}
		})
	}
	t.Run("browser refresh=true without a session", func(t *testing.T) {
		r := e.do(e.browser(), http.MethodGet, "/self-service/login/browser?refresh=true", nil, bbAcceptJSON)
		f := bbBody(t, r, http.StatusOK)
		assert.Equal(t, false, f["refresh"])
		assert.NotContains(t, f["ui"], "messages")
	})
}

// --- aal (§2.1, §12 Init 9–11, 17) ---

const (
	initAAL0 = `{"error":{"code":400,"status":"Bad Request",
		"reason":"Unable to parse AuthenticationMethod Assurance Level (AAL): expected one of [aal1, aal2] but got aal0",
		"message":"The request was malformed or contained invalid parameters"}}`
	initAAL1Required = `{"error":{"id":"session_aal1_required","code":401,"status":"Unauthorized",
		"reason":"You can not requested a higher AAL (AAL2/AAL3) without an active session.",
		"message":"aal2 and aal3 can only be requested if a session exists already"}}`
)

func TestInitAALParsing(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name     string
		path     string
		accept   string
		status   int    // 200, 400, 401, or 303 (error UI)
		errID    string // for 400/401/303
		envelope string // exact JSON for 400/401; the error object for 303
	}{
		{"API AAL1 upper case is accepted", "/self-service/login/api?aal=AAL1", "", 200, "", ""},
		{"browser aal1 is accepted", "/self-service/login/browser?aal=aal1", "application/json", 200, "", ""},
		{"API aal0 is refused without id", "/self-service/login/api?aal=aal0", "", 400, "", initAAL0},
		{"browser JSON aal0 is refused without id", "/self-service/login/browser?aal=aal0", "application/json", 400, "", initAAL0},
		{"browser navigation aal0 goes to the error UI", "/self-service/login/browser?aal=aal0", "", 303, "", initAAL0},
		{"API aal2 without a session", "/self-service/login/api?aal=aal2", "", 401, "session_aal1_required", initAAL1Required},
		{"API AAL2 without a session", "/self-service/login/api?aal=AAL2", "", 401, "session_aal1_required", initAAL1Required},
		{"browser JSON aal2 without a session", "/self-service/login/browser?aal=aal2", "application/json", 401, "session_aal1_required", initAAL1Required},
		{"browser navigation aal2 without a session goes to the error UI", "/self-service/login/browser?aal=aal2", "", 303, "session_aal1_required", initAAL1Required},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(e.browser(), http.MethodGet, tt.path, nil, map[string]string{"Accept": tt.accept})
			switch tt.status {
			case http.StatusOK:
				f := bbBody(t, r, http.StatusOK)
				assert.Equal(t, "aal1", f["requested_aal"])
			case http.StatusSeeOther:
				got := e.bbForwarded(t, r)
				var want map[string]any
				require.NoError(t, json.Unmarshal([]byte(tt.envelope), &want))
				wantJSON, _ := json.Marshal(want["error"])
				gotJSON, _ := json.Marshal(got)
				assert.JSONEq(t, string(wantJSON), string(gotJSON))
			default:
				bbEnvelope(t, r, tt.status, tt.errID)
				assert.JSONEq(t, tt.envelope, string(r.body))
			}
		})
	}
}

func TestInitStepUpWithAAL1Session(t *testing.T) {
	const second = `{"id":1010004,"text":"Please complete the second authentication challenge.","type":"info"}`
	tests := []struct {
		name        string
		query       string
		wantRefresh bool
		wantMsgs    string
	}{
		{"aal2 asks for the second factor", "?aal=aal2", false, "[" + second + "]"},
		{"refresh and aal2 together", "?refresh=true&aal=aal2", true,
			`[{"id":1010003,"text":"Please confirm this action by verifying that it is you.","type":"info"},` + second + `]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			token := e.loginAPI()
			r := e.do(e.api(), http.MethodGet, "/self-service/login/api"+tt.query, nil, map[string]string{"X-Session-Token": token})
			f := bbBody(t, r, http.StatusOK)
			assert.Equal(t, "aal2", f["requested_aal"])
			assert.Equal(t, tt.wantRefresh, f["refresh"])
			msgs, _ := json.Marshal(f["ui"].(map[string]any)["messages"])
			assert.JSONEq(t, tt.wantMsgs, string(msgs))
			assert.Nil(t, f["ui"].(map[string]any)["nodes"], "password is first-factor only, and no second factor is configured: nodes null, as Kratos (CONTRACT-AAL §4)")

			c := e.browser()
			e.loginBrowser(c)
			r = e.do(c, http.MethodGet, "/self-service/login/browser"+tt.query, nil, bbAcceptJSON)
			f = bbBody(t, r, http.StatusOK)
			assert.Equal(t, "aal2", f["requested_aal"])
			assert.Equal(t, []string{"csrf_token"}, bbNodeNames(t, f))
		})
	}
}

// --- return_to (Part 1 rule 7, §8, §12 Init 18–21) ---

// initReturnToForbidden is the envelope of a refused return_to (rule 7).
func initReturnToForbidden(raw string) string {
	reason, _ := json.Marshal(`Requested return_to URL "` + raw + `" is not allowed.`)
	return `{"error":{"id":"security_identity_mismatch","code":400,"status":"Bad Request","reason":` + string(reason) +
		`,"message":"The request was malformed or contained invalid parameters"}}`
}

func TestInitReturnToForbidden(t *testing.T) {
	e := newEnv(t)
	for _, raw := range []string{
		"https://evil.example.net/",
		"https://app.example.com.evil.example.net/",
		"http://app.example.com/", // scheme must match
		"//evil.example.net/x",
	} {
		t.Run(raw, func(t *testing.T) {
			q := "?return_to=" + url.QueryEscape(raw)
			for _, tc := range []struct {
				name, path, accept string
			}{
				{"API", "/self-service/login/api", ""},
				{"browser JSON", "/self-service/login/browser", "application/json"},
			} {
				r := e.do(e.api(), http.MethodGet, tc.path+q, nil, map[string]string{"Accept": tc.accept})
				bbEnvelope(t, r, http.StatusBadRequest, "security_identity_mismatch")
				assert.JSONEq(t, initReturnToForbidden(raw), string(r.body), tc.name)
			}
			r := e.do(e.browser(), http.MethodGet, "/self-service/login/browser"+q, nil, nil)
			got := e.bbForwarded(t, r)
			gotJSON, _ := json.Marshal(map[string]any{"error": got})
			assert.JSONEq(t, initReturnToForbidden(raw), string(gotJSON), "browser navigation: forwarded to the error UI")
		})
	}
}

// TestInitReturnToReasonQuotesRawValue: the reason carries the value as
// received between plain double quotes (Part 1 rule 7), not a Go-quoted
// (escaped) string.
func TestInitReturnToReasonQuotesRawValue(t *testing.T) {
	e := newEnv(t)
	for _, raw := range []string{`/\evil.example.net/`, `https://evil.example.net/"x"`, "http://[::1"} {
		t.Run(raw, func(t *testing.T) {
			r := e.do(e.api(), http.MethodGet, "/self-service/login/api?return_to="+url.QueryEscape(raw), nil, nil)
			errObj := bbEnvelope(t, r, http.StatusBadRequest, "security_identity_mismatch")
			assert.Equal(t, `Requested return_to URL "`+raw+`" is not allowed.`, errObj["reason"])
		})
	}
}

func TestInitReturnToAllowed(t *testing.T) {
	e := newEnv(t)
	for _, raw := range []string{
		"/dash",
		"https://app.example.com/after",
		"https://APP.example.com/after?x=1#frag",
		"https://app.example.com:443/after",
		e.srv.URL + "/self-service/login/browser",
	} {
		t.Run(raw, func(t *testing.T) {
			q := "?return_to=" + url.QueryEscape(raw)
			for _, path := range []string{"/self-service/login/api", "/self-service/login/browser"} {
				r := e.do(e.browser(), http.MethodGet, path+q, nil, bbAcceptJSON)
				f := bbBody(t, r, http.StatusOK)
				assert.Equal(t, raw, f["return_to"], "stored verbatim")
				assert.Equal(t, e.srv.URL+path+q, f["request_url"])
			}
		})
	}
}

func TestInitReturnToWildcardAllowList(t *testing.T) {
	e := newEnv(t, func(c *login.Config) { c.AllowedReturnURLs = []string{"https://*.trusted.example.org/ok"} })
	tests := []struct {
		name    string
		raw     string
		allowed bool
	}{
		{"subdomain below the entry path", "https://a.trusted.example.org/ok/deep", true},
		{"subdomain at the entry path", "https://a.trusted.example.org/ok", true},
		{"deeper subdomain", "https://x.y.trusted.example.org/ok/deep", true},
		{"scheme and host case-insensitive", "HTTPS://A.Trusted.Example.ORG/ok/deep", true},
		{"explicit default port", "https://a.trusted.example.org:443/ok", true},
		{"other path", "https://a.trusted.example.org/nope", false},
		{"apex domain", "https://trusted.example.org/ok", false},
		{"apex domain deep", "https://trusted.example.org/ok/deep", false},
		{"path prefix without segment boundary", "https://a.trusted.example.org/okay", false},
		{"dot segments climbing out", "https://a.trusted.example.org/ok/../nope", false},
		{"other port", "https://a.trusted.example.org:8443/ok", false},
		{"other scheme", "http://a.trusted.example.org/ok", false},
		{"suffix without dot", "https://evil-trusted.example.org/ok", false},
		{"the old default is no longer allowed", "https://app.example.com/", false},
		{"public self-service is always allowed", e.srv.URL + "/self-service/login/browser", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(e.api(), http.MethodGet, "/self-service/login/api?return_to="+url.QueryEscape(tt.raw), nil, nil)
			if tt.allowed {
				f := bbBody(t, r, http.StatusOK)
				assert.Equal(t, tt.raw, f["return_to"])
				return
			}
			bbEnvelope(t, r, http.StatusBadRequest, "security_identity_mismatch")
			assert.JSONEq(t, initReturnToForbidden(tt.raw), string(r.body))
		})
	}
}

func TestInitReturnToPublicSelfServiceWithEmptyAllowList(t *testing.T) {
	e := newEnv(t, func(c *login.Config) { c.AllowedReturnURLs = []string{} })
	ok := e.do(e.api(), http.MethodGet, "/self-service/login/api?return_to="+url.QueryEscape(e.srv.URL+"/self-service/login/browser?x=1"), nil, nil)
	bbBody(t, ok, http.StatusOK)
	refused := e.do(e.api(), http.MethodGet, "/self-service/login/api?return_to="+url.QueryEscape("https://app.example.com/after"), nil, nil)
	bbEnvelope(t, refused, http.StatusBadRequest, "security_identity_mismatch")
	outside := e.do(e.api(), http.MethodGet, "/self-service/login/api?return_to="+url.QueryEscape(e.srv.URL+"/admin"), nil, nil)
	bbEnvelope(t, outside, http.StatusBadRequest, "security_identity_mismatch")
}

// TestInitBrowserRefusalStillIssuesCSRFCookie: GET /self-service/login/browser
// issues the CSRF cookie to a browser without one whatever the outcome
// (§6.1; KRATOS-SAMPLES "Browser flow with return_to not allowed").
func TestInitBrowserRefusalStillIssuesCSRFCookie(t *testing.T) {
	e := newEnv(t)
	q := "?return_to=" + url.QueryEscape("https://evil.example.net/")
	for _, accept := range []string{"", "application/json"} {
		r := e.do(e.browser(), http.MethodGet, "/self-service/login/browser"+q, nil, map[string]string{"Accept": accept})
		assert.NotNil(t, r.cookie(bbCSRFCookie), "Accept %q: Set-Cookie %q", accept, r.header.Values("Set-Cookie"))
	}
}

// TestInitOtherMethods: other HTTP methods are 405 (§2), and, being error
// answers, carry the no-cache headers (Part 1 rule 17).
func TestInitOtherMethods(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct{ method, path string }{
		{http.MethodPost, "/self-service/login/browser"},
		{http.MethodPost, "/self-service/login/api"},
		{http.MethodDelete, "/self-service/login/flows?id=x"},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			r := e.do(e.api(), tc.method, tc.path, nil, nil)
			assert.Equal(t, http.StatusMethodNotAllowed, r.status)
			bbNoStore(t, r)
		})
	}
}
