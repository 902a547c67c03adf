package courier_test

import (
	"context"
	"crypto/tls"
	"mime"
	"net/mail"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/courier"
)

// loginCode is the message the code method sends, for a fixed code.
func loginCode(t testing.TB, to, code string) courier.Message {
	t.Helper()
	m, err := courier.Templates{}.LoginCode(courier.LoginCodeData{To: to, Code: code, ExpiresInMinutes: 15})
	require.NoError(t, err)
	return m
}

// newSMTP builds the courier for a test server's URL.
func newSMTP(t testing.TB, url string, edit ...func(*courier.SMTPConfig)) *courier.SMTP {
	t.Helper()
	cfg := courier.SMTPConfig{URL: url, From: "no-reply@example.com", FromName: "Example", Timeout: 10 * time.Second}
	for _, e := range edit {
		e(&cfg)
	}
	s, err := courier.NewSMTP(cfg)
	require.NoError(t, err)
	return s
}

var sixDigits = regexp.MustCompile(`\b\d{6}\b`)

func TestSMTPDeliverCleartext(t *testing.T) {
	srv := startServer(t, serverConfig{})
	s := newSMTP(t, "smtp://127.0.0.1:"+srv.Port+"/?disable_starttls=true")

	require.NoError(t, s.Deliver(t.Context(), loginCode(t, "ada@example.com", "042137")))

	mails := srv.Mails()
	require.Len(t, mails, 1)
	got := mails[0]
	assert.Equal(t, "localhost", got.Helo, "EHLO name, as Kratos")
	assert.Equal(t, "no-reply@example.com", got.From, "MAIL FROM")
	assert.Equal(t, []string{"ada@example.com"}, got.To, "RCPT TO")
	assert.False(t, got.TLS)

	m := parseMail(t, got.Data)
	assert.Equal(t, `"Example" <no-reply@example.com>`, m.Header.Get("From"))
	to, err := m.Header.AddressList("To")
	require.NoError(t, err)
	assert.Equal(t, []*mail.Address{{Address: "ada@example.com"}}, to)
	assert.Equal(t, "Use code 042137 to log in", m.Header.Get("Subject"))
	assert.Equal(t, "1.0", m.Header.Get("MIME-Version"))
	date, err := m.Header.Date()
	require.NoError(t, err)
	assert.WithinDuration(t, time.Now(), date, time.Minute)
	for _, absent := range []string{"Message-ID", "User-Agent", "X-Mailer"} {
		assert.NotContains(t, m.Header, absent, "Kratos sends no %s", absent)
	}
	assert.True(t, strings.HasPrefix(m.Header.Get("Content-Type"), "multipart/alternative;"),
		m.Header.Get("Content-Type"))

	require.Len(t, m.Parts, 2)
	text, html := m.Parts[0], m.Parts[1]
	assert.Equal(t, "text/plain; charset=UTF-8", text.Header.Get("Content-Type"))
	assert.Equal(t, "text/html; charset=UTF-8", html.Header.Get("Content-Type"))
	for _, p := range m.Parts {
		assert.Equal(t, "quoted-printable", p.Header.Get("Content-Transfer-Encoding"))
	}
	assert.Equal(t, "Login to your account with the following code:\n\n042137\n\nIt expires in 15 minutes.\n", text.Body)
	assert.Equal(t, "Login to your account with the following code:\n\n042137\n\nIt expires in 15 minutes.\n", html.Body)

	// What a host's end-to-end test does: read the code from the mail.
	assert.Equal(t, "042137", sixDigits.FindString(text.Body))
}

func TestSMTPDeliverOptions(t *testing.T) {
	srv := startServer(t, serverConfig{})
	s := newSMTP(t, "smtp://localhost:"+srv.Port+"?disable_starttls=true", func(c *courier.SMTPConfig) {
		c.FromName = ""
		c.LocalName = "mail.example.com"
	})
	require.NoError(t, s.Deliver(t.Context(), courier.Message{
		To: "Ada@Example.com", Subject: "Grüße", Text: "Größe: 1 €\n",
	}))

	got := srv.Mails()[0]
	assert.Equal(t, "mail.example.com", got.Helo, "LocalName")
	m := parseMail(t, got.Data)
	from, err := m.Header.AddressList("From")
	require.NoError(t, err)
	assert.Equal(t, []*mail.Address{{Address: "no-reply@example.com"}}, from, "no display name")
	subject, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	require.NoError(t, err)
	assert.Equal(t, "Grüße", subject)
	assert.NotContains(t, m.Header, "Message-Id")
	require.Len(t, m.Parts, 1, "text only without HTML")
	assert.Equal(t, "text/plain; charset=UTF-8", m.Parts[0].Header.Get("Content-Type"))
	assert.Equal(t, "quoted-printable", m.Parts[0].Header.Get("Content-Transfer-Encoding"))
	assert.Equal(t, "Größe: 1 €\n", m.Parts[0].Body)
}

