package session

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"
)

// DefaultMaxSessions is how many sessions a MemoryStore keeps unless
// SetMaxSessions says otherwise. A session takes about 0.9 KiB of heap, or
// about 1.8 KiB with the longest User-Agent a login keeps (login's
// BenchmarkFlowFlood measures them), so the default bounds the store at
// about 90 MiB, and at about 180 MiB at worst. It holds every session of a
// process where up to 100 000 logins happen within a session lifespan (a
// day by default); expired and revoked sessions go first.
const DefaultMaxSessions = 100_000

// MemoryStore is an in-memory session store for one process: maps and a
// mutex. It is safe for concurrent use and returns deep copies. Sessions
// that expired are removed as new ones are created, at a constant cost per
// creation. It keeps at most [DefaultMaxSessions] sessions (see
// SetMaxSessions): a creation that would exceed the maximum drops expired
// sessions first, then revoked ones, then the oldest, so the newest always
// fits. Call [NewMemoryStore].
type MemoryStore struct {
	now func() time.Time

	mu         sync.Mutex
	max        int // sessions kept at most
	byID       map[string]*Record
	byToken    map[string]string              // token hash -> session id
	byIdentity map[string]map[string]struct{} // identity id -> session ids
	queue      fifo[expiring]                 // sessions in creation order; refreshed ones queued again when due
	revoked    fifo[string]                   // sessions in revocation order, to drop before live ones
}

// expiring is a session id with the expiry it had when queued.
type expiring struct {
	id  string
	due time.Time
}

// fifo is a queue that reclaims its popped front as it goes. Its items may
// name sessions that are gone; users skip them.
type fifo[T any] struct {
	items []T
	head  int
}

func (q *fifo[T]) push(v T) { q.items = append(q.items, v) }

func (q *fifo[T]) len() int { return len(q.items) - q.head }

// front returns the front item without removing it.
func (q *fifo[T]) front() (T, bool) {
	if q.head == len(q.items) {
		var zero T
		return zero, false
	}
	return q.items[q.head], true
}

// pop removes and returns the front item.
func (q *fifo[T]) pop() (T, bool) {
	v, ok := q.front()
	if !ok {
		return v, false
	}
	var zero T
	q.items[q.head] = zero
	q.head++
	if q.head > 1024 && q.head*2 > len(q.items) {
		q.keep(func(T) bool { return true })
	}
	return v, true
}

// keep drops the items for which f is false and moves the rest to the
// front of the backing array.
func (q *fifo[T]) keep(f func(T) bool) {
	kept := slices.DeleteFunc(q.items[q.head:], func(v T) bool { return !f(v) })
	n := copy(q.items, kept)
	clear(q.items[n:])
	q.items, q.head = q.items[:n], 0
}

// NewMemoryStore returns an empty session store that keeps at most
// [DefaultMaxSessions] sessions; now is its clock for sweeping expired
// sessions (nil means time.Now).
func NewMemoryStore(now func() time.Time) *MemoryStore {
	if now == nil {
		now = time.Now
	}
	return &MemoryStore{
		now:        now,
		max:        DefaultMaxSessions,
		byID:       map[string]*Record{},
		byToken:    map[string]string{},
		byIdentity: map[string]map[string]struct{}{},
	}
}

// SetMaxSessions sets how many sessions the store keeps at most; n <= 0
// restores [DefaultMaxSessions]. A creation that would exceed the maximum
// drops, at a constant cost, expired sessions first, then revoked ones
// (oldest revocation first), then the oldest sessions (in creation
// order). If the store holds more than n sessions, that many are dropped at
// once. It is safe to call concurrently with the store's other methods.
func (s *MemoryStore) SetMaxSessions(n int) {
	if n <= 0 {
		n = DefaultMaxSessions
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.max = n
	s.evictLocked(s.now())
}

// Len returns how many sessions the store holds, revoked and expired ones
// not yet dropped included.
func (s *MemoryStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byID)
}

