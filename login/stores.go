package login

import (
	"context"
	"time"

	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/session"
)

// FlowStore keeps login flows and forwarded errors. Implementations must be
// safe for concurrent use; every record they return is a copy the caller
// may change. [flow.MemoryStore] is the in-memory implementation, and
// logintest.TestFlowStore is the conformance suite every implementation
// should pass.
type FlowStore interface {
	// CreateFlow stores a new flow and sets rec.Version to 1. It returns
	// flow.ErrConflict if the id is taken.
	CreateFlow(ctx context.Context, rec *flow.Record) error
	// Flow returns the flow with id. Expired flows are still returned for at
	// least flow.Retention after expiry (the handler answers them with 410
	// or a fresh flow); after that, and for unknown ids, it returns
	// flow.ErrNotFound.
	Flow(ctx context.Context, id string) (*flow.Record, error)
	// UpdateFlow replaces the stored flow if the stored version equals
	// rec.Version, and then increments rec.Version. It returns
	// flow.ErrConflict if the version differs (a stale writer never
	// overwrites a newer state, in particular not a completion) and
	// flow.ErrNotFound if the flow does not exist.
	UpdateFlow(ctx context.Context, rec *flow.Record) error
	// CompleteFlow atomically stores rec with rec.Flow.State set to
	// flow.StatePassedChallenge, provided the stored flow is not completed
	// yet (whatever its version), and sets rec.Version to the new stored
	// version. Of any number of concurrent callers exactly one succeeds; the
	// others get flow.ErrCompleted. flow.ErrNotFound if the flow does not
	// exist.
	CompleteFlow(ctx context.Context, rec *flow.Record) error
	// CreateError stores an error forwarded to the error UI; flow.ErrConflict
	// if its id is taken.
	CreateError(ctx context.Context, rec *flow.ErrorRecord) error
	// Error returns the forwarded error with id, or flow.ErrNotFound. Errors
	// are kept for at least flow.Retention.
	Error(ctx context.Context, id string) (*flow.ErrorRecord, error)
}

// SessionStore keeps sessions. Implementations must be safe for concurrent
// use and return copies. They never see session tokens, only their SHA-256
// hashes. [session.MemoryStore] is the in-memory implementation;
// logintest.TestSessionStore is the conformance suite.
type SessionStore interface {
	// CreateSession stores a new session; session.ErrConflict if its id or
	// token hash is taken.
	CreateSession(ctx context.Context, rec *session.Record) error
	// SessionByToken returns the session whose token hash is tokenHash,
	// revoked or expired ones included (the caller checks), or
	// session.ErrNotFound.
	SessionByToken(ctx context.Context, tokenHash string) (*session.Record, error)
	// Session returns the session with id, or session.ErrNotFound.
	Session(ctx context.Context, id string) (*session.Record, error)
	// UpdateSession replaces the session with rec.Session.ID, including its
	// token hash (token rotation: the old token stops working at once),
	// provided the stored session is still active and expires after now;
	// the check and the write are one atomic step, so a revocation
	// (RevokeSession, RevokeSessions) that lands first is never undone.
	// session.ErrInactive if the stored session is revoked or expired,
	// session.ErrNotFound if it does not exist; either leaves it unchanged.
	UpdateSession(ctx context.Context, rec *session.Record, now time.Time) error
	// ListSessions returns the identity's sessions, revoked ones included,
	// newest first; an empty list when it has none.
	ListSessions(ctx context.Context, identityID string) ([]*session.Record, error)
	// RevokeSession marks the session inactive (idempotent);
	// session.ErrNotFound if it does not exist.
	RevokeSession(ctx context.Context, id string) error
	// RevokeSessions marks all of the identity's sessions inactive ("sign
	// out everywhere") and returns how many were active.
	RevokeSessions(ctx context.Context, identityID string) (int, error)
}

// IdentityStore keeps identities and their credentials. Implementations
// must be safe for concurrent use and return copies.
// [session.MemoryIdentityStore] is the in-memory implementation;
// logintest.TestIdentityStore is the conformance suite.
type IdentityStore interface {
	// CreateIdentity stores a new identity with its credentials (at most one
	// per type), setting each credential's Version to 1. It returns
	// session.ErrConflict, storing nothing, if the id or any (credential
	// type, identifier) pair is taken.
	CreateIdentity(ctx context.Context, id *session.Identity, creds ...session.Credential) error
	// Identity returns the identity with id, or session.ErrNotFound.
	Identity(ctx context.Context, id string) (*session.Identity, error)
	// FindIdentity returns the identity holding a credential of typ that
	// lists identifier, and that credential, or session.ErrNotFound.
	// Identifiers are compared verbatim: callers normalise them first.
	FindIdentity(ctx context.Context, typ session.CredentialType, identifier string) (*session.Identity, *session.Credential, error)
	// Credentials returns the identity's credentials (an empty list when it
	// has none), or session.ErrNotFound if the identity does not exist.
	Credentials(ctx context.Context, identityID string) ([]session.Credential, error)
	// UpdateIdentity replaces the identity with id.ID (traits, state,
	// metadata); session.ErrNotFound if it does not exist.
	UpdateIdentity(ctx context.Context, id *session.Identity) error
	// UpdateCredential stores c as the identity's credential of c.Type. An
	// existing credential is replaced only if its stored Version equals
	// c.Version (else session.ErrConflict), and c.Version is then
	// incremented; a new type is added with Version 1. session.ErrConflict
	// as well if one of c's identifiers belongs to another identity;
	// session.ErrNotFound if the identity does not exist.
	UpdateCredential(ctx context.Context, identityID string, c *session.Credential) error
}

