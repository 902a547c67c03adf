package login

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type limiterClock struct{ t time.Time }

func (c *limiterClock) now() time.Time { return c.t }

func newTestLimiter(limits Limits) (*MemoryLimiter, *limiterClock) {
	c := &limiterClock{t: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}
	limits.Now = c.now
	return NewMemoryLimiter(limits), c
}

func check(t *testing.T, l *MemoryLimiter, k LimitKey) time.Duration {
	t.Helper()
	d, err := l.Check(context.Background(), k)
	require.NoError(t, err)
	return d
}

func TestLimiterFreeFailuresThenDoublingDelay(t *testing.T) {
	l, c := newTestLimiter(Limits{})
	k := LimitKey{Identifier: "alice@example.com", ClientIP: "192.0.2.1"}
	for i := range 5 {
		assert.Zero(t, check(t, l, k), "attempt %d is free", i+1)
		require.NoError(t, l.Failure(context.Background(), k))
	}
	for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second} {
		assert.Equal(t, want, check(t, l, k), "wait after %d failures", 5+i)
		c.t = c.t.Add(want)
		assert.Zero(t, check(t, l, k), "allowed once the delay passed")
		require.NoError(t, l.Failure(context.Background(), k))
	}
	other := LimitKey{Identifier: "alice@example.com", ClientIP: "198.51.100.7"}
	assert.Zero(t, check(t, l, other), "another address has its own count")

	require.NoError(t, l.Success(context.Background(), k))
	assert.Zero(t, check(t, l, k), "a success resets the count")
}

func TestLimiterDelayIsCapped(t *testing.T) {
	l, c := newTestLimiter(Limits{})
	k := LimitKey{Identifier: "alice@example.com", ClientIP: "192.0.2.1"}
	for range 40 {
		require.NoError(t, l.Failure(context.Background(), k))
	}
	assert.Equal(t, 15*time.Minute, check(t, l, k))
	c.t = c.t.Add(15 * time.Minute)
	assert.Zero(t, check(t, l, k))
}

func TestLimiterForgetsAfterTheWindow(t *testing.T) {
	l, c := newTestLimiter(Limits{})
	k := LimitKey{Identifier: "alice@example.com", ClientIP: "192.0.2.1"}
	for range 6 {
		require.NoError(t, l.Failure(context.Background(), k))
	}
	assert.Equal(t, 2*time.Second, check(t, l, k))
	c.t = c.t.Add(15*time.Minute + 2*time.Second)
	assert.Zero(t, check(t, l, k))
	for range 5 {
		require.NoError(t, l.Failure(context.Background(), k))
	}
	assert.Equal(t, time.Second, check(t, l, k), "five new free failures, then the delay again")
}

func TestLimiterCapsFailuresPerIdentifierExceptTrustedAddresses(t *testing.T) {
	l, c := newTestLimiter(Limits{})
	owner := LimitKey{Identifier: "alice@example.com", ClientIP: "192.0.2.1"}
	require.NoError(t, l.Success(context.Background(), owner))
	c.t = c.t.Add(24 * time.Hour)

	// An attacker sprays from 100 addresses, one guess each.
	for i := range 100 {
		k := LimitKey{Identifier: "alice@example.com", ClientIP: fmt.Sprintf("203.0.113.%d", i)}
		require.Zero(t, check(t, l, k), "guess %d", i)
		require.NoError(t, l.Failure(context.Background(), k))
	}
	fresh := LimitKey{Identifier: "alice@example.com", ClientIP: "203.0.113.200"}
	assert.Equal(t, time.Hour, check(t, l, fresh), "the 101st failure in the hour waits for the window")
	assert.Zero(t, check(t, l, owner), "the owner's usual address is exempt")
	assert.Zero(t, check(t, l, LimitKey{Identifier: "bob@example.com", ClientIP: "203.0.113.200"}), "other identifiers are unaffected")

	c.t = c.t.Add(time.Hour)
	assert.Zero(t, check(t, l, fresh), "a new window")

	c.t = c.t.Add(31 * 24 * time.Hour)
	for i := range 100 {
		require.NoError(t, l.Failure(context.Background(), LimitKey{Identifier: "alice@example.com", ClientIP: fmt.Sprintf("203.0.113.%d", i)}))
	}
	assert.Equal(t, time.Hour, check(t, l, owner), "trust lasts 30 days")
}

func TestLimiterMemoryIsBounded(t *testing.T) {
	l, _ := newTestLimiter(Limits{MaxEntries: 100})
	for i := range 10_000 {
		k := LimitKey{Identifier: fmt.Sprintf("invented-%d@example.com", i), ClientIP: "203.0.113.1"}
		require.NoError(t, l.Failure(context.Background(), k))
		if i%3 == 0 {
			require.NoError(t, l.Success(context.Background(), k))
		}
	}
	assert.LessOrEqual(t, l.pairs.len(), 100)
	assert.LessOrEqual(t, l.identifiers.len(), 100)
	assert.LessOrEqual(t, l.trusted.len(), 100)
	assert.Equal(t, l.pairs.len(), l.pairs.order.Len(), "the map and the recency list agree")
}
