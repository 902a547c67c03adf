package pgstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/pgstore"
)

// skipMessage is what every test says when it cannot run.
const skipMessage = "set AUTHFLOW_POSTGRES_DSN to run the PostgreSQL tests, e.g. postgres://postgres@127.0.0.1:5432/authflow_test?sslmode=disable"

// testDSN returns the test database's DSN, or skips the test.
func testDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv("AUTHFLOW_POSTGRES_DSN")
	if dsn == "" {
		t.Skip(skipMessage)
	}
	return dsn
}

// freshSchema creates an empty schema in the test database and drops it
// when the test ends.
func freshSchema(t testing.TB) string {
	t.Helper()
	dsn := testDSN(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "authflow_test_" + hex.EncodeToString(b[:])
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "CREATE SCHEMA "+name)
	require.NoError(t, err)
	t.Cleanup(func() {
		conn, err := pgx.Connect(context.Background(), dsn)
		if err != nil {
			t.Errorf("drop schema %s: %v", name, err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(context.Background(), "DROP SCHEMA "+name+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", name, err)
		}
	})
	return name
}

// poolOption changes a pool's configuration.
type poolOption func(*pgxpool.Config)

// newPool returns a pool whose connections work in schema; it is closed
// when the test ends.
func newPool(t testing.TB, schema string, opts ...poolOption) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(testDSN(t))
	require.NoError(t, err)
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	cfg.MaxConns = 8
	for _, o := range opts {
		o(cfg)
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

// newStore returns a Store on a fresh, migrated schema, and its pool.
func newStore(t testing.TB, opts ...poolOption) (*pgstore.Store, *pgxpool.Pool) {
	t.Helper()
	pool := newPool(t, freshSchema(t), opts...)
	st := pgstore.New(pool)
	require.NoError(t, st.Migrate(context.Background()))
	return st, pool
}

// count returns the number of rows of table matching where (SQL, with
// args).
func count(t testing.TB, pool *pgxpool.Pool, table, where string, args ...any) int {
	t.Helper()
	sql := "SELECT count(*) FROM " + table
	if where != "" {
		sql += " WHERE " + where
	}
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

// roundTrips counts the round trips of a pool's connections by label: each
// query (a transaction's BEGIN and COMMIT included), each statement
// preparation, each batch, and each liveness ping on acquire.
type roundTrips struct {
	mu     sync.Mutex
	counts map[string]int
	spent  map[string]time.Duration // time in queries, by label
	onEnd  func(label string)       // called after each query, when set
}

func newRoundTrips() *roundTrips {
	return &roundTrips{counts: map[string]int{}, spent: map[string]time.Duration{}}
}

// install makes rt count the round trips of a pool configured with it.
func (rt *roundTrips) install(cfg *pgxpool.Config) {
	cfg.ConnConfig.Tracer = rt
	cfg.ShouldPing = func(_ context.Context, p pgxpool.ShouldPingParams) bool {
		ping := p.IdleDuration > time.Second // pgxpool's default
		if ping {
			rt.add("ping")
		}
		return ping
	}
}

func (rt *roundTrips) add(label string) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.counts[label]++
}

func labelOf(sql string) string {
	if l := pgstore.QueryLabel(sql); l != "" {
		return l
	}
	sql = strings.ToLower(strings.TrimSpace(sql))
	if sql == "begin" || strings.HasPrefix(sql, "begin ") {
		return "begin"
	}
	if sql == "commit" || sql == "rollback" {
		return sql
	}
	return "other"
}

func (rt *roundTrips) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	label := labelOf(d.SQL)
	rt.add(label)
	return context.WithValue(ctx, queryKey{}, queryStart{label, time.Now()})
}

type queryKey struct{}

type queryStart struct {
	label string
	at    time.Time
}

func (rt *roundTrips) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryEndData) {
	q := ctx.Value(queryKey{}).(queryStart)
	rt.mu.Lock()
	rt.spent[q.label] += time.Since(q.at)
	rt.mu.Unlock()
	if rt.onEnd != nil {
		rt.onEnd(q.label)
	}
}

func (rt *roundTrips) TracePrepareStart(ctx context.Context, _ *pgx.Conn, _ pgx.TracePrepareStartData) context.Context {
	rt.add("prepare")
	return ctx
}

func (rt *roundTrips) TracePrepareEnd(context.Context, *pgx.Conn, pgx.TracePrepareEndData) {}

func (rt *roundTrips) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	rt.add("batch")
	return ctx
}

func (rt *roundTrips) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (rt *roundTrips) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}

// snapshot returns the counts so far and resets them.
func (rt *roundTrips) snapshot() map[string]int {
	c, _ := rt.snapshotTimes()
	return c
}

// snapshotTimes returns the counts and the time spent in queries so far,
// and resets them.
func (rt *roundTrips) snapshotTimes() (map[string]int, map[string]time.Duration) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	c, d := rt.counts, rt.spent
	rt.counts, rt.spent = map[string]int{}, map[string]time.Duration{}
	return c, d
}

// sortedLabels returns the labels of counts, most frequent first.
func sortedLabels(counts map[string]int) []string {
	labels := make([]string, 0, len(counts))
	for l := range counts {
		labels = append(labels, l)
	}
	sort.Slice(labels, func(i, j int) bool {
		if counts[labels[i]] != counts[labels[j]] {
			return counts[labels[i]] > counts[labels[j]]
		}
		return labels[i] < labels[j]
	})
	return labels
}
