// Package errors is authflow's wire error vocabulary: the error envelope
// that every non-flow failure is answered with, and the error ids clients
// branch on.
//
// The package shares its name with the standard library's; import it under
// an alias:
//
//	import autherrors "github.com/authflow/authflow/errors"
//
//	var e *autherrors.Error
//	if errors.As(err, &e) && e.ID == autherrors.IDSessionAlreadyAvailable {
//		// ...
//	}
//
// Every error here is an [*Error], which implements the error interface and
// works with the standard library's errors.Is and errors.As: two *Error values
// match with errors.Is when their ids and codes are equal.
package errors

import (
	"net/http"
	"time"
)

// Error is the error object of the wire format, the value of the
// envelope's "error" key. Its fields and their omission rules follow the
// contract exactly; Message is always present.
type Error struct {
	// ID is the machine-readable error id, such as IDSessionAlreadyAvailable.
	// Empty for errors without an id.
	ID string `json:"id,omitempty"`
	// Code is the HTTP status.
	Code int `json:"code,omitempty"`
	// Status is http.StatusText(Code).
	Status string `json:"status,omitempty"`
	// Request is the request's X-Request-ID, when it had one.
	Request string `json:"request,omitempty"`
	// Reason is a human-readable explanation for developers.
	Reason string `json:"reason,omitempty"`
	// Details carries structured context, such as a CSRF rejection's hint.
	Details map[string]any `json:"details,omitempty"`
	// Message is a short, stable description of the error class.
	Message string `json:"message"`
}

// Error implements the error interface. It returns the reason when there is
// one, else the message.
func (e *Error) Error() string {
	if e.Reason != "" {
		return e.Reason
	}
	return e.Message
}

// Is reports whether target is an *Error with the same id and code, so that
// errors.Is(err, autherrors.CSRFViolation("")) style checks work.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.ID == e.ID && t.Code == e.Code
}

// Envelope is the JSON document of an error response: the error object and
// the sibling keys some errors add next to it.
type Envelope struct {
	// Error is the error object.
	Error *Error `json:"error"`
	// ExpiredAt is when an expired flow expired (self_service_flow_expired
	// on submit).
	ExpiredAt *time.Time `json:"expired_at,omitempty"`
	// Since is how long ago the flow expired, in nanoseconds (deprecated by
	// Kratos in favour of ExpiredAt; kept for clients that read it).
	Since *time.Duration `json:"since,omitempty"`
	// UseFlowID is the id of the replacement flow for an expired one.
	UseFlowID string `json:"use_flow_id,omitempty"`
	// RedirectBrowserTo is where the browser must go
	// (browser_location_change_required).
	RedirectBrowserTo string `json:"redirect_browser_to,omitempty"`
}

// newError fills in the status text; every constructor goes through it.
func newError(code int, id, reason, message string) *Error {
	return &Error{ID: id, Code: code, Status: http.StatusText(code), Reason: reason, Message: message}
}

// WithDetails returns a copy of e with details set.
func (e *Error) WithDetails(details map[string]any) *Error {
	c := *e
	c.Details = details
	return &c
}

// WithReason returns a copy of e with the reason replaced.
func (e *Error) WithReason(reason string) *Error {
	c := *e
	c.Reason = reason
	return &c
}
