package pgstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	pqtotp "github.com/pquerna/otp/totp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	autherrors "github.com/authflow/authflow/errors"
	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/internal/testclock"
	"github.com/authflow/authflow/internal/uuid"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/login/logintest"
	"github.com/authflow/authflow/login/lookup"
	"github.com/authflow/authflow/login/totp"
	"github.com/authflow/authflow/pgstore"
	"github.com/authflow/authflow/session"
)

// The second factor (CONTRACT-AAL Part 1 B, S1 to S5) end to end through
// the handler, with the totp and lookup_secret methods, every store and
// the limiter on PostgreSQL, and several instances sharing the database.

const (
	// sfSecret is the test identity's TOTP secret, shared by the test's
	// authenticator (pquerna/otp).
	sfSecret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
	sfURL    = "otpauth://totp/Example:alice@example.com?algorithm=SHA1&digits=6&issuer=Example&period=30&secret=" + sfSecret

	sfSessionCookie = login.DefaultSessionCookieName
	sfLoginUI       = "https://ui.example.com/login"
	sfDefaultReturn = "https://app.example.com/welcome"
	sfNoCache       = "private, no-cache, no-store, must-revalidate"
)

// sfEnv is a deployment of n instances on one fresh schema, sharing a
// clock that starts 10 seconds into a TOTP time step, so that ±30 s are
// the neighbouring steps. Its identity has a password, a TOTP credential
// (sfURL, imported as from Kratos) and 12 backup codes.
type sfEnv struct {
	clock    *testClock
	cluster  []*instance
	identity *session.Identity
	codes    []string // the backup codes, in clear
}

// newSecondFactorEnv starts n instances with the password, totp and
// lookup_secret methods; each has its own pool, Store, Limiter (limits,
// on the shared clock) and methods; configure may change each Config
// before New. RequiredAAL is left at its default, which is
// highest_available since second factors are configured.
func newSecondFactorEnv(t *testing.T, n int, limits login.Limits, configure ...func(*login.Config)) *sfEnv {
	t.Helper()
	schema := freshSchema(t)
	now := time.Now().UTC()
	e := &sfEnv{clock: testclock.New(time.Unix(now.Unix()-now.Unix()%30+10, 0).UTC())}
	limits.Now = e.clock.Now
	for i := range n {
		pool := newPool(t, schema, func(c *pgxpool.Config) { c.MaxConns = 16 })
		st := pgstore.New(pool)
		require.NoError(t, st.Migrate(context.Background()))
		tm, err := totp.New(totp.Config{Issuer: "Example", Now: e.clock.Now})
		require.NoError(t, err)
		lm, err := lookup.New(lookup.Config{Now: e.clock.Now})
		require.NoError(t, err)
		mux := http.NewServeMux()
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		cfg := login.Config{
			PublicURL:         srv.URL,
			LoginUIURL:        sfLoginUI,
			ErrorUIURL:        "https://ui.example.com/error",
			DefaultReturnURL:  sfDefaultReturn,
			AllowedReturnURLs: []string{"https://app.example.com/"},
			FlowStore:         st,
			SessionStore:      st,
			IdentityStore:     st,
			Limiter:           pgstore.NewLimiter(pool, limits),
			Hasher:            logintest.FastHasher{},
			Methods:           []login.Method{tm, lm},
			Now:               e.clock.Now,
			Logger:            slog.New(slog.DiscardHandler),
		}
		for _, c := range configure {
			c(&cfg)
		}
		h, err := login.New(cfg)
		require.NoError(t, err)
		mux.Handle("/", h)
		e.cluster = append(e.cluster, &instance{name: string(rune('A' + i)), srv: srv, pool: pool, st: st})
	}

	ctx := context.Background()
	st := e.cluster[0].st
	pw, err := login.NewPasswordCredential(ctx, logintest.FastHasher{}, clusterIdentifier, clusterPassword)
	require.NoError(t, err)
	created := e.clock.Now()
	e.identity = &session.Identity{
		ID: uuid.New(), SchemaID: "default", State: session.StateActive, StateChangedAt: &created,
		Traits: json.RawMessage(`{"email":"alice@example.com"}`), CreatedAt: created, UpdatedAt: created,
	}
	require.NoError(t, st.CreateIdentity(ctx, e.identity, pw))
	tc, err := totp.ImportKratos(e.identity.ID, json.RawMessage(`{"totp_url":"`+sfURL+`"}`))
	require.NoError(t, err)
	require.NoError(t, st.UpdateCredential(ctx, e.identity.ID, &tc))
	e.codes, err = lookup.NewCodes()
	require.NoError(t, err)
	lc, err := lookup.NewCredential(e.identity.ID, e.codes)
	require.NoError(t, err)
	require.NoError(t, st.UpdateCredential(ctx, e.identity.ID, &lc))
	return e
}

