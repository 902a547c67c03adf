package login_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/login/logintest"
	"github.com/authflow/authflow/login/totp"
	"github.com/authflow/authflow/session"
)

// memIdentities names the embedded identity store apart from the others.
type memIdentities = session.MemoryIdentityStore

// oneBackend is the three stores in one value, as a database backend is,
// with every optional capability that spans two of them; it counts the
// calls the handler makes.
type oneBackend struct {
	*flow.MemoryStore
	*memSessions
	*memIdentities

	mu    sync.Mutex
	calls map[string]int
}

// newOneBackend is the three in-memory stores as one.
func newOneBackend(flows *flow.MemoryStore, sessions *session.MemoryStore, ids *session.MemoryIdentityStore) *oneBackend {
	return &oneBackend{MemoryStore: flows, memSessions: sessions, memIdentities: ids, calls: map[string]int{}}
}

func (b *oneBackend) count(name string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls[name]++
}

// took returns the calls counted since the last took.
func (b *oneBackend) took() map[string]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.calls
	b.calls = map[string]int{}
	return c
}

func (b *oneBackend) Flow(ctx context.Context, id string) (*flow.Record, error) {
	b.count("Flow")
	return b.MemoryStore.Flow(ctx, id)
}

func (b *oneBackend) FindIdentity(ctx context.Context, typ session.CredentialType, identifier string) (*session.Identity, *session.Credential, error) {
	b.count("FindIdentity")
	return b.memIdentities.FindIdentity(ctx, typ, identifier)
}

func (b *oneBackend) Credentials(ctx context.Context, identityID string) ([]session.Credential, error) {
	b.count("Credentials")
	return b.memIdentities.Credentials(ctx, identityID)
}

func (b *oneBackend) FlowWithIdentity(ctx context.Context, flowID string, q login.IdentityQuery) (*flow.Record, *login.IdentityLookup, error) {
	b.count("FlowWithIdentity")
	rec, err := b.MemoryStore.Flow(ctx, flowID)
	if err != nil {
		return nil, nil, err
	}
	id, cred, err := b.memIdentities.FindIdentity(ctx, q.Type, q.Identifier)
	if err != nil {
		return rec, nil, nil // nothing found; a failing store is not modelled
	}
	l := &login.IdentityLookup{Identity: id, Credential: cred}
	if q.Credentials {
		if l.Credentials, err = b.memIdentities.Credentials(ctx, id.ID); err != nil {
			return nil, nil, err
		}
	}
	return rec, l, nil
}

func (b *oneBackend) SessionWithIdentity(ctx context.Context, tokenHash string, credentials bool) (*session.Record, *session.Identity, []session.Credential, error) {
	b.count("SessionWithIdentity")
	rec, err := b.memSessions.SessionByToken(ctx, tokenHash)
	if err != nil {
		return nil, nil, nil, err
	}
	id, err := b.memIdentities.Identity(ctx, rec.IdentityID)
	if err != nil {
		return rec, nil, nil, nil
	}
	var creds []session.Credential
	if credentials {
		if creds, err = b.memIdentities.Credentials(ctx, id.ID); err != nil {
			return nil, nil, nil, err
		}
	}
	return rec, id, creds, nil
}

func (b *oneBackend) CompleteFlowWithSession(ctx context.Context, rec *flow.Record, s *session.Record, create bool, now time.Time) error {
	b.count("CompleteFlowWithSession")
	return completeInMemory(ctx, b.MemoryStore, b.memSessions, rec, s, create, now)
}

var (
	_ login.FlowIdentityLoader    = (*oneBackend)(nil)
	_ login.SessionIdentityLoader = (*oneBackend)(nil)
	_ login.FlowSessionCompleter  = (*oneBackend)(nil)
)

