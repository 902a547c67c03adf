package e2e_test

// Login by a code sent by email (login/code) through the official Ory Go
// SDK, with the mail delivered over the wire by authflow's SMTP courier to
// a real SMTP server in the test (examples/e2e/mail_helpers_test.go): the
// send step answers the SDK's 400 LoginFlow in state sent_email, the code
// read from the received mail logs in, and an unknown address gets the
// same answer and no mail (CONTRACT-CODE §3–§5, §10.1).

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"testing"
	"time"

	ory "github.com/ory/client-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/courier"
	"github.com/authflow/authflow/examples/e2e"
	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/login/code"
	"github.com/authflow/authflow/login/logintest"
	"github.com/authflow/authflow/session"
)

const (
	sdkCodeAddress = "ada@example.com" // an identity that logs in by code only
	sdkCodeFrom    = "no-reply@example.com"
	sdkMailWait    = 10 * time.Second
	// sdkNoMailWait is how long the test listens for a mail that must not
	// come, after a later one arrived.
	sdkNoMailWait = 300 * time.Millisecond
)

// sdkCodeEnv is a deployment with the code method mailing through
// courier.NewSMTP to the test's SMTP server.
type sdkCodeEnv struct {
	*sdkEnv
	mail *e2e.MailServer
}

func newSDKCodeEnv(t *testing.T, mail *e2e.MailServer) *sdkCodeEnv {
	t.Helper()
	e := &sdkEnv{t: t, clock: &sdkClock{t: time.Now().UTC()}}
	mux := http.NewServeMux()
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)

	ctx := context.Background()
	ids := session.NewMemoryIdentityStore()
	cred, err := code.NewCredential(sdkCodeAddress)
	require.NoError(t, err)
	now := e.clock.Now()
	traits, err := json.Marshal(map[string]string{"email": sdkCodeAddress})
	require.NoError(t, err)
	id := &session.Identity{
		ID: sdkNewUUID(), SchemaID: "default", State: session.StateActive, StateChangedAt: &now,
		Traits: traits, CreatedAt: now, UpdatedAt: now,
	}
	require.NoError(t, ids.CreateIdentity(ctx, id, cred))
	e.identity = id

	smtp, err := courier.NewSMTP(courier.SMTPConfig{URL: mail.MailURL(), From: sdkCodeFrom})
	require.NoError(t, err)
	m, err := code.New(code.Config{Courier: smtp, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	h, err := login.New(login.Config{
		PublicURL:        e.srv.URL,
		LoginUIURL:       sdkLoginUI,
		ErrorUIURL:       sdkErrorUI,
		DefaultReturnURL: sdkDefaultReturn,
		IdentityStore:    ids,
		Hasher:           logintest.FastHasher{},
		Methods:          []login.Method{m},
		Now:              e.clock.Now,
		Logger:           slog.New(slog.DiscardHandler),
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		mail.MailRelease()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		assert.NoError(t, h.Close(ctx), "Handler.Close delivers the queue and stops it")
	})
	mux.Handle("/", h)
	return &sdkCodeEnv{sdkEnv: e, mail: mail}
}

// sdkCodeBody is a code-method submission; code and resend are sent when
// not empty.
func sdkCodeBody(identifier, loginCode, resend, csrf string) ory.UpdateLoginFlowBody {
	m := ory.NewUpdateLoginFlowWithCodeMethod(csrf, "code")
	m.Identifier = &identifier
	if loginCode != "" {
		m.Code = &loginCode
	}
	if resend != "" {
		m.Resend = &resend
	}
	return ory.UpdateLoginFlowWithCodeMethodAsUpdateLoginFlowBody(m)
}

// sdkNodeSummary lists a flow's input nodes as group/name/type/value/label.
func sdkNodeSummary(f *ory.LoginFlow) []string {
	var out []string
	for _, n := range f.Ui.Nodes {
		a := n.Attributes.UiNodeInputAttributes
		if a == nil {
			out = append(out, "non-input "+n.Type)
			continue
		}
		s := n.Group + "/" + a.Name + "/" + a.Type
		if v, ok := a.Value.(string); ok && a.Name != "csrf_token" {
			s += "=" + v
		}
		if n.Meta.Label != nil {
			s += " (" + strconv.FormatInt(n.Meta.Label.Id, 10) + ")"
		}
		out = append(out, s)
	}
	return out
}

// sdkAssertCodeSent checks the sent_email flow of CONTRACT-CODE §3 as the
// SDK decodes it from the send step's 400.
func sdkAssertCodeSent(t *testing.T, lf *ory.LoginFlow, address string) {
	t.Helper()
	assert.Equal(t, ory.LOGINFLOWSTATE_SENT_EMAIL, lf.State)
	assert.Equal(t, "code", lf.GetActive())
	require.Len(t, lf.Ui.Messages, 1)
	assert.Equal(t, int64(flow.IDCodeSent), lf.Ui.Messages[0].Id)
	assert.Equal(t, "info", lf.Ui.Messages[0].Type)
	nodes := sdkNodeSummary(lf)
	i := slices.Index(nodes, "default/csrf_token/hidden")
	if i >= 0 {
		assert.Equal(t, len(nodes)-1, i, "csrf_token comes last")
		nodes = nodes[:i]
	}
	assert.Equal(t, []string{
		"default/identifier/hidden=" + address + " (1070004)",
		"code/method/hidden=code",
		"code/code/text (1070013)",
		"code/method/submit=code (1070009)",
		"code/resend/submit=code (1070008)",
	}, nodes, "nodes as group/name/type=value (label id)")
	c := sdkInput(t, lf, "code")
	assert.Nil(t, c.Value, "the code node carries no value")
	assert.Equal(t, "one-time-code", c.GetAutocomplete())
	assert.True(t, c.GetRequired())
	sdkAssertKnownFlow(t, lf)
}

// TestSDKCodeLoginNative: a native app logs in by code: the fresh flow
// offers "Send sign in code"; the send step is the SDK's 400 LoginFlow in
// sent_email; the mail the SMTP server received carries the code; a wrong
// code is refused with 4010008; the right one returns a session token
// whose session says method "code"; the flow cannot log in again.
func TestSDKCodeLoginNative(t *testing.T) {
	e := newSDKCodeEnv(t, e2e.StartMailServer(t))
	api := e.native()
	f, resp, err := api.CreateNativeLoginFlow(t.Context()).Execute()
	sdkOK(t, err, resp)
	assert.Equal(t, []string{
		"default/csrf_token/hidden",
		"default/identifier/text= (1070004)",
		"code/method/submit=code (1010015)",
		"password/password/password (1070001)",
		"password/method/submit=password (1010022)",
	}, sdkNodeSummary(f), "the unified flow: identifier, the code button, the password form")

	_, resp, err = api.UpdateLoginFlow(t.Context()).Flow(f.Id).
		UpdateLoginFlowBody(sdkCodeBody(sdkCodeAddress, "", "", "")).Execute()
	lf := sdkModel[ory.LoginFlow](t, err, resp, http.StatusBadRequest)
	sdkAssertNoStore(t, resp)
	assert.Equal(t, f.Id, lf.Id)
	sdkAssertCodeSent(t, &lf, sdkCodeAddress)

	m := e.mail.MailNext(t, sdkMailWait)
	assert.Equal(t, sdkCodeFrom, m.From, "MAIL FROM")
	assert.Equal(t, sdkCodeFrom, m.HeaderAddress("From"))
	loginCode := e2e.MailLoginCode(t, m, sdkCodeAddress, 15)

	wrong := []byte(loginCode)
	wrong[0] = '0' + (wrong[0]-'0'+1)%10
	_, resp, err = api.UpdateLoginFlow(t.Context()).Flow(f.Id).
		UpdateLoginFlowBody(sdkCodeBody(sdkCodeAddress, string(wrong), "", "")).Execute()
	lf = sdkModel[ory.LoginFlow](t, err, resp, http.StatusBadRequest)
	assert.Equal(t, ory.LOGINFLOWSTATE_SENT_EMAIL, lf.State)
	require.Len(t, lf.Ui.Messages, 1)
	assert.Equal(t, int64(flow.IDInvalidLoginCode), lf.Ui.Messages[0].Id)
	assert.Nil(t, sdkInput(t, &lf, "code").Value, "a submitted code is never echoed")
	sdkAssertKnownFlow(t, &lf)

	ok, resp, err := api.UpdateLoginFlow(t.Context()).Flow(f.Id).
		UpdateLoginFlowBody(sdkCodeBody(sdkCodeAddress, loginCode, "", "")).Execute()
	sdkOK(t, err, resp)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	sdkAssertNoStore(t, resp)
	token := ok.GetSessionToken()
	require.NotEmpty(t, token)
	assert.Empty(t, ok.ContinueWith, "continue_with is null for API flows")
	sdkAssertCodeSession(t, e, &ok.Session)

	s, resp, err := api.ToSession(t.Context()).XSessionToken(token).Execute()
	sdkOK(t, err, resp)
	sdkAssertCodeSession(t, e, s)
	assert.Equal(t, ok.Session.Id, s.Id)

	// The flow logged in once: the same code, and a resend, get 4010007
	// and mail nothing (CONTRACT-CODE §10.3).
	for _, body := range []ory.UpdateLoginFlowBody{
		sdkCodeBody(sdkCodeAddress, loginCode, "", ""),
		sdkCodeBody(sdkCodeAddress, "", "code", ""),
	} {
		_, resp, err = api.UpdateLoginFlow(t.Context()).Flow(f.Id).UpdateLoginFlowBody(body).Execute()
		lf = sdkModel[ory.LoginFlow](t, err, resp, http.StatusBadRequest)
		assert.Equal(t, ory.LOGINFLOWSTATE_PASSED_CHALLENGE, lf.State)
		require.Len(t, lf.Ui.Messages, 1)
		assert.Equal(t, int64(flow.IDAlreadyCompleted), lf.Ui.Messages[0].Id)
	}
	time.Sleep(sdkNoMailWait)
	assert.Len(t, e.mail.MailAll(), 1, "the completed flow mailed nothing")
}

// sdkAssertCodeSession checks a session of the code login.
func sdkAssertCodeSession(t *testing.T, e *sdkCodeEnv, s *ory.Session) {
	t.Helper()
	require.NotNil(t, s)
	assert.True(t, s.GetActive())
	assert.Equal(t, ory.AUTHENTICATORASSURANCELEVEL_AAL1, s.GetAuthenticatorAssuranceLevel())
	require.Len(t, s.AuthenticationMethods, 1)
	assert.Equal(t, "code", s.AuthenticationMethods[0].GetMethod())
	assert.Equal(t, ory.AUTHENTICATORASSURANCELEVEL_AAL1, s.AuthenticationMethods[0].GetAal())
	require.NotNil(t, s.Identity)
	assert.Equal(t, e.identity.ID, s.Identity.Id)
	assert.Equal(t, map[string]any{"email": sdkCodeAddress}, s.Identity.Traits)
	sdkAssertKnownSession(t, s)
}

// TestSDKCodeLoginBrowser: a single-page app (JSON with cookies) logs in by
// code; resend=code mails a new code that replaces the first.
func TestSDKCodeLoginBrowser(t *testing.T) {
	e := newSDKCodeEnv(t, e2e.StartMailServer(t))
	b := e.browser()
	f, resp, err := b.api.CreateBrowserLoginFlow(t.Context()).Execute()
	sdkOK(t, err, resp)
	_, resp, err = b.api.UpdateLoginFlow(t.Context()).Flow(f.Id).
		UpdateLoginFlowBody(sdkCodeBody(sdkCodeAddress, "", "", sdkCSRF(t, f))).Execute()
	lf := sdkModel[ory.LoginFlow](t, err, resp, http.StatusBadRequest)
	sdkAssertCodeSent(t, &lf, sdkCodeAddress)
	first := e2e.MailLoginCode(t, e.mail.MailNext(t, sdkMailWait), sdkCodeAddress, 15)

	_, resp, err = b.api.UpdateLoginFlow(t.Context()).Flow(f.Id).
		UpdateLoginFlowBody(sdkCodeBody(sdkCodeAddress, "", "code", sdkCSRF(t, &lf))).Execute()
	lf = sdkModel[ory.LoginFlow](t, err, resp, http.StatusBadRequest)
	sdkAssertCodeSent(t, &lf, sdkCodeAddress)
	second := e2e.MailLoginCode(t, e.mail.MailNext(t, sdkMailWait), sdkCodeAddress, 15)

	if first != second {
		_, resp, err = b.api.UpdateLoginFlow(t.Context()).Flow(f.Id).
			UpdateLoginFlowBody(sdkCodeBody(sdkCodeAddress, first, "", sdkCSRF(t, &lf))).Execute()
		lf = sdkModel[ory.LoginFlow](t, err, resp, http.StatusBadRequest)
		require.Len(t, lf.Ui.Messages, 1)
		assert.Equal(t, int64(flow.IDInvalidLoginCode), lf.Ui.Messages[0].Id, "the resent code replaced the first")
	}

	ok, resp, err := b.api.UpdateLoginFlow(t.Context()).Flow(f.Id).
		UpdateLoginFlowBody(sdkCodeBody(sdkCodeAddress, second, "", sdkCSRF(t, &lf))).Execute()
	sdkOK(t, err, resp)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Nil(t, ok.SessionToken, "browser logins get no session token")
	sdkAssertCodeSession(t, e, &ok.Session)
	require.Len(t, ok.ContinueWith, 1)
	require.NotNil(t, ok.ContinueWith[0].ContinueWithRedirectBrowserTo)
	assert.Equal(t, sdkDefaultReturn, ok.ContinueWith[0].ContinueWithRedirectBrowserTo.RedirectBrowserTo)
	require.NotNil(t, b.cookie(sdkSessionCookie), "the session cookie is in the jar")
	s, resp, err := b.api.ToSession(t.Context()).Execute()
	sdkOK(t, err, resp)
	sdkAssertCodeSession(t, e, s)
}

// TestSDKCodeUnknownAddress: an address of no identity gets the very
// answer of a known one and no mail; any code then gets 4010008. The
// unknown address is sent first and a known one after it: once the known
// one's mail arrived (and a little longer), the server has seen no other
// recipient.
func TestSDKCodeUnknownAddress(t *testing.T) {
	e := newSDKCodeEnv(t, e2e.StartMailServer(t))
	api := e.native()
	const unknown = "nobody@example.com"

	f, resp, err := api.CreateNativeLoginFlow(t.Context()).Execute()
	sdkOK(t, err, resp)
	_, resp, err = api.UpdateLoginFlow(t.Context()).Flow(f.Id).
		UpdateLoginFlowBody(sdkCodeBody(unknown, "", "", "")).Execute()
	lf := sdkModel[ory.LoginFlow](t, err, resp, http.StatusBadRequest)
	sdkAssertCodeSent(t, &lf, unknown)

	known, resp, err := api.CreateNativeLoginFlow(t.Context()).Execute()
	sdkOK(t, err, resp)
	_, resp, err = api.UpdateLoginFlow(t.Context()).Flow(known.Id).
		UpdateLoginFlowBody(sdkCodeBody(sdkCodeAddress, "", "", "")).Execute()
	sdkModel[ory.LoginFlow](t, err, resp, http.StatusBadRequest)
	loginCode := e2e.MailLoginCode(t, e.mail.MailNext(t, sdkMailWait), sdkCodeAddress, 15)

	time.Sleep(sdkNoMailWait)
	assert.Len(t, e.mail.MailAll(), 1, "one mail: the known address's")
	assert.Equal(t, []string{sdkCodeAddress}, e.mail.MailRecipients(), "no RCPT TO the unknown address")

	// Not even another identity's code logs in on the unknown address's flow.
	for _, c := range []string{"123456", loginCode} {
		_, resp, err = api.UpdateLoginFlow(t.Context()).Flow(f.Id).
			UpdateLoginFlowBody(sdkCodeBody(unknown, c, "", "")).Execute()
		lf = sdkModel[ory.LoginFlow](t, err, resp, http.StatusBadRequest)
		require.Len(t, lf.Ui.Messages, 1)
		assert.Equal(t, int64(flow.IDInvalidLoginCode), lf.Ui.Messages[0].Id)
	}
}

// TestSDKCodeSendDoesNotWaitForSMTP: the SMTP server holds the message's
// DATA until the test releases it, and the send step's answer arrives all
// the same; only after the release is the mail accepted. No timing is
// measured: an answer that waited for the server would never come before
// the release, which happens only after it.
func TestSDKCodeSendDoesNotWaitForSMTP(t *testing.T) {
	mail := e2e.StartHoldingMailServer(t)
	e := newSDKCodeEnv(t, mail)
	api := e.native()
	f, resp, err := api.CreateNativeLoginFlow(t.Context()).Execute()
	sdkOK(t, err, resp)

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, resp, err = api.UpdateLoginFlow(ctx).Flow(f.Id).
		UpdateLoginFlowBody(sdkCodeBody(sdkCodeAddress, "", "", "")).Execute()
	require.NoError(t, ctx.Err(), "the send step's answer did not arrive while the SMTP server held the mail")
	lf := sdkModel[ory.LoginFlow](t, err, resp, http.StatusBadRequest)
	sdkAssertCodeSent(t, &lf, sdkCodeAddress)

	mail.MailHeld(t, sdkMailWait) // the courier is delivering, in the background
	assert.Empty(t, mail.MailAll(), "the mail is still held")
	mail.MailRelease()
	e2e.MailLoginCode(t, mail.MailNext(t, sdkMailWait), sdkCodeAddress, 15)
}