// code is what the authenticator shows at the clock's time plus offset.
func (e *sfEnv) code(t *testing.T, offset time.Duration) string {
	t.Helper()
	c, err := pqtotp.GenerateCode(sfSecret, e.clock.Now().Add(offset))
	require.NoError(t, err)
	return c
}

// wrongCode is a six-digit code that no accepted step (now ±30 s) shows.
func (e *sfEnv) wrongCode(t *testing.T) string {
	t.Helper()
	accepted := map[string]bool{e.code(t, -30*time.Second): true, e.code(t, 0): true, e.code(t, 30*time.Second): true}
	for _, c := range []string{"000000", "111111", "222222", "333333"} {
		if !accepted[c] {
			return c
		}
	}
	t.Fatal("no wrong code")
	return ""
}

// currentStep is the TOTP time step at the clock's time.
func (e *sfEnv) currentStep() uint64 { return uint64(e.clock.Now().Unix() / 30) }

// lastStep is the last_step stored in the identity's TOTP credential.
func (e *sfEnv) lastStep(t *testing.T) uint64 {
	t.Helper()
	c := e.credential(t, session.CredentialTOTP)
	var cfg struct {
		LastStep uint64 `json:"last_step"`
	}
	require.NoError(t, json.Unmarshal(c.Config, &cfg))
	return cfg.LastStep
}

// remaining is how many of the identity's backup codes are unused, as
// stored.
func (e *sfEnv) remaining(t *testing.T) int {
	t.Helper()
	n, err := lookup.Remaining(e.credential(t, session.CredentialLookup))
	require.NoError(t, err)
	return n
}

func (e *sfEnv) credential(t *testing.T, typ session.CredentialType) session.Credential {
	t.Helper()
	creds, err := e.cluster[0].st.Credentials(context.Background(), e.identity.ID)
	require.NoError(t, err)
	for _, c := range creds {
		if c.Type == typ {
			return c
		}
	}
	t.Fatalf("no %s credential", typ)
	return session.Credential{}
}

// aal1 signs the identity in with its password through an API flow on in
// and returns the aal1 session's token and id. Under highest_available the
// answer is 200 with the token and "identity": null.
func (e *sfEnv) aal1(t *testing.T, in *instance) (token, sessionID string) {
	t.Helper()
	r := submit(t, in, nil, in.apiFlow(t), clusterPassword, "")
	require.Equal(t, http.StatusOK, r.status, "password on %s: %s", in.name, r.body)
	body := r.json(t)
	token, _ = body["session_token"].(string)
	require.NotEmpty(t, token, "%s", r.body)
	s, _ := body["session"].(map[string]any)
	require.NotNil(t, s, "%s", r.body)
	require.Contains(t, s, "identity", "%s", r.body)
	require.Nil(t, s["identity"], "the token is for the step-up: %s", r.body)
	require.Equal(t, "aal1", s["authenticator_assurance_level"], "%s", r.body)
	sessionID, _ = s["id"].(string)
	require.NotEmpty(t, sessionID)
	return token, sessionID
}

// stepUp creates an API step-up flow (aal=aal2) on in for the session of
// token.
func (e *sfEnv) stepUp(t *testing.T, in *instance, token string) flow.Flow {
	t.Helper()
	r := in.do(t, nil, http.MethodGet, "/self-service/login/api?aal=aal2", nil, map[string]string{"X-Session-Token": token})
	require.Equal(t, http.StatusOK, r.status, "step-up flow on %s: %s", in.name, r.body)
	return sfFlow(t, r)
}

// submitTOTP submits code to the flow on in, with the session of token
// ("" for none).
func submitTOTP(t *testing.T, in *instance, flowID, token, code string) reply {
	t.Helper()
	return submitSecondFactor(t, in, flowID, token, map[string]any{"method": "totp", "totp_code": code})
}

// submitBackupCode submits a backup code to the flow on in, with the
// session of token.
func submitBackupCode(t *testing.T, in *instance, flowID, token, code string) reply {
	t.Helper()
	return submitSecondFactor(t, in, flowID, token, map[string]any{"method": "lookup_secret", "lookup_secret": code})
}

