package passkey_test

import (
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/login/passkey"
	"github.com/authflow/authflow/login/passkey/passkeytest"
)

// challengeOptions parses a passkey_challenge value.
type challengeOptions struct {
	PublicKey struct {
		Challenge        string           `json:"challenge"`
		Timeout          int              `json:"timeout"`
		RPID             string           `json:"rpId"`
		UserVerification string           `json:"userVerification"`
		AllowCredentials []map[string]any `json:"allowCredentials"`
	} `json:"publicKey"`
	Mediation string `json:"mediation"`
}

func parseOptions(t *testing.T, raw string) challengeOptions {
	t.Helper()
	var o challengeOptions
	require.NoError(t, json.Unmarshal([]byte(raw), &o), "options: %s", raw)
	return o
}

// CONTRACT-PASSKEY §9.1-3: the nodes of a unified aal1 flow.
func TestPasskeyNodes(t *testing.T) {
	e := newEnv(t, options{})
	c := e.browser()
	f := e.browserFlow(c, "")

	id := f.UI.Node("identifier")
	require.NotNil(t, id)
	assert.Equal(t, "username webauthn", id.Attributes.Autocomplete, "passkey autofill needs the webauthn token")

	trigger := f.UI.Node("passkey_login_trigger")
	require.NotNil(t, trigger)
	assert.Equal(t, flow.GroupPasskey, trigger.Group)
	assert.Equal(t, "button", trigger.Attributes.Type)
	assert.Equal(t, "", trigger.Attributes.Value)
	assert.Equal(t, "window.oryPasskeyLogin()", trigger.Attributes.Onclick)
	assert.Equal(t, "oryPasskeyLogin", trigger.Attributes.OnclickTrigger)
	require.NotNil(t, trigger.Meta.Label)
	assert.Equal(t, flow.IDSignInWithPasskey, trigger.Meta.Label.ID)
	assert.Equal(t, "Sign in with passkey", trigger.Meta.Label.Text)

	result := f.UI.Node("passkey_login")
	require.NotNil(t, result)
	assert.Equal(t, "hidden", result.Attributes.Type)
	assert.Nil(t, result.Attributes.Value, "passkey_login has no value attribute")
	assert.Equal(t, "window.oryPasskeyLoginAutocompleteInit()", result.Attributes.Onload)
	assert.Equal(t, "oryPasskeyLoginAutocompleteInit", result.Attributes.OnloadTrigger)

	o := parseOptions(t, value(t, f, "passkey_challenge"))
	challenge, err := base64.RawURLEncoding.DecodeString(o.PublicKey.Challenge)
	require.NoError(t, err)
	assert.Len(t, challenge, 32)
	assert.Equal(t, rpID, o.PublicKey.RPID)
	assert.Equal(t, 300000, o.PublicKey.Timeout)
	assert.Equal(t, "required", o.PublicKey.UserVerification, "passkeys require user verification (CONTRACT-PASSKEY §7)")
	assert.Empty(t, o.PublicKey.AllowCredentials, "a discoverable login allows any passkey")
	assert.Empty(t, o.Mediation, "the script adds conditional mediation itself")

	var scripts []flow.Node
	for _, n := range f.UI.Nodes {
		if n.Type == "script" {
			scripts = append(scripts, n)
		}
	}
	require.Len(t, scripts, 1)
	s := scripts[0]
	assert.Equal(t, flow.GroupWebAuthn, s.Group)
	assert.Equal(t, "webauthn_script", s.Attributes.ID)
	assert.Equal(t, "anonymous", s.Attributes.CrossOrigin)
	assert.NotEmpty(t, s.Attributes.Nonce)
	require.True(t, strings.HasPrefix(s.Attributes.Src, e.srv.URL+"/.well-known/ory/webauthn.js"), s.Attributes.Src)
	r := e.do(e.api(), http.MethodGet, strings.TrimPrefix(s.Attributes.Src, e.srv.URL), nil, nil)
	require.Equal(t, http.StatusOK, r.Status)
	sum := sha512.Sum512(r.Body)
	assert.Equal(t, "sha512-"+base64.StdEncoding.EncodeToString(sum[:]), s.Attributes.Integrity, "integrity is the hash of the bytes served")

	// Groups in Kratos' order: default, webauthn (script), passkey, password.
	var groups []string
	for _, n := range f.UI.Nodes {
		if len(groups) == 0 || groups[len(groups)-1] != n.Group {
			groups = append(groups, n.Group)
		}
	}
	assert.Equal(t, []string{flow.GroupDefault, flow.GroupWebAuthn, flow.GroupPasskey, flow.GroupPassword}, groups)

	// API flows: the same inputs, no script and no JavaScript strings.
	a := e.apiFlow("", nil)
	for _, n := range a.UI.Nodes {
		assert.NotEqual(t, "script", n.Type)
		assert.Empty(t, n.Attributes.Onclick)
		assert.Empty(t, n.Attributes.Onload)
	}
	assert.Equal(t, "oryPasskeyLogin", a.UI.Node("passkey_login_trigger").Attributes.OnclickTrigger)
	assert.Equal(t, "oryPasskeyLoginAutocompleteInit", a.UI.Node("passkey_login").Attributes.OnloadTrigger)
	assert.NotEqual(t, value(t, f, "passkey_challenge"), value(t, a, "passkey_challenge"), "every flow has its own challenge")
}

