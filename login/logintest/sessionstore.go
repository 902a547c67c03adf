package logintest

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/internal/uuid"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/session"
)

// TestSessionStore runs the conformance suite of [login.SessionStore].
// newStore is called for every subtest and must return an empty store.
func TestSessionStore(t *testing.T, newStore func(t *testing.T) login.SessionStore) {
	t.Helper()
	run(t, newStore, sessionTests)
}

var sessionTests = []subtest[login.SessionStore]{
	{"create then read by id and by token round-trips every field", testSessionRoundTrip},
	{"identity is not stored", testSessionIdentityNotStored},
	{"unknown id and token are not found", testSessionNotFound},
	{"create with a taken id conflicts", testSessionDuplicateID},
	{"create with a taken token hash conflicts", testSessionDuplicateToken},
	{"returned session is a copy", testSessionReturnedCopy},
	{"caller's record is copied", testSessionCallerCopy},
	{"update rotates the token hash", testSessionRotate},
	{"update of an unknown session is not found", testSessionUpdateNotFound},
	{"update never revives a revoked or expired session", testSessionUpdateInactive},
	{"revocation wins over a concurrent update", testSessionUpdateRevokeRace},
	{"list returns the identity's sessions newest first", testSessionList},
	{"list of an unknown identity is empty", testSessionListEmpty},
	{"revoke marks the session inactive", testSessionRevoke},
	{"revoke of an unknown session is not found", testSessionRevokeNotFound},
	{"revoke all revokes only the identity's active sessions", testSessionRevokeAll},
	{"expired session is returned invalid or not at all", testSessionExpired},
	{"concurrent creates all succeed", testSessionCreateConcurrent},
}

// newSession returns an active session with every field set, issued at
// now. Each call returns new, unshared values.
func newSession(id, identityID, tokenHash string, now time.Time) *session.Record {
	return &session.Record{
		Session: session.Session{
			ID:              id,
			Active:          true,
			ExpiresAt:       now.Add(24 * time.Hour),
			AuthenticatedAt: now.Add(-time.Second),
			AAL:             "aal1",
			AuthenticationMethods: []session.AuthenticationMethod{
				{Method: "oidc", AAL: "aal1", CompletedAt: now.Add(-time.Hour), Provider: "google"},
				{Method: "password", AAL: "aal1", CompletedAt: now.Add(-time.Second)},
			},
			IssuedAt: now,
			Devices: []session.Device{
				{ID: "4b1e7f7c-51c4-4a57-9c38-2d9f7c0fb5a1", IPAddress: "192.0.2.10", UserAgent: "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0", Location: "Berlin, DE"},
				{ID: "9d0c3a52-6f0e-4f2b-8f61-3c1f0a6e2b77", IPAddress: "2001:db8::1", UserAgent: "curl/8.5.0"},
			},
		},
		IdentityID: identityID,
		TokenHash:  tokenHash,
	}
}

// scribbleSession changes every part of r that a shallow copy would share.
func scribbleSession(r *session.Record) {
	for i := range r.Session.AuthenticationMethods {
		r.Session.AuthenticationMethods[i].Method = "scribbled"
		r.Session.AuthenticationMethods[i].CompletedAt = time.Time{}
	}
	for i := range r.Session.Devices {
		r.Session.Devices[i].IPAddress = "scribbled"
	}
}

// assertSession checks that got is want without its identity: times as
// instants, everything else exactly.
func assertSession(t testing.TB, want, got *session.Record) bool {
	t.Helper()
	if !assert.NotNil(t, got, "session record") {
		return false
	}
	ok := assert.Nil(t, got.Session.Identity, "Session.Identity of a stored session")
	w, g := *want, *got
	w.Session.Identity, g.Session.Identity = nil, nil
	ok = assertSameTime(t, w.Session.ExpiresAt, g.Session.ExpiresAt, "Session.ExpiresAt") && ok
	ok = assertSameTime(t, w.Session.AuthenticatedAt, g.Session.AuthenticatedAt, "Session.AuthenticatedAt") && ok
	ok = assertSameTime(t, w.Session.IssuedAt, g.Session.IssuedAt, "Session.IssuedAt") && ok
	w.Session.ExpiresAt, g.Session.ExpiresAt = time.Time{}, time.Time{}
	w.Session.AuthenticatedAt, g.Session.AuthenticatedAt = time.Time{}, time.Time{}
	w.Session.IssuedAt, g.Session.IssuedAt = time.Time{}, time.Time{}

	if !assert.Len(t, g.Session.AuthenticationMethods, len(w.Session.AuthenticationMethods), "Session.AuthenticationMethods") {
		return false
	}
	w.Session.AuthenticationMethods = append([]session.AuthenticationMethod(nil), w.Session.AuthenticationMethods...)
	g.Session.AuthenticationMethods = append([]session.AuthenticationMethod(nil), g.Session.AuthenticationMethods...)
	for i := range w.Session.AuthenticationMethods {
		wm, gm := &w.Session.AuthenticationMethods[i], &g.Session.AuthenticationMethods[i]
		ok = assertSameTime(t, wm.CompletedAt, gm.CompletedAt, "Session.AuthenticationMethods[i].CompletedAt") && ok
		wm.CompletedAt, gm.CompletedAt = time.Time{}, time.Time{}
	}
	return assert.Equal(t, w, g) && ok
}

