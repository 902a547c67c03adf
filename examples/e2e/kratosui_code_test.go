package e2e

// Login by a code sent by email through the Kratos UI of examples/kratos-ui,
// unchanged: Ory Elements renders the code method's nodes (the "Send sign
// in code" form, then the code field with Continue and Resend code) and
// the identifier-first steps, the browser posts them to authflow, and the
// code comes from the mail a real SMTP server in the test received.
//
//	cd examples/e2e && go test -v -run KratosUICode ./...

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	kuiCodeAddress = "ada@example.com" // the -seed-code-only identity

	// Selectors of Ory Elements' code form (data-testid attributes are Ory's).
	kuiCodeForm     = `form[data-testid="login-flow-code"]`
	kuiCodeIDField  = kuiCodeForm + ` input[name="identifier"]`
	kuiCodeField    = kuiCodeForm + ` input[name="code"]`
	kuiSendCode     = kuiCodeForm + ` button[type="submit"][name="method"][value="code"]`
	kuiResendCode   = kuiCodeForm + ` button[type="submit"][name="resend"][value="code"]`
	kuiTwoStepForm  = `form[data-testid="login-two-step"]`
	kuiTwoStepID    = kuiTwoStepForm + ` input[name="identifier"]`
	kuiTwoStepNext  = kuiTwoStepForm + ` button[type="submit"][name="method"][value="identifier_first"]`
	kuiCodeSentMsg  = `[data-testid="ui/message/1010014"]`
	kuiWrongCodeMsg = `[data-testid="ui/message/4010008"]`
)

func TestKratosUICodeLogin(t *testing.T) {
	const needNode = "node and npm are needed to run examples/kratos-ui (Debian: apt-get install nodejs npm; Node 20 or later); CI always runs this test"
	node := kuiRequired(t, needNode, "node")
	npm := kuiRequired(t, needNode, "npm")
	chromium := kuiFindChromium(t)
	dir := kuiUIDir(t)
	kuiEnsureNodeModules(t, npm, dir)
	shots := browserScreenshotDir(t)
	bin := browserBuildServer(t)
	mail := StartMailServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	browser := kuiStartBrowser(t, ctx, chromium)

	start := func(t *testing.T, extra ...string) (kratos, ui string) {
		port := browserFreePort(t)
		kratos = kuiStartAuthflow(t, bin, "http://127.0.0.1:"+strconv.Itoa(port),
			append([]string{"-code-login", "-smtp-url", mail.MailURL(), "-seed-code-only", kuiCodeAddress}, extra...)...)
		return kratos, kuiStartUI(t, node, dir, port, kratos)
	}
	t.Run("Unified", func(t *testing.T) {
		kratos, ui := start(t)
		tab, pages := kuiTab(t, browser)
		kuiCodeUnified(t, tab, pages, mail, kratos, ui, shots)
	})
	t.Run("IdentifierFirst", func(t *testing.T) {
		kratos, ui := start(t, "-login-style", "identifier_first")
		tab, pages := kuiTab(t, browser)
		kuiCodeIdentifierFirst(t, tab, pages, mail, kratos, ui, shots)
	})
}

// kuiCodeSent checks the card of flow id after the code was sent: message
// 1010014, the code field labelled 1070013, Continue and Resend code, the
// address hidden in the form, no password.
func kuiCodeSent(t *testing.T, tab context.Context, kratos, id string) {
	t.Helper()
	browserDo(t, tab, "message 1010014 is visible", chromedp.WaitVisible(chromedp.CSS(kuiCodeSentMsg)))
	assert.Equal(t, []string{"1010014"}, kuiMessageIDs(t, tab), "the only message shown")
	form := browserRun(t, tab, "read the code form", chromedp.Evaluate[[]string](
		`(f => [f.getAttribute("action"), f.getAttribute("method").toUpperCase(),
			f.querySelector("input[name=identifier]").type, f.querySelector("input[name=identifier]").value,
			f.querySelector("input[type=hidden][name=csrf_token]").value !== "" ? "csrf" : "no csrf"])(document.querySelector('`+kuiCodeForm+`'))`))
	assert.Equal(t, []string{kratos + "/self-service/login?flow=" + id, "POST", "hidden", kuiCodeAddress, "csrf"}, form,
		"action, method, the identifier field and the CSRF token")
	fields := browserRun(t, tab, "read the fields", chromedp.Evaluate[[]string](
		`Array.from(document.querySelectorAll('`+kuiCard+` form input:not([type=hidden])'), i =>
			[i.name, i.type, i.getAttribute("autocomplete"), i.required,
			 Array.from(i.labels, l => l.textContent.replace("*", "").trim()).join(",")].join("|"))`))
	assert.Equal(t, []string{"code|text|one-time-code|true|Login code"}, fields, "visible fields as name|type|autocomplete|required|labels")
	browserDo(t, tab, "Continue and Resend code are visible",
		chromedp.WaitVisible(chromedp.CSS(kuiSendCode)), chromedp.WaitVisible(chromedp.CSS(kuiResendCode)))
	assert.Equal(t, "Continue", browserRun(t, tab, "read the submit button", chromedp.Text(chromedp.CSS(kuiSendCode))))
	assert.Equal(t, "Resend code", browserRun(t, tab, "read the resend button", chromedp.Text(chromedp.CSS(kuiResendCode))))
}

