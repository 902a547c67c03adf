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

// errTooBusy is the answer when a flow's update keeps losing to
// concurrent ones: a retryable flow message, never an internal error (the
// submission's credentials were not compared).
func errTooBusy(what string) *FlowError {
	return &FlowError{
		Messages: []flow.Message{flow.Generic("Too many requests for this login at once. Please try again.")},
		Err:      fmt.Errorf("store %s: %d version conflicts: %w", what, maxStateUpdates, flow.ErrConflict),
	}
}

// changeFlow is the one read-modify-write of a flow: it applies change to
// rec and stores it, conditional on the flow's version; after a concurrent
// change it reloads the flow, pauses (contentionPause) and applies change
// to the newer one. It returns the stored flow; flow.ErrCompleted with the
// latest flow if it logged in meanwhile; errTooBusy with the latest flow
// after maxStateUpdates losses; an error from change as it is. what names
// the change in errors.
func (h *Handler) changeFlow(ctx context.Context, rec *flow.Record, what string, change func(*flow.Record) error) (*flow.Record, error) {
	for try := range maxStateUpdates {
		if try > 0 && !contentionPause(ctx, try) {
			return rec, ctx.Err()
		}
		if rec.Flow.State == flow.StatePassedChallenge {
			return rec, flow.ErrCompleted
		}
		if err := change(rec); err != nil {
			return rec, err
		}
		rec.Flow.UpdatedAt = h.now()
		err := h.cfg.FlowStore.UpdateFlow(ctx, rec)
		switch {
		case err == nil:
			return rec, nil
		case !errors.Is(err, flow.ErrConflict):
			return rec, fmt.Errorf("store %s: %w", what, err)
		}
		latest, err := h.cfg.FlowStore.Flow(ctx, rec.Flow.ID)
		if err != nil {
			return rec, fmt.Errorf("reload flow: %w", err)
		}
		rec = latest
	}
	return rec, errTooBusy(what)
}

// updateMethodState is Submission.UpdateState: a read-modify-write of one
// method's entry in rec's MethodState (changeFlow). rec becomes the stored
// flow.
func (h *Handler) updateMethodState(ctx context.Context, rec *flow.Record, method string, update func(json.RawMessage) (json.RawMessage, error)) (json.RawMessage, error) {
	return h.updateMethodStateNodes(ctx, rec, method, func(old json.RawMessage) (json.RawMessage, []flow.Node, error) {
		next, err := update(old)
		return next, nil, err
	})
}

// updateMethodStateNodes is Submission.UpdateStateNodes: updateMethodState
// that also replaces the flow's nodes of the same name and group as those
// update returns.
func (h *Handler) updateMethodStateNodes(ctx context.Context, rec *flow.Record, method string, update func(json.RawMessage) (json.RawMessage, []flow.Node, error)) (json.RawMessage, error) {
	var next json.RawMessage
	stored, err := h.changeFlow(ctx, rec.Clone(), method+" state", func(cur *flow.Record) error {
		var (
			nodes []flow.Node
			err   error
		)
		if next, nodes, err = update(cur.MethodState[method]); err != nil {
			return err
		}
		if cur.MethodState == nil {
			cur.MethodState = map[string]json.RawMessage{}
		}
		cur.MethodState[method] = next
		replaceNodes(cur.Flow.UI.Nodes, nodes)
		return nil
	})
	if err != nil {
		return nil, err
	}
	*rec = *stored
	return next, nil
}

// replaceNodes replaces each node of nodes that has the name and group of
// one of with, in place.
func replaceNodes(nodes, with []flow.Node) {
	for _, w := range with {
		for i := range nodes {
			if nodes[i].Group == w.Group && nodes[i].Attributes.Name == w.Attributes.Name {
				nodes[i] = w
			}
		}
	}
}

// storeStep stores a change of the flow that the contract answers as a
// FLOW-400 (a method's next step, the identifier-first second step) and
// returns that answer. A flow that logged in meanwhile is answered 4010007,
// one too busy to change the retryable message.
func (h *Handler) storeStep(x *exchange, rec *flow.Record, what string, change func(*flow.Record)) error {
	stored, err := h.changeFlow(x.r.Context(), rec, what, func(cur *flow.Record) error {
		change(cur)
		return nil
	})
	var fe *FlowError
	switch {
	case err == nil:
		return &flowFailure{rec: stored, err: errStep}
	case errors.Is(err, flow.ErrCompleted):
		return h.reportOnFlow(x, stored, &FlowError{Messages: []flow.Message{flow.AlreadyCompleted()}})
	case errors.As(err, &fe):
		return h.reportOnFlow(x, stored, fe)
	}
	return err
}

// continueStep stores a method's next step on the flow (Result.Step) and
// returns the FLOW-400 that answers it (storeStep).
func (h *Handler) continueStep(x *exchange, rec *flow.Record, m Method, res *Result) error {
	token := h.flowCSRFToken(x.r, rec)
	return h.storeStep(x, rec, m.ID()+" step", func(cur *flow.Record) {
		applyStep(cur, m.ID(), res, token)
	})
}

// csrfNode returns rec's csrf_token node for a changed form: without
// messages, re-masked when token (the flow's own cookie's) is set; false
// when the flow has none.
func csrfNode(rec *flow.Record, token []byte) (flow.Node, bool) {
	n := rec.Flow.UI.Node("csrf_token")
	if n == nil {
		return flow.Node{}, false
	}
	csrf := *n
	csrf.Messages = []flow.Message{}
	if token != nil {
		csrf.Attributes.Value = maskCSRFToken(token)
	}
	return csrf, true
}

// errStep is the cause a stored step is answered with: not an error, but
// the contract answers a step as a flow failure (400 with the flow).
var errStep = errors.New("login: the flow goes on with its next step")

// applyStep puts a step on the flow: state, active method, the step's
// nodes in the method's order followed, for browser flows, by the
// csrf_token node (re-masked for the flow's own browser), as Kratos orders
// a sent code's form; its messages; and the method state when the Result
// carries one. changeFlow sets the update time.
func applyStep(rec *flow.Record, method string, res *Result, csrfToken []byte) {
	step := res.Step
	ui := &rec.Flow.UI
	nodes := make([]flow.Node, 0, 1+len(step.Nodes))
	nodes = append(nodes, step.Nodes...)
	if csrf, ok := csrfNode(rec, csrfToken); ok && rec.Flow.Type == flow.TypeBrowser {
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
}
