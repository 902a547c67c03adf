package totp_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	autherrors "github.com/authflow/authflow/errors"
	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/session"
)

// The whole API step-up with the credential imported from Kratos: the
// first factor leaves an aal1 session that whoami refuses, the step-up
// flow offers the code, and a right code makes the same session aal2
// under a new token (CONTRACT-AAL §4, §7, §8, §9, Part 1 S3).
func TestStepUpAPI(t *testing.T) {
	e := newEnv(t)
	first := e.passwordAPI(testIdentifier, testPassword)
	token, _ := first["session_token"].(string)
	require.NotEmpty(t, token)
	s1 := first["session"].(map[string]any)
	assert.Nil(t, s1["identity"], "the first factor of an identity with TOTP: identity null (§8)")
	assert.Equal(t, "aal1", s1["authenticator_assurance_level"])

	who := e.whoami(token)
	assert.Equal(t, autherrors.IDSessionAAL2Required, who.WantError(t, http.StatusForbidden))
	assert.Equal(t, e.srv.URL+"/self-service/login/browser?aal=aal2", who.JSON(t)["redirect_browser_to"])

	r := e.do(e.api(), http.MethodGet, "/self-service/login/api?aal=aal2", nil, map[string]string{"X-Session-Token": token})
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	f := r.Flow(t)
	assert.Equal(t, flow.AAL2, f.RequestedAAL)
	assert.Equal(t, []int{flow.IDSecondFactor}, flowMessageIDs(f))
	var raw struct {
		UI struct {
			Nodes []json.RawMessage `json:"nodes"`
		} `json:"ui"`
	}
	require.NoError(t, json.Unmarshal(r.Body, &raw))
	require.Len(t, raw.UI.Nodes, 3, "csrf_token, totp_code, method (§4): no identifier, no password")
	assert.JSONEq(t, `{"type":"input","group":"default","attributes":{"name":"csrf_token","type":"hidden","value":"","required":true,"disabled":false,"node_type":"input"},"messages":[],"meta":{}}`, string(raw.UI.Nodes[0]))
	assert.JSONEq(t, `{"type":"input","group":"totp","attributes":{"name":"totp_code","type":"text","value":"","required":true,"autocomplete":"one-time-code","disabled":false,"node_type":"input"},"messages":[],
		"meta":{"label":{"id":1010006,"text":"Authentication code","type":"info"}}}`, string(raw.UI.Nodes[1]))
	assert.JSONEq(t, `{"type":"input","group":"totp","attributes":{"name":"method","type":"submit","value":"totp","disabled":false,"node_type":"input"},"messages":[],
		"meta":{"label":{"id":1010009,"text":"Use Authenticator","type":"info"}}}`, string(raw.UI.Nodes[2]))

	r = e.submitCode(f.ID, token, e.code(0))
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	body := r.JSON(t)
	newToken, _ := body["session_token"].(string)
	require.NotEmpty(t, newToken)
	assert.NotEqual(t, token, newToken, "the token rotates (Part 1 S3)")
	assert.Nil(t, body["continue_with"])
	s2 := body["session"].(map[string]any)
	assert.Equal(t, s1["id"], s2["id"], "the same session")
	assert.Equal(t, "aal2", s2["authenticator_assurance_level"])
	assert.Equal(t, []string{"password/aal1", "totp/aal2"}, methodsOf(t, s2))
	require.NotNil(t, s2["identity"], "the identity is present again (§7)")
	assert.Equal(t, e.identity.ID, s2["identity"].(map[string]any)["id"])

	who = e.whoami(newToken)
	require.Equal(t, http.StatusOK, who.Status, "body: %s", who.Body)
	assert.Equal(t, "aal2", who.JSON(t)["authenticator_assurance_level"])
	assert.Equal(t, autherrors.IDSessionInactive, e.whoami(token).WantError(t, http.StatusUnauthorized), "the old token stopped working")

	last, _ := e.storedLastStep(e.identity.ID)
	assert.Equal(t, step(e.clock.Now()), last, "the step is recorded as used")
}

func methodsOf(t testing.TB, s map[string]any) []string {
	t.Helper()
	var out []string
	for _, m := range s["authentication_methods"].([]any) {
		mm := m.(map[string]any)
		out = append(out, mm["method"].(string)+"/"+mm["aal"].(string))
	}
	return out
}

