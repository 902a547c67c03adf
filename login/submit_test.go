package login_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/internal/uuid"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/login/password"
)

// Submit — errors: CONTRACT Part 1 §G steps 1 to 13 and Part 2 §3.2 rows
// 1 to 18 as Part 1 changes them.

// TestSubmitBodyTooLarge: Part 1 rule 15 and §G step 1. A body over 1 MiB is
// refused with 413 and the generic envelope before the flow is loaded, for
// JSON and form requests alike (never a redirect).
func TestSubmitBodyTooLarge(t *testing.T) {
	big := strings.Repeat("p", login.MaxBodyBytes)
	jsonBody := `{"method":"password","identifier":"alice@example.com","password":"` + big + `"}`
	formBody := "method=password&identifier=alice%40example.com&password=" + big
	tests := []struct {
		name    string
		target  string // "api", "browser", "unknown" (a well-formed unknown id) or "none" (no flow param)
		header  map[string]string
		body    string
		chunked bool // no Content-Length: the limit must hold while reading
	}{
		{"json to an api flow", "api", map[string]string{"Content-Type": "application/json"}, jsonBody, false},
		{"json to an api flow without content length", "api", map[string]string{"Content-Type": "application/json"}, jsonBody, true},
		{"form to a browser flow", "browser", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, formBody, false},
		{"form to a browser flow without content length", "browser", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, formBody, true},
		{"spa json to a browser flow", "browser", map[string]string{"Content-Type": "application/json", "Accept": "application/json"}, jsonBody, false},
		{"json to an unknown flow id", "unknown", map[string]string{"Content-Type": "application/json"}, jsonBody, false},
		{"form to an unknown flow id", "unknown", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, formBody, false},
		{"form without a flow param", "none", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, formBody, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			var id string
			c := e.api()
			switch tt.target {
			case "api":
				id = e.apiFlow("").ID
			case "browser":
				c = e.browser()
				id = e.browserFlow(c, "").ID
			case "unknown":
				id = uuid.New()
			}
			path := "/self-service/login"
			if tt.target != "none" {
				path += "?flow=" + id
			}
			var body io.Reader = strings.NewReader(tt.body)
			if tt.chunked {
				body = io.MultiReader(body) // hides the length: chunked encoding
			}
			r := e.do(c, http.MethodPost, path, body, tt.header)

			subAssertNoCache(t, r)
			require.Equal(t, http.StatusRequestEntityTooLarge, r.status, "body: %.300s", r.body)
			assert.Equal(t, subJSONErrorType, r.header.Get("Content-Type"))
			assert.Empty(t, r.header.Get("Location"))
			require.Contains(t, r.header, "Ory-Error-Id")
			assert.Empty(t, r.header.Get("Ory-Error-Id"))
			obj := subErr(r.json(t))
			require.NotNil(t, obj, "body: %s", r.body)
			assert.NotContains(t, obj, "id", "the generic envelope has no id")
			assert.EqualValues(t, http.StatusRequestEntityTooLarge, obj["code"])
			assert.Equal(t, http.StatusText(http.StatusRequestEntityTooLarge), obj["status"])
			assert.NotEmpty(t, obj["message"])
			if tt.target == "api" || tt.target == "browser" {
				rec := subStored(t, e, id)
				assert.Empty(t, rec.Flow.UI.Messages, "the flow is not touched")
				assert.Equal(t, flow.StateChooseMethod, rec.Flow.State)
			}
			assert.Empty(t, subSessions(t, e, e.identity.ID))
		})
	}
}

// TestSubmitBodyAtTheLimit: a body of exactly 1 MiB is read and logs in.
func TestSubmitBodyAtTheLimit(t *testing.T) {
	e := newEnv(t)
	f := e.apiFlow("")
	fields := map[string]string{"method": "password", "identifier": testIdentifier, "password": testPassword, "pad": ""}
	b, err := json.Marshal(fields)
	require.NoError(t, err)
	fields["pad"] = strings.Repeat("x", login.MaxBodyBytes-len(b))
	b, err = json.Marshal(fields)
	require.NoError(t, err)
	require.Len(t, b, login.MaxBodyBytes)

	r := e.do(e.api(), http.MethodPost, "/self-service/login?flow="+f.ID, bytes.NewReader(b), map[string]string{"Content-Type": "application/json"})
	assert.Equal(t, http.StatusOK, r.status, "body: %.300s", r.body)
}

