package e2e

// A real SMTP server in the test process (github.com/emersion/go-smtp) for
// the code-login suites: it receives what authflow's courier sends over
// the wire, parses it as a mail client would (MIME, quoted-printable) and
// can hold a message's DATA until the test releases it. Its names are
// exported because the Ory SDK suite (package e2e_test) uses them too;
// every one starts with "Mail".

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Mail is one message the server accepted, parsed.
type Mail struct {
	From    string   // MAIL FROM
	To      []string // RCPT TO
	Header  mail.Header
	Subject string // decoded
	Text    string // the text/plain part, decoded, with \n line ends
	HTML    string // the text/html part, decoded, with \n line ends; "" when none
	Raw     []byte // the message as sent
}

// HeaderAddress returns the bare address of the header name ("From",
// "To"), "" when it holds no single address.
func (m Mail) HeaderAddress(name string) string {
	list, err := m.Header.AddressList(name)
	if err != nil || len(list) != 1 {
		return ""
	}
	return list[0].Address
}

// MailServer is a real SMTP server on 127.0.0.1 without TLS or AUTH (the
// courier's smtp://host:port/?disable_starttls=true). It is stopped when
// the test ends.
type MailServer struct {
	Addr string // 127.0.0.1:port

	mu      sync.Mutex
	mails   []Mail
	rcpts   []string // every RCPT TO, also of messages never finished
	taken   int      // mails returned by MailNext
	arrived chan struct{}
	hold    chan struct{} // when not nil, DATA waits until it is closed
	held    chan struct{} // receives when a held DATA has been read
}

// StartMailServer starts a server that accepts every message at once.
func StartMailServer(t testing.TB) *MailServer {
	t.Helper()
	return startMailServer(t, false)
}

// StartHoldingMailServer starts a server whose DATA replies only after
// MailRelease: the message is read, then the server waits.
func StartHoldingMailServer(t testing.TB) *MailServer {
	t.Helper()
	return startMailServer(t, true)
}

func startMailServer(t testing.TB, hold bool) *MailServer {
	t.Helper()
	s := &MailServer{arrived: make(chan struct{}), held: make(chan struct{}, 100)}
	if hold {
		s.hold = make(chan struct{})
	}
	srv := gosmtp.NewServer(gosmtp.BackendFunc(func(*gosmtp.Conn) (gosmtp.Session, error) {
		return &mailSession{s: s}, nil
	}))
	srv.Domain = "localhost"
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s.Addr = ln.Addr().String()
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		s.MailRelease()
		_ = srv.Close()
	})
	return s
}

// MailURL is the server as the courier's connection URI (-smtp-url).
func (s *MailServer) MailURL() string {
	return "smtp://" + s.Addr + "/?disable_starttls=true"
}

// MailRelease lets held and later DATA commands complete.
func (s *MailServer) MailRelease() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hold != nil {
		select {
		case <-s.hold:
		default:
			close(s.hold)
		}
	}
}

// MailHeld waits until a held message has been read (its DATA waits for
// MailRelease), failing the test after timeout.
func (s *MailServer) MailHeld(t testing.TB, timeout time.Duration) {
	t.Helper()
	select {
	case <-s.held:
	case <-time.After(timeout):
		require.Failf(t, "no mail", "no message reached the SMTP server within %v", timeout)
	}
}

// MailNext waits for the next accepted message that MailNext has not
// returned yet, failing the test after timeout.
func (s *MailServer) MailNext(t testing.TB, timeout time.Duration) Mail {
	t.Helper()
	deadline := time.After(timeout)
	for {
		s.mu.Lock()
		if s.taken < len(s.mails) {
			m := s.mails[s.taken]
			s.taken++
			s.mu.Unlock()
			return m
		}
		arrived := s.arrived
		s.mu.Unlock()
		select {
		case <-arrived:
		case <-deadline:
			require.Failf(t, "no mail", "the SMTP server accepted no new message within %v", timeout)
		}
	}
}

// MailAll returns every accepted message, oldest first.
func (s *MailServer) MailAll() []Mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Mail(nil), s.mails...)
}

