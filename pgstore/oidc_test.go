package pgstore_test

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

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/oauth2-proxy/mockoidc"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/internal/testhttp"
	"github.com/authflow/authflow/internal/uuid"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/login/oidc"
	"github.com/authflow/authflow/pgstore"
	"github.com/authflow/authflow/session"
)

// Social sign-in (login/oidc) on pgstore: the outcomes of login/oidc's own
// tests, with the flows, sessions, identities and throttling counters in
// PostgreSQL instead of the memory stores.

const (
	oidcPGLoginUI       = "https://ui.example.com/login"
	oidcPGErrorUI       = "https://ui.example.com/error"
	oidcPGDefaultReturn = "https://app.example.com/welcome"
	oidcPGAllowedReturn = "https://app.example.com/"
	oidcPGNativeReturn  = "https://app.example.com/native/done?state=xyz"
	oidcPGProvider      = "mock"
	oidcPGSubject       = "1234567890" // mockoidc.DefaultUser()
	oidcPGCallbackPath  = "/self-service/methods/oidc/callback/" + oidcPGProvider
)

// oidcPGNode is one handler with the oidc method on its own server and
// pool, sharing the database schema (and the provider) with its peers.
type oidcPGNode struct {
	srv  *httptest.Server
	pool *pgxpool.Pool
	st   *pgstore.Store
}

// oidcPGEnv is a mock OpenID provider, one or more handlers on one fresh
// schema, and an identity linked to the provider's default subject.
type oidcPGEnv struct {
	t        *testing.T
	idp      *mockoidc.MockOIDC
	nodes    []*oidcPGNode
	identity *session.Identity
}

// oidcPGNew starts the provider and n handlers on one fresh, migrated
// schema. Every handler is configured with the first one's server URL as
// its PublicURL, as instances behind one public address would be: the
// redirect_uri is then the same whichever instance computes it.
func oidcPGNew(t *testing.T, n int) *oidcPGEnv {
	t.Helper()
	schema := freshSchema(t) // skips without AUTHFLOW_POSTGRES_DSN
	idp, err := mockoidc.Run()
	require.NoError(t, err)
	t.Cleanup(func() { _ = idp.Shutdown() })
	e := &oidcPGEnv{t: t, idp: idp}
	var public string
	for i := range n {
		pool := newPool(t, schema)
		st := pgstore.New(pool)
		require.NoError(t, st.Migrate(context.Background()))
		m, err := oidc.New(oidc.Config{Providers: []oidc.Provider{{
			ID: oidcPGProvider, IssuerURL: idp.Issuer(), ClientID: idp.ClientID, ClientSecret: idp.ClientSecret,
		}}})
		require.NoError(t, err)
		mux := http.NewServeMux()
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		if i == 0 {
			public = srv.URL
		}
		h, err := login.New(login.Config{
			PublicURL:         public,
			LoginUIURL:        oidcPGLoginUI,
			ErrorUIURL:        oidcPGErrorUI,
			DefaultReturnURL:  oidcPGDefaultReturn,
			AllowedReturnURLs: []string{oidcPGAllowedReturn},
			FlowStore:         st,
			SessionStore:      st,
			IdentityStore:     st,
			Limiter:           pgstore.NewLimiter(pool, login.Limits{}),
			Logger:            slog.New(slog.DiscardHandler),
			Methods:           []login.Method{m},
		})
		require.NoError(t, err)
		mux.Handle("/", h)
		e.nodes = append(e.nodes, &oidcPGNode{srv: srv, pool: pool, st: st})
	}
	now := time.Now().UTC()
	e.identity = &session.Identity{
		ID: uuid.New(), SchemaID: "default", State: session.StateActive, StateChangedAt: &now,
		Traits: json.RawMessage(`{"email":"jane@example.com"}`), CreatedAt: now, UpdatedAt: now,
	}
	require.NoError(t, e.nodes[0].st.CreateIdentity(context.Background(), e.identity, oidc.Credential(oidcPGProvider, oidcPGSubject)))
	return e
}

func (e *oidcPGEnv) queueUser(sub string) {
	u := mockoidc.DefaultUser()
	u.Subject = sub
	e.idp.QueueUser(u)
}

// oidcPGBrowser is a client with cookies that does not follow redirects.
func oidcPGBrowser(t *testing.T) *http.Client { return testhttp.Client(t, nil, true) }

