package logintest

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/internal/uuid"
	"github.com/authflow/authflow/login"
)

// TestFlowStore runs the conformance suite of [login.FlowStore]. newStore
// is called for every subtest and must return an empty store. The suite
// does not test [login.FlowSessionCompleter], which needs a session store
// as well.
func TestFlowStore(t *testing.T, newStore func(t *testing.T) login.FlowStore) {
	t.Helper()
	run(t, newStore, flowTests)
}

var flowTests = []subtest[login.FlowStore]{
	{"create then read round-trips every field", testFlowRoundTrip},
	{"create sets version 1", testFlowCreateVersion},
	{"create with a taken id conflicts", testFlowCreateDuplicate},
	{"unknown id is not found", testFlowNotFound},
	{"returned flow is a copy", testFlowReturnedCopy},
	{"caller's record is copied", testFlowCallerCopy},
	{"expired flow is still returned", testFlowExpired},
	{"update with the current version replaces and bumps version", testFlowUpdate},
	{"update with a stale version conflicts and changes nothing", testFlowUpdateStale},
	{"update of an unknown flow is not found", testFlowUpdateNotFound},
	{"concurrent updates with one version have one winner", testFlowUpdateConcurrent},
	{"complete sets passed_challenge and bumps version", testFlowComplete},
	{"complete twice returns ErrCompleted", testFlowCompleteTwice},
	{"complete of an unknown flow is not found", testFlowCompleteNotFound},
	{"stale update cannot undo a completion", testFlowStaleUpdateAfterComplete},
	{"complete succeeds with a stale version", testFlowCompleteStale},
	{"update with the completed version reopens the flow", testFlowReopen},
	{"concurrent completions have one winner", testFlowCompleteConcurrent},
	{"create error then read round-trips", testErrorRoundTrip},
	{"unknown error is not found", testErrorNotFound},
	{"create error with a taken id conflicts", testErrorDuplicate},
	{"returned error is a copy", testErrorCopy},
}

func label(m flow.Message) *flow.Message { return &m }

// newFlow returns a browser flow with every field set: nodes of all three
// groups with labels and messages (some with context), flow-wide messages,
// and the state of two methods. Each call returns new, unshared values,
// the same for the same arguments.
func newFlow(id string, now time.Time) *flow.Record {
	google := flow.NewInput(flow.GroupOIDC, "provider", "submit", "google", false)
	google.Meta.Label = label(flow.SignInWithProvider("Google", "google"))
	csrf := flow.NewInput(flow.GroupDefault, "csrf_token", "hidden", "kTnP0hb4Yt0TvEYm2ql7sUxcQZJbaEJx", true)
	identifier := flow.NewInput(flow.GroupDefault, "identifier", "text", "alice@example.com", true)
	identifier.Attributes.Autocomplete = "username"
	identifier.Attributes.MaxLength = 320
	identifier.Messages = []flow.Message{flow.TooLong(320, 321)}
	identifier.Meta.Label = label(flow.LabelTitle("E-Mail", "email"))
	password := flow.NewInput(flow.GroupPassword, "password", "password", nil, true)
	password.Attributes.Autocomplete = "current-password"
	password.Messages = []flow.Message{flow.Missing("password")}
	password.Meta.Label = label(flow.LabelPassword())
	submit := flow.NewInput(flow.GroupPassword, "method", "submit", "password", false)
	submit.Meta.Label = label(flow.SignInWithPassword())
	return &flow.Record{
		Flow: flow.Flow{
			ID:         id,
			Type:       flow.TypeBrowser,
			ExpiresAt:  now.Add(time.Hour),
			IssuedAt:   now.Add(-time.Second),
			RequestURL: "https://auth.example.com/self-service/login/browser?refresh=true&return_to=https%3A%2F%2Fapp.example.com%2Fdashboard",
			ReturnTo:   "https://app.example.com/dashboard",
			Active:     "password",
			UI: flow.UI{
				Action:   "https://auth.example.com/self-service/login?flow=" + id,
				Method:   "POST",
				Nodes:    []flow.Node{google, csrf, identifier, password, submit},
				Messages: []flow.Message{flow.InvalidCredentials(), flow.Generic("the flow was tampered with")},
			},
			CreatedAt:    now.Add(-time.Second),
			UpdatedAt:    now,
			Refresh:      true,
			RequestedAAL: flow.AAL1,
			State:        flow.StateChooseMethod,
		},
		CSRFTokenHash: hashOf("csrf token of " + id),
		SessionID:     "6d2c6b9e-3f0e-4a51-9b1e-0c2f7a5e8d41",
		MethodState: map[string]json.RawMessage{
			"oidc":     json.RawMessage(`{"provider": "google", "nonce": "n-0S6_WzA2Mj", "pkce_verifier": "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"}`),
			"password": json.RawMessage(`{"attempts": 2, "last": null}`),
		},
	}
}