// MailRecipients returns every RCPT TO the server saw, accepted or not.
func (s *MailServer) MailRecipients() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.rcpts...)
}

var mailSubjectRE = regexp.MustCompile(`^Use code (\d{6}) to log in$`)

// MailLoginCode checks that m is authflow's login-code mail to address
// (Kratos' subject and text, CONTRACT-CODE §6) and returns its code.
func MailLoginCode(t testing.TB, m Mail, address string, minutes int) string {
	t.Helper()
	assert.Equal(t, []string{address}, m.To, "RCPT TO")
	assert.Equal(t, address, m.HeaderAddress("To"), "To header")
	sub := mailSubjectRE.FindStringSubmatch(m.Subject)
	require.NotNil(t, sub, "subject %q", m.Subject)
	code := sub[1]
	want := fmt.Sprintf("Login to your account with the following code:\n\n%s\n\nIt expires in %d minutes.\n", code, minutes)
	assert.Equal(t, want, m.Text, "text/plain body")
	assert.Contains(t, m.HTML, code, "text/html body")
	assert.Empty(t, m.Header.Get("Message-Id"), "no Message-ID, as Kratos")
	return code
}

type mailSession struct {
	s    *MailServer
	from string
	to   []string
}

func (se *mailSession) Mail(from string, _ *gosmtp.MailOptions) error {
	se.from = from
	return nil
}

func (se *mailSession) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	se.to = append(se.to, to)
	se.s.mu.Lock()
	se.s.rcpts = append(se.s.rcpts, to)
	se.s.mu.Unlock()
	return nil
}

func (se *mailSession) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m, err := parseMail(raw)
	if err != nil {
		return &gosmtp.SMTPError{Code: 554, Message: "unreadable message: " + err.Error()}
	}
	m.From, m.To = se.from, append([]string(nil), se.to...)
	se.s.mu.Lock()
	hold := se.s.hold
	se.s.mu.Unlock()
	if hold != nil {
		se.s.held <- struct{}{}
		<-hold
	}
	se.s.mu.Lock()
	se.s.mails = append(se.s.mails, m)
	close(se.s.arrived)
	se.s.arrived = make(chan struct{})
	se.s.mu.Unlock()
	return nil
}

func (se *mailSession) Reset()        { se.from, se.to = "", nil }
func (se *mailSession) Logout() error { return nil }

// parseMail reads a message as a mail client does: the headers, the
// subject's encoded words, and a text/plain body or the text/plain and
// text/html parts of a multipart/alternative one, quoted-printable
// decoded.
func parseMail(raw []byte) (Mail, error) {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return Mail{}, err
	}
	m := Mail{Header: msg.Header, Raw: raw}
	if m.Subject, err = new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject")); err != nil {
		return Mail{}, fmt.Errorf("subject: %w", err)
	}
	mediaType, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		return Mail{}, fmt.Errorf("content type: %w", err)
	}
	text := func(r io.Reader, encoding string) (string, error) {
		if strings.EqualFold(encoding, "quoted-printable") {
			r = quotedprintable.NewReader(r)
		}
		b, err := io.ReadAll(r)
		return strings.ReplaceAll(string(b), "\r\n", "\n"), err
	}
	switch mediaType {
	case "text/plain":
		m.Text, err = text(msg.Body, msg.Header.Get("Content-Transfer-Encoding"))
		return m, err
	case "multipart/alternative":
		mr := multipart.NewReader(msg.Body, params["boundary"])
		for {
			p, err := mr.NextPart()
			if errors.Is(err, io.EOF) {
				return m, nil
			}
			if err != nil {
				return Mail{}, err
			}
			// multipart decodes quoted-printable parts itself.
			body, err := text(p, "")
			if err != nil {
				return Mail{}, err
			}
			switch pt, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type")); pt {
			case "text/plain":
				m.Text = body
			case "text/html":
				m.HTML = body
			}
		}
	}
	return Mail{}, fmt.Errorf("unexpected content type %q", mediaType)
}
