package login_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/login/logintest"
	"github.com/authflow/authflow/session"
)

// Helpers of the submit tests (prefix sub). They build on helpers_test.go.

// subKind is one of the three ways a flow is submitted (CONTRACT Part 1
// rules 2 to 4): an API flow, a browser flow posted as a form without
// Accept (non-JSON), and a browser flow posted as JSON (SPA).
type subKind string

const (
	subAPI  subKind = "api"
	subForm subKind = "form"
	subSPA  subKind = "spa"
)

// subKinds are all three kinds, for tables that run every row for each.
var subKinds = []subKind{subAPI, subForm, subSPA}

// The wire texts the submit tests compare with.
const (
	subNoCache          = "private, no-cache, no-store, must-revalidate"
	subJSONFlowType     = "application/json; charset=utf-8"
	subJSONErrorType    = "application/json"
	subMsgBadRequest    = "The request was malformed or contained invalid parameters"
	subMsgInternal      = "An internal server error occurred, please contact the system administrator"
	subAlreadyReason    = "A valid session was detected and thus login is not possible. Did you forget to set `?refresh=true`?"
	subInvalidCredsText = "The provided credentials are invalid, check for spelling mistakes in your password or username, email address, or phone number."
	subAlreadyDoneText  = "The request was already completed successfully and can not be retried."
	subNoMethodText     = "Could not find a strategy to log you in with. Did you fill out the form correctly?"
	subDisabledText     = "This account has been disabled. Please contact support for assistance."
	subBadCharsText     = "The identifier contains characters that are not allowed."
	subCSRFMismatch     = "The HTTP Cookie Header was set and a CSRF token was sent but they do not match. We recommend deleting all cookies for this domain and retrying the flow."
	subCSRFNoCookies    = "The HTTP Cookie Header is empty or not set."
	subCSRFHintNotSent  = "The anti-CSRF cookie was found but the CSRF token was not included in the HTTP request body (csrf_token) nor in the HTTP Header (X-CSRF-Token)."
	subSessionCookie    = "authflow_session"
	subCSRFCookie       = "authflow_csrf"
)

// subClient drives one flow as one kind of client.
type subClient struct {
	e    *env
	kind subKind
	c    *http.Client
	flow flow.Flow
}

// subStart creates a flow of kind with a fresh client; query is appended
// to the init path (e.g. "?return_to=...").
func subStart(t testing.TB, e *env, kind subKind, query string) *subClient {
	t.Helper()
	if kind == subAPI {
		return &subClient{e: e, kind: kind, c: e.api(), flow: e.apiFlow(query)}
	}
	return subStartBrowser(t, e, kind, e.browser(), query)
}

// subStartBrowser creates a browser flow with c: an SPA asks for JSON; a
// browser navigates (303 to the login UI), and the login UI fetches the
// flow with the browser's cookies.
func subStartBrowser(t testing.TB, e *env, kind subKind, c *http.Client, query string) *subClient {
	t.Helper()
	if kind == subSPA {
		return &subClient{e: e, kind: kind, c: c, flow: e.browserFlow(c, query)}
	}
	r := e.do(c, http.MethodGet, "/self-service/login/browser"+query, nil, nil)
	require.Equal(t, http.StatusSeeOther, r.status, "body: %s", r.body)
	id := subQueryParam(t, r.header.Get("Location"), loginUI, "flow")
	fr := subFetchFlow(t, e, c, id)
	require.Equal(t, http.StatusOK, fr.status, "body: %s", fr.body)
	return &subClient{e: e, kind: kind, c: c, flow: fr.flow(t)}
}

// subQueryParam checks that location is base?... and returns its param.
func subQueryParam(t testing.TB, location, base, param string) string {
	t.Helper()
	require.True(t, strings.HasPrefix(location, base+"?"), "Location %q does not start with %q", location, base+"?")
	u, err := url.Parse(location)
	require.NoError(t, err)
	v := u.Query().Get(param)
	require.NotEmpty(t, v, "Location %q has no %s", location, param)
	return v
}

// subFetchFlow fetches a flow as the login UI does, with c's cookies.
func subFetchFlow(t testing.TB, e *env, c *http.Client, id string) *result {
	t.Helper()
	return e.do(c, http.MethodGet, "/self-service/login/flows?id="+url.QueryEscape(id), nil, map[string]string{"Accept": "application/json"})
}

// subStored returns the flow as the store keeps it.
func subStored(t testing.TB, e *env, id string) *flow.Record {
	t.Helper()
	rec, err := e.flows.Flow(context.Background(), id)
	require.NoError(t, err)
	return rec
}

// creds is a complete password submission carrying the flow's CSRF token.
func (s *subClient) creds(identifier, secret string) map[string]any {
	return credentials(identifier, secret, csrfToken(s.flow))
}

