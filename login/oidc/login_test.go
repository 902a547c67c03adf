package oidc_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/oauth2-proxy/mockoidc"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/internal/testhttp"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/login/oidc"
	"github.com/authflow/authflow/session"
)

// TestProviderNode: one submit button per provider, group oidc,
// name=provider, value=<id>, label 1010002 (display name when configured).
func TestProviderNode(t *testing.T) {
	e := newEnv(t, func(c *oidc.Config) {
		c.Providers = append(c.Providers, oidc.Provider{ID: "corp", Label: "Corp SSO", IssuerURL: "https://corp.invalid", ClientID: "x"})
	})
	f := e.browserFlow(browser(t), "")
	var got []flow.Node
	for _, n := range f.UI.Nodes {
		if n.Group == flow.GroupOIDC {
			got = append(got, n)
		}
	}
	require.Len(t, got, 2)
	for i, want := range []struct{ id, label string }{{providerID, "Sign in with mock"}, {"corp", "Sign in with Corp SSO"}} {
		n := got[i]
		assert.Equal(t, "provider", n.Attributes.Name)
		assert.Equal(t, "submit", n.Attributes.Type)
		assert.Equal(t, want.id, n.Attributes.Value)
		require.NotNil(t, n.Meta.Label)
		assert.Equal(t, flow.IDSignInWithProvider, n.Meta.Label.ID)
		assert.Equal(t, want.label, n.Meta.Label.Text)
		assert.Equal(t, want.id, n.Meta.Label.Context["provider_id"])
	}
}

// TestBrowserLogin: a form login end to end, following every redirect
// through the provider back to the callback, to return_to or the default.
func TestBrowserLogin(t *testing.T) {
	for _, tt := range []struct{ name, query, target string }{
		{"default return URL", "", defaultReturn},
		{"return_to", "?return_to=" + url.QueryEscape("https://app.example.com/dash"), "https://app.example.com/dash"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			c := browser(t)
			e.queueUser(subject)
			f := e.browserFlow(c, tt.query)
			r := e.submitForm(c, f.ID, url.Values{"provider": {providerID}, "csrf_token": {csrfToken(f)}})
			require.Equal(t, http.StatusSeeOther, r.Status, "body: %s", r.Body)
			auth, err := url.Parse(r.Location())
			require.NoError(t, err)
			q := auth.Query()
			assert.Equal(t, "S256", q.Get("code_challenge_method"))
			assert.NotEmpty(t, q.Get("code_challenge"))
			assert.NotEmpty(t, q.Get("nonce"))
			assert.True(t, strings.HasPrefix(q.Get("state"), f.ID+"."), q.Get("state"))
			assert.Equal(t, e.srv.URL+"/self-service/methods/oidc/callback/mock", q.Get("redirect_uri"))
			ck := r.Cookie(oidc.DefaultStateCookieName)
			require.NotNil(t, ck, "state cookie")
			assert.True(t, ck.HttpOnly)
			assert.Equal(t, "/", ck.Path)
			assert.Equal(t, http.SameSiteLaxMode, ck.SameSite)
			assert.False(t, ck.Secure, "http public URL")
			// Nothing secret in the state; verifier and nonce stay server-side.
			var st map[string]string
			require.NoError(t, json.Unmarshal(e.stored(f.ID).MethodState["oidc"], &st))
			assert.NotContains(t, q.Get("state"), st["pkce_verifier"])
			assert.NotContains(t, q.Get("state"), ck.Value)

			cb := e.authorize(c, auth.String())
			r = testhttp.Do(t, c, http.MethodGet, cb, nil, nil)
			require.Equal(t, http.StatusSeeOther, r.Status, "body: %s", r.Body)
			assert.Equal(t, tt.target, r.Location())
			sc := r.Cookie("authflow_session")
			require.NotNil(t, sc)
			cleared := r.Cookie(oidc.DefaultStateCookieName)
			require.NotNil(t, cleared, "state cookie cleared")
			assert.Less(t, cleared.MaxAge, 0)
			s := e.whoami(sc.Value)
			assert.Equal(t, e.identity.ID, s.Identity.ID)
			require.Len(t, s.AuthenticationMethods, 1)
			assert.Equal(t, "oidc", s.AuthenticationMethods[0].Method)
			assert.Equal(t, providerID, s.AuthenticationMethods[0].Provider)
			assert.Equal(t, flow.StatePassedChallenge, e.stored(f.ID).Flow.State)
		})
	}
}

