package demo

import (
	"context"
	"flag"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/courier"
	"github.com/authflow/authflow/login/code"
	"github.com/authflow/authflow/login/password"
	"github.com/authflow/authflow/session"
)

func TestParseFlagsCode(t *testing.T) {
	parse := func(args ...string) (Options, error) {
		return ParseFlags(flag.NewFlagSet("t", flag.ContinueOnError), args)
	}
	o, err := parse("-public-url", "https://example.com/auth", "-code-login",
		"-smtp-url", "smtp://127.0.0.1:4825/?disable_starttls=true", "-code-lifespan", "5m",
		"-code-max-submissions", "3", "-login-style", "identifier_first",
		"-seed-code-only", "Ada@Example.com", "-seed-code-only", "grace@example.com",
		"-code-hash-key", "000102030405060708090a0b0c0d0e0f")
	require.NoError(t, err)
	assert.Equal(t, []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, o.CodeHashKey)
	assert.True(t, o.CodeLogin)
	assert.Equal(t, "smtp://127.0.0.1:4825/?disable_starttls=true", o.SMTPURL)
	assert.Equal(t, "no-reply@example.com", o.SMTPFrom, "the default sender is at the public host")
	assert.Equal(t, 5*time.Minute, o.CodeLifespan)
	assert.Equal(t, 3, o.CodeMaxSubmissions)
	assert.Equal(t, "identifier_first", o.LoginStyle)
	assert.Equal(t, []string{"Ada@Example.com", "grace@example.com"}, o.SeedCodeOnly)

	o, err = parse("-public-url", "http://[::1]:4433", "-code-login", "-smtp-from", "login@example.org")
	require.NoError(t, err)
	assert.Equal(t, "login@example.org", o.SMTPFrom)
	assert.Empty(t, o.SMTPURL, "no SMTP server: the outbox")
	o, err = parse("-public-url", "http://[::1]:4433")
	require.NoError(t, err)
	assert.Equal(t, "no-reply@[::1]", o.SMTPFrom)

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-login-style", "two_step"}, `-login-style must be unified or identifier_first, got "two_step"`},
		{[]string{"-smtp-url", "smtp://127.0.0.1:25/"}, "-smtp-url needs -code-login"},
		{[]string{"-seed-code-only", "ada@example.com"}, "-seed-code-only needs -code-login"},
		{[]string{"-code-lifespan", "1m"}, "-code-lifespan needs -code-login"},
		{[]string{"-code-login", "-seed-code-only", "ada"}, `-seed-code-only "ada": not an email address`},
		{[]string{"-code-login", "-code-lifespan", "0s"}, "-code-lifespan must be positive"},
		{[]string{"-code-login", "-code-max-submissions", "0"}, "-code-max-submissions must be at least 1"},
		{[]string{"-code-login", "-code-hash-key", "00ff"}, "-code-hash-key must be at least 16 bytes"},
		{[]string{"-code-login", "-code-hash-key", "not hex at all, not hex at all!!"}, "-code-hash-key must be at least 16 bytes"},
		{[]string{"-code-hash-key", "000102030405060708090a0b0c0d0e0f"}, "-code-hash-key needs -code-login"},
		{[]string{"-code-login", "-smtp-url", "http://mail.example.com"}, "-smtp-url or -smtp-from"},
		{[]string{"-code-login", "-smtp-url", "smtp://u:secret@mail.example.com/?disable_starttls=true"}, "-smtp-url or -smtp-from"},
		{[]string{"-code-login", "-smtp-url", "smtp://127.0.0.1/", "-smtp-from", "Demo <a@example.com>"}, "-smtp-url or -smtp-from"},
	} {
		_, err := parse(tc.args...)
		assert.ErrorContains(t, err, tc.want, "%q", tc.args)
		if err != nil {
			assert.NotContains(t, err.Error(), "secret", "the SMTP password is never repeated")
		}
	}
}