// createSession stores a new session of identityID issued at now and
// returns it.
func createSession(t testing.TB, s login.SessionStore, identityID string, now time.Time) *session.Record {
	t.Helper()
	rec := newSession(uuid.New(), identityID, newTokenHash(), now)
	require.NoError(t, s.CreateSession(t.Context(), rec))
	return rec
}

// readSession reads the session with id, which must exist, by id and by
// tokenHash, checks that both reads agree and returns the first.
func readSession(t testing.TB, s login.SessionStore, id, tokenHash string) *session.Record {
	t.Helper()
	byID, err := s.Session(t.Context(), id)
	require.NoError(t, err, "Session(%s)", id)
	require.NotNil(t, byID, "Session(%s)", id)
	byToken, err := s.SessionByToken(t.Context(), tokenHash)
	require.NoError(t, err, "SessionByToken(%s)", tokenHash)
	require.NotNil(t, byToken, "SessionByToken(%s)", tokenHash)
	assertSession(t, byID, byToken)
	return byID
}

func testSessionRoundTrip(t *testing.T, s login.SessionStore) {
	now, id, identityID, hash := now(), uuid.New(), uuid.New(), newTokenHash()
	require.NoError(t, s.CreateSession(t.Context(), newSession(id, identityID, hash, now)))

	want := newSession(id, identityID, hash, now)
	byID, err := s.Session(t.Context(), id)
	if assert.NoError(t, err, "Session") {
		assertSession(t, want, byID)
	}
	byToken, err := s.SessionByToken(t.Context(), hash)
	if assert.NoError(t, err, "SessionByToken") {
		assertSession(t, want, byToken)
	}
}

func testSessionIdentityNotStored(t *testing.T, s login.SessionStore) {
	now, identityID := now(), uuid.New()
	rec := newSession(uuid.New(), identityID, newTokenHash(), now)
	rec.Session.Identity = &session.Identity{ID: identityID, SchemaID: "default", State: session.StateActive, Traits: []byte(`{"email":"alice@example.com"}`)}
	require.NoError(t, s.CreateSession(t.Context(), rec))
	got := readSession(t, s, rec.Session.ID, rec.TokenHash)
	assert.Nil(t, got.Session.Identity, "Session.Identity after CreateSession")

	got.Session.Identity = rec.Session.Identity
	require.NoError(t, s.UpdateSession(t.Context(), got, now))
	got = readSession(t, s, rec.Session.ID, rec.TokenHash)
	assert.Nil(t, got.Session.Identity, "Session.Identity after UpdateSession")
}

func testSessionNotFound(t *testing.T, s login.SessionStore) {
	createSession(t, s, uuid.New(), now())
	got, err := s.Session(t.Context(), uuid.New())
	assert.ErrorIs(t, err, session.ErrNotFound, "Session")
	assert.Nil(t, got)
	got, err = s.SessionByToken(t.Context(), newTokenHash())
	assert.ErrorIs(t, err, session.ErrNotFound, "SessionByToken")
	assert.Nil(t, got)
}

func testSessionDuplicateID(t *testing.T, s login.SessionStore) {
	now := now()
	first := createSession(t, s, uuid.New(), now)
	second := newSession(first.Session.ID, uuid.New(), newTokenHash(), now)
	assert.ErrorIs(t, s.CreateSession(t.Context(), second), session.ErrConflict)

	assertSession(t, first, readSession(t, s, first.Session.ID, first.TokenHash))
	_, err := s.SessionByToken(t.Context(), second.TokenHash)
	assert.ErrorIs(t, err, session.ErrNotFound, "token hash of the rejected session")
}

