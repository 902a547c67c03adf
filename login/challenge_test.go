package login_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/internal/uuid"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/session"
)

// challengeMethod is a test-only method in the shape of a WebAuthn one:
// its node carries a challenge whose server-side half it keeps in the
// flow's state (FlowRequest.SetState), it is selected by its own field
// without a method field (login.FieldSelected), and every attempt burns
// the challenge and shows a fresh one (Submission.UpdateStateNodes).
type challengeMethod struct{ identity *session.Identity }

func (m *challengeMethod) ID() string             { return "challenge" }
func (m *challengeMethod) AAL() string            { return flow.AAL1 }
func (m *challengeMethod) SelectingField() string { return "challenge_response" }

func challengeNode(c string) flow.Node {
	return flow.NewInput("challenge", "challenge_value", "hidden", c, false)
}

func (m *challengeMethod) Nodes(_ context.Context, req *login.FlowRequest) ([]flow.Node, error) {
	c := uuid.New()
	state, _ := json.Marshal(c)
	req.SetState(state)
	return []flow.Node{challengeNode(c), flow.NewInput("challenge", "challenge_response", "hidden", "", false)}, nil
}

func (m *challengeMethod) Validate(context.Context, *login.Submission) error { return nil }

func (m *challengeMethod) Authenticate(ctx context.Context, s *login.Submission) (*login.Result, error) {
	var burnt string
	_, err := s.UpdateStateNodes(ctx, func(old json.RawMessage) (json.RawMessage, []flow.Node, error) {
		if err := json.Unmarshal(old, &burnt); err != nil {
			return nil, nil, err
		}
		fresh := uuid.New()
		state, _ := json.Marshal(fresh)
		return state, []flow.Node{challengeNode(fresh)}, nil
	})
	if err != nil {
		return nil, err
	}
	if s.Field("challenge_response") != burnt {
		return nil, &login.FlowError{Messages: []flow.Message{flow.InvalidCredentials()}}
	}
	return &login.Result{Identity: m.identity, Method: session.AuthenticationMethod{Method: "challenge", AAL: flow.AAL1}}, nil
}

func challengeValue(t *testing.T, f flow.Flow) string {
	t.Helper()
	n := f.UI.Node("challenge_value")
	require.NotNil(t, n, "the flow shows the challenge")
	v, _ := n.Attributes.Value.(string)
	require.NotEmpty(t, v)
	return v
}

func TestChallengeMethodStateSelectionAndFreshChallenge(t *testing.T) {
	m := &challengeMethod{}
	e := newEnv(t, func(c *login.Config) { c.Methods = []login.Method{m} })
	m.identity = e.identity

	f := e.apiFlow("")
	c1 := challengeValue(t, f)
	stored, err := e.flows.Flow(context.Background(), f.ID)
	require.NoError(t, err)
	assert.JSONEq(t, `"`+c1+`"`, string(stored.MethodState["challenge"]), "SetState is stored with the new flow")

	// A wrong answer burns the challenge: the 400 flow shows a fresh one,
	// which is the one stored.
	r := e.submitJSON(e.api(), f.ID, map[string]any{"challenge_response": "wrong"}, nil)
	require.Equal(t, http.StatusBadRequest, r.status, "%s", r.body)
	bad := r.flow(t)
	assert.Equal(t, flow.IDInvalidCredentials, bad.UI.Messages[0].ID)
	c2 := challengeValue(t, bad)
	assert.NotEqual(t, c1, c2)
	stored, err = e.flows.Flow(context.Background(), f.ID)
	require.NoError(t, err)
	assert.JSONEq(t, `"`+c2+`"`, string(stored.MethodState["challenge"]))
	assert.Equal(t, c2, challengeValue(t, stored.Flow))

	// The burnt challenge no longer logs in, even answered right.
	r = e.submitJSON(e.api(), f.ID, map[string]any{"challenge_response": c1}, nil)
	require.Equal(t, http.StatusBadRequest, r.status, "%s", r.body)
	c3 := challengeValue(t, r.flow(t))

	// Selected by its field alone (no method field), the fresh one does.
	r = e.submitJSON(e.api(), f.ID, map[string]any{"challenge_response": c3}, nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	methods := r.json(t)["session"].(map[string]any)["authentication_methods"].([]any)
	assert.Equal(t, "challenge", methods[0].(map[string]any)["method"])
}

func TestChallengeMethodIdentifierStepKeepsItsState(t *testing.T) {
	m := &challengeMethod{}
	e := newEnv(t, func(c *login.Config) {
		c.Methods = []login.Method{m}
		c.LoginStyle = login.LoginStyleIdentifierFirst
	})
	m.identity = e.identity

	f := e.apiFlow("")
	c1 := challengeValue(t, f)
	r := e.submitJSON(e.api(), f.ID, map[string]any{"method": "identifier_first", "identifier": "someone@example.com"}, nil)
	require.Equal(t, http.StatusBadRequest, r.status, "%s", r.body)
	c2 := challengeValue(t, r.flow(t))
	stored, err := e.flows.Flow(context.Background(), f.ID)
	require.NoError(t, err)
	assert.JSONEq(t, `"`+c2+`"`, string(stored.MethodState["challenge"]), "the second step stores the state its nodes show")

	r = e.submitJSON(e.api(), f.ID, map[string]any{"challenge_response": c1}, nil)
	require.Equal(t, http.StatusBadRequest, r.status, "the first step's challenge was replaced: %s", r.body)
}

// secondChallenge is a second factor selected by the same field.
type secondChallenge struct{ challengeMethod }

func (m *secondChallenge) ID() string  { return "challenge2" }
func (m *secondChallenge) AAL() string { return flow.AAL2 }
func (m *secondChallenge) Nodes(context.Context, *login.FlowRequest) ([]flow.Node, error) {
	return nil, nil
}

func TestFieldSelectionPrefersTheFlowsAAL(t *testing.T) {
	m := &challengeMethod{}
	e := newEnv(t, func(c *login.Config) { c.Methods = []login.Method{&secondChallenge{}, m} })
	m.identity = e.identity

	// The aal2 method comes first but the aal1 flow selects the aal1 one.
	f := e.apiFlow("")
	r := e.submitJSON(e.api(), f.ID, map[string]any{"challenge_response": challengeValue(t, f)}, nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)

	// Neither a method field nor a selecting field: no method (4010002).
	f = e.apiFlow("")
	r = e.submitJSON(e.api(), f.ID, map[string]any{"other": "x"}, nil)
	require.Equal(t, http.StatusBadRequest, r.status, "%s", r.body)
	assert.Equal(t, flow.IDNoMethod, r.flow(t).UI.Messages[0].ID)
}
