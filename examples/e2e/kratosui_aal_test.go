package e2e

// The second factor through the Kratos UI of examples/kratos-ui: a password
// login of an identity with a TOTP authenticator ends on the UI's step-up
// card (Ory Elements renders the totp_code and lookup_secret forms of the
// aal2 flow), the UI's welcome page sends an aal1 session back to the
// step-up (toSession answers 403 session_aal2_required), and a TOTP code
// computed from the secret reaches the welcome page at aal2.

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	pqtotp "github.com/pquerna/otp/totp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	// kuiTOTPSecret and kuiBackupCodes are the example server's
	// -totp-secret and -lookup-codes in the SecondFactor scenario.
	kuiTOTPSecret  = "KRSXG5CTMVRXEZLUKRSXG5CTMVRXEZLU"
	kuiBackupCodes = "w1x2y3z4,q5r6s7t8"

	// Selectors of Ory Elements' step-up card: one form per second factor
	// (data-testid attributes are Ory's).
	kuiTOTPForm      = `form[data-testid="totp-flow"]`
	kuiTOTPField     = `form[data-testid="totp-flow"] input[name="totp_code"]`
	kuiTOTPSubmit    = `form[data-testid="totp-flow"] button[type="submit"][name="method"][value="totp"]`
	kuiLookupForm    = `form[data-testid="lookup-secret-flow"]`
	kuiLookupField   = `form[data-testid="lookup-secret-flow"] input[name="lookup_secret"]`
	kuiLookupSubmit  = `form[data-testid="lookup-secret-flow"] button[type="submit"][name="method"][value="lookup_secret"]`
	kuiAALOnWelcome  = `//dt[normalize-space()="Assurance level"]/following-sibling::dd[1]`
	kuiSecondFactorM = `[data-testid="ui/message/1010004"]`
)

// kuiCheckStepUpCard checks the card Ory Elements rendered for the aal2
// flow id: its title, message 1010004, and a form per second factor that
// posts to the flow's ui.action with the CSRF token, its labelled field and
// its button.
func kuiCheckStepUpCard(t *testing.T, tab context.Context, kratos, id string) {
	t.Helper()
	browserDo(t, tab, "the card is visible", chromedp.WaitVisible(chromedp.CSS(kuiCard)))
	assert.Equal(t, "Two-Factor Authentication", browserRun(t, tab, "read the card title", chromedp.Text(chromedp.CSS(kuiCard+" h2"))))
	browserDo(t, tab, "message 1010004 is visible", chromedp.WaitVisible(chromedp.CSS(kuiSecondFactorM)))
	assert.Equal(t, "Please complete the second authentication challenge.",
		browserRun(t, tab, "read the message", chromedp.Text(chromedp.CSS(kuiSecondFactorM))))
	for _, form := range []string{kuiTOTPForm, kuiLookupForm} {
		got := browserRun(t, tab, "read "+form, chromedp.Evaluate[[]string](
			`(f => [f.getAttribute("action"), f.getAttribute("method").toUpperCase(),
				f.querySelector("input[type=hidden][name=csrf_token]").value !== "" ? "csrf" : "no csrf"])(document.querySelector('`+form+`'))`))
		assert.Equal(t, []string{kratos + "/self-service/login?flow=" + id, "POST", "csrf"}, got, "%s: action, method, token", form)
	}
	fields := browserRun(t, tab, "read the fields", chromedp.Evaluate[[]string](
		`Array.from(document.querySelectorAll('`+kuiCard+` form input:not([type=hidden])'), i =>
			[i.name, i.type, i.getAttribute("autocomplete"),
			 Array.from(i.labels, l => l.textContent.replace("*", "").trim()).join(",")].join("|"))`))
	assert.Equal(t, []string{"totp_code|text|one-time-code|Authentication code", "lookup_secret|text||Backup recovery code"}, fields,
		"visible fields as name|type|autocomplete|labels")
	browserDo(t, tab, "the TOTP button is visible", chromedp.WaitVisible(chromedp.CSS(kuiTOTPSubmit)))
	assert.Equal(t, "Use Authenticator", browserRun(t, tab, "read the TOTP button", chromedp.Text(chromedp.CSS(kuiTOTPSubmit))))
	assert.Equal(t, "Use backup recovery code", browserRun(t, tab, "read the backup-code button", chromedp.Text(chromedp.CSS(kuiLookupSubmit))))
	assert.Empty(t, browserRun(t, tab, "count password fields",
		chromedp.Evaluate[string](`Array.from(document.querySelectorAll('input[name="password"]'), i => i.name).join(",")`)),
		"a step-up card asks for no password")
}

// The password, then the step-up card; the welcome page of the aal1
// session sends back to a step-up; a TOTP code ends on the welcome page at
// aal2.
func kuiSecondFactor(t *testing.T, tab context.Context, pages *kuiPageLog, kratos, ui, shots string) {
	u := browserNavigate(t, tab, "open the UI's login", chromedp.Navigate(ui+"/login"))
	kuiCheckLoginCard(t, tab, kratos, kuiFlowID(t, ui, u))
	u = browserNavigate(t, tab, "submit the password",
		chromedp.SendKeys(chromedp.CSS(kuiIDField), kuiIdentifier),
		chromedp.SendKeys(chromedp.CSS(kuiPassField), kuiPassword),
		chromedp.Click(chromedp.CSS(kuiSubmit)),
	)
	// authflow answers the password with a 303 to its browser init with
	// aal=aal2, which creates the step-up flow and sends the browser to the
	// UI's /login?flow=<id>.
	first := kuiFlowID(t, ui, u)
	kuiCheckStepUpCard(t, tab, kratos, first)
	assert.Contains(t, browserCookies(t, tab, kratos+"/"), "authflow_session", "the aal1 session is issued")
	kuiCheckPage(t, tab, pages, kratos, "step-up page")
	kuiScreenshot(t, tab, shots, "kratosui-stepup.png")

	// The UI's welcome page calls toSession: 403 session_aal2_required, so
	// it starts the step-up instead of showing the session.
	u = browserNavigate(t, tab, "open the UI's welcome page with the aal1 session", chromedp.Navigate(ui+"/welcome"))
	again := kuiFlowID(t, ui, u)
	assert.NotEqual(t, first, again, "a new step-up flow")
	kuiCheckStepUpCard(t, tab, kratos, again)
	kuiCheckPage(t, tab, pages, kratos, "step-up page from the welcome page")

	code, err := pqtotp.GenerateCode(kuiTOTPSecret, time.Now())
	require.NoError(t, err)
	u = browserNavigate(t, tab, "submit the TOTP code",
		chromedp.SendKeys(chromedp.CSS(kuiTOTPField), code),
		chromedp.Click(chromedp.CSS(kuiTOTPSubmit)),
	)
	require.Equal(t, ui+"/welcome", u.String(), "after the step-up the browser shows the default return URL, the UI's /welcome")
	browserDo(t, tab, "the session's email is visible", chromedp.WaitVisible(chromedp.CSS(kuiEmail)))
	assert.Equal(t, kuiIdentifier, browserRun(t, tab, "read the email", chromedp.Text(chromedp.CSS(kuiEmail))))
	assert.Equal(t, "aal2", browserRun(t, tab, "read the assurance level", chromedp.Text(kuiAALOnWelcome)),
		"toSession answers the aal2 session")
	kuiCheckPage(t, tab, pages, kratos, "welcome page at aal2")
	kuiScreenshot(t, tab, shots, "kratosui-welcome-aal2.png")
}
