package login

import (
	"bytes"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Fuzz targets for the input handling of submit: body decoding, the JSON
// depth scanner and the CSRF token check. Their seed corpora run in every
// go test; fuzz with, for example,
//
//	go test -run='^$' -fuzz='^FuzzDecodeBody$' -fuzztime=3m ./login

// fuzzNested returns depth levels of nesting around a scalar, alternating
// objects and arrays: {"a":[{"a":[ ... 1 ... ]}]}.
func fuzzNested(depth int) string {
	var open, close strings.Builder
	for i := range depth {
		if i%2 == 0 {
			open.WriteString(`{"a":`)
			close.WriteString("}")
		} else {
			open.WriteString("[")
			close.WriteString("]")
		}
	}
	c := []byte(close.String())
	for i, j := 0, len(c)-1; i < j; i, j = i+1, j-1 {
		c[i], c[j] = c[j], c[i]
	}
	return open.String() + "1" + string(c)
}

// fuzzFormFields returns a form body with n fields, the first three a
// password submission.
func fuzzFormFields(n int) string {
	parts := []string{"method=password", "identifier=alice%40example.com", "password=secret"}
	for i := len(parts); i < n; i++ {
		parts = append(parts, fmt.Sprintf("pad%d=x", i))
	}
	return strings.Join(parts[:n], "&")
}

// fuzzJSONFields returns a JSON object body with n keys.
func fuzzJSONFields(n int) string {
	parts := []string{`"method":"password"`, `"identifier":"alice@example.com"`, `"password":"secret"`}
	for i := len(parts); i < n; i++ {
		parts = append(parts, fmt.Sprintf(`"pad%d":%d`, i, i))
	}
	return "{" + strings.Join(parts[:n], ",") + "}"
}

// fuzzMethod turns the fuzzer's string into a request method that
// httptest.NewRequest accepts (an HTTP token); others become POST.
func fuzzMethod(m string) string {
	if m == "" || len(m) > 16 {
		return "POST"
	}
	for _, c := range []byte(m) {
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z') {
			return "POST"
		}
	}
	return m
}

// refDecode decodes valid JSON b into any, numbers as json.Number (so
// that 1e999 decodes).
func refDecode(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	err := d.Decode(&v)
	return v, err
}

// refJSONDepth is the nesting depth of a decoded JSON value.
func refJSONDepth(v any) int {
	d := 0
	switch v := v.(type) {
	case map[string]any:
		for _, e := range v {
			d = max(d, refJSONDepth(e))
		}
		return d + 1
	case []any:
		for _, e := range v {
			d = max(d, refJSONDepth(e))
		}
		return d + 1
	}
	return 0
}

