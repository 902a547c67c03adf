package login_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/login"
)

// Secret hygiene (issue point 7): a varied session of requests runs
// through one deployment whose log (JSON, down to Debug) and every response
// are captured. No password, session token, cookie value, CSRF secret or
// logout token may appear in any log line; no password in any response;
// tokens and cookie values only where they are meant to be (the API login's
// session_token field, Set-Cookie); password nodes never carry a value; the
// CSRF value in flows is always masked.

// leakExchange is one captured response.
type leakExchange struct {
	method, url string
	status      int
	header      http.Header
	body        []byte
}

// leakRecorder is a RoundTripper that keeps every response it carries.
type leakRecorder struct {
	base http.RoundTripper
	mu   sync.Mutex
	seen []leakExchange
}

func (r *leakRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	r.mu.Lock()
	r.seen = append(r.seen, leakExchange{method: req.Method, url: req.URL.String(), status: resp.StatusCode, header: resp.Header.Clone(), body: b})
	r.mu.Unlock()
	return resp, nil
}

func (r *leakRecorder) exchanges() []leakExchange {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]leakExchange(nil), r.seen...)
}

// leakEnv is the deployment of the leak test: faulty stores (faultEnv), a
// panicking hook on demand, the events, and recording clients.
type leakEnv struct {
	*faultEnv
	rec    *leakRecorder
	panics atomic.Bool // BeforeAttempt panics
	mu     sync.Mutex
	events []login.Event
}

func (l *leakEnv) browser(t testing.TB) *http.Client {
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return &http.Client{Jar: jar, CheckRedirect: noRedirects, Transport: l.rec}
}

func (l *leakEnv) api() *http.Client {
	return &http.Client{CheckRedirect: noRedirects, Transport: l.rec}
}

// Distinctive secrets: no one is a part of another.
const (
	leakIdentifier = "leaker@example.com"
	leakPassword   = "Leak-Right-Pass-7fQz9vX"
)

var leakWrong = []string{
	"Leak-Wrong-Pass-Alpha-3kd", "Leak-Wrong-Pass-Bravo-8sw", "Leak-Wrong-Pass-Charlie-0pq",
	"Leak-Wrong-Pass-Delta-5ty", "Leak-Wrong-Pass-Echo-2mn", "Leak-Wrong-Pass-Foxtrot-9zx",
}

