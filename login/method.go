package login

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-playground/form/v4"

	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/internal/uuid"
	"github.com/authflow/authflow/session"
)

// Method is a way to log in, such as the built-in password method. The
// handler picks the method whose ID equals the submitted "method" field
// (without one, a FieldSelected method by a field of its own) and drives
// it through the submit pipeline: Validate (field checks), then,
// after the handler's CSRF check, Authenticate. A method computes values and
// errors; it never writes the response.
//
// A method that completes in the browser elsewhere (social sign-in) returns
// a Result with RedirectBrowserTo, and may also implement [CallbackMethod]
// to receive the browser back.
//
// A method is a first factor (AAL returns flow.AAL1: password, social
// sign-in) or a second factor (flow.AAL2: TOTP, backup codes). A flow is
// submitted only to methods of its requested AAL; a second factor verifies
// the signed-in identity of Submission.Session, never one found by an
// identifier.
type Method interface {
	// ID is the value of the "method" field that selects the method; it
	// also names its node group and its entry in flow.Record.MethodState.
	ID() string
	// AAL is the assurance level a login with the method proves, flow.AAL1
	// or flow.AAL2; flows whose requested_aal differs do not offer it.
	AAL() string
	// Nodes returns the method's form nodes for a new flow. req.Identity is
	// set for refresh and step-up flows (nil otherwise), with its
	// credentials. A method returns no nodes for a flow of another AAL, and
	// a second factor none for an identity without its credential: an
	// identity "has a second factor" exactly when a second-factor method
	// returns nodes for it.
	Nodes(ctx context.Context, req *FlowRequest) ([]flow.Node, error)
	// Validate checks the submitted fields and returns a *FlowError with
	// the messages on their nodes (missing, too long, invalid), all
	// together, or nil.
	Validate(ctx context.Context, s *Submission) error
	// Authenticate verifies the submission and returns who logged in, or
	// where the browser must go. Wrong credentials (a wrong password or
	// code) are a *FlowError with FailedAttempt set (or carrying
	// flow.InvalidCredentials), which counts for throttling; other
	// *FlowErrors are answered on the flow; any other error is an internal
	// failure. A method that consumes a one-time secret (a TOTP step, a
	// backup code) verifies it here and returns its consumption as
	// Result.Commit.
	Authenticate(ctx context.Context, s *Submission) (*Result, error)
}

// CallbackMethod is a Method with a callback route: the handler serves
// GET and POST /self-service/methods/{id}/callback/{path...} by calling
// Callback, and completes the flow it returns exactly as a submission.
type CallbackMethod interface {
	Method
	// Callback identifies the flow the request belongs to (for example from
	// an OAuth state parameter), loads it from c.Flows, and returns it with
	// the Result. Errors are answered as on submit; a *FlowError is put on
	// the returned flow (which must then be non-nil). A returned flow that
	// has expired is replaced by a fresh one (message 4010001) whatever the
	// error, and the Result's Cookies are set even when it fails.
	Callback(ctx context.Context, c *Callback) (*flow.Record, *Result, error)
}

// FieldSelected is a Method that a submission may select without a
// "method" field, by a field of its own: a social sign-in form may post
// only its provider button, and the WebAuthn script posts its form with
// form.submit(), which sends no button at all. When the "method" field is
// empty, the handler selects, in Config.Methods order, the first such
// method of the flow's AAL whose SelectingField is non-empty, else the
// first such method of any AAL (which the flow then refuses with 4010002).
type FieldSelected interface {
	Method
	// SelectingField names the field whose non-empty value selects the
	// method ("provider", "passkey_login").
	SelectingField() string
}

// IdentityPrefetcher is a Method whose Authenticate finds the identity by
// a credential identifier taken from the submitted fields, through
// Submission.FindIdentity. The handler asks it for that lookup before it
// loads the flow, so that a store that can (FlowIdentityLoader) makes both
// in one step; Submission.FindIdentity then answers from that result. A
// submission that names no lookup, or a different one, is served by the
// IdentityStore as usual, so a wrong guess costs a read, never a wrong
// answer.
type IdentityPrefetcher interface {
	Method
	// PrefetchIdentity returns the credential type and the normalised
	// identifier that Authenticate will look up for a submission of these
	// fields (the "method" field names this method); ok is false when
	// they name none, such as an identifier Validate refuses.
	PrefetchIdentity(fields url.Values) (typ session.CredentialType, identifier string, ok bool)
}

