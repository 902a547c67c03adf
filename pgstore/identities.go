package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/session"
)

// identityRow is an identity as the columns of authflow_identities.
type identityRow struct {
	id             string
	state          string
	stateChangedAt *time.Time
	updatedAt      time.Time
	record         []byte
}

func encodeIdentity(id *session.Identity) (identityRow, error) {
	if !storable(id.ID) {
		return identityRow{}, fmt.Errorf("pgstore: identity id %q is not storable text", id.ID)
	}
	record, err := json.Marshal(id)
	if err != nil {
		return identityRow{}, fmt.Errorf("pgstore: encode identity %s: %w", id.ID, err)
	}
	return identityRow{id: id.ID, state: string(id.State), stateChangedAt: id.StateChangedAt, updatedAt: id.UpdatedAt, record: record}, nil
}

const identityColumns = `i.state, i.state_changed_at, i.updated_at, i.record`

// decodeIdentity builds an identity from its record and the columns that
// override it.
func decodeIdentity(state string, stateChangedAt *time.Time, updatedAt time.Time, record []byte) (*session.Identity, error) {
	id := &session.Identity{}
	if err := json.Unmarshal(record, id); err != nil {
		return nil, fmt.Errorf("pgstore: decode identity: %w", err)
	}
	id.State = session.State(state)
	id.StateChangedAt = stateChangedAt
	id.UpdatedAt = updatedAt
	if string(id.Traits) == "null" {
		id.Traits = nil
	}
	if string(id.MetadataPublic) == "null" {
		id.MetadataPublic = nil
	}
	return id, nil
}

// credentialIdentifiers returns c's identifiers without duplicates, for the
// index; an identifier PostgreSQL cannot store is an error.
func credentialIdentifiers(c *session.Credential) ([]string, error) {
	if !storable(string(c.Type)) {
		return nil, fmt.Errorf("pgstore: credential type %q is not storable text", c.Type)
	}
	out := make([]string, 0, len(c.Identifiers))
	for _, ident := range c.Identifiers {
		if !storable(ident) {
			return nil, fmt.Errorf("pgstore: a %s identifier is not storable text", c.Type)
		}
		if !slices.Contains(out, ident) {
			out = append(out, ident)
		}
	}
	return out, nil
}

// identifiersOrEmpty keeps a nil list from becoming NULL.
func identifiersOrEmpty(ids []string) []string {
	if ids == nil {
		return []string{}
	}
	return ids
}

var (
	sqlInsertIdentity = query("CreateIdentity", `
INSERT INTO authflow_identities (id, state, state_changed_at, updated_at, record) VALUES ($1, $2, $3, $4, $5)`)
	sqlInsertCredential = query("CreateIdentity.credential", `
INSERT INTO authflow_credentials (identity_id, type, identifiers, config, version) VALUES ($1, $2, $3, $4, 1)`)
	sqlInsertIdentifiers = query("CreateIdentity.identifiers", `
INSERT INTO authflow_credential_identifiers (type, identifier, identity_id) SELECT $2, unnest($3::text[]), $1`)
)

// CreateIdentity implements login.IdentityStore, in one transaction:
// session.ErrConflict, storing nothing, if the id or an identifier of the
// same type is taken.
func (s *Store) CreateIdentity(ctx context.Context, id *session.Identity, creds ...session.Credential) error {
	r, err := encodeIdentity(id)
	if err != nil {
		return err
	}
	type credRow struct {
		typ         string
		identifiers []string
		index       []string
		config      []byte
	}
	rows := make([]credRow, 0, len(creds))
	for i := range creds {
		c := &creds[i]
		index, err := credentialIdentifiers(c)
		if err != nil {
			return err
		}
		if !json.Valid(c.Config) {
			return fmt.Errorf("pgstore: %s credential config is not JSON", c.Type)
		}
		rows = append(rows, credRow{string(c.Type), identifiersOrEmpty(slices.Clone(c.Identifiers)), index, slices.Clone(c.Config)})
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		b.Queue(sqlInsertIdentity, r.id, r.state, r.stateChangedAt, r.updatedAt, r.record)
		for _, c := range rows {
			b.Queue(sqlInsertCredential, r.id, c.typ, c.identifiers, c.config)
			b.Queue(sqlInsertIdentifiers, r.id, c.typ, c.index)
		}
		return tx.SendBatch(ctx, b).Close()
	})
	if isCode(err, codeUniqueViolation) {
		return session.ErrConflict
	}
	if err != nil {
		return fmt.Errorf("pgstore: create identity: %w", err)
	}
	for i := range creds {
		creds[i].Version = 1
	}
	return nil
}

var sqlIdentity = query("Identity", `
SELECT `+identityColumns+` FROM authflow_identities i WHERE i.id = $1`)

// Identity implements login.IdentityStore.
func (s *Store) Identity(ctx context.Context, id string) (*session.Identity, error) {
	if !storable(id) {
		return nil, session.ErrNotFound
	}
	var state string
	var changed *time.Time
	var updated time.Time
	var record []byte
	err := s.pool.QueryRow(ctx, sqlIdentity, id).Scan(&state, &changed, &updated, &record)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, session.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("pgstore: read identity: %w", err)
	}
	return decodeIdentity(state, changed, updated, record)
}

