package e2e_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	ory "github.com/ory/client-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/login/logintest"
	"github.com/authflow/authflow/login/passkey"
	"github.com/authflow/authflow/login/passkey/passkeytest"
	"github.com/authflow/authflow/session"
)

// The origin the SDK suite's passkey ceremonies run on.
const sdkPasskeyOrigin = "http://localhost:4455"

// newSDKPasskeyEnv is newSDKEnv with the passkey method and the webauthn
// method as second factor; the identity has a password, a passkey and a
// security key, held by the returned authenticators.
func newSDKPasskeyEnv(t *testing.T) (*sdkEnv, *passkeytest.Authenticator, *passkeytest.Authenticator) {
	t.Helper()
	e := &sdkEnv{t: t, clock: &sdkClock{t: time.Date(2026, 12, 3, 17, 4, 49, 0, time.UTC)}}
	mux := http.NewServeMux()
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)

	ctx := context.Background()
	ids := session.NewMemoryIdentityStore()
	pw, err := login.NewPasswordCredential(ctx, logintest.FastHasher{}, sdkIdentifier, sdkPassword)
	require.NoError(t, err)
	now := e.clock.Now()
	e.identity = &session.Identity{
		ID: sdkNewUUID(), SchemaID: "default", State: session.StateActive, StateChangedAt: &now,
		Traits: json.RawMessage(`{"email":"` + sdkIdentifier + `"}`), CreatedAt: now, UpdatedAt: now,
	}
	phone, key := passkeytest.New(), passkeytest.New()
	key.UserVerified = false
	handle := []byte(strings.Repeat("p", 64))
	pk, err := passkey.ImportKratos(passkey.CredentialPasskey, passkeytest.KratosConfig(handle, true, false, phone.AddKey("localhost", handle)), "")
	require.NoError(t, err)
	sk, err := passkey.ImportKratos(passkey.CredentialWebAuthn, passkeytest.KratosConfig([]byte("sk"), false, false, key.AddKey("localhost", []byte("sk"))), sdkIdentifier)
	require.NoError(t, err)
	require.NoError(t, ids.CreateIdentity(ctx, e.identity, pw, pk, sk))

	rp := passkey.Config{RPID: "localhost", RPDisplayName: "SDK", Origins: []string{sdkPasskeyOrigin}, Identities: ids, Now: e.clock.Now}
	pm, err := passkey.New(rp)
	require.NoError(t, err)
	wm, err := passkey.NewWebAuthn(passkey.WebAuthnConfig{Config: rp})
	require.NoError(t, err)
	h, err := login.New(login.Config{
		PublicURL:        e.srv.URL,
		LoginUIURL:       sdkLoginUI,
		ErrorUIURL:       sdkErrorUI,
		DefaultReturnURL: sdkDefaultReturn,
		IdentityStore:    ids,
		Hasher:           logintest.FastHasher{},
		Methods:          []login.Method{pm, wm},
		RequiredAAL:      login.RequireHighestAvailable,
		Now:              e.clock.Now,
		Logger:           slog.New(slog.DiscardHandler),
	})
	require.NoError(t, err)
	mux.Handle("/", h)
	return e, phone, key
}

