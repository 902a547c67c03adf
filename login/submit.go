package login

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"runtime/debug"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	autherrors "github.com/authflow/authflow/errors"
	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/internal/uuid"
	"github.com/authflow/authflow/session"
)

// submit serves POST /self-service/login?flow=, in the evaluation order of
// CONTRACT Part 1 section G; the first step that decides, answers.
func (h *Handler) submit(x *exchange) (*response, error) {
	r := x.r
	ctx := r.Context()
	x.json = isJSONRequest(r)

	// 1. A body over the limit is refused before anything is loaded.
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	// 2. The flow. The body is decoded now, so that the identity it names
	// can be read with the flow, but a body that cannot be decoded is
	// reported at step 6.
	id, ok := uuid.Parse(r.URL.Query().Get("flow"))
	if !ok {
		return nil, autherrors.MissingFlowID()
	}
	fields, reason := decodeBody(r, body)
	rec, pre, err := h.loadFlow(ctx, id, fields)
	if errors.Is(err, flow.ErrNotFound) {
		return nil, autherrors.NotFound()
	}
	if err != nil {
		return nil, fmt.Errorf("load flow: %w", err)
	}
	x.seeFlow(rec)
	if rec.Flow.Type == flow.TypeAPI {
		x.json = true // API flows always answer JSON
	}
	// 3. The session: already signed in, or refresh / step-up / none.
	cur, err := h.currentSession(ctx, r)
	if err != nil {
		return nil, err
	}
	if err := h.checkSignedIn(rec, cur); err != nil {
		return nil, err
	}
	// 4. Expired: a fresh flow.
	if rec.Flow.Expired(h.now()) {
		return nil, h.replaceExpired(x, rec, cur)
	}
	// 5. A flow logs in at most once.
	if rec.Flow.State == flow.StatePassedChallenge {
		orphan, err := h.orphaned(ctx, rec)
		if err != nil {
			return nil, err
		}
		if !orphan {
			return nil, h.reportOnFlow(x, rec, &FlowError{Messages: []flow.Message{flow.AlreadyCompleted()}})
		}
		if err := h.reopen(ctx, rec); err != nil {
			return nil, err
		}
	}
	// 6. The body, decoded at step 2, selects the method.
	if reason != "" {
		return nil, h.reportOnFlow(x, rec, &FlowError{Messages: flowMessages(reason)})
	}
	methodID := fields.Get("method")
	if methodID == "" {
		methodID = h.selectByField(&rec.Flow, fields)
	}
	if methodID == identifierFirstMethod && h.identifierFirst(&rec.Flow) {
		return nil, h.submitIdentifier(x, rec, &Submission{Request: r, Flow: rec, fields: fields, h: h})
	}
	m := h.methods[methodID]
	if methodID == "password" && h.password == nil {
		return nil, autherrors.MethodDisabled()
	}
	// A flow is served only by methods of its AAL, and a step-up flow only
	// to the session that created it (CONTRACT-AAL Part 1 S5).
	stepUp := rec.Flow.RequestedAAL == flow.AAL2
	if m == nil || m.AAL() != cmp.Or(rec.Flow.RequestedAAL, flow.AAL1) || (stepUp && !ownsStepUp(rec, cur)) {
		return nil, h.reportOnFlow(x, rec, &FlowError{Messages: []flow.Message{flow.NoMethod()}})
	}
	x.seen.method = m.ID()
	sub := &Submission{Request: r, Flow: rec, Identities: h.cfg.IdentityStore, fields: fields, decoder: h.decoder, h: h, method: m.ID(), prefetched: pre}
	if cur != nil {
		sub.Session = h.wireSession(cur.rec, cur.identity)
	}
	if stepUp {
		sub.Identifier = cur.identity.ID // second factors are throttled by identity
	}
	// 7. Field validation, all messages together.
	if err := m.Validate(ctx, sub); err != nil {
		return nil, h.methodError(x, rec, err)
	}
	// 8. CSRF for browser flows; API flows are kept away from browsers.
	if err := h.checkFlowRequest(x, rec, sub); err != nil {
		return nil, err
	}
	attempt := h.attempt(rec, m, sub)
	// 9. The host's before-attempt hook.
	if h.cfg.BeforeAttempt != nil {
		if err := h.cfg.BeforeAttempt(ctx, attempt); err != nil {
			return nil, h.hookRefusal(x, rec, err)
		}
	}
	// 10. Throttling: the attempt is reserved, counted as a failure, before
	// any hash is computed.
	key := LimitKey{Identifier: sub.Identifier, ClientIP: limitAddress(h.clientIP(r))}
	reserved, err := h.reserve(x, rec, key)
	if err != nil {
		return nil, err
	}
	// 11. Credentials; wrong ones keep their reservation and are reported to
	// the after-failure hook.
	res, err := m.Authenticate(ctx, sub)
	if err != nil {
		var fe *FlowError
		if errors.As(err, &fe) && invalidCredentials(fe) {
			if h.cfg.AfterFailure != nil {
				h.cfg.AfterFailure(ctx, attempt, err)
			}
		} else {
			reserved.release(ctx)
		}
		return nil, h.methodError(x, rec, err)
	}
	if res.RedirectBrowserTo != "" {
		reserved.release(ctx)
		return nil, h.continueInBrowser(x, rec, m, res)
	}
	if res.Step != nil {
		reserved.release(ctx) // a step is no verdict on the credentials
		x.cookies = append(x.cookies, res.Cookies...)
		return nil, h.continueStep(x, rec, m, res)
	}
	x.cookies = append(x.cookies, res.Cookies...)
	resp, err := h.complete(x, rec, cur, res, attempt)
	var fe *FlowError
	switch {
	case err == nil:
		reserved.success(ctx, res.Identity.ID)
	case errors.As(err, &fe) && invalidCredentials(fe): // a secret spent meanwhile (Result.Commit)
		if h.cfg.AfterFailure != nil {
			h.cfg.AfterFailure(ctx, attempt, fe)
		}
	default:
		reserved.release(ctx)
	}
	return resp, err
}

