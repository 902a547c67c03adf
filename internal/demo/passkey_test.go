package demo

import (
	"context"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"html"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/login/passkey"
	"github.com/authflow/authflow/login/password"
	"github.com/authflow/authflow/session"
)

// seedHandle is the user handle of the seeded passkey: 64 alphanumerics,
// as Kratos makes them.
const seedHandle = "Zq3v8Lr0yWm2Kt5Nb7Xc1Hd4Pf6Gj9Qs0Tu2Vw4Ya6Ze8Ab1Cd3Ef5Gh7Ij9Kl0"

// seedConfig is a Kratos credential configuration with one key of id
// keyID (the public key is not checked before a login), its user handle
// handle.
func seedConfig(t testing.TB, keyID []byte, handle string, passwordless bool) []byte {
	t.Helper()
	b64 := base64.StdEncoding.EncodeToString
	raw, err := json.Marshal(map[string]any{
		"credentials": []any{map[string]any{
			"id":               b64(keyID),
			"public_key":       b64([]byte{0xa5, 0x01, 0x02, 0x03, 0x26}), // a COSE key's start; logins are not tested here
			"attestation_type": "none",
			"authenticator":    map[string]any{"aaguid": b64(make([]byte, 16)), "sign_count": 3, "clone_warning": false},
			"display_name":     "Seeded key",
			"added_at":         "2025-01-02T03:04:05Z",
			"is_passwordless":  passwordless,
		}},
		"user_handle": b64([]byte(handle)),
	})
	require.NoError(t, err)
	return raw
}

// seedFile writes content to a new file and returns its path.
func seedFile(t testing.TB, content []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "seed.json")
	require.NoError(t, os.WriteFile(path, content, 0o600))
	return path
}

