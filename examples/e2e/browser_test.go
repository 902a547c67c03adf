package e2e

// End-to-end tests with a real headless Chromium against the real example
// server binary (examples/server): what a user sees and does, and what the
// browser keeps (cookies). Each scenario runs in its own browser context, so
// no cookie leaks from one to the other.
//
//	cd examples/e2e && go test -v -run Browser ./...
//
// Without Chromium the test is skipped (set CHROMIUM_PATH or install Debian's
// chromium package); on CI (CI=true) it fails instead. Screenshots go to
// $AUTHFLOW_SCREENSHOTS, else to a kept temporary directory; -v prints paths.

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	browserIdentifier = "demo@example.com"             // the server's default -identifier
	browserPassword   = "correct horse battery staple" // the server's default -password

	// browserFlowLifespan is the -flow-lifespan of the server of the expiry
	// scenario, and browserExpiryMargin how far past it the browser submits.
	// A browser's clock cannot be injected, so this is the one real wait.
	browserFlowLifespan = 2 * time.Second
	browserExpiryMargin = 400 * time.Millisecond

	// Selectors of the demo's login page (internal/demo/templates/login.html).
	browserIdentifierField = "field-identifier"
	browserPasswordField   = "field-password"
	browserSignInButton    = `//form//button[normalize-space()="Sign in with password"]`
	browserSignOutLink     = `//a[normalize-space()="Sign out"]`
)

func TestBrowser(t *testing.T) {
	chromium := browserFindChromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	started := time.Now()
	t.Cleanup(func() { t.Logf("TestBrowser took %v", time.Since(started).Round(time.Millisecond)) })

	shots := browserScreenshotDir(t)
	bin := browserBuildServer(t)
	srv := browserStartServer(t, bin)
	browser := browserStart(t, ctx, chromium)

	t.Run("LoginLogout", func(t *testing.T) {
		// One tab for the three steps: they are one user's visit, and each
		// step needs the cookies of the one before.
		tab := browserTab(t, browser)
		if !t.Run("WrongPassword", func(t *testing.T) { browserWrongPassword(t, tab, srv.URL, shots) }) {
			return
		}
		if !t.Run("RightPassword", func(t *testing.T) { browserRightPassword(t, tab, srv.URL, shots) }) {
			return
		}
		t.Run("SignOut", func(t *testing.T) { browserSignOut(t, tab, srv.URL, shots) })
	})

	t.Run("ExpiredFlow", func(t *testing.T) {
		short := browserStartServer(t, bin, "-flow-lifespan", browserFlowLifespan.String())
		browserExpiredFlow(t, ctx, browserTab(t, browser), short.URL, shots)
	})

	t.Run("ForbiddenReturnTo", func(t *testing.T) {
		browserForbiddenReturnTo(t, browserTab(t, browser), srv.URL, shots)
	})
}

// browserLoginPage checks that u is the login page of a flow and returns the
// flow id.
func browserLoginPage(t *testing.T, public string, u *url.URL) string {
	t.Helper()
	require.Equal(t, public+"/login", u.Scheme+"://"+u.Host+u.Path, "expected the login page, got %s", u)
	id := u.Query().Get("flow")
	require.NotEmpty(t, id, "the login page URL %s names no flow", u)
	return id
}

// browserCheckLoginForm checks the form a user sees on the login page of flow
// id: labelled fields, the field with id focus focused, a CSRF token, the
// submit button, and a form that posts to the flow's action.
func browserCheckLoginForm(t *testing.T, tab context.Context, public, id, focus string) {
	t.Helper()
	browserDo(t, tab, "the identifier field is visible", chromedp.WaitVisible(chromedp.ID(browserIdentifierField)))
	assert.Equal(t, "Sign in", browserRun(t, tab, "read the heading", chromedp.Text(chromedp.CSS("h1"))))

	// autofocus applies at the next rendering step after the load; poll for
	// it, then report what actually has the focus.
	pollCtx, cancel := context.WithTimeout(tab, 5*time.Second)
	_, _ = chromedp.Run(pollCtx, chromedp.Poll[bool](
		`document.activeElement !== null && document.activeElement.id === "`+focus+`"`,
		chromedp.WithPollingInterval(25*time.Millisecond)))
	cancel()
	active := browserRun(t, tab, "read the focused element",
		chromedp.Evaluate[string](`document.activeElement ? (document.activeElement.id || document.activeElement.tagName) : ""`))
	assert.Equal(t, focus, active, "the focused field when the page opens")

	// Every visible field has a label (input.labels follows <label for>).
	labels := browserRun(t, tab, "read the field labels", chromedp.Evaluate[[]string](
		`Array.from(document.querySelectorAll("form input:not([type=hidden])"), i =>
			i.id + "|" + i.type + "|" + Array.from(i.labels, l => l.textContent.trim()).join(","))`))
	assert.Equal(t, []string{"field-identifier|text|E-Mail", "field-password|password|Password"}, labels,
		"visible fields as id|type|labels")
	attrs := browserRun(t, tab, "read the password field", chromedp.Attributes(chromedp.ID(browserPasswordField)))
	assert.Equal(t, "current-password", attrs["autocomplete"], "password autocomplete")

	csrf := browserRun(t, tab, "read the CSRF token", chromedp.Value(chromedp.CSS(`form input[type=hidden][name=csrf_token]`)))
	assert.NotEmpty(t, csrf, "the form carries the CSRF token")
	// getAttribute: the button named "method" shadows the form's method property.
	form := browserRun(t, tab, "read the form", chromedp.Evaluate[[]string](
		`(f => [f.getAttribute("action"), f.getAttribute("method").toUpperCase()])(document.querySelector("form"))`))
	assert.Equal(t, []string{public + "/self-service/login?flow=" + id, "POST"}, form, "form action and method")
	browserDo(t, tab, "the sign-in button is visible", chromedp.WaitVisible(browserSignInButton))
}

