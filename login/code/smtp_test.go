package code_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/mail"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/courier"
	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/login/code"
)

// The method delivering through a real SMTP server: github.com/emersion/go-smtp
// on a loopback port, reached by the courier package's SMTP courier with
// Kratos' connection URI.

// smtpServer is a real SMTP server that records what it accepts.
type smtpServer struct {
	// hold, when set, makes each DATA wait until it is closed before the
	// server replies (so the message is not yet accepted).
	hold chan struct{}
	// refuse, when set, is called for every DATA with its number (from 1);
	// a non-nil error is the server's reply and the message is dropped.
	refuse func(n int) error

	port        string
	dataStarted chan int      // each DATA's number, as it begins
	accepted    chan accepted // each accepted message
	done        chan struct{}

	mu    sync.Mutex
	datas int
	mails []accepted
}

// accepted is one message the server accepted.
type accepted struct {
	From string
	To   []string
	Data []byte
}

// startSMTP starts the server; configure may set hold and refuse. It stops
// when the test ends.
func startSMTP(t testing.TB, configure ...func(*smtpServer)) *smtpServer {
	t.Helper()
	s := &smtpServer{dataStarted: make(chan int, 100), accepted: make(chan accepted, 100), done: make(chan struct{})}
	for _, c := range configure {
		c(s)
	}
	srv := gosmtp.NewServer(gosmtp.BackendFunc(func(*gosmtp.Conn) (gosmtp.Session, error) {
		return &smtpSession{s: s}, nil
	}))
	srv.Domain = "localhost"
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	srv.ErrorLog = log.New(io.Discard, "", 0)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	_, s.port, _ = net.SplitHostPort(l.Addr().String())
	go srv.Serve(l)
	t.Cleanup(func() {
		close(s.done)
		srv.Close()
	})
	return s
}

// courier returns the courier package's SMTP courier for the server.
func (s *smtpServer) courier(t testing.TB) courier.Courier {
	t.Helper()
	c, err := courier.NewSMTP(courier.SMTPConfig{
		URL:     "smtp://127.0.0.1:" + s.port + "/?disable_starttls=true",
		From:    "no-reply@example.com",
		Timeout: 5 * time.Second,
	})
	require.NoError(t, err)
	return c
}

func (s *smtpServer) mailCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.mails)
}

// next waits for the next accepted message.
func (s *smtpServer) next(t testing.TB) accepted {
	t.Helper()
	select {
	case m := <-s.accepted:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no mail accepted")
		return accepted{}
	}
}

type smtpSession struct {
	s    *smtpServer
	from string
	to   []string
}

func (se *smtpSession) Mail(from string, _ *gosmtp.MailOptions) error {
	se.from = from
	return nil
}

func (se *smtpSession) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	se.to = append(se.to, to)
	return nil
}

func (se *smtpSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s := se.s
	s.mu.Lock()
	s.datas++
	n := s.datas
	s.mu.Unlock()
	s.dataStarted <- n
	if s.hold != nil {
		select {
		case <-s.hold:
		case <-s.done:
			return errors.New("server stopped")
		}
	}
	if s.refuse != nil {
		if err := s.refuse(n); err != nil {
			return err
		}
	}
	m := accepted{From: se.from, To: se.to, Data: data}
	s.mu.Lock()
	s.mails = append(s.mails, m)
	s.mu.Unlock()
	s.accepted <- m
	return nil
}

func (se *smtpSession) Reset()        { se.from, se.to = "", nil }
func (se *smtpSession) Logout() error { return nil }

// parsedMail is a delivered message, decoded.
type parsedMail struct {
	Header     mail.Header
	Subject    string
	Text, HTML string
}

// parseMail reads a multipart/alternative message with quoted-printable
// parts, as Kratos sends the login code (CONTRACT-CODE §6).
func parseMail(t testing.TB, data []byte) parsedMail {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	require.NoError(t, err)
	subject, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	require.NoError(t, err)
	out := parsedMail{Header: msg.Header, Subject: subject}
	mediaType, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	require.NoError(t, err)
	require.Equal(t, "multipart/alternative", mediaType)
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextRawPart()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		typ, tparams, err := mime.ParseMediaType(p.Header.Get("Content-Type"))
		require.NoError(t, err)
		assert.Equal(t, "UTF-8", strings.ToUpper(tparams["charset"]))
		require.Equal(t, "quoted-printable", p.Header.Get("Content-Transfer-Encoding"))
		body, err := io.ReadAll(quotedprintable.NewReader(p))
		require.NoError(t, err)
		switch typ {
		case "text/plain":
			out.Text = strings.ReplaceAll(string(body), "\r\n", "\n")
		case "text/html":
			out.HTML = strings.ReplaceAll(string(body), "\r\n", "\n")
		}
	}
	return out
}

// smtpCode waits for the next message the server accepts, checks that it
// is alice's login-code mail, and returns the code.
func (s *smtpServer) code(t testing.TB, to string) string {
	t.Helper()
	m := s.next(t)
	assert.Equal(t, "no-reply@example.com", m.From)
	assert.Equal(t, []string{to}, m.To)
	pm := parseMail(t, m.Data)
	return codeIn(t, pm.Subject, pm.Text)
}

