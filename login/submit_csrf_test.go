package login_test

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/login"
)

// CSRF on submit: CONTRACT Part 1 rules 8 and 11, §G step 8; Part 2 rows
// 12-14, §6.3-6.4 and §12 45-52.

const (
	subCSRFReason  = "Please retry the flow and optionally clear your cookies. The request was rejected to protect you from Cross-Site-Request-Forgery (CSRF) which could cause account takeover, leaking personal information, and other serious security issues."
	subCSRFMessage = "the request was rejected to protect you from Cross-Site-Request-Forgery"
	subCSRFNoCSRF  = "The HTTP Cookie Header was set but did not include the anti-CSRF cookie."
	subHintServer  = "We detected a regular browser or server-side call. To debug browser calls check your Browser's Network Tab to see what cookies are included or excluded. If you are calling from a server ensure that the appropriate cookies are being forwarded and that the SDK method is called correctly."
	subHintAJAX    = "We detected an AJAX call, please ensure that CORS is enabled and configured correctly, and that your AJAX code sends cookies and has credentials enabled. For further debugging, check your Browser's Network Tab to see what cookies are included or excluded."
	subGuardOrigin = `The HTTP Request Header included the "Origin" key, indicating that this request was made as part of an AJAX request in a Browser. The flow however was initiated as an API request. To prevent potential misuse and mitigate several attack vectors including CSRF, the request has been blocked. Please consult the documentation.`
	subGuardCookie = `The HTTP Request Header included the "Cookie" key, indicating that this request was made by a Browser. The flow however was initiated as an API request. To prevent potential misuse and mitigate several attack vectors including CSRF, the request has been blocked. Please consult the documentation.`
)