// subMsg is an expected message as it arrives on the wire (numbers in
// context decode as float64).
func subMsg(id int, text string, ctx map[string]any) flow.Message {
	return flow.Message{ID: id, Text: text, Type: "error", Context: ctx}
}

func subTooLong(max, actual int) flow.Message {
	return subMsg(4000017, fmt.Sprintf("length must be <= %d, but got %d", max, actual),
		map[string]any{"max_length": float64(max), "actual_length": float64(actual)})
}

func subMissing(property string) flow.Message {
	return subMsg(4000002, "Property "+property+" is missing.", map[string]any{"property": property})
}

var subBadChars = subMsg(4019002, subBadCharsText, nil)

// TestSubmitFieldValidation: Part 1 rule 15 and §G step 7, Part 2 row 10
// and §12 35-37. Field messages go on their nodes, all together; the
// identifier is echoed as received, the password never.
func TestSubmitFieldValidation(t *testing.T) {
	id513 := strings.Repeat("a", 501) + "@example.com"
	tests := []struct {
		name       string
		identifier any // nil: not sent
		password   any
		identMsgs  []flow.Message
		passMsgs   []flow.Message
	}{
		{"identifier of 513 bytes is too long", id513, testPassword, []flow.Message{subTooLong(512, 513)}, nil},
		{"password of 4097 bytes is too long", testIdentifier, strings.Repeat("p", 4097), nil, []flow.Message{subTooLong(4096, 4097)}},
		{"length is counted in bytes, not characters", strings.Repeat("é", 257), testPassword, []flow.Message{subTooLong(512, 514)}, nil},
		{"zero-width space in the identifier is refused", "ali\u200bce@example.com", testPassword, []flow.Message{subBadChars}, nil},
		{"bidi override in the identifier is refused", "\u202eabc", testPassword, []flow.Message{subBadChars}, nil},
		{"control character in the identifier is refused", "alice\u0007@example.com", testPassword, []flow.Message{subBadChars}, nil},
		{"byte order mark in the identifier is refused", "\ufeffalice@example.com", testPassword, []flow.Message{subBadChars}, nil},
		{"soft hyphen (default-ignorable) in the identifier is refused", "ali\u00adce@example.com", testPassword, []flow.Message{subBadChars}, nil},
		{"missing identifier and too long password are reported together", nil, strings.Repeat("p", 4097), []flow.Message{subMissing("identifier")}, []flow.Message{subTooLong(4096, 4097)}},
		{"invalid identifier and missing password are reported together", "\u202eabc", nil, []flow.Message{subBadChars}, []flow.Message{subMissing("password")}},
		{"too long identifier with invalid characters gets both messages", strings.Repeat("a", 510) + "\u200b", testPassword, []flow.Message{subTooLong(512, 513), subBadChars}, nil},
		{"missing identifier", nil, testPassword, []flow.Message{subMissing("identifier")}, nil},
		{"missing password", "  ALICE@Example.com ", nil, nil, []flow.Message{subMissing("password")}},
		{"empty strings are missing, not too short", "", "", []flow.Message{subMissing("identifier")}, []flow.Message{subMissing("password")}},
		{"both absent", nil, nil, []flow.Message{subMissing("identifier")}, []flow.Message{subMissing("password")}},
	}
	for _, kind := range subKinds {
		for _, tt := range tests {
			t.Run(string(kind)+"/"+tt.name, func(t *testing.T) {
				e := newEnv(t)
				s := subStart(t, e, kind, "")
				fields := s.creds("", "")
				fields["identifier"], fields["password"] = tt.identifier, tt.password

				got := s.wantFlow(t, s.submit(t, fields, nil))
				f := got.flow(t)
				assert.Empty(t, f.UI.Messages, "field errors are on the nodes only")
				assert.NotContains(t, got.json(t)["ui"], "messages", "ui.messages is omitted when empty")
				assert.ElementsMatch(t, tt.identMsgs, subNode(t, f, "identifier").Messages, "identifier messages")
				assert.ElementsMatch(t, tt.passMsgs, subNode(t, f, "password").Messages, "password messages")
				assert.Empty(t, subNode(t, f, "csrf_token").Messages)
				assert.Empty(t, subNode(t, f, "method").Messages)
				assert.Len(t, f.UI.Nodes, 4)
				wantValue := ""
				if s, ok := tt.identifier.(string); ok {
					wantValue = s
				}
				assert.Equal(t, wantValue, subNode(t, f, "identifier").Attributes.Value, "identifier echoed as received")
				subAssertNoPasswordValue(t, got)
				assert.Empty(t, subSessions(t, e, e.identity.ID))
			})
		}
	}
}

