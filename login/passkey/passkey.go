// Package passkey is WebAuthn sign-in for login.Config.Methods: the
// "passkey" method (a first factor, aal1: the browser offers the user's
// passkeys for the site and the assertion's user handle finds the
// identity) and the "webauthn" method (a security key as the second
// factor, aal2, or in Kratos' legacy passwordless mode a first factor
// after the identifier), with enrolment for signed-in users and import of
// Kratos' credentials. It is built on github.com/go-webauthn/webauthn.
//
//	pk, err := passkey.New(passkey.Config{
//		RPID: "example.com", RPDisplayName: "Example",
//		Origins: []string{"https://login.example.com"}, Identities: ids,
//	})
//	h, err := login.New(login.Config{..., Methods: []login.Method{pk}})
//	mux.Handle("/passkeys/", h.RequireSession(http.StripPrefix("/passkeys", pk.EnrolmentHandler())))
//
// Flows carry Kratos' nodes (CONTRACT-PASSKEY §2) and are driven by the
// handler's /.well-known/ory/webauthn.js, so Ory's UIs and SDK work
// unchanged. Where Kratos is lax this package is not (§7): passkeys require
// user verification by default; a challenge is verified at most once (any
// attempt burns it, and the flow answered carries a fresh one) and expires
// with the ceremony timeout; every refused assertion counts as a failed
// attempt for throttling; a signature counter that goes backwards is
// recorded on the key and, with Config.RefuseClonedKeys, refused for keys
// that are not backup eligible; the RP ID and origins come from Config and
// are checked on every ceremony.
package passkey

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/session"
)

// maxUserHandleLength is WebAuthn's limit on a user handle, in bytes.
const maxUserHandleLength = 64

// MethodID is the passkey method's id: its "method" value, node group and
// credential type.
const MethodID = "passkey"

// Method is the passkey login method; it implements login.Method and
// login.FieldSelected. It is safe for concurrent use.
type Method struct {
	rp *relyingParty
	enrolment
}

var _ login.FieldSelected = (*Method)(nil)

// New checks cfg and returns the passkey method.
func New(cfg Config) (*Method, error) {
	rp, err := newRelyingParty(cfg)
	if err != nil {
		return nil, err
	}
	m := &Method{rp: rp}
	m.enrolment = enrolment{rp: rp, typ: CredentialPasskey, method: MethodID, passwordless: true, uv: rp.uv}
	return m, nil
}

// ID implements login.Method.
func (m *Method) ID() string { return MethodID }

// AAL implements login.Method: a passkey is a first factor. It never
// satisfies aal2, as in Kratos, whose UIs and SDK assume so.
func (m *Method) AAL() string { return flow.AAL1 }

// SelectingField implements login.FieldSelected: webauthn.js posts the
// assertion in passkey_login with form.submit(), without a method field.
func (m *Method) SelectingField() string { return "passkey_login" }

// Nodes implements login.Method: on every first-factor flow, a
// discoverable challenge (passkey_challenge), the field the assertion is
// posted in (passkey_login, whose onload starts the browser's passkey
// autofill) and the "Sign in with passkey" button (passkey_login_trigger);
// the first step of an identifier-first flow has no button, only the
// autofill. A refresh flow of an identity with passkeys allows only its
// passkeys and has no autofill. Browser flows also get the script node.
func (m *Method) Nodes(_ context.Context, req *login.FlowRequest) ([]flow.Node, error) {
	if req.Flow.RequestedAAL == flow.AAL2 {
		return nil, nil
	}
	var allow []protocol.CredentialDescriptor
	refresh := req.Flow.Refresh && req.Identity != nil
	if refresh {
		cfg, err := passkeyConfig(req.Credentials)
		if err != nil {
			return nil, err
		}
		if cfg == nil || len(cfg.Credentials) == 0 {
			return nil, nil
		}
		for i := range cfg.Credentials {
			allow = append(allow, cfg.Credentials[i].descriptor())
		}
	}
	options, st, err := m.rp.begin(nil, allow, m.rp.uv)
	if err != nil {
		return nil, err
	}
	if err := setState(req, st); err != nil {
		return nil, err
	}
	browser := req.Flow.Type == flow.TypeBrowser
	var nodes []flow.Node
	if !req.IdentifierFirst && !refresh {
		// The field the browser's passkey autofill attaches to, shared
		// with the password method's (Kratos' autocomplete tokens).
		id := flow.NewInput(flow.GroupDefault, "identifier", "text", "", true)
		id.Attributes.Autocomplete = "username webauthn"
		id.Meta.Label = &req.IdentifierLabel
		nodes = append(nodes, id)
	}
	if browser {
		nodes = append(nodes, req.WebAuthnScript())
	}
	firstStep := req.IdentifierFirst && req.Identifier == ""
	own, err := passkeyNodes(options, browser, !firstStep, !refresh)
	if err != nil {
		return nil, err
	}
	return append(nodes, own...), nil
}

