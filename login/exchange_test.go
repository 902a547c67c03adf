package login_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/session"
)

// bounceMethod is a test-only CallbackMethod: its submission sends the
// browser straight to its own callback, which logs in its identity.
type bounceMethod struct{ identity *session.Identity }

func (m *bounceMethod) ID() string { return "bounce" }

func (m *bounceMethod) AAL() string { return flow.AAL1 }

func (m *bounceMethod) Nodes(context.Context, *login.FlowRequest) ([]flow.Node, error) {
	return []flow.Node{flow.NewInput("bounce", "method", "submit", "bounce", false)}, nil
}

func (m *bounceMethod) Validate(context.Context, *login.Submission) error { return nil }

func (m *bounceMethod) Authenticate(_ context.Context, s *login.Submission) (*login.Result, error) {
	return &login.Result{RedirectBrowserTo: s.CallbackURL("done") + "?flow=" + s.Flow.Flow.ID}, nil
}

func (m *bounceMethod) Callback(ctx context.Context, c *login.Callback) (*flow.Record, *login.Result, error) {
	rec, err := c.Flows.Flow(ctx, c.Request.URL.Query().Get("flow"))
	if err != nil {
		return nil, nil, err
	}
	return rec, &login.Result{Identity: m.identity, Method: session.AuthenticationMethod{Method: "bounce", Provider: "test"}}, nil
}

// failingSessions fails CreateSession while fail is set.
type failingSessions struct {
	*session.MemoryStore
	mu   sync.Mutex
	fail bool
}

func (s *failingSessions) CreateSession(ctx context.Context, rec *session.Record) error {
	s.mu.Lock()
	fail := s.fail
	s.mu.Unlock()
	if fail {
		return errors.New("session store down")
	}
	return s.MemoryStore.CreateSession(ctx, rec)
}

// exchangeEnv is an env with the bounce method.
func exchangeEnv(t *testing.T, configure ...func(*login.Config)) (*env, *bounceMethod) {
	m := &bounceMethod{}
	e := newEnv(t, append([]func(*login.Config){func(c *login.Config) { c.Methods = []login.Method{m} }}, configure...)...)
	m.identity = e.identity
	return e, m
}

// bounce runs a native flow with the exchange through the browser and
// returns the init code and where the browser was sent.
func (e *env) bounce(returnTo string) (string, *result) {
	e.t.Helper()
	f := e.apiFlow("?" + url.Values{"return_session_token_exchange_code": {"true"}, "return_to": {returnTo}}.Encode())
	require.NotEmpty(e.t, f.SessionTokenExchangeCode)
	r := e.submitJSON(e.api(), f.ID, map[string]any{"method": "bounce"}, nil)
	require.Equal(e.t, http.StatusUnprocessableEntity, r.status, "body: %s", r.body)
	to, _ := r.json(e.t)["redirect_browser_to"].(string)
	req, err := http.NewRequest(http.MethodGet, to, nil)
	require.NoError(e.t, err)
	req.Header.Set("Accept", "text/html")
	resp, err := e.api().Do(req)
	require.NoError(e.t, err)
	resp.Body.Close()
	return f.SessionTokenExchangeCode, &result{status: resp.StatusCode, header: resp.Header, resp: resp}
}

func (e *env) tokenExchange(initCode, returnToCode string) *result {
	e.t.Helper()
	return e.do(e.api(), http.MethodGet, "/sessions/token-exchange?"+url.Values{"init_code": {initCode}, "return_to_code": {returnToCode}}.Encode(), nil, nil)
}

func codeIn(t *testing.T, location string) string {
	t.Helper()
	u, err := url.Parse(location)
	require.NoError(t, err)
	return u.Query().Get("code")
}

