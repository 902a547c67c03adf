package login_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/login/logintest"
	"github.com/authflow/authflow/login/password"
	"github.com/authflow/authflow/session"
)

// Fault injection (issue point 6; CONTRACT Part 1 rules 2-4, 9, 14, 17).
// Every store call goes through a wrapper that counts it; a plan makes the
// Nth call of a request fail (error), panic (panic), or fail together with
// every later call (outage: the backend goes down and stays down). Whatever
// fails, the client gets the generic 500 envelope directly (never the error
// UI), the operator finds the cause in the log at level ERROR, a flow is
// completed exactly when its session exists, and once the fault clears the
// same flow logs in (or, if it was completed, answers 4010007).
//
// Best-effort calls: the re-hash of a legacy password after the login
// (IdentityStore.UpdateCredential, and the hasher's Hash it runs first)
// never fails the login; its failure is logged at WARN.

// faultMode says what the plan does to the Nth call.
type faultMode string

const (
	faultOff    faultMode = "off"    // count calls only
	faultError  faultMode = "error"  // the Nth call returns an error
	faultPanic  faultMode = "panic"  // the Nth call panics
	faultOutage faultMode = "outage" // the Nth call and every later one return an error
)

var faultModes = []faultMode{faultError, faultPanic, faultOutage}

// faultBestEffort are the store calls whose failure never fails a login.
var faultBestEffort = map[string]bool{"IdentityStore.UpdateCredential": true}

// faultPlan counts the store calls of one env, across all its stores, and
// injects the faults.
type faultPlan struct {
	mu    sync.Mutex
	mode  faultMode
	at    int
	calls []string
}

// arm starts counting afresh and makes call at (1-based) fail as mode says.
func (p *faultPlan) arm(mode faultMode, at int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode, p.at, p.calls = mode, at, nil
}

// disarm clears the fault and returns the calls made since arm.
func (p *faultPlan) disarm() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	calls := p.calls
	p.mode, p.at, p.calls = faultOff, 0, nil
	return calls
}

// faultText is the distinctive text of an injected error or panic value.
func faultText(mode faultMode, name string, n int) string {
	return fmt.Sprintf("fault-injected %s in %s (call %d)", mode, name, n)
}

// hit records a call and injects the planned fault.
func (p *faultPlan) hit(name string) error {
	p.mu.Lock()
	p.calls = append(p.calls, name)
	n := len(p.calls)
	mode, at := p.mode, p.at
	p.mu.Unlock()
	switch {
	case mode == faultError && n == at, mode == faultOutage && n >= at:
		return errors.New(faultText(mode, name, n))
	case mode == faultPanic && n == at:
		panic(faultText(mode, name, n))
	}
	return nil
}

// faultFlowStore is the in-memory flow store behind the plan.
type faultFlowStore struct {
	*flow.MemoryStore
	plan *faultPlan
}

func (s *faultFlowStore) CreateFlow(ctx context.Context, rec *flow.Record) error {
	if err := s.plan.hit("FlowStore.CreateFlow"); err != nil {
		return err
	}
	return s.MemoryStore.CreateFlow(ctx, rec)
}

func (s *faultFlowStore) Flow(ctx context.Context, id string) (*flow.Record, error) {
	if err := s.plan.hit("FlowStore.Flow"); err != nil {
		return nil, err
	}
	return s.MemoryStore.Flow(ctx, id)
}

func (s *faultFlowStore) UpdateFlow(ctx context.Context, rec *flow.Record) error {
	if err := s.plan.hit("FlowStore.UpdateFlow"); err != nil {
		return err
	}
	return s.MemoryStore.UpdateFlow(ctx, rec)
}

func (s *faultFlowStore) CompleteFlow(ctx context.Context, rec *flow.Record) error {
	if err := s.plan.hit("FlowStore.CompleteFlow"); err != nil {
		return err
	}
	return s.MemoryStore.CompleteFlow(ctx, rec)
}

func (s *faultFlowStore) CreateError(ctx context.Context, rec *flow.ErrorRecord) error {
	if err := s.plan.hit("FlowStore.CreateError"); err != nil {
		return err
	}
	return s.MemoryStore.CreateError(ctx, rec)
}

func (s *faultFlowStore) Error(ctx context.Context, id string) (*flow.ErrorRecord, error) {
	if err := s.plan.hit("FlowStore.Error"); err != nil {
		return nil, err
	}
	return s.MemoryStore.Error(ctx, id)
}

