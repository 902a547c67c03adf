package lookup_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/internal/uuid"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/session"
)

// TestStepUpAPI: the whole API journey of CONTRACT-AAL §8, §4 and §7 with
// Part 1 S3: the password login issues an aal1 session with identity null,
// whoami refuses it with 403 session_aal2_required, the step-up flow offers
// the code, and a right code steps the same session up to aal2 under a new
// token; the old token stops working.
func TestStepUpAPI(t *testing.T) {
	e := newEnv(t)
	body := e.loginAPI(testEmail)
	token := tokenOf(t, body)
	first := body["session"].(map[string]any)
	assert.Nil(t, first["identity"], "identity is null until the second factor")
	assert.Equal(t, "aal1", first["authenticator_assurance_level"])

	r := e.whoami(token)
	require.Equal(t, http.StatusForbidden, r.Status, "body: %s", r.Body)
	assert.Equal(t, "session_aal2_required", r.ErrorID(t))
	assert.Equal(t, "session_aal2_required", r.Header.Get("Ory-Error-Id"))
	assert.Equal(t, e.srv.URL+"/self-service/login/browser?aal=aal2", r.JSON(t)["redirect_browser_to"])

	f := e.stepUpAPI(token)
	assert.Equal(t, "aal2", f.RequestedAAL)
	assert.Equal(t, []int{flow.IDSecondFactor}, messageIDs(f))
	var names []string
	for _, n := range f.UI.Nodes {
		names = append(names, n.Attributes.Name)
	}
	assert.Equal(t, []string{"csrf_token", "lookup_secret", "method"}, names)
	in := f.UI.Node("lookup_secret")
	assert.Equal(t, "lookup_secret", in.Group)
	assert.Equal(t, "text", in.Attributes.Type)
	assert.Equal(t, "", in.Attributes.Value)
	assert.True(t, in.Attributes.Required)
	require.NotNil(t, in.Meta.Label)
	assert.Equal(t, flow.IDLabelBackupCode, in.Meta.Label.ID)
	assert.Equal(t, "Backup recovery code", in.Meta.Label.Text)
	btn := f.UI.Node("method")
	assert.Equal(t, "lookup_secret", btn.Group)
	assert.Equal(t, "submit", btn.Attributes.Type)
	assert.Equal(t, "lookup_secret", btn.Attributes.Value)
	require.NotNil(t, btn.Meta.Label)
	assert.Equal(t, flow.IDUseBackupCode, btn.Meta.Label.ID)
	assert.Equal(t, "Use backup recovery code", btn.Meta.Label.Text)

	r = e.submitCode(token, f.ID, testCodes[3])
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	got := r.JSON(t)
	newToken := tokenOf(t, got)
	assert.NotEqual(t, token, newToken, "a step-up rotates the token")
	wantAAL2(t, got["session"].(map[string]any), first["id"].(string))
	assert.Nil(t, got["continue_with"])

	r = e.whoami(newToken)
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	wantAAL2(t, r.JSON(t), first["id"].(string))
	r = e.whoami(token)
	assert.Equal(t, http.StatusUnauthorized, r.Status, "the old token stops working; body: %s", r.Body)
	assert.Equal(t, len(testCodes)-1, e.remaining(e.identity.ID))
}