// scribbleFlow changes every part of r that a shallow copy would share.
func scribbleFlow(r *flow.Record) {
	ui := &r.Flow.UI
	for i := range ui.Nodes {
		n := &ui.Nodes[i]
		n.Attributes.Value = "scribbled"
		for j := range n.Messages {
			n.Messages[j].Text = "scribbled"
			if ctx := n.Messages[j].Context; ctx != nil {
				for k := range ctx {
					ctx[k] = "scribbled"
				}
				ctx["added"] = "scribbled"
			}
		}
		if n.Meta.Label != nil {
			n.Meta.Label.Text = "scribbled"
			if n.Meta.Label.Context != nil {
				n.Meta.Label.Context["added"] = "scribbled"
			}
		}
	}
	for i := range ui.Messages {
		ui.Messages[i].Text = "scribbled"
		if ui.Messages[i].Context != nil {
			ui.Messages[i].Context["added"] = "scribbled"
		}
	}
	for k, v := range r.MethodState {
		scribble(v)
		r.MethodState[k] = v
	}
	r.MethodState["added"] = json.RawMessage(`{}`)
}

// assertFlowRecord checks that got is want: times as instants, the UI and
// method state as JSON, everything else exactly.
func assertFlowRecord(t testing.TB, want, got *flow.Record) bool {
	t.Helper()
	if !assert.NotNil(t, got, "flow record") {
		return false
	}
	w, g := *want, *got
	ok := assertSameTime(t, w.Flow.ExpiresAt, g.Flow.ExpiresAt, "Flow.ExpiresAt")
	ok = assertSameTime(t, w.Flow.IssuedAt, g.Flow.IssuedAt, "Flow.IssuedAt") && ok
	ok = assertSameTime(t, w.Flow.CreatedAt, g.Flow.CreatedAt, "Flow.CreatedAt") && ok
	ok = assertSameTime(t, w.Flow.UpdatedAt, g.Flow.UpdatedAt, "Flow.UpdatedAt") && ok
	w.Flow.ExpiresAt, g.Flow.ExpiresAt = time.Time{}, time.Time{}
	w.Flow.IssuedAt, g.Flow.IssuedAt = time.Time{}, time.Time{}
	w.Flow.CreatedAt, g.Flow.CreatedAt = time.Time{}, time.Time{}
	w.Flow.UpdatedAt, g.Flow.UpdatedAt = time.Time{}, time.Time{}

	ok = assertJSONOf(t, w.Flow.UI, g.Flow.UI, "Flow.UI") && ok
	w.Flow.UI, g.Flow.UI = flow.UI{}, flow.UI{}

	ok = assertMethodState(t, w.MethodState, g.MethodState) && ok
	w.MethodState, g.MethodState = nil, nil

	return assert.Equal(t, w, g) && ok
}

