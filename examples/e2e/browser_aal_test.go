package e2e

// The second factor in a real headless Chromium against the real example
// server binary: the demo identity seeded with -totp-secret and
// -lookup-codes signs in with its password, lands on the step-up page and
// finishes with a TOTP code the test computes from the secret, or with a
// backup code; and an identity without a second factor enrols a TOTP
// authenticator and makes backup codes on the settings page. Every name of
// this file starts with "aalE2E"; the browser, server and screenshot
// helpers are those of browser_helpers_test.go.
//
//	cd examples/e2e && go test -v -run BrowserSecondFactor ./...

import (
	"context"
	"net/url"
	"regexp"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	pqtotp "github.com/pquerna/otp/totp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	// aalE2ESecret and aalE2ECodes are the example server's -totp-secret
	// and -lookup-codes.
	aalE2ESecret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
	aalE2ECodes  = "k7q2m9x4,p3w8z1v6,r5t0y2u8"

	// Selectors of the step-up page (the demo's login page rendering the
	// totp and lookup_secret nodes) and of the welcome and settings pages.
	aalE2ETOTPField      = "field-totp_code"
	aalE2ELookupField    = "field-lookup_secret"
	aalE2ETOTPButton     = `//form//button[normalize-space()="Use Authenticator"]`
	aalE2ELookupButton   = `//form//button[normalize-space()="Use backup recovery code"]`
	aalE2ESettingsLink   = `//a[normalize-space()="Security settings"]`
	aalE2EEnrolField     = "field-totp-code"
	aalE2ETurnOnButton   = `//form//button[normalize-space()="Turn on"]`
	aalE2ECodesButton    = `//form//button[normalize-space()="Generate new backup codes"]`
	aalE2EStepUpLink     = "step-up"
	aalE2EAAL            = "session-aal"
	aalE2ESecondFactorID = `ul.messages li[data-message-id="1010004"]`
)

func TestBrowserSecondFactor(t *testing.T) {
	chromium := browserFindChromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)

	shots := browserScreenshotDir(t)
	bin := browserBuildServer(t)
	seeded := browserStartServer(t, bin, "-totp-secret", aalE2ESecret, "-lookup-codes", aalE2ECodes)
	browser := browserStart(t, ctx, chromium)

	t.Run("PasswordThenTOTP", func(t *testing.T) {
		aalE2ETOTP(t, browserTab(t, browser), seeded.URL, shots)
	})
	t.Run("PasswordThenBackupCode", func(t *testing.T) {
		aalE2EBackupCode(t, browserTab(t, browser), seeded.URL, shots)
	})
	t.Run("EnrolOnSettingsPage", func(t *testing.T) {
		plain := browserStartServer(t, bin)
		aalE2EEnrol(t, browserTab(t, browser), plain.URL, shots)
	})
}

// aalE2EPassword signs in with the demo identity's password from a fresh
// login page and returns the page the browser lands on.
func aalE2EPassword(t *testing.T, tab context.Context, public string) *url.URL {
	t.Helper()
	u := browserNavigate(t, tab, "open the login", chromedp.Navigate(public+"/self-service/login/browser"))
	browserLoginPage(t, public, u)
	return browserNavigate(t, tab, "submit the password",
		chromedp.SendKeys(chromedp.ID(browserIdentifierField), browserIdentifier),
		chromedp.SendKeys(chromedp.ID(browserPasswordField), browserPassword),
		chromedp.Click(browserSignInButton),
	)
}