// TestStepUpBrowserForm: a browser without JavaScript is sent from the
// password login to the step-up flow, submits a code with the flow's CSRF
// token and lands on the return URL with a new session cookie; the old
// cookie stops working.
func TestStepUpBrowserForm(t *testing.T) {
	e := newEnv(t)
	c := e.browser()
	r := e.do(c, http.MethodGet, "/self-service/login/browser?return_to="+url.QueryEscape("https://app.example.com/dash"), nil, nil)
	require.Equal(t, http.StatusSeeOther, r.Status, "body: %s", r.Body)
	f := e.fetchFlow(c, r.Location())
	r = e.submitForm(c, f.ID, url.Values{"method": {"password"}, "identifier": {testEmail}, "password": {testPassword}, "csrf_token": {csrfToken(f)}})
	require.Equal(t, http.StatusSeeOther, r.Status, "body: %s", r.Body)
	assert.Equal(t, e.srv.URL+"/self-service/login/browser?aal=aal2&return_to="+url.QueryEscape("https://app.example.com/dash"), r.Location())
	old := r.Cookie("authflow_session")
	require.NotNil(t, old)

	r = e.do(c, http.MethodGet, r.Location(), nil, nil)
	require.Equal(t, http.StatusSeeOther, r.Status, "body: %s", r.Body)
	f = e.fetchFlow(c, r.Location())
	require.NotNil(t, f.UI.Node("lookup_secret"))
	r = e.submitForm(c, f.ID, url.Values{"method": {"lookup_secret"}, "lookup_secret": {testCodes[0]}, "csrf_token": {csrfToken(f)}})
	require.Equal(t, http.StatusSeeOther, r.Status, "body: %s", r.Body)
	assert.Equal(t, "https://app.example.com/dash", r.Location())
	fresh := r.Cookie("authflow_session")
	require.NotNil(t, fresh, "a step-up re-issues the session cookie")
	assert.NotEqual(t, old.Value, fresh.Value)

	r = e.whoamiCookie(fresh.Value)
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	s := r.JSON(t)
	assert.Equal(t, "aal2", s["authenticator_assurance_level"])
	assert.Equal(t, http.StatusUnauthorized, e.whoamiCookie(old.Value).Status)
}

// fetchFlow follows a 303 to the login UI (loginUI?flow=<id>) and fetches
// the flow as the UI does, with the browser's cookies.
func (e *env) fetchFlow(c *http.Client, location string) flow.Flow {
	e.t.Helper()
	u, err := url.Parse(location)
	require.NoError(e.t, err)
	require.Equal(e.t, loginUI, u.Scheme+"://"+u.Host+u.Path, location)
	r := e.do(c, http.MethodGet, "/self-service/login/flows?id="+u.Query().Get("flow"), nil, nil)
	require.Equal(e.t, http.StatusOK, r.Status, "body: %s", r.Body)
	return r.Flow(e.t)
}

// spaStepUp signs alice in as an SPA does and returns the step-up flow
// the 422 sends it to.
func (e *env) spaStepUp(c *http.Client) flow.Flow {
	e.t.Helper()
	r := e.do(c, http.MethodGet, "/self-service/login/browser", nil, map[string]string{"Accept": "application/json"})
	require.Equal(e.t, http.StatusOK, r.Status, "body: %s", r.Body)
	f := r.Flow(e.t)
	r = e.submitJSON(c, f.ID, map[string]any{"method": "password", "identifier": testEmail, "password": testPassword, "csrf_token": csrfToken(f)}, nil)
	require.Equal(e.t, http.StatusUnprocessableEntity, r.Status, "body: %s", r.Body)
	assert.Equal(e.t, "browser_location_change_required", r.ErrorID(e.t))
	to, _ := r.JSON(e.t)["redirect_browser_to"].(string)
	require.Equal(e.t, e.srv.URL+"/self-service/login/browser?aal=aal2", to)
	r = e.do(c, http.MethodGet, to, nil, map[string]string{"Accept": "application/json"})
	require.Equal(e.t, http.StatusOK, r.Status, "body: %s", r.Body)
	return r.Flow(e.t)
}

// TestStepUpSPA: an SPA's step-up answers 200 with the session and
// continue_with, and a new session cookie.
func TestStepUpSPA(t *testing.T) {
	e := newEnv(t)
	c := e.browser()
	f := e.spaStepUp(c)
	sid := e.sessionIDOf(c)
	r := e.submitJSON(c, f.ID, map[string]any{"method": "lookup_secret", "lookup_secret": testCodes[1], "csrf_token": csrfToken(f)}, nil)
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	body := r.JSON(t)
	assert.Nil(t, body["session_token"], "browsers get a cookie, not a token")
	wantAAL2(t, body["session"].(map[string]any), sid)
	assert.Equal(t, []any{map[string]any{"action": "redirect_browser_to", "redirect_browser_to": defaultReturn}}, body["continue_with"])
	require.NotNil(t, r.Cookie("authflow_session"))
	r = e.do(c, http.MethodGet, "/sessions/whoami", nil, nil)
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	assert.Equal(t, "aal2", r.JSON(t)["authenticator_assurance_level"])
}

