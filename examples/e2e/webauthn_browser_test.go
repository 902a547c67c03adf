package e2e

// TestWebAuthnScript runs authflow's /.well-known/ory/webauthn.js in a real
// headless Chromium with a virtual authenticator (CDP WebAuthn domain): a
// page on one origin loads the script from the handler on another origin
// exactly as the script node says (integrity, crossorigin="anonymous"), so
// the script runs only if the bytes match and the handler allows CORS; then
// the script registers a passkey (oryPasskeySettingsRegistration) and logs
// in with it (oryPasskeyLogin from a button's onclick, then oryWebAuthnLogin
// with options that name no credential), and the test reads the forms the
// script posted.
//
//	cd examples/e2e && go test -v -run TestWebAuthnScript ./...

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/login/logintest"
	"github.com/authflow/authflow/session"
)

// waScriptMethod is a test-only first factor whose only node, in browser
// flows, is the WebAuthn script node, as a passkey method's would be.
type waScriptMethod struct{}

func (waScriptMethod) ID() string  { return "scripted" }
func (waScriptMethod) AAL() string { return flow.AAL1 }
func (waScriptMethod) Nodes(_ context.Context, req *login.FlowRequest) ([]flow.Node, error) {
	if req.Flow.Type != flow.TypeBrowser {
		return nil, nil
	}
	return []flow.Node{req.WebAuthnScript()}, nil
}
func (waScriptMethod) Validate(context.Context, *login.Submission) error { return nil }
func (waScriptMethod) Authenticate(context.Context, *login.Submission) (*login.Result, error) {
	return nil, &login.FlowError{Messages: []flow.Message{flow.Generic("not a real method")}}
}

