package pgstore_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/pgstore"
)

// testClock is an adjustable clock, safe for concurrent use.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTestClock() *testClock { return &testClock{t: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// newTestLimiter returns a Limiter on a fresh schema with a test clock.
func newTestLimiter(t *testing.T, limits login.Limits) (*pgstore.Limiter, *testClock, *pgxpool.Pool) {
	t.Helper()
	_, pool := newStore(t)
	c := newTestClock()
	limits.Now = c.Now
	return pgstore.NewLimiter(pool, limits), c, pool
}

func check(t *testing.T, l login.Limiter, k login.LimitKey) time.Duration {
	t.Helper()
	d, err := l.Check(context.Background(), k)
	require.NoError(t, err)
	return d
}

// The cases of login's limiter_internal_test.go, on PostgreSQL.

func TestLimiterFreeFailuresThenDoublingDelay(t *testing.T) {
	l, c, _ := newTestLimiter(t, login.Limits{})
	k := login.LimitKey{Identifier: "alice@example.com", ClientIP: "192.0.2.1"}
	for i := range 5 {
		assert.Zero(t, check(t, l, k), "attempt %d is free", i+1)
		require.NoError(t, l.Failure(context.Background(), k))
	}
	for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second} {
		assert.Equal(t, want, check(t, l, k), "wait after %d failures", 5+i)
		c.Advance(want)
		assert.Zero(t, check(t, l, k), "allowed once the delay passed")
		require.NoError(t, l.Failure(context.Background(), k))
	}
	other := login.LimitKey{Identifier: "alice@example.com", ClientIP: "198.51.100.7"}
	assert.Zero(t, check(t, l, other), "another address has its own count")

	require.NoError(t, l.Success(context.Background(), k))
	assert.Zero(t, check(t, l, k), "a success resets the count")
}

func TestLimiterDelayIsCapped(t *testing.T) {
	l, c, _ := newTestLimiter(t, login.Limits{})
	k := login.LimitKey{Identifier: "alice@example.com", ClientIP: "192.0.2.1"}
	for range 40 {
		require.NoError(t, l.Failure(context.Background(), k))
	}
	assert.Equal(t, 15*time.Minute, check(t, l, k))
	c.Advance(15 * time.Minute)
	assert.Zero(t, check(t, l, k))
}

func TestLimiterForgetsAfterTheWindow(t *testing.T) {
	l, c, _ := newTestLimiter(t, login.Limits{})
	k := login.LimitKey{Identifier: "alice@example.com", ClientIP: "192.0.2.1"}
	for range 6 {
		require.NoError(t, l.Failure(context.Background(), k))
	}
	assert.Equal(t, 2*time.Second, check(t, l, k))
	c.Advance(15*time.Minute + 2*time.Second)
	assert.Zero(t, check(t, l, k))
	for range 5 {
		require.NoError(t, l.Failure(context.Background(), k))
	}
	assert.Equal(t, time.Second, check(t, l, k), "five new free failures, then the delay again")
}

func TestLimiterCapsFailuresPerIdentifierExceptTrustedAddresses(t *testing.T) {
	l, c, _ := newTestLimiter(t, login.Limits{})
	owner := login.LimitKey{Identifier: "alice@example.com", ClientIP: "192.0.2.1"}
	require.NoError(t, l.Success(context.Background(), owner))
	c.Advance(24 * time.Hour)

	// An attacker sprays from 100 addresses, one guess each.
	for i := range 100 {
		k := login.LimitKey{Identifier: "alice@example.com", ClientIP: fmt.Sprintf("203.0.113.%d", i)}
		require.Zero(t, check(t, l, k), "guess %d", i)
		require.NoError(t, l.Failure(context.Background(), k))
	}
	fresh := login.LimitKey{Identifier: "alice@example.com", ClientIP: "203.0.113.200"}
	assert.Equal(t, time.Hour, check(t, l, fresh), "the 101st failure in the hour waits for the window")
	assert.Zero(t, check(t, l, owner), "the owner's usual address is exempt")
	assert.Zero(t, check(t, l, login.LimitKey{Identifier: "bob@example.com", ClientIP: "203.0.113.200"}), "other identifiers are unaffected")

	c.Advance(time.Hour)
	assert.Zero(t, check(t, l, fresh), "a new window")

	c.Advance(31 * 24 * time.Hour)
	for i := range 100 {
		require.NoError(t, l.Failure(context.Background(), login.LimitKey{Identifier: "alice@example.com", ClientIP: fmt.Sprintf("203.0.113.%d", i)}))
	}
	assert.Equal(t, time.Hour, check(t, l, owner), "trust lasts 30 days")
}