// FuzzDecodeBody: decodeBody never panics, returns either fields or a
// reason (never both, never neither), never more than MaxFormFields fields,
// refuses JSON nested deeper than MaxJSONDepth and invalid JSON, and
// decodes accepted forms as url.ParseQuery does.
func FuzzDecodeBody(f *testing.F) {
	const (
		jsonCT = "application/json"
		formCT = "application/x-www-form-urlencoded"
	)
	seeds := []struct {
		ct, body, method string
	}{
		{jsonCT, `{"method":"password","identifier":"alice@example.com","password":"secret","csrf_token":"x"}`, "POST"},
		{jsonCT + "; charset=utf-8", `{"method":"password","transient_payload":{"a":[1,{"b":null}]}}`, "POST"},
		{formCT, "method=password&identifier=alice%40example.com&password=secret", "POST"},
		{formCT, "method=password&transient_payload=%7B%22a%22%3A1%7D", "PUT"},
		{"multipart/form-data; boundary=x", "--x\r\nContent-Disposition: form-data; name=\"method\"\r\n\r\npassword\r\n--x--\r\n", "POST"},
		// Kratos' malformed samples.
		{jsonCT, "14=)=!(%)$/ZP()GHIÖ", "POST"},
		{formCT, "14=)=!(%)$/ZP()GHIÖ", "POST"},
		{jsonCT, `{"method": "password",`, "POST"},
		{jsonCT, `[{"method":"password"}]`, "POST"},
		{jsonCT, `"password"`, "POST"},
		{jsonCT, `null`, "POST"},
		{jsonCT, `true`, "POST"},
		{jsonCT, `-1`, "POST"},
		{"text/plain", "method=password", "POST"},
		{"", "method=password", "POST"},
		{"application/json; charset", `{}`, "POST"},
		// Empty bodies and GET.
		{jsonCT, "", "POST"},
		{formCT, "", "POST"},
		{formCT, "method=password", "GET"},
		// Nesting at and around the limit, and far beyond it.
		{jsonCT, fuzzNested(MaxJSONDepth), "POST"},
		{jsonCT, fuzzNested(MaxJSONDepth + 1), "POST"},
		{jsonCT, `{"transient_payload":` + fuzzNested(MaxJSONDepth-1) + `}`, "POST"},
		{jsonCT, `{"transient_payload":` + fuzzNested(MaxJSONDepth) + `}`, "POST"},
		{jsonCT, strings.Repeat("[", 300) + strings.Repeat("]", 300), "POST"},
		{jsonCT, "{" + strings.Repeat(`"a":{`, 300), "POST"},
		{formCT, "transient_payload=" + url.QueryEscape(fuzzNested(MaxJSONDepth+1)), "POST"},
		{formCT, "transient_payload=" + url.QueryEscape(strings.Repeat("[", 300)), "POST"},
		// Field counts at and around the limit.
		{formCT, fuzzFormFields(MaxFormFields), "POST"},
		{formCT, fuzzFormFields(MaxFormFields + 1), "POST"},
		{formCT, fuzzFormFields(MaxFormFields) + "&", "POST"},
		{formCT, strings.Repeat("&", 100), "POST"},
		{formCT, "a=1;b=2", "POST"},
		{jsonCT, fuzzJSONFields(MaxFormFields), "POST"},
		{jsonCT, fuzzJSONFields(MaxFormFields + 1), "POST"},
		{jsonCT, `{"a":1,"a":2,"a":3}`, "POST"},
		// Escapes and odd strings.
		{jsonCT, `{"identifier":"\u0061lice\"@\\example.com","password":"\ud800"}`, "POST"},
		{jsonCT, "{\"identifier\":\"\xff\xfe\"}", "POST"},
		{jsonCT, `{"a":"[{\"","b":"\\"}`, "POST"},
		{jsonCT, `{"method":"","password":null,"n":1e999}`, "POST"},
		{jsonCT, "\ufeff{}", "POST"},
		{jsonCT, " \t\r\n{}", "POST"},
		{formCT, "identifier=%zz&password=%", "POST"},
		{formCT, "identifier=%00%0a%e2%80%ae&password=%2B+", "POST"},
		{formCT, "transient_payload=null", "POST"},
		{formCT, "transient_payload=%5B%5D", "POST"},
	}
	for _, s := range seeds {
		f.Add(s.ct, []byte(s.body), s.method)
	}

	f.Fuzz(func(t *testing.T, contentType string, body []byte, method string) {
		m := fuzzMethod(method)
		r := httptest.NewRequest(m, "/self-service/login?flow=x", bytes.NewReader(body))
		r.Header.Set("Content-Type", contentType)

		fields, reason := decodeBody(r, body)
		if fields != nil {
			require.Emptyf(t, reason, "fields %v with a reason", fields)
			require.LessOrEqual(t, len(fields), MaxFormFields)
		} else {
			require.NotEmpty(t, reason, "neither fields nor a reason")
		}
		if m == "GET" || len(body) == 0 {
			require.Nil(t, fields)
			return
		}
		mt, _, _ := mime.ParseMediaType(contentType)
		switch mt {
		case "application/json":
			if !json.Valid(body) {
				require.Nilf(t, fields, "invalid JSON %q accepted", body)
				return
			}
			if v, err := refDecode(body); err == nil && refJSONDepth(v) > MaxJSONDepth {
				require.Nilf(t, fields, "JSON nested %d deep accepted", refJSONDepth(v))
				if _, isObject := v.(map[string]any); isObject {
					require.Contains(t, reason, "nested deeper")
				}
			}
			if fields != nil {
				var obj map[string]json.RawMessage
				require.NoError(t, json.Unmarshal(body, &obj), "accepted JSON is not an object")
				require.NotNil(t, obj)
				// The fields are the object's members as encoding/json
				// decodes them: strings decoded, other values as their
				// text, null and "" absent, the last repeated key winning.
				want := url.Values{}
				for k, v := range obj {
					switch {
					case v[0] == 'n' || string(v) == `""`:
					case v[0] == '"':
						var s string
						require.NoError(t, json.Unmarshal(v, &s))
						want[k] = []string{s}
					default:
						want[k] = []string{string(v)}
					}
				}
				require.Equal(t, want, fields, "body %q", body)
			}
		case "application/x-www-form-urlencoded":
			if fields != nil {
				want, err := url.ParseQuery(string(body))
				require.NoError(t, err)
				require.Equal(t, want, fields)
			}
		}
		if tp := fields.Get("transient_payload"); tp != "" {
			var obj map[string]json.RawMessage
			require.NoErrorf(t, json.Unmarshal([]byte(tp), &obj), "accepted transient_payload %q", tp)
			require.NotNil(t, obj)
		}
	})
}