// sessionIDOf is the id of the session c holds (aal1 sessions are read
// from the store: whoami refuses them).
func (e *env) sessionIDOf(c *http.Client) string {
	e.t.Helper()
	list, err := e.sessions.ListSessions(e.t.Context(), e.identity.ID)
	require.NoError(e.t, err)
	require.NotEmpty(e.t, list)
	return list[0].Session.ID
}

// TestStepUpCSRF: browser step-up submits are CSRF-checked like password
// submits, before any code is looked at: the code stays unused.
func TestStepUpCSRF(t *testing.T) {
	for _, tt := range []struct {
		name   string
		csrf   func(f flow.Flow) (field string, header map[string]string)
		status int
	}{
		{"missing", func(flow.Flow) (string, map[string]string) { return "", nil }, http.StatusForbidden},
		{"wrong", func(flow.Flow) (string, map[string]string) { return "d3Jvbmc=", nil }, http.StatusForbidden},
		{"right, in the X-CSRF-Token header", func(f flow.Flow) (string, map[string]string) {
			return "", map[string]string{"X-CSRF-Token": csrfToken(f)}
		}, http.StatusOK},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			c := e.browser()
			f := e.spaStepUp(c)
			field, header := tt.csrf(f)
			r := e.submitJSON(c, f.ID, map[string]any{"method": "lookup_secret", "lookup_secret": testCodes[2], "csrf_token": field}, header)
			require.Equal(t, tt.status, r.Status, "body: %s", r.Body)
			if tt.status == http.StatusForbidden {
				assert.Equal(t, "security_csrf_violation", r.ErrorID(t))
				assert.Equal(t, len(testCodes), e.remaining(e.identity.ID), "the code is not consumed")
			}
		})
	}
	t.Run("form without token", func(t *testing.T) {
		e := newEnv(t)
		c := e.browser()
		f := e.spaStepUp(c)
		r := e.submitForm(c, f.ID, url.Values{"method": {"lookup_secret"}, "lookup_secret": {testCodes[2]}})
		require.Equal(t, http.StatusSeeOther, r.Status, "body: %s", r.Body)
		assert.True(t, strings.HasPrefix(r.Location(), errorUI+"?id="), r.Location())
		assert.Equal(t, len(testCodes), e.remaining(e.identity.ID))
	})
}

// TestRefusals: CONTRACT-AAL §6 rows 7, 8 and 9, and the length limit:
// the flow is answered 400 with the message, the session stays aal1, and
// the submitted value is never echoed on the flow.
func TestRefusals(t *testing.T) {
	for _, tt := range []struct {
		name    string
		code    any // nil: the field is absent
		message int // flow-wide message
		node    int // message on the lookup_secret node
		text    string
	}{
		{name: "not one of the codes", code: "zzzzzzzz", message: flow.IDBackupCodeInvalid, text: "The backup recovery code is not valid."},
		{name: "upper-cased", code: strings.ToUpper(testCodes[4]), message: flow.IDBackupCodeInvalid},
		{name: "leading space", code: " " + testCodes[4], message: flow.IDBackupCodeInvalid},
		{name: "trailing space", code: testCodes[4] + " ", message: flow.IDBackupCodeInvalid},
		{name: "prefix", code: testCodes[4][:7], message: flow.IDBackupCodeInvalid},
		{name: "used", code: testCodes[0], message: flow.IDBackupCodeUsed, text: "This backup recovery code has already been used."},
		{name: "missing", code: nil, node: flow.IDMissing, text: "Property lookup_secret is missing."},
		{name: "empty", code: "", node: flow.IDMissing, text: "Property lookup_secret is missing."},
		{name: "too long", code: strings.Repeat("a", 65), node: flow.IDTooLong, text: "length must be <= 64, but got 65"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.useCode(testCodes[0])
			token := tokenOf(t, e.loginAPI(testEmail))
			f := e.stepUpAPI(token)
			body := map[string]any{"method": "lookup_secret"}
			if tt.code != nil {
				body["lookup_secret"] = tt.code
			}
			r := e.submitJSON(e.api(), f.ID, body, map[string]string{"X-Session-Token": token})
			require.Equal(t, http.StatusBadRequest, r.Status, "body: %s", r.Body)
			got := r.Flow(t)
			n := got.UI.Node("lookup_secret")
			require.NotNil(t, n)
			assert.Nil(t, n.Attributes.Value, "never echoed: the value attribute is removed (CONTRACT-AAL §4)")
			if s, ok := tt.code.(string); ok && s != "" {
				assert.NotContains(t, string(r.Body), s)
			}
			var m flow.Message
			if tt.message != 0 {
				require.Len(t, got.UI.Messages, 1, "%+v", got.UI.Messages)
				m = got.UI.Messages[0]
				assert.Equal(t, tt.message, m.ID)
				assert.Empty(t, n.Messages)
			} else {
				assert.Empty(t, got.UI.Messages)
				require.Len(t, n.Messages, 1, "%+v", n.Messages)
				m = n.Messages[0]
				assert.Equal(t, tt.node, m.ID)
			}
			if tt.text != "" {
				assert.Equal(t, tt.text, m.Text)
			}
			assert.Equal(t, http.StatusForbidden, e.whoami(token).Status, "still aal1")
			assert.Equal(t, len(testCodes)-1, e.remaining(e.identity.ID), "nothing consumed")

			// The stored flow does not keep the value either, and a right
			// code still works on the same flow.
			stored, err := e.flows.Flow(t.Context(), f.ID)
			require.NoError(t, err)
			assert.Nil(t, stored.Flow.UI.Node("lookup_secret").Attributes.Value)
			r = e.submitCode(token, f.ID, testCodes[5])
			require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
		})
	}
}

