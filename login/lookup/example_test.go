package lookup_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"time"

	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/login/logintest"
	"github.com/authflow/authflow/login/lookup"
	"github.com/authflow/authflow/session"
)

// A user signs in with a password, then steps up to aal2 with a backup
// code.
func Example() {
	ctx := context.Background()
	ids := session.NewMemoryIdentityStore()
	m, err := lookup.New(lookup.Config{})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	defer srv.Close()
	h, err := login.New(login.Config{
		PublicURL: srv.URL, LoginUIURL: "/login", ErrorUIURL: "/error", DefaultReturnURL: "https://app.example.com/",
		IdentityStore: ids,
		Hasher:        logintest.FastHasher{}, // for the example only
		Methods:       []login.Method{m},
		Logger:        slog.New(slog.DiscardHandler),
	})
	if err != nil {
		panic(err)
	}
	mux.Handle("/", h)

	// Enrolment: the host makes the codes, shows them once and stores
	// only their hashes.
	alice := &session.Identity{ID: "0d6a1b8e-7f7c-4a51-9d1e-2f3c5b6a7d8e", State: session.StateActive, Traits: json.RawMessage(`{}`)}
	pw, _ := login.NewPasswordCredential(ctx, logintest.FastHasher{}, "alice@example.com", "correct horse")
	codes, _ := lookup.NewCodes()
	backup, _ := lookup.NewCredential(alice.ID, codes)
	if err := ids.CreateIdentity(ctx, alice, pw, backup); err != nil {
		panic(err)
	}

	call := func(method, path, token string, body any) (int, map[string]any) {
		var r io.Reader = http.NoBody
		if body != nil {
			b, _ := json.Marshal(body)
			r = bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, srv.URL+path, r)
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("X-Session-Token", token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}

	_, f := call("GET", "/self-service/login/api", "", nil)
	_, out := call("POST", "/self-service/login?flow="+f["id"].(string), "", map[string]any{
		"method": "password", "identifier": "alice@example.com", "password": "correct horse"})
	token := out["session_token"].(string)
	status, _ := call("GET", "/sessions/whoami", token, nil)
	fmt.Println("after the password:", status)

	_, f = call("GET", "/self-service/login/api?aal=aal2", token, nil)
	status, out = call("POST", "/self-service/login?flow="+f["id"].(string), token, map[string]any{
		"method": "lookup_secret", "lookup_secret": codes[0]})
	fmt.Println("backup code:", status, out["session"].(map[string]any)["authenticator_assurance_level"])
	status, _ = call("GET", "/sessions/whoami", out["session_token"].(string), nil)
	fmt.Println("whoami:", status)
	// Output:
	// after the password: 403
	// backup code: 200 aal2
	// whoami: 200
}

func ExampleNewCodes() {
	codes, err := lookup.NewCodes()
	if err != nil {
		panic(err)
	}
	format := regexp.MustCompile(`^[a-z0-9]{8}$`)
	valid := 0
	for _, c := range codes {
		if format.MatchString(c) {
			valid++
		}
	}
	fmt.Println(len(codes), "codes,", valid, "of 8 characters [a-z0-9]")
	// Output: 12 codes, 12 of 8 characters [a-z0-9]
}

func ExampleNewCredential() {
	ctx := context.Background()
	ids := session.NewMemoryIdentityStore()
	alice := &session.Identity{ID: "0d6a1b8e-7f7c-4a51-9d1e-2f3c5b6a7d8e", State: session.StateActive, CreatedAt: time.Now()}
	if err := ids.CreateIdentity(ctx, alice); err != nil {
		panic(err)
	}

	codes, err := lookup.NewCodes()
	if err != nil {
		panic(err)
	}
	// Show codes to the user now: they are never stored, only their hashes.
	cred, err := lookup.NewCredential(alice.ID, codes)
	if err != nil {
		panic(err)
	}
	if err := ids.UpdateCredential(ctx, alice.ID, &cred); err != nil { // replaces earlier codes
		panic(err)
	}
	left, _ := lookup.Remaining(cred)
	fmt.Println(cred.Type, cred.Identifiers[0] == alice.ID, left)
	fmt.Println("a code in clear:", strings.Contains(string(cred.Config), codes[0]))
	// Output:
	// lookup_secret true 12
	// a code in clear: false
}

func ExampleImportKratos() {
	// The config of a Kratos identity's lookup_secret credential, from
	// GET /admin/identities/{id}?include_credential=lookup_secret.
	exported := json.RawMessage(`{"recovery_codes":[
		{"code":"g01exu82","used_at":null},
		{"code":"a7rmfz0q","used_at":"2026-12-03T07:28:12Z"}]}`)
	cred, err := lookup.ImportKratos("0d6a1b8e-7f7c-4a51-9d1e-2f3c5b6a7d8e", exported)
	if err != nil {
		panic(err)
	}
	left, _ := lookup.Remaining(cred)
	fmt.Println(left, "unused code; in clear:", strings.Contains(string(cred.Config), "g01exu82"))
	// Output: 1 unused code; in clear: false
}