// loadFlow loads the flow with id and, when the store can in the same
// step (FlowIdentityLoader), the identity that the method the fields name
// will look up (IdentityPrefetcher); a nil prefetch otherwise.
func (h *Handler) loadFlow(ctx context.Context, id string, fields url.Values) (*flow.Record, *prefetch, error) {
	if h.flowIdentities != nil && fields != nil {
		if p, ok := h.methods[fields.Get("method")].(IdentityPrefetcher); ok {
			if typ, identifier, ok := p.PrefetchIdentity(fields); ok {
				q := IdentityQuery{Type: typ, Identifier: identifier, Credentials: h.stepUpReadsCredentials()}
				rec, lookup, err := h.flowIdentities.FlowWithIdentity(ctx, id, q)
				if err != nil {
					return nil, nil, err
				}
				return rec, &prefetch{query: q, lookup: lookup}, nil
			}
		}
	}
	rec, err := h.cfg.FlowStore.Flow(ctx, id)
	return rec, nil, err
}

// selectByField is the method a submission without a "method" field
// selects by a field of the method's own (FieldSelected): the first in
// order of the flow's AAL, else the first of any AAL; "" when none.
func (h *Handler) selectByField(f *flow.Flow, fields url.Values) string {
	aal := cmp.Or(f.RequestedAAL, flow.AAL1)
	other := ""
	for _, m := range h.order {
		fs, ok := m.(FieldSelected)
		if !ok || fields.Get(fs.SelectingField()) == "" {
			continue
		}
		if m.AAL() == aal {
			return m.ID()
		}
		if other == "" {
			other = m.ID()
		}
	}
	return other
}

// checkFlowRequest is step 8: the CSRF check of a browser flow (the
// csrf_token field or the X-CSRF-Token header), and for API flows the
// guard that keeps browsers away.
func (h *Handler) checkFlowRequest(x *exchange, rec *flow.Record, s *Submission) error {
	if rec.Flow.Type == flow.TypeBrowser {
		return h.checkCSRF(x.r, s.Field("csrf_token"))
	}
	if err := checkAPIFlowRequest(x.r); err != nil {
		return h.methodError(x, rec, err)
	}
	return nil
}

// bestEffort runs work that must not fail a login already issued (the
// re-hash): an error or a panic in it is returned, never propagated.
func bestEffort(ctx context.Context, work func(context.Context) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &panicError{value: p, stack: debug.Stack()}
		}
	}()
	return work(ctx)
}

