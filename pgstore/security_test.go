package pgstore_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	autherrors "github.com/authflow/authflow/errors"
	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/internal/testclock"
	"github.com/authflow/authflow/internal/uuid"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/login/logintest"
	"github.com/authflow/authflow/login/password"
	"github.com/authflow/authflow/pgstore"
	"github.com/authflow/authflow/session"
)

// Regression tests of the security review's findings, end to end through
// the handler with every store and the limiter on PostgreSQL.

// newPGHandler starts one handler on a fresh schema, with hasher, clock
// and the pgstore Limiter at its default limits, and creates the cluster
// test identity (clusterIdentifier, clusterPassword) with logintest's fast
// hash, which hasher must verify.
func newPGHandler(t *testing.T, hasher password.Hasher, clock func() time.Time, configure func(*login.Config)) (*instance, *session.Identity) {
	t.Helper()
	st, pool := newStore(t, func(c *pgxpool.Config) { c.MaxConns = 32 })
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	cfg := login.Config{
		PublicURL:         srv.URL,
		LoginUIURL:        "https://ui.example.com/login",
		ErrorUIURL:        "https://ui.example.com/error",
		DefaultReturnURL:  "https://app.example.com/welcome",
		AllowedReturnURLs: []string{"https://app.example.com/"},
		FlowStore:         st, // a login.FlowSessionCompleter: flow and session in one transaction
		SessionStore:      st,
		IdentityStore:     st,
		Limiter:           pgstore.NewLimiter(pool, login.Limits{Now: clock}),
		Hasher:            hasher,
		Now:               clock,
		Logger:            slog.New(slog.DiscardHandler),
	}
	if configure != nil {
		configure(&cfg)
	}
	h, err := login.New(cfg)
	require.NoError(t, err)
	mux.Handle("/", h)

	now := clock()
	cred, err := login.NewPasswordCredential(context.Background(), logintest.FastHasher{}, clusterIdentifier, clusterPassword)
	require.NoError(t, err)
	id := &session.Identity{
		ID: uuid.New(), SchemaID: "default", State: session.StateActive, StateChangedAt: &now,
		Traits: json.RawMessage(`{"email":"alice@example.com"}`), CreatedAt: now, UpdatedAt: now,
	}
	require.NoError(t, st.CreateIdentity(context.Background(), id, cred))
	return &instance{name: "A", srv: srv, pool: pool, st: st}, id
}

// slowCountingHasher is the fast hasher, except that every Compare takes
// delay, as a real password hash does, and is counted.
type slowCountingHasher struct {
	logintest.FastHasher
	delay    time.Duration
	compares atomic.Int32
}

func (h *slowCountingHasher) Compare(ctx context.Context, p []byte, enc string) error {
	h.compares.Add(1)
	time.Sleep(h.delay)
	return h.FastHasher.Compare(ctx, p, enc)
}

// The review's reproduction on PostgreSQL: 60 wrong passwords for one
// identifier from one address, all at once, with a 50 ms hash. When the
// limiter was asked before the hash (Check) and told after it (Failure),
// all 60 passed the check before the first failure was recorded, and 60
// hashes were compared. Reserve counts each attempt as it lets it through,
// so exactly the 5 free attempts are verified and the 55 others are
// refused without a hash, as 60 guesses in a row would be.
func TestParallelWrongPasswordsAreThrottledOnPostgres(t *testing.T) {
	hasher := &slowCountingHasher{delay: 50 * time.Millisecond}
	now := time.Now().UTC().Truncate(time.Second)
	clock := func() time.Time { return now }
	in, _ := newPGHandler(t, hasher, clock, func(c *login.Config) {
		c.MaxConcurrentHashes = 60 // hashing is not what holds them back
	})

	const n = 60
	flows := make([]string, n)
	for i := range flows {
		flows[i] = in.apiFlow(t) // one flow each: nothing but the limiter serialises them
	}
	replies := make([]reply, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			replies[i] = submit(t, in, nil, flows[i], "wrong password", "")
		})
	}
	close(start)
	wg.Wait()

	statuses := map[int]int{}
	for i, r := range replies {
		statuses[r.status]++
		switch r.status {
		case http.StatusBadRequest:
			assert.Contains(t, r.messageIDs(t), flow.IDInvalidCredentials, "submission %d: a verified guess is answered as wrong credentials: %s", i, r.body)
		case http.StatusTooManyRequests:
			e, _ := r.json(t)["error"].(map[string]any)
			assert.Equal(t, autherrors.IDTooManyAttempts, e["id"], "submission %d: %s", i, r.body)
			assert.Equal(t, "1", r.header.Get("Retry-After"), "submission %d", i)
		default:
			t.Errorf("submission %d: %d %s", i, r.status, r.body)
		}
	}
	assert.Equal(t, map[int]int{http.StatusBadRequest: 5, http.StatusTooManyRequests: n - 5}, statuses)
	assert.EqualValues(t, 5, hasher.compares.Load(), "password comparisons: only the free attempts")
	assert.Equal(t, 5, scalar(t, in.pool, "SELECT failures FROM authflow_limiter_pairs WHERE identifier = $1", clusterIdentifier),
		"the refusals counted nothing")
}

