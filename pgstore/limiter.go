package pgstore

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authflow/authflow/login"
)

// Limiter is a login.Limiter whose counters live in PostgreSQL, so that
// every instance sharing the database applies the same limits: an attacker
// who spreads attempts over instances meets them as if on one. It applies
// login.MemoryLimiter's rules: per identifier and address,
// Limits.FreeFailures free failures, then a delay doubling from one second
// up to Limits.MaxDelay, forgotten Limits.Window after the last failure
// plus its delay; per identifier, at most Limits.IdentifierFailures
// failures per Limits.IdentifierWindow, except from addresses that logged
// in to it within Limits.TrustFor. Each method is one statement, and every
// counter is updated atomically by the database (an upsert), never read
// and written back. Times come from Limits.Now, never from the database's
// clock. Limits.MaxEntries does not apply: Store.Sweep removes rows that no
// longer matter.
type Limiter struct {
	pool   *pgxpool.Pool
	limits login.Limits
}

// NewLimiter returns a Limiter over pool (migrated by Store.Migrate) with
// limits; zero fields take login.Limits' defaults.
func NewLimiter(pool *pgxpool.Pool, limits login.Limits) *Limiter {
	return &Limiter{pool: pool, limits: limits.WithDefaults()}
}

var _ login.Limiter = (*Limiter)(nil)

// delay is the wait imposed after failures on one identifier and address,
// as login.MemoryLimiter computes it.
func (l *Limiter) delay(failures int) time.Duration {
	if failures < l.limits.FreeFailures {
		return 0
	}
	n := failures - l.limits.FreeFailures
	if n >= 30 {
		return l.limits.MaxDelay
	}
	return min(time.Second<<n, l.limits.MaxDelay)
}

var sqlLimiterCheck = query("Limiter.Check", `
SELECT p.failures, p.last_failure, t.trusted_at, i.window_start, i.failures
FROM (SELECT) AS one
LEFT JOIN authflow_limiter_pairs p ON p.identifier = $1 AND p.client_ip = $2
LEFT JOIN authflow_limiter_trusted t ON t.identifier = $1 AND t.client_ip = $2
LEFT JOIN authflow_limiter_identifiers i ON i.identifier = $1`)

// Check implements login.Limiter: one read of the three counters, judged
// at Limits.Now exactly as login.MemoryLimiter judges its own.
func (l *Limiter) Check(ctx context.Context, key login.LimitKey) (time.Duration, error) {
	var pairFailures, windowFailures *int32
	var lastFailure, trustedAt, windowStart *time.Time
	err := l.pool.QueryRow(ctx, sqlLimiterCheck, key.Identifier, key.ClientIP).
		Scan(&pairFailures, &lastFailure, &trustedAt, &windowStart, &windowFailures)
	if err != nil {
		return 0, fmt.Errorf("pgstore: check throttling: %w", err)
	}
	now := l.limits.Now().Truncate(time.Microsecond) // as stored
	var wait time.Duration
	if pairFailures != nil {
		failures := int(*pairFailures)
		d := l.delay(failures)
		// Failures older than the window plus their delay are forgotten.
		if now.Sub(*lastFailure) < l.limits.Window+d {
			if until := lastFailure.Add(d); now.Before(until) {
				wait = until.Sub(now)
			}
		}
	}
	if trustedAt != nil && now.Sub(*trustedAt) < l.limits.TrustFor {
		return wait, nil
	}
	if windowStart != nil && now.Sub(*windowStart) < l.limits.IdentifierWindow &&
		int(*windowFailures) >= l.limits.IdentifierFailures {
		wait = max(wait, windowStart.Add(l.limits.IdentifierWindow).Sub(now))
	}
	return wait, nil
}

