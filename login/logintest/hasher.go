package logintest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"strings"
	"sync"

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

// GateHasher is FastHasher whose next Compare, once armed, tells the test
// that it started and then waits until the test lets it finish: a password
// hash during which a test acts, to check what happens when something
// (a logout, a revocation, a second attempt) lands in the middle of a
// login. Unarmed, it is FastHasher. Its zero value is ready to use; it is
// safe for concurrent use.
type GateHasher struct {
	FastHasher
	mu      sync.Mutex
	started chan struct{}
	gate    chan struct{}
}

// Arm makes the next Compare wait. It returns a channel that Compare
// closes when it starts, and the function that lets it finish.
func (h *GateHasher) Arm() (started <-chan struct{}, finish func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.started, h.gate = make(chan struct{}), make(chan struct{})
	gate := h.gate
	return h.started, func() { close(gate) }
}

// Compare waits at the gate if it was armed, then compares as FastHasher
// does.
func (h *GateHasher) Compare(ctx context.Context, secret []byte, encoded string) error {
	h.mu.Lock()
	started, gate := h.started, h.gate
	h.started, h.gate = nil, nil
	h.mu.Unlock()
	if gate != nil {
		close(started)
		<-gate
	}
	return h.FastHasher.Compare(ctx, secret, encoded)
}

var _ password.Hasher = (*GateHasher)(nil)