// FlowRequest is what a method sees when a flow's nodes are made.
type FlowRequest struct {
	// Flow is the new flow (ID, type, refresh, requested AAL are set).
	Flow *flow.Flow
	// IdentifierFirst is set when the flow uses the identifier-first
	// login style (Config.LoginStyle). Its first step (Identifier "")
	// asks for the identifier alone: a first factor that needs one returns
	// no nodes then, one that does not (social sign-in) its usual nodes.
	// Its second step has the submitted Identifier: the handler shows it
	// as a hidden node, and each first factor returns the nodes that let
	// the user go on, without an identifier node of its own. Nothing in
	// either step may depend on whether an identity has that identifier
	// (no enumeration), so no identity is looked up for it.
	IdentifierFirst bool
	Identifier      string
	// IdentifierLabel is the label of the identifier field
	// (Config.IdentifierLabel, else 1070004 "ID"), for a first factor
	// that offers one.
	IdentifierLabel flow.Message
	// Identity is the signed-in identity of a refresh or step-up flow, nil
	// otherwise; Credentials are its credentials.
	Identity    *session.Identity
	Credentials []session.Credential

	h      *Handler                   // the handler making the flow, nil in a method's own tests
	method string                     // the method being asked for its nodes
	states map[string]json.RawMessage // states set with SetState, by method
}

// SetState sets the method's entry in the new flow's MethodState, stored
// with the flow together with the nodes Nodes returns: a method whose nodes
// carry a challenge keeps the challenge's server-side half here, and reads
// it back with Submission.State. Calling it again replaces the entry. For
// a FlowRequest that makes no flow (the check whether an identity has a
// second factor) the state is dropped.
func (r *FlowRequest) SetState(state json.RawMessage) {
	if r.states == nil {
		r.states = map[string]json.RawMessage{}
	}
	r.states[r.method] = state
}

// methodNodes asks m for its nodes of the flow r describes.
func (r *FlowRequest) methodNodes(ctx context.Context, m Method) ([]flow.Node, error) {
	r.method = m.ID()
	nodes, err := m.Nodes(ctx, r)
	if err != nil {
		return nil, fmt.Errorf("%s nodes: %w", m.ID(), err)
	}
	return nodes, nil
}

// saveStates copies the states methods set into rec's MethodState.
func (r *FlowRequest) saveStates(rec *flow.Record) {
	for method, state := range r.states {
		if rec.MethodState == nil {
			rec.MethodState = map[string]json.RawMessage{}
		}
		rec.MethodState[method] = state
	}
}

// WebAuthnScript returns the script node that loads the WebAuthn and
// passkey helpers (id webauthn_script, group "webauthn"), for a passkey or
// WebAuthn method to add once to a browser flow's nodes (API flows get
// none): its src is the public URL plus /.well-known/ory/webauthn.js with
// the script's version as query (?v=), its integrity the SHA-512 of the
// served bytes, and its nonce a fresh random UUID on every call. For a
// FlowRequest not made by the Handler the src is root-relative.
func (r *FlowRequest) WebAuthnScript() flow.Node {
	base := ""
	if r.h != nil {
		base = r.h.public
	}
	src := base + webAuthnJSPath + "?v=" + webAuthnJSVersion
	return flow.NewScript("webauthn", "webauthn_script", src, webAuthnJSIntegrity, uuid.New())
}

