package totp_test

import (
	"bytes"
	"encoding/base32"
	"encoding/json"
	"errors"
	"image/png"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/login/totp"
	"github.com/authflow/authflow/session"
)

func newMethod(t testing.TB, issuer string, now time.Time) *totp.Method {
	t.Helper()
	m, err := totp.New(totp.Config{Issuer: issuer, Now: func() time.Time { return now }})
	require.NoError(t, err)
	return m
}

func TestNew(t *testing.T) {
	_, err := totp.New(totp.Config{})
	assert.NoError(t, err, "the issuer is needed by NewKey only")
	_, err = totp.New(totp.Config{Issuer: "Ex:ample"})
	assert.ErrorContains(t, err, "colon")
}

// NewKey makes a key as Kratos does: 160 random bits, base32 without
// padding, in a key URI with SHA1, 6 digits and 30 seconds.
func TestNewKey(t *testing.T) {
	m := newMethod(t, "Example", start)
	k, err := m.NewKey("jane@example.com")
	require.NoError(t, err)
	require.Len(t, k.Secret, 32)
	raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(k.Secret)
	require.NoError(t, err)
	assert.Len(t, raw, 20)
	assert.Equal(t, "otpauth://totp/Example:jane@example.com?algorithm=SHA1&digits=6&issuer=Example&period=30&secret="+k.Secret, k.URL)

	other, err := m.NewKey("jane@example.com")
	require.NoError(t, err)
	assert.NotEqual(t, k.Secret, other.Secret, "every key has its own secret")

	for _, name := range []string{"", "a:b"} {
		_, err := m.NewKey(name)
		assert.Error(t, err, "account name %q", name)
	}
	_, err = newMethod(t, "", start).NewKey("jane@example.com")
	assert.ErrorContains(t, err, "Issuer")
}

func TestKeyPNG(t *testing.T) {
	k, err := newMethod(t, "Example", start).NewKey("jane@example.com")
	require.NoError(t, err)
	for _, size := range []int{256, 512} {
		b, err := k.PNG(size)
		require.NoError(t, err)
		img, err := png.Decode(bytes.NewReader(b))
		require.NoError(t, err)
		assert.Equal(t, size, img.Bounds().Dx())
		assert.Equal(t, size, img.Bounds().Dy())
	}
	for _, size := range []int{0, -1, 10} {
		_, err := k.PNG(size)
		assert.Error(t, err, "size %d is too small for the code", size)
	}
}

// The first code must verify; its step is recorded as used.
func TestNewCredential(t *testing.T) {
	m := newMethod(t, "Example", start)
	k, err := m.NewKey("jane@example.com")
	require.NoError(t, err)

	rows := []struct {
		name     string
		code     string
		wantStep uint64
	}{
		{"current step", codeAt(t, k.Secret, start), step(start)},
		{"previous step", codeAt(t, k.Secret, start.Add(-30*time.Second)), step(start) - 1},
		{"next step", codeAt(t, k.Secret, start.Add(30*time.Second)), step(start) + 1},
		{"surrounding white space", " " + codeAt(t, k.Secret, start) + "\n", step(start)},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			cred, err := m.NewCredential("identity-1", k, row.code)
			require.NoError(t, err)
			assert.Equal(t, session.CredentialTOTP, cred.Type)
			assert.Equal(t, []string{"identity-1"}, cred.Identifiers)
			want, _ := json.Marshal(map[string]any{"totp_url": k.URL, "last_step": row.wantStep})
			assert.JSONEq(t, string(want), string(cred.Config))
		})
	}

	for _, code := range []string{codeAt(t, k.Secret, start.Add(-60*time.Second)), "abcdef", "", codeAt(t, k.Secret, start) + "1"} {
		_, err := m.NewCredential("identity-1", k, code)
		assert.ErrorIs(t, err, totp.ErrInvalidCode, "code %q", code)
	}
	good := codeAt(t, k.Secret, start)
	_, err = m.NewCredential("", k, good)
	assert.Error(t, err)
	_, err = m.NewCredential("identity-1", nil, good)
	assert.Error(t, err)
	_, err = m.NewCredential("identity-1", &totp.Key{Secret: testSecret, URL: k.URL}, good)
	assert.ErrorContains(t, err, "differs", "a Key whose two halves disagree")
}

// ImportKratos reads Kratos' credential config; keys the method cannot
// verify are refused with a reason.
func TestImportKratos(t *testing.T) {
	cred, err := totp.ImportKratos("identity-1", json.RawMessage(`{"totp_url":"`+testURL+`"}`))
	require.NoError(t, err)
	assert.Equal(t, session.CredentialTOTP, cred.Type)
	assert.Equal(t, []string{"identity-1"}, cred.Identifiers)
	assert.JSONEq(t, `{"totp_url":"`+testURL+`"}`, string(cred.Config), "nothing used yet; Kratos' key kept")

	accepted := []string{
		`{"totp_url":"otpauth://totp/Example:jane?secret=` + testSecret + `"}`,                                // the URI's defaults
		`{"totp_url":"otpauth://totp/jane?secret=` + strings.ToLower(testSecret) + `&algorithm=sha1"}`,        // case
		`{"totp_url":"otpauth://totp/Example:jane?secret=JBSWY3DPEHPK3PXP&issuer=Example","other":"ignored"}`, // 80-bit secrets of old apps
	}
	for _, c := range accepted {
		_, err := totp.ImportKratos("identity-1", json.RawMessage(c))
		assert.NoError(t, err, c)
	}

	refused := []struct {
		config string
		reason string
	}{
		{`not json`, "Kratos config"},
		{`{}`, "missing"},
		{`{"totp_url":""}`, "missing"},
		{`{"totp_url":"%zz"}`, "parse"},
		{`{"totp_url":"https://example.com/?secret=` + testSecret + `"}`, "otpauth://totp/"},
		{`{"totp_url":"otpauth://hotp/Example:jane?secret=` + testSecret + `&counter=1"}`, "otpauth://totp/"},
		{`{"totp_url":"otpauth://totp/Example:jane?issuer=Example"}`, "no secret"},
		{`{"totp_url":"otpauth://totp/Example:jane?secret=not-base32!"}`, "base32"},
		{`{"totp_url":"otpauth://totp/Example:jane?algorithm=SHA256&secret=` + testSecret + `"}`, "algorithm"},
		{`{"totp_url":"otpauth://totp/Example:jane?digits=8&secret=` + testSecret + `"}`, "digits"},
		{`{"totp_url":"otpauth://totp/Example:jane?period=60&secret=` + testSecret + `"}`, "period"},
	}
	for _, row := range refused {
		_, err := totp.ImportKratos("identity-1", json.RawMessage(row.config))
		assert.ErrorContains(t, err, row.reason, row.config)
	}
	_, err = totp.ImportKratos("", json.RawMessage(`{"totp_url":"`+testURL+`"}`))
	assert.Error(t, err)
	assert.False(t, errors.Is(err, totp.ErrInvalidCode))
}
