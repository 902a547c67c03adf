package code_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/courier"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/login/code"
)

// New refuses a configuration it cannot run with.
func TestNewValidation(t *testing.T) {
	capture := courier.NewCapture()
	for _, tc := range []struct {
		name string
		cfg  code.Config
		want string
	}{
		{"no courier", code.Config{}, "Courier"},
		{"negative lifespan", code.Config{Courier: capture, Lifespan: -1}, "Lifespan"},
		{"negative submissions", code.Config{Courier: capture, MaxSubmissions: -1}, "MaxSubmissions"},
		{"short key", code.Config{Courier: capture, HashKey: []byte("short")}, "HashKey"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := code.New(tc.cfg)
			assert.ErrorContains(t, err, tc.want)
		})
	}
	m, err := code.New(code.Config{Courier: capture, HashKey: make([]byte, 32)})
	require.NoError(t, err)
	assert.Equal(t, code.MethodID, m.ID())
	require.NoError(t, m.Close(t.Context()))
}

// Instances that share flows share the key: a code sent by one logs in on
// another with the same HashKey, and fails on one with another key.
func TestHashKeyShared(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	e := newEnv(t, func(s *setup) { s.code.HashKey = key })
	c := e.api()
	f, right := e.sentCode(c, alice)

	for _, tc := range []struct {
		name string
		key  []byte
		want int
	}{
		{"same key", key, 200},
		{"other key", []byte("fedcba9876543210fedcba9876543210"), 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			other, err := code.New(code.Config{Courier: e.mail, HashKey: tc.key, Now: e.clock.Now})
			require.NoError(t, err)
			t.Cleanup(func() { other.Close(t.Context()) })
			h, err := login.New(login.Config{
				PublicURL: e.srv.URL, LoginUIURL: loginUI, ErrorUIURL: errorUI, DefaultReturnURL: defaultReturn,
				FlowStore: e.flows, IdentityStore: e.identities, Methods: []login.Method{other}, Now: e.clock.Now,
				DisableThrottling: true,
			})
			require.NoError(t, err)
			e2 := *e
			e2.h = h
			e2.srv = newServer(t, h)
			r := e2.enter(c, f.ID, alice, right)
			assert.Equal(t, tc.want, r.Status, "body: %s", r.Body)
		})
	}
}

// NewCredential normalises the addresses as the login looks them up and
// refuses anything that is not an email address.
func TestNewCredential(t *testing.T) {
	cred, err := code.NewCredential("  Jane@Example.COM ", "jane@example.com", "ｊａｎｅ@example.org")
	require.NoError(t, err)
	assert.Equal(t, code.CredentialCode, cred.Type)
	assert.Equal(t, []string{"jane@example.com", "jane@example.org"}, cred.Identifiers, "normalised, listed once")
	assert.JSONEq(t, `{"addresses":[{"channel":"email","address":"jane@example.com"},{"channel":"email","address":"jane@example.org"}]}`, string(cred.Config))

	for _, bad := range []string{"", "jane", "Jane <jane@example.com>", "jane@", "@example.com", "jane\u200b@example.com", "a@b@example.com"} {
		_, err := code.NewCredential(bad)
		assert.Error(t, err, "%q", bad)
	}
	_, err = code.NewCredential()
	assert.Error(t, err)
}

// newServer serves h on a new httptest server until the test ends.
func newServer(t testing.TB, h http.Handler) *httptest.Server {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}
