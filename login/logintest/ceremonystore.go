package logintest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/login"
)

// TestCeremonyStore checks an implementation of login.CeremonyStore
// against the interface's contract: what put stores is taken once, keys
// are independent, a put replaces data and expiry, an entry expired at or
// before now is refused (and gone), the store keeps its own copy of the
// data, and of concurrent takes of one key exactly one gets it. Every
// subtest gets a fresh store from newStore.
func TestCeremonyStore(t *testing.T, newStore func(t *testing.T) login.CeremonyStore) {
	ctx := context.Background()
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	later := now.Add(5 * time.Minute)

	t.Run("take returns what put stored, once", func(t *testing.T) {
		s := newStore(t)
		require.NoError(t, s.PutCeremony(ctx, "k", []byte("data"), later))
		got, err := s.TakeCeremony(ctx, "k", now)
		require.NoError(t, err)
		assert.Equal(t, []byte("data"), got)
		_, err = s.TakeCeremony(ctx, "k", now)
		assert.ErrorIs(t, err, login.ErrNoCeremony, "taken already")
	})
	t.Run("unknown key", func(t *testing.T) {
		s := newStore(t)
		_, err := s.TakeCeremony(ctx, "nothing", now)
		assert.ErrorIs(t, err, login.ErrNoCeremony)
	})
	t.Run("keys are independent", func(t *testing.T) {
		s := newStore(t)
		require.NoError(t, s.PutCeremony(ctx, "passkey:a", []byte("a"), later))
		require.NoError(t, s.PutCeremony(ctx, "webauthn:a", []byte("b"), later))
		got, err := s.TakeCeremony(ctx, "webauthn:a", now)
		require.NoError(t, err)
		assert.Equal(t, []byte("b"), got)
		got, err = s.TakeCeremony(ctx, "passkey:a", now)
		require.NoError(t, err)
		assert.Equal(t, []byte("a"), got)
	})
	t.Run("put replaces data and expiry", func(t *testing.T) {
		s := newStore(t)
		require.NoError(t, s.PutCeremony(ctx, "k", []byte("first"), later))
		require.NoError(t, s.PutCeremony(ctx, "k", []byte("second"), later.Add(time.Minute)))
		got, err := s.TakeCeremony(ctx, "k", later) // alive by the second expiry only
		require.NoError(t, err)
		assert.Equal(t, []byte("second"), got)
		_, err = s.TakeCeremony(ctx, "k", now)
		assert.ErrorIs(t, err, login.ErrNoCeremony, "one entry per key")

		require.NoError(t, s.PutCeremony(ctx, "k", []byte("first"), later))
		require.NoError(t, s.PutCeremony(ctx, "k", []byte("second"), now))
		_, err = s.TakeCeremony(ctx, "k", now)
		assert.ErrorIs(t, err, login.ErrNoCeremony, "the replacement's expiry applies")
	})
	t.Run("expired at or before now", func(t *testing.T) {
		s := newStore(t)
		require.NoError(t, s.PutCeremony(ctx, "k", []byte("data"), later))
		_, err := s.TakeCeremony(ctx, "k", later)
		assert.ErrorIs(t, err, login.ErrNoCeremony, "expired at now")
		_, err = s.TakeCeremony(ctx, "k", now)
		assert.ErrorIs(t, err, login.ErrNoCeremony, "an expired take deletes it")

		require.NoError(t, s.PutCeremony(ctx, "k", []byte("data"), later))
		got, err := s.TakeCeremony(ctx, "k", later.Add(-time.Microsecond))
		require.NoError(t, err, "alive until its expiry")
		assert.Equal(t, []byte("data"), got)
	})
	t.Run("empty data", func(t *testing.T) {
		s := newStore(t)
		require.NoError(t, s.PutCeremony(ctx, "k", nil, later))
		got, err := s.TakeCeremony(ctx, "k", now)
		require.NoError(t, err)
		assert.Empty(t, got)
	})
	t.Run("the store keeps its own copy", func(t *testing.T) {
		s := newStore(t)
		data := []byte("data")
		require.NoError(t, s.PutCeremony(ctx, "k", data, later))
		data[0] = 'X'
		got, err := s.TakeCeremony(ctx, "k", now)
		require.NoError(t, err)
		assert.Equal(t, []byte("data"), got)
	})
	t.Run("concurrent takes: exactly one gets it", func(t *testing.T) {
		s := newStore(t)
		require.NoError(t, s.PutCeremony(ctx, "k", []byte("data"), later))
		const n = 20
		errs := make([]error, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				<-start
				_, errs[i] = s.TakeCeremony(ctx, "k", now)
			})
		}
		close(start)
		wg.Wait()
		got := 0
		for _, err := range errs {
			if err == nil {
				got++
			} else {
				assert.ErrorIs(t, err, login.ErrNoCeremony)
			}
		}
		assert.Equal(t, 1, got)
	})
}
