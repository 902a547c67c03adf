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
// who spreads attempts over instances, or sends them all at once, meets
// them as if they came one after another to one instance. It applies
// login.MemoryLimiter's rules: per identifier and address,
// Limits.FreeFailures free failures, then a delay doubling from one second
// up to Limits.MaxDelay, forgotten Limits.Window after the last failure
// plus its delay; per identifier, at most Limits.IdentifierFailures
// failures per Limits.IdentifierWindow, except from addresses that logged
// in to it within Limits.TrustFor.
//
// Reserve decides and counts in one step: one call of the SQL function
// authflow_limiter_reserve (migration 002), which locks the pair's row and
// then the identifier's row, judges the attempt from their latest committed
// values and counts it only if it may proceed. Concurrent reservations of
// one pair or one identifier, from any number of pools and instances, queue
// on those row locks, so exactly as many get through as would one after
// another. Release and Success are one statement each as well. Times come
// from Limits.Now, never from the database's clock. Limits.MaxEntries does
// not apply: Store.Sweep removes rows that no longer matter.
type Limiter struct {
	pool   *pgxpool.Pool
	limits login.Limits
	delays []time.Duration // delays[n]: the delay after FreeFailures+n failures
}

// NewLimiter returns a Limiter over pool (migrated by Store.Migrate) with
// limits; zero fields take login.Limits' defaults.
func NewLimiter(pool *pgxpool.Pool, limits login.Limits) *Limiter {
	limits = limits.WithDefaults()
	// login.MemoryLimiter's delay beyond the free failures: one second,
	// doubling, capped at MaxDelay, and MaxDelay from the 30th doubling on.
	// The database indexes this table, so the rule is written only here.
	delays := make([]time.Duration, 31)
	for n := range delays {
		if n < 30 {
			delays[n] = min(time.Second<<n, limits.MaxDelay)
		} else {
			delays[n] = limits.MaxDelay
		}
	}
	return &Limiter{pool: pool, limits: limits, delays: delays}
}

var _ login.Limiter = (*Limiter)(nil)

var sqlLimiterReserve = query("Limiter.Reserve", `
SELECT authflow_limiter_reserve($1::text, $2::text, $3::timestamptz, $4::integer, $5::interval[],
	$6::interval, $7::interval, $8::integer, $9::interval, $10::interval) FROM `+asyncCommit)

// Reserve implements login.Limiter in one round trip: the decision and the
// count are one statement (see authflow_limiter_reserve), judged at
// Limits.Now exactly as login.MemoryLimiter judges its own.
func (l *Limiter) Reserve(ctx context.Context, key login.LimitKey) (time.Duration, error) {
	now := l.limits.Now().Truncate(time.Microsecond) // as stored
	var waitMicros int64
	err := l.pool.QueryRow(ctx, sqlLimiterReserve, key.Identifier, key.ClientIP, now,
		l.limits.FreeFailures, l.delays, l.limits.Window, l.limits.Window+l.limits.MaxDelay,
		l.limits.IdentifierFailures, l.limits.IdentifierWindow, l.limits.TrustFor).Scan(&waitMicros)
	if err != nil {
		return 0, fmt.Errorf("pgstore: reserve attempt: %w", err)
	}
	return time.Duration(waitMicros) * time.Microsecond, nil
}

var sqlLimiterRelease = query("Limiter.Release", `
SELECT authflow_limiter_release($1::text, $2::text) FROM `+asyncCommit)

// Release implements login.Limiter: one failure fewer for the pair
// (removing its row when none is left; the time of its last failure stays,
// so no running delay gets shorter) and for the identifier's window, if it
// has any, in one statement.
func (l *Limiter) Release(ctx context.Context, key login.LimitKey) error {
	if _, err := l.pool.Exec(ctx, sqlLimiterRelease, key.Identifier, key.ClientIP); err != nil {
		return fmt.Errorf("pgstore: release attempt: %w", err)
	}
	return nil
}

// sqlLimiterSuccess clears the pair's failures, takes one failure back
// from the identifier's window (the login's own reservation) and trusts the
// address for the identifier, in one statement. The main query reads the
// three writes in that order, which is the order in which they lock their
// rows: the pair's, the identifier's, then the trusted address's, the
// order authflow_limiter_reserve and authflow_limiter_release keep too.
var sqlLimiterSuccess = query("Limiter.Success", `
WITH cleared AS (
	DELETE FROM authflow_limiter_pairs WHERE identifier = $1::text AND client_ip = $2::text
	RETURNING 1
), released AS (
	UPDATE authflow_limiter_identifiers SET failures = failures - 1
	WHERE identifier = $1::text AND failures > 0
	RETURNING 1
), trusted AS (
	INSERT INTO authflow_limiter_trusted AS t (identifier, client_ip, trusted_at, sweep_at)
	VALUES ($1::text, $2::text, $3::timestamptz, $3::timestamptz + $4::interval)
	ON CONFLICT (identifier, client_ip) DO UPDATE SET
		trusted_at = greatest(t.trusted_at, excluded.trusted_at),
		sweep_at = greatest(t.sweep_at, excluded.sweep_at)
	RETURNING 1
)
SELECT (SELECT count(*) FROM cleared), (SELECT count(*) FROM released), (SELECT count(*) FROM trusted) FROM `+asyncCommit)

// Success implements login.Limiter: it clears the pair's failures (the
// attempt's reservation included), takes the reservation back from the
// identifier's window, and trusts the address for the identifier, in one
// statement.
func (l *Limiter) Success(ctx context.Context, key login.LimitKey) error {
	now := l.limits.Now().Truncate(time.Microsecond) // as stored
	if _, err := l.pool.Exec(ctx, sqlLimiterSuccess, key.Identifier, key.ClientIP, now, l.limits.TrustFor); err != nil {
		return fmt.Errorf("pgstore: record login: %w", err)
	}
	return nil
}
