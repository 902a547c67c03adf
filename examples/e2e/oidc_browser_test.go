package e2e

// End-to-end social sign-in: a real headless Chromium against the real
// example server binary started with -oidc-provider and -oidc-link, and a
// real OpenID Connect provider in process (github.com/oauth2-proxy/mockoidc,
// whose authorization endpoint answers at once with a code for the queued
// user). Every identifier of this file starts with "oidcE2E"; the browser,
// server and screenshot helpers are those of browser_helpers_test.go.
//
//	cd examples/e2e && go test -v -run BrowserOIDC ./...

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/oauth2-proxy/mockoidc"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	oidcE2EProvider = "test"
	oidcE2ESubject  = "oidc-e2e-subject" // linked by -oidc-link
	oidcE2EEmail    = "oidc@example.com"
	oidcE2EButton   = `//form//button[normalize-space()="Sign in with test"]`
)

func TestBrowserOIDC(t *testing.T) {
	chromium := browserFindChromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)

	idp, err := mockoidc.Run()
	require.NoError(t, err, "start the mock OpenID Connect provider")
	t.Cleanup(func() { _ = idp.Shutdown() })
	t.Logf("mock OpenID Connect provider at %s", idp.Issuer())

	shots := browserScreenshotDir(t)
	bin := browserBuildServer(t)
	srv := browserStartServer(t, bin,
		"-oidc-provider", "id="+oidcE2EProvider+",issuer="+idp.Issuer()+",client-id="+idp.ClientID+",client-secret="+idp.ClientSecret,
		"-oidc-link", "provider="+oidcE2EProvider+",subject="+oidcE2ESubject+",email="+oidcE2EEmail)
	browser := browserStart(t, ctx, chromium)

	t.Run("SignIn", func(t *testing.T) {
		oidcE2ESignIn(t, browserTab(t, browser), idp, srv.URL, shots)
	})
	t.Run("UnlinkedSubject", func(t *testing.T) {
		oidcE2EUnlinked(t, browserTab(t, browser), idp, srv.URL, shots)
	})
	t.Run("PasswordWithEnter", func(t *testing.T) {
		oidcE2EPasswordEnter(t, browserTab(t, browser), srv.URL)
	})
}

// oidcE2EOpenLogin opens a fresh login page with JavaScript disabled (the
// page must work without it), checks the provider button and returns the
// flow id.
func oidcE2EOpenLogin(t *testing.T, tab context.Context, public string) string {
	t.Helper()
	dctx, cancel := context.WithTimeout(tab, browserStepTimeout)
	_, err := chromedp.Call(dctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
	cancel()
	require.NoError(t, err, "disable JavaScript in the page")
	u := browserNavigate(t, tab, "open the login", chromedp.Navigate(public+"/self-service/login/browser"))
	id := browserLoginPage(t, public, u)
	browserDo(t, tab, "the provider button is visible", chromedp.WaitVisible(oidcE2EButton))
	attrs := browserRun(t, tab, "read the provider button", chromedp.Attributes(oidcE2EButton))
	assert.Equal(t, "submit", attrs["type"], "a plain submit button of the login form")
	assert.Equal(t, "provider", attrs["name"])
	assert.Equal(t, oidcE2EProvider, attrs["value"])
	assert.NotContains(t, attrs, "onclick")
	browserDo(t, tab, "the password form stays", chromedp.WaitVisible(browserSignInButton))
	return id
}

// oidcE2EClick clicks the provider button and returns the URL of the page
// the browser lands on, after the provider and the callback.
func oidcE2EClick(t *testing.T, tab context.Context) string {
	t.Helper()
	return browserNavigate(t, tab, "click Sign in with test", chromedp.Click(oidcE2EButton)).String()
}

// Scenario 1: the provider button signs the linked user in.
func oidcE2ESignIn(t *testing.T, tab context.Context, idp *mockoidc.MockOIDC, public, shots string) {
	oidcE2EOpenLogin(t, tab, public)
	browserScreenshot(t, tab, shots, "oidc-login.png")

	idp.QueueUser(&mockoidc.MockUser{Subject: oidcE2ESubject, Email: oidcE2EEmail, EmailVerified: true})
	landed := oidcE2EClick(t, tab)
	require.Equal(t, public+"/welcome", landed, "after the provider the browser shows the default return URL")
	assert.Equal(t, "Welcome, "+oidcE2EEmail, browserRun(t, tab, "read the heading", chromedp.Text(chromedp.CSS("h1"))))
	browserScreenshot(t, tab, shots, "oidc-welcome.png")

	cookies := browserCookies(t, tab, public+"/")
	require.Contains(t, cookies, "authflow_session", "the browser holds the session cookie; it has %v", browserCookieNames(cookies))
	assert.NotContains(t, cookies, "authflow_oidc_state", "the state cookie is cleared by the callback")
}

// Scenario 2: a subject linked to no identity: back on the login page with
// 4000037, nobody signed in.
func oidcE2EUnlinked(t *testing.T, tab context.Context, idp *mockoidc.MockOIDC, public, shots string) {
	id := oidcE2EOpenLogin(t, tab, public)
	idp.QueueUser(&mockoidc.MockUser{Subject: "not-linked-subject", Email: "stranger@example.com", EmailVerified: true})
	landed := oidcE2EClick(t, tab)
	require.True(t, strings.HasPrefix(landed, public+"/login?flow="), "expected the login page, got %s", landed)
	assert.Equal(t, public+"/login?flow="+id, landed, "the same flow shows the message")

	msg := `ul.messages li.error[data-message-id="4000037"]`
	browserDo(t, tab, "the account-missing message is visible", chromedp.WaitVisible(chromedp.CSS(msg)))
	assert.Equal(t, "This account does not exist or has no login method configured.",
		browserRun(t, tab, "read the message", chromedp.Text(chromedp.CSS(msg))))
	browserDo(t, tab, "the provider button is there to retry", chromedp.WaitVisible(oidcE2EButton))
	assert.NotContains(t, browserCookies(t, tab, public+"/"), "authflow_session", "an unlinked subject signs nobody in")
	browserScreenshot(t, tab, shots, "oidc-account-missing.png")
}

// Scenario 3: with a provider configured, Enter in the password field still
// submits the password (the provider buttons are in a form of their own, so
// none of them is the password form's default button).
func oidcE2EPasswordEnter(t *testing.T, tab context.Context, public string) {
	oidcE2EOpenLogin(t, tab, public)
	forms := browserRun(t, tab, "read the forms", chromedp.Evaluate[[]string](
		`Array.from(document.forms, f => Array.from(f.querySelectorAll("button"), b => b.textContent.trim()).join("|"))`))
	assert.Equal(t, []string{"Sign in with test", "Sign in with password"}, forms, "the buttons of each form")
	u := browserNavigate(t, tab, "submit the password with Enter",
		chromedp.SendKeys(chromedp.ID(browserIdentifierField), browserIdentifier),
		chromedp.SendKeys(chromedp.ID(browserPasswordField), browserPassword+kb.Enter))
	require.Equal(t, public+"/welcome", u.String())
	assert.Equal(t, "Welcome, "+browserIdentifier, browserRun(t, tab, "read the heading", chromedp.Text(chromedp.CSS("h1"))))
}