// TestLocationChangeJSON: an SPA gets 422 browser_location_change_required.
func TestLocationChangeJSON(t *testing.T) {
	e := newEnv(t)
	c := browser(t)
	f := e.browserFlow(c, "")
	r := e.submitJSON(c, f.ID, map[string]any{"method": "oidc", "provider": providerID, "csrf_token": csrfToken(f)})
	wantLocationChange(t, e, r)
	assert.NotNil(t, r.Cookie(oidc.DefaultStateCookieName), "browser flows are bound even for SPAs")
}

func TestLocationChangeAPIFlow(t *testing.T) {
	e := newEnv(t)
	r := testhttp.Do(t, http.DefaultClient, http.MethodGet, e.srv.URL+"/self-service/login/api", nil, nil)
	require.Equal(t, http.StatusOK, r.Status)
	id := r.JSON(t)["id"].(string)
	r = e.submitJSON(http.DefaultClient, id, map[string]any{"provider": providerID})
	wantLocationChange(t, e, r)
	assert.Nil(t, r.Cookie(oidc.DefaultStateCookieName))
}

// TestAPIFlowFinishedInABrowser: a native app's flow created without
// return_session_token_exchange_code and finished at the provider issues no
// session to the browser that happens to finish it: it ends on the error
// UI. With the exchange requested, the login completes and the app gets the
// session from the exchange (see exchange_test.go).
func TestAPIFlowFinishedInABrowser(t *testing.T) {
	e := newEnv(t)
	native := e.addIdentity("native@example.com", oidc.Credential(providerID, "native-subject"))
	e.queueUser("native-subject")
	r := testhttp.Do(t, http.DefaultClient, http.MethodGet, e.srv.URL+"/self-service/login/api", nil, nil)
	require.Equal(t, http.StatusOK, r.Status)
	id := r.JSON(t)["id"].(string)
	r = e.submitJSON(http.DefaultClient, id, map[string]any{"provider": providerID})
	wantLocationChange(t, e, r)
	to := r.JSON(t)["redirect_browser_to"].(string)

	c := browser(t)
	callback := e.authorize(c, to)
	got := e.wantErrorUI(testhttp.Do(t, c, http.MethodGet, callback, nil, nil))
	reason, _ := got["error"].(map[string]any)["reason"].(string)
	assert.Contains(t, reason, "started by a native app")
	assert.Empty(t, e.sessionsOf(native.ID), "no session was issued")

	// The same login with the exchange requested completes.
	e.queueUser("native-subject")
	f := e.nativeFlow(nativeReturn)
	back := e.finishInBrowser(f)
	r = e.exchange(f.SessionTokenExchangeCode, back.Query().Get("code"))
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	assert.Len(t, e.sessionsOf(native.ID), 1)
}

func wantLocationChange(t *testing.T, e *env, r *result) {
	t.Helper()
	require.Equal(t, http.StatusUnprocessableEntity, r.Status, "body: %s", r.Body)
	body := r.JSON(t)
	to, _ := body["redirect_browser_to"].(string)
	assert.True(t, strings.HasPrefix(to, e.idp.AuthorizationEndpoint()), to)
	errObj := body["error"].(map[string]any)
	assert.Equal(t, "browser_location_change_required", errObj["id"])
	assert.Equal(t, "In order to complete this flow please redirect the browser to: "+to, errObj["reason"])
}

// TestUnknownProvider: 400 with the flow and 4000001.
func TestUnknownProvider(t *testing.T) {
	e := newEnv(t)
	c := browser(t)
	f := e.browserFlow(c, "")
	r := e.submitJSON(c, f.ID, map[string]any{"method": "oidc", "provider": "nope", "csrf_token": csrfToken(f)})
	require.Equal(t, http.StatusBadRequest, r.Status, "body: %s", r.Body)
	var got flow.Flow
	require.NoError(t, json.Unmarshal(r.Body, &got))
	m := onlyMessage(t, got, flow.IDGeneric)
	assert.Equal(t, `OpenID Connect provider "nope" is unknown or has not been configured`, m.Text)
}