// subWrongCSRFToken is well-formed (64 bytes, standard base64) but masks a
// token no cookie holds.
func subWrongCSRFToken() string {
	b := make([]byte, 64)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// TestSubmitCSRF: browser flows. The token passes in the csrf_token field
// or the X-CSRF-Token header (Part 1 rule 11 overrides Kratos' row 46);
// failures are 403 security_csrf_violation for JSON requests and the error
// UI for forms, with the §6.4 diagnosis; validation comes first.
func TestSubmitCSRF(t *testing.T) {
	type want string
	const (
		wantOK         want = "logged in"
		wantViolation  want = "csrf violation"
		wantValidation want = "validation error"
	)
	tests := []struct {
		name        string
		kind        subKind
		client      string // "browser": the flow's browser; "bare": no cookies; "foreign": only an unrelated cookie
		bodyToken   string // "flow", "none", "wrong", "garbage", "raw" (the cookie's unmasked value), "other" (another browser's flow token)
		headerToken string // "", "flow", "wrong"
		password    string // "" leaves it out
		header      map[string]string
		want        want
		wantReject  string // reject_reason; "" means the key is absent
		wantHint    string
	}{
		{"form without csrf_token goes to the error UI", subForm, "browser", "none", "", testPassword, nil, wantViolation, "", subCSRFHintNotSent},
		{"spa without csrf_token is 403 mismatch", subSPA, "browser", "none", "", testPassword, nil, wantViolation, subCSRFMismatch, subHintServer},
		{"spa with a wrong csrf_token is 403 mismatch", subSPA, "browser", "wrong", "", testPassword, nil, wantViolation, subCSRFMismatch, subHintServer},
		{"spa with a malformed csrf_token is 403 mismatch", subSPA, "browser", "garbage", "", testPassword, nil, wantViolation, subCSRFMismatch, subHintServer},
		{"form with a wrong csrf_token goes to the error UI", subForm, "browser", "wrong", "", testPassword, nil, wantViolation, subCSRFMismatch, subHintServer},
		{"spa with another browser's token is 403", subSPA, "browser", "other", "", testPassword, nil, wantViolation, subCSRFMismatch, subHintServer},
		{"spa ajax call gets the AJAX hint", subSPA, "browser", "wrong", "", testPassword, map[string]string{"Sec-Fetch-Mode": "cors"}, wantViolation, subCSRFMismatch, subHintAJAX},
		{"spa without any cookie is 403 cookie header empty", subSPA, "bare", "flow", "", testPassword, nil, wantViolation, subCSRFNoCookies, subHintServer},
		{"form without any cookie goes to the error UI", subForm, "bare", "flow", "", testPassword, nil, wantViolation, subCSRFNoCookies, subHintServer},
		{"spa with cookies but not the CSRF cookie is 403", subSPA, "foreign", "flow", "", testPassword, nil, wantViolation, subCSRFNoCSRF, subHintServer},
		{"spa token only in the X-CSRF-Token header is accepted", subSPA, "browser", "none", "flow", testPassword, nil, wantOK, "", ""},
		{"form token only in the X-CSRF-Token header is accepted", subForm, "browser", "none", "flow", testPassword, nil, wantOK, "", ""},
		{"spa wrong body token but right header is accepted", subSPA, "browser", "wrong", "flow", testPassword, nil, wantOK, "", ""},
		{"spa right body token but wrong header is accepted", subSPA, "browser", "flow", "wrong", testPassword, nil, wantOK, "", ""},
		{"spa wrong body token and wrong header is 403", subSPA, "browser", "wrong", "wrong", testPassword, nil, wantViolation, subCSRFMismatch, subHintServer},
		{"spa raw unmasked cookie value is accepted", subSPA, "browser", "raw", "", testPassword, nil, wantOK, "", ""},
		{"form raw unmasked cookie value is accepted", subForm, "browser", "raw", "", testPassword, nil, wantOK, "", ""},
		{"spa bad CSRF and missing password is a validation error", subSPA, "browser", "wrong", "", "", nil, wantValidation, "", ""},
		{"form bad CSRF and missing password is a validation error", subForm, "browser", "wrong", "", "", nil, wantValidation, "", ""},
		{"spa no cookies and missing password is a validation error", subSPA, "bare", "none", "", "", nil, wantValidation, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			s := subStart(t, e, tt.kind, "")
			browser := s.c
			switch tt.client {
			case "bare", "foreign":
				s.c = e.api()
			}
			token := map[string]string{
				"flow":    csrfToken(s.flow),
				"none":    "",
				"wrong":   subWrongCSRFToken(),
				"garbage": "not base64!",
				"raw":     subJarCookie(t, e, browser, subCSRFCookie),
				"other":   csrfToken(e.browserFlow(e.browser(), "")),
			}
			require.NotEmpty(t, token["raw"])
			fields := credentials(testIdentifier, tt.password, token[tt.bodyToken])
			if tt.password == "" {
				fields["password"] = nil
			}
			if tt.bodyToken == "none" {
				fields["csrf_token"] = nil
			}
			header := map[string]string{}
			for k, v := range tt.header {
				header[k] = v
			}
			if tt.headerToken != "" {
				header["X-CSRF-Token"] = token[tt.headerToken]
			}
			if tt.client == "foreign" {
				header["Cookie"] = "theme=dark"
			}

			r := s.submit(t, fields, header)
			switch tt.want {
			case wantOK:
				subAssertNoCache(t, r)
				if tt.kind == subForm {
					assert.Equal(t, http.StatusSeeOther, r.status, "body: %s", r.body)
					assert.Equal(t, defaultReturn, r.header.Get("Location"))
				} else {
					assert.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
				}
				assert.NotNil(t, r.cookie(subSessionCookie), "session cookie")
				assert.Len(t, subSessions(t, e, e.identity.ID), 1)
			case wantViolation:
				env := s.wantError(t, r, http.StatusForbidden)
				obj := subErr(env)
				assert.Equal(t, "security_csrf_violation", obj["id"])
				assert.Equal(t, subCSRFReason, obj["reason"])
				assert.Equal(t, subCSRFMessage, obj["message"])
				details, _ := obj["details"].(map[string]any)
				require.NotNil(t, details, "details: %v", obj)
				assert.Equal(t, "https://www.ory.com/docs/troubleshooting/csrf", details["docs"])
				assert.Equal(t, tt.wantHint, details["hint"])
				if tt.wantReject == "" {
					assert.NotContains(t, details, "reject_reason")
				} else {
					assert.Equal(t, tt.wantReject, details["reject_reason"])
				}
				assert.Nil(t, r.cookie(subSessionCookie))
				assert.Empty(t, subSessions(t, e, e.identity.ID))
			case wantValidation:
				f := s.wantFlow(t, r).flow(t)
				assert.Empty(t, f.UI.Messages)
				assert.Equal(t, []flow.Message{subMissing("password")}, subNode(t, f, "password").Messages)
			}
		})
	}
}