// TestLeakNoSecretsInLogsOrResponses runs the session and checks it.
func TestLeakNoSecretsInLogsOrResponses(t *testing.T) {
	l := &leakEnv{rec: &leakRecorder{base: http.DefaultTransport}}
	l.faultEnv = faultNewEnv(t, false, func(c *login.Config) {
		c.BeforeAttempt = func(context.Context, *login.Attempt) error {
			if l.panics.Load() {
				panic("leak test: a hook panics")
			}
			return nil
		}
		c.OnEvent = func(_ context.Context, e login.Event) {
			l.mu.Lock()
			l.events = append(l.events, e)
			l.mu.Unlock()
		}
	})
	e := l.env
	e.addIdentity(leakIdentifier, leakPassword)
	passwords := append([]string{leakPassword}, leakWrong...)
	ok := func(r *result, status int) {
		t.Helper()
		require.Equal(t, status, r.status, "Location %q, body: %s", r.header.Get("Location"), r.body)
	}
	jsonH := map[string]string{"Accept": "application/json"}
	right := func(csrf string) map[string]any { return credentials(leakIdentifier, leakPassword, csrf) }
	form := func(identifier, secret, csrf string) url.Values {
		v := url.Values{"method": {"password"}, "csrf_token": {csrf}}
		if identifier != "" {
			v.Set("identifier", identifier)
		}
		if secret != "" {
			v.Set("password", secret)
		}
		return v
	}
	token := func(r *result) string {
		t.Helper()
		tok, _ := r.json(t)["session_token"].(string)
		require.NotEmpty(t, tok, "body: %s", r.body)
		return tok
	}

	// 1. API flows: wrong password, missing fields, success, whoami,
	// refresh, expiry, logout.
	api := l.api()
	r := e.do(api, http.MethodGet, "/self-service/login/api", nil, nil)
	ok(r, http.StatusOK)
	f := r.flow(t)
	ok(e.submitJSON(api, f.ID, credentials(leakIdentifier, leakWrong[0], ""), nil), http.StatusBadRequest)
	ok(e.submitJSON(api, f.ID, map[string]any{"method": "password", "identifier": leakIdentifier}, nil), http.StatusBadRequest)
	ok(e.submitJSON(api, f.ID, map[string]any{"method": "password", "password": leakWrong[1]}, nil), http.StatusBadRequest)
	ok(e.submitJSON(api, f.ID, credentials("nobody-leak@example.com", leakWrong[1], ""), nil), http.StatusBadRequest)
	r = e.submitJSON(api, f.ID, right(""), nil)
	ok(r, http.StatusOK)
	tokA := token(r)
	ok(e.submitJSON(api, f.ID, right(""), nil), http.StatusBadRequest) // 4010007
	ok(e.do(api, http.MethodGet, "/sessions/whoami", nil, map[string]string{"X-Session-Token": tokA}), http.StatusOK)
	ok(e.do(api, http.MethodGet, "/sessions/whoami", nil, map[string]string{"Authorization": "Bearer " + tokA}), http.StatusOK)
	ok(e.do(api, http.MethodGet, "/self-service/login/api", nil, map[string]string{"X-Session-Token": tokA}), http.StatusBadRequest) // already signed in
	r = e.do(api, http.MethodGet, "/self-service/login/api?refresh=true", nil, map[string]string{"X-Session-Token": tokA})
	ok(r, http.StatusOK)
	f = r.flow(t)
	ok(e.submitJSON(api, f.ID, credentials(leakIdentifier, leakWrong[2], ""), map[string]string{"X-Session-Token": tokA}), http.StatusBadRequest)
	r = e.submitJSON(api, f.ID, right(""), map[string]string{"X-Session-Token": tokA})
	ok(r, http.StatusOK)
	tokA2 := token(r)
	ok(e.do(api, http.MethodGet, "/sessions/whoami", nil, map[string]string{"X-Session-Token": tokA}), http.StatusUnauthorized) // rotated
	r = e.do(api, http.MethodGet, "/self-service/login/api", nil, nil)
	ok(r, http.StatusOK)
	f = r.flow(t)
	e.clock.Advance(2 * time.Hour)
	r = e.submitJSON(api, f.ID, right(""), nil)
	ok(r, http.StatusGone)
	next, _ := r.json(t)["use_flow_id"].(string)
	require.NotEmpty(t, next)
	r = e.submitJSON(api, next, right(""), nil)
	ok(r, http.StatusOK)
	tokA3 := token(r)
	ok(e.do(api, http.MethodGet, "/self-service/login/flows?id="+f.ID, nil, nil), http.StatusGone)
	ok(e.do(api, http.MethodDelete, "/self-service/logout/api", strings.NewReader(`{"session_token":"`+tokA3+`"}`), map[string]string{"Content-Type": "application/json"}), http.StatusNoContent)
	ok(e.do(api, http.MethodGet, "/sessions/whoami", nil, map[string]string{"X-Session-Token": tokA3}), http.StatusUnauthorized)
	ok(e.do(api, http.MethodDelete, "/self-service/logout/api", strings.NewReader(`{"session_token":"`+leakWrong[3]+`"}`), map[string]string{"Content-Type": "application/json"}), http.StatusForbidden)

	// 2. A browser without JavaScript: forms, CSRF failures forwarded to
	// the error UI, success, refresh, logout.
	b1 := l.browser(t)
	fetch := func(c *http.Client, location string) leakFlow {
		t.Helper()
		id := subQueryParam(t, location, loginUI, "flow")
		r := subFetchFlow(t, e, c, id)
		ok(r, http.StatusOK)
		return leakFlow{id: id, csrf: csrfToken(r.flow(t))}
	}
	r = e.do(b1, http.MethodGet, "/self-service/login/browser", nil, nil)
	ok(r, http.StatusSeeOther)
	fv := fetch(b1, r.header.Get("Location"))
	r = e.submitForm(b1, fv.id, form(leakIdentifier, leakWrong[3], fv.csrf), nil)
	ok(r, http.StatusSeeOther)
	fv = fetch(b1, r.header.Get("Location"))
	r = e.submitForm(b1, fv.id, form("", leakWrong[4], fv.csrf), nil)
	ok(r, http.StatusSeeOther)
	fv = fetch(b1, r.header.Get("Location"))
	for _, bad := range []string{"not-a-csrf-token", ""} { // CSRF failures with the right password
		r = e.submitForm(b1, fv.id, form(leakIdentifier, leakPassword, bad), nil)
		ok(r, http.StatusSeeOther)
		errID := subQueryParam(t, r.header.Get("Location"), errorUI, "id")
		ok(e.do(b1, http.MethodGet, "/self-service/errors?id="+errID, nil, nil), http.StatusOK)
	}
	ok(e.do(b1, http.MethodGet, "/self-service/errors?id=00000000-0000-4000-8000-000000000000", nil, nil), http.StatusNotFound)
	r = e.submitForm(b1, fv.id, form(leakIdentifier, leakPassword, fv.csrf), nil)
	ok(r, http.StatusSeeOther)
	assert.Equal(t, defaultReturn, r.header.Get("Location"))
	ok(e.do(b1, http.MethodGet, "/sessions/whoami", nil, nil), http.StatusOK)
	ok(e.do(b1, http.MethodGet, "/self-service/login/browser", nil, nil), http.StatusSeeOther) // already signed in
	r = e.do(b1, http.MethodGet, "/self-service/login/browser?refresh=true", nil, nil)
	ok(r, http.StatusSeeOther)
	fv = fetch(b1, r.header.Get("Location"))
	ok(e.submitForm(b1, fv.id, form(leakIdentifier, leakWrong[5], fv.csrf), nil), http.StatusSeeOther)
	ok(e.submitForm(b1, fv.id, form(leakIdentifier, leakPassword, fv.csrf), nil), http.StatusSeeOther)
	r = e.do(b1, http.MethodGet, "/self-service/logout/browser", nil, jsonH)
	ok(r, http.StatusOK)
	logoutURL, _ := r.json(t)["logout_url"].(string)
	require.NotEmpty(t, logoutURL)
	ok(e.do(b1, http.MethodGet, strings.TrimPrefix(logoutURL, e.srv.URL), nil, nil), http.StatusSeeOther)
	ok(e.do(b1, http.MethodGet, "/sessions/whoami", nil, nil), http.StatusUnauthorized)
	ok(e.do(b1, http.MethodGet, "/self-service/logout/browser", nil, jsonH), http.StatusUnauthorized)

	// 3. An SPA: JSON submissions, missing fields, CSRF failure, an
	// expired flow, success through the X-CSRF-Token header, logout.
	b2 := l.browser(t)
	f = e.browserFlow(b2, "")
	ok(e.submitJSON(b2, f.ID, map[string]any{"method": "password", "csrf_token": csrfToken(f)}, nil), http.StatusBadRequest)
	r = e.submitJSON(b2, f.ID, credentials(leakIdentifier, leakWrong[0], csrfToken(f)), nil)
	ok(r, http.StatusBadRequest)
	ok(e.submitJSON(b2, f.ID, right("bm90IGEgdG9rZW4="), nil), http.StatusForbidden)
	ok(e.submitJSON(l.api(), f.ID, right(csrfToken(f)), nil), http.StatusForbidden) // no cookies at all
	e.clock.Advance(2 * time.Hour)
	r = e.submitJSON(b2, f.ID, right(csrfToken(f)), nil)
	ok(r, http.StatusSeeOther)
	fv = fetch(b2, r.header.Get("Location"))
	body := right("")
	delete(body, "csrf_token")
	ok(e.submitJSON(b2, fv.id, body, map[string]string{"X-CSRF-Token": fv.csrf}), http.StatusOK)
	ok(e.do(b2, http.MethodGet, "/sessions/whoami", nil, nil), http.StatusOK)
	r = e.do(b2, http.MethodGet, "/self-service/logout/browser", nil, jsonH)
	ok(r, http.StatusOK)
	logoutURL, _ = r.json(t)["logout_url"].(string)
	ok(e.do(b2, http.MethodGet, strings.TrimPrefix(logoutURL, e.srv.URL), nil, jsonH), http.StatusNoContent)
	ok(e.do(b2, http.MethodGet, "/self-service/logout?token=wrong-logout-token", nil, jsonH), http.StatusUnauthorized)

	// 4. A failing store and panics: the generic 500.
	b3 := l.browser(t)
	f = e.browserFlow(b3, "")
	l.plan.arm(faultError, 3) // FlowStore.Flow, IdentityStore.FindIdentity, FlowStore.CompleteFlow
	faultWantInternal(t, e.submitForm(b3, f.ID, form(leakIdentifier, leakPassword, csrfToken(f)), nil))
	l.plan.arm(faultPanic, 4) // ... SessionStore.CreateSession
	faultWantInternal(t, e.submitJSON(b3, f.ID, right(csrfToken(f)), nil))
	l.plan.disarm()
	f = e.browserFlow(b3, "")
	r = e.submitJSON(b3, f.ID, right(csrfToken(f)), nil)
	ok(r, http.StatusOK)
	l.plan.arm(faultError, 1) // SessionStore.SessionByToken
	faultWantInternal(t, e.do(b3, http.MethodGet, "/sessions/whoami", nil, nil))
	l.plan.arm(faultPanic, 1)
	faultWantInternal(t, e.do(b3, http.MethodGet, "/self-service/logout/browser", nil, jsonH))
	l.plan.disarm()
	r = e.do(api, http.MethodGet, "/self-service/login/api", nil, nil)
	ok(r, http.StatusOK)
	f = r.flow(t)
	l.panics.Store(true)
	faultWantInternal(t, e.submitJSON(api, f.ID, right(""), nil))
	l.panics.Store(false)
	l.plan.arm(faultError, 2) // the session lookup of a DELETE logout
	faultWantInternal(t, e.do(api, http.MethodDelete, "/self-service/logout/api", strings.NewReader(`{"session_token":"`+tokA2+`"}`), nil))
	l.plan.disarm()
	r = e.submitJSON(api, f.ID, right(""), nil)
	ok(r, http.StatusOK)
	token(r)

	leakCheck(t, l, passwords)
}