// The browser step-up, as a form (no JavaScript) and as an SPA (JSON with
// cookies and the CSRF token): the first factor sends the browser to the
// step-up flow, return_to carried (§8), and the code completes it (§7).
func TestStepUpBrowser(t *testing.T) {
	const returnTo = "https://app.example.com/after"
	rows := []struct {
		name     string
		spa      bool
		returnTo string
		wantNext string // where the browser goes after the code
	}{
		{name: "form with return_to", returnTo: returnTo, wantNext: returnTo},
		{name: "form", wantNext: defaultReturn},
		{name: "spa with return_to", spa: true, returnTo: returnTo, wantNext: returnTo},
		{name: "spa", spa: true, wantNext: defaultReturn},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			e := newEnv(t)
			c := e.browser()
			query, stepUp := "", e.srv.URL+"/self-service/login/browser?aal=aal2"
			if row.returnTo != "" {
				query = "?return_to=" + url.QueryEscape(row.returnTo)
				stepUp += "&return_to=" + url.QueryEscape(row.returnTo)
			}
			r := e.do(c, http.MethodGet, "/self-service/login/browser"+query, nil, map[string]string{"Accept": "application/json"})
			require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
			first := r.Flow(t)
			password := map[string]any{"method": "password", "identifier": testIdentifier, "password": testPassword, "csrf_token": csrfToken(first)}

			// The first factor.
			if row.spa {
				r = e.submitJSON(c, first.ID, password, nil)
				assert.Equal(t, autherrors.IDBrowserLocationChangeRequired, r.WantError(t, http.StatusUnprocessableEntity))
				assert.Equal(t, stepUp, r.JSON(t)["redirect_browser_to"])
			} else {
				r = e.submitForm(c, first.ID, url.Values{"method": {"password"}, "identifier": {testIdentifier}, "password": {testPassword}, "csrf_token": {csrfToken(first)}})
				require.Equal(t, http.StatusSeeOther, r.Status, "body: %s", r.Body)
				assert.Equal(t, stepUp, r.Header.Get("Location"))
			}
			require.NotNil(t, r.Cookie(sessionCookie), "the aal1 session is issued")
			aal1 := e.jarCookie(c, sessionCookie)

			// The browser follows the redirect to the step-up flow.
			path := strings.TrimPrefix(stepUp, e.srv.URL)
			var f flow.Flow
			if row.spa {
				r = e.do(c, http.MethodGet, path, nil, map[string]string{"Accept": "application/json"})
				require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
				f = r.Flow(t)
			} else {
				r = e.do(c, http.MethodGet, path, nil, map[string]string{"Accept": "text/html"})
				require.Equal(t, http.StatusSeeOther, r.Status, "body: %s", r.Body)
				loc, err := url.Parse(r.Header.Get("Location"))
				require.NoError(t, err)
				require.Equal(t, loginUI, loc.Scheme+"://"+loc.Host+loc.Path)
				r = e.do(c, http.MethodGet, "/self-service/login/flows?id="+loc.Query().Get("flow"), nil, nil)
				require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
				f = r.Flow(t)
			}
			assert.Equal(t, flow.AAL2, f.RequestedAAL)
			assert.Equal(t, row.returnTo, f.ReturnTo)
			require.NotNil(t, f.UI.Node("totp_code"))

			// A wrong code first: FLOW-400, the code not echoed.
			if row.spa {
				r = e.submitJSON(c, f.ID, map[string]any{"method": "totp", "totp_code": e.wrongCode(), "csrf_token": csrfToken(f)}, nil)
				require.Equal(t, http.StatusBadRequest, r.Status, "body: %s", r.Body)
			} else {
				r = e.submitForm(c, f.ID, url.Values{"method": {"totp"}, "totp_code": {e.wrongCode()}, "csrf_token": {csrfToken(f)}})
				require.Equal(t, http.StatusSeeOther, r.Status, "body: %s", r.Body)
				assert.Equal(t, loginUI+"?flow="+f.ID, r.Header.Get("Location"))
				r = e.do(c, http.MethodGet, "/self-service/login/flows?id="+f.ID, nil, nil)
				require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
			}
			f = r.Flow(t)
			assert.Equal(t, []int{flow.IDInvalidCode}, flowMessageIDs(f))
			assertCodeNotEchoed(t, f)
			assert.Nil(t, r.Cookie(sessionCookie), "no session change")

			// The code.
			if row.spa {
				r = e.submitJSON(c, f.ID, map[string]any{"method": "totp", "totp_code": e.code(0), "csrf_token": csrfToken(f)}, nil)
				require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
				body := r.JSON(t)
				assert.NotContains(t, body, "session_token", "browsers get a cookie, not a token")
				assert.Equal(t, "aal2", body["session"].(map[string]any)["authenticator_assurance_level"])
				assert.Equal(t, []any{map[string]any{"action": "redirect_browser_to", "redirect_browser_to": row.wantNext}}, body["continue_with"])
			} else {
				r = e.submitForm(c, f.ID, url.Values{"method": {"totp"}, "totp_code": {e.code(0)}, "csrf_token": {csrfToken(f)}})
				require.Equal(t, http.StatusSeeOther, r.Status, "body: %s", r.Body)
				assert.Equal(t, row.wantNext, r.Header.Get("Location"))
			}
			require.NotNil(t, r.Cookie(sessionCookie), "a new session cookie")
			aal2 := e.jarCookie(c, sessionCookie)
			assert.NotEqual(t, aal1, aal2, "the token rotated")
			assert.Equal(t, http.StatusUnauthorized, e.whoami(aal1).Status, "the aal1 cookie stopped working")
			who := e.do(c, http.MethodGet, "/sessions/whoami", nil, nil)
			require.Equal(t, http.StatusOK, who.Status, "body: %s", who.Body)
			assert.Equal(t, "aal2", who.JSON(t)["authenticator_assurance_level"])
		})
	}
}

