package pgstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/internal/uuid"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/login/logintest"
	"github.com/authflow/authflow/pgstore"
	"github.com/authflow/authflow/session"
)

// Every subtest of the suites gets its own freshly migrated, empty schema.
func TestConformance(t *testing.T) {
	testDSN(t)
	fresh := func(t *testing.T) *pgstore.Store {
		st, _ := newStore(t)
		return st
	}
	t.Run("FlowStore", func(t *testing.T) {
		logintest.TestFlowStore(t, func(t *testing.T) login.FlowStore { return fresh(t) })
	})
	t.Run("SessionStore", func(t *testing.T) {
		logintest.TestSessionStore(t, func(t *testing.T) login.SessionStore { return fresh(t) })
	})
	t.Run("IdentityStore", func(t *testing.T) {
		logintest.TestIdentityStore(t, func(t *testing.T) login.IdentityStore { return fresh(t) })
	})
	t.Run("FlowIdentityLoader", func(t *testing.T) {
		logintest.TestFlowIdentityLoader(t, func(t *testing.T) logintest.FlowIdentityStore { return fresh(t) })
	})
	t.Run("Limiter", func(t *testing.T) {
		logintest.TestLimiter(t, func(t *testing.T, limits login.Limits) login.Limiter {
			// Room for every concurrent reservation of the suite at once,
			// so that they meet in the database and not in the pool.
			_, pool := newStore(t, func(c *pgxpool.Config) { c.MaxConns = 64 })
			return pgstore.NewLimiter(pool, limits)
		})
	})
}

func TestSkipsWithoutDSN(t *testing.T) {
	if os.Getenv("AUTHFLOW_POSTGRES_DSN") != "" {
		t.Skip("AUTHFLOW_POSTGRES_DSN is set: the PostgreSQL tests run")
	}
	assert.Contains(t, skipMessage, "AUTHFLOW_POSTGRES_DSN", "the skip message names the variable")
}