func testSessionDuplicateToken(t *testing.T, s login.SessionStore) {
	now := now()
	first := createSession(t, s, uuid.New(), now)
	second := newSession(uuid.New(), uuid.New(), first.TokenHash, now)
	assert.ErrorIs(t, s.CreateSession(t.Context(), second), session.ErrConflict)

	assertSession(t, first, readSession(t, s, first.Session.ID, first.TokenHash))
	_, err := s.Session(t.Context(), second.Session.ID)
	assert.ErrorIs(t, err, session.ErrNotFound, "id of the rejected session")
}

func testSessionReturnedCopy(t *testing.T, s login.SessionStore) {
	now, id, identityID, hash := now(), uuid.New(), uuid.New(), newTokenHash()
	require.NoError(t, s.CreateSession(t.Context(), newSession(id, identityID, hash, now)))
	want := newSession(id, identityID, hash, now)

	byID, err := s.Session(t.Context(), id)
	require.NoError(t, err)
	scribbleSession(byID)
	byToken, err := s.SessionByToken(t.Context(), hash)
	require.NoError(t, err)
	scribbleSession(byToken)
	list, err := s.ListSessions(t.Context(), identityID)
	require.NoError(t, err)
	require.Len(t, list, 1)
	scribbleSession(list[0])

	assertSession(t, want, readSession(t, s, id, hash))
}

func testSessionCallerCopy(t *testing.T, s login.SessionStore) {
	now, id, identityID, hash := now(), uuid.New(), uuid.New(), newTokenHash()
	rec := newSession(id, identityID, hash, now)
	require.NoError(t, s.CreateSession(t.Context(), rec))
	scribbleSession(rec)
	assertSession(t, newSession(id, identityID, hash, now), readSession(t, s, id, hash))

	// The same holds for the record given to UpdateSession.
	upd := newSession(id, identityID, hash, now)
	upd.Session.AAL = "aal2"
	require.NoError(t, s.UpdateSession(t.Context(), upd, now))
	scribbleSession(upd)
	want := newSession(id, identityID, hash, now)
	want.Session.AAL = "aal2"
	assertSession(t, want, readSession(t, s, id, hash))
}

func testSessionRotate(t *testing.T, s login.SessionStore) {
	now := now()
	rec := createSession(t, s, uuid.New(), now)
	oldHash := rec.TokenHash

	upd := readSession(t, s, rec.Session.ID, oldHash)
	upd.TokenHash = newTokenHash()
	upd.Session.AuthenticatedAt = now.Add(time.Minute)
	upd.Session.ExpiresAt = now.Add(48 * time.Hour)
	upd.Session.AAL = "aal2"
	upd.Session.AuthenticationMethods = append(upd.Session.AuthenticationMethods,
		session.AuthenticationMethod{Method: "totp", AAL: "aal2", CompletedAt: now.Add(time.Minute)})
	require.NoError(t, s.UpdateSession(t.Context(), upd, now))

	got := readSession(t, s, rec.Session.ID, upd.TokenHash)
	assert.Equal(t, rec.Session.ID, got.Session.ID, "Session.ID after rotation")
	assertSession(t, upd, got)
	_, err := s.SessionByToken(t.Context(), oldHash)
	assert.ErrorIs(t, err, session.ErrNotFound, "the old token hash still finds the session")
}

func testSessionUpdateNotFound(t *testing.T, s login.SessionStore) {
	createSession(t, s, uuid.New(), now())
	rec := newSession(uuid.New(), uuid.New(), newTokenHash(), now())
	assert.ErrorIs(t, s.UpdateSession(t.Context(), rec, now()), session.ErrNotFound)
	_, err := s.Session(t.Context(), rec.Session.ID)
	assert.ErrorIs(t, err, session.ErrNotFound, "UpdateSession must not create the session")
	_, err = s.SessionByToken(t.Context(), rec.TokenHash)
	assert.ErrorIs(t, err, session.ErrNotFound, "UpdateSession must not index the token hash")
}

func sessionIDs(recs []*session.Record) []string {
	ids := make([]string, len(recs))
	for i, r := range recs {
		ids[i] = r.Session.ID
	}
	return ids
}

