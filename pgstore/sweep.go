package pgstore

import (
	"context"
	"fmt"
	"time"

	"github.com/authflow/authflow/flow"
)

// sweeps are the deletions Sweep runs, each removing at most $2 rows due
// at $1 through the table's expiry index. Rows locked by a concurrent
// writer (or another instance's sweep) are skipped, never waited for.
var sweeps = []struct{ what, sql string }{
	{"flows", query("Sweep.flows", `
DELETE FROM authflow_flows WHERE id IN (
	SELECT id FROM authflow_flows WHERE expires_at < $1::timestamptz - $3::bigint * interval '1 microsecond'
	ORDER BY expires_at LIMIT $2::integer FOR UPDATE SKIP LOCKED)`)},
	{"errors", query("Sweep.errors", `
DELETE FROM authflow_errors WHERE id IN (
	SELECT id FROM authflow_errors WHERE created_at < $1::timestamptz - $3::bigint * interval '1 microsecond'
	ORDER BY created_at LIMIT $2::integer FOR UPDATE SKIP LOCKED)`)},
	{"sessions", query("Sweep.sessions", `
DELETE FROM authflow_sessions WHERE id IN (
	SELECT id FROM authflow_sessions WHERE expires_at <= $1::timestamptz
	ORDER BY expires_at LIMIT $2::integer FOR UPDATE SKIP LOCKED)`)},
	{"limiter pairs", query("Sweep.limiterPairs", `
DELETE FROM authflow_limiter_pairs WHERE (identifier, client_ip) IN (
	SELECT identifier, client_ip FROM authflow_limiter_pairs WHERE sweep_at <= $1::timestamptz
	ORDER BY sweep_at LIMIT $2::integer FOR UPDATE SKIP LOCKED)`)},
	{"limiter identifiers", query("Sweep.limiterIdentifiers", `
DELETE FROM authflow_limiter_identifiers WHERE identifier IN (
	SELECT identifier FROM authflow_limiter_identifiers WHERE sweep_at <= $1::timestamptz
	ORDER BY sweep_at LIMIT $2::integer FOR UPDATE SKIP LOCKED)`)},
	{"limiter trusted addresses", query("Sweep.limiterTrusted", `
DELETE FROM authflow_limiter_trusted WHERE (identifier, client_ip) IN (
	SELECT identifier, client_ip FROM authflow_limiter_trusted WHERE sweep_at <= $1::timestamptz
	ORDER BY sweep_at LIMIT $2::integer FOR UPDATE SKIP LOCKED)`)},
	{"ceremonies", query("Sweep.ceremonies", `
DELETE FROM authflow_ceremonies WHERE key IN (
	SELECT key FROM authflow_ceremonies WHERE expires_at <= $1::timestamptz
	ORDER BY expires_at LIMIT $2::integer FOR UPDATE SKIP LOCKED)`)},
}

// Sweep deletes what is due at now: flows that expired more than
// flow.Retention before now, forwarded errors created more than
// flow.Retention before now, sessions and enrolment ceremonies
// (CeremonyStore) expired at now, and limiter rows that no longer affect
// any decision (failures forgotten, windows over, trust lapsed). It
// deletes in statements of at most batch rows (batch <= 0 means 1000),
// each its own short transaction, until nothing due is left, and checks
// ctx between statements: a cancelled sweep stops at once and keeps what
// it deleted. It returns how many rows it deleted, with ctx's error if it
// was cancelled. Run it periodically on any or all instances: sweeps
// running at once skip each other's rows.
func (s *Store) Sweep(ctx context.Context, now time.Time, batch int) (int, error) {
	if batch <= 0 {
		batch = 1000
	}
	retention := flow.Retention.Microseconds()
	total := 0
	for _, sw := range sweeps {
		for {
			if err := ctx.Err(); err != nil {
				return total, err
			}
			args := []any{now, batch}
			if sw.what == "flows" || sw.what == "errors" {
				args = append(args, retention)
			}
			tag, err := s.pool.Exec(ctx, sw.sql, args...)
			if err != nil {
				if ctxErr := ctx.Err(); ctxErr != nil {
					return total, ctxErr
				}
				return total, fmt.Errorf("pgstore: sweep %s: %w", sw.what, err)
			}
			n := int(tag.RowsAffected())
			total += n
			if n < batch {
				break
			}
		}
	}
	return total, nil
}