func assertMethodState(t testing.TB, want, got map[string]json.RawMessage) bool {
	t.Helper()
	wantKeys, gotKeys := make([]string, 0, len(want)), make([]string, 0, len(got))
	for k := range want {
		wantKeys = append(wantKeys, k)
	}
	for k := range got {
		gotKeys = append(gotKeys, k)
	}
	if !assert.ElementsMatch(t, wantKeys, gotKeys, "MethodState keys") {
		return false
	}
	ok := true
	for k, v := range want {
		ok = assert.JSONEq(t, string(v), string(got[k]), "MethodState[%q]", k) && ok
	}
	return ok
}

// createFlow stores a new flow and returns the record as stored.
func createFlow(t testing.TB, s login.FlowStore, now time.Time) *flow.Record {
	t.Helper()
	rec := newFlow(uuid.New(), now)
	require.NoError(t, s.CreateFlow(t.Context(), rec))
	return rec
}

// readFlow reads the flow with id, which must exist.
func readFlow(t testing.TB, s login.FlowStore, id string) *flow.Record {
	t.Helper()
	got, err := s.Flow(t.Context(), id)
	require.NoError(t, err, "Flow(%s)", id)
	require.NotNil(t, got, "Flow(%s)", id)
	return got
}

func testFlowRoundTrip(t *testing.T, s login.FlowStore) {
	now, id := now(), uuid.New()
	require.NoError(t, s.CreateFlow(t.Context(), newFlow(id, now)))

	want := newFlow(id, now)
	want.Version = 1
	got := readFlow(t, s, id)
	assertFlowRecord(t, want, got)
	assert.Nil(t, got.Flow.OrganizationID, "Flow.OrganizationID")
}

func testFlowCreateVersion(t *testing.T, s login.FlowStore) {
	rec := newFlow(uuid.New(), now())
	rec.Version = 7
	require.NoError(t, s.CreateFlow(t.Context(), rec))
	assert.EqualValues(t, 1, rec.Version, "rec.Version after CreateFlow")
	assert.EqualValues(t, 1, readFlow(t, s, rec.Flow.ID).Version, "stored Version")
}

func testFlowCreateDuplicate(t *testing.T, s login.FlowStore) {
	now := now()
	first := createFlow(t, s, now)

	second := newFlow(first.Flow.ID, now)
	second.Flow.ReturnTo = "https://evil.example.com/"
	assert.ErrorIs(t, s.CreateFlow(t.Context(), second), flow.ErrConflict)

	want := newFlow(first.Flow.ID, now)
	want.Version = 1
	assertFlowRecord(t, want, readFlow(t, s, first.Flow.ID))
}

func testFlowNotFound(t *testing.T, s login.FlowStore) {
	createFlow(t, s, now())
	got, err := s.Flow(t.Context(), uuid.New())
	assert.ErrorIs(t, err, flow.ErrNotFound)
	assert.Nil(t, got)
}

func testFlowReturnedCopy(t *testing.T, s login.FlowStore) {
	now := now()
	rec := createFlow(t, s, now)
	want := newFlow(rec.Flow.ID, now)
	want.Version = 1

	got := readFlow(t, s, rec.Flow.ID)
	scribbleFlow(got)
	got.Flow.UI.Nodes = append(got.Flow.UI.Nodes[:1], flow.NewInput(flow.GroupDefault, "added", "text", nil, false))
	got.Flow.State = flow.StatePassedChallenge
	assertFlowRecord(t, want, readFlow(t, s, rec.Flow.ID))
}

func testFlowCallerCopy(t *testing.T, s login.FlowStore) {
	now := now()
	rec := createFlow(t, s, now)
	want := newFlow(rec.Flow.ID, now)
	want.Version = 1

	scribbleFlow(rec)
	assertFlowRecord(t, want, readFlow(t, s, rec.Flow.ID))

	// The same holds for the record given to UpdateFlow.
	upd := readFlow(t, s, rec.Flow.ID)
	upd.Flow.UI.ResetMessages()
	require.NoError(t, s.UpdateFlow(t.Context(), upd))
	want.Flow.UI.ResetMessages()
	want.Version = upd.Version
	scribbleFlow(upd)
	assertFlowRecord(t, want, readFlow(t, s, rec.Flow.ID))
}

