package login_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	autherrors "github.com/authflow/authflow/errors"
	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/session"
)

// Identifier-first login (CONTRACT-CODE §9 with §10's changes).

func idFirstEnv(t *testing.T, configure ...func(*login.Config)) *env {
	t.Helper()
	return newEnv(t, append([]func(*login.Config){func(c *login.Config) { c.LoginStyle = login.LoginStyleIdentifierFirst }}, configure...)...)
}

// nodeKeys lists group/name/type of a flow's nodes.
func nodeKeys(f flow.Flow) []string {
	var out []string
	for _, n := range f.UI.Nodes {
		out = append(out, n.Group+"/"+n.Attributes.Name+"/"+n.Attributes.Type)
	}
	return out
}

func TestIdentifierFirstSteps(t *testing.T) {
	e := idFirstEnv(t)
	f := e.apiFlow("")
	assert.Equal(t, []string{"default/csrf_token/hidden", "identifier_first/identifier/text", "identifier_first/method/submit"}, nodeKeys(f), "the first step asks for the identifier alone")
	id := f.UI.Node("identifier")
	assert.Equal(t, "username webauthn", id.Attributes.Autocomplete)
	assert.True(t, id.Attributes.Required)
	assert.Equal(t, flow.IDLabelID, id.Meta.Label.ID)
	button := f.UI.Nodes[2]
	assert.Equal(t, "identifier_first", button.Attributes.Value)
	assert.Equal(t, flow.IDContinue, button.Meta.Label.ID)

	second := map[string]flow.Flow{}
	for _, who := range []string{testIdentifier, "nobody@example.com"} {
		f := e.apiFlow("")
		r := e.submitJSON(e.api(), f.ID, map[string]any{"method": "identifier_first", "identifier": who}, nil)
		got := bbBody(t, r, http.StatusBadRequest)
		require.NotNil(t, got)
		step := r.flow(t)
		assert.Equal(t, flow.StateChooseMethod, step.State)
		assert.Empty(t, step.UI.Messages, "no message")
		assert.Equal(t, who, step.UI.Node("identifier").Attributes.Value)
		second[who] = step
	}
	known, unknown := second[testIdentifier], second["nobody@example.com"]
	assert.Equal(t, []string{"default/csrf_token/hidden", "identifier_first/identifier/hidden", "password/password/password", "password/method/submit"}, nodeKeys(known))
	assert.Equal(t, nodeKeys(known), nodeKeys(unknown), "the same second step for a known and an unknown identifier")
	strip := func(f flow.Flow) string {
		f.UI.Action = ""
		f.UI.Node("identifier").Attributes.Value = ""
		b, _ := json.Marshal(f.UI)
		return string(b)
	}
	assert.Equal(t, strip(known), strip(unknown), "the second steps differ only in the identifier")

	// The second step is an ordinary submission.
	r := e.submitJSON(e.api(), known.ID, credentials(testIdentifier, testPassword, ""), nil)
	assert.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	r = e.submitJSON(e.api(), unknown.ID, credentials("nobody@example.com", testPassword, ""), nil)
	assert.Equal(t, flow.IDInvalidCredentials, r.flow(t).UI.Messages[0].ID, "an unknown identifier is a wrong password")
}

func TestIdentifierFirstValidation(t *testing.T) {
	e := idFirstEnv(t)
	for _, tc := range []struct {
		name, identifier string
		want             int
	}{
		{"missing", "", flow.IDMissing},
		{"blank", "   ", flow.IDMissing},
		{"zero-width space", "alice\u200b@example.com", flow.IDIdentifierCharacters},
		{"bidi override", "alice\u202e@example.com", flow.IDIdentifierCharacters},
		{"too long", string(make([]byte, login.MaxIdentifierLength+1)), flow.IDTooLong},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := e.apiFlow("")
			identifier := tc.identifier
			if tc.want == flow.IDTooLong {
				identifier = fmt.Sprintf("%0*d@example.com", login.MaxIdentifierLength, 0)
			}
			r := e.submitJSON(e.api(), f.ID, map[string]any{"method": "identifier_first", "identifier": identifier}, nil)
			got := r.flow(t)
			require.Equal(t, http.StatusBadRequest, r.status)
			n := got.UI.Node("identifier")
			require.NotEmpty(t, n.Messages)
			assert.Equal(t, tc.want, n.Messages[0].ID)
			assert.Equal(t, "text", n.Attributes.Type, "still the first step")
		})
	}
}

