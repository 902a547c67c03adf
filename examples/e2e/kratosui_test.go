package e2e

// A UI written for Ory Kratos, unchanged, against authflow: the Node app of
// examples/kratos-ui (Express, Ory's SDK @ory/client and Ory's components
// @ory/elements-markup, built as Ory's reference UI is) in front of the example
// server, driven by a real headless Chromium: password login, errors,
// expiry, logout, and the second factor (kratosui_aal_test.go). The UI
// fetches flows and sessions server-side with the browser's cookies; the
// browser posts the card's form straight to authflow. Both run on 127.0.0.1 on different ports,
// so they share cookies as the reference UI and Kratos share a domain.
//
//	cd examples/e2e && go test -v -run KratosUI ./...
//
// It needs node and npm (it runs `npm ci` in examples/kratos-ui when
// node_modules is missing) and Chromium; without them it is skipped, on CI
// (CI=true) it fails instead. Screenshots go to $AUTHFLOW_SCREENSHOTS, else to a
// kept temporary directory; -v prints the paths.

import (
	"context"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	kuiIdentifier = "demo@example.com"             // the example server's default -identifier
	kuiPassword   = "correct horse battery staple" // the example server's default -password

	// kuiFlowLifespan is the -flow-lifespan of the expiry scenario's server;
	// the browser submits kuiExpiryWait after loading the flow.
	kuiFlowLifespan = 2 * time.Second
	kuiExpiryWait   = 2500 * time.Millisecond

	// Selectors of Ory Elements' UserAuthCard (data-testid attributes are
	// Ory's) and of the UI's welcome page.
	kuiCard        = `[data-testid="login-auth-card"]`
	kuiForm        = `form[data-testid="login-flow"]`
	kuiIDField     = `form[data-testid="login-flow"] input[name="identifier"]`
	kuiPassField   = `form[data-testid="login-flow"] input[name="password"]`
	kuiSubmit      = `form[data-testid="login-flow"] button[type="submit"][name="method"][value="password"]`
	kuiMessages    = `[data-testid^="ui/message/"]`
	kuiEmail       = `[data-testid="session-email"]`
	kuiLogoutLink  = `a[data-testid="logout"]`
	kuiErrorCard   = `[data-testid="ui/error/message"]`
	kuiWebAuthnTag = `document.head.querySelector('script[src$="/.well-known/ory/webauthn.js"]')`
)