// CONTRACT-PASSKEY §9.4: a passkey logs in at aal1.
func TestPasskeyLogsIn(t *testing.T) {
	e := newEnv(t, options{})
	key := e.withPasskey(false)

	r := e.passkeyLoginAPI()
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	body := r.JSON(t)
	assert.NotEmpty(t, body["session_token"])
	s := body["session"].(map[string]any)
	assert.Equal(t, "aal1", s["authenticator_assurance_level"])
	assert.Equal(t, []string{"passkey/aal1"}, methods(t, s))
	assert.Equal(t, e.identity.ID, s["identity"].(map[string]any)["id"])

	stored := e.storedKey(e.identity.ID, passkey.CredentialPasskey, key.ID)
	assert.Equal(t, uint32(1), stored.Authenticator.SignCount, "the counter is recorded")
	assert.True(t, stored.Flags.UserVerified)

	// A browser form post, as webauthn.js submits it: no method field.
	c := e.browser()
	f := e.browserFlow(c, "")
	r = e.submitForm(c, f.ID, url.Values{"csrf_token": {value(t, f, "csrf_token")}, "passkey_login": {e.assert(f)}, "passkey_challenge": {value(t, f, "passkey_challenge")}, "identifier": {""}})
	require.Equal(t, http.StatusSeeOther, r.Status, "body: %s", r.Body)
	assert.Equal(t, defaultReturn, r.Header.Get("Location"))
	ck := r.Cookie(sessionCookie)
	require.NotNil(t, ck)
	assert.True(t, ck.HttpOnly)
}

// assertInvalid asserts a refused assertion: 400 with the flow carrying
// message id, a fresh challenge, and no session issued.
func assertRefused(t *testing.T, e *env, r *result, id int, before string) flow.Flow {
	t.Helper()
	require.Equal(t, http.StatusBadRequest, r.Status, "body: %s", r.Body)
	f := r.Flow(t)
	assert.Equal(t, []int{id}, flowMessageIDs(f), "body: %s", r.Body)
	assert.NotEqual(t, before, value(t, f, "passkey_challenge"), "a refused attempt burns the challenge and shows a fresh one")
	require.NotNil(t, f.UI.Node("passkey_login"), "the passkey nodes stay")
	assert.Nil(t, f.UI.Node("passkey_login").Attributes.Value, "the submitted assertion is not echoed")
	assert.Zero(t, e.sessionCount(e.identity.ID), "a refused login issues no session")
	return f
}

