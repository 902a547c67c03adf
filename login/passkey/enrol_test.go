package passkey_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/login/passkey"
	"github.com/authflow/authflow/login/passkey/passkeytest"
	"github.com/authflow/authflow/session"
)

// creation parses enrolment options.
type creation struct {
	PublicKey struct {
		Challenge string `json:"challenge"`
		RP        struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"rp"`
		User struct {
			ID          string `json:"id"`
			Name        string `json:"name"`
			DisplayName string `json:"displayName"`
		} `json:"user"`
		ExcludeCredentials []struct {
			ID string `json:"id"`
		} `json:"excludeCredentials"`
		AuthenticatorSelection struct {
			ResidentKey      string `json:"residentKey"`
			UserVerification string `json:"userVerification"`
		} `json:"authenticatorSelection"`
	} `json:"publicKey"`
}

// begin starts an enrolment in c's session, as a page's script does.
func (e *env) begin(c *http.Client, prefix string) *result {
	e.t.Helper()
	return e.do(c, http.MethodPost, prefix+"/begin", nil, map[string]string{"Origin": origin, "Accept": "application/json"})
}

func (e *env) finish(c *http.Client, prefix string, attestation []byte, name string) *result {
	e.t.Helper()
	body, err := json.Marshal(map[string]any{"credential": json.RawMessage(attestation), "display_name": name})
	require.NoError(e.t, err)
	return e.do(c, http.MethodPost, prefix+"/finish", bytes.NewReader(body), map[string]string{"Origin": origin, "Content-Type": "application/json"})
}

// enrol runs begin and finish in c's session with auth.
func (e *env) enrol(c *http.Client, auth *passkeytest.Authenticator, prefix, name string) (*result, *passkeytest.Key) {
	e.t.Helper()
	r := e.begin(c, prefix)
	require.Equal(e.t, http.StatusOK, r.Status, "body: %s", r.Body)
	att, key, err := auth.Create(r.Body, origin)
	require.NoError(e.t, err)
	return e.finish(c, prefix, att, name), key
}

// §6 and issue 13 point 4: a signed-in user enrols a passkey and signs in
// with it; the stored credential has Kratos' shape.
func TestEnrolPasskey(t *testing.T) {
	e := newEnv(t, options{})
	c := e.browser()
	e.passwordBrowser(c)

	r := e.begin(c, "/passkeys")
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	assert.Equal(t, "no-store", r.Header.Get("Cache-Control"))
	var o creation
	require.NoError(t, json.Unmarshal(r.Body, &o))
	assert.Equal(t, rpID, o.PublicKey.RP.ID)
	assert.Equal(t, "Example", o.PublicKey.RP.Name)
	assert.Equal(t, testIdentifier, o.PublicKey.User.Name)
	assert.Equal(t, "required", o.PublicKey.AuthenticatorSelection.ResidentKey)
	assert.Equal(t, "required", o.PublicKey.AuthenticatorSelection.UserVerification)
	assert.Empty(t, o.PublicKey.ExcludeCredentials)
	handle, err := base64.RawURLEncoding.DecodeString(o.PublicKey.User.ID)
	require.NoError(t, err)
	assert.Regexp(t, `^[a-zA-Z0-9]{64}$`, string(handle), "a user handle is 64 alphanumerics, as Kratos makes them")

	att, key, err := e.auth.Create(r.Body, origin)
	require.NoError(t, err)
	r = e.finish(c, "/passkeys", att, "My laptop")
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	view := r.JSON(t)["key"].(map[string]any)
	assert.Equal(t, fmt.Sprintf("%x", key.ID), view["id"])
	assert.Equal(t, "My laptop", view["display_name"])
	assert.Equal(t, true, view["user_verified"])

	// Kratos' shape (CONTRACT-PASSKEY §4.1 and §6).
	creds, err := e.identities.Credentials(context.Background(), e.identity.ID)
	require.NoError(t, err)
	var pk *session.Credential
	for i := range creds {
		if creds[i].Type == passkey.CredentialPasskey {
			pk = &creds[i]
		}
	}
	require.NotNil(t, pk)
	assert.Equal(t, []string{string(handle)}, pk.Identifiers)
	var raw map[string]any
	require.NoError(t, json.Unmarshal(pk.Config, &raw))
	assert.Equal(t, base64.StdEncoding.EncodeToString(handle), raw["user_handle"])
	stored := raw["credentials"].([]any)[0].(map[string]any)
	assert.Equal(t, base64.StdEncoding.EncodeToString(key.ID), stored["id"])
	assert.Equal(t, "none", stored["attestation_type"])
	assert.Equal(t, true, stored["is_passwordless"])
	assert.Equal(t, "2026-12-03T16:00:00Z", stored["added_at"])
	assert.Equal(t, map[string]any{"user_present": true, "user_verified": true, "backup_eligible": false, "backup_state": false}, stored["flags"])
	assert.Equal(t, []any{"internal"}, stored["transport"])
	assert.Equal(t, map[string]any{"aaguid": base64.StdEncoding.EncodeToString(make([]byte, 16)), "sign_count": float64(0), "clone_warning": false}, stored["authenticator"])

	// The new passkey logs in.
	r = e.passkeyLoginAPI()
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	assert.Equal(t, e.identity.ID, r.JSON(t)["session"].(map[string]any)["identity"].(map[string]any)["id"])

	// A second enrolment keeps the handle and excludes the first key.
	r = e.begin(c, "/passkeys")
	require.Equal(t, http.StatusOK, r.Status)
	require.NoError(t, json.Unmarshal(r.Body, &o))
	assert.Equal(t, base64.RawURLEncoding.EncodeToString(handle), o.PublicKey.User.ID)
	require.Len(t, o.PublicKey.ExcludeCredentials, 1)
	_, _, err = e.auth.Create(r.Body, origin)
	require.Error(t, err, "the authenticator refuses to enrol a key it holds")

	// The list shows it.
	r = e.do(c, http.MethodGet, "/passkeys/", nil, nil)
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	assert.Len(t, r.JSON(t)["keys"], 1)
}

func TestEnrolmentIsSingleUseAndBound(t *testing.T) {
	e := newEnv(t, options{})
	c := e.browser()
	e.passwordBrowser(c)

	// Finish without begin.
	att, _, err := passkeytest.New().Create([]byte(`{"publicKey":{"challenge":"AAAA","rp":{"id":"localhost"},"user":{"id":"AAAA"}}}`), origin)
	require.NoError(t, err)
	r := e.finish(c, "/passkeys", att, "")
	require.Equal(t, http.StatusBadRequest, r.Status, "body: %s", r.Body)

	// Finishing twice.
	r = e.begin(c, "/passkeys")
	require.Equal(t, http.StatusOK, r.Status)
	att, _, err = e.auth.Create(r.Body, origin)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, e.finish(c, "/passkeys", att, "").Status)
	r = e.finish(c, "/passkeys", att, "")
	require.Equal(t, http.StatusBadRequest, r.Status, "the ceremony is used up: %s", r.Body)

	// Another session of the same identity cannot finish this one's.
	r = e.begin(c, "/passkeys")
	require.Equal(t, http.StatusOK, r.Status)
	att, _, err = passkeytest.New().Create(r.Body, origin)
	require.NoError(t, err)
	other := e.browser()
	e.passwordBrowser(other)
	r = e.finish(other, "/passkeys", att, "")
	require.Equal(t, http.StatusBadRequest, r.Status, "body: %s", r.Body)

	// A wrong origin uses the ceremony up without enrolling.
	r = e.begin(c, "/passkeys")
	require.Equal(t, http.StatusOK, r.Status)
	bad, _, err := passkeytest.New().Create(r.Body, "https://evil.example")
	require.NoError(t, err)
	r = e.finish(c, "/passkeys", bad, "")
	require.Equal(t, http.StatusBadRequest, r.Status, "body: %s", r.Body)
	r = e.finish(c, "/passkeys", att, "")
	require.Equal(t, http.StatusBadRequest, r.Status, "body: %s", r.Body)

	// An expired ceremony.
	r = e.begin(c, "/passkeys")
	require.Equal(t, http.StatusOK, r.Status)
	att, _, err = passkeytest.New().Create(r.Body, origin)
	require.NoError(t, err)
	e.clock.Advance(5 * time.Minute)
	r = e.finish(c, "/passkeys", att, "")
	require.Equal(t, http.StatusBadRequest, r.Status, "body: %s", r.Body)

	r = e.do(c, http.MethodGet, "/passkeys/", nil, nil)
	assert.Len(t, r.JSON(t)["keys"], 1, "only the first enrolment stored a key")
}

func TestEnrolmentGuards(t *testing.T) {
	e := newEnv(t, options{})

	r := e.begin(e.browser(), "/passkeys")
	assert.Equal(t, http.StatusUnauthorized, r.Status, "no session: %s", r.Body)
	assert.Equal(t, "session_inactive", r.JSON(t)["error"].(map[string]any)["id"])

	c := e.browser()
	e.passwordBrowser(c)
	r = e.do(c, http.MethodPost, "/passkeys/begin", nil, map[string]string{"Origin": "https://evil.example"})
	require.Equal(t, http.StatusForbidden, r.Status, "body: %s", r.Body)
	assert.Equal(t, "security_csrf_violation", r.JSON(t)["error"].(map[string]any)["id"])
	r = e.do(c, http.MethodPost, "/passkeys/remove", strings.NewReader("passkey_remove=00"), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	require.Equal(t, http.StatusForbidden, r.Status, "a form without Origin is refused: %s", r.Body)

	e.clock.Advance(16 * time.Minute)
	r = e.begin(c, "/passkeys")
	require.Equal(t, http.StatusForbidden, r.Status, "body: %s", r.Body)
	assert.Equal(t, "session_refresh_required", r.JSON(t)["error"].(map[string]any)["id"])
}

func TestRemoveKey(t *testing.T) {
	e := newEnv(t, options{})
	c := e.browser()
	e.passwordBrowser(c)
	r, key := e.enrol(c, e.auth, "/passkeys", "laptop")
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)

	r = e.do(c, http.MethodDelete, fmt.Sprintf("/passkeys/keys/%x", []byte("nope")), nil, map[string]string{"Origin": origin})
	require.Equal(t, http.StatusNotFound, r.Status, "body: %s", r.Body)

	// A form, as a settings page posts it.
	form := url.Values{"passkey_remove": {fmt.Sprintf("%x", key.ID)}, "return_to": {"/settings"}}
	r = e.do(c, http.MethodPost, "/passkeys/remove", strings.NewReader(form.Encode()), map[string]string{"Origin": origin, "Content-Type": "application/x-www-form-urlencoded"})
	require.Equal(t, http.StatusSeeOther, r.Status, "body: %s", r.Body)
	assert.Equal(t, "/settings", r.Header.Get("Location"))

	r = e.passkeyLoginAPI()
	require.Equal(t, http.StatusBadRequest, r.Status, "a removed passkey no longer logs in: %s", r.Body)
	assert.Equal(t, []int{flow.IDNoSecurityKey}, flowMessageIDs(r.Flow(t)))
}

// An identity whose only way in is its passkey keeps it.
func TestRemoveLastFactorIsRefused(t *testing.T) {
	e := newEnv(t, options{})
	now := e.clock.Now()
	solo := &session.Identity{ID: "4a7c5c1e-3f0e-4d1a-9a7d-2f9f3f6f1b10", SchemaID: "default", State: session.StateActive, StateChangedAt: &now, Traits: json.RawMessage(`{"email":"solo@example.com"}`), CreatedAt: now, UpdatedAt: now}
	require.NoError(t, e.identities.CreateIdentity(context.Background(), solo))
	handle := []byte(strings.Repeat("s", 64))
	key := e.importPasskey(solo, handle, false)

	c := e.browser()
	f := e.browserFlow(c, "")
	b, err := e.auth.Get([]byte(value(t, f, "passkey_challenge")), origin, passkeytest.WithKey(key))
	require.NoError(t, err)
	r := e.submitJSON(c, f.ID, map[string]any{"passkey_login": string(b), "csrf_token": value(t, f, "csrf_token")}, nil)
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)

	r = e.do(c, http.MethodDelete, fmt.Sprintf("/passkeys/keys/%x", key.ID), nil, map[string]string{"Origin": origin})
	require.Equal(t, http.StatusConflict, r.Status, "body: %s", r.Body)
	r = e.do(c, http.MethodGet, "/passkeys/", nil, nil)
	assert.Len(t, r.JSON(t)["keys"], 1)
}

// A security key enrolled for the second factor steps a session up.
func TestEnrolSecurityKey(t *testing.T) {
	e := newEnv(t, options{webauthn: &passkey.WebAuthnConfig{}})
	sk := passkeytest.New()
	sk.UserVerified = false
	c := e.browser()
	e.passwordBrowser(c)
	r := e.begin(c, "/security-keys")
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	var o creation
	require.NoError(t, json.Unmarshal(r.Body, &o))
	assert.Equal(t, "discouraged", o.PublicKey.AuthenticatorSelection.ResidentKey)
	assert.Equal(t, "discouraged", o.PublicKey.AuthenticatorSelection.UserVerification)
	att, _, err := sk.Create(r.Body, origin)
	require.NoError(t, err)
	form := url.Values{"webauthn_register": {string(att)}, "webauthn_register_displayname": {"YubiKey"}, "return_to": {"/settings"}}
	r = e.do(c, http.MethodPost, "/security-keys/finish", strings.NewReader(form.Encode()), map[string]string{"Origin": origin, "Content-Type": "application/x-www-form-urlencoded"})
	require.Equal(t, http.StatusSeeOther, r.Status, "body: %s", r.Body)
	assert.Equal(t, "/settings", r.Header.Get("Location"))

	keys, err := e.webauthn.Keys(context.Background(), e.identity.ID)
	require.NoError(t, err)
	require.Len(t, keys, 1)
	assert.Equal(t, "YubiKey", keys[0].DisplayName)
	assert.False(t, keys[0].IsPasswordless)

	f := e.browserFlow(c, "?aal=aal2")
	b, err := sk.Get([]byte(value(t, f, "webauthn_login_trigger")), origin)
	require.NoError(t, err)
	r = e.submitJSON(c, f.ID, map[string]any{"webauthn_login": string(b), "identifier": testIdentifier, "csrf_token": value(t, f, "csrf_token")}, nil)
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	assert.Equal(t, "aal2", r.JSON(t)["session"].(map[string]any)["authenticator_assurance_level"])
}

// A passwordless security key is found by the normalised identifier,
// whatever the case of the identity's email.
func TestEnrolPasswordlessKeyNormalisesTheIdentifier(t *testing.T) {
	e := newEnv(t, options{webauthn: &passkey.WebAuthnConfig{Passwordless: true}})
	carol := e.addIdentity("Carol@Example.com", testPassword)
	carol.Traits = json.RawMessage(`{"email":"Carol@Example.com"}`)
	s := &session.Session{ID: "5d6e7f80-1a2b-4c3d-8e9f-a0b1c2d3e4f5", AuthenticatedAt: e.clock.Now(), Identity: carol}
	options, err := e.webauthn.BeginEnrolment(context.Background(), s)
	require.NoError(t, err)
	sk := passkeytest.New()
	att, _, err := sk.Create(options, origin)
	require.NoError(t, err)
	_, err = e.webauthn.FinishEnrolment(context.Background(), s, att, "key")
	require.NoError(t, err)

	c := e.browser()
	f := e.browserFlow(c, "")
	r := e.submitJSON(c, f.ID, map[string]any{"method": "webauthn", "identifier": "carol@example.com", "csrf_token": value(t, f, "csrf_token")}, nil)
	require.Equal(t, http.StatusBadRequest, r.Status, "body: %s", r.Body)
	step := r.Flow(t)
	b, err := sk.Get([]byte(value(t, step, "webauthn_login_trigger")), origin)
	require.NoError(t, err)
	r = e.submitJSON(c, f.ID, map[string]any{"webauthn_login": string(b), "identifier": "carol@example.com", "csrf_token": value(t, step, "csrf_token")}, nil)
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	assert.Equal(t, carol.ID, r.JSON(t)["session"].(map[string]any)["identity"].(map[string]any)["id"])
}