// TestSeedCodeLoginIsIdempotent: the demo identity gains a code
// credential for its address and keeps its password; a code-only address
// gets an identity of its own without password; seeding again changes
// nothing.
func TestSeedCodeLoginIsIdempotent(t *testing.T) {
	ctx := context.Background()
	ids := session.NewMemoryIdentityStore()
	require.NoError(t, Seed(ctx, ids, password.Bcrypt{Cost: 4}, "Demo@Example.com", "pw"))
	codeOnly := []string{"Only@Example.com", " only@example.com "}
	snapshot := func() map[string][]session.Credential {
		out := map[string][]session.Credential{}
		for _, a := range []string{"demo@example.com", "only@example.com"} {
			id, _, err := ids.FindIdentity(ctx, code.CredentialCode, a)
			require.NoError(t, err, "%s logs in by code", a)
			out[id.ID], err = ids.Credentials(ctx, id.ID)
			require.NoError(t, err)
		}
		return out
	}
	require.NoError(t, SeedCodeLogin(ctx, ids, "Demo@Example.com", codeOnly))
	first := snapshot()
	require.Len(t, first, 2, "two identities")

	demo, _, err := ids.FindIdentity(ctx, session.CredentialPassword, "demo@example.com")
	require.NoError(t, err)
	types := func(cs []session.Credential) []session.CredentialType {
		var out []session.CredentialType
		for _, c := range cs {
			out = append(out, c.Type)
		}
		slices.Sort(out)
		return out
	}
	assert.Equal(t, []session.CredentialType{code.CredentialCode, session.CredentialPassword}, types(first[demo.ID]),
		"the demo identity keeps its password and gains a code credential")
	only, _, err := ids.FindIdentity(ctx, code.CredentialCode, "only@example.com")
	require.NoError(t, err)
	assert.Equal(t, []session.CredentialType{code.CredentialCode}, types(first[only.ID]), "a code-only identity has no password")
	assert.JSONEq(t, `{"email":"Only@Example.com"}`, string(only.Traits))
	_, _, err = ids.FindIdentity(ctx, session.CredentialPassword, "only@example.com")
	assert.ErrorIs(t, err, session.ErrNotFound)

	require.NoError(t, SeedCodeLogin(ctx, ids, "demo@example.com", codeOnly))
	assert.Equal(t, first, snapshot(), "the second seed changes nothing")

	// An identifier that is not an address gets no code credential.
	require.NoError(t, Seed(ctx, ids, password.Bcrypt{Cost: 4}, "admin", "pw"))
	require.NoError(t, SeedCodeLogin(ctx, ids, "admin", nil))
	admin, _, err := ids.FindIdentity(ctx, session.CredentialPassword, "admin")
	require.NoError(t, err)
	creds, err := ids.Credentials(ctx, admin.ID)
	require.NoError(t, err)
	assert.Equal(t, []session.CredentialType{session.CredentialPassword}, types(creds))
}

// TestArrangeForms: which form each button lands in.
func TestArrangeForms(t *testing.T) {
	field := func(group, name string) nodeView {
		var n nodeView
		n.Group, n.Attributes.Name = group, name
		return n
	}
	button := func(group, value string) nodeView {
		n := field(group, "method")
		n.Value = value
		return n
	}
	names := func(ns []nodeView) []string {
		var out []string
		for _, n := range ns {
			out = append(out, n.Group+":"+n.Attributes.Name+n.Value)
		}
		return out
	}
	type form struct{ Fields, Buttons, Others []string }
	for _, tc := range []struct {
		name     string
		fields   []nodeView
		buttons  []nodeView
		want     []form
		separate []string
	}{
		{
			name:    "password and code: the code button submits the identifier, after the password's",
			fields:  []nodeView{field("default", "identifier"), field("password", "password")},
			buttons: []nodeView{button("code", "code"), button("password", "password")},
			want: []form{{
				Fields:  []string{"default:identifier", "password:password"},
				Buttons: []string{"password:methodpassword"},
				Others:  []string{"code:methodcode"},
			}},
		},
		{
			name:     "social sign-in keeps its own form",
			fields:   []nodeView{field("default", "identifier"), field("password", "password")},
			buttons:  []nodeView{button("oidc", "x"), button("code", "code"), button("password", "password")},
			want:     []form{{Fields: []string{"default:identifier", "password:password"}, Buttons: []string{"password:methodpassword"}, Others: []string{"code:methodcode"}}},
			separate: []string{"oidc:methodx"},
		},
		{
			name:    "code alone: the identifier and its button",
			fields:  []nodeView{field("default", "identifier")},
			buttons: []nodeView{button("code", "code")},
			want:    []form{{Fields: []string{"default:identifier"}, Others: []string{"code:methodcode"}}},
		},
		{
			name:    "identifier-first step 1",
			fields:  []nodeView{field("identifier_first", "identifier")},
			buttons: []nodeView{button("identifier_first", "identifier_first")},
			want:    []form{{Fields: []string{"identifier_first:identifier"}, Buttons: []string{"identifier_first:methodidentifier_first"}}},
		},
		{
			name:    "identifier-first step 2 (identifier hidden)",
			fields:  []nodeView{field("password", "password")},
			buttons: []nodeView{button("code", "code"), button("password", "password")},
			want:    []form{{Fields: []string{"password:password"}, Buttons: []string{"password:methodpassword"}, Others: []string{"code:methodcode"}}},
		},
		{
			name:    "code sent",
			fields:  []nodeView{field("code", "code")},
			buttons: []nodeView{button("code", "code"), func() nodeView { n := button("code", "code"); n.Attributes.Name = "resend"; return n }()},
			want:    []form{{Fields: []string{"code:code"}, Buttons: []string{"code:methodcode", "code:resendcode"}}},
		},
		{
			name:    "step-up: a form per second factor",
			fields:  []nodeView{field("totp", "totp_code"), field("lookup_secret", "lookup_secret")},
			buttons: []nodeView{button("totp", "totp"), button("lookup_secret", "lookup_secret")},
			want: []form{
				{Fields: []string{"totp:totp_code"}, Buttons: []string{"totp:methodtotp"}},
				{Fields: []string{"lookup_secret:lookup_secret"}, Buttons: []string{"lookup_secret:methodlookup_secret"}},
			},
		},
		{
			name:    "buttons only: one form",
			buttons: []nodeView{button("oidc", "x"), button("code", "code")},
			want:    []form{{Buttons: []string{"oidc:methodx", "code:methodcode"}}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			forms, separate := arrangeForms(tc.fields, tc.buttons)
			var got []form
			for _, f := range forms {
				got = append(got, form{names(f.Fields), names(f.Buttons), names(f.Others)})
			}
			assert.Equal(t, tc.want, got)
			assert.Equal(t, tc.separate, names(separate))
		})
	}
}

