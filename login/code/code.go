// Package code is the "code" login method: passwordless login with a
// one-time code sent by email, as Ory Kratos' code strategy with
// passwordless_enabled, plugged into login.Config.Methods.
//
//	smtp, err := courier.NewSMTP(courier.SMTPConfig{URL: "smtp://mail.example.com", From: "no-reply@example.com"})
//	m, err := code.New(code.Config{Courier: smtp})
//	h, err := login.New(login.Config{..., Methods: []login.Method{m}})
//	defer h.Close(ctx) // delivers the queued mail, then stops the method's queue
//
// Identities that log in by code carry a credential made by [NewCredential]
// listing their addresses.
//
// The method has no routes of its own; it answers submissions of the login
// flow (POST /self-service/login?flow=<id>) in two steps (CONTRACT-CODE §2
// to §5, with §10's changes). A first-factor flow offers the identifier
// field and the button method=code (group "code", label 1010015 "Send sign
// in code"); in the identifier-first style its second step offers the
// button alone. Submitting method=code with an identifier moves the flow to
// state sent_email with the code field, the Continue button and the
// resend=code button, and message 1010014, answered as the contract answers
// a step: 400 with the flow, or a 303 to the login UI for forms. Submitting
// method=code with the code then logs in (method "code", aal1); resend=code
// sends a new code that replaces the previous one.
//
// # Security
//
// A code is 6 decimal digits drawn uniformly from crypto/rand, valid for
// Config.Lifespan (15 minutes by default). The server keeps only an
// HMAC-SHA256 of it, keyed with Config.HashKey (which instances sharing a
// flow store must share) and bound to the flow, the identity and the
// address; the plaintext exists only in the mail, which the courier's queue
// forgets once it is delivered or dropped. A code works only in the flow
// it was sent for, for the identity it was sent to, and at most once: the
// flow's completion is atomic, and a completed flow answers every
// submission with message 4010007 and mails nothing.
//
// Nothing reveals whether an address belongs to an account. An unknown
// address gets exactly the answer of a known one, and the same work is
// done for it (a code is made, hashed and stored, the mail rendered); only
// the mail is not sent. Mail is never sent inside the request: it goes to a
// background courier.Queue, so neither the SMTP server's latency nor its
// failures can be observed in the answer. The code step uses the identity
// and address fixed when the code was sent and ignores a submitted
// identifier, so it can never switch identities.
//
// Guessing is bounded three ways. Each flow accepts Config.MaxSubmissions
// code submissions (5), counted atomically before the code is compared and
// not reset by a resend; beyond that even the right code is refused. Wrong
// codes count as failed attempts for the handler's throttling, by address
// and client network, exactly like wrong passwords. Sends (and resends) are
// limited per submitted address and client network, and per client network
// whatever the address (Config.SendLimits, Config.SendLimitsPerClient),
// whether or not an account exists, so the limit itself reveals nothing;
// a refused send is answered 429 too_many_attempts, or 4019001 on the flow
// for forms.
package code

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"strings"
	"sync/atomic"
	"time"

	"github.com/authflow/authflow/courier"
	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/session"
)

// MethodID is the method's id: the "method" field value, its node group, its
// MethodState key and the session's authentication method.
const MethodID = "code"

// Defaults of the optional Config fields.
const (
	DefaultLifespan       = 15 * time.Minute
	DefaultMaxSubmissions = 5
)

// Default limits of code sends (see Config.SendLimits and
// Config.SendLimitsPerClient); fields not set take the login.Limits
// defaults.
var (
	defaultSendLimits          = login.Limits{FreeFailures: 5, Window: 15 * time.Minute, MaxDelay: 15 * time.Minute, IdentifierFailures: 20, IdentifierWindow: time.Hour}
	defaultSendLimitsPerClient = login.Limits{FreeFailures: 30, Window: 15 * time.Minute, MaxDelay: 15 * time.Minute, IdentifierFailures: 100, IdentifierWindow: time.Hour}
)

// Field limits, in bytes of the value as received.
const maxCodeLength = 64

