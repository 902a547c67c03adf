package login

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	autherrors "github.com/authflow/authflow/errors"
	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/internal/uuid"
	"github.com/authflow/authflow/session"
)

// The session token exchange lets a native app finish a login in the
// system browser (social sign-in) and still receive a session token:
//
//  1. The app creates an API flow with return_session_token_exchange_code=true
//     and a return_to (its own URL scheme or universal link); the flow's
//     answer carries session_token_exchange_code, the init code, once.
//  2. The browser finishes at the provider; the callback completes the flow
//     without a session, and sends the browser to return_to with
//     code=<return_to_code> added to its query.
//  3. The app calls GET /sessions/token-exchange?init_code=&return_to_code=
//     and receives {"session_token", "session"}: the session is created at
//     that moment, so no token is ever stored, not even for a moment.
//
// Only SHA-256 hashes of both codes are stored, in the flow's MethodState
// under exchangeStateKey. The init code is "<flow id>.<secret>" so that the
// exchange finds its flow; the return_to_code is a bare secret. Both are 256
// bits from crypto/rand. The exchange is accepted until exchangeLifespan
// after the browser finished, exactly once; a refused attempt changes
// nothing (guessing a 256-bit secret is hopeless, and a wrong attempt
// burning the codes would let whoever saw the init code cancel the login).

// exchangeStateKey is the flow's MethodState entry of the exchange. Method
// IDs cannot start with "_", so no method can collide with it.
const exchangeStateKey = "_exchange"

// exchangeLifespan is how long after the browser finished the exchange is
// accepted.
const exchangeLifespan = 10 * time.Minute

// exchangeState is the flow's MethodState["_exchange"].
type exchangeState struct {
	// InitHash is the SHA-256 (hex) of the init code's secret part.
	InitHash string `json:"init_code_sha256"`
	// The rest is set when the browser finished: the return_to_code's hash,
	// until when the exchange is accepted, who logged in and how.
	ReturnToHash string                        `json:"return_to_code_sha256,omitempty"`
	ExpiresAt    time.Time                     `json:"expires_at,omitzero"`
	IdentityID   string                        `json:"identity_id,omitempty"`
	Method       *session.AuthenticationMethod `json:"method,omitempty"`
	// Used is set by the one exchange that succeeded.
	Used bool `json:"used,omitempty"`
}

// exchangeOf returns the flow's exchange state, or nil.
func exchangeOf(rec *flow.Record) *exchangeState {
	raw, ok := rec.MethodState[exchangeStateKey]
	if !ok {
		return nil
	}
	var st exchangeState
	if json.Unmarshal(raw, &st) != nil || st.InitHash == "" {
		return nil
	}
	return &st
}

// setExchange stores st in the flow's MethodState.
func setExchange(rec *flow.Record, st *exchangeState) error {
	raw, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if rec.MethodState == nil {
		rec.MethodState = map[string]json.RawMessage{}
	}
	rec.MethodState[exchangeStateKey] = raw
	return nil
}

// newExchangeCode returns a new init code for the flow and puts its hash
// into the flow's state.
func newExchangeCode(rec *flow.Record) (string, error) {
	secret := newSessionToken()
	if err := setExchange(rec, &exchangeState{InitHash: hashToken(secret)}); err != nil {
		return "", err
	}
	return rec.Flow.ID + "." + secret, nil
}

// errExchangeNeedsReturnTo refuses an exchange without a place to go back to.
var errExchangeNeedsReturnTo = autherrors.BadRequest("return_session_token_exchange_code requires return_to: the browser must be sent back to the app with the return_to_code.")

