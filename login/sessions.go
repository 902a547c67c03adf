package login

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	autherrors "github.com/authflow/authflow/errors"
	"github.com/authflow/authflow/session"
)

// current is the valid session a request presents.
type current struct {
	rec      *session.Record
	identity *session.Identity
	token    string
	// creds are the identity's credentials when the session was loaded
	// with them (SessionIdentityLoader); nil otherwise.
	creds []session.Credential
}

// sessionToken returns the session token a request presents, checked in
// the contract's order: the X-Session-Token header, the session cookie,
// then "Authorization: Bearer".
func (h *Handler) sessionToken(r *http.Request) string {
	if t := r.Header.Get("X-Session-Token"); t != "" {
		return t
	}
	if v, ok := cookieValue(r, h.sessionCookieName); ok && v != "" {
		return v
	}
	if scheme, t, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok &&
		strings.EqualFold(scheme, "Bearer") && t != "" && !strings.Contains(t, " ") {
		return t
	}
	return ""
}

// currentSession returns the request's session when it is valid: stored,
// not revoked, not expired, and its identity active. It returns nil and no
// error when there is none; an error only when a store fails.
func (h *Handler) currentSession(ctx context.Context, r *http.Request) (*current, error) {
	token := h.sessionToken(r)
	if token == "" {
		return nil, nil
	}
	if loader := h.sessionIdentities; loader != nil {
		withCreds := h.stepUpReadsCredentials()
		rec, id, creds, err := loader.SessionWithIdentity(ctx, hashToken(token), withCreds)
		switch {
		case errors.Is(err, session.ErrNotFound):
			return nil, nil
		case err != nil:
			return nil, fmt.Errorf("load session: %w", err)
		case !rec.Valid(h.now()) || id == nil || !id.Active():
			return nil, nil
		}
		if withCreds && creds == nil {
			creds = []session.Credential{}
		}
		return &current{rec: rec, identity: id, token: token, creds: creds}, nil
	}
	rec, err := h.cfg.SessionStore.SessionByToken(ctx, hashToken(token))
	if errors.Is(err, session.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load session: %w", err)
	}
	if !rec.Valid(h.now()) {
		return nil, nil
	}
	id, err := h.cfg.IdentityStore.Identity(ctx, rec.IdentityID)
	if errors.Is(err, session.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load identity: %w", err)
	}
	if !id.Active() {
		return nil, nil
	}
	return &current{rec: rec, identity: id, token: token}, nil
}

// aal returns the session's assurance level, "aal1" when unset.
func (c *current) aal() string {
	if c.rec.Session.AAL == "" {
		return "aal1"
	}
	return c.rec.Session.AAL
}

// wireSession is the session as clients see it: its identity embedded,
// without credentials, active computed. It shares rec's and id's slices,
// which are the caller's own copies.
func (h *Handler) wireSession(rec *session.Record, id *session.Identity) *session.Session {
	s := rec.Session
	s.Active = rec.Valid(h.now()) && id.Active()
	s.Identity = h.wireIdentity(id)
	if s.AuthenticationMethods == nil {
		s.AuthenticationMethods = []session.AuthenticationMethod{}
	}
	if s.Devices == nil {
		s.Devices = []session.Device{}
	}
	return &s
}

// wireIdentity is the identity as clients see it, with its schema URL.
func (h *Handler) wireIdentity(id *session.Identity) *session.Identity {
	c := *id
	if c.SchemaID == "" {
		c.SchemaID = "default"
	}
	c.SchemaURL = h.public + "/schemas/" + base64.RawURLEncoding.EncodeToString([]byte(c.SchemaID))
	if len(c.Traits) == 0 {
		c.Traits = json.RawMessage("{}")
	}
	return &c
}

// whoami answers the current session (200, with the identity id in
// X-Kratos-Authenticated-Identity-Id), 401 session_inactive, or 403
// session_aal2_required for a session below Config.RequiredAAL.
func (h *Handler) whoami(x *exchange) (*response, error) {
	x.json = true
	cur, err := h.currentSession(x.r.Context(), x.r)
	if err != nil {
		return nil, err
	}
	if cur == nil {
		return nil, autherrors.NoSessionCredentials()
	}
	x.seeSession(cur.rec)
	if err := h.checkAAL(x.r.Context(), cur); err != nil {
		return nil, err
	}
	return &response{
		status: http.StatusOK,
		body:   h.wireSession(cur.rec, cur.identity),
		header: map[string]string{"X-Kratos-Authenticated-Identity-Id": cur.identity.ID},
	}, nil
}