// Submissions of the code field (§6 rows 1 to 5, Part 1 rule 15): each row
// is one submission to a fresh step-up flow. Refusals are 400 with the
// flow, and the node totp_code never carries the submitted value.
func TestCodeSubmissions(t *testing.T) {
	type want struct {
		status int
		// node is the message on the totp_code node, flowMessage the
		// flow-wide one; at most one is set.
		node        *flow.Message
		flowMessage int
	}
	invalid := want{status: http.StatusBadRequest, flowMessage: flow.IDInvalidCode}
	accepted := want{status: http.StatusOK}
	node := func(m flow.Message) want { return want{status: http.StatusBadRequest, node: &m} }
	rows := []struct {
		name string
		body func(e *env) map[string]any // the submission, without method
		want want
	}{
		{"missing", func(*env) map[string]any { return map[string]any{} }, node(flow.Missing("totp_code"))},
		{"empty", func(*env) map[string]any { return map[string]any{"totp_code": ""} }, node(flow.Missing("totp_code"))},
		{"too short", func(*env) map[string]any { return map[string]any{"totp_code": "12345"} }, node(flow.TooShort(6, 5))},
		{"too short once trimmed", func(*env) map[string]any { return map[string]any{"totp_code": " 12345 "} }, node(flow.TooShort(6, 5))},
		{"too long", func(*env) map[string]any { return map[string]any{"totp_code": strings.Repeat("1", 65)} }, node(flow.TooLong(64, 65))},
		{"wrong code", func(e *env) map[string]any { return map[string]any{"totp_code": e.wrongCode()} }, invalid},
		{"code two steps back", func(e *env) map[string]any { return map[string]any{"totp_code": e.code(-60 * time.Second)} }, invalid},
		{"code two steps ahead", func(e *env) map[string]any { return map[string]any{"totp_code": e.code(60 * time.Second)} }, invalid},
		{"non-digits", func(*env) map[string]any { return map[string]any{"totp_code": "abcdef"} }, invalid},
		{"seven digits", func(e *env) map[string]any { return map[string]any{"totp_code": e.code(0) + "0"} }, invalid},
		{"inner space", func(e *env) map[string]any { c := e.code(0); return map[string]any{"totp_code": c[:3] + " " + c[3:]} }, invalid},
		{"right code", func(e *env) map[string]any { return map[string]any{"totp_code": e.code(0)} }, accepted},
		{"right code with a leading space", func(e *env) map[string]any { return map[string]any{"totp_code": " " + e.code(0)} }, accepted},
		{"right code with surrounding white space", func(e *env) map[string]any { return map[string]any{"totp_code": "\t" + e.code(0) + " \n"} }, accepted},
		{"previous step's code", func(e *env) map[string]any { return map[string]any{"totp_code": e.code(-30 * time.Second)} }, accepted},
		{"next step's code", func(e *env) map[string]any { return map[string]any{"totp_code": e.code(30 * time.Second)} }, accepted},
		{"code as a JSON number", func(e *env) map[string]any { return map[string]any{"totp_code": json.Number(e.code(0))} }, accepted},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			e := newEnv(t)
			token := e.aal1Token()
			f := e.stepUpAPI(token)
			body := row.body(e)
			if n, ok := body["totp_code"].(json.Number); ok && strings.HasPrefix(string(n), "0") {
				t.Skip("the code has a leading zero, which a JSON number cannot carry")
			}
			body["method"] = "totp"
			r := e.submitJSON(e.api(), f.ID, body, map[string]string{"X-Session-Token": token})
			require.Equal(t, row.want.status, r.Status, "body: %s", r.Body)
			last, _ := e.storedLastStep(e.identity.ID)
			if row.want.status == http.StatusOK {
				assert.Equal(t, "aal2", r.JSON(t)["session"].(map[string]any)["authenticator_assurance_level"])
				assert.NotZero(t, last)
				return
			}
			assert.Zero(t, last, "a refused code consumes nothing")
			got := r.Flow(t)
			assertCodeNotEchoed(t, got)
			if row.want.node != nil {
				assert.Empty(t, got.UI.Messages)
				msgs := got.UI.Node("totp_code").Messages
				require.Len(t, msgs, 1)
				assert.JSONEq(t, mustJSON(t, *row.want.node), mustJSON(t, msgs[0]))
			} else {
				assert.Equal(t, []int{row.want.flowMessage}, flowMessageIDs(got))
				assert.JSONEq(t, mustJSON(t, flow.InvalidCode()), mustJSON(t, got.UI.Messages[0]))
				assert.Empty(t, got.UI.Node("totp_code").Messages)
			}
			assert.Equal(t, autherrors.IDSessionAAL2Required, e.whoami(token).WantError(t, http.StatusForbidden), "still aal1")
		})
	}
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

