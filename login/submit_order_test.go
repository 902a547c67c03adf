package login_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/internal/uuid"
	"github.com/authflow/authflow/login"
)

// The evaluation order of submit (CONTRACT Part 1 §G): where two steps
// would both decide, the earlier one answers.

// TestSubmitOrderSessionBeforeExpiryAndCompletion: §G step 3 comes before
// steps 4 and 5: a signed-in client is told so, whatever the flow's state.
func TestSubmitOrderSessionBeforeExpiryAndCompletion(t *testing.T) {
	tests := []struct {
		name  string
		kind  subKind
		state string // "expired" or "completed"
	}{
		{"api, expired flow", subAPI, "expired"},
		{"spa, expired flow", subSPA, "expired"},
		{"browser form, expired flow", subForm, "expired"},
		{"api, completed flow", subAPI, "completed"},
		{"spa, completed flow", subSPA, "completed"},
		{"browser form, completed flow", subForm, "completed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			s := subStart(t, e, tt.kind, "")
			var header map[string]string
			if tt.state == "completed" {
				r := s.submit(t, s.creds(testIdentifier, testPassword), nil)
				require.Contains(t, []int{http.StatusOK, http.StatusSeeOther}, r.status, "body: %s", r.body)
				if tt.kind == subAPI {
					header = map[string]string{"X-Session-Token": r.json(t)["session_token"].(string)}
				}
			} else {
				if tt.kind == subAPI {
					header = map[string]string{"X-Session-Token": e.loginAPI()}
				} else {
					e.loginBrowser(s.c)
				}
				e.clock.Advance(login.DefaultFlowLifespan + time.Minute)
			}

			r := s.submit(t, s.creds(testIdentifier, testPassword), header)
			if tt.kind == subForm {
				subAssertNoCache(t, r)
				require.Equal(t, http.StatusSeeOther, r.status, "body: %s", r.body)
				assert.Equal(t, defaultReturn, r.header.Get("Location"))
				return
			}
			obj := subErr(s.wantError(t, r, http.StatusBadRequest))
			assert.Equal(t, "session_already_available", obj["id"])
		})
	}
}

// TestSubmitOrderAPIFlowWithSessionCookie: an API flow submitted with a
// browser's session cookie is "already signed in" before the API-flow
// cookie guard (Part 2 §3.5).
func TestSubmitOrderAPIFlowWithSessionCookie(t *testing.T) {
	e := newEnv(t)
	tok := e.loginAPI()
	s := subStart(t, e, subAPI, "")
	r := s.submit(t, s.creds(testIdentifier, testPassword), map[string]string{"Cookie": subSessionCookie + "=" + tok})
	obj := subErr(s.wantError(t, r, http.StatusBadRequest))
	assert.Equal(t, "session_already_available", obj["id"])
}

// TestSubmitOrderLaterSteps: §G steps 4 to 11 in pairs.
func TestSubmitOrderLaterSteps(t *testing.T) {
	malformed := func(_ testing.TB, s *subClient) *result {
		return s.e.do(s.c, http.MethodPost, "/self-service/login?flow="+s.flow.ID, strings.NewReader(`{"method":`),
			map[string]string{"Content-Type": "application/json", "Accept": "application/json"})
	}
	tests := []struct {
		name     string
		kind     subKind
		complete bool // log in first, then submit from a client without the session
		expire   bool
		disabled bool // Config.DisablePassword
		send     func(t testing.TB, s *subClient) *result
		check    func(t *testing.T, s *subClient, r *result)
	}{
		{
			name: "expiry before completion", kind: subAPI, complete: true, expire: true,
			send: func(t testing.TB, s *subClient) *result {
				return s.submit(t, s.creds(testIdentifier, testPassword), nil)
			},
			check: func(t *testing.T, s *subClient, r *result) {
				obj := subErr(s.wantError(t, r, http.StatusGone))
				assert.Equal(t, "self_service_flow_expired", obj["id"])
			},
		},
		{
			name: "completion before decoding", kind: subAPI, complete: true,
			send: malformed,
			check: func(t *testing.T, s *subClient, r *result) {
				subOnlyMessage(t, s.wantFlow(t, r).flow(t), 4010007, subAlreadyDoneText)
			},
		},
		{
			name: "completion before decoding, spa", kind: subSPA, complete: true,
			send: malformed,
			check: func(t *testing.T, s *subClient, r *result) {
				subOnlyMessage(t, s.wantFlow(t, r).flow(t), 4010007, subAlreadyDoneText)
			},
		},
		{
			name: "method selection before field validation", kind: subAPI,
			send: func(t testing.TB, s *subClient) *result {
				return s.submit(t, map[string]any{"method": "magic"}, nil)
			},
			check: func(t *testing.T, s *subClient, r *result) {
				subOnlyMessage(t, s.wantFlow(t, r).flow(t), 4010002, subNoMethodText)
			},
		},
		{
			name: "disabled password method before field validation", kind: subAPI, disabled: true,
			send: func(t testing.TB, s *subClient) *result {
				return s.submit(t, map[string]any{"method": "password"}, nil)
			},
			check: func(t *testing.T, s *subClient, r *result) {
				s.wantError(t, r, http.StatusNotFound)
			},
		},
		{
			name: "CSRF before the credential check", kind: subSPA,
			send: func(t testing.TB, s *subClient) *result {
				return s.submit(t, credentials("nobody@example.com", "wrong", subWrongCSRFToken()), nil)
			},
			check: func(t *testing.T, s *subClient, r *result) {
				obj := subErr(s.wantError(t, r, http.StatusForbidden))
				assert.Equal(t, "security_csrf_violation", obj["id"])
			},
		},
		{
			name: "API-flow guard before the credential check", kind: subAPI,
			send: func(t testing.TB, s *subClient) *result {
				return s.submit(t, s.creds(testIdentifier, "wrong"), map[string]string{"Origin": "https://evil.example.net"})
			},
			check: func(t *testing.T, s *subClient, r *result) {
				subGeneric(t, s.wantFlow(t, r).flow(t), subGuardOrigin)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &subHasher{}
			e := newEnv(t, func(c *login.Config) {
				c.Hasher = h
				c.DisablePassword = tt.disabled
			})
			s := subStart(t, e, tt.kind, "")
			if tt.complete {
				r := s.submit(t, s.creds(testIdentifier, testPassword), nil)
				require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
				s.c = e.api() // without the session
			}
			if tt.expire {
				e.clock.Advance(login.DefaultFlowLifespan + time.Minute)
			}
			before := h.compares.Load()
			tt.check(t, s, tt.send(t, s))
			if !tt.complete {
				assert.Equal(t, before, h.compares.Load(), "no password was compared")
			}
		})
	}
}

