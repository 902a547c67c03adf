package e2e

// Login by a code sent by email on the demo's own pages, in a real headless
// Chromium against the example server binary started with -code-login and
// -smtp-url pointing at a real SMTP server in the test process: the user
// types the address, presses "Send sign in code", reads the code from the
// mail the SMTP server received, types it and reaches the welcome page;
// in both login styles (-login-style unified and identifier_first).
//
//	cd examples/e2e && go test -v -run BrowserCode ./...

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	// browserCodeAddress is the -seed-code-only identity: no password.
	browserCodeAddress = "ada@example.com"
	browserMailWait    = 10 * time.Second

	browserCodeField      = "field-code"
	browserSendCodeButton = `//form//button[normalize-space()="Send sign in code"]`
	browserContinueButton = `//form//button[normalize-space()="Continue"]`
	browserResendButton   = `//form//button[normalize-space()="Resend code"]`
	browserMethods        = "#session-methods"
)

func TestBrowserCodeLogin(t *testing.T) {
	chromium := browserFindChromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	shots := browserScreenshotDir(t)
	bin := browserBuildServer(t)
	mail := StartMailServer(t)
	browser := browserStart(t, ctx, chromium)
	flags := []string{"-code-login", "-smtp-url", mail.MailURL(), "-seed-code-only", browserCodeAddress}

	t.Run("Unified", func(t *testing.T) {
		srv := browserStartServer(t, bin, flags...)
		browserCodeUnified(t, browserTab(t, browser), mail, srv.URL, shots)
	})
	t.Run("IdentifierFirst", func(t *testing.T) {
		srv := browserStartServer(t, bin, append(flags, "-login-style", "identifier_first")...)
		browserCodeIdentifierFirst(t, browserTab(t, browser), mail, srv.URL, shots)
	})
	t.Run("Outbox", func(t *testing.T) {
		// Without -smtp-url the demo keeps the mails and shows them at /mail.
		srv := browserStartServer(t, bin, "-code-login")
		browserCodeOutbox(t, browserTab(t, browser), srv.URL, shots)
	})
}

// browserFocused waits briefly for the element with id focus to have the
// focus (autofocus applies after the load) and returns what has it.
func browserFocused(t *testing.T, tab context.Context, focus string) string {
	t.Helper()
	pollCtx, cancel := context.WithTimeout(tab, 5*time.Second)
	_, _ = chromedp.Run(pollCtx, chromedp.Poll[bool](
		`document.activeElement !== null && document.activeElement.id === "`+focus+`"`,
		chromedp.WithPollingInterval(25*time.Millisecond)))
	cancel()
	return browserRun(t, tab, "read the focused element",
		chromedp.Evaluate[string](`document.activeElement ? (document.activeElement.id || document.activeElement.tagName) : ""`))
}

// browserCodeSentPage checks the page after "Send sign in code": the same
// flow, message 1010014, the address shown, the labelled code field with
// the focus, Continue and Resend code.
func browserCodeSentPage(t *testing.T, tab context.Context, public, flowID string) {
	t.Helper()
	msg := `ul.messages li.info[data-message-id="1010014"]`
	browserDo(t, tab, "the code-sent message is visible", chromedp.WaitVisible(chromedp.CSS(msg)))
	assert.Equal(t,
		"A code was sent to the address you provided. If you didn't receive it, please check the spelling of the address and try again.",
		browserRun(t, tab, "read the message", chromedp.Text(chromedp.CSS(msg))))
	assert.Equal(t, browserCodeAddress, browserRun(t, tab, "read the address shown", chromedp.Text(chromedp.ID("identity"))))
	labels := browserRun(t, tab, "read the field labels", chromedp.Evaluate[[]string](
		`Array.from(document.querySelectorAll("form input:not([type=hidden])"), i =>
			i.id + "|" + i.type + "|" + i.getAttribute("autocomplete") + "|" + Array.from(i.labels, l => l.textContent.trim()).join(","))`))
	assert.Equal(t, []string{"field-code|text|one-time-code|Login code"}, labels, "visible fields as id|type|autocomplete|labels")
	assert.Equal(t, browserCodeField, browserFocused(t, tab, browserCodeField), "the code field has the focus")
	browserDo(t, tab, "Continue and Resend code are visible",
		chromedp.WaitVisible(browserContinueButton), chromedp.WaitVisible(browserResendButton))
	// Enter in the code field submits the form's first button: Continue.
	first := browserRun(t, tab, "read the form's first button", chromedp.Evaluate[[]string](
		`(b => [b.name, b.value, b.textContent])(document.getElementById("`+browserCodeField+`").form.querySelector("button[type=submit]"))`))
	assert.Equal(t, []string{"method", "code", "Continue"}, first)
	assert.Equal(t, public+"/self-service/login?flow="+flowID, browserRun(t, tab, "read the form's action",
		chromedp.Evaluate[string](`document.getElementById("`+browserCodeField+`").form.getAttribute("action")`)))
}

