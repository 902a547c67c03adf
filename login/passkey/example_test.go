package passkey_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/login/passkey"
	"github.com/authflow/authflow/login/passkey/passkeytest"
	"github.com/authflow/authflow/session"
)

// A host plugs the passkey method in and mounts enrolment behind
// RequireSession; a user who enrolled a passkey signs in with it. The
// software authenticator stands in for the browser.
func Example() {
	identities := session.NewMemoryIdentityStore()
	pk, err := passkey.New(passkey.Config{
		RPID:          "localhost",
		RPDisplayName: "Example",
		Origins:       []string{"http://localhost:8080"},
		Identities:    identities,
	})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	defer srv.Close()
	h, err := login.New(login.Config{
		PublicURL:        srv.URL,
		LoginUIURL:       "https://example.com/login",
		ErrorUIURL:       "https://example.com/error",
		DefaultReturnURL: "https://example.com/",
		IdentityStore:    identities,
		Methods:          []login.Method{pk},
		Logger:           slog.New(slog.DiscardHandler),
	})
	if err != nil {
		log.Fatal(err)
	}
	mux.Handle("/passkeys/", h.RequireSession(http.StripPrefix("/passkeys", pk.EnrolmentHandler())))
	mux.Handle("/", h)

	// A user whose passkey was enrolled (here: imported from Kratos).
	ctx := context.Background()
	jane := &session.Identity{ID: "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9", State: session.StateActive, Traits: json.RawMessage(`{"email":"jane@example.com"}`)}
	if err := identities.CreateIdentity(ctx, jane); err != nil {
		log.Fatal(err)
	}
	device := passkeytest.New()
	handle := []byte(strings.Repeat("j", 64))
	cred, err := passkey.ImportKratos(passkey.CredentialPasskey, passkeytest.KratosConfig(handle, true, false, device.AddKey("localhost", handle)), "")
	if err != nil {
		log.Fatal(err)
	}
	if err := identities.UpdateCredential(ctx, jane.ID, &cred); err != nil {
		log.Fatal(err)
	}

	// The client: a flow, the device's answer to its challenge, the submit.
	var f struct {
		ID string `json:"id"`
		UI struct {
			Nodes []struct {
				Attributes struct {
					Name  string `json:"name"`
					Value any    `json:"value"`
				} `json:"attributes"`
			} `json:"nodes"`
		} `json:"ui"`
	}
	resp, err := http.Get(srv.URL + "/self-service/login/api")
	if err != nil {
		log.Fatal(err)
	}
	if err := json.NewDecoder(resp.Body).Decode(&f); err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	var challenge string
	for _, n := range f.UI.Nodes {
		if n.Attributes.Name == "passkey_challenge" {
			challenge, _ = n.Attributes.Value.(string)
		}
	}
	assertion, err := device.Get([]byte(challenge), "http://localhost:8080")
	if err != nil {
		log.Fatal(err)
	}
	body, _ := json.Marshal(map[string]string{"passkey_login": string(assertion)})
	resp, err = http.Post(srv.URL+"/self-service/login?flow="+f.ID, "application/json", strings.NewReader(string(body)))
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Session struct {
			AAL     string `json:"authenticator_assurance_level"`
			Methods []struct {
				Method string `json:"method"`
			} `json:"authentication_methods"`
		} `json:"session"`
	}
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &out); err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.StatusCode, out.Session.AAL, out.Session.Methods[0].Method)
	// Output: 200 aal1 passkey
}
