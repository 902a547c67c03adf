package oidc_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/oauth2-proxy/mockoidc"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/internal/testclock"
	"github.com/authflow/authflow/internal/testhttp"
	"github.com/authflow/authflow/internal/uuid"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/login/oidc"
	"github.com/authflow/authflow/session"
)

const (
	loginUI       = "https://ui.example.com/login"
	errorUI       = "https://ui.example.com/error"
	defaultReturn = "https://app.example.com/welcome"
	allowedReturn = "https://app.example.com/"
	providerID    = "mock"
	subject       = "1234567890" // mockoidc.DefaultUser()
)

// clock is the handler's injected clock.
type clock = testclock.Clock

// env is the handler with the oidc method, and a mock OpenID provider.
type env struct {
	t          *testing.T
	srv        *httptest.Server
	idp        *mockoidc.MockOIDC
	clock      *clock
	flows      *flow.MemoryStore
	sessions   *session.MemoryStore
	identities *session.MemoryIdentityStore
	identity   *session.Identity // linked to mock:subject-1234
}

type option func(*oidc.Config)

func startIDP(t *testing.T) *mockoidc.MockOIDC {
	t.Helper()
	m, err := mockoidc.Run()
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Shutdown() })
	return m
}

func newEnv(t *testing.T, opts ...option) *env {
	return newEnvWith(t, startIDP(t), opts...)
}

func newEnvWith(t *testing.T, idp *mockoidc.MockOIDC, opts ...option) *env {
	t.Helper()
	e := &env{t: t, idp: idp, clock: testclock.New(time.Now().UTC())}
	e.flows = flow.NewMemoryStore(e.clock.Now)
	e.sessions = session.NewMemoryStore(e.clock.Now)
	e.identities = session.NewMemoryIdentityStore()
	cfg := oidc.Config{Providers: []oidc.Provider{{
		ID: providerID, IssuerURL: idp.Issuer(), ClientID: idp.ClientID, ClientSecret: idp.ClientSecret,
	}}}
	for _, o := range opts {
		o(&cfg)
	}
	m, err := oidc.New(cfg)
	require.NoError(t, err)
	mux := http.NewServeMux()
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	h, err := login.New(login.Config{
		PublicURL:         e.srv.URL,
		LoginUIURL:        loginUI,
		ErrorUIURL:        errorUI,
		DefaultReturnURL:  defaultReturn,
		AllowedReturnURLs: []string{allowedReturn},
		FlowStore:         e.flows,
		SessionStore:      e.sessions,
		IdentityStore:     e.identities,
		Now:               e.clock.Now,
		Logger:            slog.New(slog.DiscardHandler),
		Methods:           []login.Method{m},
	})
	require.NoError(t, err)
	mux.Handle("/", h)
	e.identity = e.addIdentity("jane@example.com", oidc.Credential(providerID, subject))
	return e
}

func (e *env) addIdentity(email string, creds ...session.Credential) *session.Identity {
	e.t.Helper()
	now := e.clock.Now()
	traits, _ := json.Marshal(map[string]string{"email": email})
	id := &session.Identity{ID: uuid.New(), SchemaID: "default", State: session.StateActive, StateChangedAt: &now,
		Traits: traits, CreatedAt: now, UpdatedAt: now}
	require.NoError(e.t, e.identities.CreateIdentity(context.Background(), id, creds...))
	return id
}

func (e *env) queueUser(sub string) {
	u := mockoidc.DefaultUser()
	u.Subject = sub
	e.idp.QueueUser(u)
}

// browser is a client with cookies that does not follow redirects: each
// step is followed by the test, as a browser would.
func browser(t *testing.T) *http.Client { return testhttp.Client(t, nil, true) }

// result is an answer with its body read.
type result = testhttp.Result

// browserFlow creates a browser flow as a login page would (JSON).
func (e *env) browserFlow(c *http.Client, query string) flow.Flow {
	e.t.Helper()
	r := testhttp.Do(e.t, c, http.MethodGet, e.srv.URL+"/self-service/login/browser"+query, nil, map[string]string{"Accept": "application/json"})
	require.Equal(e.t, http.StatusOK, r.Status, "body: %s", r.Body)
	var f flow.Flow
	require.NoError(e.t, json.Unmarshal(r.Body, &f))
	return f
}