func TestMigrateTwiceAndConcurrently(t *testing.T) {
	ctx := context.Background()
	files, err := os.ReadDir("migrations")
	require.NoError(t, err)
	require.NotEmpty(t, files)

	pool := newPool(t, freshSchema(t))
	st := pgstore.New(pool)
	errs := make([]error, 5)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range errs {
		// Five instances starting at once, each with its own pool.
		p := pool
		if i > 0 {
			var schema string
			require.NoError(t, pool.QueryRow(ctx, "SELECT current_schema()").Scan(&schema))
			p = newPool(t, schema)
		}
		wg.Go(func() {
			<-start
			errs[i] = pgstore.New(p).Migrate(ctx)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		assert.NoError(t, err, "Migrate %d", i)
	}
	require.NoError(t, st.Migrate(ctx), "Migrate again")
	require.NoError(t, st.Migrate(ctx), "and again")

	rows, err := pool.Query(ctx, "SELECT version, name FROM authflow_schema_migrations ORDER BY version")
	require.NoError(t, err)
	var applied []string
	for rows.Next() {
		var v int
		var name string
		require.NoError(t, rows.Scan(&v, &name))
		applied = append(applied, fmt.Sprintf("%03d_%s.sql", v, name))
	}
	require.NoError(t, rows.Err())
	var want []string
	for _, f := range files {
		want = append(want, f.Name())
	}
	assert.Equal(t, want, applied, "each migration applied exactly once")

	// The schema works.
	rec := &flow.Record{Flow: flow.Flow{ID: uuid.New(), Type: flow.TypeAPI, State: flow.StateChooseMethod, ExpiresAt: time.Now().Add(time.Hour)}}
	require.NoError(t, st.CreateFlow(ctx, rec))
}

func TestEveryLookupHasAnIndex(t *testing.T) {
	_, pool := newStore(t)
	ctx := context.Background()
	rows, err := pool.Query(ctx, `SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() ORDER BY indexname`)
	require.NoError(t, err)
	var defs []string
	for rows.Next() {
		var d string
		require.NoError(t, rows.Scan(&d))
		defs = append(defs, d[strings.Index(d, " ON ")+4:])
	}
	require.NoError(t, rows.Err())
	all := strings.Join(defs, "\n")
	for _, want := range []string{
		"authflow_flows USING btree (id)",
		"authflow_flows USING btree (expires_at)",
		"authflow_errors USING btree (created_at)",
		"authflow_sessions USING btree (token_hash)",
		"authflow_sessions USING btree (identity_id, issued_at DESC, id)",
		"authflow_sessions USING btree (expires_at)",
		"authflow_identities USING btree (id)",
		"authflow_credentials USING btree (identity_id, type)",
		"authflow_credential_identifiers USING btree (type, identifier)",
		"authflow_credential_identifiers USING btree (identity_id, type)",
		"authflow_limiter_pairs USING btree (identifier, client_ip)",
		"authflow_limiter_pairs USING btree (sweep_at)",
		"authflow_limiter_identifiers USING btree (identifier)",
		"authflow_limiter_identifiers USING btree (sweep_at)",
		"authflow_limiter_trusted USING btree (identifier, client_ip)",
		"authflow_limiter_trusted USING btree (sweep_at)",
		"authflow_ceremonies USING btree (key)",
		"authflow_ceremonies USING btree (expires_at)",
	} {
		assert.Contains(t, all, want)
	}
}

// testSession returns an active session of identityID issued at now.
func testSession(identityID string, now time.Time) *session.Record {
	return &session.Record{
		Session: session.Session{
			ID: uuid.New(), Active: true, ExpiresAt: now.Add(24 * time.Hour), AuthenticatedAt: now, AAL: "aal1",
			AuthenticationMethods: []session.AuthenticationMethod{{Method: "password", AAL: "aal1", CompletedAt: now}},
			IssuedAt:              now,
			Devices:               []session.Device{{ID: uuid.New(), IPAddress: "192.0.2.1", UserAgent: "test"}},
		},
		IdentityID: uuid.New(),
		TokenHash:  uuid.New() + uuid.New(),
	}
}

func testFlow(now time.Time) *flow.Record {
	return &flow.Record{Flow: flow.Flow{
		ID: uuid.New(), Type: flow.TypeAPI, State: flow.StateChooseMethod, RequestedAAL: flow.AAL1,
		IssuedAt: now, CreatedAt: now, UpdatedAt: now, ExpiresAt: now.Add(time.Hour),
		UI: flow.UI{Method: "POST", Nodes: []flow.Node{flow.NewInput(flow.GroupDefault, "identifier", "text", "", true)}},
	}}
}

func TestCompleteFlowWithSession(t *testing.T) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)

	t.Run("login completes the flow and creates the session, once", func(t *testing.T) {
		st, pool := newStore(t)
		rec := testFlow(now)
		require.NoError(t, st.CreateFlow(ctx, rec))
		s := testSession(uuid.New(), now)
		rec.SessionID = s.Session.ID
		require.NoError(t, st.CompleteFlowWithSession(ctx, rec, s, true, now))
		assert.Equal(t, flow.StatePassedChallenge, rec.Flow.State)
		assert.EqualValues(t, 2, rec.Version)
		got, err := st.Flow(ctx, rec.Flow.ID)
		require.NoError(t, err)
		assert.Equal(t, flow.StatePassedChallenge, got.Flow.State)
		assert.Equal(t, s.Session.ID, got.SessionID)
		stored, err := st.SessionByToken(ctx, s.TokenHash)
		require.NoError(t, err)
		assert.Equal(t, s.Session.ID, stored.Session.ID)

		again := testSession(s.IdentityID, now)
		assert.ErrorIs(t, st.CompleteFlowWithSession(ctx, got, again, true, now), flow.ErrCompleted)
		assert.Equal(t, 1, count(t, pool, "authflow_sessions", ""), "the second completion created no session")
	})

	t.Run("a session conflict leaves the flow open", func(t *testing.T) {
		st, _ := newStore(t)
		taken := testSession(uuid.New(), now)
		require.NoError(t, st.CreateSession(ctx, taken))
		rec := testFlow(now)
		require.NoError(t, st.CreateFlow(ctx, rec))
		s := testSession(uuid.New(), now)
		s.TokenHash = taken.TokenHash
		assert.ErrorIs(t, st.CompleteFlowWithSession(ctx, rec, s, true, now), session.ErrConflict)
		assert.Equal(t, flow.StateChooseMethod, rec.Flow.State, "rec unchanged")
		got, err := st.Flow(ctx, rec.Flow.ID)
		require.NoError(t, err)
		assert.Equal(t, flow.StateChooseMethod, got.Flow.State, "the completion was rolled back")
		assert.EqualValues(t, 1, got.Version)
	})

	t.Run("unknown flow creates no session", func(t *testing.T) {
		st, pool := newStore(t)
		rec := testFlow(now)
		assert.ErrorIs(t, st.CompleteFlowWithSession(ctx, rec, testSession(uuid.New(), now), true, now), flow.ErrNotFound)
		assert.Equal(t, 0, count(t, pool, "authflow_sessions", ""))
	})

	t.Run("refresh updates the session in the same transaction", func(t *testing.T) {
		st, _ := newStore(t)
		s := testSession(uuid.New(), now)
		require.NoError(t, st.CreateSession(ctx, s))
		rec := testFlow(now)
		rec.Flow.Refresh = true
		require.NoError(t, st.CreateFlow(ctx, rec))
		oldHash := s.TokenHash
		s.TokenHash = uuid.New() + uuid.New()
		s.Session.AuthenticatedAt = now.Add(time.Minute)
		require.NoError(t, st.CompleteFlowWithSession(ctx, rec, s, false, now))
		_, err := st.SessionByToken(ctx, oldHash)
		assert.ErrorIs(t, err, session.ErrNotFound, "token rotated")
		got, err := st.SessionByToken(ctx, s.TokenHash)
		require.NoError(t, err)
		assert.True(t, got.Session.AuthenticatedAt.Equal(now.Add(time.Minute)))

		missing := testSession(uuid.New(), now)
		other := testFlow(now)
		require.NoError(t, st.CreateFlow(ctx, other))
		assert.ErrorIs(t, st.CompleteFlowWithSession(ctx, other, missing, false, now), session.ErrNotFound)
		f, err := st.Flow(ctx, other.Flow.ID)
		require.NoError(t, err)
		assert.Equal(t, flow.StateChooseMethod, f.Flow.State, "no session updated, no completion")
		assert.EqualValues(t, 1, f.Version)
		assert.Equal(t, flow.StateChooseMethod, other.Flow.State, "rec unchanged")
		assert.EqualValues(t, 1, other.Version, "rec unchanged")
	})

	// A refresh whose session ended (revoked, or expired at now) issues
	// nothing: session.ErrInactive, the flow left usable as it was, the
	// session as it was.
	for _, end := range []struct {
		name string
		end  func(t *testing.T, st *pgstore.Store, s *session.Record) time.Time // returns the refresh's now
	}{
		{"revoked", func(t *testing.T, st *pgstore.Store, s *session.Record) time.Time {
			require.NoError(t, st.RevokeSession(ctx, s.Session.ID))
			return now
		}},
		{"revoked with all the identity's sessions", func(t *testing.T, st *pgstore.Store, s *session.Record) time.Time {
			n, err := st.RevokeSessions(ctx, s.IdentityID)
			require.NoError(t, err)
			require.Equal(t, 1, n)
			return now
		}},
		{"expired", func(t *testing.T, st *pgstore.Store, s *session.Record) time.Time {
			return s.Session.ExpiresAt.Add(time.Second)
		}},
		{"at its expiry", func(t *testing.T, st *pgstore.Store, s *session.Record) time.Time {
			return s.Session.ExpiresAt
		}},
	} {
		t.Run("refresh of a session "+end.name+" leaves the flow and the session as they were", func(t *testing.T) {
			st, _ := newStore(t)
			s := testSession(uuid.New(), now)
			require.NoError(t, st.CreateSession(ctx, s))
			rec := testFlow(now)
			rec.Flow.Refresh = true
			require.NoError(t, st.CreateFlow(ctx, rec))
			at := end.end(t, st, s)
			before, err := st.Session(ctx, s.Session.ID)
			require.NoError(t, err)

			upd := s.Clone()
			upd.TokenHash = uuid.New() + uuid.New()
			upd.Session.AuthenticatedAt = now.Add(time.Minute)
			upd.Session.ExpiresAt = at.Add(24 * time.Hour)
			upd.Session.Active = true
			rec.SessionID = s.Session.ID
			assert.ErrorIs(t, st.CompleteFlowWithSession(ctx, rec, upd, false, at), session.ErrInactive)
			assert.Equal(t, flow.StateChooseMethod, rec.Flow.State, "rec unchanged")
			assert.EqualValues(t, 1, rec.Version, "rec unchanged")

			f, err := st.Flow(ctx, rec.Flow.ID)
			require.NoError(t, err)
			assert.Equal(t, flow.StateChooseMethod, f.Flow.State, "the completion was rolled back")
			assert.EqualValues(t, 1, f.Version, "the flow's version is unchanged")
			assert.Empty(t, f.SessionID)

			after, err := st.Session(ctx, s.Session.ID)
			require.NoError(t, err)
			assert.Equal(t, before, after, "the session is unchanged")
			assert.Equal(t, s.TokenHash, after.TokenHash, "its token hash too")
			assert.False(t, after.Valid(at), "and it stays ended")
			_, err = st.SessionByToken(ctx, upd.TokenHash)
			assert.ErrorIs(t, err, session.ErrNotFound, "the new token hash finds nothing")

			// The flow is still usable: a plain completion works.
			require.NoError(t, st.CompleteFlow(ctx, f))
		})
	}

	t.Run("a refresh racing a revocation never leaves the session active", func(t *testing.T) {
		st, _ := newStore(t)
		refreshed := 0
		for i := range 30 {
			s := testSession(uuid.New(), now)
			require.NoError(t, st.CreateSession(ctx, s))
			rec := testFlow(now)
			rec.Flow.Refresh = true
			require.NoError(t, st.CreateFlow(ctx, rec))
			upd := s.Clone()
			upd.TokenHash = uuid.New() + uuid.New()
			rec.SessionID = s.Session.ID
			errs := make([]error, 2)
			start := make(chan struct{})
			var wg sync.WaitGroup
			wg.Go(func() { <-start; errs[0] = st.CompleteFlowWithSession(ctx, rec, upd, false, now) })
			wg.Go(func() {
				<-start
				time.Sleep(time.Duration(i%6) * 400 * time.Microsecond) // either may land first
				errs[1] = st.RevokeSession(ctx, s.Session.ID)
			})
			close(start)
			wg.Wait()
			require.NoError(t, errs[1], "round %d: revocation", i)
			f, err := st.Flow(ctx, rec.Flow.ID)
			require.NoError(t, err)
			got, err := st.Session(ctx, s.Session.ID)
			require.NoError(t, err)
			assert.False(t, got.Session.Active, "round %d: the session is revoked", i)
			if errs[0] == nil {
				refreshed++
				assert.Equal(t, flow.StatePassedChallenge, f.Flow.State, "round %d", i)
				assert.Equal(t, upd.TokenHash, got.TokenHash, "round %d: the refresh landed first, then the revocation", i)
			} else {
				require.ErrorIs(t, errs[0], session.ErrInactive, "round %d", i)
				assert.Equal(t, flow.StateChooseMethod, f.Flow.State, "round %d", i)
				assert.Equal(t, s.TokenHash, got.TokenHash, "round %d", i)
			}
		}
		t.Logf("%d of 30 refreshes landed before the revocation", refreshed)
	})

	t.Run("concurrent completions issue one session", func(t *testing.T) {
		st, pool := newStore(t)
		rec := testFlow(now)
		require.NoError(t, st.CreateFlow(ctx, rec))
		errs := make([]error, 50)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range errs {
			r, err := st.Flow(ctx, rec.Flow.ID)
			require.NoError(t, err)
			s := testSession(uuid.New(), now)
			wg.Go(func() {
				<-start
				errs[i] = st.CompleteFlowWithSession(ctx, r, s, true, now)
			})
		}
		close(start)
		wg.Wait()
		wins := 0
		for _, err := range errs {
			if err == nil {
				wins++
			} else {
				assert.ErrorIs(t, err, flow.ErrCompleted)
			}
		}
		assert.Equal(t, 1, wins)
		assert.Equal(t, 1, count(t, pool, "authflow_sessions", ""))
	})
}