// TestSubmitFieldLimitsInclusive: 512-byte identifiers and 4096-byte
// passwords are allowed and reach the credential check.
func TestSubmitFieldLimitsInclusive(t *testing.T) {
	for _, kind := range subKinds {
		t.Run(string(kind), func(t *testing.T) {
			e := newEnv(t)
			s := subStart(t, e, kind, "")
			f := s.wantFlow(t, s.submit(t, s.creds(strings.Repeat("a", 500)+"@example.com", strings.Repeat("p", 4096)), nil)).flow(t)
			subOnlyMessage(t, f, 4000006, subInvalidCredsText)
		})
	}
}

// subAssertNoPasswordValue checks that the password node of a flow body has
// no value key at all.
func subAssertNoPasswordValue(t testing.TB, r *result) {
	t.Helper()
	ui, _ := r.json(t)["ui"].(map[string]any)
	nodes, _ := ui["nodes"].([]any)
	found := false
	for _, n := range nodes {
		attrs, _ := n.(map[string]any)["attributes"].(map[string]any)
		if attrs["name"] == "password" {
			found = true
			assert.NotContains(t, attrs, "value", "the password is never echoed")
		}
	}
	assert.True(t, found, "no password node in %s", r.body)
}

// TestSubmitMessagesReplaced: §12 38. Each submit replaces the messages of
// the one before (container and nodes).
func TestSubmitMessagesReplaced(t *testing.T) {
	for _, kind := range subKinds {
		t.Run(string(kind), func(t *testing.T) {
			e := newEnv(t)
			s := subStart(t, e, kind, "")

			fields := s.creds("", testPassword)
			f := s.wantFlow(t, s.submit(t, fields, nil)).flow(t)
			require.Equal(t, []flow.Message{subMissing("identifier")}, subNode(t, f, "identifier").Messages)

			f = s.wantFlow(t, s.submit(t, s.creds(testIdentifier, "wrong password"), nil)).flow(t)
			subOnlyMessage(t, f, 4000006, subInvalidCredsText)
			assert.Equal(t, testIdentifier, subNode(t, f, "identifier").Attributes.Value)

			got := s.wantFlow(t, s.submit(t, s.creds("bob@example.com", ""), nil))
			f = got.flow(t)
			assert.Empty(t, f.UI.Messages, "the container message of the previous submit is gone")
			assert.Empty(t, subNode(t, f, "identifier").Messages)
			assert.Equal(t, []flow.Message{subMissing("password")}, subNode(t, f, "password").Messages)
			assert.Equal(t, "bob@example.com", subNode(t, f, "identifier").Attributes.Value)
		})
	}
}

// TestSubmitFlowIDErrors: Part 2 rows 1 and 2 (§12 30-31). JSON requests
// get the envelope; forms go to the error UI with a fetchable error.
func TestSubmitFlowIDErrors(t *testing.T) {
	jsonHeader := map[string]string{"Content-Type": "application/json", "Accept": "application/json"}
	formHeader := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	formAcceptJSON := map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
	const missing = "The flow query parameter is missing or malformed."
	tests := []struct {
		name       string
		query      string // "UNKNOWN" is replaced by a fresh, unknown UUID
		header     map[string]string
		wantJSON   bool
		wantStatus int
		wantReason string // "" means no reason key
		wantMsg    string
	}{
		{"json without flow param is 400", "", jsonHeader, true, 400, missing, subMsgBadRequest},
		{"json with empty flow param is 400", "?flow=", jsonHeader, true, 400, missing, subMsgBadRequest},
		{"json with malformed flow id is 400", "?flow=not-a-uuid", jsonHeader, true, 400, missing, subMsgBadRequest},
		{"json with unknown flow id is 404", "?flow=UNKNOWN", jsonHeader, true, 404, "", "Unable to locate the resource"},
		{"form without flow param goes to the error UI", "", formHeader, false, 400, missing, subMsgBadRequest},
		{"form with malformed flow id goes to the error UI", "?flow=not-a-uuid", formHeader, false, 400, missing, subMsgBadRequest},
		{"form with unknown flow id goes to the error UI", "?flow=UNKNOWN", formHeader, false, 404, "", "Unable to locate the resource"},
		{"form asking for JSON with unknown flow id is 404", "?flow=UNKNOWN", formAcceptJSON, true, 404, "", "Unable to locate the resource"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			body := `{"method":"password","identifier":"alice@example.com","password":"x"}`
			if tt.header["Content-Type"] != "application/json" {
				body = "method=password&identifier=alice%40example.com&password=x"
			}
			q := strings.Replace(tt.query, "UNKNOWN", uuid.New(), 1)
			r := e.do(e.browser(), http.MethodPost, "/self-service/login"+q, strings.NewReader(body), tt.header)
			obj := subErr(subWantError(t, e, r, tt.wantStatus, tt.wantJSON))
			assert.NotContains(t, obj, "id")
			if tt.wantReason == "" {
				assert.NotContains(t, obj, "reason")
			} else {
				assert.Equal(t, tt.wantReason, obj["reason"])
			}
			assert.Equal(t, tt.wantMsg, obj["message"])
		})
	}
}

