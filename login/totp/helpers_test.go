package totp_test

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

	pqtotp "github.com/pquerna/otp/totp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/internal/testclock"
	"github.com/authflow/authflow/internal/testhttp"
	"github.com/authflow/authflow/internal/uuid"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/login/logintest"
	"github.com/authflow/authflow/login/totp"
	"github.com/authflow/authflow/session"
)

// The test deployment: the handler with the password and totp methods on an
// httptest server, UIs and the app on other origins.
const (
	loginUI       = "https://ui.example.com/login"
	errorUI       = "https://ui.example.com/error"
	defaultReturn = "https://app.example.com/welcome"
	allowedReturn = "https://app.example.com/"

	testIdentifier = "alice@example.com"
	testPassword   = "correct horse battery staple"
	otherPassword  = "another horse battery staple"

	sessionCookie = "authflow_session"

	// testSecret is the test identity's TOTP secret (160 bits, base32),
	// which the test's authenticator (pquerna/otp) shares.
	testSecret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
	testURL    = "otpauth://totp/Example:alice@example.com?algorithm=SHA1&digits=6&issuer=Example&period=30&secret=" + testSecret
)

// start is 10 seconds into a time step, so that ±30 s are the neighbouring
// steps.
var start = time.Unix(1_795_000_000-1_795_000_000%30+10, 0).UTC()

// clock is the handler's injected clock.
type clock = testclock.Clock

// env is one test deployment. Its identity has a password and the TOTP
// credential of testURL, imported as from Kratos.
type env struct {
	t          testing.TB
	srv        *httptest.Server
	clock      *clock
	method     *totp.Method
	flows      *flow.MemoryStore
	sessions   *session.MemoryStore
	identities *session.MemoryIdentityStore
	identity   *session.Identity
}

// newEnv starts the handler; configure may change its Config before New.
// Throttling uses the default limits on the test clock.
func newEnv(t testing.TB, configure ...func(*login.Config)) *env {
	t.Helper()
	e := &env{t: t, clock: testclock.New(start)}
	var err error
	e.method, err = totp.New(totp.Config{Issuer: "Example", Now: e.clock.Now})
	require.NoError(t, err)
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
		Hasher:            logintest.FastHasher{},
		Limiter:           login.NewMemoryLimiter(login.Limits{Now: e.clock.Now}),
		Methods:           []login.Method{e.method},
		Now:               e.clock.Now,
		Logger:            slog.New(slog.DiscardHandler),
	}
	for _, c := range configure {
		c(&cfg)
	}
	h, err := login.New(cfg)
	require.NoError(t, err)
	mux.Handle("/", h)

	e.identity = e.addIdentity(testIdentifier, testPassword)
	cred, err := totp.ImportKratos(e.identity.ID, json.RawMessage(`{"totp_url":"`+testURL+`"}`))
	require.NoError(t, err)
	require.NoError(t, e.identities.UpdateCredential(context.Background(), e.identity.ID, &cred))
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

// code is what the test's authenticator app shows at the test clock's time
// plus offset.
func (e *env) code(offset time.Duration) string {
	e.t.Helper()
	return codeAt(e.t, testSecret, e.clock.Now().Add(offset))
}

func codeAt(t testing.TB, secret string, at time.Time) string {
	t.Helper()
	c, err := pqtotp.GenerateCode(secret, at)
	require.NoError(t, err)
	return c
}

// wrongCode is a six-digit code that is none of the codes accepted at now.
func (e *env) wrongCode() string {
	e.t.Helper()
	accepted := map[string]bool{e.code(-30 * time.Second): true, e.code(0): true, e.code(30 * time.Second): true}
	for _, c := range []string{"000000", "111111", "222222", "333333"} {
		if !accepted[c] {
			return c
		}
	}
	e.t.Fatal("no wrong code")
	return ""
}

// storedLastStep returns the last_step recorded in the identity's TOTP
// credential, and its version.
func (e *env) storedLastStep(identityID string) (uint64, int64) {
	e.t.Helper()
	creds, err := e.identities.Credentials(context.Background(), identityID)
	require.NoError(e.t, err)
	for _, c := range creds {
		if c.Type == session.CredentialTOTP {
			var cfg struct {
				LastStep uint64 `json:"last_step"`
			}
			require.NoError(e.t, json.Unmarshal(c.Config, &cfg))
			return cfg.LastStep, c.Version
		}
	}
	e.t.Fatal("no TOTP credential")
	return 0, 0
}

