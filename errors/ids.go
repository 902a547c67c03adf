package errors

import (
	"fmt"
	"net/http"
)

// Error ids (error.id) that authflow emits. Clients branch on these.
const (
	IDSessionAlreadyAvailable       = "session_already_available"
	IDSessionAAL1Required           = "session_aal1_required"
	IDSessionAAL2Required           = "session_aal2_required"
	IDSessionInactive               = "session_inactive"
	IDCSRFViolation                 = "security_csrf_violation"
	IDFlowExpired                   = "self_service_flow_expired"
	IDReturnToForbidden             = "security_identity_mismatch"
	IDBrowserLocationChangeRequired = "browser_location_change_required"
	IDTooManyAttempts               = "too_many_attempts"
	IDSessionRefreshRequired        = "session_refresh_required"
)

// Default messages by status, as clients of Kratos know them.
const (
	msgBadRequest = "The request was malformed or contained invalid parameters"
	msgForbidden  = "The requested action was forbidden"
	msgNotFound   = "The requested resource could not be found"
	msgInternal   = "An internal server error occurred, please contact the system administrator"
)

// ReasonAlreadySignedIn is the reason of session_already_available, also used
// as the text of the flow message that replaces it on submit.
const ReasonAlreadySignedIn = "A valid session was detected and thus login is not possible. Did you forget to set `?refresh=true`?"

// SessionAlreadyAvailable is the 400 answered when a signed-in client asks
// for a login flow without refresh=true.
func SessionAlreadyAvailable() *Error {
	return newError(http.StatusBadRequest, IDSessionAlreadyAvailable, ReasonAlreadySignedIn, "you are already logged in")
}

// SessionAAL1Required is the 401 answered when aal2 is requested without a
// session.
func SessionAAL1Required() *Error {
	return newError(http.StatusUnauthorized, IDSessionAAL1Required,
		"You can not requested a higher AAL (AAL2/AAL3) without an active session.",
		"aal2 and aal3 can only be requested if a session exists already")
}

// SessionAAL2Required is the 403 answered to a session whose assurance
// level is below the required one (whoami, RequireSession); details and
// the envelope name redirect, the step-up flow's init URL.
func SessionAAL2Required(redirect string) *Error {
	e := newError(http.StatusForbidden, IDSessionAAL2Required,
		"An active session was found but it does not fulfill the requested Authenticator Assurance Level. Please verify yourself with a second factor to resolve this issue.",
		"Session does not fulfill the requested Authenticator Assurance Level")
	e.Details = map[string]any{"redirect_browser_to": redirect}
	return e
}

// NoSessionCredentials is whoami's 401: the request carried no valid session.
func NoSessionCredentials() *Error {
	return newError(http.StatusUnauthorized, IDSessionInactive,
		"No valid session credentials found in the request.",
		"request does not have a valid authentication session")
}

// SessionInactive is the logout endpoints' 401: no active session was found.
func SessionInactive() *Error {
	return newError(http.StatusUnauthorized, IDSessionInactive,
		"No active session was found in this request.",
		"request does not have a valid authentication session")
}

// CSRFViolation is the 403 of a failed CSRF check. Callers add the
// diagnosis with WithDetails.
func CSRFViolation() *Error {
	return newError(http.StatusForbidden, IDCSRFViolation,
		"Please retry the flow and optionally clear your cookies. The request was rejected to protect you from Cross-Site-Request-Forgery (CSRF) which could cause account takeover, leaking personal information, and other serious security issues.",
		"the request was rejected to protect you from Cross-Site-Request-Forgery")
}

// FlowExpired is the 410 of a submit to an expired flow; the envelope adds
// expired_at, since and use_flow_id. minutes is how long ago it expired.
func FlowExpired(minutes float64) *Error {
	return newError(http.StatusGone, IDFlowExpired,
		fmt.Sprintf("The self-service flow expired %.2f minutes ago, initialize a new one.", minutes),
		"self-service flow expired")
}

// FlowExpiredOnFetch is the 410 of fetching an expired flow. browser selects
// the reason; details tell the client where to start a new flow.
func FlowExpiredOnFetch(browser bool, details map[string]any) *Error {
	reason := "The login flow has expired. Call the login flow init API endpoint to initialize a new login flow."
	if browser {
		reason = "The login flow has expired. Redirect the user to the login flow init endpoint to initialize a new login flow."
	}
	e := newError(http.StatusGone, IDFlowExpired, reason,
		"The requested resource is no longer available because it has expired or is otherwise invalid.")
	e.Details = details
	return e
}

