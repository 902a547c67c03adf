package code_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/courier"
	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/internal/testclock"
	"github.com/authflow/authflow/internal/testhttp"
	"github.com/authflow/authflow/internal/uuid"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/login/code"
	"github.com/authflow/authflow/login/logintest"
	"github.com/authflow/authflow/session"
)

// The test deployment: the handler with the password and code methods on an
// httptest server, UIs and the app on other origins.
const (
	loginUI       = "https://ui.example.com/login"
	errorUI       = "https://ui.example.com/error"
	defaultReturn = "https://app.example.com/welcome"

	alice      = "alice@example.com" // password and code
	bob        = "bob@example.com"   // password and code
	carol      = "carol@example.com" // code only
	nobody     = "nobody@example.com"
	testSecret = "correct horse battery staple"

	sessionCookie = "authflow_session"
)

var start = time.Date(2026, 11, 5, 9, 30, 0, 0, time.UTC)

// clock is the handler's injected clock.
type clock = testclock.Clock

// setup is what a test may change before the handler is built.
type setup struct {
	code  code.Config
	login login.Config
}

// env is one test deployment: alice and bob have a password and a code
// credential, carol a code credential only.
type env struct {
	t          testing.TB
	srv        *httptest.Server
	clock      *clock
	mail       *courier.Capture
	method     *code.Method
	h          *login.Handler
	flows      *flow.MemoryStore
	identities *session.MemoryIdentityStore
	ids        map[string]*session.Identity // by address
}

// newEnv starts the handler with the code method delivering to a
// courier.Capture (unless configure sets another Courier), throttling on
// the test clock, and the client network taken from X-Forwarded-For (the
// test server's loopback address is a trusted proxy), so that tests can
// play several clients. The method's queue is closed when the test ends.
func newEnv(t testing.TB, configure ...func(*setup)) *env {
	t.Helper()
	e := &env{t: t, clock: testclock.New(start), mail: courier.NewCapture(), ids: map[string]*session.Identity{}}
	e.flows = flow.NewMemoryStore(e.clock.Now)
	e.identities = session.NewMemoryIdentityStore()
	mux := http.NewServeMux()
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	discard := slog.New(slog.DiscardHandler)
	s := &setup{
		code: code.Config{
			Courier: e.mail,
			Queue:   courier.QueueConfig{Backoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, MaxAge: time.Hour},
			Now:     e.clock.Now,
			Logger:  discard,
		},
		login: login.Config{
			PublicURL:        e.srv.URL,
			LoginUIURL:       loginUI,
			ErrorUIURL:       errorUI,
			DefaultReturnURL: defaultReturn,
			FlowStore:        e.flows,
			SessionStore:     session.NewMemoryStore(e.clock.Now),
			IdentityStore:    e.identities,
			Hasher:           logintest.FastHasher{},
			Limiter:          login.NewMemoryLimiter(login.Limits{Now: e.clock.Now}),
			TrustedProxies:   []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
			Now:              e.clock.Now,
			Logger:           discard,
		},
	}
	for _, c := range configure {
		c(s)
	}
	var err error
	e.method, err = code.New(s.code)
	require.NoError(t, err)
	s.login.Methods = append(s.login.Methods, e.method)
	e.h, err = login.New(s.login)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		e.h.Close(ctx)
	})
	mux.Handle("/", e.h)

	e.addIdentity(alice, testSecret)
	e.addIdentity(bob, testSecret)
	e.addIdentity(carol, "")
	return e
}

// addIdentity stores an active identity with a code credential for address
// and, when secret is set, a password.
func (e *env) addIdentity(address, secret string) *session.Identity {
	e.t.Helper()
	ctx := context.Background()
	cred, err := code.NewCredential(address)
	require.NoError(e.t, err)
	creds := []session.Credential{cred}
	if secret != "" {
		pw, err := login.NewPasswordCredential(ctx, logintest.FastHasher{}, address, secret)
		require.NoError(e.t, err)
		creds = append(creds, pw)
	}
	now := e.clock.Now()
	traits, _ := json.Marshal(map[string]string{"email": address})
	id := &session.Identity{
		ID: uuid.New(), SchemaID: "default", State: session.StateActive, StateChangedAt: &now,
		Traits: traits, CreatedAt: now, UpdatedAt: now,
	}
	require.NoError(e.t, e.identities.CreateIdentity(ctx, id, creds...))
	e.ids[address] = id
	return id
}

