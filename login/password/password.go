// Package password hashes and verifies user passwords.
//
// New hashes are made by a [Hasher]: [Argon2id] (recommended) or [Bcrypt].
// [Compare] verifies a password against a stored hash of any format that Ory
// Kratos accepts for imported credentials, from argon2 and bcrypt to legacy
// formats such as PBKDF2, scrypt, crypt(3) and salted SHA digests, so users
// migrated from another system can log in and be transparently rehashed:
//
//	h := password.Argon2id{}
//	encoded, err := h.Hash(ctx, []byte("correct horse"))
//	if err != nil {
//		return err
//	}
//	// Later, at login:
//	if err := h.Compare(ctx, []byte(input), encoded); err != nil {
//		return errInvalidCredentials
//	}
//	if h.NeedsRehash(encoded) {
//		// Hash input again and store the result.
//	}
//
// Callers should treat every error of Compare as invalid credentials; the
// distinct sentinel errors exist for logging and tests.
package password

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

var (
	// ErrMismatch is returned when a password does not match a hash. A
	// bcrypt hash never matches a password longer than 72 bytes.
	ErrMismatch = errors.New("password: hash and password do not match")

	// ErrUnknownFormat is returned for a hash whose format is not supported
	// or that cannot be parsed.
	ErrUnknownFormat = errors.New("password: unknown or malformed hash format")

	// ErrParameters is returned for a hash or hasher whose cost parameters
	// are outside the bounds this package accepts, such as an argon2 memory
	// size that would let a stored hash exhaust the server's memory.
	ErrParameters = errors.New("password: hash parameters out of bounds")

	// ErrTooLong is returned by [Bcrypt.Hash] for a password longer than
	// the 72 bytes bcrypt can use. Such passwords are refused rather than
	// silently truncated.
	ErrTooLong = errors.New("password: password longer than 72 bytes")
)

// Hasher creates new hashes and verifies stored ones. Implementations are
// safe for concurrent use.
type Hasher interface {
	// Hash returns the encoded hash of password (a fresh random salt each
	// call).
	Hash(ctx context.Context, password []byte) (string, error)

	// Compare verifies password against an encoded hash of any supported
	// format; it returns nil on match.
	Compare(ctx context.Context, password []byte, encoded string) error

	// NeedsRehash reports whether encoded should be replaced by a new hash
	// from this hasher: true when it is another algorithm or has weaker
	// parameters (lower cost, memory, iterations, parallelism or key
	// length) than the hasher's, or cannot be parsed.
	NeedsRehash(encoded string) bool
}

// A verifier checks password against encoded, whose prefix selected it.
type verifier func(password []byte, encoded string) error

// Compare verifies password against encoded and returns nil on match. The
// format is chosen by the hash's prefix:
//
//	$argon2id$v=19$m=<KiB>,t=<iterations>,p=<parallelism>$<salt>$<hash>
//	$argon2i$v=19$m=<KiB>,t=<iterations>,p=<parallelism>$<salt>$<hash>
//	$2a$<cost>$<salt+hash> (also $2$, $2b$, $2y$ and $2z$)
//	$pbkdf2-sha<bits>$i=<iterations>,l=<length>$<salt>$<hash>
//	$scrypt$ln=<N>,r=<r>,p=<p>$<salt>$<hash>
//	$md5-crypt$…, $sha256-crypt$…, $sha512-crypt$… (crypt(3) $1$, $5$, $6$)
//	{SSHA}<digest+salt>, {SSHA256}…, {SSHA512}…
//	$sha1$pf=<pattern>$<salt>$<digest> (also $sha256$ and $sha512$)
//	$md5$<digest> or $md5$pf=<pattern>$<salt>$<digest>
//	$hmac-<md4|md5|sha1|sha224|sha256|sha384|sha512>$<hex digest>$<key>
//
// Salts, digests, keys and patterns are base64 encoded, with or without
// padding. A pattern is the digest input with the placeholders {SALT} and
// {PASSWORD}. In PBKDF2 hashes, the digests sha224 and sha384 denote SHA3-224
// and SHA3-384 and any other digest denotes SHA-256, as in Kratos; the key
// length is that of the decoded hash. In scrypt hashes, ln holds N itself,
// not its logarithm.
//
// Compare returns [ErrMismatch] if password does not match,
// [ErrUnknownFormat] if encoded is not a supported, well-formed hash, and
// [ErrParameters] if its cost parameters are out of bounds. If ctx is
// already done, it returns ctx.Err() without hashing.
func Compare(ctx context.Context, password []byte, encoded string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	verify := verifierFor(encoded)
	if verify == nil {
		return ErrUnknownFormat
	}
	return verify(password, encoded)
}