func csrfToken(f flow.Flow) string {
	if n := f.UI.Node("csrf_token"); n != nil {
		s, _ := n.Attributes.Value.(string)
		return s
	}
	return ""
}

// submitForm posts fields as an HTML form would.
func (e *env) submitForm(c *http.Client, flowID string, fields url.Values) *result {
	e.t.Helper()
	return testhttp.Do(e.t, c, http.MethodPost, e.srv.URL+"/self-service/login?flow="+flowID, strings.NewReader(fields.Encode()),
		map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"})
}

func (e *env) submitJSON(c *http.Client, flowID string, body map[string]any) *result {
	e.t.Helper()
	b, _ := json.Marshal(body)
	return testhttp.Do(e.t, c, http.MethodPost, e.srv.URL+"/self-service/login?flow="+flowID, strings.NewReader(string(b)),
		map[string]string{"Content-Type": "application/json", "Accept": "application/json"})
}

// toProvider starts a browser form login and returns the authorization URL.
func (e *env) toProvider(c *http.Client, query string) (flow.Flow, string) {
	e.t.Helper()
	f := e.browserFlow(c, query)
	r := e.submitForm(c, f.ID, url.Values{"provider": {providerID}, "csrf_token": {csrfToken(f)}})
	require.Equal(e.t, http.StatusSeeOther, r.Status, "body: %s", r.Body)
	require.True(e.t, strings.HasPrefix(r.Location(), e.idp.AuthorizationEndpoint()), r.Location())
	return f, r.Location()
}

// authorize lets the provider authenticate and returns its callback URL.
func (e *env) authorize(c *http.Client, authURL string) string {
	e.t.Helper()
	r := testhttp.Do(e.t, c, http.MethodGet, authURL, nil, nil)
	require.Equal(e.t, http.StatusFound, r.Status, "body: %s", r.Body)
	require.True(e.t, strings.HasPrefix(r.Location(), e.srv.URL+"/self-service/methods/oidc/callback/"+providerID+"?"), r.Location())
	return r.Location()
}

func (e *env) stored(id string) *flow.Record {
	e.t.Helper()
	rec, err := e.flows.Flow(context.Background(), id)
	require.NoError(e.t, err)
	return rec
}

// onlyMessage asserts the flow's one flow-wide message.
func onlyMessage(t *testing.T, f flow.Flow, id int) flow.Message {
	t.Helper()
	require.Len(t, f.UI.Messages, 1, "%+v", f.UI.Messages)
	assert.Equal(t, id, f.UI.Messages[0].ID)
	return f.UI.Messages[0]
}

func (e *env) whoami(token string) session.Session {
	e.t.Helper()
	r := testhttp.Do(e.t, http.DefaultClient, http.MethodGet, e.srv.URL+"/sessions/whoami", nil, map[string]string{"X-Session-Token": token})
	require.Equal(e.t, http.StatusOK, r.Status, "body: %s", r.Body)
	var s session.Session
	require.NoError(e.t, json.Unmarshal(r.Body, &s))
	return s
}

func (e *env) sessionsOf(id string) []*session.Record {
	e.t.Helper()
	list, err := e.sessions.ListSessions(context.Background(), id)
	require.NoError(e.t, err)
	return list
}

// wantErrorUI asserts a forward to the error UI and returns the error.
func (e *env) wantErrorUI(r *result) map[string]any {
	e.t.Helper()
	require.Equal(e.t, http.StatusSeeOther, r.Status, "body: %s", r.Body)
	require.True(e.t, strings.HasPrefix(r.Location(), errorUI+"?id="), r.Location())
	u, _ := url.Parse(r.Location())
	got := testhttp.Do(e.t, http.DefaultClient, http.MethodGet, e.srv.URL+"/self-service/errors?id="+u.Query().Get("id"), nil, nil)
	require.Equal(e.t, http.StatusOK, got.Status, "body: %s", got.Body)
	return got.JSON(e.t)
}

// wantLoginUI asserts a 303 to the login UI with the flow and returns it.
func (e *env) wantLoginUI(r *result, flowID string) flow.Flow {
	e.t.Helper()
	require.Equal(e.t, http.StatusSeeOther, r.Status, "body: %s", r.Body)
	require.Equal(e.t, loginUI+"?flow="+flowID, r.Location())
	assert.Nil(e.t, r.Cookie("authflow_session"), "no session")
	return e.stored(flowID).Flow
}