// Scenario 1: a fresh login page, then a wrong password.
func browserWrongPassword(t *testing.T, tab context.Context, public, shots string) {
	u := browserNavigate(t, tab, "open the login", chromedp.Navigate(public+"/self-service/login/browser"))
	id := browserLoginPage(t, public, u)
	browserCheckLoginForm(t, tab, public, id, browserIdentifierField)
	assert.Empty(t, browserRun(t, tab, "count messages",
		chromedp.Evaluate[string](`Array.from(document.querySelectorAll("[data-message-id]"), e => e.dataset.messageId).join(",")`)),
		"a fresh login page shows no message")
	browserScreenshot(t, tab, shots, "login-fresh.png")

	u = browserNavigate(t, tab, "submit a wrong password",
		chromedp.SendKeys(chromedp.ID(browserIdentifierField), browserIdentifier),
		chromedp.SendKeys(chromedp.ID(browserPasswordField), "not the password"),
		chromedp.Click(browserSignInButton),
	)
	require.Equal(t, id, browserLoginPage(t, public, u), "a wrong password shows the same flow again")

	msg := `ul.messages li.error[data-message-id="4000006"]`
	browserDo(t, tab, "the invalid-credentials message is visible", chromedp.WaitVisible(chromedp.CSS(msg)))
	assert.Equal(t,
		"The provided credentials are invalid, check for spelling mistakes in your password or username, email address, or phone number.",
		browserRun(t, tab, "read the message", chromedp.Text(chromedp.CSS(msg))))
	assert.Equal(t, "alert", browserRun(t, tab, "read the message list", chromedp.Attributes(chromedp.CSS("ul.messages")))["role"],
		"the messages are announced")
	assert.Equal(t, browserIdentifier, browserRun(t, tab, "read the identifier", chromedp.Value(chromedp.ID(browserIdentifierField))),
		"the identifier is kept")
	assert.Empty(t, browserRun(t, tab, "read the password", chromedp.Value(chromedp.ID(browserPasswordField))),
		"the password is never sent back")
	assert.NotContains(t, browserText(t, tab), "not the password")
	// The identifier is kept, so the focus goes to the empty password.
	browserCheckLoginForm(t, tab, public, id, browserPasswordField)
	browserScreenshot(t, tab, shots, "login-error.png")
}

// Scenario 2: the right password, on the page that shows the error, with
// Enter: the welcome page and an HttpOnly session cookie.
func browserRightPassword(t *testing.T, tab context.Context, public, shots string) {
	u := browserNavigate(t, tab, "submit the right password with Enter",
		chromedp.SendKeys(chromedp.ID(browserPasswordField), browserPassword+kb.Enter))
	require.Equal(t, public+"/welcome", u.String(), "after the login the browser shows the default return URL")
	assert.Equal(t, "Welcome, "+browserIdentifier, browserRun(t, tab, "read the heading", chromedp.Text(chromedp.CSS("h1"))))
	browserDo(t, tab, "the sign-out link is visible", chromedp.WaitVisible(browserSignOutLink))
	browserScreenshot(t, tab, shots, "welcome.png")

	cookies := browserCookies(t, tab, public+"/")
	sess := cookies["authflow_session"]
	require.NotNil(t, sess, "the browser holds the session cookie; it has %v", browserCookieNames(cookies))
	assert.NotEmpty(t, sess.Value)
	assert.True(t, sess.HTTPOnly, "the session cookie is HttpOnly")
	assert.Equal(t, network.CookieSameSiteLax, sess.SameSite, "the session cookie is SameSite=Lax")
	assert.False(t, sess.Secure, "the session cookie is not Secure on http")
	assert.Equal(t, "/", sess.Path)
	assert.Equal(t, "127.0.0.1", sess.Domain, "host-only cookie")
	for name, c := range cookies {
		if strings.HasPrefix(name, "authflow_") {
			assert.True(t, c.HTTPOnly, "cookie %s is HttpOnly (README: Cookies are HttpOnly)", name)
			assert.Equal(t, network.CookieSameSiteLax, c.SameSite, "cookie %s is SameSite=Lax", name)
		}
	}
	jsCookies := browserRun(t, tab, "read document.cookie", chromedp.Evaluate[string]("document.cookie"))
	assert.NotContains(t, jsCookies, "authflow_session", "scripts must not see the session cookie")
}