// useCode consumes code of alice by a step-up of a session of hers.
func (e *env) useCode(code string) {
	e.t.Helper()
	token := tokenOf(e.t, e.loginAPI(testEmail))
	r := e.submitCode(token, e.stepUpAPI(token).ID, code)
	require.Equal(e.t, http.StatusOK, r.Status, "body: %s", r.Body)
}

// TestNoCodes: an identity without codes (no credential, or one whose
// codes list is empty) has no second factor: its password login is
// complete, a step-up flow offers nothing, and a lookup submit answers
// 4000014.
func TestNoCodes(t *testing.T) {
	e := newEnv(t)
	empty := codesCredential(t, "x")
	empty.Config = []byte(`{"algorithm":"argon2id","time":1,"memory_kib":19456,"threads":1,"salt":"c2FsdHNhbHRzYWx0c2FsdA==","recovery_codes":[]}`)
	for name, email := range map[string]string{"no credential": "bob@example.com", "empty credential": "carol@example.com"} {
		t.Run(name, func(t *testing.T) {
			id := uuid.New()
			if name == "no credential" {
				e.addIdentity(id, email)
			} else {
				c := empty
				c.Identifiers = []string{id}
				e.addIdentity(id, email, c)
			}
			body := e.loginAPI(email)
			assert.NotNil(t, body["session"].(map[string]any)["identity"], "a complete login")
			token := tokenOf(t, body)
			require.Equal(t, http.StatusOK, e.whoami(token).Status)
			f := e.stepUpAPI(token)
			assert.Nil(t, f.UI.Nodes, "an API step-up flow offering nothing has no nodes")
			r := e.submitCode(token, f.ID, testCodes[0])
			require.Equal(t, http.StatusBadRequest, r.Status, "body: %s", r.Body)
			assert.Equal(t, []int{flow.IDNoBackupCodes}, messageIDs(r.Flow(t)))
		})
	}
}

// TestAAL1Flow: a lookup submit on an ordinary (aal1) flow finds no
// method (4010002) and issues nothing; the code stays unused.
func TestAAL1Flow(t *testing.T) {
	e := newEnv(t)
	r := e.do(e.api(), http.MethodGet, "/self-service/login/api", nil, nil)
	require.Equal(t, http.StatusOK, r.Status)
	f := r.Flow(t)
	assert.Nil(t, f.UI.Node("lookup_secret"), "aal1 flows do not offer codes")
	r = e.submitJSON(e.api(), f.ID, map[string]any{"method": "lookup_secret", "lookup_secret": testCodes[0]}, nil)
	require.Equal(t, http.StatusBadRequest, r.Status, "body: %s", r.Body)
	assert.Equal(t, []int{flow.IDNoMethod}, messageIDs(r.Flow(t)))
	assert.Equal(t, len(testCodes), e.remaining(e.identity.ID))
}