func TestKratosUI(t *testing.T) {
	const needNode = "node and npm are needed to run examples/kratos-ui (Debian: apt-get install nodejs npm; Node 20 or later); CI always runs this test"
	node := kuiRequired(t, needNode, "node")
	npm := kuiRequired(t, needNode, "npm")
	chromium := kuiFindChromium(t)
	started := time.Now()
	t.Cleanup(func() { t.Logf("TestKratosUI took %v", time.Since(started).Round(time.Millisecond)) })

	dir := kuiUIDir(t)
	kuiEnsureNodeModules(t, npm, dir)
	shots := browserScreenshotDir(t)
	bin := browserBuildServer(t)

	// The UI's port is chosen first: authflow needs its URLs, the UI needs
	// authflow's.
	uiPort := browserFreePort(t)
	kratos := kuiStartAuthflow(t, bin, "http://127.0.0.1:"+strconv.Itoa(uiPort))
	ui := kuiStartUI(t, node, dir, uiPort, kratos)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	browser := kuiStartBrowser(t, ctx, chromium)

	t.Run("LoginLogout", func(t *testing.T) {
		// One tab: one user's visit, each step needs the cookies of the one before.
		tab, pages := kuiTab(t, browser)
		_ = kuiStep(t, "LoginPage", func(t *testing.T) { kuiLoginPage(t, tab, pages, kratos, ui, shots) }) &&
			kuiStep(t, "WrongPassword", func(t *testing.T) { kuiWrongPassword(t, tab, pages, kratos, ui, shots) }) &&
			kuiStep(t, "RightPassword", func(t *testing.T) { kuiRightPassword(t, tab, pages, kratos, ui, shots) }) &&
			kuiStep(t, "Logout", func(t *testing.T) { kuiLogout(t, tab, pages, kratos, ui) })
	})

	t.Run("UnknownFlow", func(t *testing.T) {
		tab, pages := kuiTab(t, browser)
		kuiUnknownFlow(t, tab, pages, kratos, ui)
	})

	t.Run("ErrorPage", func(t *testing.T) {
		tab, pages := kuiTab(t, browser)
		kuiErrorPage(t, tab, pages, kratos, ui, shots)
	})

	t.Run("ExpiredFlow", func(t *testing.T) {
		// Its own authflow with a short flow lifespan, and its own UI for it.
		port := browserFreePort(t)
		shortKratos := kuiStartAuthflow(t, bin, "http://127.0.0.1:"+strconv.Itoa(port),
			"-flow-lifespan", kuiFlowLifespan.String())
		shortUI := kuiStartUI(t, node, dir, port, shortKratos)
		tab, pages := kuiTab(t, browser)
		kuiExpiredFlow(t, ctx, tab, pages, shortKratos, shortUI, shots)
	})

	t.Run("SecondFactor", func(t *testing.T) {
		// Its own authflow whose identity has a TOTP authenticator and
		// backup codes, and its own UI for it (kratosui_aal_test.go).
		port := browserFreePort(t)
		aalKratos := kuiStartAuthflow(t, bin, "http://127.0.0.1:"+strconv.Itoa(port),
			"-totp-secret", kuiTOTPSecret, "-lookup-codes", kuiBackupCodes)
		aalUI := kuiStartUI(t, node, dir, port, aalKratos)
		tab, pages := kuiTab(t, browser)
		kuiSecondFactor(t, tab, pages, aalKratos, aalUI, shots)
	})
}

// kuiStep runs one step of a visit as a subtest and reports whether it ran
// to its end: after a failed assertion the next steps still run (they may
// show more), after a failed requirement they cannot.
func kuiStep(t *testing.T, name string, step func(t *testing.T)) bool {
	t.Helper()
	done := false
	t.Run(name, func(t *testing.T) {
		step(t)
		done = true
	})
	return done
}

// kuiFlowID checks that u is the UI's login page of a flow and returns the
// flow id.
func kuiFlowID(t *testing.T, ui string, u *url.URL) string {
	t.Helper()
	require.Equal(t, ui+"/login", u.Scheme+"://"+u.Host+u.Path, "expected the UI's login page, got %s", u)
	id := u.Query().Get("flow")
	require.NotEmpty(t, id, "the login page URL %s names no flow", u)
	return id
}

// kuiCheckPage checks what every page of the UI must do: load Kratos'
// webauthn.js from authflow in its <head>, answered 200, and run without an
// uncaught JavaScript exception.
func kuiCheckPage(t *testing.T, tab context.Context, pages *kuiPageLog, kratos, what string) {
	t.Helper()
	script := kratos + "/.well-known/ory/webauthn.js"
	src := browserRun(t, tab, "read the webauthn.js script tag",
		chromedp.Evaluate[string](`(s => s ? s.src : "")(`+kuiWebAuthnTag+`)`))
	assert.Equal(t, script, src, "%s: <head> loads authflow's webauthn.js", what)
	outcomes := pages.Outcomes(script)
	if assert.NotEmpty(t, outcomes, "%s: the browser requested %s", what, script) {
		assert.Equal(t, "200", outcomes[len(outcomes)-1],
			"%s: outcome of %s (UIs written for Kratos load it on every page)", what, script)
	}
	assert.Empty(t, pages.Exceptions(), "%s: uncaught JavaScript exceptions", what)
}