// codeDemo is the demo with -code-login on an httptest server.
type codeDemo struct {
	Options
	srv *Server
}

func startCodeDemo(t testing.TB, args ...string) *codeDemo {
	t.Helper()
	mux := http.NewServeMux()
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	o, err := ParseFlags(flag.NewFlagSet("t", flag.ContinueOnError),
		append([]string{"-public-url", ts.URL, "-hasher", "bcrypt", "-bcrypt-cost", "4", "-code-login"}, args...))
	require.NoError(t, err)
	srv, err := New(context.Background(), o, Stores{}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		assert.NoError(t, srv.Close(ctx))
	})
	mux.Handle("/", srv)
	return &codeDemo{Options: o, srv: srv}
}

var (
	buttonRE = regexp.MustCompile(`<button type="submit"(?: class="[^"]*")? name="([^"]+)" value="([^"]*)">([^<]*)</button>`)
	inputRE  = regexp.MustCompile(`<input (?:id="[^"]*" )?(?:type="hidden" )?name="([^"]+)"(?: type="([^"]+)")?(?: value="([^"]*)")?`)
)

// press submits the page's form that holds the button labelled label as a
// browser does: its inputs in order (fill sets visible ones; the rest keep
// their value, empty when none), then the button's name and value.
func (v *visitor) press(page, label string, fill map[string]string) *http.Response {
	v.t.Helper()
	for _, m := range formRE.FindAllStringSubmatch(page, -1) {
		var pressed []string
		for _, b := range buttonRE.FindAllStringSubmatch(m[2], -1) {
			if html.UnescapeString(b[3]) == label {
				pressed = b
			}
		}
		if pressed == nil {
			continue
		}
		vals := url.Values{}
		for _, in := range inputRE.FindAllStringSubmatch(m[2], -1) {
			value := html.UnescapeString(in[3])
			if f, ok := fill[in[1]]; ok && in[2] != "" {
				value = f
			}
			vals.Add(in[1], value)
		}
		vals.Add(pressed[1], html.UnescapeString(pressed[2]))
		resp, _ := v.post(html.UnescapeString(m[1]), vals)
		return resp
	}
	require.Failf(v.t, "no button", "the page has no form with the button %q:\n%s", label, page)
	return nil
}

var (
	outboxSubjectRE = regexp.MustCompile(`<h2 id="mail-0" class="subject">Use code (\d{6}) to log in</h2>`)
	outboxToRE      = regexp.MustCompile(`<dd class="to">([^<]*)</dd>`)
	methodsRE       = regexp.MustCompile(`<dd id="session-methods">([^<]*)</dd>`)
)