// TestSubmitNodeValues: Part 2 §3.2. Errors of the password method echo
// the submitted identifier; errors before it (no method) or after it
// (disabled identity) leave the stored values.
func TestSubmitNodeValues(t *testing.T) {
	for _, kind := range subKinds {
		t.Run(string(kind), func(t *testing.T) {
			e := newEnv(t)
			s := subStart(t, e, kind, "")
			f := s.wantFlow(t, s.submit(t, s.creds("First@Example.com ", "wrong"), nil)).flow(t)
			require.Equal(t, "First@Example.com ", subNode(t, f, "identifier").Attributes.Value)

			fields := s.creds("second@example.com", testPassword)
			fields["method"] = "magic"
			f = s.wantFlow(t, s.submit(t, fields, nil)).flow(t)
			assert.Equal(t, []int{4010002}, subIDs(f.UI.Messages))
			assert.Equal(t, "First@Example.com ", subNode(t, f, "identifier").Attributes.Value, "no method: values as stored")

			subSetInactive(t, e, e.identity)
			f = s.wantFlow(t, s.submit(t, s.creds(" ALICE@example.com", testPassword), nil)).flow(t)
			assert.Equal(t, []int{4010011}, subIDs(f.UI.Messages))
			assert.Equal(t, "First@Example.com ", subNode(t, f, "identifier").Attributes.Value, "disabled identity: values as stored")
		})
	}
}

// TestSubmitPasswordNotTrimmed: §5.3. Passwords are compared as sent.
func TestSubmitPasswordNotTrimmed(t *testing.T) {
	for _, kind := range subKinds {
		t.Run(string(kind), func(t *testing.T) {
			e := newEnv(t)
			s := subStart(t, e, kind, "")
			f := s.wantFlow(t, s.submit(t, s.creds(testIdentifier, " "+testPassword+" "), nil)).flow(t)
			subOnlyMessage(t, f, 4000006, subInvalidCredsText)
		})
	}
}

// TestSubmitRequestID: §1.3. Envelopes without an id carry the request's
// X-Request-ID.
func TestSubmitRequestID(t *testing.T) {
	e := newEnv(t)
	for _, q := range []string{"?flow=" + uuid.New(), "?flow=bad", ""} {
		r := e.do(e.api(), http.MethodPost, "/self-service/login"+q, strings.NewReader(`{}`),
			map[string]string{"Content-Type": "application/json", "X-Request-ID": "req-4711"})
		assert.Equal(t, "req-4711", subErr(r.json(t))["request"], "query %q: %s", q, r.body)
	}
}

// TestSubmitUnknownFlowKinds: Part 2 row 2. Ids of other things (a
// forwarded error) are not flows.
func TestSubmitUnknownFlowKinds(t *testing.T) {
	e := newEnv(t)
	r := e.submitForm(e.api(), "not-a-flow", nil, nil) // forwards an error
	errID := subQueryParam(t, r.header.Get("Location"), errorUI, "id")
	r = e.submitJSON(e.api(), errID, credentials(testIdentifier, testPassword, ""), nil)
	subWantError(t, e, r, http.StatusNotFound, true)
}

// TestSubmitMethodNotAllowed: Part 2 §2 (§12 63) and Part 1 rule 17. Other
// HTTP methods on the submit path are 405, and not cacheable either.
func TestSubmitMethodNotAllowed(t *testing.T) {
	for _, method := range []string{http.MethodDelete, http.MethodPut, http.MethodPatch} {
		t.Run(method, func(t *testing.T) {
			e := newEnv(t)
			f := e.apiFlow("")
			r := e.do(e.api(), method, "/self-service/login?flow="+f.ID, strings.NewReader(`{}`), map[string]string{"Content-Type": "application/json"})
			assert.Equal(t, http.StatusMethodNotAllowed, r.status)
			assert.Equal(t, "Method Not Allowed", strings.TrimSpace(string(r.body)))
			subAssertNoCache(t, r)
			assert.Equal(t, flow.StateChooseMethod, subStored(t, e, f.ID).Flow.State)
		})
	}
}
