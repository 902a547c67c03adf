package e2e_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"testing"
	"time"

	ory "github.com/ory/client-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	autherrors "github.com/authflow/authflow/errors"
	"github.com/authflow/authflow/flow"
)

// The official Ory Go SDK (github.com/ory/client-go) against authflow.
// The rule: every success body, and every error body of the type the SDK
// declares for its status, decodes without error. Where CONTRACT Part 1
// deliberately answers differently from Kratos, TestSDKDeliberateDifferences
// shows what an SDK user receives and how to handle it.

// TestSDKCreateAndFetchFlows: flow creation and fetching decode as
// LoginFlow for both flow types; a browser flow is only handed to the
// browser holding its CSRF cookie.
func TestSDKCreateAndFetchFlows(t *testing.T) {
	t.Run("native", func(t *testing.T) {
		e := newSDKEnv(t)
		api := e.native()
		f, resp, err := api.CreateNativeLoginFlow(t.Context()).Execute()
		sdkOK(t, err, resp)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		sdkAssertNoStore(t, resp)
		sdkAssertFlow(t, e, f, "api")
		assert.Empty(t, resp.Cookies(), "API flows set no cookies")

		got, resp, err := api.GetLoginFlow(t.Context()).Id(f.Id).Execute()
		sdkOK(t, err, resp)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		sdkAssertNoStore(t, resp)
		sdkAssertFlow(t, e, got, "api")
		assert.Equal(t, f.Id, got.Id)
	})

	t.Run("browser", func(t *testing.T) {
		e := newSDKEnv(t)
		b := e.browser()
		// The SDK sends "Accept: application/json": 200 with the flow, no 303.
		f, resp, err := b.api.CreateBrowserLoginFlow(t.Context()).Execute()
		sdkOK(t, err, resp)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		sdkAssertNoStore(t, resp)
		sdkAssertFlow(t, e, f, "browser")
		require.NotNil(t, b.cookie(sdkCSRFCookie), "the CSRF cookie is in the jar")

		got, resp, err := b.api.GetLoginFlow(t.Context()).Id(f.Id).Execute()
		sdkOK(t, err, resp)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		sdkAssertFlow(t, e, got, "browser")
		assert.Equal(t, f.Id, got.Id)

		// Without the cookie: 403 security_csrf_violation (GetLoginFlow
		// declares ErrorGeneric for 403).
		_, resp, err = e.native().GetLoginFlow(t.Context()).Id(f.Id).Execute()
		eg := sdkModel[ory.ErrorGeneric](t, err, resp, http.StatusForbidden)
		assert.Equal(t, autherrors.IDCSRFViolation, eg.Error.GetId())
		sdkAssertNoStore(t, resp)
	})

	t.Run("browser with return_to", func(t *testing.T) {
		e := newSDKEnv(t)
		f, resp, err := e.browser().api.CreateBrowserLoginFlow(t.Context()).ReturnTo("https://app.example.com/dash").Execute()
		sdkOK(t, err, resp)
		sdkAssertFlow(t, e, f, "browser")
		assert.Equal(t, "https://app.example.com/dash", f.GetReturnTo())
	})
}

// TestSDKLoginNative: a native login decodes as SuccessfulNativeLogin with a
// session token; the token works with ToSession; the flow cannot log in
// twice (Part 1 rule 9).
func TestSDKLoginNative(t *testing.T) {
	e := newSDKEnv(t)
	api := e.native()
	f, resp, err := api.CreateNativeLoginFlow(t.Context()).Execute()
	sdkOK(t, err, resp)

	ok, resp, err := api.UpdateLoginFlow(t.Context()).Flow(f.Id).
		UpdateLoginFlowBody(sdkPasswordBody(sdkIdentifier, sdkPassword, "")).Execute()
	sdkOK(t, err, resp)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	sdkAssertNoStore(t, resp)
	assert.Empty(t, resp.Cookies(), "a native login sets no cookie")
	require.NotNil(t, ok)
	token := ok.GetSessionToken()
	require.NotEmpty(t, token)
	assert.Empty(t, ok.ContinueWith, "continue_with is null for API flows")
	assert.Empty(t, ok.AdditionalProperties, "keys the SDK does not model")
	sdkAssertSession(t, e, &ok.Session)

	s, resp, err := api.ToSession(t.Context()).XSessionToken(token).Execute()
	sdkOK(t, err, resp)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	sdkAssertNoStore(t, resp)
	sdkAssertSession(t, e, s)
	assert.Equal(t, ok.Session.Id, s.Id)
	assert.Equal(t, e.identity.ID, resp.Header.Get("X-Kratos-Authenticated-Identity-Id"))

	// Submitting the completed flow again: 400 with the flow (the SDK's 400
	// type), message 4010007, state passed_challenge, and no new session.
	_, resp, err = api.UpdateLoginFlow(t.Context()).Flow(f.Id).
		UpdateLoginFlowBody(sdkPasswordBody(sdkIdentifier, sdkPassword, "")).Execute()
	lf := sdkModel[ory.LoginFlow](t, err, resp, http.StatusBadRequest)
	assert.Equal(t, ory.LOGINFLOWSTATE_PASSED_CHALLENGE, lf.State)
	require.Len(t, lf.Ui.Messages, 1)
	assert.Equal(t, int64(flow.IDAlreadyCompleted), lf.Ui.Messages[0].Id)
	assert.Equal(t, "error", lf.Ui.Messages[0].Type)
	sdkAssertKnownFlow(t, &lf)
}

