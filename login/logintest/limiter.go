package logintest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/internal/testclock"
	"github.com/authflow/authflow/login"
)

// TestLimiter runs the conformance suite of [login.Limiter]. newLimiter is
// called for every subtest with the limits to apply, whose Now is the
// suite's clock; it must return a limiter with no history that reads time
// only from limits.Now.
//
// Besides the rules documented on [login.Limits] (free failures, the
// doubling and capped delay, the window, the per-identifier cap and the
// trusted addresses), the suite checks that Reserve decides and counts
// atomically: of many concurrent reservations on one key exactly as many
// get through as would one after another, so that a burst of parallel
// guesses costs as much as the same guesses in a row.
func TestLimiter(t *testing.T, newLimiter func(t *testing.T, limits login.Limits) login.Limiter) {
	t.Helper()
	for _, st := range limiterTests {
		t.Run(st.name, func(t *testing.T) {
			c := testclock.New(time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC))
			limits := st.limits
			limits.Now = c.Now
			l := newLimiter(t, limits)
			require.NotNil(t, l, "newLimiter returned nil")
			st.test(t, &limiterRun{l: l, clock: c})
		})
	}
}

var limiterTests = []struct {
	name   string
	limits login.Limits
	test   func(t *testing.T, r *limiterRun)
}{
	{"free failures then a doubling delay", login.Limits{}, testLimiterDoublingDelay},
	{"a refused reservation counts nothing", login.Limits{}, testLimiterRefusalIsFree},
	{"the delay is capped", login.Limits{}, testLimiterDelayCapped},
	{"failures are forgotten after the window", login.Limits{}, testLimiterWindow},
	{"release takes back one reservation", login.Limits{}, testLimiterRelease},
	{"success clears the failures", login.Limits{}, testLimiterSuccess},
	{"per-identifier cap spares trusted addresses", login.Limits{}, testLimiterIdentifierCap},
	{"concurrent reservations on one key get the free attempts only", login.Limits{}, testLimiterConcurrentPair},
	{"concurrent reservations from many addresses respect the identifier cap", login.Limits{IdentifierFailures: 10}, testLimiterConcurrentIdentifier},
}

// limiterRun is a limiter under test with its clock.
type limiterRun struct {
	l     login.Limiter
	clock *testclock.Clock
}

// reserve calls Reserve and returns the wait.
func (r *limiterRun) reserve(t testing.TB, k login.LimitKey) time.Duration {
	t.Helper()
	d, err := r.l.Reserve(t.Context(), k)
	require.NoError(t, err, "Reserve(%+v)", k)
	return d
}

// fail makes n reservations on k that must all get through (wrong
// credentials: the reservation is the failure).
func (r *limiterRun) fail(t testing.TB, k login.LimitKey, n int) {
	t.Helper()
	for i := range n {
		require.Zero(t, r.reserve(t, k), "reservation %d of %d on %+v", i+1, n, k)
	}
}

var (
	alice       = login.LimitKey{Identifier: "alice@example.com", ClientIP: "192.0.2.1"}
	aliceElse   = login.LimitKey{Identifier: "alice@example.com", ClientIP: "198.51.100.7"}
	bobSameAddr = login.LimitKey{Identifier: "bob@example.com", ClientIP: "192.0.2.1"}
)

func testLimiterDoublingDelay(t *testing.T, r *limiterRun) {
	r.fail(t, alice, 5)
	for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second} {
		assert.Equal(t, want, r.reserve(t, alice), "wait after %d failures", 5+i)
		r.clock.Advance(want - time.Millisecond)
		assert.Equal(t, time.Millisecond, r.reserve(t, alice), "a millisecond before the delay ends")
		r.clock.Advance(time.Millisecond)
		assert.Zero(t, r.reserve(t, alice), "allowed once the delay passed")
	}
	assert.Zero(t, r.reserve(t, aliceElse), "another address has its own count")
	assert.Zero(t, r.reserve(t, bobSameAddr), "another identifier has its own count")
}

func testLimiterRefusalIsFree(t *testing.T, r *limiterRun) {
	r.fail(t, alice, 5)
	for range 20 {
		assert.Equal(t, time.Second, r.reserve(t, alice), "refused reservations do not lengthen the delay")
	}
	r.clock.Advance(time.Second)
	assert.Zero(t, r.reserve(t, alice), "the sixth attempt after the delay")
	assert.Equal(t, 2*time.Second, r.reserve(t, alice), "then the delay doubles once")
}

func testLimiterDelayCapped(t *testing.T, r *limiterRun) {
	r.fail(t, alice, 5)
	for range 40 {
		d := r.reserve(t, alice)
		require.Positive(t, d)
		r.clock.Advance(d)
		require.Zero(t, r.reserve(t, alice))
	}
	assert.Equal(t, 15*time.Minute, r.reserve(t, alice), "the delay stops at Limits.MaxDelay")
	r.clock.Advance(15 * time.Minute)
	assert.Zero(t, r.reserve(t, alice))
}

func testLimiterWindow(t *testing.T, r *limiterRun) {
	r.fail(t, alice, 5)
	r.clock.Advance(time.Second)
	r.fail(t, alice, 1)
	assert.Equal(t, 2*time.Second, r.reserve(t, alice))
	r.clock.Advance(15*time.Minute + 2*time.Second - time.Millisecond)
	assert.Zero(t, r.reserve(t, alice), "a reservation inside the window is allowed once the delay passed")
	r.clock.Advance(15*time.Minute + 4*time.Second)
	r.fail(t, alice, 5)
	assert.Equal(t, time.Second, r.reserve(t, alice), "forgotten: five new free failures, then the first delay")
}

