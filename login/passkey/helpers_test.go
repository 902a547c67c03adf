package passkey_test

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
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/internal/testclock"
	"github.com/authflow/authflow/internal/testhttp"
	"github.com/authflow/authflow/internal/uuid"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/login/logintest"
	"github.com/authflow/authflow/login/passkey"
	"github.com/authflow/authflow/login/passkey/passkeytest"
	"github.com/authflow/authflow/session"
)

// The test deployment: the handler on an httptest server; the pages that
// run ceremonies are on origin, the passkeys belong to rpID.
const (
	loginUI       = "https://ui.example.com/login"
	errorUI       = "https://ui.example.com/error"
	defaultReturn = "https://app.example.com/welcome"
	allowedReturn = "https://app.example.com/"

	rpID   = "localhost"
	origin = "http://localhost:4455"

	testIdentifier = "alice@example.com"
	testPassword   = "correct horse battery staple"

	sessionCookie = "authflow_session"
)

var start = time.Date(2026, 12, 3, 16, 0, 0, 0, time.UTC)

// clock is the handler's injected clock.
type clock = testclock.Clock

// env is one test deployment with the passkey method (and the webauthn
// method when options ask for it). Its identity has a password and, after
// withPasskey, a passkey held by auth.
type env struct {
	t          testing.TB
	srv        *httptest.Server
	h          *login.Handler
	clock      *clock
	passkey    *passkey.Method
	webauthn   *passkey.WebAuthn
	flows      *flow.MemoryStore
	sessions   *session.MemoryStore
	identities *session.MemoryIdentityStore
	identity   *session.Identity
	auth       *passkeytest.Authenticator
	handle     []byte
}

// options change an env before it starts.
type options struct {
	pk       func(*passkey.Config)
	webauthn *passkey.WebAuthnConfig // nil: no webauthn method
	login    func(*login.Config)
}

func newEnv(t testing.TB, o options) *env {
	t.Helper()
	e := &env{t: t, clock: testclock.New(start), auth: passkeytest.New()}
	e.flows = flow.NewMemoryStore(e.clock.Now)
	e.sessions = session.NewMemoryStore(e.clock.Now)
	e.identities = session.NewMemoryIdentityStore()
	mux := http.NewServeMux()
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)

	pkCfg := passkey.Config{
		RPID: rpID, RPDisplayName: "Example", Origins: []string{origin},
		Identities: e.identities, Now: e.clock.Now,
	}
	if o.pk != nil {
		o.pk(&pkCfg)
	}
	var err error
	e.passkey, err = passkey.New(pkCfg)
	require.NoError(t, err)
	methods := []login.Method{e.passkey}
	if o.webauthn != nil {
		wc := *o.webauthn
		wc.Config = pkCfg
		wc.Config.UserVerification = o.webauthn.UserVerification
		e.webauthn, err = passkey.NewWebAuthn(wc)
		require.NoError(t, err)
		methods = append(methods, e.webauthn)
	}
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
		Limiter:           login.NewMemoryLimiter(login.Limits{Now: e.clock.Now}),
		Methods:           methods,
		Now:               e.clock.Now,
		Logger:            slog.New(slog.DiscardHandler),
	}
	if o.login != nil {
		o.login(&cfg)
	}
	e.h, err = login.New(cfg)
	require.NoError(t, err)
	mux.Handle("/passkeys/", e.h.RequireSession(http.StripPrefix("/passkeys", e.passkey.EnrolmentHandler())))
	if e.webauthn != nil {
		mux.Handle("/security-keys/", e.h.RequireSession(http.StripPrefix("/security-keys", e.webauthn.EnrolmentHandler())))
	}
	mux.Handle("/", e.h)
	e.identity = e.addIdentity(testIdentifier, testPassword)
	return e
}

// addIdentity stores an active identity with a password credential.
func (e *env) addIdentity(identifier, secret string) *session.Identity {
	e.t.Helper()
	cred, err := login.NewPasswordCredential(context.Background(), logintest.FastHasher{}, identifier, secret)
	require.NoError(e.t, err)
	now := e.clock.Now()
	traits, _ := json.Marshal(map[string]string{"email": identifier})
	id := &session.Identity{
		ID: uuid.New(), SchemaID: "default", State: session.StateActive, StateChangedAt: &now,
		Traits: traits, CreatedAt: now, UpdatedAt: now,
	}
	require.NoError(e.t, e.identities.CreateIdentity(context.Background(), id, cred))
	return id
}

// withPasskey gives the test identity a passkey held by e.auth, imported
// as from Kratos, and returns it.
func (e *env) withPasskey(backupEligible bool) *passkeytest.Key {
	e.t.Helper()
	e.handle = []byte(strings.Repeat("h", 64))
	return e.importPasskey(e.identity, e.handle, backupEligible)
}

// importPasskey gives identity a passkey with handle, held by e.auth.
func (e *env) importPasskey(identity *session.Identity, handle []byte, backupEligible bool) *passkeytest.Key {
	e.t.Helper()
	k := e.auth.AddKey(rpID, handle)
	cred, err := passkey.ImportKratos(passkey.CredentialPasskey, passkeytest.KratosConfig(handle, true, backupEligible, k), "")
	require.NoError(e.t, err)
	require.NoError(e.t, e.identities.UpdateCredential(context.Background(), identity.ID, &cred))
	return k
}

