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

	"github.com/authflow/authflow/internal/testclock"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/pgstore"
)

// The rules of the limiter (free failures, delays, windows, the
// per-identifier cap, trust, atomic reservations) are checked by
// logintest.TestLimiter in TestConformance. The tests here cover what only
// the PostgreSQL limiter has: rows that are swept, instances that share
// the counters, and a randomised comparison with login.MemoryLimiter.

// testClock is the adjustable clock the PostgreSQL tests share.
type testClock = testclock.Clock

func newTestClock() *testClock { return testclock.New(time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)) }

// newTestLimiter returns a Limiter on a fresh schema with a test clock.
func newTestLimiter(t *testing.T, limits login.Limits) (*pgstore.Limiter, *testClock, *pgxpool.Pool) {
	t.Helper()
	_, pool := newStore(t)
	c := newTestClock()
	limits.Now = c.Now
	return pgstore.NewLimiter(pool, limits), c, pool
}

// reserve calls Reserve and returns the wait.
func reserve(t *testing.T, l login.Limiter, k login.LimitKey) time.Duration {
	t.Helper()
	d, err := l.Reserve(context.Background(), k)
	require.NoError(t, err)
	return d
}

// schemaOf returns the schema a pool works in.
func schemaOf(t *testing.T, pool *pgxpool.Pool) string {
	t.Helper()
	var schema string
	require.NoError(t, pool.QueryRow(context.Background(), "SELECT current_schema()").Scan(&schema))
	return schema
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
		require.Zero(t, reserve(t, l, k))
		if i%3 == 0 {
			require.NoError(t, l.Success(ctx, k))
		}
	}
	blocked := login.LimitKey{Identifier: "victim@example.com", ClientIP: "203.0.113.9"}
	for range 5 {
		require.Zero(t, reserve(t, l, blocked))
	}
	require.Equal(t, time.Second, reserve(t, l, blocked))
	c.Advance(time.Second)
	require.Zero(t, reserve(t, l, blocked), "the sixth failure")
	// A reservation released down to nothing leaves no row.
	released := login.LimitKey{Identifier: "released@example.com", ClientIP: "203.0.113.10"}
	require.Zero(t, reserve(t, l, released))
	require.NoError(t, l.Release(ctx, released))
	assert.Zero(t, count(t, pool, "authflow_limiter_pairs", "identifier = $1", released.Identifier), "the pair's row went with its last failure")

	// A refusal by the identifier's cap locks, and so creates, the pair's
	// row of a new address, but counts nothing in it: that row is due at
	// once.
	strict := pgstore.NewLimiter(pool, login.Limits{IdentifierFailures: 1, Now: c.Now})
	sprayed := login.LimitKey{Identifier: "sprayed@example.com", ClientIP: "198.51.100.1"}
	require.Zero(t, reserve(t, strict, sprayed))
	sprayed.ClientIP = "198.51.100.2"
	require.Equal(t, time.Hour, reserve(t, strict, sprayed))
	assert.Equal(t, 1, count(t, pool, "authflow_limiter_pairs", "identifier = $1 AND client_ip = $2 AND failures = 0", sprayed.Identifier, sprayed.ClientIP))

	assert.Equal(t, 200+1+2, count(t, pool, "authflow_limiter_pairs", ""))
	assert.Equal(t, 300+1+1+1, count(t, pool, "authflow_limiter_identifiers", ""))
	assert.Equal(t, 100, count(t, pool, "authflow_limiter_trusted", ""))

	// Within the window only the empty row is due.
	n, err := st.Sweep(ctx, c.Now().Add(10*time.Minute), 50)
	require.NoError(t, err)
	assert.Equal(t, 1, n, "the row without failures")
	assert.Equal(t, time.Hour, reserve(t, strict, sprayed), "its sweep changed no decision")
	n, err = st.Sweep(ctx, c.Now().Add(10*time.Minute), 50)
	require.NoError(t, err)
	assert.Equal(t, 1, n, "the empty row of that refusal again")
	assert.Equal(t, 1, count(t, pool, "authflow_limiter_pairs", "identifier = $1", sprayed.Identifier), "the counted failure stays")
	assert.Equal(t, 2*time.Second, reserve(t, l, blocked), "the blocked pair keeps its count")

	// After the identifier window and the pair's window plus the longest
	// delay, only the trust remains.
	c.Advance(time.Hour)
	n, err = st.Sweep(ctx, c.Now(), 50)
	require.NoError(t, err)
	assert.Equal(t, (200+1+1)+(300+1+1+1), n)
	assert.Equal(t, 100, count(t, pool, "authflow_limiter_trusted", ""))
	assert.Zero(t, count(t, pool, "authflow_limiter_pairs", ""))
	assert.Zero(t, count(t, pool, "authflow_limiter_identifiers", ""))
	assert.Zero(t, reserve(t, l, blocked))

	c.Advance(30 * 24 * time.Hour)
	n, err = st.Sweep(ctx, c.Now(), 50)
	require.NoError(t, err)
	assert.Equal(t, 100+2, n, "the trust, and the rows of the last reservation")
}