// subAPIFlowWith creates an API flow sending header (e.g. a session token).
func subAPIFlowWith(t testing.TB, e *env, query string, header map[string]string) flow.Flow {
	t.Helper()
	r := e.do(e.api(), http.MethodGet, "/self-service/login/api"+query, nil, header)
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	return r.flow(t)
}

// TestSubmitAlreadySignedIn: Part 1 rule 6 (replacing Part 2 row 3 and §12
// 73-74). API flows and JSON requests get the session_already_available
// envelope; a browser form goes to the default return URL, even when the
// flow has a return_to. No second session is made.
func TestSubmitAlreadySignedIn(t *testing.T) {
	const returnTo = "?return_to=https%3A%2F%2Fapp.example.com%2Fdash"
	tests := []struct {
		name   string
		kind   subKind
		header func(token string) map[string]string
	}{
		{"api flow with X-Session-Token", subAPI, func(tok string) map[string]string { return map[string]string{"X-Session-Token": tok} }},
		{"api flow with Authorization Bearer", subAPI, func(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }},
		{"spa with the session cookie", subSPA, nil},
		{"browser form with the session cookie", subForm, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			var s *subClient
			var header map[string]string
			if tt.kind == subAPI {
				s = subStart(t, e, subAPI, returnTo)
				header = tt.header(e.loginAPI())
			} else {
				c := e.browser()
				s = subStartBrowser(t, e, tt.kind, c, returnTo) // created before the login
				e.loginBrowser(c)
			}
			require.Len(t, subSessions(t, e, e.identity.ID), 1)

			r := s.submit(t, s.creds(testIdentifier, testPassword), header)
			if tt.kind == subForm {
				subAssertNoCache(t, r)
				require.Equal(t, http.StatusSeeOther, r.status, "body: %s", r.body)
				assert.Equal(t, defaultReturn, r.header.Get("Location"), "the default return URL, not the flow's return_to")
			} else {
				obj := subErr(s.wantError(t, r, http.StatusBadRequest))
				assert.Equal(t, "session_already_available", obj["id"])
				assert.Equal(t, "you are already logged in", obj["message"])
				assert.Equal(t, subAlreadyReason, obj["reason"])
			}
			assert.Nil(t, r.cookie(subSessionCookie), "no new session cookie")
			assert.Len(t, subSessions(t, e, e.identity.ID), 1, "no second session")
		})
	}
}

// TestSubmitAAL2WithoutSession: Part 2 row 4 (§12 43). A flow asking for
// aal2 whose session is gone answers 401 session_aal1_required.
func TestSubmitAAL2WithoutSession(t *testing.T) {
	for _, kind := range subKinds {
		t.Run(string(kind), func(t *testing.T) {
			e := newEnv(t)
			var s *subClient
			var header map[string]string
			if kind == subAPI {
				tok := e.loginAPI()
				header = map[string]string{"X-Session-Token": tok}
				s = &subClient{e: e, kind: kind, c: e.api(), flow: subAPIFlowWith(t, e, "?aal=aal2", header)}
			} else {
				c := e.browser()
				e.loginBrowser(c)
				s = subStartBrowser(t, e, kind, c, "?aal=aal2")
			}
			require.Equal(t, "aal2", s.flow.RequestedAAL)
			_, err := e.sessions.RevokeSessions(context.Background(), e.identity.ID)
			require.NoError(t, err)

			obj := subErr(s.wantError(t, s.submit(t, s.creds(testIdentifier, testPassword), header), http.StatusUnauthorized))
			assert.Equal(t, "session_aal1_required", obj["id"])
			assert.Equal(t, "You can not requested a higher AAL (AAL2/AAL3) without an active session.", obj["reason"])
			assert.Equal(t, "aal2 and aal3 can only be requested if a session exists already", obj["message"])
		})
	}
}