func submitSecondFactor(t *testing.T, in *instance, flowID, token string, body map[string]any) reply {
	t.Helper()
	var header map[string]string
	if token != "" {
		header = map[string]string{"X-Session-Token": token}
	}
	return in.do(t, nil, http.MethodPost, "/self-service/login?flow="+flowID, body, header)
}

func sfFlow(t *testing.T, r reply) flow.Flow {
	t.Helper()
	var f flow.Flow
	require.NoError(t, json.Unmarshal(r.body, &f), "body: %s", r.body)
	require.NotEmpty(t, f.ID, "body: %s", r.body)
	return f
}

// assertFlowRefusal asserts a 400 answered with the flow flowID (JSON, no
// cookie) whose flow-wide messages are exactly ids, and whose code fields
// do not echo the submitted code (their value is empty or absent).
func assertFlowRefusal(t *testing.T, r reply, flowID, submitted string, ids ...int) bool {
	t.Helper()
	if !assert.Equal(t, http.StatusBadRequest, r.status, "%s", r.body) {
		return false
	}
	assert.True(t, strings.HasPrefix(r.header.Get("Content-Type"), "application/json"), "Content-Type %q", r.header.Get("Content-Type"))
	assert.Empty(t, r.header.Values("Set-Cookie"), "a refusal sets no cookie")
	assert.Empty(t, r.header.Get("Ory-Error-Id"), "a flow answer is not an error envelope")
	f := sfFlow(t, r)
	assert.Equal(t, flowID, f.ID, "the same flow")
	ok := assert.Equal(t, ids, r.messageIDs(t), "%s", r.body)
	for _, name := range []string{"totp_code", "lookup_secret"} {
		if n := f.UI.Node(name); n != nil {
			assert.Empty(t, n.Attributes.Value, "%s is never echoed", name)
		}
	}
	assert.NotContains(t, string(r.body), `"value":"`+submitted+`"`, "the submitted code is never echoed")
	return ok
}

// assertEnvelope asserts an error envelope of status and id, with the id
// in Ory-Error-Id, and returns the envelope.
func assertEnvelope(t *testing.T, r reply, status int, id string) map[string]any {
	t.Helper()
	require.Equal(t, status, r.status, "%s", r.body)
	assert.True(t, strings.HasPrefix(r.header.Get("Content-Type"), "application/json"), "Content-Type %q", r.header.Get("Content-Type"))
	assert.Equal(t, id, r.header.Get("Ory-Error-Id"))
	env := r.json(t)
	e, ok := env["error"].(map[string]any)
	require.True(t, ok, "not an error envelope: %s", r.body)
	assert.Equal(t, id, e["id"], "%s", r.body)
	assert.EqualValues(t, status, e["code"], "%s", r.body)
	return env
}

// assertStepUpDone asserts the API answer of a successful step-up of the
// session sessionID (previously under oldToken) and returns the new token.
func (e *sfEnv) assertStepUpDone(t *testing.T, r reply, sessionID, oldToken, method string) string {
	t.Helper()
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	assert.Equal(t, sfNoCache, r.header.Get("Cache-Control"))
	assert.Empty(t, r.header.Values("Set-Cookie"), "API answers set no cookie")
	body := r.json(t)
	token, _ := body["session_token"].(string)
	require.NotEmpty(t, token, "%s", r.body)
	assert.NotEqual(t, oldToken, token, "the step-up rotates the token (S3)")
	assert.Nil(t, body["continue_with"], "%s", r.body)
	s, _ := body["session"].(map[string]any)
	require.NotNil(t, s, "%s", r.body)
	assert.Equal(t, sessionID, s["id"], "the step-up keeps the session id")
	assert.Equal(t, "aal2", s["authenticator_assurance_level"])
	assert.Equal(t, true, s["active"])
	ident, _ := s["identity"].(map[string]any)
	require.NotNil(t, ident, "the identity is shown again: %s", r.body)
	assert.Equal(t, e.identity.ID, ident["id"])
	assert.NotContains(t, ident, "credentials")
	var amr []string
	for _, m := range s["authentication_methods"].([]any) {
		mm := m.(map[string]any)
		amr = append(amr, fmt.Sprintf("%s/%s", mm["method"], mm["aal"]))
	}
	assert.Equal(t, []string{"password/aal1", method + "/aal2"}, amr)
	return token
}