func testFlowExpired(t *testing.T, s login.FlowStore) {
	for _, ago := range []time.Duration{time.Hour, 23 * time.Hour} {
		now := now()
		rec := newFlow(uuid.New(), now.Add(-ago-time.Hour)) // expires one hour after issue
		require.NoError(t, s.CreateFlow(t.Context(), rec))
		require.True(t, rec.Flow.Expired(now))

		got, err := s.Flow(t.Context(), rec.Flow.ID)
		if assert.NoError(t, err, "flow expired %s ago", ago) {
			assertFlowRecord(t, rec, got)
		}
	}
}

func testFlowUpdate(t *testing.T, s login.FlowStore) {
	now := now()
	rec := createFlow(t, s, now)

	upd := readFlow(t, s, rec.Flow.ID)
	upd.Flow.UI.ResetMessages()
	upd.Flow.UI.Messages = []flow.Message{flow.TooManyAttempts(30)}
	upd.Flow.UI.Node("identifier").Attributes.Value = "bob@example.com"
	upd.Flow.UpdatedAt = now.Add(time.Second)
	upd.MethodState["password"] = json.RawMessage(`{"attempts": 3}`)
	delete(upd.MethodState, "oidc")
	require.NoError(t, s.UpdateFlow(t.Context(), upd))
	assert.EqualValues(t, 2, upd.Version, "rec.Version after UpdateFlow")

	assertFlowRecord(t, upd, readFlow(t, s, rec.Flow.ID))
}

func testFlowUpdateStale(t *testing.T, s login.FlowStore) {
	rec := createFlow(t, s, now())
	first := readFlow(t, s, rec.Flow.ID)
	stale := readFlow(t, s, rec.Flow.ID)

	first.Flow.UI.Messages = []flow.Message{flow.InvalidCredentials()}
	require.NoError(t, s.UpdateFlow(t.Context(), first))

	stale.Flow.UI.Messages = []flow.Message{flow.Generic("stale")}
	stale.Flow.ReturnTo = "https://stale.example.com/"
	assert.ErrorIs(t, s.UpdateFlow(t.Context(), stale), flow.ErrConflict)

	assertFlowRecord(t, first, readFlow(t, s, rec.Flow.ID))
}

func testFlowUpdateNotFound(t *testing.T, s login.FlowStore) {
	createFlow(t, s, now())
	rec := newFlow(uuid.New(), now())
	rec.Version = 1
	assert.ErrorIs(t, s.UpdateFlow(t.Context(), rec), flow.ErrNotFound)
	_, err := s.Flow(t.Context(), rec.Flow.ID)
	assert.ErrorIs(t, err, flow.ErrNotFound, "UpdateFlow must not create the flow")
}

func testFlowUpdateConcurrent(t *testing.T, s login.FlowStore) {
	rec := createFlow(t, s, now())
	recs := make([]*flow.Record, concurrency)
	for i := range recs {
		recs[i] = readFlow(t, s, rec.Flow.ID)
		recs[i].Flow.UI.Messages = []flow.Message{flow.TooManyAttempts(i)}
	}
	errs := concurrently(concurrency, func(i int) error { return s.UpdateFlow(t.Context(), recs[i]) })
	if w := assertOneWinner(t, errs, flow.ErrConflict); w >= 0 {
		assertFlowRecord(t, recs[w], readFlow(t, s, rec.Flow.ID))
	}
}

