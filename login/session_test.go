package login_test

// whoami, the session middleware and the session wire format (CONTRACT
// Part 2 §1.5, §2.6, §4.6, §4.8, §12 69–71; Part 1 rules 12, 13, 14, 18).

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/internal/uuid"
	"github.com/authflow/authflow/session"
)

// sessionWhoamiUnauthorized is whoami's 401 (Part 1 rule 12).
const sessionWhoamiUnauthorized = `{"error":{"id":"session_inactive","code":401,"status":"Unauthorized",
	"reason":"No valid session credentials found in the request.",
	"message":"request does not have a valid authentication session"}}`

var sessionTokenPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{43,}$`)

// sessionWhoami calls whoami with header and returns the result.
func (e *env) sessionWhoami(method string, header map[string]string) *result {
	e.t.Helper()
	return e.do(e.api(), method, "/sessions/whoami", nil, header)
}

// sessionCheckUnauthorized checks whoami's 401 apart from its message.
func sessionCheckUnauthorized(t testing.TB, r *result) {
	t.Helper()
	errObj := bbEnvelope(t, r, http.StatusUnauthorized, "session_inactive")
	assert.Equal(t, "No valid session credentials found in the request.", errObj["reason"])
	bbNoSetCookie(t, r)
}

// sessionAssertNoKey fails when key occurs at any depth of v.
func sessionAssertNoKey(t testing.TB, v any, key, path string) {
	t.Helper()
	switch x := v.(type) {
	case map[string]any:
		for k, c := range x {
			assert.NotEqual(t, key, k, "key %q at %s", key, path)
			sessionAssertNoKey(t, c, key, path+"."+k)
		}
	case []any:
		for _, c := range x {
			sessionAssertNoKey(t, c, key, path+"[]")
		}
	}
}

func TestWhoamiCredentialSources(t *testing.T) {
	e := newEnv(t)
	token, _ := e.bbLoginAPI(nil)
	want := e.sessionWhoami(http.MethodGet, map[string]string{"X-Session-Token": token})
	require.Equal(t, http.StatusOK, want.status)
	wantID := want.json(t)["id"]

	tests := []struct {
		name   string
		header map[string]string
	}{
		{"X-Session-Token", map[string]string{"X-Session-Token": token}},
		{"Authorization Bearer", map[string]string{"Authorization": "Bearer " + token}},
		{"Authorization bearer (lower case)", map[string]string{"Authorization": "bearer " + token}},
		{"Authorization BEARER (upper case)", map[string]string{"Authorization": "BEARER " + token}},
		{"session cookie", bbSessionCookieHeader(token)},
		{"session cookie among others", map[string]string{"Cookie": "theme=dark; " + bbSessCookie + "=" + token + "; x=y"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.sessionWhoami(http.MethodGet, tt.header)
			s := bbBody(t, r, http.StatusOK)
			assert.Equal(t, wantID, s["id"])
			assert.Equal(t, e.identity.ID, r.header.Get("X-Kratos-Authenticated-Identity-Id"))
			bbNoSetCookie(t, r)
		})
	}
}

func TestWhoamiBrowserCookie(t *testing.T) {
	e := newEnv(t)
	c := e.browser()
	e.loginBrowser(c)
	r := e.do(c, http.MethodGet, "/sessions/whoami", nil, nil)
	s := bbBody(t, r, http.StatusOK)
	assert.Equal(t, e.identity.ID, r.header.Get("X-Kratos-Authenticated-Identity-Id"))
	bbNoSetCookie(t, r)

	// The cookie's value is the session token itself (Part 1 rule 13).
	token := e.bbJarCookie(c, bbSessCookie)
	require.NotEmpty(t, token)
	assert.Regexp(t, sessionTokenPattern, token)
	byToken := bbBody(t, e.sessionWhoami(http.MethodGet, map[string]string{"X-Session-Token": token}), http.StatusOK)
	assert.Equal(t, s["id"], byToken["id"])
}

func TestWhoamiTokenPrecedence(t *testing.T) {
	e := newEnv(t)
	bob := e.addIdentity("bob@example.com", "another secret passphrase")
	alice, _ := e.bbLoginAPI(nil)
	f := e.apiFlow("")
	r := e.submitJSON(e.api(), f.ID, credentials("bob@example.com", "another secret passphrase", ""), nil)
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	bobToken := r.json(t)["session_token"].(string)

	tests := []struct {
		name     string
		header   map[string]string
		wantUser string // identity id, "" for 401
	}{
		{"X-Session-Token wins over Bearer", map[string]string{"X-Session-Token": alice, "Authorization": "Bearer " + bobToken}, e.identity.ID},
		{"X-Session-Token wins over the cookie", map[string]string{"X-Session-Token": bobToken, "Cookie": bbSessCookie + "=" + alice}, bob.ID},
		{"the cookie wins over Bearer", map[string]string{"Cookie": bbSessCookie + "=" + bobToken, "Authorization": "Bearer " + alice}, bob.ID},
		{"an invalid X-Session-Token is not rescued by Bearer", map[string]string{"X-Session-Token": "bogus", "Authorization": "Bearer " + alice}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.sessionWhoami(http.MethodGet, tt.header)
			if tt.wantUser == "" {
				sessionCheckUnauthorized(t, r)
				return
			}
			bbBody(t, r, http.StatusOK)
			assert.Equal(t, tt.wantUser, r.header.Get("X-Kratos-Authenticated-Identity-Id"))
		})
	}
}

func TestWhoamiUnauthorized(t *testing.T) {
	e := newEnv(t)
	token, _ := e.bbLoginAPI(nil)
	tests := []struct {
		name   string
		header map[string]string
	}{
		{"no credentials", nil},
		{"bogus X-Session-Token", map[string]string{"X-Session-Token": "ory_st_bogus"}},
		{"bogus Bearer", map[string]string{"Authorization": "Bearer bogus"}},
		{"Bearer with three parts", map[string]string{"Authorization": "Bearer " + token + " extra"}},
		{"Basic scheme", map[string]string{"Authorization": "Basic " + token}},
		{"Bearer without token", map[string]string{"Authorization": "Bearer"}},
		{"empty session cookie", map[string]string{"Cookie": bbSessCookie + "="}},
		{"the token hash is not a token", map[string]string{"X-Session-Token": bbHashToken(token)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sessionCheckUnauthorized(t, e.sessionWhoami(http.MethodGet, tt.header))
		})
	}
}

// TestWhoamiUnauthorizedBody pins the whole 401 body of Part 1 rule 12.
func TestWhoamiUnauthorizedBody(t *testing.T) {
	e := newEnv(t)
	r := e.sessionWhoami(http.MethodGet, nil)
	sessionCheckUnauthorized(t, r)
	assert.JSONEq(t, sessionWhoamiUnauthorized, string(r.body))
}

func TestWhoamiHTTPMethods(t *testing.T) {
	e := newEnv(t)
	token, _ := e.bbLoginAPI(nil)
	header := map[string]string{"X-Session-Token": token}
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodOptions} {
		t.Run(m, func(t *testing.T) {
			r := e.sessionWhoami(m, header)
			s := bbBody(t, r, http.StatusOK)
			assert.Equal(t, true, s["active"])
			assert.Equal(t, e.identity.ID, r.header.Get("X-Kratos-Authenticated-Identity-Id"))
			bbNoSetCookie(t, r)
		})
	}
	t.Run(http.MethodHead, func(t *testing.T) {
		r := e.sessionWhoami(http.MethodHead, header)
		assert.Equal(t, http.StatusOK, r.status)
		assert.Empty(t, r.body, "HEAD has no body")
		bbNoStore(t, r)
		assert.Equal(t, e.identity.ID, r.header.Get("X-Kratos-Authenticated-Identity-Id"))
		assert.Equal(t, http.StatusUnauthorized, e.sessionWhoami(http.MethodHead, nil).status)
	})
	t.Run("POST without credentials", func(t *testing.T) {
		sessionCheckUnauthorized(t, e.sessionWhoami(http.MethodPost, nil))
	})
}

func TestWhoamiSessionLifetime(t *testing.T) {
	e := newEnv(t)
	token, _ := e.bbLoginAPI(nil)
	header := map[string]string{"X-Session-Token": token}
	e.clock.Advance(24*time.Hour - time.Second)
	bbBody(t, e.sessionWhoami(http.MethodGet, header), http.StatusOK)
	e.clock.Advance(2 * time.Second)
	sessionCheckUnauthorized(t, e.sessionWhoami(http.MethodGet, header))
}

func TestWhoamiRevokedSession(t *testing.T) {
	t.Run("revoked in the store", func(t *testing.T) {
		e := newEnv(t)
		token, _ := e.bbLoginAPI(nil)
		rec, err := e.sessions.SessionByToken(context.Background(), bbHashToken(token))
		require.NoError(t, err)
		require.NoError(t, e.sessions.RevokeSession(context.Background(), rec.Session.ID))
		sessionCheckUnauthorized(t, e.sessionWhoami(http.MethodGet, map[string]string{"X-Session-Token": token}))
	})
	t.Run("revoked through the logout API", func(t *testing.T) {
		e := newEnv(t)
		token, _ := e.bbLoginAPI(nil)
		r := e.do(e.api(), http.MethodDelete, "/self-service/logout/api", strings.NewReader(`{"session_token":"`+token+`"}`),
			map[string]string{"Content-Type": "application/json"})
		require.Equal(t, http.StatusNoContent, r.status, "body: %s", r.body)
		sessionCheckUnauthorized(t, e.sessionWhoami(http.MethodGet, map[string]string{"X-Session-Token": token}))
	})
}

func TestWhoamiDisabledIdentity(t *testing.T) {
	e := newEnv(t)
	token, _ := e.bbLoginAPI(nil)
	id, err := e.identities.Identity(context.Background(), e.identity.ID)
	require.NoError(t, err)
	id.State = session.StateInactive
	require.NoError(t, e.identities.UpdateIdentity(context.Background(), id))
	sessionCheckUnauthorized(t, e.sessionWhoami(http.MethodGet, map[string]string{"X-Session-Token": token}))
}

func TestWhoamiSessionShape(t *testing.T) {
	e := newEnv(t)
	loginAt := e.clock.Now()
	token, _ := e.bbLoginAPI(map[string]string{"User-Agent": "authflow-test/1.0"})
	e.clock.Advance(time.Minute)
	r := e.sessionWhoami(http.MethodGet, map[string]string{"X-Session-Token": token})
	s := bbBody(t, r, http.StatusOK)

	_, ok := uuid.Parse(s["id"].(string))
	assert.True(t, ok, "session id is a UUID")
	assert.Equal(t, true, s["active"])
	assert.Equal(t, "aal1", s["authenticator_assurance_level"])
	assert.True(t, bbTime(t, s["authenticated_at"]).Equal(loginAt))
	assert.True(t, bbTime(t, s["issued_at"]).Equal(loginAt))
	assert.Equal(t, 24*time.Hour, bbTime(t, s["expires_at"]).Sub(bbTime(t, s["authenticated_at"])))

	methods, _ := s["authentication_methods"].([]any)
	require.Len(t, methods, 1)
	m := methods[0].(map[string]any)
	assert.Equal(t, "password", m["method"])
	assert.Equal(t, "aal1", m["aal"])
	assert.True(t, bbTime(t, m["completed_at"]).Equal(loginAt))

	devices, _ := s["devices"].([]any)
	require.Len(t, devices, 1)
	d := devices[0].(map[string]any)
	_, ok = uuid.Parse(d["id"].(string))
	assert.True(t, ok, "device id is a UUID")
	assert.Equal(t, "127.0.0.1", d["ip_address"], "host part only (Part 1 rule 18)")
	assert.Equal(t, "authflow-test/1.0", d["user_agent"])
	assert.Equal(t, "", d["location"])

	id, ok := s["identity"].(map[string]any)
	require.True(t, ok, "identity object")
	assert.Equal(t, e.identity.ID, id["id"])
	assert.Equal(t, "default", id["schema_id"])
	assert.Equal(t, e.srv.URL+"/schemas/ZGVmYXVsdA", id["schema_url"])
	assert.Equal(t, "active", id["state"])
	assert.Equal(t, map[string]any{"email": testIdentifier}, id["traits"])
	for _, k := range []string{"metadata_public", "organization_id"} {
		if assert.Contains(t, id, k, "%s is always present", k) {
			assert.Nil(t, id[k])
		}
	}
	assert.NotContains(t, id, "metadata_admin")

	// Nothing secret is served (§4.6, §4.8, Part 1 rule 14).
	sessionAssertNoKey(t, s, "credentials", "$")
	for _, secret := range []string{token, bbHashToken(token), bbLogoutToken(token), "hashed_password", "$fast$"} {
		assert.False(t, bytes.Contains(r.body, []byte(secret)), "body contains %q", secret)
	}
	for _, k := range []string{"token", "session_token", "logout_token", "token_hash"} {
		sessionAssertNoKey(t, s, k, "$")
	}
}

func TestSessionTokensAreRandomAndStoredHashed(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	first, _ := e.bbLoginAPI(nil)
	second, _ := e.bbLoginAPI(nil)
	c := e.browser()
	e.loginBrowser(c)
	cookie := e.bbJarCookie(c, bbSessCookie)

	assert.NotEqual(t, first, second)
	for _, tok := range []string{first, second, cookie} {
		assert.Regexp(t, sessionTokenPattern, tok, "≥ 256 bits, URL-safe base64 (Part 1 rule 14)")
		rec, err := e.sessions.SessionByToken(ctx, bbHashToken(tok))
		if assert.NoError(t, err, "the store finds the session by the token's SHA-256") {
			assert.Equal(t, bbHashToken(tok), rec.TokenHash)
			assert.NotContains(t, rec.TokenHash, tok)
		}
		_, err = e.sessions.SessionByToken(ctx, tok)
		assert.ErrorIs(t, err, session.ErrNotFound, "the token itself is no key")
		list, err := e.sessions.ListSessions(ctx, e.identity.ID)
		require.NoError(t, err)
		for _, s := range list {
			assert.NotEqual(t, tok, s.TokenHash)
			b, _ := json.Marshal(s)
			assert.NotContains(t, string(b), tok, "no stored record holds the token")
		}
	}
}

// TestSessionCookieHTTPS logs in through an https deployment in process
// (Part 1 rule 13: __Host- prefix, Secure).
func TestSessionCookieHTTPS(t *testing.T) {
	const public = "https://auth.example.com"
	d := bbNewDirect(t, public)
	created := d.serve(t, http.MethodGet, public+"/self-service/login/browser", nil, bbAcceptJSON)
	require.Equal(t, http.StatusOK, created.status, "body: %s", created.body)
	csrf := created.cookie("__Host-authflow_csrf")
	require.NotNil(t, csrf, "Set-Cookie: %q", created.header.Values("Set-Cookie"))
	f := created.flow(t)

	body, _ := json.Marshal(credentials(testIdentifier, testPassword, csrfToken(f)))
	r := d.serve(t, http.MethodPost, public+"/self-service/login?flow="+f.ID, bytes.NewReader(body), map[string]string{
		"Content-Type": "application/json", "Accept": "application/json", "Cookie": csrf.Name + "=" + csrf.Value,
	})
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	sc := r.cookie("__Host-authflow_session")
	require.NotNil(t, sc, "Set-Cookie: %q", r.header.Values("Set-Cookie"))
	bbCookieAttrs(t, sc, true)
	assert.InDelta(t, 24*60*60, sc.MaxAge, 2, "Max-Age until the session expires")
	assert.False(t, sc.Expires.IsZero(), "Expires is set")
	assert.Regexp(t, sessionTokenPattern, sc.Value)
	assert.Nil(t, r.cookie(bbSessCookie), "no unprefixed cookie on https")

	who := d.serve(t, http.MethodGet, public+"/sessions/whoami", nil, map[string]string{"Cookie": sc.Name + "=" + sc.Value})
	s := bbBody(t, who, http.StatusOK)
	assert.Equal(t, public+"/schemas/ZGVmYXVsdA", s["identity"].(map[string]any)["schema_url"])
	// The unprefixed name is not read on https.
	who = d.serve(t, http.MethodGet, public+"/sessions/whoami", nil, map[string]string{"Cookie": bbSessCookie + "=" + sc.Value})
	assert.Equal(t, http.StatusUnauthorized, who.status)
}

// --- Middleware and RequireSession ---

// sessionHost is a host route that records the session it was served with.
type sessionHost struct {
	served  bool
	session *session.Session
}

func (h *sessionHost) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.served = true
	h.session, _ = session.FromContext(r.Context())
	w.WriteHeader(http.StatusTeapot)
}

// sessionServe runs handler for a host request with header.
func sessionServe(t testing.TB, e *env, handler http.Handler, header map[string]string) *result {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, e.srv.URL+"/dashboard", nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, req)
	resp := rec.Result()
	return &result{status: resp.StatusCode, header: resp.Header, body: rec.Body.Bytes(), resp: resp}
}

func TestMiddlewarePutsSessionInContext(t *testing.T) {
	e := newEnv(t)
	token, _ := e.bbLoginAPI(nil)
	rec, err := e.sessions.SessionByToken(context.Background(), bbHashToken(token))
	require.NoError(t, err)
	tests := []struct {
		name        string
		header      map[string]string
		wantSession bool
	}{
		{"X-Session-Token", map[string]string{"X-Session-Token": token}, true},
		{"Bearer", map[string]string{"Authorization": "Bearer " + token}, true},
		{"session cookie", bbSessionCookieHeader(token), true},
		{"no credentials", nil, false},
		{"bogus token", map[string]string{"X-Session-Token": "bogus"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			host := &sessionHost{}
			r := sessionServe(t, e, e.h.Middleware(host), tt.header)
			assert.Equal(t, http.StatusTeapot, r.status)
			require.True(t, host.served, "the host route is always served")
			if !tt.wantSession {
				assert.Nil(t, host.session)
				return
			}
			require.NotNil(t, host.session)
			assert.Equal(t, rec.Session.ID, host.session.ID)
			assert.True(t, host.session.Active)
			require.NotNil(t, host.session.Identity)
			assert.Equal(t, e.identity.ID, host.session.Identity.ID)
		})
	}
	t.Run("expired session", func(t *testing.T) {
		e.clock.Advance(25 * time.Hour)
		host := &sessionHost{}
		sessionServe(t, e, e.h.Middleware(host), map[string]string{"X-Session-Token": token})
		assert.True(t, host.served)
		assert.Nil(t, host.session)
	})
}

func TestRequireSession(t *testing.T) {
	e := newEnv(t)
	token, _ := e.bbLoginAPI(nil)
	tests := []struct {
		name       string
		header     map[string]string
		wantServed bool
		wantStatus int // when not served: 401 envelope or 303
	}{
		{"with a session token", map[string]string{"X-Session-Token": token}, true, 0},
		{"with the session cookie", bbSessionCookieHeader(token), true, 0},
		{"JSON request by Accept", map[string]string{"Accept": "application/json"}, false, http.StatusUnauthorized},
		{"JSON request by Content-Type", map[string]string{"Content-Type": "application/json; charset=utf-8"}, false, http.StatusUnauthorized},
		{"JSON request with a bogus token", map[string]string{"Accept": "application/json", "X-Session-Token": "bogus"}, false, http.StatusUnauthorized},
		{"browser navigation", map[string]string{"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}, false, http.StatusSeeOther},
		{"no Accept", nil, false, http.StatusSeeOther},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			host := &sessionHost{}
			r := sessionServe(t, e, e.h.RequireSession(host), tt.header)
			assert.Equal(t, tt.wantServed, host.served)
			if tt.wantServed {
				assert.Equal(t, http.StatusTeapot, r.status)
				require.NotNil(t, host.session)
				assert.Equal(t, e.identity.ID, host.session.Identity.ID)
				return
			}
			switch tt.wantStatus {
			case http.StatusUnauthorized:
				errObj := bbEnvelope(t, r, http.StatusUnauthorized, "session_inactive")
				assert.NotEmpty(t, errObj["reason"])
			case http.StatusSeeOther:
				assert.Equal(t, e.srv.URL+"/self-service/login/browser", bbRedirect(t, r))
			}
		})
	}
}
