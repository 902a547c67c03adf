package code_test

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	autherrors "github.com/authflow/authflow/errors"
	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/login/code"
	"github.com/authflow/authflow/session"
)

// The form of a new flow (CONTRACT-CODE §3, before the code is sent): the
// identifier shared with the password method, then the code button before
// the password nodes; nothing for refresh flows.
func TestNodes(t *testing.T) {
	e := newEnv(t)
	f := e.apiFlow(e.api())
	assert.Equal(t, []string{
		"default/csrf_token/hidden", "default/identifier/text",
		"code/method/submit=code",
		"password/password/password", "password/method/submit=password",
	}, nodeKeys(f))
	var raw struct {
		UI struct {
			Nodes []json.RawMessage `json:"nodes"`
		} `json:"ui"`
	}
	r := e.do(e.api(), http.MethodGet, "/self-service/login/api", nil, nil)
	require.NoError(t, json.Unmarshal(r.Body, &raw))
	assert.JSONEq(t, `{"type":"input","group":"code","attributes":{"name":"method","type":"submit","value":"code","disabled":false,"node_type":"input"},"messages":[],
		"meta":{"label":{"id":1010015,"text":"Send sign in code","type":"info"}}}`, string(raw.UI.Nodes[2]))

	// Without the password method, the code method brings the identifier.
	only := newEnv(t, func(s *setup) { s.login.DisablePassword = true })
	f = only.apiFlow(only.api())
	assert.Equal(t, []string{"default/csrf_token/hidden", "default/identifier/text", "code/method/submit=code"}, nodeKeys(f))
	id := f.UI.Node("identifier")
	assert.True(t, id.Attributes.Required)
	assert.Equal(t, flow.IDLabelID, id.Meta.Label.ID)

	// A refresh flow confirms the signed-in identity by password; the code
	// method offers nothing there and refuses submissions.
	tok := e.apiLogin(alice)
	r = e.do(e.api(), http.MethodGet, "/self-service/login/api?refresh=true", nil, map[string]string{"X-Session-Token": tok})
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	refresh := r.Flow(t)
	assert.NotContains(t, nodeKeys(refresh), "code/method/submit=code")
	r = e.do(e.api(), http.MethodPost, "/self-service/login?flow="+refresh.ID, strings.NewReader(`{"method":"code","identifier":"alice@example.com"}`),
		map[string]string{"Content-Type": "application/json", "X-Session-Token": tok})
	assert.Equal(t, []int{flow.IDNoMethod}, messageIDs(r.Flow(t)))
}

// apiLogin logs address in by code through an API flow and returns the
// session token.
func (e *env) apiLogin(address string) string {
	e.t.Helper()
	c := e.api()
	f, got := e.sentCode(c, address)
	r := e.enter(c, f.ID, address, got)
	require.Equal(e.t, http.StatusOK, r.Status, "body: %s", r.Body)
	tok, _ := r.JSON(e.t)["session_token"].(string)
	require.NotEmpty(e.t, tok)
	return tok
}

// sentNodesJSON are the nodes after a code was sent to alice
// (CONTRACT-CODE §3), in order.
var sentNodesJSON = []string{
	`{"type":"input","group":"default","attributes":{"name":"identifier","type":"hidden","value":"alice@example.com","required":true,"disabled":false,"node_type":"input"},"messages":[],
		"meta":{"label":{"id":1070004,"text":"ID","type":"info"}}}`,
	`{"type":"input","group":"code","attributes":{"name":"method","type":"hidden","value":"code","disabled":false,"node_type":"input"},"messages":[],"meta":{}}`,
	`{"type":"input","group":"code","attributes":{"name":"code","type":"text","required":true,"autocomplete":"one-time-code","disabled":false,"node_type":"input"},"messages":[],
		"meta":{"label":{"id":1070013,"text":"Login code","type":"info"}}}`,
	`{"type":"input","group":"code","attributes":{"name":"method","type":"submit","value":"code","disabled":false,"node_type":"input"},"messages":[],
		"meta":{"label":{"id":1070009,"text":"Continue","type":"info"}}}`,
	`{"type":"input","group":"code","attributes":{"name":"resend","type":"submit","value":"code","disabled":false,"node_type":"input"},"messages":[],
		"meta":{"label":{"id":1070008,"text":"Resend code","type":"info"}}}`,
}

// assertSent checks a flow answered after a code was sent to alice: state
// sent_email, active code, the nodes of §3 in order (csrf_token last for
// browser flows), message 1010014.
func assertSent(t *testing.T, body []byte, browser bool) flow.Flow {
	t.Helper()
	var raw struct {
		State  string `json:"state"`
		Active string `json:"active"`
		UI     struct {
			Nodes    []json.RawMessage `json:"nodes"`
			Messages []flow.Message    `json:"messages"`
		} `json:"ui"`
	}
	require.NoError(t, json.Unmarshal(body, &raw), "body: %s", body)
	assert.Equal(t, "sent_email", raw.State)
	assert.Equal(t, "code", raw.Active)
	want := len(sentNodesJSON)
	if browser {
		want++
	}
	require.Len(t, raw.UI.Nodes, want, "body: %s", body)
	for i, n := range sentNodesJSON {
		assert.JSONEq(t, n, string(raw.UI.Nodes[i]), "node %d", i)
	}
	if browser {
		assert.Contains(t, string(raw.UI.Nodes[want-1]), `"name":"csrf_token"`, "csrf_token last")
	}
	require.Len(t, raw.UI.Messages, 1)
	assert.Equal(t, flow.CodeSent(), raw.UI.Messages[0])
	var f flow.Flow
	require.NoError(t, json.Unmarshal(body, &f))
	return f
}

