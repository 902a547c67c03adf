package password

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha3"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"hash"
	"strconv"
	"strings"

	"github.com/GehirnInc/crypt"
	"github.com/GehirnInc/crypt/md5_crypt"
	"github.com/GehirnInc/crypt/sha256_crypt"
	"github.com/GehirnInc/crypt/sha512_crypt"
	"golang.org/x/crypto/md4"
	"golang.org/x/crypto/scrypt"
)

// The formats in this file are verified only, never produced: they exist so
// that credentials imported from other systems keep working until rehashed.

// Bounds on PBKDF2 and scrypt parameters of stored hashes.
const (
	pbkdf2MaxIterations = 10_000_000
	scryptMaxN          = 1 << 17
	scryptMaxR          = 8
	scryptMaxP          = 10
)

// isPBKDF2 reports whether encoded starts with $pbkdf2-sha<digits>$, where
// 1 to 3 digits name the digest, as Kratos requires.
func isPBKDF2(encoded string) bool {
	rest, ok := strings.CutPrefix(encoded, "$pbkdf2-sha")
	if !ok {
		return false
	}
	digits, _, ok := strings.Cut(rest, "$")
	if !ok || len(digits) < 1 || len(digits) > 3 {
		return false
	}
	for _, c := range []byte(digits) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// pbkdf2Digest returns the hash function a PBKDF2 hash names. As in Kratos,
// sha224 and sha384 mean SHA3-224 and SHA3-384, and unknown names SHA-256.
func pbkdf2Digest(name string) func() hash.Hash {
	switch name {
	case "sha1":
		return sha1.New
	case "sha224":
		return func() hash.Hash { return sha3.New224() }
	case "sha384":
		return func() hash.Hash { return sha3.New384() }
	case "sha512":
		return sha512.New
	default:
		return sha256.New
	}
}

// comparePBKDF2 verifies $pbkdf2-<digest>$i=<iterations>,l=<length>$<salt>$<hash>.
// The derived key length is that of the decoded hash; l is not used.
func comparePBKDF2(password []byte, encoded string) error {
	const scheme = "pbkdf2"
	parts := strings.Split(encoded, "$")
	if len(parts) != 5 {
		return malformed(scheme, "wrong number of fields")
	}
	params, err := parseParams(scheme, parts[2], "i", "l")
	if err != nil {
		return err
	}
	if err := checkRange(scheme, "i", params[0], 1, pbkdf2MaxIterations); err != nil {
		return err
	}
	salt, err := decodeBase64(parts[3])
	if err != nil {
		return malformed(scheme, "bad salt encoding")
	}
	want, err := decodeBase64(parts[4])
	if err != nil || len(want) == 0 {
		return malformed(scheme, "bad hash encoding")
	}
	if len(want) > pbkdf2MaxKeyLen {
		return fmt.Errorf("%w: %s key of %d bytes exceeds %d", ErrParameters, scheme, len(want), pbkdf2MaxKeyLen)
	}
	digest := pbkdf2Digest(strings.TrimPrefix(parts[1], "pbkdf2-"))
	got, err := pbkdf2.Key(digest, string(password), salt, int(params[0]), len(want))
	if err != nil {
		// Only reached for parameters that FIPS 140-only mode forbids.
		return fmt.Errorf("%w: %s: %v", ErrParameters, scheme, err)
	}
	return match(got, want)
}

// compareScrypt verifies $scrypt$ln=<N>,r=<r>,p=<p>$<salt>$<hash>. Despite
// its name, ln holds the cost N itself, as in Kratos.
func compareScrypt(password []byte, encoded string) error {
	const scheme = "scrypt"
	parts := strings.Split(encoded, "$")
	if len(parts) != 5 {
		return malformed(scheme, "wrong number of fields")
	}
	params, err := parseParams(scheme, parts[2], "ln", "r", "p")
	if err != nil {
		return err
	}
	n, r, p := params[0], params[1], params[2]
	if err := checkRange(scheme, "ln", n, 2, scryptMaxN); err != nil {
		return err
	}
	if n&(n-1) != 0 {
		return fmt.Errorf("%w: %s: ln=%d is not a power of two", ErrParameters, scheme, n)
	}
	if err := checkRange(scheme, "r", r, 1, scryptMaxR); err != nil {
		return err
	}
	if err := checkRange(scheme, "p", p, 1, scryptMaxP); err != nil {
		return err
	}
	salt, err := decodeBase64(parts[3])
	if err != nil {
		return malformed(scheme, "bad salt encoding")
	}
	want, err := decodeBase64(parts[4])
	if err != nil || len(want) == 0 {
		return malformed(scheme, "bad hash encoding")
	}
	got, err := scrypt.Key(password, salt, int(n), int(r), int(p), len(want))
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrParameters, scheme, err)
	}
	return match(got, want)
}

