package code_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/courier"
	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/session"
)

// countingFlows counts the flow writes of the handler and its methods.
type countingFlows struct {
	*flow.MemoryStore
	updates atomic.Int64
}

func (c *countingFlows) UpdateFlow(ctx context.Context, rec *flow.Record) error {
	c.updates.Add(1)
	return c.MemoryStore.UpdateFlow(ctx, rec)
}

// countingIdentities counts identity lookups.
type countingIdentities struct {
	*session.MemoryIdentityStore
	finds atomic.Int64
}

func (c *countingIdentities) FindIdentity(ctx context.Context, typ session.CredentialType, identifier string) (*session.Identity, *session.Credential, error) {
	c.finds.Add(1)
	return c.MemoryIdentityStore.FindIdentity(ctx, typ, identifier)
}

// The send step does the same work for a known and an unknown address
// (CONTRACT-CODE §10.2): one identity lookup, the same number of flow
// writes, a code hashed into a state of the same shape. Only the mail
// differs, and it is sent outside the request. (Timing itself is measured by
// BenchmarkSendStep, not asserted.)
func TestSendStepSameWork(t *testing.T) {
	var flows *countingFlows
	var ids *countingIdentities
	e := newEnv(t, func(s *setup) {
		flows = &countingFlows{MemoryStore: s.login.FlowStore.(*flow.MemoryStore)}
		ids = &countingIdentities{MemoryIdentityStore: s.login.IdentityStore.(*session.MemoryIdentityStore)}
		s.login.FlowStore, s.login.IdentityStore = flows, ids
	})
	type work struct {
		updates, finds int64
		state          []string
	}
	measure := func(address string) work {
		c := e.api()
		f := e.apiFlow(c)
		u, n := flows.updates.Load(), ids.finds.Load()
		r := e.send(c, f.ID, address)
		require.Equal(t, http.StatusBadRequest, r.Status, "body: %s", r.Body)
		return work{updates: flows.updates.Load() - u, finds: ids.finds.Load() - n, state: keysOf(e.storedState(f.ID))}
	}
	known, unknown := measure(alice), measure(nobody)
	assert.Equal(t, known, unknown)
	assert.Equal(t, int64(1), known.finds)
	assert.Equal(t, []string{"address", "code_hash", "expires_at", "identity_id", "submissions"}, known.state)
}

// BenchmarkSendStep measures the handler's time for the send step of a known
// and an unknown address; the two should be of the same order (CONTRACT-CODE
// §10.2). Limits are lifted so that no send is throttled, and mail goes to
// a courier that discards it.
func BenchmarkSendStep(b *testing.B) {
	for _, tc := range []struct{ name, address string }{{"known", alice}, {"unknown", nobody}} {
		b.Run(tc.name, func(b *testing.B) {
			e := newEnv(b, func(s *setup) {
				s.code.Courier = discard{}
				unlimited := login.Limits{FreeFailures: 1 << 30, IdentifierFailures: 1 << 30}
				s.code.SendLimits, s.code.SendLimitsPerClient = unlimited, unlimited
				s.login.DisableThrottling = true
			})
			body := `{"method":"code","identifier":"` + tc.address + `"}`
			e.flows.SetMaxEntries(b.N + 100)
			ids := make([]string, b.N)
			for i := range ids {
				w := httptest.NewRecorder()
				e.h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/self-service/login/api", nil))
				var f struct{ ID string }
				require.NoError(b, json.Unmarshal(w.Body.Bytes(), &f))
				ids[i] = f.ID
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				req := httptest.NewRequest(http.MethodPost, "/self-service/login?flow="+ids[i], strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				w := httptest.NewRecorder()
				e.h.ServeHTTP(w, req)
				if w.Code != http.StatusBadRequest {
					b.Fatalf("status %d: %s", w.Code, w.Body)
				}
			}
		})
	}
}

// discard is a courier that accepts every message and keeps none.
type discard struct{}

func (discard) Deliver(context.Context, courier.Message) error { return nil }