// CONTRACT-PASSKEY §9.5-6: every broken assertion is refused with its
// message, the flow stays usable with a fresh challenge.
func TestPasskeyRefusals(t *testing.T) {
	other := passkeytest.New()
	cases := []struct {
		name string
		opts func(e *env) []passkeytest.Option
		id   int
	}{
		{"tampered signature", func(*env) []passkeytest.Option { return []passkeytest.Option{passkeytest.WithCorruptSignature()} }, flow.IDInvalidWebAuthn},
		{"wrong rp id", func(*env) []passkeytest.Option { return []passkeytest.Option{passkeytest.WithRPID("evil.example")} }, flow.IDInvalidWebAuthn},
		{"wrong challenge", func(*env) []passkeytest.Option {
			return []passkeytest.Option{passkeytest.WithChallenge(base64.RawURLEncoding.EncodeToString(make([]byte, 32)))}
		}, flow.IDInvalidWebAuthn},
		{"registration type", func(*env) []passkeytest.Option { return []passkeytest.Option{passkeytest.WithType("webauthn.create")} }, flow.IDInvalidWebAuthn},
		{"no user verification", func(*env) []passkeytest.Option { return []passkeytest.Option{passkeytest.WithoutUserVerification()} }, flow.IDInvalidWebAuthn},
		{"foreign key with the identity's handle", func(e *env) []passkeytest.Option {
			return []passkeytest.Option{passkeytest.WithKey(other.AddKey(rpID, e.handle))}
		}, flow.IDInvalidWebAuthn},
		{"unknown user handle", func(*env) []passkeytest.Option {
			return []passkeytest.Option{passkeytest.WithUserHandle([]byte("nobody"))}
		}, flow.IDNoSecurityKey},
		{"empty user handle", func(*env) []passkeytest.Option { return []passkeytest.Option{passkeytest.WithUserHandle(nil)} }, flow.IDNoSecurityKey},
		{"user handle not text", func(*env) []passkeytest.Option {
			return []passkeytest.Option{passkeytest.WithUserHandle([]byte{0xff, 0x00, 0xfe})}
		}, flow.IDNoSecurityKey},
		{"user handle too long", func(*env) []passkeytest.Option {
			return []passkeytest.Option{passkeytest.WithUserHandle([]byte(strings.Repeat("h", 65)))}
		}, flow.IDNoSecurityKey},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, options{})
			e.withPasskey(false)
			f := e.apiFlow("", nil)
			before := value(t, f, "passkey_challenge")
			r := e.submitJSON(e.api(), f.ID, map[string]any{"passkey_login": e.assert(f, tc.opts(e)...)}, nil)
			f = assertRefused(t, e, r, tc.id, before)

			// The flow still logs in, with its fresh challenge.
			r = e.submitJSON(e.api(), f.ID, map[string]any{"passkey_login": e.assert(f)}, nil)
			require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
		})
	}

	t.Run("wrong origin", func(t *testing.T) {
		e := newEnv(t, options{})
		e.withPasskey(false)
		f := e.apiFlow("", nil)
		b, err := e.auth.Get([]byte(value(t, f, "passkey_challenge")), "https://evil.example")
		require.NoError(t, err)
		r := e.submitJSON(e.api(), f.ID, map[string]any{"passkey_login": string(b)}, nil)
		assertRefused(t, e, r, flow.IDInvalidWebAuthn, value(t, f, "passkey_challenge"))
	})

	for _, garbage := range []string{"garbage", `{"id":"x"}`, strings.Repeat("a", 20000)} {
		t.Run("unparsable", func(t *testing.T) {
			e := newEnv(t, options{})
			f := e.apiFlow("", nil)
			r := e.submitJSON(e.api(), f.ID, map[string]any{"passkey_login": garbage}, nil)
			require.Equal(t, http.StatusBadRequest, r.Status, "body: %s", r.Body)
			got := r.Flow(t)
			require.Len(t, got.UI.Messages, 1)
			assert.Equal(t, flow.IDGeneric, got.UI.Messages[0].ID)
			assert.Equal(t, "Unable to parse WebAuthn response.", got.UI.Messages[0].Text)
		})
	}
}