// digits is the length of a code; codes are uniform over 10^digits values.
const digits = 6

// Config configures the method. Courier is required; every other field
// has the documented default when left zero.
type Config struct {
	// Courier delivers the mails. Required. The method never calls it
	// inside a request: it delivers through a courier.Queue of its own,
	// which Close (login.Handler.Close) stops.
	Courier courier.Courier
	// Queue configures that queue; zero fields take the courier's
	// defaults, except MaxAge, which defaults to Lifespan (a mail whose
	// code expired is not worth delivering), and Logger, which defaults to
	// Logger.
	Queue courier.QueueConfig
	// Templates render the mail; zero fields use Kratos' login-code email
	// (Subject "Use code <code> to log in").
	Templates courier.Templates
	// Lifespan is how long a code is valid; 0 means 15 minutes (Kratos:
	// one hour). The mail says it in whole minutes.
	Lifespan time.Duration
	// MaxSubmissions is how many codes may be submitted per flow, counted
	// before each is compared and not reset by a resend; 0 means 5, as in
	// Kratos.
	MaxSubmissions int
	// HashKey keys the HMAC-SHA256 under which codes are stored, at least
	// 16 bytes (32 random bytes are best); nil means 32 random bytes made
	// by New. Several instances that share a flow store must share the
	// key, or a code sent by one fails on the others.
	HashKey []byte
	// SendLimits limits code sends (and resends) per submitted address,
	// whether or not an account has it, counted with the key
	// login.LimitKey{Identifier: address, ClientIP: client network}. It
	// configures the in-memory limiter used when SendLimiter is nil. Zero
	// fields mean: 5 sends free per address and network (FreeFailures)
	// within 15 minutes (Window), then a delay doubling from one second up
	// to 15 minutes (MaxDelay); at most 20 sends to one address per hour
	// from all networks together (IdentifierFailures, IdentifierWindow),
	// which bounds the mail any mailbox can be sent; other fields as
	// login.Limits; the clock is Now, else time.Now. A login by code starts
	// its address and network afresh and exempts that network from the
	// hourly cap for login.Limits.TrustFor.
	SendLimits login.Limits
	// SendLimitsPerClient limits code sends per client network whatever
	// the address, counted with the key login.LimitKey{Identifier: client
	// network, ClientIP: client network} (so that both of the limiter's
	// rules count per network). It configures the in-memory limiter used
	// when ClientSendLimiter is nil. Zero fields mean: 30 sends free within
	// 15 minutes, then a delay doubling from one second up to 15 minutes,
	// and at most 100 sends an hour; other fields as login.Limits.
	SendLimitsPerClient login.Limits
	// SendLimiter and ClientSendLimiter, when set, replace the in-memory
	// limiters of SendLimits and SendLimitsPerClient, for example with
	// limiters shared by several instances. They count sends only: give
	// each its own limiter (its own table), distinct from each other and
	// from the handler's login.Config.Limiter.
	SendLimiter       login.Limiter
	ClientSendLimiter login.Limiter
	// Now is the clock by which codes expire; nil means the handler's
	// (login.Config.Now).
	Now func() time.Time
	// Logger receives the method's error log (never a code); nil means
	// slog.Default().
	Logger *slog.Logger
}

// Method is the code login method; it implements login.Method and
// login.Closer. It is safe for concurrent use.
type Method struct {
	cfg     Config
	key     []byte
	queue   *courier.Queue
	report  atomic.Pointer[func(context.Context, login.Event)] // the handler's, see ReportEventsTo
	sends   login.Limiter                                      // per address and client network
	clients login.Limiter                                      // per client network
	logger  *slog.Logger
}

var (
	_ login.Method = (*Method)(nil)
	_ login.Closer = (*Method)(nil)
)