// passkeyNodes are the passkey group's nodes for options: the button
// when trigger is set, the assertion's field (starting the autofill when
// autofill is set), and the challenge. Only browser flows get the
// JavaScript strings; every flow gets the trigger names.
func passkeyNodes(options *protocol.CredentialAssertion, browser, trigger, autofill bool) ([]flow.Node, error) {
	var nodes []flow.Node
	if trigger {
		t := flow.NewInput(flow.GroupPasskey, "passkey_login_trigger", "button", "", false)
		t.Attributes.OnclickTrigger = "oryPasskeyLogin"
		if browser {
			t.Attributes.Onclick = "window.oryPasskeyLogin()"
		}
		label := flow.SignInWithPasskey()
		t.Meta.Label = &label
		nodes = append(nodes, t)
	}
	result := flow.NewInput(flow.GroupPasskey, "passkey_login", "hidden", nil, false)
	if autofill {
		result.Attributes.OnloadTrigger = "oryPasskeyLoginAutocompleteInit"
		if browser {
			result.Attributes.Onload = "window.oryPasskeyLoginAutocompleteInit()"
		}
	}
	challenge, err := challengeNode(options)
	if err != nil {
		return nil, err
	}
	return append(nodes, result, challenge), nil
}

// challengeNode is the passkey_challenge node showing options.
func challengeNode(options *protocol.CredentialAssertion) (flow.Node, error) {
	v, err := optionsJSON(options)
	if err != nil {
		return flow.Node{}, err
	}
	return flow.NewInput(flow.GroupPasskey, "passkey_challenge", "hidden", v, false), nil
}

// Validate implements login.Method: passkey_login must parse as an
// assertion (else 4000001 "Unable to parse WebAuthn response."). Its user
// handle is the attempt's identifier for throttling. An empty
// passkey_login (a method=passkey button) is left to Authenticate.
func (m *Method) Validate(_ context.Context, s *login.Submission) error {
	raw := s.Field("passkey_login")
	if raw == "" {
		return nil
	}
	p, err := parseAssertion(raw)
	if err != nil {
		return err
	}
	s.Identifier = throttleKey(MethodID, p.Response.UserHandle)
	return nil
}

// throttleKey is the identifier an assertion is throttled by.
func throttleKey(method string, handle []byte) string {
	if len(handle) > userHandleLength {
		handle = handle[:userHandleLength]
	}
	return method + ":" + fmt.Sprintf("%x", handle)
}

// Authenticate implements login.Method. It burns the flow's challenge
// (the answered flow carries a fresh one), finds the identity by the
// assertion's user handle (4000015 when none) and verifies the assertion
// against that identity's passkeys: challenge, origin, RP ID, user
// presence and, by default, verification, signature, backup flags and
// counter (4000043 on any failure). Refusals count as failed attempts.
func (m *Method) Authenticate(ctx context.Context, s *login.Submission) (*login.Result, error) {
	raw := s.Field("passkey_login")
	if raw == "" {
		return m.restart(ctx, s)
	}
	p, st, err := m.rp.spend(ctx, s, raw, m.renew)
	if err != nil {
		return nil, err
	}
	handle := p.Response.UserHandle
	if len(handle) == 0 || len(handle) > maxUserHandleLength || !utf8.Valid(handle) || bytes.IndexByte(handle, 0) >= 0 {
		// No identifier is looked up for a handle no enrolment makes
		// (WebAuthn caps handles at 64 bytes; stores keep text).
		return nil, noKey(fmt.Errorf("assertion with a user handle of %d bytes that no key has", len(handle)))
	}
	identity, cred, all, err := s.FindIdentity(ctx, CredentialPasskey, string(handle))
	if errors.Is(err, session.ErrNotFound) {
		return nil, noKey(errors.New("no identity has this user handle"))
	}
	if err != nil {
		return nil, fmt.Errorf("passkey: find identity: %w", err)
	}
	cfg, err := decodeConfig(cred)
	if err != nil {
		return nil, err
	}
	u := &user{handle: handle, name: m.rp.cfg.UserName(identity)}
	for i := range cfg.Credentials {
		if cfg.Credentials[i].IsPasswordless {
			u.keys = append(u.keys, cfg.Credentials[i].library(p.Response.AuthenticatorData.Flags))
		}
	}
	lookup := func(_, _ []byte) (webauthn.User, error) { return u, nil }
	key, err := m.rp.wa.ValidateDiscoverableLogin(lookup, st.Session, p)
	if err != nil {
		return nil, invalid(err)
	}
	return m.rp.verified(ctx, s, identity, all, CredentialPasskey, key, session.AuthenticationMethod{Method: MethodID, AAL: flow.AAL1})
}