// waLocalhostServer starts handler on 127.0.0.1 and returns its URL with
// the host name localhost, a secure context for WebAuthn and the relying
// party id "localhost".
func waLocalhostServer(t *testing.T, handler http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := httptest.NewUnstartedServer(handler)
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return "http://localhost:" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// waPage is a test page: the script node rendered as Kratos' reference UI
// renders it (js_setup.hbs), a form with hidden inputs posting to action,
// and optionally a button.
var waPage = template.Must(template.New("page").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>webauthn.js</title>
<script>
  window.__logs = [];
  for (const k of ["log", "error"]) {
    const orig = console[k];
    console[k] = (...a) => { window.__logs.push(k + ": " + a.map(String).join(" ")); orig.apply(console, a); };
  }
  window.__initEvents = 0;
  window.addEventListener("oryWebAuthnInitialized", () => { window.__initEvents++; });
</script>
<script src="{{.Script.Src}}" type="{{.Script.Type}}" integrity="{{.Script.Integrity}}"
  referrerpolicy="{{.Script.ReferrerPolicy}}" crossorigin="{{.Script.CrossOrigin}}" async></script>
</head><body>
<form method="post" action="{{.Action}}">
{{range $name, $value := .Fields}}<input type="hidden" name="{{$name}}" value="{{$value}}">
{{end}}{{if .Button}}<button type="button" id="passkey-login" onclick="window.oryPasskeyLogin()">Sign in with passkey</button>{{end}}
</form></body></html>`))

type waPageData struct {
	Script flow.Attributes
	Action string
	Fields map[string]string
	Button bool
}

func TestWebAuthnScript(t *testing.T) {
	chromium := browserFindChromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)

	// The handler, on its own origin.
	authMux := http.NewServeMux()
	authURL := waLocalhostServer(t, authMux)
	h, err := login.New(login.Config{
		PublicURL:        authURL,
		LoginUIURL:       authURL + "/login",
		ErrorUIURL:       authURL + "/error",
		DefaultReturnURL: authURL + "/",
		IdentityStore:    session.NewMemoryIdentityStore(),
		Hasher:           logintest.FastHasher{},
		Logger:           slog.New(slog.DiscardHandler),
		Methods:          []login.Method{waScriptMethod{}},
	})
	require.NoError(t, err)
	authMux.Handle("/", h)
	script := waScriptNode(t, authURL)

	// The UI, on another origin: pages and the forms the script posts.
	posted := make(chan url.Values, 1)
	pages := map[string]waPageData{}
	uiMux := http.NewServeMux()
	uiURL := waLocalhostServer(t, uiMux)
	uiMux.HandleFunc("GET /page/{name}", func(w http.ResponseWriter, r *http.Request) {
		data, ok := pages[r.PathValue("name")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = waPage.Execute(w, data)
	})
	uiMux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte("<!doctype html><p>start</p>"))
	})
	uiMux.HandleFunc("POST /posted", func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		select {
		case posted <- r.PostForm:
		default:
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte("<!doctype html><p>posted</p>"))
	})

	userID := waRandom(t, 16)
	createChallenge := waRandom(t, 32)
	creation, err := json.Marshal(map[string]any{"publicKey": map[string]any{
		"rp":                     map[string]any{"id": "localhost", "name": "authflow test"},
		"user":                   map[string]any{"id": waB64(userID), "name": "alice@example.com", "displayName": "Alice"},
		"challenge":              waB64(createChallenge),
		"pubKeyCredParams":       []any{map[string]any{"type": "public-key", "alg": -7}},
		"timeout":                60000,
		"authenticatorSelection": map[string]any{"residentKey": "required", "userVerification": "required"},
	}})
	require.NoError(t, err)
	pages["register"] = waPageData{Script: script.Attributes, Action: uiURL + "/posted", Fields: map[string]string{
		"passkey_create_data": string(creation), "passkey_settings_register": "",
	}}
	loginChallenge := waRandom(t, 32)
	assertion, err := json.Marshal(map[string]any{"publicKey": map[string]any{
		"challenge": waB64(loginChallenge), "timeout": 300000, "rpId": "localhost", "userVerification": "required",
	}})
	require.NoError(t, err)
	pages["login"] = waPageData{Script: script.Attributes, Action: uiURL + "/posted", Button: true, Fields: map[string]string{
		"passkey_challenge": string(assertion), "passkey_login": "",
	}}

	// Kratos' oryWebAuthnLogin throws on options without allowCredentials;
	// ours lets the browser discover the credential.
	discoverChallenge := waRandom(t, 32)
	discoverable, err := json.Marshal(map[string]any{"publicKey": map[string]any{
		"challenge": waB64(discoverChallenge), "timeout": 120000, "rpId": "localhost", "userVerification": "discouraged",
	}})
	require.NoError(t, err)
	pages["webauthn"] = waPageData{Script: script.Attributes, Action: uiURL + "/posted", Fields: map[string]string{
		"webauthn_login_trigger": string(discoverable), "webauthn_login": "",
	}}

	browser := browserStart(t, ctx, chromium)
	tab := browserTab(t, browser)
	browserNavigate(t, tab, "open the UI's origin", chromedp.Navigate(uiURL+"/"))
	waVirtualAuthenticator(t, tab)

	var credentialID string
	t.Run("Registration", func(t *testing.T) {
		waOpen(t, tab, uiURL+"/page/register")
		browserDo(t, tab, "call oryPasskeySettingsRegistration", chromedp.Evaluate[chromedp.Void]("void window.oryPasskeySettingsRegistration()"))
		form := waPosted(t, tab, posted)
		assert.Equal(t, string(creation), form.Get("passkey_create_data"), "the form's other inputs are posted unchanged")

		var att struct {
			ID       string `json:"id"`
			RawID    string `json:"rawId"`
			Type     string `json:"type"`
			Response struct {
				AttestationObject string `json:"attestationObject"`
				ClientDataJSON    string `json:"clientDataJSON"`
			} `json:"response"`
		}
		raw := form.Get("passkey_settings_register")
		require.NoError(t, json.Unmarshal([]byte(raw), &att), "attestation JSON: %s", raw)
		waCheckKeys(t, raw, "id", "rawId", "type", "response")
		waCheckKeys(t, string(waRawField(t, raw, "response")), "attestationObject", "clientDataJSON")
		assert.Equal(t, "public-key", att.Type)
		assert.NotEmpty(t, att.ID)
		assert.Equal(t, att.ID, att.RawID, "rawId is the id, base64url without padding")
		waDecode(t, "rawId", att.RawID)
		attObj := waDecode(t, "attestationObject", att.Response.AttestationObject)
		require.NotEmpty(t, attObj)
		assert.Equal(t, byte(0xa0), attObj[0]&0xe0, "the attestation object is a CBOR map")
		assert.True(t, bytes.Contains(attObj, []byte("authData")), "the attestation object has authData")
		waCheckClientData(t, waDecode(t, "clientDataJSON", att.Response.ClientDataJSON), "webauthn.create", createChallenge, uiURL)
		credentialID = att.ID
	})
	if credentialID == "" {
		return
	}

	t.Run("Login", func(t *testing.T) {
		waOpen(t, tab, uiURL+"/page/login")
		browserDo(t, tab, "click the passkey button", chromedp.Click(chromedp.ID("passkey-login")))
		form := waPosted(t, tab, posted)
		assert.Equal(t, string(assertion), form.Get("passkey_challenge"))

		var as struct {
			ID       string `json:"id"`
			RawID    string `json:"rawId"`
			Type     string `json:"type"`
			Response struct {
				AuthenticatorData string `json:"authenticatorData"`
				ClientDataJSON    string `json:"clientDataJSON"`
				Signature         string `json:"signature"`
				UserHandle        string `json:"userHandle"`
			} `json:"response"`
		}
		raw := form.Get("passkey_login")
		require.NoError(t, json.Unmarshal([]byte(raw), &as), "assertion JSON: %s", raw)
		waCheckKeys(t, raw, "id", "rawId", "type", "response")
		waCheckKeys(t, string(waRawField(t, raw, "response")), "authenticatorData", "clientDataJSON", "signature", "userHandle")
		assert.Equal(t, "public-key", as.Type)
		assert.Equal(t, credentialID, as.ID, "the passkey just registered")
		assert.Equal(t, as.ID, as.RawID)
		assert.Equal(t, userID, waDecode(t, "userHandle", as.Response.UserHandle), "userHandle is the user id")
		assert.NotEmpty(t, waDecode(t, "signature", as.Response.Signature))
		authData := waDecode(t, "authenticatorData", as.Response.AuthenticatorData)
		require.GreaterOrEqual(t, len(authData), 37)
		rpIDHash := sha256.Sum256([]byte("localhost"))
		assert.Equal(t, rpIDHash[:], authData[:32], "authenticatorData's rpIdHash is localhost's")
		assert.Equal(t, byte(0x05), authData[32]&0x05, "user present and user verified flags")
		waCheckClientData(t, waDecode(t, "clientDataJSON", as.Response.ClientDataJSON), "webauthn.get", loginChallenge, uiURL)
	})

	t.Run("WebAuthnLoginWithoutAllowCredentials", func(t *testing.T) {
		waOpen(t, tab, uiURL+"/page/webauthn")
		browserDo(t, tab, "call oryWebAuthnLogin", chromedp.Evaluate[chromedp.Void]("void window.oryWebAuthnLogin()"))
		form := waPosted(t, tab, posted)
		var as struct {
			ID       string `json:"id"`
			Response struct {
				ClientDataJSON string `json:"clientDataJSON"`
				UserHandle     string `json:"userHandle"`
			} `json:"response"`
		}
		raw := form.Get("webauthn_login")
		require.NoError(t, json.Unmarshal([]byte(raw), &as), "assertion JSON: %s", raw)
		assert.Equal(t, credentialID, as.ID)
		assert.Equal(t, userID, waDecode(t, "userHandle", as.Response.UserHandle))
		waCheckClientData(t, waDecode(t, "clientDataJSON", as.Response.ClientDataJSON), "webauthn.get", discoverChallenge, uiURL)
	})
}

// waScriptNode creates a browser flow on the handler and returns its script
// node.
func waScriptNode(t *testing.T, authURL string) flow.Node {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, authURL+"/self-service/login/browser", nil)
	require.NoError(t, err)
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var f flow.Flow
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&f))
	for _, n := range f.UI.Nodes {
		if n.Type == "script" {
			require.Equal(t, "webauthn_script", n.Attributes.ID)
			require.Contains(t, n.Attributes.Src, authURL+"/.well-known/ory/webauthn.js?v=")
			return n
		}
	}
	t.Fatalf("the browser flow has no script node: %+v", f.UI.Nodes)
	return flow.Node{}
}

// waVirtualAuthenticator enables the WebAuthn domain in the tab and adds a
// platform authenticator with resident keys that verifies the user and
// simulates presence, and returns its id. A browser without it skips the
// test (CI fails). The tab must show a page of a secure context
// (about:blank has no PublicKeyCredential).
func waVirtualAuthenticator(t *testing.T, tab context.Context) webauthn.AuthenticatorID {
	t.Helper()
	return waAddAuthenticator(t, tab, &webauthn.VirtualAuthenticatorOptions{
		Protocol:                    webauthn.AuthenticatorProtocolCtap2,
		Ctap2version:                webauthn.Ctap2versionCtap21,
		Transport:                   webauthn.AuthenticatorTransportInternal,
		HasResidentKey:              true,
		HasUserVerification:         true,
		IsUserVerified:              true,
		AutomaticPresenceSimulation: true, // Chromium's default, but the struct always sends the field
	})
}

// waAddAuthenticator enables the WebAuthn domain in the tab and adds a
// virtual authenticator with opts, and returns its id; as
// waVirtualAuthenticator, it skips (CI fails) where Chromium cannot.
func waAddAuthenticator(t *testing.T, tab context.Context, opts *webauthn.VirtualAuthenticatorOptions) webauthn.AuthenticatorID {
	t.Helper()
	ok := browserRun(t, tab, "look for PublicKeyCredential", chromedp.Evaluate[bool]("typeof window.PublicKeyCredential === 'function'"))
	ctx, cancel := context.WithTimeout(tab, browserStepTimeout)
	defer cancel()
	var (
		err error
		res webauthn.AddVirtualAuthenticatorResult
	)
	if ok {
		_, err = chromedp.Call(ctx, webauthn.Enable, webauthn.EnableParams{})
	}
	if err == nil && ok {
		res, err = chromedp.Call(ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{Options: opts})
		if err == nil {
			t.Logf("virtual authenticator %s", res.AuthenticatorID)
		}
	}
	if !ok || err != nil {
		how := "this Chromium cannot run WebAuthn with a CDP virtual authenticator"
		if err != nil {
			how += ": " + err.Error()
		}
		if os.Getenv("CI") == "true" {
			t.Fatal(how)
		}
		t.Skip(how)
	}
	return res.AuthenticatorID
}

// waOpen loads a test page and waits until webauthn.js ran: it was fetched
// cross-origin under its integrity, defined every global with its alias
// and announced itself once.
func waOpen(t *testing.T, tab context.Context, pageURL string) {
	t.Helper()
	browserNavigate(t, tab, "open "+pageURL, chromedp.Navigate(pageURL))
	if err := waWaitFor(tab, "window.__oryWebAuthnInitialized === true"); err != nil {
		logs, _ := chromedp.Run(tab, chromedp.Evaluate[[]string]("window.__logs"))
		require.NoError(t, err, "webauthn.js did not run on %s (refused by integrity or CORS?); console: %q", pageURL, logs)
	}
	state := browserRun(t, tab, "read the script's globals", chromedp.Evaluate[map[string]any](`(() => {
		const names = ["oryWebAuthnLogin", "oryWebAuthnRegistration", "oryPasskeyLoginAutocompleteInit",
			"oryPasskeyLogin", "oryPasskeyRegistration", "oryPasskeySettingsRegistration"];
		const out = {initEvents: window.__initEvents};
		for (const n of names) {
			out[n] = typeof window[n] === "function" && window["__" + n] === window[n];
		}
		return out;
	})()`))
	assert.EqualValues(t, 1, state["initEvents"], "oryWebAuthnInitialized fired once")
	delete(state, "initEvents")
	for name, ok := range state {
		assert.Equal(t, true, ok, "%s is a function and __%s the same one", name, name)
	}
}

// waPosted waits for the form the script submitted, and for the browser to
// show the answer, so that the next navigation does not abort this one.
func waPosted(t *testing.T, tab context.Context, posted <-chan url.Values) url.Values {
	t.Helper()
	var v url.Values
	select {
	case v = <-posted:
	case <-time.After(browserStepTimeout):
		logs, _ := chromedp.Run(tab, chromedp.Evaluate[[]string]("window.__logs"))
		t.Fatalf("the script posted no form within %v; console: %q", browserStepTimeout, logs)
	}
	if err := waWaitFor(tab, `location.pathname === "/posted" && document.readyState === "complete"`); err != nil {
		t.Fatalf("the browser did not show the posted page: %v", err)
	}
	return v
}

// waWaitFor evaluates expr until it is true, for at most browserStepTimeout.
// It polls from here rather than with chromedp.Poll, because an evaluation
// fails while a page navigates, which a poll inside the page cannot survive.
func waWaitFor(tab context.Context, expr string) error {
	deadline := time.Now().Add(browserStepTimeout)
	for {
		ctx, cancel := context.WithTimeout(tab, time.Second)
		done, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		cancel()
		if err == nil && done {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s is not true after %v (last error: %v)", expr, browserStepTimeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waRandom(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return b
}

func waB64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// waDecode decodes base64url without padding, as the script must encode.
func waDecode(t *testing.T, what, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	require.NoError(t, err, "%s is base64url without padding: %q", what, s)
	return b
}

// waRawField returns the raw JSON of one key of an object.
func waRawField(t *testing.T, raw, key string) json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	require.NoError(t, json.Unmarshal([]byte(raw), &m))
	return m[key]
}

// waCheckKeys checks that the JSON object raw has exactly keys.
func waCheckKeys(t *testing.T, raw string, keys ...string) {
	t.Helper()
	var m map[string]json.RawMessage
	require.NoError(t, json.Unmarshal([]byte(raw), &m))
	got := make([]string, 0, len(m))
	for k := range m {
		got = append(got, k)
	}
	assert.ElementsMatch(t, keys, got, "keys of %s", raw)
}

// waCheckClientData checks the client data the browser signed.
func waCheckClientData(t *testing.T, raw []byte, typ string, challenge []byte, origin string) {
	t.Helper()
	var cd struct {
		Type      string `json:"type"`
		Challenge string `json:"challenge"`
		Origin    string `json:"origin"`
	}
	require.NoError(t, json.Unmarshal(raw, &cd), "clientDataJSON: %s", raw)
	assert.Equal(t, typ, cd.Type)
	assert.Equal(t, waB64(challenge), cd.Challenge)
	assert.Equal(t, origin, cd.Origin)
}
