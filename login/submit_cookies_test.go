package login_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/login/logintest"
	"github.com/authflow/authflow/session"
)

// Cookies and client addresses of a successful login: CONTRACT Part 1
// rules 13 and 18.

// TestSubmitCookiesOnHTTPS: on an https public URL the default cookie
// names get the __Host- prefix and both cookies are Secure.
func TestSubmitCookiesOnHTTPS(t *testing.T) {
	mux := http.NewServeMux()
	srv := httptest.NewTLSServer(mux)
	t.Cleanup(srv.Close)
	now := time.Date(2026, 11, 27, 17, 4, 49, 0, time.UTC)
	clock := func() time.Time { return now }
	identities := session.NewMemoryIdentityStore()
	cred, err := login.NewPasswordCredential(context.Background(), logintest.FastHasher{}, testIdentifier, testPassword)
	require.NoError(t, err)
	require.NoError(t, identities.CreateIdentity(context.Background(), &session.Identity{
		ID: "8b59d370-e415-441a-9116-b8d780619e54", SchemaID: "default", State: session.StateActive,
		Traits: json.RawMessage(`{"email":"alice@example.com"}`), CreatedAt: now, UpdatedAt: now,
	}, cred))
	h, err := login.New(login.Config{
		PublicURL: srv.URL, LoginUIURL: loginUI, ErrorUIURL: errorUI, DefaultReturnURL: defaultReturn,
		FlowStore: flow.NewMemoryStore(clock), SessionStore: session.NewMemoryStore(clock), IdentityStore: identities,
		Hasher: logintest.FastHasher{}, Now: clock, Logger: discardLogger(),
	})
	require.NoError(t, err)
	mux.Handle("/", h)

	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	c := srv.Client()
	c.Jar = jar
	c.CheckRedirect = noRedirects

	r := subDo(t, c, http.MethodGet, srv.URL+"/self-service/login/browser", nil, map[string]string{"Accept": "application/json"})
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	f := r.flow(t)
	form := url.Values{"method": {"password"}, "identifier": {testIdentifier}, "password": {testPassword}, "csrf_token": {csrfToken(f)}}
	r = subDo(t, c, http.MethodPost, srv.URL+"/self-service/login?flow="+f.ID, strings.NewReader(form.Encode()),
		map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	require.Equal(t, http.StatusSeeOther, r.status, "body: %s", r.body)
	assert.Equal(t, defaultReturn, r.header.Get("Location"))
	assert.Regexp(t, `^__Host-authflow_session=[A-Za-z0-9_=-]{43,}; Path=/; Expires=[^;]+; Max-Age=86400; HttpOnly; Secure; SameSite=Lax$`, subSetCookie(r, "__Host-authflow_session"))
	assert.Regexp(t, `^__Host-authflow_csrf=[A-Za-z0-9+/=]{44}; Path=/; Max-Age=31536000; HttpOnly; Secure; SameSite=Lax$`, subSetCookie(r, "__Host-authflow_csrf"))
	assert.Empty(t, subSetCookie(r, subSessionCookie), "no unprefixed cookie")
}

// TestSubmitConfiguredCookies: configured names are used verbatim, and a
// configured domain is set on both cookies.
func TestSubmitConfiguredCookies(t *testing.T) {
	e := newEnv(t, func(c *login.Config) {
		c.SessionCookieName = "sid"
		c.CSRFCookieName = "xsrf"
		c.CookieDomain = "127.0.0.1"
	})
	s := subStart(t, e, subSPA, "")
	r := s.submit(t, s.creds(testIdentifier, testPassword), nil)
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	assert.Regexp(t, `^sid=[A-Za-z0-9_=-]{43,}; Path=/; Domain=127.0.0.1; Expires=[^;]+; Max-Age=86400; HttpOnly; SameSite=Lax$`, subSetCookie(r, "sid"))
	assert.Regexp(t, `^xsrf=[A-Za-z0-9+/=]{44}; Path=/; Domain=127.0.0.1; Max-Age=31536000; HttpOnly; SameSite=Lax$`, subSetCookie(r, "xsrf"))
	assert.Len(t, r.header.Values("Set-Cookie"), 2, "the session and the rotated CSRF cookie")
	assert.Nil(t, r.cookie(subSessionCookie))
}

// TestSubmitClientAddress: Part 1 rule 18. The session's device address is
// the connection's, unless the connection comes from a trusted proxy.
func TestSubmitClientAddress(t *testing.T) {
	tests := []struct {
		name    string
		trusted []netip.Prefix
		header  map[string]string
		want    string
	}{
		{"forwarded headers are ignored by default", nil,
			map[string]string{"X-Forwarded-For": "203.0.113.7", "X-Real-IP": "203.0.113.8", "True-Client-IP": "203.0.113.9"}, "127.0.0.1"},
		{"a trusted proxy's X-Forwarded-For counts", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
			map[string]string{"X-Forwarded-For": "203.0.113.7"}, "203.0.113.7"},
		{"the nearest untrusted hop counts", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.0.0.0/8")},
			map[string]string{"X-Forwarded-For": "198.51.100.1, 203.0.113.7, 10.1.2.3"}, "203.0.113.7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(c *login.Config) { c.TrustedProxies = tt.trusted })
			f := e.apiFlow("")
			r := e.submitJSON(e.api(), f.ID, credentials(testIdentifier, testPassword, ""), tt.header)
			require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
			var got subLogin
			require.NoError(t, json.Unmarshal(r.body, &got))
			require.Len(t, got.Session.Devices, 1)
			assert.Equal(t, tt.want, got.Session.Devices[0].IPAddress)
		})
	}
}
