package login_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/login"
)

// Expired flows (CONTRACT Part 1 rules 2-4 and 19, §G step 4; Part 2 rows
// 5/5b, §4.10.1, §10, §12 53-56, 63b) and single use (Part 1 rule 9, §G
// steps 5 and 14).

var subExpiredReason = regexp.MustCompile(`^The self-service flow expired \d+\.\d{2} minutes ago, initialize a new one\.$`)

// subExpiredEnvelope is the 410 body of a submit to an expired flow.
type subExpiredEnvelope struct {
	Error struct {
		ID      string `json:"id"`
		Code    int    `json:"code"`
		Status  string `json:"status"`
		Reason  string `json:"reason"`
		Message string `json:"message"`
	} `json:"error"`
	ExpiredAt time.Time       `json:"expired_at"`
	Since     json.RawMessage `json:"since"`
	UseFlowID string          `json:"use_flow_id"`
}

// subAssertReplacement checks the fresh flow that replaces old after
// expiry: fetchable, carrying 4010001, with old's return_to.
func subAssertReplacement(t testing.TB, e *env, c *http.Client, old flow.Flow, newID string, ago string) flow.Flow {
	t.Helper()
	require.NotEqual(t, old.ID, newID, "a new flow")
	require.NotEqual(t, "00000000-0000-0000-0000-000000000000", newID)
	fr := subFetchFlow(t, e, c, newID)
	require.Equal(t, http.StatusOK, fr.status, "the replacement is stored and fetchable: %s", fr.body)
	f := fr.flow(t)
	assert.Equal(t, old.Type, f.Type)
	assert.Equal(t, old.ReturnTo, f.ReturnTo, "same return_to")
	assert.Equal(t, old.RequestURL, f.RequestURL, "same request_url")
	assert.Equal(t, flow.StateChooseMethod, f.State)
	assert.True(t, f.ExpiresAt.After(e.clock.Now()), "the replacement is not expired")
	var expired *flow.Message
	for i := range f.UI.Messages {
		if f.UI.Messages[i].ID == 4010001 {
			expired = &f.UI.Messages[i]
		}
	}
	require.NotNil(t, expired, "message 4010001 in %+v", f.UI.Messages)
	assert.Equal(t, "The login flow expired "+ago+" minutes ago, please try again.", expired.Text)
	assert.Equal(t, "error", expired.Type)
	assert.Equal(t, map[string]any{
		"expired_at":      old.ExpiresAt.UTC().Format(time.RFC3339Nano),
		"expired_at_unix": float64(old.ExpiresAt.Unix()),
	}, expired.Context)
	return f
}