// backendEnv is an env whose three stores are one oneBackend.
func backendEnv(t *testing.T, configure ...func(*login.Config)) (*env, *oneBackend) {
	var b *oneBackend
	e := newEnv(t, append([]func(*login.Config){func(c *login.Config) {
		b = newOneBackend(c.FlowStore.(*flow.MemoryStore), c.SessionStore.(*session.MemoryStore), c.IdentityStore.(*session.MemoryIdentityStore))
		c.FlowStore, c.SessionStore, c.IdentityStore = b, b, b
	}}, configure...)...)
	b.took()
	return e, b
}

// A password submission reads its flow and the identity it names in one
// step when one store holds both; whoami reads the session with its
// identity in one step, and the login completes with its session in one.
func TestOneBackendServesEachStepInOneCall(t *testing.T) {
	e, b := backendEnv(t)

	f := e.apiFlow("")
	b.took()
	r := e.submitJSON(e.api(), f.ID, credentials("  Alice@Example.com ", testPassword, ""), nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	token, _ := r.json(t)["session_token"].(string)
	require.NotEmpty(t, token)
	assert.Equal(t, map[string]int{"FlowWithIdentity": 1, "CompleteFlowWithSession": 1}, b.took(),
		"the identifier is normalised before the lookup made with the flow")

	r = e.do(e.api(), http.MethodGet, "/sessions/whoami", nil, map[string]string{"X-Session-Token": token})
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	assert.Equal(t, e.identity.ID, r.json(t)["identity"].(map[string]any)["id"])
	assert.Equal(t, map[string]int{"SessionWithIdentity": 1}, b.took())
}

// The lookup made with the flow gives the same answers as a separate one:
// a wrong password and an unknown identifier get the same refusal, and
// neither issues a session.
func TestIdentityReadWithTheFlowRefusesAlike(t *testing.T) {
	e, b := backendEnv(t)
	for _, tc := range []struct{ name, identifier, secret string }{
		{"wrong password", testIdentifier, "wrong"},
		{"unknown identifier", "nobody@example.com", testPassword},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := e.apiFlow("")
			b.took()
			r := e.submitJSON(e.api(), f.ID, credentials(tc.identifier, tc.secret, ""), nil)
			require.Equal(t, http.StatusBadRequest, r.status, "%s", r.body)
			got := r.flow(t)
			require.Len(t, got.UI.Messages, 1, "%s", r.body)
			assert.Equal(t, flow.InvalidCredentials().ID, got.UI.Messages[0].ID)
			assert.Equal(t, tc.identifier, got.UI.Node("identifier").Attributes.Value)
			assert.Equal(t, map[string]int{"FlowWithIdentity": 1}, b.took(), "no second lookup, no completion")
		})
	}
	list, err := e.sessions.ListSessions(context.Background(), e.identity.ID)
	require.NoError(t, err)
	assert.Empty(t, list)
}

// A submission that names no usable identifier loads its flow alone and
// is answered as before.
func TestNoIdentityReadWithTheFlowForAnUnusableIdentifier(t *testing.T) {
	e, b := backendEnv(t)
	for _, tc := range []struct {
		name   string
		body   map[string]any
		wantID int
	}{
		{"control character", credentials("alice\u0007@example.com", testPassword, ""), flow.IDIdentifierCharacters},
		{"too long", credentials(strings.Repeat("a", login.MaxIdentifierLength+1), testPassword, ""), flow.IDTooLong},
		{"empty", credentials("", testPassword, ""), flow.IDMissing},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := e.apiFlow("")
			b.took()
			r := e.submitJSON(e.api(), f.ID, tc.body, nil)
			require.Equal(t, http.StatusBadRequest, r.status, "%s", r.body)
			got := r.flow(t)
			msgs := got.UI.Node("identifier").Messages
			require.NotEmpty(t, msgs, "%s", r.body)
			assert.Equal(t, tc.wantID, msgs[0].ID)
			assert.Equal(t, map[string]int{"Flow": 1}, b.took())
		})
	}
}