// pbkdf2MaxKeyLen bounds a PBKDF2 hash's length: the work grows with the
// number of digest blocks, not only with the iterations.
const pbkdf2MaxKeyLen = 64

// maxCryptRounds bounds the rounds of sha256/sha512-crypt hashes (glibc's
// default is 5000), so that a hostile stored hash cannot pin a CPU.
const maxCryptRounds = 1_000_000

// maxCryptPassword is the longest password compared against a crypt(3)
// hash; longer ones never match, as with bcrypt over 72 bytes.
const maxCryptPassword = 256

// compareMD5Crypt verifies $md5-crypt$<salt>$<hash>, crypt(3)'s $1$.
func compareMD5Crypt(password []byte, encoded string) error {
	return compareCrypt("md5-crypt", "$1$", md5_crypt.New(), password, encoded)
}

// compareSHA256Crypt verifies $sha256-crypt$[rounds=N$]<salt>$<hash>,
// crypt(3)'s $5$.
func compareSHA256Crypt(password []byte, encoded string) error {
	return compareCrypt("sha256-crypt", "$5$", sha256_crypt.New(), password, encoded)
}

// compareSHA512Crypt verifies $sha512-crypt$[rounds=N$]<salt>$<hash>,
// crypt(3)'s $6$.
func compareSHA512Crypt(password []byte, encoded string) error {
	return compareCrypt("sha512-crypt", "$6$", sha512_crypt.New(), password, encoded)
}

// compareCrypt verifies a crypt(3) hash stored under the prefix $scheme$
// rather than its standard magic. It does not use c.Verify, which misreads
// the salt of hashes with an explicit rounds=N parameter; it regenerates the
// hash from its settings (everything before the last '$') instead.
func compareCrypt(scheme, magic string, c crypt.Crypter, password []byte, encoded string) error {
	want := magic + strings.TrimPrefix(encoded, "$"+scheme+"$")
	i := strings.LastIndexByte(want, '$')
	if i < len(magic) {
		return malformed(scheme, "missing hash")
	}
	if len(password) > maxCryptPassword {
		// sha-crypt's cost grows with the password's length; a long one
		// against a high rounds count pins a CPU for seconds.
		return ErrMismatch
	}
	if r, ok := strings.CutPrefix(want[len(magic):], "rounds="); ok {
		n, _, _ := strings.Cut(r, "$")
		if rounds, err := strconv.Atoi(n); err == nil && rounds > maxCryptRounds {
			return fmt.Errorf("%w: %s rounds=%d exceeds %d", ErrParameters, scheme, rounds, maxCryptRounds)
		}
	}
	got, err := c.Generate(password, []byte(want[:i]))
	if err != nil {
		return malformed(scheme, err.Error())
	}
	return match([]byte(got), []byte(want))
}

// compareSSHA1 verifies {SSHA}<base64 of SHA-1(password‖salt)‖salt>.
func compareSSHA1(password []byte, encoded string) error {
	return compareSSHA("SSHA", sha1.New, password, encoded)
}

// compareSSHA256 verifies {SSHA256}<base64 of SHA-256(password‖salt)‖salt>.
func compareSSHA256(password []byte, encoded string) error {
	return compareSSHA("SSHA256", sha256.New, password, encoded)
}

// compareSSHA512 verifies {SSHA512}<base64 of SHA-512(password‖salt)‖salt>.
func compareSSHA512(password []byte, encoded string) error {
	return compareSSHA("SSHA512", sha512.New, password, encoded)
}

// compareSSHA verifies an LDAP-style salted digest {<tag>}<base64(digest‖salt)>,
// where the salt is at least one byte.
func compareSSHA(tag string, newHash func() hash.Hash, password []byte, encoded string) error {
	raw, err := decodeBase64(strings.TrimPrefix(encoded, "{"+tag+"}"))
	h := newHash()
	if err != nil || len(raw) <= h.Size() {
		return malformed(tag, "bad digest encoding")
	}
	want, salt := raw[:h.Size()], raw[h.Size():]
	h.Write(password)
	h.Write(salt)
	return match(h.Sum(nil), want)
}

// compareSHA1 verifies $sha1$pf=<pattern>$<salt>$<digest>.
func compareSHA1(password []byte, encoded string) error {
	return compareDigest("sha1", sha1.New, password, encoded)
}

// compareSHA256 verifies $sha256$pf=<pattern>$<salt>$<digest>.
func compareSHA256(password []byte, encoded string) error {
	return compareDigest("sha256", sha256.New, password, encoded)
}