// TestSDKLoginBrowser: an SPA login (JSON) decodes as SuccessfulNativeLogin
// without a token, with continue_with redirect_browser_to (the SDK's
// ContinueWith union), and leaves the session cookie in the jar, which
// ToSession then accepts.
func TestSDKLoginBrowser(t *testing.T) {
	tests := []struct {
		name, returnTo, want string
	}{
		{"default return URL", "", sdkDefaultReturn},
		{"return_to", "https://app.example.com/dash", "https://app.example.com/dash"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newSDKEnv(t)
			b := e.browser()
			create := b.api.CreateBrowserLoginFlow(t.Context())
			if tt.returnTo != "" {
				create = create.ReturnTo(tt.returnTo)
			}
			f, resp, err := create.Execute()
			sdkOK(t, err, resp)
			csrfBefore := b.cookie(sdkCSRFCookie)
			require.NotNil(t, csrfBefore)

			ok, resp, err := b.api.UpdateLoginFlow(t.Context()).Flow(f.Id).
				UpdateLoginFlowBody(sdkPasswordBody(sdkIdentifier, sdkPassword, sdkCSRF(t, f))).Execute()
			sdkOK(t, err, resp)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			sdkAssertNoStore(t, resp)
			require.NotNil(t, ok)
			assert.Nil(t, ok.SessionToken, "browser logins get no session token")
			sdkAssertSession(t, e, &ok.Session)
			require.Len(t, ok.ContinueWith, 1)
			cw := ok.ContinueWith[0].ContinueWithRedirectBrowserTo
			require.NotNil(t, cw, "continue_with[0] decodes as ContinueWithRedirectBrowserTo: %#v", ok.ContinueWith[0])
			assert.Equal(t, "redirect_browser_to", cw.Action)
			assert.Equal(t, tt.want, cw.RedirectBrowserTo)
			assert.Empty(t, cw.AdditionalProperties, "keys the SDK does not model")
			assert.Empty(t, ok.AdditionalProperties, "keys the SDK does not model")

			sc := b.cookie(sdkSessionCookie)
			require.NotNil(t, sc, "the session cookie is in the jar")
			assert.NotEmpty(t, sc.Value)
			csrfAfter := b.cookie(sdkCSRFCookie)
			require.NotNil(t, csrfAfter)
			assert.NotEqual(t, csrfBefore.Value, csrfAfter.Value, "the CSRF cookie is rotated on login")

			s, resp, err := b.api.ToSession(t.Context()).Execute()
			sdkOK(t, err, resp)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			sdkAssertSession(t, e, s)
			assert.Equal(t, ok.Session.Id, s.Id)
			assert.Equal(t, e.identity.ID, resp.Header.Get("X-Kratos-Authenticated-Identity-Id"))
		})
	}
}

