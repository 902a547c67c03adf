package login

import (
	"container/list"
	"context"
	"sync"
	"time"
)

// Limiter throttles online password guessing (CONTRACT Part 1 rule 16).
// Before any credential is compared the handler asks Reserve, which decides
// and counts in one atomic step: an attempt that may proceed is counted as
// a failure at once, so that a burst of concurrent guesses gets through no
// more often than the same guesses one after another. The handler then
// settles each reserved attempt: a login calls Success; an attempt that
// ended on the server's side without a verdict on the credentials (a store
// failed, or the identity was refused after its credentials verified)
// calls Release; wrong credentials call nothing, their reservation is the
// failure. Validation errors, CSRF failures and refused attempts are never
// reserved. Keys are the normalised identifier, known or not, so
// throttling never reveals whether an identifier exists, and the client's
// network (see LimitKey). Implementations must be safe for concurrent use;
// [MemoryLimiter] is the in-memory one, a backend shared by several
// instances implements the same three methods, and logintest.TestLimiter is
// the conformance suite. An error from a Limiter fails the attempt (closed,
// not open).
type Limiter interface {
	// Reserve returns 0 when an attempt on key may proceed now, having
	// counted it as a failure of key in the same atomic step; otherwise it
	// counts nothing and returns how long the client must wait.
	Reserve(ctx context.Context, key LimitKey) (time.Duration, error)
	// Release takes back one reservation of key whose attempt reached no
	// verdict on the credentials.
	Release(ctx context.Context, key LimitKey) error
	// Success records a login for key: it clears the failures of key (its
	// identifier and address), takes the login's reservation back from the
	// identifier's count, and trusts key's address for the identifier.
	Success(ctx context.Context, key LimitKey) error
}

// LimitKey is what attempts are counted by.
type LimitKey struct {
	// Identifier is the normalised identifier.
	Identifier string
	// ClientIP is the client's network (see Config.TrustedProxies): an
	// IPv4 address as it is, an IPv6 address as its /64 prefix
	// ("2001:db8:1:2::/64"), because one subscriber commonly holds a whole
	// /64 and could otherwise multiply its free attempts by rotating
	// through it.
	ClientIP string
}