// client is one user agent: an HTTP client that does not follow redirects,
// with a cookie jar for browsers, sending from a network of its own.
type client struct {
	c  *http.Client
	ip string // X-Forwarded-For
}

func (e *env) newClient(jar bool, ip string) *client {
	return &client{c: testhttp.Client(e.t, e.srv.Client().Transport, jar), ip: ip}
}

// api returns a client without cookies, from 192.0.2.1.
func (e *env) api() *client { return e.newClient(false, "192.0.2.1") }

// browser returns a client with a cookie jar, from 192.0.2.1.
func (e *env) browser() *client { return e.newClient(true, "192.0.2.1") }

// result is an answer with its body read.
type result = testhttp.Result

// do sends a request; path is relative to the public URL.
func (e *env) do(c *client, method, path string, body io.Reader, header map[string]string) *result {
	e.t.Helper()
	h := map[string]string{"X-Forwarded-For": c.ip}
	for k, v := range header {
		h[k] = v
	}
	return testhttp.Do(e.t, c.c, method, e.srv.URL+path, body, h)
}

// apiFlow creates an API flow.
func (e *env) apiFlow(c *client) flow.Flow {
	e.t.Helper()
	r := e.do(c, http.MethodGet, "/self-service/login/api", nil, nil)
	require.Equal(e.t, http.StatusOK, r.Status, "body: %s", r.Body)
	return r.Flow(e.t)
}

// browserFlow creates a browser flow (JSON answer, as an SPA does).
func (e *env) browserFlow(c *client) flow.Flow {
	e.t.Helper()
	r := e.do(c, http.MethodGet, "/self-service/login/browser", nil, map[string]string{"Accept": "application/json"})
	require.Equal(e.t, http.StatusOK, r.Status, "body: %s", r.Body)
	return r.Flow(e.t)
}

// fetch returns the stored flow as the UI fetches it.
func (e *env) fetch(c *client, id string) flow.Flow {
	e.t.Helper()
	r := e.do(c, http.MethodGet, "/self-service/login/flows?id="+id, nil, nil)
	require.Equal(e.t, http.StatusOK, r.Status, "body: %s", r.Body)
	return r.Flow(e.t)
}

// submitJSON posts body as JSON to the flow.
func (e *env) submitJSON(c *client, flowID string, body map[string]any) *result {
	e.t.Helper()
	b, err := json.Marshal(body)
	require.NoError(e.t, err)
	return e.do(c, http.MethodPost, "/self-service/login?flow="+flowID, bytes.NewReader(b),
		map[string]string{"Content-Type": "application/json", "Accept": "application/json"})
}