// TestSDKErrors: every error answer decodes into the type the SDK declares
// for its status.
func TestSDKErrors(t *testing.T) {
	t.Run("wrong password, native: 400 LoginFlow with 4000006", func(t *testing.T) {
		e := newSDKEnv(t)
		api := e.native()
		f, resp, err := api.CreateNativeLoginFlow(t.Context()).Execute()
		sdkOK(t, err, resp)
		_, resp, err = api.UpdateLoginFlow(t.Context()).Flow(f.Id).
			UpdateLoginFlowBody(sdkPasswordBody(sdkIdentifier, "wrong", "")).Execute()
		lf := sdkModel[ory.LoginFlow](t, err, resp, http.StatusBadRequest)
		sdkAssertNoStore(t, resp)
		assert.Equal(t, f.Id, lf.Id)
		require.NotEmpty(t, lf.Ui.Messages)
		assert.Equal(t, int64(flow.IDInvalidCredentials), lf.Ui.Messages[0].Id)
		assert.Equal(t, "error", lf.Ui.Messages[0].Type)
		assert.Equal(t, sdkIdentifier, sdkInput(t, &lf, "identifier").Value, "the identifier is kept")
		sdkAssertKnownFlow(t, &lf)
	})

	t.Run("wrong password, browser JSON: 400 LoginFlow with 4000006", func(t *testing.T) {
		e := newSDKEnv(t)
		b := e.browser()
		f, resp, err := b.api.CreateBrowserLoginFlow(t.Context()).Execute()
		sdkOK(t, err, resp)
		_, resp, err = b.api.UpdateLoginFlow(t.Context()).Flow(f.Id).
			UpdateLoginFlowBody(sdkPasswordBody(sdkIdentifier, "wrong", sdkCSRF(t, f))).Execute()
		lf := sdkModel[ory.LoginFlow](t, err, resp, http.StatusBadRequest)
		assert.Equal(t, f.Id, lf.Id)
		require.NotEmpty(t, lf.Ui.Messages)
		assert.Equal(t, int64(flow.IDInvalidCredentials), lf.Ui.Messages[0].Id)
		assert.NotEmpty(t, sdkCSRF(t, &lf), "the flow carries a fresh CSRF token")
		sdkAssertKnownFlow(t, &lf)
		assert.Nil(t, b.cookie(sdkSessionCookie))
	})

	t.Run("missing fields: 400 LoginFlow with 4000002 on the nodes", func(t *testing.T) {
		e := newSDKEnv(t)
		api := e.native()
		f, resp, err := api.CreateNativeLoginFlow(t.Context()).Execute()
		sdkOK(t, err, resp)
		_, resp, err = api.UpdateLoginFlow(t.Context()).Flow(f.Id).
			UpdateLoginFlowBody(sdkPasswordBody("", "", "")).Execute()
		lf := sdkModel[ory.LoginFlow](t, err, resp, http.StatusBadRequest)
		for _, name := range []string{"identifier", "password"} {
			for _, n := range lf.Ui.Nodes {
				if a := n.Attributes.UiNodeInputAttributes; a != nil && a.Name == name {
					require.Len(t, n.Messages, 1, name)
					assert.Equal(t, int64(flow.IDMissing), n.Messages[0].Id, name)
				}
			}
		}
	})

	t.Run("unknown flow: 404 ErrorGeneric", func(t *testing.T) {
		e := newSDKEnv(t)
		api := e.native()
		_, resp, err := api.GetLoginFlow(t.Context()).Id(sdkNewUUID()).Execute()
		eg := sdkModel[ory.ErrorGeneric](t, err, resp, http.StatusNotFound)
		assert.Equal(t, "Unable to locate the resource", eg.Error.GetMessage())
		sdkAssertNoStore(t, resp)

		_, resp, err = api.UpdateLoginFlow(t.Context()).Flow(sdkNewUUID()).
			UpdateLoginFlowBody(sdkPasswordBody(sdkIdentifier, sdkPassword, "")).Execute()
		eg = sdkModel[ory.ErrorGeneric](t, err, resp, http.StatusNotFound)
		assert.Equal(t, "Unable to locate the resource", eg.Error.GetMessage())
	})

	t.Run("expired native flow: 410 ErrorGeneric with use_flow_id", func(t *testing.T) {
		e := newSDKEnv(t)
		api := e.native()
		f, resp, err := api.CreateNativeLoginFlow(t.Context()).Execute()
		sdkOK(t, err, resp)
		e.expire()
		_, resp, err = api.UpdateLoginFlow(t.Context()).Flow(f.Id).
			UpdateLoginFlowBody(sdkPasswordBody(sdkIdentifier, sdkPassword, "")).Execute()
		eg := sdkModel[ory.ErrorGeneric](t, err, resp, http.StatusGone)
		sdkAssertNoStore(t, resp)
		assert.Equal(t, autherrors.IDFlowExpired, eg.Error.GetId())
		// ErrorGeneric does not model use_flow_id or expired_at: they are in
		// its AdditionalProperties.
		newID, _ := eg.AdditionalProperties["use_flow_id"].(string)
		require.NotEmpty(t, newID, "use_flow_id: %#v", eg.AdditionalProperties)
		assert.NotEqual(t, f.Id, newID)
		assert.Contains(t, eg.AdditionalProperties, "expired_at")
		assert.Contains(t, eg.AdditionalProperties, "since")

		// The SDK's dedicated models read the same body with typed fields.
		body := sdkAPIError(t, err).Body()
		var expired ory.SelfServiceFlowExpiredError
		require.NoError(t, json.Unmarshal(body, &expired))
		assert.Equal(t, newID, expired.GetUseFlowId())
		assert.True(t, expired.GetExpiredAt().Equal(f.ExpiresAt), "expired_at %s, flow expires_at %s", expired.GetExpiredAt(), f.ExpiresAt)
		assert.Equal(t, int64(time.Minute), expired.GetSince())
		require.NotNil(t, expired.Error)
		assert.Equal(t, autherrors.IDFlowExpired, expired.Error.GetId())
		assert.Equal(t, int64(http.StatusGone), expired.Error.GetCode())
		var replaced ory.ErrorFlowReplaced
		require.NoError(t, json.Unmarshal(body, &replaced))
		assert.Equal(t, newID, replaced.GetUseFlowId())

		// The replacement is stored and carries 4010001.
		nf, resp, err := api.GetLoginFlow(t.Context()).Id(newID).Execute()
		sdkOK(t, err, resp)
		sdkAssertFlow(t, e, nf, "api")
		require.Len(t, nf.Ui.Messages, 1)
		assert.Equal(t, int64(flow.IDFlowExpired), nf.Ui.Messages[0].Id)
	})

	t.Run("fetching an expired flow: 410 ErrorGeneric", func(t *testing.T) {
		e := newSDKEnv(t)
		api := e.native()
		nf, resp, err := api.CreateNativeLoginFlow(t.Context()).Execute()
		sdkOK(t, err, resp)
		b := e.browser()
		bf, resp, err := b.api.CreateBrowserLoginFlow(t.Context()).Execute()
		sdkOK(t, err, resp)
		e.expire()

		_, resp, err = api.GetLoginFlow(t.Context()).Id(nf.Id).Execute()
		eg := sdkModel[ory.ErrorGeneric](t, err, resp, http.StatusGone)
		sdkAssertNoStore(t, resp)
		assert.Equal(t, autherrors.IDFlowExpired, eg.Error.GetId())
		assert.Equal(t, map[string]any{"api": e.srv.URL + "/self-service/login/api"}, eg.Error.AdditionalProperties["details"])

		_, resp, err = b.api.GetLoginFlow(t.Context()).Id(bf.Id).Execute()
		eg = sdkModel[ory.ErrorGeneric](t, err, resp, http.StatusGone)
		assert.Equal(t, autherrors.IDFlowExpired, eg.Error.GetId())
		details, _ := eg.Error.AdditionalProperties["details"].(map[string]any)
		assert.Equal(t, e.srv.URL+"/self-service/login/browser", details["redirect_to"])
	})

	t.Run("method continues in the browser: 422 ErrorBrowserLocationChangeRequired", func(t *testing.T) {
		e := newSDKEnv(t)
		check := func(t *testing.T, err error, resp *http.Response) {
			t.Helper()
			lc := sdkModel[ory.ErrorBrowserLocationChangeRequired](t, err, resp, http.StatusUnprocessableEntity)
			sdkAssertNoStore(t, resp)
			assert.Equal(t, sdkIDPURL, lc.GetRedirectBrowserTo())
			require.NotNil(t, lc.Error)
			assert.Equal(t, autherrors.IDBrowserLocationChangeRequired, lc.Error.GetId())
			assert.Equal(t, int64(http.StatusUnprocessableEntity), lc.Error.GetCode())
			assert.Equal(t, "browser location change required", lc.Error.Message)
			assert.Empty(t, lc.AdditionalProperties, "keys the SDK does not model")
			assert.Empty(t, lc.Error.AdditionalProperties, "error keys the SDK does not model")
		}
		api := e.native()
		f, resp, err := api.CreateNativeLoginFlow(t.Context()).Execute()
		sdkOK(t, err, resp)
		_, resp, err = api.UpdateLoginFlow(t.Context()).Flow(f.Id).UpdateLoginFlowBody(sdkRedirectBody("")).Execute()
		check(t, err, resp)

		b := e.browser()
		bf, resp, err := b.api.CreateBrowserLoginFlow(t.Context()).Execute()
		sdkOK(t, err, resp)
		_, resp, err = b.api.UpdateLoginFlow(t.Context()).Flow(bf.Id).UpdateLoginFlowBody(sdkRedirectBody(sdkCSRF(t, bf))).Execute()
		check(t, err, resp)
	})

	t.Run("CSRF failure: 403 ErrorGeneric security_csrf_violation", func(t *testing.T) {
		e := newSDKEnv(t)
		b := e.browser()
		f, resp, err := b.api.CreateBrowserLoginFlow(t.Context()).Execute()
		sdkOK(t, err, resp)
		other := e.browser() // its own CSRF cookie, which f's token does not match
		_, resp, err = other.api.CreateBrowserLoginFlow(t.Context()).Execute()
		sdkOK(t, err, resp)

		cases := map[string]struct {
			api  ory.FrontendAPI
			csrf string
		}{
			"token does not match the cookie": {b.api, base64.StdEncoding.EncodeToString(make([]byte, 64))},
			"no token":                        {b.api, ""},
			"another browser's cookie":        {other.api, sdkCSRF(t, f)},
			"no cookie":                       {e.native(), sdkCSRF(t, f)},
		}
		for name, c := range cases {
			t.Run(name, func(t *testing.T) {
				_, resp, err := c.api.UpdateLoginFlow(t.Context()).Flow(f.Id).
					UpdateLoginFlowBody(sdkPasswordBody(sdkIdentifier, sdkPassword, c.csrf)).Execute()
				eg := sdkModel[ory.ErrorGeneric](t, err, resp, http.StatusForbidden)
				sdkAssertNoStore(t, resp)
				assert.Equal(t, autherrors.IDCSRFViolation, eg.Error.GetId())
				assert.Equal(t, autherrors.IDCSRFViolation, resp.Header.Get("Ory-Error-Id"))
			})
		}
		assert.Nil(t, b.cookie(sdkSessionCookie))
	})

	t.Run("ToSession without credentials: 401 ErrorGeneric session_inactive", func(t *testing.T) {
		e := newSDKEnv(t)
		for name, api := range map[string]ory.FrontendAPI{"native": e.native(), "browser": e.browser().api} {
			t.Run(name, func(t *testing.T) {
				_, resp, err := api.ToSession(t.Context()).Execute()
				eg := sdkModel[ory.ErrorGeneric](t, err, resp, http.StatusUnauthorized)
				sdkAssertNoStore(t, resp)
				assert.Equal(t, autherrors.IDSessionInactive, eg.Error.GetId())
				assert.Equal(t, "request does not have a valid authentication session", eg.Error.GetMessage())
				// The SDK's ErrorGeneric.error (GenericErrorContent) models id,
				// message, status_code, error, error_description and debug;
				// Kratos' (and our) code, status and reason are only in its
				// AdditionalProperties.
				assert.Nil(t, eg.Error.StatusCode)
				assert.Equal(t, map[string]any{
					"code":   float64(http.StatusUnauthorized),
					"status": "Unauthorized",
					"reason": "No valid session credentials found in the request.",
				}, eg.Error.AdditionalProperties)
			})
		}
		_, resp, err := e.native().ToSession(t.Context()).XSessionToken("not-a-token").Execute()
		eg := sdkModel[ory.ErrorGeneric](t, err, resp, http.StatusUnauthorized)
		assert.Equal(t, autherrors.IDSessionInactive, eg.Error.GetId())
	})
}

