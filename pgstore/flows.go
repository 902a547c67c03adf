package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/authflow/authflow/flow"
)

// flowRow is a flow record as the columns of authflow_flows.
type flowRow struct {
	id            string
	typ           string
	state         string
	expiresAt     time.Time
	csrfTokenHash string
	sessionID     string
	methodState   []byte // nil: NULL
	record        []byte
	updatedAt     time.Time
	tag           int64 // the write's tag (see flowCache)
}

// encodeFlow returns rec's columns, with state as the stored state.
func encodeFlow(rec *flow.Record, state flow.State) (flowRow, error) {
	id, ok := parseID(rec.Flow.ID)
	if !ok {
		return flowRow{}, fmt.Errorf("pgstore: flow id %q is not a UUID", rec.Flow.ID)
	}
	f := rec.Flow
	f.State = state
	record, err := json.Marshal(&f)
	if err != nil {
		return flowRow{}, fmt.Errorf("pgstore: encode flow: %w", err)
	}
	var methodState []byte
	if rec.MethodState != nil {
		if methodState, err = json.Marshal(rec.MethodState); err != nil {
			return flowRow{}, fmt.Errorf("pgstore: encode method state: %w", err)
		}
	}
	return flowRow{
		id:            id,
		typ:           string(f.Type),
		state:         string(state),
		expiresAt:     f.ExpiresAt,
		csrfTokenHash: rec.CSRFTokenHash,
		sessionID:     rec.SessionID,
		methodState:   methodState,
		record:        record,
		updatedAt:     f.UpdatedAt,
		tag:           newWriteTag(),
	}, nil
}

// asyncCommit, as a FROM item of a statement that runs in its own
// implicit transaction, makes that transaction commit without waiting for
// its WAL to reach the disk (synchronous_commit off, local to the
// transaction): flows and throttling counters are disposable, so a
// database crash may lose their last fraction of a second, but sessions,
// identities and credentials, written by other statements, stay durable.
// The statement answers as soon as its write is visible to every other
// connection, which is all the handler's checks need.
const asyncCommit = `(SELECT set_config('synchronous_commit', 'off', true)) AS async_commit`

var sqlCreateFlow = query("CreateFlow", `
INSERT INTO authflow_flows (id, type, state, version, expires_at, csrf_token_hash, session_id, method_state, record, updated_at, write_tag)
SELECT $1::uuid, $2::text, $3::text, 1, $4::timestamptz, $5::text, $6::text, $7::json, $8::json, $9::timestamptz, $10::bigint FROM `+asyncCommit)

// CreateFlow implements login.FlowStore.
func (s *Store) CreateFlow(ctx context.Context, rec *flow.Record) error {
	r, err := encodeFlow(rec, rec.Flow.State)
	if err != nil {
		return err
	}
	_, err = s.pool.Exec(ctx, sqlCreateFlow, r.id, r.typ, r.state, r.expiresAt, r.csrfTokenHash, r.sessionID, r.methodState, r.record, r.updatedAt, r.tag)
	if isCode(err, codeUniqueViolation) {
		return flow.ErrConflict
	}
	if err != nil {
		return fmt.Errorf("pgstore: create flow: %w", err)
	}
	rec.Version = 1
	s.flows.put(r.id, r.tag, rec)
	return nil
}

// flowColumns are the columns a read of a flow f selects: the record and
// method state only when the row's write tag and version are not the
// parameters tag and version, those of the copy the reader holds (NULL:
// none).
func flowColumns(tag, version string) string {
	held := `f.write_tag = ` + tag + `::bigint AND f.version = ` + version + `::bigint`
	return `CASE WHEN ` + held + ` THEN NULL ELSE f.record END,
	CASE WHEN ` + held + ` THEN NULL ELSE f.method_state END,
	f.csrf_token_hash, f.session_id, f.version, f.write_tag`
}

var sqlFlow = query("Flow", `
SELECT `+flowColumns("$2", "$3")+` FROM authflow_flows f WHERE f.id = $1`)