// kuiCheckLoginCard checks the login card Ory Elements rendered for flow id:
// labelled identifier and password fields, the CSRF token, the submit button,
// and a form that posts to the flow's ui.action on authflow.
func kuiCheckLoginCard(t *testing.T, tab context.Context, kratos, id string) {
	t.Helper()
	browserDo(t, tab, "the login card is visible", chromedp.WaitVisible(chromedp.CSS(kuiCard)))
	assert.Equal(t, "Sign In", browserRun(t, tab, "read the card title", chromedp.Text(chromedp.CSS(kuiCard+" h2"))))

	// getAttribute: the button named "method" shadows the form's method property.
	form := browserRun(t, tab, "read the form", chromedp.Evaluate[[]string](
		`(f => [f.getAttribute("action"), f.getAttribute("method").toUpperCase()])(document.querySelector('`+kuiForm+`'))`))
	assert.Equal(t, []string{kratos + "/self-service/login?flow=" + id, "POST"}, form, "form action and method")
	csrf := browserRun(t, tab, "read the CSRF token", chromedp.Value(chromedp.CSS(kuiForm+` input[type=hidden][name=csrf_token]`)))
	assert.NotEmpty(t, csrf, "the form carries the CSRF token")

	fields := browserRun(t, tab, "read the fields", chromedp.Evaluate[[]string](
		`Array.from(document.querySelectorAll('`+kuiForm+` input:not([type=hidden])'), i =>
			[i.name, i.type, i.getAttribute("autocomplete"), i.required,
			 Array.from(i.labels, l => l.textContent.replace("*", "").trim()).join(",")].join("|"))`))
	assert.Equal(t, []string{
		"identifier|text|username|true|E-Mail",
		"password|password|current-password|true|Password",
	}, fields, "visible fields as name|type|autocomplete|required|labels")
	browserDo(t, tab, "the submit button is visible", chromedp.WaitVisible(chromedp.CSS(kuiSubmit)))
	assert.Equal(t, "Sign in with password", browserRun(t, tab, "read the button", chromedp.Text(chromedp.CSS(kuiSubmit))))
}

// kuiMessageIDs returns the ids of the messages Ory Elements shows.
func kuiMessageIDs(t *testing.T, tab context.Context) []string {
	t.Helper()
	return browserRun(t, tab, "read the messages", chromedp.Evaluate[[]string](
		`Array.from(document.querySelectorAll('`+kuiMessages+`'), e => e.dataset.testid.slice("ui/message/".length))`))
}

// Step 1: the UI's /login without a flow goes through authflow's browser
// init and comes back with ?flow=, rendered by Ory's card.
func kuiLoginPage(t *testing.T, tab context.Context, pages *kuiPageLog, kratos, ui, shots string) {
	u := browserNavigate(t, tab, "open the UI's login", chromedp.Navigate(ui+"/login"))
	id := kuiFlowID(t, ui, u)
	kuiCheckLoginCard(t, tab, kratos, id)
	assert.Empty(t, kuiMessageIDs(t, tab), "a fresh flow shows no message")
	kuiCheckPage(t, tab, pages, kratos, "login page")
	kuiScreenshot(t, tab, shots, "kratosui-login.png")
}

// Step 2: a wrong password: authflow sends the browser back to the same flow,
// and the card shows message 4000006.
func kuiWrongPassword(t *testing.T, tab context.Context, pages *kuiPageLog, kratos, ui, shots string) {
	loc := browserRun(t, tab, "read location", chromedp.Location())
	before, err := url.Parse(loc)
	require.NoError(t, err)
	id := kuiFlowID(t, ui, before)

	u := browserNavigate(t, tab, "submit a wrong password",
		chromedp.SendKeys(chromedp.CSS(kuiIDField), kuiIdentifier),
		chromedp.SendKeys(chromedp.CSS(kuiPassField), "not the password"),
		chromedp.Click(chromedp.CSS(kuiSubmit)),
	)
	require.Equal(t, id, kuiFlowID(t, ui, u), "a wrong password shows the same flow again")

	msg := `[data-testid="ui/message/4000006"]`
	browserDo(t, tab, "the invalid-credentials message is visible", chromedp.WaitVisible(chromedp.CSS(msg)))
	text := browserRun(t, tab, "read the message", chromedp.Text(chromedp.CSS(msg)))
	assert.True(t, strings.HasPrefix(text, "The provided credentials are invalid"), "message 4000006: %q", text)
	assert.Equal(t, []string{"4000006"}, kuiMessageIDs(t, tab), "the only message shown")
	assert.Equal(t, kuiIdentifier, browserRun(t, tab, "read the identifier", chromedp.Value(chromedp.CSS(kuiIDField))),
		"the identifier is kept")
	assert.Empty(t, browserRun(t, tab, "read the password", chromedp.Value(chromedp.CSS(kuiPassField))),
		"the password is never sent back")
	assert.NotContains(t, browserText(t, tab), "not the password")
	kuiCheckLoginCard(t, tab, kratos, id)
	kuiCheckPage(t, tab, pages, kratos, "login page with an error")
	kuiScreenshot(t, tab, shots, "kratosui-login-error.png")
}