func TestSMTPDeliverRefusesBadMessages(t *testing.T) {
	srv := startServer(t, serverConfig{})
	s := newSMTP(t, "smtp://127.0.0.1:"+srv.Port+"/?disable_starttls=true")
	for name, m := range map[string]courier.Message{
		"no recipient":        {Subject: "s", Text: "t"},
		"recipient with name": {To: "Ada <ada@example.com>", Subject: "s", Text: "t"},
		"two recipients":      {To: "ada@example.com, bob@example.com", Subject: "s", Text: "t"},
		"header injection":    {To: "ada@example.com", Subject: "s\r\nBcc: eve@example.com", Text: "t"},
		"recipient with CRLF": {To: "ada@example.com\r\nRCPT TO:<eve@example.com>", Subject: "s", Text: "t"},
		"no text":             {To: "ada@example.com", Subject: "s", HTML: "<p>h</p>"},
	} {
		t.Run(name, func(t *testing.T) {
			assert.Error(t, s.Deliver(t.Context(), m))
		})
	}
	assert.Empty(t, srv.Mails())
}

func TestSMTPStartTLS(t *testing.T) {
	t.Run("mandatory: refused when the server does not offer it", func(t *testing.T) {
		srv := startServer(t, serverConfig{})
		s := newSMTP(t, "smtp://127.0.0.1:"+srv.Port+"/?skip_ssl_verify=true")
		err := s.Deliver(t.Context(), loginCode(t, "ada@example.com", "111111"))
		require.Error(t, err)
		assert.Contains(t, err.Error(), "STARTTLS")
		assert.Empty(t, srv.Mails(), "nothing sent in cleartext")
	})
	t.Run("used when offered", func(t *testing.T) {
		srv := startServer(t, serverConfig{StartTLS: true})
		s := newSMTP(t, "smtp://127.0.0.1:"+srv.Port+"/?skip_ssl_verify=true")
		require.NoError(t, s.Deliver(t.Context(), loginCode(t, "ada@example.com", "222222")))
		require.Len(t, srv.Mails(), 1)
		assert.True(t, srv.Mails()[0].TLS)
	})
	t.Run("certificate verified by default", func(t *testing.T) {
		srv := startServer(t, serverConfig{StartTLS: true})
		s := newSMTP(t, "smtp://127.0.0.1:"+srv.Port)
		err := s.Deliver(t.Context(), loginCode(t, "ada@example.com", "333333"))
		require.Error(t, err)
		assert.Contains(t, err.Error(), "certificate")
		assert.Empty(t, srv.Mails())
	})
	t.Run("disable_starttls=true stays in cleartext", func(t *testing.T) {
		srv := startServer(t, serverConfig{StartTLS: true})
		s := newSMTP(t, "smtp://127.0.0.1:"+srv.Port+"/?disable_starttls=true")
		require.NoError(t, s.Deliver(t.Context(), loginCode(t, "ada@example.com", "444444")))
		assert.False(t, srv.Mails()[0].TLS)
	})
}

func TestSMTPImplicitTLS(t *testing.T) {
	cert, pool := newCert(t, "mail.test")
	srv := startServer(t, serverConfig{ImplicitTLS: true, Cert: &cert})
	trust := func(c *courier.SMTPConfig) { c.TLSConfig = &tls.Config{RootCAs: pool} }

	t.Run("skip_ssl_verify", func(t *testing.T) {
		s := newSMTP(t, "smtps://127.0.0.1:"+srv.Port+"/?skip_ssl_verify=true")
		require.NoError(t, s.Deliver(t.Context(), loginCode(t, "ada@example.com", "555555")))
	})
	t.Run("server_name verified against a trusted CA", func(t *testing.T) {
		s := newSMTP(t, "smtps://127.0.0.1:"+srv.Port+"/?server_name=mail.test", trust)
		require.NoError(t, s.Deliver(t.Context(), loginCode(t, "ada@example.com", "666666")))
	})
	t.Run("name mismatch refused", func(t *testing.T) {
		s := newSMTP(t, "smtps://127.0.0.1:"+srv.Port, trust)
		err := s.Deliver(t.Context(), loginCode(t, "ada@example.com", "777777"))
		require.Error(t, err)
		assert.Contains(t, err.Error(), "certificate")
	})

	mails := srv.Mails()
	require.Len(t, mails, 2)
	for _, m := range mails {
		assert.True(t, m.TLS)
	}
}

