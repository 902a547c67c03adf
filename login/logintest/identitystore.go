package logintest

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/internal/uuid"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/session"
)

// TestIdentityStore runs the conformance suite of [login.IdentityStore].
// newStore is called for every subtest and must return an empty store.
func TestIdentityStore(t *testing.T, newStore func(t *testing.T) login.IdentityStore) {
	t.Helper()
	run(t, newStore, identityTests)
}

var identityTests = []subtest[login.IdentityStore]{
	{"create then read round-trips every field", testIdentityRoundTrip},
	{"nil public metadata round-trips", testIdentityNilMetadata},
	{"find by type and identifier", testIdentityFind},
	{"identifiers are compared verbatim", testIdentityFindVerbatim},
	{"find with another type is not found", testIdentityFindWrongType},
	{"oidc subjects are found under oidc only", testIdentityFindOIDC},
	{"unknown identity and identifier are not found", testIdentityNotFound},
	{"create with a taken id conflicts", testIdentityDuplicateID},
	{"create with a taken identifier conflicts and stores nothing", testIdentityDuplicateIdentifier},
	{"same identifier under different types is fine", testIdentitySameIdentifierOtherType},
	{"returned identity and credential are copies", testIdentityReturnedCopy},
	{"caller's identity and credentials are copied", testIdentityCallerCopy},
	{"credentials lists the identity's credentials", testIdentityCredentials},
	{"update identity replaces state and traits", testIdentityUpdate},
	{"update of an unknown identity is not found", testIdentityUpdateNotFound},
	{"update credential with the current version bumps version", testCredentialUpdate},
	{"update credential with a stale version conflicts and changes nothing", testCredentialUpdateStale},
	{"update credential re-indexes identifiers", testCredentialReindex},
	{"update credential with another identity's identifier conflicts", testCredentialIdentifierTaken},
	{"update credential of a new type gets version 1", testCredentialNewType},
	{"update credential of an unknown identity is not found", testCredentialNotFound},
	{"concurrent credential updates with one version have one winner", testCredentialUpdateConcurrent},
	{"one-time secrets consumed through conditional updates are used exactly once", testCredentialConsumeExactlyOnce},
}

// newIdentity returns an active identity with every field set. Each call
// returns new, unshared values.
func newIdentity(id, email string, now time.Time) *session.Identity {
	changed := now.Add(-time.Hour)
	return &session.Identity{
		ID:             id,
		SchemaID:       "default",
		State:          session.StateActive,
		StateChangedAt: &changed,
		Traits:         json.RawMessage(fmt.Sprintf(`{"email": %q, "name": {"first": "Alice", "last": "Liddell"}, "newsletter": false}`, email)),
		MetadataPublic: json.RawMessage(`{"plan": "pro", "seats": 3}`),
		CreatedAt:      now.Add(-2 * time.Hour),
		UpdatedAt:      now,
	}
}

const hashedPassword = `$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHRzb21lc2FsdA$RdescudvJCsgt3ub+b+dWRWJTmaaJObG`

// newPassword returns a password credential listing identifiers.
func newPassword(identifiers ...string) session.Credential {
	return session.Credential{
		Type:        session.CredentialPassword,
		Identifiers: identifiers,
		Config:      json.RawMessage(`{"hashed_password": "` + hashedPassword + `"}`),
	}
}

// newOIDC returns a social sign-in credential listing provider:subject
// identifiers.
func newOIDC(identifiers ...string) session.Credential {
	return session.Credential{
		Type:        session.CredentialOIDC,
		Identifiers: identifiers,
		Config:      json.RawMessage(`{"providers": [{"provider": "google", "subject": "12345"}]}`),
	}
}

func scribbleIdentity(id *session.Identity) {
	scribble(id.Traits)
	scribble(id.MetadataPublic)
	if id.StateChangedAt != nil {
		*id.StateChangedAt = time.Time{}
	}
}

func scribbleCredential(c *session.Credential) {
	for i := range c.Identifiers {
		c.Identifiers[i] = "scribbled"
	}
	scribble(c.Config)
}