// faultTxStore is a flow store that also holds the sessions and completes
// a flow with its session in one transaction (login.FlowSessionCompleter).
// A fault in the transaction rolls it back: nothing changes.
type faultTxStore struct {
	*faultFlowStore
	*faultSessionStore
}

func (s *faultTxStore) CompleteFlowWithSession(ctx context.Context, rec *flow.Record, sess *session.Record, create bool, now time.Time) error {
	if err := s.faultFlowStore.plan.hit("FlowSessionCompleter.CompleteFlowWithSession"); err != nil {
		return err
	}
	// The "transaction" on the uncounted in-memory stores.
	return completeInMemory(ctx, s.faultFlowStore.MemoryStore, s.faultSessionStore.MemoryStore, rec, sess, create, now)
}

// faultSessionStore is the in-memory session store behind the plan.
type faultSessionStore struct {
	*session.MemoryStore
	plan *faultPlan
}

func (s *faultSessionStore) CreateSession(ctx context.Context, rec *session.Record) error {
	if err := s.plan.hit("SessionStore.CreateSession"); err != nil {
		return err
	}
	return s.MemoryStore.CreateSession(ctx, rec)
}

func (s *faultSessionStore) SessionByToken(ctx context.Context, tokenHash string) (*session.Record, error) {
	if err := s.plan.hit("SessionStore.SessionByToken"); err != nil {
		return nil, err
	}
	return s.MemoryStore.SessionByToken(ctx, tokenHash)
}

func (s *faultSessionStore) Session(ctx context.Context, id string) (*session.Record, error) {
	if err := s.plan.hit("SessionStore.Session"); err != nil {
		return nil, err
	}
	return s.MemoryStore.Session(ctx, id)
}

func (s *faultSessionStore) UpdateSession(ctx context.Context, rec *session.Record, now time.Time) error {
	if err := s.plan.hit("SessionStore.UpdateSession"); err != nil {
		return err
	}
	return s.MemoryStore.UpdateSession(ctx, rec, now)
}

func (s *faultSessionStore) ListSessions(ctx context.Context, identityID string) ([]*session.Record, error) {
	if err := s.plan.hit("SessionStore.ListSessions"); err != nil {
		return nil, err
	}
	return s.MemoryStore.ListSessions(ctx, identityID)
}

func (s *faultSessionStore) RevokeSession(ctx context.Context, id string) error {
	if err := s.plan.hit("SessionStore.RevokeSession"); err != nil {
		return err
	}
	return s.MemoryStore.RevokeSession(ctx, id)
}

func (s *faultSessionStore) RevokeSessions(ctx context.Context, identityID string) (int, error) {
	if err := s.plan.hit("SessionStore.RevokeSessions"); err != nil {
		return 0, err
	}
	return s.MemoryStore.RevokeSessions(ctx, identityID)
}

// faultIdentityStore is the in-memory identity store behind the plan.
type faultIdentityStore struct {
	*session.MemoryIdentityStore
	plan *faultPlan
}

func (s *faultIdentityStore) CreateIdentity(ctx context.Context, id *session.Identity, creds ...session.Credential) error {
	if err := s.plan.hit("IdentityStore.CreateIdentity"); err != nil {
		return err
	}
	return s.MemoryIdentityStore.CreateIdentity(ctx, id, creds...)
}

func (s *faultIdentityStore) Identity(ctx context.Context, id string) (*session.Identity, error) {
	if err := s.plan.hit("IdentityStore.Identity"); err != nil {
		return nil, err
	}
	return s.MemoryIdentityStore.Identity(ctx, id)
}

func (s *faultIdentityStore) FindIdentity(ctx context.Context, typ session.CredentialType, identifier string) (*session.Identity, *session.Credential, error) {
	if err := s.plan.hit("IdentityStore.FindIdentity"); err != nil {
		return nil, nil, err
	}
	return s.MemoryIdentityStore.FindIdentity(ctx, typ, identifier)
}

func (s *faultIdentityStore) Credentials(ctx context.Context, identityID string) ([]session.Credential, error) {
	if err := s.plan.hit("IdentityStore.Credentials"); err != nil {
		return nil, err
	}
	return s.MemoryIdentityStore.Credentials(ctx, identityID)
}