// Throttled is the error a method returns to refuse an attempt that its
// own limits throttle (a login method that sends mail limits the sends),
// answered as the handler's throttling is (CONTRACT Part 1 rule 16): 429
// too_many_attempts with Retry-After, or for forms the flow with message
// 4019001. wait is how long the client must wait.
func Throttled(wait time.Duration) error {
	return &throttled{seconds: max(1, int((wait+time.Second-1)/time.Second))}
}

// reserve is step 10 (CONTRACT Part 1 rule 16): it reserves the attempt
// with the limiter, counting it as a failure until it is settled. An
// attempt the limiter refuses gets 429 too_many_attempts with Retry-After,
// or, for forms, the flow with message 4019001. Attempts without an
// identifier are not throttled here: the reservation is the zero value.
func (h *Handler) reserve(x *exchange, rec *flow.Record, key LimitKey) (reservation, error) {
	if h.limiter == nil || key.Identifier == "" {
		return reservation{}, nil
	}
	wait, err := h.limiter.Reserve(x.r.Context(), key)
	if err != nil {
		return reservation{}, fmt.Errorf("check throttling: %w", err)
	}
	if wait <= 0 {
		return reservation{h: h, key: key}, nil
	}
	seconds := int((wait + time.Second - 1) / time.Second)
	if x.json {
		return reservation{}, &throttled{seconds: seconds}
	}
	return reservation{}, h.reportOnFlow(x, rec, &FlowError{Messages: []flow.Message{flow.TooManyAttempts(seconds)}})
}

// reservation is an attempt the limiter counted; wrong credentials leave
// it counted, and the methods settle it otherwise. The zero value (no
// throttling) settles as a no-op.
type reservation struct {
	h   *Handler // nil: nothing reserved
	key LimitKey
}

// release takes the reservation back: the attempt reached no verdict on
// the credentials. A client that went away keeps its reservation: its hash
// may have run, and cancelling must not buy free guesses.
func (r reservation) release(ctx context.Context) {
	if r.h == nil || ctx.Err() != nil {
		return
	}
	if err := r.h.limiter.Release(ctx, r.key); err != nil {
		r.h.logBestEffort(ctx, "release throttling reservation", err)
	}
}

// success reports the login to the limiter, even if the client has gone
// meanwhile; a failure to do so is logged, never answered.
func (r reservation) success(ctx context.Context, identityID string) {
	if r.h == nil {
		return
	}
	if ctx.Err() != nil {
		ctx = context.WithoutCancel(ctx)
	}
	if err := r.h.limiter.Success(ctx, r.key); err != nil {
		r.h.logBestEffort(ctx, "record login for throttling", err, "identity_id", identityID)
	}
}

// invalidCredentials reports whether a method's refusal is wrong
// credentials (FailedAttempt, or message 4000006), the only refusal
// throttling counts.
func invalidCredentials(fe *FlowError) bool {
	if fe.FailedAttempt {
		return true
	}
	for _, m := range fe.Messages {
		if m.ID == flow.IDInvalidCredentials {
			return true
		}
	}
	return false
}

// attempt describes the submission to the hooks; nil when none is
// configured, which spares its cost.
func (h *Handler) attempt(rec *flow.Record, m Method, sub *Submission) *Attempt {
	if h.cfg.BeforeAttempt == nil && h.cfg.AfterFailure == nil && h.cfg.AfterVerification == nil {
		return nil
	}
	a := &Attempt{
		FlowID:     rec.Flow.ID,
		FlowType:   rec.Flow.Type,
		Method:     m.ID(),
		Identifier: sub.Identifier,
		ClientIP:   h.clientIP(sub.Request),
		Request:    sub.Request,
	}
	if tp := sub.Field("transient_payload"); tp != "" {
		a.TransientPayload = json.RawMessage(tp)
	}
	return a
}

// checkSignedIn is step 3: a valid session makes a new login pointless
// unless the flow refreshes it or steps its AAL up; without one, an aal2
// flow cannot be used.
func (h *Handler) checkSignedIn(rec *flow.Record, cur *current) error {
	switch {
	case cur == nil && rec.Flow.RequestedAAL == flow.AAL2:
		return autherrors.SessionAAL1Required()
	case cur == nil, rec.Flow.Refresh, rec.Flow.RequestedAAL > cur.aal():
		return nil
	default:
		return &alreadySignedIn{redirect: h.defaultReturnURL}
	}
}