// §7: a challenge is verified at most once; a burnt one never logs in,
// an assertion never logs in twice, and a completed flow answers 4010007.
func TestPasskeyChallengeIsSingleUse(t *testing.T) {
	e := newEnv(t, options{})
	e.withPasskey(false)

	// A valid assertion for a challenge burnt by a failed attempt.
	f := e.apiFlow("", nil)
	good := e.assert(f)
	r := e.submitJSON(e.api(), f.ID, map[string]any{"passkey_login": e.assert(f, passkeytest.WithCorruptSignature())}, nil)
	require.Equal(t, http.StatusBadRequest, r.Status)
	r = e.submitJSON(e.api(), f.ID, map[string]any{"passkey_login": good}, nil)
	require.Equal(t, http.StatusBadRequest, r.Status, "the burnt challenge's assertion is refused: %s", r.Body)
	assert.Equal(t, []int{flow.IDInvalidWebAuthn}, flowMessageIDs(r.Flow(t)))

	// A successful assertion replayed: on the same flow, then on another.
	f = e.apiFlow("", nil)
	good = e.assert(f)
	r = e.submitJSON(e.api(), f.ID, map[string]any{"passkey_login": good}, nil)
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	r = e.submitJSON(e.api(), f.ID, map[string]any{"passkey_login": good}, nil)
	require.Equal(t, http.StatusBadRequest, r.Status, "a completed flow is never a 5xx: %s", r.Body)
	assert.Equal(t, []int{flow.IDAlreadyCompleted}, flowMessageIDs(r.Flow(t)))
	other := e.apiFlow("", nil)
	r = e.submitJSON(e.api(), other.ID, map[string]any{"passkey_login": good}, nil)
	require.Equal(t, http.StatusBadRequest, r.Status, "body: %s", r.Body)
	assert.Equal(t, []int{flow.IDInvalidWebAuthn}, flowMessageIDs(r.Flow(t)))
	assert.Equal(t, 1, e.sessionCount(e.identity.ID))
}

// Concurrent submissions of one valid assertion log in exactly once.
func TestPasskeyConcurrentReplaysLogInOnce(t *testing.T) {
	e := newEnv(t, options{login: func(c *login.Config) { c.DisableThrottling = true }})
	e.withPasskey(false)
	f := e.apiFlow("", nil)
	good := e.assert(f)
	const n = 16
	var (
		wg       sync.WaitGroup
		statuses = make([]int, n)
	)
	for i := range n {
		wg.Go(func() {
			statuses[i] = e.submitJSON(e.api(), f.ID, map[string]any{"passkey_login": good}, nil).Status
		})
	}
	wg.Wait()
	ok := 0
	for _, s := range statuses {
		if s == http.StatusOK {
			ok++
		} else {
			assert.Equal(t, http.StatusBadRequest, s)
		}
	}
	assert.Equal(t, 1, ok, "statuses %v", statuses)
	assert.Equal(t, 1, e.sessionCount(e.identity.ID))
}

// §7: the challenge expires with the ceremony timeout.
func TestPasskeyChallengeExpires(t *testing.T) {
	e := newEnv(t, options{pk: func(c *passkey.Config) { c.Timeout = time.Minute }})
	e.withPasskey(false)
	f := e.apiFlow("", nil)
	assert.Equal(t, 60000, parseOptions(t, value(t, f, "passkey_challenge")).PublicKey.Timeout)
	assertion := e.assert(f)
	e.clock.Advance(time.Minute)
	r := e.submitJSON(e.api(), f.ID, map[string]any{"passkey_login": assertion}, nil)
	f = assertRefused(t, e, r, flow.IDInvalidWebAuthn, value(t, f, "passkey_challenge"))
	r = e.submitJSON(e.api(), f.ID, map[string]any{"passkey_login": e.assert(f)}, nil)
	require.Equal(t, http.StatusOK, r.Status, "the fresh challenge works: %s", r.Body)
}

// Kratos' default (preferred) accepts a touch without verification.
func TestPasskeyUserVerificationPreferred(t *testing.T) {
	e := newEnv(t, options{pk: func(c *passkey.Config) { c.UserVerification = passkey.VerificationPreferred }})
	e.withPasskey(false)
	r := e.passkeyLoginAPI(passkeytest.WithoutUserVerification())
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
}