func (s *faultIdentityStore) UpdateIdentity(ctx context.Context, id *session.Identity) error {
	if err := s.plan.hit("IdentityStore.UpdateIdentity"); err != nil {
		return err
	}
	return s.MemoryIdentityStore.UpdateIdentity(ctx, id)
}

func (s *faultIdentityStore) UpdateCredential(ctx context.Context, identityID string, c *session.Credential) error {
	if err := s.plan.hit("IdentityStore.UpdateCredential"); err != nil {
		return err
	}
	return s.MemoryIdentityStore.UpdateCredential(ctx, identityID, c)
}

var (
	_ login.FlowStore            = (*faultFlowStore)(nil)
	_ login.FlowSessionCompleter = (*faultTxStore)(nil)
	_ login.SessionStore         = (*faultSessionStore)(nil)
	_ login.IdentityStore        = (*faultIdentityStore)(nil)
)

// faultHasher is the fast test hasher whose Hash and Compare can be made
// to panic or fail, recording the hashes it compares against.
type faultHasher struct {
	logintest.FastHasher
	panicCompare atomic.Bool
	panicHash    atomic.Bool
	failHash     atomic.Bool
	mu           sync.Mutex
	compared     []string
}

const (
	faultHashPanic    = "fault-injected panic in Hasher.Hash"
	faultHashError    = "fault-injected error in Hasher.Hash"
	faultComparePanic = "fault-injected panic in Hasher.Compare"
)

func (h *faultHasher) Hash(ctx context.Context, secret []byte) (string, error) {
	if h.panicHash.Load() {
		panic(faultHashPanic)
	}
	if h.failHash.Load() {
		return "", errors.New(faultHashError)
	}
	return h.FastHasher.Hash(ctx, secret)
}

func (h *faultHasher) Compare(ctx context.Context, secret []byte, encoded string) error {
	h.mu.Lock()
	h.compared = append(h.compared, encoded)
	h.mu.Unlock()
	if h.panicCompare.Load() {
		panic(faultComparePanic)
	}
	return h.FastHasher.Compare(ctx, secret, encoded)
}

// takeCompared returns the hashes compared against since the last call.
func (h *faultHasher) takeCompared() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.compared
	h.compared = nil
	return c
}

// faultEnv is a test deployment whose stores go through a plan and whose
// log is captured as JSON, down to Debug.
type faultEnv struct {
	*env
	plan *faultPlan
	logs *subBuffer
}

// faultNewEnv starts an env with faulty stores; with tx the flow store
// offers login.FlowSessionCompleter. configure runs after the wrapping.
func faultNewEnv(t testing.TB, tx bool, configure ...func(*login.Config)) *faultEnv {
	t.Helper()
	fe := &faultEnv{plan: &faultPlan{mode: faultOff}, logs: &subBuffer{}}
	wrap := func(c *login.Config) {
		fs := &faultFlowStore{MemoryStore: c.FlowStore.(*flow.MemoryStore), plan: fe.plan}
		ss := &faultSessionStore{MemoryStore: c.SessionStore.(*session.MemoryStore), plan: fe.plan}
		c.FlowStore, c.SessionStore = fs, ss
		if tx { // one store for both, as a database backend is
			both := &faultTxStore{fs, ss}
			c.FlowStore, c.SessionStore = both, both
		}
		c.IdentityStore = &faultIdentityStore{MemoryIdentityStore: c.IdentityStore.(*session.MemoryIdentityStore), plan: fe.plan}
		c.Logger = faultJSONLogger(fe.logs)
	}
	fe.env = newEnv(t, append([]func(*login.Config){wrap}, configure...)...)
	return fe
}

// faultJSONLogger logs everything, down to Debug, as JSON lines to w.
func faultJSONLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// faultLegacy is the identity whose password has a legacy (bcrypt) hash, so
// that its login re-hashes it: the best-effort UpdateCredential.
const faultLegacyID, faultLegacySecret = "legacy-fault@example.com", "legacy fault password 42"

var faultLegacyHash = sync.OnceValues(func() (string, error) {
	return password.Bcrypt{Cost: 4}.Hash(context.Background(), []byte(faultLegacySecret))
})

// faultAddLegacy stores the legacy identity in e.
func faultAddLegacy(t testing.TB, e *env) *session.Identity {
	t.Helper()
	encoded, err := faultLegacyHash()
	require.NoError(t, err)
	cfg, err := json.Marshal(session.PasswordConfig{HashedPassword: encoded})
	require.NoError(t, err)
	return e.addIdentityWith(faultLegacyID, session.Credential{
		Type: session.CredentialPassword, Identifiers: []string{faultLegacyID}, Config: cfg,
	})
}

