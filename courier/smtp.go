package courier

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// DefaultSMTPTimeout bounds one delivery when SMTPConfig.Timeout is zero.
const DefaultSMTPTimeout = 30 * time.Second

// SMTPConfig configures an [SMTP] courier. Its fields mirror Kratos'
// courier.smtp settings.
type SMTPConfig struct {
	// URL is Kratos' connection URI (courier.smtp.connection_uri). Required.
	//
	//	smtp://[user:password@]host[:port]/[?disable_starttls=true]
	//	smtps://[user:password@]host[:port]/
	//
	// smtp uses STARTTLS, which the server must offer, unless
	// disable_starttls=true (then the connection stays in cleartext, even
	// when the server offers STARTTLS); its port defaults to 25. smtps is
	// TLS from the first byte (implicit TLS); its port defaults to 465.
	// skip_ssl_verify=true accepts any certificate (for tests only);
	// server_name=name verifies the certificate for that name instead of
	// the host. Other query parameters are refused. With a user and
	// password the courier authenticates (AUTH PLAIN, else LOGIN), which it
	// refuses over cleartext unless the host is loopback.
	URL string
	// From is the sender's address (courier.smtp.from_address), used in the
	// envelope and the From header. Required.
	From string
	// FromName is the sender's display name (courier.smtp.from_name); none
	// when empty.
	FromName string
	// LocalName is the name sent with EHLO (courier.smtp.local_name);
	// "localhost" when empty, as in Kratos.
	LocalName string
	// Timeout bounds one delivery, from dialling to the server's acceptance;
	// DefaultSMTPTimeout when zero.
	Timeout time.Duration
	// TLSConfig is the base of the TLS configuration, for example to trust
	// a private CA (RootCAs) or present a client certificate; it is cloned.
	// The URL's server_name and skip_ssl_verify override ServerName and
	// InsecureSkipVerify. When nil, the system roots and TLS 1.2 or later.
	TLSConfig *tls.Config
}

// SMTP is a [Courier] that delivers through an SMTP server with
// github.com/wneessen/go-mail, one connection per message. It is safe for
// concurrent use.
//
// A message goes out as Kratos sends it: EHLO with the local name, MAIL FROM
// and RCPT TO with the bare addresses, then the headers Date, From
// ("name" <address> with a FromName), To, Subject and MIME-Version, and a
// multipart/alternative body of text/plain and text/html parts (a single
// text/plain part when Message.HTML is empty), UTF-8, quoted-printable. There
// is no Message-ID header (Kratos sends none; the server may add one) and no
// User-Agent.
type SMTP struct {
	host        string // host name or IP address, without brackets
	addr        string // host:port to dial
	implicitTLS bool   // smtps
	startTLS    bool   // smtp without disable_starttls=true
	tls         *tls.Config
	user, pass  string
	auth        bool
	loopback    bool
	from        string
	fromName    string
	localName   string
	timeout     time.Duration
}