// §9.10 and §7: a counter that goes backwards is recorded; refused for
// keys that are not backup eligible when RefuseClonedKeys is set.
func TestPasskeyCounterRegression(t *testing.T) {
	t.Run("recorded", func(t *testing.T) {
		e := newEnv(t, options{})
		key := e.withPasskey(false)
		require.Equal(t, http.StatusOK, e.passkeyLoginAPI(passkeytest.WithCounter(7)).Status)
		r := e.passkeyLoginAPI(passkeytest.WithCounter(3))
		require.Equal(t, http.StatusOK, r.Status, "Kratos' default: the login proceeds: %s", r.Body)
		stored := e.storedKey(e.identity.ID, passkey.CredentialPasskey, key.ID)
		assert.True(t, stored.Authenticator.CloneWarning)
		assert.Equal(t, uint32(7), stored.Authenticator.SignCount, "the counter never goes down")
	})
	t.Run("refused", func(t *testing.T) {
		e := newEnv(t, options{pk: func(c *passkey.Config) { c.RefuseClonedKeys = true }})
		key := e.withPasskey(false)
		require.Equal(t, http.StatusOK, e.passkeyLoginAPI(passkeytest.WithCounter(7)).Status)
		f := e.apiFlow("", nil)
		r := e.submitJSON(e.api(), f.ID, map[string]any{"passkey_login": e.assert(f, passkeytest.WithCounter(7))}, nil)
		require.Equal(t, http.StatusBadRequest, r.Status, "body: %s", r.Body)
		assert.Equal(t, []int{flow.IDInvalidWebAuthn}, flowMessageIDs(r.Flow(t)))
		assert.True(t, e.storedKey(e.identity.ID, passkey.CredentialPasskey, key.ID).Authenticator.CloneWarning, "recorded although refused")
		r = e.passkeyLoginAPI(passkeytest.WithCounter(8))
		require.Equal(t, http.StatusBadRequest, r.Status, "a flagged key stays refused: %s", r.Body)
	})
	t.Run("synced passkeys are exempt", func(t *testing.T) {
		e := newEnv(t, options{pk: func(c *passkey.Config) { c.RefuseClonedKeys = true }})
		e.auth.BackupEligible, e.auth.BackupState = true, true
		e.withPasskey(true)
		require.Equal(t, http.StatusOK, e.passkeyLoginAPI(passkeytest.WithCounter(7)).Status)
		r := e.passkeyLoginAPI(passkeytest.WithCounter(2))
		require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	})
}

// §7: refused assertions count towards throttling.
func TestPasskeyFailuresAreThrottled(t *testing.T) {
	e := newEnv(t, options{})
	e.withPasskey(false)
	for range 5 {
		r := e.passkeyLoginAPI(passkeytest.WithCorruptSignature())
		require.Equal(t, http.StatusBadRequest, r.Status, "body: %s", r.Body)
	}
	r := e.passkeyLoginAPI()
	require.Equal(t, http.StatusTooManyRequests, r.Status, "the sixth attempt waits: %s", r.Body)
	assert.NotEmpty(t, r.Header.Get("Retry-After"))
}

// A passkey does not satisfy aal2: an identity with a second factor is
// sent on to the step-up under highest_available (§3.4).
func TestPasskeyThenSecondFactor(t *testing.T) {
	e := newEnv(t, options{webauthn: &passkey.WebAuthnConfig{}, login: func(c *login.Config) { c.RequiredAAL = login.RequireHighestAvailable }})
	e.withPasskey(false)
	e.withSecurityKey(passkeytest.New(), false)
	c := e.browser()
	f := e.browserFlow(c, "")
	r := e.submitJSON(c, f.ID, map[string]any{"passkey_login": e.assert(f), "csrf_token": value(t, f, "csrf_token")}, nil)
	require.Equal(t, http.StatusUnprocessableEntity, r.Status, "body: %s", r.Body)
	assert.Contains(t, r.JSON(t)["redirect_browser_to"], "aal=aal2")
}

