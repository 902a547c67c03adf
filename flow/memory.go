package flow

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"sync"
	"time"
)

// Retention is how long after expiry a MemoryStore keeps a flow (so that it
// still answers 410 and a fresh flow) and how long it keeps a forwarded error.
const Retention = 24 * time.Hour

// DefaultMaxEntries is how many flows and forwarded errors, together, a
// MemoryStore keeps unless SetMaxEntries says otherwise. A browser flow
// takes about 1.7 KiB of heap; one made from a URL of the longest length
// the login Handler accepts (login.MaxURLLength), with a return_to as
// long, about 10.5 KiB, and a forwarded error quoting such a return_to
// about 9.5 KiB (login's BenchmarkFlowFlood measures them). The default
// thus bounds the store at about 42 MiB of browser flows, and at about
// 255 MiB under a flood of the largest entries. It holds every live flow
// of a process that starts up to 25 000 logins within a flow lifespan (an
// hour by default); expired flows, kept only to answer 410, go first.
const DefaultMaxEntries = 25_000

// MemoryStore is an in-memory flow store for one process: a map and a
// mutex. It is safe for concurrent use, and every value it returns is a
// deep copy the caller may change. It keeps expired flows for [Retention]
// after their expiry and drops older ones as new flows are created, at a
// constant cost per creation. It keeps at most [DefaultMaxEntries] flows
// and forwarded errors together (see SetMaxEntries): a creation that would
// exceed the maximum drops the oldest entries first, so the newest always
// fit. The zero value is not usable; call [NewMemoryStore].
type MemoryStore struct {
	now func() time.Time

	mu     sync.Mutex
	max    int // entries kept at most, flows and errors together
	flows  map[string]*Record
	errors map[string]*ErrorRecord
	queue  expiryQueue // every stored flow and error once, in creation order
}

// expiryQueue lists stored ids with the time after which they may be
// dropped, in insertion order. Flows are created with a fixed lifespan, so
// insertion order is (nearly) expiry order and the due ones are at the
// front; the front is also the oldest entry.
type expiryQueue struct {
	items []queued
	head  int
}

type queued struct {
	id    string
	error bool // a forwarded error rather than a flow
	due   time.Time
}

func (q *expiryQueue) push(it queued) { q.items = append(q.items, it) }

// popDue removes and returns the front item if it is due at now.
func (q *expiryQueue) popDue(now time.Time) (queued, bool) {
	if q.head == len(q.items) || !q.items[q.head].due.Before(now) {
		return queued{}, false
	}
	return q.pop()
}