// leakFlow is what the session needs of a fetched browser flow.
type leakFlow struct{ id, csrf string }

// leakCheck collects every secret the session used or issued and checks
// the log, the responses, the flows and the events.
func leakCheck(t *testing.T, l *leakEnv, passwords []string) {
	exchanges := l.rec.exchanges()
	require.Greater(t, len(exchanges), 60, "the session ran")

	// Collect: session tokens and cookie values, the CSRF secrets in all
	// their encodings, logout tokens.
	tokens := map[string]string{} // value -> what it is
	csrf := map[string]string{}   // encodings of raw CSRF secrets
	csrfCookies := map[string]bool{}
	logout := map[string]string{}
	for _, x := range exchanges {
		for _, c := range (&http.Response{Header: x.header}).Cookies() {
			if c.Value == "" {
				continue
			}
			tokens[c.Value] = "cookie " + c.Name
			if c.Name != subCSRFCookie {
				continue
			}
			csrfCookies[c.Value] = true
			raw, err := base64.StdEncoding.DecodeString(c.Value)
			require.NoError(t, err, "CSRF cookie %q", c.Value)
			require.Len(t, raw, 32)
			for _, enc := range []string{
				hex.EncodeToString(raw), base64.StdEncoding.EncodeToString(raw), base64.RawStdEncoding.EncodeToString(raw),
				base64.URLEncoding.EncodeToString(raw), base64.RawURLEncoding.EncodeToString(raw),
			} {
				csrf[enc] = "CSRF secret"
			}
		}
		var v map[string]any
		if json.Unmarshal(x.body, &v) == nil {
			if tok, ok := v["session_token"].(string); ok && tok != "" {
				tokens[tok] = "session token"
			}
			if lt, ok := v["logout_token"].(string); ok && lt != "" {
				logout[lt] = "logout token"
			}
		}
	}
	sessionTokens := 0
	for _, what := range tokens {
		if what == "session token" || what == "cookie "+subSessionCookie {
			sessionTokens++
		}
	}
	require.GreaterOrEqual(t, sessionTokens, 8, "session tokens seen")
	require.GreaterOrEqual(t, len(csrfCookies), 4, "CSRF cookies seen")
	require.Len(t, logout, 2, "logout tokens seen")

	everything := map[string]string{}
	for _, p := range passwords {
		everything[p] = "password"
	}
	for k, v := range tokens {
		everything[k] = v
	}
	for k, v := range csrf {
		everything[k] = v
	}
	for k := range logout {
		everything[k] = "logout token"
	}

	// The log: no secret in any line, raw or decoded.
	lines := faultRecords(t, l.logs)
	require.Greater(t, len(lines), 60, "the log has a line per request")
	for i, line := range strings.Split(l.logs.String(), "\n") {
		leakAssertAbsent(t, line, fmt.Sprintf("log line %d", i+1), everything)
	}
	for i, rec := range lines {
		leakWalkStrings(rec, func(s string) {
			leakAssertAbsent(t, s, fmt.Sprintf("a decoded string of log line %d", i+1), everything)
		})
	}
	logText := l.logs.String()
	assert.Contains(t, logText, "leak test: a hook panics", "the panic is logged")
	assert.Contains(t, logText, "fault-injected error in FlowStore.CompleteFlow", "the store failure is logged")

	// The events carry no secret either.
	l.mu.Lock()
	events, err := json.Marshal(l.events)
	l.mu.Unlock()
	require.NoError(t, err)
	leakAssertAbsent(t, string(events), "the events", everything)

	// The responses.
	onlyPasswords := map[string]string{}
	for _, p := range passwords {
		onlyPasswords[p] = "password"
	}
	flows := 0
	for _, x := range exchanges {
		where := x.method + " " + x.url
		// Passwords: nowhere, not even in Set-Cookie.
		leakAssertAbsent(t, string(x.body), "the body of "+where, onlyPasswords)
		for name, vs := range x.header {
			for _, v := range vs {
				leakAssertAbsent(t, v, "header "+name+" of "+where, onlyPasswords)
			}
		}
		// Tokens, cookie values and CSRF secrets: only in Set-Cookie and in
		// the session_token field of an API login's answer; logout tokens
		// only in the body of GET /self-service/logout/browser.
		body := x.body
		var v map[string]any
		isJSON := json.Unmarshal(x.body, &v) == nil
		if isJSON && x.method == http.MethodPost && strings.Contains(x.url, "/self-service/login?") && x.status == http.StatusOK {
			if _, ok := v["session_token"]; ok {
				delete(v, "session_token")
				body, err = json.Marshal(v)
				require.NoError(t, err)
			}
		}
		bodySecrets, headerSecrets := map[string]string{}, map[string]string{}
		for secret, what := range everything {
			if what == "password" {
				continue
			}
			if what != "logout token" || !strings.Contains(x.url, "/self-service/logout/browser") {
				bodySecrets[secret] = what
			}
			headerSecrets[secret] = what
		}
		leakAssertAbsent(t, string(body), "the body of "+where, bodySecrets)
		for name, vs := range x.header {
			for _, hv := range vs {
				if name == "Set-Cookie" {
					leakAssertAbsent(t, hv, "header "+name+" of "+where, logout)
					continue
				}
				leakAssertAbsent(t, hv, "header "+name+" of "+where, headerSecrets)
			}
		}
		// Flows: password nodes carry no value; the CSRF value is masked.
		if isJSON {
			leakWalkFlows(v, func(f map[string]any) {
				flows++
				leakCheckFlow(t, where, f, csrfCookies)
			})
		}
	}
	require.Greater(t, flows, 15, "flow bodies checked")
}