// TestSubmitAAL2WithSession: Part 2 row 8 (§12 44). The password method
// cannot satisfy aal2: 4010002 on the flow.
func TestSubmitAAL2WithSession(t *testing.T) {
	for _, kind := range subKinds {
		t.Run(string(kind), func(t *testing.T) {
			e := newEnv(t)
			var s *subClient
			var header map[string]string
			if kind == subAPI {
				header = map[string]string{"X-Session-Token": e.loginAPI()}
				s = &subClient{e: e, kind: kind, c: e.api(), flow: subAPIFlowWith(t, e, "?aal=aal2", header)}
			} else {
				c := e.browser()
				e.loginBrowser(c)
				s = subStartBrowser(t, e, kind, c, "?aal=aal2")
			}
			f := s.wantFlow(t, s.submit(t, s.creds(testIdentifier, testPassword), header)).flow(t)
			subOnlyMessage(t, f, 4010002, subNoMethodText)
			assert.Len(t, subSessions(t, e, e.identity.ID), 1)
		})
	}
}

// TestSubmitDecodeErrors: Part 2 row 6 (§12 39-40, 62). Undecodable bodies
// are a flow message 4000001 with the decoder's reason.
func TestSubmitDecodeErrors(t *testing.T) {
	const (
		zeroLength = `Unable to decode HTTP Request Body because its HTTP Header "Content-Length" is zero.`
		textPlain  = `HTTP POST Request used unknown HTTP Header "Content-Type: text/plain", only [multipart/form-data application/x-www-form-urlencoded application/json] are supported.`
		badJSON    = "Unable to decode form as JSON."
		getSubmit  = `Unable to decode body because HTTP Request Method was "GET" but only [POST PUT PATCH] are supported.`
	)
	tests := []struct {
		name        string
		kind        subKind
		method      string
		query       string // added to ?flow=ID
		contentType string
		body        string
		want        string
		contains    bool // want is a substring of the reason
	}{
		{"empty body", subAPI, http.MethodPost, "", "application/json", "", zeroLength, false},
		{"text/plain body", subAPI, http.MethodPost, "", "text/plain", "method=password", textPlain, false},
		{"malformed JSON", subAPI, http.MethodPost, "", "application/json", `{"method": "password",`, badJSON, false},
		{"JSON array", subAPI, http.MethodPost, "", "application/json", `[{"method":"password"}]`, "Expected JSON sent in request body to be an object but got: JSON", false},
		{"Kratos' garbage body sent as JSON is a number", subAPI, http.MethodPost, "", "application/json", "14=)=!(%)$/ZP()GHIÖ", "Expected JSON sent in request body to be an object but got: Number", false},
		{"GET submit", subAPI, http.MethodGet, "&method=password&identifier=alice%40example.com&password=x", "", "", getSubmit, false},
		{"spa malformed JSON", subSPA, http.MethodPost, "", "application/json", `{"method": "password",`, badJSON, false},
		{"spa text/plain", subSPA, http.MethodPost, "", "text/plain", "method=password", textPlain, false},
		{"form with a bad URL escape", subForm, http.MethodPost, "", "application/x-www-form-urlencoded", "14=)=!(%)$/ZP()GHIÖ", "invalid URL escape", true},
		{"form with an empty body", subForm, http.MethodPost, "", "application/x-www-form-urlencoded", "", zeroLength, false},
		{"form posted as text/plain", subForm, http.MethodPost, "", "text/plain", "method=password", textPlain, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			s := subStart(t, e, tt.kind, "")
			header := map[string]string{}
			if tt.contentType != "" {
				header["Content-Type"] = tt.contentType
			}
			if tt.kind == subSPA {
				header["Accept"] = "application/json"
			}
			var body io.Reader
			if tt.method == http.MethodPost {
				body = strings.NewReader(tt.body)
			}
			r := e.do(s.c, tt.method, "/self-service/login?flow="+s.flow.ID+tt.query, body, header)
			f := s.wantFlow(t, r).flow(t)
			require.Len(t, f.UI.Messages, 1, "messages: %+v", f.UI.Messages)
			m := f.UI.Messages[0]
			assert.Equal(t, flow.IDGeneric, m.ID)
			assert.Equal(t, "error", m.Type)
			if tt.contains {
				assert.Contains(t, m.Text, tt.want)
			} else {
				assert.Equal(t, tt.want, m.Text)
				assert.Equal(t, map[string]any{"reason": tt.want}, m.Context)
			}
		})
	}
}