// outboxCode waits until the mail to address was delivered to the outbox
// and reads its code from the outbox page, where the newest mail is first.
func (d *codeDemo) outboxCode(t testing.TB, v *visitor, address string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m, err := d.srv.outbox.Wait(ctx, address)
	require.NoError(t, err, "a mail to %s", address)
	resp, page := v.get(d.PublicURL + "/mail")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, page, "Development aid.")
	sub := outboxSubjectRE.FindStringSubmatch(page)
	require.NotNil(t, sub, "the newest mail's subject:\n%s", page)
	assert.Equal(t, address, outboxToRE.FindStringSubmatch(page)[1])
	assert.Contains(t, page, "Login to your account with the following code:\n\n"+sub[1]+"\n\nIt expires in 15 minutes.")
	assert.Equal(t, "Use code "+sub[1]+" to log in", m.Subject, "the page shows the mail delivered")
	return sub[1]
}

// TestCodeLoginThroughPages logs in by code through the demo's pages like
// a browser without JavaScript, reading the code from the outbox page: the
// demo identity (which also has a password) and a code-only identity, in
// both login styles.
func TestCodeLoginThroughPages(t *testing.T) {
	for _, style := range []string{"unified", "identifier_first"} {
		for _, address := range []string{"demo@example.com", "only@example.com"} {
			t.Run(style+"/"+address, func(t *testing.T) {
				d := startCodeDemo(t, "-login-style", style, "-seed-code-only", "only@example.com")
				v := newVisitor(t, d.PublicURL)
				resp, _ := v.get(d.PublicURL + "/self-service/login/browser")
				loginURL, page := v.follow(resp)
				flowID := loginURL.Query().Get("flow")
				assert.Contains(t, page, `<label for="field-identifier">E-Mail</label>`)
				assert.Contains(t, page, `<p class="dev-note">Development server: no mail is sent.`)

				if style == "identifier_first" {
					assert.NotContains(t, page, "Send sign in code", "the first step asks for the identifier alone")
					assert.NotContains(t, page, `name="password"`)
					_, page = v.follow(v.press(page, "Continue", map[string]string{"identifier": address}))
					// Every address gets the same second step: the
					// identifier shown, the password and the code button.
					assert.Contains(t, page, `<input type="hidden" name="identifier" value="`+address+`">`)
					assert.Contains(t, page, `Signing in as <strong id="identity">`+address+`</strong>`)
					assert.Contains(t, page, `<label for="field-password">Password</label>`)
					assert.NotContains(t, page, `id="field-identifier"`)
				}
				// The code button is in the form with the identifier (or
				// its hidden node) and the password, after the password's
				// own button, so Enter in the password submits the password.
				f := formRE.FindStringSubmatch(page)
				require.NotNil(t, f)
				assert.Regexp(t, `(?s)name="identifier".*name="password".*>Sign in with password</button>.*>Send sign in code</button>`, f[2])

				u, page := v.follow(v.press(page, "Send sign in code", map[string]string{"identifier": address}))
				assert.Equal(t, flowID, u.Query().Get("flow"), "the same flow, now waiting for the code")
				assert.Contains(t, page, `<li class="info" data-message-id="1010014">A code was sent to the address you provided.`)
				assert.Contains(t, page, `<label for="field-code">Login code</label>`)
				assert.Contains(t, page, `autocomplete="one-time-code" autofocus`)
				assert.Contains(t, page, `name="method" value="code">Continue</button>`)
				assert.Contains(t, page, `name="resend" value="code">Resend code</button>`)
				assert.NotContains(t, page, `name="password"`)

				loginCode := d.outboxCode(t, v, address)
				// A wrong code first: 4010008 on the same flow.
				_, page = v.follow(v.press(page, "Continue", map[string]string{"code": wrongCode(loginCode)}))
				assert.Contains(t, page, `data-message-id="4010008"`)
				assert.Contains(t, page, `<label for="field-code">Login code</label>`, "the code field again")
				resp = v.press(page, "Continue", map[string]string{"code": loginCode})
				require.Equal(t, http.StatusSeeOther, resp.StatusCode)
				require.Equal(t, d.PublicURL+"/welcome", resp.Header.Get("Location"))
				resp, page = v.get(d.PublicURL + "/welcome")
				require.Equal(t, http.StatusOK, resp.StatusCode)
				assert.Contains(t, page, "Welcome, "+address)
				assert.Equal(t, "code", methodsRE.FindStringSubmatch(page)[1])
			})
		}
	}
}

