package oidc_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/internal/testhttp"
	"github.com/authflow/authflow/login"
)

// TestUnknownProviderIsQuotedCut: the message naming an unknown provider is
// stored with the flow, so a submitted provider is quoted cut to
// login.MaxEchoedValueLength bytes, however long the body.
func TestUnknownProviderIsQuotedCut(t *testing.T) {
	e := newEnv(t)
	c := browser(t)
	f := e.browserFlow(c, "")
	provider := strings.Repeat("p", 512<<10)
	r := e.submitForm(c, f.ID, url.Values{"provider": {provider}, "csrf_token": {csrfToken(f)}})
	m := onlyMessage(t, e.wantLoginUI(r, f.ID), flow.IDGeneric)
	assert.Contains(t, m.Text, `"`+provider[:login.MaxEchoedValueLength]+`"`)
	assert.Less(t, len(m.Text), login.MaxEchoedValueLength+100)
}

// TestPOSTCallbackTooLong: a POSTed callback whose parameters a GET could
// not carry (over login.MaxURLLength) is answered 414, as JSON, instead of
// a redirect to a URL that would be refused.
func TestPOSTCallbackTooLong(t *testing.T) {
	e := newEnv(t)
	c := browser(t)
	body := url.Values{"state": {"x.y"}, "code": {strings.Repeat("c", login.MaxURLLength)}}.Encode()
	r := testhttp.Do(t, c, http.MethodPost, e.srv.URL+"/self-service/methods/oidc/callback/"+providerID, strings.NewReader(body),
		map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	require.Equal(t, http.StatusRequestURITooLong, r.Status, "body: %s", r.Body)
	assert.Empty(t, r.Location())
	assert.Equal(t, "application/json", r.Header.Get("Content-Type"))
	e2 := r.JSON(t)["error"].(map[string]any)
	assert.EqualValues(t, http.StatusRequestURITooLong, e2["code"])
}
