package login

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	autherrors "github.com/authflow/authflow/errors"
	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/session"
)

// Attempt describes a login attempt to the host's hooks (Config.BeforeAttempt,
// Config.AfterFailure and Config.AfterVerification). Hooks must not keep it
// after they return.
type Attempt struct {
	// FlowID and FlowType identify the flow being submitted.
	FlowID   string
	FlowType flow.Type
	// Method is the login method's ID, e.g. "password".
	Method string
	// Identifier is the normalised identifier the attempt is for, when the
	// method has one (the password method does); "" otherwise.
	Identifier string
	// ClientIP is the client's address (see Config.TrustedProxies).
	ClientIP string
	// TransientPayload is the submission's transient_payload object, if it
	// had one: data the client passes to hooks, never stored or echoed.
	TransientPayload json.RawMessage
	// Request is the HTTP request; its body has been read.
	Request *http.Request
}

// Refuse returns the error a hook returns to refuse an attempt with msg on
// the flow: the flow is answered with the message (400 to API flows and JSON
// requests, a 303 to the login UI for forms). For example, an
// AfterVerification hook refusing an unverified address:
//
//	return login.Refuse(flow.AddressNotVerified()) // message 4000010
//
// A hook may instead return an *autherrors.Error, which is answered as that
// envelope (or forwarded to the error UI for forms); any other error is an
// internal error.
func Refuse(msg flow.Message) error {
	return &FlowError{Messages: []flow.Message{msg}}
}

// Outcome classifies how a request ended, for events and logs.
type Outcome string

// Outcomes.
const (
	// OutcomeSuccess: the request did what it asked (a flow created or
	// fetched, a login, a logout, a session shown).
	OutcomeSuccess Outcome = "success"
	// OutcomeFlowError: the flow was answered with messages (validation,
	// wrong credentials, refused by a hook, already completed); see
	// Event.Messages.
	OutcomeFlowError Outcome = "flow_error"
	// OutcomeExpired: the flow had expired; a fresh one was issued.
	OutcomeExpired Outcome = "expired"
	// OutcomeAlreadySignedIn: the client already had a valid session.
	OutcomeAlreadySignedIn Outcome = "already_signed_in"
	// OutcomeRedirect: the login continues in the browser elsewhere (422).
	OutcomeRedirect Outcome = "redirect"
	// OutcomeRefused: the request was refused with an error envelope
	// (CSRF, unknown flow, forbidden return_to, no session, ...); see
	// Event.ErrorID and Event.Status.
	OutcomeRefused Outcome = "refused"
	// OutcomeError: an internal error (a store failed); logged with its
	// cause.
	OutcomeError Outcome = "error"
)

// Event reports the outcome of one request to Config.OnEvent, for metrics
// and audit logs. It never carries a password, token, cookie or CSRF value.
type Event struct {
	Time time.Time
	// Action names the endpoint: "login.create" (browser and API flow
	// creation), "login.fetch", "login.submit", "login.callback",
	// "error.fetch", "whoami", "logout.url", "logout", "logout.api".
	Action  string
	Outcome Outcome
	// Status is the HTTP status answered.
	Status int
	// FlowID and FlowType identify the flow, when there was one.
	FlowID   string
	FlowType flow.Type
	// Method is the login method of a submission, when one was selected.
	Method string
	// IdentityID and SessionID are set when known: after a login, for a
	// session shown or logged out.
	IdentityID string
	SessionID  string
	// Messages are the ids of the messages a flow error carried.
	Messages []int
	// ErrorID is the error.id of an envelope, when it had one.
	ErrorID string
	// ClientIP is the client's address.
	ClientIP string
}

// observe records what an endpoint learned, for the event and the log.
type observation struct {
	action     string
	flowID     string
	flowType   flow.Type
	method     string
	identityID string
	sessionID  string
}

