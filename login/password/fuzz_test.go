package password_test

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/login/password"
)

// fuzzMaxPassword bounds the password FuzzCompare hashes: sha-crypt's work
// grows with rounds × password length, and the fuzzer's long inputs would
// only make it slower, not find more.
const fuzzMaxPassword = 128

// fuzzTooCostly reports whether encoded is a well-formed-looking hash whose
// cost parameters are inside the package's bounds (so Compare would really
// compute it) but above what a fuzzer can afford per execution: argon2 with
// m×t > 4096 KiB-passes, bcrypt cost > 6, PBKDF2 with more than 20000
// iterations × output blocks, scrypt with N×r×p > 16384, sha-crypt with more
// than 20000 rounds. These values are far below the package's bounds (and
// below the brief's suggested cut-offs, bcrypt 10 and sha-crypt 100000) so
// that the fuzzer stays at thousands of executions per second; parameters
// above the package's bounds are NOT skipped, as Compare refuses them
// before hashing (ErrParameters) and they are worth fuzzing.
//
// The check is deliberately crude and over-approximating: it takes, for
// each key (m, t, p, i, ln, r, rounds), the largest number found in any
// "key=number" item of any "$"-separated field.
func fuzzTooCostly(encoded string) bool {
	params := map[string]uint64{}
	for _, field := range strings.Split(encoded, "$") {
		for _, kv := range strings.Split(field, ",") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				continue
			}
			n, err := strconv.ParseUint(v, 10, 64)
			switch {
			case errors.Is(err, strconv.ErrRange):
				n = math.MaxUint64
			case err != nil:
				// crypt's rounds are read with strconv.Atoi, which
				// accepts a sign.
				i, err := strconv.Atoi(v)
				if err != nil || i <= 0 {
					continue
				}
				n = uint64(i)
			}
			params[k] = max(params[k], n)
		}
	}
	switch {
	case strings.HasPrefix(encoded, "$argon2"):
		m, t := params["m"], params["t"]
		return m <= 1<<20 && t <= 10 && m*t > 4096
	case strings.HasPrefix(encoded, "$2"):
		digits := strings.TrimLeft(encoded[2:], "abyz")
		digits = strings.TrimPrefix(digits, "$")
		cost, err := strconv.Atoi(digits[:min(2, len(digits))])
		return err == nil && cost > 6 && cost <= 15
	case strings.HasPrefix(encoded, "$pbkdf2-"):
		i := params["i"]
		blocks := uint64(len(encoded)/20 + 1)
		return i <= 10_000_000 && i*blocks > 20_000
	case strings.HasPrefix(encoded, "$scrypt$"):
		n, r, p := params["ln"], params["r"], params["p"]
		return n <= 1<<17 && r <= 8 && p <= 10 && n*r*p > 16384
	case strings.HasPrefix(encoded, "$sha256-crypt$"), strings.HasPrefix(encoded, "$sha512-crypt$"):
		rounds := params["rounds"]
		return rounds > 20_000 && rounds <= 1_000_000
	}
	return false
}

