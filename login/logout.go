package login

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	autherrors "github.com/authflow/authflow/errors"
	"github.com/authflow/authflow/session"
)

// logoutURL serves GET /self-service/logout/browser: the URL that logs the
// browser's session out, carrying the session's derived logout token.
func (h *Handler) logoutURL(x *exchange) (*response, error) {
	x.json = isJSONRequest(x.r)
	u, lt, err := h.logoutLink(x.r, x.r.URL.Query().Get("return_to"))
	if err != nil {
		return nil, err
	}
	return &response{status: http.StatusOK, body: map[string]string{"logout_url": u, "logout_token": lt}}, nil
}

// LogoutURL returns the URL that logs out the session r presents, for
// hosts that render a logout link on the server; returnTo, when not empty,
// must be allowed. Without a valid session it returns the 401
// session_inactive *autherrors.Error.
func (h *Handler) LogoutURL(r *http.Request, returnTo string) (string, error) {
	u, _, err := h.logoutLink(r, returnTo)
	return u, err
}

func (h *Handler) logoutLink(r *http.Request, returnTo string) (string, string, error) {
	if returnTo != "" {
		if _, err := h.resolveReturnTo(returnTo); err != nil {
			return "", "", autherrors.ReturnToForbidden(returnTo)
		}
	}
	cur, err := h.currentSession(r.Context(), r)
	if err != nil {
		return "", "", err
	}
	if cur == nil {
		return "", "", autherrors.SessionInactive()
	}
	lt := logoutToken(cur.token)
	q := url.Values{"token": {lt}}
	if returnTo != "" {
		q.Set("return_to", returnTo)
	}
	return h.public + "/self-service/logout?" + q.Encode(), lt, nil
}

// logout serves GET /self-service/logout?token=: it revokes the browser's
// session when the token is its logout token, clears the session cookie
// and rotates the CSRF cookie.
func (h *Handler) logout(x *exchange) (*response, error) {
	x.json = isJSONRequest(x.r)
	ctx := x.r.Context()
	q := x.r.URL.Query()
	token := q.Get("token")
	if token == "" {
		return nil, autherrors.BadRequest("Please include a token in the URL query.")
	}
	target := h.afterLogout.String()
	if raw := q.Get("return_to"); raw != "" {
		u, err := h.resolveReturnTo(raw)
		if err != nil {
			return nil, autherrors.ReturnToForbidden(raw)
		}
		target = u.String()
	}
	cur, err := h.currentSession(ctx, x.r)
	if err != nil {
		return nil, err
	}
	if cur == nil {
		return nil, autherrors.SessionInactive()
	}
	x.seeSession(cur.rec)
	if !logoutTokenMatches(token, cur.token) {
		return nil, autherrors.Forbidden("Unable to log out because the logout token in the URL query does not match the session cookie.")
	}
	if err := h.cfg.SessionStore.RevokeSession(ctx, cur.rec.Session.ID); err != nil && !errors.Is(err, session.ErrNotFound) {
		return nil, fmt.Errorf("revoke session: %w", err)
	}
	x.cookies = append(x.cookies, h.clearedSessionCookie())
	h.rotateCSRFToken(x)
	if x.json {
		return &response{status: http.StatusNoContent}, nil
	}
	return &response{location: target}, nil
}

// logoutAPI serves DELETE /self-service/logout/api: it revokes the session
// token in the JSON body. Revoking a revoked session succeeds again.
func (h *Handler) logoutAPI(x *exchange) (*response, error) {
	x.json = true
	ctx := x.r.Context()
	body, err := readBody(x.r)
	if err != nil {
		return nil, err
	}
	invalid := autherrors.Forbidden("The provided Ory Session Token could not be found, is invalid, or otherwise malformed.")
	var in struct {
		SessionToken string `json:"session_token"`
	}
	if err := json.Unmarshal(body, &in); err != nil || in.SessionToken == "" {
		return nil, invalid
	}
	rec, err := h.cfg.SessionStore.SessionByToken(ctx, hashToken(in.SessionToken))
	if errors.Is(err, session.ErrNotFound) {
		return nil, invalid
	}
	if err != nil {
		return nil, fmt.Errorf("load session: %w", err)
	}
	x.seeSession(rec)
	if err := h.cfg.SessionStore.RevokeSession(ctx, rec.Session.ID); err != nil && !errors.Is(err, session.ErrNotFound) {
		return nil, fmt.Errorf("revoke session: %w", err)
	}
	return &response{status: http.StatusNoContent}, nil
}