// Scenario 3: sign out, back on a page that is not the welcome page; the
// welcome page asks to sign in again.
func browserSignOut(t *testing.T, tab context.Context, public, shots string) {
	// The logout sends the browser to the default return URL, /welcome, which
	// without a session starts a login: the login page.
	u := browserNavigate(t, tab, "click Sign out", chromedp.Click(browserSignOutLink))
	browserLoginPage(t, public, u)
	assert.NotContains(t, browserText(t, tab), "Welcome")
	browserCheckLoginForm(t, tab, public, u.Query().Get("flow"), browserIdentifierField)
	browserScreenshot(t, tab, shots, "signed-out.png")

	cookies := browserCookies(t, tab, public+"/")
	assert.NotContains(t, cookies, "authflow_session", "the logout removes the session cookie")

	u = browserNavigate(t, tab, "open the welcome page again", chromedp.Navigate(public+"/welcome"))
	browserLoginPage(t, public, u)
	assert.NotContains(t, browserText(t, tab), "Welcome", "the welcome page needs a session")
}

// Scenario 4: a flow submitted after its lifespan: a fresh flow that says so.
func browserExpiredFlow(t *testing.T, ctx, tab context.Context, public, shots string) {
	u := browserNavigate(t, tab, "open the login", chromedp.Navigate(public+"/self-service/login/browser"))
	loaded := time.Now() // the flow was created before this
	id := browserLoginPage(t, public, u)
	browserDo(t, tab, "type the right credentials",
		chromedp.SendKeys(chromedp.ID(browserIdentifierField), browserIdentifier),
		chromedp.SendKeys(chromedp.ID(browserPasswordField), browserPassword))
	browserSleepUntil(t, ctx, loaded.Add(browserFlowLifespan+browserExpiryMargin))

	u = browserNavigate(t, tab, "submit the expired flow", chromedp.Click(browserSignInButton))
	fresh := browserLoginPage(t, public, u)
	assert.NotEqual(t, id, fresh, "an expired flow is replaced by a fresh one")

	msg := `ul.messages li.error[data-message-id="4010001"]`
	browserDo(t, tab, "the expiry message is visible", chromedp.WaitVisible(chromedp.CSS(msg)))
	text := browserRun(t, tab, "read the message", chromedp.Text(chromedp.CSS(msg)))
	assert.True(t, strings.HasPrefix(text, "The login flow expired"), "message: %q", text)
	assert.True(t, strings.HasSuffix(text, "minutes ago, please try again."), "message: %q", text)
	assert.NotContains(t, browserText(t, tab), "Welcome")
	assert.NotContains(t, browserCookies(t, tab, public+"/"), "authflow_session", "an expired flow logs nobody in")
	browserScreenshot(t, tab, shots, "login-expired.png")
}

// Scenario 5: a return_to outside the allow-list ends on the error page,
// never on the other site.
func browserForbiddenReturnTo(t *testing.T, tab context.Context, public, shots string) {
	const evil = "https://evil.example.net/"
	u := browserNavigate(t, tab, "open the login with a foreign return_to",
		chromedp.Navigate(public+"/self-service/login/browser?"+url.Values{"return_to": {evil}}.Encode()))
	require.Equal(t, public+"/error", u.Scheme+"://"+u.Host+u.Path, "expected the error page, got %s", u)
	require.NotEmpty(t, u.Query().Get("id"), "the error page URL %s names no error", u)

	browserDo(t, tab, "the error is visible", chromedp.WaitVisible(chromedp.CSS(`ul.messages[role=alert] li.error`)))
	assert.Equal(t, "Something went wrong", browserRun(t, tab, "read the heading", chromedp.Text(chromedp.CSS("h1"))))
	text := browserText(t, tab)
	assert.Contains(t, text, `Requested return_to URL "`+evil+`" is not allowed.`, "the reason")
	assert.Contains(t, text, "400 Bad Request", "the status")
	retry := browserRun(t, tab, "read the retry link", chromedp.Attributes(`//a[normalize-space()="Try signing in again"]`))
	assert.Equal(t, public+"/self-service/login/browser", retry["href"])
	browserScreenshot(t, tab, shots, "error-page.png")
}

func browserCookieNames(m map[string]*network.Cookie) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	return names
}