// schemes maps hash prefixes to their verifiers. Kratos' Firebase scrypt
// format ($firescrypt$) is deliberately not supported and so yields
// ErrUnknownFormat.
var schemes = []struct {
	prefix string
	verify verifier
}{
	{"$argon2id$", compareArgon2id},
	{"$argon2i$", compareArgon2i},
	{"$scrypt$", compareScrypt},
	{"$md5-crypt$", compareMD5Crypt},
	{"$sha256-crypt$", compareSHA256Crypt},
	{"$sha512-crypt$", compareSHA512Crypt},
	{"{SSHA}", compareSSHA1},
	{"{SSHA256}", compareSSHA256},
	{"{SSHA512}", compareSSHA512},
	{"$sha1$", compareSHA1},
	{"$sha256$", compareSHA256},
	{"$sha512$", compareSHA512},
	{"$md5$", compareMD5},
	{"$hmac-md4$", compareHMACMD4},
	{"$hmac-md5$", compareHMACMD5},
	{"$hmac-sha1$", compareHMACSHA1},
	{"$hmac-sha224$", compareHMACSHA224},
	{"$hmac-sha256$", compareHMACSHA256},
	{"$hmac-sha384$", compareHMACSHA384},
	{"$hmac-sha512$", compareHMACSHA512},
}

// verifierFor returns the verifier for encoded's format, or nil.
func verifierFor(encoded string) verifier {
	switch {
	case isBcrypt(encoded):
		return compareBcrypt
	case isPBKDF2(encoded):
		return comparePBKDF2
	}
	for _, s := range schemes {
		if strings.HasPrefix(encoded, s.prefix) {
			return s.verify
		}
	}
	return nil
}

// malformed returns an ErrUnknownFormat error naming the scheme and problem.
// It never includes hash material.
func malformed(scheme, problem string) error {
	return fmt.Errorf("%w: %s: %s", ErrUnknownFormat, scheme, problem)
}

// checkRange returns an ErrParameters error unless lo <= v <= hi.
func checkRange(scheme, name string, v, lo, hi uint64) error {
	if v < lo || v > hi {
		return fmt.Errorf("%w: %s: %s=%d not in [%d, %d]", ErrParameters, scheme, name, v, lo, hi)
	}
	return nil
}

// parseParams parses a parameter list such as "m=65536,t=3,p=4" whose keys
// must be exactly keys, in order. Values too large for a uint64 are returned
// as math.MaxUint64 so that bounds checks reject them.
func parseParams(scheme, s string, keys ...string) ([]uint64, error) {
	fields := strings.Split(s, ",")
	if len(fields) != len(keys) {
		return nil, malformed(scheme, "bad parameter list")
	}
	vals := make([]uint64, len(keys))
	for i, f := range fields {
		v, ok := strings.CutPrefix(f, keys[i]+"=")
		if !ok {
			return nil, malformed(scheme, "missing parameter "+keys[i])
		}
		n, err := strconv.ParseUint(v, 10, 64)
		switch {
		case errors.Is(err, strconv.ErrRange):
			n = math.MaxUint64
		case err != nil:
			return nil, malformed(scheme, "bad parameter "+keys[i])
		}
		vals[i] = n
	}
	return vals, nil
}

// decodeBase64 decodes standard base64, with or without padding.
func decodeBase64(s string) ([]byte, error) {
	if strings.HasSuffix(s, "=") {
		return base64.StdEncoding.DecodeString(s)
	}
	return base64.RawStdEncoding.DecodeString(s)
}