// replaceExpired stores a fresh flow of the same type for an expired one,
// with the same request URL (so the same return_to) and message 4010001.
func (h *Handler) replaceExpired(x *exchange, rec *flow.Record, cur *current) error {
	now := h.now()
	opts := flowOptions{
		requestURL: rec.Flow.RequestURL,
		returnTo:   rec.Flow.ReturnTo,
		refresh:    rec.Flow.Refresh && cur != nil,
		aal:        rec.Flow.RequestedAAL,
		messages:   []flow.Message{flow.Expired(rec.Flow.ExpiresAt, now)},
	}
	if opts.refresh || opts.aal == flow.AAL2 {
		opts.session = cur
	}
	if rec.Flow.Type == flow.TypeBrowser {
		opts.csrfToken = h.ensureCSRFToken(x)
	}
	replacement, err := h.newFlow(x.r.Context(), rec.Flow.Type, opts)
	if err != nil {
		return err
	}
	return &expiredFlow{old: rec, replacement: replacement, now: now}
}

// methodError reports a *FlowError on the flow; other errors pass through.
func (h *Handler) methodError(x *exchange, rec *flow.Record, err error) error {
	var (
		fe *FlowError
		th *throttled
	)
	switch {
	case errors.As(err, &fe):
		return h.reportOnFlow(x, rec, fe)
	case errors.As(err, &th) && !x.json: // a method's own throttling (Throttled)
		return h.reportOnFlow(x, rec, &FlowError{Messages: []flow.Message{flow.TooManyAttempts(th.seconds)}})
	}
	return err
}

// reportOnFlow stores the flow with fe's messages, replacing earlier ones,
// and returns the FLOW-400 outcome. Browser flows get a freshly masked CSRF
// token when the request carries the flow's own CSRF cookie (see
// flowCSRFToken). A concurrent change of the flow (another submission of
// it) makes it reload and report on the newer state; under sustained
// contention it answers the messages without storing them rather than
// fail. If the store refuses the write otherwise, the stored flow is left
// as it was (still usable) and the error is internal.
func (h *Handler) reportOnFlow(x *exchange, rec *flow.Record, fe *FlowError) error {
	const maxAttempts = 8
	ctx := x.r.Context()
	token := h.flowCSRFToken(x.r, rec)
	for attempt := 1; ; attempt++ {
		apply(rec, fe, token, h.now())
		err := h.cfg.FlowStore.UpdateFlow(ctx, rec)
		switch {
		case err == nil:
			return &flowFailure{rec: rec, err: fe}
		case !errors.Is(err, flow.ErrConflict):
			return fmt.Errorf("store flow messages: %w", err)
		case attempt == maxAttempts:
			return &flowFailure{rec: rec, err: fmt.Errorf("%w (messages not stored: %d version conflicts)", fe, attempt)}
		}
		latest, err := h.cfg.FlowStore.Flow(ctx, rec.Flow.ID)
		if err != nil {
			return fmt.Errorf("reload flow: %w", err)
		}
		rec = latest
	}
}

// apply puts fe's messages and values on the flow.
func apply(rec *flow.Record, fe *FlowError, csrfToken []byte, now time.Time) {
	ui := &rec.Flow.UI
	ui.ResetMessages()
	ui.Messages = append(ui.Messages, fe.Messages...)
	for name, ms := range fe.Fields {
		if n := ui.Node(name); n != nil {
			n.Messages = append(n.Messages, ms...)
		} else {
			ui.Messages = append(ui.Messages, ms...)
		}
	}
	for name, v := range fe.Values {
		if n := ui.Node(name); n != nil && n.Attributes.Type != "password" && n.Attributes.Type != "hidden" {
			n.Attributes.Value = clip(v, MaxEchoedValueLength)
		}
	}
	for _, name := range fe.Cleared {
		if n := ui.Node(name); n != nil {
			n.Attributes.Value = nil
		}
	}
	if n := ui.Node("csrf_token"); n != nil && rec.Flow.Type == flow.TypeBrowser && csrfToken != nil {
		n.Attributes.Value = maskCSRFToken(csrfToken)
	}
	rec.Flow.UpdatedAt = now
}