// assertAAL2 asserts that token is the valid aal2 session sessionID on in.
func assertAAL2(t *testing.T, in *instance, token, sessionID string) {
	t.Helper()
	r := whoami(t, in, token)
	require.Equal(t, http.StatusOK, r.status, "whoami on %s: %s", in.name, r.body)
	s := r.json(t)
	assert.Equal(t, sessionID, s["id"])
	assert.Equal(t, "aal2", s["authenticator_assurance_level"])
}

// assertAAL1 asserts that whoami refuses token's session on in with 403
// session_aal2_required, naming in's step-up URL.
func assertAAL1(t *testing.T, in *instance, token string) {
	t.Helper()
	env := assertEnvelope(t, whoami(t, in, token), http.StatusForbidden, autherrors.IDSessionAAL2Required)
	stepUp := in.srv.URL + "/self-service/login/browser?aal=aal2"
	assert.Equal(t, stepUp, env["redirect_browser_to"])
	details, _ := env["error"].(map[string]any)["details"].(map[string]any)
	assert.Equal(t, stepUp, details["redirect_browser_to"])
}

// assertTokenDead asserts that whoami refuses token with 401.
func assertTokenDead(t *testing.T, in *instance, token string) {
	t.Helper()
	assertEnvelope(t, whoami(t, in, token), http.StatusUnauthorized, autherrors.IDSessionInactive)
}

// A password login, then the TOTP step-up, through the API (§8, §9, S3).
func TestTOTPStepUpOnPostgres(t *testing.T) {
	e := newSecondFactorEnv(t, 1, login.Limits{})
	in := e.cluster[0]

	// The first factor: 200, the token, "identity": null, no cookie.
	r := submit(t, in, nil, in.apiFlow(t), clusterPassword, "")
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	assert.Empty(t, r.header.Values("Set-Cookie"))
	body := r.json(t)
	token, _ := body["session_token"].(string)
	require.NotEmpty(t, token)
	s := body["session"].(map[string]any)
	require.Contains(t, s, "identity")
	assert.Nil(t, s["identity"])
	assert.Equal(t, "aal1", s["authenticator_assurance_level"])
	sessionID, _ := s["id"].(string)
	require.NotEmpty(t, sessionID)

	// Whoami: 403 session_aal2_required.
	assertAAL1(t, in, token)

	// The step-up flow offers both second factors and nothing else.
	f := e.stepUp(t, in, token)
	assert.Equal(t, flow.AAL2, f.RequestedAAL)
	assert.False(t, f.Refresh)
	assert.Equal(t, []int{flow.IDSecondFactor}, sfMessageIDs(f))
	for _, name := range []string{"csrf_token", "totp_code", "lookup_secret"} {
		assert.NotNil(t, f.UI.Node(name), "node %s", name)
	}
	for _, name := range []string{"identifier", "password"} {
		assert.Nil(t, f.UI.Node(name), "node %s", name)
	}

	// The code: 200, a new token, the same session, aal2.
	r = submitTOTP(t, in, f.ID, token, e.code(t, 0))
	newToken := e.assertStepUpDone(t, r, sessionID, token, "totp")
	assertAAL2(t, in, newToken, sessionID)
	assertTokenDead(t, in, token)
	assert.Equal(t, e.currentStep(), e.lastStep(t), "the code's step is recorded as used")
	assert.Equal(t, 1, count(t, in.pool, "authflow_sessions", "identity_id = $1", e.identity.ID), "no second session")

	// The completed flow, submitted again by the now aal2 session: already
	// signed in (Part 1 rule 6).
	r = submitTOTP(t, in, f.ID, newToken, e.code(t, 30*time.Second))
	assertEnvelope(t, r, http.StatusBadRequest, autherrors.IDSessionAlreadyAvailable)
	assert.Equal(t, e.currentStep(), e.lastStep(t), "nothing was spent")
}

