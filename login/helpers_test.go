package login_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/internal/testclock"
	"github.com/authflow/authflow/internal/uuid"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/login/logintest"
	"github.com/authflow/authflow/session"
)

// The test deployment: the handler on an httptest server, UIs and the app
// on other origins.
const (
	loginUI       = "https://ui.example.com/login"
	errorUI       = "https://ui.example.com/error"
	defaultReturn = "https://app.example.com/welcome"
	allowedReturn = "https://app.example.com/"

	testIdentifier = "alice@example.com"
	testPassword   = "correct horse battery staple"
)

// clock is the handler's injected clock.
type clock = testclock.Clock

// env is one test deployment with a seeded identity.
type env struct {
	t          testing.TB
	srv        *httptest.Server
	h          *login.Handler
	clock      *clock
	flows      *flow.MemoryStore
	sessions   *session.MemoryStore
	identities *session.MemoryIdentityStore
	identity   *session.Identity
	hasher     logintest.FastHasher
}

// newEnv starts a handler with in-memory stores and the fast hasher;
// configure may change the Config before New.
func newEnv(t testing.TB, configure ...func(*login.Config)) *env {
	t.Helper()
	e := &env{t: t, clock: testclock.New(time.Date(2026, 11, 27, 17, 4, 49, 483056979, time.UTC))}
	e.flows = flow.NewMemoryStore(e.clock.Now)
	e.sessions = session.NewMemoryStore(e.clock.Now)
	e.identities = session.NewMemoryIdentityStore()
	mux := http.NewServeMux()
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	cfg := login.Config{
		PublicURL:         e.srv.URL,
		LoginUIURL:        loginUI,
		ErrorUIURL:        errorUI,
		DefaultReturnURL:  defaultReturn,
		AllowedReturnURLs: []string{allowedReturn},
		FlowStore:         e.flows,
		SessionStore:      e.sessions,
		IdentityStore:     e.identities,
		Hasher:            e.hasher,
		Now:               e.clock.Now,
		Logger:            discardLogger(),
	}
	for _, c := range configure {
		c(&cfg)
	}
	h, err := login.New(cfg)
	require.NoError(t, err)
	e.h = h
	mux.Handle("/", h)
	e.identity = e.addIdentity(testIdentifier, testPassword)
	return e
}

// addIdentity stores an active identity with a password credential.
func (e *env) addIdentity(identifier, secret string) *session.Identity {
	e.t.Helper()
	cred, err := login.NewPasswordCredential(context.Background(), e.hasher, identifier, secret)
	require.NoError(e.t, err)
	return e.addIdentityWith(identifier, cred)
}