func TestParseFlagsWebAuthn(t *testing.T) {
	parse := func(args ...string) (Options, error) {
		return ParseFlags(flag.NewFlagSet("t", flag.ContinueOnError), args)
	}
	o, err := parse("-passkey", "-webauthn", "-public-url", "http://localhost:4433/auth")
	require.NoError(t, err)
	assert.True(t, o.Passkey)
	assert.True(t, o.WebAuthn)
	assert.Equal(t, "localhost", o.WebAuthnRPID)
	assert.Equal(t, []string{"http://localhost:4433"}, o.WebAuthnOrigins, "default: the public URL's origin")
	assert.Equal(t, "authflow demo", o.WebAuthnRPName)

	o, err = parse("-passkey", "-public-url", "https://login.example.com", "-webauthn-rp-id", "example.com",
		"-webauthn-origin", "https://login.example.com", "-webauthn-origin", "https://app.example.com", "-webauthn-rp-name", "Example")
	require.NoError(t, err)
	assert.Equal(t, []string{"https://login.example.com", "https://app.example.com"}, o.WebAuthnOrigins)
	assert.Equal(t, "Example", o.WebAuthnRPName)

	pk := seedFile(t, seedConfig(t, []byte("key-1"), seedHandle, true))
	wa := seedFile(t, seedConfig(t, []byte("key-2"), "handle", false))
	o, err = parse("-passkey", "-webauthn", "-public-url", "http://localhost:4433", "-seed-passkey", pk, "-seed-webauthn", wa)
	require.NoError(t, err)
	assert.JSONEq(t, string(seedConfig(t, []byte("key-1"), seedHandle, true)), string(o.SeedPasskey))
	assert.JSONEq(t, string(seedConfig(t, []byte("key-2"), "handle", false)), string(o.SeedWebAuthn))

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"IPAddressRPID", []string{"-passkey", "-webauthn-rp-id", "127.0.0.1"}, `-webauthn-rp-id "127.0.0.1" must be a domain name`},
		{"DefaultOriginNotOnRPID", []string{"-passkey"}, `-webauthn-origin ["http://127.0.0.1:4433"]`},
		{"OriginNotOnRPID", []string{"-webauthn", "-public-url", "http://localhost:1", "-webauthn-origin", "https://evil.example"}, "is not on the RPID"},
		{"NoRPName", []string{"-passkey", "-public-url", "http://localhost:1", "-webauthn-rp-name", ""}, "RPDisplayName is required"},
		{"SeedWithoutMethod", []string{"-seed-passkey", pk}, "-seed-passkey and -seed-webauthn need -passkey or -webauthn"},
		{"SeedPasskeyWithoutPasskey", []string{"-webauthn", "-public-url", "http://localhost:1", "-seed-passkey", pk}, "-seed-passkey needs -passkey"},
		{"SeedWebAuthnWithoutWebAuthn", []string{"-passkey", "-public-url", "http://localhost:1", "-seed-webauthn", wa}, "-seed-webauthn needs -webauthn"},
		{"MissingFile", []string{"-passkey", "-public-url", "http://localhost:1", "-seed-passkey", filepath.Join(t.TempDir(), "none.json")}, "no such file"},
		{"NotJSON", []string{"-passkey", "-public-url", "http://localhost:1", "-seed-passkey", seedFile(t, []byte("{"))}, "passkey config"},
		{"NoUserHandle", []string{"-passkey", "-public-url", "http://localhost:1", "-seed-passkey", seedFile(t, seedConfig(t, []byte("k"), "", true))}, "no user_handle"},
		{"NoKeys", []string{"-webauthn", "-public-url", "http://localhost:1", "-seed-webauthn", seedFile(t, []byte(`{"credentials":[],"user_handle":"aGFuZGxl"}`))}, "has no credentials"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(tc.args...)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

// TestSeedKeysIsIdempotent: the seed imports the passkey (identified by
// its user handle) and the security key (identified by the identity's
// normalized identifier) once; seeding again, with other keys, changes
// neither, as a restart on a persistent store must.
func TestSeedKeysIsIdempotent(t *testing.T) {
	ctx := context.Background()
	ids := session.NewMemoryIdentityStore()
	require.NoError(t, Seed(ctx, ids, password.Bcrypt{Cost: 4}, "Demo@Example.com", "pw"))
	id, _, err := ids.FindIdentity(ctx, session.CredentialPassword, "demo@example.com")
	require.NoError(t, err)
	byType := func() map[session.CredentialType]session.Credential {
		creds, err := ids.Credentials(ctx, id.ID)
		require.NoError(t, err)
		m := map[session.CredentialType]session.Credential{}
		for _, c := range creds {
			m[c.Type] = c
		}
		return m
	}

	require.NoError(t, SeedKeys(ctx, ids, "Demo@Example.com", nil, nil), "nothing to seed")
	assert.Len(t, byType(), 1)

	require.NoError(t, SeedKeys(ctx, ids, "Demo@Example.com",
		seedConfig(t, []byte("passkey-1"), seedHandle, true), seedConfig(t, []byte("key-1"), "webauthn-handle", false)))
	first := byType()
	require.Len(t, first, 3)
	assert.Equal(t, []string{seedHandle}, first[passkey.CredentialPasskey].Identifiers, "a passkey answers to its user handle")
	assert.Equal(t, []string{"demo@example.com"}, first[passkey.CredentialWebAuthn].Identifiers, "a security key to the identity's identifier")
	found, _, err := ids.FindIdentity(ctx, passkey.CredentialPasskey, seedHandle)
	require.NoError(t, err, "a passkey login finds the identity by the user handle")
	assert.Equal(t, id.ID, found.ID)
	var cfg passkey.CredentialConfig
	require.NoError(t, json.Unmarshal(first[passkey.CredentialWebAuthn].Config, &cfg))
	require.Len(t, cfg.Credentials, 1)
	assert.Equal(t, []byte("key-1"), cfg.Credentials[0].ID)
	assert.False(t, cfg.Credentials[0].IsPasswordless, "a second factor")
	assert.Equal(t, uint32(3), cfg.Credentials[0].Authenticator.SignCount)
	assert.Equal(t, []byte("webauthn-handle"), cfg.UserHandle)

	require.NoError(t, SeedKeys(ctx, ids, "demo@example.com",
		seedConfig(t, []byte("passkey-2"), strings.Repeat("x", 64), true), seedConfig(t, []byte("key-2"), "other", false)))
	assert.Equal(t, first, byType(), "the second seed changes nothing")

	assert.ErrorIs(t, SeedKeys(ctx, ids, "nobody@example.com", seedConfig(t, []byte("k"), seedHandle, true), nil), session.ErrNotFound)
}

// startKeyDemo serves the demo like startDemo, on 127.0.0.1 but with the
// public URL http://localhost:<port>: WebAuthn's relying party id must be
// a domain.
func startKeyDemo(t testing.TB, clock *testClock, args ...string) Options {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	mux := http.NewServeMux()
	ts := httptest.NewUnstartedServer(mux)
	ts.Listener = ln
	ts.Start()
	t.Cleanup(ts.Close)
	public := "http://localhost:" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	o, err := ParseFlags(flag.NewFlagSet("t", flag.ContinueOnError),
		append([]string{"-public-url", public, "-hasher", "bcrypt", "-bcrypt-cost", "4"}, args...))
	require.NoError(t, err)
	o.Now = clock.Now
	srv, err := New(context.Background(), o, Stores{}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	mux.Handle("/", srv)
	return o
}

var (
	scriptRE     = regexp.MustCompile(`<script src="([^"]+)"( integrity="([^"]+)" crossorigin="anonymous" referrerpolicy="no-referrer" async| defer)></script>`)
	scriptedRE   = regexp.MustCompile(`(?s)<form action="([^"]+)" method="POST" data-group="([a-z]+)">(.*?)</form>`)
	hiddenAnyRE  = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)"( data-trigger-load="([^"]+)")?>`)
	triggerRE    = regexp.MustCompile(`<button type="button"( class="secondary")? name="([^"]+)" value="([^"]*)" data-trigger-click="([^"]+)">([^<]+)</button>`)
	keyItemRE    = regexp.MustCompile(`<li data-key-id="([0-9a-f]+)"><span class="key-name">([^<]+)</span>`)
	removeRE     = regexp.MustCompile(`<button type="submit" class="secondary" name="([a-z_]+)" value="([0-9a-f]+)">Remove</button>`)
	createDataRE = regexp.MustCompile(`<input type="hidden" name="passkey_create_data" value="([^"]+)">`)
	registerRE   = regexp.MustCompile(`<button type="button" name="webauthn_register_trigger" value="([^"]+)" data-trigger-click="oryWebAuthnRegistration">Add security key</button>`)
)

