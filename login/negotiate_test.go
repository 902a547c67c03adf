package login_test

// Content negotiation through real requests (CONTRACT Part 2 §1.1; Part 1
// rule 1): the Accept predicate of browser flow creation, and the JSON
// request predicate of submit and logout.

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Accept headers real clients send.
const (
	negotiateChrome  = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7"
	negotiateFirefox = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
	negotiateSafari  = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
	negotiateFetch   = "*/*"
)

func TestNegotiateBrowserFlowCreation(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name     string
		accept   []string // each a separate Accept header line; nil means none
		wantJSON bool
	}{
		{"Chrome navigation", []string{negotiateChrome}, false},
		{"Firefox navigation", []string{negotiateFirefox}, false},
		{"Safari navigation", []string{negotiateSafari}, false},
		{"fetch() default", []string{negotiateFetch}, false},
		{"no Accept header", nil, false},
		{"empty Accept header", []string{""}, false},
		{"application/json", []string{"application/json"}, true},
		{"equal q: text/html is offered first", []string{"application/json, text/html"}, false},
		{"text/html with lower q", []string{"text/html;q=0.9, application/json"}, true},
		{"both below 1, JSON higher", []string{"application/json;q=0.5, text/html;q=0.4"}, true},
		{"JSON excluded with q=0", []string{"application/json;q=0, */*"}, false},
		{"text/html excluded with q=0", []string{"text/html;q=0, application/json"}, true},
		{"JSON beats a wildcard at equal q", []string{"application/json, */*"}, true},
		{"application/* is JSON by specificity", []string{"application/*"}, true},
		{"text/* is HTML", []string{"text/*"}, false},
		{"Accept spread over two header lines", []string{"text/html;q=0.1", "application/json"}, true},
		{"media type case-insensitive", []string{"Application/JSON"}, true},
		{"JSON with parameters", []string{"application/json; charset=utf-8"}, true},
		{"unrelated type only", []string{"image/png"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, e.srv.URL+"/self-service/login/browser", nil)
			require.NoError(t, err)
			for _, a := range tt.accept {
				req.Header.Add("Accept", a)
			}
			resp, err := e.browser().Do(req)
			require.NoError(t, err)
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.NoError(t, err)
			r := &result{status: resp.StatusCode, header: resp.Header, body: b, resp: resp}
			if tt.wantJSON {
				f := bbBody(t, r, http.StatusOK)
				assert.Equal(t, "browser", f["type"])
				return
			}
			loc := bbRedirect(t, r)
			assert.True(t, strings.HasPrefix(loc, loginUI+"?flow="), "Location %q", loc)
		})
	}
}

// TestNegotiateBrowserFlowCreationIgnoresContentType: creation uses the
// Accept predicate only (Part 1 rule 1, §1.1(b)).
func TestNegotiateBrowserFlowCreationIgnoresContentType(t *testing.T) {
	e := newEnv(t)
	r := e.do(e.browser(), http.MethodGet, "/self-service/login/browser", nil, map[string]string{"Content-Type": "application/json"})
	bbRedirect(t, r)
}

// TestNegotiateSubmitWrongPasswordOnBrowserFlow: the JSON request predicate
// of submit (Part 1 rule 1): Accept negotiating to JSON, or a Content-Type
// whose media type is application/json, parameters allowed. JSON requests
// get the 400 flow; others a 303 to the login UI with the same flow.
func TestNegotiateSubmitWrongPasswordOnBrowserFlow(t *testing.T) {
	tests := []struct {
		name        string
		contentType string // "json" or "form" body; the header value
		accept      string
		wantJSON    bool
	}{
		{"JSON body with charset and no Accept", "application/json; charset=utf-8", "", true},
		{"JSON body with CHARSET upper case", "application/json; CHARSET=UTF-8", "", true},
		{"JSON body, exact type, no Accept", "application/json", "", true},
		{"JSON body, media type upper case", "Application/JSON", "", true},
		{"JSON body with a browser's Accept", "application/json", negotiateChrome, true},
		{"form with Accept application/json", "application/x-www-form-urlencoded", "application/json", true},
		{"form with Accept text/html;q=0.9, application/json", "application/x-www-form-urlencoded", "text/html;q=0.9, application/json", true},
		{"form with Accept application/json;q=0.5, text/html;q=0.4", "application/x-www-form-urlencoded", "application/json;q=0.5, text/html;q=0.4", true},
		{"form without Accept", "application/x-www-form-urlencoded", "", false},
		{"form with a browser's Accept", "application/x-www-form-urlencoded", negotiateFirefox, false},
		{"form with Accept */*", "application/x-www-form-urlencoded", "*/*", false},
		{"form with Accept application/json, text/html", "application/x-www-form-urlencoded", "application/json, text/html", false},
		{"form with Accept text/*", "application/x-www-form-urlencoded", "text/*", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			c := e.browser()
			f := e.browserFlow(c, "")
			var body []byte
			if strings.HasPrefix(strings.ToLower(tt.contentType), "application/json") {
				body, _ = json.Marshal(credentials(testIdentifier, "wrong password", csrfToken(f)))
			} else {
				body = []byte(url.Values{
					"method": {"password"}, "identifier": {testIdentifier}, "password": {"wrong password"}, "csrf_token": {csrfToken(f)},
				}.Encode())
			}
			header := map[string]string{"Content-Type": tt.contentType}
			if tt.accept != "" {
				header["Accept"] = tt.accept
			}
			r := e.do(c, http.MethodPost, "/self-service/login?flow="+f.ID, bytes.NewReader(body), header)
			if !tt.wantJSON {
				assert.Equal(t, loginUI+"?flow="+f.ID, bbRedirect(t, r))
				return
			}
			got := bbBody(t, r, http.StatusBadRequest)
			assert.Equal(t, f.ID, got["id"])
			assert.Equal(t, []int{4000006}, bbMessageIDs(t, got))
		})
	}
}

// TestNegotiateLogoutCompletion: logout completion uses the JSON request
// predicate too (Part 1 rule 1): 204 for JSON, 303 otherwise.
func TestNegotiateLogoutCompletion(t *testing.T) {
	tests := []struct {
		name       string
		header     map[string]string
		wantStatus int
	}{
		{"Chrome navigation", map[string]string{"Accept": negotiateChrome}, http.StatusSeeOther},
		{"fetch() default", map[string]string{"Accept": negotiateFetch}, http.StatusSeeOther},
		{"Accept application/json", map[string]string{"Accept": "application/json"}, http.StatusNoContent},
		{"Content-Type application/json with charset", map[string]string{"Content-Type": "application/json; charset=utf-8"}, http.StatusNoContent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			c, token := e.logoutBrowser()
			r := e.do(c, http.MethodGet, "/self-service/logout?token="+bbLogoutToken(token), nil, tt.header)
			assert.Equal(t, tt.wantStatus, r.status, "body: %s", r.body)
			bbNoStore(t, r)
		})
	}
}