// assertIdentity checks that got is want: times as instants, traits and
// metadata as JSON, everything else exactly.
func assertIdentity(t testing.TB, want, got *session.Identity) bool {
	t.Helper()
	if !assert.NotNil(t, got, "identity") {
		return false
	}
	w, g := *want, *got
	ok := assertSameTime(t, w.CreatedAt, g.CreatedAt, "CreatedAt")
	ok = assertSameTime(t, w.UpdatedAt, g.UpdatedAt, "UpdatedAt") && ok
	w.CreatedAt, g.CreatedAt = time.Time{}, time.Time{}
	w.UpdatedAt, g.UpdatedAt = time.Time{}, time.Time{}
	if w.StateChangedAt == nil {
		ok = assert.Nil(t, g.StateChangedAt, "StateChangedAt") && ok
	} else if assert.NotNil(t, g.StateChangedAt, "StateChangedAt") {
		ok = assertSameTime(t, *w.StateChangedAt, *g.StateChangedAt, "StateChangedAt") && ok
	} else {
		ok = false
	}
	w.StateChangedAt, g.StateChangedAt = nil, nil
	ok = assertRawJSON(t, w.Traits, g.Traits, "Traits") && ok
	ok = assertRawJSON(t, w.MetadataPublic, g.MetadataPublic, "MetadataPublic") && ok
	w.Traits, g.Traits = nil, nil
	w.MetadataPublic, g.MetadataPublic = nil, nil
	return assert.Equal(t, w, g) && ok
}

// assertCredential checks that got is want, whatever the order of its
// identifiers and the spelling of its JSON config.
func assertCredential(t testing.TB, want, got *session.Credential) bool {
	t.Helper()
	if !assert.NotNil(t, got, "credential") {
		return false
	}
	ok := assert.Equal(t, want.Type, got.Type, "Type")
	ok = assert.ElementsMatch(t, want.Identifiers, got.Identifiers, "Identifiers") && ok
	ok = assertRawJSON(t, want.Config, got.Config, "Config") && ok
	return assert.Equal(t, want.Version, got.Version, "Version") && ok
}

// find finds the identity by (typ, identifier), which must exist.
func find(t testing.TB, s login.IdentityStore, typ session.CredentialType, identifier string) (*session.Identity, *session.Credential) {
	t.Helper()
	id, c, err := s.FindIdentity(t.Context(), typ, identifier)
	require.NoError(t, err, "FindIdentity(%s, %q)", typ, identifier)
	require.NotNil(t, id, "FindIdentity(%s, %q) identity", typ, identifier)
	require.NotNil(t, c, "FindIdentity(%s, %q) credential", typ, identifier)
	return id, c
}

// assertNotFound checks that (typ, identifier) finds nothing.
func assertNotFound(t testing.TB, s login.IdentityStore, typ session.CredentialType, identifier string) bool {
	t.Helper()
	id, c, err := s.FindIdentity(t.Context(), typ, identifier)
	return assert.ErrorIs(t, err, session.ErrNotFound, "FindIdentity(%s, %q)", typ, identifier) &&
		assert.Nil(t, id, "identity") && assert.Nil(t, c, "credential")
}

func readIdentity(t testing.TB, s login.IdentityStore, id string) *session.Identity {
	t.Helper()
	got, err := s.Identity(t.Context(), id)
	require.NoError(t, err, "Identity(%s)", id)
	require.NotNil(t, got, "Identity(%s)", id)
	return got
}

func testIdentityRoundTrip(t *testing.T, s login.IdentityStore) {
	now, id := now(), uuid.New()
	require.NoError(t, s.CreateIdentity(t.Context(), newIdentity(id, "alice@example.com", now), newPassword("alice@example.com")))
	got := readIdentity(t, s, id)
	assertIdentity(t, newIdentity(id, "alice@example.com", now), got)
	assert.Nil(t, got.OrganizationID, "OrganizationID")
}

