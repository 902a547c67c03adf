package login_test

// Helpers shared by the black-box wire tests of flow creation, fetch,
// whoami, logout, negotiation and the golden files (init_test.go,
// fetch_test.go, session_test.go, logout_test.go, negotiate_test.go,
// golden_test.go). Every name starts with "bb" so that it cannot clash with
// helpers of other test files in the package.

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
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

	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/internal/uuid"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/login/logintest"
	"github.com/authflow/authflow/session"
)

// Wire constants of the contract.
const (
	bbCacheControl = "private, no-cache, no-store, must-revalidate"
	bbJSONBodyType = "application/json; charset=utf-8" // flows, sessions (§1.2)
	bbEnvelopeType = "application/json"                // error envelopes (§1.2)
	bbCSRFCookie   = "authflow_csrf"                   // Part 1 rule 13
	bbSessCookie   = "authflow_session"                // Part 1 rule 13
	bbCSRFMaxAge   = 31536000                          // §6.1, 365 days

	// CSRF diagnosis (§6.4).
	bbHintAJAX    = "We detected an AJAX call, please ensure that CORS is enabled and configured correctly, and that your AJAX code sends cookies and has credentials enabled. For further debugging, check your Browser's Network Tab to see what cookies are included or excluded."
	bbHintServer  = "We detected a regular browser or server-side call. To debug browser calls check your Browser's Network Tab to see what cookies are included or excluded. If you are calling from a server ensure that the appropriate cookies are being forwarded and that the SDK method is called correctly."
	bbHintNotSent = "The anti-CSRF cookie was found but the CSRF token was not included in the HTTP request body (csrf_token) nor in the HTTP Header (X-CSRF-Token)."
	bbCSRFReason  = "Please retry the flow and optionally clear your cookies. The request was rejected to protect you from Cross-Site-Request-Forgery (CSRF) which could cause account takeover, leaking personal information, and other serious security issues."
	bbCSRFMessage = "the request was rejected to protect you from Cross-Site-Request-Forgery"
	bbCSRFDocs    = "https://www.ory.com/docs/troubleshooting/csrf"

	bbNoCookies = "The HTTP Cookie Header is empty or not set."
	bbNoCSRF    = "The HTTP Cookie Header was set but did not include the anti-CSRF cookie."
)

var bbAcceptJSON = map[string]string{"Accept": "application/json"}

// bbNoStore checks the headers every answer carries (Part 1 rule 17).
func bbNoStore(t testing.TB, r *result) {
	t.Helper()
	assert.Equal(t, bbCacheControl, r.header.Get("Cache-Control"), "Cache-Control (Part 1 rule 17)")
	assert.Equal(t, "nosniff", r.header.Get("X-Content-Type-Options"), "X-Content-Type-Options (Part 1 rule 17)")
}

// bbBody checks a 2xx/4xx answer that carries a flow or a session (not an
// envelope) and returns the decoded body.
func bbBody(t testing.TB, r *result, status int) map[string]any {
	t.Helper()
	require.Equal(t, status, r.status, "body: %s", r.body)
	bbNoStore(t, r)
	assert.Equal(t, bbJSONBodyType, r.header.Get("Content-Type"))
	assert.NotContains(t, r.header, "Ory-Error-Id", "flow and session bodies carry no Ory-Error-Id")
	return r.json(t)
}

// bbEnvelope checks an error envelope (§1.2, §1.3): status, Content-Type
// without charset, Ory-Error-Id (present, possibly empty) equal to the id,
// error.code and error.status. It returns the error object.
func bbEnvelope(t testing.TB, r *result, status int, id string) map[string]any {
	t.Helper()
	require.Equal(t, status, r.status, "body: %s", r.body)
	bbNoStore(t, r)
	assert.Equal(t, bbEnvelopeType, r.header.Get("Content-Type"))
	if assert.Contains(t, r.header, "Ory-Error-Id", "Ory-Error-Id is present even when the error has no id") {
		assert.Equal(t, []string{id}, r.header["Ory-Error-Id"])
	}
	body := r.json(t)
	e, ok := body["error"].(map[string]any)
	require.True(t, ok, "envelope without error object: %s", r.body)
	if id == "" {
		assert.NotContains(t, e, "id", "an error without id has no id key")
	} else {
		assert.Equal(t, id, e["id"])
	}
	assert.EqualValues(t, status, e["code"])
	assert.Equal(t, http.StatusText(status), e["status"])
	assert.Contains(t, e, "message", "message is always present")
	return e
}