// The send step's answer is the flow in state sent_email (FLOW-400, a 303
// to the login UI for forms) and the code arrives by mail; the right code
// then logs in with the contract's success answer for each kind of client
// (CONTRACT-CODE §5 rows 1 and 2, §8).
func TestSendAndLogin(t *testing.T) {
	t.Run("api", func(t *testing.T) {
		e := newEnv(t)
		c := e.api()
		f := e.apiFlow(c)
		r := e.send(c, f.ID, "  Alice@Example.COM ")
		require.Equal(t, http.StatusBadRequest, r.Status, "body: %s", r.Body)
		assertSent(t, r.Body, false)
		got := e.nextCode(alice)

		r = e.enter(c, f.ID, alice, got)
		require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
		body := r.JSON(t)
		assert.NotEmpty(t, body["session_token"])
		assert.Nil(t, body["continue_with"])
		s := body["session"].(map[string]any)
		assert.Equal(t, []string{"code/aal1"}, methodsOf(t, s))
		assert.Equal(t, "aal1", s["authenticator_assurance_level"])
		assert.Equal(t, e.ids[alice].ID, s["identity"].(map[string]any)["id"])
		who := e.do(c, http.MethodGet, "/sessions/whoami", nil, map[string]string{"X-Session-Token": body["session_token"].(string)})
		assert.Equal(t, http.StatusOK, who.Status, "body: %s", who.Body)
		assert.Equal(t, flow.StatePassedChallenge, e.fetch(c, f.ID).State)
	})
	t.Run("spa", func(t *testing.T) {
		e := newEnv(t)
		c := e.browser()
		f := e.browserFlow(c)
		r := e.submitJSON(c, f.ID, map[string]any{"method": "code", "identifier": alice, "csrf_token": csrfToken(f)})
		require.Equal(t, http.StatusBadRequest, r.Status, "body: %s", r.Body)
		step := assertSent(t, r.Body, true)
		got := e.nextCode(alice)

		r = e.submitJSON(c, f.ID, map[string]any{"method": "code", "identifier": alice, "code": got, "csrf_token": csrfToken(step)})
		require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
		body := r.JSON(t)
		assert.Nil(t, body["session_token"])
		assert.Equal(t, []any{map[string]any{"action": "redirect_browser_to", "redirect_browser_to": defaultReturn}}, body["continue_with"])
		assert.Equal(t, []string{"code/aal1"}, methodsOf(t, body["session"].(map[string]any)))
		require.NotNil(t, r.Cookie(sessionCookie))
		who := e.do(c, http.MethodGet, "/sessions/whoami", nil, nil)
		assert.Equal(t, http.StatusOK, who.Status, "the cookie signs the browser in")
	})
	t.Run("form", func(t *testing.T) {
		e := newEnv(t)
		c := e.browser()
		f := e.browserFlow(c)
		r := e.submitForm(c, f.ID, url.Values{"method": {"code"}, "identifier": {alice}, "code": {"123456"}, "csrf_token": {csrfToken(f)}})
		require.Equal(t, http.StatusSeeOther, r.Status, "body: %s", r.Body)
		assert.Equal(t, loginUI+"?flow="+f.ID, r.Header.Get("Location"))
		fetched := e.do(c, http.MethodGet, "/self-service/login/flows?id="+f.ID, nil, nil)
		step := assertSent(t, fetched.Body, true)
		got := e.nextCode(alice)
		assert.NotEqual(t, "123456", got, "a code submitted with the send step is ignored")

		r = e.submitForm(c, f.ID, url.Values{"method": {"code"}, "identifier": {alice}, "code": {got}, "csrf_token": {csrfToken(step)}})
		require.Equal(t, http.StatusSeeOther, r.Status, "body: %s", r.Body)
		assert.Equal(t, defaultReturn, r.Header.Get("Location"))
		require.NotNil(t, r.Cookie(sessionCookie))
		who := e.do(c, http.MethodGet, "/sessions/whoami", nil, nil)
		require.Equal(t, http.StatusOK, who.Status)
		assert.Equal(t, []string{"code/aal1"}, methodsOf(t, who.JSON(t)))
	})
}

