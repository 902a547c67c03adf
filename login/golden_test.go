package login_test

// Golden files pinning the wire shapes (CONTRACT Part 2 §4). Volatile
// values are normalised before comparing: the public URL (its port) becomes
// "{public}", UUIDs "<uuid:N>" (numbered by first occurrence, so equal ids
// stay equal), the csrf_token node's value "<csrf>", session tokens
// "<session_token>". Times come from the test clock and are kept.
//
// Rewrite the files with: go test ./login -run Golden -update
// and then read every changed file against CONTRACT §4 before committing.

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

var goldenUUID = regexp.MustCompile(`[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}`)

// goldenNormalizer replaces volatile values of one response.
type goldenNormalizer struct {
	public string
	ids    map[string]string
}

func (n *goldenNormalizer) value(v any) any {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys) // a stable order for numbering the UUIDs
		out := make(map[string]any, len(x))
		for _, k := range keys {
			switch s, _ := x[k].(string); {
			case k == "session_token" && s != "":
				out[k] = "<session_token>"
			case k == "value" && x["name"] == "csrf_token" && s != "":
				out[k] = "<csrf>"
			default:
				out[k] = n.value(x[k])
			}
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, c := range x {
			out[i] = n.value(c)
		}
		return out
	case string:
		s := strings.ReplaceAll(x, n.public, "{public}")
		s = strings.ReplaceAll(s, url.QueryEscape(n.public), url.QueryEscape("{public}"))
		return goldenUUID.ReplaceAllStringFunc(s, func(id string) string {
			id = strings.ToLower(id)
			if _, ok := n.ids[id]; !ok {
				n.ids[id] = fmt.Sprintf("<uuid:%d>", len(n.ids)+1)
			}
			return n.ids[id]
		})
	default:
		return v
	}
}