// TestExchangeWithAHostMethod: any CallbackMethod gets the exchange; the
// session records the method and provider; a code already in return_to is
// replaced, the rest of its query kept.
func TestExchangeWithAHostMethod(t *testing.T) {
	var mu sync.Mutex
	var events []login.Event
	e, _ := exchangeEnv(t, func(c *login.Config) {
		c.OnEvent = func(_ context.Context, ev login.Event) { mu.Lock(); events = append(events, ev); mu.Unlock() }
	})
	initCode, r := e.bounce("https://app.example.com/cb?code=old&a=1")
	require.Equal(t, http.StatusSeeOther, r.status)
	loc := r.header.Get("Location")
	assert.True(t, strings.HasPrefix(loc, "https://app.example.com/cb?"), loc)
	u, _ := url.Parse(loc)
	assert.Equal(t, "1", u.Query().Get("a"))
	assert.Len(t, u.Query()["code"], 1)
	code := codeIn(t, loc)
	assert.NotEqual(t, "old", code)

	r = e.tokenExchange(initCode, code)
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	var got struct {
		SessionToken string          `json:"session_token"`
		Session      session.Session `json:"session"`
	}
	require.NoError(t, json.Unmarshal(r.body, &got))
	require.Len(t, got.Session.AuthenticationMethods, 1)
	assert.Equal(t, "bounce", got.Session.AuthenticationMethods[0].Method)
	assert.Equal(t, "test", got.Session.AuthenticationMethods[0].Provider)
	assert.Equal(t, "aal1", got.Session.AuthenticationMethods[0].AAL)
	rec, err := e.sessions.SessionByToken(context.Background(), bbHashToken(got.SessionToken))
	require.NoError(t, err)
	assert.Equal(t, got.Session.ID, rec.Session.ID)

	mu.Lock()
	defer mu.Unlock()
	var ex *login.Event
	for i := range events {
		if events[i].Action == "session.exchange" {
			ex = &events[i]
		}
	}
	require.NotNil(t, ex)
	assert.Equal(t, login.OutcomeSuccess, ex.Outcome)
	assert.Equal(t, http.StatusOK, ex.Status)
	assert.Equal(t, e.identity.ID, ex.IdentityID)
	assert.Equal(t, got.Session.ID, ex.SessionID)
	assert.Equal(t, "bounce", ex.Method)
	assert.Equal(t, flow.TypeAPI, ex.FlowType)
}

// TestExchangeStoreFailureReleasesTheCodes: when the session cannot be
// stored, the answer is 500 and the codes stay usable.
func TestExchangeStoreFailureReleasesTheCodes(t *testing.T) {
	var fs *failingSessions
	e, _ := exchangeEnv(t, func(c *login.Config) {
		fs = &failingSessions{MemoryStore: c.SessionStore.(*session.MemoryStore)}
		c.SessionStore = fs
	})
	initCode, r := e.bounce("https://app.example.com/cb")
	code := codeIn(t, r.header.Get("Location"))
	fs.mu.Lock()
	fs.fail = true
	fs.mu.Unlock()
	r = e.tokenExchange(initCode, code)
	require.Equal(t, http.StatusInternalServerError, r.status, "body: %s", r.body)
	fs.mu.Lock()
	fs.fail = false
	fs.mu.Unlock()
	r = e.tokenExchange(initCode, code)
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	assert.Equal(t, http.StatusForbidden, e.tokenExchange(initCode, code).status)
}

// TestExchangeAfterVerificationRefuses: a hook's refusal at the callback
// issues no code.
func TestExchangeAfterVerificationRefuses(t *testing.T) {
	e, _ := exchangeEnv(t, func(c *login.Config) {
		c.AfterVerification = func(context.Context, *login.Attempt, *session.Identity) error {
			return login.Refuse(flow.Generic("not today"))
		}
	})
	_, r := e.bounce("https://app.example.com/cb")
	require.Equal(t, http.StatusSeeOther, r.status)
	assert.True(t, strings.HasPrefix(r.header.Get("Location"), loginUI+"?flow="), r.header.Get("Location"))
}

// TestReservedMethodID: method ids starting with "_" are the handler's.
func TestReservedMethodID(t *testing.T) {
	_, err := login.New(login.Config{
		PublicURL: "https://auth.example.com", LoginUIURL: loginUI, ErrorUIURL: errorUI, DefaultReturnURL: defaultReturn,
		FlowStore: flow.NewMemoryStore(nil), SessionStore: session.NewMemoryStore(nil), IdentityStore: session.NewMemoryIdentityStore(),
		Methods: []login.Method{&reserved{}},
	})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "reserved")
}

type reserved struct{ codeMethod }

func (*reserved) ID() string { return "_exchange" }

func (*reserved) AAL() string { return flow.AAL1 }