// A time step logs in at most once per identity (Part 1 S1): the code that
// just logged in is refused to another session of the same identity within
// its window, as is an older step's code, with the wrong-code answer; the
// next step's code works.
func TestCodeIsSingleUse(t *testing.T) {
	e := newEnv(t)
	first := e.aal1Token()
	code := e.code(0)
	require.Equal(t, http.StatusOK, e.submitCode(e.stepUpAPI(first).ID, first, code).Status)

	second := e.aal1Token()
	f := e.stepUpAPI(second)
	r := e.submitCode(f.ID, second, code)
	require.Equal(t, http.StatusBadRequest, r.Status, "body: %s", r.Body)
	got := r.Flow(t)
	assert.Equal(t, []int{flow.IDInvalidCode}, flowMessageIDs(got), "a replay is answered as a wrong code")
	assertCodeNotEchoed(t, got)

	e.clock.Advance(30 * time.Second) // the used step is now the previous one, still in the window
	r = e.submitCode(f.ID, second, code)
	require.Equal(t, http.StatusBadRequest, r.Status, "body: %s", r.Body)
	assert.Equal(t, []int{flow.IDInvalidCode}, flowMessageIDs(r.Flow(t)))
	r = e.submitCode(f.ID, second, e.code(-60*time.Second))
	require.Equal(t, http.StatusBadRequest, r.Status, "an older step than the used one: body: %s", r.Body)

	r = e.submitCode(f.ID, second, e.code(0))
	require.Equal(t, http.StatusOK, r.Status, "the next step's code: body: %s", r.Body)
	last, _ := e.storedLastStep(e.identity.ID)
	assert.Equal(t, step(e.clock.Now()), last)
}