// completeForExchange finishes a native app's flow in the browser: the flow
// completes without a session, the exchange state records who logged in,
// and the browser goes back to return_to with code=<return_to_code>.
func (h *Handler) completeForExchange(x *exchange, rec *flow.Record, st *exchangeState, res *Result, attempt *Attempt) (*response, error) {
	ctx := x.r.Context()
	x.seen.identityID = res.Identity.ID
	if !res.Identity.Active() {
		return nil, h.reportOnFlow(x, rec, &FlowError{Messages: []flow.Message{flow.IdentityDisabled()}})
	}
	if h.cfg.AfterVerification != nil {
		if err := h.cfg.AfterVerification(ctx, attempt, res.Identity); err != nil {
			return nil, h.hookRefusal(x, rec, err)
		}
	}
	// return_to is checked again: the allow-list may have changed.
	if rec.Flow.ReturnTo == "" {
		return nil, h.reportOnFlow(x, rec, &FlowError{Messages: flowMessages(autherrors.ReturnToReason(rec.Flow.ReturnTo))})
	}
	resolved, err := h.resolveReturnTo(rec.Flow.ReturnTo)
	if err != nil {
		return nil, h.reportOnFlow(x, rec, &FlowError{Messages: flowMessages(autherrors.ReturnToReason(rec.Flow.ReturnTo))})
	}
	target := *resolved // a copy: the query changes
	now := h.now()
	method := res.Method
	method.CompletedAt = now
	if method.AAL == "" {
		method.AAL = flow.AAL1
	}
	code := newSessionToken()
	st.ReturnToHash = hashToken(code)
	st.ExpiresAt = now.Add(exchangeLifespan)
	st.IdentityID = res.Identity.ID
	st.Method = &method
	st.Used = false
	if err := setExchange(rec, st); err != nil {
		return nil, err
	}
	rec.Flow.Active = method.Method
	rec.Flow.UpdatedAt = now
	if err := h.cfg.FlowStore.CompleteFlow(ctx, rec); err != nil {
		if errors.Is(err, flow.ErrCompleted) {
			latest, lerr := h.cfg.FlowStore.Flow(ctx, rec.Flow.ID)
			if lerr != nil {
				return nil, fmt.Errorf("reload flow: %w", lerr)
			}
			return nil, h.reportOnFlow(x, latest, &FlowError{Messages: []flow.Message{flow.AlreadyCompleted()}})
		}
		return nil, fmt.Errorf("complete flow: %w", err)
	}
	if res.AfterLogin != nil {
		if err := bestEffort(ctx, res.AfterLogin); err != nil {
			h.logBestEffort(ctx, "after-login step failed", err, "identity_id", res.Identity.ID, "method", method.Method)
		}
	}
	// The code is added to return_to's query, which is otherwise kept as
	// it is (a code already there is replaced).
	switch q := target.Query(); {
	case q.Has("code"):
		q.Set("code", code)
		target.RawQuery = q.Encode()
	case target.RawQuery == "":
		target.RawQuery = "code=" + code
	default:
		target.RawQuery += "&code=" + code
	}
	target.ForceQuery = false
	return &response{location: target.String()}, nil
}

// exchangeAnswer is the body of a successful exchange (the Ory SDK's
// SuccessfulNativeLogin, without continue_with).
type exchangeAnswer struct {
	SessionToken string           `json:"session_token"`
	Session      *session.Session `json:"session"`
}

// errExchangeRefused is the one answer to unknown, mismatched, used and
// expired codes alike.
func errExchangeRefused() error {
	return autherrors.Forbidden("The session token exchange codes are invalid, were already used or have expired.")
}

