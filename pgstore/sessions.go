package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/session"
)

// sessionRow is a session record as the columns of authflow_sessions.
type sessionRow struct {
	id         string
	identityID string
	tokenHash  string
	active     bool
	issuedAt   time.Time
	expiresAt  time.Time
	record     []byte
}

func encodeSession(rec *session.Record) (sessionRow, error) {
	id, ok := parseID(rec.Session.ID)
	if !ok {
		return sessionRow{}, fmt.Errorf("pgstore: session id %q is not a UUID", rec.Session.ID)
	}
	if !storable(rec.IdentityID) || !storable(rec.TokenHash) {
		return sessionRow{}, fmt.Errorf("pgstore: session %s: identity id or token hash is not storable text", id)
	}
	s := rec.Session
	s.Identity = nil // never stored
	record, err := json.Marshal(&s)
	if err != nil {
		return sessionRow{}, fmt.Errorf("pgstore: encode session: %w", err)
	}
	return sessionRow{
		id:         id,
		identityID: rec.IdentityID,
		tokenHash:  rec.TokenHash,
		active:     s.Active,
		issuedAt:   s.IssuedAt,
		expiresAt:  s.ExpiresAt,
		record:     record,
	}, nil
}

const sessionColumns = `id::text, identity_id, token_hash, active, record`

// scanSession reads the sessionColumns of one row.
func scanSession(row pgx.Row) (*session.Record, error) {
	rec := &session.Record{}
	var id string
	var active bool
	var record []byte
	if err := row.Scan(&id, &rec.IdentityID, &rec.TokenHash, &active, &record); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(record, &rec.Session); err != nil {
		return nil, fmt.Errorf("pgstore: decode session %s: %w", id, err)
	}
	rec.Session.ID = id
	rec.Session.Active = active // the column is what revocation updates
	rec.Session.Identity = nil
	return rec, nil
}

var sqlCreateSession = query("CreateSession", `
INSERT INTO authflow_sessions (id, identity_id, token_hash, active, issued_at, expires_at, record)
VALUES ($1, $2, $3, $4, $5, $6, $7)`)

// CreateSession implements login.SessionStore.
func (s *Store) CreateSession(ctx context.Context, rec *session.Record) error {
	r, err := encodeSession(rec)
	if err != nil {
		return err
	}
	_, err = s.pool.Exec(ctx, sqlCreateSession, r.id, r.identityID, r.tokenHash, r.active, r.issuedAt, r.expiresAt, r.record)
	if isCode(err, codeUniqueViolation) {
		return session.ErrConflict
	}
	if err != nil {
		return fmt.Errorf("pgstore: create session: %w", err)
	}
	return nil
}

var sqlSessionByToken = query("SessionByToken", `
SELECT `+sessionColumns+` FROM authflow_sessions WHERE token_hash = $1`)

// SessionByToken implements login.SessionStore. Expired sessions are
// returned (invalid) until Sweep removes them.
func (s *Store) SessionByToken(ctx context.Context, tokenHash string) (*session.Record, error) {
	if !storable(tokenHash) {
		return nil, session.ErrNotFound
	}
	return s.oneSession(ctx, sqlSessionByToken, tokenHash)
}

var (
	sqlSessionWithIdentity = query("SessionWithIdentity.identityOnly", `
SELECT s.id::text, s.identity_id, s.token_hash, s.active, s.record,
	i.id IS NOT NULL, i.state, i.state_changed_at, i.updated_at, i.record,
	NULL::text, NULL::text[], NULL::json, NULL::bigint
FROM authflow_sessions s
LEFT JOIN authflow_identities i ON i.id = s.identity_id
WHERE s.token_hash = $1`)
	sqlSessionWithCredentials = query("SessionWithIdentity", `
SELECT s.id::text, s.identity_id, s.token_hash, s.active, s.record,
	i.id IS NOT NULL, i.state, i.state_changed_at, i.updated_at, i.record,
	c.type, c.identifiers, c.config, c.version
FROM authflow_sessions s
LEFT JOIN authflow_identities i ON i.id = s.identity_id
LEFT JOIN authflow_credentials c ON c.identity_id = i.id
WHERE s.token_hash = $1
ORDER BY c.type`)
)