// TestIdentifierFirstPasswordThroughPages: the identifier-first steps with
// a password; the code-only identity gets the same password step and a
// wrong-credentials answer for any password.
func TestIdentifierFirstPasswordThroughPages(t *testing.T) {
	d := startCodeDemo(t, "-login-style", "identifier_first", "-seed-code-only", "only@example.com")
	for _, tc := range []struct {
		address, password string
		welcome           bool
	}{
		{"demo@example.com", "correct horse battery staple", true},
		{"only@example.com", "correct horse battery staple", false},
		{"nobody@example.com", "anything", false},
	} {
		t.Run(tc.address, func(t *testing.T) {
			v := newVisitor(t, d.PublicURL)
			resp, _ := v.get(d.PublicURL + "/self-service/login/browser")
			_, page := v.follow(resp)
			_, page = v.follow(v.press(page, "Continue", map[string]string{"identifier": tc.address}))
			assert.Contains(t, page, `>Send sign in code</button>`, "every address gets the same second step")
			resp = v.press(page, "Sign in with password", map[string]string{"password": tc.password})
			require.Equal(t, http.StatusSeeOther, resp.StatusCode)
			if !tc.welcome {
				_, page = v.follow(resp)
				assert.Contains(t, page, `data-message-id="4000006"`)
				return
			}
			require.Equal(t, d.PublicURL+"/welcome", resp.Header.Get("Location"))
			_, page = v.get(d.PublicURL + "/welcome")
			assert.Contains(t, page, "Welcome, "+tc.address)
			assert.Equal(t, "password", methodsRE.FindStringSubmatch(page)[1])
		})
	}
	assert.Empty(t, d.srv.outbox.Messages(), "no step mailed anything")
}

// TestUnknownAddressThroughPages: an address of no identity gets the page
// of a known one, and no mail.
func TestUnknownAddressThroughPages(t *testing.T) {
	d := startCodeDemo(t)
	v := newVisitor(t, d.PublicURL)
	resp, _ := v.get(d.PublicURL + "/self-service/login/browser")
	_, page := v.follow(resp)
	_, page = v.follow(v.press(page, "Send sign in code", map[string]string{"identifier": "nobody@example.com"}))
	assert.Contains(t, page, `data-message-id="1010014"`)
	assert.Contains(t, page, `<label for="field-code">Login code</label>`)
	// A known address afterwards: its mail is the only one.
	v = newVisitor(t, d.PublicURL)
	resp, _ = v.get(d.PublicURL + "/self-service/login/browser")
	_, page = v.follow(resp)
	v.follow(v.press(page, "Send sign in code", map[string]string{"identifier": "demo@example.com"}))
	d.outboxCode(t, v, "demo@example.com")
	for _, m := range d.srv.outbox.Messages() {
		assert.Equal(t, "demo@example.com", m.To)
	}
}

// TestOutboxPage: the outbox exists only for code login without SMTP,
// lists the newest mails first, and the login page links it.
func TestOutboxPage(t *testing.T) {
	for _, tc := range []struct {
		name   string
		args   []string
		outbox bool
	}{
		{"without code login", nil, false},
		{"with SMTP", []string{"-code-login", "-smtp-url", "smtp://127.0.0.1:1/?disable_starttls=true"}, false},
		{"code login without SMTP", []string{"-code-login"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mux := http.NewServeMux()
			ts := httptest.NewServer(mux)
			defer ts.Close()
			o, err := ParseFlags(flag.NewFlagSet("t", flag.ContinueOnError),
				append([]string{"-public-url", ts.URL, "-hasher", "bcrypt", "-bcrypt-cost", "4"}, tc.args...))
			require.NoError(t, err)
			srv, err := New(context.Background(), o, Stores{}, slog.New(slog.DiscardHandler))
			require.NoError(t, err)
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			defer func() { _ = srv.Close(ctx) }()
			mux.Handle("/", srv)

			v := newVisitor(t, ts.URL)
			resp, page := v.get(ts.URL + "/mail")
			resp2, _ := v.get(ts.URL + "/self-service/login/browser")
			_, login := v.follow(resp2)
			if !tc.outbox {
				assert.Equal(t, http.StatusNotFound, resp.StatusCode)
				assert.NotContains(t, login, "outbox")
				return
			}
			require.Equal(t, http.StatusOK, resp.StatusCode)
			assert.Contains(t, page, "<h1>Outbox</h1>")
			assert.Contains(t, page, "No mail yet.")
			assert.Equal(t, "private, no-cache, no-store, must-revalidate", resp.Header.Get("Cache-Control"))
			assert.Contains(t, login, `<a href="`+ts.URL+`/mail">outbox</a>`)

			for i := range outboxLimit + 2 {
				require.NoError(t, srv.outbox.Deliver(context.Background(), courierMessage(i)))
			}
			_, page = v.get(ts.URL + "/mail")
			assert.Contains(t, page, "The newest 20 of 22 mails.")
			assert.Contains(t, page, `<h2 id="mail-0" class="subject">mail 21</h2>`)
			assert.Contains(t, page, `<h2 id="mail-19" class="subject">mail 2</h2>`)
			assert.NotContains(t, page, `>mail 1</h2>`)
			assert.Contains(t, page, `<pre class="body">&lt;b&gt;body&lt;/b&gt; 21</pre>`, "bodies are text, escaped")
		})
	}
}