// TestSubmitCSRFFailureLeavesFlowUsable: a CSRF failure changes nothing;
// the same flow then logs in (Kratos sample "a flow survives failures").
func TestSubmitCSRFFailureLeavesFlowUsable(t *testing.T) {
	e := newEnv(t)
	s := subStart(t, e, subSPA, "")
	r := s.submit(t, credentials(testIdentifier, testPassword, subWrongCSRFToken()), nil)
	s.wantError(t, r, http.StatusForbidden)
	assert.Equal(t, flow.StateChooseMethod, subStored(t, e, s.flow.ID).Flow.State)

	r = s.submit(t, s.creds(testIdentifier, testPassword), nil)
	assert.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
}

// TestSubmitAPIFlowGuard: Part 2 rows 13-14 and §6.3 (§12 50-52). API
// flows carry no CSRF token; requests that look like a browser's (Origin,
// or any cookie but Cloudflare's) are refused with a flow message.
func TestSubmitAPIFlowGuard(t *testing.T) {
	tests := []struct {
		name      string
		header    map[string]string
		csrf      any // the body's csrf_token (nil: absent)
		password  any
		wantOK    bool
		wantText  string // the 4000001 text when refused
		wantField bool   // a validation error instead
	}{
		{"Origin header is refused", map[string]string{"Origin": "https://evil.example.net"}, nil, testPassword, false, subGuardOrigin, false},
		{"a cookie is refused", map[string]string{"Cookie": "name=bar"}, nil, testPassword, false, subGuardCookie, false},
		{"a cookie next to Cloudflare's is refused", map[string]string{"Cookie": "__cf_bm=x; name=bar"}, nil, testPassword, false, subGuardCookie, false},
		{"only Cloudflare's __cf_bm cookie passes", map[string]string{"Cookie": "__cf_bm=x"}, nil, testPassword, true, "", false},
		{"only Cloudflare's cookies pass", map[string]string{"Cookie": "cf_clearance=y; _cfuvid=z"}, nil, testPassword, true, "", false},
		{"no csrf_token proceeds", nil, nil, testPassword, true, "", false},
		{"a csrf_token in the body is ignored", nil, "whatever", testPassword, true, "", false},
		{"validation comes before the guard", map[string]string{"Origin": "https://evil.example.net"}, nil, nil, false, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			s := subStart(t, e, subAPI, "")
			fields := map[string]any{"method": "password", "identifier": testIdentifier, "password": tt.password, "csrf_token": tt.csrf}
			r := s.submit(t, fields, tt.header)
			if tt.wantOK {
				subAssertNoCache(t, r)
				assert.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
				assert.NotEmpty(t, r.json(t)["session_token"])
				return
			}
			f := s.wantFlow(t, r).flow(t)
			if tt.wantField {
				assert.Empty(t, f.UI.Messages)
				assert.Equal(t, []flow.Message{subMissing("password")}, subNode(t, f, "password").Messages)
			} else {
				subGeneric(t, f, tt.wantText)
			}
			assert.Empty(t, subSessions(t, e, e.identity.ID))
		})
	}
}

// TestSubmitCSRFTokenRemasked: Part 2 §3.2 and §6.2. A flow answered after
// a failed browser submit carries a freshly masked token for the same
// cookie, which the next submit can use.
func TestSubmitCSRFTokenRemasked(t *testing.T) {
	for _, kind := range []subKind{subSPA, subForm} {
		t.Run(string(kind), func(t *testing.T) {
			e := newEnv(t)
			s := subStart(t, e, kind, "")
			f := s.wantFlow(t, s.submit(t, s.creds(testIdentifier, "wrong"), nil)).flow(t)
			next := csrfToken(f)
			require.NotEmpty(t, next)
			assert.NotEqual(t, csrfToken(s.flow), next, "a fresh mask")

			r := s.submit(t, credentials(testIdentifier, testPassword, next), nil)
			if kind == subForm {
				assert.Equal(t, http.StatusSeeOther, r.status, "body: %s", r.body)
				assert.Equal(t, defaultReturn, r.header.Get("Location"))
			} else {
				assert.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
			}
		})
	}
}

