package pgstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/internal/uuid"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/login/logintest"
	"github.com/authflow/authflow/login/totp"
	"github.com/authflow/authflow/pgstore"
	"github.com/authflow/authflow/session"
)

// rtHandler is a handler on PostgreSQL whose round trips rt counts: the
// stores, the limiter when limited, and the totp method (so that a
// session check asks whether the identity has a second factor), with two
// identities, one of them with a TOTP credential.
func rtHandler(t testing.TB, limited bool) (*login.Handler, *roundTrips) {
	t.Helper()
	rt := newRoundTrips()
	st, pool := newStore(t, rt.install)
	ctx := context.Background()
	for i, email := range []string{"plain@example.com", "second@example.com"} {
		cred, err := login.NewPasswordCredential(ctx, logintest.FastHasher{}, email, "correct horse battery staple")
		require.NoError(t, err)
		id := &session.Identity{ID: uuid.New(), SchemaID: "default", State: session.StateActive, Traits: json.RawMessage(`{"email":"` + email + `"}`)}
		creds := []session.Credential{cred}
		if i == 1 {
			tc, err := totp.ImportKratos(id.ID, json.RawMessage(`{"totp_url":"otpauth://totp/Example:second?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Example"}`))
			require.NoError(t, err)
			creds = append(creds, tc)
		}
		require.NoError(t, st.CreateIdentity(ctx, id, creds...))
	}
	tm, err := totp.New(totp.Config{Issuer: "Example"})
	require.NoError(t, err)
	cfg := login.Config{
		PublicURL:         "https://auth.example.com",
		LoginUIURL:        "https://ui.example.com/login",
		ErrorUIURL:        "https://ui.example.com/error",
		DefaultReturnURL:  "https://app.example.com/welcome",
		FlowStore:         st,
		SessionStore:      st,
		IdentityStore:     st,
		Hasher:            logintest.FastHasher{},
		Methods:           []login.Method{tm},
		DisableThrottling: !limited,
		Logger:            slog.New(slog.DiscardHandler),
	}
	if limited {
		cfg.Limiter = pgstore.NewLimiter(pool, login.Limits{})
	}
	h, err := login.New(cfg)
	require.NoError(t, err)
	return h, rt
}

// rtLogin logs email in through an API flow and returns the token.
func rtLogin(t testing.TB, h http.Handler, email string) string {
	t.Helper()
	c := logintest.Client{Handler: h}
	token, err := c.SignInAPI(context.Background(), logintest.Password(email, "correct horse battery staple"))
	require.NoError(t, err)
	return token
}

// rtPerOp runs op n times after a warm-up and returns the round trips per
// run by statement, statement preparations and pings left out.
func rtPerOp(rt *roundTrips, n int, op func(i int)) (map[string]float64, float64) {
	for i := range 8 { // statements prepared on the connections in use
		op(i)
	}
	rt.snapshot()
	for i := range n {
		op(i)
	}
	per := map[string]float64{}
	total := 0.0
	for label, c := range without(rt.snapshot(), "prepare", "ping") {
		per[label] = float64(c) / float64(n)
		total += per[label]
	}
	return per, total
}

// An API login (create + submit) takes three round trips with throttling
// off, five with the PostgreSQL limiter (issue 14 allows four and six):
// the flow written, the flow read with the identity and its credentials,
// and the completion with the session in one statement; the limiter's
// reservation and success.
func TestRoundTripsPerLogin(t *testing.T) {
	for _, tc := range []struct {
		limited bool
		want    float64
	}{{false, 3}, {true, 5}} {
		t.Run(fmt.Sprintf("limiter=%v", tc.limited), func(t *testing.T) {
			h, rt := rtHandler(t, tc.limited)
			per, total := rtPerOp(rt, 20, func(int) { rtLogin(t, h, "plain@example.com") })
			assert.LessOrEqual(t, total, tc.want, "round trips per login: %v", per)
			for _, label := range []string{"CreateFlow", "FlowWithIdentityCredentials", "CompleteFlowWithSession"} {
				assert.Equal(t, 1.0, per[label], "%s per login: %v", label, per)
			}
		})
	}
}

// A session check (whoami, RequireSession) is one round trip: the session
// with its identity and credentials, which also tell whether an aal1
// session still needs its second factor.
func TestSessionCheckIsOneRoundTrip(t *testing.T) {
	h, rt := rtHandler(t, false)
	protected := h.RequireSession(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	for _, tc := range []struct {
		email  string
		status int // an aal1 session of an identity with TOTP needs the step-up
	}{{"plain@example.com", http.StatusOK}, {"second@example.com", http.StatusForbidden}} {
		token := rtLogin(t, h, tc.email)
		whoami := func(int) {
			req := httptest.NewRequest(http.MethodGet, "/sessions/whoami", nil)
			req.Header.Set("X-Session-Token", token)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			require.Equal(t, tc.status, w.Code, "%s", w.Body)
		}
		per, total := rtPerOp(rt, 10, whoami)
		assert.Equal(t, 1.0, total, "whoami of %s: %v", tc.email, per)
		assert.Equal(t, 1.0, per["SessionWithIdentity"], "%v", per)

		require := func(int) {
			req := httptest.NewRequest(http.MethodGet, "/account", nil)
			req.Header.Set("X-Session-Token", token)
			req.Header.Set("Accept", "application/json")
			w := httptest.NewRecorder()
			protected.ServeHTTP(w, req)
			want := http.StatusNoContent
			if tc.status != http.StatusOK {
				want = tc.status
			}
			if w.Code != want {
				t.Fatalf("RequireSession for %s: %d %s", tc.email, w.Code, w.Body)
			}
		}
		per, total = rtPerOp(rt, 10, require)
		assert.Equal(t, 1.0, total, "RequireSession of %s: %v", tc.email, per)
	}
}

// BenchmarkWhoami measures session checks on PostgreSQL (an aal1 session
// of an identity with a second factor configured, the costliest check)
// and reports their round trips.
func BenchmarkWhoami(b *testing.B) {
	h, rt := rtHandler(b, false)
	token := rtLogin(b, h, "plain@example.com")
	check := func() {
		req := httptest.NewRequest(http.MethodGet, "/sessions/whoami", nil)
		req.Header.Set("X-Session-Token", token)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"active":true`) {
			b.Fatalf("whoami: %d %s", w.Code, w.Body)
		}
	}
	for range 8 {
		check()
	}
	rt.snapshot()
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		check()
		n++
	}
	total := 0
	for _, c := range without(rt.snapshot(), "prepare", "ping") {
		total += c
	}
	b.ReportMetric(float64(total)/float64(n), "round-trips/check")
}