// TestSDKDeliberateDifferences shows what an SDK user receives where
// CONTRACT Part 1 deliberately answers differently from Kratos, and how to
// handle it.
//
// (a) Submitting while already signed in (Part 1 rule 6). Kratos answers a
// 400 LoginFlow carrying message 4000001; authflow answers the 400 error
// envelope with error.id "session_already_available", as it does at flow
// creation. UpdateLoginFlow declares LoginFlow for 400, so the SDK cannot
// decode it: the returned error is a *client.GenericOpenAPIError whose
// Error() is "no value given for required property expires_at" and whose
// Model() is nil. Detect it from the raw body:
//
//	_, resp, err := api.UpdateLoginFlow(ctx).Flow(id).UpdateLoginFlowBody(body).Execute()
//	var apiErr *client.GenericOpenAPIError
//	if errors.As(err, &apiErr) && resp != nil && resp.StatusCode == http.StatusBadRequest {
//		if flow, ok := apiErr.Model().(client.LoginFlow); ok {
//			// validation errors or wrong credentials: render flow.Ui
//		} else {
//			var e client.ErrorGeneric
//			if json.Unmarshal(apiErr.Body(), &e) == nil && e.Error.GetId() == "session_already_available" {
//				// already signed in: continue to the app (or create the flow with Refresh(true))
//			}
//		}
//	}
//
// Better still, avoid it: call ToSession first, or create the flow while
// signed in, where CreateNativeLoginFlow / CreateBrowserLoginFlow declare
// ErrorGeneric for 400 and the SDK decodes session_already_available
// normally.
//
// (b) An expired browser flow submitted as JSON (an SPA; Part 1 rule 4).
// Kratos answers 410 with use_flow_id; authflow answers, as the published
// API description says, 303 See Other to {login UI}?flow=<new id>, a fresh
// flow carrying message 4010001 and bound to the same CSRF cookie. Give the
// SDK an http.Client whose CheckRedirect returns http.ErrUseLastResponse:
// UpdateLoginFlow then returns a nil result, the 303 *http.Response and a
// *client.GenericOpenAPIError whose Error() is "303 See Other" (Model() is
// an empty ErrorGeneric, Body() is empty). Read the new flow id from the
// Location header and fetch it with GetLoginFlow:
//
//	if resp != nil && resp.StatusCode == http.StatusSeeOther {
//		loc, _ := url.Parse(resp.Header.Get("Location"))
//		newFlowID := loc.Query().Get("flow")
//		// render the new flow (it explains that the old one expired), or send the browser to loc
//	}
//
// With a client that follows redirects, the SDK follows the 303 to the
// login UI and tries to decode that page as SuccessfulNativeLogin (for an
// HTML page: error "undefined response type"); the new flow id is then in
// resp.Request.URL's "flow" query parameter. API (native) flows are not
// affected: they get 410 with use_flow_id, as with Kratos.
func TestSDKDeliberateDifferences(t *testing.T) {
	t.Run("already signed in, native", func(t *testing.T) {
		e := newSDKEnv(t)
		api := e.native()
		pending, resp, err := api.CreateNativeLoginFlow(t.Context()).Execute()
		sdkOK(t, err, resp)
		f, resp, err := api.CreateNativeLoginFlow(t.Context()).Execute()
		sdkOK(t, err, resp)
		ok, resp, err := api.UpdateLoginFlow(t.Context()).Flow(f.Id).
			UpdateLoginFlowBody(sdkPasswordBody(sdkIdentifier, sdkPassword, "")).Execute()
		sdkOK(t, err, resp)
		token := ok.GetSessionToken()

		// At creation the SDK's 400 type is ErrorGeneric: it decodes.
		_, resp, err = api.CreateNativeLoginFlow(t.Context()).XSessionToken(token).Execute()
		eg := sdkModel[ory.ErrorGeneric](t, err, resp, http.StatusBadRequest)
		assert.Equal(t, autherrors.IDSessionAlreadyAvailable, eg.Error.GetId())

		// At submit the SDK's 400 type is LoginFlow: Model() is nil.
		_, resp, err = api.UpdateLoginFlow(t.Context()).Flow(pending.Id).XSessionToken(token).
			UpdateLoginFlowBody(sdkPasswordBody(sdkIdentifier, sdkPassword, "")).Execute()
		sdkAssertAlreadySignedInOnSubmit(t, err, resp)
	})

	t.Run("already signed in, browser JSON", func(t *testing.T) {
		e := newSDKEnv(t)
		b := e.browser()
		pending, resp, err := b.api.CreateBrowserLoginFlow(t.Context()).Execute()
		sdkOK(t, err, resp)
		f, resp, err := b.api.CreateBrowserLoginFlow(t.Context()).Execute()
		sdkOK(t, err, resp)
		_, resp, err = b.api.UpdateLoginFlow(t.Context()).Flow(f.Id).
			UpdateLoginFlowBody(sdkPasswordBody(sdkIdentifier, sdkPassword, sdkCSRF(t, f))).Execute()
		sdkOK(t, err, resp)
		require.NotNil(t, b.cookie(sdkSessionCookie))

		_, resp, err = b.api.CreateBrowserLoginFlow(t.Context()).Execute()
		eg := sdkModel[ory.ErrorGeneric](t, err, resp, http.StatusBadRequest)
		assert.Equal(t, autherrors.IDSessionAlreadyAvailable, eg.Error.GetId())

		_, resp, err = b.api.UpdateLoginFlow(t.Context()).Flow(pending.Id).
			UpdateLoginFlowBody(sdkPasswordBody(sdkIdentifier, sdkPassword, sdkCSRF(t, pending))).Execute()
		sdkAssertAlreadySignedInOnSubmit(t, err, resp)
	})

	t.Run("expired browser flow, JSON: 303 to the login UI with a new flow", func(t *testing.T) {
		e := newSDKEnv(t)
		b := e.browser()
		f, resp, err := b.api.CreateBrowserLoginFlow(t.Context()).Execute()
		sdkOK(t, err, resp)
		e.expire()

		got, resp, err := b.api.UpdateLoginFlow(t.Context()).Flow(f.Id).
			UpdateLoginFlowBody(sdkPasswordBody(sdkIdentifier, sdkPassword, sdkCSRF(t, f))).Execute()
		assert.Nil(t, got)
		require.NotNil(t, resp)
		require.Equal(t, http.StatusSeeOther, resp.StatusCode)
		sdkAssertNoStore(t, resp)
		ge := sdkAPIError(t, err)
		assert.Equal(t, "303 See Other", ge.Error())
		assert.Empty(t, ge.Body())
		assert.Equal(t, ory.ErrorGeneric{}, ge.Model(), "the SDK 'decodes' the empty body into a zero ErrorGeneric")

		loc, err := url.Parse(resp.Header.Get("Location"))
		require.NoError(t, err)
		assert.Equal(t, sdkLoginUI, (&url.URL{Scheme: loc.Scheme, Host: loc.Host, Path: loc.Path}).String())
		newID := loc.Query().Get("flow")
		require.NotEmpty(t, newID)
		assert.NotEqual(t, f.Id, newID)

		nf, resp, err := b.api.GetLoginFlow(t.Context()).Id(newID).Execute()
		sdkOK(t, err, resp)
		sdkAssertFlow(t, e, nf, "browser")
		require.Len(t, nf.Ui.Messages, 1)
		assert.Equal(t, int64(flow.IDFlowExpired), nf.Ui.Messages[0].Id)

		// The new flow logs in with the same cookie jar.
		ok, resp, err := b.api.UpdateLoginFlow(t.Context()).Flow(newID).
			UpdateLoginFlowBody(sdkPasswordBody(sdkIdentifier, sdkPassword, sdkCSRF(t, nf))).Execute()
		sdkOK(t, err, resp)
		sdkAssertSession(t, e, &ok.Session)
	})

	t.Run("expired browser flow, JSON, client following redirects", func(t *testing.T) {
		e := newSDKEnv(t)
		jar, err := cookiejar.New(nil)
		require.NoError(t, err)
		// Redirects followed (Go's default policy); the login UI's host is
		// served by a stub page.
		api := e.client(&http.Client{Jar: jar, Transport: sdkUITransport{next: http.DefaultTransport}}).FrontendAPI
		f, resp, err := api.CreateBrowserLoginFlow(t.Context()).Execute()
		sdkOK(t, err, resp)
		e.expire()

		got, resp, err := api.UpdateLoginFlow(t.Context()).Flow(f.Id).
			UpdateLoginFlowBody(sdkPasswordBody(sdkIdentifier, sdkPassword, sdkCSRF(t, f))).Execute()
		assert.Nil(t, got)
		require.NotNil(t, resp)
		assert.Equal(t, http.StatusOK, resp.StatusCode, "the login UI's page")
		assert.EqualError(t, err, "undefined response type")
		assert.Equal(t, "ui.example.com", resp.Request.URL.Host)
		newID := resp.Request.URL.Query().Get("flow")
		require.NotEmpty(t, newID)
		nf, resp, err := api.GetLoginFlow(t.Context()).Id(newID).Execute()
		sdkOK(t, err, resp)
		require.Len(t, nf.Ui.Messages, 1)
		assert.Equal(t, int64(flow.IDFlowExpired), nf.Ui.Messages[0].Id)
	})
}

