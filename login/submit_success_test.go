package login_test

import (
	"context"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/session"
)

// Submit — success and sessions: CONTRACT Part 1 rules 2-4, 13, 14, 21;
// Part 2 rows 20-22, §3.3, §4.6-4.7, §7 and §12 64-68, 76-79.

var (
	subSessionCookieLine = `^authflow_session=[A-Za-z0-9_=-]{43,}; Path=/; Expires=[^;]+; Max-Age=86400; HttpOnly; SameSite=Lax$`
	subCSRFCookieLine    = `^authflow_csrf=[A-Za-z0-9+/=]{44}; Path=/; Max-Age=31536000; HttpOnly; SameSite=Lax$`
)

// subSetCookie returns the raw Set-Cookie line for name, or "".
func subSetCookie(r *result, name string) string {
	for _, line := range r.header.Values("Set-Cookie") {
		if strings.HasPrefix(line, name+"=") {
			return line
		}
	}
	return ""
}

// subLogin is a success body.
type subLogin struct {
	SessionToken string          `json:"session_token"`
	Session      session.Session `json:"session"`
	ContinueWith json.RawMessage `json:"continue_with"`
}

// subAssertSession checks a freshly issued password session of id.
func subAssertSession(t testing.TB, e *env, s session.Session, id *session.Identity) {
	t.Helper()
	now := e.clock.Now()
	assert.NotEmpty(t, s.ID)
	assert.True(t, s.Active)
	assert.Equal(t, "aal1", s.AAL)
	require.NotEmpty(t, s.AuthenticationMethods)
	last := s.AuthenticationMethods[len(s.AuthenticationMethods)-1]
	assert.Equal(t, "password", last.Method)
	assert.Equal(t, "aal1", last.AAL)
	assert.True(t, now.Equal(last.CompletedAt), "completed_at %s", last.CompletedAt)
	assert.True(t, now.Equal(s.AuthenticatedAt), "authenticated_at %s", s.AuthenticatedAt)
	assert.True(t, now.Add(login.DefaultSessionLifespan).Equal(s.ExpiresAt), "expires_at %s", s.ExpiresAt)
	require.NotNil(t, s.Identity)
	assert.Equal(t, id.ID, s.Identity.ID)
	assert.Equal(t, "default", s.Identity.SchemaID)
	assert.Equal(t, e.srv.URL+"/schemas/ZGVmYXVsdA", s.Identity.SchemaURL)
	assert.Equal(t, session.StateActive, s.Identity.State)
	require.NotEmpty(t, s.Devices)
	assert.Equal(t, "127.0.0.1", s.Devices[0].IPAddress, "the connection's host, no port (Part 1 rule 18)")
	assert.Equal(t, "Go-http-client/1.1", s.Devices[0].UserAgent)
}

// subAssertNoCredentialsInBody checks that no identity credentials are
// serialised.
func subAssertNoCredentialsInBody(t testing.TB, body []byte) {
	t.Helper()
	assert.NotContains(t, string(body), "credentials")
	assert.NotContains(t, string(body), "hashed_password")
	assert.NotContains(t, string(body), "$fast$")
}

