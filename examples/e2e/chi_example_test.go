package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/login/logintest"
	"github.com/authflow/authflow/session"
)

// Mounting the handler in a chi router under /auth and protecting a route
// group with the session middleware.
func Example_chi() {
	ctx := context.Background()
	ids := session.NewMemoryIdentityStore()
	cred, _ := login.NewPasswordCredential(ctx, logintest.FastHasher{}, "alice@example.com", "correct horse battery staple")
	_ = ids.CreateIdentity(ctx, &session.Identity{
		ID: "75d15e8b-09b4-4f54-b1b6-c9a0978098c7", State: session.StateActive,
		Traits: json.RawMessage(`{"email":"alice@example.com"}`),
	}, cred)

	r := chi.NewRouter()
	srv := httptest.NewServer(r)
	defer srv.Close()

	h, err := login.New(login.Config{
		PublicURL:        srv.URL + "/auth", // the mount prefix is part of the public URL
		LoginUIURL:       srv.URL + "/login",
		ErrorUIURL:       srv.URL + "/error",
		DefaultReturnURL: srv.URL + "/app/",
		IdentityStore:    ids,
		Hasher:           logintest.FastHasher{}, // production: password.Argon2id{}
		Logger:           slog.New(slog.DiscardHandler),
	})
	if err != nil {
		panic(err)
	}
	// chi's Mount keeps the full path; the handler expects it without the
	// prefix.
	r.Mount("/auth", http.StripPrefix("/auth", h))
	r.Route("/app", func(r chi.Router) {
		r.Use(h.RequireSession)
		r.Get("/", func(w http.ResponseWriter, r *http.Request) {
			s, _ := session.FromContext(r.Context())
			fmt.Fprintf(w, "welcome %s", s.Identity.ID)
		})
	})

	// A native client logs in through the mounted handler...
	var f struct {
		ID string `json:"id"`
	}
	resp, _ := http.Get(srv.URL + "/auth/self-service/login/api")
	_ = json.NewDecoder(resp.Body).Decode(&f)
	resp.Body.Close()
	body := `{"method":"password","identifier":"alice@example.com","password":"correct horse battery staple"}`
	resp, _ = http.Post(srv.URL+"/auth/self-service/login?flow="+f.ID, "application/json", strings.NewReader(body))
	var out struct {
		Token string `json:"session_token"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()

	// ...and reaches the protected group with its token.
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/app/", nil)
	req.Header.Set("X-Session-Token", out.Token)
	resp, _ = http.DefaultClient.Do(req)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, string(b))

	req, _ = http.NewRequest(http.MethodGet, srv.URL+"/app/", nil)
	req.Header.Set("Accept", "application/json")
	resp, _ = http.DefaultClient.Do(req)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, resp.Header.Get("Ory-Error-Id"))
	// Output:
	// 200 welcome 75d15e8b-09b4-4f54-b1b6-c9a0978098c7
	// 401 session_inactive
}
