package e2e

// Passkeys and security keys through the Kratos UI of examples/kratos-ui
// (Ory Elements' markup, and the reference UI's js_setup, which runs the
// nodes' onclick and onload strings): the example server's identity is
// seeded, as a Kratos import would, with a passkey and a security key made
// from P-256 keys this test generates; the same private keys go into
// Chromium's virtual authenticator. A click on the UI's "Sign in with
// passkey" signs in at aal1; as the identity has a security key, authflow
// sends the browser to the UI's step-up card, whose "Sign in with a
// hardware key" completes aal2. Everything runs on localhost: the RP ID must
// be a domain, and the ceremonies run on the UI's origin, which the
// example server lists with -webauthn-origin.
//
//	cd examples/e2e && go test -v -run 'Passkey|WebAuthn' ./...

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
	"github.com/go-webauthn/webauthn/protocol/webauthncbor"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	// Selectors of Ory Elements' forms for the passkey and webauthn groups.
	kuiPasskeyButton  = `form[data-testid="passkey-flow"] button[name="passkey_login_trigger"]`
	kuiHardwareButton = `form[data-testid="webauthn-flow"] button[name="webauthn_login_trigger"]`
)

// kuiSeedKey is a key pair of a seeded credential: the credential id, the
// private key for the virtual authenticator (PKCS #8) and the public key
// for the server (COSE).
type kuiSeedKey struct {
	id      []byte
	pkcs8   []byte
	coseKey []byte
}

// kuiNewSeedKey generates a P-256 key and a random credential id.
func kuiNewSeedKey(t *testing.T) kuiSeedKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	pkcs8, err := x509.MarshalPKCS8PrivateKey(priv)
	require.NoError(t, err)
	pub, err := priv.PublicKey.ECDH()
	require.NoError(t, err)
	point := pub.Bytes() // 0x04 || x || y
	require.Len(t, point, 65)
	// The COSE_Key of an ES256 public key (RFC 9053): kty EC2, alg ES256,
	// crv P-256, x, y.
	coseKey, err := webauthncbor.Marshal(map[int]any{1: 2, 3: -7, -1: 1, -2: point[1:33], -3: point[33:]})
	require.NoError(t, err)
	return kuiSeedKey{id: waRandom(t, 32), pkcs8: pkcs8, coseKey: coseKey}
}

// kuiSeedFile writes the Kratos credential configuration of one key with
// userHandle, as Kratos' admin API exports it (byte fields standard
// base64), and returns its path.
func kuiSeedFile(t *testing.T, name string, k kuiSeedKey, userHandle []byte, passwordless bool) string {
	t.Helper()
	b64 := base64.StdEncoding.EncodeToString
	config := map[string]any{
		"credentials": []any{map[string]any{
			"id":               b64(k.id),
			"public_key":       b64(k.coseKey),
			"attestation_type": "none",
			"authenticator":    map[string]any{"aaguid": b64(make([]byte, 16)), "sign_count": 0, "clone_warning": false},
			"display_name":     name,
			"added_at":         time.Now().UTC().Truncate(time.Second).Format(time.RFC3339),
			"is_passwordless":  passwordless,
			"flags":            map[string]any{"user_present": true, "user_verified": passwordless, "backup_eligible": false, "backup_state": false},
		}},
		"user_handle": b64(userHandle),
	}
	raw, err := json.Marshal(config)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), name+".json")
	require.NoError(t, os.WriteFile(path, raw, 0o600))
	return path
}

// kuiUserHandle is a passkey user handle as Kratos makes them: 64 ASCII
// letters and digits.
func kuiUserHandle(t *testing.T) []byte {
	t.Helper()
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	h := waRandom(t, 64)
	for i := range h {
		h[i] = alphabet[int(h[i])%len(alphabet)]
	}
	return h
}

// kuiCredential is WebAuthn.addCredential's credential with only the
// fields this test sets: cdproto's Credential always sends
// generateCmtgKeyOnNextOperation, which this Chromium's virtual
// authenticators refuse ("CMTG is not supported").
type kuiCredential struct {
	CredentialID         []byte `json:"credentialId"`
	IsResidentCredential bool   `json:"isResidentCredential"`
	RpID                 string `json:"rpId"`
	PrivateKey           []byte `json:"privateKey"` // PKCS #8
	UserHandle           []byte `json:"userHandle,omitempty"`
	UserName             string `json:"userName,omitempty"`
	SignCount            int    `json:"signCount"`
}

type kuiAddCredentialParams struct {
	AuthenticatorID webauthn.AuthenticatorID `json:"authenticatorId"`
	Credential      kuiCredential            `json:"credential"`
}

// kuiAddCredentialCommand is WebAuthn.addCredential with kuiCredential.
var kuiAddCredentialCommand = cdp.Command[kuiAddCredentialParams, cdp.Empty]{Method: webauthn.CommandAddCredential}