// continueInBrowser stores the method's state and sends the browser on.
func (h *Handler) continueInBrowser(x *exchange, rec *flow.Record, m Method, res *Result) error {
	x.cookies = append(x.cookies, res.Cookies...)
	if res.MethodState != nil {
		if rec.MethodState == nil {
			rec.MethodState = map[string]json.RawMessage{}
		}
		rec.MethodState[m.ID()] = res.MethodState
		rec.Flow.UpdatedAt = h.now()
		if err := h.cfg.FlowStore.UpdateFlow(x.r.Context(), rec); err != nil {
			return fmt.Errorf("store method state: %w", err)
		}
	}
	return &locationChange{url: res.RedirectBrowserTo}
}

// nativeLogin is the body of a successful API flow login.
type nativeLogin struct {
	SessionToken string           `json:"session_token,omitempty"`
	Session      *session.Session `json:"session"`
	ContinueWith []continueWith   `json:"continue_with"`
}

type continueWith struct {
	Action            string `json:"action"`
	RedirectBrowserTo string `json:"redirect_browser_to"`
}

// complete runs steps 12 to 16 for an authenticated identity: identity
// state, return_to, the atomic completion with the session, the best-effort
// work of the method, and the success answer, or the way on to the step-up
// for a session that still needs its second factor.
func (h *Handler) complete(x *exchange, rec *flow.Record, cur *current, res *Result, attempt *Attempt) (*response, error) {
	ctx := x.r.Context()
	x.seen.identityID = res.Identity.ID
	if !res.Identity.Active() {
		return nil, h.reportOnFlow(x, rec, &FlowError{Messages: []flow.Message{flow.IdentityDisabled()}})
	}
	// 12. The host's after-verification hook.
	if h.cfg.AfterVerification != nil {
		if err := h.cfg.AfterVerification(ctx, attempt, res.Identity); err != nil {
			return nil, h.hookRefusal(x, rec, err)
		}
	}
	// 13. return_to is checked again: the allow-list may have changed.
	target := h.defaultReturnURL
	if rec.Flow.ReturnTo != "" {
		u, err := h.resolveReturnTo(rec.Flow.ReturnTo)
		if err != nil {
			return nil, h.reportOnFlow(x, rec, &FlowError{Messages: flowMessages(autherrors.ReturnToReason(rec.Flow.ReturnTo))})
		}
		target = u.String()
	}
	// 14. Spend the method's one-time secret, then complete the flow and
	// issue the session, atomically; a failed completion gives the secret
	// back.
	var rollback func(context.Context) error
	if res.Commit != nil {
		var err error
		if rollback, err = res.Commit(ctx); err != nil {
			return nil, h.methodError(x, rec, err)
		}
	}
	now := h.now()
	s, token, create := h.loginSession(x.r, cur, rec, res, now)
	rec.Flow.Active = res.Method.Method
	rec.Flow.UpdatedAt = now
	if err := h.completeWithSession(ctx, rec, s, create, now); err != nil {
		if rollback != nil {
			if rerr := bestEffort(context.WithoutCancel(ctx), rollback); rerr != nil {
				h.logBestEffort(ctx, "give back a one-time secret after a failed login", rerr, "identity_id", res.Identity.ID, "method", res.Method.Method)
			}
		}
		switch {
		case errors.Is(err, flow.ErrCompleted):
			latest, lerr := h.cfg.FlowStore.Flow(ctx, rec.Flow.ID)
			if lerr != nil {
				return nil, fmt.Errorf("reload flow: %w", lerr)
			}
			return nil, h.reportOnFlow(x, latest, &FlowError{Messages: []flow.Message{flow.AlreadyCompleted()}})
		case !create && (errors.Is(err, session.ErrInactive) || errors.Is(err, session.ErrNotFound)):
			// The session ended (logout, revocation, expiry) while the
			// credentials were checked: the refresh issues nothing and
			// is answered as a request without a session.
			return nil, autherrors.NoSessionCredentials()
		}
		return nil, err
	}
	// 15. Best-effort work (re-hash), then the answer.
	if res.AfterLogin != nil {
		if err := bestEffort(ctx, res.AfterLogin); err != nil {
			h.logBestEffort(ctx, "after-login step failed", err, "identity_id", res.Identity.ID, "method", res.Method.Method)
		}
	}
	x.seen.sessionID = s.Session.ID
	wire := h.wireSession(s, res.Identity)
	// 16. A session that still needs its second factor (CONTRACT-AAL §8)
	// is issued, but the client is sent on to the step-up.
	short, err := h.needsStepUpWith(ctx, s.Session.AAL, res.Identity, res.Credentials)
	if err != nil {
		// The session is issued; whoami and RequireSession check the AAL
		// again, so answering the login as complete opens nothing.
		h.logBestEffort(ctx, "check for a second factor after login", err, "identity_id", res.Identity.ID)
		short = false
	}
	if rec.Flow.Type == flow.TypeAPI {
		if short {
			wire.Identity = nil // as Kratos: the token is for the step-up
		}
		return &response{status: http.StatusOK, body: &nativeLogin{SessionToken: token, Session: wire}}, nil
	}
	x.cookies = append(x.cookies, h.sessionCookie(token, s.Session.ExpiresAt))
	if cur == nil || cur.identity.ID != res.Identity.ID {
		h.rotateCSRFToken(x)
	}
	if short {
		step := h.stepUpURL(rec.Flow.ReturnTo)
		if x.json {
			return nil, &locationChange{url: step}
		}
		return &response{location: step}, nil
	}
	if x.json {
		return &response{status: http.StatusOK, body: &nativeLogin{
			Session:      wire,
			ContinueWith: []continueWith{{Action: "redirect_browser_to", RedirectBrowserTo: target}},
		}}, nil
	}
	return &response{location: target}, nil
}

