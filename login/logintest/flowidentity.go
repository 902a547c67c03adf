package logintest

import (
	"cmp"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/internal/uuid"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/session"
)

// FlowIdentityStore is a store that keeps flows and identities and reads
// a flow together with an identity ([login.FlowIdentityLoader]).
type FlowIdentityStore interface {
	login.FlowStore
	login.IdentityStore
	login.FlowIdentityLoader
}

// TestFlowIdentityLoader runs the conformance suite of
// [login.FlowIdentityLoader]: FlowWithIdentity must answer what Flow and
// FindIdentity (with every credential, when asked) answer one after the
// other. newStore is called for every subtest and must return an empty
// store.
func TestFlowIdentityLoader(t *testing.T, newStore func(t *testing.T) FlowIdentityStore) {
	t.Helper()
	run(t, newStore, flowIdentityTests)
}

var flowIdentityTests = []subtest[FlowIdentityStore]{
	{"the flow and the identity with its matching credential", testFlowIdentityFound},
	{"with every credential, ordered by type", testFlowIdentityCredentials},
	{"an identifier that matches nothing gives the flow alone", testFlowIdentityNoMatch},
	{"an unknown flow is not found whatever the identifier", testFlowIdentityFlowNotFound},
	{"returned values are copies", testFlowIdentityCopies},
}

// flowIdentityFixture stores a flow and alice, with a password and a
// social sign-in credential, beside bob.
func flowIdentityFixture(t *testing.T, s FlowIdentityStore) (rec *flow.Record, alice string) {
	t.Helper()
	now := now()
	rec = createFlow(t, s, now)
	alice = uuid.New()
	require.NoError(t, s.CreateIdentity(t.Context(), newIdentity(alice, "alice@example.com", now),
		newPassword("alice@example.com", "alice"), newOIDC("google:12345")))
	require.NoError(t, s.CreateIdentity(t.Context(), newIdentity(uuid.New(), "bob@example.com", now), newPassword("bob@example.com")))
	return rec, alice
}

// loadWithIdentity calls FlowWithIdentity, which must find the flow.
func loadWithIdentity(t *testing.T, s FlowIdentityStore, id string, q login.IdentityQuery) (*flow.Record, *login.IdentityLookup) {
	t.Helper()
	rec, l, err := s.FlowWithIdentity(t.Context(), id, q)
	require.NoError(t, err, "FlowWithIdentity(%s, %+v)", id, q)
	require.NotNil(t, rec, "FlowWithIdentity(%s, %+v) flow", id, q)
	return rec, l
}

func testFlowIdentityFound(t *testing.T, s FlowIdentityStore) {
	rec, alice := flowIdentityFixture(t, s)
	for _, identifier := range []string{"alice@example.com", "alice"} {
		got, l := loadWithIdentity(t, s, rec.Flow.ID, login.IdentityQuery{Type: session.CredentialPassword, Identifier: identifier})
		assertFlowRecord(t, readFlow(t, s, rec.Flow.ID), got)
		require.NotNil(t, l, "lookup of %q", identifier)
		wantID, wantCred := find(t, s, session.CredentialPassword, identifier)
		assert.Equal(t, alice, l.Identity.ID)
		assertIdentity(t, wantID, l.Identity)
		assertCredential(t, wantCred, l.Credential)
		assert.Nil(t, l.Credentials, "credentials not asked for")
	}
	_, l := loadWithIdentity(t, s, rec.Flow.ID, login.IdentityQuery{Type: session.CredentialOIDC, Identifier: "google:12345"})
	if assert.NotNil(t, l, "lookup under oidc") {
		assert.Equal(t, alice, l.Identity.ID)
		assert.Equal(t, session.CredentialOIDC, l.Credential.Type)
	}
}

func testFlowIdentityCredentials(t *testing.T, s FlowIdentityStore) {
	rec, alice := flowIdentityFixture(t, s)
	_, l := loadWithIdentity(t, s, rec.Flow.ID, login.IdentityQuery{Type: session.CredentialPassword, Identifier: "alice", Credentials: true})
	require.NotNil(t, l)
	assert.Equal(t, alice, l.Identity.ID)
	assert.Equal(t, session.CredentialPassword, l.Credential.Type)
	want, err := s.Credentials(t.Context(), alice)
	require.NoError(t, err)
	slices.SortFunc(want, func(a, b session.Credential) int { return cmp.Compare(a.Type, b.Type) })
	require.Len(t, l.Credentials, len(want))
	for i := range want {
		assert.Equal(t, []session.CredentialType{session.CredentialOIDC, session.CredentialPassword}[i], l.Credentials[i].Type, "ordered by type")
		assertCredential(t, &want[i], &l.Credentials[i])
	}
}

func testFlowIdentityNoMatch(t *testing.T, s FlowIdentityStore) {
	rec, _ := flowIdentityFixture(t, s)
	for _, q := range []login.IdentityQuery{
		{Type: session.CredentialPassword, Identifier: "mallory@example.com"},
		{Type: session.CredentialPassword, Identifier: "Alice@example.com", Credentials: true}, // verbatim
		{Type: session.CredentialPassword, Identifier: "google:12345"},                         // another type's
		{Type: session.CredentialOIDC, Identifier: "alice@example.com", Credentials: true},
		{Type: session.CredentialPassword, Identifier: "alice\x00"},
		{Type: session.CredentialPassword, Identifier: ""},
	} {
		got, l := loadWithIdentity(t, s, rec.Flow.ID, q)
		assertFlowRecord(t, readFlow(t, s, rec.Flow.ID), got)
		assert.Nil(t, l, "lookup %+v", q)
	}
}

func testFlowIdentityFlowNotFound(t *testing.T, s FlowIdentityStore) {
	flowIdentityFixture(t, s)
	for _, id := range []string{uuid.New(), "not-a-uuid", ""} {
		for _, identifier := range []string{"alice@example.com", "mallory@example.com"} {
			rec, l, err := s.FlowWithIdentity(t.Context(), id, login.IdentityQuery{Type: session.CredentialPassword, Identifier: identifier, Credentials: true})
			assert.ErrorIs(t, err, flow.ErrNotFound, "flow %q, identifier %q", id, identifier)
			assert.Nil(t, rec)
			assert.Nil(t, l)
		}
	}
}

func testFlowIdentityCopies(t *testing.T, s FlowIdentityStore) {
	rec, alice := flowIdentityFixture(t, s)
	q := login.IdentityQuery{Type: session.CredentialPassword, Identifier: "alice", Credentials: true}
	got, l := loadWithIdentity(t, s, rec.Flow.ID, q)
	require.NotNil(t, l)
	scribbleFlow(got)
	scribbleIdentity(l.Identity)
	scribbleCredential(l.Credential)
	for i := range l.Credentials {
		scribbleCredential(&l.Credentials[i])
	}

	again, l2 := loadWithIdentity(t, s, rec.Flow.ID, q)
	assertFlowRecord(t, readFlow(t, s, rec.Flow.ID), again)
	require.NotNil(t, l2)
	assertIdentity(t, readIdentity(t, s, alice), l2.Identity)
	wantID, wantCred := find(t, s, session.CredentialPassword, "alice")
	assertIdentity(t, wantID, l2.Identity)
	assertCredential(t, wantCred, l2.Credential)
	want, err := s.Credentials(t.Context(), alice)
	require.NoError(t, err)
	slices.SortFunc(want, func(a, b session.Credential) int { return cmp.Compare(a.Type, b.Type) })
	require.Len(t, l2.Credentials, len(want))
	for i := range want {
		assertCredential(t, &want[i], &l2.Credentials[i])
	}
}