// sqlLimiterFailure counts a failure on both counters in one statement.
// The pair's count restarts at 1 when its failures were forgotten (the last
// one is older than the window plus the delay it imposed; the delay is
// login.MemoryLimiter's, in microseconds: $5 free failures, doubling from
// one second, capped at $6); the identifier's window restarts when it is
// over. ON CONFLICT DO UPDATE locks the row and computes from its latest
// committed values, so concurrent failures on any instance all count.
var sqlLimiterFailure = query("Limiter.Failure", `
WITH pair AS (
	INSERT INTO authflow_limiter_pairs AS p (identifier, client_ip, failures, last_failure, sweep_at)
	VALUES ($1::text, $2::text, 1, $3::timestamptz, $3::timestamptz + ($4::bigint + $6::bigint) * interval '1 microsecond')
	ON CONFLICT (identifier, client_ip) DO UPDATE SET
		failures = CASE
			WHEN p.last_failure + ($4::bigint + CASE
				WHEN p.failures < $5::integer THEN 0::bigint
				WHEN p.failures - $5::integer >= 30 THEN $6::bigint
				ELSE least(1000000::bigint << (p.failures - $5::integer), $6::bigint)
			END) * interval '1 microsecond' <= $3::timestamptz THEN 1
			ELSE p.failures + 1
		END,
		last_failure = greatest(p.last_failure, excluded.last_failure),
		sweep_at = greatest(p.sweep_at, excluded.sweep_at)
)
INSERT INTO authflow_limiter_identifiers AS i (identifier, window_start, failures, sweep_at)
VALUES ($1::text, $3::timestamptz, 1, $3::timestamptz + $7::bigint * interval '1 microsecond')
ON CONFLICT (identifier) DO UPDATE SET
	window_start = CASE WHEN i.window_start + $7::bigint * interval '1 microsecond' <= $3::timestamptz THEN excluded.window_start ELSE i.window_start END,
	failures = CASE WHEN i.window_start + $7::bigint * interval '1 microsecond' <= $3::timestamptz THEN 1 ELSE i.failures + 1 END,
	sweep_at = CASE WHEN i.window_start + $7::bigint * interval '1 microsecond' <= $3::timestamptz THEN excluded.sweep_at ELSE i.sweep_at END`)

// Failure implements login.Limiter.
func (l *Limiter) Failure(ctx context.Context, key login.LimitKey) error {
	now := l.limits.Now().Truncate(time.Microsecond) // as stored
	_, err := l.pool.Exec(ctx, sqlLimiterFailure, key.Identifier, key.ClientIP, now,
		l.limits.Window.Microseconds(), l.limits.FreeFailures, l.limits.MaxDelay.Microseconds(),
		l.limits.IdentifierWindow.Microseconds())
	if err != nil {
		return fmt.Errorf("pgstore: record failure: %w", err)
	}
	return nil
}

// sqlLimiterSuccess clears the pair's failures and trusts the address for
// the identifier, in one statement.
var sqlLimiterSuccess = query("Limiter.Success", `
WITH cleared AS (
	DELETE FROM authflow_limiter_pairs WHERE identifier = $1::text AND client_ip = $2::text
)
INSERT INTO authflow_limiter_trusted AS t (identifier, client_ip, trusted_at, sweep_at)
VALUES ($1::text, $2::text, $3::timestamptz, $3::timestamptz + $4::bigint * interval '1 microsecond')
ON CONFLICT (identifier, client_ip) DO UPDATE SET
	trusted_at = greatest(t.trusted_at, excluded.trusted_at),
	sweep_at = greatest(t.sweep_at, excluded.sweep_at)`)

// Success implements login.Limiter.
func (l *Limiter) Success(ctx context.Context, key login.LimitKey) error {
	now := l.limits.Now().Truncate(time.Microsecond) // as stored
	if _, err := l.pool.Exec(ctx, sqlLimiterSuccess, key.Identifier, key.ClientIP, now, l.limits.TrustFor.Microseconds()); err != nil {
		return fmt.Errorf("pgstore: record login: %w", err)
	}
	return nil
}
