package e2e_test

// The official Ory Go SDK against the handler with the oidc login method
// and a real (in-process) OpenID Connect provider, github.com/oauth2-proxy/
// mockoidc: submitting a provider answers 422 browser_location_change_required,
// which the SDK decodes as client.ErrorBrowserLocationChangeRequired whose
// redirect_browser_to is the provider's authorization endpoint. Every
// identifier of this file starts with "oidcSDK" (tests: TestSDKOIDC).

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/oauth2-proxy/mockoidc"
	ory "github.com/ory/client-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	autherrors "github.com/authflow/authflow/errors"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/login/logintest"
	"github.com/authflow/authflow/login/oidc"
	"github.com/authflow/authflow/session"
)

const (
	oidcSDKProvider = "test"
	oidcSDKSubject  = "oidc-sdk-subject"
	oidcSDKEmail    = "oidc@example.com"
)

// oidcSDKEnv is the SDK suite's deployment (sdkEnv, so its clients and
// helpers apply) with the oidc method for one mockoidc provider and one
// identity linked to oidcSDKSubject there.
func oidcSDKEnv(t *testing.T) (*sdkEnv, *mockoidc.MockOIDC) {
	t.Helper()
	idp, err := mockoidc.Run()
	require.NoError(t, err)
	t.Cleanup(func() { _ = idp.Shutdown() })

	e := &sdkEnv{t: t, clock: &sdkClock{t: time.Now()}}
	mux := http.NewServeMux()
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)

	ctx := context.Background()
	ids := session.NewMemoryIdentityStore()
	now := time.Now().UTC()
	traits, err := json.Marshal(map[string]string{"email": oidcSDKEmail})
	require.NoError(t, err)
	e.identity = &session.Identity{
		ID: sdkNewUUID(), SchemaID: "default", State: session.StateActive, StateChangedAt: &now,
		Traits: traits, CreatedAt: now, UpdatedAt: now,
	}
	require.NoError(t, ids.CreateIdentity(ctx, e.identity, oidc.Credential(oidcSDKProvider, oidcSDKSubject)))

	social, err := oidc.New(oidc.Config{Providers: []oidc.Provider{{
		ID: oidcSDKProvider, IssuerURL: idp.Issuer(), ClientID: idp.ClientID, ClientSecret: idp.ClientSecret,
		Scopes: []string{"email"},
	}}})
	require.NoError(t, err)
	h, err := login.New(login.Config{
		PublicURL:        e.srv.URL,
		LoginUIURL:       sdkLoginUI,
		ErrorUIURL:       sdkErrorUI,
		DefaultReturnURL: sdkDefaultReturn,
		IdentityStore:    ids,
		Hasher:           logintest.FastHasher{},
		Methods:          []login.Method{social},
		Logger:           slog.New(slog.DiscardHandler),
	})
	require.NoError(t, err)
	mux.Handle("/", h)
	return e, idp
}

// oidcSDKBody is the SDK's social sign-in body for provider.
func oidcSDKBody(provider, csrf string) ory.UpdateLoginFlowBody {
	m := ory.NewUpdateLoginFlowWithOidcMethod("oidc", provider)
	if csrf != "" {
		m.CsrfToken = &csrf
	}
	return ory.UpdateLoginFlowWithOidcMethodAsUpdateLoginFlowBody(m)
}