// SessionWithIdentity implements login.SessionIdentityLoader: the session
// of tokenHash, its identity and, when asked for, the identity's
// credentials (ordered by type), in one statement, so that checking a
// session is one round trip.
func (s *Store) SessionWithIdentity(ctx context.Context, tokenHash string, credentials bool) (*session.Record, *session.Identity, []session.Credential, error) {
	if !storable(tokenHash) {
		return nil, nil, nil, session.ErrNotFound
	}
	sql := sqlSessionWithIdentity
	if credentials {
		sql = sqlSessionWithCredentials
	}
	rows, err := s.pool.Query(ctx, sql, tokenHash)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("pgstore: read session: %w", err)
	}
	defer rows.Close()
	var (
		rec   *session.Record
		id    *session.Identity
		creds []session.Credential
	)
	if credentials {
		creds = []session.Credential{}
	}
	for rows.Next() {
		var (
			sessionID, identityID, hash string
			active, hasIdentity         bool
			sessionRecord               []byte
			state                       *string
			changed, updated            *time.Time
			identityRecord              []byte
			typ                         *string
			identifiers                 []string
			config                      []byte
			version                     *int64
		)
		if err := rows.Scan(&sessionID, &identityID, &hash, &active, &sessionRecord,
			&hasIdentity, &state, &changed, &updated, &identityRecord,
			&typ, &identifiers, &config, &version); err != nil {
			return nil, nil, nil, fmt.Errorf("pgstore: read session: %w", err)
		}
		if rec == nil { // the session and identity columns repeat on every row
			rec = &session.Record{IdentityID: identityID, TokenHash: hash}
			if err := json.Unmarshal(sessionRecord, &rec.Session); err != nil {
				return nil, nil, nil, fmt.Errorf("pgstore: decode session %s: %w", sessionID, err)
			}
			rec.Session.ID = sessionID
			rec.Session.Active = active
			rec.Session.Identity = nil
			if hasIdentity {
				if id, err = decodeIdentity(*state, changed, *updated, identityRecord); err != nil {
					return nil, nil, nil, err
				}
			}
		}
		if typ != nil {
			creds = append(creds, session.Credential{Type: session.CredentialType(*typ), Identifiers: identifiers, Config: config, Version: *version})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, nil, fmt.Errorf("pgstore: read session: %w", err)
	}
	if rec == nil {
		return nil, nil, nil, session.ErrNotFound
	}
	return rec, id, creds, nil
}

var sqlSession = query("Session", `
SELECT `+sessionColumns+` FROM authflow_sessions WHERE id = $1`)

// Session implements login.SessionStore.
func (s *Store) Session(ctx context.Context, id string) (*session.Record, error) {
	id, ok := parseID(id)
	if !ok {
		return nil, session.ErrNotFound
	}
	return s.oneSession(ctx, sqlSession, id)
}

func (s *Store) oneSession(ctx context.Context, sql string, arg string) (*session.Record, error) {
	rec, err := scanSession(s.pool.QueryRow(ctx, sql, arg))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, session.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("pgstore: read session: %w", err)
	}
	return rec, nil
}

// The conditional update answers in one round trip: how many rows it
// wrote, and whether the session exists (in the statement's snapshot), which
// tells a revoked or expired session from an unknown id. Under a concurrent
// revocation the row lock serialises the two, and the update re-checks its
// condition on the committed row (READ COMMITTED re-evaluation), so a
// revocation that lands first is never undone.
var sqlUpdateSession = query("UpdateSession", `
WITH updated AS (
	UPDATE authflow_sessions
	SET identity_id = $2, token_hash = $3, active = $4, issued_at = $5, expires_at = $6, record = $7
	WHERE id = $1 AND active AND expires_at > $8
	RETURNING 1
)
SELECT (SELECT count(*) FROM updated), EXISTS (SELECT 1 FROM authflow_sessions WHERE id = $1)`)

// UpdateSession implements login.SessionStore: the whole record, its token
// hash included, is replaced, so a rotated token stops working at once,
// provided the stored session is active and expires after now, which the
// statement checks and writes in one step. session.ErrInactive if the stored
// session is revoked or expired, session.ErrNotFound if there is none
// (either leaves it unchanged), session.ErrConflict if the new token hash
// belongs to another session.
func (s *Store) UpdateSession(ctx context.Context, rec *session.Record, now time.Time) error {
	r, err := encodeSession(rec)
	if err != nil {
		if _, ok := parseID(rec.Session.ID); !ok {
			return session.ErrNotFound
		}
		return err
	}
	var updated int64
	var exists bool
	err = s.pool.QueryRow(ctx, sqlUpdateSession, r.id, r.identityID, r.tokenHash, r.active, r.issuedAt, r.expiresAt, r.record, now).
		Scan(&updated, &exists)
	if isCode(err, codeUniqueViolation) {
		return session.ErrConflict
	}
	if err != nil {
		return fmt.Errorf("pgstore: update session: %w", err)
	}
	return sessionUpdated(updated, exists)
}

// sessionUpdated is the outcome of a conditional session update that wrote
// updated rows, the session existing or not.
func sessionUpdated(updated int64, exists bool) error {
	switch {
	case updated > 0:
		return nil
	case exists:
		return session.ErrInactive
	default:
		return session.ErrNotFound
	}
}

var sqlListSessions = query("ListSessions", `
SELECT `+sessionColumns+` FROM authflow_sessions WHERE identity_id = $1 ORDER BY issued_at DESC, id`)

// ListSessions implements login.SessionStore, through the index on
// (identity_id, issued_at).
func (s *Store) ListSessions(ctx context.Context, identityID string) ([]*session.Record, error) {
	out := []*session.Record{}
	if !storable(identityID) {
		return out, nil
	}
	rows, err := s.pool.Query(ctx, sqlListSessions, identityID)
	if err != nil {
		return nil, fmt.Errorf("pgstore: list sessions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		rec, err := scanSession(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pgstore: list sessions: %w", err)
	}
	return out, nil
}

