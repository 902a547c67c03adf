package courier_test

import (
	htmltemplate "html/template"
	"testing"
	texttemplate "text/template"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/courier"
)

func TestLoginCodeDefaults(t *testing.T) {
	m, err := courier.Templates{}.LoginCode(courier.LoginCodeData{
		To: "ada@example.com", Code: "042137", ExpiresInMinutes: 15,
		RequestURL: "https://example.com/self-service/login?flow=x",
	})
	require.NoError(t, err)
	assert.Equal(t, courier.Message{
		To:      "ada@example.com",
		Subject: "Use code 042137 to log in",
		Text:    "Login to your account with the following code:\n\n042137\n\nIt expires in 15 minutes.\n",
		HTML:    "Login to your account with the following code:\n\n042137\n\nIt expires in 15 minutes.\n",
	}, m)
}

func TestLoginCodeOverrides(t *testing.T) {
	tmpl := courier.Templates{
		// Kratos' names work: {{ .LoginCode }}, and a file's final line break is trimmed.
		Subject: texttemplate.Must(texttemplate.New("s").Parse("Your code: {{ .LoginCode }}\n")),
		Text:    texttemplate.Must(texttemplate.New("t").Parse("{{.Code}} for {{.To}} from {{.RequestURL}} {{printf \"%s\" .TransientPayload}}")),
		HTML:    htmltemplate.Must(htmltemplate.New("h").Parse("<b>{{.Code}}</b>")),
	}
	m, err := tmpl.LoginCode(courier.LoginCodeData{
		To: "ada@example.com", Code: "<1&2>", ExpiresInMinutes: 5,
		RequestURL: "https://example.com/x", TransientPayload: []byte(`{"lang":"de"}`),
	})
	require.NoError(t, err)
	assert.Equal(t, "Your code: <1&2>", m.Subject)
	assert.Equal(t, `<1&2> for ada@example.com from https://example.com/x {"lang":"de"}`, m.Text)
	assert.Equal(t, "<b>&lt;1&amp;2&gt;</b>", m.HTML, "html/template escapes")

	onlyText := courier.Templates{Text: texttemplate.Must(texttemplate.New("t").Parse("code {{.Code}}"))}
	m, err = onlyText.LoginCode(courier.LoginCodeData{To: "ada@example.com", Code: "1", ExpiresInMinutes: 1})
	require.NoError(t, err)
	assert.Equal(t, "code 1", m.Text)
	assert.Equal(t, "Use code 1 to log in", m.Subject, "zero fields keep the defaults")
}

func TestLoginCodeRefuses(t *testing.T) {
	data := courier.LoginCodeData{To: "ada@example.com", Code: "123456", ExpiresInMinutes: 15}
	for name, tc := range map[string]struct {
		tmpl courier.Templates
		data courier.LoginCodeData
	}{
		"no recipient": {data: courier.LoginCodeData{Code: "1"}},
		"no code":      {data: courier.LoginCodeData{To: "ada@example.com"}},
		"subject on two lines": {
			tmpl: courier.Templates{Subject: texttemplate.Must(texttemplate.New("s").Parse("a\nBcc: eve@example.com"))},
			data: data,
		},
		"failing template": {
			tmpl: courier.Templates{Text: texttemplate.Must(texttemplate.New("t").Parse("{{.Missing}}"))},
			data: data,
		},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := tc.tmpl.LoginCode(tc.data)
			assert.Error(t, err)
		})
	}
}
