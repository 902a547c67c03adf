// Package session holds who is signed in: the [Session] and the [Identity]
// it embeds, the records and credentials stores keep, the in-memory session
// and identity stores, and the request-context helpers.
//
// A host route reads the session the login handler's middleware found:
//
//	func dashboard(w http.ResponseWriter, r *http.Request) {
//		s, ok := session.FromContext(r.Context())
//		if !ok {
//			http.Error(w, "sign in first", http.StatusUnauthorized)
//			return
//		}
//		fmt.Fprintf(w, "hello %s", s.Identity.ID)
//	}
//
// Stores signal "not found" with [ErrNotFound] and a duplicate or stale
// write with [ErrConflict]; check them with errors.Is.
package session

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// Sentinel errors of session and identity stores.
var (
	// ErrNotFound means no session or identity matches.
	ErrNotFound = errors.New("session: not found")
	// ErrConflict means a write clashes with stored state: a duplicate id or
	// identifier, or a conditional update that lost.
	ErrConflict = errors.New("session: conflict")
	// ErrInactive means a conditional session update found the session
	// revoked or expired: a session that ended is never revived.
	ErrInactive = errors.New("session: revoked or expired")
)

// Session is an authenticated session in its wire format.
type Session struct {
	ID string `json:"id"`
	// Active is computed when the session is served: not revoked, not
	// expired, and its identity active. In a stored Record it means "not
	// revoked".
	Active          bool      `json:"active"`
	ExpiresAt       time.Time `json:"expires_at"`
	AuthenticatedAt time.Time `json:"authenticated_at"`
	// AAL is the authenticator assurance level, "aal1" after a password login.
	AAL                   string                 `json:"authenticator_assurance_level"`
	AuthenticationMethods []AuthenticationMethod `json:"authentication_methods"`
	IssuedAt              time.Time              `json:"issued_at"`
	// Identity is the signed-in identity, without credentials. It is nil in
	// stored records.
	Identity *Identity `json:"identity"`
	Devices  []Device  `json:"devices"`
}

// AuthenticationMethod records one completed authentication of a session.
type AuthenticationMethod struct {
	Method      string    `json:"method"`
	AAL         string    `json:"aal"`
	CompletedAt time.Time `json:"completed_at"`
	// Provider is the social sign-in provider, when there was one.
	Provider string `json:"provider,omitempty"`
}

// Device is where a session was used from.
type Device struct {
	ID        string `json:"id"`
	IPAddress string `json:"ip_address"`
	UserAgent string `json:"user_agent"`
	Location  string `json:"location"`
}

// Record is what a session store keeps: the session without its identity,
// plus the identity's id and the hash of the session token. Stores never
// see the token itself.
type Record struct {
	Session Session
	// IdentityID is the id of the session's identity.
	IdentityID string
	// TokenHash is the SHA-256 of the session token, hex-encoded.
	TokenHash string
}

// Valid reports whether the stored session may be used at now: not revoked
// and not expired. The identity's state is checked separately.
func (r *Record) Valid(now time.Time) bool {
	return r.Session.Active && now.Before(r.Session.ExpiresAt)
}

// Clone returns a deep copy of r.
func (r *Record) Clone() *Record {
	c := *r
	c.Session.AuthenticationMethods = append([]AuthenticationMethod(nil), r.Session.AuthenticationMethods...)
	c.Session.Devices = append([]Device(nil), r.Session.Devices...)
	if r.Session.Identity != nil {
		c.Session.Identity = r.Session.Identity.Clone()
	}
	return &c
}

// State is an identity's state.
type State string

// Identity states. Only active identities can sign in.
const (
	StateActive   State = "active"
	StateInactive State = "inactive"
)

