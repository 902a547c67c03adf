package login

import (
	"encoding/base64"
	"net/http"
	"strings"
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

// cookieValue returns the value of the request's first cookie called name,
// as http.Request.Cookie finds it (surrounding double quotes removed,
// values with bytes a cookie may not hold skipped), without parsing the
// request's other cookies into values.
func cookieValue(r *http.Request, name string) (string, bool) {
	lines := r.Header["Cookie"]
	count := 0
	for _, line := range lines {
		count += strings.Count(line, ";") + 1
	}
	if count > maxRequestCookies {
		return "", false // as net/http, which then reads none
	}
	for _, line := range lines {
		for part := range strings.SplitSeq(line, ";") {
			k, v, _ := strings.Cut(strings.Trim(part, " \t\r\n"), "=")
			if strings.Trim(k, " \t\r\n") != name {
				continue
			}
			if len(v) > 1 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			if validCookieValue(v) {
				return v, true
			}
		}
	}
	return "", false
}

// maxRequestCookies is net/http's default limit on a request's cookies
// (GODEBUG httpcookiemaxnum), beyond which it reads none.
const maxRequestCookies = 3000

// validCookieValue reports whether v holds only bytes a cookie value may
// (RFC 6265 as net/http reads it).
func validCookieValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if b := v[i]; b < 0x20 || b >= 0x7f || b == '"' || b == ';' || b == '\\' {
			return false
		}
	}
	return true
}
