package passkey

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/session"
)

// Errors of enrolment and removal.
var (
	// ErrRefreshRequired refuses a session that authenticated longer ago
	// than Config.PrivilegedMaxAge.
	ErrRefreshRequired = errors.New("passkey: the session must sign in again first")
	// ErrNoCeremony means that there is no enrolment to finish for the
	// session: never begun, finished already, or expired.
	ErrNoCeremony = errors.New("passkey: no enrolment in progress")
	// ErrInvalidResponse refuses an attestation that does not parse or
	// verify (challenge, origin, RP ID, user presence or verification).
	ErrInvalidResponse = errors.New("passkey: the authenticator's response is invalid")
	// ErrDuplicateKey refuses a key the identity has already.
	ErrDuplicateKey = errors.New("passkey: this key is enrolled already")
	// ErrNoKey means that the identity has no key with the given id.
	ErrNoKey = errors.New("passkey: no such key")
	// ErrLastFactor refuses to remove the identity's last way to sign in.
	ErrLastFactor = errors.New("passkey: this is the account's last way to sign in")
)

// MaxDisplayNameLength bounds a key's display name, in bytes.
const MaxDisplayNameLength = 64

// enrolment is the enrolment ceremony of one method, embedded in Method
// and WebAuthn.
type enrolment struct {
	rp           *relyingParty
	typ          session.CredentialType
	method       string
	passwordless bool // the keys it enrols log in without a password
	uv           protocol.UserVerificationRequirement
}

// pendingEnrolment is what the ceremony store keeps between begin and
// finish.
type pendingEnrolment struct {
	IdentityID string               `json:"identity_id"`
	SessionID  string               `json:"session_id"`
	Handle     []byte               `json:"handle"`
	Session    webauthn.SessionData `json:"session"`
}

// ceremonyKey is the store key of the session's enrolment: one at a time
// per session and method.
func (e *enrolment) ceremonyKey(s *session.Session) string {
	sum := sha256.Sum256([]byte(s.ID))
	return e.method + ":" + hex.EncodeToString(sum[:])
}

// privileged checks that s may enrol and remove keys.
func (e *enrolment) privileged(s *session.Session) error {
	if s == nil || s.Identity == nil {
		return errors.New("passkey: enrolment needs the signed-in session with its identity")
	}
	if e.rp.cfg.Now().Sub(s.AuthenticatedAt) > e.rp.cfg.PrivilegedMaxAge {
		return ErrRefreshRequired
	}
	return nil
}

// BeginEnrolment starts enrolling a key for the signed-in session s (as
// RequireSession puts it in the request's context; it must have
// authenticated within Config.PrivilegedMaxAge). It returns the options
// for navigator.credentials.create(), {"publicKey": {...}}, as
// webauthn.js's registration functions take them. The identity keeps one
// user handle for all its keys, so that an authenticator replaces its
// passkey for the site instead of adding another; keys it has already are
// excluded; passkeys must be discoverable (resident). The ceremony's
// server-side half is kept in Config.Ceremonies, bound to s, for
// Config.Timeout; beginning again replaces it.
func (e *enrolment) BeginEnrolment(ctx context.Context, s *session.Session) (json.RawMessage, error) {
	if err := e.privileged(s); err != nil {
		return nil, err
	}
	cfg, err := e.config(ctx, s.Identity.ID)
	if err != nil {
		return nil, err
	}
	handle := cfg.UserHandle
	if len(handle) == 0 {
		handle = newUserHandle()
	}
	exclude := make([]protocol.CredentialDescriptor, len(cfg.Credentials))
	for i := range cfg.Credentials {
		exclude[i] = cfg.Credentials[i].descriptor()
	}
	resident := protocol.ResidentKeyRequirementRequired
	if !e.passwordless {
		resident = protocol.ResidentKeyRequirementDiscouraged
	}
	creation, data, err := e.rp.wa.BeginRegistration(
		&user{handle: handle, name: e.rp.cfg.UserName(s.Identity)},
		webauthn.WithExclusions(exclude),
		webauthn.WithAuthenticatorSelection(protocol.AuthenticatorSelection{UserVerification: e.uv}),
		webauthn.WithResidentKeyRequirement(resident),
		webauthn.WithConveyancePreference(protocol.PreferNoAttestation),
	)
	if err != nil {
		return nil, fmt.Errorf("passkey: begin enrolment: %w", err)
	}
	pending, err := json.Marshal(pendingEnrolment{IdentityID: s.Identity.ID, SessionID: s.ID, Handle: handle, Session: *data})
	if err != nil {
		return nil, err
	}
	if err := e.rp.cfg.Ceremonies.PutCeremony(ctx, e.ceremonyKey(s), pending, e.rp.cfg.Now().Add(e.rp.cfg.Timeout)); err != nil {
		return nil, fmt.Errorf("passkey: keep enrolment: %w", err)
	}
	return json.Marshal(creation)
}