// TestRunDeliversQueuedMail: Run's shutdown closes the handler, which
// delivers the mail still queued: an SMTP server that holds the message
// keeps Run from returning until it accepts it.
func TestRunDeliversQueuedMail(t *testing.T) {
	smtp := startHoldingSMTP(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	o, err := ParseFlags(flag.NewFlagSet("t", flag.ContinueOnError), []string{
		"-addr", addr, "-hasher", "bcrypt", "-bcrypt-cost", "4", "-code-login",
		"-smtp-url", "smtp://" + smtp.addr + "/?disable_starttls=true"})
	require.NoError(t, err)
	srv, err := New(context.Background(), o, Stores{}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	out := &syncWriter{}
	ran := make(chan error, 1)
	go func() { ran <- srv.Run(ctx, out) }()
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "listening on") }, 5*time.Second, 10*time.Millisecond)

	v := newVisitor(t, o.PublicURL)
	resp, _ := v.get(o.PublicURL + "/self-service/login/browser")
	_, page := v.follow(resp)
	_, page = v.follow(v.press(page, "Send sign in code", map[string]string{"identifier": "demo@example.com"}))
	assert.Contains(t, page, `data-message-id="1010014"`, "the answer does not wait for the held mail")
	select {
	case <-smtp.dataStarted:
	case <-time.After(5 * time.Second):
		t.Fatal("the mail did not reach the SMTP server")
	}

	stop()
	select {
	case err := <-ran:
		t.Fatalf("Run returned while the mail was still being delivered: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(smtp.release)
	select {
	case err := <-ran:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after the mail was delivered")
	}
	assert.Equal(t, 1, smtp.accepted(), "the held mail was delivered before Run returned")
}

// wrongCode is a code that is not c.
func wrongCode(c string) string {
	return strconv.Itoa((int(c[0]-'0')+1)%10) + c[1:]
}

func courierMessage(i int) courier.Message {
	return courier.Message{To: "x@example.com", Subject: fmt.Sprintf("mail %d", i), Text: fmt.Sprintf("<b>body</b> %d", i)}
}

type syncWriter struct {
	mu sync.Mutex
	b  strings.Builder
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// holdingSMTP is a real SMTP server (github.com/emersion/go-smtp) whose
// DATA waits until release is closed.
type holdingSMTP struct {
	addr        string
	release     chan struct{}
	dataStarted chan struct{}
	mu          sync.Mutex
	n           int
}

func (s *holdingSMTP) accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

func startHoldingSMTP(t testing.TB) *holdingSMTP {
	t.Helper()
	s := &holdingSMTP{release: make(chan struct{}), dataStarted: make(chan struct{}, 10)}
	srv := gosmtp.NewServer(gosmtp.BackendFunc(func(*gosmtp.Conn) (gosmtp.Session, error) {
		return &holdingSession{s: s}, nil
	}))
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s.addr = "127.0.0.1:" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		select {
		case <-s.release:
		default:
			close(s.release)
		}
		_ = srv.Close()
	})
	return s
}

type holdingSession struct{ s *holdingSMTP }

func (h *holdingSession) Mail(string, *gosmtp.MailOptions) error { return nil }
func (h *holdingSession) Rcpt(string, *gosmtp.RcptOptions) error { return nil }
func (h *holdingSession) Data(r io.Reader) error {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	h.s.dataStarted <- struct{}{}
	<-h.s.release
	h.s.mu.Lock()
	h.s.n++
	h.s.mu.Unlock()
	return nil
}
func (h *holdingSession) Reset()        {}
func (h *holdingSession) Logout() error { return nil }
