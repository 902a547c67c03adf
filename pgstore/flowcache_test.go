package pgstore_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/internal/uuid"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/pgstore"
	"github.com/authflow/authflow/session"
)

// A Store reads back the flow it wrote without being sent its record:
// with the record garbled in the row behind its back (the write tag
// unchanged), it still returns the flow it wrote, while another Store,
// which holds no copy, is sent the garbled record. A write by the other
// Store changes the tag, and the first then reads the new record.
func TestFlowReadBackWithoutItsRecord(t *testing.T) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	a, pool := newStore(t)
	b := pgstore.New(pool) // another instance: its own copies

	rec := testFlow(now)
	require.NoError(t, a.CreateFlow(ctx, rec))
	_, err := pool.Exec(ctx, `UPDATE authflow_flows SET record = '{"id": "garbled", "type": "browser"}' WHERE id = $1`, rec.Flow.ID)
	require.NoError(t, err)

	got, err := a.Flow(ctx, rec.Flow.ID)
	require.NoError(t, err)
	assert.Equal(t, rec.Flow.ID, got.Flow.ID, "the writer's copy, not the row's record")
	assert.Equal(t, flow.TypeAPI, got.Flow.Type)
	got, _, err = a.FlowWithIdentity(ctx, rec.Flow.ID, login.IdentityQuery{Type: session.CredentialPassword, Identifier: "nobody"})
	require.NoError(t, err)
	assert.Equal(t, flow.TypeAPI, got.Flow.Type, "the same with the identity")

	other, err := b.Flow(ctx, rec.Flow.ID)
	require.NoError(t, err)
	assert.Equal(t, "garbled", other.Flow.ID, "an instance without the copy is sent the record")

	other.Flow.ID = rec.Flow.ID
	other.Flow.Type = flow.TypeBrowser
	require.NoError(t, b.UpdateFlow(ctx, other))
	got, err = a.Flow(ctx, rec.Flow.ID)
	require.NoError(t, err)
	assert.Equal(t, flow.TypeBrowser, got.Flow.Type, "another instance's write is read, not the old copy")
	assert.Equal(t, other.Version, got.Version)
}

// Every write path leaves the writer's copy agreeing with the row, and
// another instance's writes are seen by the first, across updates,
// completions (with and without a session) and reopening.
func TestFlowCopiesFollowEveryWrite(t *testing.T) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	a, pool := newStore(t)
	b := pgstore.New(pool)
	fresh := func() *pgstore.Store { return pgstore.New(pool) } // no copies: reads the row

	same := func(t *testing.T, id string) {
		t.Helper()
		for _, st := range []*pgstore.Store{a, b} {
			got, err := st.Flow(ctx, id)
			require.NoError(t, err)
			want, err := fresh().Flow(ctx, id)
			require.NoError(t, err)
			assert.Equal(t, want.Version, got.Version)
			assert.Equal(t, want.Flow.State, got.Flow.State)
			assert.Equal(t, want.Flow.Active, got.Flow.Active)
			assert.Equal(t, want.SessionID, got.SessionID)
			assert.Equal(t, want.CSRFTokenHash, got.CSRFTokenHash)
			assert.Equal(t, want.MethodState, got.MethodState)
			assert.Equal(t, len(want.Flow.UI.Nodes), len(got.Flow.UI.Nodes))
		}
	}

	rec := testFlow(now)
	require.NoError(t, a.CreateFlow(ctx, rec))
	same(t, rec.Flow.ID)

	got, err := b.Flow(ctx, rec.Flow.ID)
	require.NoError(t, err)
	got.MethodState = map[string]json.RawMessage{"code": json.RawMessage(`{"sent":1}`)}
	got.Flow.UI.Nodes = append(got.Flow.UI.Nodes, flow.NewInput(flow.GroupDefault, "code", "text", "", true))
	require.NoError(t, b.UpdateFlow(ctx, got))
	same(t, rec.Flow.ID)

	mine, err := a.Flow(ctx, rec.Flow.ID)
	require.NoError(t, err)
	mine.Flow.Active = "password"
	s := testSession(uuid.New(), now)
	mine.SessionID = s.Session.ID
	require.NoError(t, a.CompleteFlowWithSession(ctx, mine, s, true, now))
	same(t, rec.Flow.ID)

	stale, err := b.Flow(ctx, rec.Flow.ID)
	require.NoError(t, err)
	assert.Equal(t, flow.StatePassedChallenge, stale.Flow.State, "b sees a's completion")
	assert.ErrorIs(t, b.CompleteFlow(ctx, stale), flow.ErrCompleted)

	stale.Flow.State, stale.SessionID = flow.StateChooseMethod, "" // reopened
	require.NoError(t, b.UpdateFlow(ctx, stale))
	same(t, rec.Flow.ID)
	again, err := a.Flow(ctx, rec.Flow.ID)
	require.NoError(t, err)
	require.NoError(t, a.CompleteFlow(ctx, again))
	same(t, rec.Flow.ID)
}

// A flow that failed to be written leaves no copy behind: a conflicting
// update keeps the copy of the stored version.
func TestFlowCopyNotTakenFromAFailedWrite(t *testing.T) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	a, pool := newStore(t)
	b := pgstore.New(pool)

	rec := testFlow(now)
	require.NoError(t, a.CreateFlow(ctx, rec))
	theirs, err := b.Flow(ctx, rec.Flow.ID)
	require.NoError(t, err)
	theirs.Flow.Active = "code"
	require.NoError(t, b.UpdateFlow(ctx, theirs))

	rec.Flow.Active = "password" // a's stale version
	assert.ErrorIs(t, a.UpdateFlow(ctx, rec), flow.ErrConflict)
	got, err := a.Flow(ctx, rec.Flow.ID)
	require.NoError(t, err)
	assert.Equal(t, "code", got.Flow.Active, "the stored flow, not the refused write")
}

// A write by an older pgstore, which leaves the write tag as it was but
// increments the version as every flow write does (a rolling upgrade), is
// read rather than the copy.
func TestFlowCopyNotUsedAfterAWriteThatKeepsTheTag(t *testing.T) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	a, pool := newStore(t)

	rec := testFlow(now)
	require.NoError(t, a.CreateFlow(ctx, rec))
	_, err := pool.Exec(ctx, `UPDATE authflow_flows SET version = version + 1, state = 'passed_challenge',
		record = json_build_object('id', id, 'type', 'api', 'state', 'passed_challenge') WHERE id = $1`, rec.Flow.ID)
	require.NoError(t, err)

	got, err := a.Flow(ctx, rec.Flow.ID)
	require.NoError(t, err)
	assert.Equal(t, flow.StatePassedChallenge, got.Flow.State)
	assert.EqualValues(t, 2, got.Version)
	assert.Empty(t, got.Flow.UI.Nodes, "the row's record, not the copy's")
	got, _, err = a.FlowWithIdentity(ctx, rec.Flow.ID, login.IdentityQuery{Type: session.CredentialPassword, Identifier: "nobody"})
	require.NoError(t, err)
	assert.Equal(t, flow.StatePassedChallenge, got.Flow.State)
}
