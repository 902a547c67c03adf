package session

import (
	"context"
	"strconv"
	"testing"
	"time"
)

// TestMemoryStoreQueuesStayProportional: sessions dropped through the
// revoked queue or swept leave their ids behind in the other queue; the
// queues are compacted so that they stay proportional to the store.
func TestMemoryStoreQueuesStayProportional(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s := NewMemoryStore(func() time.Time { return now })
	s.SetMaxSessions(100)
	limit := 2*100 + 1024 + 1
	for i := range 20_000 {
		id := strconv.Itoa(i)
		rec := &Record{Session: Session{ID: id, Active: true, ExpiresAt: now.Add(time.Hour)}, IdentityID: "alice", TokenHash: "hash-" + id}
		if err := s.CreateSession(context.Background(), rec); err != nil {
			t.Fatal(err)
		}
		if err := s.RevokeSession(context.Background(), id); err != nil {
			t.Fatal(err)
		}
		if i%1000 == 0 {
			s.Sweep(now)
		}
		if s.queue.len() > limit || s.revoked.len() > limit {
			t.Fatalf("after %d sessions: %d stored, %d queued, %d revoked queued", i+1, len(s.byID), s.queue.len(), s.revoked.len())
		}
	}
	if len(s.byID) != 100 {
		t.Errorf("%d sessions stored, want 100", len(s.byID))
	}
}