// goldenCompare compares body, normalised, with testdata/<name>.json, or
// rewrites that file with -update.
func goldenCompare(t *testing.T, e *env, name string, body []byte) {
	t.Helper()
	var v any
	require.NoError(t, json.Unmarshal(body, &v), "body: %s", body)
	n := &goldenNormalizer{public: e.srv.URL, ids: map[string]string{}}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // keep "<uuid:1>" readable in the files
	enc.SetIndent("", "  ")
	require.NoError(t, enc.Encode(n.value(v)))
	got := buf.Bytes()
	path := filepath.Join("testdata", name+".json")
	if *update {
		require.NoError(t, os.MkdirAll("testdata", 0o755))
		require.NoError(t, os.WriteFile(path, got, 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "missing golden file; run with -update")
	assert.JSONEq(t, string(want), string(got), "golden %s", path)
}

func TestGolden(t *testing.T) {
	tests := []struct {
		name string
		// run makes the response; status and the kind of body are checked
		// by the test, the shape by the golden file.
		run func(t *testing.T, e *env) *result
		// status is the expected status; envelope selects the envelope
		// headers rather than the flow/session ones.
		status   int
		envelope string // error id for envelopes ("" for none); "-" for bodies
	}{
		{
			name: "browser_flow",
			run: func(t *testing.T, e *env) *result {
				return e.do(e.browser(), http.MethodGet, "/self-service/login/browser?return_to="+url.QueryEscape("https://app.example.com/after"), nil, bbAcceptJSON)
			},
			status: http.StatusOK, envelope: "-",
		},
		{
			name: "api_flow",
			run: func(t *testing.T, e *env) *result {
				return e.do(e.api(), http.MethodGet, "/self-service/login/api", nil, nil)
			},
			status: http.StatusOK, envelope: "-",
		},
		{
			name: "api_flow_wrong_password",
			run: func(t *testing.T, e *env) *result {
				f := e.apiFlow("")
				e.clock.Advance(time.Minute) // updated_at moves, issued_at does not
				return e.submitJSON(e.api(), f.ID, credentials(testIdentifier, "wrong password", ""), nil)
			},
			status: http.StatusBadRequest, envelope: "-",
		},
		{
			name: "api_flow_missing_fields",
			run: func(t *testing.T, e *env) *result {
				f := e.apiFlow("")
				e.clock.Advance(time.Minute)
				return e.submitJSON(e.api(), f.ID, credentials("", "", ""), nil)
			},
			status: http.StatusBadRequest, envelope: "-",
		},
		{
			name: "api_success",
			run: func(t *testing.T, e *env) *result {
				f := e.apiFlow("")
				e.clock.Advance(time.Minute) // the session's times are the login's
				return e.submitJSON(e.api(), f.ID, credentials(testIdentifier, testPassword, ""), nil)
			},
			status: http.StatusOK, envelope: "-",
		},
		{
			name: "browser_success_json",
			run: func(t *testing.T, e *env) *result {
				c := e.browser()
				f := e.browserFlow(c, "?return_to="+url.QueryEscape("https://app.example.com/after"))
				return e.submitJSON(c, f.ID, credentials(testIdentifier, testPassword, csrfToken(f)), nil)
			},
			status: http.StatusOK, envelope: "-",
		},
		{
			name: "whoami_session",
			run: func(t *testing.T, e *env) *result {
				tok := e.loginAPI()
				return e.do(e.api(), http.MethodGet, "/sessions/whoami", nil, map[string]string{"X-Session-Token": tok})
			},
			status: http.StatusOK, envelope: "-",
		},
		{
			name: "error_session_already_available",
			run: func(t *testing.T, e *env) *result {
				tok := e.loginAPI()
				return e.do(e.api(), http.MethodGet, "/self-service/login/api", nil, map[string]string{"X-Session-Token": tok})
			},
			status: http.StatusBadRequest, envelope: "session_already_available",
		},
		{
			name: "error_security_identity_mismatch",
			run: func(t *testing.T, e *env) *result {
				return e.do(e.api(), http.MethodGet, "/self-service/login/api?return_to="+url.QueryEscape("https://evil.example.net/"), nil, nil)
			},
			status: http.StatusBadRequest, envelope: "security_identity_mismatch",
		},
		{
			name: "error_csrf_violation",
			run: func(t *testing.T, e *env) *result {
				f := e.browserFlow(e.browser(), "")
				return e.do(e.api(), http.MethodGet, "/self-service/login/flows?id="+f.ID, nil, nil)
			},
			status: http.StatusForbidden, envelope: "security_csrf_violation",
		},
		{
			name: "error_flow_expired_fetch",
			run: func(t *testing.T, e *env) *result {
				c := e.browser()
				f := e.browserFlow(c, "?return_to="+url.QueryEscape("https://app.example.com/after"))
				e.clock.Advance(time.Hour + time.Second)
				return e.do(c, http.MethodGet, "/self-service/login/flows?id="+f.ID, nil, nil)
			},
			status: http.StatusGone, envelope: "self_service_flow_expired",
		},
		{
			name: "error_flow_expired_fetch_api",
			run: func(t *testing.T, e *env) *result {
				f := e.apiFlow("")
				e.clock.Advance(time.Hour + time.Second)
				return e.do(e.api(), http.MethodGet, "/self-service/login/flows?id="+f.ID, nil, nil)
			},
			status: http.StatusGone, envelope: "self_service_flow_expired",
		},
		{
			name: "error_not_found",
			run: func(t *testing.T, e *env) *result {
				return e.do(e.api(), http.MethodGet, "/self-service/login/flows?id=8b59d370-e415-441a-9116-b8d780619e54", nil, nil)
			},
			status: http.StatusNotFound, envelope: "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			r := tt.run(t, e)
			if tt.envelope == "-" {
				bbBody(t, r, tt.status)
			} else {
				bbEnvelope(t, r, tt.status, tt.envelope)
			}
			goldenCompare(t, e, tt.name, r.body)
		})
	}
}
