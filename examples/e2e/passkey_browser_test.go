package e2e

// Passkeys and security keys in a real headless Chromium with a CDP
// virtual authenticator, against the real example server binary on
// localhost (the relying party id must be a domain; Chromium treats
// http://localhost as a secure context): a passkey is added on the
// settings page and signs in with the demo's "Sign in with passkey"
// button and by autofill (conditional mediation); a security key is added
// on the settings page and answers the step-up. Every name of this file
// starts with "pk"; the browser and server helpers are those of
// browser_helpers_test.go, the authenticator's those of
// webauthn_browser_test.go.
//
//	cd examples/e2e && go test -v -run 'Passkey|WebAuthn' ./...

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	// Selectors of the demo's pages (internal/demo/templates).
	pkPasskeyButton     = `button[name="passkey_login_trigger"]`
	pkHardwareKeyButton = `button[name="webauthn_login_trigger"]`
	pkAddPasskey        = `#add-passkey button[name="passkey_register_trigger"]`
	pkPasskeyName       = "field-passkey-name"
	pkAddSecurityKey    = `#add-security-key button[name="webauthn_register_trigger"]`
	pkSecurityKeyName   = "field-security-key-name"
	pkMethods           = "session-methods"
)

// pkStartServer starts the example server binary on 127.0.0.1 with the
// public URL http://localhost:<port>, the fast hasher and the extra flags,
// and returns the public URL.
func pkStartServer(t *testing.T, bin string, extra ...string) string {
	t.Helper()
	port := strconv.Itoa(browserFreePort(t))
	public := "http://localhost:" + port
	args := append([]string{"-addr", "127.0.0.1:" + port, "-public-url", public, "-hasher", "bcrypt", "-bcrypt-cost", "4"}, extra...)
	line := startProcess(t, fmt.Sprintf("example server %v", args), exec.Command(bin, args...))
	require.Equal(t, "listening on "+public, line)
	t.Logf("example server %v listening on %s", args, public)
	return public
}

// pkWebAuthnReady waits until the page's webauthn.js defined its
// functions.
func pkWebAuthnReady(t *testing.T, tab context.Context) {
	t.Helper()
	require.NoError(t, waWaitFor(tab, "window.__oryWebAuthnInitialized === true"), "webauthn.js did not run")
}

// pkCredentials returns the virtual authenticator's credentials.
func pkCredentials(t *testing.T, tab context.Context, authenticator webauthn.AuthenticatorID) []*webauthn.Credential {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, browserStepTimeout)
	defer cancel()
	res, err := chromedp.Call(ctx, webauthn.GetCredentials, webauthn.GetCredentialsParams{AuthenticatorID: authenticator})
	require.NoError(t, err, "WebAuthn.getCredentials")
	return res.Credentials
}

// pkPasswordLogin signs in with the demo identity's password from a fresh
// login page and returns where the browser lands.
func pkPasswordLogin(t *testing.T, tab context.Context, public string) *url.URL {
	t.Helper()
	u := browserNavigate(t, tab, "open the login", chromedp.Navigate(public+"/self-service/login/browser"))
	browserLoginPage(t, public, u)
	return browserNavigate(t, tab, "submit the password",
		chromedp.SendKeys(chromedp.ID(browserIdentifierField), browserIdentifier),
		chromedp.SendKeys(chromedp.ID(browserPasswordField), browserPassword),
		chromedp.Click(browserSignInButton),
	)
}

// pkSignOut signs out from the welcome page and returns the login page
// the browser lands on.
func pkSignOut(t *testing.T, tab context.Context, public string) *url.URL {
	t.Helper()
	u := browserNavigate(t, tab, "open the welcome page", chromedp.Navigate(public+"/welcome"))
	require.Equal(t, public+"/welcome", u.String())
	u = browserNavigate(t, tab, "click Sign out", chromedp.Click(browserSignOutLink))
	browserLoginPage(t, public, u)
	return u
}