// withSecurityKey gives the test identity a second-factor security key
// held by auth.
func (e *env) withSecurityKey(auth *passkeytest.Authenticator, passwordless bool) *passkeytest.Key {
	e.t.Helper()
	handle := []byte("webauthn-handle-of-alice")
	k := auth.AddKey(rpID, handle)
	cred, err := passkey.ImportKratos(passkey.CredentialWebAuthn, passkeytest.KratosConfig(handle, passwordless, false, k), testIdentifier)
	require.NoError(e.t, err)
	require.NoError(e.t, e.identities.UpdateCredential(context.Background(), e.identity.ID, &cred))
	return k
}

// storedKey returns the identity's stored key with id, of typ.
func (e *env) storedKey(identityID string, typ session.CredentialType, id []byte) passkey.Key {
	e.t.Helper()
	creds, err := e.identities.Credentials(context.Background(), identityID)
	require.NoError(e.t, err)
	for _, c := range creds {
		if c.Type != typ {
			continue
		}
		var cfg passkey.CredentialConfig
		require.NoError(e.t, json.Unmarshal(c.Config, &cfg))
		for _, k := range cfg.Credentials {
			if bytes.Equal(k.ID, id) {
				return k
			}
		}
	}
	e.t.Fatalf("no %s key %x", typ, id)
	return passkey.Key{}
}

// sessionCount is how many sessions the identity has.
func (e *env) sessionCount(identityID string) int {
	e.t.Helper()
	ss, err := e.sessions.ListSessions(context.Background(), identityID)
	require.NoError(e.t, err)
	return len(ss)
}

func (e *env) browser() *http.Client {
	return testhttp.Client(e.t, e.srv.Client().Transport, true)
}

func (e *env) api() *http.Client {
	return testhttp.Client(e.t, e.srv.Client().Transport, false)
}

// result is an answer with its body read.
type result = testhttp.Result

func (e *env) do(c *http.Client, method, path string, body io.Reader, header map[string]string) *result {
	e.t.Helper()
	return testhttp.Do(e.t, c, method, e.srv.URL+path, body, header)
}

// apiFlow creates an API flow; query is appended to the path.
func (e *env) apiFlow(query string, header map[string]string) flow.Flow {
	e.t.Helper()
	r := e.do(e.api(), http.MethodGet, "/self-service/login/api"+query, nil, header)
	require.Equal(e.t, http.StatusOK, r.Status, "body: %s", r.Body)
	return r.Flow(e.t)
}

// browserFlow creates a browser flow with c as an SPA would (JSON).
func (e *env) browserFlow(c *http.Client, query string) flow.Flow {
	e.t.Helper()
	r := e.do(c, http.MethodGet, "/self-service/login/browser"+query, nil, map[string]string{"Accept": "application/json"})
	require.Equal(e.t, http.StatusOK, r.Status, "body: %s", r.Body)
	return r.Flow(e.t)
}

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

func (e *env) submitForm(c *http.Client, flowID string, values url.Values) *result {
	e.t.Helper()
	return e.do(c, http.MethodPost, "/self-service/login?flow="+flowID, strings.NewReader(values.Encode()),
		map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"})
}

// value returns the string value of the flow's node name.
func value(t testing.TB, f flow.Flow, name string) string {
	t.Helper()
	n := f.UI.Node(name)
	require.NotNil(t, n, "node %s", name)
	v, _ := n.Attributes.Value.(string)
	return v
}

// assert signs the flow's passkey challenge with e.auth.
func (e *env) assert(f flow.Flow, opts ...passkeytest.Option) string {
	e.t.Helper()
	b, err := e.auth.Get([]byte(value(e.t, f, "passkey_challenge")), origin, opts...)
	require.NoError(e.t, err)
	return string(b)
}

// passkeyLoginAPI logs in with the identity's passkey through an API flow.
func (e *env) passkeyLoginAPI(opts ...passkeytest.Option) *result {
	e.t.Helper()
	f := e.apiFlow("", nil)
	return e.submitJSON(e.api(), f.ID, map[string]any{"passkey_login": e.assert(f, opts...)}, nil)
}

// passwordAPI signs identifier in with its password through an API flow
// and returns the session token.
func (e *env) passwordAPI(identifier, secret string) string {
	e.t.Helper()
	f := e.apiFlow("", nil)
	r := e.submitJSON(e.api(), f.ID, map[string]any{"method": "password", "identifier": identifier, "password": secret}, nil)
	require.Equal(e.t, http.StatusOK, r.Status, "body: %s", r.Body)
	tok, _ := r.JSON(e.t)["session_token"].(string)
	require.NotEmpty(e.t, tok)
	return tok
}

// passwordBrowser signs the test identity in with c through a browser flow.
func (e *env) passwordBrowser(c *http.Client) {
	e.t.Helper()
	f := e.browserFlow(c, "")
	r := e.submitJSON(c, f.ID, map[string]any{"method": "password", "identifier": testIdentifier, "password": testPassword, "csrf_token": value(e.t, f, "csrf_token")}, nil)
	require.Equal(e.t, http.StatusOK, r.Status, "body: %s", r.Body)
}

// flowMessageIDs returns the ids of the flow-wide messages.
func flowMessageIDs(f flow.Flow) []int {
	var ids []int
	for _, m := range f.UI.Messages {
		ids = append(ids, m.ID)
	}
	return ids
}

// methods returns the session's authentication methods as method/aal.
func methods(t testing.TB, s map[string]any) []string {
	t.Helper()
	var out []string
	ms, _ := s["authentication_methods"].([]any)
	for _, m := range ms {
		mm := m.(map[string]any)
		out = append(out, mm["method"].(string)+"/"+mm["aal"].(string))
	}
	return out
}
