package login

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
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

// EventReporter is implemented by a login method that does work outside
// requests (a mail queue) and reports its failures as events: New hands it
// a function that passes such an event to Config.OnEvent, which therefore
// sees them beside the requests' events.
type EventReporter interface {
	// ReportEventsTo receives the function to report events with; it is
	// safe for concurrent use and never nil.
	ReportEventsTo(report func(ctx context.Context, e Event))
}

// reportBackground passes an event of a method's background work to
// Config.OnEvent, when set; a panic in the hook is recovered and logged.
func (h *Handler) reportBackground(ctx context.Context, e Event) {
	if h.cfg.OnEvent == nil {
		return
	}
	if e.Time.IsZero() {
		e.Time = h.now()
	}
	defer func() {
		if p := recover(); p != nil {
			h.logger().ErrorContext(ctx, "OnEvent panicked", "panic", p)
		}
	}()
	h.cfg.OnEvent(ctx, e)
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
	// "error.fetch", "whoami", "logout.url", "logout", "logout.api",
	// "session.exchange" (a native app's session token exchange).
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
// event: after write or fail has answered. It does nothing (and allocates
// nothing) when there is neither an OnEvent hook nor an enabled log level
// for the outcome.
func (h *Handler) report(x *exchange, err error) {
	ctx := x.r.Context()
	outcome, ff, errorID := classify(err)
	level := slog.LevelDebug
	switch {
	case outcome == OutcomeError:
		level = slog.LevelError
	case x.seen.action == "login.submit" || x.seen.action == "login.callback" || x.seen.action == "logout" || x.seen.action == "logout.api" || x.seen.action == "session.exchange":
		if outcome != OutcomeRefused && outcome != OutcomeAlreadySignedIn {
			level = slog.LevelInfo
		}
	}
	logging := h.logger().Enabled(ctx, level)
	if !logging && h.cfg.OnEvent == nil {
		return
	}
	e := Event{
		Time:       h.now(),
		Action:     x.seen.action,
		Outcome:    outcome,
		Status:     x.status,
		FlowID:     x.seen.flowID,
		FlowType:   x.seen.flowType,
		Method:     x.seen.method,
		IdentityID: x.seen.identityID,
		SessionID:  x.seen.sessionID,
		ErrorID:    errorID,
		ClientIP:   h.clientIP(x.r),
	}
	if ff != nil {
		e.Messages = messageIDs(&ff.rec.Flow.UI)
	}
	if logging {
		attrs := make([]slog.Attr, 0, 10)
		attrs = append(attrs, slog.String("action", e.Action), slog.String("outcome", string(e.Outcome)), slog.Int("status", e.Status))
		for _, kv := range [...][2]string{{"flow_id", e.FlowID}, {"method", e.Method}, {"identity_id", e.IdentityID}, {"session_id", e.SessionID}, {"error_id", e.ErrorID}} {
			if kv[1] != "" {
				attrs = append(attrs, slog.String(kv[0], kv[1]))
			}
		}
		if len(e.Messages) > 0 {
			attrs = append(attrs, slog.Any("messages", e.Messages))
		}
		if outcome == OutcomeError {
			attrs = append(attrs, slog.Any("error", err))
		}
		h.logger().LogAttrs(ctx, level, "authflow "+e.Action, attrs...)
	}
	if h.cfg.OnEvent != nil {
		h.emit(ctx, e)
	}
}

// emit hands e to the OnEvent hook. The answer is already written; a panic
// in the hook is logged and goes no further.
func (h *Handler) emit(ctx context.Context, e Event) {
	defer func() {
		if p := recover(); p != nil {
			h.logger().ErrorContext(ctx, "authflow OnEvent hook panicked", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		}
	}()
	h.cfg.OnEvent(ctx, e)
}

// classify maps an endpoint's error to its outcome, the flow failure it
// carries, and the error id it was answered with.
func classify(err error) (Outcome, *flowFailure, string) {
	if err == nil {
		return OutcomeSuccess, nil, ""
	}
	var (
		ff *flowFailure
		ex *expiredFlow
		as *alreadySignedIn
		lc *locationChange
		ar *aalRequired
		ae *autherrors.Error
		th *throttled
	)
	switch {
	case errors.As(err, &th):
		return OutcomeRefused, nil, autherrors.IDTooManyAttempts
	case errors.As(err, &ff):
		return OutcomeFlowError, ff, ""
	case errors.As(err, &ex):
		return OutcomeExpired, nil, ""
	case errors.As(err, &as):
		return OutcomeAlreadySignedIn, nil, autherrors.IDSessionAlreadyAvailable
	case errors.As(err, &lc):
		return OutcomeRedirect, nil, autherrors.IDBrowserLocationChangeRequired
	case errors.As(err, &ar):
		return OutcomeRefused, nil, autherrors.IDSessionAAL2Required
	case errors.As(err, &ae) && ae.Code < http.StatusInternalServerError:
		return OutcomeRefused, nil, ae.ID
	default:
		return OutcomeError, nil, ""
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
