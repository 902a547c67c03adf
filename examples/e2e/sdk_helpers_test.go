package e2e_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	ory "github.com/ory/client-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/login/logintest"
	"github.com/authflow/authflow/session"
)

// The SDK suite's deployment: authflow on an httptest server, the UIs and
// the app on other hosts (never contacted: redirects are not followed).
// Every identifier of this file starts with "sdk" so that it cannot clash
// with the other suites of the directory.
const (
	sdkLoginUI       = "https://ui.example.com/login"
	sdkErrorUI       = "https://ui.example.com/error"
	sdkDefaultReturn = "https://app.example.com/welcome"
	sdkIDPURL        = "https://idp.example.com/authorize"

	sdkIdentifier = "alice@example.com"
	sdkPassword   = "correct horse battery staple"

	sdkSessionCookie = login.DefaultSessionCookieName
	sdkCSRFCookie    = login.DefaultCSRFCookieName
	sdkCacheControl  = "private, no-cache, no-store, must-revalidate"
)

// sdkClock is the handler's injected clock; tests advance it instead of
// sleeping.
type sdkClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *sdkClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *sdkClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// sdkRedirectMethod is a test-only login method that continues in the
// browser elsewhere, as social sign-in does: it makes the handler answer
// 422 browser_location_change_required.
type sdkRedirectMethod struct{}

func (sdkRedirectMethod) ID() string { return "redirect" }

func (sdkRedirectMethod) AAL() string { return flow.AAL1 }

func (sdkRedirectMethod) Nodes(context.Context, *login.FlowRequest) ([]flow.Node, error) {
	return nil, nil
}

func (sdkRedirectMethod) Validate(context.Context, *login.Submission) error { return nil }

func (sdkRedirectMethod) Authenticate(context.Context, *login.Submission) (*login.Result, error) {
	return &login.Result{RedirectBrowserTo: sdkIDPURL}, nil
}

// sdkEnv is one deployment: the handler with in-memory stores, the fast
// hasher, an injected clock and one identity.
type sdkEnv struct {
	t        *testing.T
	srv      *httptest.Server
	clock    *sdkClock
	identity *session.Identity
}

func newSDKEnv(t *testing.T) *sdkEnv {
	t.Helper()
	e := &sdkEnv{t: t, clock: &sdkClock{t: time.Date(2026, 11, 27, 17, 4, 49, 483056979, time.UTC)}}
	mux := http.NewServeMux()
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)

	ctx := context.Background()
	ids := session.NewMemoryIdentityStore()
	cred, err := login.NewPasswordCredential(ctx, logintest.FastHasher{}, sdkIdentifier, sdkPassword)
	require.NoError(t, err)
	now := e.clock.Now()
	traits, err := json.Marshal(map[string]string{"email": sdkIdentifier})
	require.NoError(t, err)
	e.identity = &session.Identity{
		ID: sdkNewUUID(), SchemaID: "default", State: session.StateActive, StateChangedAt: &now,
		Traits: traits, CreatedAt: now, UpdatedAt: now,
	}
	require.NoError(t, ids.CreateIdentity(ctx, e.identity, cred))

	h, err := login.New(login.Config{
		PublicURL:        e.srv.URL,
		LoginUIURL:       sdkLoginUI,
		ErrorUIURL:       sdkErrorUI,
		DefaultReturnURL: sdkDefaultReturn,
		IdentityStore:    ids,
		Hasher:           logintest.FastHasher{},
		Methods:          []login.Method{sdkRedirectMethod{}},
		Now:              e.clock.Now,
		Logger:           slog.New(slog.DiscardHandler),
	})
	require.NoError(t, err)
	mux.Handle("/", h)
	return e
}

// sdkNewUUID returns a random version 4 UUID.
func sdkNewUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// expire moves the clock past the flow lifespan.
func (e *sdkEnv) expire() { e.clock.Advance(login.DefaultFlowLifespan + time.Minute) }

func sdkNoRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// client returns an SDK client for the handler that uses hc.
func (e *sdkEnv) client(hc *http.Client) *ory.APIClient {
	cfg := ory.NewConfiguration()
	cfg.Servers = ory.ServerConfigurations{{URL: e.srv.URL}}
	cfg.HTTPClient = hc
	return ory.NewAPIClient(cfg)
}

// native returns an SDK client as a native app uses it: no cookies.
// Redirects are not followed (a native flow never redirects anyway).
func (e *sdkEnv) native() ory.FrontendAPI {
	return e.client(&http.Client{CheckRedirect: sdkNoRedirects}).FrontendAPI
}

// sdkBrowser is an SDK client as an SPA (or a server acting for a browser)
// uses it: a cookie jar, and redirects handed back instead of followed.
type sdkBrowser struct {
	api ory.FrontendAPI
	hc  *http.Client
	e   *sdkEnv
}

func (e *sdkEnv) browser() *sdkBrowser {
	jar, err := cookiejar.New(nil)
	require.NoError(e.t, err)
	hc := &http.Client{Jar: jar, CheckRedirect: sdkNoRedirects}
	return &sdkBrowser{api: e.client(hc).FrontendAPI, hc: hc, e: e}
}

// cookie returns the jar's cookie name for the handler, or nil.
func (b *sdkBrowser) cookie(name string) *http.Cookie {
	u, err := url.Parse(b.e.srv.URL)
	require.NoError(b.e.t, err)
	for _, c := range b.hc.Jar.Cookies(u) {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// passwordBody is a password submission; csrf is sent when not empty.
func sdkPasswordBody(identifier, secret, csrf string) ory.UpdateLoginFlowBody {
	m := ory.NewUpdateLoginFlowWithPasswordMethod(identifier, "password", secret)
	if csrf != "" {
		m.CsrfToken = &csrf
	}
	return ory.UpdateLoginFlowWithPasswordMethodAsUpdateLoginFlowBody(m)
}

// sdkRedirectBody selects the test-only "redirect" method, sent as the SDK's
// social sign-in body (its "method" selects our method).
func sdkRedirectBody(csrf string) ory.UpdateLoginFlowBody {
	m := ory.NewUpdateLoginFlowWithOidcMethod("redirect", "idp")
	if csrf != "" {
		m.CsrfToken = &csrf
	}
	return ory.UpdateLoginFlowWithOidcMethodAsUpdateLoginFlowBody(m)
}

// sdkInput returns the input attributes of the flow's node name, failing
// the test when there is none.
func sdkInput(t *testing.T, f *ory.LoginFlow, name string) *ory.UiNodeInputAttributes {
	t.Helper()
	for _, n := range f.Ui.Nodes {
		if a := n.Attributes.UiNodeInputAttributes; a != nil && a.Name == name {
			return a
		}
	}
	require.Failf(t, "node missing", "flow %s has no input node %q", f.Id, name)
	return nil
}

// sdkCSRF returns the value of the flow's csrf_token node.
func sdkCSRF(t *testing.T, f *ory.LoginFlow) string {
	t.Helper()
	s, _ := sdkInput(t, f, "csrf_token").Value.(string)
	return s
}

// sdkOK fails the test on an SDK error, showing the body the SDK could not
// decode.
func sdkOK(t *testing.T, err error, resp *http.Response) {
	t.Helper()
	if err == nil {
		return
	}
	var ge *ory.GenericOpenAPIError
	if errors.As(err, &ge) {
		require.NoErrorf(t, err, "status %s, body: %s", sdkStatus(resp), ge.Body())
	}
	require.NoError(t, err)
}

func sdkStatus(resp *http.Response) string {
	if resp == nil {
		return "(no response)"
	}
	return resp.Status
}

// sdkAPIError returns err as the SDK's error type.
func sdkAPIError(t *testing.T, err error) *ory.GenericOpenAPIError {
	t.Helper()
	require.Error(t, err)
	var ge *ory.GenericOpenAPIError
	require.ErrorAsf(t, err, &ge, "want *client.GenericOpenAPIError, got %T: %v", err, err)
	return ge
}

// sdkModel asserts that the SDK decoded the error body into T, the type its
// operation declares for the response's status (GenericOpenAPIError.Model()
// is nil when that decoding failed, and Error() then is the decode error).
func sdkModel[T any](t *testing.T, err error, resp *http.Response, wantStatus int) T {
	t.Helper()
	require.NotNil(t, resp, "no response: %v", err)
	ge := sdkAPIError(t, err)
	require.Equalf(t, wantStatus, resp.StatusCode, "body: %s", ge.Body())
	m, ok := ge.Model().(T)
	require.Truef(t, ok, "the SDK could not decode the %d body into %T: %s\nbody: %s", resp.StatusCode, *new(T), ge.Error(), ge.Body())
	return m
}

// sdkAssertNoStore checks CONTRACT Part 1 rule 17 on an SDK response.
func sdkAssertNoStore(t *testing.T, resp *http.Response) {
	t.Helper()
	require.NotNil(t, resp)
	assert.Equal(t, sdkCacheControl, resp.Header.Get("Cache-Control"))
	assert.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))
}