// Wrong, expired, missing and malformed codes (CONTRACT-CODE §5): the
// answer is the flow in sent_email with the message, and the code node
// never echoes a value.
func TestCodeStepErrors(t *testing.T) {
	for _, tc := range []struct {
		name     string
		body     func(right string) map[string]any
		advance  time.Duration
		flowMsg  []int
		nodeMsgs map[string][]int
	}{
		{name: "wrong code", body: func(right string) map[string]any { return map[string]any{"code": wrongCode(right)} }, flowMsg: []int{flow.IDInvalidLoginCode}},
		{name: "code with white space", body: func(right string) map[string]any { return map[string]any{"code": " " + wrongCode(right) + "\t"} }, flowMsg: []int{flow.IDInvalidLoginCode}},
		{name: "expired code", body: func(right string) map[string]any { return map[string]any{"code": right} }, advance: 15*time.Minute + time.Second, flowMsg: []int{flow.IDInvalidLoginCode}},
		{name: "code missing", body: func(string) map[string]any { return map[string]any{} }, nodeMsgs: map[string][]int{"code": {flow.IDMissing}}},
		{name: "code empty", body: func(string) map[string]any { return map[string]any{"code": ""} }, nodeMsgs: map[string][]int{"code": {flow.IDMissing}}},
		{name: "code too long", body: func(string) map[string]any { return map[string]any{"code": strings.Repeat("1", 65)} }, nodeMsgs: map[string][]int{"code": {flow.IDTooLong}}},
		{name: "resend of another value", body: func(right string) map[string]any { return map[string]any{"code": right, "resend": "sms"} }, nodeMsgs: map[string][]int{"resend": {flow.IDGeneric}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			c := e.api()
			f, right := e.sentCode(c, alice)
			e.clock.Advance(tc.advance)
			body := tc.body(right)
			body["method"], body["identifier"] = "code", alice
			r := e.submitJSON(c, f.ID, body)
			require.Equal(t, http.StatusBadRequest, r.Status, "body: %s", r.Body)
			got := r.Flow(t)
			assert.Equal(t, flow.StateSentEmail, got.State)
			assert.Equal(t, tc.flowMsg, messageIDs(got))
			for name, ids := range tc.nodeMsgs {
				assert.Equal(t, ids, nodeMessageIDs(t, got, name))
			}
			assertCodeNotEchoed(t, got)
			if tc.flowMsg != nil {
				assert.Equal(t, "The login code is invalid or has already been used. Please try again.", got.UI.Messages[0].Text)
				assert.EqualValues(t, 1, e.storedState(f.ID)["submissions"], "a compared code counts")
			} else {
				assert.EqualValues(t, 0, e.storedState(f.ID)["submissions"], "a refused field does not count")
			}
			if tc.advance == 0 {
				r = e.enter(c, f.ID, alice, right)
				assert.Equal(t, http.StatusOK, r.Status, "the right code still works: %s", r.Body)
			}
		})
	}
}

// The code of another flow, even for the same address, does not work:
// codes are bound to their flow.
func TestCodeOfAnotherFlow(t *testing.T) {
	e := newEnv(t)
	c := e.api()
	f1, code1 := e.sentCode(c, alice)
	f2, code2 := e.sentCode(c, alice)
	if code1 == code2 {
		t.Skip("the two codes coincide (one chance in a million)")
	}
	r := e.enter(c, f2.ID, alice, code1)
	assert.Equal(t, []int{flow.IDInvalidLoginCode}, messageIDs(r.Flow(t)))
	r = e.enter(c, f1.ID, alice, code1)
	assert.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
}

// The send step validates the identifier as the password method does
// (CONTRACT-CODE §10.4): missing, too long, invisible characters; nothing
// is mailed and the flow stays at choose_method.
func TestSendStepValidation(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name, identifier string
		want             []int
	}{
		{"missing", "", []int{flow.IDMissing}},
		{"blank", "   ", []int{flow.IDMissing}},
		{"zero-width space", "alice\u200b@example.com", []int{flow.IDIdentifierCharacters}},
		{"bidi override", "alice\u202e@example.com", []int{flow.IDIdentifierCharacters}},
		{"NUL", "alice\x00@example.com", []int{flow.IDIdentifierCharacters}},
		{"too long", strings.Repeat("a", login.MaxIdentifierLength) + "@example.com", []int{flow.IDTooLong}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := e.api()
			f := e.apiFlow(c)
			body := map[string]any{"method": "code"}
			if tc.name != "missing" {
				body["identifier"] = tc.identifier
			}
			r := e.submitJSON(c, f.ID, body)
			require.Equal(t, http.StatusBadRequest, r.Status, "body: %s", r.Body)
			got := r.Flow(t)
			assert.Equal(t, flow.StateChooseMethod, got.State)
			assert.Equal(t, tc.want, nodeMessageIDs(t, got, "identifier"))
			if tc.want[0] == flow.IDMissing {
				assert.Equal(t, "Property identifier is missing.", got.UI.Node("identifier").Messages[0].Text)
			}
		})
	}
	e.quiesce()
	assert.Empty(t, e.mail.Messages(), "nothing is mailed, not even to the address without its invisible characters")
}