// sdkAssertAlreadySignedInOnSubmit checks what UpdateLoginFlow returns for
// the 400 session_already_available envelope (see
// TestSDKDeliberateDifferences (a)).
func sdkAssertAlreadySignedInOnSubmit(t *testing.T, err error, resp *http.Response) {
	t.Helper()
	require.NotNil(t, resp)
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	sdkAssertNoStore(t, resp)
	ge := sdkAPIError(t, err)
	assert.Nil(t, ge.Model(), "the body is not the LoginFlow the SDK declares for 400")
	assert.Equal(t, "no value given for required property expires_at", ge.Error())
	var eg ory.ErrorGeneric
	require.NoError(t, json.Unmarshal(ge.Body(), &eg), "body: %s", ge.Body())
	assert.Equal(t, autherrors.IDSessionAlreadyAvailable, eg.Error.GetId())
	assert.Equal(t, "you are already logged in", eg.Error.GetMessage())
	assert.Equal(t, autherrors.ReasonAlreadySignedIn, eg.Error.AdditionalProperties["reason"])
	assert.Equal(t, autherrors.IDSessionAlreadyAvailable, resp.Header.Get("Ory-Error-Id"))
}

// TestSDKLogout: browser logout (logout URL, then the logout itself, which
// the SDK asks for as JSON: 204) and native logout (204), each followed by
// ToSession's 401.
func TestSDKLogout(t *testing.T) {
	signIn := func(t *testing.T, b *sdkBrowser) {
		t.Helper()
		f, resp, err := b.api.CreateBrowserLoginFlow(t.Context()).Execute()
		sdkOK(t, err, resp)
		_, resp, err = b.api.UpdateLoginFlow(t.Context()).Flow(f.Id).
			UpdateLoginFlowBody(sdkPasswordBody(sdkIdentifier, sdkPassword, sdkCSRF(t, f))).Execute()
		sdkOK(t, err, resp)
		require.NotNil(t, b.cookie(sdkSessionCookie))
	}
	logoutFlow := func(t *testing.T, e *sdkEnv, b *sdkBrowser) *ory.LogoutFlow {
		t.Helper()
		lf, resp, err := b.api.CreateBrowserLogoutFlow(t.Context()).Execute()
		sdkOK(t, err, resp)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		sdkAssertNoStore(t, resp)
		// Part 1 rule 14: the logout token is derived from the session token
		// (the session cookie's value).
		sum := sha256.Sum256([]byte("authflow-logout:" + b.cookie(sdkSessionCookie).Value))
		assert.Equal(t, base64.RawURLEncoding.EncodeToString(sum[:]), lf.LogoutToken)
		assert.Equal(t, e.srv.URL+"/self-service/logout?token="+lf.LogoutToken, lf.LogoutUrl)
		assert.Empty(t, lf.AdditionalProperties, "keys the SDK does not model")
		return lf
	}

	t.Run("browser, SDK (JSON): 204", func(t *testing.T) {
		e := newSDKEnv(t)
		b := e.browser()
		signIn(t, b)
		lf := logoutFlow(t, e, b)

		resp, err := b.api.UpdateLogoutFlow(t.Context()).Token(lf.LogoutToken).Execute()
		sdkOK(t, err, resp)
		require.Equal(t, http.StatusNoContent, resp.StatusCode)
		sdkAssertNoStore(t, resp)
		assert.Nil(t, b.cookie(sdkSessionCookie), "the session cookie is cleared")

		_, resp, err = b.api.ToSession(t.Context()).Execute()
		eg := sdkModel[ory.ErrorGeneric](t, err, resp, http.StatusUnauthorized)
		assert.Equal(t, autherrors.IDSessionInactive, eg.Error.GetId())

		// Without a session there is no logout URL: 401 ErrorGeneric.
		_, resp, err = b.api.CreateBrowserLogoutFlow(t.Context()).Execute()
		eg = sdkModel[ory.ErrorGeneric](t, err, resp, http.StatusUnauthorized)
		assert.Equal(t, autherrors.IDSessionInactive, eg.Error.GetId())
	})

	t.Run("browser opens logout_url: 303", func(t *testing.T) {
		e := newSDKEnv(t)
		b := e.browser()
		signIn(t, b)
		lf := logoutFlow(t, e, b)

		// A browser following the link sends no JSON Accept header.
		resp, err := b.hc.Get(lf.LogoutUrl)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		require.Equal(t, http.StatusSeeOther, resp.StatusCode)
		assert.Equal(t, sdkDefaultReturn, resp.Header.Get("Location"))
		assert.Nil(t, b.cookie(sdkSessionCookie), "the session cookie is cleared")

		_, resp, err = b.api.ToSession(t.Context()).Execute()
		sdkModel[ory.ErrorGeneric](t, err, resp, http.StatusUnauthorized)
	})

	t.Run("browser, wrong token: 403 ErrorGeneric", func(t *testing.T) {
		e := newSDKEnv(t)
		b := e.browser()
		signIn(t, b)
		resp, err := b.api.UpdateLogoutFlow(t.Context()).Token("wrong").Execute()
		sdkModel[ory.ErrorGeneric](t, err, resp, http.StatusForbidden)
		s, resp, err := b.api.ToSession(t.Context()).Execute()
		sdkOK(t, err, resp)
		sdkAssertSession(t, e, s)
	})

	t.Run("native: 204", func(t *testing.T) {
		e := newSDKEnv(t)
		api := e.native()
		f, resp, err := api.CreateNativeLoginFlow(t.Context()).Execute()
		sdkOK(t, err, resp)
		ok, resp, err := api.UpdateLoginFlow(t.Context()).Flow(f.Id).
			UpdateLoginFlowBody(sdkPasswordBody(sdkIdentifier, sdkPassword, "")).Execute()
		sdkOK(t, err, resp)
		token := ok.GetSessionToken()

		resp, err = api.PerformNativeLogout(t.Context()).
			PerformNativeLogoutBody(*ory.NewPerformNativeLogoutBody(token)).Execute()
		sdkOK(t, err, resp)
		require.Equal(t, http.StatusNoContent, resp.StatusCode)
		sdkAssertNoStore(t, resp)

		_, resp, err = api.ToSession(t.Context()).XSessionToken(token).Execute()
		eg := sdkModel[ory.ErrorGeneric](t, err, resp, http.StatusUnauthorized)
		assert.Equal(t, autherrors.IDSessionInactive, eg.Error.GetId())

		// An unknown token: 403 ErrorGeneric.
		resp, err = api.PerformNativeLogout(t.Context()).
			PerformNativeLogoutBody(*ory.NewPerformNativeLogoutBody("unknown")).Execute()
		sdkModel[ory.ErrorGeneric](t, err, resp, http.StatusForbidden)
	})
}