// pkWelcome checks the welcome page: the assurance level and the methods
// the session was signed in with.
func pkWelcome(t *testing.T, tab context.Context, public string, u *url.URL, aal, methods string) {
	t.Helper()
	require.Equal(t, public+"/welcome", u.String(), "signed in: the welcome page")
	assert.Equal(t, aal, browserRun(t, tab, "read the assurance level", chromedp.Text(chromedp.ID(aalE2EAAL))))
	assert.Equal(t, methods, browserRun(t, tab, "read the methods", chromedp.Text(chromedp.ID(pkMethods))))
}

func TestPasskeyDemo(t *testing.T) {
	chromium := browserFindChromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	started := time.Now()
	t.Cleanup(func() { t.Logf("TestPasskeyDemo took %v", time.Since(started).Round(time.Millisecond)) })

	shots := browserScreenshotDir(t)
	bin := browserBuildServer(t)
	browser := browserStart(t, ctx, chromium)

	t.Run("Passkey", func(t *testing.T) {
		public := pkStartServer(t, bin, "-passkey")
		pkPasskey(t, browserTab(t, browser), public, shots)
	})
	t.Run("SecurityKeyStepUp", func(t *testing.T) {
		public := pkStartServer(t, bin, "-webauthn", "-required-aal", "highest_available")
		pkSecurityKey(t, browserTab(t, browser), public, shots)
	})
}

// pkRecordMediation is run by the tab before each page's scripts: it
// records in sessionStorage (kept across the tab's navigations on one
// origin) the mediation of every navigator.credentials.get call, then
// makes the call unchanged, so that a test can tell a modal login from
// an autofill one after the page that made it is gone.
const pkRecordMediation = `(() => {
	const container = navigator.credentials;
	if (!container) return;
	const get = container.get.bind(container);
	container.get = (options) => {
		const seen = sessionStorage.getItem("pk-mediation");
		sessionStorage.setItem("pk-mediation", (seen ? seen + "," : "") + ((options && options.mediation) || "modal"));
		return get(options);
	};
})()`

// pkDisarmAutofill is run by the tab before each page's scripts while the
// "Sign in with passkey" button is tested: webauthn.js's autofill stands
// down under Cypress (as Kratos' does), and Chromium's virtual
// authenticator would otherwise answer the autofill's conditional request
// at once, before the button is clicked.
const pkDisarmAutofill = "window.Cypress = true"

// pkOnNewDocument makes the tab run source before the scripts of every
// page it loads from now on, and returns the function that stops that.
func pkOnNewDocument(t *testing.T, tab context.Context, source string) func() {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, browserStepTimeout)
	defer cancel()
	res, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: source})
	require.NoError(t, err, "Page.addScriptToEvaluateOnNewDocument")
	return func() {
		ctx, cancel := context.WithTimeout(tab, browserStepTimeout)
		defer cancel()
		_, err := chromedp.Call(ctx, page.RemoveScriptToEvaluateOnNewDocument, page.RemoveScriptToEvaluateOnNewDocumentParams{Identifier: res.Identifier})
		require.NoError(t, err, "Page.removeScriptToEvaluateOnNewDocument")
	}
}

// pkMediations returns and forgets the mediations pkRecordMediation
// recorded.
func pkMediations(t *testing.T, tab context.Context) string {
	t.Helper()
	return browserRun(t, tab, "read the recorded mediations", chromedp.Evaluate[string](
		`(() => { const m = sessionStorage.getItem("pk-mediation") || ""; sessionStorage.removeItem("pk-mediation"); return m; })()`))
}

