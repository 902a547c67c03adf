package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/login/logintest"
	"github.com/authflow/authflow/session"
)

const (
	testIdentifier = "alice@example.com"
	testPassword   = "correct horse battery staple"
)

// newLoginServer serves the real login handler on in-memory stores, with
// one identity (testIdentifier, testPassword) and a hasher of negligible
// cost, over HTTP; wrap, if not nil, wraps the handler.
func newLoginServer(t testing.TB, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	ids := session.NewMemoryIdentityStore()
	cred, err := login.NewPasswordCredential(context.Background(), logintest.FastHasher{}, testIdentifier, testPassword)
	require.NoError(t, err)
	require.NoError(t, ids.CreateIdentity(context.Background(), &session.Identity{
		ID: "8b59d370-e415-441a-9116-b8d780619e54", SchemaID: "default", State: session.StateActive,
		Traits: json.RawMessage(`{"email":"alice@example.com"}`),
	}, cred))
	srv := httptest.NewUnstartedServer(nil)
	base := "http://" + srv.Listener.Addr().String()
	h, err := login.New(login.Config{
		PublicURL:         base,
		LoginUIURL:        base + "/login",
		ErrorUIURL:        base + "/error",
		DefaultReturnURL:  base + "/welcome",
		IdentityStore:     ids,
		Hasher:            logintest.FastHasher{},
		DisableThrottling: true,
		Logger:            slog.New(slog.DiscardHandler),
	})
	require.NoError(t, err)
	srv.Config.Handler = h
	if wrap != nil {
		srv.Config.Handler = wrap(h)
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL
}

// testConfig is a run of about 1.3 s against base that also reads the test
// process's CPU.
func testConfig(base string, mode Mode) Config {
	return Config{
		BaseURL:       base,
		Mode:          mode,
		Clients:       4,
		Warmup:        300 * time.Millisecond,
		Duration:      time.Second,
		Identifier:    testIdentifier,
		Password:      testPassword,
		SessionCookie: login.DefaultSessionCookieName,
		CPU: []CPUSource{{Name: "test", Read: func() (time.Duration, error) {
			return processCPU(os.Getpid())
		}}},
	}
}

// haveProc reports whether the CPU readers work here.
func haveProc() bool {
	_, err := processCPU(os.Getpid())
	return err == nil
}

func TestRunModes(t *testing.T) {
	t.Parallel()
	for _, mode := range []Mode{ModeAPI, ModeBrowser, ModeWhoami} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(newLoginServer(t, nil), mode)
			var progress []Progress
			cfg.Progress = func(p Progress) { progress = append(progress, p) }

			r, err := Run(context.Background(), cfg)
			require.NoError(t, err)
			assert.Positive(t, r.Ops)
			assert.Zero(t, r.Errors)
			assert.Empty(t, r.ErrorKinds)
			assert.Zero(t, r.ErrorRate())
			assert.Positive(t, r.P50)
			assert.LessOrEqual(t, r.P50, r.P99)
			assert.GreaterOrEqual(t, r.Elapsed, cfg.Duration)
			assert.InDelta(t, float64(r.Ops)/r.Elapsed.Seconds(), r.PerSecond(), 1e-9)
			require.NotEmpty(t, progress, "a progress report every second")
			last := progress[len(progress)-1]
			assert.True(t, last.Measuring, "the last report is the measurement's end")
			assert.LessOrEqual(t, last.Ops, r.Ops, "operations that completed in time may be counted after the end")
			assert.Positive(t, last.Ops)
			require.Len(t, r.CPU, 1)
			if haveProc() {
				assert.NoError(t, r.CPU[0].Err)
				assert.Positive(t, r.CPU[0].Time, "the test process worked during the measurement")
			} else {
				assert.ErrorIs(t, r.CPU[0].Err, errNoProc)
			}
		})
	}
}

