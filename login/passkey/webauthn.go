package passkey

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/go-webauthn/webauthn/protocol"

	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/session"
)

// WebAuthnID is the webauthn method's id: its "method" value, node group
// and credential type.
const WebAuthnID = "webauthn"

// WebAuthnConfig configures the webauthn method.
type WebAuthnConfig struct {
	Config
	// Passwordless makes security keys a first factor (aal1) that logs in
	// after the identifier alone, as Kratos' legacy passwordless mode;
	// only keys enrolled in that mode count. Off (the default), a key is
	// a second factor (aal2) in step-up flows, beside TOTP and backup
	// codes, and its ceremonies discourage user verification as Kratos'
	// do.
	Passwordless bool
	// DecoyKey keys the decoy challenges a passwordless login shows for an
	// identifier that has no key, so that they look alike for every
	// instance and over time; nil means a random key per process.
	DecoyKey []byte
}

// WebAuthn is the webauthn login method; it implements login.Method and
// login.FieldSelected. It is safe for concurrent use.
type WebAuthn struct {
	rp           *relyingParty
	passwordless bool
	uv           protocol.UserVerificationRequirement
	decoy        []byte
	enrolment
}

var _ login.FieldSelected = (*WebAuthn)(nil)

// NewWebAuthn checks cfg and returns the webauthn method.
func NewWebAuthn(cfg WebAuthnConfig) (*WebAuthn, error) {
	rp, err := newRelyingParty(cfg.Config)
	if err != nil {
		return nil, err
	}
	m := &WebAuthn{rp: rp, passwordless: cfg.Passwordless, uv: protocol.VerificationDiscouraged, decoy: cfg.DecoyKey}
	if cfg.Passwordless {
		m.uv = rp.uv
	}
	if len(m.decoy) == 0 {
		m.decoy = make([]byte, 32)
		if _, err := rand.Read(m.decoy); err != nil {
			return nil, err
		}
	}
	m.enrolment = enrolment{rp: rp, typ: CredentialWebAuthn, method: WebAuthnID, passwordless: cfg.Passwordless, uv: m.uv}
	return m, nil
}

// ID implements login.Method.
func (m *WebAuthn) ID() string { return WebAuthnID }

// AAL implements login.Method: aal2, or aal1 when passwordless.
func (m *WebAuthn) AAL() string {
	if m.passwordless {
		return flow.AAL1
	}
	return flow.AAL2
}

// SelectingField implements login.FieldSelected: webauthn.js posts the
// assertion in webauthn_login with form.submit(), without a method field.
func (m *WebAuthn) SelectingField() string { return "webauthn_login" }

// Nodes implements login.Method. As a second factor: in a browser's
// step-up flow of an identity with security keys, the identifier (hidden),
// the assertion's field (webauthn_login), the script and the "Sign in with
// a hardware key" button (webauthn_login_trigger) whose value and onclick
// carry the challenge for the identity's keys. Kratos offers none to API
// flows, and neither does this method. Passwordless: in a browser's
// first-factor flow, the identifier and a method=webauthn button that asks
// for the challenge.
func (m *WebAuthn) Nodes(_ context.Context, req *login.FlowRequest) ([]flow.Node, error) {
	if req.Flow.Type != flow.TypeBrowser {
		return nil, nil
	}
	if m.passwordless {
		if req.Flow.RequestedAAL == flow.AAL2 || (req.IdentifierFirst && req.Identifier == "") {
			return nil, nil
		}
		var nodes []flow.Node
		if !req.IdentifierFirst {
			id := flow.NewInput(flow.GroupDefault, "identifier", "text", "", true)
			id.Attributes.Autocomplete = "username webauthn"
			id.Meta.Label = &req.IdentifierLabel
			nodes = append(nodes, id)
		}
		submit := flow.NewInput(flow.GroupWebAuthn, "method", "submit", WebAuthnID, false)
		label := flow.SignInWithKey()
		submit.Meta.Label = &label
		return append(nodes, submit), nil
	}
	if req.Flow.RequestedAAL != flow.AAL2 || req.Identity == nil {
		return nil, nil
	}
	cred, cfg, err := webauthnCredential(req.Credentials)
	if err != nil || cred == nil {
		return nil, err
	}
	handle, allow := keysOf(cfg, false, req.Identity.ID)
	if len(allow) == 0 {
		return nil, nil
	}
	options, st, err := m.rp.begin(handle, allow, m.uv)
	if err != nil {
		return nil, err
	}
	if err := setState(req, st); err != nil {
		return nil, err
	}
	trigger, err := triggerNode(options, flow.SignInWithKey())
	if err != nil {
		return nil, err
	}
	identifier := ""
	if len(cred.Identifiers) > 0 {
		identifier = cred.Identifiers[0]
	}
	return []flow.Node{
		flow.NewInput(flow.GroupDefault, "identifier", "hidden", identifier, true),
		flow.NewInput(flow.GroupWebAuthn, "webauthn_login", "hidden", "", false),
		req.WebAuthnScript(),
		trigger,
	}, nil
}