// scriptedForms returns the login page's passkey and webauthn forms by
// group: their hidden fields (with the onload trigger as "name@trigger")
// and buttons ("name=value@trigger label").
func scriptedForms(t testing.TB, page string) map[string][]string {
	t.Helper()
	forms := map[string][]string{}
	for _, m := range scriptedRE.FindAllStringSubmatch(page, -1) {
		var items []string
		for _, h := range hiddenAnyRE.FindAllStringSubmatch(m[3], -1) {
			item := h[1]
			if h[4] != "" {
				item += "@" + h[4]
			}
			items = append(items, item)
		}
		for _, b := range triggerRE.FindAllStringSubmatch(m[3], -1) {
			items = append(items, b[2]+"="+html.UnescapeString(b[3])+"@"+b[4]+" "+b[5])
		}
		forms[m[2]] = items
	}
	return forms
}

// hiddenValue is the value of the page's first hidden input named name.
func hiddenValue(t testing.TB, page, name string) string {
	t.Helper()
	for _, h := range hiddenAnyRE.FindAllStringSubmatch(page, -1) {
		if h[1] == name {
			return html.UnescapeString(h[2])
		}
	}
	require.Failf(t, "no hidden input", "the page has no hidden %s:\n%s", name, page)
	return ""
}

// TestPasskeyLoginPage: with -passkey the login page offers the autofill
// (the identifier's autocomplete, passkey_login's onload trigger) and the
// "Sign in with passkey" button in a form of their own, and loads
// webauthn.js under its integrity and the demo's triggers.js, which its
// Content-Security-Policy allows as same-origin scripts and nothing
// inline.
func TestPasskeyLoginPage(t *testing.T) {
	o := startKeyDemo(t, newTestClock(), "-passkey")
	v := newVisitor(t, o.PublicURL)
	resp, _ := v.get(o.PublicURL + "/self-service/login/browser")
	u, page := v.follow(resp)
	resp, _ = v.get(u.String())
	assert.Equal(t, contentSecurityPolicy, resp.Header.Get("Content-Security-Policy"))
	assert.Contains(t, resp.Header.Get("Content-Security-Policy"), "script-src 'self';")

	assert.Contains(t, page, `<input id="field-identifier" name="identifier" type="text" required autocomplete="username webauthn" autofocus>`)
	forms := scriptedForms(t, page)
	require.Contains(t, forms, "passkey", "the passkey form:\n%s", page)
	assert.Equal(t, []string{
		"csrf_token",
		"passkey_login@oryPasskeyLoginAutocompleteInit",
		"passkey_challenge",
		"passkey_login_trigger=@oryPasskeyLogin Sign in with passkey",
	}, forms["passkey"])
	var challenge struct {
		PublicKey struct {
			Challenge        string `json:"challenge"`
			RPID             string `json:"rpId"`
			UserVerification string `json:"userVerification"`
		} `json:"publicKey"`
	}
	require.NoError(t, json.Unmarshal([]byte(hiddenValue(t, page, "passkey_challenge")), &challenge))
	assert.Equal(t, "localhost", challenge.PublicKey.RPID)
	assert.Equal(t, "required", challenge.PublicKey.UserVerification)
	assert.Len(t, challenge.PublicKey.Challenge, 43, "32 bytes, base64url")

	scripts := scriptRE.FindAllStringSubmatch(page, -1)
	require.Len(t, scripts, 2, "webauthn.js and triggers.js:\n%s", page)
	assert.True(t, strings.HasPrefix(scripts[0][1], o.PublicURL+"/.well-known/ory/webauthn.js?v="), scripts[0][1])
	resp, js := v.get(html.UnescapeString(scripts[0][1]))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	sum := sha512.Sum512([]byte(js))
	assert.Equal(t, "sha512-"+base64.StdEncoding.EncodeToString(sum[:]), html.UnescapeString(scripts[0][3]), "the integrity is that of the served bytes")
	assert.Equal(t, o.PublicURL+"/static/triggers.js", scripts[1][1])
	resp, js = v.get(scripts[1][1])
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "text/javascript; charset=utf-8", resp.Header.Get("Content-Type"))
	assert.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))
	assert.Contains(t, js, `"oryPasskeyLoginAutocompleteInit"`)
	assert.NotContains(t, page, " onclick=", "no inline handlers")
	assert.NotContains(t, page, "<script>", "no inline script")
}