// CreateSession stores a copy of rec; ErrConflict if its id or token hash
// is taken. If the store is full, it drops an expired, a revoked or else
// the oldest session (see SetMaxSessions).
func (s *MemoryStore) CreateSession(_ context.Context, rec *Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.byID[rec.Session.ID]; ok {
		return ErrConflict
	}
	if _, ok := s.byToken[rec.TokenHash]; ok {
		return ErrConflict
	}
	s.putLocked(rec.Clone())
	s.queue.push(expiring{rec.Session.ID, rec.Session.ExpiresAt})
	now := s.now()
	s.dropDueLocked(now)
	s.evictLocked(now)
	s.compactLocked()
	return nil
}

// dropDueLocked looks at up to two sessions at the front of the queue:
// expired ones are removed, refreshed ones queued again with their new
// expiry.
func (s *MemoryStore) dropDueLocked(now time.Time) {
	for range 2 {
		if !s.dropFrontIfDueLocked(now) {
			return
		}
	}
}

// dropFrontIfDueLocked pops the front of the queue if it is due at now: an
// expired session is removed, a refreshed one queued again. It reports
// whether it popped.
func (s *MemoryStore) dropFrontIfDueLocked(now time.Time) bool {
	it, ok := s.queue.front()
	if !ok || it.due.After(now) {
		return false
	}
	s.queue.pop()
	if rec, ok := s.byID[it.id]; ok {
		if now.Before(rec.Session.ExpiresAt) {
			s.queue.push(expiring{it.id, rec.Session.ExpiresAt})
		} else {
			s.deleteLocked(rec)
		}
	}
	return true
}

// evictLocked drops sessions while the store holds more than its maximum:
// expired ones (the due front of the queue), then revoked ones, then the
// oldest. Every step pops a queue item, each pushed once per creation,
// revocation or refresh, so the cost per creation is constant (amortised).
func (s *MemoryStore) evictLocked(now time.Time) {
	for len(s.byID) > s.max {
		if s.dropFrontIfDueLocked(now) {
			continue
		}
		if id, ok := s.revoked.pop(); ok {
			if rec, ok := s.byID[id]; ok && !rec.Session.Active {
				s.deleteLocked(rec)
			}
			continue
		}
		it, ok := s.queue.pop()
		if !ok {
			return
		}
		if rec, ok := s.byID[it.id]; ok {
			s.deleteLocked(rec)
		}
	}
}

// compactLocked forgets queued ids whose session is gone (revoked sessions
// dropped from the expiry queue's middle, sessions swept) once they
// outnumber the stored sessions, so the queues stay proportional to the
// store, at a constant cost per creation (amortised).
func (s *MemoryStore) compactLocked() {
	if limit := 2*len(s.byID) + 1024; s.queue.len() > limit {
		s.queue.keep(func(it expiring) bool { return s.byID[it.id] != nil })
	}
	if limit := 2*len(s.byID) + 1024; s.revoked.len() > limit {
		s.revoked.keep(s.isRevokedLocked)
	}
}

func (s *MemoryStore) isRevokedLocked(id string) bool {
	rec, ok := s.byID[id]
	return ok && !rec.Session.Active
}

func (s *MemoryStore) putLocked(rec *Record) {
	rec.Session.Identity = nil
	s.byID[rec.Session.ID] = rec
	s.byToken[rec.TokenHash] = rec.Session.ID
	ids := s.byIdentity[rec.IdentityID]
	if ids == nil {
		ids = map[string]struct{}{}
		s.byIdentity[rec.IdentityID] = ids
	}
	ids[rec.Session.ID] = struct{}{}
}

func (s *MemoryStore) deleteLocked(rec *Record) {
	delete(s.byID, rec.Session.ID)
	delete(s.byToken, rec.TokenHash)
	if ids := s.byIdentity[rec.IdentityID]; ids != nil {
		delete(ids, rec.Session.ID)
		if len(ids) == 0 {
			delete(s.byIdentity, rec.IdentityID)
		}
	}
}