// faultInternalBody is the generic 500 envelope, exactly.
const faultInternalBody = `{"error":{"code":500,"status":"Internal Server Error","message":"An internal server error occurred, please contact the system administrator"}}`

// faultWantInternal asserts the generic 500 answered directly: JSON, the
// envelope exactly, no redirect, no session cookie, uncacheable.
func faultWantInternal(t testing.TB, r *result) {
	t.Helper()
	require.Equal(t, http.StatusInternalServerError, r.status, "Location %q, body: %s", r.header.Get("Location"), r.body)
	assert.Equal(t, "application/json", r.header.Get("Content-Type"))
	assert.Equal(t, faultInternalBody, strings.TrimSpace(string(r.body)))
	assert.Empty(t, r.header.Values("Location"), "an internal error is never forwarded to the error UI")
	subAssertNoCache(t, r)
	for _, leak := range []string{"fault-injected", "panic", "goroutine", ".go:", "reason", "details", "debug"} {
		assert.NotContains(t, strings.ToLower(string(r.body)), leak)
	}
	if c := r.cookie(subSessionCookie); c != nil {
		assert.Empty(t, c.Value, "a failed login sets no session cookie")
	}
}

// faultWantLogin asserts the success answer of kind.
func faultWantLogin(t testing.TB, kind subKind, r *result) {
	t.Helper()
	subAssertNoCache(t, r)
	switch kind {
	case subForm:
		require.Equal(t, http.StatusSeeOther, r.status, "body: %s", r.body)
		assert.Equal(t, defaultReturn, r.header.Get("Location"))
	default:
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		body := r.json(t)
		assert.NotNil(t, body["session"])
		if kind == subAPI {
			assert.NotEmpty(t, body["session_token"])
		} else {
			assert.NotContains(t, body, "session_token")
		}
	}
	if kind != subAPI {
		c := r.cookie(subSessionCookie)
		require.NotNil(t, c, "a browser login sets the session cookie")
		assert.NotEmpty(t, c.Value)
	}
}

// faultWantCompleted asserts the 4010007 answer about flowID.
func faultWantCompleted(t testing.TB, e *env, c *http.Client, kind subKind, flowID string, r *result) {
	t.Helper()
	f := subWantFlow(t, e, c, kind, flowID, r).flow(t)
	assert.Contains(t, subIDs(f.UI.Messages), flow.IDAlreadyCompleted, "messages: %+v", f.UI.Messages)
}

// faultState reads the flow's state and the identity's sessions straight
// from the stores, and asserts that they agree: a completed flow has
// exactly one session, an open one none. For a refresh flow (refreshed) the
// identity keeps its one session, which a completed flow has refreshed (a
// second authentication method) and an open one has not.
func faultState(t testing.TB, e *env, flowID, identityID string, refreshed ...bool) bool {
	t.Helper()
	rec, err := e.flows.Flow(context.Background(), flowID)
	require.NoError(t, err)
	list, err := e.sessions.ListSessions(context.Background(), identityID)
	require.NoError(t, err)
	refresh := len(refreshed) > 0 && refreshed[0]
	completed := rec.Flow.State == flow.StatePassedChallenge
	switch {
	case !completed && rec.Flow.State != flow.StateChooseMethod:
		t.Fatalf("flow state %q", rec.Flow.State)
	case refresh:
		require.Len(t, list, 1, "a refresh keeps the session")
		methods := len(list[0].Session.AuthenticationMethods)
		if completed {
			assert.Equal(t, 2, methods, "a completed refresh flow has refreshed the session")
		} else {
			assert.Equal(t, 1, methods, "an open refresh flow has not refreshed the session")
		}
	case completed:
		assert.Len(t, list, 1, "a completed flow has exactly one session")
	default:
		assert.Empty(t, list, "an open flow has issued no session")
	}
	return completed
}

// faultRecords parses the JSON log.
func faultRecords(t testing.TB, logs *subBuffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.SplitSeq(logs.String(), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m), "log line %q", line)
		out = append(out, m)
	}
	return out
}