// TestLoginPageWithoutKeys: without -passkey and -webauthn the login page
// has no scripts and no passkey form.
func TestLoginPageWithoutKeys(t *testing.T) {
	o := startDemo(t, newTestClock())
	v := newVisitor(t, o.PublicURL)
	resp, _ := v.get(o.PublicURL + "/self-service/login/browser")
	_, page := v.follow(resp)
	assert.NotContains(t, page, "<script")
	assert.Empty(t, scriptedForms(t, page))
	assert.Contains(t, page, `autocomplete="username"`)
	resp, _ = v.get(o.PublicURL + "/passkeys/")
	assert.Equal(t, http.StatusNotFound, resp.StatusCode, "no enrolment handler")
}

// TestSecurityKeyStepUpPage: with -webauthn, a password login of an
// identity with a seeded security key goes to the step-up, whose page
// offers "Sign in with a hardware key" in the webauthn form, carrying the
// identity's identifier and the challenge for its key.
func TestSecurityKeyStepUpPage(t *testing.T) {
	keyID := []byte("security-key-1")
	o := startKeyDemo(t, newTestClock(), "-webauthn", "-seed-webauthn", seedFile(t, seedConfig(t, keyID, "handle", false)))
	v := newVisitor(t, o.PublicURL)
	_, page := v.stepUpPage()
	assert.Contains(t, page, "<h1>Two-factor authentication</h1>")
	forms := scriptedForms(t, page)
	require.Contains(t, forms, "webauthn", page)
	require.Len(t, forms["webauthn"], 4)
	assert.Equal(t, []string{"csrf_token", "identifier", "webauthn_login"}, forms["webauthn"][:3])
	trigger := forms["webauthn"][3]
	assert.True(t, strings.HasPrefix(trigger, `webauthn_login_trigger={"publicKey":`), trigger)
	assert.True(t, strings.HasSuffix(trigger, "@oryWebAuthnLogin Sign in with a hardware key"), trigger)
	assert.Contains(t, trigger, `"allowCredentials":[{"type":"public-key","id":"`+base64.RawURLEncoding.EncodeToString(keyID)+`"}]`)
	assert.Equal(t, "demo@example.com", hiddenValue(t, page, "identifier"))
	assert.Contains(t, page, `<button type="button" name="webauthn_login_trigger"`, "the only way on: a primary button")
	assert.Len(t, scriptRE.FindAllStringSubmatch(page, -1), 2)
	assert.NotContains(t, page, `name="password"`)
}

