package login_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/session"
)

// Atomic completion (CONTRACT Part 1 §G step 14) and secrets kept out of
// responses and logs (STYLE "Security is named").

const subStoreDetail = "sub: session store down at db-7.internal:5432"

// TestSubmitSessionStoreFailure: when the session cannot be stored the
// login fails with the generic 500 (nothing internal leaked), no session
// exists, and the flow stays usable: once the store works again, the same
// flow logs in.
func TestSubmitSessionStoreFailure(t *testing.T) {
	for _, kind := range subKinds {
		t.Run(string(kind), func(t *testing.T) {
			var store *subSessionStore
			e := newEnv(t, func(c *login.Config) {
				store = &subSessionStore{MemoryStore: c.SessionStore.(*session.MemoryStore)}
				c.SessionStore = store
			})
			store.setCreate(func(context.Context, *session.Record) error { return errors.New(subStoreDetail) })
			s := subStart(t, e, kind, "")

			r := s.submit(t, s.creds(testIdentifier, testPassword), nil)
			env := s.wantError(t, r, http.StatusInternalServerError)
			obj := subErr(env)
			assert.NotContains(t, obj, "id")
			assert.NotContains(t, obj, "reason")
			assert.NotContains(t, obj, "details")
			assert.NotContains(t, obj, "debug")
			assert.Equal(t, subMsgInternal, obj["message"])
			assert.NotContains(t, string(r.body), "db-7")
			assert.Nil(t, r.cookie(subSessionCookie))
			assert.Empty(t, subSessions(t, e, e.identity.ID), "no session stored")
			rec := subStored(t, e, s.flow.ID)
			assert.Equal(t, flow.StateChooseMethod, rec.Flow.State, "the flow is reopened")

			store.setCreate(nil)
			r = s.submit(t, s.creds(testIdentifier, testPassword), nil)
			if kind == subForm {
				assert.Equal(t, http.StatusSeeOther, r.status, "body: %s", r.body)
				assert.Equal(t, defaultReturn, r.header.Get("Location"))
			} else {
				assert.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
			}
			assert.Len(t, subSessions(t, e, e.identity.ID), 1)
		})
	}
}

// TestSubmitNoSecrets: neither a password, nor a session token, nor a CSRF
// cookie value appears in a response body, a Location or the log (at Debug
// level) after wrong passwords, CSRF failures and successes.
func TestSubmitNoSecrets(t *testing.T) {
	const wrong = "n0t-the-Right-one!"
	logs := &subBuffer{}
	e := newEnv(t, func(c *login.Config) { c.Logger = subDebugLogger(logs) })
	var shown []string // bodies and Locations clients saw
	see := func(r *result) {
		shown = append(shown, string(r.body), r.header.Get("Location"))
	}
	var secrets []string

	for _, kind := range []subKind{subSPA, subForm} {
		s := subStart(t, e, kind, "")
		secrets = append(secrets, subJarCookie(t, e, s.c, subCSRFCookie))

		r := s.submit(t, s.creds(testIdentifier, wrong), nil) // wrong password
		see(r)
		see(s.wantFlow(t, r))

		r = s.submit(t, credentials(testIdentifier, testPassword, subWrongCSRFToken()), nil) // CSRF failure
		see(r)
		env := s.wantError(t, r, http.StatusForbidden)
		shown = append(shown, subErr(env)["reason"].(string))
		if d, ok := subErr(env)["details"].(map[string]any); ok {
			for _, v := range d {
				shown = append(shown, v.(string))
			}
		}

		r = s.submit(t, s.creds(testIdentifier, testPassword), nil) // success
		see(r)
		ck := r.cookie(subSessionCookie)
		require.NotNil(t, ck, "body: %s", r.body)
		secrets = append(secrets, ck.Value, subJarCookie(t, e, s.c, subCSRFCookie))
	}

	// API flows: the success body carries its token by design; the log
	// must not.
	f := e.apiFlow("")
	see(e.submitJSON(e.api(), f.ID, credentials(testIdentifier, wrong, ""), nil))
	secrets = append(secrets, e.loginAPI())

	secrets = append(secrets, testPassword, wrong)
	log := logs.String()
	require.NotEmpty(t, log, "the handler logs at Debug level")
	for _, secret := range secrets {
		require.NotEmpty(t, secret)
		assert.NotContains(t, log, secret, "the log")
		for i, s := range shown {
			assert.False(t, strings.Contains(s, secret), "response %d contains a secret: %s", i, s)
		}
	}
}