// loginSession returns the session a successful login stores and its
// token. A refresh or a step-up by the same identity keeps the session's id
// but rotates its token (CONTRACT-AAL Part 1 S3), appends the method and
// recomputes the AAL from the methods; every other login makes a new
// session with a new id and token, so a client can never fix a session id.
func (h *Handler) loginSession(r *http.Request, cur *current, rec *flow.Record, res *Result, now time.Time) (*session.Record, string, bool) {
	method := res.Method
	method.CompletedAt = now
	if method.AAL == "" {
		method.AAL = flow.AAL1
	}
	token := newSessionToken()
	if cur != nil && (rec.Flow.Refresh || rec.Flow.RequestedAAL == flow.AAL2) && cur.identity.ID == res.Identity.ID {
		s := cur.rec.Clone()
		s.TokenHash = hashToken(token)
		s.Session.AuthenticationMethods = appendMethod(s.Session.AuthenticationMethods, method)
		s.Session.AAL = session.AssuranceLevel(s.Session.AuthenticationMethods)
		s.Session.AuthenticatedAt = now
		s.Session.ExpiresAt = now.Add(h.cfg.SessionLifespan)
		return s, token, false
	}
	s := &session.Record{
		Session: session.Session{
			ID:                    uuid.New(),
			Active:                true,
			ExpiresAt:             now.Add(h.cfg.SessionLifespan),
			AuthenticatedAt:       now,
			AAL:                   method.AAL,
			AuthenticationMethods: []session.AuthenticationMethod{method},
			IssuedAt:              now,
			Devices: []session.Device{{
				ID:        uuid.New(),
				IPAddress: h.clientIP(r),
				UserAgent: userAgent(r),
			}},
		},
		IdentityID: res.Identity.ID,
		TokenHash:  hashToken(token),
	}
	return s, token, true
}

// MaxAuthenticationMethods bounds a session's authentication_methods: each
// refresh appends one, and a session refreshed without end would otherwise
// grow without end.
const MaxAuthenticationMethods = 32

// appendMethod appends m to a session's authentication methods. At
// MaxAuthenticationMethods it first drops the oldest entry that a later
// one repeats (same method, AAL and provider), so that every distinct way
// the session was authenticated stays listed; only when all differ does
// the oldest go.
func appendMethod(ms []session.AuthenticationMethod, m session.AuthenticationMethod) []session.AuthenticationMethod {
	if len(ms) < MaxAuthenticationMethods {
		return append(ms, m)
	}
	same := func(a, b session.AuthenticationMethod) bool {
		return a.Method == b.Method && a.AAL == b.AAL && a.Provider == b.Provider
	}
	drop := 0
	for i, old := range ms {
		if slices.ContainsFunc(ms[i+1:], func(later session.AuthenticationMethod) bool { return same(old, later) }) || same(old, m) {
			drop = i
			break
		}
	}
	return append(slices.Delete(ms, drop, drop+1), m)
}

