package logintest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
)

// Client signs identities in through a host's handler in process, for the
// host's own tests of its protected routes: it creates a login flow and
// submits it exactly as a client would, through Handler's ServeHTTP, with
// no network and no back door, and returns what the client then holds.
//
//	c := logintest.Client{Handler: mux, Prefix: "/auth"}
//	token, err := c.SignInAPI(ctx, logintest.Password("jane@example.com", "secret"))
//	req.Header.Set("X-Session-Token", token)
//
// Any method's fields may be submitted; a step-up (aal2) uses the
// session's token or cookies (StepUpAPI, StepUpBrowser).
type Client struct {
	// Handler serves the login endpoints: the login.Handler itself or the
	// host's mux that mounts it.
	Handler http.Handler
	// Prefix is the path the login endpoints are mounted under in Handler
	// ("/auth" for http.StripPrefix("/auth", h)); "" for the root.
	Prefix string
}

// Fields are a login submission's fields, as a client posts them.
type Fields map[string]string

// Password is a password method submission.
func Password(identifier, password string) Fields {
	return Fields{"method": "password", "identifier": identifier, "password": password}
}

// SignInAPI logs in through an API (native) flow with fields and returns
// the session token, which requests carry in X-Session-Token. A refused
// login is an error that shows the answer. An identity with a second
// factor gets an aal1 session, which StepUpAPI raises.
func (c *Client) SignInAPI(ctx context.Context, fields Fields) (string, error) {
	return c.api(ctx, "", fields)
}

// StepUpAPI completes a step-up (aal2) API flow of the session of token
// with fields (a second factor's, such as {"method": "totp", "totp_code":
// ...}) and returns the session's new token.
func (c *Client) StepUpAPI(ctx context.Context, token string, fields Fields) (string, error) {
	return c.api(ctx, token, fields)
}

func (c *Client) api(ctx context.Context, token string, fields Fields) (string, error) {
	init := "/self-service/login/api"
	header := http.Header{"Accept": {"application/json"}}
	if token != "" {
		init += "?aal=aal2"
		header.Set("X-Session-Token", token)
	}
	rec := c.serve(ctx, http.MethodGet, init, header, nil)
	flowID, _, err := flowOf(rec)
	if err != nil {
		return "", err
	}
	body, err := json.Marshal(fields)
	if err != nil {
		return "", err
	}
	header.Set("Content-Type", "application/json")
	rec = c.serve(ctx, http.MethodPost, "/self-service/login?flow="+flowID, header, body)
	if rec.Code != http.StatusOK {
		return "", answerError("submit the API flow", rec)
	}
	var out struct {
		SessionToken string `json:"session_token"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.SessionToken == "" {
		return "", answerError("read the session token", rec)
	}
	return out.SessionToken, nil
}

// SignInBrowser logs in through a browser flow with fields, as a
// single-page app does (JSON, with the flow's CSRF token and cookie), and
// returns the cookies the browser then holds: the session cookie and the
// CSRF cookie. Add them to requests with req.AddCookie. An identity with
// a second factor gets an aal1 session (the handler sends the browser on
// to the step-up), which StepUpBrowser raises.
func (c *Client) SignInBrowser(ctx context.Context, fields Fields) ([]*http.Cookie, error) {
	return c.browser(ctx, nil, fields)
}

// StepUpBrowser completes a step-up (aal2) browser flow of the browser
// holding cookies with fields and returns the cookies it then holds.
func (c *Client) StepUpBrowser(ctx context.Context, cookies []*http.Cookie, fields Fields) ([]*http.Cookie, error) {
	return c.browser(ctx, cookies, fields)
}

func (c *Client) browser(ctx context.Context, cookies []*http.Cookie, fields Fields) ([]*http.Cookie, error) {
	jar := newJar(cookies)
	init := "/self-service/login/browser"
	if cookies != nil {
		init += "?aal=aal2"
	}
	header := http.Header{"Accept": {"application/json"}}
	rec := c.serve(ctx, http.MethodGet, init, jar.header(header), nil)
	flowID, csrf, err := flowOf(rec)
	if err != nil {
		return nil, err
	}
	jar.update(rec)
	submit := Fields{"csrf_token": csrf}
	for k, v := range fields {
		submit[k] = v
	}
	body, err := json.Marshal(submit)
	if err != nil {
		return nil, err
	}
	header.Set("Content-Type", "application/json")
	rec = c.serve(ctx, http.MethodPost, "/self-service/login?flow="+flowID, jar.header(header), body)
	if rec.Code != http.StatusOK && !onToStepUp(rec) {
		return nil, answerError("submit the browser flow", rec)
	}
	jar.update(rec)
	return jar.cookies(), nil
}

// onToStepUp reports whether rec is a browser login's answer that the
// session was issued and needs its second factor: 422 sending the browser
// to the step-up flow.
func onToStepUp(rec *httptest.ResponseRecorder) bool {
	var out struct {
		RedirectBrowserTo string `json:"redirect_browser_to"`
	}
	return rec.Code == http.StatusUnprocessableEntity &&
		json.Unmarshal(rec.Body.Bytes(), &out) == nil &&
		strings.Contains(out.RedirectBrowserTo, "aal=aal2")
}

// serve runs one request through the handler.
func (c *Client) serve(ctx context.Context, method, path string, header http.Header, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequestWithContext(ctx, method, c.Prefix+path, bytes.NewReader(body))
	for k, vs := range header {
		req.Header[k] = vs
	}
	rec := httptest.NewRecorder()
	c.Handler.ServeHTTP(rec, req)
	return rec
}

// flowOf reads a created flow's id and CSRF token.
func flowOf(rec *httptest.ResponseRecorder) (id, csrf string, err error) {
	if rec.Code != http.StatusOK {
		return "", "", answerError("create the flow", rec)
	}
	var f struct {
		ID string `json:"id"`
		UI struct {
			Nodes []struct {
				Attributes struct {
					Name  string `json:"name"`
					Value any    `json:"value"`
				} `json:"attributes"`
			} `json:"nodes"`
		} `json:"ui"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &f); err != nil || f.ID == "" {
		return "", "", answerError("read the flow", rec)
	}
	for _, n := range f.UI.Nodes {
		if n.Attributes.Name == "csrf_token" {
			csrf, _ = n.Attributes.Value.(string)
		}
	}
	return f.ID, csrf, nil
}