// TestSubmitExpired: API flows get the 410 envelope with use_flow_id;
// browser flows, forms and JSON alike, a 303 to the login UI with the new
// flow. Expiry is decided before CSRF and body decoding.
func TestSubmitExpired(t *testing.T) {
	const returnTo = "https://app.example.com/dash"
	tests := []struct {
		name    string
		kind    subKind
		advance time.Duration
		ago     string
		body    string // "creds", "wrong-csrf" or "malformed"
	}{
		{"api flow", subAPI, login.DefaultFlowLifespan + 90*time.Second, "1.50", "creds"},
		{"api flow with an undecodable body", subAPI, login.DefaultFlowLifespan + 90*time.Second, "1.50", "malformed"},
		{"api flow expired 24 hours ago is still answered", subAPI, login.DefaultFlowLifespan + 24*time.Hour, "1440.00", "creds"},
		{"browser form expired 24 hours ago is still answered", subForm, login.DefaultFlowLifespan + 24*time.Hour, "1440.00", "creds"},
		{"browser form", subForm, login.DefaultFlowLifespan + 90*time.Second, "1.50", "creds"},
		{"browser form with a wrong CSRF token", subForm, login.DefaultFlowLifespan + 90*time.Second, "1.50", "wrong-csrf"},
		{"spa", subSPA, login.DefaultFlowLifespan + 90*time.Second, "1.50", "creds"},
		{"spa with a wrong CSRF token", subSPA, login.DefaultFlowLifespan + 90*time.Second, "1.50", "wrong-csrf"},
		{"spa with an undecodable body", subSPA, login.DefaultFlowLifespan + 90*time.Second, "1.50", "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			s := subStart(t, e, tt.kind, "?return_to="+url.QueryEscape(returnTo))
			e.clock.Advance(tt.advance)

			var r *result
			switch tt.body {
			case "creds":
				r = s.submit(t, s.creds(testIdentifier, testPassword), nil)
			case "wrong-csrf":
				r = s.submit(t, credentials(testIdentifier, testPassword, subWrongCSRFToken()), nil)
			case "malformed":
				r = e.do(s.c, http.MethodPost, "/self-service/login?flow="+s.flow.ID, strings.NewReader(`{"method":`),
					map[string]string{"Content-Type": "application/json", "Accept": "application/json"})
			}
			subAssertNoCache(t, r)
			assert.Nil(t, r.cookie(subSessionCookie))
			assert.Empty(t, subSessions(t, e, e.identity.ID))

			if tt.kind != subAPI { // Part 1 rules 3 and 4: a 303 for forms and JSON requests alike
				require.Equal(t, http.StatusSeeOther, r.status, "body: %s", r.body)
				newID := subQueryParam(t, r.header.Get("Location"), loginUI, "flow")
				f := subAssertReplacement(t, e, s.c, s.flow, newID, tt.ago)
				assert.NotEmpty(t, csrfToken(f))

				// The replacement logs in.
				next := &subClient{e: e, kind: tt.kind, c: s.c, flow: f}
				r = next.submit(t, next.creds(testIdentifier, testPassword), nil)
				if tt.kind == subForm {
					assert.Equal(t, http.StatusSeeOther, r.status, "body: %s", r.body)
					assert.Equal(t, returnTo, r.header.Get("Location"))
				} else {
					assert.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
				}
				return
			}

			require.Equal(t, http.StatusGone, r.status, "body: %s", r.body)
			assert.Equal(t, subJSONErrorType, r.header.Get("Content-Type"))
			assert.Equal(t, "self_service_flow_expired", r.header.Get("Ory-Error-Id"))
			var env subExpiredEnvelope
			require.NoError(t, json.Unmarshal(r.body, &env), "body: %s", r.body)
			assert.Equal(t, "self_service_flow_expired", env.Error.ID)
			assert.Equal(t, http.StatusGone, env.Error.Code)
			assert.Equal(t, "Gone", env.Error.Status)
			assert.Equal(t, "self-service flow expired", env.Error.Message)
			assert.Regexp(t, subExpiredReason, env.Error.Reason)
			assert.Equal(t, "The self-service flow expired "+tt.ago+" minutes ago, initialize a new one.", env.Error.Reason)
			assert.True(t, s.flow.ExpiresAt.Equal(env.ExpiredAt), "expired_at %s, want %s", env.ExpiredAt, s.flow.ExpiresAt)
			assert.Regexp(t, `^\d+$`, string(env.Since), "since is an integer of nanoseconds")
			assert.Equal(t, string(subJSON(t, int64(tt.advance-login.DefaultFlowLifespan))), string(env.Since))
			subAssertReplacement(t, e, e.api(), s.flow, env.UseFlowID, tt.ago)

			// The replacement logs in.
			r = e.submitJSON(e.api(), env.UseFlowID, credentials(testIdentifier, testPassword, ""), nil)
			assert.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		})
	}
}

func subJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

// TestSubmitExpiredWithoutCSRFCookie: a browser that lost its CSRF cookie
// gets one with the replacement flow (created as the init endpoint does),
// so that it can fetch and submit the new flow.
func TestSubmitExpiredWithoutCSRFCookie(t *testing.T) {
	e := newEnv(t)
	s := subStart(t, e, subForm, "")
	e.clock.Advance(login.DefaultFlowLifespan + time.Minute)

	c := e.browser() // a browser without any cookie
	r := e.submitForm(c, s.flow.ID, url.Values{"method": {"password"}, "identifier": {testIdentifier}, "password": {testPassword}}, nil)
	require.Equal(t, http.StatusSeeOther, r.status, "body: %s", r.body)
	newID := subQueryParam(t, r.header.Get("Location"), loginUI, "flow")
	assert.Regexp(t, subCSRFCookieLine, subSetCookie(r, subCSRFCookie))
	f := subAssertReplacement(t, e, c, s.flow, newID, "1.00")
	next := &subClient{e: e, kind: subForm, c: c, flow: f}
	r = next.submit(t, next.creds(testIdentifier, testPassword), nil)
	assert.Equal(t, http.StatusSeeOther, r.status, "body: %s", r.body)
	assert.Equal(t, defaultReturn, r.header.Get("Location"))
}