// webauthnCredential returns the webauthn credential among creds and its
// configuration; nil when there is none.
func webauthnCredential(creds []session.Credential) (*session.Credential, *CredentialConfig, error) {
	for i := range creds {
		if creds[i].Type == CredentialWebAuthn {
			cfg, err := decodeConfig(&creds[i])
			return &creds[i], cfg, err
		}
	}
	return nil, nil, nil
}

// keysOf returns the user handle of cfg's keys and the keys of the given
// kind (passwordless or second factor) as allowCredentials. A credential
// without a user handle (imported without one) uses the identity's id.
func keysOf(cfg *CredentialConfig, passwordless bool, identityID string) ([]byte, []protocol.CredentialDescriptor) {
	handle := cfg.UserHandle
	if len(handle) == 0 {
		handle = []byte(identityID)
	}
	var allow []protocol.CredentialDescriptor
	for i := range cfg.Credentials {
		if cfg.Credentials[i].IsPasswordless == passwordless {
			allow = append(allow, cfg.Credentials[i].descriptor())
		}
	}
	return handle, allow
}

// triggerNode is the webauthn_login_trigger button that runs
// oryWebAuthnLogin with options.
func triggerNode(options *protocol.CredentialAssertion, label flow.Message) (flow.Node, error) {
	v, err := optionsJSON(options)
	if err != nil {
		return flow.Node{}, err
	}
	t := flow.NewInput(flow.GroupWebAuthn, "webauthn_login_trigger", "button", v, false)
	t.Attributes.Onclick = "window.oryWebAuthnLogin(" + v + ")"
	t.Attributes.OnclickTrigger = "oryWebAuthnLogin"
	t.Meta.Label = &label
	return t, nil
}

// Validate implements login.Method: the identifier is required whenever
// the method is chosen or an assertion is posted (4000002, as Kratos'
// schema has it, even in a step-up where it is ignored); webauthn_login
// must parse as an assertion (4000001). A passwordless first step checks
// the identifier as the password method does.
func (m *WebAuthn) Validate(_ context.Context, s *login.Submission) error {
	raw := s.Field("webauthn_login")
	if s.Field("identifier") == "" {
		return &login.FlowError{Fields: map[string][]flow.Message{"identifier": {flow.Missing("identifier")}}}
	}
	if raw == "" && !m.passwordless {
		return &login.FlowError{Fields: map[string][]flow.Message{"webauthn_login": {flow.Missing("webauthn_login")}}}
	}
	if m.passwordless {
		// Both steps are throttled by the identifier (a step-up's by the
		// session's identity, which the handler sets).
		identifier, err := login.NormalizeIdentifier(s.Field("identifier"))
		if err != nil || len(s.Field("identifier")) > login.MaxIdentifierLength {
			return &login.FlowError{Fields: map[string][]flow.Message{"identifier": {flow.IdentifierCharacters()}}}
		}
		s.Identifier = identifier
	}
	if raw == "" {
		return nil
	}
	_, err := parseAssertion(raw)
	return err
}

// Authenticate implements login.Method: it burns the flow's challenge
// (the answered flow carries a fresh one) and verifies the assertion
// against the keys the challenge was made for: the step-up session's
// identity's, or in a passwordless second step those of the identity the
// identifier named. 4000013 for an identity without keys, 4000043 for an
// assertion that does not verify; refusals count as failed attempts.
func (m *WebAuthn) Authenticate(ctx context.Context, s *login.Submission) (*login.Result, error) {
	raw := s.Field("webauthn_login")
	if raw == "" {
		return m.challengeFor(ctx, s) // passwordless first step (Validate)
	}
	p, st, err := m.rp.spend(ctx, s, raw, m.renew)
	if err != nil {
		return nil, err
	}
	var identity *session.Identity
	switch {
	case !m.passwordless:
		if s.Session == nil || s.Session.Identity == nil {
			return nil, errors.New("passkey: webauthn submission without the session of a step-up flow")
		}
		identity = s.Session.Identity
	case st.IdentityID == "":
		return nil, invalid(errors.New("assertion for the decoy of an identifier without keys"))
	default:
		if identity, err = s.Identities.Identity(ctx, st.IdentityID); err != nil {
			if errors.Is(err, session.ErrNotFound) {
				return nil, invalid(err)
			}
			return nil, fmt.Errorf("passkey: identity: %w", err)
		}
	}
	creds, err := s.Identities.Credentials(ctx, identity.ID)
	if err != nil {
		return nil, fmt.Errorf("passkey: credentials: %w", err)
	}
	_, cfg, err := webauthnCredential(creds)
	if err != nil {
		return nil, err
	}
	u := &user{handle: st.Session.UserID, name: m.rp.cfg.UserName(identity)}
	if cfg != nil {
		for i := range cfg.Credentials {
			if cfg.Credentials[i].IsPasswordless == m.passwordless {
				u.keys = append(u.keys, cfg.Credentials[i].library(p.Response.AuthenticatorData.Flags))
			}
		}
	}
	if len(u.keys) == 0 {
		return nil, &login.FlowError{Messages: []flow.Message{flow.NoWebAuthnDevice()}}
	}
	key, err := m.rp.wa.ValidateLogin(u, st.Session, p)
	if err != nil {
		return nil, invalid(err)
	}
	return m.rp.verified(ctx, s, identity, creds, CredentialWebAuthn, key, session.AuthenticationMethod{Method: WebAuthnID, AAL: m.AAL()})
}

