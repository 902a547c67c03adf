package login_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/session"
)

// memSessions names the embedded session store apart from the flow store.
type memSessions = session.MemoryStore

// transactionalStore is a flow store that also holds the sessions and
// offers login.FlowSessionCompleter, as a database backend would; it
// records how the handler completed flows.
type transactionalStore struct {
	*flow.MemoryStore
	*memSessions
	fail  error // when set, the transaction fails and changes nothing
	calls []bool
}

// useTransactionalStore makes c's flow and session stores one
// transactionalStore over them.
func useTransactionalStore(c *login.Config) *transactionalStore {
	s := &transactionalStore{MemoryStore: c.FlowStore.(*flow.MemoryStore), memSessions: c.SessionStore.(*session.MemoryStore)}
	c.FlowStore, c.SessionStore = s, s
	return s
}

func (s *transactionalStore) CompleteFlowWithSession(ctx context.Context, rec *flow.Record, sess *session.Record, create bool, now time.Time) error {
	s.calls = append(s.calls, create)
	if s.fail != nil {
		return s.fail
	}
	return completeInMemory(ctx, s.MemoryStore, s.memSessions, rec, sess, create, now)
}

// completeInMemory is a FlowSessionCompleter's transaction on the in-memory
// stores: the completion is rolled back if the session write fails.
func completeInMemory(ctx context.Context, flows *flow.MemoryStore, sessions *session.MemoryStore, rec *flow.Record, sess *session.Record, create bool, now time.Time) error {
	before, err := flows.Flow(ctx, rec.Flow.ID)
	if err != nil {
		return err
	}
	if err := flows.CompleteFlow(ctx, rec); err != nil {
		return err
	}
	if create {
		err = sessions.CreateSession(ctx, sess)
	} else {
		err = sessions.UpdateSession(ctx, sess, now)
	}
	if err != nil {
		before.Version = rec.Version
		if rerr := flows.UpdateFlow(ctx, before); rerr != nil {
			return errors.Join(err, rerr)
		}
	}
	return err
}

var _ login.FlowSessionCompleter = (*transactionalStore)(nil)

func TestCompleterIsUsedForLoginAndRefresh(t *testing.T) {
	var store *transactionalStore
	e := newEnv(t, func(c *login.Config) {
		store = useTransactionalStore(c)
	})

	tok := e.loginAPI()
	assert.Equal(t, []bool{true}, store.calls, "a login creates its session in the transaction")

	r := e.do(e.api(), http.MethodGet, "/self-service/login/api?refresh=true", nil, map[string]string{"X-Session-Token": tok})
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	refresh := r.flow(t)
	r = e.submitJSON(e.api(), refresh.ID, credentials(testIdentifier, testPassword, ""), map[string]string{"X-Session-Token": tok})
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	assert.Equal(t, []bool{true, false}, store.calls, "a refresh updates its session in the transaction")
}

func TestCompleterFailureIssuesNoSessionAndKeepsTheFlow(t *testing.T) {
	var store *transactionalStore
	e := newEnv(t, func(c *login.Config) {
		store = useTransactionalStore(c)
	})
	store.fail = errors.New("database is down")

	f := e.apiFlow("")
	r := e.submitJSON(e.api(), f.ID, credentials(testIdentifier, testPassword, ""), nil)
	require.Equal(t, http.StatusInternalServerError, r.status, "%s", r.body)
	assert.NotContains(t, string(r.body), "database is down", "the cause is logged, not sent")
	list, err := e.sessions.ListSessions(context.Background(), e.identity.ID)
	require.NoError(t, err)
	assert.Empty(t, list)

	store.fail = nil
	r = e.submitJSON(e.api(), f.ID, credentials(testIdentifier, testPassword, ""), nil)
	assert.Equal(t, http.StatusOK, r.status, "the same flow logs in once the store is back: %s", r.body)
}