// userAgent joins all User-Agent values with a space, cut to
// MaxUserAgentLength bytes: it is stored with the session, so it is always
// a copy (a header value shares the memory of the request's whole header
// block, up to http.Server.MaxHeaderBytes).
func userAgent(r *http.Request) string {
	ua := strings.Join(r.Header.Values("User-Agent"), " ")
	if len(ua) > MaxUserAgentLength {
		return clip(ua, MaxUserAgentLength)
	}
	return strings.Clone(ua)
}

// clip returns s cut to at most n bytes, on a UTF-8 character boundary.
// Request data that is stored (in a flow, a session or a forwarded error)
// goes through it, so that no client can make a stored record large. A
// cut value is a copy: a substring would keep the whole of s alive.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return strings.Clone(s[:n])
}

// completeWithSession completes the flow and stores its session as one
// operation: in one transaction when the flow store offers it, otherwise
// flow first, and the flow reopened if the session cannot be stored (a
// panic in the store counts as a failure). If even the reopening fails, the
// flow records the session it meant to issue, and a later submission that
// finds that session missing reopens it (see orphaned). Of concurrent
// completions exactly one succeeds; the others get flow.ErrCompleted. An
// update (a refresh) happens only while the stored session is still valid
// at now, so that a logout during the login wins: session.ErrInactive
// otherwise.
func (h *Handler) completeWithSession(ctx context.Context, rec *flow.Record, s *session.Record, create bool, now time.Time) error {
	rec.SessionID = s.Session.ID
	if c := h.flowSessions; c != nil {
		if err := c.CompleteFlowWithSession(ctx, rec, s, create, now); err != nil {
			return fmt.Errorf("complete flow: %w", err)
		}
		return nil
	}
	if err := h.cfg.FlowStore.CompleteFlow(ctx, rec); err != nil {
		return fmt.Errorf("complete flow: %w", err)
	}
	err := bestEffort(ctx, func(ctx context.Context) error {
		if create {
			return h.cfg.SessionStore.CreateSession(ctx, s)
		}
		return h.cfg.SessionStore.UpdateSession(ctx, s, now)
	})
	if err == nil {
		return nil
	}
	if rerr := h.reopen(context.WithoutCancel(ctx), rec); rerr != nil {
		return errors.Join(fmt.Errorf("store session: %w", err), rerr)
	}
	return fmt.Errorf("store session: %w", err)
}

// reopen moves a completed flow back to choose_method, trying a few times.
func (h *Handler) reopen(ctx context.Context, rec *flow.Record) error {
	rec.Flow.State = flow.StateChooseMethod
	rec.Flow.Active = ""
	rec.SessionID = ""
	var err error
	for range 3 {
		if err = bestEffort(ctx, func(ctx context.Context) error { return h.cfg.FlowStore.UpdateFlow(ctx, rec) }); err == nil {
			return nil
		}
	}
	return fmt.Errorf("reopen flow: %w", err)
}

// orphanGrace is how long after its completion a flow's session may still
// be on its way to the store: only an older completion whose session is
// missing is an orphan.
const orphanGrace = 30 * time.Second

// orphaned reports whether a completed flow issued no session: its session
// is not stored although the completion is older than orphanGrace (the
// session write and the reopening both failed). Such a flow is reopened
// rather than answered 4010007, so that the user can still log in with it.
func (h *Handler) orphaned(ctx context.Context, rec *flow.Record) (bool, error) {
	if rec.SessionID == "" || h.now().Sub(rec.Flow.UpdatedAt) < orphanGrace {
		return false, nil
	}
	s, err := h.cfg.SessionStore.Session(ctx, rec.SessionID)
	switch {
	case errors.Is(err, session.ErrNotFound):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("load session: %w", err)
	}
	// A refresh updates an existing session: it is an orphan if the
	// update never landed.
	for _, m := range s.Session.AuthenticationMethods {
		if !m.CompletedAt.Before(rec.Flow.UpdatedAt) {
			return false, nil
		}
	}
	return true, nil
}
