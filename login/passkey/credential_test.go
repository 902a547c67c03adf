package passkey_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/login/passkey"
	"github.com/authflow/authflow/login/passkey/passkeytest"
	"github.com/authflow/authflow/session"
)

func TestImportKratos(t *testing.T) {
	auth := passkeytest.New()
	k := auth.AddKey(rpID, []byte("handle"))
	cfg := passkeytest.KratosConfig([]byte("handle"), true, false, k)

	c, err := passkey.ImportKratos(passkey.CredentialPasskey, cfg, "ignored")
	require.NoError(t, err)
	assert.Equal(t, passkey.CredentialPasskey, c.Type)
	assert.Equal(t, []string{"handle"}, c.Identifiers, "a passkey is found by its decoded user handle")

	c, err = passkey.ImportKratos(passkey.CredentialWebAuthn, passkeytest.KratosConfig([]byte("handle"), false, false, k), "Alice@Example.com")
	require.NoError(t, err)
	assert.Equal(t, []string{"alice@example.com"}, c.Identifiers, "normalised, as passwordless login looks it up")
	var got passkey.CredentialConfig
	require.NoError(t, json.Unmarshal(c.Config, &got))
	require.Len(t, got.Credentials, 1)
	assert.Equal(t, k.ID, got.Credentials[0].ID)
	assert.False(t, got.Credentials[0].IsPasswordless)

	refused := map[string]struct {
		typ        session.CredentialType
		config     string
		identifier string
	}{
		"not JSON":             {passkey.CredentialPasskey, `{`, ""},
		"no credentials":       {passkey.CredentialPasskey, `{"credentials":[],"user_handle":"aGFuZGxl"}`, ""},
		"no public key":        {passkey.CredentialPasskey, `{"credentials":[{"id":"AQID"}],"user_handle":"aGFuZGxl"}`, ""},
		"repeated id":          {passkey.CredentialPasskey, `{"credentials":[{"id":"AQID","public_key":"AQID"},{"id":"AQID","public_key":"AQID"}],"user_handle":"aGFuZGxl"}`, ""},
		"passkey no handle":    {passkey.CredentialPasskey, `{"credentials":[{"id":"AQID","public_key":"AQID"}]}`, ""},
		"webauthn no identity": {passkey.CredentialWebAuthn, `{"credentials":[{"id":"AQID","public_key":"AQID"}]}`, ""},
		"other type":           {session.CredentialPassword, string(cfg), "x"},
	}
	for name, tc := range refused {
		t.Run(name, func(t *testing.T) {
			_, err := passkey.ImportKratos(tc.typ, json.RawMessage(tc.config), tc.identifier)
			assert.Error(t, err)
		})
	}
}

// Kratos rows written before it recorded flags, and keys enrolled with a
// fido-u2f attestation, still log in (CONTRACT-PASSKEY §4.3, §8).
func TestImportedLegacyKeysLogIn(t *testing.T) {
	e := newEnv(t, options{})
	e.auth.BackupEligible, e.auth.BackupState = true, true
	handle := []byte(strings.Repeat("L", 64))
	k := e.auth.AddKey(rpID, handle)
	cfg := string(passkeytest.KratosConfig(handle, true, true, k))
	i := strings.Index(cfg, `,"flags":`)
	j := strings.Index(cfg[i:], "}") + i + 1
	cfg = cfg[:i] + cfg[j:]
	cfg = strings.Replace(cfg, `"attestation_type":"none"`, `"attestation_type":"packed"`, 1)
	require.NotContains(t, cfg, "flags")
	cred, err := passkey.ImportKratos(passkey.CredentialPasskey, json.RawMessage(cfg), "")
	require.NoError(t, err)
	require.NoError(t, e.identities.UpdateCredential(context.Background(), e.identity.ID, &cred))

	r := e.passkeyLoginAPI()
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	stored := e.storedKey(e.identity.ID, passkey.CredentialPasskey, k.ID)
	require.NotNil(t, stored.Flags, "the login records the flags")
	assert.True(t, stored.Flags.BackupEligible)
	assert.Equal(t, "packed", stored.AttestationType)
}

func TestConfigRefusesBadRelyingParties(t *testing.T) {
	good := passkey.Config{RPID: "example.com", RPDisplayName: "Example", Origins: []string{"https://login.example.com"}}
	_, err := passkey.New(good)
	require.NoError(t, err)
	for name, change := range map[string]func(*passkey.Config){
		"no RP ID":           func(c *passkey.Config) { c.RPID = "" },
		"IP RP ID":           func(c *passkey.Config) { c.RPID = "127.0.0.1" },
		"no name":            func(c *passkey.Config) { c.RPDisplayName = "" },
		"no origin":          func(c *passkey.Config) { c.Origins = nil },
		"origin with path":   func(c *passkey.Config) { c.Origins = []string{"https://login.example.com/x"} },
		"origin elsewhere":   func(c *passkey.Config) { c.Origins = []string{"https://example.org"} },
		"origin suffix only": func(c *passkey.Config) { c.Origins = []string{"https://badexample.com"} },
		"unknown UV":         func(c *passkey.Config) { c.UserVerification = "sometimes" },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := good
			change(&cfg)
			_, err := passkey.New(cfg)
			assert.Error(t, err)
		})
	}
}
