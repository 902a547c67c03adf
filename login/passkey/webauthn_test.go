package passkey_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/login/passkey"
	"github.com/authflow/authflow/login/passkey/passkeytest"
)

// secondFactorEnv has the webauthn method as second factor and the test
// identity a security key held by key.
func secondFactorEnv(t *testing.T) (*env, *passkeytest.Authenticator, *passkeytest.Key) {
	e := newEnv(t, options{webauthn: &passkey.WebAuthnConfig{}, login: func(c *login.Config) { c.RequiredAAL = login.RequireHighestAvailable }})
	sk := passkeytest.New()
	sk.UserVerified = false // a plain security key: a touch, no PIN
	sk.Transports = []string{"usb"}
	return e, sk, e.withSecurityKey(sk, false)
}

// stepUp signs in with the password in c's browser and returns the
// step-up flow.
func stepUp(t *testing.T, e *env, c *http.Client) flow.Flow {
	t.Helper()
	f := e.browserFlow(c, "")
	r := e.submitJSON(c, f.ID, map[string]any{"method": "password", "identifier": testIdentifier, "password": testPassword, "csrf_token": value(t, f, "csrf_token")}, nil)
	require.Equal(t, http.StatusUnprocessableEntity, r.Status, "an identity with a security key steps up: %s", r.Body)
	return e.browserFlow(c, "?aal=aal2")
}

// CONTRACT-PASSKEY §2.5 and §9.8: the step-up nodes, and a security key
// completing aal2.
func TestWebAuthnSecondFactor(t *testing.T) {
	e, sk, key := secondFactorEnv(t)
	c := e.browser()
	f := stepUp(t, e, c)

	assert.Contains(t, flowMessageIDs(f), flow.IDSecondFactor)
	id := f.UI.Node("identifier")
	require.NotNil(t, id)
	assert.Equal(t, "hidden", id.Attributes.Type)
	assert.Equal(t, testIdentifier, id.Attributes.Value)
	result := f.UI.Node("webauthn_login")
	require.NotNil(t, result)
	assert.Equal(t, flow.GroupWebAuthn, result.Group)
	assert.Equal(t, "", result.Attributes.Value)
	trigger := f.UI.Node("webauthn_login_trigger")
	require.NotNil(t, trigger)
	options := value(t, f, "webauthn_login_trigger")
	assert.Equal(t, "window.oryWebAuthnLogin("+options+")", trigger.Attributes.Onclick)
	assert.Equal(t, "oryWebAuthnLogin", trigger.Attributes.OnclickTrigger)
	assert.Equal(t, flow.IDSignInWithKey, trigger.Meta.Label.ID)
	o := parseOptions(t, options)
	assert.Equal(t, "discouraged", o.PublicKey.UserVerification, "as Kratos: a second factor after a password")
	assert.Equal(t, 300000, o.PublicKey.Timeout)
	require.Len(t, o.PublicKey.AllowCredentials, 1)
	assert.Nil(t, f.UI.Node("passkey_login_trigger"), "a passkey is never offered at aal2")

	// The identifier is required, as by Kratos' schema.
	b, err := sk.Get([]byte(options), origin)
	require.NoError(t, err)
	r := e.submitJSON(c, f.ID, map[string]any{"webauthn_login": string(b), "csrf_token": value(t, f, "csrf_token")}, nil)
	require.Equal(t, http.StatusBadRequest, r.Status, "body: %s", r.Body)
	f = r.Flow(t)
	require.Len(t, f.UI.Node("identifier").Messages, 1)
	assert.Equal(t, flow.IDMissing, f.UI.Node("identifier").Messages[0].ID)

	// A refused key burns the challenge: the button shows a fresh one.
	b, err = sk.Get([]byte(value(t, f, "webauthn_login_trigger")), origin, passkeytest.WithCorruptSignature())
	require.NoError(t, err)
	r = e.submitJSON(c, f.ID, map[string]any{"webauthn_login": string(b), "identifier": testIdentifier, "csrf_token": value(t, f, "csrf_token")}, nil)
	require.Equal(t, http.StatusBadRequest, r.Status, "body: %s", r.Body)
	refused := r.Flow(t)
	assert.Equal(t, []int{flow.IDInvalidWebAuthn}, flowMessageIDs(refused))
	fresh := value(t, refused, "webauthn_login_trigger")
	assert.NotEqual(t, options, fresh)
	assert.Equal(t, "window.oryWebAuthnLogin("+fresh+")", refused.UI.Node("webauthn_login_trigger").Attributes.Onclick)

	// Posted as webauthn.js does: the form, without a method field.
	b, err = sk.Get([]byte(fresh), origin)
	require.NoError(t, err)
	r = e.submitJSON(c, f.ID, map[string]any{"webauthn_login": string(b), "identifier": "ignored", "csrf_token": value(t, refused, "csrf_token")}, nil)
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	s := r.JSON(t)["session"].(map[string]any)
	assert.Equal(t, "aal2", s["authenticator_assurance_level"])
	assert.Equal(t, []string{"password/aal1", "webauthn/aal2"}, methods(t, s))
	assert.Equal(t, uint32(3), e.storedKey(e.identity.ID, passkey.CredentialWebAuthn, key.ID).Authenticator.SignCount, "the key signed three times")
}

// Kratos offers no security key to API step-up flows.
func TestWebAuthnNotOnAPIFlows(t *testing.T) {
	e, _, _ := secondFactorEnv(t)
	token := e.passwordAPI(testIdentifier, testPassword)
	r := e.do(e.api(), http.MethodGet, "/sessions/whoami", nil, map[string]string{"X-Session-Token": token})
	require.Equal(t, http.StatusForbidden, r.Status, "the security key counts as a second factor: %s", r.Body)
	f := e.apiFlow("?aal=aal2", map[string]string{"X-Session-Token": token})
	assert.Nil(t, f.UI.Node("webauthn_login_trigger"))
	assert.Empty(t, f.UI.Nodes, "nodes:null when webauthn is the only second factor")
}

