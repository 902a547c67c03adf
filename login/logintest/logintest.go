// Package logintest helps test code that uses package login. [Client]
// signs identities in through a host's handler in process, for the host's
// tests of its protected routes (see [ExampleClient_SignInAPI]).
//
// The conformance suites check implementations of the store interfaces
// of package login, in the manner of [testing/fstest.TestFS]: a store
// author calls [TestFlowStore], [TestSessionStore] and [TestIdentityStore] (and a
// shared throttling backend [TestLimiter]) from an ordinary test, with a
// function that returns a new, empty store. Every subtest gets its own
// store, so the function should give each one a fresh database schema,
// table prefix or key space (t.Cleanup can drop it). The subtests run one
// after another.
//
// A PostgreSQL backend, say, runs the suites when its DSN is set and skips
// otherwise:
//
//	func TestStores(t *testing.T) {
//		dsn := os.Getenv("AUTHFLOW_POSTGRES_DSN")
//		if dsn == "" {
//			t.Skip("AUTHFLOW_POSTGRES_DSN is not set; skipping the PostgreSQL store suites")
//		}
//		newStore := func(t *testing.T) *postgresstore.Store {
//			// freshSchema creates an empty schema and drops it at t.Cleanup.
//			s, err := postgresstore.New(t.Context(), dsn, postgresstore.Schema(freshSchema(t)))
//			require.NoError(t, err)
//			t.Cleanup(func() { s.Close() })
//			return s
//		}
//		logintest.TestFlowStore(t, func(t *testing.T) login.FlowStore { return newStore(t) })
//		logintest.TestSessionStore(t, func(t *testing.T) login.SessionStore { return newStore(t) })
//		logintest.TestIdentityStore(t, func(t *testing.T) login.IdentityStore { return newStore(t) })
//	}
//
// The suites check the contracts written on the interfaces' methods:
// round trips of every field, the sentinel errors (checked with
// errors.Is), that returned values are copies, the conditional updates,
// that concurrent conditional writes have exactly one winner, and that a
// session update racing a revocation never revives the session. They
// compare times as instants (a database may return another location and no
// monotonic reading, but must keep microseconds) and JSON values by
// meaning, not by bytes. A store that fills two roles and reads them in
// one step runs [TestFlowIdentityLoader] too; the optional
// [login.FlowSessionCompleter] is not tested here.
package logintest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/internal/uuid"
)

// concurrency is how many goroutines race in the concurrency subtests.
const concurrency = 50

// subtest is one behaviour of a store contract, run on a fresh store.
type subtest[S any] struct {
	name string
	test func(t *testing.T, s S)
}

// run runs each subtest on its own store from newStore.
func run[S any](t *testing.T, newStore func(t *testing.T) S, tests []subtest[S]) {
	t.Helper()
	for _, st := range tests {
		t.Run(st.name, func(t *testing.T) {
			s := newStore(t)
			require.NotNil(t, s, "newStore returned nil")
			st.test(t, s)
		})
	}
}

// now returns the current time as a database keeps it: UTC, microseconds.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// newTokenHash returns the hex SHA-256 of a fresh random token, as stores
// see session tokens and CSRF tokens.
func newTokenHash() string { return hashOf(uuid.New()) }

// hashOf returns the hex SHA-256 of token.
func hashOf(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// assertSameTime checks that got is the instant want, whatever its location
// or monotonic reading.
func assertSameTime(t testing.TB, want, got time.Time, field string) bool {
	t.Helper()
	return assert.WithinDuration(t, want, got, 0, "%s: got %s, want %s", field, got, want)
}

// assertJSONOf checks that want and got encode to the same JSON value.
func assertJSONOf(t testing.TB, want, got any, field string) bool {
	t.Helper()
	w, err := json.Marshal(want)
	require.NoError(t, err, field)
	g, err := json.Marshal(got)
	if !assert.NoError(t, err, field) {
		return false
	}
	return assert.JSONEq(t, string(w), string(g), field)
}

// assertRawJSON checks that got is the JSON value want. A nil want accepts
// nil or the JSON null, which are the same on the wire.
func assertRawJSON(t testing.TB, want, got json.RawMessage, field string) bool {
	t.Helper()
	if want == nil {
		return assert.True(t, got == nil || string(got) == "null", "%s: got %q, want nil", field, got)
	}
	return assert.JSONEq(t, string(want), string(got), field)
}

// scribble overwrites b in place, so that any value still sharing it shows
// the change (and stops being valid JSON).
func scribble(b []byte) {
	for i := range b {
		b[i] = 'x'
	}
}

// concurrently calls f(0) to f(n-1) in n goroutines released at the same
// moment and returns their errors by index.
func concurrently(n int, f func(i int) error) []error {
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = f(i)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

// assertOneWinner checks that exactly one of errs is nil and all others are
// loser, and returns the winner's index (-1 if none).
func assertOneWinner(t testing.TB, errs []error, loser error) int {
	t.Helper()
	winner, wins, losses := -1, 0, 0
	for i, err := range errs {
		switch {
		case err == nil:
			winner = i
			wins++
		case errors.Is(err, loser):
			losses++
		default:
			assert.Failf(t, "unexpected error", "caller %d: %v (want nil or %v)", i, err, loser)
		}
	}
	assert.Equal(t, 1, wins, "callers that succeeded")
	assert.Equal(t, len(errs)-1, losses, "callers that got %v", loser)
	return winner
}