func TestSMTPAuth(t *testing.T) {
	t.Run("PLAIN after STARTTLS", func(t *testing.T) {
		srv := startServer(t, serverConfig{StartTLS: true, User: "courier", Password: "p@ss:word"})
		s := newSMTP(t, "smtp://courier:p%40ss%3Aword@127.0.0.1:"+srv.Port+"/?skip_ssl_verify=true")
		require.NoError(t, s.Deliver(t.Context(), loginCode(t, "ada@example.com", "123456")))
		require.Len(t, srv.Mails(), 1)
		assert.Equal(t, "courier", srv.Mails()[0].User)
		assert.Equal(t, "PLAIN", srv.Mails()[0].Mech)
	})
	t.Run("LOGIN when PLAIN is not offered", func(t *testing.T) {
		srv := startServer(t, serverConfig{StartTLS: true, User: "courier", Password: "secret", Mechanisms: []string{"LOGIN"}})
		s := newSMTP(t, "smtp://courier:secret@127.0.0.1:"+srv.Port+"/?skip_ssl_verify=true")
		require.NoError(t, s.Deliver(t.Context(), loginCode(t, "ada@example.com", "123456")))
		require.Len(t, srv.Mails(), 1)
		assert.Equal(t, "LOGIN", srv.Mails()[0].Mech)
	})
	t.Run("smtps", func(t *testing.T) {
		srv := startServer(t, serverConfig{ImplicitTLS: true, User: "courier", Password: "secret"})
		s := newSMTP(t, "smtps://courier:secret@127.0.0.1:"+srv.Port+"/?skip_ssl_verify=true")
		require.NoError(t, s.Deliver(t.Context(), loginCode(t, "ada@example.com", "123456")))
		assert.Equal(t, "courier", srv.Mails()[0].User)
	})
	t.Run("cleartext to loopback", func(t *testing.T) {
		srv := startServer(t, serverConfig{User: "courier", Password: "secret"})
		s := newSMTP(t, "smtp://courier:secret@127.0.0.1:"+srv.Port+"/?disable_starttls=true")
		require.NoError(t, s.Deliver(t.Context(), loginCode(t, "ada@example.com", "123456")))
		assert.Equal(t, "courier", srv.Mails()[0].User)
	})
	t.Run("wrong password", func(t *testing.T) {
		srv := startServer(t, serverConfig{StartTLS: true, User: "courier", Password: "secret"})
		s := newSMTP(t, "smtp://courier:guess@127.0.0.1:"+srv.Port+"/?skip_ssl_verify=true")
		err := s.Deliver(t.Context(), loginCode(t, "ada@example.com", "123456"))
		require.Error(t, err)
		assert.NotContains(t, err.Error(), "guess", "the password stays out of errors")
		assert.Empty(t, srv.Mails())
	})
	t.Run("server without AUTH", func(t *testing.T) {
		srv := startServer(t, serverConfig{StartTLS: true})
		s := newSMTP(t, "smtp://courier:secret@127.0.0.1:"+srv.Port+"/?skip_ssl_verify=true")
		err := s.Deliver(t.Context(), loginCode(t, "ada@example.com", "123456"))
		require.Error(t, err, "credentials given: no unauthenticated fallback")
		assert.Empty(t, srv.Mails())
	})
}

func TestSMTPDeliverGivesUpWithContext(t *testing.T) {
	hold := make(chan struct{})
	defer close(hold)
	srv := startServer(t, serverConfig{Hold: hold})
	s := newSMTP(t, "smtp://127.0.0.1:"+srv.Port+"/?disable_starttls=true")

	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := s.Deliver(ctx, loginCode(t, "ada@example.com", "123456"))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), 5*time.Second)
}

func TestSMTPDeliverTimeout(t *testing.T) {
	hold := make(chan struct{})
	defer close(hold)
	srv := startServer(t, serverConfig{Hold: hold})
	s := newSMTP(t, "smtp://127.0.0.1:"+srv.Port+"/?disable_starttls=true", func(c *courier.SMTPConfig) {
		c.Timeout = 200 * time.Millisecond
	})
	start := time.Now()
	require.Error(t, s.Deliver(t.Context(), loginCode(t, "ada@example.com", "123456")))
	assert.Less(t, time.Since(start), 5*time.Second)
}

func TestSMTPDeliverRefusedByServer(t *testing.T) {
	srv := startServer(t, serverConfig{Refuse: func(int) error { return tempFailure }})
	s := newSMTP(t, "smtp://127.0.0.1:"+srv.Port+"/?disable_starttls=true")
	err := s.Deliver(t.Context(), loginCode(t, "ada@example.com", "123456"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "451", "the reply code, for the caller's retry decision")
	assert.NotContains(t, err.Error(), "123456")
}

func TestNewSMTPRefusesConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  courier.SMTPConfig
	}{
		{"no URL", courier.SMTPConfig{From: "a@example.com"}},
		{"no From", courier.SMTPConfig{URL: "smtp://localhost"}},
		{"From with a name", courier.SMTPConfig{URL: "smtp://localhost", From: "Ada <a@example.com>"}},
		{"From not an address", courier.SMTPConfig{URL: "smtp://localhost", From: "nobody"}},
		{"FromName with a line break", courier.SMTPConfig{URL: "smtp://localhost", From: "a@example.com", FromName: "A\r\nBcc: x@example.com"}},
		{"LocalName with a space", courier.SMTPConfig{URL: "smtp://localhost", From: "a@example.com", LocalName: "a b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := courier.NewSMTP(tc.cfg)
			assert.Error(t, err)
		})
	}
}