// Identity is a user in its wire format. Credentials are kept apart (see
// [Credential]) and never serialised.
type Identity struct {
	ID string `json:"id"`
	// SchemaID is "default" in version 1.
	SchemaID string `json:"schema_id"`
	// SchemaURL is filled in by the handler from its public URL.
	SchemaURL      string     `json:"schema_url"`
	State          State      `json:"state"`
	StateChangedAt *time.Time `json:"state_changed_at,omitempty"`
	// Traits is the identity's JSON object of traits, e.g. {"email": "..."}.
	Traits json.RawMessage `json:"traits"`
	// MetadataPublic is JSON or nil (sent as null).
	MetadataPublic json.RawMessage `json:"metadata_public"`
	CreatedAt      time.Time       `json:"created_at"`
	UpdatedAt      time.Time       `json:"updated_at"`
	// OrganizationID is always null in version 1; the key is always present.
	OrganizationID *string `json:"organization_id"`
}

// Active reports whether the identity may sign in.
func (i *Identity) Active() bool { return i.State == StateActive }

// Clone returns a deep copy of i.
func (i *Identity) Clone() *Identity {
	c := *i
	c.Traits = append(json.RawMessage(nil), i.Traits...)
	c.MetadataPublic = append(json.RawMessage(nil), i.MetadataPublic...)
	if i.MetadataPublic == nil {
		c.MetadataPublic = nil
	}
	if i.Traits == nil {
		c.Traits = nil
	}
	if i.StateChangedAt != nil {
		t := *i.StateChangedAt
		c.StateChangedAt = &t
	}
	if i.OrganizationID != nil {
		o := *i.OrganizationID
		c.OrganizationID = &o
	}
	return &c
}

// AssuranceLevel is the authenticator assurance level that a session's
// authentication methods prove together (CONTRACT-AAL §2): "aal2" when
// they include a first factor (aal1) and a second factor (aal2), "aal1"
// otherwise, "" for none.
func AssuranceLevel(methods []AuthenticationMethod) string {
	var first, second bool
	for _, m := range methods {
		switch m.AAL {
		case "aal1":
			first = true
		case "aal2":
			second = true
		}
	}
	switch {
	case first && second:
		return "aal2"
	case len(methods) > 0:
		return "aal1"
	}
	return ""
}

// CredentialType names a kind of credential.
type CredentialType string

// Credential types.
const (
	CredentialPassword CredentialType = "password"
	CredentialOIDC     CredentialType = "oidc"
	// CredentialTOTP is a TOTP authenticator (package login/totp); its
	// identifier is the identity's id.
	CredentialTOTP CredentialType = "totp"
	// CredentialLookup is a set of backup ("lookup") codes (package
	// login/lookup); its identifier is the identity's id.
	CredentialLookup CredentialType = "lookup_secret"
)

// Credential is one way an identity proves itself. An identity has at most
// one credential of each type.
type Credential struct {
	Type CredentialType
	// Identifiers find the identity: normalised identifiers for password
	// (see login.NormalizeIdentifier), "provider:subject" for oidc. Stores
	// compare them verbatim.
	Identifiers []string
	// Config is the type's JSON configuration; for password
	// {"hashed_password": "<encoded hash>"} (see PasswordConfig).
	Config json.RawMessage
	// Version increases with every stored change; credential updates are
	// conditional on it so a background re-hash never undoes a password
	// change. Stores set it.
	Version int64
}

// Clone returns a deep copy of c.
func (c *Credential) Clone() *Credential {
	d := *c
	d.Identifiers = append([]string(nil), c.Identifiers...)
	d.Config = append(json.RawMessage(nil), c.Config...)
	return &d
}

// PasswordConfig is the Config of a password credential.
type PasswordConfig struct {
	HashedPassword string `json:"hashed_password"`
}

type contextKey struct{}

// NewContext returns a copy of ctx carrying s.
func NewContext(ctx context.Context, s *Session) context.Context {
	return context.WithValue(ctx, contextKey{}, s)
}

// FromContext returns the session stored in ctx by NewContext (the login
// handler's middleware does that), if any.
func FromContext(ctx context.Context) (*Session, bool) {
	s, ok := ctx.Value(contextKey{}).(*Session)
	return s, ok && s != nil
}