// pkPasskey: the password signs in; the settings page adds a passkey; the
// "Sign in with passkey" button signs in with it, then the autofill does.
func pkPasskey(t *testing.T, tab context.Context, public, shots string) {
	defer pkShotOnFailure(t, tab, shots, "passkey-failure.png")
	browserNavigate(t, tab, "open the login", chromedp.Navigate(public+"/self-service/login/browser"))
	authenticator := waVirtualAuthenticator(t, tab)
	pkOnNewDocument(t, tab, pkRecordMediation)

	u := pkPasswordLogin(t, tab, public)
	pkWelcome(t, tab, public, u, "aal1", "password")

	u = browserNavigate(t, tab, "open the settings", chromedp.Navigate(public+"/settings"))
	require.Equal(t, public+"/settings", u.String())
	assert.Equal(t, "None yet.", browserRun(t, tab, "read the passkeys", chromedp.Text(chromedp.CSS("h2 + p.no-keys"))))
	pkWebAuthnReady(t, tab)
	u = browserNavigate(t, tab, "add a passkey",
		chromedp.SendKeys(chromedp.ID(pkPasskeyName), "Virtual passkey"),
		chromedp.Click(chromedp.CSS(pkAddPasskey)))
	require.Equal(t, public+"/settings?done=passkey", u.String(), "the enrolment comes back to the settings")
	assert.Contains(t, browserText(t, tab), "Your passkey is added")
	names := browserRun(t, tab, "read the keys", chromedp.Evaluate[[]string](
		`Array.from(document.querySelectorAll("ul.keys .key-name"), e => e.textContent)`))
	assert.Equal(t, []string{"Virtual passkey"}, names)
	creds := pkCredentials(t, tab, authenticator)
	require.Len(t, creds, 1, "the authenticator holds the passkey")
	assert.True(t, creds[0].IsResidentCredential, "a discoverable credential")
	browserScreenshot(t, tab, shots, "settings-passkey.png")

	// The button, with the autofill disarmed.
	rearm := pkOnNewDocument(t, tab, pkDisarmAutofill)
	u = pkSignOut(t, tab, public)
	pkWebAuthnReady(t, tab)
	identifier := browserRun(t, tab, "read the identifier field", chromedp.Attributes(chromedp.ID(browserIdentifierField)))
	assert.Equal(t, "username webauthn", identifier["autocomplete"], "the identifier field offers passkeys in its autofill")
	assert.Equal(t, "Sign in with passkey", browserRun(t, tab, "read the passkey button", chromedp.Text(chromedp.CSS(pkPasskeyButton))))
	browserScreenshot(t, tab, shots, "login-passkey.png")
	pkMediations(t, tab)
	u = browserNavigate(t, tab, "click Sign in with passkey", chromedp.Click(chromedp.CSS(pkPasskeyButton)))
	pkWelcome(t, tab, public, u, "aal1", "passkey")
	assert.Equal(t, "modal", pkMediations(t, tab), "one modal request, made by the button")
	rearm()

	// The autofill: the login page's conditional request, which Chromium's
	// virtual authenticator answers without a click.
	pkSignOut(t, tab, public)
	if err := waWaitFor(tab, `location.pathname === "/welcome" && document.readyState === "complete"`); err != nil {
		armed := browserRun(t, tab, "look for the pending request", chromedp.Evaluate[bool]("window.abortPasskeyConditionalUI instanceof AbortController"))
		t.Fatalf("the autofill did not sign in (conditional request pending: %v): %v", armed, err)
	}
	pkWelcome(t, tab, public, pkLocation(t, tab), "aal1", "passkey")
	assert.Equal(t, "conditional", pkMediations(t, tab), "one conditional request, made by the autofill, and no modal one")
	browserScreenshot(t, tab, shots, "welcome-passkey.png")
}

// pkLocation is the tab's URL.
func pkLocation(t *testing.T, tab context.Context) *url.URL {
	t.Helper()
	u, err := url.Parse(browserRun(t, tab, "read location", chromedp.Location()))
	require.NoError(t, err)
	return u
}