func testIdentityNilMetadata(t *testing.T, s login.IdentityStore) {
	now, id := now(), uuid.New()
	ident := newIdentity(id, "alice@example.com", now)
	ident.MetadataPublic = nil
	ident.StateChangedAt = nil
	require.NoError(t, s.CreateIdentity(t.Context(), ident))

	want := newIdentity(id, "alice@example.com", now)
	want.MetadataPublic = nil
	want.StateChangedAt = nil
	assertIdentity(t, want, readIdentity(t, s, id))
}

func testIdentityFind(t *testing.T, s login.IdentityStore) {
	now, id := now(), uuid.New()
	require.NoError(t, s.CreateIdentity(t.Context(), newIdentity(id, "alice@example.com", now),
		newPassword("alice@example.com", "alice"), newOIDC("google:12345")))
	require.NoError(t, s.CreateIdentity(t.Context(), newIdentity(uuid.New(), "bob@example.com", now), newPassword("bob@example.com")))

	want := newPassword("alice@example.com", "alice")
	want.Version = 1
	for _, identifier := range []string{"alice@example.com", "alice"} {
		gotID, gotCred := find(t, s, session.CredentialPassword, identifier)
		assertIdentity(t, newIdentity(id, "alice@example.com", now), gotID)
		assertCredential(t, &want, gotCred)
	}
}

func testIdentityFindVerbatim(t *testing.T, s login.IdentityStore) {
	require.NoError(t, s.CreateIdentity(t.Context(), newIdentity(uuid.New(), "alice@example.com", now()), newPassword("alice@example.com")))
	for _, identifier := range []string{"Alice@example.com", "ALICE@EXAMPLE.COM", " alice@example.com", "alice@example.com ", "alice@example", ""} {
		assertNotFound(t, s, session.CredentialPassword, identifier)
	}
}

func testIdentityFindWrongType(t *testing.T, s login.IdentityStore) {
	require.NoError(t, s.CreateIdentity(t.Context(), newIdentity(uuid.New(), "alice@example.com", now()), newPassword("alice@example.com")))
	assertNotFound(t, s, session.CredentialOIDC, "alice@example.com")
	assertNotFound(t, s, "webauthn", "alice@example.com")
}

func testIdentityFindOIDC(t *testing.T, s login.IdentityStore) {
	now, id := now(), uuid.New()
	require.NoError(t, s.CreateIdentity(t.Context(), newIdentity(id, "alice@example.com", now), newOIDC("google:12345")))

	gotID, gotCred := find(t, s, session.CredentialOIDC, "google:12345")
	assertIdentity(t, newIdentity(id, "alice@example.com", now), gotID)
	want := newOIDC("google:12345")
	want.Version = 1
	assertCredential(t, &want, gotCred)

	assertNotFound(t, s, session.CredentialPassword, "google:12345")
	assertNotFound(t, s, session.CredentialOIDC, "github:12345")
	assertNotFound(t, s, session.CredentialOIDC, "12345")
}

func testIdentityNotFound(t *testing.T, s login.IdentityStore) {
	require.NoError(t, s.CreateIdentity(t.Context(), newIdentity(uuid.New(), "alice@example.com", now()), newPassword("alice@example.com")))
	got, err := s.Identity(t.Context(), uuid.New())
	assert.ErrorIs(t, err, session.ErrNotFound)
	assert.Nil(t, got)
	assertNotFound(t, s, session.CredentialPassword, "bob@example.com")
}

func testIdentityDuplicateID(t *testing.T, s login.IdentityStore) {
	now, id := now(), uuid.New()
	require.NoError(t, s.CreateIdentity(t.Context(), newIdentity(id, "alice@example.com", now), newPassword("alice@example.com")))

	err := s.CreateIdentity(t.Context(), newIdentity(id, "mallory@example.com", now), newPassword("mallory@example.com"))
	assert.ErrorIs(t, err, session.ErrConflict)
	assertIdentity(t, newIdentity(id, "alice@example.com", now), readIdentity(t, s, id))
	assertNotFound(t, s, session.CredentialPassword, "mallory@example.com")
	gotID, _ := find(t, s, session.CredentialPassword, "alice@example.com")
	assert.Equal(t, id, gotID.ID)
}

