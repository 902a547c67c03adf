package lookup_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/internal/testclock"
	"github.com/authflow/authflow/internal/testhttp"
	"github.com/authflow/authflow/internal/uuid"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/login/logintest"
	"github.com/authflow/authflow/login/lookup"
	"github.com/authflow/authflow/session"
)

// The test deployment: the handler on an httptest server, UIs and the app
// on other origins.
const (
	loginUI       = "https://ui.example.com/login"
	errorUI       = "https://ui.example.com/error"
	defaultReturn = "https://app.example.com/welcome"
	allowedReturn = "https://app.example.com/"

	testEmail    = "alice@example.com"
	testPassword = "correct horse battery staple"
)

// testCodes are the test identity's backup codes, in Kratos' format.
var testCodes = []string{
	"g01exu82", "7hq2m9xa", "p3zk0w1d", "b8r6tn4c", "x0m2c7vs", "qq9e3j5k",
	"u4w8y1hl", "f6d0s2ro", "k1l9n3pe", "z5v7b2ga", "c3x6j8tu", "m7o4i0fy",
}

// The credential of testCodes is hashed once per test binary (argon2id
// costs ~15 ms a code) and given to each identity with its own identifier.
var (
	credOnce   sync.Once
	credConfig json.RawMessage
	credErr    error
)

// codesCredential returns a lookup credential holding testCodes, unused,
// for the identity with identityID.
func codesCredential(t testing.TB, identityID string) session.Credential {
	t.Helper()
	credOnce.Do(func() {
		var c session.Credential
		c, credErr = lookup.NewCredential("template", testCodes)
		credConfig = c.Config
	})
	require.NoError(t, credErr)
	return session.Credential{
		Type:        session.CredentialLookup,
		Identifiers: []string{identityID},
		Config:      append(json.RawMessage(nil), credConfig...),
	}
}

// clock is the handler's injected clock.
type clock = testclock.Clock

// env is one deployment: the handler with the password method and the
// lookup method, in-memory stores, and alice, who has a password and
// testCodes.
type env struct {
	t          testing.TB
	srv        *httptest.Server
	clock      *clock
	flows      *flow.MemoryStore
	sessions   *session.MemoryStore
	identities *session.MemoryIdentityStore
	identity   *session.Identity
}

// newEnv starts the handler; configure may change the login.Config.
func newEnv(t testing.TB, configure ...func(*login.Config)) *env {
	t.Helper()
	e := &env{t: t, clock: testclock.New(time.Date(2026, 12, 3, 7, 28, 12, 483056979, time.UTC))}
	e.flows = flow.NewMemoryStore(e.clock.Now)
	e.sessions = session.NewMemoryStore(e.clock.Now)
	e.identities = session.NewMemoryIdentityStore()
	m, err := lookup.New(lookup.Config{Now: e.clock.Now})
	require.NoError(t, err)
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
		Hasher:            logintest.FastHasher{},
		Now:               e.clock.Now,
		Logger:            slog.New(slog.DiscardHandler),
		Methods:           []login.Method{m},
	}
	for _, c := range configure {
		c(&cfg)
	}
	h, err := login.New(cfg)
	require.NoError(t, err)
	mux.Handle("/", h)
	id := uuid.New()
	e.identity = e.addIdentity(id, testEmail, codesCredential(t, id))
	return e
}

// addIdentity stores an active identity with id, a password credential for
// email (testPassword) and creds.
func (e *env) addIdentity(id, email string, creds ...session.Credential) *session.Identity {
	e.t.Helper()
	pw, err := login.NewPasswordCredential(context.Background(), logintest.FastHasher{}, email, testPassword)
	require.NoError(e.t, err)
	now := e.clock.Now()
	traits, _ := json.Marshal(map[string]string{"email": email})
	identity := &session.Identity{
		ID: id, SchemaID: "default", State: session.StateActive, StateChangedAt: &now,
		Traits: traits, CreatedAt: now, UpdatedAt: now,
	}
	require.NoError(e.t, e.identities.CreateIdentity(context.Background(), identity, append([]session.Credential{pw}, creds...)...))
	return identity
}

// credential returns the stored lookup credential of the identity.
func (e *env) credential(identityID string) session.Credential {
	e.t.Helper()
	creds, err := e.identities.Credentials(context.Background(), identityID)
	require.NoError(e.t, err)
	for _, c := range creds {
		if c.Type == session.CredentialLookup {
			return c
		}
	}
	e.t.Fatalf("identity %s has no lookup credential", identityID)
	return session.Credential{}
}

// remaining counts the identity's unused codes.
func (e *env) remaining(identityID string) int {
	e.t.Helper()
	n, err := lookup.Remaining(e.credential(identityID))
	require.NoError(e.t, err)
	return n
}

// browser returns a client with a cookie jar that does not follow
// redirects; api one without cookies.
func (e *env) browser() *http.Client {
	return testhttp.Client(e.t, e.srv.Client().Transport, true)
}