// With a second factor configured, the lookup made with the flow brings
// every credential, so the login knows the identity needs its second
// factor without reading them again.
func TestIdentityReadWithTheFlowBringsTheCredentials(t *testing.T) {
	tm, err := totp.New(totp.Config{Issuer: "Example"})
	require.NoError(t, err)
	e, b := backendEnv(t, func(c *login.Config) { c.Methods = []login.Method{tm} })
	tc, err := totp.ImportKratos(e.identity.ID, json.RawMessage(`{"totp_url":"otpauth://totp/Example:alice?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=Example"}`))
	require.NoError(t, err)
	require.NoError(t, e.identities.UpdateCredential(context.Background(), e.identity.ID, &tc))

	f := e.apiFlow("")
	b.took()
	r := e.submitJSON(e.api(), f.ID, credentials(testIdentifier, testPassword, ""), nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	sess := r.json(t)["session"].(map[string]any)
	assert.Equal(t, "aal1", sess["authenticator_assurance_level"])
	assert.Equal(t, map[string]int{"FlowWithIdentity": 1, "CompleteFlowWithSession": 1}, b.took())

	token := r.json(t)["session_token"].(string)
	r = e.do(e.api(), http.MethodGet, "/sessions/whoami", nil, map[string]string{"X-Session-Token": token})
	assert.Equal(t, http.StatusForbidden, r.status, "the session still needs its second factor: %s", r.body)
}

// A store that offers a capability spanning two roles is not asked for it
// when another store fills the second role: the session is written to,
// and read from, the configured SessionStore, and the identity comes from
// the configured IdentityStore.
func TestCapabilitiesSpanOnlyOneStore(t *testing.T) {
	var (
		e *env
		b *oneBackend
	)
	other := session.NewMemoryStore(func() time.Time { return e.clock.Now() })
	otherIDs := session.NewMemoryIdentityStore()
	e = newEnv(t, func(c *login.Config) {
		b = newOneBackend(c.FlowStore.(*flow.MemoryStore), c.SessionStore.(*session.MemoryStore), c.IdentityStore.(*session.MemoryIdentityStore))
		c.FlowStore, c.SessionStore, c.IdentityStore = b, other, otherIDs
	})
	// The test identity lives in otherIDs (newEnv seeds e.identities, which
	// b also holds); a second one only in b must not sign in.
	cred, err := login.NewPasswordCredential(context.Background(), e.hasher, testIdentifier, testPassword)
	require.NoError(t, err)
	require.NoError(t, otherIDs.CreateIdentity(context.Background(), e.identity, cred))
	e.addIdentity("only-in-backend@example.com", testPassword)

	f := e.apiFlow("")
	r := e.submitJSON(e.api(), f.ID, credentials("only-in-backend@example.com", testPassword, ""), nil)
	require.Equal(t, http.StatusBadRequest, r.status, "the flow store does not answer for identities: %s", r.body)

	token := e.loginAPI()
	list, err := other.ListSessions(context.Background(), e.identity.ID)
	require.NoError(t, err)
	assert.Len(t, list, 1, "the session is in the configured SessionStore")
	list, err = e.sessions.ListSessions(context.Background(), e.identity.ID)
	require.NoError(t, err)
	assert.Empty(t, list, "and not in the flow store's")

	r = e.do(e.api(), http.MethodGet, "/sessions/whoami", nil, map[string]string{"X-Session-Token": token})
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	calls := b.took()
	assert.Zero(t, calls["FlowWithIdentity"]+calls["SessionWithIdentity"]+calls["CompleteFlowWithSession"], "%v", calls)
}

// The test double keeps the contract it stands for.
func TestOneBackendConformance(t *testing.T) {
	logintest.TestFlowIdentityLoader(t, func(t *testing.T) logintest.FlowIdentityStore {
		return newOneBackend(flow.NewMemoryStore(time.Now), session.NewMemoryStore(time.Now), session.NewMemoryIdentityStore())
	})
}