// S1: a TOTP code logs in at most once per identity, also when replayed by
// another session of the identity on another instance.
func TestTOTPReplayRefusedOnPostgres(t *testing.T) {
	e := newSecondFactorEnv(t, 2, login.Limits{})
	a, b := e.cluster[0], e.cluster[1]
	code := e.code(t, 0)

	tokA, idA := e.aal1(t, a)
	newA := e.assertStepUpDone(t, submitTOTP(t, a, e.stepUp(t, a, tokA).ID, tokA, code), idA, tokA, "totp")

	tokB, idB := e.aal1(t, b)
	fB := e.stepUp(t, b, tokB)
	assertFlowRefusal(t, submitTOTP(t, b, fB.ID, tokB, code), fB.ID, code, flow.IDInvalidCode)
	assertAAL1(t, b, tokB)
	// An older step than the one used is refused the same way.
	previous := e.code(t, -30*time.Second)
	assertFlowRefusal(t, submitTOTP(t, b, fB.ID, tokB, previous), fB.ID, previous, flow.IDInvalidCode)
	assert.Equal(t, e.currentStep(), e.lastStep(t))

	// The code of the next step works, on the same flow.
	newB := e.assertStepUpDone(t, submitTOTP(t, b, fB.ID, tokB, e.code(t, 30*time.Second)), idB, tokB, "totp")
	assertAAL2(t, a, newB, idB)
	assertAAL2(t, b, newA, idA)
	assert.Equal(t, e.currentStep()+1, e.lastStep(t))
}

// S2, sequentially: a backup code logs in once; another session of the
// identity is told it was used, and can go on with another code.
func TestBackupCodeReuseRefusedOnPostgres(t *testing.T) {
	e := newSecondFactorEnv(t, 2, login.Limits{})
	a, b := e.cluster[0], e.cluster[1]
	require.Equal(t, 12, e.remaining(t))

	tokA, idA := e.aal1(t, a)
	newA := e.assertStepUpDone(t, submitBackupCode(t, a, e.stepUp(t, a, tokA).ID, tokA, e.codes[0]), idA, tokA, "lookup_secret")
	assertAAL2(t, b, newA, idA)
	assert.Equal(t, 11, e.remaining(t))

	tokB, idB := e.aal1(t, b)
	fB := e.stepUp(t, b, tokB)
	assertFlowRefusal(t, submitBackupCode(t, b, fB.ID, tokB, e.codes[0]), fB.ID, e.codes[0], flow.IDBackupCodeUsed)
	assertAAL1(t, a, tokB)
	assert.Equal(t, 11, e.remaining(t))

	newB := e.assertStepUpDone(t, submitBackupCode(t, b, fB.ID, tokB, e.codes[1]), idB, tokB, "lookup_secret")
	assertAAL2(t, a, newB, idB)
	assert.Equal(t, 10, e.remaining(t))
}

// S1 and S2 under concurrency across instances: one code submitted at once
// from 12 aal1 sessions of the identity, each with its own step-up flow,
// spread over 3 instances that share only the database, logs in exactly
// once; the others get the used-code answer, never a 5xx.
func TestOneSecondFactorCodeOnceAcrossInstances(t *testing.T) {
	rows := []sfRace{
		{
			name: "backup code", method: "lookup_secret", field: "lookup_secret", loserID: flow.IDBackupCodeUsed,
			code:  func(_ *testing.T, e *sfEnv) string { return e.codes[3] },
			check: func(t *testing.T, e *sfEnv) { assert.Equal(t, 11, e.remaining(t), "exactly one code is used") },
		},
		{
			name: "TOTP code", method: "totp", field: "totp_code", loserID: flow.IDInvalidCode,
			code: func(t *testing.T, e *sfEnv) string { return e.code(t, 0) },
			check: func(t *testing.T, e *sfEnv) {
				assert.Equal(t, e.currentStep(), e.lastStep(t), "the step is recorded once")
			},
		},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) { row.run(t, false) })
		t.Run(row.name+" all read before any write", func(t *testing.T) { row.run(t, true) })
	}
}

// sfRace is one code submitted at once from many sessions.
type sfRace struct {
	name, method, field string
	code                func(*testing.T, *sfEnv) string
	loserID             int // the message of every submission but one
	check               func(*testing.T, *sfEnv)
}