// The review's second reproduction on PostgreSQL: a refresh login read the
// session before the password hash and wrote it back unconditionally after
// it, so a logout, a "sign out everywhere" or the session's expiry during
// the hash was undone, and the session lived on under a new token. Now the
// store's update is conditional: the refresh issues nothing, answers 401
// session_inactive, and the flow and the ended session stay as they were.
func TestRefreshRacingLogoutOnPostgres(t *testing.T) {
	ends := []struct {
		name string
		end  func(t *testing.T, in *instance, id *session.Identity, token string, clock *testClock)
	}{
		{"logout", func(t *testing.T, in *instance, _ *session.Identity, token string, _ *testClock) {
			r := in.do(t, nil, http.MethodDelete, "/self-service/logout/api", map[string]string{"session_token": token}, nil)
			require.Equal(t, http.StatusNoContent, r.status, "%s", r.body)
		}},
		{"revoke all sessions", func(t *testing.T, in *instance, id *session.Identity, _ string, _ *testClock) {
			n, err := in.st.RevokeSessions(context.Background(), id.ID)
			require.NoError(t, err)
			require.Equal(t, 1, n)
		}},
		{"expiry", func(t *testing.T, _ *instance, _ *session.Identity, _ string, clock *testClock) {
			clock.Advance(login.DefaultSessionLifespan)
		}},
	}
	for _, end := range ends {
		t.Run(end.name, func(t *testing.T) {
			hasher := &logintest.GateHasher{}
			clock := testclock.New(time.Now().UTC().Truncate(time.Second))
			in, alice := newPGHandler(t, hasher, clock.Now, func(c *login.Config) {
				c.FlowLifespan = 2 * login.DefaultSessionLifespan // the flow outlives the session
			})
			r := submit(t, in, nil, in.apiFlow(t), clusterPassword, "")
			require.Equal(t, http.StatusOK, r.status, "%s", r.body)
			token, _ := r.json(t)["session_token"].(string)
			require.NotEmpty(t, token)
			before, err := in.st.ListSessions(context.Background(), alice.ID)
			require.NoError(t, err)
			require.Len(t, before, 1)

			header := map[string]string{"X-Session-Token": token}
			r = in.do(t, nil, http.MethodGet, "/self-service/login/api?refresh=true", nil, header)
			require.Equal(t, http.StatusOK, r.status, "%s", r.body)
			var f flow.Flow
			require.NoError(t, json.Unmarshal(r.body, &f))
			require.True(t, f.Refresh)
			stored, err := in.st.Flow(context.Background(), f.ID)
			require.NoError(t, err)

			entered, open := hasher.Arm()
			done := make(chan reply)
			go func() {
				body := map[string]any{"method": "password", "identifier": clusterIdentifier, "password": clusterPassword}
				done <- in.do(t, nil, http.MethodPost, "/self-service/login?flow="+f.ID, body, header)
			}()
			<-entered // the submission read the session and is hashing
			end.end(t, in, alice, token, clock)
			open()
			r = <-done

			assert.Equal(t, http.StatusUnauthorized, r.status, "%s", r.body)
			e, _ := r.json(t)["error"].(map[string]any)
			assert.Equal(t, autherrors.IDSessionInactive, e["id"], "%s", r.body)
			assert.NotContains(t, string(r.body), "session_token", "nothing is issued")

			assert.Equal(t, http.StatusUnauthorized, whoami(t, in, token).status, "the old token stays dead")
			after, err := in.st.ListSessions(context.Background(), alice.ID)
			require.NoError(t, err)
			require.Len(t, after, 1, "no session was created instead")
			assert.Equal(t, before[0].TokenHash, after[0].TokenHash, "the session keeps its token hash: no new token was written")
			assert.False(t, after[0].Valid(clock.Now()), "the session stays ended")
			assert.Equal(t, before[0].Session.AuthenticationMethods, after[0].Session.AuthenticationMethods, "the refresh was not recorded")
			if end.name != "expiry" {
				assert.False(t, after[0].Session.Active, "the session row stays inactive")
			}

			got, err := in.st.Flow(context.Background(), f.ID)
			require.NoError(t, err)
			assert.Equal(t, flow.StateChooseMethod, got.Flow.State, "the flow is left usable")
			assert.Equal(t, stored.Version, got.Version, "the flow's completion was rolled back")
		})
	}
}
