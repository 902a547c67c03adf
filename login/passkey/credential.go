package passkey

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/session"
)

// Credential types: a passkey credential lists the user handles of its
// passkeys as identifiers; a webauthn credential lists the identity's
// identifier (its email, say) and holds its security keys.
const (
	CredentialPasskey  session.CredentialType = "passkey"
	CredentialWebAuthn session.CredentialType = "webauthn"
)

// CredentialConfig is the Config of a passkey or webauthn credential, in
// Kratos' shape (CONTRACT-PASSKEY §4.1): byte fields are standard base64.
type CredentialConfig struct {
	Credentials []Key `json:"credentials"`
	// UserHandle is the user handle (user.id) of the latest enrolment.
	UserHandle []byte `json:"user_handle,omitempty"`
}

// Key is one enrolled passkey or security key.
type Key struct {
	// ID is the credential id the authenticator chose.
	ID []byte `json:"id"`
	// PublicKey is the COSE public key.
	PublicKey []byte `json:"public_key"`
	// AttestationType is, as in Kratos, the attestation statement's
	// format ("none", "packed", "fido-u2f", ...).
	AttestationType string        `json:"attestation_type"`
	Authenticator   Authenticator `json:"authenticator"`
	DisplayName     string        `json:"display_name"`
	AddedAt         time.Time     `json:"added_at"`
	// IsPasswordless is true for passkeys and for security keys that log
	// in without a password (Kratos' legacy mode); false for second
	// factors.
	IsPasswordless bool `json:"is_passwordless"`
	// Flags are the authenticator data flags at enrolment, as updated by
	// logins; nil on rows Kratos wrote before it recorded them.
	Flags     *Flags   `json:"flags,omitempty"`
	Transport []string `json:"transport,omitempty"`
	// Attestation is kept as imported, never read.
	Attestation json.RawMessage `json:"attestation,omitempty"`
}

// Authenticator describes the authenticator that holds a key.
type Authenticator struct {
	AAGUID    []byte `json:"aaguid"`
	SignCount uint32 `json:"sign_count"`
	// CloneWarning is set, for good, when a login showed a signature
	// counter that did not increase: a sign that the key was copied.
	CloneWarning bool `json:"clone_warning"`
}

// Flags are authenticator data flags (WebAuthn §6.1).
type Flags struct {
	UserPresent    bool `json:"user_present"`
	UserVerified   bool `json:"user_verified"`
	BackupEligible bool `json:"backup_eligible"`
	BackupState    bool `json:"backup_state"`
}

// HexID is the key's id as Kratos' settings show it: lower-case hex.
func (k *Key) HexID() string { return fmt.Sprintf("%x", k.ID) }

// decodeConfig reads a credential's configuration.
func decodeConfig(c *session.Credential) (*CredentialConfig, error) {
	var cfg CredentialConfig
	if len(c.Config) > 0 {
		if err := json.Unmarshal(c.Config, &cfg); err != nil {
			return nil, fmt.Errorf("passkey: %s credential: %w", c.Type, err)
		}
	}
	return &cfg, nil
}

// encode stores cfg in c.
func (cfg *CredentialConfig) encode(c *session.Credential) error {
	b, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	c.Config = b
	return nil
}

// find returns the key with id, or nil.
func (cfg *CredentialConfig) find(id []byte) *Key {
	for i := range cfg.Credentials {
		if bytes.Equal(cfg.Credentials[i].ID, id) {
			return &cfg.Credentials[i]
		}
	}
	return nil
}

// library is k as go-webauthn validates it. A key without flags (an old
// Kratos row) takes the backup flags of the assertion, as Kratos does,
// since the library compares the stored backup eligibility with it.
func (k *Key) library(assertion protocol.AuthenticatorFlags) webauthn.Credential {
	flags := webauthn.CredentialFlags{
		UserPresent:    true,
		BackupEligible: assertion.HasBackupEligible(),
		BackupState:    assertion.HasBackupState(),
	}
	if k.Flags != nil {
		flags = webauthn.CredentialFlags{
			UserPresent:    k.Flags.UserPresent,
			UserVerified:   k.Flags.UserVerified,
			BackupEligible: k.Flags.BackupEligible,
			BackupState:    k.Flags.BackupState,
		}
	}
	transports := make([]protocol.AuthenticatorTransport, len(k.Transport))
	for i, t := range k.Transport {
		transports[i] = protocol.AuthenticatorTransport(t)
	}
	return webauthn.Credential{
		ID:        k.ID,
		PublicKey: k.PublicKey,
		// Kratos' attestation_type is the library's attestation format
		// (CONTRACT-PASSKEY §8); it decides the fido-u2f AppID rules.
		AttestationFormat: k.AttestationType,
		Transport:         transports,
		Flags:             flags,
		Authenticator: webauthn.Authenticator{
			AAGUID:       k.Authenticator.AAGUID,
			SignCount:    k.Authenticator.SignCount,
			CloneWarning: k.Authenticator.CloneWarning,
		},
	}
}