// run submits the code from 12 sessions at once, over 3 instances. Every
// attempt in flight holds a reservation of the identity's (identity,
// address) pair, all from 127.0.0.1: the free failures are raised so that
// the limiter lets all 12 through. With gated, the instances' credential
// writes pass a gate that holds them until all 12 submissions reached it,
// so that every one of them has read the credential, and found the code
// unspent, before any writes it: only the store's conditional update then
// keeps the code single use.
func (row sfRace) run(t *testing.T, gated bool) {
	gate := &writeGate{}
	e := newSecondFactorEnv(t, 3, login.Limits{FreeFailures: 1000}, func(c *login.Config) {
		c.IdentityStore = gatedCredentialWrites{Store: c.IdentityStore.(*pgstore.Store), gate: gate}
	})
	const n = 12
	tokens, ids, flows := make([]string, n), make([]string, n), make([]string, n)
	for i := range n {
		// The session on one instance, its flow on the next, the
		// submission on the one after.
		tokens[i], ids[i] = e.aal1(t, e.cluster[i%3])
		flows[i] = e.stepUp(t, e.cluster[(i+1)%3], tokens[i]).ID
	}
	code := row.code(t, e)
	if gated {
		gate.arm(n)
	}
	body := map[string]any{"method": row.method, row.field: code}
	replies := make([]reply, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		in := e.cluster[(i+2)%3]
		wg.Go(func() {
			<-start
			replies[i] = submitSecondFactor(t, in, flows[i], tokens[i], body)
		})
	}
	close(start)
	wg.Wait()
	if gated {
		require.True(t, gate.filled(), "all %d submissions read the unspent code before any write (else the gate timed out)", n)
	}

	winner, losers := -1, 0
	for i, r := range replies {
		in := e.cluster[(i+2)%3]
		switch r.status {
		case http.StatusOK:
			if winner >= 0 {
				t.Errorf("submission %d on %s logged in too (after %d): %s", i, in.name, winner, r.body)
			}
			winner = i
		case http.StatusBadRequest:
			if assertFlowRefusal(t, r, flows[i], code, row.loserID) {
				losers++
			}
		default:
			t.Errorf("submission %d on %s: %d %s", i, in.name, r.status, r.body)
		}
	}
	require.GreaterOrEqual(t, winner, 0, "no submission logged in")
	assert.Equal(t, n-1, losers, "submissions answered %d", row.loserID)
	row.check(t, e)

	newToken := e.assertStepUpDone(t, replies[winner], ids[winner], tokens[winner], row.method)
	for i := range n {
		in := e.cluster[i%3]
		if i == winner {
			assertAAL2(t, in, newToken, ids[i])
			assertTokenDead(t, in, tokens[i])
		} else {
			assertAAL1(t, in, tokens[i])
		}
	}
}

// S5: a step-up flow belongs to the session that created it; a flow logs
// in at most once (rule 9).
func TestStepUpFlowBelongsToItsSessionOnPostgres(t *testing.T) {
	e := newSecondFactorEnv(t, 2, login.Limits{})
	a, b := e.cluster[0], e.cluster[1]
	tokA, idA := e.aal1(t, a)
	tokB, _ := e.aal1(t, b)
	fA := e.stepUp(t, a, tokA)
	code := e.code(t, 0)

	// Session B submits A's flow with the right code, and a backup code.
	assertFlowRefusal(t, submitTOTP(t, b, fA.ID, tokB, code), fA.ID, code, flow.IDNoMethod)
	assertFlowRefusal(t, submitBackupCode(t, a, fA.ID, tokB, e.codes[0]), fA.ID, e.codes[0], flow.IDNoMethod)
	assertAAL1(t, a, tokB)
	assertAAL1(t, b, tokA)
	assert.Zero(t, e.lastStep(t), "the code was not spent")
	assert.Equal(t, 12, e.remaining(t), "the backup code was not spent")

	// Without a session.
	assertEnvelope(t, submitTOTP(t, b, fA.ID, "", code), http.StatusUnauthorized, autherrors.IDSessionAAL1Required)
	assert.Zero(t, e.lastStep(t))

	// A completes its flow, with the same code.
	newA := e.assertStepUpDone(t, submitTOTP(t, b, fA.ID, tokA, code), idA, tokA, "totp")
	assertAAL2(t, a, newA, idA)

	// The completed flow, submitted by another aal1 session with a valid
	// code: 4010007, and nothing spent.
	tokC, _ := e.aal1(t, a)
	next := e.code(t, 30*time.Second)
	assertFlowRefusal(t, submitTOTP(t, a, fA.ID, tokC, next), fA.ID, next, flow.IDAlreadyCompleted)
	assertFlowRefusal(t, submitTOTP(t, b, fA.ID, tokB, next), fA.ID, next, flow.IDAlreadyCompleted)
	assertAAL1(t, a, tokC)
	assertAAL1(t, b, tokB)
	assert.Equal(t, e.currentStep(), e.lastStep(t), "the next step's code is unspent")
}