// FlowSessionCompleter is an optional capability of a FlowStore whose
// backend also holds the sessions: it completes the flow and writes its
// session in one transaction. The handler uses it when the FlowStore
// implements it and is also the Config's SessionStore (the same value);
// otherwise it completes the flow, writes the session, and reopens the
// flow if the session write fails.
type FlowSessionCompleter interface {
	// CompleteFlowWithSession does what FlowStore.CompleteFlow does and, in
	// the same transaction, creates s (when create is true) or updates it
	// as SessionStore.UpdateSession does at now, on the same condition.
	// Either both happen or neither: flow.ErrCompleted if the flow was
	// already completed; session.ErrInactive or session.ErrNotFound (and
	// the flow left as it was) if the session to update is revoked,
	// expired or gone.
	CompleteFlowWithSession(ctx context.Context, rec *flow.Record, s *session.Record, create bool, now time.Time) error
}

// IdentityCredentialsFinder is an optional capability of an IdentityStore:
// FindIdentity that also returns every credential of the identity, in one
// step, so that a login knows whether the identity has a second factor
// without another lookup. Submission.FindIdentity, through which the
// methods look identities up, uses it when the IdentityStore implements it
// and a second factor is configured.
type IdentityCredentialsFinder interface {
	// FindIdentityWithCredentials returns what FindIdentity returns and,
	// in the same step, all of the identity's credentials (that one
	// included), or session.ErrNotFound.
	FindIdentityWithCredentials(ctx context.Context, typ session.CredentialType, identifier string) (*session.Identity, *session.Credential, []session.Credential, error)
}

// FlowIdentityLoader is an optional capability of a FlowStore whose
// backend also holds the identities: it loads a flow and, in the same
// step, finds an identity by a credential identifier, so that a
// submission's reads (the flow, then the identity it names) are one round
// trip. The handler uses it when the FlowStore is also the Config's
// IdentityStore (the same value), for a submission whose method names its
// lookup in advance (IdentityPrefetcher).
type FlowIdentityLoader interface {
	// FlowWithIdentity returns what FlowStore.Flow returns for flowID and
	// the answer to q, as IdentityStore.FindIdentity (or, when
	// q.Credentials is set, FindIdentityWithCredentials) gives it: a nil
	// lookup when no identity matches. flow.ErrNotFound if the flow does
	// not exist, whatever the lookup finds.
	FlowWithIdentity(ctx context.Context, flowID string, q IdentityQuery) (*flow.Record, *IdentityLookup, error)
}

// IdentityQuery is a lookup of the identity holding a credential of Type
// that lists Identifier (compared verbatim), with all of the identity's
// credentials when Credentials is set.
type IdentityQuery struct {
	Type        session.CredentialType
	Identifier  string
	Credentials bool
}

// IdentityLookup is the identity an IdentityQuery found, with the
// credential that matched and, when the query asked for them, all of the
// identity's credentials (that one included; nil when not asked for).
type IdentityLookup struct {
	Identity    *session.Identity
	Credential  *session.Credential
	Credentials []session.Credential
}

// SessionIdentityLoader is an optional capability of a SessionStore whose
// backend also holds the identities: it loads a session with its identity
// and the identity's credentials in one step, so that checking a session
// (whoami, Middleware, RequireSession), including whether it still needs
// its second factor, is one round trip. The handler uses it when the
// SessionStore implements it and is also the Config's IdentityStore (the
// same value); otherwise it asks the SessionStore and the IdentityStore in
// turn.
type SessionIdentityLoader interface {
	// SessionWithIdentity returns the session whose token hash is
	// tokenHash (revoked or expired ones included, as SessionByToken) and
	// its identity, and, when credentials is set, the identity's
	// credentials (an empty list when it has none; nil when not asked
	// for). session.ErrNotFound if there is no such session; a session
	// whose identity is gone returns a nil identity. The handler asks for
	// credentials only when a second-factor method is configured.
	SessionWithIdentity(ctx context.Context, tokenHash string, credentials bool) (*session.Record, *session.Identity, []session.Credential, error)
}

// Compile-time proof that the in-memory stores implement the interfaces.
var (
	_ FlowStore     = (*flow.MemoryStore)(nil)
	_ SessionStore  = (*session.MemoryStore)(nil)
	_ IdentityStore = (*session.MemoryIdentityStore)(nil)
)
