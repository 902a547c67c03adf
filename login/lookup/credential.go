package lookup

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/authflow/authflow/session"
)

// Codes made by NewCodes: as many, as long and of the alphabet Kratos uses.
const (
	codeCount    = 12
	codeLength   = 8
	codeAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
)

// NewCodes returns 12 distinct codes of 8 characters of [a-z0-9] drawn
// uniformly from crypto/rand (about 41 bits each), as Kratos makes them.
// Show them to the user once, and store only [NewCredential]'s hashes of
// them. It is safe for concurrent use; an error means the system's random
// source failed.
func NewCodes() ([]string, error) {
	codes := make([]string, 0, codeCount)
	seen := map[string]bool{}
	for len(codes) < codeCount {
		c, err := randomCode()
		if err != nil {
			return nil, err
		}
		if !seen[c] {
			seen[c] = true
			codes = append(codes, c)
		}
	}
	return codes, nil
}

// randomCode returns codeLength characters drawn uniformly from
// codeAlphabet: random bytes at or above the largest multiple of the
// alphabet's size are rejected, so that the remainder is unbiased.
func randomCode() (string, error) {
	const limit = 256 - 256%len(codeAlphabet) // 252
	code := make([]byte, 0, codeLength)
	buf := make([]byte, 2*codeLength)
	for len(code) < codeLength {
		if _, err := rand.Read(buf); err != nil {
			return "", fmt.Errorf("lookup: random code: %w", err)
		}
		for _, b := range buf {
			if int(b) < limit && len(code) < codeLength {
				code = append(code, codeAlphabet[int(b)%len(codeAlphabet)])
			}
		}
	}
	return string(code), nil
}

// NewCredential returns the lookup credential of the identity with
// identityID holding codes, all unused, for
// login.IdentityStore.UpdateCredential (replacing any earlier codes) or
// CreateIdentity. Only salted argon2id hashes of the codes are stored (see
// storedConfig); computing them takes about 15 ms per code. It returns an
// error for an empty identityID, no codes, an empty code, one longer than
// MaxCodeLength bytes or a duplicate, and when the random source fails.
func NewCredential(identityID string, codes []string) (session.Credential, error) {
	plain := make([]plainCode, len(codes))
	seen := map[string]bool{}
	for i, c := range codes {
		if seen[c] {
			return session.Credential{}, fmt.Errorf("lookup: code %d is a duplicate", i+1)
		}
		seen[c] = true
		plain[i] = plainCode{code: c}
	}
	return newCredential(identityID, plain)
}

// ImportKratos returns the lookup credential of the identity with
// identityID from the config of a Kratos lookup_secret credential: the
// admin API's export {"recovery_codes":[{"code":"g01exu82","used_at":null}]}
// (used codes carry a time in used_at) or its import shape
// {"codes":[{"code":"…"}]}. Used codes stay used, with their time; codes are
// kept exactly as written. Only hashes are stored, as with NewCredential.
// It returns an error for malformed JSON, both keys at once, no codes, an
// empty code or one longer than MaxCodeLength bytes.
func ImportKratos(identityID string, config json.RawMessage) (session.Credential, error) {
	type kratosCode struct {
		Code   string     `json:"code"`
		UsedAt *time.Time `json:"used_at"`
	}
	var in struct {
		RecoveryCodes []kratosCode `json:"recovery_codes"`
		Codes         []kratosCode `json:"codes"`
	}
	if err := json.Unmarshal(config, &in); err != nil {
		return session.Credential{}, fmt.Errorf("lookup: Kratos config: %w", err)
	}
	list := in.RecoveryCodes
	switch {
	case len(in.RecoveryCodes) > 0 && len(in.Codes) > 0:
		return session.Credential{}, errors.New(`lookup: Kratos config has both "recovery_codes" and "codes"`)
	case len(list) == 0:
		list = in.Codes
	}
	plain := make([]plainCode, len(list))
	for i, c := range list {
		plain[i] = plainCode{code: c.Code}
		if c.UsedAt != nil && !c.UsedAt.IsZero() {
			t := c.UsedAt.UTC()
			plain[i].usedAt = &t
		}
	}
	return newCredential(identityID, plain)
}

// Remaining returns how many of the credential's codes are unused, for a
// host's settings page. It returns an error for a credential of another
// type or one this package cannot read.
func Remaining(c session.Credential) (int, error) {
	if c.Type != session.CredentialLookup {
		return 0, fmt.Errorf("lookup: credential of type %q, want %q", c.Type, session.CredentialLookup)
	}
	stored, err := decodeConfig(c.Config)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range stored.Codes {
		if e.UsedAt == nil {
			n++
		}
	}
	return n, nil
}

// plainCode is a code before it is hashed.
type plainCode struct {
	code   string
	usedAt *time.Time
}

// newCredential hashes codes under one fresh salt.
func newCredential(identityID string, codes []plainCode) (session.Credential, error) {
	if identityID == "" {
		return session.Credential{}, errors.New("lookup: identity id is empty")
	}
	if len(codes) == 0 {
		return session.Credential{}, errors.New("lookup: no codes")
	}
	for i, c := range codes {
		if c.code == "" || len(c.code) > MaxCodeLength {
			return session.Credential{}, fmt.Errorf("lookup: code %d is empty or longer than %d bytes", i+1, MaxCodeLength)
		}
	}
	stored := &storedConfig{Algorithm: algorithmArgon2id, Time: argonTime, MemoryKiB: argonMemoryKiB, Threads: argonThreads, Salt: make([]byte, saltLength)}
	if _, err := rand.Read(stored.Salt); err != nil {
		return session.Credential{}, fmt.Errorf("lookup: salt: %w", err)
	}
	hashed := make([]storedCode, len(codes))
	for i, c := range codes {
		hashed[i] = storedCode{Hash: stored.derive(c.code), UsedAt: c.usedAt}
	}
	stored.Codes = hashed
	cfg, err := stored.encode()
	if err != nil {
		return session.Credential{}, err
	}
	return session.Credential{Type: session.CredentialLookup, Identifiers: []string{identityID}, Config: cfg}, nil
}