// FuzzJSONDepth: for valid JSON, jsonDepth equals the depth of the value
// encoding/json decodes; for anything else it does not panic and is
// non-negative.
func FuzzJSONDepth(f *testing.F) {
	for _, s := range []string{
		``, `1`, `"x"`, `{}`, `[]`, `[[]]`, `{"a":{"b":[1,2,{"c":null}]}}`,
		`"[{"`, `{"a":"]}]}"}`, `{"a\"[":"\\"}`, `["\\\"[["]`, `[1,[2,[3]],[4]]`,
		`  {"a" : [ ] , "b" : { } }  `, `{"\u005b":"\u007b"}`,
		fuzzNested(MaxJSONDepth), fuzzNested(MaxJSONDepth + 1),
		strings.Repeat("[", 100) + strings.Repeat("]", 100),
		`]]]]][`, `{"a":[}`, `[1e999,{"a":-0.0E+5}]`, `"unterminated [`, `[1,2`, "[\"\xff\"]",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got := jsonDepth(b)
		require.GreaterOrEqual(t, got, 0)
		if !json.Valid(b) {
			return
		}
		v, err := refDecode(b)
		require.NoError(t, err)
		require.Equalf(t, refJSONDepth(v), got, "jsonDepth(%q)", b)
	})
}

// FuzzCSRFTokenMatches: for a 32-byte token, csrfTokenMatches never panics,
// accepts a fresh masking of the token and the token's plain standard
// base64, refuses both forms of any other 32-byte value, accepts sent only
// when it decodes to the token (plainly or unmasked), and never modifies
// the token. Tokens of other lengths never match.
func FuzzCSRFTokenMatches(f *testing.F) {
	tok := bytes.Repeat([]byte{0xA5}, csrfTokenLen)
	other := bytes.Repeat([]byte{0x5A}, csrfTokenLen)
	zero := make([]byte, csrfTokenLen)
	masked := maskCSRFToken(tok)
	plain := base64.StdEncoding.EncodeToString(tok)
	for _, s := range []struct {
		token, other []byte
		sent         string
	}{
		{tok, other, ""},
		{tok, other, masked},
		{tok, other, plain},
		{tok, other, base64.RawStdEncoding.EncodeToString(tok)},
		{tok, other, base64.URLEncoding.EncodeToString(tok)},
		{tok, other, plain[:20] + "\r\n" + plain[20:]},
		{tok, other, masked + "="},
		{tok, other, " " + masked},
		{tok, other, base64.StdEncoding.EncodeToString(append(append([]byte{}, zero...), tok...))},
		{tok, other, base64.StdEncoding.EncodeToString(make([]byte, 2*csrfTokenLen))},
		{tok, other, base64.StdEncoding.EncodeToString(make([]byte, 48))},
		{zero, tok, base64.StdEncoding.EncodeToString(zero)},
		{zero, tok, maskCSRFToken(zero)},
		{tok[:31], other, base64.StdEncoding.EncodeToString(tok[:31])},
		{nil, nil, ""},
		{tok, tok, "%%%%"},
	} {
		f.Add(s.token, s.other, s.sent)
	}

	f.Fuzz(func(t *testing.T, token, otherValue []byte, sent string) {
		if len(token) != csrfTokenLen {
			require.False(t, csrfTokenMatches(sent, token), "a %d-byte token matched", len(token))
			return
		}
		keep := bytes.Clone(token)
		got := csrfTokenMatches(sent, token)
		require.Equal(t, keep, token, "csrfTokenMatches modified the token")

		// Reference: sent matches iff it decodes to the token, plainly or
		// after unmasking.
		want := false
		if b, err := base64.StdEncoding.DecodeString(sent); err == nil {
			switch len(b) {
			case csrfTokenLen:
				want = bytes.Equal(b, token)
			case 2 * csrfTokenLen:
				u := make([]byte, csrfTokenLen)
				subtle.XORBytes(u, b[:csrfTokenLen], b[csrfTokenLen:])
				want = bytes.Equal(u, token)
			}
		}
		require.Equalf(t, want, got, "csrfTokenMatches(%q)", sent)

		require.True(t, csrfTokenMatches(maskCSRFToken(token), token), "masked token does not match")
		require.True(t, csrfTokenMatches(base64.StdEncoding.EncodeToString(token), token), "plain token does not match")
		if len(otherValue) == csrfTokenLen && !bytes.Equal(otherValue, token) {
			require.False(t, csrfTokenMatches(base64.StdEncoding.EncodeToString(otherValue), token), "another plain value matched")
			require.False(t, csrfTokenMatches(maskCSRFToken(otherValue), token), "another masked value matched")
		}
		require.Equal(t, keep, token, "csrfTokenMatches modified the token")
	})
}