// faultAssertLogged asserts that a record at level has an attribute
// containing text and, with stack, an attribute (the same or another)
// holding a goroutine stack trace.
func faultAssertLogged(t testing.TB, logs *subBuffer, level, text string, stack bool) {
	t.Helper()
	for _, rec := range faultRecords(t, logs) {
		if rec["level"] != level {
			continue
		}
		hasText, hasStack := false, false
		for _, v := range rec {
			s, ok := v.(string)
			if !ok {
				continue
			}
			hasText = hasText || strings.Contains(s, text)
			hasStack = hasStack || strings.Contains(s, "goroutine ") && strings.Contains(s, "[running]") && strings.Contains(s, ".go:")
		}
		if hasText && (hasStack || !stack) {
			return
		}
	}
	t.Errorf("no %s log record carries %q (with stack trace: %v); log:\n%s", level, text, stack, logs.String())
}

// faultScenario is one kind of login to inject faults into.
type faultScenario struct {
	kind    subKind
	tx      bool // the flow store completes flow and session in one transaction
	legacy  bool // the identity's hash is legacy: the login re-hashes it
	refresh bool // a signed-in client refreshes its session (UpdateSession)
}

func (sc faultScenario) String() string {
	s := string(sc.kind)
	if sc.tx {
		s += "/transactional"
	} else {
		s += "/plain"
	}
	switch {
	case sc.legacy:
		s += "/rehash"
	case sc.refresh:
		s += "/refresh"
	}
	return s
}

// faultLogin is a flow ready to be submitted in a scenario.
type faultLogin struct {
	fe         *faultEnv
	s          *subClient
	id         *session.Identity
	identifier string
	secret     string
	header     map[string]string // sent with every submission
}

// state checks the stores as faultState does.
func (l *faultLogin) state(t testing.TB, refresh bool) bool {
	t.Helper()
	return faultState(t, l.fe.env, l.s.flow.ID, l.id.ID, refresh)
}

// setup starts an env for sc and a flow of its kind, with the identity
// that logs in; for a refresh, the client is signed in first.
func (sc faultScenario) setup(t testing.TB) *faultLogin {
	t.Helper()
	fe := faultNewEnv(t, sc.tx)
	l := &faultLogin{fe: fe, id: fe.identity, identifier: testIdentifier, secret: testPassword}
	switch {
	case sc.legacy:
		l.id, l.identifier, l.secret = faultAddLegacy(t, fe.env), faultLegacyID, faultLegacySecret
		l.s = subStart(t, fe.env, sc.kind, "")
	case sc.refresh && sc.kind == subAPI:
		l.header = map[string]string{"X-Session-Token": fe.loginAPI()}
		fe.clock.Advance(time.Second) // the refresh comes after the login
		r := fe.do(fe.api(), http.MethodGet, "/self-service/login/api?refresh=true", nil, l.header)
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		l.s = &subClient{e: fe.env, kind: sc.kind, c: fe.api(), flow: r.flow(t)}
	case sc.refresh:
		c := fe.browser()
		fe.loginBrowser(c)
		fe.clock.Advance(time.Second) // the refresh comes after the login
		l.s = subStartBrowser(t, fe.env, sc.kind, c, "?refresh=true")
	default:
		l.s = subStart(t, fe.env, sc.kind, "")
	}
	require.Equal(t, sc.refresh, l.s.flow.Refresh)
	return l
}

// TestFaultStoreCallsDuringSubmit fails, one by one, every store call a
// successful submission makes, in every mode, for every kind of request.
func TestFaultStoreCallsDuringSubmit(t *testing.T) {
	var scenarios []faultScenario
	for _, kind := range subKinds {
		for _, tx := range []bool{false, true} {
			scenarios = append(scenarios,
				faultScenario{kind: kind, tx: tx},
				faultScenario{kind: kind, tx: tx, legacy: true},
				faultScenario{kind: kind, tx: tx, refresh: true})
		}
	}
	var mu sync.Mutex
	cases := 0
	t.Cleanup(func() { t.Logf("%d fault cases", cases) })
	for _, sc := range scenarios {
		t.Run(sc.String(), func(t *testing.T) {
			t.Parallel()
			// A successful login, counted.
			l := sc.setup(t)
			l.fe.plan.arm(faultOff, 0)
			r := l.s.submit(t, l.s.creds(l.identifier, l.secret), l.header)
			calls := l.fe.plan.disarm()
			faultWantLogin(t, sc.kind, r)
			require.True(t, l.state(t, sc.refresh))
			require.NotEmpty(t, calls)
			t.Logf("%s: a submission makes %d store calls: %s", sc, len(calls), strings.Join(calls, ", "))
			mu.Lock()
			cases += len(calls) * len(faultModes)
			mu.Unlock()

			for n := 1; n <= len(calls); n++ {
				for _, mode := range faultModes {
					t.Run(fmt.Sprintf("%s/%d-%s", mode, n, calls[n-1]), func(t *testing.T) {
						t.Parallel()
						faultSubmitCase(t, sc, mode, n, calls[n-1])
					})
				}
			}
		})
	}
}