func testSessionList(t *testing.T, s login.SessionStore) {
	now, alice, bob := now(), uuid.New(), uuid.New()
	// Created in neither issue order nor its reverse.
	middle := createSession(t, s, alice, now.Add(-time.Hour))
	oldest := createSession(t, s, alice, now.Add(-2*time.Hour))
	createSession(t, s, bob, now.Add(-30*time.Minute))
	newest := createSession(t, s, alice, now)
	require.NoError(t, s.RevokeSession(t.Context(), middle.Session.ID))
	middle.Session.Active = false

	list, err := s.ListSessions(t.Context(), alice)
	require.NoError(t, err)
	require.Equal(t, sessionIDs([]*session.Record{newest, middle, oldest}), sessionIDs(list), "ids, newest first")
	for i, want := range []*session.Record{newest, middle, oldest} {
		assertSession(t, want, list[i])
	}
}

func testSessionListEmpty(t *testing.T, s login.SessionStore) {
	createSession(t, s, uuid.New(), now())
	list, err := s.ListSessions(t.Context(), uuid.New())
	assert.NoError(t, err)
	assert.Len(t, list, 0)
}

func testSessionRevoke(t *testing.T, s login.SessionStore) {
	now := now()
	rec := createSession(t, s, uuid.New(), now)
	other := createSession(t, s, rec.IdentityID, now)

	require.NoError(t, s.RevokeSession(t.Context(), rec.Session.ID))
	rec.Session.Active = false
	assertSession(t, rec, readSession(t, s, rec.Session.ID, rec.TokenHash))
	assert.False(t, readSession(t, s, rec.Session.ID, rec.TokenHash).Valid(now), "Valid after RevokeSession")

	assert.NoError(t, s.RevokeSession(t.Context(), rec.Session.ID), "RevokeSession of a revoked session")
	assertSession(t, rec, readSession(t, s, rec.Session.ID, rec.TokenHash))

	assertSession(t, other, readSession(t, s, other.Session.ID, other.TokenHash))
}

func testSessionRevokeNotFound(t *testing.T, s login.SessionStore) {
	createSession(t, s, uuid.New(), now())
	assert.ErrorIs(t, s.RevokeSession(t.Context(), uuid.New()), session.ErrNotFound)
}

func testSessionRevokeAll(t *testing.T, s login.SessionStore) {
	now, alice, bob := now(), uuid.New(), uuid.New()
	aliceSessions := []*session.Record{
		createSession(t, s, alice, now),
		createSession(t, s, alice, now.Add(-time.Hour)),
		createSession(t, s, alice, now.Add(-2*time.Hour)),
	}
	require.NoError(t, s.RevokeSession(t.Context(), aliceSessions[1].Session.ID))
	bobSession := createSession(t, s, bob, now)

	n, err := s.RevokeSessions(t.Context(), alice)
	require.NoError(t, err)
	assert.Equal(t, 2, n, "sessions that were active")
	for _, rec := range aliceSessions {
		assert.False(t, readSession(t, s, rec.Session.ID, rec.TokenHash).Session.Active, "session %s still active", rec.Session.ID)
	}
	assertSession(t, bobSession, readSession(t, s, bobSession.Session.ID, bobSession.TokenHash))

	n, err = s.RevokeSessions(t.Context(), alice)
	assert.NoError(t, err)
	assert.Equal(t, 0, n, "sessions that were active on the second call")

	n, err = s.RevokeSessions(t.Context(), uuid.New())
	assert.NoError(t, err)
	assert.Equal(t, 0, n, "sessions of an identity without sessions")
}

func testSessionExpired(t *testing.T, s login.SessionStore) {
	now := now()
	rec := createSession(t, s, uuid.New(), now.Add(-25*time.Hour)) // expired an hour ago
	got, err := s.SessionByToken(t.Context(), rec.TokenHash)
	if errors.Is(err, session.ErrNotFound) {
		return // The store dropped it, which the caller cannot tell from revocation.
	}
	require.NoError(t, err)
	assertSession(t, rec, got)
	assert.False(t, got.Valid(now), "Valid of an expired session")
}

func testSessionCreateConcurrent(t *testing.T, s login.SessionStore) {
	now, identityID := now(), uuid.New()
	recs := make([]*session.Record, concurrency)
	for i := range recs {
		recs[i] = newSession(uuid.New(), identityID, newTokenHash(), now.Add(-time.Duration(i)*time.Second))
	}
	errs := concurrently(concurrency, func(i int) error { return s.CreateSession(t.Context(), recs[i]) })
	for i, err := range errs {
		assert.NoError(t, err, "CreateSession %d", i)
	}

	list, err := s.ListSessions(t.Context(), identityID)
	require.NoError(t, err)
	assert.Equal(t, sessionIDs(recs), sessionIDs(list), "ids, newest first")
}

