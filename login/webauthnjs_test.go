package login_test

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/internal/uuid"
	"github.com/authflow/authflow/login"
)

const webAuthnJSPath = "/.well-known/ory/webauthn.js"

// embeddedWebAuthnJS is the script as the package embeds it.
func embeddedWebAuthnJS(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("webauthn.js")
	require.NoError(t, err)
	return b
}

func TestWebAuthnScriptRoute(t *testing.T) {
	e := newEnv(t)
	want := embeddedWebAuthnJS(t)

	r := e.do(e.api(), http.MethodGet, webAuthnJSPath, nil, map[string]string{"Origin": "https://ui.example.com"})
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, want, r.body, "the body is the embedded script")
	assert.Equal(t, "text/javascript; charset=utf-8", r.header.Get("Content-Type"))
	assert.Equal(t, "*", r.header.Get("Access-Control-Allow-Origin"), "a UI on another origin loads it with crossorigin=anonymous")
	assert.Equal(t, "public, max-age=31536000, immutable", r.header.Get("Cache-Control"))
	assert.Equal(t, "nosniff", r.header.Get("X-Content-Type-Options"))
	assert.Empty(t, r.header.Values("Vary"), "the same bytes for every client")
	assert.Empty(t, r.header.Values("Set-Cookie"))
	etag := r.header.Get("ETag")
	require.NotEmpty(t, etag)
	assert.True(t, strings.HasPrefix(etag, `"`) && strings.HasSuffix(etag, `"`), "a strong, quoted ETag: %s", etag)

	head := e.do(e.api(), http.MethodHead, webAuthnJSPath, nil, nil)
	require.Equal(t, http.StatusOK, head.status)
	assert.Empty(t, head.body)
	assert.Equal(t, r.header.Get("Content-Length"), head.header.Get("Content-Length"))
	assert.Equal(t, etag, head.header.Get("ETag"))
	assert.Equal(t, "*", head.header.Get("Access-Control-Allow-Origin"))

	for _, inm := range []string{etag, `"other", ` + etag, "W/" + etag, "*"} {
		nm := e.do(e.api(), http.MethodGet, webAuthnJSPath, nil, map[string]string{"If-None-Match": inm})
		assert.Equal(t, http.StatusNotModified, nm.status, "If-None-Match: %s", inm)
		assert.Empty(t, nm.body, "If-None-Match: %s", inm)
		assert.Equal(t, etag, nm.header.Get("ETag"), "If-None-Match: %s", inm)
	}
	stale := e.do(e.api(), http.MethodGet, webAuthnJSPath, nil, map[string]string{"If-None-Match": `"stale"`})
	assert.Equal(t, http.StatusOK, stale.status)
	assert.Equal(t, want, stale.body)

	post := e.do(e.api(), http.MethodPost, webAuthnJSPath, nil, nil)
	assert.Equal(t, http.StatusMethodNotAllowed, post.status)
	assert.Equal(t, "private, no-cache, no-store, must-revalidate", post.header.Get("Cache-Control"),
		"only the script itself is cacheable")
}

// scriptMethod is a test-only first factor whose nodes are the WebAuthn
// script node (in browser flows) and which keeps a second node made by
// another WebAuthnScript call of the same request.
type scriptMethod struct {
	mu     sync.Mutex
	second flow.Node
}

func (m *scriptMethod) ID() string { return "scripted" }

func (m *scriptMethod) AAL() string { return flow.AAL1 }

func (m *scriptMethod) Nodes(_ context.Context, req *login.FlowRequest) ([]flow.Node, error) {
	if req.Flow.Type != flow.TypeBrowser {
		return nil, nil
	}
	first, second := req.WebAuthnScript(), req.WebAuthnScript()
	m.mu.Lock()
	m.second = second
	m.mu.Unlock()
	return []flow.Node{first}, nil
}

func (m *scriptMethod) Validate(context.Context, *login.Submission) error { return nil }

func (m *scriptMethod) Authenticate(context.Context, *login.Submission) (*login.Result, error) {
	return nil, &login.FlowError{Messages: []flow.Message{flow.Generic("not a real method")}}
}

