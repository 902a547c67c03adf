package login

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	autherrors "github.com/authflow/authflow/errors"
)

// Limits of submitted bodies. A body over MaxBodyBytes is answered 413
// before anything else happens (CONTRACT Part 1 rule 15); one with more
// than MaxFormFields fields or nested deeper than MaxJSONDepth is
// undecodable (message 4000001).
const (
	MaxBodyBytes  = 1 << 20
	MaxFormFields = 64
	MaxJSONDepth  = 32
)

// Limits of request data that is stored. A submitted value echoed back
// into a flow's node (the identifier after a failed attempt) is cut to
// MaxEchoedValueLength bytes, a session's User-Agent to
// MaxUserAgentLength, a Content-Type quoted in a flow message to
// maxQuotedHeaderLength, and the X-Request-ID copied into an error (kept
// when the error is forwarded) to maxRequestIDLength. Values from the URL
// are bounded by MaxURLLength.
const (
	MaxEchoedValueLength  = 1024
	MaxUserAgentLength    = 1024
	maxQuotedHeaderLength = 256
	maxRequestIDLength    = 256
)

// readBody reads r's body, up to MaxBodyBytes; a larger one is a 413.
func readBody(r *http.Request) ([]byte, error) {
	if r.ContentLength > MaxBodyBytes {
		return nil, autherrors.RequestTooLarge(MaxBodyBytes)
	}
	if r.Body == nil {
		return nil, nil
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1))
	if err != nil {
		return nil, autherrors.BadRequest("Unable to read the HTTP request body.")
	}
	if len(b) > MaxBodyBytes {
		return nil, autherrors.RequestTooLarge(MaxBodyBytes)
	}
	return b, nil
}

// decodeBody is the one function that decodes submitted bodies, JSON or
// form, into fields. JSON bodies are treated as forms: top-level values
// become strings (objects and arrays their JSON text), null and "" count as
// absent. A body that cannot be decoded returns the reason a flow message
// reports (4000001), with the texts Kratos' clients know.
func decodeBody(r *http.Request, body []byte) (url.Values, string) {
	if r.Method == http.MethodGet {
		return nil, `Unable to decode body because HTTP Request Method was "GET" but only [POST PUT PATCH] are supported.`
	}
	if len(body) == 0 {
		return nil, `Unable to decode HTTP Request Body because its HTTP Header "Content-Length" is zero.`
	}
	ct := r.Header.Get("Content-Type")
	mt := mediaType(ct)
	var fields url.Values
	switch mt {
	case "application/json":
		var reason string
		if fields, reason = decodeJSONFields(body); reason != "" {
			return nil, reason
		}
	case "application/x-www-form-urlencoded":
		if n := bytes.Count(body, []byte("&")) + bytes.Count(body, []byte(";")) + 1; n > MaxFormFields {
			return nil, fmt.Sprintf("Unable to decode the form body: it has more than %d fields.", MaxFormFields)
		}
		var err error
		if fields, err = url.ParseQuery(string(body)); err != nil {
			return nil, "Unable to decode the form body: " + err.Error()
		}
		if len(body) > detachAbove {
			detach(fields)
		}
	case "multipart/form-data":
		// Accepted, but its fields are not read: the submission then names
		// no method (4010002), as in Kratos.
		return url.Values{}, ""
	default:
		return nil, fmt.Sprintf(`HTTP %s Request used unknown HTTP Header "Content-Type: %s", only [multipart/form-data application/x-www-form-urlencoded application/json] are supported.`, r.Method, clip(ct, maxQuotedHeaderLength))
	}
	if tp := fields.Get("transient_payload"); tp != "" {
		if 1+jsonDepth([]byte(tp)) > MaxJSONDepth { // counted as inside a body, as in JSON
			return nil, fmt.Sprintf("Unable to decode form as JSON: it is nested deeper than %d levels.", MaxJSONDepth)
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal([]byte(tp), &obj); err != nil || obj == nil {
			return nil, transientPayloadNotObject
		}
	}
	return fields, ""
}

// detachAbove is the size of a form body above which its values are
// detached: keeping a smaller body alive with a value costs no more than
// copying the value.
const detachAbove = 4096

// detach copies each of a form's values out of the body they were parsed
// from. url.ParseQuery returns substrings of its input where nothing was
// escaped, so a short value kept for later (an identifier echoed into the
// flow, a throttling key) would otherwise keep the whole body, up to
// MaxBodyBytes, alive. (JSON values are copies already.)
func detach(fields url.Values) {
	for _, vs := range fields {
		for i, v := range vs {
			vs[i] = strings.Clone(v)
		}
	}
}

// decodeJSONFields flattens a JSON object body into fields.
func decodeJSONFields(body []byte) (url.Values, string) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, "Unable to decode form as JSON."
	}
	const notObject = "Expected JSON sent in request body to be an object but got: "
	switch c := trimmed[0]; {
	case c == '{':
	case c == '[':
		return nil, notObject + "JSON"
	case c == '"':
		return nil, notObject + "String"
	case c == 't':
		return nil, notObject + "True"
	case c == 'f':
		return nil, notObject + "False"
	case c == 'n':
		return nil, notObject + "Null"
	case c == '-' || ('0' <= c && c <= '9'):
		return nil, notObject + "Number"
	default:
		return nil, "Unable to decode form as JSON."
	}
	if jsonDepth(trimmed) > MaxJSONDepth {
		return nil, fmt.Sprintf("Unable to decode form as JSON: it is nested deeper than %d levels.", MaxJSONDepth)
	}
	if !json.Valid(body) {
		return nil, "Unable to decode form as JSON."
	}
	n := 0
	eachJSONField(body, func([]byte, []byte) bool { n++; return n <= MaxFormFields })
	if n > MaxFormFields {
		return nil, fmt.Sprintf("Unable to decode form as JSON: it has more than %d fields.", MaxFormFields)
	}
	fields := make(url.Values, n)
	values := make([]string, 0, n) // one backing array for the fields' values
	reason := ""
	eachJSONField(body, func(rawKey, v []byte) bool {
		k, ok := jsonString(rawKey)
		if !ok {
			reason = "Unable to decode form as JSON."
			return false
		}
		if k == "transient_payload" && v[0] != '{' && v[0] != 'n' && string(v) != `""` {
			reason = transientPayloadNotObject // a string holding an object's text is no object
			return false
		}
		switch v[0] {
		case 'n': // null: absent
			delete(fields, k) // the last of repeated keys wins, as in a map
		case '"':
			s, ok := jsonString(v)
			if !ok {
				reason = "Unable to decode form as JSON."
				return false
			}
			if s == "" {
				delete(fields, k)
				break
			}
			values = append(values, s)
			fields[k] = values[len(values)-1 : len(values) : len(values)]
		default: // numbers, booleans, objects, arrays: their JSON text
			values = append(values, string(v))
			fields[k] = values[len(values)-1 : len(values) : len(values)]
		}
		return true
	})
	if reason != "" {
		return nil, reason
	}
	return fields, ""
}