// answerError describes an answer that was not the expected one.
func answerError(step string, rec *httptest.ResponseRecorder) error {
	body, _ := io.ReadAll(io.LimitReader(rec.Body, 2048))
	if loc := rec.Header().Get("Location"); loc != "" {
		return fmt.Errorf("logintest: %s: %d to %s: %s", step, rec.Code, loc, strings.TrimSpace(string(body)))
	}
	return fmt.Errorf("logintest: %s: %d: %s", step, rec.Code, strings.TrimSpace(string(body)))
}

// jar holds cookies by name, as a browser holds one site's cookies.
type jar struct {
	order []string
	byKey map[string]*http.Cookie
}

func newJar(cookies []*http.Cookie) *jar {
	j := &jar{byKey: map[string]*http.Cookie{}}
	for _, c := range cookies {
		j.set(c)
	}
	return j
}

func (j *jar) set(c *http.Cookie) {
	if _, ok := j.byKey[c.Name]; !ok {
		j.order = append(j.order, c.Name)
	}
	j.byKey[c.Name] = c
}

// update takes the cookies an answer sets; a cookie set to expire is
// dropped.
func (j *jar) update(rec *httptest.ResponseRecorder) {
	for _, c := range rec.Result().Cookies() {
		if c.MaxAge < 0 {
			delete(j.byKey, c.Name)
			continue
		}
		j.set(c)
	}
}

func (j *jar) header(h http.Header) http.Header {
	h = h.Clone()
	var parts []string
	for _, name := range j.order {
		if c, ok := j.byKey[name]; ok {
			parts = append(parts, (&http.Cookie{Name: c.Name, Value: c.Value}).String())
		}
	}
	h.Del("Cookie")
	if len(parts) > 0 {
		h.Set("Cookie", strings.Join(parts, "; "))
	}
	return h
}

func (j *jar) cookies() []*http.Cookie {
	var out []*http.Cookie
	for _, name := range j.order {
		if c, ok := j.byKey[name]; ok {
			out = append(out, c)
		}
	}
	return out
}
