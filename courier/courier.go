// Package courier delivers the login flow's email: a [Courier] delivers one
// [Message], [SMTP] is the Courier for an SMTP server addressed by Kratos'
// connection URI, [Queue] delivers in the background so that no request waits
// on mail, and [Capture] records messages for tests. [Templates] renders the
// login-code email.
//
//	smtp, err := courier.NewSMTP(courier.SMTPConfig{
//		URL:      "smtps://user:secret@mail.example.com",
//		From:     "no-reply@example.com",
//		FromName: "Example",
//	})
//	if err != nil {
//		return err
//	}
//	q := courier.NewQueue(smtp, courier.QueueConfig{Logger: logger})
//	defer q.Close(ctx)
//
//	m, err := courier.Templates{}.LoginCode(courier.LoginCodeData{
//		To: "ada@example.com", Code: "123456", ExpiresInMinutes: 15,
//	})
//	err = q.Enqueue(m) // returns at once; ErrQueueFull when the queue is full
//
// Host test suites plug a [Capture] in place of the SMTP courier and read the
// code with [Capture.Wait].
//
// # Security
//
// A message carries a login code in clear, so the package handles it as a
// secret. The queue holds a message only until it is delivered or dropped and
// then clears its record, so neither the queue nor its retry timers keep a
// reference to the code (the bytes themselves are reclaimed by the garbage
// collector: Go strings cannot be wiped in place). Subjects and bodies are
// never logged nor passed to hooks: failures report the recipient, the
// attempt and the error. A message older than [QueueConfig.MaxAge] is dropped
// rather than retried, as its code has expired.
//
// [SMTP] uses STARTTLS unless the URI disables it, fails when the server does
// not offer it, verifies certificates unless skip_ssl_verify=true, and refuses
// to send credentials over a cleartext connection except to a loopback host.
// Its errors never contain the URI's password.
package courier

import "context"

// Message is one email. It holds the login code in clear: do not log it.
type Message struct {
	// To is the recipient's address, without display name
	// ("ada@example.com").
	To string
	// Subject is the subject line; it may not contain line breaks.
	Subject string
	// Text is the text/plain body. Required.
	Text string
	// HTML is the text/html body, sent as an alternative to Text; "" sends
	// Text alone.
	HTML string
}

// Courier delivers one message. Deliver blocks until the server accepted the
// message or the delivery failed, and gives up when ctx ends. Implementations
// must be safe for concurrent use: a [Queue] calls Deliver from several
// workers.
type Courier interface {
	Deliver(ctx context.Context, m Message) error
}