// testSessionUpdateInactive: an update is conditional on the stored session
// being active and unexpired at the given time; otherwise nothing changes.
func testSessionUpdateInactive(t *testing.T, s login.SessionStore) {
	now := now()
	revoked := createSession(t, s, uuid.New(), now)
	require.NoError(t, s.RevokeSession(t.Context(), revoked.Session.ID))
	upd := newSession(revoked.Session.ID, revoked.IdentityID, newTokenHash(), now)
	assert.ErrorIs(t, s.UpdateSession(t.Context(), upd, now), session.ErrInactive, "update of a revoked session")
	got := readSession(t, s, revoked.Session.ID, revoked.TokenHash)
	assert.False(t, got.Session.Active, "a revoked session stays revoked")
	_, err := s.SessionByToken(t.Context(), upd.TokenHash)
	assert.ErrorIs(t, err, session.ErrNotFound, "the refused update's token hash finds nothing")

	others := createSession(t, s, revoked.IdentityID, now) // a second session of the same identity
	_, err = s.RevokeSessions(t.Context(), revoked.IdentityID)
	require.NoError(t, err)
	upd = newSession(others.Session.ID, others.IdentityID, newTokenHash(), now)
	assert.ErrorIs(t, s.UpdateSession(t.Context(), upd, now), session.ErrInactive, "update after RevokeSessions")
	assert.False(t, readSession(t, s, others.Session.ID, others.TokenHash).Session.Active)

	expiring := createSession(t, s, uuid.New(), now)
	later := expiring.Session.ExpiresAt.Add(time.Microsecond)
	upd = newSession(expiring.Session.ID, expiring.IdentityID, newTokenHash(), later)
	assert.ErrorIs(t, s.UpdateSession(t.Context(), upd, later), session.ErrInactive, "update after expiry")
	assertSession(t, expiring, readSession(t, s, expiring.Session.ID, expiring.TokenHash))
	atExpiry := expiring.Session.ExpiresAt
	assert.ErrorIs(t, s.UpdateSession(t.Context(), upd, atExpiry), session.ErrInactive, "a session is expired at its ExpiresAt")
	before := expiring.Session.ExpiresAt.Add(-time.Microsecond)
	assert.NoError(t, s.UpdateSession(t.Context(), upd, before), "a session is valid until its ExpiresAt")
}

// testSessionUpdateRevokeRace: a refresh (UpdateSession with a rotated
// token) racing a logout (RevokeSession) or a "sign out everywhere"
// (RevokeSessions) always ends revoked: either the update lands first and
// the revocation ends the updated session, or the revocation lands first
// and the update is refused. Never does the new token find an active
// session.
func testSessionUpdateRevokeRace(t *testing.T, s login.SessionStore) {
	const rounds = 20
	for i := range rounds {
		now := now()
		rec := createSession(t, s, uuid.New(), now)
		upd := readSession(t, s, rec.Session.ID, rec.TokenHash)
		upd.TokenHash = newTokenHash()
		upd.Session.AuthenticatedAt = now
		upd.Session.ExpiresAt = now.Add(48 * time.Hour)
		errs := concurrently(2, func(j int) error {
			if j == 0 {
				return s.UpdateSession(t.Context(), upd, now)
			}
			if i%2 == 0 {
				return s.RevokeSession(t.Context(), rec.Session.ID)
			}
			_, err := s.RevokeSessions(t.Context(), rec.IdentityID)
			return err
		})
		require.NoError(t, errs[1], "round %d: revocation", i)
		if errs[0] != nil {
			require.ErrorIs(t, errs[0], session.ErrInactive, "round %d: the update lost to the revocation", i)
		}
		for _, hash := range []string{rec.TokenHash, upd.TokenHash} {
			got, err := s.SessionByToken(t.Context(), hash)
			if errors.Is(err, session.ErrNotFound) {
				continue
			}
			require.NoError(t, err)
			assert.False(t, got.Valid(now), "round %d: a token of the revoked session still finds it active (update error: %v)", i, errs[0])
		}
		got, err := s.Session(t.Context(), rec.Session.ID)
		require.NoError(t, err)
		assert.False(t, got.Session.Active, "round %d: the session is revoked", i)
	}
}