// verified is the Result of a key that verified: the login, unless
// Config.RefuseClonedKeys refuses the key, with what the login learnt
// about the key recorded after it (recordUse). creds are the identity's
// credentials when they were loaded with it (nil otherwise).
func (rp *relyingParty) verified(ctx context.Context, s *login.Submission, identity *session.Identity, creds []session.Credential, typ session.CredentialType, key *webauthn.Credential, method session.AuthenticationMethod) (*login.Result, error) {
	after := func(ctx context.Context) error {
		return recordUse(ctx, s.Identities, identity.ID, typ, key)
	}
	if err := rp.refuseClone(ctx, key, after); err != nil {
		return nil, err
	}
	return &login.Result{Identity: identity, Method: method, AfterLogin: after, Credentials: creds}, nil
}

// noKey is the answer to a user handle no identity has (4000015); it
// counts as a failed attempt.
func noKey(err error) *login.FlowError {
	return &login.FlowError{Messages: []flow.Message{flow.NoSecurityKey()}, FailedAttempt: true, Err: err}
}

// renew makes the successor of a burnt passkey challenge: of the same
// kind (discoverable, or the same allowed keys in a refresh flow).
func (m *Method) renew(old *ceremonyState) (*ceremonyState, []flow.Node, error) {
	var allow []protocol.CredentialDescriptor
	if old != nil {
		for _, id := range old.Session.AllowedCredentialIDs {
			allow = append(allow, protocol.CredentialDescriptor{Type: protocol.PublicKeyCredentialType, CredentialID: id})
		}
	}
	options, st, err := m.rp.begin(nil, allow, m.rp.uv)
	if err != nil {
		return nil, nil, err
	}
	n, err := challengeNode(options)
	if err != nil {
		return nil, nil, err
	}
	return st, []flow.Node{n}, nil
}

// restart answers method=passkey without an assertion as Kratos does:
// the flow now offers passkeys alone, with a fresh challenge, for the UI
// to show (a step: 400 with the flow, or 303 to the login UI).
func (m *Method) restart(ctx context.Context, s *login.Submission) (*login.Result, error) {
	f := &s.Flow.Flow
	if f.Refresh {
		return nil, &login.FlowError{Fields: map[string][]flow.Message{"passkey_login": {flow.Missing("passkey_login")}}}
	}
	options, st, err := m.rp.begin(nil, nil, m.rp.uv)
	if err != nil {
		return nil, err
	}
	raw, err := marshalState(st)
	if err != nil {
		return nil, err
	}
	browser := f.Type == flow.TypeBrowser
	own, err := passkeyNodes(options, browser, true, true)
	if err != nil {
		return nil, err
	}
	var nodes []flow.Node
	if browser {
		nodes = append(nodes, s.WebAuthnScript())
	}
	return &login.Result{
		Step:        &login.Step{State: flow.StateChooseMethod, Nodes: append(nodes, own...)},
		MethodState: raw,
	}, nil
}

// refuseClone applies Config.RefuseClonedKeys to a verified key: a key
// with a clone warning that is not backup eligible is refused (4000043,
// a failed attempt), after its warning is recorded by record.
func (rp *relyingParty) refuseClone(ctx context.Context, key *webauthn.Credential, record func(context.Context) error) error {
	if !rp.cfg.RefuseClonedKeys || !key.Authenticator.CloneWarning || key.Flags.BackupEligible {
		return nil
	}
	rerr := record(context.WithoutCancel(ctx))
	return invalid(errors.Join(errors.New("signature counter did not increase on a key that is not backup eligible"), rerr))
}

// setState keeps a new flow's challenge state.
func setState(req *login.FlowRequest, st *ceremonyState) error {
	raw, err := marshalState(st)
	if err != nil {
		return err
	}
	req.SetState(raw)
	return nil
}

// passkeyConfig returns the configuration of the passkey credential among
// creds; nil when there is none.
func passkeyConfig(creds []session.Credential) (*CredentialConfig, error) {
	for i := range creds {
		if creds[i].Type == CredentialPasskey {
			return decodeConfig(&creds[i])
		}
	}
	return nil, nil
}
