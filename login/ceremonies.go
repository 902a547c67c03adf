package login

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ErrNoCeremony is CeremonyStore.TakeCeremony's answer when a key holds
// nothing (never put, taken already, or expired).
var ErrNoCeremony = errors.New("login: no such ceremony")

// CeremonyStore keeps short-lived server-side state between two requests
// of one ceremony, such as a passkey enrolment's challenge between its
// begin and its finish (login/passkey): each entry is taken at most once.
// Implementations must be safe for concurrent use.
type CeremonyStore interface {
	// PutCeremony stores data under key until expires, replacing what
	// key held.
	PutCeremony(ctx context.Context, key string, data []byte, expires time.Time) error
	// TakeCeremony returns what key holds and deletes it, in one atomic
	// step: of concurrent callers at most one gets it. ErrNoCeremony when
	// key holds nothing or expired at or before now.
	TakeCeremony(ctx context.Context, key string, now time.Time) ([]byte, error)
}

// DefaultMaxCeremonies bounds a MemoryCeremonyStore made with 0.
const DefaultMaxCeremonies = 100_000

// MemoryCeremonyStore is a CeremonyStore in this process's memory, for a
// single instance and for tests.
type MemoryCeremonyStore struct {
	mu      sync.Mutex
	max     int
	entries map[string]ceremony
}

type ceremony struct {
	data    []byte
	expires time.Time
}

// NewMemoryCeremonyStore returns an empty store that holds at most max
// ceremonies (DefaultMaxCeremonies when max is 0): when full, the ones
// expired by the system clock are dropped, then the one expiring first.
func NewMemoryCeremonyStore(max int) *MemoryCeremonyStore {
	if max <= 0 {
		max = DefaultMaxCeremonies
	}
	return &MemoryCeremonyStore{max: max, entries: map[string]ceremony{}}
}

// PutCeremony implements CeremonyStore.
func (s *MemoryCeremonyStore) PutCeremony(_ context.Context, key string, data []byte, expires time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.entries[key]; !ok && len(s.entries) >= s.max {
		s.evict(time.Now())
	}
	s.entries[key] = ceremony{data: append([]byte(nil), data...), expires: expires}
	return nil
}

// evict makes room for one entry; s.mu is held.
func (s *MemoryCeremonyStore) evict(now time.Time) {
	var (
		first    string
		earliest time.Time
	)
	for k, c := range s.entries {
		if !c.expires.After(now) {
			delete(s.entries, k)
			continue
		}
		if first == "" || c.expires.Before(earliest) {
			first, earliest = k, c.expires
		}
	}
	if len(s.entries) >= s.max && first != "" {
		delete(s.entries, first)
	}
}

// TakeCeremony implements CeremonyStore.
func (s *MemoryCeremonyStore) TakeCeremony(_ context.Context, key string, now time.Time) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.entries[key]
	delete(s.entries, key)
	if !ok || !c.expires.After(now) {
		return nil, ErrNoCeremony
	}
	return c.data, nil
}
