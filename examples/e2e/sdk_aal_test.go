package e2e_test

// The second factor (CONTRACT-AAL) through the official Ory Go SDK: a
// native password login of an identity with a TOTP authenticator and
// backup codes, the aal2 step-up flow created and submitted with the SDK's
// own request types, whoami under both required levels, and the refusals
// of a replayed TOTP code and a used backup code as the SDK decodes them.

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	ory "github.com/ory/client-go"
	pqtotp "github.com/pquerna/otp/totp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	autherrors "github.com/authflow/authflow/errors"
	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/login/logintest"
	"github.com/authflow/authflow/login/lookup"
	"github.com/authflow/authflow/login/totp"
	"github.com/authflow/authflow/session"
)

const (
	// sdkTOTPSecret is the identity's TOTP secret (base32).
	sdkTOTPSecret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
	sdkTOTPIssuer = "authflow.test"
)

// sdkBackupCodes are the identity's backup codes.
var sdkBackupCodes = []string{"a1b2c3d4", "e5f6g7h8", "i9j0k1l2"}

// newSDKAALEnv is newSDKEnv with the second-factor methods (totp and
// lookup, on the env's clock), Config.RequiredAAL set to requiredAAL, and
// an identity that has a password, a TOTP authenticator imported as
// Kratos exports it, and sdkBackupCodes.
func newSDKAALEnv(t *testing.T, requiredAAL string) *sdkEnv {
	t.Helper()
	e := &sdkEnv{t: t, clock: &sdkClock{t: time.Date(2026, 11, 27, 17, 4, 49, 483056979, time.UTC)}}
	mux := http.NewServeMux()
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)

	ctx := context.Background()
	ids := session.NewMemoryIdentityStore()
	pw, err := login.NewPasswordCredential(ctx, logintest.FastHasher{}, sdkIdentifier, sdkPassword)
	require.NoError(t, err)
	now := e.clock.Now()
	traits, err := json.Marshal(map[string]string{"email": sdkIdentifier})
	require.NoError(t, err)
	e.identity = &session.Identity{
		ID: sdkNewUUID(), SchemaID: "default", State: session.StateActive, StateChangedAt: &now,
		Traits: traits, CreatedAt: now, UpdatedAt: now,
	}
	kratosTOTP, err := json.Marshal(map[string]string{"totp_url": "otpauth://totp/" + sdkTOTPIssuer + ":" + sdkIdentifier +
		"?" + url.Values{"algorithm": {"SHA1"}, "digits": {"6"}, "issuer": {sdkTOTPIssuer}, "period": {"30"}, "secret": {sdkTOTPSecret}}.Encode()})
	require.NoError(t, err)
	tc, err := totp.ImportKratos(e.identity.ID, kratosTOTP)
	require.NoError(t, err)
	lc, err := lookup.NewCredential(e.identity.ID, sdkBackupCodes)
	require.NoError(t, err)
	require.NoError(t, ids.CreateIdentity(ctx, e.identity, pw, tc, lc))

	tm, err := totp.New(totp.Config{Issuer: sdkTOTPIssuer, Now: e.clock.Now})
	require.NoError(t, err)
	lm, err := lookup.New(lookup.Config{Now: e.clock.Now})
	require.NoError(t, err)
	h, err := login.New(login.Config{
		PublicURL:        e.srv.URL,
		LoginUIURL:       sdkLoginUI,
		ErrorUIURL:       sdkErrorUI,
		DefaultReturnURL: sdkDefaultReturn,
		IdentityStore:    ids,
		Hasher:           logintest.FastHasher{},
		Methods:          []login.Method{tm, lm},
		RequiredAAL:      requiredAAL,
		Now:              e.clock.Now,
		Logger:           slog.New(slog.DiscardHandler),
	})
	require.NoError(t, err)
	mux.Handle("/", h)
	return e
}

// totpCode is the TOTP code of sdkTOTPSecret at the env's clock.
func (e *sdkEnv) totpCode() string {
	e.t.Helper()
	code, err := pqtotp.GenerateCode(sdkTOTPSecret, e.clock.Now())
	require.NoError(e.t, err)
	return code
}

// sdkFirstFactor logs in natively with the password and returns the
// answer's session token and session id, checking that it is an aal1 session whose
// identity is withheld (highest_available) or present (aal1).
func sdkFirstFactor(t *testing.T, e *sdkEnv, api ory.FrontendAPI, identityShown bool) (token, sessionID string) {
	t.Helper()
	f, resp, err := api.CreateNativeLoginFlow(t.Context()).Execute()
	sdkOK(t, err, resp)
	ok, resp, err := api.UpdateLoginFlow(t.Context()).Flow(f.Id).
		UpdateLoginFlowBody(sdkPasswordBody(sdkIdentifier, sdkPassword, "")).Execute()
	sdkOK(t, err, resp)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NotEmpty(t, ok.GetSessionToken())
	assert.Equal(t, ory.AUTHENTICATORASSURANCELEVEL_AAL1, ok.Session.GetAuthenticatorAssuranceLevel())
	if identityShown {
		require.NotNil(t, ok.Session.Identity)
		assert.Equal(t, e.identity.ID, ok.Session.Identity.Id)
	} else {
		assert.Nil(t, ok.Session.Identity, "the session needs its second factor: identity null, as in Kratos")
	}
	sdkAssertKnownSession(t, &ok.Session)
	return ok.GetSessionToken(), ok.Session.Id
}