// toProvider creates a browser flow on n as a login page would, submits
// the provider as an HTML form, and returns the flow and the provider's
// authorization URL.
func (e *oidcPGEnv) toProvider(n *oidcPGNode, c *http.Client) (flow.Flow, string) {
	e.t.Helper()
	r := testhttp.Do(e.t, c, http.MethodGet, n.srv.URL+"/self-service/login/browser", nil, map[string]string{"Accept": "application/json"})
	require.Equal(e.t, http.StatusOK, r.Status, "body: %s", r.Body)
	var f flow.Flow
	require.NoError(e.t, json.Unmarshal(r.Body, &f))
	csrf := ""
	if node := f.UI.Node("csrf_token"); node != nil {
		csrf, _ = node.Attributes.Value.(string)
	}
	require.NotEmpty(e.t, csrf)
	form := url.Values{"provider": {oidcPGProvider}, "csrf_token": {csrf}}
	r = testhttp.Do(e.t, c, http.MethodPost, n.srv.URL+"/self-service/login?flow="+f.ID, strings.NewReader(form.Encode()),
		map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"})
	require.Equal(e.t, http.StatusSeeOther, r.Status, "body: %s", r.Body)
	require.True(e.t, strings.HasPrefix(r.Location(), e.idp.AuthorizationEndpoint()), r.Location())
	require.NotNil(e.t, r.Cookie(oidc.DefaultStateCookieName), "state cookie")
	return f, r.Location()
}

// authorize lets the provider authenticate and returns its callback URL
// (on the public URL, the first node's server).
func (e *oidcPGEnv) authorize(c *http.Client, authURL string) string {
	e.t.Helper()
	r := testhttp.Do(e.t, c, http.MethodGet, authURL, nil, nil)
	require.Equal(e.t, http.StatusFound, r.Status, "body: %s", r.Body)
	require.True(e.t, strings.HasPrefix(r.Location(), e.nodes[0].srv.URL+oidcPGCallbackPath+"?"), r.Location())
	return r.Location()
}

// oidcPGStateCookie returns the state cookie c holds for n's server.
func oidcPGStateCookie(t *testing.T, c *http.Client, n *oidcPGNode) *http.Cookie {
	t.Helper()
	u, err := url.Parse(n.srv.URL)
	require.NoError(t, err)
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == oidc.DefaultStateCookieName {
			return ck
		}
	}
	require.Fail(t, "no state cookie")
	return nil
}

// oidcPGOn rewrites target's scheme and host to n's server.
func oidcPGOn(t *testing.T, n *oidcPGNode, target string) string {
	t.Helper()
	u, err := url.Parse(target)
	require.NoError(t, err)
	s, err := url.Parse(n.srv.URL)
	require.NoError(t, err)
	u.Scheme, u.Host = s.Scheme, s.Host
	return u.String()
}

func (e *oidcPGEnv) whoami(n *oidcPGNode, token string) session.Session {
	e.t.Helper()
	r := testhttp.Do(e.t, http.DefaultClient, http.MethodGet, n.srv.URL+"/sessions/whoami", nil, map[string]string{"X-Session-Token": token})
	require.Equal(e.t, http.StatusOK, r.Status, "body: %s", r.Body)
	var s session.Session
	require.NoError(e.t, json.Unmarshal(r.Body, &s))
	return s
}

func (e *oidcPGEnv) sessionsOf(id string) []*session.Record {
	e.t.Helper()
	list, err := e.nodes[0].st.ListSessions(context.Background(), id)
	require.NoError(e.t, err)
	return list
}

func (e *oidcPGEnv) sessionRows() int {
	e.t.Helper()
	return count(e.t, e.nodes[0].pool, "authflow_sessions", "")
}

func (e *oidcPGEnv) stored(id string) *flow.Record {
	e.t.Helper()
	rec, err := e.nodes[0].st.Flow(context.Background(), id)
	require.NoError(e.t, err)
	return rec
}

// wantErrorUI asserts a forward to the error UI whose error n can show.
func (e *oidcPGEnv) wantErrorUI(n *oidcPGNode, r *testhttp.Result) map[string]any {
	e.t.Helper()
	require.Equal(e.t, http.StatusSeeOther, r.Status, "body: %s", r.Body)
	require.True(e.t, strings.HasPrefix(r.Location(), oidcPGErrorUI+"?id="), r.Location())
	assert.Nil(e.t, r.Cookie("authflow_session"), "no session")
	u, _ := url.Parse(r.Location())
	got := testhttp.Do(e.t, http.DefaultClient, http.MethodGet, n.srv.URL+"/self-service/errors?id="+u.Query().Get("id"), nil, nil)
	require.Equal(e.t, http.StatusOK, got.Status, "body: %s", got.Body)
	return got.JSON(e.t)
}