// TestSubmitSuccess: Part 2 row 20 (§12 64-66) with Part 1 rules 1-4 and 13.
func TestSubmitSuccess(t *testing.T) {
	const dash = "https://app.example.com/dash"
	form := "application/x-www-form-urlencoded"
	tests := []struct {
		name       string
		flowType   string // "api" or "browser"
		query      string
		header     map[string]string // Content-Type and Accept of the submit
		wantJSON   bool
		wantTarget string // browser flows: Location or continue_with target
	}{
		{"api flow, JSON", "api", "", map[string]string{"Content-Type": "application/json", "Accept": "application/json"}, true, ""},
		{"api flow, form without Accept answers JSON", "api", "", map[string]string{"Content-Type": form}, true, ""},
		{"api flow with return_to", "api", "?return_to=" + url.QueryEscape(dash), map[string]string{"Content-Type": "application/json"}, true, ""},
		{"browser form to the default return URL", "browser", "", map[string]string{"Content-Type": form}, false, defaultReturn},
		{"browser form to return_to", "browser", "?return_to=" + url.QueryEscape(dash), map[string]string{"Content-Type": form}, false, dash},
		{"browser form to a relative return_to", "browser", "?return_to=%2Fdash", map[string]string{"Content-Type": form}, false, dash},
		{"browser form with Accept */*", "browser", "", map[string]string{"Content-Type": form, "Accept": "*/*"}, false, defaultReturn},
		{"browser form with Accept application/json, text/html redirects", "browser", "", map[string]string{"Content-Type": form, "Accept": "application/json, text/html"}, false, defaultReturn},
		{"browser form with Accept preferring JSON answers JSON", "browser", "", map[string]string{"Content-Type": form, "Accept": "text/html;q=0.9, application/json"}, true, defaultReturn},
		{"spa to the default return URL", "browser", "", map[string]string{"Content-Type": "application/json", "Accept": "application/json"}, true, defaultReturn},
		{"spa to return_to", "browser", "?return_to=" + url.QueryEscape(dash), map[string]string{"Content-Type": "application/json", "Accept": "application/json"}, true, dash},
		{"spa to a relative return_to", "browser", "?return_to=%2Fdash", map[string]string{"Content-Type": "application/json", "Accept": "application/json"}, true, dash},
		{"JSON body without Accept is a JSON request", "browser", "", map[string]string{"Content-Type": "application/json"}, true, defaultReturn},
		{"JSON body with Accept text/html is a JSON request", "browser", "", map[string]string{"Content-Type": "application/json", "Accept": "text/html"}, true, defaultReturn},
		{"JSON body with charset without Accept is a JSON request", "browser", "", map[string]string{"Content-Type": "application/json; charset=utf-8"}, true, defaultReturn},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			var c *http.Client
			var f subFlowRef
			if tt.flowType == "api" {
				c = e.api()
				fl := e.apiFlow(tt.query)
				f = subFlowRef{id: fl.ID, csrf: ""}
			} else {
				c = e.browser()
				fl := e.browserFlow(c, tt.query)
				f = subFlowRef{id: fl.ID, csrf: csrfToken(fl)}
			}
			oldCSRF := ""
			if c.Jar != nil {
				oldCSRF = subJarCookie(t, e, c, subCSRFCookie)
			}

			var body string
			if strings.HasPrefix(tt.header["Content-Type"], "application/json") {
				body = string(subJSON(t, credentials(testIdentifier, testPassword, f.csrf)))
			} else {
				body = url.Values{"method": {"password"}, "identifier": {testIdentifier}, "password": {testPassword}, "csrf_token": {f.csrf}}.Encode()
			}
			r := e.do(c, http.MethodPost, "/self-service/login?flow="+f.id, strings.NewReader(body), tt.header)
			subAssertNoCache(t, r)
			stored := subSessions(t, e, e.identity.ID)
			require.Len(t, stored, 1, "one session stored")

			if !tt.wantJSON {
				require.Equal(t, http.StatusSeeOther, r.status, "body: %s", r.body)
				assert.Equal(t, tt.wantTarget, r.header.Get("Location"))
			} else {
				require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
				assert.Equal(t, subJSONFlowType, r.header.Get("Content-Type"))
				assert.NotContains(t, r.header, "Ory-Error-Id")
				subAssertNoCredentialsInBody(t, r.body)
				raw := r.json(t)
				var got subLogin
				require.NoError(t, json.Unmarshal(r.body, &got))
				subAssertSession(t, e, got.Session, e.identity)
				assert.Equal(t, stored[0].Session.ID, got.Session.ID)
				if tt.flowType == "api" {
					assert.Equal(t, []string{"continue_with", "session", "session_token"}, subKeys(raw))
					assert.Equal(t, "null", string(got.ContinueWith))
					assert.NotEmpty(t, got.SessionToken)
					w := subWhoami(t, e, got.SessionToken)
					require.Equal(t, http.StatusOK, w.status, "the token works: %s", w.body)
					assert.Equal(t, got.Session.ID, w.json(t)["id"])
				} else {
					assert.Equal(t, []string{"continue_with", "session"}, subKeys(raw), "no session_token for browsers")
					assert.JSONEq(t, `[{"action":"redirect_browser_to","redirect_browser_to":"`+tt.wantTarget+`"}]`, string(got.ContinueWith))
				}
			}

			if tt.flowType == "api" {
				assert.Empty(t, r.header.Values("Set-Cookie"), "API flows set no cookie")
				return
			}
			line := subSetCookie(r, subSessionCookie)
			assert.Regexp(t, subSessionCookieLine, line)
			ck := r.cookie(subSessionCookie)
			require.NotNil(t, ck, "session cookie")
			assert.True(t, e.clock.Now().Add(login.DefaultSessionLifespan).Truncate(time.Second).Equal(ck.Expires), "Expires %s", ck.Expires)
			w := subWhoami(t, e, ck.Value)
			require.Equal(t, http.StatusOK, w.status, "the cookie's value is the session token: %s", w.body)
			assert.Equal(t, stored[0].Session.ID, w.json(t)["id"])

			assert.Regexp(t, subCSRFCookieLine, subSetCookie(r, subCSRFCookie), "a rotated CSRF cookie")
			if nc := r.cookie(subCSRFCookie); assert.NotNil(t, nc) {
				assert.NotEqual(t, oldCSRF, nc.Value, "the CSRF cookie rotates at login")
			}
		})
	}
}

