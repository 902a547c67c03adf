package login_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
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
				h.ServeHTTP(w, benchRequest(http.MethodGet, "/self-service/login/api", nil))
				id := flowID(b, w)
				req := benchRequest(http.MethodPost, "/self-service/login?flow="+id, strings.NewReader(body))
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
				h.ServeHTTP(w, benchRequest(http.MethodGet, "/self-service/login/browser", nil))
				if w.Code != http.StatusSeeOther {
					b.Fatalf("create: %d", w.Code)
				}
				loc, _ := url.Parse(w.Header().Get("Location"))
				id := loc.Query().Get("flow")
				csrfCookie := w.Result().Cookies()[0]

				req := benchRequest(http.MethodGet, "/self-service/login/flows?id="+id, nil)
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
				req = benchRequest(http.MethodPost, "/self-service/login?flow="+id, strings.NewReader(form.Encode()))
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

// benchRequest builds a server request without parsing HTTP text (which
// httptest.NewRequest does), so that the benchmarks measure the handler.
func benchRequest(method, target string, body io.Reader) *http.Request {
	r, err := http.NewRequest(method, "https://auth.example.com"+target, body)
	if err != nil {
		panic(err)
	}
	r.RemoteAddr = "192.0.2.1:1234"
	r.RequestURI = target
	return r
}

// flowID reads the id of a created flow, the first key of its JSON, without
// decoding the whole flow.
func flowID(b *testing.B, w *httptest.ResponseRecorder) string {
	body := w.Body.Bytes()
	const prefix = `{"id":"`
	if w.Code != http.StatusOK || !bytes.HasPrefix(body, []byte(prefix)) || len(body) < len(prefix)+36 {
		b.Fatalf("create: %d %s", w.Code, body)
	}
	return string(body[len(prefix) : len(prefix)+36])
}