// faultSubmitCase submits the right credentials with call n failing as mode
// says, then again after the fault cleared.
func faultSubmitCase(t *testing.T, sc faultScenario, mode faultMode, n int, name string) {
	l := sc.setup(t)
	fe, s := l.fe, l.s
	fe.plan.arm(mode, n)
	r := s.submit(t, s.creds(l.identifier, l.secret), l.header)
	calls := fe.plan.disarm()
	require.GreaterOrEqual(t, len(calls), n, "calls: %v", calls)
	require.Equal(t, name, calls[n-1], "the calls are made in the same order: %v", calls)
	text := faultText(mode, name, n)

	succeeded := faultBestEffort[name]
	if succeeded {
		// The login is done when its best-effort work runs: it must answer
		// success, and the failure is logged as a warning.
		faultWantLogin(t, sc.kind, r)
		faultAssertLogged(t, fe.logs, "WARN", text, mode == faultPanic)
	} else {
		faultWantInternal(t, r)
		faultAssertLogged(t, fe.logs, "ERROR", text, mode == faultPanic)
	}
	assert.NotContains(t, string(r.body), "fault-injected")

	// Without a transaction, an outage that takes the session write and
	// the reopening of the flow leaves a completed flow whose session was
	// never stored. The flow remembers the session it meant to issue; once
	// the completion is older than the grace period for an in-flight
	// session write, the next submission finds it missing, reopens the flow
	// and logs in. Nothing was issued to the client meanwhile.
	if mode == faultOutage && !sc.tx && strings.HasPrefix(name, "SessionStore.") && name != "SessionStore.SessionByToken" {
		rec, err := fe.env.flows.Flow(context.Background(), s.flow.ID)
		require.NoError(t, err)
		require.Equal(t, flow.StatePassedChallenge, rec.Flow.State, "the reopening failed too")
		require.NotEmpty(t, rec.SessionID, "the flow remembers the session it meant to issue")
		r2 := s.submit(t, s.creds(l.identifier, l.secret), l.header)
		faultWantCompleted(t, fe.env, s.c, sc.kind, s.flow.ID, r2) // within the grace period
		fe.env.clock.Advance(31 * time.Second)
		r2 = s.submit(t, s.creds(l.identifier, l.secret), l.header)
		faultWantLogin(t, sc.kind, r2)
		assert.True(t, l.state(t, sc.refresh), "the healed flow completed with its session")
		return
	}

	completed := l.state(t, sc.refresh)
	if succeeded {
		assert.True(t, completed, "a successful login completed its flow")
	}

	// The fault clears; the same flow is submitted again. A client that
	// got its session holds a cookie: resubmit without cookies then.
	again := *s
	if r.status < http.StatusInternalServerError && sc.kind != subAPI {
		again.c = fe.api()
	}
	r2 := again.submit(t, again.creds(l.identifier, l.secret), l.header)
	if completed {
		faultWantCompleted(t, fe.env, again.c, sc.kind, s.flow.ID, r2)
		assert.True(t, l.state(t, sc.refresh))
		return
	}
	faultWantLogin(t, sc.kind, r2)
	assert.True(t, l.state(t, sc.refresh), "the retried login completed the flow with its session")
}

