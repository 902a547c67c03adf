package login_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/session"
)

// codeMethod is a test-only login method in the shape a host would write:
// it decodes its own fields with Submission.Decode, validates them, and
// logs in the identity it was given when the code matches.
type codeMethod struct {
	identity *session.Identity
	seen     []codeFields
}

type codeFields struct {
	Code     string `form:"code"`
	Remember bool   `form:"remember"`
}

func (m *codeMethod) ID() string { return "code" }

func (m *codeMethod) AAL() string { return flow.AAL1 }

func (m *codeMethod) Nodes(context.Context, *login.FlowRequest) ([]flow.Node, error) {
	return []flow.Node{flow.NewInput("code", "code", "text", "", true)}, nil
}

func (m *codeMethod) Validate(_ context.Context, s *login.Submission) error {
	var f codeFields
	if err := s.Decode(&f); err != nil {
		return &login.FlowError{Messages: []flow.Message{flow.Generic(err.Error())}}
	}
	if f.Code == "" {
		return &login.FlowError{Fields: map[string][]flow.Message{"code": {flow.Missing("code")}}}
	}
	return nil
}

func (m *codeMethod) Authenticate(_ context.Context, s *login.Submission) (*login.Result, error) {
	var f codeFields
	if err := s.Decode(&f); err != nil {
		return nil, err
	}
	m.seen = append(m.seen, f)
	if f.Code != "123456" {
		return nil, &login.FlowError{Messages: []flow.Message{flow.InvalidCredentials()}}
	}
	return &login.Result{Identity: m.identity, Method: session.AuthenticationMethod{Method: "code", AAL: "aal1"}}, nil
}

func TestHostMethodDecodesItsFields(t *testing.T) {
	m := &codeMethod{}
	e := newEnv(t, func(c *login.Config) { c.Methods = []login.Method{m} })
	m.identity = e.identity

	f := e.apiFlow("")
	require.NotNil(t, f.UI.Node("code"), "the method's node is in the flow")

	r := e.submitJSON(e.api(), f.ID, map[string]any{"method": "code"}, nil)
	require.Equal(t, http.StatusBadRequest, r.status, "%s", r.body)
	bad := r.flow(t)
	assert.Equal(t, flow.IDMissing, bad.UI.Node("code").Messages[0].ID)

	r = e.submitJSON(e.api(), f.ID, map[string]any{"method": "code", "code": "123456", "remember": true}, nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	methods := r.json(t)["session"].(map[string]any)["authentication_methods"].([]any)
	assert.Equal(t, "code", methods[0].(map[string]any)["method"])
	assert.Equal(t, []codeFields{{Code: "123456", Remember: true}}, m.seen, "JSON true decodes into a bool field")

	f = e.apiFlow("")
	r = e.do(e.api(), http.MethodPost, "/self-service/login?flow="+f.ID,
		stringsReader(url.Values{"method": {"code"}, "code": {"000000"}, "remember": {"maybe"}}.Encode()),
		map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	require.Equal(t, http.StatusBadRequest, r.status, "%s", r.body)
	bad = r.flow(t)
	assert.Equal(t, flow.IDGeneric, bad.UI.Messages[0].ID, "an undecodable field is reported on the flow")
}

func stringsReader(s string) *strings.Reader { return strings.NewReader(s) }