// §9.9: identifier-first shows the autofill in step 1 and the button in
// step 2, for every identifier (no enumeration).
func TestPasskeyIdentifierFirst(t *testing.T) {
	e := newEnv(t, options{login: func(c *login.Config) { c.LoginStyle = login.LoginStyleIdentifierFirst }})
	e.withPasskey(false)
	f := e.apiFlow("", nil)
	assert.Nil(t, f.UI.Node("passkey_login_trigger"), "step 1 has no passkey button")
	require.NotNil(t, f.UI.Node("passkey_login"))
	assert.Equal(t, "oryPasskeyLoginAutocompleteInit", f.UI.Node("passkey_login").Attributes.OnloadTrigger)

	for _, identifier := range []string{testIdentifier, "nobody@example.com"} {
		f := e.apiFlow("", nil)
		r := e.submitJSON(e.api(), f.ID, map[string]any{"method": "identifier_first", "identifier": identifier}, nil)
		require.Equal(t, http.StatusBadRequest, r.Status, "body: %s", r.Body)
		step := r.Flow(t)
		require.NotNil(t, step.UI.Node("passkey_login_trigger"), "step 2 offers the passkey to %s", identifier)
		r = e.submitJSON(e.api(), f.ID, map[string]any{"passkey_login": e.assert(step)}, nil)
		require.Equal(t, http.StatusOK, r.Status, "the step's challenge logs in: %s", r.Body)
	}
}

// A refresh flow offers only the identity's passkeys, without autofill.
func TestPasskeyRefresh(t *testing.T) {
	e := newEnv(t, options{})
	key := e.withPasskey(false)
	token := e.passwordAPI(testIdentifier, testPassword)
	f := e.apiFlow("?refresh=true", map[string]string{"X-Session-Token": token})
	o := parseOptions(t, value(t, f, "passkey_challenge"))
	require.Len(t, o.PublicKey.AllowCredentials, 1)
	assert.Equal(t, base64.RawURLEncoding.EncodeToString(key.ID), o.PublicKey.AllowCredentials[0]["id"])
	assert.Empty(t, f.UI.Node("passkey_login").Attributes.OnloadTrigger)
	r := e.submitJSON(e.api(), f.ID, map[string]any{"passkey_login": e.assert(f)}, map[string]string{"X-Session-Token": token})
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	assert.Equal(t, []string{"password/aal1", "passkey/aal1"}, methods(t, r.JSON(t)["session"].(map[string]any)))
	token = r.JSON(t)["session_token"].(string) // a refresh rotates the token

	// Another identity's passkey does not confirm this session.
	bob := e.addIdentity("bob@example.com", testPassword)
	e.importPasskey(bob, []byte(strings.Repeat("b", 64)), false)
	f = e.apiFlow("?refresh=true", map[string]string{"X-Session-Token": token})
	b, err := e.auth.Get([]byte(value(t, f, "passkey_challenge")), origin, passkeytest.WithKey(e.auth.Keys()[1]), passkeytest.WithUserHandle([]byte(strings.Repeat("b", 64))))
	require.NoError(t, err)
	r = e.submitJSON(e.api(), f.ID, map[string]any{"passkey_login": string(b)}, map[string]string{"X-Session-Token": token})
	require.Equal(t, http.StatusBadRequest, r.Status, "body: %s", r.Body)
	assert.Equal(t, []int{flow.IDInvalidWebAuthn}, flowMessageIDs(r.Flow(t)))
}

// method=passkey without an assertion shows the passkey step, as Kratos.
func TestPasskeyButtonWithoutAssertion(t *testing.T) {
	e := newEnv(t, options{})
	e.withPasskey(false)
	c := e.browser()
	f := e.browserFlow(c, "")
	r := e.submitJSON(c, f.ID, map[string]any{"method": "passkey", "csrf_token": value(t, f, "csrf_token")}, nil)
	require.Equal(t, http.StatusBadRequest, r.Status, "body: %s", r.Body)
	step := r.Flow(t)
	assert.Nil(t, step.UI.Node("password"), "only passkey nodes remain")
	require.NotNil(t, step.UI.Node("passkey_login_trigger"))
	require.NotNil(t, step.UI.Node("csrf_token"))
	r = e.submitJSON(c, f.ID, map[string]any{"passkey_login": e.assert(step), "csrf_token": value(t, step, "csrf_token")}, nil)
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
}