// Every method of the Limiter is one round trip.
func TestLimiterMethodsAreOneRoundTrip(t *testing.T) {
	rt := newRoundTrips()
	_, pool := newStore(t, rt.install, func(c *pgxpool.Config) { c.MaxConns = 1 })
	l := pgstore.NewLimiter(pool, login.Limits{})
	ctx := context.Background()
	k := login.LimitKey{Identifier: "alice@example.com", ClientIP: "192.0.2.1"}
	run := func() {
		_, err := l.Reserve(ctx, k)
		require.NoError(t, err)
		require.NoError(t, l.Release(ctx, k))
		_, err = l.Reserve(ctx, k)
		require.NoError(t, err)
		require.NoError(t, l.Success(ctx, k))
	}
	run() // statements prepared
	rt.snapshot()
	run()
	assert.Equal(t, map[string]int{"Limiter.Reserve": 2, "Limiter.Release": 1, "Limiter.Success": 1}, rt.snapshot())
}

// Concurrent reservations from several instances (each with its own pool
// and clock) count exactly as one instance's reservations in a row would,
// and so do concurrent releases.
func TestLimiterInstancesReserveExactly(t *testing.T) {
	_, pool := newStore(t)
	schema := schemaOf(t, pool)
	limits := login.Limits{IdentifierFailures: 30}
	instances := make([]*pgstore.Limiter, 4)
	for i := range instances {
		instances[i] = pgstore.NewLimiter(newPool(t, schema, func(c *pgxpool.Config) { c.MaxConns = 16 }),
			login.Limits{IdentifierFailures: limits.IdentifierFailures, Now: newTestClock().Now})
	}
	ctx := context.Background()
	k := login.LimitKey{Identifier: "alice@example.com", ClientIP: "192.0.2.1"}

	// all runs f(i) for i in [0, n) at once and fails on any error.
	all := func(n int, f func(i int) error) {
		t.Helper()
		errs := make([]error, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				<-start
				errs[i] = f(i)
			})
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			require.NoError(t, err, "call %d", i)
		}
	}
	pairFailures := func(k login.LimitKey) int {
		return scalar(t, pool, "SELECT coalesce(sum(failures), 0) FROM authflow_limiter_pairs WHERE identifier = $1 AND client_ip = $2", k.Identifier, k.ClientIP)
	}
	identifierFailures := func() int {
		return scalar(t, pool, "SELECT coalesce(sum(failures), 0) FROM authflow_limiter_identifiers WHERE identifier = $1", k.Identifier)
	}

	// 60 reservations on one key, over four instances: the free ones.
	const n = 60
	through := make([]bool, n)
	all(n, func(i int) error {
		d, err := instances[i%len(instances)].Reserve(ctx, k)
		through[i] = d == 0
		return err
	})
	assert.Equal(t, 5, countTrue(through), "reservations that got through")
	assert.Equal(t, 5, pairFailures(k))
	assert.Equal(t, 5, identifierFailures())

	// Their five releases, at once, take back all five.
	all(5, func(i int) error { return instances[i%len(instances)].Release(ctx, k) })
	assert.Zero(t, count(t, pool, "authflow_limiter_pairs", "identifier = $1", k.Identifier), "no pair row left")
	assert.Zero(t, identifierFailures())

	// 100 reservations: half on k, half from 50 other addresses. Whatever
	// the order, the identifier's cap of 30 is reached exactly, k gets at
	// most its free five, and the counters agree with the answers.
	through = make([]bool, 100)
	all(len(through), func(i int) error {
		key := k
		if i%2 == 1 {
			key.ClientIP = fmt.Sprintf("198.51.100.%d", i)
		}
		d, err := instances[i%len(instances)].Reserve(ctx, key)
		through[i] = d == 0
		return err
	})
	onK := 0
	for i := 0; i < len(through); i += 2 {
		if through[i] {
			onK++
		}
	}
	assert.Equal(t, 30, countTrue(through), "reservations that got through")
	assert.LessOrEqual(t, onK, 5, "through on k")
	assert.Equal(t, onK, pairFailures(k))
	assert.Equal(t, 30, identifierFailures())
	assert.Equal(t, 30, scalar(t, pool, "SELECT sum(failures) FROM authflow_limiter_pairs WHERE identifier = $1", k.Identifier), "all pairs' failures")
	assert.Equal(t, time.Hour, reserve(t, instances[0], login.LimitKey{Identifier: k.Identifier, ClientIP: "203.0.113.1"}))
}