// An unknown address gets exactly the answer of a known one and no mail;
// any code then gets 4010008 (CONTRACT-CODE §10.1). The work done is the
// same: the stored state has the same shape (§10.2).
func TestUnknownAddress(t *testing.T) {
	e := newEnv(t)
	c := e.api()
	answers := map[string][]byte{}
	states := map[string]map[string]any{}
	flows := map[string]flow.Flow{}
	for _, address := range []string{alice, nobody, "not-an-address"} {
		f := e.apiFlow(c)
		r := e.send(c, f.ID, address)
		require.Equal(t, http.StatusBadRequest, r.Status, "body: %s", r.Body)
		answers[address] = r.Body
		states[address] = e.storedState(f.ID)
		flows[address] = f
	}
	assert.Equal(t, comparable(t, answers[alice], alice), comparable(t, answers[nobody], nobody), "the same answer for a known and an unknown address")
	assert.Equal(t, comparable(t, answers[alice], alice), comparable(t, answers["not-an-address"], "not-an-address"), "and for a string that is no address")
	for _, address := range []string{nobody, "not-an-address"} {
		assert.Equal(t, keysOf(states[alice]), keysOf(states[address]), "the same state is stored")
		assert.Equal(t, "", states[address]["identity_id"])
		assert.Len(t, states[address]["code_hash"], len(states[alice]["code_hash"].(string)), "a code is made and hashed for an unknown address too")
		assert.Equal(t, states[alice]["expires_at"], states[address]["expires_at"])
	}
	assert.NotEmpty(t, states[alice]["identity_id"])

	for _, guess := range []string{"000000", "123456", "999999"} {
		r := e.enter(c, flows[nobody].ID, nobody, guess)
		require.Equal(t, http.StatusBadRequest, r.Status, "body: %s", r.Body)
		assert.Equal(t, []int{flow.IDInvalidLoginCode}, messageIDs(r.Flow(t)), "never 4000035")
	}
	e.quiesce()
	assert.Equal(t, 1, len(e.mail.Messages()), "only the known address gets mail")
	assert.Equal(t, 1, e.mailsTo(alice))
}

// comparable returns a flow's JSON without what differs between any two
// flows (ids, times, the action URL) and with the address as a placeholder.
func comparable(t *testing.T, body []byte, address string) string {
	t.Helper()
	var v map[string]any
	require.NoError(t, json.Unmarshal(body, &v))
	for _, k := range []string{"id", "expires_at", "issued_at", "created_at", "updated_at"} {
		delete(v, k)
	}
	ui := v["ui"].(map[string]any)
	delete(ui, "action")
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return strings.ReplaceAll(string(b), `"`+address+`"`, `"ADDRESS"`)
}

func keysOf(m map[string]any) []string { return slices.Sorted(maps.Keys(m)) }

// The code step uses the address fixed when the code was sent: another
// known identity's address in the body, with the first one's code, logs
// the first identity in, never the other (CONTRACT-CODE §10.1).
func TestCodeStepIgnoresIdentifier(t *testing.T) {
	e := newEnv(t)
	c := e.api()
	f, right := e.sentCode(c, alice)
	r := e.enter(c, f.ID, bob, right)
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	s := r.JSON(t)["session"].(map[string]any)
	assert.Equal(t, e.ids[alice].ID, s["identity"].(map[string]any)["id"], "alice, whose code it is, never bob")

	// An unknown or missing identifier in the code step is ignored too.
	f, right = e.sentCode(c, carol)
	r = e.submitJSON(c, f.ID, map[string]any{"method": "code", "code": right})
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	assert.Equal(t, e.ids[carol].ID, r.JSON(t)["session"].(map[string]any)["identity"].(map[string]any)["id"])

	// Bob's code in a flow sent to alice is wrong.
	fa, codeA := e.sentCode(c, alice)
	_, codeB := e.sentCode(c, bob)
	if codeA != codeB {
		r = e.enter(c, fa.ID, bob, codeB)
		assert.Equal(t, []int{flow.IDInvalidLoginCode}, messageIDs(r.Flow(t)))
	}
}

// Kratos' per-flow limit (CONTRACT-CODE §5, §10.6): five code submissions,
// counted before comparing; the sixth is refused with the 4000001 text even
// with the right code, and a resend does not reset the count. Four wrong
// codes and the right one log in. Throttling is off here so that only the
// per-flow rule decides.
func TestSubmissionLimit(t *testing.T) {
	e := newEnv(t, func(s *setup) { s.login.DisableThrottling = true })
	c := e.api()

	f, right := e.sentCode(c, alice)
	for range 4 {
		r := e.enter(c, f.ID, alice, wrongCode(right))
		require.Equal(t, []int{flow.IDInvalidLoginCode}, messageIDs(r.Flow(t)))
	}
	r := e.enter(c, f.ID, alice, right)
	require.Equal(t, http.StatusOK, r.Status, "the fifth submission is compared: %s", r.Body)

	f, right = e.sentCode(c, alice)
	for range 5 {
		e.enter(c, f.ID, alice, wrongCode(right))
	}
	r = e.enter(c, f.ID, alice, right)
	require.Equal(t, http.StatusBadRequest, r.Status, "body: %s", r.Body)
	got := r.Flow(t)
	require.Len(t, got.UI.Messages, 1)
	assert.Equal(t, flow.IDGeneric, got.UI.Messages[0].ID)
	assert.Equal(t, "The request was submitted too often. Please request another code.", got.UI.Messages[0].Text)
	assertCodeNotEchoed(t, got)

	r = e.resend(c, f.ID, alice)
	require.Equal(t, http.StatusBadRequest, r.Status)
	assertSent(t, r.Body, false)
	fresh := e.nextCode(alice)
	assert.EqualValues(t, 5, e.storedState(f.ID)["submissions"], "a resend keeps the count")
	r = e.enter(c, f.ID, alice, fresh)
	assert.Equal(t, "The request was submitted too often. Please request another code.", r.Flow(t).UI.Messages[0].Text, "the flow never logs in by code again")
}