type subFlowRef struct{ id, csrf string }

// subKeys returns the sorted keys of m.
func subKeys(m map[string]any) []string { return slices.Sorted(maps.Keys(m)) }

// TestSubmitSessionCookieAttributes: Part 1 rule 13 on http: HttpOnly,
// SameSite=Lax, Path=/, no Secure, no Domain.
func TestSubmitSessionCookieAttributes(t *testing.T) {
	for _, kind := range []subKind{subForm, subSPA} {
		t.Run(string(kind), func(t *testing.T) {
			e := newEnv(t)
			s := subStart(t, e, kind, "")
			r := s.submit(t, s.creds(testIdentifier, testPassword), nil)
			for _, name := range []string{subSessionCookie, subCSRFCookie} {
				ck := r.cookie(name)
				require.NotNil(t, ck, name)
				assert.True(t, ck.HttpOnly, name)
				assert.Equal(t, http.SameSiteLaxMode, ck.SameSite, name)
				assert.Equal(t, "/", ck.Path, name)
				assert.False(t, ck.Secure, name)
				assert.Empty(t, ck.Domain, name)
				assert.NotContains(t, subSetCookie(r, name), "Secure", name)
			}
		})
	}
}

// TestSubmitSessionFixation: §7.4 and Part 1 rule 14. The client never
// chooses a session: a planted cookie is replaced, and every non-refresh
// login makes a new session id and token.
func TestSubmitSessionFixation(t *testing.T) {
	t.Run("a planted session cookie is replaced", func(t *testing.T) {
		e := newEnv(t)
		s := subStart(t, e, subForm, "")
		u, err := url.Parse(e.srv.URL)
		require.NoError(t, err)
		s.c.Jar.SetCookies(u, []*http.Cookie{{Name: subSessionCookie, Value: "attacker-chosen-value", Path: "/"}})

		r := s.submit(t, s.creds(testIdentifier, testPassword), nil)
		require.Equal(t, http.StatusSeeOther, r.status, "body: %s", r.body)
		ck := r.cookie(subSessionCookie)
		require.NotNil(t, ck)
		assert.NotEqual(t, "attacker-chosen-value", ck.Value)
		assert.Equal(t, http.StatusUnauthorized, subWhoami(t, e, "attacker-chosen-value").status)
		assert.Equal(t, http.StatusOK, subWhoami(t, e, ck.Value).status)
	})
	t.Run("every login is a new session", func(t *testing.T) {
		e := newEnv(t)
		ids, tokens := map[string]bool{}, map[string]bool{}
		for range 2 {
			tok := e.loginAPI()
			tokens[tok] = true
			ids[subWhoami(t, e, tok).json(t)["id"].(string)] = true
		}
		for _, kind := range []subKind{subForm, subSPA} {
			s := subStart(t, e, kind, "")
			r := s.submit(t, s.creds(testIdentifier, testPassword), nil)
			ck := r.cookie(subSessionCookie)
			require.NotNil(t, ck, "body: %s", r.body)
			tokens[ck.Value] = true
			ids[subWhoami(t, e, ck.Value).json(t)["id"].(string)] = true
		}
		assert.Len(t, ids, 4, "distinct session ids")
		assert.Len(t, tokens, 4, "distinct tokens")
		assert.Len(t, subSessions(t, e, e.identity.ID), 4)
	})
}