func step(t time.Time) uint64 { return uint64(t.Unix() / 30) }

// browser returns a client with a cookie jar that does not follow
// redirects.
func (e *env) browser() *http.Client {
	return testhttp.Client(e.t, e.srv.Client().Transport, true)
}

// api returns a client without cookies that does not follow redirects.
func (e *env) api() *http.Client {
	return testhttp.Client(e.t, e.srv.Client().Transport, false)
}

// result is an answer with its body read.
type result = testhttp.Result

// do sends a request; path is relative to the public URL.
func (e *env) do(c *http.Client, method, path string, body io.Reader, header map[string]string) *result {
	e.t.Helper()
	return testhttp.Do(e.t, c, method, e.srv.URL+path, body, header)
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

// submitForm posts values as an HTML form.
func (e *env) submitForm(c *http.Client, flowID string, values url.Values) *result {
	e.t.Helper()
	return e.do(c, http.MethodPost, "/self-service/login?flow="+flowID, strings.NewReader(values.Encode()),
		map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"})
}

// passwordAPI signs identifier in with its password through an API flow
// and returns the answer's body.
func (e *env) passwordAPI(identifier, secret string) map[string]any {
	e.t.Helper()
	r := e.do(e.api(), http.MethodGet, "/self-service/login/api", nil, nil)
	require.Equal(e.t, http.StatusOK, r.Status, "body: %s", r.Body)
	f := r.Flow(e.t)
	r = e.submitJSON(e.api(), f.ID, map[string]any{"method": "password", "identifier": identifier, "password": secret}, nil)
	require.Equal(e.t, http.StatusOK, r.Status, "body: %s", r.Body)
	return r.JSON(e.t)
}

// aal1Token signs the test identity in with its password (API) and
// returns the aal1 session's token.
func (e *env) aal1Token() string {
	e.t.Helper()
	tok, _ := e.passwordAPI(testIdentifier, testPassword)["session_token"].(string)
	require.NotEmpty(e.t, tok)
	return tok
}

// stepUpAPI creates an API step-up flow for the session of token.
func (e *env) stepUpAPI(token string) flow.Flow {
	e.t.Helper()
	r := e.do(e.api(), http.MethodGet, "/self-service/login/api?aal=aal2", nil, map[string]string{"X-Session-Token": token})
	require.Equal(e.t, http.StatusOK, r.Status, "body: %s", r.Body)
	return r.Flow(e.t)
}

// submitCode submits a TOTP code to an API flow with the session of token.
func (e *env) submitCode(flowID, token, code string) *result {
	e.t.Helper()
	return e.submitJSON(e.api(), flowID, map[string]any{"method": "totp", "totp_code": code}, map[string]string{"X-Session-Token": token})
}

func (e *env) whoami(token string) *result {
	e.t.Helper()
	return e.do(e.api(), http.MethodGet, "/sessions/whoami", nil, map[string]string{"X-Session-Token": token})
}

// flowMessageIDs returns the ids of the flow-wide messages.
func flowMessageIDs(f flow.Flow) []int {
	var ids []int
	for _, m := range f.UI.Messages {
		ids = append(ids, m.ID)
	}
	return ids
}

// assertCodeNotEchoed asserts that the totp_code node carries no submitted
// value.
func assertCodeNotEchoed(t testing.TB, f flow.Flow) {
	t.Helper()
	n := f.UI.Node("totp_code")
	require.NotNil(t, n, "the totp_code node")
	assert.Nil(t, n.Attributes.Value, "the submitted code is never echoed: the value attribute is removed (CONTRACT-AAL §4)")
}

// csrfToken returns the value of the flow's csrf_token node.
func csrfToken(f flow.Flow) string {
	if n := f.UI.Node("csrf_token"); n != nil {
		s, _ := n.Attributes.Value.(string)
		return s
	}
	return ""
}

// jarCookie returns the value of the cookie name that c would send.
func (e *env) jarCookie(c *http.Client, name string) string {
	e.t.Helper()
	u, err := url.Parse(e.srv.URL)
	require.NoError(e.t, err)
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == name {
			return ck.Value
		}
	}
	return ""
}