// resend=code mails a new code that replaces the previous one, and keeps
// the address (CONTRACT-CODE §2).
func TestResend(t *testing.T) {
	e := newEnv(t)
	c := e.api()
	f, first := e.sentCode(c, alice)
	r := e.enter(c, f.ID, alice, wrongCode(first))
	require.Equal(t, http.StatusBadRequest, r.Status)

	r = e.submitJSON(c, f.ID, map[string]any{"method": "code", "identifier": bob, "resend": "code", "code": first})
	require.Equal(t, http.StatusBadRequest, r.Status, "body: %s", r.Body)
	assertSent(t, r.Body, false)
	second := e.nextCode(alice)
	assert.EqualValues(t, 1, e.storedState(f.ID)["submissions"], "the count is kept")
	if first != second {
		r = e.enter(c, f.ID, alice, first)
		assert.Equal(t, []int{flow.IDInvalidLoginCode}, messageIDs(r.Flow(t)), "the previous code stopped working")
	}
	r = e.enter(c, f.ID, alice, second)
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	e.quiesce()
	assert.Zero(t, e.mailsTo(bob), "the resend goes to the flow's address, not the submitted one")
}

// A flow logs in at most once (CONTRACT-CODE §10.3): after the login every
// submission, code, resend or password, answers 4010007 and mails nothing.
func TestCompletedFlow(t *testing.T) {
	e := newEnv(t)
	c := e.api()
	f, right := e.sentCode(c, alice)
	r := e.enter(c, f.ID, alice, right)
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)

	for name, body := range map[string]map[string]any{
		"same code":       {"method": "code", "identifier": alice, "code": right},
		"resend":          {"method": "code", "identifier": alice, "resend": "code"},
		"send":            {"method": "code", "identifier": bob},
		"password":        {"method": "password", "identifier": alice, "password": testSecret},
		"identifier only": {"method": "code"},
	} {
		r := e.submitJSON(c, f.ID, body)
		require.Equal(t, http.StatusBadRequest, r.Status, "%s: %s", name, r.Body)
		got := r.Flow(t)
		assert.Equal(t, flow.StatePassedChallenge, got.State, name)
		assert.Equal(t, []int{flow.IDAlreadyCompleted}, messageIDs(got), name)
	}
	// A form gets the same message on the flow, by a 303.
	b := e.browser()
	bf := e.browserFlow(b)
	r = e.submitForm(b, bf.ID, url.Values{"method": {"code"}, "identifier": {alice}, "csrf_token": {csrfToken(bf)}})
	require.Equal(t, http.StatusSeeOther, r.Status)
	bcode := e.nextCode(alice)
	step := e.fetch(b, bf.ID)
	r = e.submitForm(b, bf.ID, url.Values{"method": {"code"}, "code": {bcode}, "csrf_token": {csrfToken(step)}})
	require.Equal(t, http.StatusSeeOther, r.Status)
	assert.Equal(t, defaultReturn, r.Header.Get("Location"))
	// Signed in, the browser would be sent on (already signed in); without
	// its session it meets the completed flow.
	e.dropCookie(b, sessionCookie)
	r = e.submitForm(b, bf.ID, url.Values{"method": {"code"}, "resend": {"code"}, "csrf_token": {csrfToken(step)}})
	require.Equal(t, http.StatusSeeOther, r.Status)
	assert.Equal(t, loginUI+"?flow="+bf.ID, r.Header.Get("Location"))
	stored, err := e.flows.Flow(context.Background(), bf.ID) // the login rotated the browser's CSRF cookie: the UI could not fetch it
	require.NoError(t, err)
	assert.Equal(t, []int{flow.IDAlreadyCompleted}, messageIDs(stored.Flow))

	e.quiesce()
	assert.Equal(t, 2, e.mailsTo(alice), "one mail per login, none after")
	assert.Zero(t, e.mailsTo(bob))
}

