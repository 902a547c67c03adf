package oidc_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	autherrors "github.com/authflow/authflow/errors"
	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/internal/testhttp"
	"github.com/authflow/authflow/session"
)

// The session token exchange: a native app's social sign-in finished in
// the system browser.

const nativeReturn = "https://app.example.com/native/done?state=xyz"

// nativeFlow creates an API flow with the exchange and returns it (with
// its init code).
func (e *env) nativeFlow(returnTo string) flow.Flow {
	e.t.Helper()
	q := url.Values{"return_session_token_exchange_code": {"true"}, "return_to": {returnTo}}
	r := testhttp.Do(e.t, http.DefaultClient, http.MethodGet, e.srv.URL+"/self-service/login/api?"+q.Encode(), nil, nil)
	require.Equal(e.t, http.StatusOK, r.Status, "body: %s", r.Body)
	var f flow.Flow
	require.NoError(e.t, json.Unmarshal(r.Body, &f))
	require.True(e.t, strings.HasPrefix(f.SessionTokenExchangeCode, f.ID+"."), f.SessionTokenExchangeCode)
	return f
}

// finishInBrowser submits the provider as the app would, lets a browser go
// through the provider and the callback, and returns where the callback
// sent the browser.
func (e *env) finishInBrowser(f flow.Flow) *url.URL {
	e.t.Helper()
	r := e.submitJSON(http.DefaultClient, f.ID, map[string]any{"provider": providerID})
	wantLocationChange(e.t, e, r)
	c := browser(e.t)
	callback := e.authorize(c, r.JSON(e.t)["redirect_browser_to"].(string))
	r = testhttp.Do(e.t, c, http.MethodGet, callback, nil, nil)
	require.Equal(e.t, http.StatusSeeOther, r.Status, "body: %s", r.Body)
	assert.Empty(e.t, r.Resp.Cookies(), "the browser gets no session")
	u, err := url.Parse(r.Location())
	require.NoError(e.t, err)
	return u
}

// native runs the whole browser part and returns the init code and the
// return_to_code.
func (e *env) native() (flow.Flow, string) {
	e.t.Helper()
	f := e.nativeFlow(nativeReturn)
	back := e.finishInBrowser(f)
	code := back.Query().Get("code")
	require.NotEmpty(e.t, code, back.String())
	return f, code
}

func (e *env) exchange(initCode, returnToCode string) *result {
	e.t.Helper()
	q := url.Values{"init_code": {initCode}, "return_to_code": {returnToCode}}
	return testhttp.Do(e.t, http.DefaultClient, http.MethodGet, e.srv.URL+"/sessions/token-exchange?"+q.Encode(), nil, nil)
}

// wantRefused asserts the one answer to every bad exchange.
func wantRefused(t *testing.T, r *result) {
	t.Helper()
	require.Equal(t, http.StatusForbidden, r.Status, "body: %s", r.Body)
	errObj := r.JSON(t)["error"].(map[string]any)
	assert.Equal(t, "The session token exchange codes are invalid, were already used or have expired.", errObj["reason"])
	assert.Empty(t, r.Resp.Cookies())
}

// TestExchange: the browser goes back to return_to with the code (its own
// query kept); the app exchanges both codes for a session token, once.
func TestExchange(t *testing.T) {
	e := newEnv(t)
	f := e.nativeFlow(nativeReturn)
	back := e.finishInBrowser(f)
	assert.Equal(t, "https://app.example.com/native/done", back.Scheme+"://"+back.Host+back.Path)
	assert.Equal(t, "xyz", back.Query().Get("state"), "return_to's query is kept")
	code := back.Query().Get("code")
	require.Len(t, code, 43)
	assert.Empty(t, e.sessionsOf(e.identity.ID), "no session before the exchange")
	rec := e.stored(f.ID)
	assert.Equal(t, flow.StatePassedChallenge, rec.Flow.State)
	assert.Equal(t, "oidc", rec.Flow.Active)

	e.clock.Advance(time.Minute)
	r := e.exchange(f.SessionTokenExchangeCode, code)
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	assert.Empty(t, r.Resp.Cookies())
	body := r.JSON(t)
	assert.NotContains(t, body, "continue_with")
	token, _ := body["session_token"].(string)
	require.Len(t, token, 43)
	var answered session.Session
	raw, _ := json.Marshal(body["session"])
	require.NoError(t, json.Unmarshal(raw, &answered))

	s := e.whoami(token)
	assert.Equal(t, answered.ID, s.ID)
	assert.Equal(t, e.identity.ID, s.Identity.ID)
	require.Len(t, s.AuthenticationMethods, 1)
	assert.Equal(t, "oidc", s.AuthenticationMethods[0].Method)
	assert.Equal(t, providerID, s.AuthenticationMethods[0].Provider)
	assert.Equal(t, flow.AAL1, s.AAL)
	assert.True(t, s.AuthenticatedAt.Before(s.IssuedAt), "authenticated in the browser, issued at the exchange")
	require.Len(t, e.sessionsOf(e.identity.ID), 1)

	// Once only.
	wantRefused(t, e.exchange(f.SessionTokenExchangeCode, code))
	assert.Len(t, e.sessionsOf(e.identity.ID), 1)
	// The flow cannot log in again either.
	r = e.submitJSON(http.DefaultClient, f.ID, map[string]any{"provider": providerID})
	require.Equal(t, http.StatusBadRequest, r.Status, "body: %s", r.Body)
}

