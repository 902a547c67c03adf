package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	pqtotp "github.com/pquerna/otp/totp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func testDSN(t *testing.T) string {
	t.Helper()
	dsn := os.Getenv("AUTHFLOW_POSTGRES_DSN")
	if dsn == "" {
		t.Skip("set AUTHFLOW_POSTGRES_DSN to run the PostgreSQL tests, e.g. postgres://postgres@127.0.0.1:5432/authflow_test?sslmode=disable")
	}
	return dsn
}

// freshSchema creates an empty schema, dropped when the test ends, and
// returns dsn with that schema as its search_path.
func freshSchema(t *testing.T, dsn string) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "authflow_demo_" + hex.EncodeToString(b[:])
	conn, err := pgx.Connect(context.Background(), dsn)
	require.NoError(t, err)
	_, err = conn.Exec(context.Background(), "CREATE SCHEMA "+name)
	require.NoError(t, err)
	t.Cleanup(func() {
		_, err := conn.Exec(context.Background(), "DROP SCHEMA "+name+" CASCADE")
		assert.NoError(t, err)
		conn.Close(context.Background())
	})
	if strings.Contains(dsn, "://") {
		sep := "?"
		if strings.Contains(dsn, "?") {
			sep = "&"
		}
		return dsn + sep + "search_path=" + name
	}
	return dsn + " search_path=" + name
}

// syncBuffer is an io.Writer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// start runs the server with args until the test ends and returns its base
// URL once it printed "listening on".
func start(t *testing.T, args ...string) (string, func()) {
	t.Helper()
	addr := freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"-addr", addr, "-hasher", "bcrypt", "-bcrypt-cost", "4"}, args...), out, io.Discard, slog.New(slog.DiscardHandler))
	}()
	stop := func() {
		cancel()
		select {
		case err := <-done:
			assert.NoError(t, err, "run")
		case <-time.After(10 * time.Second):
			t.Error("the server did not stop")
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "listening on") {
		select {
		case err := <-done:
			cancel()
			t.Fatalf("the server stopped before listening: %v (stdout %q)", err, out.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			t.Fatalf("no \"listening on\" in 30 s; stdout %q", out.String())
		}
	}
	assert.Equal(t, "listening on http://"+addr+"\n", out.String())
	return "http://" + addr, stop
}

func countRows(t *testing.T, dsn, table string) int {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	var n int
	require.NoError(t, conn.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n))
	return n
}

// loginAPI logs the demo identity in and returns the session token.
func loginAPI(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/self-service/login/api")
	require.NoError(t, err)
	var f struct{ ID string }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&f))
	resp.Body.Close()
	body := `{"method":"password","identifier":"demo@example.com","password":"correct horse battery staple"}`
	resp, err = http.Post(base+"/self-service/login?flow="+f.ID, "application/json", strings.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	var out struct {
		SessionToken string `json:"session_token"`
	}
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	require.NotEmpty(t, out.SessionToken)
	return out.SessionToken
}