// oidcSDKLocationChange checks the 422 the SDK decoded and returns its
// redirect_browser_to, an authorization request of flow flowID at idp.
func oidcSDKLocationChange(t *testing.T, e *sdkEnv, idp *mockoidc.MockOIDC, flowID string, err error, resp *http.Response) string {
	t.Helper()
	lc := sdkModel[ory.ErrorBrowserLocationChangeRequired](t, err, resp, http.StatusUnprocessableEntity)
	sdkAssertNoStore(t, resp)
	require.NotNil(t, lc.Error)
	assert.Equal(t, autherrors.IDBrowserLocationChangeRequired, lc.Error.GetId())
	assert.Equal(t, int64(http.StatusUnprocessableEntity), lc.Error.GetCode())
	assert.Empty(t, lc.AdditionalProperties, "keys the SDK does not model")
	assert.Empty(t, lc.Error.AdditionalProperties, "error keys the SDK does not model")

	to := lc.GetRedirectBrowserTo()
	require.True(t, strings.HasPrefix(to, idp.AuthorizationEndpoint()+"?"), "redirect_browser_to %q is not the provider's authorization endpoint %s", to, idp.AuthorizationEndpoint())
	u, perr := url.Parse(to)
	require.NoError(t, perr)
	q := u.Query()
	assert.Equal(t, idp.ClientID, q.Get("client_id"))
	assert.Equal(t, "code", q.Get("response_type"))
	assert.Equal(t, "openid email", q.Get("scope"))
	assert.Equal(t, e.srv.URL+"/self-service/methods/oidc/callback/"+oidcSDKProvider, q.Get("redirect_uri"))
	assert.Equal(t, "S256", q.Get("code_challenge_method"))
	assert.NotEmpty(t, q.Get("code_challenge"))
	assert.NotEmpty(t, q.Get("nonce"))
	assert.True(t, strings.HasPrefix(q.Get("state"), flowID+"."), "state %q belongs to flow %s", q.Get("state"), flowID)
	return to
}

func TestSDKOIDC(t *testing.T) {
	t.Run("SPA: 422, then the provider and the callback sign the browser in", func(t *testing.T) {
		e, idp := oidcSDKEnv(t)
		b := e.browser()
		f, resp, err := b.api.CreateBrowserLoginFlow(t.Context()).Execute()
		sdkOK(t, err, resp)
		btn := sdkInput(t, f, "provider")
		assert.Equal(t, "submit", btn.Type)
		assert.Equal(t, oidcSDKProvider, btn.Value)

		_, resp, err = b.api.UpdateLoginFlow(t.Context()).Flow(f.Id).UpdateLoginFlowBody(oidcSDKBody(oidcSDKProvider, sdkCSRF(t, f))).Execute()
		to := oidcSDKLocationChange(t, e, idp, f.Id, err, resp)
		require.NotNil(t, b.cookie(oidc.DefaultStateCookieName), "the SPA's browser holds the state cookie")

		// The SPA sets window.location: the provider answers at once with a
		// redirect to the callback, which signs the browser in.
		idp.QueueUser(&mockoidc.MockUser{Subject: oidcSDKSubject, Email: oidcSDKEmail})
		r, err := b.hc.Get(to)
		require.NoError(t, err)
		r.Body.Close()
		require.Equal(t, http.StatusFound, r.StatusCode, "the provider's answer")
		callback := r.Header.Get("Location")
		require.True(t, strings.HasPrefix(callback, e.srv.URL+"/self-service/methods/oidc/callback/"+oidcSDKProvider+"?"), callback)
		r, err = b.hc.Get(callback)
		require.NoError(t, err)
		r.Body.Close()
		require.Equal(t, http.StatusSeeOther, r.StatusCode)
		assert.Equal(t, sdkDefaultReturn, r.Header.Get("Location"))

		s, resp, err := b.api.ToSession(t.Context()).Execute()
		sdkOK(t, err, resp)
		assert.Equal(t, e.identity.ID, s.Identity.Id)
		require.Len(t, s.AuthenticationMethods, 1)
		assert.Equal(t, "oidc", s.AuthenticationMethods[0].GetMethod())
	})

	t.Run("native: 422 with the provider's authorization URL", func(t *testing.T) {
		e, idp := oidcSDKEnv(t)
		api := e.native()
		f, resp, err := api.CreateNativeLoginFlow(t.Context()).Execute()
		sdkOK(t, err, resp)
		assert.Equal(t, oidcSDKProvider, sdkInput(t, f, "provider").Value)
		_, resp, err = api.UpdateLoginFlow(t.Context()).Flow(f.Id).UpdateLoginFlowBody(oidcSDKBody(oidcSDKProvider, "")).Execute()
		oidcSDKLocationChange(t, e, idp, f.Id, err, resp)
		assert.Empty(t, resp.Header.Values("Set-Cookie"), "a native flow sets no cookie")
	})
}