// leakAssertAbsent reports every secret (mapped to what it is) that
// haystack, found in where, contains.
func leakAssertAbsent[V any](t *testing.T, haystack, where string, secrets map[string]V) {
	t.Helper()
	for secret, what := range secrets {
		if strings.Contains(haystack, secret) {
			if len(haystack) > 400 {
				haystack = haystack[:400] + "..."
			}
			t.Errorf("%v %q is in %s: %s", what, secret, where, haystack)
		}
	}
}

// leakWalkStrings calls fn with every string in a decoded JSON value.
func leakWalkStrings(v any, fn func(string)) {
	switch v := v.(type) {
	case string:
		fn(v)
	case map[string]any:
		for k, x := range v {
			fn(k)
			leakWalkStrings(x, fn)
		}
	case []any:
		for _, x := range v {
			leakWalkStrings(x, fn)
		}
	}
}

// leakWalkFlows calls fn with every object in a decoded JSON value that is
// a flow (it has ui.nodes).
func leakWalkFlows(v any, fn func(map[string]any)) {
	switch v := v.(type) {
	case map[string]any:
		if ui, ok := v["ui"].(map[string]any); ok {
			if _, ok := ui["nodes"]; ok {
				fn(v)
			}
		}
		for _, x := range v {
			leakWalkFlows(x, fn)
		}
	case []any:
		for _, x := range v {
			leakWalkFlows(x, fn)
		}
	}
}