// TestExchangeQueryWithoutQuery: a return_to without a query gets ?code=.
func TestExchangeReturnToWithoutQuery(t *testing.T) {
	e := newEnv(t)
	f := e.nativeFlow("https://app.example.com/native")
	back := e.finishInBrowser(f)
	assert.True(t, strings.HasPrefix(back.String(), "https://app.example.com/native?code="), back.String())
	assert.Equal(t, http.StatusOK, e.exchange(f.SessionTokenExchangeCode, back.Query().Get("code")).Status)
}

// TestExchangeWrongCodes: every mismatch gets the same 403 and changes
// nothing: a wrong attempt does not burn the codes (they are 256-bit
// secrets, and burning would let anyone who saw the init code cancel the
// login), so the right codes still work afterwards.
func TestExchangeWrongCodes(t *testing.T) {
	e := newEnv(t)
	f, code := e.native()
	flowID, secret, _ := strings.Cut(f.SessionTokenExchangeCode, ".")
	other := e.nativeFlow(nativeReturn)
	for name, c := range map[string][2]string{
		"wrong return_to_code":    {f.SessionTokenExchangeCode, tamper(code)},
		"return_to_code as init":  {code, code},
		"init secret without id":  {secret, code},
		"unknown flow":            {"2f1c6f0e-3b7a-4c7e-9d44-1a2b3c4d5e6f." + secret, code},
		"wrong init secret":       {flowID + "." + tamper(secret), code},
		"other flow's init code":  {other.SessionTokenExchangeCode, code},
		"init code as both codes": {f.SessionTokenExchangeCode, f.SessionTokenExchangeCode},
		"malformed flow id":       {"nope." + secret, code},
	} {
		t.Run(name, func(t *testing.T) { wantRefused(t, e.exchange(c[0], c[1])) })
	}
	assert.Empty(t, e.sessionsOf(e.identity.ID))
	r := e.exchange(f.SessionTokenExchangeCode, code)
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
}

// tamper changes the last character of s.
func tamper(s string) string {
	if strings.HasSuffix(s, "A") {
		return s[:len(s)-1] + "B"
	}
	return s[:len(s)-1] + "A"
}

// TestExchangeMissingParameters: 400.
func TestExchangeMissingParameters(t *testing.T) {
	e := newEnv(t)
	for _, q := range []string{"", "?init_code=a.b", "?return_to_code=x"} {
		r := testhttp.Do(t, http.DefaultClient, http.MethodGet, e.srv.URL+"/sessions/token-exchange"+q, nil, nil)
		require.Equal(t, http.StatusBadRequest, r.Status, "body: %s", r.Body)
		assert.Contains(t, r.JSON(t)["error"].(map[string]any)["reason"], "init_code and return_to_code")
	}
}

// TestExchangeBeforeTheBrowser: the init code alone is worth nothing until
// the browser has finished.
func TestExchangeBeforeTheBrowser(t *testing.T) {
	e := newEnv(t)
	f := e.nativeFlow(nativeReturn)
	wantRefused(t, e.exchange(f.SessionTokenExchangeCode, strings.Repeat("A", 43)))
	wantRefused(t, e.exchange(f.SessionTokenExchangeCode, ""+"x"))
}

// TestExchangeExpires: 10 minutes after the browser finished, the codes
// are refused.
func TestExchangeExpires(t *testing.T) {
	e := newEnv(t)
	f, code := e.native()
	e.clock.Advance(10*time.Minute + time.Second)
	wantRefused(t, e.exchange(f.SessionTokenExchangeCode, code))
	assert.Empty(t, e.sessionsOf(e.identity.ID))

	f, code = e.native()
	e.clock.Advance(10*time.Minute - time.Second)
	assert.Equal(t, http.StatusOK, e.exchange(f.SessionTokenExchangeCode, code).Status)
}