// TestCSRF: a missing or wrong token never reaches the provider.
func TestCSRF(t *testing.T) {
	for _, token := range []string{"", "d3Jvbmc="} {
		e := newEnv(t)
		c := browser(t)
		f := e.browserFlow(c, "")
		r := e.submitJSON(c, f.ID, map[string]any{"provider": providerID, "csrf_token": token})
		require.Equal(t, http.StatusForbidden, r.Status, "body: %s", r.Body)
		assert.Equal(t, "security_csrf_violation", r.JSON(t)["error"].(map[string]any)["id"])
		assert.Empty(t, e.stored(f.ID).MethodState)
		r = e.submitForm(c, f.ID, url.Values{"provider": {providerID}, "csrf_token": {token}})
		e.wantErrorUI(r)
		assert.Empty(t, e.stored(f.ID).MethodState)
	}
}

// TestUntrustedState: tampered, foreign, replayed and unknown states go to
// the error UI, without a session.
func TestUntrustedState(t *testing.T) {
	setQuery := func(raw, key, value string) string {
		u, _ := url.Parse(raw)
		q := u.Query()
		q.Set(key, value)
		u.RawQuery = q.Encode()
		return u.String()
	}
	stateOf := func(raw string) string { u, _ := url.Parse(raw); return u.Query().Get("state") }
	t.Run("tampered", func(t *testing.T) {
		e := newEnv(t)
		c := browser(t)
		_, auth := e.toProvider(c, "")
		cb := e.authorize(c, auth)
		e.wantErrorUI(testhttp.Do(t, c, http.MethodGet, setQuery(cb, "state", stateOf(cb)+"x"), nil, nil))
		e.wantErrorUI(testhttp.Do(t, c, http.MethodGet, setQuery(cb, "state", strings.SplitN(stateOf(cb), ".", 2)[0]), nil, nil))
		assert.Empty(t, e.sessionsOf(e.identity.ID))
		// The real state still works: a forgery burns nothing.
		r := testhttp.Do(t, c, http.MethodGet, cb, nil, nil)
		require.Equal(t, http.StatusSeeOther, r.Status)
		assert.Equal(t, defaultReturn, r.Location())
	})
	t.Run("foreign browser", func(t *testing.T) {
		e := newEnv(t)
		_, auth := e.toProvider(browser(t), "")
		victim := browser(t)
		cb := e.authorize(victim, auth)
		e.wantErrorUI(testhttp.Do(t, victim, http.MethodGet, cb, nil, nil))
		assert.Empty(t, e.sessionsOf(e.identity.ID))
	})
	t.Run("replayed", func(t *testing.T) {
		e := newEnv(t)
		c := browser(t)
		f, auth := e.toProvider(c, "")
		cb := e.authorize(c, auth)
		// A failed attempt consumes the state (the code is bogus)...
		got := e.wantLoginUI(testhttp.Do(t, c, http.MethodGet, setQuery(cb, "code", "bogus"), nil, nil), f.ID)
		onlyMessage(t, got, flow.IDGeneric)
		// ...so the provider's real answer cannot be used any more.
		e.wantErrorUI(testhttp.Do(t, c, http.MethodGet, cb, nil, nil))
		assert.Empty(t, e.sessionsOf(e.identity.ID))
	})
	t.Run("replayed after success", func(t *testing.T) {
		e := newEnv(t)
		c := browser(t)
		_, auth := e.toProvider(c, "")
		cb := e.authorize(c, auth)
		r := testhttp.Do(t, c, http.MethodGet, cb, nil, nil)
		require.Equal(t, http.StatusSeeOther, r.Status)
		require.Equal(t, defaultReturn, r.Location())
		e.wantErrorUI(testhttp.Do(t, c, http.MethodGet, cb, nil, nil))
		assert.Len(t, e.sessionsOf(e.identity.ID), 1)
	})
	t.Run("unknown", func(t *testing.T) {
		e := newEnv(t)
		c := browser(t)
		_, auth := e.toProvider(c, "")
		cb := e.authorize(c, auth)
		for _, s := range []string{"", "garbage", "00000000-0000-4000-8000-000000000000.abc"} {
			e.wantErrorUI(testhttp.Do(t, c, http.MethodGet, setQuery(cb, "state", s), nil, nil))
		}
	})
}