func testIdentityDuplicateIdentifier(t *testing.T, s login.IdentityStore) {
	now, alice, mallory := now(), uuid.New(), uuid.New()
	require.NoError(t, s.CreateIdentity(t.Context(), newIdentity(alice, "alice@example.com", now), newPassword("alice@example.com")))

	err := s.CreateIdentity(t.Context(), newIdentity(mallory, "alice@example.com", now),
		newOIDC("google:666"), newPassword("mallory@example.com", "alice@example.com"))
	assert.ErrorIs(t, err, session.ErrConflict)

	_, err = s.Identity(t.Context(), mallory)
	assert.ErrorIs(t, err, session.ErrNotFound, "identity of the rejected CreateIdentity")
	assertNotFound(t, s, session.CredentialOIDC, "google:666")
	assertNotFound(t, s, session.CredentialPassword, "mallory@example.com")
	gotID, gotCred := find(t, s, session.CredentialPassword, "alice@example.com")
	assert.Equal(t, alice, gotID.ID)
	want := newPassword("alice@example.com")
	want.Version = 1
	assertCredential(t, &want, gotCred)
}

func testIdentitySameIdentifierOtherType(t *testing.T, s login.IdentityStore) {
	now, alice, bob := now(), uuid.New(), uuid.New()
	require.NoError(t, s.CreateIdentity(t.Context(), newIdentity(alice, "alice@example.com", now), newPassword("shared")))
	require.NoError(t, s.CreateIdentity(t.Context(), newIdentity(bob, "bob@example.com", now), newOIDC("shared")))

	gotID, _ := find(t, s, session.CredentialPassword, "shared")
	assert.Equal(t, alice, gotID.ID)
	gotID, _ = find(t, s, session.CredentialOIDC, "shared")
	assert.Equal(t, bob, gotID.ID)
}

func testIdentityReturnedCopy(t *testing.T, s login.IdentityStore) {
	now, id := now(), uuid.New()
	require.NoError(t, s.CreateIdentity(t.Context(), newIdentity(id, "alice@example.com", now), newPassword("alice@example.com")))

	scribbleIdentity(readIdentity(t, s, id))
	gotID, gotCred := find(t, s, session.CredentialPassword, "alice@example.com")
	scribbleIdentity(gotID)
	scribbleCredential(gotCred)

	assertIdentity(t, newIdentity(id, "alice@example.com", now), readIdentity(t, s, id))
	gotID, gotCred = find(t, s, session.CredentialPassword, "alice@example.com")
	assertIdentity(t, newIdentity(id, "alice@example.com", now), gotID)
	want := newPassword("alice@example.com")
	want.Version = 1
	assertCredential(t, &want, gotCred)
}

func testIdentityCallerCopy(t *testing.T, s login.IdentityStore) {
	now, id := now(), uuid.New()
	ident, cred := newIdentity(id, "alice@example.com", now), newPassword("alice@example.com")
	require.NoError(t, s.CreateIdentity(t.Context(), ident, cred))
	scribbleIdentity(ident)
	scribbleCredential(&cred)

	wantID := newIdentity(id, "alice@example.com", now)
	wantCred := newPassword("alice@example.com")
	wantCred.Version = 1
	gotID, gotCred := find(t, s, session.CredentialPassword, "alice@example.com")
	assertIdentity(t, wantID, gotID)
	assertCredential(t, &wantCred, gotCred)

	// The same holds for UpdateIdentity and UpdateCredential.
	upd := newIdentity(id, "alice@example.com", now)
	upd.State = session.StateInactive
	require.NoError(t, s.UpdateIdentity(t.Context(), upd))
	scribbleIdentity(upd)
	wantID.State = session.StateInactive
	assertIdentity(t, wantID, readIdentity(t, s, id))

	c := newPassword("alice@example.com")
	c.Version = 1
	require.NoError(t, s.UpdateCredential(t.Context(), id, &c))
	scribbleCredential(&c)
	wantCred.Version = 2
	_, gotCred = find(t, s, session.CredentialPassword, "alice@example.com")
	assertCredential(t, &wantCred, gotCred)
}

