package pgstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/internal/uuid"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/login/logintest"
	"github.com/authflow/authflow/pgstore"
	"github.com/authflow/authflow/session"
)

// benchUsers is how many identities the benchmark logs in, in turn, so that
// parallel logins do not all queue on one identity's limiter rows.
const benchUsers = 64

// newBenchHandler returns a handler on PostgreSQL (stores and limiter)
// with the fast hasher and benchUsers identities, driven in process; rt
// counts its round trips.
func newBenchHandler(b *testing.B) (*login.Handler, *roundTrips) {
	b.Helper()
	rt := newRoundTrips()
	st, pool := newStore(b, rt.install)
	ctx := context.Background()
	for i := range benchUsers {
		cred, err := login.NewPasswordCredential(ctx, logintest.FastHasher{}, fmt.Sprintf("user%d@example.com", i), "correct horse battery staple")
		if err != nil {
			b.Fatal(err)
		}
		if err := st.CreateIdentity(ctx, &session.Identity{
			ID: uuid.New(), SchemaID: "default", State: session.StateActive,
			Traits: json.RawMessage(fmt.Sprintf(`{"email":"user%d@example.com"}`, i)),
		}, cred); err != nil {
			b.Fatal(err)
		}
	}
	h, err := login.New(login.Config{
		PublicURL:        "https://auth.example.com",
		LoginUIURL:       "https://ui.example.com/login",
		ErrorUIURL:       "https://ui.example.com/error",
		DefaultReturnURL: "https://app.example.com/welcome",
		FlowStore:        st,
		SessionStore:     st,
		IdentityStore:    st,
		Limiter:          pgstore.NewLimiter(pool, login.Limits{}),
		Hasher:           logintest.FastHasher{},
		Logger:           slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatal(err)
	}
	return h, rt
}

// loginAPI runs one native login of user i: create an API flow, submit the
// password, receive the session token.
func loginAPI(b *testing.B, h http.Handler, i int) {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "https://auth.example.com/self-service/login/api", nil))
	if w.Code != http.StatusOK {
		b.Fatalf("create: %d %s", w.Code, w.Body)
	}
	var f struct{ ID string }
	if err := json.Unmarshal(w.Body.Bytes(), &f); err != nil {
		b.Fatal(err)
	}
	body := fmt.Sprintf(`{"method":"password","identifier":"user%d@example.com","password":"correct horse battery staple"}`, i%benchUsers)
	req := httptest.NewRequest(http.MethodPost, "https://auth.example.com/self-service/login?flow="+f.ID, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	w = httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"session_token"`) {
		b.Fatalf("submit: %d %s", w.Code, w.Body)
	}
}

// BenchmarkLoginAPI measures full native logins (create + submit) against
// PostgreSQL: the stores and the limiter in the database, the hash of
// negligible cost. It reports logins per second and the database round
// trips per login, with their breakdown by statement (each query, a
// transaction's BEGIN and COMMIT included; statement preparations; pings).
// "serial" is one client; "parallel" is 8 clients per CPU.
func BenchmarkLoginAPI(b *testing.B) {
	testDSN(b)
	b.Run("serial", func(b *testing.B) {
		h, rt := newBenchHandler(b)
		for i := range 2 * benchUsers { // warm up: statements prepared, pool filled
			loginAPI(b, h, i)
		}
		rt.snapshot()
		n := 0
		for b.Loop() {
			loginAPI(b, h, n)
			n++
		}
		reportLogins(b, n, rt)
	})
	b.Run("parallel", func(b *testing.B) {
		h, rt := newBenchHandler(b)
		for i := range 2 * benchUsers {
			loginAPI(b, h, i)
		}
		rt.snapshot()
		var n atomic.Int64
		b.SetParallelism(8)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				loginAPI(b, h, int(n.Add(1)))
			}
		})
		b.StopTimer()
		reportLogins(b, int(n.Load()), rt)
	})
}

func reportLogins(b *testing.B, n int, rt *roundTrips) {
	b.Helper()
	counts, spent := rt.snapshotTimes()
	if n == 0 {
		return
	}
	elapsed := b.Elapsed()
	total := 0
	for _, c := range counts {
		total += c
	}
	b.ReportMetric(float64(n)/elapsed.Seconds(), "logins/s")
	b.ReportMetric(float64(total)/float64(n), "round-trips/login")
	var table strings.Builder
	fmt.Fprintf(&table, "%d logins in %s (%.0f logins/s, %s per login): %.2f round trips per login\n",
		n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), (elapsed / time.Duration(n)).Round(time.Microsecond), float64(total)/float64(n))
	fmt.Fprintf(&table, "  %-32s %6s %14s\n", "statement", "count", "mean latency")
	for _, label := range sortedLabels(counts) {
		per := float64(counts[label]) / float64(n)
		mean := ""
		if d := spent[label]; d > 0 {
			mean = (d / time.Duration(counts[label])).Round(time.Microsecond).String()
		}
		fmt.Fprintf(&table, "  %-32s %6.2f %14s\n", label, per, mean)
		b.ReportMetric(per, "rt-"+label+"/login")
	}
	if n > 1 { // RunParallel first probes with one iteration
		b.Log(table.String())
	}
}

// BenchmarkRoundTrip is the floor under BenchmarkLoginAPI's numbers: one
// trivial query (SELECT 1) through the same kind of pool.
func BenchmarkRoundTrip(b *testing.B) {
	_, pool := newStore(b)
	ctx := context.Background()
	var one int
	for b.Loop() {
		if err := pool.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFlowRead reads back a flow of the password login's shape: by
// the instance that wrote it (its copy matches: the record is neither sent
// nor decoded) and by another instance (a Store without the copy).
func BenchmarkFlowRead(b *testing.B) {
	ctx := context.Background()
	st, pool := newStore(b)
	rec := testFlow(time.Now().UTC())
	rec.Flow.UI.Nodes = append(rec.Flow.UI.Nodes,
		flow.NewInput(flow.GroupDefault, "csrf_token", "hidden", "", true),
		flow.NewInput(flow.GroupPassword, "password", "password", nil, true),
		flow.NewInput(flow.GroupPassword, "method", "submit", "password", false))
	if err := st.CreateFlow(ctx, rec); err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name  string
		store func() *pgstore.Store
	}{
		{"writer", func() *pgstore.Store { return st }},
		{"other-instance", func() *pgstore.Store { return pgstore.New(pool) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bc.store().Flow(ctx, rec.Flow.ID); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
