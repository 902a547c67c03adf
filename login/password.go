package login

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/language"
	"golang.org/x/text/unicode/norm"
	"golang.org/x/text/width"

	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/login/password"
	"github.com/authflow/authflow/session"
)

// Field limits of the password method, in bytes of the value as received
// (CONTRACT Part 1 rule 15).
const (
	MaxIdentifierLength = 512
	MaxPasswordLength   = 4096
)

// Errors of NormalizeIdentifier.
var (
	// ErrEmptyIdentifier means the identifier is empty after trimming.
	ErrEmptyIdentifier = errors.New("login: identifier is empty")
	// ErrIdentifierCharacters means the identifier contains control,
	// format, bidi-control or default-ignorable characters, or is not UTF-8.
	ErrIdentifierCharacters = errors.New("login: identifier contains characters that are not allowed")
)

// NormalizeIdentifier returns the canonical form of a password identifier
// (an email address or a user name): surrounding white space trimmed, width
// folded, NFKC-normalised and lower-cased. Identifiers containing control,
// format, bidi-control or default-ignorable characters are refused, never
// silently stripped. Hosts creating identities must store identifiers in
// this form, because stores compare them verbatim.
func NormalizeIdentifier(s string) (string, error) {
	s, err := checkIdentifier(s)
	if err != nil {
		return "", err
	}
	s = width.Fold.String(s)
	c := lowerPool.Get().(*cases.Caser)
	s = c.String(s)
	lowerPool.Put(c)
	return norm.NFKC.String(s), nil
}

// lowerPool holds lower-casing Casers, which are not safe for concurrent
// use and costly to make.
var lowerPool = sync.Pool{New: func() any { c := cases.Lower(language.Und); return &c }}

// checkIdentifier trims s and refuses it when empty or when it contains
// characters an identifier may not have; it does not normalise.
func checkIdentifier(s string) (string, error) {
	s = strings.TrimFunc(s, unicode.IsSpace)
	if s == "" {
		return "", ErrEmptyIdentifier
	}
	if !utf8.ValidString(s) || strings.IndexFunc(s, disallowedInIdentifier) >= 0 {
		return "", ErrIdentifierCharacters
	}
	return s, nil
}

// disallowedInIdentifier reports the runes an identifier may not contain:
// controls, format characters (which include the bidi controls and
// zero-width joiners), other default-ignorable code points, variation
// selectors, private-use and surrogate code points, line and paragraph
// separators, and non-characters.
func disallowedInIdentifier(r rune) bool {
	return unicode.IsControl(r) ||
		unicode.In(r, unicode.Cf, unicode.Co, unicode.Cs, unicode.Zl, unicode.Zp,
			unicode.Bidi_Control, unicode.Other_Default_Ignorable_Code_Point,
			unicode.Variation_Selector, unicode.Noncharacter_Code_Point)
}

// NewPasswordCredential hashes secret with hasher and returns a password
// credential for the identifier, normalised with NormalizeIdentifier: what a
// host stores to let an identity log in with a password.
func NewPasswordCredential(ctx context.Context, hasher password.Hasher, identifier, secret string) (session.Credential, error) {
	id, err := NormalizeIdentifier(identifier)
	if err != nil {
		return session.Credential{}, err
	}
	encoded, err := hasher.Hash(ctx, []byte(secret))
	if err != nil {
		return session.Credential{}, err
	}
	cfg, err := json.Marshal(session.PasswordConfig{HashedPassword: encoded})
	if err != nil {
		return session.Credential{}, err
	}
	return session.Credential{Type: session.CredentialPassword, Identifiers: []string{id}, Config: cfg}, nil
}

// passwordMethod is the built-in password login method.
type passwordMethod struct {
	hasher password.Hasher
	logger *slog.Logger

	dummyMu sync.Mutex
	dummy   atomic.Pointer[string] // set once made; a failure is not remembered
}

func (m *passwordMethod) ID() string { return "password" }

func (m *passwordMethod) AAL() string { return flow.AAL1 }