// The code that proved the enrolment (NewCredential) cannot log in, not
// even while it is still in the window; the next step's code can.
func TestEnrolmentCodeCannotLogIn(t *testing.T) {
	e := newEnv(t)
	bob := e.addIdentity("bob@example.com", otherPassword)
	key, err := e.method.NewKey("bob@example.com")
	require.NoError(t, err)
	enrolment := codeAt(t, key.Secret, e.clock.Now())
	cred, err := e.method.NewCredential(bob.ID, key, enrolment)
	require.NoError(t, err)
	require.NoError(t, e.identities.UpdateCredential(context.Background(), bob.ID, &cred))

	tok, _ := e.passwordAPI("bob@example.com", otherPassword)["session_token"].(string)
	f := e.stepUpAPI(tok)
	require.NotNil(t, f.UI.Node("totp_code"), "the enrolled identity has TOTP")
	r := e.submitCode(f.ID, tok, enrolment)
	require.Equal(t, http.StatusBadRequest, r.Status, "body: %s", r.Body)
	assert.Equal(t, []int{flow.IDInvalidCode}, flowMessageIDs(r.Flow(t)))

	e.clock.Advance(30 * time.Second)
	r = e.submitCode(f.ID, tok, enrolment)
	require.Equal(t, http.StatusBadRequest, r.Status, "still in the window, still refused: body: %s", r.Body)
	r = e.submitCode(f.ID, tok, codeAt(t, key.Secret, e.clock.Now()))
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
}

// Of concurrent submissions of one code, by different sessions of the same
// identity each with its own step-up flow, exactly one logs in; the others
// get the wrong-code answer, never a 5xx (Authenticate's contract). The
// identity store holds every submission's first read of the credential
// until all n have read it, so that all of them verify the code against
// the same version and n-1 lose the conditional update.
func TestConcurrentSubmissionsOfOneCode(t *testing.T) {
	const n = 20
	gate := newBarrier(n)
	e := newEnv(t, func(c *login.Config) {
		c.Limiter = login.NewMemoryLimiter(login.Limits{FreeFailures: 10 * n, Now: c.Now}) // all n may race
		c.IdentityStore = &gatedIdentities{MemoryIdentityStore: c.IdentityStore.(*session.MemoryIdentityStore), gate: gate}
	})
	tokens := make([]string, n)
	flows := make([]string, n)
	for i := range n {
		tokens[i] = e.aal1Token()
		flows[i] = e.stepUpAPI(tokens[i]).ID
	}
	gate.arm()
	code := e.code(0)
	type answer struct {
		status int
		body   []byte
		err    error
	}
	answers := make([]answer, n)
	var wg sync.WaitGroup
	begin := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-begin
			req, err := http.NewRequest(http.MethodPost, e.srv.URL+"/self-service/login?flow="+flows[i],
				strings.NewReader(`{"method":"totp","totp_code":"`+code+`"}`))
			if err != nil {
				answers[i].err = err
				return
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json")
			req.Header.Set("X-Session-Token", tokens[i])
			resp, err := e.api().Do(req)
			if err != nil {
				answers[i].err = err
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			answers[i] = answer{status: resp.StatusCode, body: b, err: err}
		})
	}
	close(begin)
	wg.Wait()

	ok := 0
	for i, a := range answers {
		require.NoError(t, a.err, "submission %d", i)
		switch a.status {
		case http.StatusOK:
			ok++
		case http.StatusBadRequest:
			var f flow.Flow
			require.NoError(t, json.Unmarshal(a.body, &f))
			assert.Equal(t, []int{flow.IDInvalidCode}, flowMessageIDs(f), "submission %d", i)
		default:
			t.Errorf("submission %d: status %d, body %s", i, a.status, a.body)
		}
	}
	assert.Equal(t, 1, ok, "exactly one submission logs in")
	assert.False(t, gate.timedOut(), "all submissions read the credential before any wrote it")
	last, version := e.storedLastStep(e.identity.ID)
	assert.Equal(t, step(e.clock.Now()), last)
	assert.Equal(t, int64(2), version, "one write after the import")
}

// gatedIdentities is the memory identity store whose Credentials first
// waits at gate.
type gatedIdentities struct {
	*session.MemoryIdentityStore
	gate *barrier
}

