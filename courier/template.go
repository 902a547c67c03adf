package courier

import (
	"encoding/json"
	"errors"
	htmltemplate "html/template"
	"strings"
	texttemplate "text/template"
)

// LoginCodeData is what the login-code templates see. Besides its fields,
// templates may use {{.LoginCode}}, the name Kratos' templates use for Code.
type LoginCodeData struct {
	// To is the recipient's address. Required.
	To string
	// Code is the one-time login code. Required.
	Code string
	// ExpiresInMinutes is the code's lifespan in whole minutes, truncated:
	// int(lifespan / time.Minute).
	ExpiresInMinutes int
	// RequestURL is the URL of the request that asked for the code.
	RequestURL string
	// TransientPayload is the transient_payload of that request, as sent.
	TransientPayload json.RawMessage
}

// LoginCode returns d.Code, for templates written for Kratos
// ({{ .LoginCode }}).
func (d LoginCodeData) LoginCode() string { return d.Code }

// Templates render the login-code email. A zero field uses the default,
// Kratos' message (CONTRACT-CODE §6):
//
//	Subject: Use code {{.Code}} to log in
//
//	Login to your account with the following code:
//
//	{{.Code}}
//
//	It expires in {{.ExpiresInMinutes}} minutes.
//
// The default HTML body holds the same three paragraphs in minimal markup.
// Subject and Text are text/template templates, HTML an html/template one
// (so the data is escaped); each is executed with a [LoginCodeData]. A
// Templates value is safe for concurrent use once its templates are parsed.
type Templates struct {
	// Subject renders the subject line.
	Subject *texttemplate.Template
	// Text renders the text/plain body.
	Text *texttemplate.Template
	// HTML renders the text/html body.
	HTML *htmltemplate.Template
}

// The default templates: parsed once, never modified.
var (
	defaultSubject = texttemplate.Must(texttemplate.New("subject").Parse(
		"Use code {{.Code}} to log in"))
	defaultText = texttemplate.Must(texttemplate.New("text").Parse(
		"Login to your account with the following code:\n\n{{.Code}}\n\nIt expires in {{.ExpiresInMinutes}} minutes.\n"))
	defaultHTML = htmltemplate.Must(htmltemplate.New("html").Parse(
		"Login to your account with the following code:\n\n{{.Code}}\n\nIt expires in {{.ExpiresInMinutes}} minutes.\n"))
)

// LoginCode renders the login-code message for d. The rendered subject is
// trimmed of surrounding white space (template files often end in a line
// break); LoginCode returns an error when it still contains a line break,
// when d.To or d.Code is empty, or when a template fails.
func (t Templates) LoginCode(d LoginCodeData) (Message, error) {
	if d.To == "" || d.Code == "" {
		return Message{}, errors.New("courier: login code data needs To and Code")
	}
	subject, text, html := t.Subject, t.Text, t.HTML
	if subject == nil {
		subject = defaultSubject
	}
	if text == nil {
		text = defaultText
	}
	if html == nil {
		html = defaultHTML
	}
	var b strings.Builder
	if err := subject.Execute(&b, d); err != nil {
		return Message{}, err
	}
	m := Message{To: d.To, Subject: strings.TrimSpace(b.String())}
	if strings.ContainsAny(m.Subject, "\r\n") {
		return Message{}, errors.New("courier: login code subject spans several lines")
	}
	b.Reset()
	if err := text.Execute(&b, d); err != nil {
		return Message{}, err
	}
	m.Text = b.String()
	b.Reset()
	if err := html.Execute(&b, d); err != nil {
		return Message{}, err
	}
	m.HTML = b.String()
	return m, nil
}