// The whole login with the mail going through a real SMTP server: the mail
// is Kratos' (CONTRACT-CODE §6) and its code logs in.
func TestSMTPLogin(t *testing.T) {
	srv := startSMTP(t)
	e := newEnv(t, func(s *setup) { s.code.Courier = srv.courier(t) })
	c := e.api()
	f := e.apiFlow(c)
	r := e.send(c, f.ID, alice)
	require.Equal(t, http.StatusBadRequest, r.Status, "body: %s", r.Body)

	m := srv.next(t)
	assert.Equal(t, []string{alice}, m.To)
	pm := parseMail(t, m.Data)
	got := codeIn(t, pm.Subject, pm.Text)
	assert.Equal(t, "Use code "+got+" to log in", pm.Subject)
	assert.Equal(t, "Login to your account with the following code:\n\n"+got+"\n\nIt expires in 15 minutes.\n", pm.Text)
	assert.Contains(t, pm.HTML, got)
	assert.Equal(t, []string{alice}, addresses(t, pm.Header, "To"))
	assert.Equal(t, []string{"no-reply@example.com"}, addresses(t, pm.Header, "From"))
	assert.Empty(t, pm.Header.Get("Message-ID"))
	assert.NotContains(t, string(m.Data), f.ID, "the mail carries no flow id")

	r = e.enter(c, f.ID, alice, got)
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	assert.Equal(t, []string{"code/aal1"}, methodsOf(t, r.JSON(t)["session"].(map[string]any)))
}

// The HTTP answer never waits for the mail (CONTRACT-CODE §10.2): with the
// SMTP server holding DATA unanswered, the send step has already answered;
// the mail is accepted once the server lets go, and its code works.
func TestAnswerBeforeMailAccepted(t *testing.T) {
	hold := make(chan struct{})
	srv := startSMTP(t, func(s *smtpServer) { s.hold = hold })
	e := newEnv(t, func(s *setup) { s.code.Courier = srv.courier(t) })
	c := e.api()
	c.c.Timeout = 5 * time.Second // a request that waited on the held mail would fail
	f := e.apiFlow(c)

	r := e.send(c, f.ID, alice)
	require.Equal(t, http.StatusBadRequest, r.Status, "body: %s", r.Body)
	assertSent(t, r.Body, false)
	select {
	case <-srv.dataStarted:
	case <-time.After(5 * time.Second):
		t.Fatal("the courier never reached DATA")
	}
	assert.Zero(t, srv.mailCount(), "the server has not accepted the mail, yet the answer is there")

	close(hold)
	got := srv.code(t, alice)
	r = e.enter(c, f.ID, alice, got)
	assert.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
}

// A failing SMTP server loses no login: the queue retries a refused
// delivery, and when it gives up a resend mails a code that works.
func TestSMTPFailures(t *testing.T) {
	t.Run("retried", func(t *testing.T) {
		srv := startSMTP(t, func(s *smtpServer) {
			s.refuse = func(n int) error {
				if n <= 2 {
					return &gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
				}
				return nil
			}
		})
		e := newEnv(t, func(s *setup) { s.code.Courier = srv.courier(t) })
		c := e.api()
		f := e.apiFlow(c)
		require.Equal(t, http.StatusBadRequest, e.send(c, f.ID, alice).Status)
		got := srv.code(t, alice)
		r := e.enter(c, f.ID, alice, got)
		assert.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	})
	t.Run("resend", func(t *testing.T) {
		srv := startSMTP(t, func(s *smtpServer) {
			s.refuse = func(n int) error {
				if n == 1 {
					return &gosmtp.SMTPError{Code: 554, EnhancedCode: gosmtp.EnhancedCode{5, 0, 0}, Message: "no"}
				}
				return nil
			}
		})
		dropped := make(chan string, 1)
		e := newEnv(t, func(s *setup) {
			s.code.Courier = srv.courier(t)
			s.code.Queue.Retries = -1
			s.code.Queue.OnFailure = func(_ context.Context, to string, _ int, _ error, final bool) {
				if final {
					dropped <- to
				}
			}
		})
		c := e.api()
		f := e.apiFlow(c)
		require.Equal(t, http.StatusBadRequest, e.send(c, f.ID, alice).Status)
		select {
		case to := <-dropped:
			assert.Equal(t, alice, to)
		case <-time.After(5 * time.Second):
			t.Fatal("the refused mail was not dropped")
		}
		r := e.resend(c, f.ID, alice)
		require.Equal(t, http.StatusBadRequest, r.Status, "body: %s", r.Body)
		got := srv.code(t, alice)
		r = e.enter(c, f.ID, alice, got)
		assert.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	})
}

