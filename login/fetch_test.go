package login_test

// Fetching a flow: GET /self-service/login/flows?id= (CONTRACT Part 2 §2.4,
// §4.10.2, §6.4, §12 "Fetch" 23–29, Part 1 rule 19).

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/internal/uuid"
)

const (
	fetchNotFound = `{"error":{"code":404,"status":"Not Found","message":"Unable to locate the resource"}}`

	fetchExpiredBrowserReason = "The login flow has expired. Redirect the user to the login flow init endpoint to initialize a new login flow."
	fetchExpiredAPIReason     = "The login flow has expired. Call the login flow init API endpoint to initialize a new login flow."
	fetchExpiredMessage       = "The requested resource is no longer available because it has expired or is otherwise invalid."
)

func TestFetchBrowserFlowWithItsCookie(t *testing.T) {
	e := newEnv(t)
	c := e.browser()
	created := e.do(c, http.MethodGet, "/self-service/login/browser", nil, bbAcceptJSON)
	require.Equal(t, http.StatusOK, created.status)
	id := created.json(t)["id"].(string)

	r := e.do(c, http.MethodGet, "/self-service/login/flows?id="+id, nil, nil)
	bbBody(t, r, http.StatusOK)
	assert.JSONEq(t, string(created.body), string(r.body), "the stored flow, as created")
	bbNoSetCookie(t, r)
}

func TestFetchAPIFlowWithoutCookies(t *testing.T) {
	e := newEnv(t)
	created := e.do(e.api(), http.MethodGet, "/self-service/login/api", nil, nil)
	require.Equal(t, http.StatusOK, created.status)
	id := created.json(t)["id"].(string)

	r := e.do(e.api(), http.MethodGet, "/self-service/login/flows?id="+id, nil, nil)
	bbBody(t, r, http.StatusOK)
	assert.JSONEq(t, string(created.body), string(r.body))
}

func TestFetchBrowserFlowCSRFViolation(t *testing.T) {
	e := newEnv(t)
	owner := e.browser()
	f := e.browserFlow(owner, "")
	other := e.browser()
	e.do(other, http.MethodGet, "/self-service/login/browser", nil, nil) // another browser, its own CSRF cookie
	otherCookie := e.bbJarCookie(other, bbCSRFCookie)
	require.NotEmpty(t, otherCookie)

	tests := []struct {
		name         string
		header       map[string]string
		wantHint     string
		wantReason   string // "" means no reject_reason key
		wantNewCSRF  bool
		wantNoCookie bool
	}{
		{"no cookies, server-side call", nil, bbHintServer, bbNoCookies, true, false},
		{"no cookies, AJAX (Sec-Fetch-Mode cors)", map[string]string{"Sec-Fetch-Mode": "cors"}, bbHintAJAX, bbNoCookies, true, false},
		{"no cookies, AJAX (Sec-Fetch-Mode same-origin)", map[string]string{"Sec-Fetch-Mode": "same-origin"}, bbHintAJAX, bbNoCookies, true, false},
		{"cookies without the CSRF cookie", map[string]string{"Cookie": "theme=dark"}, bbHintServer, bbNoCSRF, true, false},
		{"another browser's CSRF cookie", map[string]string{"Cookie": bbCSRFCookie + "=" + otherCookie}, bbHintNotSent, "", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(e.api(), http.MethodGet, "/self-service/login/flows?id="+f.ID, nil, tt.header)
			errObj := bbEnvelope(t, r, http.StatusForbidden, "security_csrf_violation")
			assert.Equal(t, bbCSRFReason, errObj["reason"])
			assert.Equal(t, bbCSRFMessage, errObj["message"])
			details, ok := errObj["details"].(map[string]any)
			require.True(t, ok, "details: %s", r.body)
			assert.Equal(t, bbCSRFDocs, details["docs"])
			assert.Equal(t, tt.wantHint, details["hint"])
			if tt.wantReason == "" {
				assert.NotContains(t, details, "reject_reason")
			} else {
				assert.Equal(t, tt.wantReason, details["reject_reason"])
			}
			if tt.wantNewCSRF {
				bbCSRFCookieOf(t, r) // §2.4: a fresh CSRF cookie even on the 403
			}
			if tt.wantNoCookie {
				bbNoSetCookie(t, r)
			}
		})
	}

	// The flow is untouched: its owner still fetches it.
	bbBody(t, e.do(owner, http.MethodGet, "/self-service/login/flows?id="+f.ID, nil, nil), http.StatusOK)
}

func TestFetchCSRFViolationIsJSONEvenForNavigations(t *testing.T) {
	e := newEnv(t)
	f := e.browserFlow(e.browser(), "")
	r := e.do(e.api(), http.MethodGet, "/self-service/login/flows?id="+f.ID, nil, map[string]string{"Accept": "text/html"})
	bbEnvelope(t, r, http.StatusForbidden, "security_csrf_violation")
}

func TestFetchUnknownFlow(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name, query string
	}{
		{"unknown well-formed id", "?id=" + uuid.New()},
		{"malformed id", "?id=not-a-uuid"},
		{"empty id", "?id="},
		{"missing id", ""},
		{"the nil UUID", "?id=00000000-0000-0000-0000-000000000000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, c := range []*http.Client{e.api(), e.browser()} {
				r := e.do(c, http.MethodGet, "/self-service/login/flows"+tt.query, nil, bbAcceptJSON)
				bbEnvelope(t, r, http.StatusNotFound, "")
				assert.JSONEq(t, fetchNotFound, string(r.body))
				bbCSRFCookieOf(t, r) // not exempt from CSRF: a cookie-less caller gets one (§2.4, §6.1)
			}
		})
	}
}