// TestSubmitRefresh: Part 2 rows 21-22 (§12 76-77) with Part 1 rule 14: a
// refresh by the same identity keeps the session id, rotates the token and
// appends an authentication method, without rotating the CSRF cookie; a
// different identity gets a new session.
func TestSubmitRefresh(t *testing.T) {
	tests := []struct {
		name          string
		kind          subKind
		otherIdentity bool
	}{
		{"api, same identity", subAPI, false},
		{"spa, same identity", subSPA, false},
		{"browser form, same identity", subForm, false},
		{"api, different identity", subAPI, true},
		{"spa, different identity", subSPA, true},
		{"browser form, different identity", subForm, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			bob := e.addIdentity("bob@example.com", "bob's own password")
			var s *subClient
			var oldToken string
			var header map[string]string
			if tt.kind == subAPI {
				oldToken = e.loginAPI()
				header = map[string]string{"X-Session-Token": oldToken}
				s = &subClient{e: e, kind: tt.kind, c: e.api(), flow: subAPIFlowWith(t, e, "?refresh=true", header)}
			} else {
				c := e.browser()
				e.loginBrowser(c)
				oldToken = subJarCookie(t, e, c, subSessionCookie)
				s = subStartBrowser(t, e, tt.kind, c, "?refresh=true")
			}
			require.True(t, s.flow.Refresh)
			old := subWhoami(t, e, oldToken)
			require.Equal(t, http.StatusOK, old.status)
			oldID := old.json(t)["id"].(string)
			oldCSRF := ""
			if s.c.Jar != nil {
				oldCSRF = subJarCookie(t, e, s.c, subCSRFCookie)
			}
			e.clock.Advance(10 * time.Minute)

			who, identifier, secret := e.identity, testIdentifier, testPassword
			if tt.otherIdentity {
				who, identifier, secret = bob, "bob@example.com", "bob's own password"
			}
			r := s.submit(t, s.creds(identifier, secret), header)
			subAssertNoCache(t, r)
			var newToken string
			switch tt.kind {
			case subAPI:
				require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
				var got subLogin
				require.NoError(t, json.Unmarshal(r.body, &got))
				newToken = got.SessionToken
			case subSPA:
				require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
				newToken = r.cookie(subSessionCookie).Value
			case subForm:
				require.Equal(t, http.StatusSeeOther, r.status, "body: %s", r.body)
				assert.Equal(t, defaultReturn, r.header.Get("Location"))
				newToken = r.cookie(subSessionCookie).Value
			}
			require.NotEmpty(t, newToken)
			assert.NotEqual(t, oldToken, newToken, "a new token")

			w := subWhoami(t, e, newToken)
			require.Equal(t, http.StatusOK, w.status, "the new token works: %s", w.body)
			var s2 session.Session
			require.NoError(t, json.Unmarshal(w.body, &s2))
			subAssertSession(t, e, s2, who)

			if tt.otherIdentity {
				assert.NotEqual(t, oldID, s2.ID, "a different identity gets a new session")
				assert.Len(t, s2.AuthenticationMethods, 1)
				assert.Len(t, subSessions(t, e, bob.ID), 1)
				if tt.kind != subAPI {
					assert.NotNil(t, r.cookie(subCSRFCookie), "the CSRF cookie rotates when the principal changes")
				}
				return
			}
			assert.Equal(t, oldID, s2.ID, "a refresh keeps the session id")
			assert.Len(t, s2.AuthenticationMethods, 2, "authentication_methods gains an entry")
			assert.Equal(t, http.StatusUnauthorized, subWhoami(t, e, oldToken).status, "the old token stops working")
			assert.Len(t, subSessions(t, e, e.identity.ID), 1)
			if tt.kind != subAPI {
				assert.Nil(t, r.cookie(subCSRFCookie), "a refresh does not rotate the CSRF cookie")
				assert.Equal(t, oldCSRF, subJarCookie(t, e, s.c, subCSRFCookie))
			}
		})
	}
}

