package login

import (
	"encoding/base64"
	"net/http"
	"time"
)

// csrfCookieMaxAge is the CSRF cookie's lifetime: 365 days.
const csrfCookieMaxAge = 365 * 24 * 60 * 60

// cookie sets the attributes every authflow cookie has (CONTRACT Part 1
// rule 13): HttpOnly, Path=/, SameSite=Lax, Secure exactly when the public
// URL is https, Domain only when configured.
func (h *Handler) cookie(name, value string) *http.Cookie {
	return &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     "/",
		Domain:   h.cfg.CookieDomain,
		HttpOnly: true,
		Secure:   h.secure,
		SameSite: http.SameSiteLaxMode,
	}
}

// sessionCookie carries the session token until the session expires.
func (h *Handler) sessionCookie(token string, expiresAt time.Time) *http.Cookie {
	c := h.cookie(h.sessionCookieName, token)
	c.Expires = expiresAt
	c.MaxAge = max(int(expiresAt.Sub(h.now())/time.Second), 1)
	return c
}

// clearedSessionCookie deletes the session cookie (Max-Age=0 and an
// Expires in 1970).
func (h *Handler) clearedSessionCookie() *http.Cookie {
	c := h.cookie(h.sessionCookieName, "")
	c.MaxAge = -1
	c.Expires = time.Unix(1, 0)
	return c
}

// csrfCookie carries a raw CSRF token (standard base64, 44 characters).
func (h *Handler) csrfCookie(token []byte) *http.Cookie {
	c := h.cookie(h.csrfCookieName, base64.StdEncoding.EncodeToString(token))
	c.MaxAge = csrfCookieMaxAge
	return c
}

// ensureCSRFToken returns the request's CSRF token, or a new one whose
// cookie is added to the exchange's answer.
func (h *Handler) ensureCSRFToken(x *exchange) []byte {
	if t := h.csrfCookieToken(x.r); t != nil {
		return t
	}
	t := newCSRFToken()
	x.cookies = append(x.cookies, h.csrfCookie(t))
	return t
}

// rotateCSRFToken issues a new CSRF token (after login and logout), so a
// token observed before the change of principal is worthless.
func (h *Handler) rotateCSRFToken(x *exchange) {
	x.cookies = append(x.cookies, h.csrfCookie(newCSRFToken()))
}
