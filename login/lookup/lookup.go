// Package lookup is the "lookup_secret" login method: backup codes ("backup
// recovery codes"), a second factor with which a signed-in user steps up to
// aal2 when their authenticator is out of reach, plugged into
// login.Config.Methods.
//
//	m, err := lookup.New(lookup.Config{})
//	h, err := login.New(login.Config{..., Methods: []login.Method{m}})
//
// There is no settings flow: a host enrols a user with [NewCodes], shows
// the codes once, and stores [NewCredential]'s credential with
// login.IdentityStore.UpdateCredential; [ImportKratos] converts the codes of
// a Kratos identity, and [Remaining] counts the unused ones.
//
// The method has no route of its own. A step-up flow (GET
// /self-service/login/api?aal=aal2 or /self-service/login/browser?aal=aal2,
// by an aal1 session) of an identity that has codes gets the group
// "lookup_secret": a text input lookup_secret (label 1010007) and a submit
// button method=lookup_secret (label 1010010). POST
// /self-service/login?flow=<id> with method=lookup_secret and the code
// verifies it for the identity of the session that created the flow and
// steps that session up to aal2. Answers: 4000002 or 4000017 on the node
// (missing, over MaxCodeLength bytes), 4000016 (not one of the codes;
// matched exactly: no trimming, case-sensitive, as Kratos), 4000012
// (already used), 4000014 (no codes set up); an aal1 flow never offers it
// (4010002).
//
// Security: codes are shown to the user once, at enrolment, and never
// stored in clear: a credential keeps one argon2id hash per code, all
// salted with one random salt per credential (see [NewCredential]), so a
// leaked database does not give them away (Kratos stores them in clear). A submission costs one argon2id
// computation, whose result is compared in constant time with every
// stored hash. A code is single use, and consumed atomically: the update
// that marks it used is conditional on the credential's version, so of N
// concurrent submissions of one code exactly one succeeds and the others
// are told it was used (never a server error). Wrong and used codes count
// as failed attempts, which the login handler throttles by identity. The
// submitted code is never echoed back on the flow.
package lookup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"time"

	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/session"
)

// MethodID is the method's id: the "method" field value, its node group and
// the name of its input (the code), as in Kratos.
const MethodID = "lookup_secret"

// cleared lists the node whose value a failed submission removes: a code
// is never echoed (CONTRACT-AAL §4).
var cleared = []string{codeField}

// MaxCodeLength is the longest code accepted, in bytes; a longer submission
// is refused with message 4000017 before anything is hashed.
const MaxCodeLength = 64

// codeField is the name of the input that carries the code.
const codeField = "lookup_secret"

// Config configures the method. Its zero value is ready to use.
type Config struct {
	// Now is the clock by which a code is marked used; nil means time.Now.
	Now func() time.Time
	// MaxConcurrentHashes bounds how many submissions compute their
	// argon2id hash at once (each needs about 19 MiB), so that a burst of
	// submissions queues instead of exhausting memory; 0 means
	// runtime.NumCPU(). A submission whose request ends while it waits
	// gives up.
	MaxConcurrentHashes int
}

// Method is the lookup_secret login method, a second factor (aal2); make
// it with New (the zero value is not usable). It is safe for concurrent
// use.
type Method struct {
	now    func() time.Time
	hashes chan struct{} // a semaphore of Config.MaxConcurrentHashes slots
}

var _ login.Method = (*Method)(nil)

