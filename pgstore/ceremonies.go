package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authflow/authflow/login"
)

// CeremonyStore is a login.CeremonyStore in PostgreSQL (the table
// authflow_ceremonies, migration 003), for passkey.Config.Ceremonies: an
// enrolment begun on one instance can be finished on any instance sharing
// the database, and it is finished at most once however many finishes
// race, on one instance or several. Put and Take are one statement each;
// Take deletes and returns in one step, so of concurrent takes of one key
// exactly one gets it. Times are kept to the microsecond, PostgreSQL's
// precision (an expiry is rounded down). Expired ceremonies are refused;
// Store.Sweep removes them. It is safe for concurrent use.
type CeremonyStore struct {
	pool *pgxpool.Pool
}

// NewCeremonyStore returns a CeremonyStore over pool (migrated by
// Store.Migrate).
func NewCeremonyStore(pool *pgxpool.Pool) *CeremonyStore {
	return &CeremonyStore{pool: pool}
}

var _ login.CeremonyStore = (*CeremonyStore)(nil)

var sqlPutCeremony = query("PutCeremony", `
INSERT INTO authflow_ceremonies (key, data, expires_at) VALUES ($1::text, $2::bytea, $3::timestamptz)
ON CONFLICT (key) DO UPDATE SET data = excluded.data, expires_at = excluded.expires_at`)

// PutCeremony implements login.CeremonyStore: it stores data under key
// until expires, replacing what key held. A key PostgreSQL cannot hold in
// a text column (invalid UTF-8, or a NUL) is an error.
func (s *CeremonyStore) PutCeremony(ctx context.Context, key string, data []byte, expires time.Time) error {
	if !storable(key) {
		return errors.New("pgstore: put ceremony: the key is not UTF-8 text without NUL")
	}
	if data == nil {
		data = []byte{} // bytea NOT NULL: nil would be NULL
	}
	if _, err := s.pool.Exec(ctx, sqlPutCeremony, key, data, expires.Truncate(time.Microsecond)); err != nil {
		return fmt.Errorf("pgstore: put ceremony: %w", err)
	}
	return nil
}

var sqlTakeCeremony = query("TakeCeremony", `
DELETE FROM authflow_ceremonies WHERE key = $1::text RETURNING data, expires_at`)

// TakeCeremony implements login.CeremonyStore in one statement: it
// deletes what key holds and returns it, or login.ErrNoCeremony when key
// holds nothing or held a ceremony that expired at or before now (deleted
// all the same).
func (s *CeremonyStore) TakeCeremony(ctx context.Context, key string, now time.Time) ([]byte, error) {
	if !storable(key) {
		return nil, login.ErrNoCeremony
	}
	var (
		data    []byte
		expires time.Time
	)
	err := s.pool.QueryRow(ctx, sqlTakeCeremony, key).Scan(&data, &expires)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, login.ErrNoCeremony
	}
	if err != nil {
		return nil, fmt.Errorf("pgstore: take ceremony: %w", err)
	}
	if !expires.After(now) {
		return nil, login.ErrNoCeremony
	}
	return data, nil
}
