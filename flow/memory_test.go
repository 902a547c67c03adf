package flow_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/flow"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// memClock is an adjustable clock for a store.
type memClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *memClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *memClock) Set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

func createFlow(t *testing.T, s *flow.MemoryStore, id string, expiresAt time.Time) {
	t.Helper()
	require.NoError(t, s.CreateFlow(context.Background(), &flow.Record{Flow: flow.Flow{ID: id, ExpiresAt: expiresAt}}))
}

func createError(t *testing.T, s *flow.MemoryStore, id string, createdAt time.Time) {
	t.Helper()
	require.NoError(t, s.CreateError(context.Background(), &flow.ErrorRecord{ID: id, Error: []byte(`{}`), CreatedAt: createdAt}))
}

// stored lists which of ids the store holds, flows or errors.
func stored(s *flow.MemoryStore, ids ...string) []string {
	var out []string
	for _, id := range ids {
		_, ferr := s.Flow(context.Background(), id)
		_, eerr := s.Error(context.Background(), id)
		if ferr == nil || eerr == nil {
			out = append(out, id)
		}
	}
	return out
}

func TestMemoryStoreMaxEntries(t *testing.T) {
	t.Run("the oldest go first and the newest fit", func(t *testing.T) {
		s := flow.NewMemoryStore(func() time.Time { return t0 })
		s.SetMaxEntries(3)
		live := t0.Add(time.Hour)
		createFlow(t, s, "f1", live)
		createError(t, s, "e1", t0)
		createFlow(t, s, "f2", live)
		assert.Equal(t, []string{"f1", "e1", "f2"}, stored(s, "f1", "e1", "f2"))

		createFlow(t, s, "f3", live)
		assert.Equal(t, []string{"e1", "f2", "f3"}, stored(s, "f1", "e1", "f2", "f3"))
		createError(t, s, "e2", t0)
		assert.Equal(t, []string{"f2", "f3", "e2"}, stored(s, "f1", "e1", "f2", "f3", "e2"))
		assert.Equal(t, 3, s.Len())
	})

	t.Run("expired flows go before live ones", func(t *testing.T) {
		clock := &memClock{t: t0}
		s := flow.NewMemoryStore(clock.Now)
		s.SetMaxEntries(4)
		createFlow(t, s, "expired1", t0.Add(time.Hour))
		createFlow(t, s, "expired2", t0.Add(time.Hour))
		clock.Set(t0.Add(2 * time.Hour)) // both expired, still kept for 410
		createFlow(t, s, "live1", clock.Now().Add(time.Hour))
		createFlow(t, s, "live2", clock.Now().Add(time.Hour))
		all := []string{"expired1", "expired2", "live1", "live2", "live3", "live4", "live5"}
		assert.Equal(t, all[:4], stored(s, all...))

		createFlow(t, s, "live3", clock.Now().Add(time.Hour))
		createFlow(t, s, "live4", clock.Now().Add(time.Hour))
		assert.Equal(t, all[2:6], stored(s, all...), "the expired flows made room")
		createFlow(t, s, "live5", clock.Now().Add(time.Hour))
		assert.Equal(t, all[3:7], stored(s, all...), "then the oldest live one")
	})

	t.Run("due entries go first without eviction", func(t *testing.T) {
		clock := &memClock{t: t0}
		s := flow.NewMemoryStore(clock.Now)
		s.SetMaxEntries(3)
		createFlow(t, s, "old", t0.Add(time.Hour))
		createError(t, s, "old-error", t0)
		clock.Set(t0.Add(time.Hour + flow.Retention + time.Minute))
		createFlow(t, s, "new", clock.Now().Add(time.Hour))
		assert.Equal(t, []string{"new"}, stored(s, "old", "old-error", "new"))
		assert.Equal(t, 1, s.Len())
	})

	t.Run("lowering the maximum drops the surplus at once", func(t *testing.T) {
		s := flow.NewMemoryStore(func() time.Time { return t0 })
		ids := []string{"a", "b", "c", "d", "e"}
		for _, id := range ids {
			createFlow(t, s, id, t0.Add(time.Hour))
		}
		s.SetMaxEntries(2)
		assert.Equal(t, []string{"d", "e"}, stored(s, ids...))
	})

	t.Run("zero restores the default", func(t *testing.T) {
		s := flow.NewMemoryStore(func() time.Time { return t0 })
		s.SetMaxEntries(1)
		s.SetMaxEntries(0)
		for i := range flow.DefaultMaxEntries + 10 {
			createFlow(t, s, strconv.Itoa(i), t0.Add(time.Hour))
		}
		assert.Equal(t, flow.DefaultMaxEntries, s.Len())
		assert.Equal(t, []string{strconv.Itoa(flow.DefaultMaxEntries + 9)}, stored(s, "9", strconv.Itoa(flow.DefaultMaxEntries+9)))
	})

	t.Run("a swept flow's id can be used again", func(t *testing.T) {
		clock := &memClock{t: t0.Add(-48 * time.Hour)}
		s := flow.NewMemoryStore(clock.Now)
		createFlow(t, s, "x", t0.Add(-flow.Retention-time.Minute)) // due a minute before t0
		require.Equal(t, 1, s.Sweep(t0))
		clock.Set(t0)
		createFlow(t, s, "x", t0.Add(time.Hour))
		createFlow(t, s, "y", t0.Add(time.Hour))
		assert.Equal(t, []string{"x", "y"}, stored(s, "x", "y"), "the swept x's queue entry is gone with it")
	})

	t.Run("concurrent creations and changes of the maximum", func(t *testing.T) {
		s := flow.NewMemoryStore(func() time.Time { return t0 })
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Go(func() {
				for i := range 500 {
					id := strconv.Itoa(g) + "-" + strconv.Itoa(i)
					assert.NoError(t, s.CreateFlow(context.Background(), &flow.Record{Flow: flow.Flow{ID: id, ExpiresAt: t0.Add(time.Hour)}}))
					if i%100 == 0 {
						s.SetMaxEntries(50 + g)
					}
				}
			})
		}
		wg.Wait()
		s.SetMaxEntries(50)
		assert.Equal(t, 50, s.Len())
	})
}
