// Package passkeytest is a software WebAuthn authenticator for tests of
// hosts and stores that use package passkey: it enrols P-256 keys and
// signs assertions for the options the passkey and webauthn methods put
// in flows, answering them as a browser running webauthn.js would (the
// JSON posted in passkey_login, webauthn_login and to enrolment). Options
// let a test break one part of an answer at a time.
//
// It implements the authenticator's side of WebAuthn Level 3 (§6) with
// the "none" attestation format; the cryptography is the standard
// library's (crypto/ecdsa over P-256 with SHA-256).
package passkeytest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/go-webauthn/webauthn/protocol/webauthncbor"
)

// Authenticator data flags (WebAuthn §6.1).
const (
	flagUP = 0x01
	flagUV = 0x04
	flagBE = 0x08
	flagBS = 0x10
	flagAT = 0x40
)

// Authenticator is a software authenticator. Its fields say what the
// next responses report; it is safe for concurrent use once set up.
type Authenticator struct {
	// AAGUID identifies the authenticator model (16 bytes).
	AAGUID []byte
	// UserVerified sets the UV flag: the authenticator checked its user.
	UserVerified bool
	// BackupEligible and BackupState set the BE and BS flags (a synced
	// passkey provider sets both).
	BackupEligible, BackupState bool
	// Transports are reported at enrolment.
	Transports []string

	mu   sync.Mutex
	keys []*Key
}

// Key is one key the authenticator holds.
type Key struct {
	ID         []byte
	Private    *ecdsa.PrivateKey
	RPID       string
	UserHandle []byte
	// SignCount is the signature counter: every assertion increments it
	// first, unless it is 0 and Static is set (synced passkeys report 0
	// forever).
	SignCount uint32
	Static    bool
}

// New returns an authenticator that verifies its user (a platform
// authenticator with a PIN or biometrics) and holds no keys.
func New() *Authenticator {
	return &Authenticator{AAGUID: make([]byte, 16), UserVerified: true, Transports: []string{"internal"}}
}

// AddKey makes a key for rpID and user handle, as if enrolled elsewhere
// (for a test that imports it: see KratosConfig).
func (a *Authenticator) AddKey(rpID string, userHandle []byte) *Key {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	id := make([]byte, 32)
	if _, err := rand.Read(id); err != nil {
		panic(err)
	}
	k := &Key{ID: id, Private: priv, RPID: rpID, UserHandle: append([]byte(nil), userHandle...)}
	a.mu.Lock()
	a.keys = append(a.keys, k)
	a.mu.Unlock()
	return k
}

// Keys returns the keys the authenticator holds.
func (a *Authenticator) Keys() []*Key {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]*Key(nil), a.keys...)
}

// PublicKeyCOSE is the key's public key in COSE form (EC2, ES256).
func (k *Key) PublicKeyCOSE() []byte {
	pub, err := k.Private.PublicKey.Bytes() // 0x04 || X || Y
	if err != nil {
		panic(err)
	}
	b, err := webauthncbor.Marshal(map[int]any{1: 2, 3: -7, -1: 1, -2: pub[1:33], -3: pub[33:65]})
	if err != nil {
		panic(err)
	}
	return b
}

// PKCS8 is the private key in PKCS #8 form, as Chromium's virtual
// authenticator takes it (WebAuthn.addCredential).
func (k *Key) PKCS8() []byte {
	b, err := x509.MarshalPKCS8PrivateKey(k.Private)
	if err != nil {
		panic(err)
	}
	return b
}

// KratosConfig is a Kratos credential configuration ({"credentials": [...],
// "user_handle": ...}, CONTRACT-PASSKEY §4.1) holding keys, as a Kratos
// export has it; passwordless marks passkeys and passwordless security
// keys. backupEligible is the flag recorded for every key.
func KratosConfig(userHandle []byte, passwordless, backupEligible bool, keys ...*Key) json.RawMessage {
	type authenticator struct {
		AAGUID       []byte `json:"aaguid"`
		SignCount    uint32 `json:"sign_count"`
		CloneWarning bool   `json:"clone_warning"`
	}
	type flags struct {
		UserPresent    bool `json:"user_present"`
		UserVerified   bool `json:"user_verified"`
		BackupEligible bool `json:"backup_eligible"`
		BackupState    bool `json:"backup_state"`
	}
	type credential struct {
		ID              []byte        `json:"id"`
		PublicKey       []byte        `json:"public_key"`
		AttestationType string        `json:"attestation_type"`
		Authenticator   authenticator `json:"authenticator"`
		DisplayName     string        `json:"display_name"`
		AddedAt         string        `json:"added_at"`
		IsPasswordless  bool          `json:"is_passwordless"`
		Flags           flags         `json:"flags"`
	}
	creds := make([]credential, len(keys))
	for i, k := range keys {
		creds[i] = credential{
			ID: k.ID, PublicKey: k.PublicKeyCOSE(), AttestationType: "none",
			Authenticator:  authenticator{AAGUID: make([]byte, 16), SignCount: k.SignCount},
			AddedAt:        "2026-01-02T03:04:05Z",
			IsPasswordless: passwordless,
			Flags:          flags{UserPresent: true, UserVerified: true, BackupEligible: backupEligible, BackupState: backupEligible},
		}
	}
	b, err := json.Marshal(map[string]any{"credentials": creds, "user_handle": userHandle})
	if err != nil {
		panic(err)
	}
	return b
}