// Step 3: the right password: authflow sets the session cookie and sends the
// browser to the UI's /welcome, which reads the session with toSession.
func kuiRightPassword(t *testing.T, tab context.Context, pages *kuiPageLog, kratos, ui, shots string) {
	u := browserNavigate(t, tab, "submit the right password",
		chromedp.SendKeys(chromedp.CSS(kuiPassField), kuiPassword),
		chromedp.Click(chromedp.CSS(kuiSubmit)),
	)
	require.Equal(t, ui+"/welcome", u.String(), "after the login the browser shows the default return URL, the UI's /welcome")
	browserDo(t, tab, "the session's email is visible", chromedp.WaitVisible(chromedp.CSS(kuiEmail)))
	assert.Equal(t, kuiIdentifier, browserRun(t, tab, "read the email", chromedp.Text(chromedp.CSS(kuiEmail))),
		"the identity's traits.email, from toSession")
	logout := browserRun(t, tab, "read the logout link", chromedp.Attributes(chromedp.CSS(kuiLogoutLink)))["href"]
	assert.True(t, strings.HasPrefix(logout, kratos+"/self-service/logout?token="),
		"the logout link from createBrowserLogoutFlow: %q", logout)
	kuiCheckPage(t, tab, pages, kratos, "welcome page")
	kuiScreenshot(t, tab, shots, "kratosui-welcome.png")

	// The session cookie authflow set is the one the UI's server forwarded:
	// cookies are per host, not per port.
	assert.Contains(t, browserCookies(t, tab, kratos+"/"), "authflow_session", "authflow set the session cookie")
	assert.Contains(t, browserCookies(t, tab, ui+"/"), "authflow_session", "the browser sends it to the UI too")
}

// Step 4: the logout link: authflow ends the session and sends the browser
// to the after-logout URL, the UI's login page, as the reference UI
// expects when Kratos is configured so (not by way of /welcome).
func kuiLogout(t *testing.T, tab context.Context, pages *kuiPageLog, kratos, ui string) {
	before := len(pages.Requested())
	u := browserNavigate(t, tab, "click the logout link", chromedp.Click(chromedp.CSS(kuiLogoutLink)))
	kuiCheckLoginCard(t, tab, kratos, kuiFlowID(t, ui, u))
	hops := pages.Requested()[before:]
	require.GreaterOrEqual(t, len(hops), 2, "the logout and where it led: %q", hops)
	assert.True(t, strings.HasPrefix(hops[0], kratos+"/self-service/logout?token="), "first the logout: %q", hops)
	assert.Equal(t, ui+"/login", hops[1], "then the UI's login page, not by way of /welcome: %q", hops)
	assert.NotContains(t, browserCookies(t, tab, kratos+"/"), "authflow_session", "the logout removes the session cookie")
	kuiCheckPage(t, tab, pages, kratos, "login page after the logout")

	u = browserNavigate(t, tab, "open the welcome page again", chromedp.Navigate(ui+"/welcome"))
	kuiFlowID(t, ui, u)
	assert.NotContains(t, browserText(t, tab), kuiIdentifier, "the welcome page needs a session")
}