// subMultipart is a multipart/form-data body with fields.
func subMultipart(t testing.TB, fields map[string]any) (string, []byte) {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for k, v := range fields {
		require.NoError(t, w.WriteField(k, fmt.Sprint(v)))
	}
	require.NoError(t, w.Close())
	return w.FormDataContentType(), buf.Bytes()
}

// TestSubmitNoMethod: Part 2 row 7 (§12 41). No method, an unknown one, or
// a multipart body (whose fields are not read) → 4010002.
func TestSubmitNoMethod(t *testing.T) {
	tests := []struct {
		name      string
		method    any // nil: not sent
		multipart bool
	}{
		{"no method field", nil, false},
		{"empty method", "", false},
		{"unknown method", "magic", false},
		{"multipart body", "password", true},
	}
	for _, kind := range subKinds {
		for _, tt := range tests {
			t.Run(string(kind)+"/"+tt.name, func(t *testing.T) {
				e := newEnv(t)
				s := subStart(t, e, kind, "")
				fields := s.creds(testIdentifier, testPassword)
				fields["method"] = tt.method
				var r *result
				if tt.multipart {
					ct, body := subMultipart(t, fields)
					header := map[string]string{"Content-Type": ct}
					if kind != subForm {
						header["Accept"] = "application/json"
					}
					r = e.do(s.c, http.MethodPost, "/self-service/login?flow="+s.flow.ID, bytes.NewReader(body), header)
				} else {
					r = s.submit(t, fields, nil)
				}
				f := s.wantFlow(t, r).flow(t)
				subOnlyMessage(t, f, 4010002, subNoMethodText)
				assert.Empty(t, subSessions(t, e, e.identity.ID))
			})
		}
	}
}

// TestSubmitPasswordDisabled: Part 2 row 9 (§12 42).
func TestSubmitPasswordDisabled(t *testing.T) {
	for _, kind := range subKinds {
		t.Run(string(kind), func(t *testing.T) {
			e := newEnv(t, func(c *login.Config) { c.DisablePassword = true })
			s := subStart(t, e, kind, "")
			obj := subErr(s.wantError(t, s.submit(t, s.creds(testIdentifier, testPassword), nil), http.StatusNotFound))
			assert.NotContains(t, obj, "id")
			assert.Equal(t, "This endpoint was disabled by system administrator. Please check your url or contact the system administrator to enable it.", obj["reason"])
			assert.Equal(t, "The requested resource could not be found", obj["message"])
			assert.Empty(t, subSessions(t, e, e.identity.ID))
		})
	}
}

// TestSubmitTransientPayload: Part 1 rule 15 (Part 2 row 11, §12 61). A
// transient_payload that is not a JSON object is a 400 flow message
// 4000001; an object passes.
func TestSubmitTransientPayload(t *testing.T) {
	tests := []struct {
		name   string
		json   any    // the value in JSON bodies
		form   string // the value in form bodies
		wantOK bool
	}{
		{"string", "str", "str", false},
		{"number", 42, "42", false},
		{"array", []any{1}, "[1]", false},
		{"boolean", true, "true", false},
		{"the text null", "null", "null", false},
		{"object", map[string]any{"a": 1}, `{"a":1}`, true},
	}
	for _, kind := range subKinds {
		for _, tt := range tests {
			t.Run(string(kind)+"/"+tt.name, func(t *testing.T) {
				e := newEnv(t)
				s := subStart(t, e, kind, "")
				fields := s.creds(testIdentifier, testPassword)
				fields["transient_payload"] = tt.json
				if kind == subForm {
					fields["transient_payload"] = tt.form
				}
				r := s.submit(t, fields, nil)
				if tt.wantOK {
					subAssertNoCache(t, r)
					if kind == subForm {
						assert.Equal(t, http.StatusSeeOther, r.status, "body: %s", r.body)
						assert.Equal(t, defaultReturn, r.header.Get("Location"))
					} else {
						assert.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
					}
					return
				}
				f := s.wantFlow(t, r).flow(t)
				require.Len(t, f.UI.Messages, 1, "messages: %+v", f.UI.Messages)
				assert.Equal(t, flow.IDGeneric, f.UI.Messages[0].ID)
				assert.Equal(t, "error", f.UI.Messages[0].Type)
				assert.Empty(t, subSessions(t, e, e.identity.ID))
			})
		}
	}
}