func testFlowComplete(t *testing.T, s login.FlowStore) {
	rec := createFlow(t, s, now())
	done := readFlow(t, s, rec.Flow.ID)
	done.Flow.UI.ResetMessages()
	done.Flow.Active = "password"
	require.NoError(t, s.CompleteFlow(t.Context(), done))
	assert.Equal(t, flow.StatePassedChallenge, done.Flow.State, "rec.Flow.State after CompleteFlow")
	assert.Greater(t, done.Version, rec.Version, "rec.Version after CompleteFlow")

	got := readFlow(t, s, rec.Flow.ID)
	assert.Equal(t, flow.StatePassedChallenge, got.Flow.State, "stored Flow.State")
	assertFlowRecord(t, done, got)
}

func testFlowCompleteTwice(t *testing.T, s login.FlowStore) {
	rec := createFlow(t, s, now())
	first := readFlow(t, s, rec.Flow.ID)
	require.NoError(t, s.CompleteFlow(t.Context(), first))

	again := readFlow(t, s, rec.Flow.ID) // current version, already completed
	assert.ErrorIs(t, s.CompleteFlow(t.Context(), again), flow.ErrCompleted)
	assertFlowRecord(t, first, readFlow(t, s, rec.Flow.ID))
}

func testFlowCompleteNotFound(t *testing.T, s login.FlowStore) {
	createFlow(t, s, now())
	rec := newFlow(uuid.New(), now())
	rec.Version = 1
	assert.ErrorIs(t, s.CompleteFlow(t.Context(), rec), flow.ErrNotFound)
	_, err := s.Flow(t.Context(), rec.Flow.ID)
	assert.ErrorIs(t, err, flow.ErrNotFound, "CompleteFlow must not create the flow")
}

func testFlowStaleUpdateAfterComplete(t *testing.T, s login.FlowStore) {
	rec := createFlow(t, s, now())
	stale := readFlow(t, s, rec.Flow.ID)
	done := readFlow(t, s, rec.Flow.ID)
	require.NoError(t, s.CompleteFlow(t.Context(), done))

	stale.Flow.UI.Messages = []flow.Message{flow.InvalidCredentials()}
	assert.ErrorIs(t, s.UpdateFlow(t.Context(), stale), flow.ErrConflict)

	got := readFlow(t, s, rec.Flow.ID)
	assert.Equal(t, flow.StatePassedChallenge, got.Flow.State, "a stale writer undid the completion")
	assertFlowRecord(t, done, got)
}

func testFlowCompleteStale(t *testing.T, s login.FlowStore) {
	rec := createFlow(t, s, now())
	winner := readFlow(t, s, rec.Flow.ID)

	// Meanwhile a failed attempt stores its messages.
	failed := readFlow(t, s, rec.Flow.ID)
	failed.Flow.UI.Messages = []flow.Message{flow.InvalidCredentials()}
	require.NoError(t, s.UpdateFlow(t.Context(), failed))

	winner.Flow.UI.ResetMessages()
	require.NoError(t, s.CompleteFlow(t.Context(), winner))
	assert.Greater(t, winner.Version, failed.Version, "rec.Version after CompleteFlow")

	got := readFlow(t, s, rec.Flow.ID)
	assert.Equal(t, flow.StatePassedChallenge, got.Flow.State, "stored Flow.State")
	assertFlowRecord(t, winner, got)
}

func testFlowReopen(t *testing.T, s login.FlowStore) {
	rec := createFlow(t, s, now())
	done := readFlow(t, s, rec.Flow.ID)
	require.NoError(t, s.CompleteFlow(t.Context(), done))

	// The session could not be written: the handler reopens the flow.
	done.Flow.State = flow.StateChooseMethod
	done.Flow.UI.Messages = []flow.Message{flow.Generic("could not create the session")}
	completed := done.Version
	require.NoError(t, s.UpdateFlow(t.Context(), done))
	assert.Equal(t, completed+1, done.Version, "rec.Version after UpdateFlow")
	assertFlowRecord(t, done, readFlow(t, s, rec.Flow.ID))

	// A reopened flow can be completed again.
	again := readFlow(t, s, rec.Flow.ID)
	require.NoError(t, s.CompleteFlow(t.Context(), again))
	assert.Equal(t, flow.StatePassedChallenge, readFlow(t, s, rec.Flow.ID).Flow.State)
}