// submit posts fields the way s's kind does: JSON with Accept JSON (API,
// SPA) or a form without Accept (browser form). Nil values are left out.
func (s *subClient) submit(t testing.TB, fields map[string]any, header map[string]string) *result {
	t.Helper()
	if s.kind == subForm {
		v := url.Values{}
		for k, x := range fields {
			if x != nil {
				v.Set(k, fmt.Sprint(x))
			}
		}
		return s.e.submitForm(s.c, s.flow.ID, v, header)
	}
	clean := map[string]any{}
	for k, x := range fields {
		if x != nil {
			clean[k] = x
		}
	}
	return s.e.submitJSON(s.c, s.flow.ID, clean, header)
}

// subAssertNoCache checks the headers every answer carries (CONTRACT Part 1
// rule 17).
func subAssertNoCache(t testing.TB, r *result) {
	t.Helper()
	assert.Equal(t, subNoCache, r.header.Get("Cache-Control"), "Cache-Control")
	assert.Equal(t, "nosniff", r.header.Get("X-Content-Type-Options"), "X-Content-Type-Options")
}

// wantFlow asserts a FLOW-400 answer about s's flow: for API flows and JSON
// requests the flow with status 400, for browser forms a 303 to the login UI
// with the same flow id. It returns the flow the client then sees (for
// forms, fetched as the login UI would; from the store when s's client has
// no cookie jar).
func (s *subClient) wantFlow(t testing.TB, r *result) *result {
	t.Helper()
	return subWantFlow(t, s.e, s.c, s.kind, s.flow.ID, r)
}

func subWantFlow(t testing.TB, e *env, c *http.Client, kind subKind, flowID string, r *result) *result {
	t.Helper()
	subAssertNoCache(t, r)
	if kind == subForm {
		require.Equal(t, http.StatusSeeOther, r.status, "body: %s", r.body)
		assert.Equal(t, loginUI+"?flow="+flowID, r.header.Get("Location"))
		if c.Jar == nil {
			b, err := json.Marshal(subStored(t, e, flowID).Flow)
			require.NoError(t, err)
			return &result{status: http.StatusOK, body: b, header: http.Header{}}
		}
		fr := subFetchFlow(t, e, c, flowID)
		require.Equal(t, http.StatusOK, fr.status, "fetch after redirect, body: %s", fr.body)
		return fr
	}
	require.Equal(t, http.StatusBadRequest, r.status, "body: %s", r.body)
	assert.Equal(t, subJSONFlowType, r.header.Get("Content-Type"))
	assert.NotContains(t, r.header, "Ory-Error-Id", "a flow body carries no Ory-Error-Id")
	assert.Equal(t, flowID, r.flow(t).ID)
	return r
}

// wantError asserts an error answer of status: the envelope for API flows
// and JSON requests, a 303 to the error UI for browser forms. It returns
// the envelope (for forms: {"error": <the forwarded error>}).
func (s *subClient) wantError(t testing.TB, r *result, status int) map[string]any {
	t.Helper()
	return subWantError(t, s.e, r, status, s.kind != subForm)
}

// subWantError asserts an error answer of status, as JSON when asJSON, else
// as a 303 to the error UI whose id is fetchable. Internal errors (5xx) are
// always answered directly as JSON: the error store may be what failed.
func subWantError(t testing.TB, e *env, r *result, status int, asJSON bool) map[string]any {
	t.Helper()
	subAssertNoCache(t, r)
	if !asJSON && status < http.StatusInternalServerError {
		require.Equal(t, http.StatusSeeOther, r.status, "body: %s", r.body)
		id := subQueryParam(t, r.header.Get("Location"), errorUI, "id")
		er := e.do(e.api(), http.MethodGet, "/self-service/errors?id="+url.QueryEscape(id), nil, nil)
		require.Equal(t, http.StatusOK, er.status, "fetch forwarded error, body: %s", er.body)
		body := er.json(t)
		assert.Equal(t, id, body["id"])
		obj, ok := body["error"].(map[string]any)
		require.True(t, ok, "forwarded error: %s", er.body)
		assert.EqualValues(t, status, obj["code"], "forwarded error: %s", er.body)
		return map[string]any{"error": obj}
	}
	require.Equal(t, status, r.status, "body: %s", r.body)
	assert.Equal(t, subJSONErrorType, r.header.Get("Content-Type"))
	env := r.json(t)
	obj, ok := env["error"].(map[string]any)
	require.True(t, ok, "envelope: %s", r.body)
	id, _ := obj["id"].(string)
	require.Contains(t, r.header, "Ory-Error-Id", "an envelope always carries Ory-Error-Id")
	assert.Equal(t, id, r.header.Get("Ory-Error-Id"))
	assert.EqualValues(t, status, obj["code"])
	assert.Equal(t, http.StatusText(status), obj["status"])
	assert.NotEmpty(t, obj["message"])
	return env
}

// subErr returns the error object of an envelope.
func subErr(env map[string]any) map[string]any {
	obj, _ := env["error"].(map[string]any)
	return obj
}

// subIDs returns the ids of messages.
func subIDs(ms []flow.Message) []int {
	ids := []int{}
	for _, m := range ms {
		ids = append(ids, m.ID)
	}
	return ids
}