func TestOddValues(t *testing.T) {
	ctx := context.Background()
	st, _ := newStore(t)
	now := time.Now().UTC()

	// A submitted identifier with a NUL is echoed into the flow's node.
	rec := testFlow(now)
	rec.Flow.UI.Nodes[0].Attributes.Value = "alice\x00@example.com\u2028"
	rec.MethodState = map[string]json.RawMessage{"x": json.RawMessage(`{"s":"\u0000"}`)}
	require.NoError(t, st.CreateFlow(ctx, rec))
	got, err := st.Flow(ctx, rec.Flow.ID)
	require.NoError(t, err)
	assert.Equal(t, "alice\x00@example.com\u2028", got.Flow.UI.Nodes[0].Attributes.Value)
	assert.True(t, got.Flow.ExpiresAt.Equal(rec.Flow.ExpiresAt), "flow times keep nanoseconds")

	// Ids that cannot name a row are simply not found.
	for _, id := range []string{"", "not-a-uuid", "\x00", strings.Repeat("a", 36)} {
		_, err := st.Flow(ctx, id)
		assert.ErrorIs(t, err, flow.ErrNotFound, "Flow(%q)", id)
		_, err = st.Error(ctx, id)
		assert.ErrorIs(t, err, flow.ErrNotFound, "Error(%q)", id)
		_, err = st.Session(ctx, id)
		assert.ErrorIs(t, err, session.ErrNotFound, "Session(%q)", id)
		assert.ErrorIs(t, st.RevokeSession(ctx, id), session.ErrNotFound, "RevokeSession(%q)", id)
		_, err = st.Identity(ctx, id)
		assert.ErrorIs(t, err, session.ErrNotFound, "Identity(%q)", id)
		_, _, err = st.FindIdentity(ctx, session.CredentialPassword, id)
		assert.ErrorIs(t, err, session.ErrNotFound, "FindIdentity(%q)", id)
	}
	_, _, err = st.FindIdentity(ctx, session.CredentialPassword, "\xff")
	assert.ErrorIs(t, err, session.ErrNotFound)

	// An upper-case UUID names the same flow.
	_, err = st.Flow(ctx, strings.ToUpper(rec.Flow.ID))
	assert.NoError(t, err)

	// Identity ids of other forms are kept verbatim (hosts' own ids).
	ident := &session.Identity{ID: "user-42", SchemaID: "default", State: session.StateActive, Traits: json.RawMessage(`{}`)}
	require.NoError(t, st.CreateIdentity(ctx, ident))
	gotID, err := st.Identity(ctx, "user-42")
	require.NoError(t, err)
	assert.Equal(t, "user-42", gotID.ID)
}

