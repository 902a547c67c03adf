package login_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	autherrors "github.com/authflow/authflow/errors"
	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/login/logintest"
)

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// The review's reproduction: a refresh login read the session before the
// password hash and wrote it back afterwards, so a logout, a "sign out
// everywhere" or the session's expiry that happened during the hash was
// undone and the session lived on under a new token. The refresh must
// issue nothing then, answer as for a request without a session (401
// session_inactive), and leave the flow usable; with and without a store
// that completes flow and session in one transaction.
func TestRefreshLosesToConcurrentLogout(t *testing.T) {
	ends := []struct {
		name string
		end  func(t *testing.T, e *env, token string)
	}{
		{"logout", func(t *testing.T, e *env, token string) {
			r := e.do(e.api(), http.MethodDelete, "/self-service/logout/api", strings.NewReader(`{"session_token":"`+token+`"}`),
				map[string]string{"Content-Type": "application/json"})
			require.Equal(t, http.StatusNoContent, r.status, "body: %s", r.body)
		}},
		{"revoke all sessions", func(t *testing.T, e *env, _ string) {
			n, err := e.sessions.RevokeSessions(context.Background(), e.identity.ID)
			require.NoError(t, err)
			require.Equal(t, 1, n)
		}},
		{"expiry", func(t *testing.T, e *env, _ string) {
			e.clock.Advance(login.DefaultSessionLifespan)
		}},
	}
	for _, transactional := range []bool{false, true} {
		for _, end := range ends {
			name := end.name
			if transactional {
				name += ", transactional store"
			}
			t.Run(name, func(t *testing.T) {
				hasher := &logintest.GateHasher{}
				e := newEnv(t, func(c *login.Config) {
					c.Hasher = hasher
					c.FlowLifespan = 2 * login.DefaultSessionLifespan // the flow outlives the session
					if transactional {
						useTransactionalStore(c)
					}
				})
				token := e.loginAPI()
				header := map[string]string{"X-Session-Token": token}
				r := e.do(e.api(), http.MethodGet, "/self-service/login/api?refresh=true", nil, header)
				require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
				f := r.flow(t)
				require.True(t, f.Refresh)

				entered, open := hasher.Arm()
				done := make(chan *result)
				go func() {
					done <- e.submitJSON(e.api(), f.ID, credentials(testIdentifier, testPassword, ""), header)
				}()
				<-entered
				end.end(t, e, token)
				open()
				r = <-done

				assert.Equal(t, http.StatusUnauthorized, r.status, "body: %s", r.body)
				assert.Equal(t, autherrors.IDSessionInactive, r.json(t)["error"].(map[string]any)["id"])
				assert.NotContains(t, string(r.body), "session_token", "nothing is issued")

				who := e.do(e.api(), http.MethodGet, "/sessions/whoami", nil, header)
				assert.Equal(t, http.StatusUnauthorized, who.status, "the old token stays dead")
				stored, err := e.sessions.SessionByToken(context.Background(), sha256Hex(token))
				require.NoError(t, err, "the session keeps its token hash: no new token was written")
				assert.False(t, stored.Valid(e.clock.Now()), "the session stays ended")
				assert.Len(t, stored.Session.AuthenticationMethods, 1, "the refresh was not recorded")
				all, err := e.sessions.ListSessions(context.Background(), e.identity.ID)
				require.NoError(t, err)
				assert.Len(t, all, 1, "no session was created instead")

				got, err := e.flows.Flow(context.Background(), f.ID)
				require.NoError(t, err)
				assert.Equal(t, flow.StateChooseMethod, got.Flow.State, "the flow is left usable")
			})
		}
	}
}

// Without a race, a refresh whose session ended before the submit is a
// plain login (the flow's refresh needs a session to refresh), as before.
func TestRefreshAfterLogoutIsALogin(t *testing.T) {
	e := newEnv(t)
	token := e.loginAPI()
	header := map[string]string{"X-Session-Token": token}
	f := e.do(e.api(), http.MethodGet, "/self-service/login/api?refresh=true", nil, header).flow(t)
	_, err := e.sessions.RevokeSessions(context.Background(), e.identity.ID)
	require.NoError(t, err)
	e.clock.Advance(time.Second)
	r := e.submitJSON(e.api(), f.ID, credentials(testIdentifier, testPassword, ""), header)
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	assert.NotEqual(t, token, r.json(t)["session_token"], "a new session, never the revoked one")
}
