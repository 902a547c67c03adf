// Package pgstore is authflow's PostgreSQL backend: the flow, session and
// identity stores of package login, its throttling limiter and the
// enrolment ceremonies of package login/passkey, over a pgx connection
// pool. Several instances of the login handler that share one database
// behave as one: a flow created on one instance is submitted on another, a
// session issued by one is valid on all, a flow logs in at most once
// however many instances race, throttling counts attempts wherever they
// arrive, and a passkey enrolment begun on one instance is finished, once,
// on any.
//
//	pool, err := pgxpool.New(ctx, dsn)
//	...
//	st := pgstore.New(pool)
//	if err := st.Migrate(ctx); err != nil { ... }
//	pk, err := passkey.New(passkey.Config{
//		Identities: st, Ceremonies: pgstore.NewCeremonyStore(pool),
//		...
//	})
//	h, err := login.New(login.Config{
//		FlowStore: st, SessionStore: st, IdentityStore: st,
//		Limiter: pgstore.NewLimiter(pool, login.Limits{}),
//		Methods: []login.Method{pk},
//		...
//	})
//
// Migrate applies the embedded schema (tables prefixed authflow_) in the
// connection's search_path; it is idempotent and safe when several
// instances start at once. Expired rows stay until [Store.Sweep] removes
// them; call it periodically from one or all instances.
package pgstore

import (
	"errors"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authflow/authflow/internal/uuid"
	"github.com/authflow/authflow/login"
)

// Store keeps flows, forwarded errors, sessions and identities in
// PostgreSQL. It implements login.FlowStore, login.SessionStore,
// login.IdentityStore and login.FlowSessionCompleter, so a login completes
// its flow and writes its session in one statement. It is safe for
// concurrent use; every value it returns is the caller's.
type Store struct {
	pool  *pgxpool.Pool
	flows *flowCache
}

// New returns a Store over pool. It does not touch the database: call
// Migrate before the first use.
func New(pool *pgxpool.Pool) *Store {
	return &Store{pool: pool, flows: newFlowCache()}
}

// Compile-time proof of the interfaces.
var (
	_ login.FlowStore                 = (*Store)(nil)
	_ login.SessionStore              = (*Store)(nil)
	_ login.IdentityStore             = (*Store)(nil)
	_ login.FlowSessionCompleter      = (*Store)(nil)
	_ login.SessionIdentityLoader     = (*Store)(nil)
	_ login.IdentityCredentialsFinder = (*Store)(nil)
	_ login.FlowIdentityLoader        = (*Store)(nil)
)

// PostgreSQL error codes the stores translate.
const (
	codeUniqueViolation     = "23505"
	codeForeignKeyViolation = "23503"
)

func isCode(err error, code string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == code
}

// parseID returns the canonical form of a UUID id, and false for anything
// else (flows, errors and sessions are named by UUIDs; other ids cannot be
// stored, so they are never found).
func parseID(id string) (string, bool) { return uuid.Parse(id) }

// storable reports whether PostgreSQL can hold s in a text column: UTF-8
// without NUL. Lookups of other strings find nothing.
func storable(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

// query names a statement: its label (the leading comment, which also shows
// in pg_stat_statements and the server log) and its text.
func query(label, sql string) string { return "-- pgstore." + label + "\n" + sql }

// QueryLabel returns the label of a statement the Store, Limiter or
// CeremonyStore sends ("CreateFlow", "Limiter.Reserve", "TakeCeremony",
// ...), or "" for other SQL; tracers use it to count round trips by
// operation.
func QueryLabel(sql string) string {
	rest, ok := strings.CutPrefix(sql, "-- pgstore.")
	if !ok {
		return ""
	}
	label, _, _ := strings.Cut(rest, "\n")
	return label
}