// SessionByToken returns a copy of the session whose token hash is
// tokenHash, whatever its state, or ErrNotFound.
func (s *MemoryStore) SessionByToken(_ context.Context, tokenHash string) (*Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.byToken[tokenHash]
	if !ok {
		return nil, ErrNotFound
	}
	return s.byID[id].Clone(), nil
}

// Session returns a copy of the session with id, or ErrNotFound.
func (s *MemoryStore) Session(_ context.Context, id string) (*Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.byID[id]
	if !ok {
		return nil, ErrNotFound
	}
	return rec.Clone(), nil
}

// UpdateSession replaces the stored session with the same id (its token
// hash may change: token rotation) if it is still valid at now; ErrNotFound
// if there is none, ErrInactive if it was revoked or has expired,
// ErrConflict if the new token hash belongs to another session.
func (s *MemoryStore) UpdateSession(_ context.Context, rec *Record, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.byID[rec.Session.ID]
	if !ok {
		return ErrNotFound
	}
	if !cur.Valid(now) {
		return ErrInactive
	}
	if id, ok := s.byToken[rec.TokenHash]; ok && id != rec.Session.ID {
		return ErrConflict
	}
	s.deleteLocked(cur)
	s.putLocked(rec.Clone())
	return nil
}

// ListSessions returns copies of the identity's stored sessions, revoked
// ones included, newest first.
func (s *MemoryStore) ListSessions(_ context.Context, identityID string) ([]*Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Record, 0, len(s.byIdentity[identityID]))
	for id := range s.byIdentity[identityID] {
		out = append(out, s.byID[id].Clone())
	}
	slices.SortFunc(out, func(a, b *Record) int {
		return cmp.Or(b.Session.IssuedAt.Compare(a.Session.IssuedAt), cmp.Compare(a.Session.ID, b.Session.ID))
	})
	return out, nil
}

// RevokeSession marks the session inactive; revoking a revoked session is
// not an error. ErrNotFound if there is none.
func (s *MemoryStore) RevokeSession(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.byID[id]
	if !ok {
		return ErrNotFound
	}
	if rec.Session.Active {
		rec.Session.Active = false
		s.revoked.push(id)
	}
	return nil
}

// RevokeSessions marks every active session of the identity inactive and
// returns how many it revoked.
func (s *MemoryStore) RevokeSessions(_ context.Context, identityID string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for id := range s.byIdentity[identityID] {
		if rec := s.byID[id]; rec.Session.Active {
			rec.Session.Active = false
			s.revoked.push(id)
			n++
		}
	}
	return n, nil
}

// Sweep removes sessions that expired before now and returns how many.
func (s *MemoryStore) Sweep(now time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sweepLocked(now)
}

func (s *MemoryStore) sweepLocked(now time.Time) int {
	n := 0
	for _, rec := range s.byID {
		if !now.Before(rec.Session.ExpiresAt) {
			s.deleteLocked(rec)
			n++
		}
	}
	if n > 0 {
		s.queue.keep(func(it expiring) bool { return s.byID[it.id] != nil })
		s.revoked.keep(s.isRevokedLocked)
	}
	return n
}

// MemoryIdentityStore is an in-memory identity store for one process. It
// is safe for concurrent use and returns deep copies. Call
// [NewMemoryIdentityStore].
type MemoryIdentityStore struct {
	mu          sync.Mutex
	identities  map[string]*Identity
	credentials map[string]map[CredentialType]*Credential // identity id -> type -> credential
	index       map[credentialKey]string                  // (type, identifier) -> identity id
}

type credentialKey struct {
	typ        CredentialType
	identifier string
}

// NewMemoryIdentityStore returns an empty identity store.
func NewMemoryIdentityStore() *MemoryIdentityStore {
	return &MemoryIdentityStore{
		identities:  map[string]*Identity{},
		credentials: map[string]map[CredentialType]*Credential{},
		index:       map[credentialKey]string{},
	}
}