func (e *env) addIdentityWith(email string, creds ...session.Credential) *session.Identity {
	e.t.Helper()
	now := e.clock.Now()
	traits, _ := json.Marshal(map[string]string{"email": email})
	id := &session.Identity{
		ID: uuid.New(), SchemaID: "default", State: session.StateActive, StateChangedAt: &now,
		Traits: traits, CreatedAt: now, UpdatedAt: now,
	}
	require.NoError(e.t, e.identities.CreateIdentity(context.Background(), id, creds...))
	return id
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// browser returns a client with a cookie jar that does not follow
// redirects, like a browser whose every step the test inspects.
func (e *env) browser() *http.Client {
	jar, err := cookiejar.New(nil)
	require.NoError(e.t, err)
	return &http.Client{Jar: jar, CheckRedirect: noRedirects, Transport: e.srv.Client().Transport}
}

// api returns a client without cookies that does not follow redirects.
// Clients use the test server's own transport: closing another test's
// server closes http.DefaultTransport's idle connections, which breaks a
// parallel test's request that just picked one up.
func (e *env) api() *http.Client {
	return &http.Client{CheckRedirect: noRedirects, Transport: e.srv.Client().Transport}
}

func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// result is a response with its body read.
type result struct {
	status int
	header http.Header
	body   []byte
	resp   *http.Response
}

// do sends a request to the handler; path is relative to the public URL.
func (e *env) do(c *http.Client, method, path string, body io.Reader, header map[string]string) *result {
	e.t.Helper()
	return subDo(e.t, c, method, e.srv.URL+path, body, header)
}

// json decodes the body into a generic value.
func (r *result) json(t testing.TB) map[string]any {
	t.Helper()
	var v map[string]any
	require.NoError(t, json.Unmarshal(r.body, &v), "body: %s", r.body)
	return v
}

// flow decodes the body as a flow.
func (r *result) flow(t testing.TB) flow.Flow {
	t.Helper()
	var f flow.Flow
	require.NoError(t, json.Unmarshal(r.body, &f), "body: %s", r.body)
	require.NotEmpty(t, f.ID, "body: %s", r.body)
	return f
}

// cookie returns the Set-Cookie of name in the response, or nil.
func (r *result) cookie(name string) *http.Cookie {
	for _, c := range r.resp.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// apiFlow creates an API flow; query is appended to the path.
func (e *env) apiFlow(query string) flow.Flow {
	e.t.Helper()
	r := e.do(e.api(), http.MethodGet, "/self-service/login/api"+query, nil, nil)
	require.Equal(e.t, http.StatusOK, r.status, "body: %s", r.body)
	return r.flow(e.t)
}

// browserFlow creates a browser flow with c as an SPA would (JSON).
func (e *env) browserFlow(c *http.Client, query string) flow.Flow {
	e.t.Helper()
	r := e.do(c, http.MethodGet, "/self-service/login/browser"+query, nil, map[string]string{"Accept": "application/json"})
	require.Equal(e.t, http.StatusOK, r.status, "body: %s", r.body)
	return r.flow(e.t)
}

// csrfToken returns the value of the flow's csrf_token node.
func csrfToken(f flow.Flow) string {
	n := f.UI.Node("csrf_token")
	if n == nil {
		return ""
	}
	s, _ := n.Attributes.Value.(string)
	return s
}

// submitJSON posts body as JSON to the flow.
func (e *env) submitJSON(c *http.Client, flowID string, body any, header map[string]string) *result {
	e.t.Helper()
	b, err := json.Marshal(body)
	require.NoError(e.t, err)
	h := map[string]string{"Content-Type": "application/json", "Accept": "application/json"}
	for k, v := range header {
		h[k] = v
	}
	return e.do(c, http.MethodPost, "/self-service/login?flow="+flowID, bytes.NewReader(b), h)
}

// submitForm posts values as a form, as a browser without JavaScript does.
func (e *env) submitForm(c *http.Client, flowID string, values url.Values, header map[string]string) *result {
	e.t.Helper()
	h := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	for k, v := range header {
		h[k] = v
	}
	return e.do(c, http.MethodPost, "/self-service/login?flow="+flowID, strings.NewReader(values.Encode()), h)
}

// credentials is a complete password submission.
func credentials(identifier, secret, csrf string) map[string]any {
	return map[string]any{"method": "password", "identifier": identifier, "password": secret, "csrf_token": csrf}
}

// loginAPI logs the test identity in through an API flow and returns the
// session token.
func (e *env) loginAPI() string {
	e.t.Helper()
	f := e.apiFlow("")
	r := e.submitJSON(e.api(), f.ID, credentials(testIdentifier, testPassword, ""), nil)
	require.Equal(e.t, http.StatusOK, r.status, "body: %s", r.body)
	tok, _ := r.json(e.t)["session_token"].(string)
	require.NotEmpty(e.t, tok)
	return tok
}

// loginBrowser logs the test identity in with c through a browser flow, as
// an SPA, so that c's jar holds the session cookie.
func (e *env) loginBrowser(c *http.Client) {
	e.t.Helper()
	f := e.browserFlow(c, "")
	r := e.submitJSON(c, f.ID, credentials(testIdentifier, testPassword, csrfToken(f)), nil)
	require.Equal(e.t, http.StatusOK, r.status, "body: %s", r.body)
}
