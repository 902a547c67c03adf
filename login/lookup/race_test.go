package lookup_test

import (
	"context"
	"net/http"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/login/lookup"
	"github.com/authflow/authflow/session"
)

// stepUps signs alice in n times and creates a step-up flow for each
// session: n (token, flow) pairs ready to submit.
func (e *env) stepUps(n int) (tokens, flows []string) {
	e.t.Helper()
	for range n {
		tok := tokenOf(e.t, e.loginAPI(testEmail))
		tokens = append(tokens, tok)
		flows = append(flows, e.stepUpAPI(tok).ID)
	}
	return tokens, flows
}

// submitAll submits codes[i] with the i-th session to its flow, all at
// once, and returns the answers.
func (e *env) submitAll(tokens, flows, codes []string) []*result {
	e.t.Helper()
	results := make([]*result, len(tokens))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range tokens {
		wg.Go(func() {
			<-start
			results[i] = e.submitCode(tokens[i], flows[i], codes[i])
		})
	}
	close(start)
	wg.Wait()
	return results
}

// generousLimiter lets the concurrent submissions of one identity through:
// throttling is tested in TestThrottling.
func generousLimiter(c *login.Config) {
	c.Limiter = login.NewMemoryLimiter(login.Limits{FreeFailures: 1000})
}

// TestOneCodeOnce: CONTRACT-AAL Part 1 S2. Twenty sessions of one identity
// submit the same code at once, each on its own step-up flow: exactly one
// is stepped up, the nineteen others are told the code was used, and none
// gets a server error.
func TestOneCodeOnce(t *testing.T) {
	const n = 20
	e := newEnv(t, generousLimiter)
	tokens, flows := e.stepUps(n)
	codes := make([]string, n)
	for i := range codes {
		codes[i] = testCodes[7]
	}
	ok := 0
	for i, r := range e.submitAll(tokens, flows, codes) {
		require.Less(t, r.Status, 500, "submission %d: %s", i, r.Body)
		if r.Status == http.StatusOK {
			ok++
			continue
		}
		require.Equal(t, http.StatusBadRequest, r.Status, "submission %d: %s", i, r.Body)
		assert.Equal(t, []int{flow.IDBackupCodeUsed}, messageIDs(r.Flow(t)), "submission %d", i)
	}
	assert.Equal(t, 1, ok, "exactly one submission succeeds")
	assert.Equal(t, len(testCodes)-1, e.remaining(e.identity.ID))
}

// TestDifferentCodesAtOnce: concurrent submissions of different codes of
// one identity all succeed: a submission whose update lost to another
// code's reads the credential again and retries.
func TestDifferentCodesAtOnce(t *testing.T) {
	e := newEnv(t, generousLimiter)
	tokens, flows := e.stepUps(len(testCodes))
	for i, r := range e.submitAll(tokens, flows, testCodes) {
		assert.Equal(t, http.StatusOK, r.Status, "submission %d: %s", i, r.Body)
	}
	assert.Equal(t, 0, e.remaining(e.identity.ID))
}

// racingStore is the in-memory identity store with a hook that runs before
// each update of a lookup credential, to land a concurrent write exactly
// between the method's read and its update. The hook does not run for
// updates made while it runs; it runs on the server's goroutine, so it
// checks with assert, never require.
type racingStore struct {
	*session.MemoryIdentityStore
	before func(ctx context.Context, identityID string)

	mu      sync.Mutex
	running bool
}

func (s *racingStore) UpdateCredential(ctx context.Context, identityID string, c *session.Credential) error {
	s.mu.Lock()
	run := c.Type == session.CredentialLookup && s.before != nil && !s.running
	s.running = s.running || run
	s.mu.Unlock()
	if run {
		s.before(ctx, identityID)
		s.mu.Lock()
		s.running = false
		s.mu.Unlock()
	}
	return s.MemoryIdentityStore.UpdateCredential(ctx, identityID, c)
}

// newRacingEnv is newEnv whose identity store is a racingStore.
func newRacingEnv(t *testing.T) (*env, *racingStore) {
	rs := &racingStore{}
	e := newEnv(t, generousLimiter, func(c *login.Config) {
		rs.MemoryIdentityStore = c.IdentityStore.(*session.MemoryIdentityStore)
		c.IdentityStore = rs
	})
	return e, rs
}

// TestLostUpdate: the two outcomes of an update that loses to a
// concurrent write, made deterministic. Another session using the same
// code meanwhile: 4000012. A write that leaves the code unused (another
// code used, or the host touching the credential): the submission reads
// the credential again and succeeds.
func TestLostUpdate(t *testing.T) {
	t.Run("same code used meanwhile", func(t *testing.T) {
		e, rs := newRacingEnv(t)
		tokens, flows := e.stepUps(2)
		rs.before = func(context.Context, string) {
			r := e.submitCode(tokens[1], flows[1], testCodes[8])
			assert.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
		}
		r := e.submitCode(tokens[0], flows[0], testCodes[8])
		require.Equal(t, http.StatusBadRequest, r.Status, "body: %s", r.Body)
		assert.Equal(t, []int{flow.IDBackupCodeUsed}, messageIDs(r.Flow(t)))
		assert.Equal(t, len(testCodes)-1, e.remaining(e.identity.ID))
	})
	t.Run("another code used meanwhile", func(t *testing.T) {
		e, rs := newRacingEnv(t)
		tokens, flows := e.stepUps(2)
		var once sync.Once
		rs.before = func(context.Context, string) {
			once.Do(func() {
				r := e.submitCode(tokens[1], flows[1], testCodes[9])
				assert.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
			})
		}
		r := e.submitCode(tokens[0], flows[0], testCodes[8])
		require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
		assert.Equal(t, len(testCodes)-2, e.remaining(e.identity.ID))
	})
	t.Run("codes replaced meanwhile", func(t *testing.T) {
		e, rs := newRacingEnv(t)
		tokens, flows := e.stepUps(1)
		rs.before = func(ctx context.Context, id string) {
			c, err := lookup.NewCredential(id, []string{"replaced"})
			assert.NoError(t, err)
			c.Version = e.credential(id).Version
			assert.NoError(t, rs.MemoryIdentityStore.UpdateCredential(ctx, id, &c))
		}
		r := e.submitCode(tokens[0], flows[0], testCodes[8])
		require.Equal(t, http.StatusBadRequest, r.Status, "body: %s", r.Body)
		assert.Equal(t, []int{flow.IDBackupCodeInvalid}, messageIDs(r.Flow(t)), "an old code is no longer valid")
		assert.Equal(t, 1, e.remaining(e.identity.ID))
	})
	t.Run("endless contention", func(t *testing.T) {
		e, rs := newRacingEnv(t)
		tokens, flows := e.stepUps(1)
		writes := 0
		rs.before = func(ctx context.Context, id string) {
			writes++
			c := e.credential(id)
			assert.NoError(t, rs.MemoryIdentityStore.UpdateCredential(ctx, id, &c))
		}
		r := e.submitCode(tokens[0], flows[0], testCodes[8])
		require.Equal(t, http.StatusBadRequest, r.Status, "refused on the flow, never a 5xx; body: %s", r.Body)
		assert.Equal(t, []int{flow.IDGeneric}, messageIDs(r.Flow(t)))
		assert.Equal(t, len(testCodes)+4, writes, "retries are bounded")
		assert.Equal(t, len(testCodes), e.remaining(e.identity.ID))
	})
}