// Passkeys and other identities' keys are refused at aal2; an identity
// without keys gets 4000013.
func TestWebAuthnRefusesOtherKeys(t *testing.T) {
	e, sk, _ := secondFactorEnv(t)
	passkeyKey := e.withPasskey(false)
	c := e.browser()
	f := stepUp(t, e, c)
	b, err := e.auth.Get([]byte(value(t, f, "webauthn_login_trigger")), origin, passkeytest.WithKey(passkeyKey))
	require.NoError(t, err)
	r := e.submitJSON(c, f.ID, map[string]any{"webauthn_login": string(b), "identifier": testIdentifier, "csrf_token": value(t, f, "csrf_token")}, nil)
	require.Equal(t, http.StatusBadRequest, r.Status, "body: %s", r.Body)
	assert.Equal(t, []int{flow.IDInvalidWebAuthn}, flowMessageIDs(r.Flow(t)))

	// The key is removed meanwhile.
	f = r.Flow(t)
	b, err = sk.Get([]byte(value(t, f, "webauthn_login_trigger")), origin)
	require.NoError(t, err)
	cred, err := passkey.ImportKratos(passkey.CredentialWebAuthn, passkeytest.KratosConfig([]byte("h"), false, false, e.auth.AddKey(rpID, []byte("h"))), testIdentifier)
	require.NoError(t, err)
	cred.Config = json.RawMessage(strings.Replace(string(cred.Config), `"is_passwordless":false`, `"is_passwordless":true`, 1))
	creds, err := e.identities.Credentials(t.Context(), e.identity.ID)
	require.NoError(t, err)
	for _, c := range creds {
		if c.Type == passkey.CredentialWebAuthn {
			cred.Version = c.Version
		}
	}
	require.NoError(t, e.identities.UpdateCredential(t.Context(), e.identity.ID, &cred))
	r = e.submitJSON(c, f.ID, map[string]any{"webauthn_login": string(b), "identifier": testIdentifier, "csrf_token": value(t, f, "csrf_token")}, nil)
	require.Equal(t, http.StatusBadRequest, r.Status, "body: %s", r.Body)
	assert.Equal(t, []int{flow.IDNoWebAuthnDevice}, flowMessageIDs(r.Flow(t)))
}

// CONTRACT-PASSKEY §2.6: the legacy passwordless mode, without Kratos'
// account enumeration.
func TestWebAuthnPasswordless(t *testing.T) {
	e := newEnv(t, options{webauthn: &passkey.WebAuthnConfig{Passwordless: true}})
	sk := passkeytest.New()
	e.withSecurityKey(sk, true)
	c := e.browser()
	f := e.browserFlow(c, "")
	submit := f.UI.Node("method")
	var offered bool
	for _, n := range f.UI.Nodes {
		if n.Group == flow.GroupWebAuthn && n.Attributes.Name == "method" {
			offered = n.Attributes.Value == passkey.WebAuthnID && n.Meta.Label.ID == flow.IDSignInWithKey
		}
	}
	require.NotNil(t, submit)
	assert.True(t, offered, "the method=webauthn button")

	step := func(identifier string) flow.Flow {
		t.Helper()
		f := e.browserFlow(c, "")
		r := e.submitJSON(c, f.ID, map[string]any{"method": "webauthn", "identifier": identifier, "csrf_token": value(t, f, "csrf_token")}, nil)
		require.Equal(t, http.StatusBadRequest, r.Status, "body: %s", r.Body)
		return r.Flow(t)
	}
	known, unknown := step(testIdentifier), step("nobody@example.com")
	for _, s := range []flow.Flow{known, unknown} {
		assert.Equal(t, []int{flow.IDPrepareWebAuthn}, flowMessageIDs(s))
		var names []string
		for _, n := range s.UI.Nodes {
			names = append(names, n.Attributes.Name)
		}
		assert.Equal(t, []string{"identifier", "", "webauthn_login_trigger", "webauthn_login", "csrf_token"}, names, "both steps look alike")
		assert.Equal(t, flow.IDContinueWebAuthn, s.UI.Node("webauthn_login_trigger").Meta.Label.ID)
		assert.Len(t, parseOptions(t, value(t, s, "webauthn_login_trigger")).PublicKey.AllowCredentials, 1)
	}

	b, err := sk.Get([]byte(value(t, known, "webauthn_login_trigger")), origin)
	require.NoError(t, err)
	r := e.submitJSON(c, known.ID, map[string]any{"webauthn_login": string(b), "identifier": testIdentifier, "csrf_token": value(t, known, "csrf_token")}, nil)
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	assert.Equal(t, []string{"webauthn/aal1"}, methods(t, r.JSON(t)["session"].(map[string]any)))

	// The decoy logs nobody in, whatever key answers it.
	c = e.browser()
	unknown = step("nobody@example.com")
	b, err = sk.Get([]byte(value(t, unknown, "webauthn_login_trigger")), origin, passkeytest.WithKey(sk.Keys()[0]))
	require.NoError(t, err)
	r = e.submitJSON(c, unknown.ID, map[string]any{"webauthn_login": string(b), "identifier": "nobody@example.com", "csrf_token": value(t, unknown, "csrf_token")}, nil)
	require.Equal(t, http.StatusBadRequest, r.Status, "body: %s", r.Body)
	assert.Equal(t, []int{flow.IDInvalidWebAuthn}, flowMessageIDs(r.Flow(t)))
}