var sqlRevokeSession = query("RevokeSession", `
UPDATE authflow_sessions SET active = false WHERE id = $1`)

// RevokeSession implements login.SessionStore.
func (s *Store) RevokeSession(ctx context.Context, id string) error {
	id, ok := parseID(id)
	if !ok {
		return session.ErrNotFound
	}
	tag, err := s.pool.Exec(ctx, sqlRevokeSession, id)
	if err != nil {
		return fmt.Errorf("pgstore: revoke session: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return session.ErrNotFound
	}
	return nil
}

var sqlRevokeSessions = query("RevokeSessions", `
UPDATE authflow_sessions SET active = false WHERE identity_id = $1 AND active`)

// RevokeSessions implements login.SessionStore ("sign out everywhere"): one
// statement through the index on identity_id.
func (s *Store) RevokeSessions(ctx context.Context, identityID string) (int, error) {
	if !storable(identityID) {
		return 0, nil
	}
	tag, err := s.pool.Exec(ctx, sqlRevokeSessions, identityID)
	if err != nil {
		return 0, fmt.Errorf("pgstore: revoke sessions: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// The login's completion and its new session are one statement: the
// session is inserted from the completion's RETURNING, so it exists exactly
// when the flow was completed by this call, and a failing insert (a taken
// id or token hash) undoes the completion with it.
var sqlCompleteFlowCreateSession = query("CompleteFlowWithSession", `
WITH `+completeFlowCTE("$16")+`, created AS (
	INSERT INTO authflow_sessions (id, identity_id, token_hash, active, issued_at, expires_at, record)
	SELECT $9::uuid, $10::text, $11::text, $12::boolean, $13::timestamptz, $14::timestamptz, $15::json FROM done
)
SELECT (SELECT version FROM done), EXISTS (SELECT 1 FROM authflow_flows WHERE id = $1)`)

// A refresh updates an existing session on UpdateSession's condition: it
// may have been revoked, may have expired or may be gone. The statement
// reports how many sessions it updated and whether the session exists, and
// runs in a transaction that is rolled back unless both writes happened.
var sqlCompleteFlowUpdateSession = query("CompleteFlowWithSession.update", `
WITH `+completeFlowCTE("$17")+`, updated AS (
	UPDATE authflow_sessions SET identity_id = $10, token_hash = $11, active = $12, issued_at = $13, expires_at = $14, record = $15
	FROM done WHERE authflow_sessions.id = $9 AND authflow_sessions.active AND authflow_sessions.expires_at > $16
	RETURNING 1
)
SELECT (SELECT version FROM done), EXISTS (SELECT 1 FROM authflow_flows WHERE id = $1), (SELECT count(*) FROM updated),
	EXISTS (SELECT 1 FROM authflow_sessions WHERE id = $9)`)

// CompleteFlowWithSession implements login.FlowSessionCompleter: it
// completes the flow as CompleteFlow does and creates or updates s, both or
// neither. A login (create) is a single statement. A refresh (update) is a
// transaction of one statement, whose session update has UpdateSession's
// condition at now: session.ErrInactive if the stored session is revoked or
// expired, session.ErrNotFound if it is gone, and in either case the
// completion is rolled back, leaving the flow as it was.
func (s *Store) CompleteFlowWithSession(ctx context.Context, rec *flow.Record, sess *session.Record, create bool, now time.Time) error {
	r, err := encodeFlow(rec, flow.StatePassedChallenge)
	if err != nil {
		if _, ok := parseID(rec.Flow.ID); !ok {
			return flow.ErrNotFound
		}
		return err
	}
	sr, err := encodeSession(sess)
	if err != nil {
		if _, ok := parseID(sess.Session.ID); !ok && !create {
			return session.ErrNotFound
		}
		return err
	}
	args := r.completeArgs(sr.id, sr.identityID, sr.tokenHash, sr.active, sr.issuedAt, sr.expiresAt, sr.record)
	var version *int64
	var exists bool
	if create {
		err := s.pool.QueryRow(ctx, sqlCompleteFlowCreateSession, append(args, r.tag)...).Scan(&version, &exists)
		if isCode(err, codeUniqueViolation) {
			return session.ErrConflict
		}
		if err != nil {
			return fmt.Errorf("pgstore: complete flow with session: %w", err)
		}
		return s.completed(r, rec, version, exists)
	}
	var outcome error // the session's, when the flow was completed
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var updated int64
		var sessionExists bool
		if err := tx.QueryRow(ctx, sqlCompleteFlowUpdateSession, append(args, now, r.tag)...).
			Scan(&version, &exists, &updated, &sessionExists); err != nil {
			return err
		}
		if version != nil && updated == 0 {
			outcome = sessionUpdated(updated, sessionExists)
			return outcome // rolls the completion back
		}
		return nil
	})
	switch {
	case outcome != nil:
		return outcome
	case isCode(err, codeUniqueViolation):
		return session.ErrConflict
	case err != nil:
		return fmt.Errorf("pgstore: complete flow with session: %w", err)
	}
	return s.completed(r, rec, version, exists)
}