// Submission is one submission of a flow, as a method sees it.
type Submission struct {
	// Request is the HTTP request; its body has already been read (use
	// Field or Decode).
	Request *http.Request
	// Flow is the flow being submitted, with its method state. It is
	// read-only: a method changes its state through Result.MethodState.
	Flow *flow.Record
	// Session is the caller's current session, with its identity, or nil.
	// In a step-up (aal2) flow it is the session that created the flow,
	// whose identity a second factor verifies.
	Session *session.Session
	// Identities is the handler's identity store.
	Identities IdentityStore
	// Identifier is the normalised identifier of the attempt, for hooks
	// (Attempt.Identifier) and throttling. A first-factor method that has
	// one sets it in Validate; in a step-up flow the handler sets it to the
	// session's identity id, by which second-factor attempts are throttled.
	Identifier string

	fields  url.Values
	decoder *form.Decoder
	h       *Handler
	method  string
	// prefetched is the lookup made with the flow (IdentityPrefetcher),
	// until FindIdentity uses it.
	prefetched *prefetch
}

// prefetch is an identity lookup made with the flow: the query and what
// it found (a nil lookup: nothing).
type prefetch struct {
	query  IdentityQuery
	lookup *IdentityLookup
}

// FindIdentity returns the identity holding a credential of typ that lists
// identifier (compared verbatim: normalise it first), and that credential,
// or session.ErrNotFound. all is every credential of the identity when the
// handler needs them to judge whether the identity has a second factor and
// the store returns them in the same step (IdentityCredentialsFinder), nil
// otherwise; a method puts it in Result.Credentials. When the handler made
// this very lookup with the flow (IdentityPrefetcher), its answer is
// returned without another read.
func (s *Submission) FindIdentity(ctx context.Context, typ session.CredentialType, identifier string) (id *session.Identity, cred *session.Credential, all []session.Credential, err error) {
	wanted := s.h.stepUpReadsCredentials()
	if p := s.prefetched; p != nil {
		s.prefetched = nil // its values are handed out once
		if p.query == (IdentityQuery{Type: typ, Identifier: identifier, Credentials: wanted}) {
			if p.lookup == nil {
				return nil, nil, nil, session.ErrNotFound
			}
			return p.lookup.Identity, p.lookup.Credential, p.lookup.Credentials, nil
		}
	}
	if f, ok := s.Identities.(IdentityCredentialsFinder); ok && wanted {
		return f.FindIdentityWithCredentials(ctx, typ, identifier)
	}
	id, cred, err = s.Identities.FindIdentity(ctx, typ, identifier)
	return id, cred, nil, err
}

// State returns the method's entry in the flow's MethodState, as stored
// when the submission began or last updated by UpdateState; nil when none.
func (s *Submission) State() json.RawMessage { return s.Flow.MethodState[s.method] }

// UpdateState changes the method's entry in the flow's MethodState
// atomically: it calls update with the stored entry (nil when none) and
// stores what update returns, on the condition that the flow did not
// change meanwhile; after a concurrent change it calls update again on the
// newer entry, after a short random pause. It returns the entry stored,
// and s.Flow is the stored flow afterwards. An error from update is
// returned as it is and nothing is stored; flow.ErrCompleted if the flow
// logged in meanwhile; under contention that outlasts many tries, a
// *FlowError asking to try again (wrapping flow.ErrConflict), never an
// internal error. Use it for
// what must hold under concurrent submissions of one flow, such as a
// count of code attempts made before a code is compared.
func (s *Submission) UpdateState(ctx context.Context, update func(old json.RawMessage) (json.RawMessage, error)) (json.RawMessage, error) {
	return s.h.updateMethodState(ctx, s.Flow, s.method, update)
}

// UpdateStateNodes is UpdateState for a method whose nodes show part of
// its state, such as a challenge: update also returns nodes, each of which
// replaces the flow's node of the same name and group in the same write
// (nodes the flow lacks are ignored). A method that burns its challenge on
// every attempt and issues a fresh one uses it, so that the flow never
// shows a challenge other than the stored one, even when the submission
// then fails.
func (s *Submission) UpdateStateNodes(ctx context.Context, update func(old json.RawMessage) (json.RawMessage, []flow.Node, error)) (json.RawMessage, error) {
	return s.h.updateMethodStateNodes(ctx, s.Flow, s.method, update)
}