// subComparable strips from a flow body what necessarily differs between
// two flows: ids, the CSRF token and the submitted identifier.
func subComparable(t testing.TB, r *result) map[string]any {
	t.Helper()
	v := r.json(t)
	v["id"] = ""
	ui := v["ui"].(map[string]any)
	ui["action"] = ""
	for _, n := range ui["nodes"].([]any) {
		attrs := n.(map[string]any)["attributes"].(map[string]any)
		if attrs["name"] == "csrf_token" || attrs["name"] == "identifier" {
			attrs["value"] = "<stripped>"
		}
	}
	return v
}

// TestSubmitInvalidCredentials: Part 2 rows 15-16 (§12 32-34). Unknown
// identifier and wrong password answer alike, with 4000006; the identifier
// is echoed, the password never.
func TestSubmitInvalidCredentials(t *testing.T) {
	for _, kind := range subKinds {
		t.Run(string(kind), func(t *testing.T) {
			e := newEnv(t)
			const wrong = "Tr0ub4dor&3-wrong"
			s1 := subStart(t, e, kind, "")
			r1 := s1.wantFlow(t, s1.submit(t, s1.creds(testIdentifier, wrong), nil))
			s2 := subStart(t, e, kind, "")
			r2 := s2.wantFlow(t, s2.submit(t, s2.creds("nobody@example.com", wrong), nil))

			for _, got := range []*result{r1, r2} {
				f := got.flow(t)
				subOnlyMessage(t, f, 4000006, subInvalidCredsText)
				assert.Nil(t, f.UI.Messages[0].Context)
				subAssertNoPasswordValue(t, got)
				assert.NotContains(t, string(got.body), wrong)
				assert.Equal(t, flow.StateChooseMethod, f.State)
				assert.Empty(t, f.Active)
			}
			assert.Equal(t, testIdentifier, subNode(t, r1.flow(t), "identifier").Attributes.Value)
			assert.Equal(t, "nobody@example.com", subNode(t, r2.flow(t), "identifier").Attributes.Value)
			assert.Equal(t, subComparable(t, r1), subComparable(t, r2), "nothing distinguishes an unknown identifier from a wrong password")
			assert.Empty(t, subSessions(t, e, e.identity.ID))
		})
	}
}

// TestSubmitUnknownIdentifierComparesDummyHash: Part 1 rule 10. An unknown
// identifier costs one comparison with the configured hasher, as a wrong
// password does.
func TestSubmitUnknownIdentifierComparesDummyHash(t *testing.T) {
	h := &subHasher{}
	e := newEnv(t, func(c *login.Config) { c.Hasher = h })

	f := e.apiFlow("")
	before := h.compares.Load()
	r := e.submitJSON(e.api(), f.ID, credentials(testIdentifier, "wrong", ""), nil)
	require.Equal(t, http.StatusBadRequest, r.status, "body: %s", r.body)
	wrongPassword := h.compares.Load() - before

	before = h.compares.Load()
	r = e.submitJSON(e.api(), f.ID, credentials("nobody@example.com", "wrong", ""), nil)
	require.Equal(t, http.StatusBadRequest, r.status, "body: %s", r.body)
	unknown := h.compares.Load() - before

	assert.Equal(t, int64(1), wrongPassword)
	assert.Equal(t, wrongPassword, unknown, "an unknown identifier runs a real comparison")
}