// aalE2ECheckStepUpPage checks the step-up page of flow u: the heading,
// message 1010004, one labelled field per second factor of the identity
// (backup codes only when it has some), each in its own form with its
// button and the CSRF token, and no password field.
func aalE2ECheckStepUpPage(t *testing.T, tab context.Context, public string, u *url.URL, backupCodes bool) {
	t.Helper()
	id := browserLoginPage(t, public, u)
	browserDo(t, tab, "the TOTP field is visible", chromedp.WaitVisible(chromedp.ID(aalE2ETOTPField)))
	assert.Equal(t, "Two-factor authentication", browserRun(t, tab, "read the heading", chromedp.Text(chromedp.CSS("h1"))))
	browserDo(t, tab, "message 1010004 is visible", chromedp.WaitVisible(chromedp.CSS(aalE2ESecondFactorID)))
	assert.Equal(t, "Please complete the second authentication challenge.",
		browserRun(t, tab, "read the message", chromedp.Text(chromedp.CSS(aalE2ESecondFactorID))))
	forms := browserRun(t, tab, "read the forms", chromedp.Evaluate[[]string](
		`Array.from(document.querySelectorAll("form"), f => [
			f.getAttribute("action"),
			f.querySelector("input[name=csrf_token]") && f.querySelector("input[name=csrf_token]").value !== "" ? "csrf" : "no csrf",
			Array.from(f.querySelectorAll("input:not([type=hidden])"), i =>
				i.id + "|" + i.type + "|" + Array.from(i.labels, l => l.textContent.trim()).join(",")).join(" "),
			Array.from(f.querySelectorAll("button"), b => b.name + "=" + b.value + "|" + b.textContent.trim()).join(" "),
		].join(" ; "))`))
	action := public + "/self-service/login?flow=" + id
	want := []string{action + " ; csrf ; field-totp_code|text|Authentication code ; method=totp|Use Authenticator"}
	if backupCodes {
		want = append(want, action+" ; csrf ; field-lookup_secret|text|Backup recovery code ; method=lookup_secret|Use backup recovery code")
	}
	assert.Equal(t, want, forms, "one form per second factor: action ; token ; fields ; buttons")
	assert.NotContains(t, browserText(t, tab), "Password")
}

// Scenario 1: password, the step-up page, a TOTP code computed from the
// secret (Enter in the field), the welcome page at aal2, the settings.
func aalE2ETOTP(t *testing.T, tab context.Context, public, shots string) {
	u := aalE2EPassword(t, tab, public)
	aalE2ECheckStepUpPage(t, tab, public, u, true)
	assert.Contains(t, browserCookies(t, tab, public+"/"), "authflow_session", "the aal1 session is issued")
	browserScreenshot(t, tab, shots, "stepup.png")

	code, err := pqtotp.GenerateCode(aalE2ESecret, time.Now())
	require.NoError(t, err)
	u = browserNavigate(t, tab, "submit the TOTP code with Enter",
		chromedp.SendKeys(chromedp.ID(aalE2ETOTPField), code+kb.Enter))
	require.Equal(t, public+"/welcome", u.String(), "after the step-up the browser shows the default return URL")
	assert.Equal(t, "Welcome, "+browserIdentifier, browserRun(t, tab, "read the heading", chromedp.Text(chromedp.CSS("h1"))))
	assert.Equal(t, "aal2", browserRun(t, tab, "read the assurance level", chromedp.Text(chromedp.ID(aalE2EAAL))))
	browserScreenshot(t, tab, shots, "welcome-aal2.png")

	u = browserNavigate(t, tab, "open the settings", chromedp.Click(aalE2ESettingsLink))
	require.Equal(t, public+"/settings", u.String())
	assert.Equal(t, "on", browserRun(t, tab, "read the TOTP status", chromedp.Attributes(chromedp.ID("totp-status")))["data-status"])
	assert.Equal(t, "3 unused backup codes.", browserRun(t, tab, "read the codes status", chromedp.Text(chromedp.ID("codes-status"))))
	browserScreenshot(t, tab, shots, "settings-aal2.png")
}

// Scenario 2: password, a wrong backup code (message 4000016 on the same
// flow), then a right one: the welcome page at aal2.
func aalE2EBackupCode(t *testing.T, tab context.Context, public, shots string) {
	u := aalE2EPassword(t, tab, public)
	aalE2ECheckStepUpPage(t, tab, public, u, true)
	id := u.Query().Get("flow")

	u = browserNavigate(t, tab, "submit a wrong backup code",
		chromedp.SendKeys(chromedp.ID(aalE2ELookupField), "zzzzzzzz"),
		chromedp.Click(aalE2ELookupButton))
	require.Equal(t, id, browserLoginPage(t, public, u), "a wrong code shows the same flow again")
	msg := `ul.messages li.error[data-message-id="4000016"]`
	browserDo(t, tab, "the invalid-code message is visible", chromedp.WaitVisible(chromedp.CSS(msg)))
	assert.Equal(t, "The backup recovery code is not valid.", browserRun(t, tab, "read the message", chromedp.Text(chromedp.CSS(msg))))
	assert.Empty(t, browserRun(t, tab, "read the field", chromedp.Value(chromedp.ID(aalE2ELookupField))), "the code is not echoed")
	browserScreenshot(t, tab, shots, "stepup-error.png")

	u = browserNavigate(t, tab, "submit a backup code",
		chromedp.SendKeys(chromedp.ID(aalE2ELookupField), "p3w8z1v6"),
		chromedp.Click(aalE2ELookupButton))
	require.Equal(t, public+"/welcome", u.String())
	assert.Equal(t, "aal2", browserRun(t, tab, "read the assurance level", chromedp.Text(chromedp.ID(aalE2EAAL))))
}