// sdkAssertFlow checks what every flow the SDK decodes must carry: type,
// state, action, and the password form's nodes in Kratos' order.
func sdkAssertFlow(t *testing.T, e *sdkEnv, f *ory.LoginFlow, wantType string) {
	t.Helper()
	require.NotNil(t, f)
	assert.NotEmpty(t, f.Id)
	assert.Equal(t, wantType, f.Type)
	assert.Equal(t, ory.LOGINFLOWSTATE_CHOOSE_METHOD, f.State)
	assert.True(t, f.State.IsValid())
	assert.Equal(t, e.srv.URL+"/self-service/login?flow="+f.Id, f.Ui.Action)
	assert.Equal(t, http.MethodPost, f.Ui.Method)
	assert.True(t, strings.HasPrefix(f.RequestUrl, e.srv.URL+"/self-service/login/"), f.RequestUrl)
	assert.True(t, f.ExpiresAt.After(f.IssuedAt))
	require.NotNil(t, f.RequestedAal)
	assert.Equal(t, ory.AUTHENTICATORASSURANCELEVEL_AAL1, *f.RequestedAal)

	var names []string
	for _, n := range f.Ui.Nodes {
		require.NotNil(t, n.Attributes.UiNodeInputAttributes, "node of type %s is not an input", n.Type)
		names = append(names, n.Attributes.UiNodeInputAttributes.Name)
	}
	assert.Equal(t, []string{"csrf_token", "identifier", "password", "method"}, names)

	csrf := sdkInput(t, f, "csrf_token")
	assert.Equal(t, "hidden", csrf.Type)
	if wantType == "browser" {
		assert.NotEmpty(t, csrf.Value, "a browser flow carries a CSRF token")
	} else {
		assert.Equal(t, "", csrf.Value, "an API flow carries an empty CSRF token")
	}
	id := sdkInput(t, f, "identifier")
	assert.Equal(t, "text", id.Type)
	assert.Equal(t, "username", id.GetAutocomplete())
	assert.True(t, id.GetRequired())
	pw := sdkInput(t, f, "password")
	assert.Equal(t, "password", pw.Type)
	assert.Nil(t, pw.Value, "a password node never carries a value")
	assert.Equal(t, "current-password", pw.GetAutocomplete())
	m := sdkInput(t, f, "method")
	assert.Equal(t, "submit", m.Type)
	assert.Equal(t, "password", m.Value)
	for _, n := range f.Ui.Nodes {
		assert.NotNil(t, n.Messages, "node messages are always an array")
	}
	sdkAssertKnownFlow(t, f)
}

