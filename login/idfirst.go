package login

import (
	"context"
	"errors"

	"github.com/authflow/authflow/flow"
)

// Identifier-first login (Config.LoginStyle, CONTRACT-CODE §9 with §10's
// changes): the first step asks for the identifier alone; submitting it
// with method=identifier_first shows the second step, which is the same
// for every well-formed identifier, known or not: the identifier as a
// hidden node and every first factor's nodes for it. No identity is looked
// up and nothing is sent at that point, so the step reveals nothing about
// accounts, by message or by time.

// identifierFirstMethod is the "method" value of the identifier step.
const identifierFirstMethod = "identifier_first"

// identifierFirst reports whether rec is a flow in the identifier-first
// style: a first-factor flow that confirms no signed-in identity.
func (h *Handler) identifierFirst(f *flow.Flow) bool {
	return h.cfg.LoginStyle == LoginStyleIdentifierFirst && !f.Refresh && f.RequestedAAL != flow.AAL2
}

// identifierStepNodes are the core's nodes of the first step: the
// identifier field and the Continue button.
func (h *Handler) identifierStepNodes() []flow.Node {
	id := flow.NewInput(flow.GroupIdentifierFirst, "identifier", "text", "", true)
	id.Attributes.Autocomplete = "username webauthn"
	id.Meta.Label = ptr(h.identifierLabel)
	submit := flow.NewInput(flow.GroupIdentifierFirst, "method", "submit", identifierFirstMethod, false)
	submit.Meta.Label = ptr(flow.Continue())
	return []flow.Node{id, submit}
}

// submitIdentifier serves a method=identifier_first submission: field
// checks, CSRF, then the second step stored on the flow and answered as a
// FLOW-400 without a message.
func (h *Handler) submitIdentifier(x *exchange, rec *flow.Record, s *Submission) error {
	ctx := x.r.Context()
	raw := s.Field("identifier")
	identifier, fe := validateIdentifier(raw)
	if fe != nil {
		return h.reportOnFlow(x, rec, fe)
	}
	if err := h.checkFlowRequest(x, rec, s); err != nil {
		return err
	}
	nodes, req, err := h.secondStepNodes(ctx, rec, identifier, clip(raw, MaxEchoedValueLength))
	if err != nil {
		return err
	}
	token := h.flowCSRFToken(x.r, rec)
	return h.storeStep(x, rec, "identifier step", func(cur *flow.Record) {
		next := make([]flow.Node, 0, 1+len(nodes))
		if csrf, ok := csrfNode(cur, token); ok {
			next = append(next, csrf)
		}
		cur.Flow.UI.Nodes = append(next, nodes...)
		cur.Flow.UI.ResetMessages()
		req.saveStates(cur)
	})
}

// validateIdentifier checks an identifier as the password method does:
// missing (4000002), too long (4000017), invisible or control characters
// (4019002, never silently removed). It returns the normalised identifier.
func validateIdentifier(raw string) (string, *FlowError) {
	fields := map[string][]flow.Message{}
	if len(raw) > MaxIdentifierLength {
		fields["identifier"] = append(fields["identifier"], flow.TooLong(MaxIdentifierLength, len(raw)))
	}
	normalized, err := NormalizeIdentifier(raw)
	switch {
	case errors.Is(err, ErrEmptyIdentifier):
		fields["identifier"] = append(fields["identifier"], flow.Missing("identifier"))
	case err != nil:
		fields["identifier"] = append(fields["identifier"], flow.IdentifierCharacters())
	}
	if len(fields) > 0 {
		return "", &FlowError{Fields: fields, Values: map[string]string{"identifier": raw}}
	}
	return normalized, nil
}

// secondStepNodes are the second step's nodes: the identifier, hidden,
// and every first factor's nodes for it, in the usual order; the request
// holds the states the methods set for the step.
func (h *Handler) secondStepNodes(ctx context.Context, rec *flow.Record, identifier, shown string) ([]flow.Node, *FlowRequest, error) {
	hidden := flow.NewInput(flow.GroupIdentifierFirst, "identifier", "hidden", shown, true)
	nodes := []flow.Node{hidden}
	req := &FlowRequest{Flow: &rec.Flow, IdentifierFirst: true, Identifier: identifier, IdentifierLabel: h.identifierLabel, h: h}
	for _, m := range h.order {
		if m.AAL() != flow.AAL1 {
			continue
		}
		ns, err := req.methodNodes(ctx, m)
		if err != nil {
			return nil, nil, err
		}
		nodes = append(nodes, ns...)
	}
	sortNodes(nodes)
	return nodes, req, nil
}