// pkSecurityKey: the settings page adds a security key (the step-up then
// asks for it at once, and it answers); the next password login asks for
// it, and the "Sign in with a hardware key" button gives an aal2 session.
func pkSecurityKey(t *testing.T, tab context.Context, public, shots string) {
	defer pkShotOnFailure(t, tab, shots, "security-key-failure.png")
	browserNavigate(t, tab, "open the login", chromedp.Navigate(public+"/self-service/login/browser"))
	authenticator := waAddAuthenticator(t, tab, &webauthn.VirtualAuthenticatorOptions{
		Protocol:                    webauthn.AuthenticatorProtocolCtap2,
		Ctap2version:                webauthn.Ctap2versionCtap21,
		Transport:                   webauthn.AuthenticatorTransportUsb,
		HasResidentKey:              false,
		HasUserVerification:         false,
		AutomaticPresenceSimulation: true,
	})

	u := pkPasswordLogin(t, tab, public)
	pkWelcome(t, tab, public, u, "aal1", "password")
	u = browserNavigate(t, tab, "open the settings", chromedp.Navigate(public+"/settings"))
	require.Equal(t, public+"/settings", u.String())
	pkWebAuthnReady(t, tab)
	// The key makes the aal1 session short of highest_available: the
	// settings page it comes back to asks for the key first.
	u = browserNavigate(t, tab, "add a security key",
		chromedp.SendKeys(chromedp.ID(pkSecurityKeyName), "Virtual key"),
		chromedp.Click(chromedp.CSS(pkAddSecurityKey)))
	browserLoginPage(t, public, u)
	require.Len(t, pkCredentials(t, tab, authenticator), 1, "the authenticator holds the key")
	pkCheckStepUp(t, tab)
	u = browserNavigate(t, tab, "click Sign in with a hardware key", chromedp.Click(chromedp.CSS(pkHardwareKeyButton)))
	require.Equal(t, public+"/settings?done=security-key", u.String(), "the step-up returns to the settings")
	assert.Equal(t, "aal2", browserRun(t, tab, "read the assurance level", chromedp.Text(chromedp.ID(aalE2EAAL))))
	assert.Contains(t, browserText(t, tab), "Your security key is added")
	names := browserRun(t, tab, "read the keys", chromedp.Evaluate[[]string](
		`Array.from(document.querySelectorAll("ul.keys .key-name"), e => e.textContent)`))
	assert.Equal(t, []string{"Virtual key"}, names)
	browserScreenshot(t, tab, shots, "settings-security-key.png")

	pkSignOut(t, tab, public)
	u = pkPasswordLogin(t, tab, public)
	browserLoginPage(t, public, u)
	pkCheckStepUp(t, tab)
	browserScreenshot(t, tab, shots, "stepup-security-key.png")
	u = browserNavigate(t, tab, "click Sign in with a hardware key", chromedp.Click(chromedp.CSS(pkHardwareKeyButton)))
	pkWelcome(t, tab, public, u, "aal2", "password, webauthn")
}

// pkCheckStepUp checks the step-up page of an identity whose only second
// factor is a security key, and waits for its script.
func pkCheckStepUp(t *testing.T, tab context.Context) {
	t.Helper()
	assert.Equal(t, "Two-factor authentication", browserRun(t, tab, "read the heading", chromedp.Text(chromedp.CSS("h1"))))
	assert.Equal(t, "Sign in with a hardware key", browserRun(t, tab, "read the key button", chromedp.Text(chromedp.CSS(pkHardwareKeyButton))))
	assert.NotContains(t, browserText(t, tab), "Password")
	pkWebAuthnReady(t, tab)
}

// pkShotOnFailure saves a screenshot when the test failed.
func pkShotOnFailure(t *testing.T, tab context.Context, shots, name string) {
	if !t.Failed() {
		return
	}
	ctx, cancel := context.WithTimeout(tab, browserStepTimeout)
	defer cancel()
	if png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
		path := filepath.Join(shots, name)
		if werr := os.WriteFile(path, png, 0o644); werr == nil {
			t.Logf("screenshot of the failure: %s", path)
		}
	}
}