// New checks cfg and returns the method, whose mail queue runs until Close.
// It returns an error if Courier is nil, Lifespan or MaxSubmissions is
// negative, or HashKey is set but shorter than 16 bytes.
func New(cfg Config) (*Method, error) {
	switch {
	case cfg.Courier == nil:
		return nil, errors.New("code: Config.Courier is required")
	case cfg.Lifespan < 0:
		return nil, errors.New("code: Config.Lifespan must not be negative")
	case cfg.MaxSubmissions < 0:
		return nil, errors.New("code: Config.MaxSubmissions must not be negative")
	case cfg.HashKey != nil && len(cfg.HashKey) < 16:
		return nil, fmt.Errorf("code: Config.HashKey has %d bytes, at least 16 are needed", len(cfg.HashKey))
	}
	if cfg.Lifespan == 0 {
		cfg.Lifespan = DefaultLifespan
	}
	if cfg.MaxSubmissions == 0 {
		cfg.MaxSubmissions = DefaultMaxSubmissions
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	m := &Method{cfg: cfg, logger: cfg.Logger}
	if cfg.HashKey == nil {
		m.key = make([]byte, 32)
		rand.Read(m.key) // never fails (crypto/rand)
	} else {
		m.key = append([]byte(nil), cfg.HashKey...)
	}
	m.cfg.HashKey = nil // the key lives in m.key only
	m.sends = cfg.SendLimiter
	if m.sends == nil {
		m.sends = login.NewMemoryLimiter(limits(cfg.SendLimits, defaultSendLimits, cfg.Now))
	}
	m.clients = cfg.ClientSendLimiter
	if m.clients == nil {
		m.clients = login.NewMemoryLimiter(limits(cfg.SendLimitsPerClient, defaultSendLimitsPerClient, cfg.Now))
	}
	q := cfg.Queue
	if q.MaxAge == 0 {
		q.MaxAge = cfg.Lifespan
	}
	if q.Logger == nil {
		q.Logger = cfg.Logger
	}
	hostHook := q.OnFailure
	q.OnFailure = func(ctx context.Context, to string, attempt int, err error, final bool) {
		if hostHook != nil {
			hostHook(ctx, to, attempt, err, final)
		}
		if report := m.report.Load(); report != nil && final {
			(*report)(ctx, login.Event{Action: MailAction, Outcome: login.OutcomeError, Method: MethodID})
		}
	}
	m.queue = courier.NewQueue(cfg.Courier, q)
	return m, nil
}

// MailAction is the Event.Action of a login-code mail that could not be
// delivered (after its retries, or dropped at Close), reported to
// login.Config.OnEvent. The event names no address and no code; the
// courier's log line has the recipient.
const MailAction = "code.mail"

// ReportEventsTo implements login.EventReporter: the handler's event hook
// learns of mail that could not be delivered.
func (m *Method) ReportEventsTo(report func(ctx context.Context, e login.Event)) {
	m.report.Store(&report)
}

// limits fills the zero fields of l from def, and the clock from now.
func limits(l, def login.Limits, now func() time.Time) login.Limits {
	l.FreeFailures = cmp.Or(l.FreeFailures, def.FreeFailures)
	l.Window = cmp.Or(l.Window, def.Window)
	l.MaxDelay = cmp.Or(l.MaxDelay, def.MaxDelay)
	l.IdentifierFailures = cmp.Or(l.IdentifierFailures, def.IdentifierFailures)
	l.IdentifierWindow = cmp.Or(l.IdentifierWindow, def.IdentifierWindow)
	if l.Now == nil {
		l.Now = now
	}
	return l.WithDefaults()
}

// Close implements login.Closer: it stops the mail queue, delivering the
// queued mail until ctx ends (then the rest is dropped and ctx's error
// returned). The method must not serve submissions afterwards.
func (m *Method) Close(ctx context.Context) error { return m.queue.Close(ctx) }

// ID implements login.Method.
func (m *Method) ID() string { return MethodID }

// AAL implements login.Method: a login code is a first factor.
func (m *Method) AAL() string { return flow.AAL1 }

// Nodes implements login.Method: for first-factor flows without a signed-in
// identity (not refresh, not step-up), the identifier field (group
// default, shared with the password method) and the button method=code; in
// the identifier-first style nothing in the first step and the button alone
// in the second.
func (m *Method) Nodes(_ context.Context, req *login.FlowRequest) ([]flow.Node, error) {
	if req.Flow.RequestedAAL != flow.AAL1 || req.Flow.Refresh || req.Identity != nil {
		return nil, nil
	}
	submit := flow.NewInput(flow.GroupCode, "method", "submit", MethodID, false)
	submit.Meta.Label = ptr(flow.SendCode())
	if req.IdentifierFirst {
		if req.Identifier == "" {
			return nil, nil
		}
		return []flow.Node{submit}, nil
	}
	id := flow.NewInput(flow.GroupDefault, "identifier", "text", "", true)
	id.Attributes.Autocomplete = "username"
	id.Meta.Label = ptr(req.IdentifierLabel)
	return []flow.Node{id, submit}, nil
}

// state is the method's entry in the flow's MethodState once a code was
// sent. It never holds the code itself.
type state struct {
	// IdentityID is the identity the code was sent to; "" for an address
	// of no identity (no mail was sent, no code can log in).
	IdentityID string `json:"identity_id"`
	// Address is the normalised address the code was sent to.
	Address string `json:"address"`
	// CodeHash is the hex HMAC of the code (see hashCode).
	CodeHash  string    `json:"code_hash"`
	ExpiresAt time.Time `json:"expires_at"`
	// Submissions counts the codes submitted to the flow, across resends.
	Submissions int `json:"submissions"`
}

// sent returns the state of a flow whose code was sent (state sent_email
// with this method active), or nil: the flow is at the send step.
func sent(s *login.Submission) (*state, error) {
	f := &s.Flow.Flow
	raw := s.State()
	if f.State != flow.StateSentEmail || f.Active != MethodID || raw == nil {
		return nil, nil
	}
	var st state
	if err := json.Unmarshal(raw, &st); err != nil {
		return nil, fmt.Errorf("code: decode method state: %w", err)
	}
	if st.Address == "" {
		return nil, errors.New("code: method state without an address")
	}
	return &st, nil
}

// Validate implements login.Method. At the send step the identifier must be
// present, at most login.MaxIdentifierLength bytes and free of invisible
// and control characters (4000002, 4000017, 4019002); s.Identifier becomes
// its normalised form. At the code step the code must be present unless
// resend=code, and at most 64 bytes; resend may only be "code"; the
// submitted identifier is ignored and s.Identifier becomes the address the
// code was sent to, by which the handler throttles. Refresh flows do not
// offer the method: a submission to one gets message 4010002.
func (m *Method) Validate(_ context.Context, s *login.Submission) error {
	if s.Flow.Flow.Refresh {
		return &login.FlowError{Messages: []flow.Message{flow.NoMethod()}}
	}
	st, err := sent(s)
	if err != nil {
		return err
	}
	if st == nil {
		raw := s.Field("identifier")
		identifier, fe := validateIdentifier(raw)
		if fe != nil {
			return fe
		}
		s.Identifier = identifier
		return nil
	}
	s.Identifier = st.Address
	fields := map[string][]flow.Message{}
	resend := s.Field("resend")
	if resend != "" && resend != MethodID {
		fields["resend"] = []flow.Message{flow.Generic(`value must be "code"`)}
	}
	if resend == "" {
		switch c := s.Field("code"); {
		case c == "":
			fields["code"] = []flow.Message{flow.Missing("code")}
		case len(c) > maxCodeLength:
			fields["code"] = []flow.Message{flow.TooLong(maxCodeLength, len(c))}
		}
	}
	if len(fields) > 0 {
		return &login.FlowError{Fields: fields, Cleared: cleared}
	}
	return nil
}

// cleared lists the node whose value a failed code submission removes: a
// code is never echoed.
var cleared = []string{"code"}

// validateIdentifier checks a submitted identifier as the password method
// does: missing (4000002), too long (4000017), invisible or control
// characters (4019002, never silently removed). It returns the normalised
// identifier.
func validateIdentifier(raw string) (string, *login.FlowError) {
	var msgs []flow.Message
	if len(raw) > login.MaxIdentifierLength {
		msgs = append(msgs, flow.TooLong(login.MaxIdentifierLength, len(raw)))
	}
	normalized, err := login.NormalizeIdentifier(raw)
	switch {
	case errors.Is(err, login.ErrEmptyIdentifier):
		msgs = append(msgs, flow.Missing("identifier"))
	case err != nil:
		msgs = append(msgs, flow.IdentifierCharacters())
	}
	if len(msgs) > 0 {
		return "", &login.FlowError{Fields: map[string][]flow.Message{"identifier": msgs}, Values: map[string]string{"identifier": raw}}
	}
	return normalized, nil
}

// Authenticate implements login.Method. At the send step (and for
// resend=code) it sends a code and returns the sent_email step; at the code
// step it verifies the code. A wrong or expired code, or one sent to an
// address of no identity, is a *login.FlowError with message 4010008 and
// FailedAttempt set; a submission beyond Config.MaxSubmissions gets message
// 4000001; a throttled send is a login.Throttled error.
func (m *Method) Authenticate(ctx context.Context, s *login.Submission) (*login.Result, error) {
	st, err := sent(s)
	if err != nil {
		return nil, err
	}
	switch {
	case st == nil:
		address := s.Identifier
		if address == "" { // Authenticate without Validate
			var fe *login.FlowError
			if address, fe = validateIdentifier(s.Field("identifier")); fe != nil {
				return nil, fe
			}
		}
		return m.send(ctx, s, address)
	case s.Field("resend") == MethodID:
		return m.send(ctx, s, st.Address)
	}
	return m.verify(ctx, s)
}

// now is the method's clock.
func (m *Method) now(s *login.Submission) time.Time {
	if m.cfg.Now != nil {
		return m.cfg.Now()
	}
	return s.Now()
}

// send is the send step for address, the same for a known address and an
// unknown one except that only a known one is mailed (CONTRACT-CODE §10.1
// and §10.2): the send is throttled, the identity looked up, a code made,
// hashed, stored in the flow's state (replacing an earlier one, keeping the
// submission count) and the mail rendered; then, for a known identity
// only, the mail is queued for the background courier. The answer is the
// sent_email step.
func (m *Method) send(ctx context.Context, s *login.Submission, address string) (*login.Result, error) {
	release, err := m.reserveSend(ctx, s, address)
	if err != nil {
		return nil, err
	}
	identityID := ""
	switch id, _, err := s.Identities.FindIdentity(ctx, CredentialCode, address); {
	case err == nil:
		identityID = id.ID
	case !errors.Is(err, session.ErrNotFound):
		release(ctx)
		return nil, fmt.Errorf("code: find identity: %w", err)
	}
	code, err := newCode()
	if err != nil {
		release(ctx)
		return nil, err
	}
	next := state{
		IdentityID: identityID,
		Address:    address,
		CodeHash:   hex.EncodeToString(m.hashCode(s.Flow.Flow.ID, identityID, address, code)),
		ExpiresAt:  m.now(s).Add(m.cfg.Lifespan).UTC(),
	}
	msg, renderErr := m.cfg.Templates.LoginCode(courier.LoginCodeData{
		To:               address,
		Code:             code,
		ExpiresInMinutes: int(m.cfg.Lifespan / time.Minute),
		RequestURL:       s.Flow.Flow.RequestURL,
		TransientPayload: transientPayload(s),
	})
	_, err = s.UpdateState(ctx, func(old json.RawMessage) (json.RawMessage, error) {
		var prev state
		if old != nil {
			if err := json.Unmarshal(old, &prev); err != nil {
				return nil, fmt.Errorf("code: decode method state: %w", err)
			}
		}
		next.Submissions = prev.Submissions // a resend does not reset the count
		return json.Marshal(next)
	})
	if err != nil {
		release(ctx)
		return nil, stateError(err)
	}
	if identityID != "" {
		switch {
		case renderErr != nil:
			m.logger.ErrorContext(ctx, "code: render login code mail", "identity_id", identityID, "error", renderErr)
		default:
			if err := m.queue.Enqueue(msg); err != nil {
				m.logger.ErrorContext(ctx, "code: queue login code mail", "identity_id", identityID, "error", err)
			}
		}
	}
	return &login.Result{Step: &login.Step{
		State:    flow.StateSentEmail,
		Nodes:    sentNodes(s, address),
		Messages: []flow.Message{flow.CodeSent()},
	}}, nil
}

// reserveSend is the throttling of sends (CONTRACT-CODE §10.6): one
// reservation per client network whatever the address, keyed
// {Identifier: network, ClientIP: network} so that both of the limiter's
// rules count per network, and one per address and network, keyed
// {Identifier: address, ClientIP: network}, whose per-identifier rule
// caps the mail to one address from all networks. Both are taken whether
// or not the address has an account. A refused reservation is answered by
// login.Throttled; the release it returns takes both back, for a send that
// failed on the server's side. With the handler's throttling off
// (Config.DisableThrottling) sends are not limited either.
func (m *Method) reserveSend(ctx context.Context, s *login.Submission, address string) (func(context.Context), error) {
	if s.ThrottlingDisabled() {
		return func(context.Context) {}, nil // the host turned throttling off
	}
	network := s.ClientIP()
	perClient := login.LimitKey{Identifier: network, ClientIP: network}
	perAddress := login.LimitKey{Identifier: address, ClientIP: network}
	wait, err := m.clients.Reserve(ctx, perClient)
	if err != nil {
		return nil, fmt.Errorf("code: check send limit: %w", err)
	}
	if wait > 0 {
		return nil, login.Throttled(wait)
	}
	release := func(ctx context.Context) {
		if err := m.clients.Release(ctx, perClient); err != nil {
			m.logger.WarnContext(ctx, "code: release send limit", "error", err)
		}
	}
	wait, err = m.sends.Reserve(ctx, perAddress)
	if err != nil || wait > 0 {
		release(ctx)
		if err != nil {
			return nil, fmt.Errorf("code: check send limit: %w", err)
		}
		return nil, login.Throttled(wait)
	}
	return func(ctx context.Context) {
		release(ctx)
		if err := m.sends.Release(ctx, perAddress); err != nil {
			m.logger.WarnContext(ctx, "code: release send limit", "error", err)
		}
	}, nil
}

// verify is the code step: the submission is counted in the flow's state
// before the code is compared, and refused beyond Config.MaxSubmissions;
// then the code is compared in constant time with the stored hash. Only the
// identity the code was sent to can log in, and only while it still holds
// the address.
func (m *Method) verify(ctx context.Context, s *login.Submission) (*login.Result, error) {
	var st state
	_, err := s.UpdateState(ctx, func(old json.RawMessage) (json.RawMessage, error) {
		st = state{}
		if err := json.Unmarshal(old, &st); err != nil {
			return nil, fmt.Errorf("code: decode method state: %w", err)
		}
		if st.Submissions++; st.Submissions > m.cfg.MaxSubmissions {
			return nil, &login.FlowError{Messages: []flow.Message{flow.Generic(tooManySubmissions)}, Cleared: cleared}
		}
		return json.Marshal(st)
	})
	if err != nil {
		return nil, stateError(err)
	}
	invalid := &login.FlowError{Messages: []flow.Message{flow.InvalidLoginCode()}, FailedAttempt: true, Cleared: cleared}
	code := strings.TrimSpace(s.Field("code"))
	want, err := hex.DecodeString(st.CodeHash)
	if err != nil {
		return nil, fmt.Errorf("code: decode stored code hash: %w", err)
	}
	match := hmac.Equal(m.hashCode(s.Flow.Flow.ID, st.IdentityID, st.Address, code), want)
	if !match || st.IdentityID == "" || m.now(s).After(st.ExpiresAt) {
		return nil, invalid
	}
	id, _, all, err := s.FindIdentity(ctx, CredentialCode, st.Address)
	switch {
	case errors.Is(err, session.ErrNotFound):
		invalid.Err = errors.New("code: the address left its identity after the code was sent")
		return nil, invalid
	case err != nil:
		return nil, fmt.Errorf("code: find identity: %w", err)
	case id.ID != st.IdentityID:
		invalid.Err = errors.New("code: the address moved to another identity after the code was sent")
		return nil, invalid
	}
	key := login.LimitKey{Identifier: st.Address, ClientIP: s.ClientIP()}
	return &login.Result{
		Identity:    id,
		Method:      session.AuthenticationMethod{Method: MethodID, AAL: flow.AAL1},
		Credentials: all,
		// The mailbox's owner logged in: its sends start afresh, and its
		// network is exempt from the address's cap for a while.
		AfterLogin: func(ctx context.Context) error { return m.sends.Success(ctx, key) },
	}, nil
}

// tooManySubmissions is Kratos' text (message 4000001) for a flow whose code
// submissions are used up.
const tooManySubmissions = "The request was submitted too often. Please request another code."

// stateError turns UpdateState's flow.ErrCompleted (the flow logged in
// meanwhile) into the contract's answer, 4010007.
func stateError(err error) error {
	if errors.Is(err, flow.ErrCompleted) {
		return &login.FlowError{Messages: []flow.Message{flow.AlreadyCompleted()}}
	}
	return err
}

// sentNodes are the nodes after a code was sent (CONTRACT-CODE §3), in
// Kratos' order: the address hidden, the hidden method, the code field,
// Continue and Resend. The address keeps the label of the flow's
// identifier field (the host's label title, if any).
func sentNodes(s *login.Submission, address string) []flow.Node {
	label := flow.LabelID()
	if n := s.Flow.Flow.UI.Node("identifier"); n != nil && n.Meta.Label != nil {
		label = *n.Meta.Label
	}
	id := flow.NewInput(flow.GroupDefault, "identifier", "hidden", address, true)
	id.Meta.Label = &label
	method := flow.NewInput(flow.GroupCode, "method", "hidden", MethodID, false)
	code := flow.NewInput(flow.GroupCode, "code", "text", nil, true)
	code.Attributes.Autocomplete = "one-time-code"
	code.Meta.Label = ptr(flow.LabelLoginCode())
	submit := flow.NewInput(flow.GroupCode, "method", "submit", MethodID, false)
	submit.Meta.Label = ptr(flow.Continue())
	resend := flow.NewInput(flow.GroupCode, "resend", "submit", MethodID, false)
	resend.Meta.Label = ptr(flow.ResendCode())
	return []flow.Node{id, method, code, submit, resend}
}

// transientPayload returns the submission's transient_payload, for the
// mail's template; nil when none.
func transientPayload(s *login.Submission) json.RawMessage {
	if tp := s.Field("transient_payload"); tp != "" && json.Valid([]byte(tp)) {
		return json.RawMessage(tp)
	}
	return nil
}

// newCode returns a login code: digits decimal digits, uniform over all
// 10^digits values, from crypto/rand.
func newCode() (string, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		return "", fmt.Errorf("code: random code: %w", err)
	}
	return fmt.Sprintf("%0*d", digits, n.Int64()), nil
}

// hashCode is the form a code is stored in: HMAC-SHA256 keyed with the
// method's key over the flow id, the identity id ("" for none), the address
// and the code, each length-prefixed so that no two inputs collide. The
// binding makes a code useless in another flow or for another identity,
// and a leaked flow store yields no code (the key is not in it).
func (m *Method) hashCode(flowID, identityID, address, code string) []byte {
	mac := hmac.New(sha256.New, m.key)
	mac.Write([]byte("authflow login code v1"))
	for _, f := range []string{flowID, identityID, address, code} {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(f)))
		mac.Write(n[:])
		mac.Write([]byte(f))
	}
	return mac.Sum(nil)
}

func ptr[T any](v T) *T { return &v }