// NewSMTP validates cfg and returns the courier. It returns an error for a URL
// that is not a valid connection URI (scheme, host, port, query parameters),
// for credentials that would travel in cleartext to a host that is not
// loopback, for a missing or invalid From address, and for line breaks in
// FromName or LocalName. The errors never contain the URL's password.
func NewSMTP(cfg SMTPConfig) (*SMTP, error) {
	s, err := parseSMTPURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	if cfg.From == "" {
		return nil, errors.New("courier: SMTPConfig.From is required")
	}
	if a, err := mail.ParseAddress(cfg.From); err != nil || a.Name != "" || a.Address != cfg.From {
		return nil, fmt.Errorf("courier: SMTPConfig.From %q is not a bare email address", cfg.From)
	}
	if strings.ContainsAny(cfg.FromName, "\r\n") {
		return nil, errors.New("courier: SMTPConfig.FromName contains a line break")
	}
	if strings.ContainsAny(cfg.LocalName, " \t\r\n") {
		return nil, fmt.Errorf("courier: SMTPConfig.LocalName %q contains white space", cfg.LocalName)
	}
	s.from, s.fromName, s.localName, s.timeout = cfg.From, cfg.FromName, cfg.LocalName, cfg.Timeout
	if s.localName == "" {
		s.localName = "localhost"
	}
	if s.timeout <= 0 {
		s.timeout = DefaultSMTPTimeout
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.TLSConfig != nil {
		tc = cfg.TLSConfig.Clone()
	}
	tc.ServerName = s.tls.ServerName
	tc.InsecureSkipVerify = s.tls.InsecureSkipVerify
	s.tls = tc
	return s, nil
}

// parseSMTPURL reads Kratos' connection URI into an SMTP without its
// sender fields. Its errors never repeat the URI, which may hold a password.
func parseSMTPURL(raw string) (*SMTP, error) {
	if raw == "" {
		return nil, errors.New("courier: SMTPConfig.URL is required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the URL, password included
		}
		return nil, fmt.Errorf("courier: invalid SMTP URL: %w", err)
	}
	s := &SMTP{tls: &tls.Config{}}
	port := 25
	switch u.Scheme {
	case "smtp":
	case "smtps":
		s.implicitTLS, port = true, 465
	default:
		return nil, fmt.Errorf("courier: SMTP URL scheme %q is not smtp or smtps", u.Scheme)
	}
	if u.Opaque != "" || u.Hostname() == "" {
		return nil, errors.New("courier: SMTP URL has no host")
	}
	if u.Path != "" && u.Path != "/" {
		return nil, errors.New("courier: SMTP URL has a path")
	}
	if u.Fragment != "" {
		return nil, errors.New("courier: SMTP URL has a fragment")
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("courier: SMTP URL port %q is not in 1-65535", p)
		}
		port = n
	}
	s.host = u.Hostname()
	s.addr = net.JoinHostPort(s.host, strconv.Itoa(port))
	s.tls.ServerName = s.host

	query, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("courier: invalid SMTP URL query: %w", err)
	}
	disableStartTLS := false
	for key, values := range query {
		if len(values) != 1 {
			return nil, fmt.Errorf("courier: SMTP URL parameter %q is repeated", key)
		}
		v := values[0]
		switch key {
		case "disable_starttls":
			disableStartTLS, err = strconv.ParseBool(v)
		case "skip_ssl_verify":
			s.tls.InsecureSkipVerify, err = strconv.ParseBool(v)
		case "server_name":
			if v == "" {
				err = errors.New("empty")
			}
			s.tls.ServerName = v
		default:
			return nil, fmt.Errorf("courier: unknown SMTP URL parameter %q", key)
		}
		if err != nil {
			return nil, fmt.Errorf("courier: SMTP URL parameter %s=%q is invalid", key, v)
		}
	}
	// disable_starttls has no effect with smtps, as in Kratos.
	s.startTLS = !s.implicitTLS && !disableStartTLS
	s.loopback = isLoopback(s.host)

	if u.User != nil {
		s.user = u.User.Username()
		s.pass, _ = u.User.Password()
		s.auth = s.user != "" || s.pass != ""
	}
	if err := checkCleartextAuth(s); err != nil {
		return nil, err
	}
	return s, nil
}

// checkCleartextAuth refuses credentials that would travel unencrypted: with
// disable_starttls=true a password may only go to a loopback host, where no
// network carries it. (go-mail's PLAIN and LOGIN make the same check when
// authenticating, for "localhost", 127.0.0.1 and ::1.)
func checkCleartextAuth(s *SMTP) error {
	if s.auth && !s.implicitTLS && !s.startTLS && !s.loopback {
		return errors.New("courier: SMTP URL sends credentials in cleartext " +
			"(disable_starttls=true to a host that is not loopback); use STARTTLS or smtps")
	}
	return nil
}

// isLoopback reports whether host is "localhost" or a loopback address.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// Deliver sends m and returns once the server accepted it (250 after DATA),
// or the error of the step that failed: dialling, STARTTLS (also when the
// server does not offer it), AUTH, MAIL, RCPT or DATA. SMTP replies keep
// their code in the error text (a 4xx is worth retrying). Deliver gives up
// when ctx ends or after SMTPConfig.Timeout, closing the connection.
func (s *SMTP) Deliver(ctx context.Context, m Message) (err error) {
	raw, from, to, err := s.render(m)
	if err != nil {
		return err
	}
	defer clear(raw)

	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()

	// The dial is ours: go-mail formats "host:port" without brackets, which
	// breaks IPv6 literals, and its session commands after the dial only
	// know deadlines, so the connection is closed when ctx ends.
	var conn net.Conn
	stop := func() bool { return false }
	dial := func(dctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(dctx, "tcp", s.addr)
		if err != nil {
			return nil, err
		}
		if s.implicitTLS {
			tc := tls.Client(c, s.tls)
			if err := tc.HandshakeContext(dctx); err != nil {
				c.Close()
				return nil, err
			}
			c = tc
		}
		conn = c
		stop = context.AfterFunc(ctx, func() { c.Close() })
		return c, nil
	}
	defer func() { stop() }()

	client, err := gomail.NewClient(s.host, s.options(dial)...)
	if err != nil {
		return fmt.Errorf("courier: smtp: %w", err)
	}
	// A client per delivery: go-mail's Client changes its own settings
	// while authenticating, so one shared Client would race.
	sc, err := client.DialToSMTPClientWithContext(ctx)
	if err != nil {
		if conn != nil {
			conn.Close() // go-mail leaves it open when EHLO, STARTTLS or AUTH fail
		}
		return smtpError(ctx, "connect", err)
	}
	defer func() {
		if err != nil {
			sc.Close()
		}
	}()
	if err := sc.UpdateDeadline(s.timeout); err != nil {
		return smtpError(ctx, "connect", err)
	}
	if err := sc.Mail(from); err != nil {
		return smtpError(ctx, "MAIL FROM", err)
	}
	if err := sc.Rcpt(to); err != nil {
		return smtpError(ctx, "RCPT TO", err)
	}
	w, err := sc.Data()
	if err != nil {
		return smtpError(ctx, "DATA", err)
	}
	if _, err := w.Write(raw); err != nil {
		return smtpError(ctx, "DATA", err)
	}
	if err := w.Close(); err != nil {
		return smtpError(ctx, "DATA", err)
	}
	// The server has the message: a failed QUIT must not make the caller
	// send it again.
	if sc.Quit() != nil {
		sc.Close()
	}
	return nil
}