func TestWebAuthnScriptNode(t *testing.T) {
	m := &scriptMethod{}
	e := newEnv(t, func(c *login.Config) { c.Methods = []login.Method{m} })
	body := embeddedWebAuthnJS(t)
	sha := sha512.Sum512(body)
	integrity := "sha512-" + base64.StdEncoding.EncodeToString(sha[:])
	version := sha256.Sum256(body)
	src := e.srv.URL + webAuthnJSPath + "?v=" + hex.EncodeToString(version[:])[:16]

	c := e.browser()
	r := e.do(c, http.MethodGet, "/self-service/login/browser", nil, map[string]string{"Accept": "application/json"})
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	var wire struct {
		UI struct {
			Nodes []json.RawMessage `json:"nodes"`
		} `json:"ui"`
	}
	require.NoError(t, json.Unmarshal(r.body, &wire))
	var node json.RawMessage
	for _, n := range wire.UI.Nodes {
		if strings.Contains(string(n), `"type":"script"`) {
			require.Nil(t, node, "one script node")
			node = n
		}
	}
	require.NotNil(t, node, "the browser flow carries the script node: %s", r.body)

	var f flow.Flow
	require.NoError(t, json.Unmarshal(r.body, &f))
	var script flow.Node
	for _, n := range f.UI.Nodes {
		if n.Type == "script" {
			script = n
		}
	}
	nonce := script.Attributes.Nonce
	_, ok := uuid.Parse(nonce)
	assert.True(t, ok, "the nonce is a UUID: %q", nonce)

	// The attributes of CONTRACT-PASSKEY §2.7, plus the name "" and
	// disabled false every node's attributes carry (UIs go by node_type).
	golden := `{"type":"script","group":"webauthn","attributes":{"name":"","type":"text/javascript","disabled":false,"node_type":"script",` +
		`"src":"` + src + `","async":true,"referrerpolicy":"no-referrer","crossorigin":"anonymous",` +
		`"integrity":"` + integrity + `","id":"webauthn_script",` +
		`"nonce":"` + nonce + `"},"messages":[],"meta":{}}`
	assert.Equal(t, golden, string(node))

	// The node survives the flow store: fetched again, it is the same.
	again := e.do(c, http.MethodGet, "/self-service/login/flows?id="+f.ID, nil, nil)
	require.Equal(t, http.StatusOK, again.status, "body: %s", again.body)
	assert.Contains(t, string(again.body), golden)

	// What the integrity attribute promises is what src serves.
	served := e.do(e.api(), http.MethodGet, strings.TrimPrefix(script.Attributes.Src, e.srv.URL), nil, nil)
	require.Equal(t, http.StatusOK, served.status)
	servedSum := sha512.Sum512(served.body)
	assert.Equal(t, script.Attributes.Integrity, "sha512-"+base64.StdEncoding.EncodeToString(servedSum[:]))

	m.mu.Lock()
	second := m.second
	m.mu.Unlock()
	assert.NotEqual(t, nonce, second.Attributes.Nonce, "every call has a fresh nonce")
	_, ok = uuid.Parse(second.Attributes.Nonce)
	assert.True(t, ok, "the nonce is a UUID: %q", second.Attributes.Nonce)
	second.Attributes.Nonce = nonce
	assert.Equal(t, script, second, "apart from the nonce, every call returns the same node")

	api := e.apiFlow("")
	for _, n := range api.UI.Nodes {
		assert.NotEqual(t, "script", n.Type, "an API flow has no script node")
	}
}

func TestScriptNodeJSONRoundTrip(t *testing.T) {
	n := flow.NewScript("webauthn", "webauthn_script", "https://auth.example.com/s.js?v=1", "sha512-x", "n")
	b, err := json.Marshal(n)
	require.NoError(t, err)
	assert.Equal(t, `{"type":"script","group":"webauthn","attributes":{"name":"","type":"text/javascript","disabled":false,"node_type":"script",`+
		`"src":"https://auth.example.com/s.js?v=1","async":true,"referrerpolicy":"no-referrer","crossorigin":"anonymous","integrity":"sha512-x",`+
		`"id":"webauthn_script","nonce":"n"},"messages":[],"meta":{}}`, string(b))
	var back flow.Node
	require.NoError(t, json.Unmarshal(b, &back))
	assert.Equal(t, n, back)

	input, err := json.Marshal(flow.NewInput(flow.GroupDefault, "csrf_token", "hidden", "t", true))
	require.NoError(t, err)
	assert.Equal(t, `{"type":"input","group":"default","attributes":{"name":"csrf_token","type":"hidden","value":"t",`+
		`"required":true,"disabled":false,"node_type":"input"},"messages":[],"meta":{}}`, string(input),
		"input nodes are encoded as before")
}
