package logintest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"strings"

	"github.com/authflow/authflow/login/password"
)

// FastHasher is a password hasher of negligible cost for tests and
// benchmarks that measure the handler rather than the hash: a salted
// SHA-256 encoded as "$fast$<salt>$<sum>". It verifies every other format
// through password.Compare. Never use it in production: a single SHA-256 is
// no defence against offline guessing.
type FastHasher struct{}

const fastPrefix = "$fast$"

// Hash returns the fast hash of secret with a fresh salt.
func (FastHasher) Hash(ctx context.Context, secret []byte) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	salt := make([]byte, 16)
	_, _ = rand.Read(salt)
	sum := fastSum(salt, secret)
	return fastPrefix + base64.RawStdEncoding.EncodeToString(salt) + "$" + base64.RawStdEncoding.EncodeToString(sum[:]), nil
}

// Compare verifies secret against a fast hash, or any format
// password.Compare knows.
func (FastHasher) Compare(ctx context.Context, secret []byte, encoded string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	rest, ok := strings.CutPrefix(encoded, fastPrefix)
	if !ok {
		return password.Compare(ctx, secret, encoded)
	}
	s, h, ok := strings.Cut(rest, "$")
	salt, err1 := base64.RawStdEncoding.DecodeString(s)
	want, err2 := base64.RawStdEncoding.DecodeString(h)
	if !ok || err1 != nil || err2 != nil || len(want) != sha256.Size {
		return password.ErrUnknownFormat
	}
	got := fastSum(salt, secret)
	if subtle.ConstantTimeCompare(got[:], want) != 1 {
		return password.ErrMismatch
	}
	return nil
}

// NeedsRehash reports whether encoded is not a fast hash.
func (FastHasher) NeedsRehash(encoded string) bool { return !strings.HasPrefix(encoded, fastPrefix) }

func fastSum(salt, secret []byte) [sha256.Size]byte {
	return sha256.Sum256(append(append([]byte(nil), salt...), secret...))
}

var _ password.Hasher = FastHasher{}
