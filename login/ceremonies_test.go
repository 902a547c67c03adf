package login_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/login/logintest"
)

func TestMemoryCeremonyStore(t *testing.T) {
	logintest.TestCeremonyStore(t, func(*testing.T) login.CeremonyStore { return login.NewMemoryCeremonyStore(0) })
}

func TestMemoryCeremonyStoreIsBounded(t *testing.T) {
	s := login.NewMemoryCeremonyStore(2)
	ctx := context.Background()
	now := time.Now()
	require.NoError(t, s.PutCeremony(ctx, "a", []byte("a"), now.Add(time.Minute)))
	require.NoError(t, s.PutCeremony(ctx, "b", []byte("b"), now.Add(2*time.Minute)))
	require.NoError(t, s.PutCeremony(ctx, "c", []byte("c"), now.Add(3*time.Minute)))
	_, err := s.TakeCeremony(ctx, "a", now)
	assert.ErrorIs(t, err, login.ErrNoCeremony, "the one expiring first made room")
	got, err := s.TakeCeremony(ctx, "c", now)
	require.NoError(t, err)
	assert.Equal(t, "c", string(got))
}