// unmaskCSRF returns the raw token a flow's csrf_token value carries.
func unmaskCSRF(t testing.TB, masked string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(masked)
	require.NoError(t, err)
	require.Len(t, b, 64)
	for i := range 32 {
		b[32+i] ^= b[i]
	}
	return b[32:]
}

// csrfCookieToken returns the raw token of the CSRF cookie c holds for the
// test server.
func (e *env) csrfCookieToken(c *http.Client) []byte {
	e.t.Helper()
	u, err := url.Parse(e.srv.URL)
	require.NoError(e.t, err)
	for _, k := range c.Jar.Cookies(u) {
		if k.Name == login.DefaultCSRFCookieName {
			b, err := base64.StdEncoding.DecodeString(k.Value)
			require.NoError(e.t, err)
			return b
		}
	}
	e.t.Fatalf("no CSRF cookie in the jar")
	return nil
}

// The review's reproduction of login CSRF: an attacker creates a browser
// flow and makes the victim's browser submit it (a top-level GET carries
// Lax cookies; a cross-site form without a token fails too). A failed
// submit used to re-mask the flow's csrf_token with the requester's CSRF
// cookie, so the attacker, fetching their own flow, read the victim's CSRF
// secret. The node is re-masked only with the flow's own cookie.
func TestSubmitNeverMasksAnotherBrowsersCSRFToken(t *testing.T) {
	e := newEnv(t)
	attacker, victim := e.browser(), e.browser()
	f := e.browserFlow(attacker, "")
	e.browserFlow(victim, "") // the victim's browser holds a CSRF cookie
	attackerToken, victimToken := e.csrfCookieToken(attacker), e.csrfCookieToken(victim)
	require.NotEqual(t, attackerToken, victimToken)

	submits := []struct {
		name string
		do   func() *result
	}{
		{"top-level GET", func() *result {
			return e.do(victim, http.MethodGet, "/self-service/login?flow="+f.ID, nil, map[string]string{"Accept": "text/html"})
		}},
		{"form without a body", func() *result {
			return e.do(victim, http.MethodPost, "/self-service/login?flow="+f.ID, nil, map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
		}},
		{"JSON with a missing password", func() *result {
			return e.submitJSON(victim, f.ID, map[string]any{"method": "password", "identifier": testIdentifier}, nil)
		}},
	}
	for _, s := range submits {
		r := s.do()
		require.Contains(t, []int{http.StatusSeeOther, http.StatusBadRequest}, r.status, "%s: body %s", s.name, r.body)
		if r.status == http.StatusBadRequest {
			got := r.flow(t)
			assert.NotEqual(t, victimToken, unmaskCSRF(t, csrfToken(got)), "%s: the victim's own answer does not carry its token in the attacker's flow", s.name)
		}

		fetched := e.do(attacker, http.MethodGet, "/self-service/login/flows?id="+f.ID, nil, nil)
		require.Equal(t, http.StatusOK, fetched.status, "body: %s", fetched.body)
		token := unmaskCSRF(t, csrfToken(fetched.flow(t)))
		assert.NotEqual(t, victimToken, token, "%s: the attacker's flow leaks the victim's CSRF token", s.name)
		assert.Equal(t, attackerToken, token, "%s: the node still masks the flow's own token", s.name)
	}

	// The flow's own browser still gets a fresh mask and logs in with it.
	r := e.submitJSON(attacker, f.ID, credentials(testIdentifier, "wrong", csrfToken(f)), nil)
	require.Equal(t, http.StatusBadRequest, r.status)
	next := r.flow(t)
	assert.NotEqual(t, csrfToken(f), csrfToken(next), "a fresh mask for the flow's own cookie")
	assert.Equal(t, attackerToken, unmaskCSRF(t, csrfToken(next)))
	assert.Equal(t, http.StatusOK, e.submitJSON(attacker, f.ID, credentials(testIdentifier, testPassword, csrfToken(next)), nil).status)
}