// TestFaultPanicsInHooksAndHasher: a panic in a host hook or in the hasher
// is the generic 500, logged with its stack; the flow stays usable. A panic
// in best-effort work (the re-hash after the login) does not fail the login.
func TestFaultPanicsInHooksAndHasher(t *testing.T) {
	hook := func(value string) func() {
		return func() { panic(value) }
	}
	cases := []struct {
		name       string
		value      string
		wrong      bool // the faulty submission has a wrong password
		legacy     bool // the identity is re-hashed after its login
		bestEffort bool // the panic is in best-effort work: the login succeeds
		configure  func(c *login.Config, armed *atomic.Bool)
		arm        func(h *faultHasher, on bool)
	}{
		{name: "BeforeAttempt", value: "fault-injected panic in BeforeAttempt", configure: func(c *login.Config, armed *atomic.Bool) {
			boom := hook("fault-injected panic in BeforeAttempt")
			c.BeforeAttempt = func(context.Context, *login.Attempt) error {
				if armed.Load() {
					boom()
				}
				return nil
			}
		}},
		{name: "AfterFailure", value: "fault-injected panic in AfterFailure", wrong: true, configure: func(c *login.Config, armed *atomic.Bool) {
			boom := hook("fault-injected panic in AfterFailure")
			c.AfterFailure = func(context.Context, *login.Attempt, error) {
				if armed.Load() {
					boom()
				}
			}
		}},
		{name: "AfterVerification", value: "fault-injected panic in AfterVerification", configure: func(c *login.Config, armed *atomic.Bool) {
			boom := hook("fault-injected panic in AfterVerification")
			c.AfterVerification = func(context.Context, *login.Attempt, *session.Identity) error {
				if armed.Load() {
					boom()
				}
				return nil
			}
		}},
		{name: "Hasher.Compare", value: faultComparePanic, arm: func(h *faultHasher, on bool) { h.panicCompare.Store(on) }},
		{name: "Hasher.Hash in the re-hash", value: faultHashPanic, legacy: true, bestEffort: true, arm: func(h *faultHasher, on bool) { h.panicHash.Store(on) }},
	}
	for _, tc := range cases {
		for _, kind := range subKinds {
			t.Run(tc.name+"/"+string(kind), func(t *testing.T) {
				t.Parallel()
				armed := &atomic.Bool{}
				h := &faultHasher{}
				fe := faultNewEnv(t, false, func(c *login.Config) {
					c.Hasher = h
					if tc.configure != nil {
						tc.configure(c, armed)
					}
				})
				arm := func(on bool) {
					armed.Store(on)
					if tc.arm != nil {
						tc.arm(h, on)
					}
				}
				id, identifier, secret := fe.identity, testIdentifier, testPassword
				if tc.legacy {
					id, identifier, secret = faultAddLegacy(t, fe.env), faultLegacyID, faultLegacySecret
				}
				s := subStart(t, fe.env, kind, "")
				submitted := secret
				if tc.wrong {
					submitted = "a wrong password for the fault test"
				}
				arm(true)
				r := s.submit(t, s.creds(identifier, submitted), nil)
				arm(false)

				if tc.bestEffort {
					faultWantLogin(t, kind, r)
					faultAssertLogged(t, fe.logs, "WARN", tc.value, true)
					assert.True(t, faultState(t, fe.env, s.flow.ID, id.ID))
					return
				}
				faultWantInternal(t, r)
				faultAssertLogged(t, fe.logs, "ERROR", tc.value, true)
				require.False(t, faultState(t, fe.env, s.flow.ID, id.ID))

				r = s.submit(t, s.creds(identifier, secret), nil)
				faultWantLogin(t, kind, r)
				assert.True(t, faultState(t, fe.env, s.flow.ID, id.ID))
			})
		}
	}
}

// TestFaultDummyHash: the dummy hash compared against for unknown
// identifiers (CONTRACT Part 1 rule 10) is made lazily. A failure or panic
// while making it is a 500 for that request only: it must not be
// remembered, or every later unknown identifier would answer differently
// from a wrong password (an enumeration oracle) or be compared against no
// hash at all (a timing oracle).
func TestFaultDummyHash(t *testing.T) {
	for _, mode := range []faultMode{faultError, faultPanic} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			h := &faultHasher{}
			fe := faultNewEnv(t, false, func(c *login.Config) { c.Hasher = h })
			f := fe.apiFlow("")
			unknown := credentials("nobody-fault@example.com", "some password", "")

			if mode == faultPanic {
				h.panicHash.Store(true)
			} else {
				h.failHash.Store(true)
			}
			r := fe.submitJSON(fe.api(), f.ID, unknown, nil)
			h.panicHash.Store(false)
			h.failHash.Store(false)
			faultWantInternal(t, r)
			if mode == faultPanic {
				faultAssertLogged(t, fe.logs, "ERROR", faultHashPanic, true)
			} else {
				faultAssertLogged(t, fe.logs, "ERROR", faultHashError, false)
			}

			h.takeCompared()
			r = fe.submitJSON(fe.api(), f.ID, unknown, nil)
			require.Equal(t, http.StatusBadRequest, r.status, "an unknown identifier answers like a wrong password once the hasher works; body: %s", r.body)
			assert.Equal(t, []int{flow.IDInvalidCredentials}, subIDs(r.flow(t).UI.Messages))
			compared := h.takeCompared()
			require.Len(t, compared, 1, "one dummy comparison")
			assert.True(t, strings.HasPrefix(compared[0], "$fast$"), "compared against a real hash of the configured hasher, got %q", compared[0])
		})
	}
}

