package code_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/authflow/authflow/courier"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/login/code"
	"github.com/authflow/authflow/session"
)

// A host plugs the method in, gives an identity a code credential, and the
// user logs in through an API flow with the code from the mail. Here the
// mail goes to a courier.Capture; a real host uses courier.NewSMTP.
func Example() {
	mail := courier.NewCapture()
	m, err := code.New(code.Config{Courier: mail})
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
		DisablePassword:  true,
		Methods:          []login.Method{m},
		Logger:           slog.New(slog.DiscardHandler),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer h.Close(context.Background()) // stops the method's mail queue
	mux.Handle("/", h)

	ctx := context.Background()
	cred, err := code.NewCredential("jane@example.com")
	if err != nil {
		log.Fatal(err)
	}
	jane := &session.Identity{ID: "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9", State: session.StateActive}
	if err := identities.CreateIdentity(ctx, jane, cred); err != nil {
		log.Fatal(err)
	}

	post := func(flowID string, body any) map[string]any {
		b, _ := json.Marshal(body)
		resp, err := http.Post(srv.URL+"/self-service/login?flow="+flowID, "application/json", bytes.NewReader(b))
		if err != nil {
			log.Fatal(err)
		}
		defer resp.Body.Close()
		var v map[string]any
		raw, _ := io.ReadAll(resp.Body)
		json.Unmarshal(raw, &v)
		fmt.Println(resp.StatusCode)
		return v
	}
	resp, err := http.Get(srv.URL + "/self-service/login/api")
	if err != nil {
		log.Fatal(err)
	}
	var f struct{ ID string }
	json.NewDecoder(resp.Body).Decode(&f)
	resp.Body.Close()

	step := post(f.ID, map[string]string{"method": "code", "identifier": "jane@example.com"})
	fmt.Println(step["state"])

	wait, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	msg, err := mail.Wait(wait, "jane@example.com")
	if err != nil {
		log.Fatal(err)
	}
	var got string
	fmt.Sscanf(msg.Subject, "Use code %s to log in", &got)

	done := post(f.ID, map[string]string{"method": "code", "code": got})
	s := done["session"].(map[string]any)
	fmt.Println(s["identity"].(map[string]any)["id"], s["authentication_methods"].([]any)[0].(map[string]any)["method"])
	// Output:
	// 400
	// sent_email
	// 200
	// 0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9 code
}

// NewCredential makes the credential that lets an identity log in by a code
// sent to any of its addresses, normalised as the login looks them up.
func ExampleNewCredential() {
	cred, err := code.NewCredential("Jane@Example.com", "jane.doe@example.org")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(cred.Type, cred.Identifiers)
	fmt.Println(string(cred.Config))

	_, err = code.NewCredential("jane")
	fmt.Println(err)
	// Output:
	// code [jane@example.com jane.doe@example.org]
	// {"addresses":[{"channel":"email","address":"jane@example.com"},{"channel":"email","address":"jane.doe@example.org"}]}
	// code: "jane" is not an email address
}
