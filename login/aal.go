package login

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"

	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/session"
)

// Assurance levels (CONTRACT-AAL): a session's AAL follows from its
// authentication methods (session.AssuranceLevel); Config.RequiredAAL says
// whether a session of an identity that has a second factor must be aal2
// to count as signed in; a step-up flow (requested_aal aal2) belongs to
// the session that created it.

// stepUpOwnerKey is the flow.Record.MethodState entry in which a step-up
// flow records the id of the session that created it. Method IDs cannot
// start with "_", so no method can collide with it.
const stepUpOwnerKey = "_session"

// stepUpURL is where a browser starts the step-up: the browser flow's init
// endpoint with aal=aal2, carrying returnTo when there is one.
func (h *Handler) stepUpURL(returnTo string) string {
	q := url.Values{"aal": {flow.AAL2}}
	if returnTo != "" {
		q.Set("return_to", returnTo)
	}
	return h.public + "/self-service/login/browser?" + q.Encode()
}

// hasSecondFactor reports whether the identity has a credential of a
// configured second-factor method: whether a browser's step-up flow would
// offer that method (Method.Nodes is the one place that decides; Kratos
// offers WebAuthn to browser flows only, yet counts it as a second factor
// for every session).
func (h *Handler) hasSecondFactor(ctx context.Context, id *session.Identity, creds []session.Credential) (bool, error) {
	if len(h.secondFactors) == 0 {
		return false, nil
	}
	if creds == nil { // not loaded with the session
		var err error
		creds, err = h.cfg.IdentityStore.Credentials(ctx, id.ID)
		if errors.Is(err, session.ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("load credentials: %w", err)
		}
	}
	req := &FlowRequest{Flow: &flow.Flow{Type: flow.TypeBrowser, RequestedAAL: flow.AAL2, State: flow.StateChooseMethod}, Identity: id, Credentials: creds, h: h}
	for _, m := range h.secondFactors {
		nodes, err := req.methodNodes(ctx, m)
		if err != nil {
			return false, err
		}
		if len(nodes) > 0 {
			return true, nil
		}
	}
	return false, nil
}

// stepUpReadsCredentials reports whether deciding that a session needs
// its second factor reads the identity's credentials (needsStepUp): only
// under RequireHighestAvailable with a second-factor method configured.
func (h *Handler) stepUpReadsCredentials() bool {
	return h.cfg.RequiredAAL == RequireHighestAvailable && len(h.secondFactors) > 0
}

// needsStepUp reports whether a session of aal for identity id falls short
// of Config.RequiredAAL: under RequireHighestAvailable, an aal1 session of
// an identity that has a second factor.
func (h *Handler) needsStepUp(ctx context.Context, aal string, id *session.Identity) (bool, error) {
	return h.needsStepUpWith(ctx, aal, id, nil)
}

// needsStepUpWith is needsStepUp with the identity's credentials when they
// are at hand (nil: they are loaded if needed).
func (h *Handler) needsStepUpWith(ctx context.Context, aal string, id *session.Identity, creds []session.Credential) (bool, error) {
	if !h.stepUpReadsCredentials() || aal == flow.AAL2 {
		return false, nil
	}
	return h.hasSecondFactor(ctx, id, creds)
}

// aalRequired is a session below the required AAL: 403
// session_aal2_required naming the step-up URL, or a 303 there for
// browser navigations.
type aalRequired struct{ redirect string }

func (e *aalRequired) Error() string { return "login: session needs a second factor" }

// setStepUpOwner records on a step-up flow the session that created it.
func setStepUpOwner(rec *flow.Record, sessionID string) {
	if rec.MethodState == nil {
		rec.MethodState = map[string]json.RawMessage{}
	}
	b, _ := json.Marshal(sessionID) // a string always encodes
	rec.MethodState[stepUpOwnerKey] = b
}

// ownsStepUp reports whether cur may submit the step-up flow rec: the
// session that created it (CONTRACT-AAL Part 1 S5). A flow without a
// recorded owner (made before owners were recorded) is open to any
// session, as in Kratos.
func ownsStepUp(rec *flow.Record, cur *current) bool {
	raw, ok := rec.MethodState[stepUpOwnerKey]
	if !ok {
		return true
	}
	var owner string
	if err := json.Unmarshal(raw, &owner); err != nil {
		return false
	}
	return cur != nil && owner == cur.rec.Session.ID
}
