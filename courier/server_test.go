package courier_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log"
	"math/big"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"
	"github.com/stretchr/testify/require"
)

// serverConfig describes a test SMTP server.
type serverConfig struct {
	// StartTLS offers STARTTLS; ImplicitTLS serves TLS from the first byte.
	StartTLS    bool
	ImplicitTLS bool
	// Cert is the server's certificate; one for localhost, 127.0.0.1 and
	// ::1 when zero.
	Cert *tls.Certificate
	// User and Password, when set, offer AUTH (also in cleartext) with
	// Mechanisms (PLAIN and LOGIN when nil) and require it before MAIL.
	User, Password string
	Mechanisms     []string
	// Refuse, when set, is called for every DATA with its number (from 1);
	// a non-nil error is the server's reply and the message is not kept.
	Refuse func(n int) error
	// Hold, when set, makes DATA wait until it is closed before replying.
	Hold chan struct{}
}

// received is one message the server accepted.
type received struct {
	Helo string   // the EHLO name
	From string   // MAIL FROM
	To   []string // RCPT TO
	Data []byte   // the message as sent
	TLS  bool     // whether the connection was encrypted
	User string   // the authenticated user, if any
	Mech string   // and the mechanism used
}

// mailServer is a real SMTP server (github.com/emersion/go-smtp) on a
// loopback port, recording what it accepts.
type mailServer struct {
	cfg         serverConfig
	Port        string
	DataStarted chan int // receives each DATA's number as it begins

	mu    sync.Mutex
	mails []received
	datas int
	done  chan struct{}
}

// startServer starts a server on 127.0.0.1 and stops it when the test ends.
func startServer(t testing.TB, cfg serverConfig) *mailServer {
	t.Helper()
	s := &mailServer{cfg: cfg, DataStarted: make(chan int, 100), done: make(chan struct{})}
	srv := gosmtp.NewServer(gosmtp.BackendFunc(func(c *gosmtp.Conn) (gosmtp.Session, error) {
		return &session{s: s, conn: c}, nil
	}))
	srv.Domain = "localhost"
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	srv.AllowInsecureAuth = true
	srv.ErrorLog = log.New(io.Discard, "", 0)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	if cfg.StartTLS || cfg.ImplicitTLS {
		cert := cfg.Cert
		if cert == nil {
			c, _ := newCert(t, "localhost", "127.0.0.1", "::1")
			cert = &c
		}
		tc := &tls.Config{Certificates: []tls.Certificate{*cert}}
		if cfg.ImplicitTLS {
			l = tls.NewListener(l, tc)
		} else {
			srv.TLSConfig = tc
		}
	}
	_, s.Port, _ = net.SplitHostPort(l.Addr().String())
	go srv.Serve(l)
	t.Cleanup(func() {
		close(s.done)
		srv.Close()
	})
	return s
}

// Mails returns the accepted messages.
func (s *mailServer) Mails() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.mails...)
}

// session is one SMTP connection's state.
type session struct {
	s    *mailServer
	conn *gosmtp.Conn
	user string
	mech string
	from string
	to   []string
}

func (se *session) AuthMechanisms() []string {
	switch {
	case se.s.cfg.User == "":
		return nil
	case se.s.cfg.Mechanisms != nil:
		return se.s.cfg.Mechanisms
	}
	return []string{sasl.Plain, sasl.Login}
}

func (se *session) Auth(mech string) (sasl.Server, error) {
	check := func(user, password string) error {
		if user != se.s.cfg.User || password != se.s.cfg.Password {
			return gosmtp.ErrAuthFailed
		}
		se.user, se.mech = user, mech
		return nil
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(_, user, password string) error { return check(user, password) }), nil
	case sasl.Login:
		return &loginServer{check: check}, nil
	}
	return nil, gosmtp.ErrAuthUnknownMechanism
}

func (se *session) Mail(from string, _ *gosmtp.MailOptions) error {
	if se.s.cfg.User != "" && se.user == "" {
		return gosmtp.ErrAuthRequired
	}
	se.from = from
	return nil
}

func (se *session) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	se.to = append(se.to, to)
	return nil
}

func (se *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	se.s.mu.Lock()
	se.s.datas++
	n := se.s.datas
	se.s.mu.Unlock()
	se.s.DataStarted <- n
	if se.s.cfg.Hold != nil {
		select {
		case <-se.s.cfg.Hold:
		case <-se.s.done:
			return errors.New("server stopped")
		}
	}
	if se.s.cfg.Refuse != nil {
		if err := se.s.cfg.Refuse(n); err != nil {
			return err
		}
	}
	_, isTLS := se.conn.TLSConnectionState()
	se.s.mu.Lock()
	se.s.mails = append(se.s.mails, received{
		Helo: se.conn.Hostname(), From: se.from, To: se.to, Data: data, TLS: isTLS, User: se.user, Mech: se.mech,
	})
	se.s.mu.Unlock()
	return nil
}

func (se *session) Reset() { se.from, se.to = "", nil }

func (se *session) Logout() error { return nil }

// loginServer is the server side of AUTH LOGIN, which go-sasl lacks.
type loginServer struct {
	step  int
	user  string
	check func(user, password string) error
}

func (l *loginServer) Next(response []byte) ([]byte, bool, error) {
	l.step++
	switch l.step {
	case 1:
		if response != nil { // initial response: the user name
			l.user = string(response)
			l.step++
			return []byte("Password:"), false, nil
		}
		return []byte("Username:"), false, nil
	case 2:
		l.user = string(response)
		return []byte("Password:"), false, nil
	default:
		return nil, true, l.check(l.user, string(response))
	}
}

// tempFailure is a 4xx reply: try again later.
var tempFailure = &gosmtp.SMTPError{
	Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 3, 0}, Message: "Try again later",
}

// newCert makes a self-signed certificate for the names (DNS names or IP
// addresses) and a pool that trusts it.
func newCert(t testing.TB, names ...string) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: names[0]},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	leaf, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// parsedMail is a received message read with net/mail and mime/multipart.
type parsedMail struct {
	Header mail.Header
	// Parts are the body parts (one for a single-part message), their
	// headers as sent and their bodies decoded, with LF line ends.
	Parts []part
}

type part struct {
	Header textproto.MIMEHeader
	Body   string
}

// parseMail reads a message as a mail client would.
func parseMail(t testing.TB, data []byte) parsedMail {
	t.Helper()
	msg, err := mail.ReadMessage(strings.NewReader(string(data)))
	require.NoError(t, err)
	p := parsedMail{Header: msg.Header}
	mediaType, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	require.NoError(t, err)
	if !strings.HasPrefix(mediaType, "multipart/") {
		h := textproto.MIMEHeader(msg.Header)
		p.Parts = append(p.Parts, part{Header: h, Body: decodeBody(t, h, msg.Body)})
		return p
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		pt, err := mr.NextRawPart() // NextPart would hide Content-Transfer-Encoding
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		p.Parts = append(p.Parts, part{Header: pt.Header, Body: decodeBody(t, pt.Header, pt)})
	}
	return p
}

func decodeBody(t testing.TB, h textproto.MIMEHeader, r io.Reader) string {
	t.Helper()
	if strings.EqualFold(h.Get("Content-Transfer-Encoding"), "quoted-printable") {
		r = quotedprintable.NewReader(r)
	}
	b, err := io.ReadAll(r)
	require.NoError(t, err)
	return strings.ReplaceAll(string(b), "\r\n", "\n")
}
