package login_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/login/logintest"
	"github.com/authflow/authflow/login/password"
	"github.com/authflow/authflow/session"
)

// benchHashers are the hashers the login benchmarks run with: one of
// negligible cost, to measure the handler's own work, and bcrypt at its
// lowest cost.
var benchHashers = []struct {
	name   string
	hasher password.Hasher
}{
	{"hasher=fast", logintest.FastHasher{}},
	{"hasher=bcrypt4", password.Bcrypt{Cost: 4}},
}

// newBenchHandler returns a handler with in-memory stores and one identity,
// driven in process (no network).
func newBenchHandler(b *testing.B, hasher password.Hasher) *login.Handler {
	b.Helper()
	ids := session.NewMemoryIdentityStore()
	cred, err := login.NewPasswordCredential(context.Background(), hasher, testIdentifier, testPassword)
	if err != nil {
		b.Fatal(err)
	}
	if err := ids.CreateIdentity(context.Background(), &session.Identity{
		ID: "8b59d370-e415-441a-9116-b8d780619e54", SchemaID: "default", State: session.StateActive,
		Traits: json.RawMessage(`{"email":"alice@example.com"}`),
	}, cred); err != nil {
		b.Fatal(err)
	}
	h, err := login.New(login.Config{
		PublicURL:        "https://auth.example.com",
		LoginUIURL:       loginUI,
		ErrorUIURL:       errorUI,
		DefaultReturnURL: defaultReturn,
		IdentityStore:    ids,
		Hasher:           hasher,
		Logger:           discardLogger(),
	})
	if err != nil {
		b.Fatal(err)
	}
	return h
}

// BenchmarkLoginAPI measures a native login: create an API flow, submit
// the password, receive the session token.
func BenchmarkLoginAPI(b *testing.B) {
	body := `{"method":"password","identifier":"alice@example.com","password":"correct horse battery staple"}`
	for _, bh := range benchHashers {
		b.Run(bh.name, func(b *testing.B) {
			h := newBenchHandler(b, bh.hasher)
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/self-service/login/api", nil))
				var f struct {
					ID string `json:"id"`
				}
				if err := json.Unmarshal(w.Body.Bytes(), &f); err != nil || w.Code != http.StatusOK {
					b.Fatalf("create: %d %s", w.Code, w.Body)
				}
				req := httptest.NewRequest(http.MethodPost, "/self-service/login?flow="+f.ID, strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				w = httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("submit: %d %s", w.Code, w.Body)
				}
			}
		})
	}
}

// BenchmarkLoginBrowser measures a server-rendered browser login: create a
// browser flow (303 to the UI, CSRF cookie), read it as the UI does, post
// the form, receive the session cookie and the 303 to the app.
func BenchmarkLoginBrowser(b *testing.B) {
	for _, bh := range benchHashers {
		b.Run(bh.name, func(b *testing.B) {
			h := newBenchHandler(b, bh.hasher)
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/self-service/login/browser", nil))
				if w.Code != http.StatusSeeOther {
					b.Fatalf("create: %d", w.Code)
				}
				loc, _ := url.Parse(w.Header().Get("Location"))
				id := loc.Query().Get("flow")
				csrfCookie := w.Result().Cookies()[0]

				req := httptest.NewRequest(http.MethodGet, "/self-service/login/flows?id="+id, nil)
				req.AddCookie(csrfCookie)
				w = httptest.NewRecorder()
				h.ServeHTTP(w, req)
				var f struct {
					UI struct {
						Nodes []struct {
							Attributes struct {
								Name  string `json:"name"`
								Value any    `json:"value"`
							} `json:"attributes"`
						} `json:"nodes"`
					} `json:"ui"`
				}
				if err := json.Unmarshal(w.Body.Bytes(), &f); err != nil || w.Code != http.StatusOK {
					b.Fatalf("fetch: %d %s", w.Code, w.Body)
				}
				token, _ := f.UI.Nodes[0].Attributes.Value.(string)

				form := url.Values{"method": {"password"}, "identifier": {testIdentifier}, "password": {testPassword}, "csrf_token": {token}}
				req = httptest.NewRequest(http.MethodPost, "/self-service/login?flow="+id, strings.NewReader(form.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.AddCookie(csrfCookie)
				w = httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusSeeOther || w.Header().Get("Location") != defaultReturn {
					b.Fatalf("submit: %d %s", w.Code, w.Header().Get("Location"))
				}
			}
		})
	}
}