// WebAuthnScript returns a fresh script node that loads the WebAuthn
// helpers, as FlowRequest.WebAuthnScript does, for a method's next step.
func (s *Submission) WebAuthnScript() flow.Node {
	return (&FlowRequest{h: s.h}).WebAuthnScript()
}

// ThrottlingDisabled reports whether the host turned throttling off
// (Config.DisableThrottling): a method's own limits follow it.
func (s *Submission) ThrottlingDisabled() bool { return s.h.limiter == nil }

// ClientIP returns the client's network as the handler's throttling counts
// it (Config.TrustedProxies decides the address; an IPv6 client is its
// /64), for a method that limits attempts of its own.
func (s *Submission) ClientIP() string { return limitAddress(s.h.clientIP(s.Request)) }

// Field returns the first value of the submitted field name, or "".
func (s *Submission) Field(name string) string { return s.fields.Get(name) }

// Decode decodes the submitted fields into dst, a pointer to a struct whose
// fields are tagged `form:"name"` (github.com/go-playground/form).
func (s *Submission) Decode(dst any) error { return s.decoder.Decode(dst, s.fields) }

// Result is a successful authentication, or a redirect to finish one.
type Result struct {
	// Identity is who logged in. Nil when RedirectBrowserTo is set.
	Identity *session.Identity
	// Method is recorded in the session's authentication_methods; its
	// CompletedAt is set by the handler.
	Method session.AuthenticationMethod
	// RedirectBrowserTo, when set, means the login continues in the browser
	// at that URL: API flows and JSON requests get 422
	// browser_location_change_required, forms a 303.
	RedirectBrowserTo string
	// MethodState, when non-nil, replaces the method's entry in the flow's
	// MethodState (stored before answering).
	MethodState json.RawMessage
	// Cookies are set on the answer, whatever it is (the redirect, the
	// success answer or a failure after the method returned). A method
	// makes them with Submission.Cookie or Callback.Cookie, for example to
	// bind a social sign-in to the browser, or to clear that cookie again.
	Cookies []*http.Cookie
	// Commit, when set, spends the one-time secret the method verified (a
	// TOTP time step, a backup code), atomically, for example with an
	// update conditional on the credential's version: of concurrent commits
	// of one secret exactly one succeeds, the others return a *FlowError
	// (with FailedAttempt for a replay). The handler runs it after every
	// other check of the login, immediately before it completes the flow
	// and issues the session, and runs the rollback Commit returns (when
	// not nil) if that completion fails, so that a secret is spent exactly
	// when a login happens; a rollback that fails leaves it spent, which
	// fails closed.
	Commit func(ctx context.Context) (rollback func(context.Context) error, err error)
	// Step, when set, means the login goes on in the same flow rather than
	// ending (a login code was sent): Identity is nil, and the handler
	// stores the flow with the step's state, the method as active, the
	// step's nodes and messages (and MethodState when set), then answers
	// the flow as the contract answers a step: 400 with the flow, or a 303
	// to the login UI for forms.
	Step *Step
	// Credentials are all of Identity's credentials when the method has
	// them at hand (Submission.FindIdentity returned them with the
	// identity); the handler then judges whether the identity has a second
	// factor from them instead of loading them. Nil means not loaded.
	Credentials []session.Credential
	// AfterLogin, when set, runs after the session is issued, best-effort:
	// its error is logged and never fails the login (the password method
	// re-hashes here).
	AfterLogin func(ctx context.Context) error
}

// Step is a login's next step within the same flow (see Result.Step).
type Step struct {
	// State is the flow's new state, such as flow.StateSentEmail.
	State flow.State
	// Nodes replace the flow's nodes; the handler keeps its csrf_token
	// node in front of them.
	Nodes []flow.Node
	// Messages replace the flow's messages.
	Messages []flow.Message
}

