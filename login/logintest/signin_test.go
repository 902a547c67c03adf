package logintest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	pqtotp "github.com/pquerna/otp/totp"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/login/logintest"
	"github.com/authflow/authflow/login/totp"
	"github.com/authflow/authflow/session"
)

// host is a host application: the login handler under /auth and a route
// that needs a session.
func host(t testing.TB, configure func(*login.Config)) (http.Handler, *login.Handler) {
	ids := session.NewMemoryIdentityStore()
	jane := &session.Identity{ID: "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9", State: session.StateActive, Traits: json.RawMessage(`{"email":"jane@example.com"}`)}
	pw, err := login.NewPasswordCredential(context.Background(), logintest.FastHasher{}, "jane@example.com", "correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	if err := ids.CreateIdentity(context.Background(), jane, pw); err != nil {
		t.Fatal(err)
	}
	cfg := login.Config{
		PublicURL:        "https://app.example.com/auth",
		LoginUIURL:       "https://app.example.com/login",
		ErrorUIURL:       "https://app.example.com/error",
		DefaultReturnURL: "https://app.example.com/",
		IdentityStore:    ids,
		Hasher:           logintest.FastHasher{},
		Logger:           slog.New(slog.DiscardHandler),
	}
	if configure != nil {
		configure(&cfg)
	}
	h, err := login.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/auth/", http.StripPrefix("/auth", h))
	mux.Handle("/account", h.RequireSession(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, _ := session.FromContext(r.Context())
		fmt.Fprintf(w, "hello %s", s.Identity.ID)
	})))
	return mux, h
}

func TestSignInAPIAndBrowser(t *testing.T) {
	mux, _ := host(t, nil)
	c := logintest.Client{Handler: mux, Prefix: "/auth"}

	token, err := c.SignInAPI(t.Context(), logintest.Password("jane@example.com", "correct horse battery staple"))
	require.NoError(t, err)
	req := httptest.NewRequest(http.MethodGet, "/account", nil)
	req.Header.Set("X-Session-Token", token)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, "hello 0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9", rec.Body.String())

	cookies, err := c.SignInBrowser(t.Context(), logintest.Password("jane@example.com", "correct horse battery staple"))
	require.NoError(t, err)
	var names []string
	for _, ck := range cookies {
		names = append(names, ck.Name)
	}
	assert.ElementsMatch(t, []string{"__Host-" + login.DefaultCSRFCookieName, "__Host-" + login.DefaultSessionCookieName}, names, "https: prefixed cookies")
	req = httptest.NewRequest(http.MethodGet, "/account", nil)
	for _, ck := range cookies {
		req.AddCookie(ck)
	}
	rec = httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	assert.Equal(t, http.StatusOK, rec.Code)

	// A refused login is an error showing the answer.
	_, err = c.SignInAPI(t.Context(), logintest.Password("jane@example.com", "wrong"))
	assert.ErrorContains(t, err, "400")
	assert.ErrorContains(t, err, "4000006")
	_, err = c.SignInBrowser(t.Context(), logintest.Password("jane@example.com", "wrong"))
	assert.ErrorContains(t, err, "4000006")

	// A wrong prefix shows what the handler answered.
	_, err = (&logintest.Client{Handler: mux}).SignInAPI(t.Context(), logintest.Password("jane@example.com", "x"))
	assert.ErrorContains(t, err, "create the flow: 404")
}

// A second factor: the sign-in gives an aal1 session that the route
// refuses until the step-up.
func TestStepUp(t *testing.T) {
	const secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
	var (
		mu  sync.Mutex
		now = time.Date(2026, 12, 3, 16, 0, 10, 0, time.UTC)
	)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	m, err := totp.New(totp.Config{Issuer: "Example", Now: clock})
	require.NoError(t, err)
	mux, _ := host(t, func(c *login.Config) {
		c.Methods = []login.Method{m}
		c.Now = clock
		cred, err := totp.ImportKratos("0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9", json.RawMessage(`{"totp_url":"otpauth://totp/Example:jane?secret=`+secret+`&issuer=Example"}`))
		require.NoError(t, err)
		require.NoError(t, c.IdentityStore.UpdateCredential(t.Context(), "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9", &cred))
	})
	c := logintest.Client{Handler: mux, Prefix: "/auth"}
	account := func(header http.Header, cookies []*http.Cookie) int {
		req := httptest.NewRequest(http.MethodGet, "/account", nil)
		req.Header = header
		for _, ck := range cookies {
			req.AddCookie(ck)
		}
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		return rec.Code
	}
	code := func() string {
		c, err := pqtotp.GenerateCode(secret, clock())
		require.NoError(t, err)
		return c
	}

	token, err := c.SignInAPI(t.Context(), logintest.Password("jane@example.com", "correct horse battery staple"))
	require.NoError(t, err)
	assert.Equal(t, http.StatusForbidden, account(http.Header{"X-Session-Token": {token}, "Accept": {"application/json"}}, nil), "aal1 is not enough")
	token, err = c.StepUpAPI(t.Context(), token, logintest.Fields{"method": "totp", "totp_code": code()})
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, account(http.Header{"X-Session-Token": {token}}, nil))

	cookies, err := c.SignInBrowser(t.Context(), logintest.Password("jane@example.com", "correct horse battery staple"))
	require.NoError(t, err)
	assert.Equal(t, http.StatusForbidden, account(http.Header{"Accept": {"application/json"}}, cookies))
	mu.Lock()
	now = now.Add(30 * time.Second) // each code logs in once: the next step's
	mu.Unlock()
	cookies, err = c.StepUpBrowser(t.Context(), cookies, logintest.Fields{"method": "totp", "totp_code": code()})
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, account(http.Header{}, cookies))
}

// A host tests a route that needs a session: one call signs a user in
// through the real handler, and the request carries the token.
func ExampleClient_SignInAPI() {
	// The host: identities, the login handler under /auth, and a route.
	ids := session.NewMemoryIdentityStore()
	pw, _ := login.NewPasswordCredential(context.Background(), logintest.FastHasher{}, "jane@example.com", "correct horse battery staple")
	jane := &session.Identity{ID: "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9", State: session.StateActive}
	if err := ids.CreateIdentity(context.Background(), jane, pw); err != nil {
		log.Fatal(err)
	}
	h, err := login.New(login.Config{
		PublicURL: "https://app.example.com/auth", LoginUIURL: "/login", ErrorUIURL: "/error",
		DefaultReturnURL: "https://app.example.com/", IdentityStore: ids,
		Hasher: logintest.FastHasher{}, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/auth/", http.StripPrefix("/auth", h))
	mux.Handle("/account", h.RequireSession(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, _ := session.FromContext(r.Context())
		fmt.Fprintf(w, "hello %s", s.Identity.ID)
	})))

	// The test.
	c := logintest.Client{Handler: mux, Prefix: "/auth"}
	token, err := c.SignInAPI(context.Background(), logintest.Password("jane@example.com", "correct horse battery staple"))
	if err != nil {
		log.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, "/account", nil)
	req.Header.Set("X-Session-Token", token)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	body, _ := io.ReadAll(rec.Body)
	fmt.Println(rec.Code, string(body))
	// Output: 200 hello 0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9
}