// bbRedirect checks a 303 and returns its Location.
func bbRedirect(t testing.TB, r *result) string {
	t.Helper()
	require.Equal(t, http.StatusSeeOther, r.status, "body: %s", r.body)
	bbNoStore(t, r)
	loc := r.header.Get("Location")
	require.NotEmpty(t, loc)
	return loc
}

// bbForwarded checks a 303 to the error UI (§1.4), fetches the stored
// error from GET /self-service/errors?id= and returns its error object.
func (e *env) bbForwarded(t testing.TB, r *result) map[string]any {
	t.Helper()
	loc := bbRedirect(t, r)
	require.True(t, strings.HasPrefix(loc, errorUI+"?id="), "Location %q is not the error UI", loc)
	u, err := url.Parse(loc)
	require.NoError(t, err)
	id := u.Query().Get("id")
	_, ok := uuid.Parse(id)
	require.True(t, ok, "error id %q is not a UUID", id)

	got := e.do(e.api(), http.MethodGet, "/self-service/errors?id="+url.QueryEscape(id), nil, nil)
	body := bbBody(t, got, http.StatusOK)
	assert.Equal(t, id, body["id"])
	assert.Contains(t, body, "created_at")
	assert.Contains(t, body, "updated_at")
	eo, ok := body["error"].(map[string]any)
	require.True(t, ok, "stored error without error object: %s", got.body)
	assert.NotContains(t, eo, "error", "the stored error is not wrapped twice")
	return eo
}

// bbCookieAttrs checks the attributes every authflow cookie has (Part 1
// rule 13); secure is whether the public URL is https.
func bbCookieAttrs(t testing.TB, c *http.Cookie, secure bool) {
	t.Helper()
	require.NotNil(t, c)
	assert.True(t, c.HttpOnly, "%s: HttpOnly", c.Name)
	assert.Equal(t, http.SameSiteLaxMode, c.SameSite, "%s: SameSite=Lax", c.Name)
	assert.Equal(t, "/", c.Path, "%s: Path=/", c.Name)
	assert.Equal(t, secure, c.Secure, "%s: Secure exactly on https", c.Name)
	assert.Empty(t, c.Domain, "%s: no Domain unless configured", c.Name)
}

// bbCSRFCookieOf checks the CSRF cookie set by r (§6.1, rule 13) and
// returns it.
func bbCSRFCookieOf(t testing.TB, r *result) *http.Cookie {
	t.Helper()
	c := r.cookie(bbCSRFCookie)
	require.NotNil(t, c, "no %s cookie set; Set-Cookie: %q", bbCSRFCookie, r.header.Values("Set-Cookie"))
	bbCookieAttrs(t, c, false)
	assert.Equal(t, bbCSRFMaxAge, c.MaxAge, "CSRF cookie Max-Age (§6.1)")
	raw, err := base64.StdEncoding.DecodeString(c.Value)
	if assert.NoError(t, err, "CSRF cookie value is standard base64") {
		assert.Len(t, raw, 32)
	}
	return c
}

// bbNoSetCookie checks that r sets no cookie at all.
func bbNoSetCookie(t testing.TB, r *result) {
	t.Helper()
	assert.Empty(t, r.header.Values("Set-Cookie"), "no Set-Cookie expected")
}

// bbJarCookie returns the value of the cookie name that c's jar holds for
// the handler, or "".
func (e *env) bbJarCookie(c *http.Client, name string) string {
	u, err := url.Parse(e.srv.URL + "/")
	require.NoError(e.t, err)
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == name {
			return ck.Value
		}
	}
	return ""
}

// bbNodes returns the ui.nodes of a decoded flow.
func bbNodes(t testing.TB, f map[string]any) []map[string]any {
	t.Helper()
	ui, ok := f["ui"].(map[string]any)
	require.True(t, ok, "flow without ui")
	raw, ok := ui["nodes"].([]any)
	require.True(t, ok, "ui without nodes")
	out := make([]map[string]any, len(raw))
	for i, n := range raw {
		out[i], ok = n.(map[string]any)
		require.True(t, ok)
	}
	return out
}

// bbNode returns the node named name of a decoded flow, or fails.
func bbNode(t testing.TB, f map[string]any, name string) map[string]any {
	t.Helper()
	for _, n := range bbNodes(t, f) {
		if a, _ := n["attributes"].(map[string]any); a["name"] == name {
			return n
		}
	}
	require.Failf(t, "node missing", "no node %q", name)
	return nil
}