func TestIdentifierFirstBrowser(t *testing.T) {
	e := idFirstEnv(t)
	c := e.browser()
	f := e.browserFlow(c, "")
	// CSRF is checked on the identifier step too.
	r := e.submitJSON(c, f.ID, map[string]any{"method": "identifier_first", "identifier": testIdentifier, "csrf_token": subWrongCSRFToken()}, nil)
	bbEnvelope(t, r, http.StatusForbidden, autherrors.IDCSRFViolation)

	form := url.Values{"method": {"identifier_first"}, "identifier": {testIdentifier}, "csrf_token": {csrfToken(f)}}
	r = e.submitForm(c, f.ID, form, nil)
	require.Equal(t, http.StatusSeeOther, r.status)
	assert.Equal(t, loginUI+"?flow="+f.ID, r.header.Get("Location"))
	step := e.do(c, http.MethodGet, "/self-service/login/flows?id="+f.ID, nil, nil).flow(t)
	assert.Equal(t, "hidden", step.UI.Node("identifier").Attributes.Type)
	form = url.Values{"method": {"password"}, "identifier": {testIdentifier}, "password": {testPassword}, "csrf_token": {csrfToken(step)}}
	r = e.submitForm(c, f.ID, form, nil)
	require.Equal(t, http.StatusSeeOther, r.status, "body: %s", r.body)
	assert.Equal(t, defaultReturn, r.header.Get("Location"))
}

// The style is presentation only: method=password posted to a first-step
// flow logs in as usual, and method=identifier_first means nothing to a
// unified flow.
func TestIdentifierFirstIsPresentationOnly(t *testing.T) {
	e := idFirstEnv(t)
	r := e.submitJSON(e.api(), e.apiFlow("").ID, credentials(testIdentifier, testPassword, ""), nil)
	assert.Equal(t, http.StatusOK, r.status, "body: %s", r.body)

	u := newEnv(t)
	r = u.submitJSON(u.api(), u.apiFlow("").ID, map[string]any{"method": "identifier_first", "identifier": testIdentifier}, nil)
	assert.Equal(t, flow.IDNoMethod, r.flow(t).UI.Messages[0].ID)

	_, err := login.New(login.Config{PublicURL: "https://a.example.com", LoginUIURL: "/l", ErrorUIURL: "/e", DefaultReturnURL: "https://a.example.com/", LoginStyle: "wizard"})
	assert.ErrorContains(t, err, "LoginStyle")
}

// magicMethod is a two-step first factor for the core's step machinery: a
// first submission "sends" a code (a Step to sent_email, the identity and
// a counter in the method state); a second one logs in with code "7" for
// a known identity. Attempts are counted with UpdateState before the code
// is compared.
type magicMethod struct{ max int }

func (m *magicMethod) ID() string  { return "magic" }
func (m *magicMethod) AAL() string { return flow.AAL1 }

func (m *magicMethod) Nodes(_ context.Context, req *login.FlowRequest) ([]flow.Node, error) {
	if req.Flow.RequestedAAL != flow.AAL1 || req.Identity != nil || (req.IdentifierFirst && req.Identifier == "") {
		return nil, nil
	}
	return []flow.Node{flow.NewInput("magic", "method", "submit", "magic", false)}, nil
}

func (m *magicMethod) Validate(context.Context, *login.Submission) error { return nil }

type magicState struct {
	Identifier string `json:"identifier"`
	Attempts   int    `json:"attempts"`
}

func (m *magicMethod) Authenticate(ctx context.Context, s *login.Submission) (*login.Result, error) {
	if s.Flow.Flow.State == flow.StateChooseMethod {
		_, err := s.UpdateState(ctx, func(json.RawMessage) (json.RawMessage, error) {
			return json.Marshal(magicState{Identifier: s.Field("identifier")})
		})
		if err != nil {
			return nil, err
		}
		code := flow.NewInput("magic", "code", "text", nil, true)
		return &login.Result{Step: &login.Step{State: flow.StateSentEmail, Nodes: []flow.Node{code}, Messages: []flow.Message{flow.CodeSent()}}}, nil
	}
	var st magicState
	if _, err := s.UpdateState(ctx, func(old json.RawMessage) (json.RawMessage, error) {
		if err := json.Unmarshal(old, &st); err != nil {
			return nil, err
		}
		if st.Attempts++; st.Attempts > m.max {
			return nil, &login.FlowError{Messages: []flow.Message{flow.Generic("The request was submitted too often. Please request another code.")}}
		}
		return json.Marshal(st)
	}); err != nil {
		return nil, err
	}
	id, _, err := s.Identities.FindIdentity(ctx, session.CredentialPassword, st.Identifier)
	if err != nil || s.Field("code") != "7" {
		return nil, &login.FlowError{Messages: []flow.Message{flow.InvalidLoginCode()}, FailedAttempt: true}
	}
	return &login.Result{Identity: id, Method: session.AuthenticationMethod{Method: "magic", AAL: flow.AAL1}}, nil
}