// The argon2id parameters of new credentials. One hash takes about 15 ms
// and 19 MiB on one core (measured with BenchmarkHash: 14-16 ms, 19.9 MB
// allocated, on a 2-core Intel Xeon server, Go 1.26, golang.org/x/crypto
// v0.59.0; about 32 ms under the race detector). A code has only about 41
// bits, so this cost is what protects a leaked credential: finding one of
// its 12 codes offline takes some 2^41/12 hashes, tens of core-years, and
// the salt makes every credential a search of its own. The parameters are
// recorded in each credential, so they can change later without
// invalidating stored codes.
const (
	algorithmArgon2id = "argon2id"
	argonTime         = 1
	argonMemoryKiB    = 19 * 1024
	argonThreads      = 1
	argonKeyLength    = 32
	saltLength        = 16
)

// Bounds on the parameters read from a stored credential, so that a
// corrupted or hostile record cannot make a submission exhaust the server.
const (
	maxArgonTime      = 16
	maxArgonMemoryKiB = 256 * 1024
	maxArgonThreads   = 16
	minSaltLength     = 8
	minKeyLength      = 16
	maxKeyLength      = 64
)

// storedConfig is the Config of a lookup credential as this package
// stores it; the codes themselves are never stored:
//
//	{"algorithm":"argon2id","time":1,"memory_kib":19456,"threads":1,
//	 "salt":"<base64>","recovery_codes":[{"hash":"<base64>","used_at":null},
//	 {"hash":"<base64>","used_at":"2026-12-03T07:28:12Z"}]}
//
// Each hash is argon2id(code, salt, time, memory_kib, threads) with the
// length of the hash, all under the one salt of the credential.
type storedConfig struct {
	Algorithm string       `json:"algorithm"`
	Time      uint32       `json:"time"`
	MemoryKiB uint32       `json:"memory_kib"`
	Threads   uint8        `json:"threads"`
	Salt      []byte       `json:"salt"`
	Codes     []storedCode `json:"recovery_codes"`
}

// storedCode is one code: its hash, and when it was used (nil: unused).
type storedCode struct {
	Hash   []byte     `json:"hash"`
	UsedAt *time.Time `json:"used_at"`
}

// decodeConfig reads a stored config and checks it: the algorithm, the
// parameters within bounds, and hashes of one length.
func decodeConfig(raw json.RawMessage) (*storedConfig, error) {
	var s storedConfig
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("lookup: stored config: %w", err)
	}
	switch {
	case s.Algorithm != algorithmArgon2id:
		return nil, fmt.Errorf("lookup: stored config: algorithm %q, want %q (store codes with NewCredential or ImportKratos)", s.Algorithm, algorithmArgon2id)
	case s.Time < 1 || s.Time > maxArgonTime, s.MemoryKiB < 8*uint32(s.Threads) || s.MemoryKiB > maxArgonMemoryKiB,
		s.Threads < 1 || s.Threads > maxArgonThreads, len(s.Salt) < minSaltLength:
		return nil, errors.New("lookup: stored config: argon2id parameters or salt out of bounds")
	}
	for _, c := range s.Codes {
		if len(c.Hash) < minKeyLength || len(c.Hash) > maxKeyLength || len(c.Hash) != len(s.Codes[0].Hash) {
			return nil, errors.New("lookup: stored config: hashes of unusable or differing lengths")
		}
	}
	return &s, nil
}

// encode returns the config as stored.
func (s *storedConfig) encode() (json.RawMessage, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("lookup: encode config: %w", err)
	}
	return b, nil
}

// keyLength is the length of the stored hashes; argonKeyLength while
// there are none.
func (s *storedConfig) keyLength() uint32 {
	if len(s.Codes) == 0 || len(s.Codes[0].Hash) == 0 {
		return argonKeyLength
	}
	return uint32(len(s.Codes[0].Hash))
}

// derive returns the argon2id hash of code under the config's salt and
// parameters.
func (s *storedConfig) derive(code string) []byte {
	return argon2.IDKey([]byte(code), s.Salt, s.Time, s.MemoryKiB, s.Threads, s.keyLength())
}

// sameHash reports whether o hashes codes as s does (same salt and
// parameters), so that a hash derived for s can be matched against o.
func (s *storedConfig) sameHash(o *storedConfig) bool {
	return s.Algorithm == o.Algorithm && s.Time == o.Time && s.MemoryKiB == o.MemoryKiB &&
		s.Threads == o.Threads && bytes.Equal(s.Salt, o.Salt) && s.keyLength() == o.keyLength()
}

// match is the constant-time comparison: it compares sum with every
// stored hash, never stopping early, and returns the index of the matching
// code (an unused one if the same code is stored twice), and whether it is
// used; -1 when none matches.
func (s *storedConfig) match(sum []byte) (index int, used bool) {
	found, foundUnused := -1, -1
	for i, c := range s.Codes {
		eq := subtle.ConstantTimeCompare(sum, c.Hash)
		unused := 0
		if c.UsedAt == nil {
			unused = 1
		}
		found = subtle.ConstantTimeSelect(eq, i, found)
		foundUnused = subtle.ConstantTimeSelect(eq&unused, i, foundUnused)
	}
	if foundUnused >= 0 {
		return foundUnused, false
	}
	return found, found >= 0
}