// CreateIdentity stores a copy of id with its credentials (at most one per
// type; each gets Version 1). ErrConflict if the id, or any (type,
// identifier) pair, is taken; nothing is stored then.
func (s *MemoryIdentityStore) CreateIdentity(_ context.Context, id *Identity, creds ...Credential) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.identities[id.ID]; ok {
		return ErrConflict
	}
	byType := map[CredentialType]*Credential{}
	for i := range creds {
		c := creds[i].Clone()
		if _, dup := byType[c.Type]; dup {
			return ErrConflict
		}
		for _, ident := range c.Identifiers {
			if _, taken := s.index[credentialKey{c.Type, ident}]; taken {
				return ErrConflict
			}
		}
		c.Version = 1
		byType[c.Type] = c
	}
	s.identities[id.ID] = id.Clone()
	s.credentials[id.ID] = byType
	for _, c := range byType {
		for _, ident := range c.Identifiers {
			s.index[credentialKey{c.Type, ident}] = id.ID
		}
	}
	return nil
}

// Identity returns a copy of the identity with id, or ErrNotFound.
func (s *MemoryIdentityStore) Identity(_ context.Context, id string) (*Identity, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, ok := s.identities[id]
	if !ok {
		return nil, ErrNotFound
	}
	return i.Clone(), nil
}

// FindIdentity returns copies of the identity with a credential of typ
// listing identifier (compared verbatim) and of that credential, or
// ErrNotFound.
func (s *MemoryIdentityStore) FindIdentity(_ context.Context, typ CredentialType, identifier string) (*Identity, *Credential, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.index[credentialKey{typ, identifier}]
	if !ok {
		return nil, nil, ErrNotFound
	}
	return s.identities[id].Clone(), s.credentials[id][typ].Clone(), nil
}

// Credentials returns copies of the identity's credentials, ordered by
// type, or ErrNotFound if the identity does not exist.
func (s *MemoryIdentityStore) Credentials(_ context.Context, identityID string) ([]Credential, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	creds, ok := s.credentials[identityID]
	if !ok {
		return nil, ErrNotFound
	}
	out := make([]Credential, 0, len(creds))
	for _, c := range creds {
		out = append(out, *c.Clone())
	}
	slices.SortFunc(out, func(a, b Credential) int { return cmp.Compare(a.Type, b.Type) })
	return out, nil
}

// UpdateIdentity replaces the stored identity with the same id (traits,
// state, metadata); ErrNotFound if there is none.
func (s *MemoryIdentityStore) UpdateIdentity(_ context.Context, id *Identity) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.identities[id.ID]; !ok {
		return ErrNotFound
	}
	s.identities[id.ID] = id.Clone()
	return nil
}

// UpdateCredential stores c as the identity's credential of c.Type. For an
// existing credential it is conditional: the stored Version must equal
// c.Version, else ErrConflict; on success c.Version is incremented. A new
// type is added with Version 1. ErrNotFound if the identity does not exist;
// ErrConflict as well if an identifier belongs to another identity.
func (s *MemoryIdentityStore) UpdateCredential(_ context.Context, identityID string, c *Credential) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	creds, ok := s.credentials[identityID]
	if !ok {
		return ErrNotFound
	}
	cur := creds[c.Type]
	if cur != nil && cur.Version != c.Version {
		return ErrConflict
	}
	for _, ident := range c.Identifiers {
		if owner, taken := s.index[credentialKey{c.Type, ident}]; taken && owner != identityID {
			return ErrConflict
		}
	}
	if cur != nil {
		for _, ident := range cur.Identifiers {
			delete(s.index, credentialKey{c.Type, ident})
		}
		c.Version = cur.Version + 1
	} else {
		c.Version = 1
	}
	creds[c.Type] = c.Clone()
	for _, ident := range c.Identifiers {
		s.index[credentialKey{c.Type, ident}] = identityID
	}
	return nil
}