// browserCodeWelcome types the code from the mail with Enter and checks
// the welcome page of a code login.
func browserCodeWelcome(t *testing.T, tab context.Context, mail *MailServer, public, shots, shot string) {
	t.Helper()
	m := mail.MailNext(t, browserMailWait)
	assert.Equal(t, "no-reply@127.0.0.1", m.From, "MAIL FROM: the default -smtp-from")
	assert.Equal(t, "no-reply@127.0.0.1", m.HeaderAddress("From"))
	loginCode := MailLoginCode(t, m, browserCodeAddress, 15)

	u := browserNavigate(t, tab, "type the code and press Enter",
		chromedp.SendKeys(chromedp.ID(browserCodeField), loginCode+kb.Enter))
	require.Equal(t, public+"/welcome", u.String(), "after the login the browser shows the default return URL")
	assert.Equal(t, "Welcome, "+browserCodeAddress, browserRun(t, tab, "read the heading", chromedp.Text(chromedp.CSS("h1"))))
	assert.Equal(t, "code", browserRun(t, tab, "read the session's methods", chromedp.Text(chromedp.CSS(browserMethods))))
	assert.Equal(t, "aal1", browserRun(t, tab, "read the assurance level", chromedp.Text(chromedp.ID("session-aal"))))
	assert.Contains(t, browserCookies(t, tab, public+"/"), "authflow_session")
	browserScreenshot(t, tab, shots, shot)
}

// The unified page: the address in the identifier field, "Send sign in
// code" (in the form with the identifier and the password, after the
// password's own button), a wrong code, then the right one.
func browserCodeUnified(t *testing.T, tab context.Context, mail *MailServer, public, shots string) {
	u := browserNavigate(t, tab, "open the login", chromedp.Navigate(public+"/self-service/login/browser"))
	id := browserLoginPage(t, public, u)
	browserDo(t, tab, "the code button is visible", chromedp.WaitVisible(browserSendCodeButton))
	form := browserRun(t, tab, "read the code button's form", chromedp.Evaluate[[]string](
		`(f => [String(f.contains(document.getElementById("field-identifier"))), String(f.contains(document.getElementById("field-password"))),
			f.querySelector("button[type=submit]").value])(document.evaluate('`+browserSendCodeButton+`', document).iterateNext().form)`))
	assert.Equal(t, []string{"true", "true", "password"}, form,
		"the code button shares the identifier's form, whose first button (Enter) is the password's")
	browserScreenshot(t, tab, shots, "code-login.png")

	u = browserNavigate(t, tab, "type the address and press Send sign in code",
		chromedp.SendKeys(chromedp.ID(browserIdentifierField), browserCodeAddress),
		chromedp.Click(browserSendCodeButton))
	require.Equal(t, id, browserLoginPage(t, public, u), "the same flow, waiting for the code")
	browserCodeSentPage(t, tab, public, id)
	browserScreenshot(t, tab, shots, "code-sent.png")

	u = browserNavigate(t, tab, "submit a wrong code",
		chromedp.SendKeys(chromedp.ID(browserCodeField), "12345x"),
		chromedp.Click(browserContinueButton))
	require.Equal(t, id, browserLoginPage(t, public, u))
	browserDo(t, tab, "the wrong-code message is visible",
		chromedp.WaitVisible(chromedp.CSS(`ul.messages li.error[data-message-id="4010008"]`)))
	assert.Empty(t, browserRun(t, tab, "read the code field", chromedp.Value(chromedp.ID(browserCodeField))),
		"a submitted code is never sent back")
	browserScreenshot(t, tab, shots, "code-wrong.png")

	browserCodeWelcome(t, tab, mail, public, shots, "code-welcome.png")
}

