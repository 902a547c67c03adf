package login

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The rules of MemoryLimiter are checked by logintest.TestLimiter
// (TestMemoryLimiter); this file checks what only it has: bounded memory.

func TestLimiterMemoryIsBounded(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	l := NewMemoryLimiter(Limits{MaxEntries: 100, Now: func() time.Time { return now }})
	for i := range 10_000 {
		k := LimitKey{Identifier: fmt.Sprintf("invented-%d@example.com", i), ClientIP: "203.0.113.1"}
		wait, err := l.Reserve(context.Background(), k)
		require.NoError(t, err)
		require.Zero(t, wait)
		switch i % 3 {
		case 0:
			require.NoError(t, l.Success(context.Background(), k))
		case 1:
			require.NoError(t, l.Release(context.Background(), k))
		}
	}
	assert.LessOrEqual(t, l.pairs.len(), 100)
	assert.LessOrEqual(t, l.identifiers.len(), 100)
	assert.LessOrEqual(t, l.trusted.len(), 100)
	assert.Equal(t, l.pairs.len(), l.pairs.order.Len(), "the map and the recency list agree")
}