// In place of the memory limiter's LRU bound: rows that no longer matter
// are swept, and the ones that do are kept.
func TestLimiterRowsAreSwept(t *testing.T) {
	st, pool := newStore(t)
	c := newTestClock()
	l := pgstore.NewLimiter(pool, login.Limits{Now: c.Now})
	ctx := context.Background()
	for i := range 300 {
		k := login.LimitKey{Identifier: fmt.Sprintf("invented-%d@example.com", i), ClientIP: "203.0.113.1"}
		require.NoError(t, l.Failure(ctx, k))
		if i%3 == 0 {
			require.NoError(t, l.Success(ctx, k))
		}
	}
	blocked := login.LimitKey{Identifier: "victim@example.com", ClientIP: "203.0.113.9"}
	for range 6 {
		require.NoError(t, l.Failure(ctx, blocked))
	}
	assert.Equal(t, 200+1, count(t, pool, "authflow_limiter_pairs", ""))
	assert.Equal(t, 300+1, count(t, pool, "authflow_limiter_identifiers", ""))
	assert.Equal(t, 100, count(t, pool, "authflow_limiter_trusted", ""))

	// Within the window nothing is due.
	n, err := st.Sweep(ctx, c.Now().Add(10*time.Minute), 50)
	require.NoError(t, err)
	assert.Zero(t, n)

	// After the identifier window and the pair's window plus the longest
	// delay, only the trust remains.
	c.Advance(time.Hour)
	n, err = st.Sweep(ctx, c.Now(), 50)
	require.NoError(t, err)
	assert.Equal(t, 201+301, n)
	assert.Equal(t, 100, count(t, pool, "authflow_limiter_trusted", ""))
	assert.Zero(t, check(t, l, blocked))

	c.Advance(30 * 24 * time.Hour)
	n, err = st.Sweep(ctx, c.Now(), 50)
	require.NoError(t, err)
	assert.Equal(t, 100, n)
}

// Concurrent failures on one key, from many goroutines (as from many
// instances), all count.
func TestLimiterConcurrentFailuresCountExactly(t *testing.T) {
	l, _, pool := newTestLimiter(t, login.Limits{IdentifierFailures: 1000})
	const n = 100
	k := login.LimitKey{Identifier: "alice@example.com", ClientIP: "192.0.2.1"}
	others := make([]*pgstore.Limiter, 4)
	for i := range others {
		// Other instances: their own pools on the same schema.
		var schema string
		require.NoError(t, pool.QueryRow(context.Background(), "SELECT current_schema()").Scan(&schema))
		others[i] = pgstore.NewLimiter(newPool(t, schema), login.Limits{IdentifierFailures: 1000, Now: newTestClock().Now})
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make([]error, n)
	for i := range n {
		lim := others[i%len(others)]
		key := k
		if i%2 == 1 {
			key.ClientIP = fmt.Sprintf("198.51.100.%d", i) // the identifier's count gets these too
		}
		wg.Go(func() {
			<-start
			errs[i] = lim.Failure(context.Background(), key)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "Failure %d", i)
	}
	var pairFailures, identifierFailures int
	require.NoError(t, pool.QueryRow(context.Background(),
		"SELECT failures FROM authflow_limiter_pairs WHERE identifier = $1 AND client_ip = $2", k.Identifier, k.ClientIP).Scan(&pairFailures))
	require.NoError(t, pool.QueryRow(context.Background(),
		"SELECT failures FROM authflow_limiter_identifiers WHERE identifier = $1", k.Identifier).Scan(&identifierFailures))
	assert.Equal(t, n/2, pairFailures, "failures of the pair")
	assert.Equal(t, n, identifierFailures, "failures of the identifier")
	// 50 failures: 45 beyond the free ones, so the delay is capped.
	assert.Equal(t, 15*time.Minute, check(t, l, k))
}

// A random history of failures, successes, checks and clock advances gets
// the same answers from the PostgreSQL limiter as from login's
// MemoryLimiter.
func TestLimiterAgreesWithMemoryLimiter(t *testing.T) {
	limits := login.Limits{FreeFailures: 3, Window: 10 * time.Minute, MaxDelay: 5 * time.Minute, IdentifierFailures: 12, IdentifierWindow: 30 * time.Minute, TrustFor: 2 * time.Hour}
	pg, c, _ := newTestLimiter(t, limits)
	limits.Now = c.Now
	mem := login.NewMemoryLimiter(limits)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	identifiers := []string{"alice@example.com", "bob@example.com"}
	ips := []string{"192.0.2.1", "192.0.2.2", "198.51.100.3", "203.0.113.4", "2001:db8::5"}
	steps := []time.Duration{0, time.Millisecond, 999 * time.Millisecond, time.Second, 7 * time.Second, time.Minute, 4 * time.Minute, 11 * time.Minute, 31 * time.Minute, 2 * time.Hour}
	waits := map[bool]int{}
	for i := range 1500 {
		k := login.LimitKey{Identifier: identifiers[rng.IntN(len(identifiers))], ClientIP: ips[rng.IntN(len(ips))]}
		switch r := rng.IntN(100); {
		case r < 55:
			require.NoError(t, mem.Failure(ctx, k))
			require.NoError(t, pg.Failure(ctx, k))
		case r < 60:
			require.NoError(t, mem.Success(ctx, k))
			require.NoError(t, pg.Success(ctx, k))
		case r < 80:
			c.Advance(steps[rng.IntN(len(steps))])
		}
		want := check(t, mem, k)
		if got := check(t, pg, k); !assert.Equal(t, want, got, "step %d, %+v at %s", i, k, c.Now()) {
			return
		}
		waits[want > 0]++
	}
	t.Logf("checks: %d with a wait, %d without", waits[true], waits[false])
	assert.Greater(t, waits[true], 150, "the history throttles often")
	assert.Greater(t, waits[false], 300, "and often does not")
}