// The SDK decodes passkey flows (inputs with their trigger names, the
// script node in browser flows) and its passkey body logs in; a passkey
// does not satisfy aal2, and a security key steps the browser session up.
func TestSDKPasskeyAndSecurityKey(t *testing.T) {
	e, phone, key := newSDKPasskeyEnv(t)
	ctx := context.Background()

	// Native: the inputs without JavaScript, and a refused assertion.
	api := e.native()
	f, resp, err := api.CreateNativeLoginFlow(ctx).Execute()
	sdkOK(t, err, resp)
	trigger := sdkInput(t, f, "passkey_login_trigger")
	assert.Equal(t, "oryPasskeyLogin", string(trigger.GetOnclickTrigger()))
	assert.Empty(t, trigger.GetOnclick())
	challenge, _ := sdkInput(t, f, "passkey_challenge").Value.(string)
	bad, err := phone.Get([]byte(challenge), sdkPasskeyOrigin, passkeytest.WithCorruptSignature())
	require.NoError(t, err)
	m := ory.NewUpdateLoginFlowWithPasskeyMethod("passkey")
	m.SetPasskeyLogin(string(bad))
	_, resp, err = api.UpdateLoginFlow(ctx).Flow(f.Id).UpdateLoginFlowBody(ory.UpdateLoginFlowWithPasskeyMethodAsUpdateLoginFlowBody(m)).Execute()
	refused := sdkModel[ory.LoginFlow](t, err, resp, http.StatusBadRequest)
	require.Len(t, refused.Ui.Messages, 1)
	assert.Equal(t, int64(4000043), refused.Ui.Messages[0].Id)

	// The fresh challenge logs in; the identity has a second factor.
	challenge, _ = sdkInput(t, &refused, "passkey_challenge").Value.(string)
	good, err := phone.Get([]byte(challenge), sdkPasskeyOrigin)
	require.NoError(t, err)
	m.SetPasskeyLogin(string(good))
	ok, resp, err := api.UpdateLoginFlow(ctx).Flow(f.Id).UpdateLoginFlowBody(ory.UpdateLoginFlowWithPasskeyMethodAsUpdateLoginFlowBody(m)).Execute()
	sdkOK(t, err, resp)
	assert.Equal(t, ory.AUTHENTICATORASSURANCELEVEL_AAL1, ok.Session.GetAuthenticatorAssuranceLevel())
	require.Len(t, ok.Session.AuthenticationMethods, 1)
	assert.Equal(t, "passkey", ok.Session.AuthenticationMethods[0].GetMethod())

	// Browser: password, then the security key's step-up.
	b := e.browser()
	bf, resp, err := b.api.CreateBrowserLoginFlow(ctx).Execute()
	sdkOK(t, err, resp)
	var script *ory.UiNodeScriptAttributes
	for _, n := range bf.Ui.Nodes {
		if n.Attributes.UiNodeScriptAttributes != nil {
			script = n.Attributes.UiNodeScriptAttributes
		}
	}
	require.NotNil(t, script, "the browser flow carries the WebAuthn script")
	assert.True(t, strings.HasPrefix(script.Src, e.srv.URL+"/.well-known/ory/webauthn.js"))
	assert.True(t, strings.HasPrefix(script.Integrity, "sha512-"))
	assert.Equal(t, "window.oryPasskeyLogin()", sdkInput(t, bf, "passkey_login_trigger").GetOnclick())
	_, resp, err = b.api.UpdateLoginFlow(ctx).Flow(bf.Id).UpdateLoginFlowBody(sdkPasswordBody(sdkIdentifier, sdkPassword, sdkCSRF(t, bf))).Execute()
	require.Error(t, err)
	require.Equal(t, http.StatusUnprocessableEntity, resp.StatusCode, "sent on to the step-up")

	sf, resp, err := b.api.CreateBrowserLoginFlow(ctx).Aal("aal2").Execute()
	sdkOK(t, err, resp)
	kt := sdkInput(t, sf, "webauthn_login_trigger")
	assert.Equal(t, "oryWebAuthnLogin", string(kt.GetOnclickTrigger()))
	options, _ := kt.Value.(string)
	assert.Equal(t, "window.oryWebAuthnLogin("+options+")", kt.GetOnclick())
	assertion, err := key.Get([]byte(options), sdkPasskeyOrigin)
	require.NoError(t, err)
	wm := ory.NewUpdateLoginFlowWithWebAuthnMethod(sdkIdentifier, "webauthn")
	wm.SetWebauthnLogin(string(assertion))
	wm.SetCsrfToken(sdkCSRF(t, sf))
	ok, resp, err = b.api.UpdateLoginFlow(ctx).Flow(sf.Id).UpdateLoginFlowBody(ory.UpdateLoginFlowWithWebAuthnMethodAsUpdateLoginFlowBody(wm)).Execute()
	sdkOK(t, err, resp)
	assert.Equal(t, ory.AUTHENTICATORASSURANCELEVEL_AAL2, ok.Session.GetAuthenticatorAssuranceLevel())
	var got []string
	for _, am := range ok.Session.AuthenticationMethods {
		got = append(got, am.GetMethod()+"/"+string(am.GetAal()))
	}
	assert.Equal(t, []string{"password/aal1", "webauthn/aal2"}, got)
}