func testIdentityUpdate(t *testing.T, s login.IdentityStore) {
	now, id := now(), uuid.New()
	require.NoError(t, s.CreateIdentity(t.Context(), newIdentity(id, "alice@example.com", now), newPassword("alice@example.com")))

	upd := readIdentity(t, s, id)
	changed := now.Add(time.Minute)
	upd.State = session.StateInactive
	upd.StateChangedAt = &changed
	upd.Traits = json.RawMessage(`{"email": "alice@example.org", "name": {"first": "Alice"}}`)
	upd.MetadataPublic = nil
	upd.UpdatedAt = changed
	require.NoError(t, s.UpdateIdentity(t.Context(), upd))

	assertIdentity(t, upd, readIdentity(t, s, id))
	gotID, _ := find(t, s, session.CredentialPassword, "alice@example.com")
	assertIdentity(t, upd, gotID)
}

func testIdentityUpdateNotFound(t *testing.T, s login.IdentityStore) {
	require.NoError(t, s.CreateIdentity(t.Context(), newIdentity(uuid.New(), "alice@example.com", now()), newPassword("alice@example.com")))
	ident := newIdentity(uuid.New(), "bob@example.com", now())
	assert.ErrorIs(t, s.UpdateIdentity(t.Context(), ident), session.ErrNotFound)
	_, err := s.Identity(t.Context(), ident.ID)
	assert.ErrorIs(t, err, session.ErrNotFound, "UpdateIdentity must not create the identity")
}

func testCredentialUpdate(t *testing.T, s login.IdentityStore) {
	id := uuid.New()
	require.NoError(t, s.CreateIdentity(t.Context(), newIdentity(id, "alice@example.com", now()), newPassword("alice@example.com")))

	_, c := find(t, s, session.CredentialPassword, "alice@example.com")
	c.Config = json.RawMessage(`{"hashed_password": "$2a$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW"}`)
	require.NoError(t, s.UpdateCredential(t.Context(), id, c))
	assert.EqualValues(t, 2, c.Version, "c.Version after UpdateCredential")

	_, got := find(t, s, session.CredentialPassword, "alice@example.com")
	assertCredential(t, c, got)
}

func testCredentialUpdateStale(t *testing.T, s login.IdentityStore) {
	id := uuid.New()
	require.NoError(t, s.CreateIdentity(t.Context(), newIdentity(id, "alice@example.com", now()), newPassword("alice@example.com")))

	_, changed := find(t, s, session.CredentialPassword, "alice@example.com")
	_, rehash := find(t, s, session.CredentialPassword, "alice@example.com")
	changed.Config = json.RawMessage(`{"hashed_password": "new password"}`)
	require.NoError(t, s.UpdateCredential(t.Context(), id, changed))

	// A background re-hash of the old password must not undo the change.
	rehash.Config = json.RawMessage(`{"hashed_password": "old password, re-hashed"}`)
	rehash.Identifiers = []string{"alice@example.org"}
	assert.ErrorIs(t, s.UpdateCredential(t.Context(), id, rehash), session.ErrConflict)

	_, got := find(t, s, session.CredentialPassword, "alice@example.com")
	assertCredential(t, changed, got)
	assertNotFound(t, s, session.CredentialPassword, "alice@example.org")
}

func testCredentialReindex(t *testing.T, s login.IdentityStore) {
	id := uuid.New()
	require.NoError(t, s.CreateIdentity(t.Context(), newIdentity(id, "alice@example.com", now()), newPassword("alice@example.com", "alice")))

	_, c := find(t, s, session.CredentialPassword, "alice@example.com")
	c.Identifiers = []string{"alice", "alice@example.org"}
	require.NoError(t, s.UpdateCredential(t.Context(), id, c))

	assertNotFound(t, s, session.CredentialPassword, "alice@example.com")
	for _, identifier := range []string{"alice", "alice@example.org"} {
		gotID, got := find(t, s, session.CredentialPassword, identifier)
		assert.Equal(t, id, gotID.ID)
		assertCredential(t, c, got)
	}
}