// descriptor is k as an entry of allowCredentials or excludeCredentials.
func (k *Key) descriptor() protocol.CredentialDescriptor {
	d := protocol.CredentialDescriptor{Type: protocol.PublicKeyCredentialType, CredentialID: k.ID}
	for _, t := range k.Transport {
		d.Transport = append(d.Transport, protocol.AuthenticatorTransport(t))
	}
	return d
}

// newKey is the Key of a credential the library created at enrolment.
func newKey(c *webauthn.Credential, displayName string, passwordless bool, now time.Time) Key {
	transports := make([]string, len(c.Transport))
	for i, t := range c.Transport {
		transports[i] = string(t)
	}
	return Key{
		ID:              c.ID,
		PublicKey:       c.PublicKey,
		AttestationType: c.AttestationFormat,
		Authenticator: Authenticator{
			AAGUID:    c.Authenticator.AAGUID,
			SignCount: c.Authenticator.SignCount,
		},
		DisplayName:    displayName,
		AddedAt:        now.UTC().Truncate(time.Second),
		IsPasswordless: passwordless,
		Flags: &Flags{
			UserPresent:    c.Flags.UserPresent,
			UserVerified:   c.Flags.UserVerified,
			BackupEligible: c.Flags.BackupEligible,
			BackupState:    c.Flags.BackupState,
		},
		Transport: transports,
	}
}

// userHandleLength is the length of a new passkey user handle: 64
// alphanumerics, as Kratos makes them, so that the handle is also a clean
// identifier.
const userHandleLength = 64

// newUserHandle returns a fresh random user handle.
func newUserHandle() []byte {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	out := make([]byte, userHandleLength)
	var buf [1]byte
	for i := range out {
		for {
			if _, err := rand.Read(buf[:]); err != nil {
				panic(err) // crypto/rand never fails on supported platforms
			}
			if int(buf[0]) < 256-256%len(alphabet) { // no modulo bias
				out[i] = alphabet[int(buf[0])%len(alphabet)]
				break
			}
		}
	}
	return out
}

// ImportKratos converts the configuration of a Kratos credential of type
// typ (CredentialPasskey or CredentialWebAuthn, {"credentials": [...],
// "user_handle": "<base64>"}) into a credential of identity, as Kratos'
// admin import does: a passkey credential is identified by its user handle
// (the decoded user_handle, which is required), a webauthn credential by
// identifier (the identity's email, say; required), normalised as login
// normalises identifiers. Keys must have an id
// and a public key; ids must be distinct.
func ImportKratos(typ session.CredentialType, config json.RawMessage, identifier string) (session.Credential, error) {
	var cfg CredentialConfig
	if err := json.Unmarshal(config, &cfg); err != nil {
		return session.Credential{}, fmt.Errorf("passkey: %s config: %w", typ, err)
	}
	if len(cfg.Credentials) == 0 {
		return session.Credential{}, fmt.Errorf("passkey: %s config has no credentials", typ)
	}
	for i, k := range cfg.Credentials {
		if len(k.ID) == 0 || len(k.PublicKey) == 0 {
			return session.Credential{}, fmt.Errorf("passkey: %s credential %d lacks its id or public key", typ, i)
		}
		if cfg.find(k.ID) != &cfg.Credentials[i] {
			return session.Credential{}, fmt.Errorf("passkey: %s credential %d repeats id %x", typ, i, k.ID)
		}
	}
	c := session.Credential{Type: typ}
	switch typ {
	case CredentialPasskey:
		if len(cfg.UserHandle) == 0 {
			return session.Credential{}, errors.New("passkey: passkey config has no user_handle")
		}
		for i := range cfg.Credentials {
			cfg.Credentials[i].IsPasswordless = true
		}
		c.Identifiers = []string{string(cfg.UserHandle)}
	case CredentialWebAuthn:
		normalized, err := login.NormalizeIdentifier(identifier)
		if err != nil {
			return session.Credential{}, fmt.Errorf("passkey: a webauthn credential needs the identity's identifier: %w", err)
		}
		c.Identifiers = []string{normalized}
	default:
		return session.Credential{}, fmt.Errorf("passkey: cannot import a credential of type %q", typ)
	}
	if err := cfg.encode(&c); err != nil {
		return session.Credential{}, err
	}
	return c, nil
}