var sqlFindIdentity = query("FindIdentity", `
SELECT `+identityColumns+`, c.identifiers, c.config, c.version
FROM authflow_credential_identifiers ci
JOIN authflow_credentials c ON c.identity_id = ci.identity_id AND c.type = ci.type
JOIN authflow_identities i ON i.id = ci.identity_id
WHERE ci.type = $1 AND ci.identifier = $2`)

// FindIdentity implements login.IdentityStore: one indexed lookup of
// (type, identifier) joined with the credential and the identity.
func (s *Store) FindIdentity(ctx context.Context, typ session.CredentialType, identifier string) (*session.Identity, *session.Credential, error) {
	if !storable(string(typ)) || !storable(identifier) {
		return nil, nil, session.ErrNotFound
	}
	var state string
	var changed *time.Time
	var updated time.Time
	var record []byte
	c := &session.Credential{Type: typ}
	var config []byte
	err := s.pool.QueryRow(ctx, sqlFindIdentity, string(typ), identifier).Scan(&state, &changed, &updated, &record, &c.Identifiers, &config, &c.Version)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil, session.ErrNotFound
	}
	if err != nil {
		return nil, nil, fmt.Errorf("pgstore: find identity: %w", err)
	}
	id, err := decodeIdentity(state, changed, updated, record)
	if err != nil {
		return nil, nil, err
	}
	c.Config = config
	return id, c, nil
}

var sqlFindIdentityWithCredentials = query("FindIdentityWithCredentials", `
SELECT `+identityColumns+`, c.type, c.identifiers, c.config, c.version
FROM authflow_credential_identifiers ci
JOIN authflow_identities i ON i.id = ci.identity_id
JOIN authflow_credentials c ON c.identity_id = ci.identity_id
WHERE ci.type = $1 AND ci.identifier = $2`)

// FindIdentityWithCredentials implements login.IdentityCredentialsFinder:
// FindIdentity's lookup joined with all of the identity's credentials
// (ordered by type, here rather than in the statement), in one statement.
func (s *Store) FindIdentityWithCredentials(ctx context.Context, typ session.CredentialType, identifier string) (*session.Identity, *session.Credential, []session.Credential, error) {
	if !storable(string(typ)) || !storable(identifier) {
		return nil, nil, nil, session.ErrNotFound
	}
	rows, err := s.pool.Query(ctx, sqlFindIdentityWithCredentials, string(typ), identifier)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("pgstore: find identity: %w", err)
	}
	defer rows.Close()
	var (
		id    *session.Identity
		creds []session.Credential
	)
	for rows.Next() {
		var (
			state   string
			changed *time.Time
			updated time.Time
			record  []byte
			c       session.Credential
			ctype   string
			config  []byte
		)
		if err := rows.Scan(&state, &changed, &updated, &record, &ctype, &c.Identifiers, &config, &c.Version); err != nil {
			return nil, nil, nil, fmt.Errorf("pgstore: find identity: %w", err)
		}
		if id == nil { // the identity's columns repeat on every row
			if id, err = decodeIdentity(state, changed, updated, record); err != nil {
				return nil, nil, nil, err
			}
		}
		c.Type, c.Config = session.CredentialType(ctype), config
		creds = append(creds, c)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, nil, fmt.Errorf("pgstore: find identity: %w", err)
	}
	l := lookupOf(id, login.IdentityQuery{Type: typ, Credentials: true}, creds)
	if l == nil {
		return nil, nil, nil, session.ErrNotFound
	}
	return l.Identity, l.Credential, l.Credentials, nil
}

var sqlCredentials = query("Credentials", `
SELECT c.type, c.identifiers, c.config, c.version
FROM authflow_identities i LEFT JOIN authflow_credentials c ON c.identity_id = i.id
WHERE i.id = $1 ORDER BY c.type`)

// Credentials implements login.IdentityStore; the credentials are ordered
// by type.
func (s *Store) Credentials(ctx context.Context, identityID string) ([]session.Credential, error) {
	if !storable(identityID) {
		return nil, session.ErrNotFound
	}
	rows, err := s.pool.Query(ctx, sqlCredentials, identityID)
	if err != nil {
		return nil, fmt.Errorf("pgstore: read credentials: %w", err)
	}
	defer rows.Close()
	found := false
	out := []session.Credential{}
	for rows.Next() {
		found = true
		var typ *string
		var identifiers []string
		var config []byte
		var version *int64
		if err := rows.Scan(&typ, &identifiers, &config, &version); err != nil {
			return nil, fmt.Errorf("pgstore: read credentials: %w", err)
		}
		if typ == nil {
			continue // the identity has no credential
		}
		out = append(out, session.Credential{Type: session.CredentialType(*typ), Identifiers: identifiers, Config: config, Version: *version})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pgstore: read credentials: %w", err)
	}
	if !found {
		return nil, session.ErrNotFound
	}
	return out, nil
}