// kuiAddCredential puts a seeded key into the virtual authenticator, with
// the RP ID localhost and a signature counter at 0.
func kuiAddCredential(t *testing.T, tab context.Context, authenticator webauthn.AuthenticatorID, k kuiSeedKey, resident bool, userHandle []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, browserStepTimeout)
	defer cancel()
	cred := kuiCredential{CredentialID: k.id, IsResidentCredential: resident, RpID: "localhost", PrivateKey: k.pkcs8}
	if resident {
		cred.UserHandle = userHandle
		cred.UserName = kuiIdentifier
	}
	_, err := chromedp.Call(ctx, kuiAddCredentialCommand, kuiAddCredentialParams{AuthenticatorID: authenticator, Credential: cred})
	require.NoError(t, err, "WebAuthn.addCredential")
}

// kuiWhoami returns the session of the browser's session cookie for
// public, as authflow's whoami shows it.
func kuiWhoami(t *testing.T, tab context.Context, public string) map[string]any {
	t.Helper()
	cookie, ok := browserCookies(t, tab, public+"/")["authflow_session"]
	require.True(t, ok, "the browser has the session cookie")
	req, err := http.NewRequest(http.MethodGet, public+"/sessions/whoami", nil)
	require.NoError(t, err)
	req.Header.Set("Accept", "application/json")
	req.AddCookie(&http.Cookie{Name: cookie.Name, Value: cookie.Value})
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "whoami")
	var s map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&s))
	return s
}

// kuiMethods lists a session's authentication methods as "method/aal".
func kuiMethods(s map[string]any) []string {
	var out []string
	list, _ := s["authentication_methods"].([]any)
	for _, m := range list {
		entry, _ := m.(map[string]any)
		out = append(out, fmt.Sprintf("%v/%v", entry["method"], entry["aal"]))
	}
	return out
}