// sdkStepUpFlow creates the native aal2 flow of the session with token
// and checks that it offers both second factors.
func sdkStepUpFlow(t *testing.T, e *sdkEnv, api ory.FrontendAPI, token string) *ory.LoginFlow {
	t.Helper()
	f, resp, err := api.CreateNativeLoginFlow(t.Context()).Aal("aal2").XSessionToken(token).Execute()
	sdkOK(t, err, resp)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	sdkAssertNoStore(t, resp)
	require.NotNil(t, f.RequestedAal)
	assert.Equal(t, ory.AUTHENTICATORASSURANCELEVEL_AAL2, *f.RequestedAal)
	assert.Equal(t, "api", f.Type)
	assert.Equal(t, e.srv.URL+"/self-service/login?flow="+f.Id, f.Ui.Action)
	var ids []int64
	for _, m := range f.Ui.Messages {
		ids = append(ids, m.Id)
	}
	assert.Contains(t, ids, int64(flow.IDSecondFactor))

	var inputs []string
	for _, n := range f.Ui.Nodes {
		if a := n.Attributes.UiNodeInputAttributes; a != nil && a.Type != "hidden" {
			inputs = append(inputs, n.Group+"/"+a.Name+"/"+a.Type)
		}
	}
	assert.ElementsMatch(t, []string{"totp/totp_code/text", "totp/method/submit", "lookup_secret/lookup_secret/text", "lookup_secret/method/submit"}, inputs,
		"the step-up flow's visible nodes as group/name/type")
	assert.Equal(t, "totp", sdkNodeValue(t, f, "totp", "method"))
	assert.Equal(t, "lookup_secret", sdkNodeValue(t, f, "lookup_secret", "method"))
	for _, n := range f.Ui.Nodes {
		if a := n.Attributes.UiNodeInputAttributes; a != nil && a.Name == "identifier" {
			t.Errorf("a step-up flow never asks for the identifier")
		}
	}
	sdkAssertKnownFlow(t, f)
	return f
}

// sdkNodeValue returns the value of the input node name in group.
func sdkNodeValue(t *testing.T, f *ory.LoginFlow, group, name string) any {
	t.Helper()
	for _, n := range f.Ui.Nodes {
		if a := n.Attributes.UiNodeInputAttributes; a != nil && n.Group == group && a.Name == name {
			return a.Value
		}
	}
	t.Errorf("flow %s has no node %s/%s", f.Id, group, name)
	return nil
}

func sdkTOTPBody(code string) ory.UpdateLoginFlowBody {
	return ory.UpdateLoginFlowWithTotpMethodAsUpdateLoginFlowBody(&ory.UpdateLoginFlowWithTotpMethod{Method: "totp", TotpCode: code})
}

func sdkLookupBody(code string) ory.UpdateLoginFlowBody {
	return ory.UpdateLoginFlowWithLookupSecretMethodAsUpdateLoginFlowBody(
		&ory.UpdateLoginFlowWithLookupSecretMethod{Method: "lookup_secret", LookupSecret: code})
}

// sdkAssertStepUp checks a successful native step-up: the same session,
// now aal2 with both methods, its identity shown again, and a new token
// that works while the old one stopped working (CONTRACT-AAL Part 1 S3).
func sdkAssertStepUp(t *testing.T, e *sdkEnv, api ory.FrontendAPI, ok *ory.SuccessfulNativeLogin, oldToken, sessionID, method string) {
	t.Helper()
	require.NotNil(t, ok)
	token := ok.GetSessionToken()
	require.NotEmpty(t, token)
	assert.NotEqual(t, oldToken, token, "a step-up rotates the session token")
	assert.Empty(t, ok.ContinueWith, "continue_with is null for API flows")
	s := ok.Session
	assert.Equal(t, sessionID, s.Id, "a step-up keeps the session")
	assert.Equal(t, ory.AUTHENTICATORASSURANCELEVEL_AAL2, s.GetAuthenticatorAssuranceLevel())
	require.NotNil(t, s.Identity)
	assert.Equal(t, e.identity.ID, s.Identity.Id)
	var methods []string
	for _, m := range s.AuthenticationMethods {
		methods = append(methods, m.GetMethod()+"/"+string(m.GetAal()))
	}
	assert.Equal(t, []string{"password/aal1", method + "/aal2"}, methods)
	sdkAssertKnownSession(t, &s)

	got, resp, err := api.ToSession(t.Context()).XSessionToken(token).Execute()
	sdkOK(t, err, resp)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, sessionID, got.Id)
	assert.Equal(t, ory.AUTHENTICATORASSURANCELEVEL_AAL2, got.GetAuthenticatorAssuranceLevel())

	_, resp, err = api.ToSession(t.Context()).XSessionToken(oldToken).Execute()
	eg := sdkModel[ory.ErrorGeneric](t, err, resp, http.StatusUnauthorized)
	assert.Equal(t, autherrors.IDSessionInactive, eg.Error.GetId(), "the aal1 token stopped working")
}