func (m *passwordMethod) Nodes(_ context.Context, req *FlowRequest) ([]flow.Node, error) {
	if req.Flow.RequestedAAL != flow.AAL1 {
		return nil, nil // password is a first factor only
	}
	pw := flow.NewInput(flow.GroupPassword, "password", "password", nil, true)
	pw.Attributes.Autocomplete = "current-password"
	pw.Meta.Label = ptr(flow.LabelPassword())
	submit := flow.NewInput(flow.GroupPassword, "method", "submit", "password", false)

	if req.IdentifierFirst {
		if req.Identifier == "" {
			return nil, nil // the first step asks for the identifier alone
		}
		submit.Meta.Label = ptr(flow.SignInWithPassword())
		return []flow.Node{pw, submit}, nil
	}
	if req.Identity != nil { // refresh: confirm the signed-in identity
		var identifier string
		for _, c := range req.Credentials {
			if c.Type == session.CredentialPassword && len(c.Identifiers) > 0 {
				identifier = c.Identifiers[0]
				break
			}
		}
		if identifier == "" {
			return nil, nil
		}
		id := flow.NewInput(flow.GroupDefault, "identifier", "hidden", identifier, false)
		submit.Meta.Label = ptr(flow.SignIn())
		return []flow.Node{id, pw, submit}, nil
	}
	id := flow.NewInput(flow.GroupDefault, "identifier", "text", "", true)
	id.Attributes.Autocomplete = "username"
	id.Meta.Label = ptr(req.IdentifierLabel)
	submit.Meta.Label = ptr(flow.SignInWithPassword())
	return []flow.Node{id, pw, submit}, nil
}

// passwordFields are the fields of a password submission.
type passwordFields struct {
	Identifier string // "identifier", else the legacy "password_identifier"
	Password   string
}

// passwordFieldsOf reads a password submission from its fields.
func passwordFieldsOf(fields url.Values) passwordFields {
	f := passwordFields{Identifier: fields.Get("identifier"), Password: fields.Get("password")}
	if f.Identifier == "" {
		f.Identifier = fields.Get("password_identifier")
	}
	return f
}

func (m *passwordMethod) Validate(_ context.Context, s *Submission) error {
	f := passwordFieldsOf(s.fields)
	raw := f.Identifier
	fields := map[string][]flow.Message{}
	if len(raw) > MaxIdentifierLength {
		fields["identifier"] = append(fields["identifier"], flow.TooLong(MaxIdentifierLength, len(raw)))
	}
	switch normalized, err := NormalizeIdentifier(raw); {
	case errors.Is(err, ErrEmptyIdentifier):
		fields["identifier"] = append(fields["identifier"], flow.Missing("identifier"))
	case err != nil:
		fields["identifier"] = append(fields["identifier"], flow.IdentifierCharacters())
	default:
		s.Identifier = normalized
	}
	switch {
	case f.Password == "":
		fields["password"] = append(fields["password"], flow.Missing("password"))
	case len(f.Password) > MaxPasswordLength:
		fields["password"] = append(fields["password"], flow.TooLong(MaxPasswordLength, len(f.Password)))
	}
	if len(fields) == 0 {
		return nil
	}
	return &FlowError{Fields: fields, Values: map[string]string{"identifier": raw}}
}

// PrefetchIdentity implements IdentityPrefetcher: the password credential
// of the normalised identifier, when Validate would accept it.
func (m *passwordMethod) PrefetchIdentity(fields url.Values) (session.CredentialType, string, bool) {
	raw := passwordFieldsOf(fields).Identifier
	if len(raw) > MaxIdentifierLength {
		return "", "", false
	}
	identifier, err := NormalizeIdentifier(raw)
	if err != nil {
		return "", "", false
	}
	return session.CredentialPassword, identifier, true
}