func TestRunCountsErrors(t *testing.T) {
	t.Parallel()
	unavailable := func(http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "maintenance", http.StatusServiceUnavailable)
		})
	}
	tests := []struct {
		name     string
		mode     Mode
		wrap     func(http.Handler) http.Handler
		password string
		kind     string
	}{
		{"server unavailable", ModeAPI, unavailable, testPassword, "GET /self-service/login/api: status 503"},
		{"wrong password, api", ModeAPI, nil, "wrong", "POST /self-service/login: status 400"},
		{"wrong password, browser", ModeBrowser, nil, "wrong", "POST /self-service/login (form): no session cookie authflow_session"},
		{"whoami without a session", ModeWhoami, nil, "wrong", "sign in: POST /self-service/login: status 400"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(newLoginServer(t, tt.wrap), tt.mode)
			cfg.Password = tt.password
			cfg.Warmup, cfg.Duration = 0, 500*time.Millisecond

			r, err := Run(context.Background(), cfg)
			require.NoError(t, err)
			assert.Zero(t, r.Ops)
			assert.Positive(t, r.Errors)
			assert.Equal(t, 1.0, r.ErrorRate())
			require.Len(t, r.ErrorKinds, 1, "the errors differ only in details")
			assert.Equal(t, tt.kind, r.ErrorKinds[0].Kind)
			assert.Equal(t, r.Errors, r.ErrorKinds[0].Count)
			assert.True(t, strings.HasPrefix(r.ErrorKinds[0].Example, tt.kind), r.ErrorKinds[0].Example)
		})
	}
}

func TestRunConfig(t *testing.T) {
	base := Config{BaseURL: "http://127.0.0.1:1", Mode: ModeAPI, Clients: 1, Duration: time.Second}
	for name, change := range map[string]func(*Config){
		"mode":     func(c *Config) { c.Mode = "graphql" },
		"clients":  func(c *Config) { c.Clients = 0 },
		"duration": func(c *Config) { c.Duration = 0 },
		"base URL": func(c *Config) { c.BaseURL = "127.0.0.1:4433" },
	} {
		cfg := base
		change(&cfg)
		_, err := Run(context.Background(), cfg)
		assert.Error(t, err, name)
	}
}

// TestRunStopsWithContext: a run cancelled when the measurement starts
// returns at once with the context's error.
func TestRunStopsWithContext(t *testing.T) {
	t.Parallel()
	cfg := testConfig(newLoginServer(t, nil), ModeAPI)
	cfg.Warmup, cfg.Duration = 0, time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	cfg.CPU = []CPUSource{{Name: "cancel", Read: func() (time.Duration, error) { cancel(); return 0, nil }}}
	_, err := Run(ctx, cfg)
	assert.ErrorIs(t, err, context.Canceled)
}

// TestCommand runs loadbench against a server that fails one whoami in
// five: it reports them and exits with an error.
func TestCommand(t *testing.T) {
	t.Parallel()
	var n atomic.Int64
	flaky := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/sessions/whoami" && n.Add(1)%5 == 0 {
				http.Error(w, "flaky", http.StatusInternalServerError)
				return
			}
			h.ServeHTTP(w, r)
		})
	}
	t.Run("ok", func(t *testing.T) {
		t.Parallel()
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), []string{"-target", newLoginServer(t, nil), "-mode", "browser", "-clients", "2",
			"-warmup", "0s", "-duration", "1s", "-identifier", testIdentifier}, &stdout, &stderr)
		require.NoError(t, err, stderr.String())
		out := stdout.String()
		for _, want := range []string{"mode:      browser, store memory, 2 clients", "logins:", "latency:   p50 ", "errors:    0 (0.00%)", "machine:   "} {
			assert.Contains(t, out, want)
		}
		if haveProc() {
			assert.Contains(t, out, "cpu:       loadbench: ")
			assert.Contains(t, out, " ms per login")
		}
		assert.Contains(t, stderr.String(), "measuring", "a progress line")
	})
	t.Run("errors", func(t *testing.T) {
		t.Parallel()
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), []string{"-target", newLoginServer(t, flaky), "-mode", "whoami", "-clients", "2",
			"-warmup", "0s", "-duration", "1s", "-identifier", testIdentifier}, &stdout, &stderr)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "of the operations failed (more than 1%)")
		assert.Contains(t, stdout.String(), "whoamis:")
		assert.Contains(t, stdout.String(), "× GET /sessions/whoami: status 500")
	})
}

func TestFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-store", "mysql"},
		{"-mode", "graphql"},
		{"-clients", "0"},
		{"-duration", "0s"},
		{"-server-pid", "42"},
		{"-compare", "-1"},
		{"-compare", "2", "-target", "http://127.0.0.1:4433"},
		{"extra"},
	} {
		err := run(context.Background(), args, &bytes.Buffer{}, &bytes.Buffer{})
		var usage usageError
		assert.True(t, errors.As(err, &usage), "%q: %v", args, err)
	}
	var help bytes.Buffer
	assert.ErrorIs(t, run(context.Background(), []string{"-h"}, &bytes.Buffer{}, &help), flag.ErrHelp)
	for _, name := range []string{"-store", "-mode", "-clients", "-duration", "-warmup", "-bcrypt-cost", "-throttle", "-dsn", "-target", "-server-pid", "-compare"} {
		assert.Contains(t, help.String(), name)
	}
}

func TestWithDatabase(t *testing.T) {
	got, err := withDatabase("postgres://postgres@127.0.0.1:5432/test?sslmode=disable", "loadbench_1")
	require.NoError(t, err)
	assert.Equal(t, "postgres://postgres@127.0.0.1:5432/loadbench_1?sslmode=disable", got)
	got, err = withDatabase("host=127.0.0.1 dbname=test", "loadbench_1")
	require.NoError(t, err)
	assert.Equal(t, "host=127.0.0.1 dbname=test dbname=loadbench_1", got)
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 200; i++ {
		d = append(d, time.Duration(i))
	}
	assert.Equal(t, time.Duration(100), percentile(d, 50))
	assert.Equal(t, time.Duration(198), percentile(d, 99))
	assert.Equal(t, time.Duration(7), percentile([]time.Duration{7}, 99))
	assert.Zero(t, percentile(nil, 50))
}

func TestMedian(t *testing.T) {
	assert.Equal(t, 0.6, median([]float64{0.7, 0.6, 0.5}))
	assert.InDelta(t, 0.65, median([]float64{0.7, 0.5, 0.8, 0.6}), 1e-9)
	assert.Equal(t, 0.6, median([]float64{0.6}))
}

func TestReportComparison(t *testing.T) {
	res := func(ops int64) *Result { return &Result{Ops: ops, Elapsed: 10 * time.Second} }
	var out bytes.Buffer
	o := options{mode: "api", clients: 8, duration: 10 * time.Second, warmup: time.Second}
	reportComparison(&out, o, []round{{res(10000), res(6000)}, {res(12000), res(9000)}, {res(11000), res(7700)}})
	assert.Equal(t, `comparison: mode api, 8 clients, 10s each after 1s warm-up, 3 rounds
round   memory logins/s postgres logins/s   share
1                1000.0            600.0   60.0%
2                1200.0            900.0   75.0%
3                1100.0            770.0   70.0%
median share: 70.0%
`, out.String())
}

// TestCompare builds and runs both example servers for a round of a
// second each; it needs PostgreSQL.
func TestCompare(t *testing.T) {
	dsn := os.Getenv("AUTHFLOW_POSTGRES_DSN")
	if dsn == "" {
		t.Skip("AUTHFLOW_POSTGRES_DSN is not set; skipping the comparison of the two example servers")
	}
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"-compare", "1", "-clients", "2", "-warmup", "0s", "-duration", "1s", "-dsn", dsn}, &stdout, &stderr)
	require.NoError(t, err, stderr.String())
	out := stdout.String()
	assert.Contains(t, out, "mode:      api, store memory, 2 clients")
	assert.Contains(t, out, "mode:      api, store postgres, 2 clients")
	assert.Contains(t, out, "comparison: mode api, 2 clients, 1s each after 0s warm-up, 1 rounds")
	assert.Regexp(t, `(?m)^median share: [0-9]+\.[0-9]%$`, out)
	assert.Contains(t, stderr.String(), "round 1 of 1: postgres")
}
