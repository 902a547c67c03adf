package login_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/session"
)

// A login method that continues in the browser elsewhere (social sign-in):
// CONTRACT Part 1 rule 5, Part 2 §4.11; and its callback (rule 9 applies).

const subIDPURL = "https://idp.example.com/authorize?state=xyz"

// subIDPMethod sends the browser to an identity provider and, on its
// callback, signs in the identity it is given.
type subIDPMethod struct {
	identity atomic.Pointer[session.Identity]
}

var _ login.CallbackMethod = (*subIDPMethod)(nil)

func (m *subIDPMethod) ID() string { return "subidp" }

func (m *subIDPMethod) AAL() string { return flow.AAL1 }

func (m *subIDPMethod) Nodes(context.Context, *login.FlowRequest) ([]flow.Node, error) {
	return nil, nil
}

func (m *subIDPMethod) Validate(context.Context, *login.Submission) error { return nil }

func (m *subIDPMethod) Authenticate(context.Context, *login.Submission) (*login.Result, error) {
	return &login.Result{RedirectBrowserTo: subIDPURL, MethodState: json.RawMessage(`{"nonce":"n"}`)}, nil
}

func (m *subIDPMethod) Callback(ctx context.Context, c *login.Callback) (*flow.Record, *login.Result, error) {
	rec, err := c.Flows.Flow(ctx, c.Request.URL.Query().Get("flow"))
	if err != nil {
		return nil, nil, err
	}
	return rec, &login.Result{
		Identity: m.identity.Load(),
		Method:   session.AuthenticationMethod{Method: m.ID(), AAL: "aal1"},
	}, nil
}

// subIDPEnv is an env with the IdP method next to the password method.
func subIDPEnv(t testing.TB) (*env, *subIDPMethod) {
	t.Helper()
	m := &subIDPMethod{}
	e := newEnv(t, func(c *login.Config) { c.Methods = []login.Method{m} })
	m.identity.Store(e.identity)
	return e, m
}

// TestSubmitLocationChange: Part 1 rule 5. API flows and JSON requests get
// 422 browser_location_change_required with a top-level
// redirect_browser_to; forms get a 303 there. The method's state is stored
// on the flow, which stays open.
func TestSubmitLocationChange(t *testing.T) {
	for _, kind := range subKinds {
		t.Run(string(kind), func(t *testing.T) {
			e, _ := subIDPEnv(t)
			s := subStart(t, e, kind, "")
			r := s.submit(t, map[string]any{"method": "subidp", "csrf_token": csrfToken(s.flow)}, nil)
			subAssertNoCache(t, r)
			if kind == subForm {
				require.Equal(t, http.StatusSeeOther, r.status, "body: %s", r.body)
				assert.Equal(t, subIDPURL, r.header.Get("Location"))
			} else {
				env := s.wantError(t, r, http.StatusUnprocessableEntity)
				obj := subErr(env)
				assert.Equal(t, "browser_location_change_required", obj["id"])
				assert.Equal(t, "In order to complete this flow please redirect the browser to: "+subIDPURL, obj["reason"])
				assert.Equal(t, "browser location change required", obj["message"])
				assert.Equal(t, subIDPURL, env["redirect_browser_to"], "top-level redirect_browser_to")
			}
			rec := subStored(t, e, s.flow.ID)
			require.Contains(t, rec.MethodState, "subidp")
			assert.JSONEq(t, `{"nonce":"n"}`, string(rec.MethodState["subidp"]))
			assert.Equal(t, flow.StateChooseMethod, rec.Flow.State)
			assert.Nil(t, r.cookie(subSessionCookie))
			assert.Empty(t, subSessions(t, e, e.identity.ID))
		})
	}
}

// TestSubmitCallback: the method's callback completes the flow as a
// submission does: a session cookie and a 303 to return_to or the default
// return URL; a second callback for the same flow is refused with 4010007.
func TestSubmitCallback(t *testing.T) {
	tests := []struct {
		name       string
		query      string
		wantTarget string
	}{
		{"to the default return URL", "", defaultReturn},
		{"to return_to", "?return_to=" + url.QueryEscape("https://app.example.com/dash"), "https://app.example.com/dash"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := subIDPEnv(t)
			s := subStart(t, e, subForm, tt.query)
			r := s.submit(t, map[string]any{"method": "subidp", "csrf_token": csrfToken(s.flow)}, nil)
			require.Equal(t, http.StatusSeeOther, r.status, "body: %s", r.body)
			require.Equal(t, subIDPURL, r.header.Get("Location"))

			// The IdP sends the browser back.
			callback := "/self-service/methods/subidp/callback/anything?state=xyz&flow=" + s.flow.ID
			r = e.do(s.c, http.MethodGet, callback, nil, nil)
			subAssertNoCache(t, r)
			require.Equal(t, http.StatusSeeOther, r.status, "body: %s", r.body)
			assert.Equal(t, tt.wantTarget, r.header.Get("Location"))
			assert.Regexp(t, subSessionCookieLine, subSetCookie(r, subSessionCookie))
			ck := r.cookie(subSessionCookie)
			require.NotNil(t, ck)
			w := subWhoami(t, e, ck.Value)
			require.Equal(t, http.StatusOK, w.status, "body: %s", w.body)
			var got session.Session
			require.NoError(t, json.Unmarshal(w.body, &got))
			assert.Equal(t, e.identity.ID, got.Identity.ID)
			require.Len(t, got.AuthenticationMethods, 1)
			assert.Equal(t, "subidp", got.AuthenticationMethods[0].Method)
			assert.Equal(t, flow.StatePassedChallenge, subStored(t, e, s.flow.ID).Flow.State)

			// The same callback again (a replayed IdP response).
			r = e.do(e.browser(), http.MethodGet, callback, nil, nil)
			subAssertNoCache(t, r)
			require.Equal(t, http.StatusSeeOther, r.status, "body: %s", r.body)
			assert.Equal(t, loginUI+"?flow="+s.flow.ID, r.header.Get("Location"))
			assert.Nil(t, r.cookie(subSessionCookie))
			subOnlyMessage(t, subStored(t, e, s.flow.ID).Flow, 4010007, subAlreadyDoneText)
			assert.Len(t, subSessions(t, e, e.identity.ID), 1, "no second session")
		})
	}
}

// TestSubmitCallbackExpired: a callback for an expired flow is answered as
// a submission of it: a 303 to the login UI with a fresh flow (Part 1 rule
// 3), and no session.
func TestSubmitCallbackExpired(t *testing.T) {
	e, _ := subIDPEnv(t)
	s := subStart(t, e, subForm, "")
	r := s.submit(t, map[string]any{"method": "subidp", "csrf_token": csrfToken(s.flow)}, nil)
	require.Equal(t, http.StatusSeeOther, r.status, "body: %s", r.body)
	e.clock.Advance(login.DefaultFlowLifespan + time.Minute)

	r = e.do(s.c, http.MethodGet, "/self-service/methods/subidp/callback/anything?flow="+s.flow.ID, nil, nil)
	subAssertNoCache(t, r)
	require.Equal(t, http.StatusSeeOther, r.status, "body: %s", r.body)
	newID := subQueryParam(t, r.header.Get("Location"), loginUI, "flow")
	subAssertReplacement(t, e, s.c, s.flow, newID, "1.00")
	assert.Nil(t, r.cookie(subSessionCookie))
	assert.Empty(t, subSessions(t, e, e.identity.ID))
}
