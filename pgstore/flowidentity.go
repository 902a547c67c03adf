package pgstore

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/session"
)

// The flow and the identity a submission names, in one statement: the
// flow's row (part 0) and then a row per credential of the identity
// (part 1), which the part column tells apart whatever order they come
// in. Without the identity's other credentials, only the matching one is
// joined.
var (
	sqlFlowPart = `
SELECT 0 AS part, ` + flowColumns("$4", "$5") + `,
	NULL::text, NULL::timestamptz, NULL::timestamptz, NULL::json, NULL::text, NULL::text[], NULL::json, NULL::bigint
FROM authflow_flows f WHERE f.id = $1
UNION ALL
SELECT 1, NULL, NULL, NULL, NULL, NULL, NULL, ` + identityColumns + `, c.type, c.identifiers, c.config, c.version
FROM authflow_credential_identifiers ci
JOIN authflow_identities i ON i.id = ci.identity_id
JOIN authflow_credentials c ON c.identity_id = ci.identity_id`
	sqlIdentityCondition = `
WHERE ci.type = $2 AND ci.identifier = $3`
)

var (
	sqlFlowWithIdentity = query("FlowWithIdentity", sqlFlowPart+` AND c.type = ci.type`+sqlIdentityCondition)

	sqlFlowWithIdentityCredentials = query("FlowWithIdentityCredentials", sqlFlowPart+sqlIdentityCondition)
)

// FlowWithIdentity implements login.FlowIdentityLoader: the flow and the
// identity q names, with the credential that matched and, when q asks for
// them, all of its credentials (ordered by type), in one round trip.
func (s *Store) FlowWithIdentity(ctx context.Context, flowID string, q login.IdentityQuery) (*flow.Record, *login.IdentityLookup, error) {
	id, ok := parseID(flowID)
	if !ok {
		return nil, nil, flow.ErrNotFound
	}
	if !storable(string(q.Type)) || !storable(q.Identifier) {
		rec, err := s.Flow(ctx, id) // no identity can match
		return rec, nil, err
	}
	sql := sqlFlowWithIdentity
	if q.Credentials {
		sql = sqlFlowWithIdentityCredentials
	}
	for tag, version := s.flows.held(id); ; tag, version = nil, nil {
		rec, l, err := s.flowWithIdentity(ctx, sql, id, q, tag, version)
		if err == nil && rec == nil {
			continue // the copy it named was replaced meanwhile: read it all
		}
		return rec, l, err
	}
}

// flowWithIdentity is one try of FlowWithIdentity, naming the flow's copy
// by its tag and version (nil: none); a nil flow and no error when that
// copy was replaced after the read began.
func (s *Store) flowWithIdentity(ctx context.Context, sql, id string, q login.IdentityQuery, tag, version *int64) (*flow.Record, *login.IdentityLookup, error) {
	rows, err := s.pool.Query(ctx, sql, id, string(q.Type), q.Identifier, tag, version)
	if err != nil {
		return nil, nil, fmt.Errorf("pgstore: read flow: %w", err)
	}
	defer rows.Close()
	var (
		flowRow  *flowRead
		identity *session.Identity
		creds    []session.Credential
	)
	for rows.Next() {
		var (
			part             int
			f                flowRead
			csrf, sessionID  *string
			version, tag     *int64
			idState          *string
			changed, updated *time.Time
			idRecord         []byte
			ctype            *string
			identifiers      []string
			config           []byte
			cversion         *int64
		)
		if err := rows.Scan(&part, &f.record, &f.methodState, &csrf, &sessionID, &version, &tag,
			&idState, &changed, &updated, &idRecord, &ctype, &identifiers, &config, &cversion); err != nil {
			return nil, nil, fmt.Errorf("pgstore: read flow: %w", err)
		}
		if part == 0 {
			f.csrfTokenHash, f.sessionID, f.version, f.tag = *csrf, *sessionID, *version, *tag
			flowRow = &f
			continue
		}
		if identity == nil { // the identity's columns repeat on every row
			if identity, err = decodeIdentity(*idState, changed, *updated, idRecord); err != nil {
				return nil, nil, err
			}
		}
		creds = append(creds, session.Credential{Type: session.CredentialType(*ctype), Identifiers: identifiers, Config: config, Version: *cversion})
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("pgstore: read flow: %w", err)
	}
	if flowRow == nil {
		return nil, nil, flow.ErrNotFound
	}
	rec, err := s.flowOf(id, flowRow)
	if err != nil || rec == nil {
		return nil, nil, err
	}
	return rec, lookupOf(identity, q, creds), nil
}

// lookupOf is the lookup of q that found identity with creds (nil when
// it found nothing): every credential when q asks for them, ordered by
// type, else the matching one alone.
func lookupOf(identity *session.Identity, q login.IdentityQuery, creds []session.Credential) *login.IdentityLookup {
	slices.SortFunc(creds, func(a, b session.Credential) int { return cmp.Compare(a.Type, b.Type) })
	for i := range creds {
		if creds[i].Type != q.Type {
			continue
		}
		l := &login.IdentityLookup{Identity: identity, Credential: creds[i].Clone()}
		if q.Credentials {
			l.Credentials = creds
		}
		return l
	}
	return nil
}