// sdkAssertSession checks a session decoded by the SDK after a password
// login of the env's identity.
func sdkAssertSession(t *testing.T, e *sdkEnv, s *ory.Session) {
	t.Helper()
	require.NotNil(t, s)
	assert.NotEmpty(t, s.Id)
	assert.True(t, s.GetActive())
	assert.Equal(t, ory.AUTHENTICATORASSURANCELEVEL_AAL1, s.GetAuthenticatorAssuranceLevel())
	require.Len(t, s.AuthenticationMethods, 1)
	assert.Equal(t, "password", s.AuthenticationMethods[0].GetMethod())
	assert.Equal(t, ory.AUTHENTICATORASSURANCELEVEL_AAL1, s.AuthenticationMethods[0].GetAal())
	assert.False(t, s.AuthenticationMethods[0].GetCompletedAt().IsZero())
	require.NotNil(t, s.Identity)
	assert.Equal(t, e.identity.ID, s.Identity.Id)
	assert.Equal(t, "default", s.Identity.SchemaId)
	assert.Equal(t, e.srv.URL+"/schemas/ZGVmYXVsdA", s.Identity.SchemaUrl)
	assert.Equal(t, "active", s.Identity.GetState())
	assert.Equal(t, map[string]any{"email": sdkIdentifier}, s.Identity.Traits)
	assert.Nil(t, s.Identity.Credentials, "credentials are never sent")
	require.NotNil(t, s.ExpiresAt)
	assert.True(t, s.ExpiresAt.After(s.GetAuthenticatedAt()))
	require.Len(t, s.Devices, 1)
	assert.NotEmpty(t, s.Devices[0].Id)
	assert.Equal(t, "127.0.0.1", s.Devices[0].GetIpAddress())
	assert.Equal(t, ory.NewConfiguration().UserAgent, s.Devices[0].GetUserAgent())
	sdkAssertKnownSession(t, s)
}

// sdkUITransport stands in for the login UI's host so that a client that
// follows redirects can be shown without leaving the machine: requests to
// ui.example.com get a small HTML page, everything else goes to next.
type sdkUITransport struct{ next http.RoundTripper }

func (tr sdkUITransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Host != "ui.example.com" {
		return tr.next.RoundTrip(r)
	}
	if r.Body != nil {
		_ = r.Body.Close()
	}
	const page = "<!doctype html><title>Sign in</title>"
	return &http.Response{
		Status:        "200 OK",
		StatusCode:    http.StatusOK,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{"Content-Type": {"text/html; charset=utf-8"}},
		Body:          io.NopCloser(strings.NewReader(page)),
		ContentLength: int64(len(page)),
		Request:       r,
	}, nil
}

// sdkAssertKnownFlow checks that the SDK's models know every key of the
// flow's JSON: no key lands in an AdditionalProperties map.
func sdkAssertKnownFlow(t *testing.T, f *ory.LoginFlow) {
	t.Helper()
	assert.Empty(t, f.AdditionalProperties, "LoginFlow keys the SDK does not model")
	assert.Empty(t, f.Ui.AdditionalProperties, "ui keys the SDK does not model")
	for _, n := range f.Ui.Nodes {
		assert.Empty(t, n.AdditionalProperties, "ui.nodes[] keys the SDK does not model")
		assert.Empty(t, n.Meta.AdditionalProperties, "ui.nodes[].meta keys the SDK does not model")
		if n.Meta.Label != nil {
			assert.Empty(t, n.Meta.Label.AdditionalProperties, "label keys the SDK does not model")
		}
		if a := n.Attributes.UiNodeInputAttributes; a != nil {
			assert.Empty(t, a.AdditionalProperties, "input attribute keys the SDK does not model")
		}
		for _, m := range n.Messages {
			assert.Empty(t, m.AdditionalProperties, "message keys the SDK does not model")
		}
	}
	for _, m := range f.Ui.Messages {
		assert.Empty(t, m.AdditionalProperties, "message keys the SDK does not model")
	}
}

// sdkAssertKnownSession is sdkAssertKnownFlow for a session.
func sdkAssertKnownSession(t *testing.T, s *ory.Session) {
	t.Helper()
	assert.Empty(t, s.AdditionalProperties, "session keys the SDK does not model")
	if s.Identity != nil {
		assert.Empty(t, s.Identity.AdditionalProperties, "identity keys the SDK does not model")
	}
	for _, m := range s.AuthenticationMethods {
		assert.Empty(t, m.AdditionalProperties, "authentication_methods[] keys the SDK does not model")
	}
	for _, d := range s.Devices {
		assert.Empty(t, d.AdditionalProperties, "devices[] keys the SDK does not model")
	}
}