// sdkAssertAAL2Required checks whoami's 403 session_aal2_required as the
// SDK decodes it (ToSession declares ErrorGeneric for 403).
func sdkAssertAAL2Required(t *testing.T, e *sdkEnv, api ory.FrontendAPI, token string) {
	t.Helper()
	_, resp, err := api.ToSession(t.Context()).XSessionToken(token).Execute()
	eg := sdkModel[ory.ErrorGeneric](t, err, resp, http.StatusForbidden)
	sdkAssertNoStore(t, resp)
	assert.Equal(t, autherrors.IDSessionAAL2Required, eg.Error.GetId())
	assert.Equal(t, autherrors.IDSessionAAL2Required, resp.Header.Get("Ory-Error-Id"))
	assert.Equal(t, "Session does not fulfill the requested Authenticator Assurance Level", eg.Error.GetMessage())
	stepUp := e.srv.URL + "/self-service/login/browser?aal=aal2"
	assert.Equal(t, map[string]any{"redirect_browser_to": stepUp}, eg.Error.AdditionalProperties["details"])
	assert.Equal(t, stepUp, eg.AdditionalProperties["redirect_browser_to"])
}

// TestSDKStepUpTOTP: password, then the aal2 flow with the SDK's
// UpdateLoginFlowWithTotpMethod: the session becomes aal2 with a new
// token. Before the step-up whoami answers 403 session_aal2_required.
func TestSDKStepUpTOTP(t *testing.T) {
	e := newSDKAALEnv(t, login.RequireHighestAvailable)
	api := e.native()
	token, sessionID := sdkFirstFactor(t, e, api, false)
	sdkAssertAAL2Required(t, e, api, token)

	f := sdkStepUpFlow(t, e, api, token)
	ok, resp, err := api.UpdateLoginFlow(t.Context()).Flow(f.Id).XSessionToken(token).
		UpdateLoginFlowBody(sdkTOTPBody(e.totpCode())).Execute()
	sdkOK(t, err, resp)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	sdkAssertNoStore(t, resp)
	assert.Empty(t, resp.Cookies(), "a native step-up sets no cookie")
	sdkAssertStepUp(t, e, api, ok, token, sessionID, "totp")
}

// TestSDKStepUpLookup: the same with UpdateLoginFlowWithLookupSecretMethod
// and a backup code.
func TestSDKStepUpLookup(t *testing.T) {
	e := newSDKAALEnv(t, login.RequireHighestAvailable)
	api := e.native()
	token, sessionID := sdkFirstFactor(t, e, api, false)
	f := sdkStepUpFlow(t, e, api, token)
	ok, resp, err := api.UpdateLoginFlow(t.Context()).Flow(f.Id).XSessionToken(token).
		UpdateLoginFlowBody(sdkLookupBody(sdkBackupCodes[1])).Execute()
	sdkOK(t, err, resp)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	sdkAssertStepUp(t, e, api, ok, token, sessionID, "lookup_secret")
}