// FuzzCompare: Compare never panics; its errors are ErrMismatch,
// ErrUnknownFormat or ErrParameters; a value without a known prefix is
// ErrUnknownFormat; a done context is refused before hashing; the
// known-answer vectors match their password; and whatever matches pw does
// not also match a different password (a hash must bind the password).
func FuzzCompare(f *testing.F) {
	vectors := map[string]bool{}
	for _, v := range legacyVectors {
		vectors[v.encoded] = true
		f.Add([]byte(knownPassword), v.encoded)
		f.Add([]byte("correct horsE"), v.encoded)
	}
	for _, s := range []string{
		"", "$", "$$$$", "{SSHA}", "{SSHA256}=", "{SSHA512}AAAA", "$md5$", "$md5$$", "$md5$pf=$$",
		"$sha1$pf=$$", "$sha256$pf=e1BBU1NXT1JEfQ$$", "$hmac-sha256$$", "$hmac-md4$YQ==$",
		"$hmac-sha999$$", "$firescrypt$ln=14,r=8,p=1$c2FsdA$aGFzaA$Bw==$a2V5",
		"$argon2id$v=19$m=99999999999999999999999,t=1,p=1$c2FsdHNhbHQ$aGFzaA",
		"$argon2id$v=19$m=1024,t=0,p=1$c2FsdHNhbHQ$aGFzaA",
		"$argon2id$v=19$m=1024,t=1,p=0$c2FsdHNhbHQ$aGFzaA",
		"$argon2id$v=19$m=1024,t=1,p=255$c2FsdHNhbHQ$aGFzaA",
		"$argon2id$v=19$m=8,t=1,p=16$$aGFzaA",
		"$argon2id$v=16$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaA",
		"$argon2i$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$",
		"$argon2id$v=19$t=1,m=1024,p=1$c2FsdHNhbHQ$aGFzaA",
		"$2a$99$ABCDEFGHIJKLMNOPQRSTUu6C6jEMz4jEJoFRTrM10b9xHpc.SH9E6",
		"$2a$03$ABCDEFGHIJKLMNOPQRSTUu6C6jEMz4jEJoFRTrM10b9xHpc.SH9E6",
		"$2a$04$", "$2$04$ABCDEFGHIJKLMNOPQRSTUu6C6jEMz4jEJoFRTrM10b9xHpc.SH9E6", "$2x$04$", "$2a",
		"$pbkdf2-sha256$i=0,l=32$c2FsdA$aGFzaA", "$pbkdf2-sha256$i=99999999999999999999,l=32$c2FsdA$aGFzaA",
		"$pbkdf2-sha256$i=1,l=32$c2FsdA$", "$pbkdf2-sha1234$i=1,l=1$$AA", "$pbkdf2-sha$i=1,l=1$$AA",
		"$scrypt$ln=3,r=1,p=1$c2FsdA==$aGFzaA==", "$scrypt$ln=0,r=1,p=1$$AA", "$scrypt$ln=262144,r=8,p=1$$AA",
		"$scrypt$ln=1024,r=0,p=1$$AA", "$scrypt$ln=1024,r=8,p=99$$AA",
		"$sha512-crypt$rounds=99999999999999999999$saltSALTsalt$XNDs",
		"$sha512-crypt$rounds=1001000$saltSALTsalt$XNDs", "$sha512-crypt$rounds=-5$s$h",
		"$sha512-crypt$rounds=$s$h", "$sha256-crypt$", "$sha256-crypt$$", "$md5-crypt$", "$md5-crypt$$",
		"$md5-crypt$saltSALT", "$sha512-crypt$" + strings.Repeat("s", 100) + "$h",
	} {
		f.Add([]byte(knownPassword), s)
	}

	f.Fuzz(func(t *testing.T, pw []byte, encoded string) {
		if fuzzTooCostly(encoded) {
			t.Skip("cost parameters too expensive for fuzzing")
		}
		pw = pw[:min(len(pw), fuzzMaxPassword)]
		ctx := context.Background()

		err := password.Compare(ctx, pw, encoded)
		if err != nil {
			require.Truef(t, errors.Is(err, password.ErrMismatch) || errors.Is(err, password.ErrUnknownFormat) ||
				errors.Is(err, password.ErrParameters), "unexpected error %v for %q", err, encoded)
		}
		if !strings.HasPrefix(encoded, "$") && !strings.HasPrefix(encoded, "{SSHA") {
			require.ErrorIs(t, err, password.ErrUnknownFormat)
		}
		if vectors[encoded] && string(pw) == knownPassword {
			require.NoError(t, err, "known-answer vector %q", encoded)
		}
		if err == nil {
			other := append([]byte("x"), pw...)
			require.Errorf(t, password.Compare(ctx, other, encoded),
				"%q matches %q and also %q: the hash does not bind the password", encoded, pw, other)
		}

		canceled, cancel := context.WithCancel(ctx)
		cancel()
		require.ErrorIs(t, password.Compare(canceled, pw, encoded), context.Canceled)
	})
}

// TestCompareHashMustBindPassword: a stored hash must not verify every
// password. The $sha1$/$sha256$/$sha512$/$md5$ formats digest a pattern in
// which {PASSWORD} is replaced by the password; a pattern without that
// placeholder (a typo such as {PASS} in an import, or an empty pattern)
// yields a digest that does not depend on the password at all, and Compare
// then accepts any password for that account. Kratos behaves the same; as
// authflow's Compare documents every error as "invalid credentials", such a
// hash should be refused as malformed (ErrUnknownFormat) instead.
func TestCompareHashMustBindPassword(t *testing.T) {
	b64 := base64.StdEncoding.EncodeToString
	salt := []byte("s4lt")
	saltOnly := sha256.Sum256(salt)
	empty := md5.Sum(nil)
	typo := md5.Sum([]byte("{PASS}s4lt"))
	for _, encoded := range []string{
		"$sha256$pf=" + b64([]byte("{SALT}")) + "$" + b64(salt) + "$" + b64(saltOnly[:]),
		"$md5$pf=$$" + b64(empty[:]),
		"$md5$pf=" + b64([]byte("{PASS}{SALT}")) + "$" + b64(salt) + "$" + b64(typo[:]),
	} {
		t.Run(encoded, func(t *testing.T) {
			for _, pw := range []string{"", "anything", knownPassword} {
				require.Error(t, password.Compare(context.Background(), []byte(pw), encoded),
					"password %q accepted by a hash that ignores the password", pw)
			}
		})
	}
}
