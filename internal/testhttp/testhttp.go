// Package testhttp is the HTTP side of the login methods' tests: one
// request sent and its answer read whole, with the decoders the tests
// use on it (JSON, a flow, an error envelope, a cookie).
package testhttp

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/flow"
)

// Result is an answer with its body read.
type Result struct {
	Status int
	Header http.Header
	Body   []byte
	Resp   *http.Response
}

// Do sends a request with c to url, with header's fields set, and reads
// the answer; any failure to do so fails the test.
func Do(t testing.TB, c *http.Client, method, url string, body io.Reader, header map[string]string) *Result {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	require.NoError(t, err)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return &Result{Status: resp.StatusCode, Header: resp.Header, Body: b, Resp: resp}
}

// NoRedirects makes an http.Client hand redirects back instead of
// following them.
func NoRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// JSON decodes the body as a JSON object.
func (r *Result) JSON(t testing.TB) map[string]any {
	t.Helper()
	var v map[string]any
	require.NoError(t, json.Unmarshal(r.Body, &v), "body: %s", r.Body)
	return v
}

// Flow decodes the body as a flow, which must have an id.
func (r *Result) Flow(t testing.TB) flow.Flow {
	t.Helper()
	var f flow.Flow
	require.NoError(t, json.Unmarshal(r.Body, &f), "body: %s", r.Body)
	require.NotEmpty(t, f.ID, "body: %s", r.Body)
	return f
}

// Cookie returns the cookie name the answer sets, or nil.
func (r *Result) Cookie(name string) *http.Cookie {
	for _, c := range r.Resp.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// Location is the answer's Location header.
func (r *Result) Location() string { return r.Header.Get("Location") }

// ErrorID returns the error.id of the body, "" when it has none.
func (r *Result) ErrorID(t testing.TB) string {
	t.Helper()
	env, _ := r.JSON(t)["error"].(map[string]any)
	id, _ := env["id"].(string)
	return id
}

// WantError asserts an error envelope of status and returns its error.id.
func (r *Result) WantError(t testing.TB, status int) string {
	t.Helper()
	require.Equal(t, status, r.Status, "body: %s", r.Body)
	env, ok := r.JSON(t)["error"].(map[string]any)
	require.True(t, ok, "not an error envelope: %s", r.Body)
	id, _ := env["id"].(string)
	return id
}

// Client returns a client over transport that hands redirects back, with
// a cookie jar of its own when jar is set (a browser).
func Client(t testing.TB, transport http.RoundTripper, jar bool) *http.Client {
	t.Helper()
	c := &http.Client{CheckRedirect: NoRedirects, Transport: transport}
	if jar {
		j, err := cookiejar.New(nil)
		require.NoError(t, err)
		c.Jar = j
	}
	return c
}