// options are the go-mail client options for one delivery.
func (s *SMTP) options(dial gomail.DialContextFunc) []gomail.Option {
	opts := []gomail.Option{
		gomail.WithDialContextFunc(dial),
		gomail.WithHELO(s.localName),
		gomail.WithTimeout(s.timeout),
		gomail.WithTLSConfig(s.tls),
	}
	switch {
	case s.implicitTLS:
		opts = append(opts, gomail.WithSSL())
	case s.startTLS:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	default:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	}
	if s.auth {
		plain, login := gomail.SMTPAuthPlain, gomail.SMTPAuthLogin
		if !s.implicitTLS && !s.startTLS {
			// Cleartext is only allowed to loopback (checkCleartextAuth);
			// go-mail's own check knows fewer loopback names.
			plain, login = gomail.SMTPAuthPlainNoEnc, gomail.SMTPAuthLoginNoEnc
		}
		opts = append(opts,
			gomail.WithUsername(s.user), gomail.WithPassword(s.pass),
			gomail.WithOpportunisticSMTPAuth(plain, login))
	}
	return opts
}

// render builds the message's bytes with go-mail and returns them with the
// envelope's sender and recipient ("<address>").
func (s *SMTP) render(m Message) (raw []byte, from, to string, err error) {
	if a, err := mail.ParseAddress(m.To); err != nil || a.Name != "" || a.Address != m.To {
		return nil, "", "", fmt.Errorf("courier: recipient %q is not a bare email address", m.To)
	}
	if strings.ContainsAny(m.Subject, "\r\n") {
		return nil, "", "", errors.New("courier: subject contains a line break")
	}
	if m.Text == "" {
		return nil, "", "", errors.New("courier: message has no text")
	}
	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	if s.fromName != "" {
		err = msg.FromFormat(s.fromName, s.from)
	} else {
		err = msg.From(s.from)
	}
	if err == nil {
		err = msg.To(m.To)
	}
	if err != nil {
		return nil, "", "", fmt.Errorf("courier: %w", err)
	}
	msg.Subject(m.Subject)
	msg.SetDate()
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	if m.HTML != "" {
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	}
	var buf bytes.Buffer
	if _, err := msg.WriteTo(&buf); err != nil {
		clear(buf.Bytes())
		return nil, "", "", fmt.Errorf("courier: %w", err)
	}
	from, err = msg.GetSender(false)
	if err != nil {
		return nil, "", "", fmt.Errorf("courier: %w", err)
	}
	rcpts, err := msg.GetRecipients()
	if err != nil {
		return nil, "", "", fmt.Errorf("courier: %w", err)
	}
	return withoutHeader(buf.Bytes(), "Message-ID"), from, rcpts[0], nil
}

// withoutHeader removes every field named name (and its continuation
// lines) from the header of the CRLF message raw, in place. go-mail always
// writes a Message-ID (built from the host name); Kratos sends none.
func withoutHeader(raw []byte, name string) []byte {
	end := bytes.Index(raw, []byte("\r\n\r\n"))
	if end < 0 {
		return raw
	}
	header, body := raw[:end+2], raw[end+2:]
	out := raw[:0]
	dropping := false
	for len(header) > 0 {
		i := bytes.Index(header, []byte("\r\n"))
		line := header[:i+2]
		header = header[i+2:]
		if line[0] != ' ' && line[0] != '\t' {
			colon := bytes.IndexByte(line, ':')
			dropping = colon > 0 && strings.EqualFold(string(line[:colon]), name)
		}
		if !dropping {
			out = append(out, line...)
		}
	}
	out = append(out, body...) // in place: out never runs ahead of body
	clear(raw[len(out):])
	return out
}

// smtpError names the step that failed and, when ctx ended, says so.
func smtpError(ctx context.Context, step string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("courier: smtp %s: %w (%w)", step, ctxErr, err)
	}
	return fmt.Errorf("courier: smtp %s: %w", step, err)
}