// wantSignedIn asserts the callback's 303 to target with a session cookie
// for the identity, by oidc with the mock provider, and returns the token.
func (e *oidcPGEnv) wantSignedIn(n *oidcPGNode, r *testhttp.Result, target string) string {
	e.t.Helper()
	require.Equal(e.t, http.StatusSeeOther, r.Status, "body: %s", r.Body)
	assert.Equal(e.t, target, r.Location())
	sc := r.Cookie("authflow_session")
	require.NotNil(e.t, sc, "session cookie")
	cleared := r.Cookie(oidc.DefaultStateCookieName)
	require.NotNil(e.t, cleared, "state cookie cleared")
	assert.Less(e.t, cleared.MaxAge, 0)
	s := e.whoami(n, sc.Value)
	assert.Equal(e.t, e.identity.ID, s.Identity.ID)
	require.Len(e.t, s.AuthenticationMethods, 1)
	assert.Equal(e.t, "oidc", s.AuthenticationMethods[0].Method)
	assert.Equal(e.t, oidcPGProvider, s.AuthenticationMethods[0].Provider)
	return sc.Value
}

// TestOIDCBrowserLogin: a form login end to end through the provider; the
// same callback again is refused and issues no second session.
func TestOIDCBrowserLogin(t *testing.T) {
	e := oidcPGNew(t, 1)
	a := e.nodes[0]
	c := oidcPGBrowser(t)
	e.queueUser(oidcPGSubject)
	f, auth := e.toProvider(a, c)
	cb := e.authorize(c, auth)
	state := oidcPGStateCookie(t, c, a)
	r := testhttp.Do(t, c, http.MethodGet, cb, nil, nil)
	e.wantSignedIn(a, r, oidcPGDefaultReturn)
	assert.Equal(t, flow.StatePassedChallenge, e.stored(f.ID).Flow.State)
	require.Len(t, e.sessionsOf(e.identity.ID), 1)

	t.Run("replayed callback", func(t *testing.T) {
		e.wantErrorUI(a, testhttp.Do(t, c, http.MethodGet, cb, nil, nil))
		assert.Len(t, e.sessionsOf(e.identity.ID), 1, "no second session")
		assert.Equal(t, 1, e.sessionRows())
	})
	t.Run("replayed callback with the state cookie put back", func(t *testing.T) {
		// The callback cleared the state cookie; even with it, the state
		// stored in the database was consumed.
		u, _ := url.Parse(a.srv.URL)
		c.Jar.SetCookies(u, []*http.Cookie{{Name: state.Name, Value: state.Value, Path: "/"}})
		e.wantErrorUI(a, testhttp.Do(t, c, http.MethodGet, cb, nil, nil))
		assert.Len(t, e.sessionsOf(e.identity.ID), 1, "no second session")
		assert.Equal(t, 1, e.sessionRows())
	})
}

// TestOIDCUnknownSubject: a subject linked to no identity gets the flow
// back with 4000037, and no session or identity is created.
func TestOIDCUnknownSubject(t *testing.T) {
	e := oidcPGNew(t, 1)
	a := e.nodes[0]
	c := oidcPGBrowser(t)
	e.queueUser("stranger")
	f, auth := e.toProvider(a, c)
	r := testhttp.Do(t, c, http.MethodGet, e.authorize(c, auth), nil, nil)
	require.Equal(t, http.StatusSeeOther, r.Status, "body: %s", r.Body)
	require.Equal(t, oidcPGLoginUI+"?flow="+f.ID, r.Location())
	assert.Nil(t, r.Cookie("authflow_session"), "no session")
	got := e.stored(f.ID).Flow
	require.Len(t, got.UI.Messages, 1, "%+v", got.UI.Messages)
	assert.Equal(t, flow.IDAccountMissing, got.UI.Messages[0].ID)
	assert.Equal(t, 4000037, got.UI.Messages[0].ID)
	assert.Equal(t, flow.StateChooseMethod, got.State)
	_, _, err := a.st.FindIdentity(context.Background(), session.CredentialOIDC, oidcPGProvider+":stranger")
	assert.ErrorIs(t, err, session.ErrNotFound)
	assert.Zero(t, e.sessionRows())
	// The fetched flow shows the message too.
	fr := testhttp.Do(t, c, http.MethodGet, a.srv.URL+"/self-service/login/flows?id="+f.ID, nil, nil)
	require.Equal(t, http.StatusOK, fr.Status, "body: %s", fr.Body)
	assert.Contains(t, string(fr.Body), "4000037")
}