func testLimiterRelease(t *testing.T, r *limiterRun) {
	r.fail(t, alice, 5)
	require.NoError(t, r.l.Release(t.Context(), alice))
	assert.Zero(t, r.reserve(t, alice), "the released reservation is free again")
	assert.Equal(t, time.Second, r.reserve(t, alice))

	// Releases take back the identifier's count too.
	l := r.l
	for i := range 10 {
		k := login.LimitKey{Identifier: "carol@example.com", ClientIP: fmt.Sprintf("203.0.113.%d", i)}
		require.Zero(t, r.reserve(t, k))
		require.NoError(t, l.Release(t.Context(), k))
	}
	for i := range 100 {
		k := login.LimitKey{Identifier: "carol@example.com", ClientIP: fmt.Sprintf("198.51.100.%d", i)}
		require.Zero(t, r.reserve(t, k), "identifier failure %d: released reservations did not count", i+1)
	}
	assert.Positive(t, r.reserve(t, login.LimitKey{Identifier: "carol@example.com", ClientIP: "192.0.2.99"}), "the 101st counted failure waits")
}

func testLimiterSuccess(t *testing.T, r *limiterRun) {
	r.fail(t, alice, 5)
	assert.Equal(t, time.Second, r.reserve(t, alice))
	r.clock.Advance(time.Second)
	require.Zero(t, r.reserve(t, alice), "the login's own reservation")
	require.NoError(t, r.l.Success(t.Context(), alice))
	r.fail(t, alice, 5)
	assert.Equal(t, time.Second, r.reserve(t, alice), "five free failures again after a success")

	// A login's reservation is taken back from the identifier's count as
	// well: 99 failures and a login leave one failure before the cap.
	carol := login.LimitKey{Identifier: "carol@example.com", ClientIP: "192.0.2.50"}
	for i := range 99 {
		r.fail(t, login.LimitKey{Identifier: carol.Identifier, ClientIP: fmt.Sprintf("203.0.113.%d", i)}, 1)
	}
	require.Zero(t, r.reserve(t, carol))
	require.NoError(t, r.l.Success(t.Context(), carol))
	last := login.LimitKey{Identifier: carol.Identifier, ClientIP: "198.51.100.1"}
	assert.Zero(t, r.reserve(t, last), "the 100th failure is still free")
	assert.Equal(t, time.Hour, r.reserve(t, login.LimitKey{Identifier: carol.Identifier, ClientIP: "198.51.100.2"}), "the 101st waits")
}

func testLimiterIdentifierCap(t *testing.T, r *limiterRun) {
	owner := alice
	require.NoError(t, r.l.Success(t.Context(), owner))
	r.clock.Advance(24 * time.Hour)
	// An attacker sprays from 100 addresses, one guess each.
	for i := range 100 {
		r.fail(t, login.LimitKey{Identifier: owner.Identifier, ClientIP: fmt.Sprintf("203.0.113.%d", i)}, 1)
	}
	fresh := login.LimitKey{Identifier: owner.Identifier, ClientIP: "203.0.113.200"}
	assert.Equal(t, time.Hour, r.reserve(t, fresh), "the 101st failure in the hour waits for the window")
	assert.Zero(t, r.reserve(t, owner), "the owner's usual address is exempt")
	assert.Zero(t, r.reserve(t, login.LimitKey{Identifier: "bob@example.com", ClientIP: fresh.ClientIP}), "other identifiers are unaffected")
	r.clock.Advance(time.Hour)
	assert.Zero(t, r.reserve(t, fresh), "a new window")

	r.clock.Advance(31 * 24 * time.Hour)
	for i := range 100 {
		r.fail(t, login.LimitKey{Identifier: owner.Identifier, ClientIP: fmt.Sprintf("198.51.100.%d", i)}, 1)
	}
	assert.Equal(t, time.Hour, r.reserve(t, owner), "trust lasts Limits.TrustFor (30 days)")
}

// reserveConcurrently makes n reservations at once, key(i) for the i-th,
// and returns how many got through.
func reserveConcurrently(t *testing.T, l login.Limiter, n int, key func(i int) login.LimitKey) int {
	t.Helper()
	waits := make([]time.Duration, n)
	errs := concurrently(n, func(i int) error {
		var err error
		waits[i], err = l.Reserve(context.WithoutCancel(t.Context()), key(i))
		return err
	})
	through := 0
	for i, err := range errs {
		require.NoError(t, err, "Reserve %d", i)
		if waits[i] == 0 {
			through++
		}
	}
	return through
}

func testLimiterConcurrentPair(t *testing.T, r *limiterRun) {
	const n = 60
	through := reserveConcurrently(t, r.l, n, func(int) login.LimitKey { return alice })
	assert.Equal(t, 5, through, "of %d concurrent reservations on one key, exactly the free ones get through", n)
	assert.Equal(t, time.Second, r.reserve(t, alice), "the refused ones counted nothing")
}

func testLimiterConcurrentIdentifier(t *testing.T, r *limiterRun) {
	const n = 60
	through := reserveConcurrently(t, r.l, n, func(i int) login.LimitKey {
		return login.LimitKey{Identifier: "alice@example.com", ClientIP: fmt.Sprintf("203.0.113.%d", i)}
	})
	assert.Equal(t, 10, through, "of %d concurrent reservations from %d addresses, exactly the identifier's cap gets through", n, n)
}
