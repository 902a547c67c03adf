package login

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strings"

	autherrors "github.com/authflow/authflow/errors"
	"github.com/authflow/authflow/flow"
)

// CSRF protection for browser flows (CONTRACT Part 2 §6, Part 1 rule 11).
// The browser holds a random 32-byte token in an HttpOnly cookie; each
// rendering of a flow carries that token masked with a fresh one-time pad,
// so the form's value changes while the cookie does not (BREACH-safe). A
// submission passes when the form field or the X-CSRF-Token header unmasks
// to the cookie's token. Comparisons are constant-time.

const csrfTokenLen = 32

// newCSRFToken returns a new raw CSRF token.
func newCSRFToken() []byte {
	b := make([]byte, csrfTokenLen)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+).
	return b
}

// csrfCookieToken returns the raw token in r's CSRF cookie, or nil when the
// cookie is absent or malformed.
func (h *Handler) csrfCookieToken(r *http.Request) []byte {
	v, ok := cookieValue(r, h.csrfCookieName)
	if !ok {
		return nil
	}
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil || len(b) != csrfTokenLen {
		return nil
	}
	return b
}

// maskCSRFToken returns the value placed in a flow's csrf_token node: standard
// base64 of a fresh 32-byte pad followed by token XOR pad.
func maskCSRFToken(token []byte) string {
	out := make([]byte, 2*csrfTokenLen)
	pad := out[:csrfTokenLen]
	_, _ = rand.Read(pad)
	for i := range token {
		out[csrfTokenLen+i] = token[i] ^ pad[i]
	}
	return base64.StdEncoding.EncodeToString(out)
}

// csrfTokenMatches reports whether sent (masked, 64 bytes, or raw, 32 bytes,
// in standard base64) carries token, comparing in constant time.
func csrfTokenMatches(sent string, token []byte) bool {
	b, err := base64.StdEncoding.DecodeString(sent)
	if err != nil || len(token) != csrfTokenLen {
		return false
	}
	switch len(b) {
	case 2 * csrfTokenLen:
		pad, masked := b[:csrfTokenLen], b[csrfTokenLen:]
		for i := range masked {
			masked[i] ^= pad[i]
		}
		b = masked
	case csrfTokenLen:
	default:
		return false
	}
	return subtle.ConstantTimeCompare(b, token) == 1
}

// csrfTokenHash is what a browser flow stores of the token it was created
// with, so that fetching the flow can be bound to the cookie without the
// store holding the secret.
func csrfTokenHash(token []byte) string {
	sum := sha256.Sum256(token)
	return hex.EncodeToString(sum[:])
}

// checkCSRF is the CSRF check of a browser flow submission: it passes when
// the csrf_token field or the X-CSRF-Token header verifies against the
// request's CSRF cookie. Otherwise it returns security_csrf_violation with
// the diagnosis of §6.4.
func (h *Handler) checkCSRF(r *http.Request, field string) error {
	token := h.csrfCookieToken(r)
	if token != nil {
		if field != "" && csrfTokenMatches(field, token) {
			return nil
		}
		if hdr := r.Header.Get("X-CSRF-Token"); hdr != "" && csrfTokenMatches(hdr, token) {
			return nil
		}
	}
	return h.csrfViolation(r, field)
}

// flowCSRFToken returns the raw token of r's CSRF cookie if it is the one
// rec was created with, else nil. Only such a token may be masked into the
// flow: any browser can be made to submit any flow (a top-level GET sends
// Lax cookies), and the flow is readable by the browser that created it, so
// masking another browser's token into it would hand that browser's CSRF
// secret to the flow's creator (login CSRF).
func (h *Handler) flowCSRFToken(r *http.Request, rec *flow.Record) []byte {
	token := h.csrfCookieToken(r)
	if token == nil || rec.Flow.Type != flow.TypeBrowser ||
		subtle.ConstantTimeCompare([]byte(csrfTokenHash(token)), []byte(rec.CSRFTokenHash)) != 1 {
		return nil
	}
	return token
}

