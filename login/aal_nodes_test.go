package login_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/login/lookup"
	"github.com/authflow/authflow/login/totp"
)

// A step-up flow offering both second factors lists csrf_token, then the
// totp group (field, button), then the lookup_secret group (field, button),
// as Kratos (CONTRACT-AAL §4): a method's button closes its own group.
func TestStepUpNodeOrder(t *testing.T) {
	tm, err := totp.New(totp.Config{Issuer: "Example"})
	require.NoError(t, err)
	lm, err := lookup.New(lookup.Config{})
	require.NoError(t, err)
	e := newEnv(t, func(c *login.Config) { c.Methods = []login.Method{tm, lm} })
	ctx := context.Background()
	tc, err := totp.ImportKratos(e.identity.ID, json.RawMessage(`{"totp_url":"otpauth://totp/Example:alice?algorithm=SHA1&digits=6&issuer=Example&period=30&secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"}`))
	require.NoError(t, err)
	require.NoError(t, e.identities.UpdateCredential(ctx, e.identity.ID, &tc))
	lc, err := lookup.NewCredential(e.identity.ID, []string{"abcd1234"})
	require.NoError(t, err)
	require.NoError(t, e.identities.UpdateCredential(ctx, e.identity.ID, &lc))

	token := e.passwordAPI()["session_token"].(string)
	f := e.stepUpAPI(token)
	var got []string
	for _, n := range f.UI.Nodes {
		got = append(got, n.Group+"/"+n.Attributes.Name)
	}
	assert.Equal(t, []string{"default/csrf_token", "totp/totp_code", "totp/method", "lookup_secret/lookup_secret", "lookup_secret/method"}, got)

	r := e.submitJSON(e.api(), f.ID, map[string]any{"method": "totp", "totp_code": "000000"}, map[string]string{"X-Session-Token": token})
	require.Equal(t, http.StatusBadRequest, r.status)
	var raw struct {
		UI struct {
			Nodes []struct {
				Attributes map[string]any `json:"attributes"`
			} `json:"nodes"`
		} `json:"ui"`
	}
	require.NoError(t, json.Unmarshal(r.body, &raw))
	for _, n := range raw.UI.Nodes {
		if n.Attributes["name"] == "totp_code" {
			assert.NotContains(t, n.Attributes, "value", "after a failed submit the code's node has no value (§4)")
		}
	}
}