// TestOIDCSessionTokenExchange: a native app's login finished in the
// system browser; the app exchanges both codes for a session token, once.
func TestOIDCSessionTokenExchange(t *testing.T) {
	e := oidcPGNew(t, 1)
	a := e.nodes[0]
	e.queueUser(oidcPGSubject)
	q := url.Values{"return_session_token_exchange_code": {"true"}, "return_to": {oidcPGNativeReturn}}
	r := testhttp.Do(t, http.DefaultClient, http.MethodGet, a.srv.URL+"/self-service/login/api?"+q.Encode(), nil, nil)
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	var f flow.Flow
	require.NoError(t, json.Unmarshal(r.Body, &f))
	require.True(t, strings.HasPrefix(f.SessionTokenExchangeCode, f.ID+"."), f.SessionTokenExchangeCode)
	_, secret, _ := strings.Cut(f.SessionTokenExchangeCode, ".")

	b, _ := json.Marshal(map[string]any{"provider": oidcPGProvider})
	r = testhttp.Do(t, http.DefaultClient, http.MethodPost, a.srv.URL+"/self-service/login?flow="+f.ID, strings.NewReader(string(b)),
		map[string]string{"Content-Type": "application/json", "Accept": "application/json"})
	require.Equal(t, http.StatusUnprocessableEntity, r.Status, "body: %s", r.Body)
	body := r.JSON(t)
	assert.Equal(t, "browser_location_change_required", body["error"].(map[string]any)["id"])
	to, _ := body["redirect_browser_to"].(string)
	require.True(t, strings.HasPrefix(to, e.idp.AuthorizationEndpoint()), to)

	c := oidcPGBrowser(t)
	r = testhttp.Do(t, c, http.MethodGet, e.authorize(c, to), nil, nil)
	require.Equal(t, http.StatusSeeOther, r.Status, "body: %s", r.Body)
	assert.Empty(t, r.Resp.Cookies(), "the browser gets no session")
	back, err := url.Parse(r.Location())
	require.NoError(t, err)
	assert.Equal(t, "https://app.example.com/native/done", back.Scheme+"://"+back.Host+back.Path)
	assert.Equal(t, "xyz", back.Query().Get("state"))
	code := back.Query().Get("code")
	require.NotEmpty(t, code, back.String())
	assert.Empty(t, e.sessionsOf(e.identity.ID), "no session before the exchange")
	// Neither code is kept in clear in the database.
	var raw string
	require.NoError(t, a.pool.QueryRow(context.Background(),
		"SELECT coalesce(method_state::text, '') || record::text FROM authflow_flows WHERE id = $1", f.ID).Scan(&raw))
	assert.NotContains(t, raw, secret)
	assert.NotContains(t, raw, code)

	exchange := func() *testhttp.Result {
		q := url.Values{"init_code": {f.SessionTokenExchangeCode}, "return_to_code": {code}}
		return testhttp.Do(t, http.DefaultClient, http.MethodGet, a.srv.URL+"/sessions/token-exchange?"+q.Encode(), nil, nil)
	}
	r = exchange()
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	token, _ := r.JSON(t)["session_token"].(string)
	require.NotEmpty(t, token)
	s := e.whoami(a, token)
	assert.Equal(t, e.identity.ID, s.Identity.ID)
	require.Len(t, s.AuthenticationMethods, 1)
	assert.Equal(t, "oidc", s.AuthenticationMethods[0].Method)
	assert.Equal(t, oidcPGProvider, s.AuthenticationMethods[0].Provider)
	require.Len(t, e.sessionsOf(e.identity.ID), 1)

	// Once only.
	r = exchange()
	require.Equal(t, http.StatusForbidden, r.Status, "body: %s", r.Body)
	assert.Equal(t, "The session token exchange codes are invalid, were already used or have expired.",
		r.JSON(t)["error"].(map[string]any)["reason"])
	assert.Len(t, e.sessionsOf(e.identity.ID), 1)
}

// TestOIDCCallbackOnAnotherInstance: the login starts on A, the provider's
// callback lands on B (another server and pool on the same database), and
// completes there; the session is valid on A. A replay on A is refused.
func TestOIDCCallbackOnAnotherInstance(t *testing.T) {
	e := oidcPGNew(t, 2)
	a, b := e.nodes[0], e.nodes[1]
	c := oidcPGBrowser(t)
	e.queueUser(oidcPGSubject)
	f, auth := e.toProvider(a, c)
	cb := oidcPGOn(t, b, e.authorize(c, auth))
	require.True(t, strings.HasPrefix(cb, b.srv.URL+oidcPGCallbackPath+"?"), cb)
	token := e.wantSignedIn(b, testhttp.Do(t, c, http.MethodGet, cb, nil, nil), oidcPGDefaultReturn)
	assert.Equal(t, e.identity.ID, e.whoami(a, token).Identity.ID, "the session is valid on A")
	rec, err := b.st.Flow(context.Background(), f.ID)
	require.NoError(t, err)
	assert.Equal(t, flow.StatePassedChallenge, rec.Flow.State)
	require.Len(t, e.sessionsOf(e.identity.ID), 1)

	// The state was consumed in the database: A refuses the same callback.
	e.wantErrorUI(a, testhttp.Do(t, c, http.MethodGet, oidcPGOn(t, a, cb), nil, nil))
	assert.Len(t, e.sessionsOf(e.identity.ID), 1, "no second session")
}