func testCredentialIdentifierTaken(t *testing.T, s login.IdentityStore) {
	now, alice, bob := now(), uuid.New(), uuid.New()
	require.NoError(t, s.CreateIdentity(t.Context(), newIdentity(alice, "alice@example.com", now), newPassword("alice@example.com")))
	require.NoError(t, s.CreateIdentity(t.Context(), newIdentity(bob, "bob@example.com", now), newPassword("bob@example.com")))

	_, c := find(t, s, session.CredentialPassword, "bob@example.com")
	c.Identifiers = []string{"bob@example.com", "alice@example.com"}
	assert.ErrorIs(t, s.UpdateCredential(t.Context(), bob, c), session.ErrConflict)
	oidc := newOIDC("google:12345")
	require.NoError(t, s.UpdateCredential(t.Context(), alice, &oidc))
	oidc2 := newOIDC("google:12345")
	assert.ErrorIs(t, s.UpdateCredential(t.Context(), bob, &oidc2), session.ErrConflict, "new type with a taken identifier")

	gotID, _ := find(t, s, session.CredentialPassword, "alice@example.com")
	assert.Equal(t, alice, gotID.ID)
	gotID, _ = find(t, s, session.CredentialOIDC, "google:12345")
	assert.Equal(t, alice, gotID.ID)
	gotID, got := find(t, s, session.CredentialPassword, "bob@example.com")
	assert.Equal(t, bob, gotID.ID)
	want := newPassword("bob@example.com")
	want.Version = 1
	assertCredential(t, &want, got)
}

func testCredentialNewType(t *testing.T, s login.IdentityStore) {
	id := uuid.New()
	require.NoError(t, s.CreateIdentity(t.Context(), newIdentity(id, "alice@example.com", now()), newPassword("alice@example.com")))

	c := newOIDC("google:12345")
	require.NoError(t, s.UpdateCredential(t.Context(), id, &c))
	assert.EqualValues(t, 1, c.Version, "c.Version after adding a credential")

	gotID, got := find(t, s, session.CredentialOIDC, "google:12345")
	assert.Equal(t, id, gotID.ID)
	assertCredential(t, &c, got)
	_, got = find(t, s, session.CredentialPassword, "alice@example.com")
	want := newPassword("alice@example.com")
	want.Version = 1
	assertCredential(t, &want, got)
}

func testCredentialNotFound(t *testing.T, s login.IdentityStore) {
	require.NoError(t, s.CreateIdentity(t.Context(), newIdentity(uuid.New(), "alice@example.com", now()), newPassword("alice@example.com")))
	c := newPassword("bob@example.com")
	assert.ErrorIs(t, s.UpdateCredential(t.Context(), uuid.New(), &c), session.ErrNotFound)
	assertNotFound(t, s, session.CredentialPassword, "bob@example.com")
}

func testCredentialUpdateConcurrent(t *testing.T, s login.IdentityStore) {
	id := uuid.New()
	require.NoError(t, s.CreateIdentity(t.Context(), newIdentity(id, "alice@example.com", now()), newPassword("alice@example.com")))

	creds := make([]*session.Credential, concurrency)
	for i := range creds {
		_, creds[i] = find(t, s, session.CredentialPassword, "alice@example.com")
		creds[i].Config = json.RawMessage(fmt.Sprintf(`{"hashed_password": "hash %d"}`, i))
	}
	errs := concurrently(concurrency, func(i int) error { return s.UpdateCredential(t.Context(), id, creds[i]) })
	if w := assertOneWinner(t, errs, session.ErrConflict); w >= 0 {
		_, got := find(t, s, session.CredentialPassword, "alice@example.com")
		assert.EqualValues(t, 2, got.Version, "stored Version")
		assertCredential(t, creds[w], got)
	}
}