// TestDecodeBodyTransientPayloadType: Part 1 rule 15, "a non-object
// transient_payload is a 400 flow message 4000001". In a JSON body the
// value's JSON type decides: a string is not an object, even when its text
// is an object's JSON (decodeJSONFields flattens strings to their text, so
// the type is lost before decodeBody checks it).
func TestDecodeBodyTransientPayloadType(t *testing.T) {
	const notObject = "The transient_payload field must be a JSON object."
	tests := []struct {
		name, body string
		wantOK     bool
	}{
		{"object", `{"method":"password","transient_payload":{"a":1}}`, true},
		{"empty object", `{"method":"password","transient_payload":{}}`, true},
		{"null is absent", `{"method":"password","transient_payload":null}`, true},
		{"string", `{"method":"password","transient_payload":"a"}`, false},
		{"string holding an object", `{"method":"password","transient_payload":"{\"a\":1}"}`, false},
		{"string holding an empty object", `{"method":"password","transient_payload":"{}"}`, false},
		{"array", `{"method":"password","transient_payload":[{"a":1}]}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/self-service/login?flow=x", strings.NewReader(tt.body))
			r.Header.Set("Content-Type", "application/json")
			fields, reason := decodeBody(r, []byte(tt.body))
			if tt.wantOK {
				require.Empty(t, reason)
				require.NotNil(t, fields)
				return
			}
			require.Nil(t, fields, "accepted as %v", fields)
			require.Equal(t, notObject, reason)
		})
	}
}

// FuzzCookieValue: cookieValue finds what http.Request.Cookie finds.
func FuzzCookieValue(f *testing.F) {
	for _, h := range []string{
		"authflow_csrf=abc", `authflow_csrf="abc"`, "a=1; authflow_csrf=x; authflow_csrf=y",
		"authflow_csrf=bad\\value; authflow_csrf=good", " authflow_csrf = spaced ", "authflow_csrf",
		"authflow_csrf=", `authflow_csrf="`, "x=1;;authflow_csrf=\t2\t", "AUTHFLOW_CSRF=upper",
	} {
		f.Add(h, "")
	}
	f.Fuzz(func(t *testing.T, line, second string) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header["Cookie"] = []string{line}
		if second != "" {
			r.Header["Cookie"] = append(r.Header["Cookie"], second)
		}
		got, ok := cookieValue(r, "authflow_csrf")
		c, err := r.Cookie("authflow_csrf")
		if err != nil {
			require.Falsef(t, ok, "found %q where net/http finds none", got)
			return
		}
		require.True(t, ok, "net/http finds %q", c.Value)
		require.Equal(t, c.Value, got)
	})
}

// FuzzQueryURL: a configured URL with a parameter is what withQuery makes.
func FuzzQueryURL(f *testing.F) {
	for _, base := range []string{"https://ui.example.com/login", "/login", "https://ui.example.com/login?x=1", "https://ui.example.com/login#f", "HTTPS://UI.example.com:443/a%20b", "/l?", "login"} {
		f.Add(base, "8b59d370-e415-441a-9116-b8d780619e54")
	}
	f.Fuzz(func(t *testing.T, base, value string) {
		if _, err := url.Parse(base); err != nil {
			return
		}
		require.Equal(t, withQuery(base, "flow", value), newQueryURL(base).with("flow", value))
	})
}