// A flow authflow does not know (404 on getLoginFlow) is replaced by a new
// one, as the reference UI does.
func kuiUnknownFlow(t *testing.T, tab context.Context, pages *kuiPageLog, kratos, ui string) {
	const unknown = "6f1c2a0e-8d4b-4c3e-9a57-0b6d1e2f3a4b"
	u := browserNavigate(t, tab, "open the UI's login with an unknown flow", chromedp.Navigate(ui+"/login?flow="+unknown))
	id := kuiFlowID(t, ui, u)
	assert.NotEqual(t, unknown, id, "an unknown flow is replaced by a new one")
	kuiCheckLoginCard(t, tab, kratos, id)
	kuiCheckPage(t, tab, pages, kratos, "login page after an unknown flow")
}

// A return_to outside the allow-list: authflow forwards the error to the UI's
// /error, which reads it with getFlowError and shows its reason in Ory's
// UserErrorCard.
func kuiErrorPage(t *testing.T, tab context.Context, pages *kuiPageLog, kratos, ui, shots string) {
	const evil = "https://evil.example.net/"
	u := browserNavigate(t, tab, "start a login with a foreign return_to",
		chromedp.Navigate(kratos+"/self-service/login/browser?"+url.Values{"return_to": {evil}}.Encode()))
	require.Equal(t, ui+"/error", u.Scheme+"://"+u.Host+u.Path, "expected the UI's error page, got %s", u)
	require.NotEmpty(t, u.Query().Get("id"), "the error page URL %s names no error", u)
	browserDo(t, tab, "the error card is visible", chromedp.WaitVisible(chromedp.CSS(kuiErrorCard)))
	assert.Contains(t, browserText(t, tab), `Requested return_to URL "`+evil+`" is not allowed.`, "the error's reason")
	kuiCheckPage(t, tab, pages, kratos, "error page")
	kuiScreenshot(t, tab, shots, "kratosui-error-page.png")
}

// A flow submitted after its lifespan: authflow sends the browser to a fresh
// flow carrying message 4010001; the expired flow's page, opened again,
// starts a new flow (410 on getLoginFlow).
func kuiExpiredFlow(t *testing.T, ctx, tab context.Context, pages *kuiPageLog, kratos, ui, shots string) {
	u := browserNavigate(t, tab, "open the UI's login", chromedp.Navigate(ui+"/login"))
	loaded := time.Now() // the flow was created before this
	old := kuiFlowID(t, ui, u)
	browserDo(t, tab, "type the right credentials",
		chromedp.SendKeys(chromedp.CSS(kuiIDField), kuiIdentifier),
		chromedp.SendKeys(chromedp.CSS(kuiPassField), kuiPassword))
	browserSleepUntil(t, ctx, loaded.Add(kuiExpiryWait))

	u = browserNavigate(t, tab, "submit the expired flow", chromedp.Click(chromedp.CSS(kuiSubmit)))
	fresh := kuiFlowID(t, ui, u)
	assert.NotEqual(t, old, fresh, "an expired flow is replaced by a fresh one")
	msg := `[data-testid="ui/message/4010001"]`
	browserDo(t, tab, "the expiry message is visible", chromedp.WaitVisible(chromedp.CSS(msg)))
	text := browserRun(t, tab, "read the message", chromedp.Text(chromedp.CSS(msg)))
	assert.True(t, strings.HasPrefix(text, "The login flow expired"), "message 4010001: %q", text)
	assert.True(t, strings.HasSuffix(text, "minutes ago, please try again."), "message 4010001: %q", text)
	assert.NotContains(t, browserCookies(t, tab, kratos+"/"), "authflow_session", "an expired flow logs nobody in")
	kuiCheckLoginCard(t, tab, kratos, fresh)
	kuiCheckPage(t, tab, pages, kratos, "login page of the fresh flow")
	kuiScreenshot(t, tab, shots, "kratosui-login-expired.png")

	u = browserNavigate(t, tab, "open the expired flow's page again", chromedp.Navigate(ui+"/login?flow="+old))
	restarted := kuiFlowID(t, ui, u)
	assert.NotEqual(t, old, restarted, "an expired flow's page starts a new flow")
	assert.Empty(t, kuiMessageIDs(t, tab), "a new flow shows no message")
	kuiCheckPage(t, tab, pages, kratos, "login page after an expired flow")
}