// tokenExchange serves GET /sessions/token-exchange?init_code=&return_to_code=.
func (h *Handler) tokenExchange(x *exchange) (*response, error) {
	x.json = true
	ctx := x.r.Context()
	q := x.r.URL.Query()
	initCode, returnToCode := q.Get("init_code"), q.Get("return_to_code")
	if initCode == "" || returnToCode == "" {
		return nil, autherrors.BadRequest("The init_code and return_to_code query parameters are required.")
	}
	flowID, secret, _ := strings.Cut(initCode, ".")
	flowID, ok := uuid.Parse(flowID)
	if !ok || secret == "" {
		return nil, errExchangeRefused()
	}
	rec, err := h.cfg.FlowStore.Flow(ctx, flowID)
	if errors.Is(err, flow.ErrNotFound) {
		return nil, errExchangeRefused()
	}
	if err != nil {
		return nil, fmt.Errorf("load flow: %w", err)
	}
	x.seeFlow(rec)
	st := exchangeOf(rec)
	now := h.now()
	if st == nil || rec.Flow.Type != flow.TypeAPI || rec.Flow.State != flow.StatePassedChallenge ||
		st.ReturnToHash == "" || st.Method == nil || st.Used || !now.Before(st.ExpiresAt) {
		return nil, errExchangeRefused()
	}
	// Both compared in constant time, and both always compared.
	initOK := subtle.ConstantTimeCompare([]byte(hashToken(secret)), []byte(st.InitHash))
	codeOK := subtle.ConstantTimeCompare([]byte(hashToken(returnToCode)), []byte(st.ReturnToHash))
	if initOK&codeOK != 1 {
		return nil, errExchangeRefused()
	}
	x.seen.method = st.Method.Method
	x.seen.identityID = st.IdentityID
	// Single use: of concurrent exchanges only one wins the conditional
	// update; the others are refused like a replay.
	st.Used = true
	if err := setExchange(rec, st); err != nil {
		return nil, err
	}
	rec.Flow.UpdatedAt = now
	switch err := h.cfg.FlowStore.UpdateFlow(ctx, rec); {
	case errors.Is(err, flow.ErrConflict), errors.Is(err, flow.ErrNotFound):
		return nil, errExchangeRefused()
	case err != nil:
		return nil, fmt.Errorf("consume exchange codes: %w", err)
	}
	id, err := h.cfg.IdentityStore.Identity(ctx, st.IdentityID)
	switch {
	case errors.Is(err, session.ErrNotFound) || (err == nil && !id.Active()):
		return nil, autherrors.Forbidden("The account is disabled or no longer exists: no session was issued.")
	case err != nil:
		return nil, h.releaseExchange(ctx, rec, st, fmt.Errorf("load identity: %w", err))
	}
	s, token := h.exchangeSession(x.r, id, st, now)
	if err := bestEffort(ctx, func(ctx context.Context) error { return h.cfg.SessionStore.CreateSession(ctx, s) }); err != nil {
		return nil, h.releaseExchange(ctx, rec, st, fmt.Errorf("store session: %w", err))
	}
	x.seeSession(s)
	return &response{status: http.StatusOK, body: &exchangeAnswer{SessionToken: token, Session: h.wireSession(s, id)}}, nil
}

// releaseExchange makes the codes usable again after an internal failure
// (the app may retry), and returns cause.
func (h *Handler) releaseExchange(ctx context.Context, rec *flow.Record, st *exchangeState, cause error) error {
	st.Used = false
	if err := setExchange(rec, st); err != nil {
		return errors.Join(cause, err)
	}
	err := bestEffort(context.WithoutCancel(ctx), func(ctx context.Context) error { return h.cfg.FlowStore.UpdateFlow(ctx, rec) })
	if err != nil {
		return errors.Join(cause, fmt.Errorf("release exchange codes: %w", err))
	}
	return cause
}

// exchangeSession is the new session of an exchange: a new id and token,
// authenticated when the browser finished, issued now.
func (h *Handler) exchangeSession(r *http.Request, id *session.Identity, st *exchangeState, now time.Time) (*session.Record, string) {
	token := newSessionToken()
	method := *st.Method
	s := &session.Record{
		Session: session.Session{
			ID:                    uuid.New(),
			Active:                true,
			ExpiresAt:             now.Add(h.cfg.SessionLifespan),
			AuthenticatedAt:       method.CompletedAt,
			AAL:                   method.AAL,
			AuthenticationMethods: []session.AuthenticationMethod{method},
			IssuedAt:              now,
			Devices: []session.Device{{
				ID:        uuid.New(),
				IPAddress: h.clientIP(r),
				UserAgent: userAgent(r),
			}},
		},
		IdentityID: id.ID,
		TokenHash:  hashToken(token),
	}
	return s, token
}
