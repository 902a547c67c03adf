package login_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/login"
)

// Limits of submitted bodies (body.go: MaxFormFields, MaxJSONDepth): a
// submission with up to MaxFormFields fields, nested up to MaxJSONDepth
// levels, is an ordinary submission; one more field or level is
// undecodable, a 400 flow message 4000001 whose text names the limit.
// Checked for API flows with JSON and with form bodies, and for browser
// flows with form bodies (303 to the login UI, the flow carrying the
// message).

const formContentType = "application/x-www-form-urlencoded"

// limitFormBody returns a form body with exactly n fields: method,
// identifier, password, csrf_token (when csrf is not empty) and padding.
func limitFormBody(n int, csrf string, extra url.Values) string {
	parts := []string{"method=password", "identifier=" + url.QueryEscape(testIdentifier), "password=" + url.QueryEscape(testPassword)}
	if csrf != "" {
		parts = append(parts, "csrf_token="+url.QueryEscape(csrf))
	}
	for k, vs := range extra {
		for _, v := range vs {
			parts = append(parts, url.QueryEscape(k)+"="+url.QueryEscape(v))
		}
	}
	for i := 0; len(parts) < n; i++ {
		parts = append(parts, "pad"+strconv.Itoa(i)+"=x")
	}
	if len(parts) != n {
		panic(fmt.Sprintf("limitFormBody: %d fixed fields, more than %d", len(parts), n))
	}
	return strings.Join(parts, "&")
}

// limitJSONBody returns a JSON object with exactly n keys: the credentials
// and padding; extra keys are added first.
func limitJSONBody(n int, extra map[string]any) map[string]any {
	b := credentials(testIdentifier, testPassword, "")
	delete(b, "csrf_token")
	for k, v := range extra {
		b[k] = v
	}
	for i := 0; len(b) < n; i++ {
		b["pad"+strconv.Itoa(i)] = i
	}
	return b
}

// limitObject is a JSON object nested levels deep: {"a":{"a":...{}}}.
func limitObject(levels int) json.RawMessage {
	return json.RawMessage(strings.Repeat(`{"a":`, levels-1) + "{}" + strings.Repeat("}", levels-1))
}

// limitArray is a JSON array nested levels deep: [[...[1]...]].
func limitArray(levels int) json.RawMessage {
	return json.RawMessage(strings.Repeat("[", levels) + "1" + strings.Repeat("]", levels))
}

// limitSubmitForm posts body as a form to the API flow id.
func limitSubmitForm(e *env, id, body string) *result {
	e.t.Helper()
	return e.do(e.api(), http.MethodPost, "/self-service/login?flow="+id, strings.NewReader(body),
		map[string]string{"Content-Type": formContentType})
}

// limitWantSuccess asserts an API-flow login succeeded.
func limitWantSuccess(t *testing.T, r *result) {
	t.Helper()
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	assert.NotEmpty(t, r.json(t)["session_token"], "body: %s", r.body)
}

// limitWantRefused asserts r is the 400 flow with the single flow message
// 4000001, whose text names the limit.
func limitWantRefused(t *testing.T, r *result, limit int) {
	t.Helper()
	require.Equal(t, http.StatusBadRequest, r.status, "body: %s", r.body)
	limitWantMessage(t, r.flow(t), limit)
}

func limitWantMessage(t *testing.T, f flow.Flow, limit int) {
	t.Helper()
	require.Len(t, f.UI.Messages, 1, "messages: %+v", f.UI.Messages)
	m := f.UI.Messages[0]
	assert.Equal(t, flow.IDGeneric, m.ID)
	assert.Equal(t, "error", m.Type)
	assert.Contains(t, m.Text, strconv.Itoa(limit), "the text names the limit")
}

func TestLimitsConstants(t *testing.T) {
	assert.Equal(t, 64, login.MaxFormFields)
	assert.Equal(t, 32, login.MaxJSONDepth)
}

func TestLimitsFormFieldsAPIFlow(t *testing.T) {
	e := newEnv(t)
	limitWantSuccess(t, limitSubmitForm(e, e.apiFlow("").ID, limitFormBody(login.MaxFormFields, "", nil)))
	limitWantRefused(t, limitSubmitForm(e, e.apiFlow("").ID, limitFormBody(login.MaxFormFields+1, "", nil)), login.MaxFormFields)
}

func TestLimitsFormFieldsBrowserFlow(t *testing.T) {
	for _, tt := range []struct {
		fields int
		ok     bool
	}{{login.MaxFormFields, true}, {login.MaxFormFields + 1, false}} {
		t.Run(strconv.Itoa(tt.fields), func(t *testing.T) {
			e := newEnv(t)
			c := e.browser()
			f := e.browserFlow(c, "")
			r := e.do(c, http.MethodPost, "/self-service/login?flow="+f.ID,
				strings.NewReader(limitFormBody(tt.fields, csrfToken(f), nil)),
				map[string]string{"Content-Type": formContentType})
			require.Equal(t, http.StatusSeeOther, r.status, "body: %s", r.body)
			if tt.ok {
				assert.Equal(t, defaultReturn, r.header.Get("Location"))
				return
			}
			assert.Equal(t, loginUI+"?flow="+f.ID, r.header.Get("Location"))
			fetched := e.do(c, http.MethodGet, "/self-service/login/flows?id="+f.ID, nil, nil)
			require.Equal(t, http.StatusOK, fetched.status, "body: %s", fetched.body)
			limitWantMessage(t, fetched.flow(t), login.MaxFormFields)
		})
	}
}