// TestSubmitIdentifierNormalisation: §12 67-68 and Part 1 rule 21.
func TestSubmitIdentifierNormalisation(t *testing.T) {
	tests := []struct {
		name   string
		fields map[string]any
	}{
		{"surrounding white space and capitals", map[string]any{"identifier": "  ALICE@Example.com "}},
		{"upper case", map[string]any{"identifier": "ALICE@EXAMPLE.COM"}},
		{"full-width letters", map[string]any{"identifier": "ａｌｉｃｅ@example.com"}},
		{"full-width everything", map[string]any{"identifier": "ＡＬＩＣＥ＠ＥＸＡＭＰＬＥ．ＣＯＭ"}},
		{"legacy password_identifier", map[string]any{"identifier": nil, "password_identifier": testIdentifier}},
		{"legacy password_identifier with an empty identifier", map[string]any{"identifier": "", "password_identifier": "  Alice@Example.com"}},
	}
	for _, kind := range subKinds {
		for _, tt := range tests {
			t.Run(string(kind)+"/"+tt.name, func(t *testing.T) {
				e := newEnv(t)
				s := subStart(t, e, kind, "")
				fields := s.creds(testIdentifier, testPassword)
				for k, v := range tt.fields {
					fields[k] = v
				}
				r := s.submit(t, fields, nil)
				if kind == subForm {
					assert.Equal(t, http.StatusSeeOther, r.status, "body: %s", r.body)
					assert.Equal(t, defaultReturn, r.header.Get("Location"))
				} else {
					assert.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
				}
				assert.Len(t, subSessions(t, e, e.identity.ID), 1, "alice is signed in")
			})
		}
	}
}

