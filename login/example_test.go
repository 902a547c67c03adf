package login_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

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
