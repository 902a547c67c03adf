package login_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
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

// The core's side of the second factor (CONTRACT-AAL), with a tiny second
// factor of its own: identities with a "pin" credential prove aal2 with
// the code testPIN. The real methods (login/totp, login/lookup) test
// their own codes.

const (
	pinMethodID = "pin"
	testPIN     = "424242"
)

// pinMethod is a second factor: one fixed code per identity that holds a
// pin credential. It counts the attempts it verifies.
type pinMethod struct {
	mu        sync.Mutex
	attempts  int
	commits   int
	rollbacks int
	// duringCommit, when set, runs inside Commit, between the spend and
	// the handler's completion of the flow.
	duringCommit func()
}

func (m *pinMethod) ID() string  { return pinMethodID }
func (m *pinMethod) AAL() string { return flow.AAL2 }

func (m *pinMethod) Nodes(_ context.Context, req *login.FlowRequest) ([]flow.Node, error) {
	if req.Flow.RequestedAAL != flow.AAL2 {
		return nil, nil
	}
	for _, c := range req.Credentials {
		if c.Type == pinMethodID {
			return []flow.Node{
				flow.NewInput(pinMethodID, "pin", "text", "", true),
				flow.NewInput(pinMethodID, "method", "submit", pinMethodID, false),
			}, nil
		}
	}
	return nil, nil
}

func (m *pinMethod) Validate(_ context.Context, s *login.Submission) error {
	if s.Field("pin") == "" {
		return &login.FlowError{Fields: map[string][]flow.Message{"pin": {flow.Missing("pin")}}}
	}
	return nil
}

func (m *pinMethod) Authenticate(_ context.Context, s *login.Submission) (*login.Result, error) {
	m.mu.Lock()
	m.attempts++
	m.mu.Unlock()
	if s.Field("pin") != testPIN {
		return nil, &login.FlowError{Messages: []flow.Message{flow.InvalidCode()}, FailedAttempt: true}
	}
	commit := func(context.Context) (func(context.Context) error, error) {
		m.mu.Lock()
		m.commits++
		during := m.duringCommit
		m.mu.Unlock()
		if during != nil {
			during()
		}
		return func(context.Context) error {
			m.mu.Lock()
			defer m.mu.Unlock()
			m.rollbacks++
			return nil
		}, nil
	}
	return &login.Result{Identity: s.Session.Identity, Method: session.AuthenticationMethod{Method: pinMethodID, AAL: flow.AAL2}, Commit: commit}, nil
}

// aalEnv is an env whose test identity has a pin; configure may change the
// Config further.
func aalEnv(t *testing.T, configure ...func(*login.Config)) (*env, *pinMethod) {
	t.Helper()
	pin := &pinMethod{}
	e := newEnv(t, append([]func(*login.Config){func(c *login.Config) {
		c.Methods = append(c.Methods, pin)
		c.Limiter = login.NewMemoryLimiter(login.Limits{Now: c.Now})
	}}, configure...)...)
	cred := session.Credential{Type: pinMethodID, Identifiers: []string{e.identity.ID}, Config: json.RawMessage(`{}`)}
	require.NoError(t, e.identities.UpdateCredential(context.Background(), e.identity.ID, &cred))
	return e, pin
}

// passwordAPI signs the test identity in with its password through an API
// flow and returns the answer.
func (e *env) passwordAPI() map[string]any {
	e.t.Helper()
	r := e.submitJSON(e.api(), e.apiFlow("").ID, credentials(testIdentifier, testPassword, ""), nil)
	return bbBody(e.t, r, http.StatusOK)
}

// stepUpAPI creates an API step-up flow for token.
func (e *env) stepUpAPI(token string) flow.Flow {
	e.t.Helper()
	r := e.do(e.api(), http.MethodGet, "/self-service/login/api?aal=aal2", nil, map[string]string{"X-Session-Token": token})
	require.Equal(e.t, http.StatusOK, r.status, "body: %s", r.body)
	return r.flow(e.t)
}