func (e *env) api() *http.Client {
	return testhttp.Client(e.t, e.srv.Client().Transport, false)
}

// result is an answer with its body read.
type result = testhttp.Result

// do sends a request; target is relative to the public URL unless
// absolute.
func (e *env) do(c *http.Client, method, target string, body io.Reader, header map[string]string) *result {
	e.t.Helper()
	if !strings.HasPrefix(target, "http") {
		target = e.srv.URL + target
	}
	return testhttp.Do(e.t, c, method, target, body, header)
}

// submitJSON posts body as JSON to the flow.
func (e *env) submitJSON(c *http.Client, flowID string, body map[string]any, header map[string]string) *result {
	e.t.Helper()
	b, err := json.Marshal(body)
	require.NoError(e.t, err)
	h := map[string]string{"Content-Type": "application/json", "Accept": "application/json"}
	for k, v := range header {
		h[k] = v
	}
	return e.do(c, http.MethodPost, "/self-service/login?flow="+flowID, bytes.NewReader(b), h)
}

// submitForm posts values as a browser without JavaScript does.
func (e *env) submitForm(c *http.Client, flowID string, values url.Values) *result {
	e.t.Helper()
	return e.do(c, http.MethodPost, "/self-service/login?flow="+flowID, strings.NewReader(values.Encode()),
		map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"})
}

// loginAPI signs email in with its password through an API flow and
// returns the answer (200 asserted).
func (e *env) loginAPI(email string) map[string]any {
	e.t.Helper()
	r := e.do(e.api(), http.MethodGet, "/self-service/login/api", nil, nil)
	require.Equal(e.t, http.StatusOK, r.Status, "body: %s", r.Body)
	f := r.Flow(e.t)
	r = e.submitJSON(e.api(), f.ID, map[string]any{"method": "password", "identifier": email, "password": testPassword}, nil)
	require.Equal(e.t, http.StatusOK, r.Status, "body: %s", r.Body)
	return r.JSON(e.t)
}

// tokenOf is the session token of an API login answer.
func tokenOf(t testing.TB, body map[string]any) string {
	t.Helper()
	tok, _ := body["session_token"].(string)
	require.NotEmpty(t, tok, "%v", body)
	return tok
}

// stepUpAPI creates an API step-up flow for the session of token.
func (e *env) stepUpAPI(token string) flow.Flow {
	e.t.Helper()
	r := e.do(e.api(), http.MethodGet, "/self-service/login/api?aal=aal2", nil, map[string]string{"X-Session-Token": token})
	require.Equal(e.t, http.StatusOK, r.Status, "body: %s", r.Body)
	return r.Flow(e.t)
}

// submitCode submits code to an API step-up flow with the session of
// token.
func (e *env) submitCode(token, flowID, code string) *result {
	e.t.Helper()
	return e.submitJSON(e.api(), flowID, map[string]any{"method": "lookup_secret", "lookup_secret": code},
		map[string]string{"X-Session-Token": token})
}

// whoami asks for the session of token.
func (e *env) whoami(token string) *result {
	e.t.Helper()
	return e.do(e.api(), http.MethodGet, "/sessions/whoami", nil, map[string]string{"X-Session-Token": token})
}

// whoamiCookie asks for the session of a session cookie value.
func (e *env) whoamiCookie(value string) *result {
	e.t.Helper()
	return e.do(e.api(), http.MethodGet, "/sessions/whoami", nil, map[string]string{"Cookie": "authflow_session=" + value})
}

// csrfToken is the value of the flow's csrf_token node.
func csrfToken(f flow.Flow) string {
	if n := f.UI.Node("csrf_token"); n != nil {
		s, _ := n.Attributes.Value.(string)
		return s
	}
	return ""
}

// messageIDs lists the ids of the flow's flow-wide messages.
func messageIDs(f flow.Flow) []int {
	var ids []int
	for _, m := range f.UI.Messages {
		ids = append(ids, m.ID)
	}
	return ids
}

// wantAAL2 asserts an aal2 session whose methods are password (aal1) then
// lookup_secret (aal2).
func wantAAL2(t testing.TB, s map[string]any, sessionID string) {
	t.Helper()
	assert.Equal(t, sessionID, s["id"])
	assert.Equal(t, "aal2", s["authenticator_assurance_level"])
	methods, _ := s["authentication_methods"].([]any)
	require.Len(t, methods, 2, "%v", s["authentication_methods"])
	first, second := methods[0].(map[string]any), methods[1].(map[string]any)
	assert.Equal(t, "password", first["method"])
	assert.Equal(t, "aal1", first["aal"])
	assert.Equal(t, "lookup_secret", second["method"])
	assert.Equal(t, "aal2", second["aal"])
	assert.NotNil(t, s["identity"], "the identity is present again")
}