// Concurrent submissions of the right code log in exactly once; the others
// get 4010007 or the 4000001 text, never a second session nor a 5xx.
func TestConcurrentRightCodes(t *testing.T) {
	e := newEnv(t, func(s *setup) { s.login.DisableThrottling = true })
	c := e.api()
	f, right := e.sentCode(c, alice)
	const n = 12
	results := make([]*result, n)
	gate := make(chan struct{})
	done := make(chan int)
	for i := range n {
		go func() {
			<-gate
			results[i] = e.enter(c, f.ID, alice, right)
			done <- i
		}()
	}
	close(gate)
	for range n {
		<-done
	}
	ok := 0
	for _, r := range results {
		switch r.Status {
		case http.StatusOK:
			ok++
		case http.StatusBadRequest:
			got := r.Flow(t)
			require.Len(t, got.UI.Messages, 1, "body: %s", r.Body)
			m := got.UI.Messages[0]
			assert.True(t, m.ID == flow.IDAlreadyCompleted || m.Text == "The request was submitted too often. Please request another code.", "loser got %d %q", m.ID, m.Text)
		default:
			t.Errorf("status %d: %s", r.Status, r.Body)
		}
	}
	assert.Equal(t, 1, ok, "exactly one login")
}

// Wrong codes count as failed attempts for the handler's throttling, by
// address and client network like wrong passwords (CONTRACT-CODE §10.6,
// CONTRACT rule 16): the sixth wrong code within the window, across flows,
// is refused with 429 (4019001 on the flow for forms).
func TestWrongCodesThrottled(t *testing.T) {
	e := newEnv(t)
	c := e.api()
	fa, codeA := e.sentCode(c, alice)
	for range 3 {
		e.enter(c, fa.ID, alice, wrongCode(codeA))
	}
	fb, codeB := e.sentCode(c, alice)
	for range 2 {
		r := e.enter(c, fb.ID, alice, wrongCode(codeB))
		require.Equal(t, []int{flow.IDInvalidLoginCode}, messageIDs(r.Flow(t)))
	}
	r := e.enter(c, fb.ID, alice, codeB)
	assert.Equal(t, autherrors.IDTooManyAttempts, r.WantError(t, http.StatusTooManyRequests))
	assert.Equal(t, "1", r.Header.Get("Retry-After"))
	assert.EqualValues(t, 2, e.storedState(fb.ID)["submissions"], "a throttled attempt reaches no code")

	// The same holds for the browser's form, from the same network.
	b := e.browser()
	bf := e.browserFlow(b)
	r = e.submitForm(b, bf.ID, url.Values{"method": {"code"}, "identifier": {alice}, "csrf_token": {csrfToken(bf)}})
	require.Equal(t, http.StatusSeeOther, r.Status)
	assert.Equal(t, []int{flow.IDTooManyAttempts}, messageIDs(e.fetch(b, bf.ID)), "even a send for the throttled address waits")

	// Another address is not affected; after the delay the right code works.
	other := e.newClient(false, "198.51.100.7")
	assert.Equal(t, http.StatusOK, e.enter(other, fb.ID, alice, codeB).Status, "another network is not throttled")
}

// Sends are limited per address and client network, per address from all
// networks, and per client network whatever the address, independent of
// whether an account exists (CONTRACT-CODE §10.6).
func TestSendLimits(t *testing.T) {
	t.Run("per address", func(t *testing.T) {
		for _, address := range []string{alice, nobody} {
			e := newEnv(t)
			c := e.api()
			for range 5 {
				f := e.apiFlow(c)
				require.Equal(t, http.StatusBadRequest, e.send(c, f.ID, address).Status)
			}
			f := e.apiFlow(c)
			r := e.send(c, f.ID, address)
			assert.Equal(t, autherrors.IDTooManyAttempts, r.WantError(t, http.StatusTooManyRequests), address)
			assert.Equal(t, "1", r.Header.Get("Retry-After"))
			// A resend is a send.
			r = e.resend(c, f.ID, address)
			assert.Equal(t, http.StatusTooManyRequests, r.Status)
			// Another address from the same network, the same address from
			// another network, and the same client after the delay may send.
			assert.Equal(t, http.StatusBadRequest, e.send(c, e.apiFlow(c).ID, bob).Status)
			other := e.newClient(false, "198.51.100.7")
			assert.Equal(t, http.StatusBadRequest, e.send(other, e.apiFlow(other).ID, address).Status)
			e.clock.Advance(2 * time.Second)
			assert.Equal(t, http.StatusBadRequest, e.send(c, f.ID, address).Status)
			e.quiesce()
			if address == alice {
				assert.Equal(t, 7, e.mailsTo(alice))
			} else {
				assert.Zero(t, e.mailsTo(nobody))
			}
		}
	})
	t.Run("per address from all networks", func(t *testing.T) {
		e := newEnv(t, func(s *setup) { s.code.SendLimits = login.Limits{IdentifierFailures: 3} })
		for i, ip := range []string{"198.51.100.1", "198.51.100.2", "198.51.100.3", "198.51.100.4"} {
			c := e.newClient(false, ip)
			r := e.send(c, e.apiFlow(c).ID, carol)
			if i < 3 {
				assert.Equal(t, http.StatusBadRequest, r.Status)
				continue
			}
			assert.Equal(t, autherrors.IDTooManyAttempts, r.WantError(t, http.StatusTooManyRequests), "a mailbox gets a bounded number of codes")
		}
	})
	t.Run("per client network", func(t *testing.T) {
		e := newEnv(t, func(s *setup) { s.code.SendLimitsPerClient = login.Limits{FreeFailures: 3} })
		c := e.api()
		for _, address := range []string{alice, bob, nobody} {
			require.Equal(t, http.StatusBadRequest, e.send(c, e.apiFlow(c).ID, address).Status)
		}
		r := e.send(c, e.apiFlow(c).ID, "someone@example.com")
		assert.Equal(t, autherrors.IDTooManyAttempts, r.WantError(t, http.StatusTooManyRequests))
		// The form gets 4019001 on the flow.
		b := e.browser()
		bf := e.browserFlow(b)
		r = e.submitForm(b, bf.ID, url.Values{"method": {"code"}, "identifier": {carol}, "csrf_token": {csrfToken(bf)}})
		require.Equal(t, http.StatusSeeOther, r.Status)
		got := e.fetch(b, bf.ID)
		assert.Equal(t, []int{flow.IDTooManyAttempts}, messageIDs(got))
		assert.Equal(t, flow.StateChooseMethod, got.State)
		// Another network is not affected.
		other := e.newClient(false, "2001:db8::1")
		assert.Equal(t, http.StatusBadRequest, e.send(other, e.apiFlow(other).ID, carol).Status)
		e.quiesce()
		assert.Equal(t, 1, e.mailsTo(carol))
	})
}