// checkFlowCSRF binds fetching a browser flow to the browser that created
// it: the request's CSRF cookie must be the one the flow was made with.
func (h *Handler) checkFlowCSRF(r *http.Request, storedHash string) error {
	token := h.csrfCookieToken(r)
	if token != nil && subtle.ConstantTimeCompare([]byte(csrfTokenHash(token)), []byte(storedHash)) == 1 {
		return nil
	}
	return h.csrfViolation(r, "")
}

// CSRF diagnosis texts (CONTRACT Part 2 §6.4).
const (
	csrfHintAJAX    = "We detected an AJAX call, please ensure that CORS is enabled and configured correctly, and that your AJAX code sends cookies and has credentials enabled. For further debugging, check your Browser's Network Tab to see what cookies are included or excluded."
	csrfHintServer  = "We detected a regular browser or server-side call. To debug browser calls check your Browser's Network Tab to see what cookies are included or excluded. If you are calling from a server ensure that the appropriate cookies are being forwarded and that the SDK method is called correctly."
	csrfHintNotSent = "The anti-CSRF cookie was found but the CSRF token was not included in the HTTP request body (csrf_token) nor in the HTTP Header (X-CSRF-Token)."
	csrfNoCookies   = "The HTTP Cookie Header is empty or not set."
	csrfNoCSRF      = "The HTTP Cookie Header was set but did not include the anti-CSRF cookie."
	csrfMismatch    = "The HTTP Cookie Header was set and a CSRF token was sent but they do not match. We recommend deleting all cookies for this domain and retrying the flow."
	csrfDocs        = "https://www.ory.com/docs/troubleshooting/csrf"
)

// csrfViolation builds the CSRF error with the diagnosis that helps the
// developer: which of cookie and token was missing.
func (h *Handler) csrfViolation(r *http.Request, field string) *autherrors.Error {
	hint := csrfHintServer
	if m := r.Header.Get("Sec-Fetch-Mode"); m == "cors" || m == "same-origin" {
		hint = csrfHintAJAX
	}
	details := map[string]any{"docs": csrfDocs, "hint": hint}
	_, hasCookie := r.Header["Cookie"]
	switch {
	case !hasCookie || r.Header.Get("Cookie") == "":
		details["reject_reason"] = csrfNoCookies
	case h.csrfCookieToken(r) == nil:
		details["reject_reason"] = csrfNoCSRF
	case !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") && field == "" && r.Header.Get("X-CSRF-Token") == "":
		details["hint"] = csrfHintNotSent
	default:
		details["reject_reason"] = csrfMismatch
	}
	return autherrors.CSRFViolation().WithDetails(details)
}

// API-flow guard texts (CONTRACT Part 2 §9.3).
const (
	apiGuardOrigin = `The HTTP Request Header included the "Origin" key, indicating that this request was made as part of an AJAX request in a Browser. The flow however was initiated as an API request. To prevent potential misuse and mitigate several attack vectors including CSRF, the request has been blocked. Please consult the documentation.`
	apiGuardCookie = `The HTTP Request Header included the "Cookie" key, indicating that this request was made by a Browser. The flow however was initiated as an API request. To prevent potential misuse and mitigate several attack vectors including CSRF, the request has been blocked. Please consult the documentation.`
)

// checkAPIFlowRequest keeps browsers away from API flows, which carry no
// CSRF protection: a request with an Origin header, or with any cookie but
// Cloudflare's (__cf*, _cf*, cf_*), is refused with a flow message.
func checkAPIFlowRequest(r *http.Request) error {
	if r.Header.Get("Origin") != "" {
		return &FlowError{Messages: flowMessages(apiGuardOrigin)}
	}
	for _, c := range r.Cookies() {
		if !strings.HasPrefix(c.Name, "__cf") && !strings.HasPrefix(c.Name, "_cf") && !strings.HasPrefix(c.Name, "cf_") {
			return &FlowError{Messages: flowMessages(apiGuardCookie)}
		}
	}
	return nil
}