// Flow implements login.FlowStore. Expired flows are returned until Sweep
// removes them, flow.Retention after their expiry.
func (s *Store) Flow(ctx context.Context, id string) (*flow.Record, error) {
	id, ok := parseID(id)
	if !ok {
		return nil, flow.ErrNotFound
	}
	for tag, version := s.flows.held(id); ; tag, version = nil, nil {
		var row flowRead
		err := s.pool.QueryRow(ctx, sqlFlow, id, tag, version).Scan(row.dest()...)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, flow.ErrNotFound
		}
		if err != nil {
			return nil, fmt.Errorf("pgstore: read flow: %w", err)
		}
		rec, err := s.flowOf(id, &row)
		if err == nil && rec == nil {
			continue // the copy it named was replaced meanwhile: read it all
		}
		return rec, err
	}
}

// flowRead is a flow's row as flowColumns select it.
type flowRead struct {
	record, methodState []byte
	csrfTokenHash       string
	sessionID           string
	version             int64
	tag                 int64
}

func (r *flowRead) dest() []any {
	return []any{&r.record, &r.methodState, &r.csrfTokenHash, &r.sessionID, &r.version, &r.tag}
}

// flowOf returns the flow with id that row was read from: decoded from the
// row, or, when the row left its record out, the cached copy it matches
// (nil if that copy was replaced after the read began).
func (s *Store) flowOf(id string, row *flowRead) (*flow.Record, error) {
	var rec *flow.Record
	if row.record == nil {
		var ok bool
		if rec, ok = s.flows.get(id, row.tag, row.version); !ok {
			return nil, nil
		}
	} else {
		rec = &flow.Record{}
		if err := json.Unmarshal(row.record, &rec.Flow); err != nil {
			return nil, fmt.Errorf("pgstore: decode flow %s: %w", id, err)
		}
		if row.methodState != nil {
			if err := json.Unmarshal(row.methodState, &rec.MethodState); err != nil {
				return nil, fmt.Errorf("pgstore: decode method state of flow %s: %w", id, err)
			}
		}
	}
	rec.CSRFTokenHash, rec.SessionID, rec.Version = row.csrfTokenHash, row.sessionID, row.version
	if row.record != nil {
		s.flows.put(id, row.tag, rec)
	}
	return rec, nil
}

// The conditional writes answer in one round trip: the new version when the
// row was written, and whether the flow exists (in the statement's
// snapshot), which tells a lost condition from an unknown id.
var sqlUpdateFlow = query("UpdateFlow", `
WITH upd AS (
	UPDATE authflow_flows
	SET type = $3, state = $4, version = version + 1, expires_at = $5, csrf_token_hash = $6,
		session_id = $7, method_state = $8, record = $9, updated_at = $10, write_tag = $11
	WHERE id = $1 AND version = $2
	RETURNING version
)
SELECT (SELECT version FROM upd), EXISTS (SELECT 1 FROM authflow_flows WHERE id = $1) FROM `+asyncCommit)

// UpdateFlow implements login.FlowStore: the row is replaced only while
// its version is rec.Version.
func (s *Store) UpdateFlow(ctx context.Context, rec *flow.Record) error {
	r, err := encodeFlow(rec, rec.Flow.State)
	if err != nil {
		if _, ok := parseID(rec.Flow.ID); !ok {
			return flow.ErrNotFound
		}
		return err
	}
	var version *int64
	var exists bool
	err = s.pool.QueryRow(ctx, sqlUpdateFlow, r.id, rec.Version, r.typ, r.state, r.expiresAt, r.csrfTokenHash,
		r.sessionID, r.methodState, r.record, r.updatedAt, r.tag).Scan(&version, &exists)
	if err != nil {
		return fmt.Errorf("pgstore: update flow: %w", err)
	}
	switch {
	case version != nil:
		rec.Version = *version
		s.flows.put(r.id, r.tag, rec)
		return nil
	case exists:
		return flow.ErrConflict
	default:
		return flow.ErrNotFound
	}
}