var sqlUpdateIdentity = query("UpdateIdentity", `
UPDATE authflow_identities SET state = $2, state_changed_at = $3, updated_at = $4, record = $5 WHERE id = $1`)

// UpdateIdentity implements login.IdentityStore.
func (s *Store) UpdateIdentity(ctx context.Context, id *session.Identity) error {
	if !storable(id.ID) {
		return session.ErrNotFound
	}
	r, err := encodeIdentity(id)
	if err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, sqlUpdateIdentity, r.id, r.state, r.stateChangedAt, r.updatedAt, r.record)
	if err != nil {
		return fmt.Errorf("pgstore: update identity: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return session.ErrNotFound
	}
	return nil
}

var sqlDisableIdentity = query("DisableIdentity", `
WITH disabled AS (
	UPDATE authflow_identities SET state = 'inactive', state_changed_at = $2, updated_at = $2
	WHERE id = $1
	RETURNING id
), revoked AS (
	UPDATE authflow_sessions SET active = false
	WHERE identity_id = $1 AND active AND EXISTS (SELECT 1 FROM disabled)
	RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM disabled), (SELECT count(*) FROM revoked)`)

// DisableIdentity makes the identity inactive as of at (it can no longer
// log in) and revokes all its sessions, in one statement, and returns how
// many sessions were active; session.ErrNotFound if there is no such
// identity. Sessions are found through the index on identity_id.
func (s *Store) DisableIdentity(ctx context.Context, identityID string, at time.Time) (int, error) {
	if !storable(identityID) {
		return 0, session.ErrNotFound
	}
	var found bool
	var revoked int64
	if err := s.pool.QueryRow(ctx, sqlDisableIdentity, identityID, at).Scan(&found, &revoked); err != nil {
		return 0, fmt.Errorf("pgstore: disable identity: %w", err)
	}
	if !found {
		return 0, session.ErrNotFound
	}
	return int(revoked), nil
}

var (
	sqlUpdateCredential = query("UpdateCredential", `
UPDATE authflow_credentials SET identifiers = $3, config = $4, version = version + 1
WHERE identity_id = $1 AND type = $2 AND version = $5
RETURNING version`)
	sqlCredentialState = query("UpdateCredential.state", `
SELECT EXISTS (SELECT 1 FROM authflow_identities WHERE id = $1),
	EXISTS (SELECT 1 FROM authflow_credentials WHERE identity_id = $1 AND type = $2)`)
	sqlAddCredential = query("UpdateCredential.add", `
INSERT INTO authflow_credentials (identity_id, type, identifiers, config, version) VALUES ($1, $2, $3, $4, 1)`)
	sqlDropIdentifiers = query("UpdateCredential.unindex", `
DELETE FROM authflow_credential_identifiers WHERE identity_id = $1 AND type = $2`)
	sqlIndexIdentifiers = query("UpdateCredential.index", `
INSERT INTO authflow_credential_identifiers (type, identifier, identity_id) SELECT $2, unnest($3::text[]), $1`)
)

// UpdateCredential implements login.IdentityStore, in one transaction: a
// conditional update on the stored version (or the insertion of a new
// type), then the identifiers re-indexed; an identifier of another
// identity violates the index's key and rolls everything back.
func (s *Store) UpdateCredential(ctx context.Context, identityID string, c *session.Credential) error {
	if !storable(identityID) {
		return session.ErrNotFound
	}
	index, err := credentialIdentifiers(c)
	if err != nil {
		return err
	}
	if !json.Valid(c.Config) {
		return fmt.Errorf("pgstore: %s credential config is not JSON", c.Type)
	}
	identifiers := identifiersOrEmpty(c.Identifiers)
	config := []byte(c.Config)
	var version int64
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, sqlUpdateCredential, identityID, string(c.Type), identifiers, config, c.Version).Scan(&version)
		if errors.Is(err, pgx.ErrNoRows) {
			var identityExists, credentialExists bool
			if err := tx.QueryRow(ctx, sqlCredentialState, identityID, string(c.Type)).Scan(&identityExists, &credentialExists); err != nil {
				return err
			}
			switch {
			case !identityExists:
				return session.ErrNotFound
			case credentialExists:
				return session.ErrConflict // another version is stored
			}
			if _, err := tx.Exec(ctx, sqlAddCredential, identityID, string(c.Type), identifiers, config); err != nil {
				return err
			}
			version = 1
		} else if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, sqlDropIdentifiers, identityID, string(c.Type)); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, sqlIndexIdentifiers, identityID, string(c.Type), index)
		return err
	})
	switch {
	case errors.Is(err, session.ErrNotFound), errors.Is(err, session.ErrConflict):
		return err
	case isCode(err, codeUniqueViolation):
		return session.ErrConflict
	case isCode(err, codeForeignKeyViolation):
		return session.ErrNotFound // the identity was deleted meanwhile
	case err != nil:
		return fmt.Errorf("pgstore: update credential: %w", err)
	}
	c.Version = version
	return nil
}