// subPBKDF2 returns a real Kratos-format PBKDF2-SHA256 hash of secret.
func subPBKDF2(t testing.TB, secret string) string {
	t.Helper()
	const iter = 1000
	salt := make([]byte, 16)
	_, _ = rand.Read(salt)
	key, err := pbkdf2.Key(sha256.New, secret, salt, iter, 32)
	require.NoError(t, err)
	return fmt.Sprintf("$pbkdf2-sha256$i=%d,l=32$%s$%s", iter,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}

// subStoredHash returns the identity's stored password credential and hash.
func subStoredHash(t testing.TB, e *env, identifier string) (*session.Credential, string) {
	t.Helper()
	_, cred, err := e.identities.FindIdentity(context.Background(), session.CredentialPassword, identifier)
	require.NoError(t, err)
	var cfg session.PasswordConfig
	require.NoError(t, json.Unmarshal(cred.Config, &cfg))
	return cred, cfg.HashedPassword
}

// TestSubmitRehash: §12 78-79 with Part 1 §E. A legacy hash logs in and is
// replaced by the configured hasher's format; a failing re-hash never
// fails the login; a current hash is left alone.
func TestSubmitRehash(t *testing.T) {
	const legacyID, legacySecret = "legacy@example.com", "legacy password 123"

	t.Run("pbkdf2 becomes the configured format", func(t *testing.T) {
		e := newEnv(t)
		id := e.addIdentityWith(legacyID, subPasswordCredential(t, legacyID, subPBKDF2(t, legacySecret)))
		for i := range 2 {
			f := e.apiFlow("")
			r := e.submitJSON(e.api(), f.ID, credentials(legacyID, legacySecret, ""), nil)
			require.Equal(t, http.StatusOK, r.status, "login %d, body: %s", i+1, r.body)
			cred, hash := subStoredHash(t, e, legacyID)
			assert.True(t, strings.HasPrefix(hash, "$fast$"), "stored hash %q", hash)
			assert.Equal(t, int64(2), cred.Version, "re-hashed exactly once")
			assert.NoError(t, e.hasher.Compare(context.Background(), []byte(legacySecret), hash))
		}
		assert.Len(t, subSessions(t, e, id.ID), 2)
	})
	t.Run("a current hash is not rewritten", func(t *testing.T) {
		e := newEnv(t)
		_, before := subStoredHash(t, e, testIdentifier)
		e.loginAPI()
		cred, after := subStoredHash(t, e, testIdentifier)
		assert.Equal(t, before, after)
		assert.Equal(t, int64(1), cred.Version)
	})
	for _, kind := range subKinds {
		t.Run("a failing re-hash does not fail the login/"+string(kind), func(t *testing.T) {
			h := &subHasher{}
			h.failHash.Store(true)
			logs := &subBuffer{}
			e := newEnv(t, func(c *login.Config) {
				c.Hasher = h
				c.Logger = subDebugLogger(logs)
			})
			legacy := subPBKDF2(t, legacySecret)
			id := e.addIdentityWith(legacyID, subPasswordCredential(t, legacyID, legacy))
			for i := range 2 {
				s := subStart(t, e, kind, "")
				r := s.submit(t, s.creds(legacyID, legacySecret), nil)
				if kind == subForm {
					require.Equal(t, http.StatusSeeOther, r.status, "login %d, body: %s", i+1, r.body)
					assert.Equal(t, defaultReturn, r.header.Get("Location"))
				} else {
					require.Equal(t, http.StatusOK, r.status, "login %d, body: %s", i+1, r.body)
				}
				cred, hash := subStoredHash(t, e, legacyID)
				assert.Equal(t, legacy, hash, "the legacy hash stays")
				assert.Equal(t, int64(1), cred.Version)
			}
			assert.Positive(t, h.hashes.Load(), "a re-hash was attempted")
			assert.Len(t, subSessions(t, e, id.ID), 2)
			assert.NotContains(t, logs.String(), legacySecret)
		})
	}
}

// A session refreshed again and again keeps at most
// MaxAuthenticationMethods entries, the newest last; a repeated method
// makes room before a distinct one does.
func TestRefreshKeepsAuthenticationMethodsBounded(t *testing.T) {
	e := newEnv(t)
	token := e.loginAPI()
	header := map[string]string{"X-Session-Token": token}
	var methods []any
	for i := range login.MaxAuthenticationMethods + 8 {
		e.clock.Advance(time.Second)
		f := e.do(e.api(), http.MethodGet, "/self-service/login/api?refresh=true", nil, header).flow(t)
		r := e.submitJSON(e.api(), f.ID, credentials(testIdentifier, testPassword, ""), header)
		require.Equal(t, http.StatusOK, r.status, "refresh %d: %s", i+1, r.body)
		body := r.json(t)
		header["X-Session-Token"] = body["session_token"].(string) // refreshes rotate the token
		methods = body["session"].(map[string]any)["authentication_methods"].([]any)
		assert.Len(t, methods, min(i+2, login.MaxAuthenticationMethods), "after refresh %d", i+1)
	}
	last := methods[len(methods)-1].(map[string]any)
	completed, err := time.Parse(time.RFC3339Nano, last["completed_at"].(string))
	require.NoError(t, err)
	assert.True(t, completed.Equal(e.clock.Now()), "the newest refresh is listed last")
}