// Handler.Close closes the method's queue: mail queued before is delivered
// before Close returns when ctx allows, and dropped when ctx ends first.
func TestCloseDeliversQueuedMail(t *testing.T) {
	t.Run("delivered", func(t *testing.T) {
		hold := make(chan struct{})
		srv := startSMTP(t, func(s *smtpServer) { s.hold = hold })
		e := newEnv(t, func(s *setup) { s.code.Courier = srv.courier(t) })
		c := e.api()
		require.Equal(t, http.StatusBadRequest, e.send(c, e.apiFlow(c).ID, alice).Status)
		<-srv.dataStarted
		go func() {
			time.Sleep(50 * time.Millisecond)
			close(hold)
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, e.h.Close(ctx))
		assert.Equal(t, 1, srv.mailCount(), "delivered before Close returned")
	})
	t.Run("ctx ends first", func(t *testing.T) {
		srv := startSMTP(t, func(s *smtpServer) { s.hold = make(chan struct{}) })
		e := newEnv(t, func(s *setup) { s.code.Courier = srv.courier(t) })
		c := e.api()
		require.Equal(t, http.StatusBadRequest, e.send(c, e.apiFlow(c).ID, alice).Status)
		<-srv.dataStarted
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		assert.ErrorIs(t, e.h.Close(ctx), context.DeadlineExceeded)
		assert.Zero(t, srv.mailCount())
	})
}

// addresses returns the addresses of the header field name.
func addresses(t testing.TB, h mail.Header, name string) []string {
	t.Helper()
	list, err := h.AddressList(name)
	require.NoError(t, err)
	var out []string
	for _, a := range list {
		out = append(out, a.Address)
	}
	return out
}

// A mail that cannot be delivered reaches the handler's event hook
// (login.Config.OnEvent) as a code.mail error event, naming neither the
// address nor the code.
func TestUndeliverableMailIsAnEvent(t *testing.T) {
	srv := startSMTP(t, func(s *smtpServer) {
		s.refuse = func(int) error {
			return &gosmtp.SMTPError{Code: 554, EnhancedCode: gosmtp.EnhancedCode{5, 0, 0}, Message: "no"}
		}
	})
	events := make(chan login.Event, 16)
	e := newEnv(t, func(s *setup) {
		s.code.Courier = srv.courier(t)
		s.code.Queue.Retries = -1
		s.login.OnEvent = func(_ context.Context, ev login.Event) {
			if ev.Action == code.MailAction {
				events <- ev
			}
		}
	})
	c := e.api()
	f := e.apiFlow(c)
	require.Equal(t, http.StatusBadRequest, e.send(c, f.ID, alice).Status)
	select {
	case ev := <-events:
		assert.Equal(t, login.OutcomeError, ev.Outcome)
		assert.Equal(t, code.MethodID, ev.Method)
		assert.Empty(t, ev.IdentityID)
		assert.False(t, ev.Time.IsZero())
	case <-time.After(5 * time.Second):
		t.Fatal("no event for the undeliverable mail")
	}
}

// The end state: an identity without a password (carol) receives
// her code by real SMTP and signs in with it through the API, a browser
// form and an SPA, in both login styles.
func TestSMTPLoginEveryWay(t *testing.T) {
	for _, style := range []string{login.LoginStyleUnified, login.LoginStyleIdentifierFirst} {
		for _, way := range []string{"api", "form", "spa"} {
			t.Run(style+"/"+way, func(t *testing.T) {
				srv := startSMTP(t)
				e := newEnv(t, func(s *setup) {
					s.code.Courier = srv.courier(t)
					s.login.LoginStyle = style
				})
				var c *client
				var f flow.Flow
				if way == "api" {
					c = e.api()
					f = e.apiFlow(c)
				} else {
					c = e.browser()
					f = e.browserFlow(c)
				}
				post := func(fields map[string]string) *result {
					if way == "form" {
						v := url.Values{"csrf_token": {csrfToken(f)}}
						for k, x := range fields {
							v.Set(k, x)
						}
						return e.submitForm(c, f.ID, v)
					}
					body := map[string]any{}
					for k, x := range fields {
						body[k] = x
					}
					if way == "spa" {
						body["csrf_token"] = csrfToken(f)
					}
					return e.submitJSON(c, f.ID, body)
				}
				step := func(r *result) {
					t.Helper()
					if way == "form" {
						require.Equal(t, http.StatusSeeOther, r.Status, "body: %s", r.Body)
						f = e.fetch(c, f.ID)
						return
					}
					require.Equal(t, http.StatusBadRequest, r.Status, "body: %s", r.Body)
					f = r.Flow(t)
				}
				if style == login.LoginStyleIdentifierFirst {
					step(post(map[string]string{"method": "identifier_first", "identifier": carol}))
					require.NotNil(t, f.UI.Node("identifier"))
				}
				step(post(map[string]string{"method": "code", "identifier": carol}))
				require.Equal(t, flow.StateSentEmail, f.State)

				m := srv.next(t)
				pm := parseMail(t, m.Data)
				got := codeIn(t, pm.Subject, pm.Text)
				r := post(map[string]string{"method": "code", "identifier": carol, "code": got})
				switch way {
				case "form":
					require.Equal(t, http.StatusSeeOther, r.Status, "body: %s", r.Body)
					assert.Equal(t, defaultReturn, r.Header.Get("Location"))
				default:
					require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
					assert.Equal(t, []string{"code/aal1"}, methodsOf(t, r.JSON(t)["session"].(map[string]any)))
				}
			})
		}
	}
}
