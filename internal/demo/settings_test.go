package demo

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	pqtotp "github.com/pquerna/otp/totp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/login/lookup"
	"github.com/authflow/authflow/login/password"
	"github.com/authflow/authflow/session"
)

// demoSecret is a TOTP secret for -totp-secret.
const demoSecret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"

// testClock is the demo's injected clock; tests advance it to the next
// TOTP step instead of sleeping.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTestClock() *testClock { return &testClock{t: time.Now().UTC()} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// code is the TOTP code of secret at the clock's time.
func (c *testClock) code(t testing.TB, secret string) string {
	t.Helper()
	code, err := pqtotp.GenerateCode(secret, c.Now())
	require.NoError(t, err)
	return code
}

// startDemo serves the demo with the fast hasher, clock and the extra
// flags on an httptest server.
func startDemo(t testing.TB, clock *testClock, args ...string) Options {
	t.Helper()
	mux := http.NewServeMux()
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	o, err := ParseFlags(flag.NewFlagSet("t", flag.ContinueOnError),
		append([]string{"-public-url", ts.URL, "-hasher", "bcrypt", "-bcrypt-cost", "4"}, args...))
	require.NoError(t, err)
	o.Now = clock.Now
	srv, err := New(context.Background(), o, Stores{}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	mux.Handle("/", srv)
	return o
}

// visitor is a browser without JavaScript: a cookie jar, redirects handed
// back.
type visitor struct {
	t      testing.TB
	c      *http.Client
	public string
}

func newVisitor(t testing.TB, public string) *visitor {
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return &visitor{t: t, public: public, c: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (v *visitor) do(req *http.Request) (*http.Response, string) {
	v.t.Helper()
	resp, err := v.c.Do(req)
	require.NoError(v.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(v.t, err)
	return resp, string(b)
}

func (v *visitor) get(u string) (*http.Response, string) {
	v.t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	require.NoError(v.t, err)
	return v.do(req)
}

func (v *visitor) post(u string, form url.Values) (*http.Response, string) {
	v.t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	require.NoError(v.t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return v.do(req)
}

// follow GETs a 303's Location and expects a page (200).
func (v *visitor) follow(resp *http.Response) (*url.URL, string) {
	v.t.Helper()
	require.Equal(v.t, http.StatusSeeOther, resp.StatusCode)
	loc := resp.Header.Get("Location")
	resp, page := v.get(loc)
	require.Equal(v.t, http.StatusOK, resp.StatusCode, "GET %s", loc)
	u, err := url.Parse(loc)
	require.NoError(v.t, err)
	return u, page
}

var formRE = regexp.MustCompile(`(?s)<form action="([^"]+)" method="POST"[^>]*>(.*?)</form>`)

// form returns the action and the hidden fields of the page's form that
// has a field named field.
func (v *visitor) form(page, field string) (string, url.Values) {
	v.t.Helper()
	for _, m := range formRE.FindAllStringSubmatch(page, -1) {
		if !strings.Contains(m[2], `name="`+field+`"`) {
			continue
		}
		vals := url.Values{}
		for _, h := range regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`).FindAllStringSubmatch(m[2], -1) {
			vals.Set(h[1], html.UnescapeString(h[2]))
		}
		return html.UnescapeString(m[1]), vals
	}
	require.Failf(v.t, "no form", "the page has no form with the field %q:\n%s", field, page)
	return "", nil
}

// signIn submits the demo identity's password in a new browser flow and
// returns the answer (a 303).
func (v *visitor) signIn() *http.Response {
	v.t.Helper()
	resp, _ := v.get(v.public + "/self-service/login/browser")
	_, page := v.follow(resp)
	action, form := v.form(page, "password")
	form.Set("identifier", "demo@example.com")
	form.Set("password", "correct horse battery staple")
	form.Set("method", "password")
	resp, _ = v.post(action, form)
	require.Equal(v.t, http.StatusSeeOther, resp.StatusCode)
	return resp
}

// secondFactor submits the step-up page's form of method with value in
// field and returns the answer.
func (v *visitor) secondFactor(page, method, field, value string) *http.Response {
	v.t.Helper()
	action, form := v.form(page, field)
	form.Set(field, value)
	form.Set("method", method)
	resp, _ := v.post(action, form)
	return resp
}

var (
	secretRE   = regexp.MustCompile(`<code id="totp-secret">([A-Z2-7]+)</code>`)
	qrRE       = regexp.MustCompile(`<img id="totp-qr" class="qr" src="data:image/png;base64,([^"]+)"`)
	codesRE    = regexp.MustCompile(`(?s)<ol id="backup-codes" class="codes">(.*?)</ol>`)
	codeItemRE = regexp.MustCompile(`<li><code>([a-z0-9]+)</code></li>`)
	aalRE      = regexp.MustCompile(`<dd id="session-aal">([a-z0-9]*)</dd>`)
)

// TestSettingsPage enrols a TOTP authenticator on the settings page with
// a code computed by pquerna/otp, signs in with password and TOTP, makes
// backup codes there and signs in with one; a used code, and an old one
// after regenerating, are refused.
func TestSettingsPage(t *testing.T) {
	clock := newTestClock()
	o := startDemo(t, clock)
	stepUp := o.PublicURL + "/self-service/login/browser?aal=aal2"

	alice := newVisitor(t, o.PublicURL)
	resp := alice.signIn()
	require.Equal(t, o.PublicURL+"/welcome", resp.Header.Get("Location"), "no second factor yet: an ordinary login")
	_, page := alice.follow(resp)
	assert.Contains(t, page, `href="`+o.PublicURL+`/settings">Security settings</a>`, "the welcome page links the settings")
	assert.Equal(t, "aal1", aalRE.FindStringSubmatch(page)[1])

	// The settings page offers a new key: its QR code and its secret.
	resp, page = alice.get(o.PublicURL + "/settings")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, resp.Header.Get("Content-Security-Policy"), "img-src data:", "the QR code is a data: URL")
	assert.Contains(t, page, `data-status="off"`)
	qr := qrRE.FindStringSubmatch(page)
	require.NotNil(t, qr, "the page shows the QR code:\n%s", page)
	png, err := base64.StdEncoding.DecodeString(html.UnescapeString(qr[1]))
	require.NoError(t, err)
	assert.True(t, bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")), "the QR code is a PNG")
	secret := secretRE.FindStringSubmatch(page)[1]
	assert.Len(t, secret, 32, "160 bits in base32")
	assert.NotContains(t, page, `name="secret"`, "the pending key stays on the server")
	_, again := alice.get(o.PublicURL + "/settings")
	assert.Equal(t, secret, secretRE.FindStringSubmatch(again)[1], "a reload shows the same pending key")

	action, form := alice.form(page, "totp_code")
	form.Set("totp_code", "abc123")
	resp, page = alice.post(action, form)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, page, "The code is invalid")
	assert.Contains(t, page, `data-status="off"`)

	enrolCode := clock.code(t, secret)
	form.Set("totp_code", enrolCode)
	resp, page = alice.post(action, form)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, page, "Your authenticator app is set up")
	assert.Contains(t, page, `data-status="on"`)
	assert.Contains(t, page, `id="step-up"`, "the aal1 session must verify before changing more")

	// The identity has a second factor now: the aal1 session is sent to
	// the step-up (RequireSession under highest_available).
	for _, path := range []string{"/settings", "/welcome"} {
		resp, _ = alice.get(o.PublicURL + path)
		require.Equal(t, http.StatusSeeOther, resp.StatusCode, path)
		assert.Equal(t, stepUp+"&return_to="+url.QueryEscape(o.PublicURL+path), resp.Header.Get("Location"), "the step-up, and back to %s", path)
	}

	// A password login now asks for the code; the enrolment code was used.
	bob := newVisitor(t, o.PublicURL)
	loginURL, page := bob.stepUpPage()
	assert.Contains(t, page, "<h1>Two-factor authentication</h1>")
	assert.Contains(t, page, `data-message-id="1010004"`)
	assert.Contains(t, page, `name="totp_code"`)
	assert.NotContains(t, page, `name="lookup_secret"`, "no backup codes yet")
	assert.NotContains(t, page, `name="password"`)
	againURL, page := bob.follow(bob.secondFactor(page, "totp", "totp_code", enrolCode))
	assert.Equal(t, loginURL.Query().Get("flow"), againURL.Query().Get("flow"), "a refused code shows the same flow")
	assert.Contains(t, page, `data-message-id="4000008"`, "the enrolment code cannot log in again")

	clock.Advance(30 * time.Second)
	resp = bob.secondFactor(page, "totp", "totp_code", clock.code(t, secret))
	require.Equal(t, o.PublicURL+"/welcome", resp.Header.Get("Location"))
	_, page = bob.follow(resp)
	assert.Equal(t, "aal2", aalRE.FindStringSubmatch(page)[1])

	// The aal2 session may make backup codes; they are shown once.
	page = bob.page(o.PublicURL + "/settings")
	assert.Contains(t, page, `data-status="on"`)
	assert.NotContains(t, page, `id="totp-qr"`)
	assert.Contains(t, page, `<p id="codes-status">None yet.</p>`)
	action, form = bob.form(page, "action")
	require.Equal(t, "regenerate-codes", form.Get("action"))
	resp, page = bob.post(action, form)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	codes := backupCodes(t, page)
	assert.Len(t, codes, 12)
	assert.Contains(t, page, `<p id="codes-status">12 unused backup codes.</p>`)
	assert.NotContains(t, bob.page(o.PublicURL+"/settings"), codes[0], "the codes are shown only once")

	// Password and a backup code.
	carol := newVisitor(t, o.PublicURL)
	_, page = carol.stepUpPage()
	assert.Contains(t, page, `name="totp_code"`)
	assert.Contains(t, page, `name="lookup_secret"`)
	resp = carol.secondFactor(page, "lookup_secret", "lookup_secret", codes[0])
	require.Equal(t, o.PublicURL+"/welcome", resp.Header.Get("Location"))
	_, page = carol.follow(resp)
	assert.Equal(t, "aal2", aalRE.FindStringSubmatch(page)[1])
	assert.Contains(t, carol.page(o.PublicURL+"/settings"), `<p id="codes-status">11 unused backup codes.</p>`)

	// A used code is refused; after regenerating, an old one is unknown
	// and a new one works.
	dave := newVisitor(t, o.PublicURL)
	_, page = dave.stepUpPage()
	_, page = dave.follow(dave.secondFactor(page, "lookup_secret", "lookup_secret", codes[0]))
	assert.Contains(t, page, `data-message-id="4000012"`)
	action, form = carol.form(carol.page(o.PublicURL+"/settings"), "action")
	_, fresh := carol.post(action, form)
	_, page = dave.follow(dave.secondFactor(page, "lookup_secret", "lookup_secret", codes[1]))
	assert.Contains(t, page, `data-message-id="4000016"`, "the old codes were replaced")
	resp = dave.secondFactor(page, "lookup_secret", "lookup_secret", backupCodes(t, fresh)[0])
	assert.Equal(t, o.PublicURL+"/welcome", resp.Header.Get("Location"), "a new code works")
}

func backupCodes(t testing.TB, page string) []string {
	t.Helper()
	m := codesRE.FindStringSubmatch(page)
	require.NotNil(t, m, "the page shows the new codes:\n%s", page)
	var codes []string
	for _, c := range codeItemRE.FindAllStringSubmatch(m[1], -1) {
		codes = append(codes, c[1])
	}
	return codes
}

// page GETs u and expects a page.
func (v *visitor) page(u string) string {
	v.t.Helper()
	resp, page := v.get(u)
	require.Equal(v.t, http.StatusOK, resp.StatusCode, "GET %s", u)
	return page
}

// stepUpPage signs in with the password, expects the answer to send the
// browser to the step-up, and returns the step-up flow's login page.
func (v *visitor) stepUpPage() (*url.URL, string) {
	v.t.Helper()
	stepUp := v.public + "/self-service/login/browser?aal=aal2"
	resp := v.signIn()
	require.Equal(v.t, stepUp, resp.Header.Get("Location"), "a password login of an identity with a second factor goes to the step-up")
	resp, _ = v.get(stepUp)
	return v.follow(resp)
}

func TestParseFlagsSecondFactors(t *testing.T) {
	parse := func(args ...string) (Options, error) {
		return ParseFlags(flag.NewFlagSet("t", flag.ContinueOnError), args)
	}
	o, err := parse("-totp-secret", " jbswy3dpehpk3pxp== ", "-lookup-codes", "abc12345, def67890 ,x", "-required-aal", "aal1")
	require.NoError(t, err)
	assert.Equal(t, "JBSWY3DPEHPK3PXP", o.TOTPSecret, "upper case, unpadded")
	assert.Equal(t, []string{"abc12345", "def67890", "x"}, o.LookupCodes)
	assert.Equal(t, "aal1", o.RequiredAAL)

	o, err = parse()
	require.NoError(t, err)
	assert.Empty(t, o.TOTPSecret)
	assert.Nil(t, o.LookupCodes)
	assert.Equal(t, "highest_available", o.RequiredAAL)

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-totp-secret", "not base32!"}, "-totp-secret: not a base32 secret"},
		{[]string{"-totp-secret", "JBSWY3DPEHPK3PX1"}, "-totp-secret: not a base32 secret"},
		{[]string{"-lookup-codes", "a,,b"}, "empty code"},
		{[]string{"-lookup-codes", "a,b,a"}, `code "a" given twice`},
		{[]string{"-required-aal", "aal2"}, `-required-aal must be aal1 or highest_available, got "aal2"`},
		{[]string{"-required-aal", ""}, "-required-aal must be"},
	} {
		_, err := parse(tc.args...)
		assert.ErrorContains(t, err, tc.want, "%q", tc.args)
	}
}

// TestSeedSecondFactorsIsIdempotent: the seed adds a TOTP credential
// (Kratos' totp_url) and unused backup codes once; seeding again, with
// other values, changes neither, as a restart on a persistent store must.
func TestSeedSecondFactorsIsIdempotent(t *testing.T) {
	ctx := context.Background()
	ids := session.NewMemoryIdentityStore()
	require.NoError(t, Seed(ctx, ids, password.Bcrypt{Cost: 4}, "demo@example.com", "pw"))
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

	require.NoError(t, SeedSecondFactors(ctx, ids, "demo@example.com", "example.com", "", nil), "nothing to seed")
	assert.Len(t, byType(), 1)

	require.NoError(t, SeedSecondFactors(ctx, ids, "demo@example.com", "example.com", demoSecret, []string{"code0001", "code0002"}))
	first := byType()
	require.Len(t, first, 3)
	assert.Equal(t, []string{id.ID}, first[session.CredentialTOTP].Identifiers, "identified by the identity id")
	var cfg struct {
		TOTPURL string `json:"totp_url"`
	}
	require.NoError(t, json.Unmarshal(first[session.CredentialTOTP].Config, &cfg))
	assert.Equal(t, "otpauth://totp/example.com:demo@example.com?algorithm=SHA1&digits=6&issuer=example.com&period=30&secret="+demoSecret, cfg.TOTPURL)
	assert.Equal(t, []string{id.ID}, first[session.CredentialLookup].Identifiers)
	n, err := lookup.Remaining(first[session.CredentialLookup])
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	assert.NotContains(t, string(first[session.CredentialLookup].Config), "code0001", "codes are stored hashed")

	require.NoError(t, SeedSecondFactors(ctx, ids, "demo@example.com", "example.com", "GEZDGNBVGY3TQOJQ", []string{"other"}))
	assert.Equal(t, first, byType(), "the second seed changes nothing")

	assert.ErrorIs(t, SeedSecondFactors(ctx, ids, "nobody@example.com", "example.com", demoSecret, nil), session.ErrNotFound)
}

// TestSeededSecondFactors: with -totp-secret and -lookup-codes the demo
// identity signs in with password and a TOTP code or a backup code;
// under -required-aal aal1 the password alone signs in, and the settings
// page asks for the second factor before any change.
func TestSeededSecondFactors(t *testing.T) {
	clock := newTestClock()
	o := startDemo(t, clock, "-totp-secret", demoSecret, "-lookup-codes", "code0001,code0002")

	v := newVisitor(t, o.PublicURL)
	resp, _ := v.get(o.PublicURL + "/settings")
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	assert.Equal(t, o.PublicURL+"/self-service/login/browser?return_to="+url.QueryEscape(o.PublicURL+"/settings"), resp.Header.Get("Location"), "without a session: the login, and back")
	_, page := v.stepUpPage()
	resp = v.secondFactor(page, "totp", "totp_code", clock.code(t, demoSecret))
	require.Equal(t, o.PublicURL+"/welcome", resp.Header.Get("Location"))
	_, page = v.follow(resp)
	assert.Equal(t, "aal2", aalRE.FindStringSubmatch(page)[1])
	page = v.page(o.PublicURL + "/settings")
	assert.Contains(t, page, `data-status="on"`)
	assert.Contains(t, page, `<p id="codes-status">2 unused backup codes.</p>`)

	w := newVisitor(t, o.PublicURL)
	_, page = w.stepUpPage()
	resp = w.secondFactor(page, "lookup_secret", "lookup_secret", "code0002")
	require.Equal(t, o.PublicURL+"/welcome", resp.Header.Get("Location"))

	t.Run("required-aal=aal1", func(t *testing.T) {
		o := startDemo(t, clock, "-totp-secret", demoSecret, "-required-aal", "aal1")
		v := newVisitor(t, o.PublicURL)
		resp := v.signIn()
		require.Equal(t, o.PublicURL+"/welcome", resp.Header.Get("Location"), "the password alone signs in")
		_, page := v.follow(resp)
		assert.Equal(t, "aal1", aalRE.FindStringSubmatch(page)[1])
		page = v.page(o.PublicURL + "/settings")
		assert.Contains(t, page, `data-status="on"`)
		assert.Contains(t, page, `id="step-up" href="`+html.EscapeString(o.PublicURL+"/self-service/login/browser?aal=aal2&return_to="+url.QueryEscape(o.PublicURL+"/settings"))+`"`)
		assert.NotContains(t, page, `value="regenerate-codes"`, "no changes before the second factor")
	})

	t.Run("required-aal=aal1, enrolled on the page", func(t *testing.T) {
		o := startDemo(t, clock, "-required-aal", "aal1")
		v := newVisitor(t, o.PublicURL)
		v.signIn()
		page := v.page(o.PublicURL + "/settings")
		_, codesForm := v.form(page, "action")
		action, form := v.form(page, "totp_code")
		secret := secretRE.FindStringSubmatch(page)[1]
		form.Set("totp_code", clock.code(t, secret))
		_, page = v.post(action, form)
		assert.Contains(t, page, `data-status="on"`)
		assert.Equal(t, "aal1", aalRE.FindStringSubmatch(page)[1])

		resp, _ := v.post(o.PublicURL+"/settings", codesForm)
		assert.Equal(t, http.StatusForbidden, resp.StatusCode, "an aal1 session cannot change a second factor")
		v.page(o.PublicURL + "/welcome") // under aal1 the aal1 session is signed in

		// The step-up link comes back to the settings, now aal2.
		resp, _ = v.get(html.UnescapeString(regexp.MustCompile(`id="step-up" href="([^"]+)"`).FindStringSubmatch(page)[1]))
		_, page = v.follow(resp)
		clock.Advance(30 * time.Second)
		resp = v.secondFactor(page, "totp", "totp_code", clock.code(t, secret))
		require.Equal(t, o.PublicURL+"/settings", resp.Header.Get("Location"))
		_, page = v.follow(resp)
		assert.Equal(t, "aal2", aalRE.FindStringSubmatch(page)[1])
		assert.Contains(t, page, `value="regenerate-codes"`)
	})
}

// TestSettingsCSRF: the settings page's posts need the session's own
// token: none, a wrong one and another session's are refused with 403
// and change nothing.
func TestSettingsCSRF(t *testing.T) {
	clock := newTestClock()
	o := startDemo(t, clock)
	alice, bob := newVisitor(t, o.PublicURL), newVisitor(t, o.PublicURL)
	alice.signIn()
	bob.signIn()
	_, aliceForm := alice.form(alice.page(o.PublicURL+"/settings"), "action")
	_, bobForm := bob.form(bob.page(o.PublicURL+"/settings"), "action")
	require.NotEqual(t, aliceForm.Get("csrf_token"), bobForm.Get("csrf_token"), "tokens are per session")

	for name, token := range map[string]string{
		"none":              "",
		"wrong":             "AAAA" + aliceForm.Get("csrf_token")[4:],
		"another session's": bobForm.Get("csrf_token"),
	} {
		resp, _ := alice.post(o.PublicURL+"/settings", url.Values{"csrf_token": {token}, "action": {"regenerate-codes"}})
		assert.Equal(t, http.StatusForbidden, resp.StatusCode, name)
	}
	assert.Contains(t, alice.page(o.PublicURL+"/settings"), `<p id="codes-status">None yet.</p>`, "nothing changed")

	resp, _ := alice.post(o.PublicURL+"/settings", url.Values{"csrf_token": {aliceForm.Get("csrf_token")}, "action": {"delete-everything"}})
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	resp, page := alice.post(o.PublicURL+"/settings", url.Values{"csrf_token": {aliceForm.Get("csrf_token")}, "action": {"regenerate-codes"}})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Len(t, backupCodes(t, page), 12, "the session's own token works")
}