// pop removes and returns the front item, if there is one.
func (q *expiryQueue) pop() (queued, bool) {
	if q.head == len(q.items) {
		return queued{}, false
	}
	it := q.items[q.head]
	q.items[q.head] = queued{}
	q.head++
	if q.head > 1024 && q.head*2 > len(q.items) { // compact
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	return it, true
}

// NewMemoryStore returns an empty store that keeps at most
// [DefaultMaxEntries] entries. now is its clock for sweeping; nil means
// time.Now.
func NewMemoryStore(now func() time.Time) *MemoryStore {
	if now == nil {
		now = time.Now
	}
	return &MemoryStore{now: now, max: DefaultMaxEntries, flows: map[string]*Record{}, errors: map[string]*ErrorRecord{}}
}

// SetMaxEntries sets how many flows and forwarded errors, together, the
// store keeps at most; n <= 0 restores [DefaultMaxEntries]. A creation
// that would exceed the maximum drops the oldest entries, in creation
// order, at a constant cost: flows share one lifespan and so expire in the
// order they were created, and those past their retention and those that
// expired go before any live one. If the store holds more than n entries,
// the oldest are dropped at once. It is safe to call concurrently with the
// store's other methods.
func (s *MemoryStore) SetMaxEntries(n int) {
	if n <= 0 {
		n = DefaultMaxEntries
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.max = n
	s.evictLocked()
}

// Len returns how many flows and forwarded errors the store holds.
func (s *MemoryStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.flows) + len(s.errors)
}

// CreateFlow stores a copy of rec and sets rec.Version to 1. If the store
// is full, it drops the oldest entry (see SetMaxEntries).
func (s *MemoryStore) CreateFlow(_ context.Context, rec *Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.flows[rec.Flow.ID]; ok {
		return ErrConflict
	}
	rec.Version = 1
	s.flows[rec.Flow.ID] = rec.Clone()
	s.queue.push(queued{id: rec.Flow.ID, due: rec.Flow.ExpiresAt.Add(Retention)})
	s.dropDueLocked(s.now())
	s.evictLocked()
	return nil
}

// Flow returns a copy of the flow with id, expired or not, or ErrNotFound.
func (s *MemoryStore) Flow(_ context.Context, id string) (*Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.flows[id]
	if !ok {
		return nil, ErrNotFound
	}
	return rec.Clone(), nil
}

// UpdateFlow replaces the stored flow when its version is rec.Version and
// then increments rec.Version; otherwise it returns ErrConflict (or
// ErrNotFound).
func (s *MemoryStore) UpdateFlow(_ context.Context, rec *Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.flows[rec.Flow.ID]
	if !ok {
		return ErrNotFound
	}
	if cur.Version != rec.Version {
		return ErrConflict
	}
	rec.Version++
	s.flows[rec.Flow.ID] = rec.Clone()
	return nil
}

// CompleteFlow stores rec with state passed_challenge if the stored flow is
// not completed yet, whatever its version, and sets rec.Version; it returns
// ErrCompleted if another caller completed it first.
func (s *MemoryStore) CompleteFlow(_ context.Context, rec *Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.flows[rec.Flow.ID]
	if !ok {
		return ErrNotFound
	}
	if cur.Flow.State == StatePassedChallenge {
		return ErrCompleted
	}
	rec.Flow.State = StatePassedChallenge
	rec.Version = cur.Version + 1
	s.flows[rec.Flow.ID] = rec.Clone()
	return nil
}

// CreateError stores a forwarded error. If the store is full, it drops
// the oldest entry (see SetMaxEntries).
func (s *MemoryStore) CreateError(_ context.Context, rec *ErrorRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.errors[rec.ID]; ok {
		return ErrConflict
	}
	s.errors[rec.ID] = rec.Clone()
	s.queue.push(queued{id: rec.ID, error: true, due: rec.CreatedAt.Add(Retention)})
	s.dropDueLocked(s.now())
	s.evictLocked()
	return nil
}

// Error returns a copy of the forwarded error with id, or ErrNotFound.
func (s *MemoryStore) Error(_ context.Context, id string) (*ErrorRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.errors[id]
	if !ok {
		return nil, ErrNotFound
	}
	return rec.Clone(), nil
}

// dropDueLocked drops at most two due entries per call: enough to keep up
// with creations, at a constant cost each.
func (s *MemoryStore) dropDueLocked(now time.Time) {
	for range 2 {
		it, ok := s.queue.popDue(now)
		if !ok {
			return
		}
		s.deleteLocked(it)
	}
}

// evictLocked drops the oldest entries while the store holds more than
// its maximum. Each creation adds one entry, so it drops one, at a
// constant cost; the newest entry, at the back of the queue, stays.
func (s *MemoryStore) evictLocked() {
	for len(s.flows)+len(s.errors) > s.max {
		it, ok := s.queue.pop()
		if !ok {
			return
		}
		s.deleteLocked(it)
	}
}

func (s *MemoryStore) deleteLocked(it queued) {
	if it.error {
		delete(s.errors, it.id)
	} else {
		delete(s.flows, it.id)
	}
}

// Sweep removes flows that expired more than [Retention] before now and
// errors created more than Retention before now, and returns how many it
// removed. The store drops them by itself as new ones are created; hosts
// may call Sweep on their own schedule as well.
func (s *MemoryStore) Sweep(now time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sweepLocked(now)
}

func (s *MemoryStore) sweepLocked(now time.Time) int {
	cutoff := now.Add(-Retention)
	n := 0
	for id, rec := range s.flows {
		if rec.Flow.ExpiresAt.Before(cutoff) {
			delete(s.flows, id)
			n++
		}
	}
	for id, rec := range s.errors {
		if rec.CreatedAt.Before(cutoff) {
			delete(s.errors, id)
			n++
		}
	}
	if n > 0 { // the queue lists each stored entry once: forget the swept ones
		q := &s.queue
		kept := slices.DeleteFunc(q.items[q.head:], func(it queued) bool {
			if it.error {
				return s.errors[it.id] == nil
			}
			return s.flows[it.id] == nil
		})
		k := copy(q.items, kept)
		clear(q.items[k:])
		q.items, q.head = q.items[:k], 0
	}
	return n
}

// Clone returns a deep copy of r.
func (r *Record) Clone() *Record {
	c := *r
	c.Flow.UI = r.Flow.UI.clone()
	if r.Flow.OrganizationID != nil {
		id := *r.Flow.OrganizationID
		c.Flow.OrganizationID = &id
	}
	if r.MethodState != nil {
		c.MethodState = make(map[string]json.RawMessage, len(r.MethodState))
		for k, v := range r.MethodState {
			c.MethodState[k] = slices.Clone(v)
		}
	}
	return &c
}

// Clone returns a deep copy of r.
func (r *ErrorRecord) Clone() *ErrorRecord {
	c := *r
	c.Error = slices.Clone(r.Error)
	return &c
}

func (u UI) clone() UI {
	c := u
	c.Messages = cloneMessages(u.Messages)
	if u.Nodes != nil {
		c.Nodes = make([]Node, len(u.Nodes))
		labels := 0
		for _, n := range u.Nodes {
			if n.Meta.Label != nil {
				labels++
			}
		}
		copies := make([]Message, 0, labels) // one allocation for every label
		for i, n := range u.Nodes {
			n.Messages = cloneMessages(n.Messages)
			if n.Messages == nil {
				n.Messages = []Message{}
			}
			if n.Meta.Label != nil {
				copies = append(copies, n.Meta.Label.clone())
				n.Meta.Label = &copies[len(copies)-1]
			}
			if n.Attributes.ScriptAttributes != nil {
				sa := *n.Attributes.ScriptAttributes
				n.Attributes.ScriptAttributes = &sa
			}
			c.Nodes[i] = n
		}
	}
	return c
}

func cloneMessages(ms []Message) []Message {
	if ms == nil {
		return nil
	}
	c := make([]Message, len(ms))
	for i, m := range ms {
		c[i] = m.clone()
	}
	return c
}

func (m Message) clone() Message {
	m.Context = maps.Clone(m.Context)
	return m
}
