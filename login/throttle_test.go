package login_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	autherrors "github.com/authflow/authflow/errors"
	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/session"
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

// slowHasher counts comparisons and makes each take delay, so that
// concurrent attempts overlap as they do with a real password hash.
type slowHasher struct {
	countingHasher
	delay time.Duration
}

func (h *slowHasher) Compare(ctx context.Context, p []byte, enc string) error {
	time.Sleep(h.delay)
	return h.countingHasher.Compare(ctx, p, enc)
}

// The review's reproduction: 60 parallel wrong passwords for one
// identifier from one address, with a 50 ms hash. A limiter that is only
// asked before the hash and told after it let every one of them be
// verified; a reservation lets through exactly the free attempts, as 60
// guesses in a row would.
func TestThrottleHoldsUnderParallelGuesses(t *testing.T) {
	hasher := &slowHasher{delay: 50 * time.Millisecond}
	e := newEnv(t, func(c *login.Config) {
		hasher.inner = c.Hasher
		c.Hasher = hasher
		c.Limiter = login.NewMemoryLimiter(login.Limits{Now: c.Now})
		c.MaxConcurrentHashes = 60 // hashing is not what holds them back
	})
	const n = 60
	statuses := make([]int, n)
	bodies := make([][]byte, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		f := e.apiFlow("") // one flow each: nothing but the limiter serialises them
		wg.Go(func() {
			<-start
			r := e.submitJSON(e.api(), f.ID, credentials(testIdentifier, "wrong", ""), nil)
			statuses[i], bodies[i] = r.status, r.body
		})
	}
	close(start)
	wg.Wait()

	count := map[int]int{}
	for i, s := range statuses {
		count[s]++
		if s == http.StatusBadRequest {
			assert.Contains(t, string(bodies[i]), `"id":4000006`, "a verified guess is answered as wrong credentials")
		}
	}
	assert.Equal(t, map[int]int{http.StatusBadRequest: 5, http.StatusTooManyRequests: n - 5}, count)
	assert.Equal(t, 5, hasher.count(), "hashes computed: only the free attempts")

	// The refusals counted nothing: after the first delay one more guess
	// is verified, then the doubled delay applies.
	e.clock.Advance(time.Second)
	assert.Equal(t, http.StatusBadRequest, e.submitJSON(e.api(), e.apiFlow("").ID, credentials(testIdentifier, "wrong", ""), nil).status)
	r := e.submitJSON(e.api(), e.apiFlow("").ID, credentials(testIdentifier, testPassword, ""), nil)
	assert.Equal(t, http.StatusTooManyRequests, r.status)
	assert.Equal(t, "2", r.header.Get("Retry-After"))
}

// An attempt that reaches no verdict because a store fails does not count;
// a right password after four failures clears them and is not counted
// either.
func TestThrottleReleasesAttemptsWithoutVerdict(t *testing.T) {
	var failFind atomic.Bool
	e := newEnv(t, func(c *login.Config) {
		c.Limiter = login.NewMemoryLimiter(login.Limits{Now: c.Now})
		c.IdentityStore = &failingFindStore{MemoryIdentityStore: c.IdentityStore.(*session.MemoryIdentityStore), fail: &failFind}
	})
	f := e.apiFlow("")
	failFind.Store(true)
	for i := range 10 {
		r := e.submitJSON(e.api(), f.ID, credentials(testIdentifier, "wrong", ""), nil)
		require.Equal(t, http.StatusInternalServerError, r.status, "attempt %d during the outage", i+1)
	}
	failFind.Store(false)
	for i := range 5 {
		require.Equal(t, http.StatusBadRequest, e.submitJSON(e.api(), f.ID, credentials(testIdentifier, "wrong", ""), nil).status,
			"failure %d: the outage's attempts were released", i+1)
	}
	assert.Equal(t, http.StatusTooManyRequests, e.submitJSON(e.api(), f.ID, credentials(testIdentifier, "wrong", ""), nil).status)
}

// failingFindStore fails FindIdentity while fail is set.
type failingFindStore struct {
	*session.MemoryIdentityStore
	fail *atomic.Bool
}

func (s *failingFindStore) FindIdentity(ctx context.Context, typ session.CredentialType, identifier string) (*session.Identity, *session.Credential, error) {
	if s.fail.Load() {
		return nil, nil, errors.New("identity store unavailable")
	}
	return s.MemoryIdentityStore.FindIdentity(ctx, typ, identifier)
}

// The review's reproduction: rotating through 20 addresses of one IPv6 /64
// gave 100 free guesses. Clients are counted by /64; IPv4 addresses, and
// IPv4-mapped IPv6 ones, by address.
func TestThrottleCountsIPv6ByNetwork(t *testing.T) {
	e := newEnv(t, func(c *login.Config) {
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
		c.Limiter = login.NewMemoryLimiter(login.Limits{Now: c.Now})
	})
	from := func(ip string) map[string]string { return map[string]string{"X-Forwarded-For": ip} }
	guess := func(ip string) int {
		return e.submitJSON(e.api(), e.apiFlow("").ID, credentials(testIdentifier, "wrong", ""), from(ip)).status
	}
	verified := 0
	for i := range 20 {
		if guess(fmt.Sprintf("2001:db8:1:2:%x::%x", i, i+1)) == http.StatusBadRequest {
			verified++
		}
	}
	assert.Equal(t, 5, verified, "20 addresses of one /64 share its 5 free failures")
	assert.Equal(t, http.StatusTooManyRequests, guess("2001:db8:1:2:ffff:ffff:ffff:ffff"), "the whole /64")
	assert.Equal(t, http.StatusBadRequest, guess("2001:db8:1:3::1"), "the next /64 has its own count")

	for i := range 5 {
		require.Equal(t, http.StatusBadRequest, guess("192.0.2.7"), "IPv4 failure %d", i+1)
	}
	assert.Equal(t, http.StatusTooManyRequests, guess("::ffff:192.0.2.7"), "an IPv4-mapped address is its IPv4 address")
	assert.Equal(t, http.StatusBadRequest, guess("192.0.2.8"), "the neighbouring IPv4 address has its own count")
}
