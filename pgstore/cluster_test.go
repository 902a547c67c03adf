package pgstore_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
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

const (
	clusterIdentifier = "alice@example.com"
	clusterPassword   = "correct horse battery staple"
)

// instance is one deployment of the handler: its own HTTP server, pool,
// Store and Limiter. Instances share nothing but the database.
type instance struct {
	name string
	srv  *httptest.Server
	pool *pgxpool.Pool
	st   *pgstore.Store
}

// newCluster starts n instances on one fresh schema, each with its own
// clock reading the same instant (so that throttling delays are exact), and
// creates the test identity through the first one's Store.
func newCluster(t *testing.T, n int) ([]*instance, *session.Identity) {
	t.Helper()
	schema := freshSchema(t)
	now := time.Now().UTC().Truncate(time.Second)
	var out []*instance
	for i := range n {
		pool := newPool(t, schema, func(c *pgxpool.Config) { c.MaxConns = 16 })
		st := pgstore.New(pool)
		require.NoError(t, st.Migrate(context.Background())) // every instance migrates on start
		clock := func() time.Time { return now }
		mux := http.NewServeMux()
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		h, err := login.New(login.Config{
			PublicURL:         srv.URL,
			LoginUIURL:        "https://ui.example.com/login",
			ErrorUIURL:        "https://ui.example.com/error",
			DefaultReturnURL:  "https://app.example.com/welcome",
			AllowedReturnURLs: []string{"https://app.example.com/"},
			FlowStore:         st,
			SessionStore:      st,
			IdentityStore:     st,
			Limiter:           pgstore.NewLimiter(pool, login.Limits{Now: clock}),
			TrustedProxies:    []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, // X-Forwarded-For names the client
			Hasher:            logintest.FastHasher{},
			Now:               clock,
			Logger:            slog.New(slog.DiscardHandler),
		})
		require.NoError(t, err)
		mux.Handle("/", h)
		out = append(out, &instance{name: string(rune('A' + i)), srv: srv, pool: pool, st: st})
	}
	cred, err := login.NewPasswordCredential(context.Background(), logintest.FastHasher{}, clusterIdentifier, clusterPassword)
	require.NoError(t, err)
	id := &session.Identity{
		ID: uuid.New(), SchemaID: "default", State: session.StateActive, StateChangedAt: &now,
		Traits: json.RawMessage(`{"email":"alice@example.com"}`), CreatedAt: now, UpdatedAt: now,
	}
	require.NoError(t, out[0].st.CreateIdentity(context.Background(), id, cred))
	return out, id
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) json(t *testing.T) map[string]any {
	t.Helper()
	var v map[string]any
	require.NoError(t, json.Unmarshal(r.body, &v), "body: %s", r.body)
	return v
}

// messageIDs returns the ids of a flow body's ui.messages.
func (r reply) messageIDs(t *testing.T) []int {
	t.Helper()
	var f flow.Flow
	require.NoError(t, json.Unmarshal(r.body, &f), "body: %s", r.body)
	var ids []int
	for _, m := range f.UI.Messages {
		ids = append(ids, m.ID)
	}
	return ids
}

func (in *instance) do(t *testing.T, c *http.Client, method, path string, body any, header map[string]string) reply {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, in.srv.URL+path, rd)
	require.NoError(t, err)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	if c == nil {
		c = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}