// bbNodeNames lists the names of a decoded flow's nodes in order.
func bbNodeNames(t testing.TB, f map[string]any) []string {
	t.Helper()
	var names []string
	for _, n := range bbNodes(t, f) {
		a, _ := n["attributes"].(map[string]any)
		name, _ := a["name"].(string)
		names = append(names, name)
	}
	return names
}

// bbMessageIDs lists the ids of a decoded flow's ui.messages.
func bbMessageIDs(t testing.TB, f map[string]any) []int {
	t.Helper()
	ui, _ := f["ui"].(map[string]any)
	ms, _ := ui["messages"].([]any)
	ids := []int{}
	for _, m := range ms {
		mm, _ := m.(map[string]any)
		id, _ := mm["id"].(float64)
		ids = append(ids, int(id))
	}
	return ids
}

// bbTime parses a wire time of a decoded body.
func bbTime(t testing.TB, v any) time.Time {
	t.Helper()
	s, ok := v.(string)
	require.True(t, ok, "time %v is not a string", v)
	tm, err := time.Parse(time.RFC3339Nano, s)
	require.NoError(t, err)
	return tm
}

// bbHashToken is how stores see a session token (Part 1 rule 14).
func bbHashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// bbLogoutToken is the logout token derived from a session token (Part 1
// rule 14).
func bbLogoutToken(sessionToken string) string {
	sum := sha256.Sum256([]byte("authflow-logout:" + sessionToken))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// bbLoginAPI logs the test identity in through an API flow with extra
// request headers and returns the session token and the success body.
func (e *env) bbLoginAPI(header map[string]string) (string, *result) {
	e.t.Helper()
	f := e.apiFlow("")
	r := e.submitJSON(e.api(), f.ID, credentials(testIdentifier, testPassword, ""), header)
	require.Equal(e.t, http.StatusOK, r.status, "body: %s", r.body)
	tok, _ := r.json(e.t)["session_token"].(string)
	require.NotEmpty(e.t, tok)
	return tok, r
}

// bbSessionCookieHeader is a Cookie header carrying a session token.
func bbSessionCookieHeader(token string) map[string]string {
	return map[string]string{"Cookie": bbSessCookie + "=" + token}
}

// bbDirect is a handler driven in process through httptest.NewRecorder,
// for deployments the http httptest server cannot host (an https public
// URL).
type bbDirect struct {
	h          *login.Handler
	identities *session.MemoryIdentityStore
	sessions   *session.MemoryStore
}

// bbNewDirect builds a handler for public with in-memory stores and the
// test identity.
func bbNewDirect(t testing.TB, public string, configure ...func(*login.Config)) *bbDirect {
	t.Helper()
	d := &bbDirect{identities: session.NewMemoryIdentityStore(), sessions: session.NewMemoryStore(nil)}
	cfg := login.Config{
		PublicURL:         public,
		LoginUIURL:        loginUI,
		ErrorUIURL:        errorUI,
		DefaultReturnURL:  defaultReturn,
		AllowedReturnURLs: []string{allowedReturn},
		FlowStore:         flow.NewMemoryStore(nil),
		SessionStore:      d.sessions,
		IdentityStore:     d.identities,
		Hasher:            logintest.FastHasher{},
		Logger:            discardLogger(),
	}
	for _, c := range configure {
		c(&cfg)
	}
	h, err := login.New(cfg)
	require.NoError(t, err)
	d.h = h
	cred, err := login.NewPasswordCredential(context.Background(), logintest.FastHasher{}, testIdentifier, testPassword)
	require.NoError(t, err)
	now := time.Now()
	require.NoError(t, d.identities.CreateIdentity(context.Background(), &session.Identity{
		ID: uuid.New(), SchemaID: "default", State: session.StateActive, StateChangedAt: &now,
		Traits: json.RawMessage(`{"email":"alice@example.com"}`), CreatedAt: now, UpdatedAt: now,
	}, cred))
	return d
}

// serve sends a request to the handler; target is an absolute URL.
func (d *bbDirect) serve(t testing.TB, method, target string, body io.Reader, header map[string]string) *result {
	t.Helper()
	req := httptest.NewRequest(method, target, body)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	d.h.ServeHTTP(rec, req)
	resp := rec.Result()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return &result{status: resp.StatusCode, header: resp.Header, body: b, resp: resp}
}