// A method's Step moves the flow on (sent_email, the method active, its
// nodes, the csrf_token last for browsers), answered as a FLOW-400; the
// attempts it counts with UpdateState hold under concurrency; a completed
// flow answers 4010007 to every submission.
func TestMethodSteps(t *testing.T) {
	magic := &magicMethod{max: 1000}
	e := newEnv(t, func(c *login.Config) {
		c.Methods = []login.Method{magic}
		c.DisableThrottling = true
	})
	c := e.browser()
	f := e.browserFlow(c, "")
	r := e.submitJSON(c, f.ID, map[string]any{"method": "magic", "identifier": testIdentifier, "csrf_token": csrfToken(f)}, nil)
	step := r.flow(t)
	require.Equal(t, http.StatusBadRequest, r.status, "a step is answered as a FLOW-400")
	assert.Equal(t, flow.StateSentEmail, step.State)
	assert.Equal(t, "magic", step.Active)
	assert.Equal(t, []string{"magic/code/text", "default/csrf_token/hidden"}, nodeKeys(step))
	assert.Equal(t, flow.IDCodeSent, step.UI.Messages[0].ID)

	const n = 20
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			e.submitJSON(c, f.ID, map[string]any{"method": "magic", "code": strconv.Itoa(100 + i), "csrf_token": csrfToken(step)}, nil)
		})
	}
	wg.Wait()
	stored, err := e.flows.Flow(context.Background(), f.ID)
	require.NoError(t, err)
	var st magicState
	require.NoError(t, json.Unmarshal(stored.MethodState["magic"], &st))
	assert.Equal(t, n, st.Attempts, "every concurrent attempt counted, none lost")

	r = e.submitJSON(c, f.ID, map[string]any{"method": "magic", "code": "7", "csrf_token": csrfToken(step)}, nil)
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	assert.Equal(t, "magic", r.json(t)["session"].(map[string]any)["authentication_methods"].([]any)[0].(map[string]any)["method"])
	r = e.submitJSON(e.api(), f.ID, map[string]any{"method": "magic", "code": "7"}, nil)
	assert.Equal(t, flow.IDAlreadyCompleted, r.flow(t).UI.Messages[0].ID, "another client: the flow logged in once")
}

// A method's attempt limit counted before comparing stops even the right
// code once exceeded.
func TestMethodStepAttemptLimit(t *testing.T) {
	e := newEnv(t, func(c *login.Config) {
		c.Methods = []login.Method{&magicMethod{max: 2}}
		c.DisableThrottling = true
	})
	f := e.apiFlow("")
	e.submitJSON(e.api(), f.ID, map[string]any{"method": "magic", "identifier": testIdentifier}, nil)
	for range 2 {
		e.submitJSON(e.api(), f.ID, map[string]any{"method": "magic", "code": "0"}, nil)
	}
	r := e.submitJSON(e.api(), f.ID, map[string]any{"method": "magic", "code": "7"}, nil)
	require.Equal(t, http.StatusBadRequest, r.status)
	assert.Equal(t, "The request was submitted too often. Please request another code.", r.flow(t).UI.Messages[0].Text)
}

// throttledMethod refuses every attempt with its own throttling.
type throttledMethod struct{ magicMethod }

func (m *throttledMethod) ID() string { return "slow" }

func (m *throttledMethod) Authenticate(context.Context, *login.Submission) (*login.Result, error) {
	return nil, login.Throttled(2500 * time.Millisecond)
}

// closingMethod records that the handler closed it.
type closingMethod struct {
	magicMethod
	closed int
}

func (m *closingMethod) ID() string { return "closing" }

func (m *closingMethod) Close(context.Context) error { m.closed++; return nil }

// A method's own throttling is answered as the handler's (rule 16), and
// Handler.Close closes the methods that run background work.
func TestMethodThrottlingAndClose(t *testing.T) {
	closing := &closingMethod{}
	e := newEnv(t, func(c *login.Config) { c.Methods = []login.Method{&throttledMethod{}, closing} })
	r := e.submitJSON(e.api(), e.apiFlow("").ID, map[string]any{"method": "slow"}, nil)
	bbEnvelope(t, r, http.StatusTooManyRequests, autherrors.IDTooManyAttempts)
	assert.Equal(t, "3", r.header.Get("Retry-After"))

	c := e.browser()
	f := e.browserFlow(c, "")
	r = e.submitForm(c, f.ID, url.Values{"method": {"slow"}, "csrf_token": {csrfToken(f)}}, nil)
	require.Equal(t, http.StatusSeeOther, r.status)
	got := e.do(c, http.MethodGet, "/self-service/login/flows?id="+f.ID, nil, nil).flow(t)
	assert.Equal(t, flow.IDTooManyAttempts, got.UI.Messages[0].ID)

	require.NoError(t, e.h.Close(context.Background()))
	assert.Equal(t, 1, closing.closed)
}