// compareSHA512 verifies $sha512$pf=<pattern>$<salt>$<digest>.
func compareSHA512(password []byte, encoded string) error {
	return compareDigest("sha512", sha512.New, password, encoded)
}

// compareMD5 verifies $md5$<digest> (MD5 of the bare password) and
// $md5$pf=<pattern>$<salt>$<digest>.
func compareMD5(password []byte, encoded string) error {
	return compareDigest("md5", md5.New, password, encoded)
}

// compareDigest verifies $<scheme>$pf=<pattern>$<salt>$<digest>, the digest
// of the pattern with {SALT} and {PASSWORD} substituted, or, for md5 only,
// $md5$<digest>, the digest of the bare password.
func compareDigest(scheme string, newHash func() hash.Hash, password []byte, encoded string) error {
	parts := strings.Split(encoded, "$")
	input := password
	switch {
	case len(parts) == 5:
		var err error
		if input, err = substitute(scheme, parts[2], parts[3], password); err != nil {
			return err
		}
	case len(parts) == 3 && scheme == "md5":
	default:
		return malformed(scheme, "wrong number of fields")
	}
	h := newHash()
	want, err := decodeBase64(parts[len(parts)-1])
	if err != nil || len(want) != h.Size() {
		return malformed(scheme, "bad digest encoding")
	}
	h.Write(input)
	return match(h.Sum(nil), want)
}

// substitute decodes the pattern field pf=<base64 pattern> and the base64
// salt, and returns the pattern with its {SALT} and {PASSWORD} placeholders
// replaced. Substituted text is not scanned again for placeholders.
func substitute(scheme, patternField, saltField string, password []byte) ([]byte, error) {
	b64, ok := strings.CutPrefix(patternField, "pf=")
	if !ok {
		return nil, malformed(scheme, "missing pattern")
	}
	pattern, err := decodeBase64(b64)
	if err != nil {
		return nil, malformed(scheme, "bad pattern encoding")
	}
	salt, err := decodeBase64(saltField)
	if err != nil {
		return nil, malformed(scheme, "bad salt encoding")
	}
	if !bytes.Contains(pattern, []byte("{PASSWORD}")) {
		// A digest of a pattern without the password would accept any
		// password.
		return nil, malformed(scheme, "pattern lacks {PASSWORD}")
	}
	r := strings.NewReplacer("{SALT}", string(salt), "{PASSWORD}", string(password))
	return []byte(r.Replace(string(pattern))), nil
}

// The HMAC verifiers check $hmac-<digest>$<base64 of hex digest>$<base64 key>.
// In these hashes, unlike in PBKDF2 ones, sha224 and sha384 are SHA-2.

func compareHMACMD4(password []byte, encoded string) error {
	return compareHMAC("hmac-md4", md4.New, password, encoded)
}

func compareHMACMD5(password []byte, encoded string) error {
	return compareHMAC("hmac-md5", md5.New, password, encoded)
}

func compareHMACSHA1(password []byte, encoded string) error {
	return compareHMAC("hmac-sha1", sha1.New, password, encoded)
}

func compareHMACSHA224(password []byte, encoded string) error {
	return compareHMAC("hmac-sha224", sha256.New224, password, encoded)
}

func compareHMACSHA256(password []byte, encoded string) error {
	return compareHMAC("hmac-sha256", sha256.New, password, encoded)
}

func compareHMACSHA384(password []byte, encoded string) error {
	return compareHMAC("hmac-sha384", sha512.New384, password, encoded)
}

func compareHMACSHA512(password []byte, encoded string) error {
	return compareHMAC("hmac-sha512", sha512.New, password, encoded)
}

// compareHMAC verifies $<scheme>$<base64 of hex digest>$<base64 key>, where
// the digest is HMAC(key, password). The hex digits may be of either case.
func compareHMAC(scheme string, newHash func() hash.Hash, password []byte, encoded string) error {
	parts := strings.Split(encoded, "$")
	if len(parts) != 4 {
		return malformed(scheme, "wrong number of fields")
	}
	hexDigest, err := decodeBase64(parts[2])
	if err != nil {
		return malformed(scheme, "bad digest encoding")
	}
	want, err := hex.DecodeString(string(hexDigest))
	if err != nil {
		return malformed(scheme, "bad hex digest")
	}
	key, err := decodeBase64(parts[3])
	if err != nil {
		return malformed(scheme, "bad key encoding")
	}
	mac := hmac.New(newHash, key)
	if len(want) != mac.Size() {
		return malformed(scheme, "wrong digest length")
	}
	mac.Write(password)
	if !hmac.Equal(mac.Sum(nil), want) {
		return ErrMismatch
	}
	return nil
}
