package passkey

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/login"
)

// maxResponseLength bounds a submitted assertion (passkey_login,
// webauthn_login), in bytes; real ones are well under 2 KiB.
const maxResponseLength = 16 << 10

// unparsable is the answer to a response that is no WebAuthn assertion
// (4000001 with Kratos' reason).
func unparsable(err error) *login.FlowError {
	return &login.FlowError{Messages: []flow.Message{flow.Generic("Unable to parse WebAuthn response.")}, Err: err}
}

// invalid is the answer to an assertion that does not verify (4000043);
// it counts as a failed attempt.
func invalid(err error) *login.FlowError {
	return &login.FlowError{Messages: []flow.Message{flow.InvalidWebAuthn()}, FailedAttempt: true, Err: err}
}

// parseAssertion parses a submitted assertion, as webauthn.js writes it.
func parseAssertion(raw string) (*protocol.ParsedCredentialAssertionData, error) {
	if len(raw) > maxResponseLength {
		return nil, unparsable(fmt.Errorf("assertion of %d bytes", len(raw)))
	}
	p, err := protocol.ParseCredentialRequestResponseBytes([]byte(raw))
	if err != nil {
		return nil, unparsable(err)
	}
	return p, nil
}

// begin makes a login challenge: the options for the browser and the
// state the flow keeps. With allow empty it is a discoverable login (the
// authenticator offers its passkeys for the RP); otherwise only the allowed
// keys of the identity whose user handle is handle (nil for passkeys,
// which are found by the assertion's own handle).
func (rp *relyingParty) begin(handle []byte, allow []protocol.CredentialDescriptor, uv protocol.UserVerificationRequirement) (*protocol.CredentialAssertion, *ceremonyState, error) {
	opts := []webauthn.LoginOption{webauthn.WithUserVerification(uv)}
	var (
		options *protocol.CredentialAssertion
		data    *webauthn.SessionData
		err     error
	)
	if handle == nil {
		if len(allow) > 0 {
			opts = append(opts, webauthn.WithAllowedCredentials(allow))
		}
		options, data, err = rp.wa.BeginDiscoverableLogin(opts...)
	} else {
		options, data, err = rp.wa.BeginLogin(&user{handle: handle, keys: descriptorsAsKeys(allow)}, opts...)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("passkey: begin login: %w", err)
	}
	return options, &ceremonyState{Session: *data, Expires: rp.cfg.Now().Add(rp.cfg.Timeout)}, nil
}

// descriptorsAsKeys gives BeginLogin the allowed keys it lists.
func descriptorsAsKeys(allow []protocol.CredentialDescriptor) []webauthn.Credential {
	keys := make([]webauthn.Credential, len(allow))
	for i, d := range allow {
		keys[i] = webauthn.Credential{ID: d.CredentialID, Transport: d.Transport}
	}
	return keys
}

// renew is how a method makes the successor of a burnt challenge: its new
// state and the nodes that show it.
type renew func(old *ceremonyState) (*ceremonyState, []flow.Node, error)

// burn takes the flow's challenge for this one verification and puts a
// fresh one in its place, with the nodes that show it, in one conditional
// write: of concurrent submissions of one flow each verifies against a
// different challenge, so an assertion is verified at most once. It
// returns the burnt state; nil when the flow had none (made before the
// method was configured).
func burn(ctx context.Context, s *login.Submission, next renew) (*ceremonyState, error) {
	var burnt *ceremonyState
	_, err := s.UpdateStateNodes(ctx, func(old json.RawMessage) (json.RawMessage, []flow.Node, error) {
		st, err := decodeState(old)
		if err != nil {
			return nil, nil, err
		}
		fresh, nodes, err := next(st)
		if err != nil {
			return nil, nil, err
		}
		raw, err := json.Marshal(fresh)
		if err != nil {
			return nil, nil, err
		}
		burnt = st
		return raw, nodes, nil
	})
	if errors.Is(err, flow.ErrCompleted) {
		return nil, &login.FlowError{Messages: []flow.Message{flow.AlreadyCompleted()}}
	}
	return burnt, err
}

// spend takes the steps every submitted assertion takes before it is
// verified: it parses raw, burns the flow's challenge (next makes its
// successor) and checks that the burnt challenge was live.
func (rp *relyingParty) spend(ctx context.Context, s *login.Submission, raw string, next renew) (*protocol.ParsedCredentialAssertionData, *ceremonyState, error) {
	p, err := parseAssertion(raw)
	if err != nil {
		return nil, nil, err
	}
	st, err := burn(ctx, s, next)
	if err != nil {
		return nil, nil, err
	}
	if err := rp.live(st); err != nil {
		return nil, nil, err
	}
	return p, st, nil
}

// live checks that a burnt challenge was there and has not expired.
func (rp *relyingParty) live(st *ceremonyState) error {
	if st == nil {
		return invalid(errors.New("the flow holds no challenge"))
	}
	if now := rp.cfg.Now(); !now.Before(st.Expires) {
		return &login.FlowError{Messages: []flow.Message{flow.InvalidWebAuthn()}, Err: fmt.Errorf("challenge expired at %s", st.Expires)}
	}
	return nil
}