// leakCheckFlow checks the nodes of a flow: no password value; a browser
// flow's csrf_token masked (64 bytes in standard base64, never a cookie's
// value) and carrying one of the CSRF cookies' secrets.
func leakCheckFlow(t *testing.T, where string, f map[string]any, csrfCookies map[string]bool) {
	t.Helper()
	ui := f["ui"].(map[string]any)
	nodes, _ := ui["nodes"].([]any)
	require.NotEmpty(t, nodes, "flow in %s", where)
	for _, n := range nodes {
		node, _ := n.(map[string]any)
		attrs, _ := node["attributes"].(map[string]any)
		name, _ := attrs["name"].(string)
		typ, _ := attrs["type"].(string)
		if name == "password" || typ == "password" {
			assert.NotContains(t, attrs, "value", "password node of the flow in %s: %v", where, attrs)
		}
		if name != "csrf_token" {
			continue
		}
		value, _ := attrs["value"].(string)
		if f["type"] == "api" {
			assert.Empty(t, value, "API flows carry no CSRF token (%s)", where)
			continue
		}
		assert.False(t, csrfCookies[value], "the CSRF value in the flow in %s is the cookie's raw value", where)
		b, err := base64.StdEncoding.DecodeString(value)
		if assert.NoError(t, err, "csrf_token %q in %s", value, where) && assert.Len(t, b, 64, "a masked token in %s", where) {
			raw := make([]byte, 32)
			for i := range raw {
				raw[i] = b[i] ^ b[32+i]
			}
			assert.True(t, csrfCookies[base64.StdEncoding.EncodeToString(raw)], "the masked token in %s carries a CSRF cookie's secret", where)
		}
	}
}