// submitPIN submits pin to an API step-up flow with token.
func (e *env) submitPIN(flowID, token, pin string) *result {
	e.t.Helper()
	return e.submitJSON(e.api(), flowID, map[string]any{"method": pinMethodID, "pin": pin}, map[string]string{"X-Session-Token": token})
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

func TestStepUpAPI(t *testing.T) {
	e, _ := aalEnv(t)
	first := e.passwordAPI()
	token := first["session_token"].(string)
	s1 := first["session"].(map[string]any)
	assert.Nil(t, s1["identity"], "the first factor of an identity with a second factor: identity null (§8)")
	assert.Equal(t, "aal1", s1["authenticator_assurance_level"])

	who := subWhoami(t, e, token)
	stepUp := e.srv.URL + "/self-service/login/browser?aal=aal2"
	bbEnvelope(t, who, http.StatusForbidden, autherrors.IDSessionAAL2Required)
	assert.JSONEq(t, `{"error":{"id":"session_aal2_required","code":403,"status":"Forbidden",
		"reason":"An active session was found but it does not fulfill the requested Authenticator Assurance Level. Please verify yourself with a second factor to resolve this issue.",
		"details":{"redirect_browser_to":"`+stepUp+`"},
		"message":"Session does not fulfill the requested Authenticator Assurance Level"},
		"redirect_browser_to":"`+stepUp+`"}`, string(who.body))
	assert.Empty(t, who.header.Get("X-Kratos-Authenticated-Identity-Id"))

	f := e.stepUpAPI(token)
	assert.Equal(t, "aal2", f.RequestedAAL)
	require.Len(t, f.UI.Messages, 1)
	assert.Equal(t, flow.IDSecondFactor, f.UI.Messages[0].ID)
	var names []string
	for _, n := range f.UI.Nodes {
		names = append(names, n.Attributes.Name)
	}
	assert.Equal(t, []string{"csrf_token", "pin", "method"}, names, "no identifier, no password (§4)")

	r := e.submitPIN(f.ID, token, "000000")
	wrong := bbBody(t, r, http.StatusBadRequest)
	assert.Equal(t, float64(flow.IDInvalidCode), wrong["ui"].(map[string]any)["messages"].([]any)[0].(map[string]any)["id"])

	r = e.submitPIN(f.ID, token, testPIN)
	done := bbBody(t, r, http.StatusOK)
	newToken := done["session_token"].(string)
	s2 := done["session"].(map[string]any)
	assert.NotEqual(t, token, newToken, "the step-up rotates the token (Part 1 S3)")
	assert.Equal(t, s1["id"], s2["id"], "the same session")
	assert.Equal(t, "aal2", s2["authenticator_assurance_level"])
	assert.Equal(t, []string{"password/aal1", "pin/aal2"}, methodsOf(t, s2))
	assert.NotNil(t, s2["identity"])

	assert.Equal(t, http.StatusUnauthorized, subWhoami(t, e, token).status, "the old token stops working")
	who = subWhoami(t, e, newToken)
	assert.Equal(t, "aal2", bbBody(t, who, http.StatusOK)["authenticator_assurance_level"])

	// The owner resubmits: already signed in (rule 6 at submit).
	bbEnvelope(t, e.submitPIN(f.ID, newToken, testPIN), http.StatusBadRequest, autherrors.IDSessionAlreadyAvailable)
	// Another aal1 session of the identity: the flow logs in at most once.
	other := e.passwordAPI()["session_token"].(string)
	r = e.submitPIN(f.ID, other, testPIN)
	again := bbBody(t, r, http.StatusBadRequest)
	assert.Equal(t, float64(flow.IDAlreadyCompleted), again["ui"].(map[string]any)["messages"].([]any)[0].(map[string]any)["id"])
	// An aal2 session asking for aal2 again is already signed in.
	r = e.do(e.api(), http.MethodGet, "/self-service/login/api?aal=aal2", nil, map[string]string{"X-Session-Token": newToken})
	bbEnvelope(t, r, http.StatusBadRequest, autherrors.IDSessionAlreadyAvailable)
}

func TestStepUpBrowser(t *testing.T) {
	for _, spa := range []bool{false, true} {
		t.Run(map[bool]string{false: "form", true: "spa"}[spa], func(t *testing.T) {
			e, _ := aalEnv(t)
			c := e.browser()
			returnTo := "https://app.example.com/after"
			f := e.browserFlow(c, "?return_to="+url.QueryEscape(returnTo))
			want := e.srv.URL + "/self-service/login/browser?aal=aal2&return_to=" + url.QueryEscape(returnTo)
			var r *result
			if spa {
				r = e.submitJSON(c, f.ID, credentials(testIdentifier, testPassword, csrfToken(f)), nil)
				env := bbEnvelope(t, r, http.StatusUnprocessableEntity, autherrors.IDBrowserLocationChangeRequired)
				assert.Equal(t, "In order to complete this flow please redirect the browser to: "+want, env["reason"])
				assert.Equal(t, want, r.json(t)["redirect_browser_to"])
			} else {
				form := url.Values{"method": {"password"}, "identifier": {testIdentifier}, "password": {testPassword}, "csrf_token": {csrfToken(f)}}
				r = e.submitForm(c, f.ID, form, nil)
				require.Equal(t, http.StatusSeeOther, r.status, "body: %s", r.body)
				assert.Equal(t, want, r.header.Get("Location"), "on to the step-up, return_to carried (§8)")
			}
			require.NotNil(t, r.cookie(subSessionCookie), "the aal1 session is issued")
			aal1Cookie := subJarCookie(t, e, c, subSessionCookie)

			// The step-up, as the browser follows the redirect.
			r = e.do(c, http.MethodGet, "/self-service/login/browser?aal=aal2&return_to="+url.QueryEscape(returnTo), nil, bbAcceptJSON)
			step := r.flow(t)
			assert.Equal(t, returnTo, step.ReturnTo)
			if spa {
				r = e.submitJSON(c, step.ID, map[string]any{"method": pinMethodID, "pin": testPIN, "csrf_token": csrfToken(step)}, nil)
				body := bbBody(t, r, http.StatusOK)
				assert.Equal(t, "aal2", body["session"].(map[string]any)["authenticator_assurance_level"])
				assert.Equal(t, returnTo, body["continue_with"].([]any)[0].(map[string]any)["redirect_browser_to"])
			} else {
				r = e.submitForm(c, step.ID, url.Values{"method": {pinMethodID}, "pin": {testPIN}, "csrf_token": {csrfToken(step)}}, nil)
				require.Equal(t, http.StatusSeeOther, r.status, "body: %s", r.body)
				assert.Equal(t, returnTo, r.header.Get("Location"))
			}
			aal2Cookie := subJarCookie(t, e, c, subSessionCookie)
			assert.NotEqual(t, aal1Cookie, aal2Cookie, "a new session cookie: the token rotated")
			assert.Equal(t, http.StatusUnauthorized, subWhoami(t, e, aal1Cookie).status)
			who := e.do(c, http.MethodGet, "/sessions/whoami", nil, nil)
			assert.Equal(t, "aal2", bbBody(t, who, http.StatusOK)["authenticator_assurance_level"])
		})
	}
}

// A step-up flow belongs to the session that created it (Part 1 S5).
func TestStepUpFlowBelongsToItsSession(t *testing.T) {
	e, _ := aalEnv(t)
	alice1 := e.passwordAPI()["session_token"].(string)
	alice2 := e.passwordAPI()["session_token"].(string)
	f := e.stepUpAPI(alice1)

	r := e.submitPIN(f.ID, alice2, testPIN)
	body := bbBody(t, r, http.StatusBadRequest)
	assert.Equal(t, float64(flow.IDNoMethod), body["ui"].(map[string]any)["messages"].([]any)[0].(map[string]any)["id"], "another session of the same identity")
	bbEnvelope(t, subWhoami(t, e, alice2), http.StatusForbidden, autherrors.IDSessionAAL2Required) // the foreign session did not step up

	r = e.submitJSON(e.api(), f.ID, map[string]any{"method": pinMethodID, "pin": testPIN}, nil)
	bbEnvelope(t, r, http.StatusUnauthorized, autherrors.IDSessionAAL1Required)

	assert.Equal(t, http.StatusOK, e.submitPIN(f.ID, alice1, testPIN).status, "the owner still can")
}

// Methods serve only flows of their AAL: password in a step-up flow and a
// second factor in an ordinary flow are 4010002 (§6 rows 10 and 11).
func TestMethodsServeOnlyTheirAAL(t *testing.T) {
	e, _ := aalEnv(t)
	token := e.passwordAPI()["session_token"].(string)
	f := e.stepUpAPI(token)
	r := e.submitJSON(e.api(), f.ID, credentials(testIdentifier, testPassword, ""), map[string]string{"X-Session-Token": token})
	assert.Equal(t, float64(flow.IDNoMethod), bbBody(t, r, http.StatusBadRequest)["ui"].(map[string]any)["messages"].([]any)[0].(map[string]any)["id"])

	plain := e.apiFlow("")
	r = e.submitJSON(e.api(), plain.ID, map[string]any{"method": pinMethodID, "pin": testPIN}, nil)
	assert.Equal(t, float64(flow.IDNoMethod), bbBody(t, r, http.StatusBadRequest)["ui"].(map[string]any)["messages"].([]any)[0].(map[string]any)["id"])
}

// Wrong second-factor codes are throttled by identity (Part 1 S4), across
// the identity's sessions and flows.
func TestStepUpIsThrottledByIdentity(t *testing.T) {
	e, pin := aalEnv(t)
	for i := range 5 {
		token := e.passwordAPI()["session_token"].(string)
		r := e.submitPIN(e.stepUpAPI(token).ID, token, "000000")
		require.Equal(t, http.StatusBadRequest, r.status, "wrong code %d", i+1)
	}
	token := e.passwordAPI()["session_token"].(string)
	r := e.submitPIN(e.stepUpAPI(token).ID, token, testPIN)
	bbEnvelope(t, r, http.StatusTooManyRequests, autherrors.IDTooManyAttempts)
	assert.Equal(t, 5, pin.attempts, "the refused attempt was not verified")
	e.clock.Advance(time.Second)
	assert.Equal(t, http.StatusOK, e.submitPIN(e.stepUpAPI(token).ID, token, testPIN).status)
}

// An expired step-up flow is replaced by a fresh one of the same AAL
// (CONTRACT Part 1 rule 19, CONTRACT-AAL A).
func TestExpiredStepUpFlowIsReplaced(t *testing.T) {
	e, _ := aalEnv(t)
	token := e.passwordAPI()["session_token"].(string)
	f := e.stepUpAPI(token)
	e.clock.Advance(login.DefaultFlowLifespan + time.Second)
	r := e.submitPIN(f.ID, token, testPIN)
	env := bbEnvelope(t, r, http.StatusGone, autherrors.IDFlowExpired)
	require.NotNil(t, env)
	next := r.json(t)["use_flow_id"].(string)
	got := e.do(e.api(), http.MethodGet, "/self-service/login/flows?id="+next, nil, nil).flow(t)
	assert.Equal(t, "aal2", got.RequestedAAL)
	assert.Equal(t, http.StatusOK, e.submitPIN(next, token, testPIN).status, "the replacement belongs to the submitter")
}

// A second-factor refresh of an aal2 session (refresh=true&aal=aal2): only
// message 1010003, the same session, a new token, still aal2.
func TestSecondFactorRefresh(t *testing.T) {
	e, _ := aalEnv(t)
	token := e.passwordAPI()["session_token"].(string)
	token = bbBody(t, e.submitPIN(e.stepUpAPI(token).ID, token, testPIN), http.StatusOK)["session_token"].(string)
	r := e.do(e.api(), http.MethodGet, "/self-service/login/api?refresh=true&aal=aal2", nil, map[string]string{"X-Session-Token": token})
	f := r.flow(t)
	require.Len(t, f.UI.Messages, 1)
	assert.Equal(t, flow.IDConfirmIdentity, f.UI.Messages[0].ID)
	body := bbBody(t, e.submitPIN(f.ID, token, testPIN), http.StatusOK)
	assert.NotEqual(t, token, body["session_token"])
	assert.Equal(t, "aal2", body["session"].(map[string]any)["authenticator_assurance_level"])
	assert.Equal(t, []string{"password/aal1", "pin/aal2", "pin/aal2"}, methodsOf(t, body["session"].(map[string]any)))

	// A password refresh of the aal2 session keeps it aal2 (§2, §11).
	token = body["session_token"].(string)
	pf := e.do(e.api(), http.MethodGet, "/self-service/login/api?refresh=true", nil, map[string]string{"X-Session-Token": token}).flow(t)
	r = e.submitJSON(e.api(), pf.ID, credentials(testIdentifier, testPassword, ""), map[string]string{"X-Session-Token": token})
	assert.Equal(t, "aal2", bbBody(t, r, http.StatusOK)["session"].(map[string]any)["authenticator_assurance_level"])
}

// Under RequiredAAL aal1, and for identities without a second factor, the
// first factor is an ordinary login and whoami accepts aal1.
func TestRequiredAAL1AndIdentitiesWithoutSecondFactor(t *testing.T) {
	e, _ := aalEnv(t, func(c *login.Config) { c.RequiredAAL = login.RequireAAL1 })
	first := e.passwordAPI()
	assert.NotNil(t, first["session"].(map[string]any)["identity"])
	assert.Equal(t, http.StatusOK, subWhoami(t, e, first["session_token"].(string)).status)

	e, _ = aalEnv(t)
	e.addIdentity("bob@example.com", "bob's password")
	r := e.submitJSON(e.api(), e.apiFlow("").ID, credentials("bob@example.com", "bob's password", ""), nil)
	body := bbBody(t, r, http.StatusOK)
	assert.NotNil(t, body["session"].(map[string]any)["identity"], "bob has no second factor")
	assert.Equal(t, http.StatusOK, subWhoami(t, e, body["session_token"].(string)).status)

	_, err := login.New(login.Config{PublicURL: "https://a.example.com", LoginUIURL: "/l", ErrorUIURL: "/e", DefaultReturnURL: "https://a.example.com/", RequiredAAL: "aal3"})
	assert.ErrorContains(t, err, "RequiredAAL")
}

// RequireSession and Middleware honour Config.RequiredAAL.
func TestRequireSessionHonoursRequiredAAL(t *testing.T) {
	for _, required := range []string{login.RequireHighestAvailable, login.RequireAAL1} {
		t.Run(required, func(t *testing.T) {
			e, _ := aalEnv(t, func(c *login.Config) { c.RequiredAAL = required })
			protected := (e.h.RequireSession(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				s, ok := session.FromContext(r.Context())
				require.True(t, ok)
				_, _ = w.Write([]byte(s.AAL))
			})))
			optional := (e.h.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				s, ok := session.FromContext(r.Context())
				if !ok {
					_, _ = w.Write([]byte("none"))
					return
				}
				_, _ = w.Write([]byte(s.AAL))
			})))
			token := e.passwordAPI()["session_token"].(string)
			auth := map[string]string{"X-Session-Token": token, "Accept": "application/json"}

			asJSON := serve(protected, auth)
			browser := serve(protected, map[string]string{"X-Session-Token": token, "Accept": "text/html"})
			mw := serve(optional, auth)
			if required == login.RequireAAL1 {
				assert.Equal(t, http.StatusOK, asJSON.Code)
				assert.Equal(t, "aal1", asJSON.Body.String())
				assert.Equal(t, "aal1", mw.Body.String())
				return
			}
			assert.Equal(t, http.StatusForbidden, asJSON.Code)
			assert.Contains(t, asJSON.Body.String(), `"id":"session_aal2_required"`)
			assert.Equal(t, http.StatusSeeOther, browser.Code)
			assert.Equal(t, e.srv.URL+"/self-service/login/browser?aal=aal2", browser.Header().Get("Location"))
			assert.Equal(t, "none", mw.Body.String(), "Middleware leaves out a session that still needs its second factor")

			token = bbBody(t, e.submitPIN(e.stepUpAPI(token).ID, token, testPIN), http.StatusOK)["session_token"].(string)
			asJSON = serve(protected, map[string]string{"X-Session-Token": token, "Accept": "application/json"})
			assert.Equal(t, http.StatusOK, asJSON.Code)
			assert.Equal(t, "aal2", asJSON.Body.String())
		})
	}
}