// S4: wrong second-factor codes are throttled by identity on the
// PostgreSQL limiter, whichever session and instance submit them.
func TestWrongTOTPCodesThrottledOnPostgres(t *testing.T) {
	e := newSecondFactorEnv(t, 2, login.Limits{})
	wrong := e.wrongCode(t)
	type attempt struct {
		in    *instance
		token string
		flow  string
		id    string
	}
	var sessions []attempt
	for i := range 3 {
		in := e.cluster[i%2]
		tok, id := e.aal1(t, in)
		sessions = append(sessions, attempt{in: in, token: tok, flow: e.stepUp(t, in, tok).ID, id: id})
	}
	// Five wrong codes, from the first two sessions on both instances.
	for i := range 5 {
		s := sessions[i%2]
		in := e.cluster[(i+1)%2]
		assertFlowRefusal(t, submitTOTP(t, in, s.flow, s.token, wrong), s.flow, wrong, flow.IDInvalidCode)
	}
	assert.Equal(t, 5, scalar(t, e.cluster[0].pool, "SELECT failures FROM authflow_limiter_pairs WHERE identifier = $1", e.identity.ID),
		"the failures are counted by the identity's id")

	// The sixth attempt, from the third session, with the right code, and
	// with a right backup code: 429.
	c := sessions[2]
	for _, r := range []reply{
		submitTOTP(t, c.in, c.flow, c.token, e.code(t, 0)),
		submitBackupCode(t, e.cluster[1], c.flow, c.token, e.codes[0]),
	} {
		assertEnvelope(t, r, http.StatusTooManyRequests, autherrors.IDTooManyAttempts)
		assert.Equal(t, "1", r.header.Get("Retry-After"))
	}
	assertAAL1(t, c.in, c.token)
	assert.Zero(t, e.lastStep(t), "the throttled code was not spent")
	assert.Equal(t, 12, e.remaining(t), "the throttled backup code was not spent")
	assert.Equal(t, 5, scalar(t, e.cluster[0].pool, "SELECT failures FROM authflow_limiter_pairs WHERE identifier = $1", e.identity.ID),
		"the refusals counted nothing")

	// After the first delay the right code logs in.
	e.clock.Advance(time.Second)
	newC := e.assertStepUpDone(t, submitTOTP(t, c.in, c.flow, c.token, e.code(t, 0)), c.id, c.token, "totp")
	assertAAL2(t, e.cluster[0], newC, c.id)
}

