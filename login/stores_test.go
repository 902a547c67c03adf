package login_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/login/logintest"
	"github.com/authflow/authflow/session"
)

func TestMemoryFlowStore(t *testing.T) {
	logintest.TestFlowStore(t, func(*testing.T) login.FlowStore { return flow.NewMemoryStore(nil) })
}

func TestMemorySessionStore(t *testing.T) {
	logintest.TestSessionStore(t, func(*testing.T) login.SessionStore { return session.NewMemoryStore(nil) })
}

func TestMemoryIdentityStore(t *testing.T) {
	logintest.TestIdentityStore(t, func(*testing.T) login.IdentityStore { return session.NewMemoryIdentityStore() })
}

func TestMemoryLimiter(t *testing.T) {
	logintest.TestLimiter(t, func(_ *testing.T, limits login.Limits) login.Limiter { return login.NewMemoryLimiter(limits) })
}

func TestMemoryStoreSweep(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

	// The stores' clocks stand two days before now while the records are
	// created, so nothing is due yet; Sweep(now) then finds them.
	before := now.Add(-48 * time.Hour)

	t.Run("flows and errors past retention", func(t *testing.T) {
		s := flow.NewMemoryStore(func() time.Time { return before })
		newFlow := func(id string, expiresAt time.Time) {
			t.Helper()
			rec := &flow.Record{Flow: flow.Flow{ID: id, ExpiresAt: expiresAt, State: flow.StateChooseMethod}}
			require.NoError(t, s.CreateFlow(t.Context(), rec))
		}
		newFlow("gone", now.Add(-flow.Retention-time.Minute))
		newFlow("expired-23h", now.Add(-23*time.Hour))
		newFlow("live", now.Add(time.Hour))
		require.NoError(t, s.CreateError(t.Context(), &flow.ErrorRecord{ID: "old-error", Error: []byte(`{}`), CreatedAt: now.Add(-flow.Retention - time.Minute)}))
		require.NoError(t, s.CreateError(t.Context(), &flow.ErrorRecord{ID: "new-error", Error: []byte(`{}`), CreatedAt: now.Add(-time.Hour)}))

		assert.Equal(t, 2, s.Sweep(now))

		_, err := s.Flow(t.Context(), "gone")
		assert.ErrorIs(t, err, flow.ErrNotFound)
		_, err = s.Error(t.Context(), "old-error")
		assert.ErrorIs(t, err, flow.ErrNotFound)
		for _, id := range []string{"expired-23h", "live"} {
			_, err := s.Flow(t.Context(), id)
			assert.NoError(t, err, "flow %s", id)
		}
		_, err = s.Error(t.Context(), "new-error")
		assert.NoError(t, err)
		assert.Equal(t, 0, s.Sweep(now), "second sweep")
	})

	t.Run("expired sessions and their token index", func(t *testing.T) {
		s := session.NewMemoryStore(func() time.Time { return before })
		expired := &session.Record{Session: session.Session{ID: "expired", Active: true, ExpiresAt: now.Add(-time.Minute)}, IdentityID: "alice", TokenHash: "expired-hash"}
		live := &session.Record{Session: session.Session{ID: "live", Active: true, ExpiresAt: now.Add(time.Hour)}, IdentityID: "alice", TokenHash: "live-hash"}
		require.NoError(t, s.CreateSession(t.Context(), expired))
		require.NoError(t, s.CreateSession(t.Context(), live))

		assert.Equal(t, 1, s.Sweep(now))

		_, err := s.Session(t.Context(), "expired")
		assert.ErrorIs(t, err, session.ErrNotFound)
		_, err = s.SessionByToken(t.Context(), "expired-hash")
		assert.ErrorIs(t, err, session.ErrNotFound)
		list, err := s.ListSessions(t.Context(), "alice")
		require.NoError(t, err)
		if assert.Len(t, list, 1) {
			assert.Equal(t, "live", list[0].Session.ID)
		}
		_, err = s.SessionByToken(t.Context(), "live-hash")
		assert.NoError(t, err)

		// The swept token hash is free again.
		s = session.NewMemoryStore(func() time.Time { return now })
		reuse := &session.Record{Session: session.Session{ID: "reuse", Active: true, ExpiresAt: now.Add(time.Hour)}, IdentityID: "bob", TokenHash: "expired-hash"}
		assert.NoError(t, s.CreateSession(t.Context(), reuse))
	})

	t.Run("creations drop due records without a sweep", func(t *testing.T) {
		current := before
		clock := func() time.Time { return current }
		flows, sessions := flow.NewMemoryStore(clock), session.NewMemoryStore(clock)
		require.NoError(t, flows.CreateFlow(t.Context(), &flow.Record{Flow: flow.Flow{ID: "old", ExpiresAt: before.Add(time.Hour)}}))
		require.NoError(t, sessions.CreateSession(t.Context(), &session.Record{Session: session.Session{ID: "old", Active: true, ExpiresAt: before.Add(time.Hour)}, IdentityID: "alice", TokenHash: "old-hash"}))
		require.NoError(t, sessions.CreateSession(t.Context(), &session.Record{Session: session.Session{ID: "refreshed", Active: true, ExpiresAt: before.Add(time.Hour)}, IdentityID: "alice", TokenHash: "refreshed-hash"}))
		refreshed, err := sessions.Session(t.Context(), "refreshed")
		require.NoError(t, err)
		refreshed.Session.ExpiresAt = now.Add(time.Hour)
		require.NoError(t, sessions.UpdateSession(t.Context(), refreshed, current))

		current = now
		require.NoError(t, flows.CreateFlow(t.Context(), &flow.Record{Flow: flow.Flow{ID: "new", ExpiresAt: now.Add(time.Hour)}}))
		require.NoError(t, sessions.CreateSession(t.Context(), &session.Record{Session: session.Session{ID: "new", Active: true, ExpiresAt: now.Add(time.Hour)}, IdentityID: "alice", TokenHash: "new-hash"}))

		_, err = flows.Flow(t.Context(), "old")
		assert.ErrorIs(t, err, flow.ErrNotFound, "a flow past its retention is dropped")
		_, err = sessions.Session(t.Context(), "old")
		assert.ErrorIs(t, err, session.ErrNotFound, "an expired session is dropped")
		_, err = sessions.Session(t.Context(), "refreshed")
		assert.NoError(t, err, "a session whose expiry was extended stays")
		assert.Equal(t, 0, flows.Sweep(now)+sessions.Sweep(now), "nothing was left to sweep")
	})
}