func TestDisableIdentityRevokesItsSessionsInOneStatement(t *testing.T) {
	ctx := context.Background()
	st, _ := newStore(t)
	now := time.Now().UTC().Truncate(time.Microsecond)
	alice := &session.Identity{ID: uuid.New(), SchemaID: "default", State: session.StateActive, Traits: json.RawMessage(`{}`), UpdatedAt: now}
	require.NoError(t, st.CreateIdentity(ctx, alice))
	var mine []*session.Record
	for range 3 {
		s := testSession(alice.ID, now)
		s.IdentityID = alice.ID
		require.NoError(t, st.CreateSession(ctx, s))
		mine = append(mine, s)
	}
	require.NoError(t, st.RevokeSession(ctx, mine[0].Session.ID))
	other := testSession(uuid.New(), now)
	require.NoError(t, st.CreateSession(ctx, other))

	at := now.Add(time.Minute)
	n, err := st.DisableIdentity(ctx, alice.ID, at)
	require.NoError(t, err)
	assert.Equal(t, 2, n, "sessions that were active")
	got, err := st.Identity(ctx, alice.ID)
	require.NoError(t, err)
	assert.Equal(t, session.StateInactive, got.State)
	require.NotNil(t, got.StateChangedAt)
	assert.True(t, got.StateChangedAt.Equal(at))
	list, err := st.ListSessions(ctx, alice.ID)
	require.NoError(t, err)
	for _, s := range list {
		assert.False(t, s.Session.Active)
	}
	o, err := st.Session(ctx, other.Session.ID)
	require.NoError(t, err)
	assert.True(t, o.Session.Active, "other identities' sessions are untouched")

	_, err = st.DisableIdentity(ctx, uuid.New(), at)
	assert.ErrorIs(t, err, session.ErrNotFound)
}

func TestStoreErrorsAreNotSentinels(t *testing.T) {
	ctx := context.Background()
	st, pool := newStore(t)
	pool.Close() // an outage
	_, err := st.Flow(ctx, uuid.New())
	require.Error(t, err)
	assert.False(t, errors.Is(err, flow.ErrNotFound), "a failing database is not a missing flow: %v", err)
	_, err = st.SessionByToken(ctx, "x")
	require.Error(t, err)
	assert.False(t, errors.Is(err, session.ErrNotFound))
}