// TestSubmitUnusableStoredHash: Part 2 row 16 (§12 58-59). Hashes that
// cannot be verified, and bcrypt passwords over 72 bytes, are invalid
// credentials.
func TestSubmitUnusableStoredHash(t *testing.T) {
	ctx := context.Background()
	long := strings.Repeat("x", 72) + "-suffix!" // 80 bytes
	require.Len(t, long, 80)
	bcryptOfPrefix, err := password.Bcrypt{Cost: 4}.Hash(ctx, []byte(long[:72]))
	require.NoError(t, err)

	tests := []struct {
		name       string
		identifier string
		encoded    string
		password   string
		wantOK     bool
	}{
		{"corrupt stored hash", "corrupt@example.com", "$unknown$abc", "abc", false},
		{"80-byte password against bcrypt of its first 72 bytes", "bcrypt@example.com", bcryptOfPrefix, long, false},
		{"the 72-byte password itself logs in (control)", "bcrypt@example.com", bcryptOfPrefix, long[:72], true},
	}
	for _, kind := range subKinds {
		for _, tt := range tests {
			t.Run(string(kind)+"/"+tt.name, func(t *testing.T) {
				e := newEnv(t)
				id := e.addIdentityWith(tt.identifier, subPasswordCredential(t, tt.identifier, tt.encoded))
				s := subStart(t, e, kind, "")
				r := s.submit(t, s.creds(tt.identifier, tt.password), nil)
				if tt.wantOK {
					if kind == subForm {
						assert.Equal(t, http.StatusSeeOther, r.status, "body: %s", r.body)
						assert.Equal(t, defaultReturn, r.header.Get("Location"))
					} else {
						assert.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
					}
					assert.Len(t, subSessions(t, e, id.ID), 1)
					return
				}
				f := s.wantFlow(t, r).flow(t)
				subOnlyMessage(t, f, 4000006, subInvalidCredsText)
				assert.Empty(t, subSessions(t, e, id.ID))
			})
		}
	}
}

// TestSubmitInactiveIdentity: Part 2 row 17 (§12 57). A disabled identity
// learns 4010011 only with the correct password.
func TestSubmitInactiveIdentity(t *testing.T) {
	tests := []struct {
		name     string
		password string
		wantID   int
		wantText string
	}{
		{"correct password", testPassword, 4010011, subDisabledText},
		{"wrong password", "wrong password", 4000006, subInvalidCredsText},
	}
	for _, kind := range subKinds {
		for _, tt := range tests {
			t.Run(string(kind)+"/"+tt.name, func(t *testing.T) {
				e := newEnv(t)
				subSetInactive(t, e, e.identity)
				s := subStart(t, e, kind, "")
				f := s.wantFlow(t, s.submit(t, s.creds(testIdentifier, tt.password), nil)).flow(t)
				subOnlyMessage(t, f, tt.wantID, tt.wantText)
				assert.Equal(t, flow.StateChooseMethod, f.State)
				assert.Empty(t, subSessions(t, e, e.identity.ID))
			})
		}
	}
}

// TestSubmitReturnToNoLongerAllowed: Part 2 row 18 (§12 63a). A return_to
// allowed at creation but not at completion (the allow-list changed) is a
// flow message 4000001, and no session is stored.
func TestSubmitReturnToNoLongerAllowed(t *testing.T) {
	const returnTo = "https://app.example.com/dash"
	for _, kind := range subKinds {
		t.Run(string(kind), func(t *testing.T) {
			e := newEnv(t)
			s := subStart(t, e, kind, "?return_to="+url.QueryEscape(returnTo))
			require.Equal(t, returnTo, s.flow.ReturnTo)

			// The same deployment, restarted with another allow-list.
			mux := http.NewServeMux()
			srv2 := httptest.NewServer(mux)
			t.Cleanup(srv2.Close)
			h2, err := login.New(login.Config{
				PublicURL:         srv2.URL,
				LoginUIURL:        loginUI,
				ErrorUIURL:        errorUI,
				DefaultReturnURL:  defaultReturn,
				AllowedReturnURLs: []string{"https://other.example.com/"},
				FlowStore:         e.flows,
				SessionStore:      e.sessions,
				IdentityStore:     e.identities,
				Hasher:            e.hasher,
				Now:               e.clock.Now,
				Logger:            discardLogger(),
			})
			require.NoError(t, err)
			mux.Handle("/", h2)

			fields := s.creds(testIdentifier, testPassword)
			var r *result
			target := srv2.URL + "/self-service/login?flow=" + s.flow.ID
			if kind == subForm {
				v := url.Values{}
				for k, x := range fields {
					v.Set(k, fmt.Sprint(x))
				}
				r = subDo(t, s.c, http.MethodPost, target, strings.NewReader(v.Encode()), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
			} else {
				b, err := json.Marshal(fields)
				require.NoError(t, err)
				r = subDo(t, s.c, http.MethodPost, target, bytes.NewReader(b), map[string]string{"Content-Type": "application/json", "Accept": "application/json"})
			}
			f := s.wantFlow(t, r).flow(t)
			subGeneric(t, f, `Requested return_to URL "https://app.example.com/dash" is not allowed.`)
			assert.Nil(t, r.cookie(subSessionCookie))
			assert.Empty(t, subSessions(t, e, e.identity.ID), "no session was created")
		})
	}
}