// TestPOSTCallback: a POSTed callback is moved to a GET of the same URL.
func TestPOSTCallback(t *testing.T) {
	e := newEnv(t)
	c := browser(t)
	_, auth := e.toProvider(c, "")
	cb := e.authorize(c, auth)
	u, _ := url.Parse(cb)
	base := e.srv.URL + u.Path
	r := testhttp.Do(t, c, http.MethodPost, base, strings.NewReader(u.RawQuery), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	require.Equal(t, http.StatusSeeOther, r.Status, "body: %s", r.Body)
	to, _ := url.Parse(r.Location())
	assert.Equal(t, base, to.Scheme+"://"+to.Host+to.Path)
	assert.Equal(t, u.Query(), to.Query())
	r = testhttp.Do(t, c, http.MethodGet, r.Location(), nil, nil)
	require.Equal(t, http.StatusSeeOther, r.Status, "body: %s", r.Body)
	assert.Equal(t, defaultReturn, r.Location())
	assert.NotNil(t, r.Cookie("authflow_session"))
}

// TestProviderFailures: the provider's error, a failed exchange, a wrong
// nonce and a token signed by another key go to the login UI with 4000001.
func TestProviderFailures(t *testing.T) {
	t.Run("access denied", func(t *testing.T) {
		e := newEnv(t)
		c := browser(t)
		f, auth := e.toProvider(c, "")
		a, _ := url.Parse(auth)
		cb := e.srv.URL + "/self-service/methods/oidc/callback/mock?error=access_denied&error_description=denied+by+user&state=" + url.QueryEscape(a.Query().Get("state"))
		got := e.wantLoginUI(testhttp.Do(t, c, http.MethodGet, cb, nil, nil), f.ID)
		m := onlyMessage(t, got, flow.IDGeneric)
		assert.Contains(t, m.Text, `"access_denied"`)
		assert.Contains(t, m.Text, "denied by user")
	})
	t.Run("code exchange fails", func(t *testing.T) {
		e := newEnv(t)
		c := browser(t)
		f, auth := e.toProvider(c, "")
		cb := e.authorize(c, auth)
		// Twice: the client retries with the other client authentication style.
		for range 2 {
			e.idp.QueueError(&mockoidc.ServerError{Code: http.StatusBadRequest, Error: "invalid_grant", Description: "nope"})
		}
		got := e.wantLoginUI(testhttp.Do(t, c, http.MethodGet, cb, nil, nil), f.ID)
		assert.Contains(t, onlyMessage(t, got, flow.IDGeneric).Text, "Unable to exchange the authorization code")
	})
	t.Run("wrong nonce", func(t *testing.T) {
		e := newEnv(t)
		c := browser(t)
		f, auth := e.toProvider(c, "")
		rec := e.stored(f.ID)
		var st map[string]string
		require.NoError(t, json.Unmarshal(rec.MethodState["oidc"], &st))
		st["nonce"] = "forged"
		rec.MethodState["oidc"], _ = json.Marshal(st)
		require.NoError(t, e.flows.UpdateFlow(context.Background(), rec))
		cb := e.authorize(c, auth)
		got := e.wantLoginUI(testhttp.Do(t, c, http.MethodGet, cb, nil, nil), f.ID)
		assert.Contains(t, onlyMessage(t, got, flow.IDGeneric).Text, "invalid nonce")
		assert.Empty(t, e.sessionsOf(e.identity.ID))
	})
	t.Run("signed by another key", func(t *testing.T) {
		idp, err := mockoidc.NewServer(nil)
		require.NoError(t, err)
		other, err := mockoidc.RandomKeypair(2048)
		require.NoError(t, err)
		require.NoError(t, idp.AddMiddleware(func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == mockoidc.JWKSEndpoint { // publish a key that did not sign
					b, _ := other.JWKS()
					w.Header().Set("Content-Type", "application/json")
					_, _ = w.Write(b)
					return
				}
				next.ServeHTTP(w, r)
			})
		}))
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		require.NoError(t, idp.Start(ln, nil))
		t.Cleanup(func() { _ = idp.Shutdown() })
		e := newEnvWith(t, idp)
		c := browser(t)
		f, auth := e.toProvider(c, "")
		cb := e.authorize(c, auth)
		got := e.wantLoginUI(testhttp.Do(t, c, http.MethodGet, cb, nil, nil), f.ID)
		assert.Contains(t, onlyMessage(t, got, flow.IDGeneric).Text, "could not be verified")
		assert.Empty(t, e.sessionsOf(e.identity.ID))
	})
}