// creationOptions is the part of navigator.credentials.create()'s options
// an authenticator reads.
type creationOptions struct {
	PublicKey struct {
		Challenge string `json:"challenge"`
		RP        struct {
			ID string `json:"id"`
		} `json:"rp"`
		User struct {
			ID string `json:"id"`
		} `json:"user"`
		ExcludeCredentials []struct {
			ID string `json:"id"`
		} `json:"excludeCredentials"`
	} `json:"publicKey"`
}

// Create answers navigator.credentials.create() with options (the JSON
// BeginEnrolment returns) on a page of origin: a new key, and the
// attestation JSON webauthn.js posts. It refuses, as authenticators do,
// when it holds an excluded key.
func (a *Authenticator) Create(options []byte, origin string) ([]byte, *Key, error) {
	var o creationOptions
	if err := json.Unmarshal(options, &o); err != nil {
		return nil, nil, fmt.Errorf("passkeytest: creation options: %w", err)
	}
	handle, err := base64.RawURLEncoding.DecodeString(o.PublicKey.User.ID)
	if err != nil {
		return nil, nil, fmt.Errorf("passkeytest: user.id: %w", err)
	}
	for _, ex := range o.PublicKey.ExcludeCredentials {
		id, _ := base64.RawURLEncoding.DecodeString(ex.ID)
		for _, k := range a.Keys() {
			if bytes.Equal(k.ID, id) {
				return nil, nil, errors.New("passkeytest: InvalidStateError: the authenticator holds an excluded key")
			}
		}
	}
	k := a.AddKey(o.PublicKey.RP.ID, handle)
	clientData := marshal(map[string]any{"type": "webauthn.create", "challenge": o.PublicKey.Challenge, "origin": origin, "crossOrigin": false})
	rpHash := sha256.Sum256([]byte(o.PublicKey.RP.ID))
	auth := bytes.NewBuffer(rpHash[:])
	auth.WriteByte(a.flags() | flagAT)
	_ = binary.Write(auth, binary.BigEndian, k.SignCount)
	auth.Write(a.aaguid())
	_ = binary.Write(auth, binary.BigEndian, uint16(len(k.ID)))
	auth.Write(k.ID)
	auth.Write(k.PublicKeyCOSE())
	object, err := webauthncbor.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": auth.Bytes()})
	if err != nil {
		return nil, nil, err
	}
	response := map[string]any{
		"id": b64(k.ID), "rawId": b64(k.ID), "type": "public-key",
		"response": map[string]any{
			"attestationObject": b64(object),
			"clientDataJSON":    b64(clientData),
			"transports":        a.Transports,
		},
		"clientExtensionResults": map[string]any{},
	}
	return marshal(response), k, nil
}

// requestOptions is the part of navigator.credentials.get()'s options an
// authenticator reads.
type requestOptions struct {
	PublicKey struct {
		Challenge        string `json:"challenge"`
		RPID             string `json:"rpId"`
		AllowCredentials []struct {
			ID string `json:"id"`
		} `json:"allowCredentials"`
	} `json:"publicKey"`
}

// Assertion is an answer being made; an Option changes it before it is
// signed.
type Assertion struct {
	Key        *Key
	ClientData map[string]any
	RPID       string // hashed into the authenticator data
	Flags      byte
	Counter    uint32
	UserHandle []byte
	// Signature, when set by an option, replaces the signature.
	Signature []byte
	corrupt   bool
}

// Option changes an assertion.
type Option func(*Assertion)

// WithType sets clientData.type (a correct assertion has "webauthn.get").
func WithType(t string) Option { return func(a *Assertion) { a.ClientData["type"] = t } }

