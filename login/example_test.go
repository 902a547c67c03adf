package login_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/login/logintest"
	"github.com/authflow/authflow/session"
)

// A native app logs in: it creates an API flow, submits the password and
// receives a session token, which whoami accepts.
func Example() {
	ctx := context.Background()
	hasher := logintest.FastHasher{} // production: password.Argon2id{}
	ids := session.NewMemoryIdentityStore()
	cred, _ := login.NewPasswordCredential(ctx, hasher, "Alice@Example.com", "correct horse battery staple")
	_ = ids.CreateIdentity(ctx, &session.Identity{
		ID:     "75d15e8b-09b4-4f54-b1b6-c9a0978098c7",
		State:  session.StateActive,
		Traits: json.RawMessage(`{"email":"alice@example.com"}`),
	}, cred)

	h, err := login.New(login.Config{
		PublicURL:        "https://auth.example.com",
		LoginUIURL:       "https://example.com/login",
		ErrorUIURL:       "https://example.com/error",
		DefaultReturnURL: "https://example.com/",
		IdentityStore:    ids,
		Hasher:           hasher,
	})
	if err != nil {
		panic(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	var f struct {
		ID string `json:"id"`
		UI struct {
			Action string `json:"action"`
		} `json:"ui"`
	}
	resp, _ := http.Get(srv.URL + "/self-service/login/api")
	_ = json.NewDecoder(resp.Body).Decode(&f)
	resp.Body.Close()
	fmt.Println("action:", strings.Replace(f.UI.Action, f.ID, "<id>", 1))

	body := `{"method":"password","identifier":"alice@example.com","password":"correct horse battery staple"}`
	resp, _ = http.Post(srv.URL+"/self-service/login?flow="+f.ID, "application/json", strings.NewReader(body))
	var out struct {
		Token   string `json:"session_token"`
		Session struct {
			Active bool   `json:"active"`
			AAL    string `json:"authenticator_assurance_level"`
		} `json:"session"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, out.Session.Active, out.Session.AAL)

	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/sessions/whoami", nil)
	req.Header.Set("X-Session-Token", out.Token)
	resp, _ = http.DefaultClient.Do(req)
	resp.Body.Close()
	fmt.Println("whoami:", resp.StatusCode, resp.Header.Get("X-Kratos-Authenticated-Identity-Id"))
	// Output:
	// action: https://auth.example.com/self-service/login?flow=<id>
	// 200 true aal1
	// whoami: 200 75d15e8b-09b4-4f54-b1b6-c9a0978098c7
}

// New names the required fields it is missing.
func ExampleNew_missingFields() {
	_, err := login.New(login.Config{PublicURL: "https://auth.example.com"})
	fmt.Println(err)
	// Output:
	// login: LoginUIURL is required
	// login: ErrorUIURL is required
	// login: DefaultReturnURL is required
}

// exampleHandler returns a handler with one identity, for the examples.
func exampleHandler(configure func(*login.Config)) *login.Handler {
	ctx := context.Background()
	ids := session.NewMemoryIdentityStore()
	cred, _ := login.NewPasswordCredential(ctx, logintest.FastHasher{}, "alice@example.com", "correct horse battery staple")
	_ = ids.CreateIdentity(ctx, &session.Identity{
		ID: "75d15e8b-09b4-4f54-b1b6-c9a0978098c7", State: session.StateActive,
		Traits: json.RawMessage(`{"email":"alice@example.com"}`),
	}, cred)
	cfg := login.Config{
		PublicURL:        "https://example.com/auth",
		LoginUIURL:       "https://example.com/login",
		ErrorUIURL:       "https://example.com/error",
		DefaultReturnURL: "https://example.com/",
		IdentityStore:    ids,
		Hasher:           logintest.FastHasher{},
		Logger:           slog.New(slog.DiscardHandler),
	}
	if configure != nil {
		configure(&cfg)
	}
	h, err := login.New(cfg)
	if err != nil {
		panic(err)
	}
	return h
}

// exampleToken logs alice in through an API flow and returns the token.
func exampleToken(srv *httptest.Server) string {
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
	return out.Token
}

// Mount the handler under a prefix and protect a host route: requests
// without a session get 401 (JSON) or a redirect to the login (browsers);
// with one, the route reads it from the context.
func ExampleHandler_RequireSession() {
	h := exampleHandler(nil)
	mux := http.NewServeMux()
	mux.Handle("/auth/", http.StripPrefix("/auth", h))
	mux.Handle("/account", h.RequireSession(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, _ := session.FromContext(r.Context())
		fmt.Fprintf(w, "hello %s", s.Identity.Traits)
	})))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, _ := client.Get(srv.URL + "/account")
	resp.Body.Close()
	fmt.Println("browser without session:", resp.StatusCode, resp.Header.Get("Location"))

	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/account", nil)
	req.Header.Set("X-Session-Token", exampleToken(srv))
	resp, _ = client.Do(req)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println("with a session:", resp.StatusCode, string(b))
	// Output:
	// browser without session: 303 https://example.com/auth/self-service/login/browser?return_to=https%3A%2F%2Fexample.com%2Faccount
	// with a session: 200 hello {"email":"alice@example.com"}
}

// Middleware makes the session available to routes that work with and
// without one.
func ExampleHandler_Middleware() {
	h := exampleHandler(nil)
	mux := http.NewServeMux()
	mux.Handle("/auth/", http.StripPrefix("/auth", h))
	mux.Handle("/", h.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s, ok := session.FromContext(r.Context()); ok {
			fmt.Fprintf(w, "signed in, session aal %s", s.AAL)
			return
		}
		fmt.Fprint(w, "anonymous")
	})))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	resp, _ := http.Get(srv.URL + "/")
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(string(b))

	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/", nil)
	req.Header.Set("Authorization", "Bearer "+exampleToken(srv))
	resp, _ = http.DefaultClient.Do(req)
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(string(b))
	// Output:
	// anonymous
	// signed in, session aal aal1
}

// Hooks take part in every attempt: here a host refuses logins until the
// address is verified (message 4000010) and counts outcomes.
func ExampleConfig_hooks() {
	outcomes := map[login.Outcome]int{}
	h := exampleHandler(func(c *login.Config) {
		c.AfterVerification = func(ctx context.Context, a *login.Attempt, id *session.Identity) error {
			return login.Refuse(flow.AddressNotVerified())
		}
		c.OnEvent = func(ctx context.Context, e login.Event) {
			if e.Action == "login.submit" {
				outcomes[e.Outcome]++
			}
		}
	})
	mux := http.NewServeMux()
	mux.Handle("/auth/", http.StripPrefix("/auth", h))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	fmt.Println("token:", exampleToken(srv) == "")
	fmt.Println("outcomes:", outcomes)
	// Output:
	// token: true
	// outcomes: map[flow_error:1]
}

// Identities that log in with a password carry a credential whose
// identifier is normalised; stores compare identifiers verbatim.
func ExampleNormalizeIdentifier() {
	for _, s := range []string{"  Alice@Example.COM ", "ａｌｉｃｅ@example.com", "ali\u200bce@example.com"} {
		id, err := login.NormalizeIdentifier(s)
		fmt.Printf("%q %v\n", id, err)
	}
	// Output:
	// "alice@example.com" <nil>
	// "alice@example.com" <nil>
	// "" login: identifier contains characters that are not allowed
}