// TestExpiredFlow: the callback of an expired flow gets a fresh flow with
// 4010001.
func TestExpiredFlow(t *testing.T) {
	e := newEnv(t)
	c := browser(t)
	f, auth := e.toProvider(c, "")
	cb := e.authorize(c, auth)
	e.clock.Advance(login.DefaultFlowLifespan + time.Minute)
	r := testhttp.Do(t, c, http.MethodGet, cb, nil, nil)
	require.Equal(t, http.StatusSeeOther, r.Status, "body: %s", r.Body)
	require.True(t, strings.HasPrefix(r.Location(), loginUI+"?flow="), r.Location())
	newID := strings.TrimPrefix(r.Location(), loginUI+"?flow=")
	assert.NotEqual(t, f.ID, newID)
	onlyMessage(t, e.stored(newID).Flow, flow.IDFlowExpired)
	assert.Empty(t, e.sessionsOf(e.identity.ID))
}

// TestUnknownSubject: 4000037 without the hook (no account is created);
// the hook may create one, and the login succeeds with it.
func TestUnknownSubject(t *testing.T) {
	t.Run("no hook", func(t *testing.T) {
		e := newEnv(t)
		c := browser(t)
		e.queueUser("stranger")
		f, auth := e.toProvider(c, "")
		got := e.wantLoginUI(testhttp.Do(t, c, http.MethodGet, e.authorize(c, auth), nil, nil), f.ID)
		onlyMessage(t, got, flow.IDAccountMissing)
		_, _, err := e.identities.FindIdentity(context.Background(), session.CredentialOIDC, "mock:stranger")
		assert.ErrorIs(t, err, session.ErrNotFound)
	})
	t.Run("hook creates", func(t *testing.T) {
		var e *env
		var seen *oidc.Claims
		e = newEnv(t, func(c *oidc.Config) {
			c.OnUnknownSubject = func(ctx context.Context, cl *oidc.Claims) (*session.Identity, error) {
				seen = cl
				return e.addIdentity(cl.Email, oidc.Credential(cl.Provider, cl.Subject)), nil
			}
		})
		c := browser(t)
		e.queueUser("stranger")
		_, auth := e.toProvider(c, "")
		r := testhttp.Do(t, c, http.MethodGet, e.authorize(c, auth), nil, nil)
		require.Equal(t, http.StatusSeeOther, r.Status, "body: %s", r.Body)
		assert.Equal(t, defaultReturn, r.Location())
		require.NotNil(t, seen)
		assert.Equal(t, "mock:stranger", seen.Identifier())
		assert.JSONEq(t, `{"email":"jane.doe@example.com"}`, string(seen.Traits))
		id, _, err := e.identities.FindIdentity(context.Background(), session.CredentialOIDC, "mock:stranger")
		require.NoError(t, err)
		s := e.whoami(r.Cookie("authflow_session").Value)
		assert.Equal(t, id.ID, s.Identity.ID)
	})
}

// TestLazyDiscovery: the server starts before its provider; a submission
// while the provider is down is a flow message, the next one works.
func TestLazyDiscovery(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	idp, err := mockoidc.NewServer(nil)
	require.NoError(t, err)
	issuer := "http://" + addr + "/oidc"
	e := newEnvWith(t, &mockoidc.MockOIDC{ClientID: idp.ClientID, ClientSecret: idp.ClientSecret}, func(c *oidc.Config) {
		c.Providers[0].IssuerURL = issuer
	})
	e.idp = idp
	c := browser(t)
	f := e.browserFlow(c, "")
	r := e.submitJSON(c, f.ID, map[string]any{"provider": providerID, "csrf_token": csrfToken(f)})
	require.Equal(t, http.StatusBadRequest, r.Status, "body: %s", r.Body)
	var got flow.Flow
	require.NoError(t, json.Unmarshal(r.Body, &got))
	assert.Contains(t, onlyMessage(t, got, flow.IDGeneric).Text, "currently unavailable")

	ln, err = net.Listen("tcp", addr)
	require.NoError(t, err)
	require.NoError(t, idp.Start(ln, nil))
	t.Cleanup(func() { _ = idp.Shutdown() })
	require.Equal(t, issuer, idp.Issuer())
	r = e.submitForm(c, f.ID, url.Values{"provider": {providerID}, "csrf_token": {csrfToken(f)}})
	require.Equal(t, http.StatusSeeOther, r.Status, "body: %s", r.Body)
	r = testhttp.Do(t, c, http.MethodGet, e.authorize(c, r.Location()), nil, nil)
	require.Equal(t, http.StatusSeeOther, r.Status, "body: %s", r.Body)
	assert.Equal(t, defaultReturn, r.Location())
}