// eachJSONField calls fn with the raw key (a JSON string literal) and raw
// value of each member of the JSON object obj, in order, until fn returns
// false. obj must be valid JSON (json.Valid) and an object; nothing is
// allocated.
func eachJSONField(obj []byte, fn func(key, value []byte) bool) {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return
	}
	i = skipSpace(obj, i+1)
	for i < len(obj) && obj[i] == '"' {
		end := skipJSONValue(obj, i)
		key := obj[i:end]
		i = skipSpace(obj, end)
		i = skipSpace(obj, i+1) // the colon
		end = skipJSONValue(obj, i)
		if !fn(key, obj[i:end]) {
			return
		}
		i = skipSpace(obj, end)
		if i < len(obj) && obj[i] == ',' {
			i = skipSpace(obj, i+1)
		}
	}
}

// skipSpace returns the index of the first non-space byte of b at or
// after i.
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// skipJSONValue returns the index just after the valid JSON value that
// starts at b[i].
func skipJSONValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		for j := i + 1; j < len(b); j++ {
			switch b[j] {
			case '\\':
				j++
			case '"':
				return j + 1
			}
		}
		return len(b)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				j = skipJSONValue(b, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return j + 1
				}
			}
		}
		return len(b)
	default: // a number, true, false or null
		j := i
		for j < len(b) && !strings.ContainsRune(",}] \t\r\n", rune(b[j])) {
			j++
		}
		return j
	}
}

// jsonKeyIs reports whether the JSON string literal key decodes to name,
// without allocating when it has no escapes.
func jsonKeyIs(key []byte, name string) bool {
	if bytes.IndexByte(key, '\\') < 0 {
		return len(key) >= 2 && string(key[1:len(key)-1]) == name
	}
	k, ok := jsonString(key)
	return ok && k == name
}

// jsonString decodes a JSON string literal, cheaply when it has no escapes.
func jsonString(v json.RawMessage) (string, bool) {
	if len(v) >= 2 && bytes.IndexByte(v, '\\') < 0 && utf8.Valid(v) {
		return string(v[1 : len(v)-1]), true
	}
	var s string
	err := json.Unmarshal(v, &s)
	return s, err == nil
}

const transientPayloadNotObject = "The transient_payload field must be a JSON object."

// jsonDepth returns the deepest nesting of objects and arrays in b, which
// need not be valid JSON; brackets inside strings do not count.
func jsonDepth(b []byte) int {
	depth, deepest, inString, escaped := 0, 0, false, false
	for _, c := range b {
		switch {
		case inString && escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case inString && c == '"':
			inString = false
		case inString:
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
			deepest = max(deepest, depth)
		case c == '}' || c == ']':
			depth--
		}
	}
	return deepest
}