// TestSettingsPageKeys: the settings page lists the seeded passkey with
// its remove button, offers to add a passkey and a security key with the
// options of a new enrolment, and its forms reach the enrolment handlers:
// a remove (from this origin) comes back with a message, a refused one
// (no Origin, another origin) is answered 403, an invalid attestation
// comes back with an error; once the session is too old the page asks to
// confirm it's you.
func TestSettingsPageKeys(t *testing.T) {
	clock := newTestClock()
	keyID := []byte("passkey-key-1")
	o := startKeyDemo(t, clock, "-passkey", "-webauthn", "-seed-passkey", seedFile(t, seedConfig(t, keyID, seedHandle, true)))
	v := newVisitor(t, o.PublicURL)
	u, _ := v.follow(v.signIn())
	require.Equal(t, "/welcome", u.Path)

	page := v.page(o.PublicURL + "/settings")
	items := keyItemRE.FindAllStringSubmatch(page, -1)
	require.Len(t, items, 1, page)
	assert.Equal(t, []string{hex.EncodeToString(keyID), "Seeded key"}, items[0][1:])
	assert.Contains(t, page, "added 2025-01-02 03:04 UTC")
	removes := removeRE.FindAllStringSubmatch(page, -1)
	require.Len(t, removes, 1)
	assert.Equal(t, []string{"passkey_remove", hex.EncodeToString(keyID)}, removes[0][1:])
	assert.Contains(t, page, `<h2>Security keys</h2>`)
	assert.Contains(t, page, `<p class="no-keys">None yet.</p>`)

	m := createDataRE.FindStringSubmatch(page)
	require.NotNil(t, m, "the passkey form carries the options:\n%s", page)
	var creation struct {
		PublicKey struct {
			RP struct {
				ID   string `json:"id"`
				Name string `json:"name"`
			} `json:"rp"`
			User struct {
				ID   string `json:"id"`
				Name string `json:"name"`
			} `json:"user"`
			ExcludeCredentials []struct {
				ID string `json:"id"`
			} `json:"excludeCredentials"`
			AuthenticatorSelection struct {
				ResidentKey string `json:"residentKey"`
			} `json:"authenticatorSelection"`
		} `json:"publicKey"`
	}
	require.NoError(t, json.Unmarshal([]byte(html.UnescapeString(m[1])), &creation))
	assert.Equal(t, "localhost", creation.PublicKey.RP.ID)
	assert.Equal(t, "authflow demo", creation.PublicKey.RP.Name)
	assert.Equal(t, "demo@example.com", creation.PublicKey.User.Name)
	assert.Equal(t, base64.RawURLEncoding.EncodeToString([]byte(seedHandle)), creation.PublicKey.User.ID, "the identity's user handle")
	require.Len(t, creation.PublicKey.ExcludeCredentials, 1)
	assert.Equal(t, base64.RawURLEncoding.EncodeToString(keyID), creation.PublicKey.ExcludeCredentials[0].ID, "the seeded key is excluded")
	assert.Equal(t, "required", creation.PublicKey.AuthenticatorSelection.ResidentKey)
	m = registerRE.FindStringSubmatch(page)
	require.NotNil(t, m, "the security key form's trigger carries the options:\n%s", page)
	assert.Contains(t, html.UnescapeString(m[1]), `"residentKey":"discouraged"`)
	assert.Len(t, scriptRE.FindAllStringSubmatch(page, -1), 2, "webauthn.js and triggers.js")

	form := func(fields ...string) url.Values {
		vals := url.Values{}
		for i := 0; i < len(fields); i += 2 {
			vals.Set(fields[i], fields[i+1])
		}
		return vals
	}
	post := func(path, origin string, vals url.Values) *http.Response {
		req, err := http.NewRequest(http.MethodPost, o.PublicURL+path, strings.NewReader(vals.Encode()))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, _ := v.do(req)
		return resp
	}

	// An attestation that is none.
	resp := post("/passkeys/finish", o.PublicURL, form("passkey_settings_register", `{"id":"x"}`, "return_to", "/settings?done=passkey"))
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	assert.Equal(t, "/settings?done=passkey&error=invalid_response", resp.Header.Get("Location"))
	page = v.page(o.PublicURL + resp.Header.Get("Location"))
	assert.Contains(t, page, "The key&#39;s answer could not be verified; please try again.")
	assert.NotContains(t, page, "Your passkey is added")

	// Removal from elsewhere is refused.
	remove := form("passkey_remove", hex.EncodeToString(keyID), "return_to", "/settings?done=removed")
	for _, origin := range []string{"", "http://evil.example"} {
		resp = post("/passkeys/remove", origin, remove)
		assert.Equal(t, http.StatusForbidden, resp.StatusCode, "Origin %q", origin)
	}
	assert.Len(t, keyItemRE.FindAllStringSubmatch(v.page(o.PublicURL+"/settings"), -1), 1, "the key is still there")

	resp = post("/passkeys/remove", o.PublicURL, remove)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	assert.Equal(t, "/settings?done=removed", resp.Header.Get("Location"))
	page = v.page(o.PublicURL + resp.Header.Get("Location"))
	assert.Contains(t, page, "The key is removed.")
	assert.Empty(t, keyItemRE.FindAllStringSubmatch(page, -1))

	// The enrolment API lists the keys as JSON.
	resp, body := v.get(o.PublicURL + "/passkeys/")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.JSONEq(t, `{"keys":[]}`, body)

	// An old session must confirm it's you before keys change.
	clock.Advance(passkey.DefaultPrivilegedMaxAge + time.Minute)
	page = v.page(o.PublicURL + "/settings")
	refresh := o.PublicURL + "/self-service/login/browser?" + url.Values{"refresh": {"true"}, "return_to": {o.PublicURL + "/settings"}}.Encode()
	assert.Contains(t, page, `<a class="button" id="refresh" href="`+html.EscapeString(refresh)+`">Confirm it's you</a>`)
	assert.NotContains(t, page, "passkey_create_data")
	assert.NotContains(t, page, "webauthn_register_trigger")
	assert.NotContains(t, page, "<script", "nothing to run")
	resp = post("/security-keys/remove", o.PublicURL, form("webauthn_remove", "00", "return_to", "/settings"))
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	assert.Equal(t, "/settings?error=session_refresh_required", resp.Header.Get("Location"))
	page = v.page(o.PublicURL + resp.Header.Get("Location"))
	assert.Contains(t, page, "You signed in too long ago to change your keys")
	assert.Contains(t, page, `id="refresh"`)
}

