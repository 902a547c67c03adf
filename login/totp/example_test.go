package totp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	pqtotp "github.com/pquerna/otp/totp"

	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/login/logintest"
	"github.com/authflow/authflow/login/totp"
	"github.com/authflow/authflow/session"
)

// A host plugs the method in, enrols a user, and the user steps up an API
// session with the code their authenticator app shows.
func Example() {
	now := time.Date(2026, 12, 3, 7, 28, 12, 0, time.UTC)
	clock := func() time.Time { return now }
	m, err := totp.New(totp.Config{Issuer: "Example", Now: clock})
	if err != nil {
		log.Fatal(err)
	}
	identities := session.NewMemoryIdentityStore()
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	defer srv.Close()
	h, err := login.New(login.Config{
		PublicURL:        srv.URL,
		LoginUIURL:       "https://example.com/login",
		ErrorUIURL:       "https://example.com/error",
		DefaultReturnURL: "https://example.com/",
		IdentityStore:    identities,
		Hasher:           logintest.FastHasher{}, // a test hasher: leave it nil in production
		Methods:          []login.Method{m},
		Now:              clock,
		Logger:           slog.New(slog.DiscardHandler),
	})
	if err != nil {
		log.Fatal(err)
	}
	mux.Handle("/", h)

	// Enrolment, on the host's settings page: show the key, check the
	// first code, store the credential.
	ctx := context.Background()
	jane := &session.Identity{ID: "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9", State: session.StateActive}
	pw, _ := login.NewPasswordCredential(ctx, logintest.FastHasher{}, "jane@example.com", "correct horse battery staple")
	if err := identities.CreateIdentity(ctx, jane, pw); err != nil {
		log.Fatal(err)
	}
	key, err := m.NewKey("jane@example.com")
	if err != nil {
		log.Fatal(err)
	}
	app := func() string { c, _ := pqtotp.GenerateCode(key.Secret, now); return c } // the user's authenticator
	cred, err := m.NewCredential(jane.ID, key, app())
	if err != nil {
		log.Fatal(err)
	}
	if err := identities.UpdateCredential(ctx, jane.ID, &cred); err != nil {
		log.Fatal(err)
	}

	// Half a minute later, sign-in: the password gives an aal1 session,
	// the app's new code makes it aal2.
	now = now.Add(30 * time.Second)
	first := send(http.MethodGet, srv.URL+"/self-service/login/api", "", nil)
	aal1 := send(http.MethodPost, srv.URL+"/self-service/login?flow="+first["id"].(string), "",
		map[string]string{"method": "password", "identifier": "jane@example.com", "password": "correct horse battery staple"})
	token := aal1["session_token"].(string)
	fmt.Println("after the password:", aal1["session"].(map[string]any)["authenticator_assurance_level"])

	stepUp := send(http.MethodGet, srv.URL+"/self-service/login/api?aal=aal2", token, nil)
	aal2 := send(http.MethodPost, srv.URL+"/self-service/login?flow="+stepUp["id"].(string), token,
		map[string]string{"method": "totp", "totp_code": app()})
	fmt.Println("after the code:", aal2["session"].(map[string]any)["authenticator_assurance_level"])
	// Output:
	// after the password: aal1
	// after the code: aal2
}

// send sends a JSON request with a session token and decodes the answer.
func send(method, target, token string, body map[string]string) map[string]any {
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, target, r)
	if err != nil {
		log.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("X-Session-Token", token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		log.Fatal(err)
	}
	return v
}

func ExampleMethod_NewKey() {
	m, err := totp.New(totp.Config{Issuer: "Example"})
	if err != nil {
		log.Fatal(err)
	}
	key, err := m.NewKey("jane@example.com")
	if err != nil {
		log.Fatal(err)
	}
	qr, err := key.PNG(256) // for an <img src="data:image/png;base64,...">
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(key.Secret), "characters to type in")
	fmt.Println(strings.TrimSuffix(key.URL, key.Secret))
	fmt.Println(http.DetectContentType(qr))
	// Output:
	// 32 characters to type in
	// otpauth://totp/Example:jane@example.com?algorithm=SHA1&digits=6&issuer=Example&period=30&secret=
	// image/png
}

func ExampleMethod_NewCredential() {
	now := time.Date(2026, 12, 3, 7, 28, 12, 0, time.UTC)
	m, err := totp.New(totp.Config{Issuer: "Example", Now: func() time.Time { return now }})
	if err != nil {
		log.Fatal(err)
	}
	key := &totp.Key{
		Secret: "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
		URL:    "otpauth://totp/Example:jane@example.com?algorithm=SHA1&digits=6&issuer=Example&period=30&secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
	}
	code, _ := pqtotp.GenerateCode(key.Secret, now) // what the user's app shows

	cred, err := m.NewCredential("0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9", key, code)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(cred.Type, cred.Identifiers)
	fmt.Println(string(cred.Config))

	_, err = m.NewCredential("0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9", key, "000000")
	fmt.Println(errors.Is(err, totp.ErrInvalidCode))
	// Output:
	// totp [0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9]
	// {"totp_url":"otpauth://totp/Example:jane@example.com?algorithm=SHA1&digits=6&issuer=Example&period=30&secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ","last_step":59876096}
	// true
}

func ExampleImportKratos() {
	// The credential as Kratos' admin API exports it
	// (GET /admin/identities/{id}?include_credential=totp).
	exported := json.RawMessage(`{"totp_url":"otpauth://totp/Example:jane@example.com?algorithm=SHA1&digits=6&issuer=Example&period=30&secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"}`)
	cred, err := totp.ImportKratos("0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9", exported)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(cred.Type, cred.Identifiers)

	_, err = totp.ImportKratos("0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9",
		json.RawMessage(`{"totp_url":"otpauth://totp/Example:jane?algorithm=SHA256&secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"}`))
	fmt.Println(err)
	// Output:
	// totp [0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9]
	// totp: Kratos config: totp_url has algorithm "SHA256"; only SHA1 is supported
}