// New checks cfg and returns the method. It fails only for a negative
// MaxConcurrentHashes.
func New(cfg Config) (*Method, error) {
	if cfg.MaxConcurrentHashes < 0 {
		return nil, errors.New("lookup: MaxConcurrentHashes must not be negative")
	}
	if cfg.MaxConcurrentHashes == 0 {
		cfg.MaxConcurrentHashes = runtime.NumCPU()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Method{now: cfg.Now, hashes: make(chan struct{}, cfg.MaxConcurrentHashes)}, nil
}

// ID implements login.Method.
func (m *Method) ID() string { return MethodID }

// AAL implements login.Method: backup codes are a second factor.
func (m *Method) AAL() string { return flow.AAL2 }

// Nodes implements login.Method: the code input and its submit button, in
// step-up (aal2) flows of an identity whose lookup credential holds at
// least one code, used or not; no nodes otherwise. A credential this
// package cannot read is an error, so that an identity's second factor is
// never silently ignored.
func (m *Method) Nodes(_ context.Context, req *login.FlowRequest) ([]flow.Node, error) {
	if req.Flow.RequestedAAL != flow.AAL2 || req.Identity == nil {
		return nil, nil
	}
	c := findCredential(req.Credentials)
	if c == nil {
		return nil, nil
	}
	stored, err := decodeConfig(c.Config)
	if err != nil {
		return nil, fmt.Errorf("lookup: credential of identity %s: %w", req.Identity.ID, err)
	}
	if len(stored.Codes) == 0 {
		return nil, nil
	}
	input := flow.NewInput(MethodID, codeField, "text", "", true)
	input.Meta.Label = ptr(flow.LabelBackupCode())
	submit := flow.NewInput(MethodID, "method", "submit", MethodID, false)
	submit.Meta.Label = ptr(flow.UseBackupCode())
	return []flow.Node{input, submit}, nil
}

// Validate implements login.Method: the code is required and at most
// MaxCodeLength bytes long. The submitted value is never put back on the
// flow.
func (m *Method) Validate(_ context.Context, s *login.Submission) error {
	code := s.Field(codeField)
	var msg flow.Message
	switch {
	case code == "":
		msg = flow.Missing(codeField)
	case len(code) > MaxCodeLength:
		msg = flow.TooLong(MaxCodeLength, len(code))
	default:
		return nil
	}
	return &login.FlowError{Fields: map[string][]flow.Message{codeField: {msg}}, Cleared: cleared}
}

// Authenticate implements login.Method: it checks the code against the
// lookup credential of the session's identity and consumes it (see
// consume). Refusals are *login.FlowErrors: 4000014 without codes, 4000016
// for a code that is not one of them and 4000012 for a used one (both
// failed attempts). Other errors are internal.
func (m *Method) Authenticate(ctx context.Context, s *login.Submission) (*login.Result, error) {
	if s.Session == nil || s.Session.Identity == nil {
		return nil, errors.New("lookup: a step-up submission without a session")
	}
	code := s.Field(codeField)
	if code == "" || len(code) > MaxCodeLength { // Authenticate without Validate
		return nil, invalidCode()
	}
	id := s.Session.Identity.Clone()
	h, err := m.check(ctx, s.Identities, id.ID, code, nil)
	if err != nil {
		return nil, err
	}
	commit := func(ctx context.Context) (func(context.Context) error, error) {
		return m.consume(ctx, s.Identities, id.ID, code, h)
	}
	return &login.Result{Identity: id, Method: session.AuthenticationMethod{Method: MethodID, AAL: flow.AAL2}, Commit: commit}, nil
}

// hashed is a submitted code's hash and the salt and parameters it was
// made with, so that it is computed once per submission.
type hashed struct {
	sum []byte
	cfg *storedConfig
}

// check finds code among the identity's codes without spending it: it
// answers a missing credential, a code that is not one of them and a used
// code, and returns the code's hash (reusing h when its salt still applies).
func (m *Method) check(ctx context.Context, ids login.IdentityStore, identityID, code string, h *hashed) (*hashed, error) {
	_, stored, err := loadCredential(ctx, ids, identityID)
	if err != nil {
		return nil, err
	}
	if len(stored.Codes) == 0 {
		return nil, &login.FlowError{Messages: []flow.Message{flow.NoBackupCodes()}, Cleared: cleared}
	}
	if h == nil || !h.cfg.sameHash(stored) {
		sum, err := m.hash(ctx, stored, code)
		if err != nil {
			return nil, err
		}
		h = &hashed{sum: sum, cfg: stored}
	}
	switch i, used := stored.match(h.sum); {
	case i < 0:
		return nil, invalidCode()
	case used:
		return nil, usedCode()
	}
	return h, nil
}

// maxExtraAttempts bounds consume's retries beyond one per stored code.
const maxExtraAttempts = 4

// consume is Result.Commit, the single-use rule (CONTRACT-AAL Part 1 S2):
// it finds code among the identity's codes and marks it used at the
// current second, with an update conditional on the credential's version. When that update
// loses to a concurrent one (session.ErrConflict), it reads the credential
// again and decides anew: the code now used is 4000012, another code
// consumed meanwhile means a retry. Every lost update is another write that
// landed, and consuming codes can cause at most one per code, so the
// retries are bounded by the number of codes (plus a few for a host's
// writes); under a contention beyond that the submission is refused on the
// flow, never answered as a server error. The hash of code is computed at
// most once more than in check (only if the credential was replaced by one
// with another salt). The rollback it returns marks the code unused again.
func (m *Method) consume(ctx context.Context, ids login.IdentityStore, identityID, code string, h *hashed) (func(context.Context) error, error) {
	for attempt := 1; ; attempt++ {
		cred, stored, err := loadCredential(ctx, ids, identityID)
		if err != nil {
			return nil, err
		}
		if len(stored.Codes) == 0 {
			return nil, &login.FlowError{Messages: []flow.Message{flow.NoBackupCodes()}, Cleared: cleared}
		}
		if h == nil || !h.cfg.sameHash(stored) {
			sum, err := m.hash(ctx, stored, code)
			if err != nil {
				return nil, err
			}
			h = &hashed{sum: sum, cfg: stored}
		}
		i, used := stored.match(h.sum)
		switch {
		case i < 0:
			return nil, invalidCode()
		case used:
			return nil, usedCode()
		}
		now := m.now().UTC().Truncate(time.Second) // seconds, as Kratos
		stored.Codes[i].UsedAt = &now
		if cred.Config, err = stored.encode(); err != nil {
			return nil, err
		}
		err = ids.UpdateCredential(ctx, identityID, cred)
		switch {
		case err == nil:
			spent := stored.Codes[i].Hash
			return func(ctx context.Context) error { return giveBack(ctx, ids, identityID, spent, now) }, nil
		case errors.Is(err, session.ErrNotFound): // the identity is gone
			return nil, &login.FlowError{Messages: []flow.Message{flow.NoBackupCodes()}, Cleared: cleared}
		case !errors.Is(err, session.ErrConflict):
			return nil, fmt.Errorf("lookup: mark code used: %w", err)
		case attempt >= len(stored.Codes)+maxExtraAttempts:
			return nil, &login.FlowError{
				Cleared:  cleared,
				Messages: []flow.Message{flow.Generic("The backup recovery codes changed while your code was checked. Please try again.")},
				Err:      fmt.Errorf("lookup: mark code used: %d version conflicts", attempt),
			}
		}
	}
}

// giveBack undoes a consume whose login failed: the code with hash spent,
// if it is still marked used at usedAt, is marked unused again. A code the
// host replaced meanwhile is left alone.
func giveBack(ctx context.Context, ids login.IdentityStore, identityID string, spent []byte, usedAt time.Time) error {
	for range maxExtraAttempts * 4 {
		cred, stored, err := loadCredential(ctx, ids, identityID)
		if err != nil || cred == nil {
			return err
		}
		i := slices.IndexFunc(stored.Codes, func(c storedCode) bool { return bytes.Equal(c.Hash, spent) })
		if i < 0 || stored.Codes[i].UsedAt == nil || !stored.Codes[i].UsedAt.Equal(usedAt) {
			return nil
		}
		stored.Codes[i].UsedAt = nil
		if cred.Config, err = stored.encode(); err != nil {
			return err
		}
		if err = ids.UpdateCredential(ctx, identityID, cred); !errors.Is(err, session.ErrConflict) {
			return err
		}
	}
	return fmt.Errorf("lookup: credential of identity %s kept changing while a code was given back", identityID)
}

// hash computes the argon2id hash of code with stored's salt and
// parameters, waiting for one of Config.MaxConcurrentHashes slots.
func (m *Method) hash(ctx context.Context, stored *storedConfig, code string) ([]byte, error) {
	select {
	case m.hashes <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-m.hashes }()
	return stored.derive(code), nil
}

// loadCredential reads the identity's lookup credential, with its version,
// and decodes it. An identity without one (or gone) has no codes.
func loadCredential(ctx context.Context, ids login.IdentityStore, identityID string) (*session.Credential, *storedConfig, error) {
	creds, err := ids.Credentials(ctx, identityID)
	if errors.Is(err, session.ErrNotFound) {
		return nil, &storedConfig{}, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("lookup: load credentials: %w", err)
	}
	c := findCredential(creds)
	if c == nil {
		return nil, &storedConfig{}, nil
	}
	stored, err := decodeConfig(c.Config)
	if err != nil {
		return nil, nil, fmt.Errorf("lookup: credential of identity %s: %w", identityID, err)
	}
	return c, stored, nil
}

// findCredential returns the lookup credential among creds, or nil.
func findCredential(creds []session.Credential) *session.Credential {
	for i := range creds {
		if creds[i].Type == session.CredentialLookup {
			return &creds[i]
		}
	}
	return nil
}

// invalidCode is the answer to a code that is not one of the identity's
// (4000016), a failed attempt.
func invalidCode() *login.FlowError {
	return &login.FlowError{Messages: []flow.Message{flow.BackupCodeInvalid()}, FailedAttempt: true, Cleared: cleared}
}

// usedCode is the answer to a code used before (4000012), a failed
// attempt.
func usedCode() *login.FlowError {
	return &login.FlowError{Messages: []flow.Message{flow.BackupCodeUsed()}, FailedAttempt: true, Cleared: cleared}
}

func ptr[T any](v T) *T { return &v }