func testIdentityCredentials(t *testing.T, s login.IdentityStore) {
	alice, bob := uuid.New(), uuid.New()
	require.NoError(t, s.CreateIdentity(t.Context(), newIdentity(alice, "alice@example.com", now()),
		newPassword("alice@example.com"), newOIDC("google:12345")))
	require.NoError(t, s.CreateIdentity(t.Context(), newIdentity(bob, "bob@example.com", now())))

	got, err := s.Credentials(t.Context(), alice)
	require.NoError(t, err)
	require.Len(t, got, 2)
	byType := map[session.CredentialType]*session.Credential{}
	for i := range got {
		byType[got[i].Type] = &got[i]
	}
	wantPassword, wantOIDC := newPassword("alice@example.com"), newOIDC("google:12345")
	wantPassword.Version, wantOIDC.Version = 1, 1
	assertCredential(t, &wantPassword, byType[session.CredentialPassword])
	assertCredential(t, &wantOIDC, byType[session.CredentialOIDC])

	scribbleCredential(&got[0])
	again, err := s.Credentials(t.Context(), alice)
	require.NoError(t, err)
	for i := range again {
		if again[i].Type == session.CredentialPassword {
			assertCredential(t, &wantPassword, &again[i])
		}
	}

	none, err := s.Credentials(t.Context(), bob)
	require.NoError(t, err)
	assert.Len(t, none, 0, "an identity without credentials")
	_, err = s.Credentials(t.Context(), uuid.New())
	assert.ErrorIs(t, err, session.ErrNotFound, "unknown identity")
}

// testCredentialConsumeExactlyOnce is how a second-factor method consumes
// a one-time secret (a backup code, a TOTP time step): read the credential,
// check the secret is unused, mark it used with UpdateCredential on the
// version read, and on a conflict read again. With 50 goroutines spending
// 5 codes (10 racing for each), every code is spent exactly once and no
// goroutine fails otherwise.
func testCredentialConsumeExactlyOnce(t *testing.T, s login.IdentityStore) {
	id := uuid.New()
	const codes = 5
	initial := session.Credential{Type: "lookup_secret", Identifiers: []string{id}, Config: json.RawMessage(`{"used":[false,false,false,false,false]}`)}
	require.NoError(t, s.CreateIdentity(t.Context(), newIdentity(id, "alice@example.com", now()), initial))

	type config struct {
		Used []bool `json:"used"`
	}
	spend := func(code int) (bool, error) {
		for range 2 * concurrency {
			_, c, err := s.FindIdentity(t.Context(), "lookup_secret", id)
			if err != nil {
				return false, err
			}
			var cfg config
			if err := json.Unmarshal(c.Config, &cfg); err != nil {
				return false, err
			}
			if cfg.Used[code] {
				return false, nil // spent by someone else: the "already used" answer
			}
			cfg.Used[code] = true
			if c.Config, err = json.Marshal(cfg); err != nil {
				return false, err
			}
			switch err := s.UpdateCredential(t.Context(), id, c); {
			case err == nil:
				return true, nil
			case !errors.Is(err, session.ErrConflict):
				return false, err
			}
		}
		return false, fmt.Errorf("code %d: still conflicting after %d reads", code, 2*concurrency)
	}
	won := make([]bool, concurrency)
	errs := concurrently(concurrency, func(i int) error {
		var err error
		won[i], err = spend(i % codes)
		return err
	})
	spent := make([]int, codes)
	for i, err := range errs {
		require.NoError(t, err, "goroutine %d", i)
		if won[i] {
			spent[i%codes]++
		}
	}
	assert.Equal(t, []int{1, 1, 1, 1, 1}, spent, "successful spends per code")
	_, c, err := s.FindIdentity(t.Context(), "lookup_secret", id)
	require.NoError(t, err)
	assert.JSONEq(t, `{"used":[true,true,true,true,true]}`, string(c.Config))
	assert.EqualValues(t, 1+codes, c.Version, "one stored update per code")
}