// TestSubmitExpiryBoundary: a flow is expired only when expires_at is
// strictly before now.
func TestSubmitExpiryBoundary(t *testing.T) {
	e := newEnv(t)
	f := e.apiFlow("")
	e.clock.Advance(login.DefaultFlowLifespan)
	r := e.submitJSON(e.api(), f.ID, credentials(testIdentifier, testPassword, ""), nil)
	assert.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
}

// TestSubmitExpiredRefreshFlow: Part 1 rule 19 (replacing Part 2 row 5b and
// §12 63b). An expired refresh flow submitted with its session is replaced
// by a fresh refresh flow, like any other expired flow.
func TestSubmitExpiredRefreshFlow(t *testing.T) {
	for _, kind := range subKinds {
		t.Run(string(kind), func(t *testing.T) {
			e := newEnv(t)
			var s *subClient
			var header map[string]string
			if kind == subAPI {
				header = map[string]string{"X-Session-Token": e.loginAPI()}
				s = &subClient{e: e, kind: kind, c: e.api(), flow: subAPIFlowWith(t, e, "?refresh=true", header)}
			} else {
				c := e.browser()
				e.loginBrowser(c)
				s = subStartBrowser(t, e, kind, c, "?refresh=true")
			}
			require.True(t, s.flow.Refresh)
			e.clock.Advance(login.DefaultFlowLifespan + time.Minute)

			r := s.submit(t, s.creds(testIdentifier, testPassword), header)
			subAssertNoCache(t, r)
			var newID string
			if kind == subAPI {
				require.Equal(t, http.StatusGone, r.status, "body: %s", r.body)
				var env subExpiredEnvelope
				require.NoError(t, json.Unmarshal(r.body, &env))
				newID = env.UseFlowID
			} else {
				require.Equal(t, http.StatusSeeOther, r.status, "body: %s", r.body)
				newID = subQueryParam(t, r.header.Get("Location"), loginUI, "flow")
			}
			f := subAssertReplacement(t, e, s.c, s.flow, newID, "1.00")
			assert.True(t, f.Refresh, "a fresh refresh flow")
			assert.Contains(t, subIDs(f.UI.Messages), 1010003)
			id := subNode(t, f, "identifier")
			assert.Equal(t, "hidden", id.Attributes.Type)
			assert.Equal(t, testIdentifier, id.Attributes.Value)
			assert.Len(t, subSessions(t, e, e.identity.ID), 1)
		})
	}
}

// TestSubmitSingleUse: Part 1 rule 9 (replacing Part 2 rows 23-24, §12 72).
// A completed flow answers 4010007 and issues no second session; failures
// before completion do not use a flow up.
func TestSubmitSingleUse(t *testing.T) {
	for _, kind := range subKinds {
		t.Run(string(kind), func(t *testing.T) {
			e := newEnv(t)
			s := subStart(t, e, kind, "")

			// A wrong password does not use the flow up.
			s.wantFlow(t, s.submit(t, s.creds(testIdentifier, "wrong"), nil))
			r := s.submit(t, s.creds(testIdentifier, testPassword), nil)
			if kind == subForm {
				require.Equal(t, http.StatusSeeOther, r.status, "body: %s", r.body)
				require.Equal(t, defaultReturn, r.header.Get("Location"))
			} else {
				require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
			}
			require.Len(t, subSessions(t, e, e.identity.ID), 1)

			// The same flow again, without the session just issued (as an
			// attacker replaying the request would).
			replay := &subClient{e: e, kind: kind, c: e.api(), flow: s.flow}
			got := replay.wantFlow(t, replay.submit(t, s.creds(testIdentifier, testPassword), nil))
			f := got.flow(t)
			subOnlyMessage(t, f, 4010007, subAlreadyDoneText)
			assert.Equal(t, flow.StatePassedChallenge, f.State, "wire state after completion")
			assert.Len(t, subSessions(t, e, e.identity.ID), 1, "no second session")

			// A wrong password on a completed flow also answers 4010007.
			got = replay.wantFlow(t, replay.submit(t, s.creds(testIdentifier, "wrong"), nil))
			subOnlyMessage(t, got.flow(t), 4010007, subAlreadyDoneText)
		})
	}
}

