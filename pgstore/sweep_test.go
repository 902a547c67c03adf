package pgstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/internal/uuid"
	"github.com/authflow/authflow/pgstore"
	"github.com/authflow/authflow/session"
)

// sweepFixture stores, relative to now: 5 flows and 3 errors past
// retention, 4 expired sessions (due), and one row of each kind that is not
// due yet. It returns the ids that must survive.
func sweepFixture(t *testing.T, st *pgstore.Store, now time.Time) (keepFlows, keepErrors, keepSessions []string) {
	t.Helper()
	ctx := context.Background()
	newFlow := func(expires time.Time) string {
		rec := testFlow(expires.Add(-time.Hour))
		require.NoError(t, st.CreateFlow(ctx, rec))
		return rec.Flow.ID
	}
	newError := func(created time.Time) string {
		id := uuid.New()
		require.NoError(t, st.CreateError(ctx, &flow.ErrorRecord{ID: id, Error: json.RawMessage(`{"code":403}`), CreatedAt: created, UpdatedAt: created}))
		return id
	}
	newSession := func(expires time.Time) string {
		s := testSession(uuid.New(), expires.Add(-24*time.Hour))
		require.NoError(t, st.CreateSession(ctx, s))
		return s.Session.ID
	}
	for i := range 5 {
		newFlow(now.Add(-flow.Retention - time.Duration(i+1)*time.Minute))
	}
	for i := range 3 {
		newError(now.Add(-flow.Retention - time.Duration(i+1)*time.Second))
	}
	for i := range 4 {
		newSession(now.Add(-time.Duration(i) * time.Hour)) // expiring exactly at now is due
	}
	keepFlows = []string{
		newFlow(now.Add(-flow.Retention + time.Minute)), // expired, still answered with 410
		newFlow(now.Add(time.Hour)),
	}
	keepErrors = []string{newError(now.Add(-flow.Retention + time.Second))}
	keepSessions = []string{newSession(now.Add(time.Microsecond))}
	return keepFlows, keepErrors, keepSessions
}

func TestSweepDeletesWhatIsDueInBoundedBatches(t *testing.T) {
	rt := newRoundTrips()
	st, pool := newStore(t, rt.install)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	keepFlows, keepErrors, keepSessions := sweepFixture(t, st, now)

	rt.snapshot()
	n, err := st.Sweep(ctx, now, 2)
	require.NoError(t, err)
	assert.Equal(t, 5+3+4, n)
	calls := rt.snapshot()
	assert.Equal(t, 3, calls["Sweep.flows"], "5 flows in batches of 2: 2, 2, 1")
	assert.Equal(t, 2, calls["Sweep.errors"], "3 errors: 2, 1")
	assert.Equal(t, 3, calls["Sweep.sessions"], "4 sessions: 2, 2, 0")

	assertRemaining(t, pool, "authflow_flows", keepFlows)
	assertRemaining(t, pool, "authflow_errors", keepErrors)
	assertRemaining(t, pool, "authflow_sessions", keepSessions)
	for _, id := range keepFlows {
		_, err := st.Flow(ctx, id)
		assert.NoError(t, err)
	}

	n, err = st.Sweep(ctx, now, 2)
	require.NoError(t, err)
	assert.Zero(t, n, "nothing left to do")
}

func assertRemaining(t *testing.T, pool *pgxpool.Pool, table string, want []string) {
	t.Helper()
	rows, err := pool.Query(context.Background(), "SELECT id::text FROM "+table)
	require.NoError(t, err)
	var got []string
	for rows.Next() {
		var id string
		require.NoError(t, rows.Scan(&id))
		got = append(got, id)
	}
	require.NoError(t, rows.Err())
	assert.ElementsMatch(t, want, got, table)
}

func TestSweepStopsWhenCancelled(t *testing.T) {
	rt := newRoundTrips()
	st, pool := newStore(t, rt.install)
	now := time.Now().UTC().Truncate(time.Microsecond)
	sweepFixture(t, st, now)

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	n, err := st.Sweep(cancelled, now, 2)
	assert.ErrorIs(t, err, context.Canceled)
	assert.Zero(t, n)
	assert.Equal(t, 7, count(t, pool, "authflow_flows", ""), "nothing deleted")

	// Cancelled after its first statement, it keeps what that deleted and
	// starts no other.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var statements atomic.Int32
	rt.onEnd = func(label string) {
		if len(label) > 6 && label[:6] == "Sweep." && statements.Add(1) == 1 {
			cancel()
		}
	}
	n, err = st.Sweep(ctx, now, 2)
	rt.onEnd = nil
	assert.True(t, errors.Is(err, context.Canceled), "err = %v", err)
	assert.Equal(t, 2, n)
	assert.EqualValues(t, 1, statements.Load())
	assert.Equal(t, 5, count(t, pool, "authflow_flows", ""))
	assert.Equal(t, 5, count(t, pool, "authflow_sessions", ""), "sessions untouched")

	n, err = st.Sweep(context.Background(), now, 0)
	require.NoError(t, err)
	assert.Equal(t, 3+3+4, n, "the rest")
}

func TestSweepKeepsSessionsUsable(t *testing.T) {
	st, _ := newStore(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	s := testSession(uuid.New(), now)
	require.NoError(t, st.CreateSession(ctx, s))
	_, err := st.Sweep(ctx, now.Add(23*time.Hour), 10)
	require.NoError(t, err)
	got, err := st.SessionByToken(ctx, s.TokenHash)
	require.NoError(t, err)
	assert.True(t, got.Valid(now.Add(23*time.Hour)))
	_, err = st.Sweep(ctx, now.Add(24*time.Hour), 10)
	require.NoError(t, err)
	_, err = st.SessionByToken(ctx, s.TokenHash)
	assert.ErrorIs(t, err, session.ErrNotFound)
}