// TestKeysNeedStepUp: an identity with a security key, signed in with
// its password alone (-required-aal aal1), sees its keys without remove
// buttons or add forms and a step-up link; its form posts to the
// enrolment handlers go back with step_up_required, its API calls get 403
// session_aal2_required.
func TestKeysNeedStepUp(t *testing.T) {
	keyID := []byte("security-key-1")
	o := startKeyDemo(t, newTestClock(), "-webauthn", "-required-aal", "aal1",
		"-seed-webauthn", seedFile(t, seedConfig(t, keyID, "handle", false)))
	v := newVisitor(t, o.PublicURL)
	u, _ := v.follow(v.signIn())
	require.Equal(t, "/welcome", u.Path, "aal1 is enough to sign in")

	page := v.page(o.PublicURL + "/settings")
	require.Len(t, keyItemRE.FindAllStringSubmatch(page, -1), 1)
	assert.Empty(t, removeRE.FindAllStringSubmatch(page, -1), "no remove button")
	assert.NotContains(t, page, "webauthn_register_trigger")
	assert.Contains(t, page, `id="step-up"`)

	req, err := http.NewRequest(http.MethodPost, o.PublicURL+"/security-keys/remove",
		strings.NewReader(url.Values{"webauthn_remove": {hex.EncodeToString(keyID)}, "return_to": {"/settings"}}.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", o.PublicURL)
	resp, _ := v.do(req)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	assert.Equal(t, o.PublicURL+"/settings?error=step_up_required", resp.Header.Get("Location"))
	assert.Contains(t, v.page(resp.Header.Get("Location")), "Verify your second factor before you change it.")

	req, err = http.NewRequest(http.MethodDelete, o.PublicURL+"/security-keys/keys/"+hex.EncodeToString(keyID), nil)
	require.NoError(t, err)
	req.Header.Set("Origin", o.PublicURL)
	req.Header.Set("Accept", "application/json")
	resp, body := v.do(req)
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	assert.Equal(t, "application/json; charset=utf-8", resp.Header.Get("Content-Type"))
	var env struct {
		Error struct {
			ID string `json:"id"`
		} `json:"error"`
		RedirectBrowserTo string `json:"redirect_browser_to"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &env))
	assert.Equal(t, "session_aal2_required", env.Error.ID)
	assert.Equal(t, o.PublicURL+"/self-service/login/browser?aal=aal2&return_to="+url.QueryEscape(o.PublicURL+"/settings"), env.RedirectBrowserTo)
	assert.Len(t, keyItemRE.FindAllStringSubmatch(v.page(o.PublicURL+"/settings"), -1), 1, "the key is kept")
}