// scalar returns the integer that sql (with args) selects.
func scalar(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

// countTrue returns how many of bs are true.
func countTrue(bs []bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

// A random history of reservations, releases, successes and clock
// advances gets the same waits, at every step, from the PostgreSQL limiter
// as from login's MemoryLimiter.
func TestLimiterAgreesWithMemoryLimiter(t *testing.T) {
	limits := login.Limits{FreeFailures: 3, Window: 10 * time.Minute, MaxDelay: 5 * time.Minute, IdentifierFailures: 12, IdentifierWindow: 30 * time.Minute, TrustFor: 2 * time.Hour}
	pg, c, _ := newTestLimiter(t, limits)
	limits.Now = c.Now
	mem := login.NewMemoryLimiter(limits)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	identifiers := []string{"alice@example.com", "bob@example.com"}
	ips := []string{"192.0.2.1", "192.0.2.2", "198.51.100.3", "203.0.113.4", "2001:db8::/64"}
	steps := []time.Duration{0, time.Millisecond, 999 * time.Millisecond, time.Second, 7 * time.Second, time.Minute, 4 * time.Minute, 11 * time.Minute, 31 * time.Minute, 2 * time.Hour}
	waits := map[bool]int{}
	var released, succeeded int
	for i := range 3000 {
		k := login.LimitKey{Identifier: identifiers[rng.IntN(len(identifiers))], ClientIP: ips[rng.IntN(len(ips))]}
		switch r := rng.IntN(100); {
		case r < 8:
			require.NoError(t, mem.Release(ctx, k))
			require.NoError(t, pg.Release(ctx, k))
			released++
		case r < 12:
			require.NoError(t, mem.Success(ctx, k))
			require.NoError(t, pg.Success(ctx, k))
			succeeded++
		case r < 30:
			c.Advance(steps[rng.IntN(len(steps))])
		default:
			want := reserve(t, mem, k)
			if got := reserve(t, pg, k); !assert.Equal(t, want, got, "step %d, Reserve(%+v) at %s", i, k, c.Now()) {
				return
			}
			waits[want > 0]++
		}
	}
	t.Logf("reservations: %d refused, %d through; %d releases, %d successes", waits[true], waits[false], released, succeeded)
	assert.Greater(t, waits[true], 300, "the history throttles often")
	assert.Greater(t, waits[false], 300, "and often does not")
}

// Reservations, releases, successes and sweeps on overlapping keys, at
// once and from several instances, never deadlock or fail: the functions
// and statements lock the pair's row before the identifier's, and a row
// deleted under a waiting reservation (by a release, a success or a sweep)
// is created again.
func TestLimiterMixedConcurrency(t *testing.T) {
	_, pool := newStore(t)
	schema := schemaOf(t, pool)
	c := newTestClock()
	limits := login.Limits{FreeFailures: 1000, IdentifierFailures: 100000, Now: c.Now}
	var instances []*pgstore.Limiter
	var stores []*pgstore.Store
	for range 3 {
		p := newPool(t, schema, func(c *pgxpool.Config) { c.MaxConns = 8 })
		instances = append(instances, pgstore.NewLimiter(p, limits))
		stores = append(stores, pgstore.New(p))
	}
	ctx := context.Background()
	keys := []login.LimitKey{
		{Identifier: "alice@example.com", ClientIP: "192.0.2.1"},
		{Identifier: "alice@example.com", ClientIP: "192.0.2.2"},
		{Identifier: "bob@example.com", ClientIP: "192.0.2.1"},
		{Identifier: "bob@example.com", ClientIP: "192.0.2.2"},
	}
	const workers, rounds = 24, 40
	errs := make(chan error, workers*rounds)
	var wg sync.WaitGroup
	for w := range workers {
		rng := rand.New(rand.NewPCG(uint64(w), 7))
		l := instances[w%len(instances)]
		st := stores[w%len(stores)]
		wg.Go(func() {
			for range rounds {
				k := keys[rng.IntN(len(keys))]
				var err error
				switch r := rng.IntN(10); {
				case r < 5:
					_, err = l.Reserve(ctx, k)
				case r < 7:
					err = l.Release(ctx, k)
				case r < 9:
					err = l.Success(ctx, k)
				default:
					// Everything is due a day later: the sweep deletes
					// rows that reservations are waiting for.
					_, err = st.Sweep(ctx, c.Now().Add(24*time.Hour), 2)
				}
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	assert.Zero(t, scalar(t, pool, "SELECT count(*) FROM authflow_limiter_pairs WHERE failures < 0"))
	assert.Zero(t, scalar(t, pool, "SELECT count(*) FROM authflow_limiter_identifiers WHERE failures < 0"))
}