// ReturnToForbidden is the 400 of a return_to that is not on the allow-list.
// raw is the value as received.
func ReturnToForbidden(raw string) *Error {
	return newError(http.StatusBadRequest, IDReturnToForbidden, ReturnToReason(raw), msgBadRequest)
}

// ReturnToReason is the reason text for a forbidden return_to, also used as
// a flow message when the allow-list changed before completion.
func ReturnToReason(raw string) string {
	return fmt.Sprintf(`Requested return_to URL "%s" is not allowed.`, raw)
}

// BrowserLocationChangeRequired is the 422 that tells a client to send the
// browser to url; the envelope repeats url as redirect_browser_to.
func BrowserLocationChangeRequired(url string) *Error {
	return newError(http.StatusUnprocessableEntity, IDBrowserLocationChangeRequired,
		"In order to complete this flow please redirect the browser to: "+url,
		"browser location change required")
}

// TooManyAttempts is the 429 of a throttled login attempt; the response
// carries Retry-After with the same seconds.
func TooManyAttempts(seconds int) *Error {
	return newError(http.StatusTooManyRequests, IDTooManyAttempts,
		fmt.Sprintf("Too many failed attempts. Please try again in %d seconds.", seconds),
		"too many failed login attempts")
}

// NotFound is the 404 of an unknown flow or forwarded error.
func NotFound() *Error {
	return newError(http.StatusNotFound, "", "", "Unable to locate the resource")
}

// BadRequest is a 400 without id; reason says what was wrong.
func BadRequest(reason string) *Error {
	return newError(http.StatusBadRequest, "", reason, msgBadRequest)
}

// Forbidden is a 403 without id; reason says what was refused.
func Forbidden(reason string) *Error {
	return newError(http.StatusForbidden, "", reason, msgForbidden)
}

// MissingFlowID is the 400 of a submit whose flow parameter is missing or
// not a UUID.
func MissingFlowID() *Error {
	return BadRequest("The flow query parameter is missing or malformed.")
}

// MethodDisabled is the 404 of a login method that is not enabled.
func MethodDisabled() *Error {
	return newError(http.StatusNotFound, "",
		"This endpoint was disabled by system administrator. Please check your url or contact the system administrator to enable it.",
		msgNotFound)
}

// RequestTooLarge is the 413 of a body over the limit.
func RequestTooLarge(limit int64) *Error {
	return newError(http.StatusRequestEntityTooLarge, "",
		fmt.Sprintf("The request body is larger than %d bytes.", limit),
		"The request body is too large")
}

// URLTooLong is the 414 of a request whose URL is longer than limit bytes.
func URLTooLong(limit int) *Error {
	return newError(http.StatusRequestURITooLong, "",
		fmt.Sprintf("The request URL is longer than %d bytes.", limit),
		"The request URL is too long")
}

// MethodNotAllowed is the 405 for an HTTP method a route does not serve.
func MethodNotAllowed() *Error {
	return newError(http.StatusMethodNotAllowed, "", "", "Method Not Allowed")
}

// Internal is the generic 500. It never carries the underlying cause, which
// is logged instead.
func Internal() *Error {
	return newError(http.StatusInternalServerError, "", "", msgInternal)
}

// ServiceUnavailable is the 503 answered when a store is unreachable.
func ServiceUnavailable() *Error {
	return newError(http.StatusServiceUnavailable, "", "A backing store is temporarily unavailable. Please retry.",
		"The service is temporarily unavailable")
}

// SessionRefreshRequired is the 403 of a privileged action (enrolling or
// removing a passkey) by a session that authenticated too long ago; the
// client signs in again with a refresh flow, whose init URL is redirect.
func SessionRefreshRequired(redirect string) *Error {
	e := newError(http.StatusForbidden, IDSessionRefreshRequired,
		"The login session is too old and thus not allowed to update these fields. Please re-authenticate.",
		"The requested action was forbidden")
	if redirect != "" {
		e.Details = map[string]any{"redirect_browser_to": redirect}
	}
	return e
}

// Conflict is a 409 without id; reason says what clashed.
func Conflict(reason string) *Error {
	return newError(http.StatusConflict, "", reason, "The resource could not be created due to a conflict")
}
