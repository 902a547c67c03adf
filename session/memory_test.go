package session_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/session"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// memClock is an adjustable clock for a store.
type memClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *memClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *memClock) Set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

func createSession(t *testing.T, s *session.MemoryStore, id string, expiresAt time.Time) {
	t.Helper()
	require.NoError(t, s.CreateSession(context.Background(), &session.Record{
		Session:    session.Session{ID: id, Active: true, ExpiresAt: expiresAt},
		IdentityID: "alice",
		TokenHash:  "hash-" + id,
	}))
}

// stored lists which of ids the store holds, also by their token.
func stored(t *testing.T, s *session.MemoryStore, ids ...string) []string {
	t.Helper()
	var out []string
	for _, id := range ids {
		_, err := s.Session(context.Background(), id)
		_, terr := s.SessionByToken(context.Background(), "hash-"+id)
		assert.Equal(t, err == nil, terr == nil, "session %s and its token index agree", id)
		if err == nil {
			out = append(out, id)
		}
	}
	return out
}

func TestMemoryStoreMaxSessions(t *testing.T) {
	day := t0.Add(24 * time.Hour)

	t.Run("revoked sessions go before the oldest", func(t *testing.T) {
		s := session.NewMemoryStore(func() time.Time { return t0 })
		s.SetMaxSessions(3)
		createSession(t, s, "a", day)
		createSession(t, s, "b", day)
		createSession(t, s, "c", day)
		require.NoError(t, s.RevokeSession(context.Background(), "b"))
		all := []string{"a", "b", "c", "d", "e"}

		createSession(t, s, "d", day)
		assert.Equal(t, []string{"a", "c", "d"}, stored(t, s, all...), "the revoked one made room")
		createSession(t, s, "e", day)
		assert.Equal(t, []string{"c", "d", "e"}, stored(t, s, all...), "then the oldest")
		list, err := s.ListSessions(context.Background(), "alice")
		require.NoError(t, err)
		assert.Len(t, list, 3, "the identity index follows")
	})

	t.Run("expired sessions go before revoked ones", func(t *testing.T) {
		clock := &memClock{t: t0}
		s := session.NewMemoryStore(clock.Now)
		s.SetMaxSessions(3)
		createSession(t, s, "short", t0.Add(time.Hour))
		createSession(t, s, "a", day)
		createSession(t, s, "b", day)
		n, err := s.RevokeSessions(context.Background(), "alice")
		require.NoError(t, err)
		require.Equal(t, 3, n)
		clock.Set(t0.Add(2 * time.Hour))
		createSession(t, s, "new", day)
		assert.Equal(t, []string{"a", "b", "new"}, stored(t, s, "short", "a", "b", "new"))
	})

	t.Run("expired, then revoked, then the oldest, when the maximum is lowered", func(t *testing.T) {
		clock := &memClock{t: t0}
		s := session.NewMemoryStore(clock.Now)
		all := []string{"short0", "short1", "short2", "short3", "a", "revoked", "b", "c"}
		for _, id := range all[:4] {
			createSession(t, s, id, t0.Add(time.Hour))
		}
		for _, id := range all[4:] {
			createSession(t, s, id, day)
		}
		require.NoError(t, s.RevokeSession(context.Background(), "revoked"))
		clock.Set(t0.Add(2 * time.Hour))

		s.SetMaxSessions(3)
		assert.Equal(t, []string{"a", "b", "c"}, stored(t, s, all...))
		s.SetMaxSessions(2)
		assert.Equal(t, []string{"b", "c"}, stored(t, s, all...))
	})

	t.Run("lowering the maximum drops the surplus at once", func(t *testing.T) {
		s := session.NewMemoryStore(func() time.Time { return t0 })
		ids := []string{"a", "b", "c", "d", "e"}
		for _, id := range ids {
			createSession(t, s, id, day)
		}
		s.SetMaxSessions(2)
		assert.Equal(t, []string{"d", "e"}, stored(t, s, ids...))
	})

	t.Run("zero restores the default", func(t *testing.T) {
		s := session.NewMemoryStore(func() time.Time { return t0 })
		s.SetMaxSessions(1)
		s.SetMaxSessions(0)
		for i := range session.DefaultMaxSessions + 10 {
			createSession(t, s, strconv.Itoa(i), day)
		}
		assert.Equal(t, session.DefaultMaxSessions, s.Len())
	})

	t.Run("concurrent creations, revocations and changes of the maximum", func(t *testing.T) {
		s := session.NewMemoryStore(func() time.Time { return t0 })
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Go(func() {
				for i := range 500 {
					id := strconv.Itoa(g) + "-" + strconv.Itoa(i)
					createSession(t, s, id, day)
					if i%3 == 0 { // unless another goroutine's creation dropped it already
						if err := s.RevokeSession(context.Background(), id); err != nil {
							assert.ErrorIs(t, err, session.ErrNotFound)
						}
					}
					if i%100 == 0 {
						s.SetMaxSessions(50 + g)
					}
				}
			})
		}
		wg.Wait()
		s.SetMaxSessions(50)
		assert.Equal(t, 50, s.Len())
	})
}