// TestFaultPanicInOnEvent: OnEvent runs after the answer is written, so a
// panic in it cannot turn into the generic 500. The answer already written
// must reach the client intact, and the panic must be logged at ERROR with
// its stack (not only by net/http's server log, which hosts rarely watch).
func TestFaultPanicInOnEvent(t *testing.T) {
	const value = "fault-injected panic in OnEvent"
	armed := &atomic.Bool{}
	fe := faultNewEnv(t, false, func(c *login.Config) {
		c.OnEvent = func(_ context.Context, e login.Event) {
			if armed.Load() && e.Action == "login.submit" {
				panic(value)
			}
		}
	})
	f := fe.apiFlow("")
	body, err := json.Marshal(credentials(testIdentifier, testPassword, ""))
	require.NoError(t, err)
	armed.Store(true)
	req, err := http.NewRequest(http.MethodPost, fe.srv.URL+"/self-service/login?flow="+f.ID, strings.NewReader(string(body)))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := fe.api().Do(req)
	var got []byte
	if err == nil {
		got, err = io.ReadAll(resp.Body)
		_ = resp.Body.Close()
	}
	armed.Store(false)
	if assert.NoError(t, err, "the login's answer reaches the client") {
		assert.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", got)
		assert.Contains(t, string(got), `"session_token"`)
	}
	assert.True(t, faultState(t, fe.env, f.ID, fe.identity.ID))
	faultAssertLogged(t, fe.logs, "ERROR", value, true)
}

// TestFaultFlowCreation: a store failing while a flow is created answers
// the generic 500 directly, also to a browser navigating (never a
// redirect), and creation works again once the fault clears.
func TestFaultFlowCreation(t *testing.T) {
	cases := []struct {
		name    string
		path    string
		accept  string
		signed  bool // the browser is signed in (a refresh flow loads session, identity and credentials)
		success int
	}{
		{"browser navigation", "/self-service/login/browser", "", false, http.StatusSeeOther},
		{"browser JSON", "/self-service/login/browser", "application/json", false, http.StatusOK},
		{"api", "/self-service/login/api", "", false, http.StatusOK},
		{"browser navigation refresh", "/self-service/login/browser?refresh=true", "", true, http.StatusSeeOther},
		{"browser JSON refresh", "/self-service/login/browser?refresh=true", "application/json", true, http.StatusOK},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			header := map[string]string{}
			if tc.accept != "" {
				header["Accept"] = tc.accept
			}
			start := func(t *testing.T) (*faultEnv, *http.Client) {
				fe := faultNewEnv(t, false)
				c := fe.browser()
				if tc.signed {
					fe.loginBrowser(c)
				}
				return fe, c
			}
			fe, c := start(t)
			fe.plan.arm(faultOff, 0)
			r := fe.do(c, http.MethodGet, tc.path, nil, header)
			calls := fe.plan.disarm()
			require.Equal(t, tc.success, r.status, "body: %s", r.body)
			t.Logf("%s: creation makes %d store calls: %s", tc.name, len(calls), strings.Join(calls, ", "))
			for n := 1; n <= len(calls); n++ {
				for _, mode := range faultModes {
					t.Run(fmt.Sprintf("%s/%d-%s", mode, n, calls[n-1]), func(t *testing.T) {
						fe, c := start(t)
						fe.plan.arm(mode, n)
						r := fe.do(c, http.MethodGet, tc.path, nil, header)
						fe.plan.disarm()
						faultWantInternal(t, r)
						faultAssertLogged(t, fe.logs, "ERROR", faultText(mode, calls[n-1], n), mode == faultPanic)
						r = fe.do(c, http.MethodGet, tc.path, nil, header)
						assert.Equal(t, tc.success, r.status, "creation works once the fault clears; body: %s", r.body)
					})
				}
			}
		})
	}
}
