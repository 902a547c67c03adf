package login_test

import (
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	autherrors "github.com/authflow/authflow/errors"
	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/login"
)

// throttleEnv is an env with the default limiter on the test clock and a
// hasher that counts comparisons.
func throttleEnv(t *testing.T) (*env, *countingHasher) {
	hasher := &countingHasher{}
	var e *env
	e = newEnv(t, func(c *login.Config) {
		hasher.inner = c.Hasher
		c.Hasher = hasher
		c.Limiter = login.NewMemoryLimiter(login.Limits{Now: c.Now})
	})
	return e, hasher
}

func (h *countingHasher) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.compares
}

func TestThrottleAfterFiveFailures(t *testing.T) {
	for _, identifier := range []string{testIdentifier, "nobody@example.com"} {
		t.Run(identifier, func(t *testing.T) {
			e, hasher := throttleEnv(t)
			f := e.apiFlow("")
			for i := range 5 {
				r := e.submitJSON(e.api(), f.ID, credentials(identifier, "wrong", ""), nil)
				require.Equal(t, http.StatusBadRequest, r.status, "failure %d is answered normally", i+1)
			}
			before := hasher.count()

			r := e.submitJSON(e.api(), f.ID, credentials(identifier, "wrong", ""), nil)
			require.Equal(t, http.StatusTooManyRequests, r.status, "%s", r.body)
			assert.Equal(t, "1", r.header.Get("Retry-After"))
			assert.Equal(t, autherrors.IDTooManyAttempts, r.header.Get("Ory-Error-Id"))
			assert.JSONEq(t, `{"error":{"id":"too_many_attempts","code":429,"status":"Too Many Requests",
				"reason":"Too many failed attempts. Please try again in 1 seconds.","message":"too many failed login attempts"}}`, string(r.body))
			assert.Equal(t, "private, no-cache, no-store, must-revalidate", r.header.Get("Cache-Control"))

			r = e.submitJSON(e.api(), f.ID, credentials(identifier, testPassword, ""), nil)
			assert.Equal(t, http.StatusTooManyRequests, r.status, "even the right password waits")
			assert.Equal(t, before, hasher.count(), "no hash is computed for a throttled attempt")

			e.clock.Advance(time.Second)
			r = e.submitJSON(e.api(), f.ID, credentials(identifier, "wrong", ""), nil)
			assert.Equal(t, http.StatusBadRequest, r.status, "allowed after the delay")
			r = e.submitJSON(e.api(), f.ID, credentials(identifier, "wrong", ""), nil)
			assert.Equal(t, http.StatusTooManyRequests, r.status)
			assert.Equal(t, "2", r.header.Get("Retry-After"), "the delay doubles")
		})
	}
}

func TestThrottleFormsGetTheFlowMessage(t *testing.T) {
	e, _ := throttleEnv(t)
	c := e.browser()
	f := e.browserFlow(c, "")
	form := func(pw string) url.Values {
		return url.Values{"method": {"password"}, "identifier": {testIdentifier}, "password": {pw}, "csrf_token": {csrfToken(f)}}
	}
	for range 5 {
		require.Equal(t, http.StatusSeeOther, e.submitForm(c, f.ID, form("wrong"), nil).status)
	}
	r := e.submitForm(c, f.ID, form("wrong"), nil)
	require.Equal(t, http.StatusSeeOther, r.status)
	assert.Equal(t, loginUI+"?flow="+f.ID, r.header.Get("Location"))
	got := e.do(c, http.MethodGet, "/self-service/login/flows?id="+f.ID, nil, nil).flow(t)
	require.Len(t, got.UI.Messages, 1)
	m := got.UI.Messages[0]
	assert.Equal(t, flow.IDTooManyAttempts, m.ID)
	assert.Equal(t, "Too many failed attempts. Please try again in 1 seconds.", m.Text)
	assert.EqualValues(t, 1, m.Context["retry_after_seconds"])
}

func TestThrottleCountsOnlyWrongCredentials(t *testing.T) {
	e, _ := throttleEnv(t)
	f := e.apiFlow("")
	for range 10 {
		r := e.submitJSON(e.api(), f.ID, map[string]any{"method": "password", "identifier": testIdentifier}, nil)
		require.Equal(t, http.StatusBadRequest, r.status, "missing password")
	}
	for range 4 {
		require.Equal(t, http.StatusBadRequest, e.submitJSON(e.api(), f.ID, credentials(testIdentifier, "wrong", ""), nil).status)
	}
	r := e.submitJSON(e.api(), f.ID, credentials(testIdentifier, testPassword, ""), nil)
	assert.Equal(t, http.StatusOK, r.status, "validation errors did not count: %s", r.body)
}

func TestThrottleSuccessResets(t *testing.T) {
	e, _ := throttleEnv(t)
	for range 4 {
		require.Equal(t, http.StatusBadRequest, e.submitJSON(e.api(), e.apiFlow("").ID, credentials(testIdentifier, "wrong", ""), nil).status)
	}
	require.Equal(t, http.StatusOK, e.submitJSON(e.api(), e.apiFlow("").ID, credentials(testIdentifier, testPassword, ""), nil).status)
	f := e.apiFlow("")
	for i := range 5 {
		assert.Equal(t, http.StatusBadRequest, e.submitJSON(e.api(), f.ID, credentials(testIdentifier, "wrong", ""), nil).status, "failure %d after the reset", i+1)
	}
}

func TestThrottleSprayCannotLockOutTheOwner(t *testing.T) {
	e := newEnv(t, func(c *login.Config) {
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
		c.Limiter = login.NewMemoryLimiter(login.Limits{Now: c.Now})
	})
	from := func(ip string) map[string]string { return map[string]string{"X-Forwarded-For": ip} }
	owner := from("192.0.2.10")
	require.Equal(t, http.StatusOK, e.submitJSON(e.api(), e.apiFlow("").ID, credentials(testIdentifier, testPassword, ""), owner).status)

	f := e.apiFlow("")
	for i := range 100 {
		r := e.submitJSON(e.api(), f.ID, credentials(testIdentifier, "guess", ""), from("203.0.113."+strconv.Itoa(i)))
		require.Equal(t, http.StatusBadRequest, r.status, "guess %d", i)
	}
	r := e.submitJSON(e.api(), f.ID, credentials(testIdentifier, "guess", ""), from("198.51.100.1"))
	assert.Equal(t, http.StatusTooManyRequests, r.status, "the identifier is capped at 100 failures an hour")
	assert.Equal(t, "3600", r.header.Get("Retry-After"))

	r = e.submitJSON(e.api(), f.ID, credentials(testIdentifier, testPassword, ""), owner)
	assert.Equal(t, http.StatusOK, r.status, "the owner's usual address still logs in: %s", r.body)
}

func TestThrottleCanBeDisabled(t *testing.T) {
	e := newEnv(t, func(c *login.Config) { c.DisableThrottling = true })
	f := e.apiFlow("")
	for range 20 {
		require.Equal(t, http.StatusBadRequest, e.submitJSON(e.api(), f.ID, credentials(testIdentifier, "wrong", ""), nil).status)
	}
	assert.Equal(t, http.StatusOK, e.submitJSON(e.api(), f.ID, credentials(testIdentifier, testPassword, ""), nil).status)
}