// completeFlowCTE is the single-use completion: only a row not yet
// completed is written. Under concurrent completions the row lock
// serialises them and each later one re-checks the condition on the
// committed row, so exactly one wins.
func completeFlowCTE(tagParam string) string {
	return `
done AS (
	UPDATE authflow_flows
	SET state = 'passed_challenge', version = version + 1, type = $2, expires_at = $3,
		csrf_token_hash = $4, session_id = $5, method_state = $6, record = $7, updated_at = $8,
		write_tag = ` + tagParam + `
	WHERE id = $1 AND state <> 'passed_challenge'
	RETURNING version
)`
}

var sqlCompleteFlow = query("CompleteFlow", `
WITH `+completeFlowCTE("$9")+`
SELECT (SELECT version FROM done), EXISTS (SELECT 1 FROM authflow_flows WHERE id = $1)`)

// CompleteFlow implements login.FlowStore: of concurrent callers, on any
// number of instances, exactly one succeeds.
func (s *Store) CompleteFlow(ctx context.Context, rec *flow.Record) error {
	r, err := encodeFlow(rec, flow.StatePassedChallenge)
	if err != nil {
		if _, ok := parseID(rec.Flow.ID); !ok {
			return flow.ErrNotFound
		}
		return err
	}
	var version *int64
	var exists bool
	err = s.pool.QueryRow(ctx, sqlCompleteFlow, r.completeArgs(r.tag)...).Scan(&version, &exists)
	if err != nil {
		return fmt.Errorf("pgstore: complete flow: %w", err)
	}
	return s.completed(r, rec, version, exists)
}

// completeArgs are the parameters $1 to $8 of completeFlowCTE, then more.
func (r flowRow) completeArgs(more ...any) []any {
	return append([]any{r.id, r.typ, r.expiresAt, r.csrfTokenHash, r.sessionID, r.methodState, r.record, r.updatedAt}, more...)
}

// completed applies the outcome of a completion of rec, written as r, to
// rec. A completed flow is seldom read again, so its copy is dropped
// rather than renewed.
func (s *Store) completed(r flowRow, rec *flow.Record, version *int64, exists bool) error {
	switch {
	case version != nil:
		rec.Flow.State = flow.StatePassedChallenge
		rec.Version = *version
		s.flows.forget(r.id)
		return nil
	case exists:
		return flow.ErrCompleted
	default:
		return flow.ErrNotFound
	}
}

var sqlCreateError = query("CreateError", `
INSERT INTO authflow_errors (id, error, created_at, updated_at) VALUES ($1, $2, $3, $4)`)

// CreateError implements login.FlowStore.
func (s *Store) CreateError(ctx context.Context, rec *flow.ErrorRecord) error {
	id, ok := parseID(rec.ID)
	if !ok {
		return fmt.Errorf("pgstore: error id %q is not a UUID", rec.ID)
	}
	if !json.Valid(rec.Error) {
		return fmt.Errorf("pgstore: error %s is not JSON", id)
	}
	_, err := s.pool.Exec(ctx, sqlCreateError, id, []byte(rec.Error), rec.CreatedAt, rec.UpdatedAt)
	if isCode(err, codeUniqueViolation) {
		return flow.ErrConflict
	}
	if err != nil {
		return fmt.Errorf("pgstore: create error: %w", err)
	}
	return nil
}

var sqlError = query("Error", `
SELECT error, created_at, updated_at FROM authflow_errors WHERE id = $1`)

// Error implements login.FlowStore. Errors are kept until Sweep removes
// them, flow.Retention after their creation.
func (s *Store) Error(ctx context.Context, id string) (*flow.ErrorRecord, error) {
	id, ok := parseID(id)
	if !ok {
		return nil, flow.ErrNotFound
	}
	rec := &flow.ErrorRecord{ID: id}
	var body []byte
	err := s.pool.QueryRow(ctx, sqlError, id).Scan(&body, &rec.CreatedAt, &rec.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, flow.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("pgstore: read error: %w", err)
	}
	rec.Error = body
	return rec, nil
}