// Identifier-first style (CONTRACT-CODE §9, §10.1): the first step has no
// code button, the second offers method=code for known and unknown
// identifiers alike, nothing is mailed before method=code, then the code
// flow is as in the unified style.
func TestIdentifierFirst(t *testing.T) {
	e := newEnv(t, func(s *setup) { s.login.LoginStyle = login.LoginStyleIdentifierFirst })
	c := e.api()
	f := e.apiFlow(c)
	assert.Equal(t, []string{"default/csrf_token/hidden", "identifier_first/identifier/text", "identifier_first/method/submit=identifier_first"}, nodeKeys(f))

	second := map[string][]byte{}
	for _, who := range []string{carol, nobody} {
		f := e.apiFlow(c)
		r := e.submitJSON(c, f.ID, map[string]any{"method": "identifier_first", "identifier": who})
		require.Equal(t, http.StatusBadRequest, r.Status, "body: %s", r.Body)
		got := r.Flow(t)
		assert.Equal(t, flow.StateChooseMethod, got.State, "no fast login")
		assert.Equal(t, []string{
			"default/csrf_token/hidden", "identifier_first/identifier/hidden",
			"code/method/submit=code",
			"password/password/password", "password/method/submit=password",
		}, nodeKeys(got))
		second[who] = r.Body
	}
	assert.Equal(t, comparable(t, second[carol], carol), comparable(t, second[nobody], nobody), "the same second step for a code-only identity and an unknown one")
	e.quiesce()
	assert.Empty(t, e.mail.Messages(), "nothing mailed before method=code")

	e2 := newEnv(t, func(s *setup) { s.login.LoginStyle = login.LoginStyleIdentifierFirst })
	c = e2.api()
	f = e2.apiFlow(c)
	r := e2.submitJSON(c, f.ID, map[string]any{"method": "identifier_first", "identifier": carol})
	require.Equal(t, http.StatusBadRequest, r.Status)
	r = e2.send(c, f.ID, carol)
	require.Equal(t, http.StatusBadRequest, r.Status, "body: %s", r.Body)
	step := r.Flow(t)
	assert.Equal(t, flow.StateSentEmail, step.State)
	assert.Equal(t, []string{"default/identifier/hidden", "code/method/hidden=code", "code/code/text", "code/method/submit=code", "code/resend/submit=code"}, nodeKeys(step))
	r = e2.enter(c, f.ID, carol, e2.nextCode(carol))
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	assert.Equal(t, []string{"code/aal1"}, methodsOf(t, r.JSON(t)["session"].(map[string]any)))

	// A password submitted for the code-only identity is a wrong password.
	f = e2.apiFlow(c)
	r = e2.submitJSON(c, f.ID, map[string]any{"method": "password", "identifier": carol, "password": testSecret})
	assert.Equal(t, []int{flow.IDInvalidCredentials}, messageIDs(r.Flow(t)))
}