func whoami(t *testing.T, base, token string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+"/sessions/whoami", nil)
	require.NoError(t, err)
	req.Header.Set("X-Session-Token", token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

func TestServerOnPostgres(t *testing.T) {
	dsn := freshSchema(t, testDSN(t))

	base, stop := start(t, "-postgres", dsn)
	assert.Equal(t, 1, countRows(t, dsn, "authflow_identities"), "the demo identity is seeded")
	token := loginAPI(t, base)
	assert.Equal(t, http.StatusOK, whoami(t, base, token))
	assert.Equal(t, 1, countRows(t, dsn, "authflow_sessions"), "the session is in the database")
	stop()

	// A second start migrates nothing new, seeds nothing new, and the
	// session issued by the first one is still valid.
	base, stop = start(t, "-postgres", dsn)
	defer stop()
	assert.Equal(t, 1, countRows(t, dsn, "authflow_identities"), "seeded only when absent")
	migrations, err := os.ReadDir("../../migrations")
	require.NoError(t, err)
	assert.Equal(t, len(migrations), countRows(t, dsn, "authflow_schema_migrations"), "each migration applied once")
	assert.Equal(t, http.StatusOK, whoami(t, base, token), "sessions survive a restart")
}

func TestServerFlags(t *testing.T) {
	err := run(context.Background(), nil, io.Discard, io.Discard, slog.New(slog.DiscardHandler))
	var usage usageError
	require.ErrorAs(t, err, &usage)
	assert.ErrorContains(t, err, "-postgres is required")

	err = run(context.Background(), []string{"-postgres", "postgres://x", "-hasher", "md5"}, io.Discard, io.Discard, slog.New(slog.DiscardHandler))
	require.ErrorAs(t, err, &usage)
	assert.ErrorContains(t, err, "-hasher must be argon2id or bcrypt")

	err = run(context.Background(), []string{"-postgres", "postgres://x", "-required-aal", "aal3"}, io.Discard, io.Discard, slog.New(slog.DiscardHandler))
	require.ErrorAs(t, err, &usage)
	assert.ErrorContains(t, err, "-required-aal must be aal1 or highest_available")

	var help bytes.Buffer
	err = run(context.Background(), []string{"-h"}, io.Discard, &help, slog.New(slog.DiscardHandler))
	assert.ErrorIs(t, err, flag.ErrHelp)
	for _, name := range []string{"-postgres", "-addr", "-public-url", "-identifier", "-password", "-throttle-failures",
		"-totp-secret", "-lookup-codes", "-required-aal"} {
		assert.Contains(t, help.String(), name, "the usage lists %s", name)
	}
}

// stepUp submits a second factor (method and its field's value) in a new
// API step-up flow of the session with token, and returns the status and
// the answer.
func stepUp(t *testing.T, base, token, method, field, value string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+"/self-service/login/api?aal=aal2", nil)
	require.NoError(t, err)
	req.Header.Set("X-Session-Token", token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	var f struct{ ID string }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&f))
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	body, err := json.Marshal(map[string]string{"method": method, field: value})
	require.NoError(t, err)
	req, err = http.NewRequest(http.MethodPost, base+"/self-service/login?flow="+f.ID, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Session-Token", token)
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// TestServerSeedsSecondFactorsOnce: -totp-secret and -lookup-codes seed
// the demo identity's second factors in the database once; a restart with
// other values changes nothing, so a used backup code stays used and the
// first secret stays the identity's.
func TestServerSeedsSecondFactorsOnce(t *testing.T) {
	dsn := freshSchema(t, testDSN(t))
	const secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"

	base, stop := start(t, "-postgres", dsn, "-totp-secret", secret, "-lookup-codes", "code0001,code0002")
	token := loginAPI(t, base)
	assert.Equal(t, http.StatusForbidden, whoami(t, base, token), "the aal1 session needs its second factor")
	status, body := stepUp(t, base, token, "lookup_secret", "lookup_secret", "code0001")
	require.Equal(t, http.StatusOK, status, body)
	assert.Equal(t, 3, countRows(t, dsn, "authflow_credentials"), "password, totp and lookup_secret")
	stop()

	base, stop = start(t, "-postgres", dsn, "-totp-secret", "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", "-lookup-codes", "code0001,code0003")
	defer stop()
	assert.Equal(t, 3, countRows(t, dsn, "authflow_credentials"), "seeded only when absent")
	status, body = stepUp(t, base, loginAPI(t, base), "lookup_secret", "lookup_secret", "code0001")
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Contains(t, body, `"id":4000012`, "a used code stays used across the restart")
	status, body = stepUp(t, base, loginAPI(t, base), "lookup_secret", "lookup_secret", "code0003")
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Contains(t, body, `"id":4000016`, "the second start's codes were not seeded")
	code, err := pqtotp.GenerateCode(secret, time.Now())
	require.NoError(t, err)
	status, body = stepUp(t, base, loginAPI(t, base), "totp", "totp_code", code)
	assert.Equal(t, http.StatusOK, status, "the first start's TOTP secret is the identity's: %s", body)
}