// Scenario 3: an identity without a second factor signs in with its
// password alone, scans (reads) the settings page's key, turns TOTP on with
// its code, verifies itself with the next code (the page's "Verify it's
// you" step-up, which comes back to the settings) and makes backup codes.
func aalE2EEnrol(t *testing.T, tab context.Context, public, shots string) {
	u := aalE2EPassword(t, tab, public)
	require.Equal(t, public+"/welcome", u.String(), "no second factor yet: the password signs in")
	assert.Equal(t, "aal1", browserRun(t, tab, "read the assurance level", chromedp.Text(chromedp.ID(aalE2EAAL))))

	u = browserNavigate(t, tab, "open the settings", chromedp.Click(aalE2ESettingsLink))
	require.Equal(t, public+"/settings", u.String())
	assert.Equal(t, "off", browserRun(t, tab, "read the TOTP status", chromedp.Attributes(chromedp.ID("totp-status")))["data-status"])
	// The QR code is a data: URL that the page's CSP must let the browser load.
	browserDo(t, tab, "the QR code is visible", chromedp.WaitVisible(chromedp.ID("totp-qr")))
	qr := browserRun(t, tab, "read the QR code", chromedp.Evaluate[[]int](
		`(i => [i.complete ? 1 : 0, i.naturalWidth, i.naturalHeight])(document.getElementById("totp-qr"))`))
	assert.Equal(t, []int{1, 256, 256}, qr, "the QR code loaded: complete, natural width and height")
	secret := browserRun(t, tab, "read the secret", chromedp.Text(chromedp.ID("totp-secret")))
	require.Regexp(t, regexp.MustCompile(`^[A-Z2-7]{32}$`), secret)
	browserScreenshot(t, tab, shots, "settings-enrol.png")

	now := time.Now()
	code, err := pqtotp.GenerateCode(secret, now)
	require.NoError(t, err)
	u = browserNavigate(t, tab, "turn TOTP on",
		chromedp.SendKeys(chromedp.ID(aalE2EEnrolField), code),
		chromedp.Click(aalE2ETurnOnButton))
	require.Equal(t, public+"/settings", u.String())
	assert.Contains(t, browserText(t, tab), "Your authenticator app is set up")
	assert.Equal(t, "on", browserRun(t, tab, "read the TOTP status", chromedp.Attributes(chromedp.ID("totp-status")))["data-status"])
	browserScreenshot(t, tab, shots, "settings-enrolled.png")

	// The enrolment code's time step is used; the next step's code is
	// accepted at once (one step of skew).
	u = browserNavigate(t, tab, "verify it's you", chromedp.Click(chromedp.ID(aalE2EStepUpLink)))
	aalE2ECheckStepUpPage(t, tab, public, u, false)
	next, err := pqtotp.GenerateCode(secret, now.Add(30*time.Second))
	require.NoError(t, err)
	u = browserNavigate(t, tab, "submit the next TOTP code",
		chromedp.SendKeys(chromedp.ID(aalE2ETOTPField), next),
		chromedp.Click(aalE2ETOTPButton))
	require.Equal(t, public+"/settings", u.String(), "the step-up returns to the settings (return_to)")
	assert.Equal(t, "aal2", browserRun(t, tab, "read the assurance level", chromedp.Text(chromedp.ID(aalE2EAAL))))

	u = browserNavigate(t, tab, "generate backup codes", chromedp.Click(aalE2ECodesButton))
	require.Equal(t, public+"/settings", u.String())
	codes := browserRun(t, tab, "read the codes", chromedp.Evaluate[[]string](
		`Array.from(document.querySelectorAll("#backup-codes code"), c => c.textContent)`))
	assert.Len(t, codes, 12)
	for _, c := range codes {
		assert.Regexp(t, regexp.MustCompile(`^[a-z0-9]{8}$`), c)
	}
	assert.Equal(t, "12 unused backup codes.", browserRun(t, tab, "read the codes status", chromedp.Text(chromedp.ID("codes-status"))))
	browserScreenshot(t, tab, shots, "settings-backup-codes.png")
}