// FlowError is an error reported on the flow itself (the contract's
// FLOW-400): the flow is stored with these messages and answered as a 400
// flow to API flows and JSON requests, and as a 303 to the login UI
// otherwise.
type FlowError struct {
	// Messages are flow-wide messages.
	Messages []flow.Message
	// Fields are messages on the nodes named by the keys.
	Fields map[string][]flow.Message
	// Values sets node values (for example the submitted identifier).
	Values map[string]string
	// Cleared names nodes whose value attribute is removed from the flow,
	// as Kratos does with one-time codes after a failed submission.
	Cleared []string
	// FailedAttempt marks a refusal of the credentials themselves (a wrong
	// password, a wrong or replayed code): it counts towards throttling and
	// is reported to Config.AfterFailure. Other refusals (a missing
	// credential, validation) do not count.
	FailedAttempt bool
	// Err is an internal cause, logged and never sent.
	Err error
}

// Error implements error.
func (e *FlowError) Error() string {
	var texts []string
	for _, m := range e.Messages {
		texts = append(texts, m.Text)
	}
	for name, ms := range e.Fields {
		for _, m := range ms {
			texts = append(texts, name+": "+m.Text)
		}
	}
	if e.Err != nil {
		texts = append(texts, e.Err.Error())
	}
	return "login: " + strings.Join(texts, "; ")
}

// Unwrap returns the internal cause.
func (e *FlowError) Unwrap() error { return e.Err }

func flowMessages(reason string) []flow.Message { return []flow.Message{flow.Generic(reason)} }

// Callback is a request to a method's callback route.
type Callback struct {
	// Request is the HTTP request.
	Request *http.Request
	// Path is the part of the URL path after /callback/.
	Path string
	// Flows is the handler's flow store.
	Flows FlowStore
	// Identities is the handler's identity store.
	Identities IdentityStore

	h      *Handler
	method string
}

// Cookie returns a cookie with the attributes of every authflow cookie
// (HttpOnly, Path=/, SameSite=Lax, Secure exactly when the public URL is
// https, the configured Domain), for Result.Cookies. A negative maxAge
// deletes the cookie.
func (c *Callback) Cookie(name, value string, maxAge int) *http.Cookie {
	return c.h.methodCookie(name, value, maxAge)
}

// CallbackURL returns the public URL of the method's callback route with
// path appended: {PublicURL}/self-service/methods/{method}/callback/{path}.
func (c *Callback) CallbackURL(path string) string { return c.h.callbackURL(c.method, path) }

// Now returns the handler's current time (Config.Now), by which flows
// expire.
func (c *Callback) Now() time.Time { return c.h.now() }

// Cookie returns a cookie with the attributes of every authflow cookie,
// for Result.Cookies; see Callback.Cookie.
func (s *Submission) Cookie(name, value string, maxAge int) *http.Cookie {
	return s.h.methodCookie(name, value, maxAge)
}

// CallbackURL returns the public URL of the method's callback route with
// path appended; see Callback.CallbackURL.
func (s *Submission) CallbackURL(path string) string { return s.h.callbackURL(s.method, path) }

// Now returns the handler's current time (Config.Now).
func (s *Submission) Now() time.Time { return s.h.now() }

// ContinueInBrowser returns an error that sends the browser to url instead
// of answering: a 303 to non-JSON browser requests, 422
// browser_location_change_required with redirect_browser_to otherwise. A
// CallbackMethod returns it from Callback (with a nil flow) when the request
// must be repeated elsewhere, for example to turn a POSTed callback into a
// GET so that the browser's SameSite=Lax cookies come along.
func ContinueInBrowser(url string) error { return &locationChange{url: url} }

// methodCookie is a login method's cookie (Submission.Cookie).
func (h *Handler) methodCookie(name, value string, maxAge int) *http.Cookie {
	c := h.cookie(name, value)
	c.MaxAge = maxAge
	if maxAge < 0 {
		c.Value = ""
		c.Expires = time.Unix(1, 0)
	}
	return c
}

// callbackURL is the public URL of method's callback route plus path.
func (h *Handler) callbackURL(method, path string) string {
	return h.public + "/self-service/methods/" + url.PathEscape(method) + "/callback/" + strings.TrimPrefix(path, "/")
}