// FinishEnrolment verifies the authenticator's response (the attestation
// JSON webauthn.js writes, {"id", "rawId", "type", "response":
// {"attestationObject", "clientDataJSON"}}) to the session's enrolment and
// stores the new key under displayName (cut to MaxDisplayNameLength). The
// enrolment is used up by this call whatever its outcome. Errors:
// ErrRefreshRequired, ErrNoCeremony, ErrInvalidResponse, ErrDuplicateKey.
func (e *enrolment) FinishEnrolment(ctx context.Context, s *session.Session, response []byte, displayName string) (*Key, error) {
	if err := e.privileged(s); err != nil {
		return nil, err
	}
	raw, err := e.rp.cfg.Ceremonies.TakeCeremony(ctx, e.ceremonyKey(s), e.rp.cfg.Now())
	if errors.Is(err, login.ErrNoCeremony) {
		return nil, ErrNoCeremony
	}
	if err != nil {
		return nil, fmt.Errorf("passkey: take enrolment: %w", err)
	}
	var pending pendingEnrolment
	if err := json.Unmarshal(raw, &pending); err != nil {
		return nil, fmt.Errorf("passkey: stored enrolment: %w", err)
	}
	if pending.IdentityID != s.Identity.ID || pending.SessionID != s.ID {
		return nil, ErrNoCeremony
	}
	if len(response) > maxResponseLength {
		return nil, fmt.Errorf("%w: %d bytes", ErrInvalidResponse, len(response))
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(response)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidResponse, err)
	}
	u := &user{handle: pending.Handle, name: e.rp.cfg.UserName(s.Identity)}
	created, err := e.rp.wa.CreateCredential(u, pending.Session, parsed)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidResponse, err)
	}
	key := newKey(created, clipName(displayName), e.passwordless, e.rp.cfg.Now())
	err = changeCredential(ctx, e.rp.cfg.Identities, s.Identity.ID, e.typ, func(c *session.Credential, cfg *CredentialConfig) error {
		if cfg.find(key.ID) != nil {
			return ErrDuplicateKey
		}
		cfg.Credentials = append(cfg.Credentials, key)
		cfg.UserHandle = pending.Handle
		identifier := string(pending.Handle)
		if e.typ == CredentialWebAuthn {
			// The identifier a passwordless login finds the keys by.
			identifier = e.rp.cfg.UserName(s.Identity)
			if normalized, err := login.NormalizeIdentifier(identifier); err == nil {
				identifier = normalized
			}
		}
		if !slices.Contains(c.Identifiers, identifier) {
			c.Identifiers = append(c.Identifiers, identifier)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &key, nil
}

// Keys returns the identity's keys of this method, oldest first.
func (e *enrolment) Keys(ctx context.Context, identityID string) ([]Key, error) {
	cfg, err := e.config(ctx, identityID)
	if err != nil {
		return nil, err
	}
	return cfg.Credentials, nil
}

// RemoveKey removes the key with id from the signed-in session's
// identity (the session must be privileged, as for enrolment). A passkey
// that is the identity's last way to sign in (no other passkey, password,
// social sign-in or login code credential) is kept: ErrLastFactor.
func (e *enrolment) RemoveKey(ctx context.Context, s *session.Session, id []byte) error {
	if err := e.privileged(s); err != nil {
		return err
	}
	ids := e.rp.cfg.Identities
	return changeCredential(ctx, ids, s.Identity.ID, e.typ, func(c *session.Credential, cfg *CredentialConfig) error {
		i := slices.IndexFunc(cfg.Credentials, func(k Key) bool { return bytes.Equal(k.ID, id) })
		if i < 0 || c.Version == 0 {
			return ErrNoKey
		}
		cfg.Credentials = slices.Delete(cfg.Credentials, i, i+1)
		if e.passwordless && !slices.ContainsFunc(cfg.Credentials, func(k Key) bool { return k.IsPasswordless }) {
			other, err := hasOtherFirstFactor(ctx, e, s.Identity.ID)
			if err != nil {
				return err
			}
			if !other {
				return ErrLastFactor
			}
		}
		if len(cfg.Credentials) == 0 && e.typ == CredentialPasskey {
			c.Identifiers = nil // no key answers to the handle any more
		}
		return nil
	})
}

// hasOtherFirstFactor reports whether the identity can sign in without
// e's keys.
func hasOtherFirstFactor(ctx context.Context, e *enrolment, identityID string) (bool, error) {
	creds, err := e.rp.cfg.Identities.Credentials(ctx, identityID)
	if err != nil {
		return false, err
	}
	for _, c := range creds {
		switch c.Type {
		case e.typ, session.CredentialTOTP, session.CredentialLookup:
		case CredentialPasskey, CredentialWebAuthn:
			cfg, err := decodeConfig(&c)
			if err != nil {
				return false, err
			}
			if slices.ContainsFunc(cfg.Credentials, func(k Key) bool { return k.IsPasswordless }) {
				return true, nil
			}
		default:
			return true, nil // password, social sign-in, login codes
		}
	}
	return false, nil
}

// config returns the identity's credential configuration of this method
// (empty when it has none).
func (e *enrolment) config(ctx context.Context, identityID string) (*CredentialConfig, error) {
	if e.rp.cfg.Identities == nil {
		return nil, errors.New("passkey: Config.Identities is needed for enrolment")
	}
	creds, err := e.rp.cfg.Identities.Credentials(ctx, identityID)
	if err != nil {
		return nil, err
	}
	for i := range creds {
		if creds[i].Type == e.typ {
			return decodeConfig(&creds[i])
		}
	}
	return &CredentialConfig{}, nil
}

// clipName cuts a display name to MaxDisplayNameLength bytes, at a rune
// boundary.
func clipName(s string) string {
	if len(s) <= MaxDisplayNameLength {
		return s
	}
	s = s[:MaxDisplayNameLength]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}