// kuiCodeLogIn types the code from the mail, presses Continue and checks
// the UI's welcome page.
func kuiCodeLogIn(t *testing.T, tab context.Context, pages *kuiPageLog, mail *MailServer, kratos, ui, shots, shot string) {
	t.Helper()
	loginCode := MailLoginCode(t, mail.MailNext(t, browserMailWait), kuiCodeAddress, 15)
	u := browserNavigate(t, tab, "type the code and press Continue",
		chromedp.SendKeys(chromedp.CSS(kuiCodeField), loginCode),
		chromedp.Click(chromedp.CSS(kuiSendCode)))
	require.Equal(t, ui+"/welcome", u.String(), "after the login the browser shows the UI's /welcome")
	browserDo(t, tab, "the session's email is visible", chromedp.WaitVisible(chromedp.CSS(kuiEmail)))
	assert.Equal(t, kuiCodeAddress, browserRun(t, tab, "read the email", chromedp.Text(chromedp.CSS(kuiEmail))))
	assert.Equal(t, "aal1", browserRun(t, tab, "read the assurance level", chromedp.Text(kuiAALOnWelcome)))
	assert.Contains(t, browserCookies(t, tab, kratos+"/"), "authflow_session")
	kuiCheckPage(t, tab, pages, kratos, "welcome page after the code")
	kuiScreenshot(t, tab, shots, shot)
}

// The unified card: Ory Elements puts the code method in a form of its
// own with the identifier; a wrong code, then the right one.
func kuiCodeUnified(t *testing.T, tab context.Context, pages *kuiPageLog, mail *MailServer, kratos, ui, shots string) {
	u := browserNavigate(t, tab, "open the UI's login", chromedp.Navigate(ui+"/login"))
	id := kuiFlowID(t, ui, u)
	kuiCheckPage(t, tab, pages, kratos, "login page")
	browserDo(t, tab, "the code form is visible", chromedp.WaitVisible(chromedp.CSS(kuiCodeIDField)), chromedp.WaitVisible(chromedp.CSS(kuiSendCode)))
	assert.Equal(t, "Send sign in code", browserRun(t, tab, "read the code button", chromedp.Text(chromedp.CSS(kuiSendCode))))
	browserDo(t, tab, "the password form is visible", chromedp.WaitVisible(chromedp.CSS(kuiPassField)), chromedp.WaitVisible(chromedp.CSS(kuiSubmit)))
	kuiScreenshot(t, tab, shots, "kratosui-code-login.png")

	u = browserNavigate(t, tab, "type the address and press Send sign in code",
		chromedp.SendKeys(chromedp.CSS(kuiCodeIDField), kuiCodeAddress),
		chromedp.Click(chromedp.CSS(kuiSendCode)))
	require.Equal(t, id, kuiFlowID(t, ui, u), "the same flow, waiting for the code")
	kuiCodeSent(t, tab, kratos, id)
	kuiCheckPage(t, tab, pages, kratos, "code sent")
	kuiScreenshot(t, tab, shots, "kratosui-code-sent.png")

	u = browserNavigate(t, tab, "submit a wrong code",
		chromedp.SendKeys(chromedp.CSS(kuiCodeField), "12345x"),
		chromedp.Click(chromedp.CSS(kuiSendCode)))
	require.Equal(t, id, kuiFlowID(t, ui, u))
	browserDo(t, tab, "message 4010008 is visible", chromedp.WaitVisible(chromedp.CSS(kuiWrongCodeMsg)))
	assert.Empty(t, browserRun(t, tab, "read the code field", chromedp.Value(chromedp.CSS(kuiCodeField))), "a code is never sent back")
	kuiCheckPage(t, tab, pages, kratos, "wrong code")

	kuiCodeLogIn(t, tab, pages, mail, kratos, ui, shots, "kratosui-code-welcome.png")
}

// The identifier-first card: the identifier and Continue; then Ory
// Elements' second step with the code form; then the code.
func kuiCodeIdentifierFirst(t *testing.T, tab context.Context, pages *kuiPageLog, mail *MailServer, kratos, ui, shots string) {
	u := browserNavigate(t, tab, "open the UI's login", chromedp.Navigate(ui+"/login"))
	id := kuiFlowID(t, ui, u)
	browserDo(t, tab, "the first step is visible", chromedp.WaitVisible(chromedp.CSS(kuiTwoStepID)), chromedp.WaitVisible(chromedp.CSS(kuiTwoStepNext)))
	assert.Empty(t, browserRun(t, tab, "count password fields",
		chromedp.Evaluate[string](`Array.from(document.querySelectorAll('input[name="password"]'), i => i.name).join(",")`)),
		"the first step asks for the identifier alone")
	kuiCheckPage(t, tab, pages, kratos, "first step")
	kuiScreenshot(t, tab, shots, "kratosui-idfirst-step1.png")

	u = browserNavigate(t, tab, "type the address and press Continue",
		chromedp.SendKeys(chromedp.CSS(kuiTwoStepID), kuiCodeAddress),
		chromedp.Click(chromedp.CSS(kuiTwoStepNext)))
	require.Equal(t, id, kuiFlowID(t, ui, u))
	browserDo(t, tab, "the second step offers the code and the password",
		chromedp.WaitVisible(chromedp.CSS(kuiSendCode)), chromedp.WaitVisible(chromedp.CSS(kuiPassField)))
	assert.Equal(t, kuiCodeAddress, browserRun(t, tab, "read the code form's identifier",
		chromedp.Evaluate[string](`document.querySelector('`+kuiCodeForm+` input[name=identifier]').value`)))
	kuiCheckPage(t, tab, pages, kratos, "second step")
	kuiScreenshot(t, tab, shots, "kratosui-idfirst-step2.png")

	u = browserNavigate(t, tab, "press Send sign in code", chromedp.Click(chromedp.CSS(kuiSendCode)))
	require.Equal(t, id, kuiFlowID(t, ui, u))
	kuiCodeSent(t, tab, kratos, id)

	kuiCodeLogIn(t, tab, pages, mail, kratos, ui, shots, "kratosui-idfirst-code-welcome.png")
}