// subNode returns the node name of f; it must exist.
func subNode(t testing.TB, f flow.Flow, name string) *flow.Node {
	t.Helper()
	n := f.UI.Node(name)
	require.NotNil(t, n, "flow has no %s node", name)
	return n
}

// subGeneric asserts that f carries exactly one flow message, 4000001 with
// reason text (and context.reason), and no node messages.
func subGeneric(t testing.TB, f flow.Flow, text string) {
	t.Helper()
	require.Len(t, f.UI.Messages, 1, "messages: %+v", f.UI.Messages)
	m := f.UI.Messages[0]
	assert.Equal(t, flow.IDGeneric, m.ID)
	assert.Equal(t, "error", m.Type)
	assert.Equal(t, text, m.Text)
	assert.Equal(t, map[string]any{"reason": text}, m.Context)
}

// subOnlyMessage asserts that f carries exactly the flow message id with
// text, and no node messages.
func subOnlyMessage(t testing.TB, f flow.Flow, id int, text string) {
	t.Helper()
	require.Len(t, f.UI.Messages, 1, "messages: %+v", f.UI.Messages)
	assert.Equal(t, id, f.UI.Messages[0].ID)
	assert.Equal(t, text, f.UI.Messages[0].Text)
	assert.Equal(t, "error", f.UI.Messages[0].Type)
	for _, n := range f.UI.Nodes {
		assert.Empty(t, n.Messages, "node %s", n.Attributes.Name)
	}
}

// subDo sends a request to any URL (for handlers other than e's).
func subDo(t testing.TB, c *http.Client, method, rawURL string, body io.Reader, header map[string]string) *result {
	t.Helper()
	req, err := http.NewRequest(method, rawURL, body)
	require.NoError(t, err)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return &result{status: resp.StatusCode, header: resp.Header, body: b, resp: resp}
}

// subJarCookie returns the value of the cookie name in c's jar for e's
// server, or "".
func subJarCookie(t testing.TB, e *env, c *http.Client, name string) string {
	t.Helper()
	u, err := url.Parse(e.srv.URL)
	require.NoError(t, err)
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == name {
			return ck.Value
		}
	}
	return ""
}

// subWhoami reports the status of whoami for a session token.
func subWhoami(t testing.TB, e *env, token string) *result {
	t.Helper()
	return e.do(e.api(), http.MethodGet, "/sessions/whoami", nil, map[string]string{"X-Session-Token": token})
}

// subSessions returns the identity's stored sessions.
func subSessions(t testing.TB, e *env, identityID string) []*session.Record {
	t.Helper()
	ss, err := e.sessions.ListSessions(context.Background(), identityID)
	require.NoError(t, err)
	return ss
}

// subSetInactive disables an identity.
func subSetInactive(t testing.TB, e *env, id *session.Identity) {
	t.Helper()
	c := id.Clone()
	c.State = session.StateInactive
	require.NoError(t, e.identities.UpdateIdentity(context.Background(), c))
}

// subPasswordCredential is a password credential with a given stored hash.
func subPasswordCredential(t testing.TB, identifier, encoded string) session.Credential {
	t.Helper()
	cfg, err := json.Marshal(session.PasswordConfig{HashedPassword: encoded})
	require.NoError(t, err)
	return session.Credential{Type: session.CredentialPassword, Identifiers: []string{identifier}, Config: cfg}
}

// subHasher is the fast test hasher with switchable failures and counters.
type subHasher struct {
	logintest.FastHasher
	failHash atomic.Bool
	hashes   atomic.Int64
	compares atomic.Int64
}

var errSubHash = errors.New("sub: hashing is broken")

func (h *subHasher) Hash(ctx context.Context, secret []byte) (string, error) {
	h.hashes.Add(1)
	if h.failHash.Load() {
		return "", errSubHash
	}
	return h.FastHasher.Hash(ctx, secret)
}

func (h *subHasher) Compare(ctx context.Context, secret []byte, encoded string) error {
	h.compares.Add(1)
	return h.FastHasher.Compare(ctx, secret, encoded)
}

// subSessionStore is the in-memory session store whose CreateSession can
// be replaced.
type subSessionStore struct {
	*session.MemoryStore
	mu     sync.Mutex
	create func(ctx context.Context, rec *session.Record) error // nil: the MemoryStore's
}

func (s *subSessionStore) setCreate(f func(ctx context.Context, rec *session.Record) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.create = f
}

func (s *subSessionStore) CreateSession(ctx context.Context, rec *session.Record) error {
	s.mu.Lock()
	f := s.create
	s.mu.Unlock()
	if f != nil {
		return f(ctx, rec)
	}
	return s.MemoryStore.CreateSession(ctx, rec)
}

var _ login.SessionStore = (*subSessionStore)(nil)

// subBuffer is a bytes.Buffer safe for concurrent use, for logs.
type subBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *subBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *subBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// subDebugLogger logs everything, down to Debug, to w.
func subDebugLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