// A browser steps up with HTML forms: the password form sends it to the
// step-up flow, whose TOTP form signs it in at aal2 (§8, S3).
func TestBrowserFormStepUpOnPostgres(t *testing.T) {
	e := newSecondFactorEnv(t, 1, login.Limits{})
	in := e.cluster[0]
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	r := in.do(t, browser, http.MethodGet, "/self-service/login/browser", nil, nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	first := sfFlow(t, r)
	require.Equal(t, flow.AAL1, first.RequestedAAL)

	// The password form: the aal1 session cookie and a 303 to the step-up.
	r = postForm(t, in, browser, first.ID, url.Values{
		"method": {"password"}, "identifier": {clusterIdentifier}, "password": {clusterPassword}, "csrf_token": {sfCSRF(first)},
	})
	require.Equal(t, http.StatusSeeOther, r.status, "%s", r.body)
	stepUp := in.srv.URL + "/self-service/login/browser?aal=aal2"
	assert.Equal(t, stepUp, r.header.Get("Location"))
	assert.Equal(t, sfNoCache, r.header.Get("Cache-Control"))
	require.NotNil(t, setCookie(r, sfSessionCookie), "the aal1 session is issued")
	aal1 := jarValue(t, in, browser, sfSessionCookie)
	require.NotEmpty(t, aal1)
	who := in.do(t, browser, http.MethodGet, "/sessions/whoami", nil, nil)
	assertEnvelope(t, who, http.StatusForbidden, autherrors.IDSessionAAL2Required)

	// The browser follows: a step-up flow, shown by the login UI.
	r = navigate(t, in, browser, strings.TrimPrefix(stepUp, in.srv.URL))
	require.Equal(t, http.StatusSeeOther, r.status, "%s", r.body)
	loc, err := url.Parse(r.header.Get("Location"))
	require.NoError(t, err)
	require.Equal(t, sfLoginUI, loc.Scheme+"://"+loc.Host+loc.Path, "%s", loc)
	r = in.do(t, browser, http.MethodGet, "/self-service/login/flows?id="+url.QueryEscape(loc.Query().Get("flow")), nil, nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	f := sfFlow(t, r)
	assert.Equal(t, flow.AAL2, f.RequestedAAL)
	assert.Equal(t, flow.TypeBrowser, f.Type)
	assert.Equal(t, []int{flow.IDSecondFactor}, sfMessageIDs(f))
	require.NotNil(t, f.UI.Node("totp_code"))
	require.NotEmpty(t, sfCSRF(f))

	// The TOTP form: 303 to the default return URL with a new cookie.
	r = postForm(t, in, browser, f.ID, url.Values{"method": {"totp"}, "totp_code": {e.code(t, 0)}, "csrf_token": {sfCSRF(f)}})
	require.Equal(t, http.StatusSeeOther, r.status, "%s", r.body)
	assert.Equal(t, sfDefaultReturn, r.header.Get("Location"))
	assert.Equal(t, sfNoCache, r.header.Get("Cache-Control"))
	c := setCookie(r, sfSessionCookie)
	require.NotNil(t, c, "the session cookie is re-issued")
	assert.True(t, c.HttpOnly)
	assert.Equal(t, "/", c.Path)
	aal2 := jarValue(t, in, browser, sfSessionCookie)
	assert.NotEqual(t, aal1, aal2, "the token rotated")

	who = in.do(t, browser, http.MethodGet, "/sessions/whoami", nil, nil)
	require.Equal(t, http.StatusOK, who.status, "%s", who.body)
	s := who.json(t)
	assert.Equal(t, "aal2", s["authenticator_assurance_level"])
	assertAAL2(t, in, aal2, s["id"].(string))
	assertTokenDead(t, in, aal1)
	assert.Equal(t, e.currentStep(), e.lastStep(t))
}

// gatedCredentialWrites is the Store, except that UpdateCredential first
// waits at gate.
type gatedCredentialWrites struct {
	*pgstore.Store
	gate *writeGate
}

func (s gatedCredentialWrites) UpdateCredential(ctx context.Context, identityID string, c *session.Credential) error {
	s.gate.wait()
	return s.Store.UpdateCredential(ctx, identityID, c)
}

// writeGate holds the writes that reach it, once armed for n, until n
// writes have arrived (or 10 seconds passed); then it lets every write
// through. Unarmed, it holds nothing.
type writeGate struct {
	mu      sync.Mutex
	n       int
	arrived int
	open    chan struct{}
}

func (g *writeGate) arm(n int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.n, g.arrived, g.open = n, 0, make(chan struct{})
}

func (g *writeGate) wait() {
	g.mu.Lock()
	open := g.open
	if open == nil {
		g.mu.Unlock()
		return
	}
	g.arrived++
	if g.arrived == g.n {
		close(open)
	}
	g.mu.Unlock()
	select {
	case <-open:
	case <-time.After(10 * time.Second):
	}
}

// filled reports whether n writes arrived.
func (g *writeGate) filled() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.open != nil && g.arrived >= g.n
}

func sfMessageIDs(f flow.Flow) []int {
	var ids []int
	for _, m := range f.UI.Messages {
		ids = append(ids, m.ID)
	}
	return ids
}

func sfCSRF(f flow.Flow) string {
	if n := f.UI.Node("csrf_token"); n != nil {
		s, _ := n.Attributes.Value.(string)
		return s
	}
	return ""
}

// postForm posts values to the flow as an HTML form would.
func postForm(t *testing.T, in *instance, c *http.Client, flowID string, values url.Values) reply {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, in.srv.URL+"/self-service/login?flow="+flowID, strings.NewReader(values.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "text/html")
	return sfSend(t, c, req)
}

// navigate GETs path as a browser navigation.
func navigate(t *testing.T, in *instance, c *http.Client, path string) reply {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, in.srv.URL+path, nil)
	require.NoError(t, err)
	req.Header.Set("Accept", "text/html")
	return sfSend(t, c, req)
}

func sfSend(t *testing.T, c *http.Client, req *http.Request) reply {
	t.Helper()
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}

// setCookie returns the cookie name that r sets, or nil.
func setCookie(r reply, name string) *http.Cookie {
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// jarValue returns the value of the cookie name that c sends to in.
func jarValue(t *testing.T, in *instance, c *http.Client, name string) string {
	t.Helper()
	u, err := url.Parse(in.srv.URL)
	require.NoError(t, err)
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == name {
			return ck.Value
		}
	}
	return ""
}
