package login_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	autherrors "github.com/authflow/authflow/errors"
	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/login/password"
	"github.com/authflow/authflow/session"
)

// hookRecorder records what the hooks saw.
type hookRecorder struct {
	mu       sync.Mutex
	before   []login.Attempt
	failures []login.Attempt
	verified []string // identity ids
	events   []login.Event
}

func (h *hookRecorder) config(c *login.Config) {
	c.BeforeAttempt = func(_ context.Context, a *login.Attempt) error {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.before = append(h.before, *a)
		return nil
	}
	c.AfterFailure = func(_ context.Context, a *login.Attempt, err error) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.failures = append(h.failures, *a)
	}
	c.AfterVerification = func(_ context.Context, _ *login.Attempt, id *session.Identity) error {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.verified = append(h.verified, id.ID)
		return nil
	}
	c.OnEvent = h.onEvent
}

func (h *hookRecorder) onEvent(_ context.Context, e login.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events = append(h.events, e)
}

func (h *hookRecorder) lastEvent(t testing.TB) login.Event {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	require.NotEmpty(t, h.events)
	return h.events[len(h.events)-1]
}

func TestHooksSeeTheAttempt(t *testing.T) {
	rec := &hookRecorder{}
	e := newEnv(t, rec.config)

	f := e.apiFlow("")
	body := credentials("  ALICE@example.com ", "wrong", "")
	body["transient_payload"] = map[string]any{"captcha": "ok"}
	r := e.submitJSON(e.api(), f.ID, body, nil)
	require.Equal(t, http.StatusBadRequest, r.status, "%s", r.body)

	require.Len(t, rec.before, 1)
	a := rec.before[0]
	assert.Equal(t, f.ID, a.FlowID)
	assert.Equal(t, flow.TypeAPI, a.FlowType)
	assert.Equal(t, "password", a.Method)
	assert.Equal(t, "alice@example.com", a.Identifier, "the normalised identifier")
	assert.Equal(t, "127.0.0.1", a.ClientIP)
	assert.JSONEq(t, `{"captcha":"ok"}`, string(a.TransientPayload))
	require.Len(t, rec.failures, 1, "a wrong password reaches the after-failure hook")
	assert.Equal(t, "alice@example.com", rec.failures[0].Identifier)
	assert.Empty(t, rec.verified)

	r = e.submitJSON(e.api(), f.ID, credentials(testIdentifier, testPassword, ""), nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	assert.Len(t, rec.before, 2)
	assert.Len(t, rec.failures, 1, "a success is no failure")
	assert.Equal(t, []string{e.identity.ID}, rec.verified)
}

func TestHooksAreNotCalledForRefusedSubmissions(t *testing.T) {
	rec := &hookRecorder{}
	e := newEnv(t, rec.config)

	f := e.apiFlow("")
	r := e.submitJSON(e.api(), f.ID, map[string]any{"method": "password", "identifier": testIdentifier}, nil)
	require.Equal(t, http.StatusBadRequest, r.status, "missing password: %s", r.body)

	c := e.browser()
	bf := e.browserFlow(c, "")
	r = e.submitJSON(c, bf.ID, credentials(testIdentifier, testPassword, "not-the-token"), nil)
	require.Equal(t, http.StatusForbidden, r.status, "CSRF: %s", r.body)

	assert.Empty(t, rec.before, "validation and CSRF failures never reach the hooks")
	assert.Empty(t, rec.failures)
}

// countingHasher counts comparisons, to prove a refused attempt computes
// no hash.
type countingHasher struct {
	mu       sync.Mutex
	compares int
	inner    password.Hasher
}

func (h *countingHasher) Hash(ctx context.Context, p []byte) (string, error) {
	return h.inner.Hash(ctx, p)
}

func (h *countingHasher) Compare(ctx context.Context, p []byte, enc string) error {
	h.mu.Lock()
	h.compares++
	h.mu.Unlock()
	return h.inner.Compare(ctx, p, enc)
}

func (h *countingHasher) NeedsRehash(enc string) bool { return h.inner.NeedsRehash(enc) }

func TestBeforeAttemptRefuses(t *testing.T) {
	cases := []struct {
		name       string
		refusal    error
		wantStatus int
		check      func(t *testing.T, r *result)
	}{
		{
			name:       "with a flow message",
			refusal:    login.Refuse(flow.Generic("Please solve the captcha.")),
			wantStatus: http.StatusBadRequest,
			check: func(t *testing.T, r *result) {
				f := r.flow(t)
				require.Len(t, f.UI.Messages, 1)
				assert.Equal(t, flow.IDGeneric, f.UI.Messages[0].ID)
				assert.Equal(t, "Please solve the captcha.", f.UI.Messages[0].Text)
			},
		},
		{
			name:       "with an error envelope",
			refusal:    autherrors.Forbidden("Logins from this network are not allowed."),
			wantStatus: http.StatusForbidden,
			check: func(t *testing.T, r *result) {
				assert.Equal(t, "application/json", r.header.Get("Content-Type"))
				assert.Equal(t, "Logins from this network are not allowed.", r.json(t)["error"].(map[string]any)["reason"])
			},
		},
		{
			name:       "with another error, as an internal error",
			refusal:    assert.AnError,
			wantStatus: http.StatusInternalServerError,
			check: func(t *testing.T, r *result) {
				assert.NotContains(t, string(r.body), assert.AnError.Error())
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hasher := &countingHasher{}
			e := newEnv(t, func(c *login.Config) {
				hasher.inner = c.Hasher
				c.Hasher = hasher
				c.BeforeAttempt = func(context.Context, *login.Attempt) error { return tc.refusal }
			})
			f := e.apiFlow("")
			r := e.submitJSON(e.api(), f.ID, credentials(testIdentifier, testPassword, ""), nil)
			require.Equal(t, tc.wantStatus, r.status, "%s", r.body)
			tc.check(t, r)
			assert.Zero(t, hasher.compares, "no hash is computed for a refused attempt")
			list, err := e.sessions.ListSessions(context.Background(), e.identity.ID)
			require.NoError(t, err)
			assert.Empty(t, list)
		})
	}
}

func TestAfterVerificationRefusesAnUnverifiedAddress(t *testing.T) {
	var seen *session.Identity
	e := newEnv(t, func(c *login.Config) {
		c.AfterVerification = func(_ context.Context, a *login.Attempt, id *session.Identity) error {
			seen = id
			return login.Refuse(flow.AddressNotVerified())
		}
	})

	c := e.browser()
	f := e.browserFlow(c, "")
	r := e.submitForm(c, f.ID, url.Values{"method": {"password"}, "identifier": {testIdentifier}, "password": {testPassword}, "csrf_token": {csrfToken(f)}}, nil)
	require.Equal(t, http.StatusSeeOther, r.status)
	assert.Equal(t, loginUI+"?flow="+f.ID, r.header.Get("Location"))
	assert.Nil(t, r.cookie("authflow_session"), "no session cookie")
	require.NotNil(t, seen)
	assert.Equal(t, e.identity.ID, seen.ID)

	fetched := e.do(c, http.MethodGet, "/self-service/login/flows?id="+f.ID, nil, nil).flow(t)
	require.Len(t, fetched.UI.Messages, 1)
	assert.Equal(t, flow.IDAddressNotVerified, fetched.UI.Messages[0].ID)
	assert.Equal(t, "Account not active yet. Did you forget to verify your email address?", fetched.UI.Messages[0].Text)
	assert.Equal(t, flow.StateChooseMethod, fetched.State, "a refused login leaves the flow usable")
	list, err := e.sessions.ListSessions(context.Background(), e.identity.ID)
	require.NoError(t, err)
	assert.Empty(t, list)
}

func TestEventsReportEveryOutcome(t *testing.T) {
	rec := &hookRecorder{}
	e := newEnv(t, func(c *login.Config) { c.OnEvent = rec.onEvent })

	f := e.apiFlow("")
	ev := rec.lastEvent(t)
	assert.Equal(t, "login.create", ev.Action)
	assert.Equal(t, login.OutcomeSuccess, ev.Outcome)
	assert.Equal(t, http.StatusOK, ev.Status)
	assert.Equal(t, f.ID, ev.FlowID)
	assert.Equal(t, flow.TypeAPI, ev.FlowType)

	e.submitJSON(e.api(), f.ID, credentials(testIdentifier, "wrong", ""), nil)
	ev = rec.lastEvent(t)
	assert.Equal(t, "login.submit", ev.Action)
	assert.Equal(t, login.OutcomeFlowError, ev.Outcome)
	assert.Equal(t, http.StatusBadRequest, ev.Status)
	assert.Equal(t, "password", ev.Method)
	assert.Equal(t, []int{flow.IDInvalidCredentials}, ev.Messages)
	assert.Empty(t, ev.IdentityID, "a failed attempt names no identity")

	r := e.submitJSON(e.api(), f.ID, credentials(testIdentifier, testPassword, ""), nil)
	require.Equal(t, http.StatusOK, r.status)
	ev = rec.lastEvent(t)
	assert.Equal(t, login.OutcomeSuccess, ev.Outcome)
	assert.Equal(t, e.identity.ID, ev.IdentityID)
	assert.NotEmpty(t, ev.SessionID)
	assert.Equal(t, "127.0.0.1", ev.ClientIP)
	sessionID := ev.SessionID
	token := r.json(t)["session_token"].(string)

	e.submitJSON(e.api(), f.ID, credentials(testIdentifier, testPassword, ""), nil)
	assert.Equal(t, []int{flow.IDAlreadyCompleted}, rec.lastEvent(t).Messages)

	e.do(e.api(), http.MethodGet, "/sessions/whoami", nil, map[string]string{"X-Session-Token": token})
	ev = rec.lastEvent(t)
	assert.Equal(t, "whoami", ev.Action)
	assert.Equal(t, sessionID, ev.SessionID)

	e.do(e.api(), http.MethodDelete, "/self-service/logout/api", strings.NewReader(`{"session_token":"`+token+`"}`), map[string]string{"Content-Type": "application/json"})
	ev = rec.lastEvent(t)
	assert.Equal(t, "logout.api", ev.Action)
	assert.Equal(t, login.OutcomeSuccess, ev.Outcome)
	assert.Equal(t, http.StatusNoContent, ev.Status)
	assert.Equal(t, sessionID, ev.SessionID)

	c := e.browser()
	bf := e.browserFlow(c, "")
	e.submitJSON(c, bf.ID, credentials(testIdentifier, testPassword, "bad"), nil)
	ev = rec.lastEvent(t)
	assert.Equal(t, login.OutcomeRefused, ev.Outcome)
	assert.Equal(t, autherrors.IDCSRFViolation, ev.ErrorID)
	assert.Equal(t, http.StatusForbidden, ev.Status)

	e.submitJSON(e.api(), e.expiredAPIFlow(t).ID, credentials(testIdentifier, testPassword, ""), nil)
	assert.Equal(t, login.OutcomeExpired, rec.lastEvent(t).Outcome)
}

// expiredAPIFlow creates an API flow and lets it expire.
func (e *env) expiredAPIFlow(t testing.TB) flow.Flow {
	t.Helper()
	f := e.apiFlow("")
	e.clock.Advance(2 * login.DefaultFlowLifespan)
	return f
}

func TestLogRecordsCarryIDsAndNoSecrets(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e := newEnv(t, func(c *login.Config) { c.Logger = logger })

	f := e.apiFlow("")
	e.submitJSON(e.api(), f.ID, credentials(testIdentifier, "wrong password", ""), nil)
	r := e.submitJSON(e.api(), f.ID, credentials(testIdentifier, testPassword, ""), nil)
	require.Equal(t, http.StatusOK, r.status)
	token := r.json(t)["session_token"].(string)
	c := e.browser()
	bf := e.browserFlow(c, "")
	csrf := csrfToken(bf)
	e.submitJSON(c, bf.ID, credentials(testIdentifier, testPassword, csrf), nil)

	var submits []map[string]any
	for _, line := range bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n")) {
		var rec map[string]any
		require.NoError(t, json.Unmarshal(line, &rec), "%s", line)
		if rec["action"] == "login.submit" {
			submits = append(submits, rec)
		}
	}
	require.Len(t, submits, 3)
	assert.Equal(t, "INFO", submits[0]["level"])
	assert.Equal(t, "flow_error", submits[0]["outcome"])
	assert.Equal(t, f.ID, submits[0]["flow_id"])
	assert.Equal(t, "password", submits[0]["method"])
	assert.Equal(t, "success", submits[1]["outcome"])
	assert.Equal(t, e.identity.ID, submits[1]["identity_id"])

	log := buf.String()
	for _, secret := range []string{testPassword, "wrong password", token, csrf} {
		assert.NotContains(t, log, secret)
	}
	for _, c := range c.Jar.Cookies(mustURL(t, e.srv.URL)) {
		assert.NotContains(t, log, c.Value, "cookie %s", c.Name)
	}
}

func mustURL(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	require.NoError(t, err)
	return u
}

func TestWebAuthnScriptIsServed(t *testing.T) {
	e := newEnv(t)
	r := e.do(e.api(), http.MethodGet, "/.well-known/ory/webauthn.js", nil, nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, "text/javascript; charset=utf-8", r.header.Get("Content-Type"))
	assert.Contains(t, string(r.body), "oryWebAuthnInitialized", "the real script (webauthnjs_test.go checks it in full)")
}