// submitForm posts values as an HTML form.
func (e *env) submitForm(c *client, flowID string, values url.Values) *result {
	e.t.Helper()
	return e.do(c, http.MethodPost, "/self-service/login?flow="+flowID, strings.NewReader(values.Encode()),
		map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"})
}

// send submits the send step of an API flow for address.
func (e *env) send(c *client, flowID, address string) *result {
	e.t.Helper()
	return e.submitJSON(c, flowID, map[string]any{"method": "code", "identifier": address})
}

// enter submits a code to an API flow, with the flow's hidden identifier
// as a UI would.
func (e *env) enter(c *client, flowID, address, code string) *result {
	e.t.Helper()
	return e.submitJSON(c, flowID, map[string]any{"method": "code", "identifier": address, "code": code})
}

// resend asks for a new code on an API flow.
func (e *env) resend(c *client, flowID, address string) *result {
	e.t.Helper()
	return e.submitJSON(c, flowID, map[string]any{"method": "code", "identifier": address, "resend": "code"})
}

// sentCode sends a code to address on a new API flow and returns the flow
// and the mailed code.
func (e *env) sentCode(c *client, address string) (flow.Flow, string) {
	e.t.Helper()
	f := e.apiFlow(c)
	r := e.send(c, f.ID, address)
	require.Equal(e.t, http.StatusBadRequest, r.Status, "body: %s", r.Body)
	require.Equal(e.t, flow.StateSentEmail, r.Flow(e.t).State)
	return f, e.nextCode(address)
}

// nextCode waits for the next mail to address and returns its code.
func (e *env) nextCode(address string) string {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m, err := e.mail.Wait(ctx, address)
	require.NoError(e.t, err, "no mail to %s", address)
	return codeIn(e.t, m.Subject, m.Text)
}

var codePattern = regexp.MustCompile(`\b\d{6}\b`)

// codeIn returns the code of a login-code mail, checking that its subject
// and text carry the same one.
func codeIn(t testing.TB, subject, text string) string {
	t.Helper()
	m := regexp.MustCompile(`^Use code (\d{6}) to log in$`).FindStringSubmatch(subject)
	require.NotNil(t, m, "subject %q", subject)
	require.Equal(t, m[1], codePattern.FindString(text), "the text carries the subject's code: %q", text)
	return m[1]
}

// quiesce closes the method's queue, so that every mail the tests caused
// has been delivered (or dropped) when it returns.
func (e *env) quiesce() {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(e.t, e.h.Close(ctx))
}

// mailsTo counts the mails delivered to address.
func (e *env) mailsTo(address string) int {
	n := 0
	for _, m := range e.mail.Messages() {
		if m.To == address {
			n++
		}
	}
	return n
}

// storedState returns the method's state of the stored flow.
func (e *env) storedState(id string) map[string]any {
	e.t.Helper()
	rec, err := e.flows.Flow(context.Background(), id)
	require.NoError(e.t, err)
	raw := rec.MethodState[code.MethodID]
	require.NotNil(e.t, raw, "no code state on flow %s", id)
	var st map[string]any
	require.NoError(e.t, json.Unmarshal(raw, &st))
	return st
}

// wrongCode returns a six-digit code other than right.
func wrongCode(right string) string {
	if right == "000000" {
		return "000001"
	}
	return "000000"
}

// messageIDs returns the ids of the flow-wide messages.
func messageIDs(f flow.Flow) []int {
	var ids []int
	for _, m := range f.UI.Messages {
		ids = append(ids, m.ID)
	}
	return ids
}

// nodeMessageIDs returns the ids of the messages on the node name.
func nodeMessageIDs(t testing.TB, f flow.Flow, name string) []int {
	t.Helper()
	n := f.UI.Node(name)
	require.NotNil(t, n, "node %s", name)
	var ids []int
	for _, m := range n.Messages {
		ids = append(ids, m.ID)
	}
	return ids
}

// nodeKeys lists group/name/type(/value) of a flow's nodes.
func nodeKeys(f flow.Flow) []string {
	var out []string
	for _, n := range f.UI.Nodes {
		k := n.Group + "/" + n.Attributes.Name + "/" + n.Attributes.Type
		if v, ok := n.Attributes.Value.(string); ok && (n.Attributes.Name == "method" || n.Attributes.Name == "resend") {
			k += "=" + v
		}
		out = append(out, k)
	}
	return out
}

// csrfToken returns the value of the flow's csrf_token node.
func csrfToken(f flow.Flow) string {
	if n := f.UI.Node("csrf_token"); n != nil {
		s, _ := n.Attributes.Value.(string)
		return s
	}
	return ""
}

// methodsOf lists a wire session's authentication methods as method/aal.
func methodsOf(t testing.TB, s map[string]any) []string {
	t.Helper()
	var out []string
	ms, _ := s["authentication_methods"].([]any)
	for _, m := range ms {
		mm := m.(map[string]any)
		out = append(out, mm["method"].(string)+"/"+mm["aal"].(string))
	}
	return out
}

// assertCodeNotEchoed asserts that the code node carries no value.
func assertCodeNotEchoed(t testing.TB, f flow.Flow) {
	t.Helper()
	n := f.UI.Node("code")
	require.NotNil(t, n, "the code node")
	assert.Nil(t, n.Attributes.Value, "a submitted code is never echoed")
}

// dropCookie removes the cookie name from the browser's jar.
func (e *env) dropCookie(c *client, name string) {
	e.t.Helper()
	u, err := url.Parse(e.srv.URL)
	require.NoError(e.t, err)
	c.c.Jar.SetCookies(u, []*http.Cookie{{Name: name, Path: "/", MaxAge: -1}})
}