// renew makes the successor of a burnt challenge: for the same user
// handle and keys, with the button that shows it.
func (m *WebAuthn) renew(old *ceremonyState) (*ceremonyState, []flow.Node, error) {
	if old == nil {
		return nil, nil, invalid(errors.New("the flow holds no challenge"))
	}
	allow := make([]protocol.CredentialDescriptor, len(old.Session.AllowedCredentialIDs))
	for i, id := range old.Session.AllowedCredentialIDs {
		allow[i] = protocol.CredentialDescriptor{Type: protocol.PublicKeyCredentialType, CredentialID: id}
	}
	options, st, err := m.rp.begin(old.Session.UserID, allow, m.uv)
	if err != nil {
		return nil, nil, err
	}
	st.IdentityID, st.Identifier = old.IdentityID, old.Identifier
	label := flow.SignInWithKey()
	if m.passwordless {
		label = flow.ContinueWebAuthn()
	}
	trigger, err := triggerNode(options, label)
	if err != nil {
		return nil, nil, err
	}
	return st, []flow.Node{trigger}, nil
}

// challengeFor is a passwordless login's first step: the challenge for
// the keys of the identity the identifier names, or, for an identifier
// without keys, a decoy challenge for a key that does not exist, made
// alike, so that the step reveals nothing about accounts (Kratos answers
// 4000015 here). The flow then shows the identifier (hidden), the script,
// the "Continue" button with the challenge and the assertion's field, with
// message 1010012.
func (m *WebAuthn) challengeFor(ctx context.Context, s *login.Submission) (*login.Result, error) {
	identifier := s.Identifier
	identity, cred, err := s.Identities.FindIdentity(ctx, CredentialWebAuthn, identifier)
	if err != nil && !errors.Is(err, session.ErrNotFound) {
		return nil, fmt.Errorf("passkey: find identity: %w", err)
	}
	handle, decoyID := m.decoyKey(identifier)
	var (
		allow      []protocol.CredentialDescriptor
		identityID string
	)
	if cred != nil {
		cfg, err := decodeConfig(cred)
		if err != nil {
			return nil, err
		}
		if h, keys := keysOf(cfg, true, identity.ID); len(keys) > 0 {
			handle, allow, identityID = h, keys, identity.ID
		}
	}
	if identityID == "" {
		allow = []protocol.CredentialDescriptor{{Type: protocol.PublicKeyCredentialType, CredentialID: decoyID}}
	}
	options, st, err := m.rp.begin(handle, allow, m.uv)
	if err != nil {
		return nil, err
	}
	st.IdentityID, st.Identifier = identityID, identifier
	raw, err := marshalState(st)
	if err != nil {
		return nil, err
	}
	trigger, err := triggerNode(options, flow.ContinueWebAuthn())
	if err != nil {
		return nil, err
	}
	return &login.Result{
		Step: &login.Step{
			State: flow.StateChooseMethod,
			Nodes: []flow.Node{
				flow.NewInput(flow.GroupDefault, "identifier", "hidden", s.Field("identifier"), true),
				s.WebAuthnScript(),
				trigger,
				flow.NewInput(flow.GroupWebAuthn, "webauthn_login", "hidden", "", false),
			},
			Messages: []flow.Message{flow.PrepareWebAuthn()},
		},
		MethodState: raw,
	}, nil
}

// decoyKey derives the user handle and key id of an identifier's decoy
// challenge: the same for the same identifier.
func (m *WebAuthn) decoyKey(identifier string) (handle, keyID []byte) {
	mac := hmac.New(sha256.New, m.decoy)
	mac.Write([]byte("handle\x00" + identifier))
	handle = mac.Sum(nil)
	mac.Reset()
	mac.Write([]byte("key\x00" + identifier))
	return handle, mac.Sum(nil)
}
