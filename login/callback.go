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
	})
	x.seen.method = m.ID()
	if rec != nil {
		x.seeFlow(rec)
		if rec.Flow.Type == flow.TypeAPI {
			x.json = true
		}
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
	if rec.Flow.Expired(h.now()) {
		return nil, h.replaceExpired(x, rec, cur)
	}
	if rec.Flow.State == flow.StatePassedChallenge {
		return nil, h.reportOnFlow(x, rec, &FlowError{Messages: []flow.Message{flow.AlreadyCompleted()}})
	}
	if res.RedirectBrowserTo != "" {
		return nil, h.continueInBrowser(x, rec, m, res)
	}
	return h.complete(x, rec, cur, res, h.attempt(rec, m, &Submission{Request: x.r, Flow: rec}))
}
