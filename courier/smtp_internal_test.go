package courier

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// smtpURL is what a connection URI says, as NewSMTP reads it.
type smtpURL struct {
	Addr        string
	ImplicitTLS bool
	StartTLS    bool
	ServerName  string
	SkipVerify  bool
	User, Pass  string
}

func TestParseSMTPURL(t *testing.T) {
	for _, tc := range []struct {
		url  string
		want smtpURL
	}{
		{"smtp://mail.example.com", smtpURL{Addr: "mail.example.com:25", StartTLS: true, ServerName: "mail.example.com"}},
		{"smtp://mail.example.com:587/", smtpURL{Addr: "mail.example.com:587", StartTLS: true, ServerName: "mail.example.com"}},
		{"smtp://127.0.0.1:4825/?disable_starttls=true", smtpURL{Addr: "127.0.0.1:4825", ServerName: "127.0.0.1"}},
		{"smtp://mail.example.com/?disable_starttls=false", smtpURL{Addr: "mail.example.com:25", StartTLS: true, ServerName: "mail.example.com"}},
		{"smtps://mail.example.com", smtpURL{Addr: "mail.example.com:465", ImplicitTLS: true, ServerName: "mail.example.com"}},
		{"smtps://mail.example.com:2465/?disable_starttls=true", smtpURL{Addr: "mail.example.com:2465", ImplicitTLS: true, ServerName: "mail.example.com"}},
		{"smtps://10.0.0.5/?server_name=mail.example.com&skip_ssl_verify=true",
			smtpURL{Addr: "10.0.0.5:465", ImplicitTLS: true, ServerName: "mail.example.com", SkipVerify: true}},
		{"smtp://[2001:db8::1]:2525", smtpURL{Addr: "[2001:db8::1]:2525", StartTLS: true, ServerName: "2001:db8::1"}},
		{"smtp://user:p%40ss%3Aw@mail.example.com", smtpURL{Addr: "mail.example.com:25", StartTLS: true, ServerName: "mail.example.com", User: "user", Pass: "p@ss:w"}},
		{"smtps://user:secret@mail.example.com", smtpURL{Addr: "mail.example.com:465", ImplicitTLS: true, ServerName: "mail.example.com", User: "user", Pass: "secret"}},
		{"smtp://user:secret@localhost:25/?disable_starttls=true", smtpURL{Addr: "localhost:25", ServerName: "localhost", User: "user", Pass: "secret"}},
		{"smtp://user:secret@127.0.0.2/?disable_starttls=true", smtpURL{Addr: "127.0.0.2:25", ServerName: "127.0.0.2", User: "user", Pass: "secret"}},
		{"smtp://user:secret@[::1]:25/?disable_starttls=true", smtpURL{Addr: "[::1]:25", ServerName: "::1", User: "user", Pass: "secret"}},
	} {
		t.Run(tc.url, func(t *testing.T) {
			s, err := parseSMTPURL(tc.url)
			require.NoError(t, err)
			assert.Equal(t, tc.want, smtpURL{
				Addr: s.addr, ImplicitTLS: s.implicitTLS, StartTLS: s.startTLS,
				ServerName: s.tls.ServerName, SkipVerify: s.tls.InsecureSkipVerify,
				User: s.user, Pass: s.pass,
			})
			assert.Equal(t, tc.want.User != "", s.auth)
		})
	}
}

func TestParseSMTPURLRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, url, wantErr string
	}{
		{"empty", "", "required"},
		{"other scheme", "http://mail.example.com", "scheme"},
		{"no scheme", "mail.example.com:25", "scheme"},
		{"no host", "smtp://", "no host"},
		{"no host but a port", "smtp://:25", "no host"},
		{"opaque", "smtp:mail.example.com", "no host"},
		{"port zero", "smtp://mail.example.com:0", "port"},
		{"port too large", "smtp://mail.example.com:65536", "port"},
		{"port not a number", "smtp://mail.example.com:smtp", "invalid"},
		{"path", "smtp://mail.example.com/relay", "path"},
		{"fragment", "smtp://mail.example.com/#x", "fragment"},
		{"unknown parameter", "smtp://mail.example.com/?legacy_ssl=true", "unknown SMTP URL parameter"},
		{"misspelt parameter", "smtp://mail.example.com/?disable_startls=true", "unknown SMTP URL parameter"},
		{"parameter not a boolean", "smtp://mail.example.com/?disable_starttls=yes please", "invalid"},
		{"skip_ssl_verify not a boolean", "smtp://mail.example.com/?skip_ssl_verify=sure", "invalid"},
		{"empty server_name", "smtp://mail.example.com/?server_name=", "invalid"},
		{"repeated parameter", "smtp://mail.example.com/?disable_starttls=true&disable_starttls=false", "repeated"},
		{"bad query", "smtp://mail.example.com/?a=%zz", "query"},
		{"password in cleartext", "smtp://user:hunter2@mail.example.com/?disable_starttls=true", "cleartext"},
		{"password in cleartext to a LAN address", "smtp://user:hunter2@10.0.0.5/?disable_starttls=true", "cleartext"},
		{"bad escape next to a password", "smtp://user:hunter2@mail.example.com:25%zz", "invalid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseSMTPURL(tc.url)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.wantErr)
			assert.NotContains(t, err.Error(), "hunter2", "errors never repeat the password")
		})
	}
}

func TestNewSMTPDefaults(t *testing.T) {
	s, err := NewSMTP(SMTPConfig{URL: "smtp://mail.example.com", From: "no-reply@example.com"})
	require.NoError(t, err)
	assert.Equal(t, "localhost", s.localName, "EHLO name, as Kratos")
	assert.Equal(t, DefaultSMTPTimeout, s.timeout)
	assert.Equal(t, "mail.example.com", s.tls.ServerName)
	assert.False(t, s.tls.InsecureSkipVerify)
	assert.Equal(t, uint16(0x0303), s.tls.MinVersion, "TLS 1.2 or later")
}

func TestWithoutHeader(t *testing.T) {
	raw := []byte("Date: x\r\nMessage-ID: <a@b>\r\nmessage-id: <c\r\n @d>\r\nSubject: s\r\n\r\nMessage-ID: body\r\n")
	assert.Equal(t, "Date: x\r\nSubject: s\r\n\r\nMessage-ID: body\r\n", string(withoutHeader(raw, "Message-ID")))
}