func TestFetchForwardedErrorUnknown(t *testing.T) {
	e := newEnv(t)
	for _, q := range []string{"?id=" + uuid.New(), "?id=nope", ""} {
		r := e.do(e.api(), http.MethodGet, "/self-service/errors"+q, nil, nil)
		bbEnvelope(t, r, http.StatusNotFound, "")
		assert.JSONEq(t, fetchNotFound, string(r.body))
	}
}

func TestFetchExpiredBrowserFlow(t *testing.T) {
	tests := []struct {
		name         string
		query        string
		wantRedirect string // relative to the public URL
		wantReturnTo string
	}{
		{"without return_to", "", "/self-service/login/browser", ""},
		{"with return_to", "?return_to=" + url.QueryEscape("https://app.example.com/after"),
			"/self-service/login/browser?return_to=https%3A%2F%2Fapp.example.com%2Fafter", "https://app.example.com/after"},
		{"with a relative return_to", "?return_to=%2Fdash", "/self-service/login/browser?return_to=%2Fdash", "/dash"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			c := e.browser()
			f := e.browserFlow(c, tt.query)
			e.clock.Advance(time.Hour + time.Second)

			r := e.do(c, http.MethodGet, "/self-service/login/flows?id="+f.ID, nil, nil)
			errObj := bbEnvelope(t, r, http.StatusGone, "self_service_flow_expired")
			assert.Equal(t, fetchExpiredBrowserReason, errObj["reason"])
			assert.Equal(t, fetchExpiredMessage, errObj["message"])
			details, ok := errObj["details"].(map[string]any)
			require.True(t, ok, "details: %s", r.body)
			assert.Equal(t, e.srv.URL+tt.wantRedirect, details["redirect_to"])
			if assert.Contains(t, details, "return_to") {
				assert.Equal(t, tt.wantReturnTo, details["return_to"])
			}
			assert.Len(t, details, 2, "details are {redirect_to, return_to}")
			body := r.json(t)
			assert.NotContains(t, body, "use_flow_id", "fetch makes no replacement")
			assert.NotContains(t, body, "expired_at")
			assert.NotContains(t, body, "since")
		})
	}
}

func TestFetchExpiredAPIFlow(t *testing.T) {
	e := newEnv(t)
	f := e.apiFlow("")
	e.clock.Advance(time.Hour + time.Second)

	r := e.do(e.api(), http.MethodGet, "/self-service/login/flows?id="+f.ID, nil, nil)
	bbEnvelope(t, r, http.StatusGone, "self_service_flow_expired")
	assert.JSONEq(t, `{"error":{"id":"self_service_flow_expired","code":410,"status":"Gone",
		"reason":"`+fetchExpiredAPIReason+`",
		"details":{"api":"`+e.srv.URL+`/self-service/login/api"},
		"message":"`+fetchExpiredMessage+`"}}`, string(r.body))
}

func TestFetchExpiryBoundary(t *testing.T) {
	e := newEnv(t)
	f := e.apiFlow("")
	e.clock.Advance(time.Hour)
	bbBody(t, e.do(e.api(), http.MethodGet, "/self-service/login/flows?id="+f.ID, nil, nil), http.StatusOK)
	e.clock.Advance(time.Nanosecond)
	bbEnvelope(t, e.do(e.api(), http.MethodGet, "/self-service/login/flows?id="+f.ID, nil, nil), http.StatusGone, "self_service_flow_expired")
}

// TestFetchExpiredFlowStillAnsweredForADay: Part 1 rule 19.
func TestFetchExpiredFlowStillAnsweredForADay(t *testing.T) {
	e := newEnv(t)
	api := e.apiFlow("")
	c := e.browser()
	browser := e.browserFlow(c, "")
	e.clock.Advance(time.Hour + 24*time.Hour)
	bbEnvelope(t, e.do(e.api(), http.MethodGet, "/self-service/login/flows?id="+api.ID, nil, nil), http.StatusGone, "self_service_flow_expired")
	bbEnvelope(t, e.do(c, http.MethodGet, "/self-service/login/flows?id="+browser.ID, nil, nil), http.StatusGone, "self_service_flow_expired")
}

func TestFetchExpiredBrowserFlowChecksCSRFFirst(t *testing.T) {
	e := newEnv(t)
	f := e.browserFlow(e.browser(), "")
	e.clock.Advance(2 * time.Hour)
	r := e.do(e.api(), http.MethodGet, "/self-service/login/flows?id="+f.ID, nil, nil)
	bbEnvelope(t, r, http.StatusForbidden, "security_csrf_violation")
}

func TestFetchAfterLoginRotatedCSRFCookie(t *testing.T) {
	e := newEnv(t)
	c := e.browser()
	old := e.browserFlow(c, "")
	before := e.bbJarCookie(c, bbCSRFCookie)
	r := e.submitJSON(c, old.ID, credentials(testIdentifier, testPassword, csrfToken(old)), nil)
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	require.NotEqual(t, before, e.bbJarCookie(c, bbCSRFCookie), "login rotates the CSRF cookie (§6.5)")

	other := e.browserFlow(e.browser(), "") // a flow of another browser
	for _, id := range []string{old.ID, other.ID} {
		got := e.do(c, http.MethodGet, "/self-service/login/flows?id="+id, nil, nil)
		errObj := bbEnvelope(t, got, http.StatusForbidden, "security_csrf_violation")
		details, ok := errObj["details"].(map[string]any)
		require.True(t, ok)
		assert.Equal(t, bbHintNotSent, details["hint"])
		assert.NotContains(t, details, "reject_reason")
		bbNoSetCookie(t, got)
	}
}