func (g *gatedIdentities) Credentials(ctx context.Context, identityID string) ([]session.Credential, error) {
	g.gate.wait()
	return g.MemoryIdentityStore.Credentials(ctx, identityID)
}

// barrier, once armed, holds its first n callers until all n have
// arrived (or a timeout passed); later callers pass at once.
type barrier struct {
	n       int
	mu      sync.Mutex
	armed   bool
	arrived int
	all     chan struct{}
	late    bool
}

func newBarrier(n int) *barrier { return &barrier{n: n, all: make(chan struct{})} }

func (b *barrier) arm() { b.mu.Lock(); b.armed = true; b.mu.Unlock() }

func (b *barrier) wait() {
	b.mu.Lock()
	if !b.armed || b.arrived >= b.n {
		b.mu.Unlock()
		return
	}
	b.arrived++
	if b.arrived == b.n {
		close(b.all)
	}
	b.mu.Unlock()
	select {
	case <-b.all:
	case <-time.After(5 * time.Second):
		b.mu.Lock()
		b.late = true
		b.mu.Unlock()
	}
}

func (b *barrier) timedOut() bool { b.mu.Lock(); defer b.mu.Unlock(); return b.late }

// Wrong codes are throttled by identity (Part 1 S4): after 5 wrong codes,
// across sessions and flows, the 6th attempt is refused before the code is
// looked at, even the right one, which it does not consume.
func TestWrongCodesAreThrottled(t *testing.T) {
	e := newEnv(t)
	wrong := e.wrongCode()
	for i := range 5 {
		tok := e.aal1Token()
		r := e.submitCode(e.stepUpAPI(tok).ID, tok, wrong)
		require.Equal(t, http.StatusBadRequest, r.Status, "wrong code %d: body: %s", i+1, r.Body)
	}
	tok := e.aal1Token()
	f := e.stepUpAPI(tok)
	r := e.submitCode(f.ID, tok, e.code(0))
	assert.Equal(t, autherrors.IDTooManyAttempts, r.WantError(t, http.StatusTooManyRequests))
	assert.NotEmpty(t, r.Header.Get("Retry-After"))
	last, _ := e.storedLastStep(e.identity.ID)
	assert.Zero(t, last, "the throttled code was not consumed")

	e.clock.Advance(time.Second) // the first delay; still the same step
	r = e.submitCode(f.ID, tok, e.code(0))
	assert.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
}

// A refused replay counts as a wrong code (Part 1 S4).
func TestReplaysAreThrottled(t *testing.T) {
	e := newEnv(t)
	code := e.code(0)
	tok := e.aal1Token()
	require.Equal(t, http.StatusOK, e.submitCode(e.stepUpAPI(tok).ID, tok, code).Status)
	for i := range 5 {
		tok := e.aal1Token()
		r := e.submitCode(e.stepUpAPI(tok).ID, tok, code)
		require.Equal(t, http.StatusBadRequest, r.Status, "replay %d: body: %s", i+1, r.Body)
	}
	tok = e.aal1Token()
	r := e.submitCode(e.stepUpAPI(tok).ID, tok, e.code(30*time.Second))
	assert.Equal(t, autherrors.IDTooManyAttempts, r.WantError(t, http.StatusTooManyRequests))
}

// TOTP is a second factor only: an ordinary (aal1) flow offers no TOTP
// nodes, and a TOTP submission to it is 4010002 (§6 row 11).
func TestTOTPOnAnAAL1Flow(t *testing.T) {
	e := newEnv(t)
	r := e.do(e.api(), http.MethodGet, "/self-service/login/api", nil, nil)
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	f := r.Flow(t)
	assert.Nil(t, f.UI.Node("totp_code"))
	for _, n := range f.UI.Nodes {
		assert.NotEqual(t, "totp", n.Group)
	}
	r = e.submitJSON(e.api(), f.ID, map[string]any{"method": "totp", "totp_code": e.code(0)}, nil)
	require.Equal(t, http.StatusBadRequest, r.Status, "body: %s", r.Body)
	assert.Equal(t, []int{flow.IDNoMethod}, flowMessageIDs(r.Flow(t)))
	assert.NotContains(t, r.JSON(t), "session_token")
	last, _ := e.storedLastStep(e.identity.ID)
	assert.Zero(t, last)
}