func TestLimitsJSONFields(t *testing.T) {
	e := newEnv(t)
	limitWantSuccess(t, e.submitJSON(e.api(), e.apiFlow("").ID, limitJSONBody(login.MaxFormFields, nil), nil))
	limitWantRefused(t, e.submitJSON(e.api(), e.apiFlow("").ID, limitJSONBody(login.MaxFormFields+1, nil), nil), login.MaxFormFields)
}

// TestLimitsJSONDepth: the body object is level 1, so a transient_payload
// (or padding value) nested MaxJSONDepth-1 levels makes a body nested
// exactly MaxJSONDepth deep.
func TestLimitsJSONDepth(t *testing.T) {
	for _, tt := range []struct {
		name  string
		key   string
		value func(levels int) json.RawMessage
	}{
		{"transient_payload", "transient_payload", limitObject},
		{"padding key array", "pad", limitArray},
		{"padding key object", "pad", limitObject},
	} {
		for _, depth := range []int{login.MaxJSONDepth, login.MaxJSONDepth + 1} {
			t.Run(fmt.Sprintf("%s/%d", tt.name, depth), func(t *testing.T) {
				e := newEnv(t)
				body := limitJSONBody(0, map[string]any{tt.key: tt.value(depth - 1)})
				r := e.submitJSON(e.api(), e.apiFlow("").ID, body, nil)
				if depth <= login.MaxJSONDepth {
					limitWantSuccess(t, r)
				} else {
					limitWantRefused(t, r, login.MaxJSONDepth)
				}
			})
		}
	}
}

// TestLimitsFormTransientPayloadDepth: a form's transient_payload is JSON
// too, and the depth limit must hold for it as for a JSON body. The same
// submission sent as JSON, {"transient_payload": X}, is one level deeper
// than X, so X nested MaxJSONDepth-1 levels is accepted either way, and X
// nested MaxJSONDepth+1 levels is refused either way. (X nested exactly
// MaxJSONDepth levels is refused as JSON; whether a form counts the form
// itself as a level is left to the fix and not tested here.)
func TestLimitsFormTransientPayloadDepth(t *testing.T) {
	for _, tt := range []struct {
		levels int
		ok     bool
	}{{login.MaxJSONDepth - 1, true}, {login.MaxJSONDepth + 1, false}, {200, false}} {
		t.Run(strconv.Itoa(tt.levels), func(t *testing.T) {
			e := newEnv(t)
			extra := url.Values{"transient_payload": {string(limitObject(tt.levels))}}
			r := limitSubmitForm(e, e.apiFlow("").ID, limitFormBody(4, "", extra))
			if tt.ok {
				limitWantSuccess(t, r)
			} else {
				limitWantRefused(t, r, login.MaxJSONDepth)
			}
		})
	}
}

// An empty transient_payload counts as absent, as every empty JSON string
// does.
func TestLimitsEmptyTransientPayloadIsAbsent(t *testing.T) {
	e := newEnv(t)
	f := e.apiFlow("")
	body := credentials(testIdentifier, testPassword, "")
	body["transient_payload"] = ""
	r := e.submitJSON(e.api(), f.ID, body, nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
}

// Request data that ends up stored is bounded: a submitted value echoed
// into the flow, a session's User-Agent and a Content-Type quoted in a
// flow message are cut, whatever the client sends within the body and
// header limits. Before, a 900 KB identifier was stored in the flow for a
// day.
func TestStoredRequestDataIsBounded(t *testing.T) {
	e := newEnv(t)
	f := e.apiFlow("")
	huge := strings.Repeat("é", 450_000) // 900 KB, under MaxBodyBytes
	r := e.submitJSON(e.api(), f.ID, credentials(huge+"@example.com", "wrong", ""), nil)
	require.Equal(t, http.StatusBadRequest, r.status, "body: %.300s", r.body)
	stored, err := e.flows.Flow(t.Context(), f.ID)
	require.NoError(t, err)
	echoed, _ := stored.Flow.UI.Node("identifier").Attributes.Value.(string)
	assert.LessOrEqual(t, len(echoed), login.MaxEchoedValueLength)
	assert.Greater(t, len(echoed), login.MaxEchoedValueLength-2, "cut at the limit, on a character boundary")
	assert.True(t, utf8.ValidString(echoed), "cut on a character boundary")
	assert.True(t, strings.HasPrefix(huge, echoed), "the start of what was typed")

	r = e.do(e.api(), http.MethodPost, "/self-service/login?flow="+f.ID, strings.NewReader("x"),
		map[string]string{"Content-Type": "text/" + strings.Repeat("x", 100_000)})
	require.Equal(t, http.StatusBadRequest, r.status)
	stored, err = e.flows.Flow(t.Context(), f.ID)
	require.NoError(t, err)
	require.Len(t, stored.Flow.UI.Messages, 1)
	assert.Less(t, len(stored.Flow.UI.Messages[0].Text), 512, "the quoted Content-Type is cut")

	r = e.submitJSON(e.api(), e.apiFlow("").ID, credentials(testIdentifier, testPassword, ""),
		map[string]string{"User-Agent": strings.Repeat("Mozilla/5.0 ", 50_000)})
	require.Equal(t, http.StatusOK, r.status)
	id, _ := r.json(t)["session"].(map[string]any)["id"].(string)
	s, err := e.sessions.Session(t.Context(), id)
	require.NoError(t, err)
	require.Len(t, s.Session.Devices, 1)
	assert.Len(t, s.Session.Devices[0].UserAgent, login.MaxUserAgentLength, "the stored User-Agent is cut")
}
