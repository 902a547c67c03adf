package login

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/authflow/authflow/flow"
)

// Multi-step logins: a method that answers in several steps (a login code
// is sent, then entered) keeps its state in the flow's MethodState with
// Submission.UpdateState and moves the flow on with Result.Step.

// maxStateUpdates bounds how often an update of a flow is retried after
// losing to a concurrent one; between tries the writer waits a short,
// random, growing time (contentionPause), so that a burst of submissions
// of one flow spread over several instances sorts itself out.
const maxStateUpdates = 64

// contentionPause waits before the try-th retry of a conflicting flow
// update: a random time up to 1 ms doubled per try, capped at 32 ms. It
// reports false when ctx ended first.
func contentionPause(ctx context.Context, try int) bool {
	limit := time.Millisecond << min(try, 5)
	t := time.NewTimer(rand.N(limit) + 1)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// updateMethodState is Submission.UpdateState: a read-modify-write of one
// method's entry in rec's MethodState, conditional on the flow's version,
// retried on the newer flow after a conflict. rec becomes the stored flow.
func (h *Handler) updateMethodState(ctx context.Context, rec *flow.Record, method string, update func(json.RawMessage) (json.RawMessage, error)) (json.RawMessage, error) {
	cur := rec.Clone()
	for try := range maxStateUpdates {
		if try > 0 && !contentionPause(ctx, try) {
			return nil, ctx.Err()
		}
		if cur.Flow.State == flow.StatePassedChallenge {
			return nil, flow.ErrCompleted
		}
		next, err := update(cur.MethodState[method])
		if err != nil {
			return nil, err
		}
		if cur.MethodState == nil {
			cur.MethodState = map[string]json.RawMessage{}
		}
		cur.MethodState[method] = next
		cur.Flow.UpdatedAt = h.now()
		err = h.cfg.FlowStore.UpdateFlow(ctx, cur)
		switch {
		case err == nil:
			*rec = *cur
			return next, nil
		case !errors.Is(err, flow.ErrConflict):
			return nil, fmt.Errorf("store %s state: %w", method, err)
		}
		if cur, err = h.cfg.FlowStore.Flow(ctx, rec.Flow.ID); err != nil {
			return nil, fmt.Errorf("reload flow: %w", err)
		}
	}
	return nil, &FlowError{
		Messages: []flow.Message{flow.Generic("Too many requests for this login at once. Please try again.")},
		Err:      fmt.Errorf("store %s state: %d version conflicts: %w", method, maxStateUpdates, flow.ErrConflict),
	}
}

// continueStep stores a method's next step on the flow (Result.Step) and
// returns the FLOW-400 that answers it. A flow that logged in meanwhile is
// answered 4010007; another concurrent change makes the step apply to the
// newer flow.
func (h *Handler) continueStep(x *exchange, rec *flow.Record, m Method, res *Result) error {
	ctx := x.r.Context()
	token := h.flowCSRFToken(x.r, rec)
	for try := range maxStateUpdates {
		if try > 0 && !contentionPause(ctx, try) {
			return ctx.Err()
		}
		if rec.Flow.State == flow.StatePassedChallenge {
			return h.reportOnFlow(x, rec, &FlowError{Messages: []flow.Message{flow.AlreadyCompleted()}})
		}
		applyStep(rec, m.ID(), res, token, h.now())
		err := h.cfg.FlowStore.UpdateFlow(ctx, rec)
		switch {
		case err == nil:
			return &flowFailure{rec: rec, err: errStep}
		case !errors.Is(err, flow.ErrConflict):
			return fmt.Errorf("store %s step: %w", m.ID(), err)
		}
		latest, err := h.cfg.FlowStore.Flow(ctx, rec.Flow.ID)
		if err != nil {
			return fmt.Errorf("reload flow: %w", err)
		}
		rec = latest
	}
	return h.reportOnFlow(x, rec, &FlowError{
		Messages: []flow.Message{flow.Generic("Too many requests for this login at once. Please try again.")},
		Err:      fmt.Errorf("store %s step: %d version conflicts: %w", m.ID(), maxStateUpdates, flow.ErrConflict),
	})
}

// errStep is the cause a stored step is answered with: not an error, but
// the contract answers a step as a flow failure (400 with the flow).
var errStep = errors.New("login: the flow goes on with its next step")

// applyStep puts a step on the flow: state, active method, the step's
// nodes in the method's order followed, for browser flows, by the
// csrf_token node (re-masked for the flow's own browser), as Kratos orders
// a sent code's form; its messages; and the method state when the Result
// carries one.
func applyStep(rec *flow.Record, method string, res *Result, csrfToken []byte, now time.Time) {
	step := res.Step
	ui := &rec.Flow.UI
	nodes := make([]flow.Node, 0, 1+len(step.Nodes))
	nodes = append(nodes, step.Nodes...)
	if n := ui.Node("csrf_token"); n != nil && rec.Flow.Type == flow.TypeBrowser {
		csrf := *n
		csrf.Messages = []flow.Message{}
		if csrfToken != nil {
			csrf.Attributes.Value = maskCSRFToken(csrfToken)
		}
		nodes = append(nodes, csrf)
	}
	ui.Nodes = nodes
	ui.Messages = append([]flow.Message(nil), step.Messages...)
	rec.Flow.State = step.State
	rec.Flow.Active = method
	if res.MethodState != nil {
		if rec.MethodState == nil {
			rec.MethodState = map[string]json.RawMessage{}
		}
		rec.MethodState[method] = res.MethodState
	}
	rec.Flow.UpdatedAt = now
}
