package login

import (
	"errors"

	autherrors "github.com/authflow/authflow/errors"
	"github.com/authflow/authflow/flow"
)

// callback serves GET and POST /self-service/methods/{method}/callback/...
// for a CallbackMethod: the method finds the flow and authenticates; the
// handler completes the flow exactly as after a submission.
func (h *Handler) callback(x *exchange) (*response, error) {
	x.json = isJSONRequest(x.r)
	ctx := x.r.Context()
	m, ok := h.methods[x.r.PathValue("method")].(CallbackMethod)
	if !ok {
		return nil, autherrors.NotFound()
	}
	rec, res, err := m.Callback(ctx, &Callback{
		Request:    x.r,
		Path:       x.r.PathValue("path"),
		Flows:      h.cfg.FlowStore,
		Identities: h.cfg.IdentityStore,
		h:          h,
		method:     m.ID(),
	})
	x.seen.method = m.ID()
	if rec != nil {
		x.seeFlow(rec) // a callback is a browser navigation, whatever the flow's type
	}
	if res != nil {
		x.cookies = append(x.cookies, res.Cookies...)
	}
	// An expired flow is replaced by a fresh one whatever the method
	// found, as a submission of it would be.
	if rec != nil && rec.Flow.Expired(h.now()) {
		cur, cerr := h.currentSession(ctx, x.r)
		if cerr != nil {
			return nil, cerr
		}
		return nil, h.replaceExpired(x, rec, cur)
	}
	if err != nil {
		var fe *FlowError
		if errors.As(err, &fe) && rec != nil {
			return nil, h.reportOnFlow(x, rec, fe)
		}
		return nil, err
	}
	cur, err := h.currentSession(ctx, x.r)
	if err != nil {
		return nil, err
	}
	if rec.Flow.State == flow.StatePassedChallenge {
		return nil, h.reportOnFlow(x, rec, &FlowError{Messages: []flow.Message{flow.AlreadyCompleted()}})
	}
	if res.RedirectBrowserTo != "" {
		return nil, h.continueInBrowser(x, rec, m, res)
	}
	if rec.Flow.Type == flow.TypeAPI {
		// The session of a native app's flow must reach the app, not the
		// browser that happens to finish the login: with the session token
		// exchange, the browser only carries a code back to the app;
		// without it, such a flow issues no session here.
		st := exchangeOf(rec)
		if st == nil {
			return nil, errNativeCallback
		}
		return h.completeForExchange(x, rec, st, res, h.attempt(rec, m, &Submission{Request: x.r, Flow: rec}))
	}
	return h.complete(x, rec, cur, res, h.attempt(rec, m, &Submission{Request: x.r, Flow: rec}))
}

// errNativeCallback refuses to finish a native app's flow in a browser.
var errNativeCallback = autherrors.BadRequest("This login was started by a native app without return_session_token_exchange_code and cannot be finished in a browser: no session was issued. Start the login in the browser instead, or let the app request the session token exchange.")