// A code logs in only the identity it was sent to while it still holds the
// address; a disabled identity is refused by the handler (4010011).
func TestIdentityChangedAfterSend(t *testing.T) {
	e := newEnv(t)
	c := e.api()
	ctx := context.Background()

	f, right := e.sentCode(c, alice)
	creds, err := e.identities.Credentials(ctx, e.ids[alice].ID)
	require.NoError(t, err)
	for i := range creds {
		if creds[i].Type == code.CredentialCode {
			other, err := code.NewCredential("alice.new@example.com")
			require.NoError(t, err)
			other.Version = creds[i].Version
			require.NoError(t, e.identities.UpdateCredential(ctx, e.ids[alice].ID, &other))
		}
	}
	r := e.enter(c, f.ID, alice, right)
	assert.Equal(t, []int{flow.IDInvalidLoginCode}, messageIDs(r.Flow(t)), "the address left the identity")

	f, right = e.sentCode(c, bob)
	id := e.ids[bob].Clone()
	id.State = session.StateInactive
	require.NoError(t, e.identities.UpdateIdentity(ctx, id))
	r = e.enter(c, f.ID, bob, right)
	assert.Equal(t, []int{flow.IDIdentityDisabled}, messageIDs(r.Flow(t)))
}

// CSRF failures (CONTRACT-CODE §5): a browser's send or code submission
// without its token is refused with 403 before anything is counted or
// mailed.
func TestCSRF(t *testing.T) {
	e := newEnv(t)
	c := e.browser()
	f := e.browserFlow(c)
	r := e.submitJSON(c, f.ID, map[string]any{"method": "code", "identifier": alice})
	assert.Equal(t, autherrors.IDCSRFViolation, r.WantError(t, http.StatusForbidden))

	r = e.submitJSON(c, f.ID, map[string]any{"method": "code", "identifier": alice, "csrf_token": csrfToken(f)})
	require.Equal(t, http.StatusBadRequest, r.Status)
	right := e.nextCode(alice)
	r = e.submitJSON(c, f.ID, map[string]any{"method": "code", "code": right})
	assert.Equal(t, autherrors.IDCSRFViolation, r.WantError(t, http.StatusForbidden))
	r = e.submitJSON(c, f.ID, map[string]any{"method": "code", "resend": "code"})
	assert.Equal(t, autherrors.IDCSRFViolation, r.WantError(t, http.StatusForbidden))
	assert.EqualValues(t, 0, e.storedState(f.ID)["submissions"], "a refused request counts nothing")
	e.quiesce()
	assert.Equal(t, 1, e.mailsTo(alice), "and mails nothing")
}

// An expired flow is replaced by a fresh one (CONTRACT-CODE §5, §10.5):
// 410 with use_flow_id for API flows, a 303 to the login UI for a browser's
// JSON submission; its code no longer logs in and nothing is mailed.
func TestExpiredFlow(t *testing.T) {
	e := newEnv(t, func(s *setup) { s.code.Lifespan = 2 * time.Hour })
	c := e.api()
	f, right := e.sentCode(c, alice)
	e.clock.Advance(time.Hour + time.Second)
	r := e.enter(c, f.ID, alice, right)
	assert.Equal(t, autherrors.IDFlowExpired, r.WantError(t, http.StatusGone))
	fresh, _ := r.JSON(t)["use_flow_id"].(string)
	require.NotEmpty(t, fresh)
	assert.Equal(t, flow.StateChooseMethod, e.fetch(c, fresh).State)
	r = e.resend(c, f.ID, alice)
	assert.Equal(t, http.StatusGone, r.Status)

	b := e.browser()
	bf := e.browserFlow(b)
	e.clock.Advance(time.Hour + time.Second)
	r = e.submitJSON(b, bf.ID, map[string]any{"method": "code", "identifier": alice, "csrf_token": csrfToken(bf)})
	require.Equal(t, http.StatusSeeOther, r.Status, "body: %s", r.Body)
	assert.True(t, strings.HasPrefix(r.Header.Get("Location"), loginUI+"?flow="))
	assert.NotEqual(t, loginUI+"?flow="+bf.ID, r.Header.Get("Location"))
	e.quiesce()
	assert.Equal(t, 1, e.mailsTo(alice), "only the code sent before expiry")
}

// The code is stored only as a keyed hash (CONTRACT-CODE §10.7): neither the
// stored flow record nor any answer carries it, and a wrong code submitted
// is not echoed.
func TestCodeNeverStored(t *testing.T) {
	e := newEnv(t)
	c := e.api()
	f, right := e.sentCode(c, alice)
	rec, err := e.flows.Flow(context.Background(), f.ID)
	require.NoError(t, err)
	stored, err := json.Marshal(rec)
	require.NoError(t, err)
	quoted := func(s string) string { return `"` + s + `"` } // as a stored or echoed code would appear
	assert.NotContains(t, string(stored), quoted(right))
	st := e.storedState(f.ID)
	assert.Len(t, st["code_hash"], 64, "HMAC-SHA256, hex")
	assert.Equal(t, e.ids[alice].ID, st["identity_id"])
	assert.Equal(t, alice, st["address"])

	r := e.enter(c, f.ID, alice, wrongCode(right))
	assert.NotContains(t, string(r.Body), quoted(wrongCode(right)))
	assert.NotContains(t, string(r.Body), quoted(right))
	assert.NotContains(t, string(e.do(c, http.MethodGet, "/self-service/login/flows?id="+f.ID, nil, nil).Body), quoted(right))
}