// serve sends a GET with header to a host route wrapped by the handler's
// middleware.
func serve(h http.Handler, header map[string]string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodGet, "/app", nil)
	for k, v := range header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// A refusal for a missing second factor is reported as refused, never as
// an internal error.
func TestAAL2RefusalIsReportedAsRefused(t *testing.T) {
	var events []login.Event
	var mu sync.Mutex
	e, _ := aalEnv(t, func(c *login.Config) {
		c.OnEvent = func(_ context.Context, ev login.Event) {
			mu.Lock()
			defer mu.Unlock()
			events = append(events, ev)
		}
	})
	token := e.passwordAPI()["session_token"].(string)
	require.Equal(t, http.StatusForbidden, subWhoami(t, e, token).status)
	mu.Lock()
	defer mu.Unlock()
	last := events[len(events)-1]
	assert.Equal(t, "whoami", last.Action)
	assert.Equal(t, login.OutcomeRefused, last.Outcome)
	assert.Equal(t, autherrors.IDSessionAAL2Required, last.ErrorID)
	assert.Equal(t, http.StatusForbidden, last.Status)
}

// Result.Commit runs just before the completion, and its rollback when the
// completion fails: here the session is revoked between the two, so the
// step-up answers 401 and the spent secret is given back.
func TestCommitIsRolledBackWhenTheLoginFails(t *testing.T) {
	e, pin := aalEnv(t)
	token := e.passwordAPI()["session_token"].(string)
	f := e.stepUpAPI(token)
	pin.duringCommit = func() {
		_, err := e.sessions.RevokeSessions(context.Background(), e.identity.ID)
		require.NoError(t, err)
	}
	bbEnvelope(t, e.submitPIN(f.ID, token, testPIN), http.StatusUnauthorized, autherrors.IDSessionInactive)
	assert.Equal(t, 1, pin.commits)
	assert.Equal(t, 1, pin.rollbacks, "the secret is given back")

	pin.duringCommit = nil
	token = e.passwordAPI()["session_token"].(string)
	assert.Equal(t, http.StatusOK, e.submitPIN(e.stepUpAPI(token).ID, token, testPIN).status)
	assert.Equal(t, 2, pin.commits)
	assert.Equal(t, 1, pin.rollbacks, "a login keeps its secret spent")
}