// TestSubmitCompletedFlowWireState: after a login, fetching the flow shows
// state passed_challenge.
func TestSubmitCompletedFlowWireState(t *testing.T) {
	e := newEnv(t)
	f := e.apiFlow("")
	require.Equal(t, flow.StateChooseMethod, f.State)
	r := e.submitJSON(e.api(), f.ID, credentials(testIdentifier, testPassword, ""), nil)
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)

	fr := subFetchFlow(t, e, e.api(), f.ID)
	require.Equal(t, http.StatusOK, fr.status, "body: %s", fr.body)
	assert.Equal(t, flow.StatePassedChallenge, fr.flow(t).State)
	assert.Equal(t, "passed_challenge", fr.json(t)["state"])
}

// subYieldingFlowStore lets other goroutines run between reading a flow
// and the caller's next step, as the latency of a networked database does
// (the in-memory store answers too fast for races to show).
type subYieldingFlowStore struct {
	*flow.MemoryStore
}

func (s subYieldingFlowStore) Flow(ctx context.Context, id string) (*flow.Record, error) {
	rec, err := s.MemoryStore.Flow(ctx, id)
	for range 50 {
		runtime.Gosched()
	}
	return rec, err
}

// TestSubmitConcurrent: Part 1 rule 9. Of 50 concurrent correct
// submissions of one API flow exactly one logs in and the other 49 answer
// 400 with 4010007; exactly one session is stored. Concurrent wrong
// passwords each get their 400 with 4000006. Neither depends on how fast
// the flow store is.
func TestSubmitConcurrent(t *testing.T) {
	const n = 50
	tests := []struct {
		name       string
		yielding   bool
		password   string
		wantStatus map[int]int
		wantLoser  []int // message ids of every 400
		wantStored int   // sessions
	}{
		{"correct passwords, in-memory store", false, testPassword, map[int]int{200: 1, 400: n - 1}, []int{4010007}, 1},
		{"correct passwords, store with latency", true, testPassword, map[int]int{200: 1, 400: n - 1}, []int{4010007}, 1},
		{"wrong passwords, in-memory store", false, "wrong", map[int]int{400: n}, []int{4000006}, 0},
		{"wrong passwords, store with latency", true, "wrong", map[int]int{400: n}, []int{4000006}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := &subBuffer{}
			e := newEnv(t, func(c *login.Config) {
				c.Logger = subDebugLogger(logs)
				c.DisableThrottling = true // 50 failures at once would be throttled; this is about the race
				if tt.yielding {
					c.FlowStore = subYieldingFlowStore{c.FlowStore.(*flow.MemoryStore)}
				}
			})
			f := e.apiFlow("")
			body := subJSON(t, credentials(testIdentifier, tt.password, ""))
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n}}
			t.Cleanup(client.CloseIdleConnections)

			type outcome struct {
				status int
				body   []byte
				err    error
			}
			outcomes := make([]outcome, n)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					<-start
					req, err := http.NewRequest(http.MethodPost, e.srv.URL+"/self-service/login?flow="+f.ID, bytes.NewReader(body))
					if err != nil {
						outcomes[i].err = err
						return
					}
					req.Header.Set("Content-Type", "application/json")
					resp, err := client.Do(req)
					if err != nil {
						outcomes[i].err = err
						return
					}
					defer resp.Body.Close()
					b, err := io.ReadAll(resp.Body)
					outcomes[i] = outcome{status: resp.StatusCode, body: b, err: err}
				})
			}
			close(start)
			wg.Wait()

			statuses := map[int]int{}
			for i, o := range outcomes {
				require.NoError(t, o.err, "request %d", i)
				statuses[o.status]++
				switch o.status {
				case http.StatusOK:
					var ok struct {
						SessionToken string `json:"session_token"`
					}
					assert.NoError(t, json.Unmarshal(o.body, &ok))
					assert.NotEmpty(t, ok.SessionToken)
				case http.StatusBadRequest:
					var lost flow.Flow
					if assert.NoError(t, json.Unmarshal(o.body, &lost), "body: %s", o.body) {
						assert.Equal(t, tt.wantLoser, subIDs(lost.UI.Messages), "body: %s", o.body)
					}
				}
			}
			if !assert.Equal(t, tt.wantStatus, statuses) {
				for line := range strings.SplitSeq(logs.String(), "\n") {
					if strings.Contains(line, "level=ERROR") {
						t.Log("log: " + line)
						break
					}
				}
			}
			assert.Len(t, subSessions(t, e, e.identity.ID), tt.wantStored, "sessions stored")
		})
	}
}
