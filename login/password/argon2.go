package password

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Bounds on argon2 parameters, for hashing and for stored hashes.
const (
	argon2MaxMemory      = 1 << 20 // KiB, that is 1 GiB
	argon2MaxIterations  = 10
	argon2MaxParallelism = 16
	argon2MinSaltLength  = 8 // RFC 9106, section 3.1
	argon2MinKeyLength   = 4 // RFC 9106, section 3.1
)

// Argon2id is a [Hasher] that makes argon2id hashes in the PHC string format
// that Kratos uses:
//
//	$argon2id$v=19$m=65536,t=3,p=4$<salt>$<hash>
//
// with salt and hash in unpadded standard base64. Zero fields take the
// defaults of RFC 9106's second recommended option: 64 MiB of memory, 3
// iterations, parallelism 4, a 16-byte salt and a 32-byte key. Hash returns
// [ErrParameters] if Memory exceeds 1 GiB (1048576 KiB), Iterations 10,
// Parallelism 16, or if SaltLength is below 8 or KeyLength below 4 bytes.
type Argon2id struct {
	Memory      uint32 // memory in KiB
	Iterations  uint32 // number of passes over the memory
	Parallelism uint8  // number of lanes
	SaltLength  uint32 // salt length in bytes
	KeyLength   uint32 // derived key length in bytes
}

var _ Hasher = Argon2id{}

// withDefaults returns a copy of a with zero fields set to their defaults.
func (a Argon2id) withDefaults() Argon2id {
	if a.Memory == 0 {
		a.Memory = 64 * 1024
	}
	if a.Iterations == 0 {
		a.Iterations = 3
	}
	if a.Parallelism == 0 {
		a.Parallelism = 4
	}
	if a.SaltLength == 0 {
		a.SaltLength = 16
	}
	if a.KeyLength == 0 {
		a.KeyLength = 32
	}
	return a
}

// Hash returns the argon2id hash of password with a fresh random salt.
func (a Argon2id) Hash(ctx context.Context, password []byte) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	p := a.withDefaults()
	if err := p.validate(); err != nil {
		return "", err
	}
	salt := make([]byte, p.SaltLength)
	rand.Read(salt)
	key := argon2.IDKey(password, salt, p.Iterations, p.Memory, p.Parallelism, p.KeyLength)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Iterations, p.Parallelism,
		base64.RawStdEncoding.EncodeToString(salt),
		base64.RawStdEncoding.EncodeToString(key)), nil
}

// validate reports whether a's parameters, defaults applied, are in bounds.
func (a Argon2id) validate() error {
	const scheme = "argon2id"
	if err := checkArgon2Costs(scheme, uint64(a.Memory), uint64(a.Iterations), uint64(a.Parallelism)); err != nil {
		return err
	}
	if a.SaltLength < argon2MinSaltLength {
		return fmt.Errorf("%w: %s: salt length %d below %d", ErrParameters, scheme, a.SaltLength, argon2MinSaltLength)
	}
	if a.KeyLength < argon2MinKeyLength {
		return fmt.Errorf("%w: %s: key length %d below %d", ErrParameters, scheme, a.KeyLength, argon2MinKeyLength)
	}
	return nil
}

// Compare verifies password against an encoded hash of any format supported
// by the package-level [Compare].
func (Argon2id) Compare(ctx context.Context, password []byte, encoded string) error {
	return Compare(ctx, password, encoded)
}

// NeedsRehash reports whether encoded is anything but an argon2id hash whose
// memory, iterations, parallelism and key length are each at least a's.
func (a Argon2id) NeedsRehash(encoded string) bool {
	p := a.withDefaults()
	h, err := parseArgon2("argon2id", encoded)
	if err != nil {
		return true
	}
	return h.memory < p.Memory ||
		h.iterations < p.Iterations ||
		h.parallelism < p.Parallelism ||
		uint64(len(h.key)) < uint64(p.KeyLength)
}

// argon2Hash is a parsed argon2 PHC string.
type argon2Hash struct {
	memory      uint32
	iterations  uint32
	parallelism uint8
	salt, key   []byte
}

// checkArgon2Costs checks argon2 cost parameters against the bounds.
func checkArgon2Costs(scheme string, memory, iterations, parallelism uint64) error {
	if err := checkRange(scheme, "m", memory, 1, argon2MaxMemory); err != nil {
		return err
	}
	if err := checkRange(scheme, "t", iterations, 1, argon2MaxIterations); err != nil {
		return err
	}
	return checkRange(scheme, "p", parallelism, 1, argon2MaxParallelism)
}

// parseArgon2 parses an encoded hash of the given argon2 variant:
// $<variant>$v=19$m=<KiB>,t=<iterations>,p=<parallelism>$<salt>$<hash>.
func parseArgon2(variant, encoded string) (*argon2Hash, error) {
	rest, ok := strings.CutPrefix(encoded, "$"+variant+"$")
	if !ok {
		return nil, malformed(variant, "bad prefix")
	}
	parts := strings.Split(rest, "$")
	if len(parts) != 4 {
		return nil, malformed(variant, "wrong number of fields")
	}
	if parts[0] != fmt.Sprintf("v=%d", argon2.Version) {
		return nil, malformed(variant, "unsupported version")
	}
	params, err := parseParams(variant, parts[1], "m", "t", "p")
	if err != nil {
		return nil, err
	}
	if err := checkArgon2Costs(variant, params[0], params[1], params[2]); err != nil {
		return nil, err
	}
	salt, err := decodeBase64(parts[2])
	if err != nil {
		return nil, malformed(variant, "bad salt encoding")
	}
	key, err := decodeBase64(parts[3])
	if err != nil || len(key) == 0 {
		return nil, malformed(variant, "bad hash encoding")
	}
	return &argon2Hash{
		memory:      uint32(params[0]),
		iterations:  uint32(params[1]),
		parallelism: uint8(params[2]),
		salt:        salt,
		key:         key,
	}, nil
}

// compareArgon2id verifies an $argon2id$ hash.
func compareArgon2id(password []byte, encoded string) error {
	return compareArgon2("argon2id", argon2.IDKey, password, encoded)
}

// compareArgon2i verifies an $argon2i$ hash.
func compareArgon2i(password []byte, encoded string) error {
	return compareArgon2("argon2i", argon2.Key, password, encoded)
}

// compareArgon2 verifies a hash of the given variant, derived by kdf.
func compareArgon2(variant string, kdf func(password, salt []byte, time, memory uint32, threads uint8, keyLen uint32) []byte, password []byte, encoded string) error {
	h, err := parseArgon2(variant, encoded)
	if err != nil {
		return err
	}
	key := kdf(password, h.salt, h.iterations, h.memory, h.parallelism, uint32(len(h.key)))
	return match(key, h.key)
}

// match returns nil if got equals want, compared in constant time, and
// ErrMismatch otherwise. Callers ensure want is not empty.
func match(got, want []byte) error {
	if subtle.ConstantTimeCompare(got, want) == 1 {
		return nil
	}
	return ErrMismatch
}