// apiFlow creates an API flow on in and returns its id.
func (in *instance) apiFlow(t *testing.T) string {
	t.Helper()
	r := in.do(t, nil, http.MethodGet, "/self-service/login/api", nil, nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	id, _ := r.json(t)["id"].(string)
	require.NotEmpty(t, id)
	return id
}

func submit(t *testing.T, in *instance, c *http.Client, flowID, password, csrf string) reply {
	t.Helper()
	body := map[string]any{"method": "password", "identifier": clusterIdentifier, "password": password}
	if csrf != "" {
		body["csrf_token"] = csrf
	}
	return in.do(t, c, http.MethodPost, "/self-service/login?flow="+flowID, body, nil)
}

func whoami(t *testing.T, in *instance, token string) reply {
	t.Helper()
	return in.do(t, nil, http.MethodGet, "/sessions/whoami", nil, map[string]string{"X-Session-Token": token})
}

func TestInstancesShareOnlyTheDatabase(t *testing.T) {
	cluster, alice := newCluster(t, 3)
	a, b, c := cluster[0], cluster[1], cluster[2]

	var token string
	t.Run("a flow created on A and submitted on B logs in", func(t *testing.T) {
		id := a.apiFlow(t)
		r := submit(t, b, nil, id, clusterPassword, "")
		require.Equal(t, http.StatusOK, r.status, "%s", r.body)
		token, _ = r.json(t)["session_token"].(string)
		require.NotEmpty(t, token)
	})

	t.Run("the session is valid on C", func(t *testing.T) {
		r := whoami(t, c, token)
		require.Equal(t, http.StatusOK, r.status, "%s", r.body)
		ident, _ := r.json(t)["identity"].(map[string]any)
		assert.Equal(t, alice.ID, ident["id"])
	})

	t.Run("logout on B ends it on A", func(t *testing.T) {
		require.Equal(t, http.StatusOK, whoami(t, a, token).status)
		r := b.do(t, nil, http.MethodDelete, "/self-service/logout/api", map[string]string{"session_token": token}, nil)
		require.Equal(t, http.StatusNoContent, r.status, "%s", r.body)
		r = whoami(t, a, token)
		assert.Equal(t, http.StatusUnauthorized, r.status, "%s", r.body)
	})

	t.Run("a browser flow created on A is submitted on B and its cookie works on C", func(t *testing.T) {
		jar, err := cookiejar.New(nil)
		require.NoError(t, err)
		browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		r := a.do(t, browser, http.MethodGet, "/self-service/login/browser", nil, nil)
		require.Equal(t, http.StatusOK, r.status, "%s", r.body)
		var f flow.Flow
		require.NoError(t, json.Unmarshal(r.body, &f))
		csrf, _ := f.UI.Node("csrf_token").Attributes.Value.(string)
		r = submit(t, b, browser, f.ID, clusterPassword, csrf)
		require.Equal(t, http.StatusOK, r.status, "%s", r.body)
		r = c.do(t, browser, http.MethodGet, "/sessions/whoami", nil, nil)
		assert.Equal(t, http.StatusOK, r.status, "%s", r.body)
	})

	t.Run("50 concurrent submissions of one flow over A, B and C issue one session", func(t *testing.T) {
		before := count(t, a.pool, "authflow_sessions", "identity_id = $1", alice.ID)
		id := c.apiFlow(t)
		const n = 50
		replies := make([]reply, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			in := cluster[i%len(cluster)]
			// Each from its own address: every attempt in flight holds a
			// reservation, which counts as a failure of its address until
			// it is settled, so 50 at once from one address would be
			// throttled after the first five.
			header := map[string]string{"X-Forwarded-For": fmt.Sprintf("198.51.100.%d", i)}
			body := map[string]any{"method": "password", "identifier": clusterIdentifier, "password": clusterPassword}
			wg.Go(func() {
				<-start
				replies[i] = in.do(t, nil, http.MethodPost, "/self-service/login?flow="+id, body, header)
			})
		}
		close(start)
		wg.Wait()
		wins, completed := 0, 0
		for i, r := range replies {
			switch r.status {
			case http.StatusOK:
				wins++
			case http.StatusBadRequest:
				if assert.Contains(t, r.messageIDs(t), flow.IDAlreadyCompleted, "submission %d on %s: %s", i, cluster[i%3].name, r.body) {
					completed++
				}
			default:
				t.Errorf("submission %d on %s: %d %s", i, cluster[i%3].name, r.status, r.body)
			}
		}
		assert.Equal(t, 1, wins, "submissions that logged in")
		assert.Equal(t, n-1, completed, "submissions answered 4010007")
		assert.Equal(t, before+1, count(t, a.pool, "authflow_sessions", "identity_id = $1", alice.ID), "sessions issued")
	})

	t.Run("failures spread over the instances are throttled as if on one", func(t *testing.T) {
		id := a.apiFlow(t)
		for i := range 5 {
			in := cluster[i%len(cluster)]
			r := submit(t, in, nil, id, "wrong password", "")
			require.Equal(t, http.StatusBadRequest, r.status, "failure %d on %s: %s", i+1, in.name, r.body)
			require.Contains(t, r.messageIDs(t), flow.IDInvalidCredentials, "failure %d on %s", i+1, in.name)
		}
		// Each instance saw at most two failures; together they saw five.
		for _, in := range cluster {
			r := submit(t, in, nil, id, clusterPassword, "")
			assert.Equal(t, http.StatusTooManyRequests, r.status, "attempt on %s: %s", in.name, r.body)
			assert.Equal(t, "1", r.header.Get("Retry-After"), "on %s", in.name)
		}
	})
}

// The same flow on a single MemoryLimiter-per-instance deployment would
// have let the sixth attempt through: this is what the shared limiter is
// for. Shown here so the previous test's point stays visible.
func TestPerProcessLimitersWouldNotThrottle(t *testing.T) {
	mems := []*login.MemoryLimiter{login.NewMemoryLimiter(login.Limits{}), login.NewMemoryLimiter(login.Limits{}), login.NewMemoryLimiter(login.Limits{})}
	k := login.LimitKey{Identifier: clusterIdentifier, ClientIP: "127.0.0.1"}
	for i := range 5 {
		d, err := mems[i%3].Reserve(context.Background(), k) // a wrong password: the reservation is the failure
		require.NoError(t, err)
		require.Zero(t, d)
	}
	for i, m := range mems {
		d, err := m.Reserve(context.Background(), k)
		require.NoError(t, err)
		assert.Zero(t, d, fmt.Sprintf("instance %d alone saw too few failures", i))
	}
}