// TestExchangeConcurrent: of concurrent exchanges exactly one wins.
func TestExchangeConcurrent(t *testing.T) {
	e := newEnv(t)
	f, code := e.native()
	const n = 12
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { statuses[i] = e.exchange(f.SessionTokenExchangeCode, code).Status })
	}
	wg.Wait()
	won := 0
	for _, s := range statuses {
		if s == http.StatusOK {
			won++
		} else {
			assert.Equal(t, http.StatusForbidden, s)
		}
	}
	assert.Equal(t, 1, won)
	assert.Len(t, e.sessionsOf(e.identity.ID), 1)
}

// TestExchangeDisabledIdentity: an identity disabled between the browser
// and the exchange gets no session.
func TestExchangeDisabledIdentity(t *testing.T) {
	e := newEnv(t)
	f, code := e.native()
	id := *e.identity
	id.State = session.StateInactive
	require.NoError(t, e.identities.UpdateIdentity(context.Background(), &id))
	r := e.exchange(f.SessionTokenExchangeCode, code)
	require.Equal(t, http.StatusForbidden, r.Status, "body: %s", r.Body)
	assert.Empty(t, e.sessionsOf(e.identity.ID))
}

// TestExchangeCodeNotKept: the init code is answered once, at creation: the
// flow fetched later does not repeat it, and the store never holds either
// code in clear.
func TestExchangeCodeNotKept(t *testing.T) {
	e := newEnv(t)
	f := e.nativeFlow(nativeReturn)
	_, secret, _ := strings.Cut(f.SessionTokenExchangeCode, ".")
	stored := func() string {
		b, err := json.Marshal(e.stored(f.ID))
		require.NoError(t, err)
		return string(b)
	}
	assert.NotContains(t, stored(), secret)
	assert.NotContains(t, stored(), `"session_token_exchange_code":`)

	r := testhttp.Do(t, http.DefaultClient, http.MethodGet, e.srv.URL+"/self-service/login/flows?id="+f.ID, nil, nil)
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	assert.NotContains(t, r.JSON(t), "session_token_exchange_code")
	assert.NotContains(t, string(r.Body), secret)

	back := e.finishInBrowser(f)
	code := back.Query().Get("code")
	assert.NotContains(t, stored(), secret)
	assert.NotContains(t, stored(), code)
	// A flow error answered to the app does not repeat it either.
	r = e.submitJSON(http.DefaultClient, f.ID, map[string]any{"provider": providerID})
	assert.NotContains(t, string(r.Body), secret)

	require.Equal(t, http.StatusOK, e.exchange(f.SessionTokenExchangeCode, code).Status)
	assert.NotContains(t, stored(), secret)
	assert.NotContains(t, stored(), code)
}

// TestExchangeNeedsReturnTo: the parameter without return_to is refused;
// return_to is validated as always; without the parameter no code.
func TestExchangeNeedsReturnTo(t *testing.T) {
	e := newEnv(t)
	get := func(q url.Values) *result {
		return testhttp.Do(t, http.DefaultClient, http.MethodGet, e.srv.URL+"/self-service/login/api?"+q.Encode(), nil, nil)
	}
	r := get(url.Values{"return_session_token_exchange_code": {"true"}})
	require.Equal(t, http.StatusBadRequest, r.Status, "body: %s", r.Body)
	errObj := r.JSON(t)["error"].(map[string]any)
	assert.Nil(t, errObj["id"])
	assert.Contains(t, errObj["reason"], "return_session_token_exchange_code requires return_to")

	r = get(url.Values{"return_session_token_exchange_code": {"1"}, "return_to": {"https://evil.example.com/"}})
	require.Equal(t, http.StatusBadRequest, r.Status, "body: %s", r.Body)
	assert.Equal(t, autherrors.IDReturnToForbidden, r.JSON(t)["error"].(map[string]any)["id"])

	for _, v := range []string{"false", "nope", ""} {
		r = get(url.Values{"return_session_token_exchange_code": {v}, "return_to": {nativeReturn}})
		require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
		assert.NotContains(t, r.JSON(t), "session_token_exchange_code")
	}
	// Browser flows ignore the parameter.
	f := e.browserFlow(browser(t), "?return_session_token_exchange_code=true")
	assert.Empty(t, f.SessionTokenExchangeCode)
}

// TestExchangeUnknownSubject: a flow error at the callback issues no code.
func TestExchangeUnknownSubject(t *testing.T) {
	e := newEnv(t)
	e.queueUser("nobody")
	f := e.nativeFlow(nativeReturn)
	r := e.submitJSON(http.DefaultClient, f.ID, map[string]any{"provider": providerID})
	wantLocationChange(t, e, r)
	c := browser(t)
	callback := e.authorize(c, r.JSON(t)["redirect_browser_to"].(string))
	got := e.wantLoginUI(testhttp.Do(t, c, http.MethodGet, callback, nil, nil), f.ID)
	onlyMessage(t, got, flow.IDAccountMissing)
	assert.Equal(t, flow.StateChooseMethod, got.State)
}