// checkAAL refuses a session below Config.RequiredAAL with an
// *aalRequired naming the step-up URL.
func (h *Handler) checkAAL(ctx context.Context, cur *current) error {
	short, err := h.needsStepUpWith(ctx, cur.aal(), cur.identity, cur.creds)
	if err != nil {
		return err
	}
	if short {
		return &aalRequired{redirect: h.stepUpURL("")}
	}
	return nil
}

// signedIn returns the request's session if it counts as signed in: valid,
// and of the required AAL (else an *aalRequired error).
func (h *Handler) signedIn(r *http.Request) (*current, error) {
	cur, err := h.currentSession(r.Context(), r)
	if err != nil || cur == nil {
		return nil, err
	}
	if err := h.checkAAL(r.Context(), cur); err != nil {
		return nil, err
	}
	return cur, nil
}

// Middleware puts the request's session into the request context, where
// session.FromContext finds it, when it counts as signed in: valid and of
// Config.RequiredAAL (an aal1 session that still needs its second factor
// does not). Other requests pass through unchanged; a failing store is
// logged and treated as no session.
func (h *Handler) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cur, err := h.signedIn(r)
		var short *aalRequired
		if err != nil && !errors.As(err, &short) {
			h.logger().ErrorContext(r.Context(), "session lookup failed", "error", err)
		}
		if cur != nil {
			r = r.WithContext(session.NewContext(r.Context(), h.wireSession(cur.rec, cur.identity)))
		}
		next.ServeHTTP(w, r)
	})
}

// RequireSession serves next only to requests whose session counts as
// signed in, which it puts into the request context like Middleware.
// Without a session, JSON requests get the 401 session_inactive envelope
// and browsers a 303 to the browser login; with a session below
// Config.RequiredAAL, JSON requests get the 403 session_aal2_required
// envelope and browsers a 303 to the step-up flow. Browsers are sent with
// a return_to back to the page they asked for (on PublicURL's origin) when
// the allow-list admits it. A failing store is the generic 500.
func (h *Handler) RequireSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cur, err := h.signedIn(r)
		if err == nil && cur != nil {
			next.ServeHTTP(w, r.WithContext(session.NewContext(r.Context(), h.wireSession(cur.rec, cur.identity))))
			return
		}
		x := &exchange{r: r, json: isJSONRequest(r)}
		noCache(w)
		var short *aalRequired
		switch {
		case errors.As(err, &short) && !x.json:
			h.write(w, x, &response{location: h.stepUpURL(h.comeBack(r))})
		case errors.As(err, &short):
			h.fail(w, x, err)
		case err != nil:
			h.logger().ErrorContext(r.Context(), "session lookup failed", "error", err)
			h.fail(w, x, err)
		case x.json:
			h.fail(w, x, autherrors.NoSessionCredentials())
		default:
			login := h.public + "/self-service/login/browser"
			if back := h.comeBack(r); back != "" {
				login += "?" + url.Values{"return_to": {back}}.Encode()
			}
			h.write(w, x, &response{location: login})
		}
	})
}

// comeBack is the return_to that brings a browser sent to log in by
// RequireSession back to the page it asked for: the request's path and
// query on the origin of PublicURL (the server that runs the handler also
// serves the routes it protects), when the allow-list admits that URL and
// the request is a GET; "" otherwise, so that the login never fails on it.
func (h *Handler) comeBack(r *http.Request) string {
	if r.Method != http.MethodGet || len(r.URL.RequestURI()) > MaxURLLength/2 {
		return ""
	}
	u, err := url.Parse(h.public)
	if err != nil {
		return ""
	}
	back := u.Scheme + "://" + u.Host + r.URL.RequestURI()
	if _, err := h.resolveReturnTo(back); err != nil {
		return ""
	}
	return back
}