// TestOtherSessionsFlow: a step-up flow belongs to the session that created
// it (CONTRACT-AAL Part 1 S5): another session of the same identity gets
// 4010002 and the code stays unused.
func TestOtherSessionsFlow(t *testing.T) {
	e := newEnv(t)
	a := tokenOf(t, e.loginAPI(testEmail))
	b := tokenOf(t, e.loginAPI(testEmail))
	f := e.stepUpAPI(a)
	r := e.submitCode(b, f.ID, testCodes[0])
	require.Equal(t, http.StatusBadRequest, r.Status, "body: %s", r.Body)
	assert.Equal(t, []int{flow.IDNoMethod}, messageIDs(r.Flow(t)))
	assert.Equal(t, len(testCodes), e.remaining(e.identity.ID))
}

// TestThrottling: wrong codes count by identity (CONTRACT-AAL Part 1 S4):
// after five, the sixth attempt gets 429 too_many_attempts even with a
// right code, which is not consumed.
func TestThrottling(t *testing.T) {
	e := newEnv(t)
	token := tokenOf(t, e.loginAPI(testEmail))
	f := e.stepUpAPI(token)
	for i := range 5 {
		r := e.submitCode(token, f.ID, "wrong"+strings.Repeat("x", i))
		require.Equal(t, http.StatusBadRequest, r.Status, "attempt %d; body: %s", i+1, r.Body)
		assert.Equal(t, []int{flow.IDBackupCodeInvalid}, messageIDs(r.Flow(t)))
	}
	r := e.submitCode(token, f.ID, testCodes[0])
	require.Equal(t, http.StatusTooManyRequests, r.Status, "body: %s", r.Body)
	assert.Equal(t, "too_many_attempts", r.ErrorID(t))
	assert.NotEmpty(t, r.Header.Get("Retry-After"))
	assert.Equal(t, len(testCodes), e.remaining(e.identity.ID), "not consumed")

	// Another session of the same identity is throttled too: the count is
	// the identity's, not the session's.
	other := tokenOf(t, e.loginAPI(testEmail))
	r = e.submitCode(other, e.stepUpAPI(other).ID, testCodes[0])
	require.Equal(t, http.StatusTooManyRequests, r.Status, "body: %s", r.Body)
}

// TestUsedCodeCountsAsFailure: a used code is a failed attempt for
// throttling, as a wrong one.
func TestUsedCodeCountsAsFailure(t *testing.T) {
	e := newEnv(t, func(c *login.Config) { c.Limiter = login.NewMemoryLimiter(login.Limits{FreeFailures: 1}) })
	e.useCode(testCodes[0])
	token := tokenOf(t, e.loginAPI(testEmail))
	f := e.stepUpAPI(token)
	r := e.submitCode(token, f.ID, testCodes[0])
	require.Equal(t, http.StatusBadRequest, r.Status, "body: %s", r.Body)
	assert.Equal(t, []int{flow.IDBackupCodeUsed}, messageIDs(r.Flow(t)))
	r = e.submitCode(token, f.ID, testCodes[1])
	assert.Equal(t, http.StatusTooManyRequests, r.Status, "body: %s", r.Body)
}

// A code is spent exactly when a login happens: when the login is refused
// after the code matched (here by the host's AfterVerification hook), the
// code stays unused and still logs in once.
func TestCodeIsSpentOnlyByALogin(t *testing.T) {
	var refuse atomic.Bool
	refuse.Store(true)
	e := newEnv(t, func(c *login.Config) {
		c.AfterVerification = func(_ context.Context, a *login.Attempt, _ *session.Identity) error {
			if a.Method == "lookup_secret" && refuse.Load() {
				return login.Refuse(flow.Generic("not now"))
			}
			return nil
		}
	})
	token := tokenOf(t, e.loginAPI(testEmail))
	f := e.stepUpAPI(token)
	before := e.remaining(e.identity.ID)
	r := e.submitCode(token, f.ID, testCodes[0])
	require.Equal(t, http.StatusBadRequest, r.Status, "body: %s", r.Body)
	assert.Equal(t, before, e.remaining(e.identity.ID), "the refused login spent no code")

	refuse.Store(false)
	r = e.submitCode(token, f.ID, testCodes[0])
	require.Equal(t, http.StatusOK, r.Status, "the same code logs in: %s", r.Body)
	assert.Equal(t, before-1, e.remaining(e.identity.ID))
}