func (m *passwordMethod) Authenticate(ctx context.Context, s *Submission) (*Result, error) {
	f := passwordFieldsOf(s.fields)
	raw := f.Identifier
	invalid := func() error {
		return &FlowError{Messages: []flow.Message{flow.InvalidCredentials()}, Values: map[string]string{"identifier": raw}, FailedAttempt: true}
	}
	identifier := s.Identifier
	if identifier == "" { // Authenticate without Validate: normalise here.
		var err error
		if identifier, err = NormalizeIdentifier(raw); err != nil {
			return nil, invalid()
		}
	}
	secret := []byte(f.Password)

	id, cred, all, err := s.FindIdentity(ctx, session.CredentialPassword, identifier)
	if errors.Is(err, session.ErrNotFound) {
		if err := m.compareDummy(ctx, secret); err != nil {
			return nil, err
		}
		return nil, invalid()
	}
	if err != nil {
		return nil, fmt.Errorf("find identity: %w", err)
	}
	hashed, ok := hashedPassword(cred.Config)
	if !ok {
		m.logger.WarnContext(ctx, "password credential without a usable hash", "identity_id", id.ID)
		if err := m.compareDummy(ctx, secret); err != nil {
			return nil, err
		}
		return nil, invalid()
	}
	if err := m.hasher.Compare(ctx, secret, hashed); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, ctxErr
		}
		if !errors.Is(err, password.ErrMismatch) {
			m.logger.WarnContext(ctx, "stored password hash cannot be verified", "identity_id", id.ID, "error", err)
		}
		return nil, invalid()
	}
	res := &Result{Identity: id, Method: session.AuthenticationMethod{Method: m.ID(), AAL: flow.AAL1}, Credentials: all}
	if m.hasher.NeedsRehash(hashed) {
		res.AfterLogin = func(ctx context.Context) error { return m.rehash(ctx, s.Identities, id.ID, cred, secret) }
	}
	return res, nil
}

// hashedPassword returns the hash in a password credential's
// configuration ({"hashed_password": "..."}); false when there is none.
func hashedPassword(config json.RawMessage) (string, bool) {
	if !json.Valid(config) {
		return "", false
	}
	var hashed string
	eachJSONField(config, func(key, value []byte) bool {
		if jsonKeyIs(key, "hashed_password") && value[0] == '"' {
			hashed, _ = jsonString(value)
		}
		return true
	})
	return hashed, hashed != ""
}

// compareDummy is the equal-time path for an unknown identifier (and an
// identity without a usable password): it runs a real comparison against a
// hash made once with the configured hasher and parameters, so that the
// answer takes as long as a wrong password for a known identifier
// (CONTRACT Part 1 rule 10). The result is discarded.
func (m *passwordMethod) compareDummy(ctx context.Context, secret []byte) error {
	dummy, err := m.dummyHash(ctx)
	if err != nil {
		return fmt.Errorf("dummy hash: %w", err)
	}
	_ = m.hasher.Compare(ctx, secret, dummy)
	return ctx.Err()
}

// dummyHash returns the hash compareDummy compares against, making it with
// the configured hasher on first use. A failure (or a panic) is not
// remembered: the next attempt tries again, so a passing fault can never
// leave unknown identifiers answering differently from known ones.
func (m *passwordMethod) dummyHash(ctx context.Context) (string, error) {
	if d := m.dummy.Load(); d != nil {
		return *d, nil
	}
	m.dummyMu.Lock()
	defer m.dummyMu.Unlock()
	if d := m.dummy.Load(); d != nil {
		return *d, nil
	}
	d, err := m.hasher.Hash(context.WithoutCancel(ctx), []byte(newSessionToken()))
	if err != nil {
		return "", err
	}
	m.dummy.Store(&d)
	return d, nil
}

// rehash replaces a hash made with another algorithm or weaker parameters
// by one of the configured hasher. The update is conditional on the
// credential's version, so a password changed meanwhile is never undone.
func (m *passwordMethod) rehash(ctx context.Context, ids IdentityStore, identityID string, cred *session.Credential, secret []byte) error {
	encoded, err := m.hasher.Hash(ctx, secret)
	if err != nil {
		return fmt.Errorf("re-hash password: %w", err)
	}
	cfg, err := json.Marshal(session.PasswordConfig{HashedPassword: encoded})
	if err != nil {
		return err
	}
	cred.Config = cfg
	if err := ids.UpdateCredential(ctx, identityID, cred); err != nil {
		return fmt.Errorf("store re-hashed password: %w", err)
	}
	return nil
}

func ptr[T any](v T) *T { return &v }