func (x *exchange) seeFlow(rec *flow.Record) {
	x.seen.flowID, x.seen.flowType = rec.Flow.ID, rec.Flow.Type
}

func (x *exchange) seeSession(rec *session.Record) {
	x.seen.sessionID, x.seen.identityID = rec.Session.ID, rec.IdentityID
}

// report is the one place that logs a request's outcome and emits its
// event: after write or fail has answered.
func (h *Handler) report(x *exchange, err error) {
	ctx := x.r.Context()
	e := Event{
		Time:       h.now(),
		Action:     x.seen.action,
		Outcome:    OutcomeSuccess,
		Status:     x.status,
		FlowID:     x.seen.flowID,
		FlowType:   x.seen.flowType,
		Method:     x.seen.method,
		IdentityID: x.seen.identityID,
		SessionID:  x.seen.sessionID,
		ClientIP:   h.clientIP(x.r),
	}
	var (
		ff *flowFailure
		ex *expiredFlow
		as *alreadySignedIn
		lc *locationChange
		ae *autherrors.Error
	)
	switch {
	case err == nil:
	case errors.As(err, &ff):
		e.Outcome = OutcomeFlowError
		e.Messages = messageIDs(&ff.rec.Flow.UI)
	case errors.As(err, &ex):
		e.Outcome = OutcomeExpired
	case errors.As(err, &as):
		e.Outcome, e.ErrorID = OutcomeAlreadySignedIn, autherrors.IDSessionAlreadyAvailable
	case errors.As(err, &lc):
		e.Outcome, e.ErrorID = OutcomeRedirect, autherrors.IDBrowserLocationChangeRequired
	case errors.As(err, &ae) && ae.Code < http.StatusInternalServerError:
		e.Outcome, e.ErrorID = OutcomeRefused, ae.ID
	case errors.Is(err, context.Canceled):
		e.Outcome = OutcomeError
	default:
		e.Outcome = OutcomeError
	}

	attrs := []any{"action", e.Action, "outcome", string(e.Outcome), "status", e.Status}
	for _, kv := range [][2]string{{"flow_id", e.FlowID}, {"method", e.Method}, {"identity_id", e.IdentityID}, {"session_id", e.SessionID}, {"error_id", e.ErrorID}} {
		if kv[1] != "" {
			attrs = append(attrs, kv[0], kv[1])
		}
	}
	if len(e.Messages) > 0 {
		attrs = append(attrs, "messages", e.Messages)
	}
	switch e.Outcome {
	case OutcomeError:
		h.logger().ErrorContext(ctx, "authflow request failed", append(attrs, "error", err)...)
	case OutcomeSuccess, OutcomeFlowError, OutcomeExpired, OutcomeRedirect:
		if e.Action == "login.submit" || e.Action == "login.callback" || e.Action == "logout" || e.Action == "logout.api" {
			h.logger().InfoContext(ctx, "authflow "+e.Action, attrs...)
		} else {
			h.logger().DebugContext(ctx, "authflow "+e.Action, attrs...)
		}
	default:
		h.logger().DebugContext(ctx, "authflow "+e.Action, attrs...)
	}
	if h.cfg.OnEvent != nil {
		h.cfg.OnEvent(ctx, e)
	}
}

// messageIDs lists the ids of the messages on a flow's UI, container first.
func messageIDs(ui *flow.UI) []int {
	var ids []int
	for _, m := range ui.Messages {
		ids = append(ids, m.ID)
	}
	for _, n := range ui.Nodes {
		for _, m := range n.Messages {
			ids = append(ids, m.ID)
		}
	}
	return ids
}

// hookRefusal turns what a refusing hook returned into the submit outcome:
// messages on the flow, a contract envelope, or an internal error.
func (h *Handler) hookRefusal(x *exchange, rec *flow.Record, err error) error {
	var fe *FlowError
	if errors.As(err, &fe) {
		return h.reportOnFlow(x, rec, fe)
	}
	return err
}