// The identifier-first steps: the address alone and Continue; then the
// address shown, the password form and "Send sign in code"; then the code.
func browserCodeIdentifierFirst(t *testing.T, tab context.Context, mail *MailServer, public, shots string) {
	u := browserNavigate(t, tab, "open the login", chromedp.Navigate(public+"/self-service/login/browser"))
	id := browserLoginPage(t, public, u)
	labels := browserRun(t, tab, "read the field labels", chromedp.Evaluate[[]string](
		`Array.from(document.querySelectorAll("form input:not([type=hidden])"), i => i.id + "|" + Array.from(i.labels, l => l.textContent.trim()).join(","))`))
	assert.Equal(t, []string{"field-identifier|E-Mail"}, labels, "the first step asks for the identifier alone")
	assert.Equal(t, browserIdentifierField, browserFocused(t, tab, browserIdentifierField))
	browserDo(t, tab, "Continue is visible", chromedp.WaitVisible(browserContinueButton))
	browserScreenshot(t, tab, shots, "idfirst-step1.png")

	u = browserNavigate(t, tab, "type the address and press Enter",
		chromedp.SendKeys(chromedp.ID(browserIdentifierField), browserCodeAddress+kb.Enter))
	require.Equal(t, id, browserLoginPage(t, public, u))
	assert.Equal(t, browserCodeAddress, browserRun(t, tab, "read the address shown", chromedp.Text(chromedp.ID("identity"))))
	labels = browserRun(t, tab, "read the field labels", chromedp.Evaluate[[]string](
		`Array.from(document.querySelectorAll("form input:not([type=hidden])"), i => i.id + "|" + Array.from(i.labels, l => l.textContent.trim()).join(","))`))
	assert.Equal(t, []string{"field-password|Password"}, labels, "the second step: the password, the identifier hidden")
	assert.Equal(t, browserPasswordField, browserFocused(t, tab, browserPasswordField))
	browserDo(t, tab, "both methods are offered",
		chromedp.WaitVisible(browserSignInButton), chromedp.WaitVisible(browserSendCodeButton))
	browserScreenshot(t, tab, shots, "idfirst-step2.png")

	u = browserNavigate(t, tab, "press Send sign in code", chromedp.Click(browserSendCodeButton))
	require.Equal(t, id, browserLoginPage(t, public, u))
	browserCodeSentPage(t, tab, public, id)
	browserScreenshot(t, tab, shots, "idfirst-code-sent.png")

	browserCodeWelcome(t, tab, mail, public, shots, "idfirst-code-welcome.png")
}

// Without -smtp-url: the login page links the outbox, which shows the
// mail; its code logs in.
func browserCodeOutbox(t *testing.T, tab context.Context, public, shots string) {
	u := browserNavigate(t, tab, "open the login", chromedp.Navigate(public+"/self-service/login/browser"))
	id := browserLoginPage(t, public, u)
	outbox := browserRun(t, tab, "read the outbox link", chromedp.Attributes(`//p[@class="dev-note"]/a[normalize-space()="outbox"]`))
	require.Equal(t, public+"/mail", outbox["href"])
	u = browserNavigate(t, tab, "ask for a code for the demo identity",
		chromedp.SendKeys(chromedp.ID(browserIdentifierField), browserIdentifier),
		chromedp.Click(browserSendCodeButton))
	require.Equal(t, id, browserLoginPage(t, public, u))

	// The mail is delivered in the background: reload until it is there.
	var subject string
	for deadline := time.Now().Add(browserMailWait); ; {
		browserNavigate(t, tab, "open the outbox", chromedp.Navigate(public+"/mail"))
		subject = browserRun(t, tab, "read the newest subject", chromedp.Evaluate[string](
			`(h => h ? h.textContent : "")(document.querySelector("article.mail h2"))`))
		if subject != "" || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	sub := mailSubjectRE.FindStringSubmatch(subject)
	require.NotNil(t, sub, "the outbox shows the login mail: %q", subject)
	assert.Equal(t, "Outbox", browserRun(t, tab, "read the heading", chromedp.Text(chromedp.CSS("h1"))))
	text := browserText(t, tab)
	assert.Contains(t, text, "Development aid.")
	assert.Contains(t, text, browserIdentifier)
	browserScreenshot(t, tab, shots, "outbox.png")

	browserNavigate(t, tab, "back to the login page", chromedp.Navigate(public+"/login?flow="+id))
	u = browserNavigate(t, tab, "type the code and press Enter",
		chromedp.SendKeys(chromedp.ID(browserCodeField), sub[1]+kb.Enter))
	require.Equal(t, public+"/welcome", u.String())
	assert.Equal(t, "code", browserRun(t, tab, "read the session's methods", chromedp.Text(chromedp.CSS(browserMethods))))
}