// TestSDKSecondFactorReplay: a TOTP code that logged in once is refused in
// another session's step-up (400 LoginFlow, 4000008, as a wrong code),
// until the next time step; a backup code works once (4000012 after).
func TestSDKSecondFactorReplay(t *testing.T) {
	e := newSDKAALEnv(t, login.RequireHighestAvailable)
	api := e.native()

	t.Run("totp", func(t *testing.T) {
		code := e.totpCode()
		first, _ := sdkFirstFactor(t, e, api, false)
		f := sdkStepUpFlow(t, e, api, first)
		_, resp, err := api.UpdateLoginFlow(t.Context()).Flow(f.Id).XSessionToken(first).UpdateLoginFlowBody(sdkTOTPBody(code)).Execute()
		sdkOK(t, err, resp)

		second, _ := sdkFirstFactor(t, e, api, false)
		f = sdkStepUpFlow(t, e, api, second)
		_, resp, err = api.UpdateLoginFlow(t.Context()).Flow(f.Id).XSessionToken(second).UpdateLoginFlowBody(sdkTOTPBody(code)).Execute()
		lf := sdkModel[ory.LoginFlow](t, err, resp, http.StatusBadRequest)
		sdkAssertNoStore(t, resp)
		assert.Equal(t, f.Id, lf.Id)
		require.Len(t, lf.Ui.Messages, 1)
		assert.Equal(t, int64(flow.IDInvalidCode), lf.Ui.Messages[0].Id, "a replayed code is a wrong code")
		assert.Equal(t, "The provided authentication code is invalid, please try again.", lf.Ui.Messages[0].Text)
		assert.Equal(t, "error", lf.Ui.Messages[0].Type)
		assert.Empty(t, sdkNodeValue(t, &lf, "totp", "totp_code"), "the code is never echoed")
		sdkAssertKnownFlow(t, &lf)
		sdkAssertAAL2Required(t, e, api, second)

		e.clock.Advance(30 * time.Second)
		ok, resp, err := api.UpdateLoginFlow(t.Context()).Flow(f.Id).XSessionToken(second).UpdateLoginFlowBody(sdkTOTPBody(e.totpCode())).Execute()
		sdkOK(t, err, resp)
		assert.Equal(t, ory.AUTHENTICATORASSURANCELEVEL_AAL2, ok.Session.GetAuthenticatorAssuranceLevel(), "the next step's code works")
	})

	t.Run("lookup_secret", func(t *testing.T) {
		first, _ := sdkFirstFactor(t, e, api, false)
		f := sdkStepUpFlow(t, e, api, first)
		_, resp, err := api.UpdateLoginFlow(t.Context()).Flow(f.Id).XSessionToken(first).UpdateLoginFlowBody(sdkLookupBody(sdkBackupCodes[0])).Execute()
		sdkOK(t, err, resp)

		second, _ := sdkFirstFactor(t, e, api, false)
		f = sdkStepUpFlow(t, e, api, second)
		_, resp, err = api.UpdateLoginFlow(t.Context()).Flow(f.Id).XSessionToken(second).UpdateLoginFlowBody(sdkLookupBody(sdkBackupCodes[0])).Execute()
		lf := sdkModel[ory.LoginFlow](t, err, resp, http.StatusBadRequest)
		require.Len(t, lf.Ui.Messages, 1)
		assert.Equal(t, int64(flow.IDBackupCodeUsed), lf.Ui.Messages[0].Id)
		assert.Equal(t, "This backup recovery code has already been used.", lf.Ui.Messages[0].Text)
		assert.Equal(t, "error", lf.Ui.Messages[0].Type)
		sdkAssertKnownFlow(t, &lf)

		_, resp, err = api.UpdateLoginFlow(t.Context()).Flow(f.Id).XSessionToken(second).UpdateLoginFlowBody(sdkLookupBody("zzzzzzzz")).Execute()
		lf = sdkModel[ory.LoginFlow](t, err, resp, http.StatusBadRequest)
		require.Len(t, lf.Ui.Messages, 1)
		assert.Equal(t, int64(flow.IDBackupCodeInvalid), lf.Ui.Messages[0].Id, "an unknown code")
	})
}

// TestSDKRequiredAAL: whoami with the aal1 token of an identity that has a
// second factor: 403 session_aal2_required under highest_available, 200
// (aal1) under aal1, where the password login shows the identity.
func TestSDKRequiredAAL(t *testing.T) {
	t.Run(login.RequireHighestAvailable, func(t *testing.T) {
		e := newSDKAALEnv(t, login.RequireHighestAvailable)
		api := e.native()
		token, _ := sdkFirstFactor(t, e, api, false)
		sdkAssertAAL2Required(t, e, api, token)
	})
	t.Run(login.RequireAAL1, func(t *testing.T) {
		e := newSDKAALEnv(t, login.RequireAAL1)
		api := e.native()
		token, sessionID := sdkFirstFactor(t, e, api, true)
		s, resp, err := api.ToSession(t.Context()).XSessionToken(token).Execute()
		sdkOK(t, err, resp)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, ory.AUTHENTICATORASSURANCELEVEL_AAL1, s.GetAuthenticatorAssuranceLevel())
		require.NotNil(t, s.Identity)
		assert.Equal(t, e.identity.ID, s.Identity.Id)

		// The step-up is still offered, and makes the session aal2.
		f := sdkStepUpFlow(t, e, api, token)
		ok, resp, err := api.UpdateLoginFlow(t.Context()).Flow(f.Id).XSessionToken(token).UpdateLoginFlowBody(sdkTOTPBody(e.totpCode())).Execute()
		sdkOK(t, err, resp)
		assert.Equal(t, sessionID, s.Id)
		sdkAssertStepUp(t, e, api, ok, token, sessionID, "totp")
	})
}