func testFlowCompleteConcurrent(t *testing.T, s login.FlowStore) {
	rec := createFlow(t, s, now())
	recs := make([]*flow.Record, concurrency)
	for i := range recs {
		recs[i] = readFlow(t, s, rec.Flow.ID)
		recs[i].Flow.UI.Messages = []flow.Message{flow.TooManyAttempts(i)}
	}
	errs := concurrently(concurrency, func(i int) error { return s.CompleteFlow(t.Context(), recs[i]) })
	if w := assertOneWinner(t, errs, flow.ErrCompleted); w >= 0 {
		got := readFlow(t, s, rec.Flow.ID)
		assert.Equal(t, flow.StatePassedChallenge, got.Flow.State, "stored Flow.State")
		assertFlowRecord(t, recs[w], got)
	}
}

func newError(id string, now time.Time) *flow.ErrorRecord {
	return &flow.ErrorRecord{
		ID:        id,
		Error:     json.RawMessage(`{"id": "security_csrf_violation", "code": 403, "status": "Forbidden", "reason": "The anti-CSRF token is missing.", "message": "the request was rejected to protect you from Cross-Site-Request-Forgery", "details": {"hint": null}}`),
		CreatedAt: now.Add(-time.Millisecond),
		UpdatedAt: now,
	}
}

func assertErrorRecord(t testing.TB, want, got *flow.ErrorRecord) bool {
	t.Helper()
	if !assert.NotNil(t, got, "error record") {
		return false
	}
	ok := assert.Equal(t, want.ID, got.ID, "ID")
	ok = assertSameTime(t, want.CreatedAt, got.CreatedAt, "CreatedAt") && ok
	ok = assertSameTime(t, want.UpdatedAt, got.UpdatedAt, "UpdatedAt") && ok
	return assert.JSONEq(t, string(want.Error), string(got.Error), "Error") && ok
}

func readError(t testing.TB, s login.FlowStore, id string) *flow.ErrorRecord {
	t.Helper()
	got, err := s.Error(t.Context(), id)
	require.NoError(t, err, "Error(%s)", id)
	require.NotNil(t, got, "Error(%s)", id)
	return got
}

func testErrorRoundTrip(t *testing.T, s login.FlowStore) {
	now, id := now(), uuid.New()
	require.NoError(t, s.CreateError(t.Context(), newError(id, now)))
	assertErrorRecord(t, newError(id, now), readError(t, s, id))
}

func testErrorNotFound(t *testing.T, s login.FlowStore) {
	require.NoError(t, s.CreateError(t.Context(), newError(uuid.New(), now())))
	rec := createFlow(t, s, now())

	got, err := s.Error(t.Context(), uuid.New())
	assert.ErrorIs(t, err, flow.ErrNotFound)
	assert.Nil(t, got)
	_, err = s.Error(t.Context(), rec.Flow.ID)
	assert.ErrorIs(t, err, flow.ErrNotFound, "a flow id names no error")
}

func testErrorDuplicate(t *testing.T, s login.FlowStore) {
	now, id := now(), uuid.New()
	require.NoError(t, s.CreateError(t.Context(), newError(id, now)))

	second := newError(id, now.Add(time.Minute))
	second.Error = json.RawMessage(`{"code": 500}`)
	assert.ErrorIs(t, s.CreateError(t.Context(), second), flow.ErrConflict)
	assertErrorRecord(t, newError(id, now), readError(t, s, id))
}

func testErrorCopy(t *testing.T, s login.FlowStore) {
	now, id := now(), uuid.New()
	rec := newError(id, now)
	require.NoError(t, s.CreateError(t.Context(), rec))
	scribble(rec.Error)
	assertErrorRecord(t, newError(id, now), readError(t, s, id))

	scribble(readError(t, s, id).Error)
	assertErrorRecord(t, newError(id, now), readError(t, s, id))
}