// Limits configures a MemoryLimiter; zero fields take the defaults.
type Limits struct {
	// FreeFailures is how many failures per identifier and address are free
	// within Window; 0 means 5. Each further attempt must wait a delay that
	// doubles from one second (1 s, 2 s, 4 s, ...) up to MaxDelay.
	FreeFailures int
	// Window is how long failures per identifier and address are
	// remembered after the last one (plus its delay); 0 means 15 minutes.
	Window time.Duration
	// MaxDelay caps the delay; 0 means 15 minutes.
	MaxDelay time.Duration
	// IdentifierFailures caps failures per identifier across all addresses
	// within IdentifierWindow (NIST SP 800-63B §5.2.2); 0 means 100.
	IdentifierFailures int
	// IdentifierWindow is that cap's window; 0 means one hour.
	IdentifierWindow time.Duration
	// TrustFor is how long an address that logged in to an identifier stays
	// exempt from the per-identifier cap, so that an attacker spraying from
	// many addresses cannot lock the owner out of their usual device; 0
	// means 30 days.
	TrustFor time.Duration
	// MaxEntries bounds each of the limiter's three tables (per identifier
	// and address, per identifier, trusted addresses); the least recently
	// used entry is dropped when one is full. 0 means 100 000, a few tens of
	// MiB at most.
	MaxEntries int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// WithDefaults returns l with every zero field set to its documented
// default; shared-backend limiters use it to apply the same rules.
func (l Limits) WithDefaults() Limits {
	if l.FreeFailures == 0 {
		l.FreeFailures = 5
	}
	if l.Window == 0 {
		l.Window = 15 * time.Minute
	}
	if l.MaxDelay == 0 {
		l.MaxDelay = 15 * time.Minute
	}
	if l.IdentifierFailures == 0 {
		l.IdentifierFailures = 100
	}
	if l.IdentifierWindow == 0 {
		l.IdentifierWindow = time.Hour
	}
	if l.TrustFor == 0 {
		l.TrustFor = 30 * 24 * time.Hour
	}
	if l.MaxEntries == 0 {
		l.MaxEntries = 100_000
	}
	if l.Now == nil {
		l.Now = time.Now
	}
	return l
}

// MemoryLimiter is the in-memory Limiter for one process, with two rules:
// per identifier and address, Limits.FreeFailures free failures and then a
// doubling delay; per identifier, at most Limits.IdentifierFailures
// failures per Limits.IdentifierWindow, except from addresses that logged
// in to it recently. Its memory is bounded by Limits.MaxEntries however
// many identifiers attackers invent. It is safe for concurrent use and
// starts no goroutine.
type MemoryLimiter struct {
	limits Limits

	mu          sync.Mutex
	pairs       lru[LimitKey, pairCount]
	identifiers lru[string, windowCount]
	trusted     lru[LimitKey, time.Time]
}

type pairCount struct {
	failures int
	last     time.Time
}

type windowCount struct {
	start    time.Time
	failures int
}

// NewMemoryLimiter returns a MemoryLimiter with the given limits.
func NewMemoryLimiter(limits Limits) *MemoryLimiter {
	limits = limits.WithDefaults()
	return &MemoryLimiter{
		limits:      limits,
		pairs:       newLRU[LimitKey, pairCount](limits.MaxEntries),
		identifiers: newLRU[string, windowCount](limits.MaxEntries),
		trusted:     newLRU[LimitKey, time.Time](limits.MaxEntries),
	}
}

// delay is the wait imposed after failures on one identifier and address.
func (l *MemoryLimiter) delay(failures int) time.Duration {
	if failures < l.limits.FreeFailures {
		return 0
	}
	n := failures - l.limits.FreeFailures
	if n >= 30 {
		return l.limits.MaxDelay
	}
	return min(time.Second<<n, l.limits.MaxDelay)
}

// current returns key's failure count, forgetting failures that are older
// than the window plus the delay they imposed.
func (l *MemoryLimiter) current(key LimitKey, now time.Time) (pairCount, bool) {
	c, ok := l.pairs.get(key)
	if ok && now.Sub(c.last) >= l.limits.Window+l.delay(c.failures) {
		l.pairs.remove(key)
		return pairCount{}, false
	}
	return c, ok
}

// wait returns how long an attempt on key must wait at now; 0 means it
// may proceed. l.mu must be held.
func (l *MemoryLimiter) wait(key LimitKey, now time.Time) time.Duration {
	var wait time.Duration
	if c, ok := l.current(key, now); ok {
		if until := c.last.Add(l.delay(c.failures)); now.Before(until) {
			wait = until.Sub(now)
		}
	}
	if at, ok := l.trusted.get(key); ok && now.Sub(at) < l.limits.TrustFor {
		return wait
	}
	if w, ok := l.identifiers.get(key.Identifier); ok && now.Sub(w.start) < l.limits.IdentifierWindow &&
		w.failures >= l.limits.IdentifierFailures {
		wait = max(wait, w.start.Add(l.limits.IdentifierWindow).Sub(now))
	}
	return wait
}

// Reserve implements Limiter: the decision and the count happen under one
// lock.
func (l *MemoryLimiter) Reserve(_ context.Context, key LimitKey) (time.Duration, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.limits.Now()
	if wait := l.wait(key, now); wait > 0 {
		return wait, nil
	}
	c, _ := l.current(key, now)
	l.pairs.put(key, pairCount{failures: c.failures + 1, last: now})
	w, ok := l.identifiers.get(key.Identifier)
	if !ok || now.Sub(w.start) >= l.limits.IdentifierWindow {
		w = windowCount{start: now}
	}
	w.failures++
	l.identifiers.put(key.Identifier, w)
	return 0, nil
}

// Release implements Limiter. The time of the pair's latest failure stays
// as it is: a release can shorten no delay that is already running.
func (l *MemoryLimiter) Release(_ context.Context, key LimitKey) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c, ok := l.pairs.get(key); ok {
		if c.failures--; c.failures <= 0 {
			l.pairs.remove(key)
		} else {
			l.pairs.put(key, c)
		}
	}
	l.releaseIdentifier(key.Identifier)
	return nil
}

// Success implements Limiter.
func (l *MemoryLimiter) Success(_ context.Context, key LimitKey) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pairs.remove(key)
	l.releaseIdentifier(key.Identifier)
	l.trusted.put(key, l.limits.Now())
	return nil
}

// releaseIdentifier takes one failure back from the identifier's count.
// l.mu must be held.
func (l *MemoryLimiter) releaseIdentifier(identifier string) {
	if w, ok := l.identifiers.get(identifier); ok && w.failures > 0 {
		w.failures--
		l.identifiers.put(identifier, w)
	}
}

// lru is a map bounded to max entries that drops the least recently used
// one when full. It is not safe for concurrent use.
type lru[K comparable, V any] struct {
	max   int
	items map[K]*list.Element
	order *list.List // front: most recently used
}

type lruEntry[K comparable, V any] struct {
	key   K
	value V
}

func newLRU[K comparable, V any](max int) lru[K, V] {
	return lru[K, V]{max: max, items: map[K]*list.Element{}, order: list.New()}
}

func (c *lru[K, V]) get(k K) (V, bool) {
	if e, ok := c.items[k]; ok {
		c.order.MoveToFront(e)
		return e.Value.(*lruEntry[K, V]).value, true
	}
	var zero V
	return zero, false
}

func (c *lru[K, V]) put(k K, v V) {
	if e, ok := c.items[k]; ok {
		e.Value.(*lruEntry[K, V]).value = v
		c.order.MoveToFront(e)
		return
	}
	if len(c.items) >= c.max {
		oldest := c.order.Back()
		c.order.Remove(oldest)
		delete(c.items, oldest.Value.(*lruEntry[K, V]).key)
	}
	c.items[k] = c.order.PushFront(&lruEntry[K, V]{key: k, value: v})
}

func (c *lru[K, V]) remove(k K) {
	if e, ok := c.items[k]; ok {
		c.order.Remove(e)
		delete(c.items, k)
	}
}

func (c *lru[K, V]) len() int { return len(c.items) }