func TestKratosUIPasskey(t *testing.T) {
	const needNode = "node and npm are needed to run examples/kratos-ui (Debian: apt-get install nodejs npm; Node 20 or later); CI always runs this test"
	node := kuiRequired(t, needNode, "node")
	npm := kuiRequired(t, needNode, "npm")
	chromium := kuiFindChromium(t)
	started := time.Now()
	t.Cleanup(func() { t.Logf("TestKratosUIPasskey took %v", time.Since(started).Round(time.Millisecond)) })

	dir := kuiUIDir(t)
	kuiEnsureNodeModules(t, npm, dir)
	shots := browserScreenshotDir(t)
	bin := browserBuildServer(t)

	passkeyHandle := kuiUserHandle(t)
	passkeyKey, securityKey := kuiNewSeedKey(t), kuiNewSeedKey(t)
	seedPasskey := kuiSeedFile(t, "passkey", passkeyKey, passkeyHandle, true)
	seedWebAuthn := kuiSeedFile(t, "security-key", securityKey, waRandom(t, 16), false)

	// Both on localhost, on ports chosen first: each needs the other's URL.
	uiPort, authPort := browserFreePort(t), strconv.Itoa(browserFreePort(t))
	ui := "http://localhost:" + strconv.Itoa(uiPort)
	kratos := "http://localhost:" + authPort
	args := []string{
		"-addr", "127.0.0.1:" + authPort, "-public-url", kratos,
		"-hasher", "bcrypt", "-bcrypt-cost", "4",
		"-ui-url", ui + "/login", "-error-url", ui + "/error",
		"-default-return-url", ui + "/welcome", "-allowed-return-url", ui + "/",
		"-passkey", "-webauthn", "-required-aal", "highest_available",
		"-webauthn-origin", ui, "-webauthn-origin", kratos,
		"-seed-passkey", seedPasskey, "-seed-webauthn", seedWebAuthn,
	}
	line := startProcess(t, fmt.Sprintf("example server %v", args), exec.Command(bin, args...))
	require.Equal(t, "listening on "+kratos, line)
	// The UI listens on 127.0.0.1; the browser calls it localhost.
	require.Equal(t, "http://127.0.0.1:"+strconv.Itoa(uiPort), kuiStartUI(t, node, dir, uiPort, kratos))

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	browser := kuiStartBrowser(t, ctx, chromium)
	tab, pages := kuiTab(t, browser)
	defer pkShotOnFailure(t, tab, shots, "kratosui-passkey-failure.png")

	u := browserNavigate(t, tab, "open the UI's login", chromedp.Navigate(ui+"/login"))
	authenticator := waVirtualAuthenticator(t, tab)
	kuiAddCredential(t, tab, authenticator, passkeyKey, true, passkeyHandle)
	kuiAddCredential(t, tab, authenticator, securityKey, false, nil)
	// Chromium's virtual authenticator answers the autofill's conditional
	// request at once; the button is what this test clicks first.
	rearm := pkOnNewDocument(t, tab, pkDisarmAutofill)

	u = browserNavigate(t, tab, "open the UI's login again", chromedp.Navigate(ui+"/login"))
	first := kuiFlowID(t, ui, u)
	browserDo(t, tab, "the passkey button is visible", chromedp.WaitVisible(chromedp.CSS(kuiPasskeyButton)))
	assert.Equal(t, "Sign in with passkey", browserRun(t, tab, "read the passkey button", chromedp.Text(chromedp.CSS(kuiPasskeyButton))))
	script := browserRun(t, tab, "read the script node's element", chromedp.Evaluate[[]string](
		`(s => s ? [s.src.split("?")[0], s.integrity.slice(0, 7), s.crossOrigin] : [])(document.querySelector('script[data-testid="node/script/webauthn_script"]'))`))
	assert.Equal(t, []string{kratos + "/.well-known/ory/webauthn.js", "sha512-", "anonymous"}, script, "the UI renders the script node")
	pkWebAuthnReady(t, tab)
	kuiScreenshot(t, tab, shots, "kratosui-passkey-login.png")

	u = browserNavigate(t, tab, "click Sign in with passkey", chromedp.Click(chromedp.CSS(kuiPasskeyButton)))
	stepUp := kuiFlowID(t, ui, u)
	assert.NotEqual(t, first, stepUp, "the passkey signs in at aal1; the security key is asked for on a step-up flow")
	aal1 := kuiWhoamiStatus(t, tab, kratos)
	assert.Equal(t, http.StatusForbidden, aal1, "whoami of the aal1 session under highest_available")
	browserDo(t, tab, "the hardware-key button is visible", chromedp.WaitVisible(chromedp.CSS(kuiHardwareButton)))
	assert.Equal(t, "Two-Factor Authentication", browserRun(t, tab, "read the card title", chromedp.Text(chromedp.CSS(kuiCard+" h2"))))
	// Ory Elements shows 1010008 with its own translation.
	assert.Equal(t, "Sign in with hardware key", browserRun(t, tab, "read the hardware-key button", chromedp.Text(chromedp.CSS(kuiHardwareButton))))
	pkWebAuthnReady(t, tab)
	kuiScreenshot(t, tab, shots, "kratosui-webauthn-stepup.png")

	u = browserNavigate(t, tab, "click Sign in with a hardware key", chromedp.Click(chromedp.CSS(kuiHardwareButton)))
	require.Equal(t, ui+"/welcome", u.String(), "after the step-up the browser shows the UI's welcome page")
	browserDo(t, tab, "the session's email is visible", chromedp.WaitVisible(chromedp.CSS(kuiEmail)))
	assert.Equal(t, kuiIdentifier, browserRun(t, tab, "read the email", chromedp.Text(chromedp.CSS(kuiEmail))))
	assert.Equal(t, "aal2", browserRun(t, tab, "read the assurance level", chromedp.Text(kuiAALOnWelcome)))
	s := kuiWhoami(t, tab, kratos)
	assert.Equal(t, "aal2", s["authenticator_assurance_level"])
	assert.Equal(t, []string{"passkey/aal1", "webauthn/aal2"}, kuiMethods(s))
	kuiScreenshot(t, tab, shots, "kratosui-passkey-welcome.png")

	// The autofill, through the UI's markup: a browser without a session
	// opens the login page, whose conditional request the authenticator
	// answers; the passkey signs in and the UI shows the step-up.
	rearm()
	pkOnNewDocument(t, tab, pkRecordMediation)
	clearCtx, clearCancel := context.WithTimeout(tab, browserStepTimeout)
	_, err := chromedp.Call(clearCtx, network.ClearBrowserCookies, cdp.Empty{})
	clearCancel()
	require.NoError(t, err, "forget the session: Network.clearBrowserCookies")
	u = browserNavigate(t, tab, "open the UI's login without a session", chromedp.Navigate(ui+"/login"))
	autofill := kuiFlowID(t, ui, u)
	require.NoError(t, waWaitFor(tab, `new URLSearchParams(location.search).get("flow") !== `+strconv.Quote(autofill)+` && document.querySelector(`+strconv.Quote(kuiHardwareButton)+`) !== null`),
		"the autofill signed in and the UI shows the step-up")
	assert.Equal(t, "conditional", browserRun(t, tab, "read the recorded mediations", chromedp.Evaluate[string](`sessionStorage.getItem("pk-mediation") || ""`)),
		"one conditional request, made by the autofill, and no modal one")
	assert.Equal(t, http.StatusForbidden, kuiWhoamiStatus(t, tab, kratos), "an aal1 passkey session, short of highest_available")
	kuiScreenshot(t, tab, shots, "kratosui-passkey-autofill.png")

	assert.Empty(t, pages.Exceptions(), "no uncaught exceptions on the UI's pages")
	for _, e := range pages.Errors() {
		assert.NotContains(t, strings.ToLower(e), "webauthn", "no WebAuthn errors on the console")
	}
}

// kuiWhoamiStatus returns the status whoami answers the browser's session.
func kuiWhoamiStatus(t *testing.T, tab context.Context, public string) int {
	t.Helper()
	cookie, ok := browserCookies(t, tab, public+"/")["authflow_session"]
	require.True(t, ok, "the browser has the session cookie")
	req, err := http.NewRequest(http.MethodGet, public+"/sessions/whoami", nil)
	require.NoError(t, err)
	req.Header.Set("Accept", "application/json")
	req.AddCookie(&http.Cookie{Name: cookie.Name, Value: cookie.Value})
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	return resp.StatusCode
}