// An identity without TOTP has no second factor: its password login is
// complete, its step-up flow offers nothing, and a TOTP submission is
// 4000011, which is not a failed attempt (§4).
func TestIdentityWithoutTOTP(t *testing.T) {
	e := newEnv(t)
	e.addIdentity("bob@example.com", otherPassword)
	body := e.passwordAPI("bob@example.com", otherPassword)
	assert.NotNil(t, body["session"].(map[string]any)["identity"], "no second factor: an ordinary login")
	tok := body["session_token"].(string)
	require.Equal(t, http.StatusOK, e.whoami(tok).Status)

	r := e.do(e.api(), http.MethodGet, "/self-service/login/api?aal=aal2", nil, map[string]string{"X-Session-Token": tok})
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	assert.Nil(t, r.JSON(t)["ui"].(map[string]any)["nodes"], "an API step-up flow offering nothing has no nodes")
	f := r.Flow(t)
	assert.Equal(t, []int{flow.IDSecondFactor}, flowMessageIDs(f))
	for i := range 7 { // more than the free failures: none of them counts
		r = e.submitCode(f.ID, tok, e.code(0))
		require.Equal(t, http.StatusBadRequest, r.Status, "submission %d: body: %s", i+1, r.Body)
		assert.Equal(t, []int{flow.IDNoTOTPDevice}, flowMessageIDs(r.Flow(t)))
	}
}

// A TOTP credential that is present but unusable (here a key of another
// algorithm, written around ImportKratos) keeps counting as a second
// factor and fails its logins as an internal error: damage never removes
// the second factor silently.
func TestDamagedCredentialFailsClosed(t *testing.T) {
	e := newEnv(t)
	bob := e.addIdentity("bob@example.com", otherPassword)
	cred := session.Credential{Type: session.CredentialTOTP, Identifiers: []string{bob.ID},
		Config: json.RawMessage(`{"totp_url":"otpauth://totp/Example:bob?algorithm=SHA256&secret=` + testSecret + `"}`)}
	require.NoError(t, e.identities.UpdateCredential(context.Background(), bob.ID, &cred))

	body := e.passwordAPI("bob@example.com", otherPassword)
	assert.Nil(t, body["session"].(map[string]any)["identity"], "still has a second factor")
	tok := body["session_token"].(string)
	assert.Equal(t, http.StatusForbidden, e.whoami(tok).Status)
	f := e.stepUpAPI(tok)
	require.NotNil(t, f.UI.Node("totp_code"))
	r := e.submitCode(f.ID, tok, codeAt(t, testSecret, e.clock.Now()))
	assert.Equal(t, http.StatusInternalServerError, r.Status, "body: %s", r.Body)
	assert.Equal(t, http.StatusForbidden, e.whoami(tok).Status, "still aal1")
}

// A code is spent exactly when a login happens: when the login is refused
// after the code verified (here by the host's AfterVerification hook), the
// step is not spent and the same code still logs in once.
func TestCodeIsSpentOnlyByALogin(t *testing.T) {
	var refuse atomic.Bool
	refuse.Store(true)
	e := newEnv(t, func(c *login.Config) {
		c.AfterVerification = func(_ context.Context, a *login.Attempt, _ *session.Identity) error {
			if a.Method == "totp" && refuse.Load() {
				return login.Refuse(flow.Generic("not now"))
			}
			return nil
		}
	})
	tok := e.aal1Token()
	f := e.stepUpAPI(tok)
	code := e.code(0)
	r := e.submitCode(f.ID, tok, code)
	require.Equal(t, http.StatusBadRequest, r.Status, "body: %s", r.Body)
	last, _ := e.storedLastStep(e.identity.ID)
	assert.Zero(t, last, "the refused login spent no step")

	refuse.Store(false)
	r = e.submitCode(f.ID, tok, code)
	require.Equal(t, http.StatusOK, r.Status, "the same code logs in: %s", r.Body)
	last, _ = e.storedLastStep(e.identity.ID)
	assert.Equal(t, step(e.clock.Now()), last)
}