// WithChallenge sets clientData.challenge (base64url).
func WithChallenge(c string) Option { return func(a *Assertion) { a.ClientData["challenge"] = c } }

// WithRPID hashes id into the authenticator data instead of the options'.
func WithRPID(id string) Option { return func(a *Assertion) { a.RPID = id } }

// WithoutUserVerification clears the UV flag.
func WithoutUserVerification() Option { return func(a *Assertion) { a.Flags &^= flagUV } }

// WithCounter sets the signature counter.
func WithCounter(n uint32) Option { return func(a *Assertion) { a.Counter = n } }

// WithUserHandle sets the returned user handle (nil: none).
func WithUserHandle(h []byte) Option { return func(a *Assertion) { a.UserHandle = h } }

// WithKey signs with k, whatever the options allow.
func WithKey(k *Key) Option { return func(a *Assertion) { a.Key = k } }

// WithCorruptSignature flips a bit of the signature.
func WithCorruptSignature() Option { return func(a *Assertion) { a.corrupt = true } }

// Get answers navigator.credentials.get() with options (the JSON a flow's
// passkey_challenge or webauthn_login_trigger carries) on a page of
// origin: the assertion JSON webauthn.js posts. It signs with the first
// allowed key it holds, or for a discoverable request the first key for
// the RP ID; the counter of that key goes up.
func (a *Authenticator) Get(options []byte, origin string, opts ...Option) ([]byte, error) {
	var o requestOptions
	if err := json.Unmarshal(options, &o); err != nil {
		return nil, fmt.Errorf("passkeytest: request options: %w", err)
	}
	var key *Key
	for _, k := range a.Keys() {
		if k.RPID != o.PublicKey.RPID {
			continue
		}
		if len(o.PublicKey.AllowCredentials) == 0 {
			key = k
			break
		}
		for _, allowed := range o.PublicKey.AllowCredentials {
			if id, _ := base64.RawURLEncoding.DecodeString(allowed.ID); bytes.Equal(id, k.ID) {
				key = k
			}
		}
		if key != nil {
			break
		}
	}
	as := &Assertion{
		Key:        key,
		ClientData: map[string]any{"type": "webauthn.get", "challenge": o.PublicKey.Challenge, "origin": origin, "crossOrigin": false},
		RPID:       o.PublicKey.RPID,
		Flags:      a.flags(),
	}
	if key != nil {
		a.mu.Lock()
		if !key.Static || key.SignCount != 0 {
			key.SignCount++
		}
		as.Counter = key.SignCount
		a.mu.Unlock()
		as.UserHandle = key.UserHandle
	}
	for _, opt := range opts {
		opt(as)
	}
	if as.Key == nil {
		return nil, errors.New("passkeytest: NotAllowedError: no key for these options")
	}
	clientData := marshal(as.ClientData)
	rpHash := sha256.Sum256([]byte(as.RPID))
	auth := bytes.NewBuffer(rpHash[:])
	auth.WriteByte(as.Flags)
	_ = binary.Write(auth, binary.BigEndian, as.Counter)
	cdHash := sha256.Sum256(clientData)
	digest := sha256.Sum256(append(append([]byte(nil), auth.Bytes()...), cdHash[:]...))
	sig := as.Signature
	if sig == nil {
		var err error
		if sig, err = ecdsa.SignASN1(rand.Reader, as.Key.Private, digest[:]); err != nil {
			return nil, err
		}
	}
	if as.corrupt {
		sig = append([]byte(nil), sig...)
		sig[len(sig)-1] ^= 0x01
	}
	response := map[string]any{
		"id": b64(as.Key.ID), "rawId": b64(as.Key.ID), "type": "public-key",
		"response": map[string]any{
			"authenticatorData": b64(auth.Bytes()),
			"clientDataJSON":    b64(clientData),
			"signature":         b64(sig),
			"userHandle":        b64(as.UserHandle),
		},
		"clientExtensionResults": map[string]any{},
	}
	return marshal(response), nil
}

func (a *Authenticator) flags() byte {
	f := byte(flagUP)
	if a.UserVerified {
		f |= flagUV
	}
	if a.BackupEligible {
		f |= flagBE
	}
	if a.BackupState {
		f |= flagBS
	}
	return f
}

func (a *Authenticator) aaguid() []byte {
	if len(a.AAGUID) == 16 {
		return a.AAGUID
	}
	return make([]byte, 16)
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func marshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
