package pgstore_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/internal/uuid"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/login/logintest"
	"github.com/authflow/authflow/login/passkey"
	"github.com/authflow/authflow/login/passkey/passkeytest"
	"github.com/authflow/authflow/pgstore"
	"github.com/authflow/authflow/session"
)

// Passkey and WebAuthn sign-in (login/passkey, CONTRACT-PASSKEY §3, §7 and
// §9) end to end through the handler, with the flow, session and identity
// stores, the limiter and the enrolment ceremonies on PostgreSQL, and
// instances that share nothing but the database. The authenticator is
// passkeytest's software authenticator, answering as webauthn.js would.

const (
	// The relying party: the passkeys belong to pkRPID; the pages that
	// run ceremonies are on pkOrigin.
	pkRPID   = "localhost"
	pkOrigin = "http://localhost:4455"
)

// pkSetup is what a test may change before the instances are built.
type pkSetup struct {
	login   func(*login.Config)
	passkey func(*passkey.Config) // also the webauthn method's Config
	pool    poolOption            // also configures each instance's pool
}

// pkEnv is a deployment of instances on one fresh schema, sharing a clock.
// Each instance has its own pool, Store, Limiter, CeremonyStore and
// methods: passkey (aal1) and webauthn (a second factor), with enrolment
// mounted at /passkeys/ and /security-keys/. Its identity has a password;
// withPasskey gives it a passkey held by auth.
type pkEnv struct {
	clock    *testClock
	cluster  []*instance
	identity *session.Identity
	auth     *passkeytest.Authenticator
	handle   []byte // the identity's passkey user handle, once it has one
}

// newPasskeyEnv starts n instances. The loopback test servers are trusted
// proxies, so X-Forwarded-For names the client.
func newPasskeyEnv(t *testing.T, n int, setup pkSetup) *pkEnv {
	t.Helper()
	schema := freshSchema(t)
	e := &pkEnv{clock: newTestClock(), auth: passkeytest.New()}
	for i := range n {
		opts := []poolOption{func(c *pgxpool.Config) { c.MaxConns = 16 }}
		if setup.pool != nil {
			opts = append(opts, setup.pool)
		}
		pool := newPool(t, schema, opts...)
		st := pgstore.New(pool)
		require.NoError(t, st.Migrate(context.Background())) // every instance migrates on start
		pc := passkey.Config{
			RPID: pkRPID, RPDisplayName: "Example", Origins: []string{pkOrigin},
			Identities: st, Ceremonies: pgstore.NewCeremonyStore(pool), Now: e.clock.Now,
		}
		if setup.passkey != nil {
			setup.passkey(&pc)
		}
		pk, err := passkey.New(pc)
		require.NoError(t, err)
		wc := pc
		wc.UserVerification = "" // the second factor's own default
		wa, err := passkey.NewWebAuthn(passkey.WebAuthnConfig{Config: wc})
		require.NoError(t, err)
		mux := http.NewServeMux()
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		cfg := login.Config{
			PublicURL:         srv.URL,
			LoginUIURL:        "https://ui.example.com/login",
			ErrorUIURL:        "https://ui.example.com/error",
			DefaultReturnURL:  "https://app.example.com/welcome",
			AllowedReturnURLs: []string{"https://app.example.com/"},
			FlowStore:         st,
			SessionStore:      st,
			IdentityStore:     st,
			Limiter:           pgstore.NewLimiter(pool, login.Limits{Now: e.clock.Now}),
			TrustedProxies:    []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
			Hasher:            logintest.FastHasher{},
			Methods:           []login.Method{pk, wa},
			Now:               e.clock.Now,
			Logger:            slog.New(slog.DiscardHandler),
		}
		if setup.login != nil {
			setup.login(&cfg)
		}
		h, err := login.New(cfg)
		require.NoError(t, err)
		mux.Handle("/passkeys/", h.RequireSession(http.StripPrefix("/passkeys", pk.EnrolmentHandler())))
		mux.Handle("/security-keys/", h.RequireSession(http.StripPrefix("/security-keys", wa.EnrolmentHandler())))
		mux.Handle("/", h)
		e.cluster = append(e.cluster, &instance{name: string(rune('A' + i)), srv: srv, pool: pool, st: st})
	}
	pw, err := login.NewPasswordCredential(context.Background(), logintest.FastHasher{}, clusterIdentifier, clusterPassword)
	require.NoError(t, err)
	now := e.clock.Now()
	e.identity = &session.Identity{
		ID: uuid.New(), SchemaID: "default", State: session.StateActive, StateChangedAt: &now,
		Traits: json.RawMessage(`{"email":"alice@example.com"}`), CreatedAt: now, UpdatedAt: now,
	}
	require.NoError(t, e.cluster[0].st.CreateIdentity(context.Background(), e.identity, pw))
	return e
}

// withPasskey gives the identity a passkey held by e.auth, imported as
// from Kratos, and returns it.
func (e *pkEnv) withPasskey(t *testing.T) *passkeytest.Key {
	t.Helper()
	e.handle = []byte(strings.Repeat("h", 64))
	k := e.auth.AddKey(pkRPID, e.handle)
	cred, err := passkey.ImportKratos(passkey.CredentialPasskey, passkeytest.KratosConfig(e.handle, true, false, k), "")
	require.NoError(t, err)
	require.NoError(t, e.cluster[0].st.UpdateCredential(context.Background(), e.identity.ID, &cred))
	return k
}

// withSecurityKey gives the identity a second-factor security key held by
// auth, imported as from Kratos, and returns it.
func (e *pkEnv) withSecurityKey(t *testing.T, auth *passkeytest.Authenticator) *passkeytest.Key {
	t.Helper()
	handle := []byte("webauthn-handle-of-alice")
	k := auth.AddKey(pkRPID, handle)
	cred, err := passkey.ImportKratos(passkey.CredentialWebAuthn, passkeytest.KratosConfig(handle, false, false, k), clusterIdentifier)
	require.NoError(t, err)
	require.NoError(t, e.cluster[0].st.UpdateCredential(context.Background(), e.identity.ID, &cred))
	return k
}

// storedKey returns the identity's key with id, of typ, as stored.
func (e *pkEnv) storedKey(t *testing.T, typ session.CredentialType, id []byte) passkey.Key {
	t.Helper()
	creds, err := e.cluster[0].st.Credentials(context.Background(), e.identity.ID)
	require.NoError(t, err)
	for _, c := range creds {
		if c.Type != typ {
			continue
		}
		var cfg passkey.CredentialConfig
		require.NoError(t, json.Unmarshal(c.Config, &cfg))
		for _, k := range cfg.Credentials {
			if bytes.Equal(k.ID, id) {
				return k
			}
		}
	}
	t.Fatalf("no %s key %x", typ, id)
	return passkey.Key{}
}

// sessions is how many sessions the identity has in the database.
func (e *pkEnv) sessions(t *testing.T) int {
	t.Helper()
	return count(t, e.cluster[0].pool, "authflow_sessions", "identity_id = $1", e.identity.ID)
}

// apiFlow creates an API login flow on in.
func pkAPIFlow(t *testing.T, in *instance) flow.Flow {
	t.Helper()
	r := in.do(t, nil, http.MethodGet, "/self-service/login/api", nil, nil)
	require.Equal(t, http.StatusOK, r.status, "flow on %s: %s", in.name, r.body)
	return sfFlow(t, r)
}

// pkValue is the string value of the flow's node name.
func pkValue(t *testing.T, f flow.Flow, name string) string {
	t.Helper()
	n := f.UI.Node(name)
	require.NotNil(t, n, "node %s", name)
	v, _ := n.Attributes.Value.(string)
	return v
}

// assert signs the flow's passkey challenge with e.auth on pkOrigin.
func (e *pkEnv) assert(t *testing.T, f flow.Flow, opts ...passkeytest.Option) string {
	t.Helper()
	b, err := e.auth.Get([]byte(pkValue(t, f, "passkey_challenge")), pkOrigin, opts...)
	require.NoError(t, err)
	return string(b)
}

// submitPasskey posts an assertion to the flow on in, as an API client.
func submitPasskey(t *testing.T, in *instance, flowID, assertion string, header map[string]string) reply {
	t.Helper()
	return in.do(t, nil, http.MethodPost, "/self-service/login?flow="+flowID, map[string]any{"passkey_login": assertion}, header)
}

// pkSessionMethods returns a session's authentication methods as
// method/aal.
func pkSessionMethods(t *testing.T, s map[string]any) []string {
	t.Helper()
	var out []string
	ms, _ := s["authentication_methods"].([]any)
	for _, m := range ms {
		mm := m.(map[string]any)
		out = append(out, fmt.Sprintf("%s/%s", mm["method"], mm["aal"]))
	}
	return out
}

// assertRefused asserts the answer to a refused assertion on the flow
// flowID: 400 with that flow (no cookie) carrying exactly the message id,
// its passkey nodes without the submitted assertion, and a challenge other
// than before, which is the one stored (so that any instance verifies the
// next attempt against it); the flow is not completed and the identity
// still has sessions sessions. It returns the answered flow.
func (e *pkEnv) assertRefused(t *testing.T, r reply, flowID string, id int, before string, sessions int) flow.Flow {
	t.Helper()
	require.Equal(t, http.StatusBadRequest, r.status, "%s", r.body)
	assert.Empty(t, r.header.Values("Set-Cookie"), "a refusal sets no cookie")
	f := sfFlow(t, r)
	assert.Equal(t, flowID, f.ID, "the same flow")
	assert.Equal(t, []int{id}, sfMessageIDs(f), "%s", r.body)
	require.NotNil(t, f.UI.Node("passkey_login"), "the passkey nodes stay")
	assert.Nil(t, f.UI.Node("passkey_login").Attributes.Value, "the submitted assertion is not echoed")
	challenge := pkValue(t, f, "passkey_challenge")
	assert.NotEqual(t, before, challenge, "the attempt burnt the challenge; the flow shows a fresh one")

	stored, err := e.cluster[0].st.Flow(context.Background(), flowID)
	require.NoError(t, err)
	assert.Equal(t, flow.StateChooseMethod, stored.Flow.State, "not completed")
	assert.Equal(t, challenge, pkValue(t, stored.Flow, "passkey_challenge"), "the fresh challenge is the stored one")
	assert.Equal(t, sessions, e.sessions(t), "a refused assertion issues no session")
	return f
}

// CONTRACT-PASSKEY §9.4: a passkey logs in at aal1 on PostgreSQL; the
// counter is stored; a browser flow made on one instance logs in on the
// other with the form webauthn.js posts.
func TestPasskeyLoginOnPostgres(t *testing.T) {
	e := newPasskeyEnv(t, 2, pkSetup{})
	a, b := e.cluster[0], e.cluster[1]
	key := e.withPasskey(t)

	f := pkAPIFlow(t, a)
	r := submitPasskey(t, b, f.ID, e.assert(t, f), nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	body := r.json(t)
	token, _ := body["session_token"].(string)
	require.NotEmpty(t, token, "%s", r.body)
	s := body["session"].(map[string]any)
	assert.Equal(t, "aal1", s["authenticator_assurance_level"])
	assert.Equal(t, []string{"passkey/aal1"}, pkSessionMethods(t, s))
	assert.Equal(t, e.identity.ID, s["identity"].(map[string]any)["id"])
	assert.Equal(t, 1, e.sessions(t))

	stored := e.storedKey(t, passkey.CredentialPasskey, key.ID)
	assert.Equal(t, uint32(1), stored.Authenticator.SignCount, "the counter is stored")
	assert.False(t, stored.Authenticator.CloneWarning)
	require.NotNil(t, stored.Flags)
	assert.True(t, stored.Flags.UserVerified, "the verification is recorded")

	rec, err := a.st.Flow(context.Background(), f.ID)
	require.NoError(t, err)
	assert.Equal(t, flow.StatePassedChallenge, rec.Flow.State, "the flow is completed")
	assert.Equal(t, rec.SessionID, s["id"], "by the session it issued")

	who := whoami(t, a, token)
	require.Equal(t, http.StatusOK, who.status, "the session is valid on the other instance: %s", who.body)
	assert.Equal(t, []string{"passkey/aal1"}, pkSessionMethods(t, who.json(t)))

	// A browser: the flow on B, the form post (no method field) on A.
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	r = b.do(t, browser, http.MethodGet, "/self-service/login/browser", nil, nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	bf := sfFlow(t, r)
	r = postForm(t, a, browser, bf.ID, map[string][]string{
		"csrf_token": {sfCSRF(bf)}, "passkey_login": {e.assert(t, bf)}, "passkey_challenge": {pkValue(t, bf, "passkey_challenge")}, "identifier": {""},
	})
	require.Equal(t, http.StatusSeeOther, r.status, "%s", r.body)
	assert.Equal(t, "https://app.example.com/welcome", r.header.Get("Location"))
	require.NotNil(t, setCookie(r, sfSessionCookie), "the session cookie is issued")
	who = b.do(t, browser, http.MethodGet, "/sessions/whoami", nil, nil)
	require.Equal(t, http.StatusOK, who.status, "%s", who.body)
	assert.Equal(t, []string{"passkey/aal1"}, pkSessionMethods(t, who.json(t)))
	assert.Equal(t, uint32(2), e.storedKey(t, passkey.CredentialPasskey, key.ID).Authenticator.SignCount)
	assert.Equal(t, 2, e.sessions(t))
}

// A passkey login reads the identity with its credentials in one statement
// and hands them to the step-up check (a second factor is configured), so
// that the check reads nothing more: the one Credentials read left is the
// after-login record of the key's counter, which reads them afresh for its
// conditional write (two reads, and FindIdentity, before).
func TestPasskeyLoginReadsCredentialsOnce(t *testing.T) {
	rt := newRoundTrips()
	e := newPasskeyEnv(t, 1, pkSetup{pool: rt.install})
	a := e.cluster[0]
	e.withPasskey(t)
	login := func() {
		f := pkAPIFlow(t, a)
		r := submitPasskey(t, a, f.ID, e.assert(t, f), nil)
		require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	}
	login() // statements prepared
	rt.snapshot()
	login()
	got := without(rt.snapshot(), "prepare", "ping")
	assert.Equal(t, 1, got["FindIdentityWithCredentials"], "%v", got)
	assert.Equal(t, 1, got["Credentials"], "the counter's record only: %v", got)
	assert.Equal(t, 1, got["CompleteFlowWithSession"], "%v", got)
}

// CONTRACT-PASSKEY §9.5-6 and §7 on PostgreSQL: every broken assertion is
// answered with its message, the flow carries a fresh challenge (stored,
// so the next attempt is verified against it on any instance), no session
// is issued, and the fresh challenge then logs in on the other instance.
func TestPasskeyRefusalsOnPostgres(t *testing.T) {
	other := passkeytest.New()
	zeroChallenge := base64.RawURLEncoding.EncodeToString(make([]byte, 32))
	cases := []struct {
		name string
		// assertion is what is posted to the flow f.
		assertion func(t *testing.T, e *pkEnv, f flow.Flow) string
		id        int
	}{
		{"tampered signature", func(t *testing.T, e *pkEnv, f flow.Flow) string {
			return e.assert(t, f, passkeytest.WithCorruptSignature())
		}, flow.IDInvalidWebAuthn},
		{"wrong origin", func(t *testing.T, e *pkEnv, f flow.Flow) string {
			b, err := e.auth.Get([]byte(pkValue(t, f, "passkey_challenge")), "https://evil.example")
			require.NoError(t, err)
			return string(b)
		}, flow.IDInvalidWebAuthn},
		{"wrong rp id", func(t *testing.T, e *pkEnv, f flow.Flow) string {
			return e.assert(t, f, passkeytest.WithRPID("evil.example"))
		}, flow.IDInvalidWebAuthn},
		{"challenge of no flow", func(t *testing.T, e *pkEnv, f flow.Flow) string {
			return e.assert(t, f, passkeytest.WithChallenge(zeroChallenge))
		}, flow.IDInvalidWebAuthn},
		{"registration type", func(t *testing.T, e *pkEnv, f flow.Flow) string {
			return e.assert(t, f, passkeytest.WithType("webauthn.create"))
		}, flow.IDInvalidWebAuthn},
		{"no user verification", func(t *testing.T, e *pkEnv, f flow.Flow) string {
			return e.assert(t, f, passkeytest.WithoutUserVerification())
		}, flow.IDInvalidWebAuthn},
		{"foreign key with the identity's handle", func(t *testing.T, e *pkEnv, f flow.Flow) string {
			return e.assert(t, f, passkeytest.WithKey(other.AddKey(pkRPID, e.handle)))
		}, flow.IDInvalidWebAuthn},
		{"reused challenge, burnt by a failed attempt on the other instance", func(t *testing.T, e *pkEnv, f flow.Flow) string {
			good := e.assert(t, f)
			r := submitPasskey(t, e.cluster[1], f.ID, e.assert(t, f, passkeytest.WithCorruptSignature()), nil)
			require.Equal(t, http.StatusBadRequest, r.status, "%s", r.body)
			return good // signed for the challenge that attempt burnt
		}, flow.IDInvalidWebAuthn},
		{"unknown user handle", func(t *testing.T, e *pkEnv, f flow.Flow) string {
			return e.assert(t, f, passkeytest.WithUserHandle([]byte("nobody")))
		}, flow.IDNoSecurityKey},
		{"empty user handle", func(t *testing.T, e *pkEnv, f flow.Flow) string {
			return e.assert(t, f, passkeytest.WithUserHandle(nil))
		}, flow.IDNoSecurityKey},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newPasskeyEnv(t, 2, pkSetup{})
			a, b := e.cluster[0], e.cluster[1]
			key := e.withPasskey(t)
			f := pkAPIFlow(t, a)
			before := pkValue(t, f, "passkey_challenge")
			r := submitPasskey(t, a, f.ID, tc.assertion(t, e, f), nil)
			f = e.assertRefused(t, r, f.ID, tc.id, before, 0)

			r = submitPasskey(t, b, f.ID, e.assert(t, f), nil)
			require.Equal(t, http.StatusOK, r.status, "the fresh challenge logs in on B: %s", r.body)
			assert.Equal(t, 1, e.sessions(t))
			assert.False(t, e.storedKey(t, passkey.CredentialPasskey, key.ID).Authenticator.CloneWarning)
		})
	}

	// An assertion that does not parse is no verification attempt: it is
	// answered 4000001 before the challenge is touched, which stays.
	for _, garbage := range []string{"garbage", `{"id":"x"}`, strings.Repeat("a", 20000)} {
		t.Run(fmt.Sprintf("unparsable %.10q", garbage), func(t *testing.T) {
			e := newPasskeyEnv(t, 2, pkSetup{})
			a, b := e.cluster[0], e.cluster[1]
			e.withPasskey(t)
			f := pkAPIFlow(t, a)
			r := submitPasskey(t, a, f.ID, garbage, nil)
			require.Equal(t, http.StatusBadRequest, r.status, "%s", r.body)
			got := sfFlow(t, r)
			assert.Equal(t, f.ID, got.ID)
			require.Len(t, got.UI.Messages, 1, "%s", r.body)
			assert.Equal(t, flow.IDGeneric, got.UI.Messages[0].ID)
			assert.Equal(t, "Unable to parse WebAuthn response.", got.UI.Messages[0].Text)
			assert.Zero(t, e.sessions(t))
			stored, err := a.st.Flow(context.Background(), f.ID)
			require.NoError(t, err)
			assert.Equal(t, pkValue(t, got, "passkey_challenge"), pkValue(t, stored.Flow, "passkey_challenge"), "the flow shows the stored challenge")

			r = submitPasskey(t, b, f.ID, e.assert(t, got), nil)
			require.Equal(t, http.StatusOK, r.status, "the flow still logs in on B: %s", r.body)
		})
	}
}

// CONTRACT-PASSKEY §9.10 and §7 on PostgreSQL: a signature counter that
// does not increase is recorded on the stored key (clone_warning, the
// counter unchanged); with RefuseClonedKeys the assertion is refused as
// any invalid one, and the key stays refused.
func TestPasskeyCounterRegressionOnPostgres(t *testing.T) {
	t.Run("recorded", func(t *testing.T) {
		e := newPasskeyEnv(t, 2, pkSetup{})
		a, b := e.cluster[0], e.cluster[1]
		key := e.withPasskey(t)
		f := pkAPIFlow(t, a)
		require.Equal(t, http.StatusOK, submitPasskey(t, a, f.ID, e.assert(t, f, passkeytest.WithCounter(7)), nil).status)
		f = pkAPIFlow(t, b)
		r := submitPasskey(t, b, f.ID, e.assert(t, f, passkeytest.WithCounter(3)), nil)
		require.Equal(t, http.StatusOK, r.status, "Kratos' default: the login proceeds: %s", r.body)
		stored := e.storedKey(t, passkey.CredentialPasskey, key.ID)
		assert.True(t, stored.Authenticator.CloneWarning, "the regression is recorded")
		assert.Equal(t, uint32(7), stored.Authenticator.SignCount, "the counter never goes down")
		assert.Equal(t, 2, e.sessions(t))

		f = pkAPIFlow(t, a)
		require.Equal(t, http.StatusOK, submitPasskey(t, a, f.ID, e.assert(t, f, passkeytest.WithCounter(9)), nil).status)
		stored = e.storedKey(t, passkey.CredentialPasskey, key.ID)
		assert.True(t, stored.Authenticator.CloneWarning, "the warning stays")
		assert.Equal(t, uint32(9), stored.Authenticator.SignCount)
	})
	t.Run("refused with RefuseClonedKeys", func(t *testing.T) {
		e := newPasskeyEnv(t, 2, pkSetup{passkey: func(c *passkey.Config) { c.RefuseClonedKeys = true }})
		a, b := e.cluster[0], e.cluster[1]
		key := e.withPasskey(t)
		f := pkAPIFlow(t, a)
		require.Equal(t, http.StatusOK, submitPasskey(t, a, f.ID, e.assert(t, f, passkeytest.WithCounter(7)), nil).status)

		f = pkAPIFlow(t, b)
		before := pkValue(t, f, "passkey_challenge")
		r := submitPasskey(t, b, f.ID, e.assert(t, f, passkeytest.WithCounter(7)), nil)
		e.assertRefused(t, r, f.ID, flow.IDInvalidWebAuthn, before, 1)
		stored := e.storedKey(t, passkey.CredentialPasskey, key.ID)
		assert.True(t, stored.Authenticator.CloneWarning, "recorded although refused")
		assert.Equal(t, uint32(7), stored.Authenticator.SignCount)

		f = pkAPIFlow(t, a)
		before = pkValue(t, f, "passkey_challenge")
		r = submitPasskey(t, a, f.ID, e.assert(t, f, passkeytest.WithCounter(8)), nil)
		e.assertRefused(t, r, f.ID, flow.IDInvalidWebAuthn, before, 1) // a flagged key stays refused
	})
}

// §7 across instances: 20 concurrent submissions of one valid assertion to
// one flow, split over two instances, log in exactly once. The others are
// verified against successors of the burnt challenge (4000043) or find the
// flow completed (4010007).
func TestPasskeyAssertionOnceAcrossInstances(t *testing.T) {
	e := newPasskeyEnv(t, 2, pkSetup{})
	e.withPasskey(t)
	f := pkAPIFlow(t, e.cluster[0])
	good := e.assert(t, f)
	const n = 20
	replies := make([]reply, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		in := e.cluster[i%2]
		// Each from its own address: an attempt in flight is counted as a
		// failure of its address until it is settled.
		header := map[string]string{"X-Forwarded-For": fmt.Sprintf("198.51.100.%d", i)}
		wg.Go(func() {
			<-start
			replies[i] = submitPasskey(t, in, f.ID, good, header)
		})
	}
	close(start)
	wg.Wait()
	wins := 0
	for i, r := range replies {
		switch r.status {
		case http.StatusOK:
			wins++
		case http.StatusBadRequest:
			ids := r.messageIDs(t)
			if !assert.Len(t, ids, 1, "submission %d on %s: %s", i, e.cluster[i%2].name, r.body) {
				continue
			}
			assert.Contains(t, []int{flow.IDInvalidWebAuthn, flow.IDAlreadyCompleted}, ids[0], "submission %d on %s: %s", i, e.cluster[i%2].name, r.body)
		default:
			t.Errorf("submission %d on %s: %d %s", i, e.cluster[i%2].name, r.status, r.body)
		}
	}
	assert.Equal(t, 1, wins, "submissions that logged in")
	assert.Equal(t, 1, e.sessions(t), "sessions issued")
	rec, err := e.cluster[1].st.Flow(context.Background(), f.ID)
	require.NoError(t, err)
	assert.Equal(t, flow.StatePassedChallenge, rec.Flow.State)

	// The assertion, replayed on a new flow, does not log in either (§9.7).
	g := pkAPIFlow(t, e.cluster[1])
	r := submitPasskey(t, e.cluster[0], g.ID, good, nil)
	e.assertRefused(t, r, g.ID, flow.IDInvalidWebAuthn, pkValue(t, g, "passkey_challenge"), 1)
}

// CONTRACT-PASSKEY §9.8 on PostgreSQL: a browser signs in with its
// password on A and steps up with a security key: the aal2 flow made on
// B, a tampered assertion refused on A, the fresh challenge's assertion
// accepted on A; the session is aal2 everywhere and the counter stored.
func TestWebAuthnStepUpOnPostgres(t *testing.T) {
	e := newPasskeyEnv(t, 2, pkSetup{})
	a, b := e.cluster[0], e.cluster[1]
	securityKey := passkeytest.New()
	securityKey.UserVerified = false // a touch, as a plain security key
	key := e.withSecurityKey(t, securityKey)

	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	// The password on A: an aal1 session, and the way to the step-up.
	r := a.do(t, browser, http.MethodGet, "/self-service/login/browser", nil, nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	first := sfFlow(t, r)
	r = submit(t, a, browser, first.ID, clusterPassword, sfCSRF(first))
	require.Equal(t, http.StatusUnprocessableEntity, r.status, "%s", r.body)
	assert.Equal(t, a.srv.URL+"/self-service/login/browser?aal=aal2", r.json(t)["redirect_browser_to"])
	require.NotNil(t, setCookie(r, sfSessionCookie), "the aal1 session is issued")
	aal1 := jarValue(t, a, browser, sfSessionCookie)
	assertEnvelope(t, b.do(t, browser, http.MethodGet, "/sessions/whoami", nil, nil), http.StatusForbidden, "session_aal2_required")

	// The step-up flow on B offers the security key.
	r = b.do(t, browser, http.MethodGet, "/self-service/login/browser?aal=aal2", nil, nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	f := sfFlow(t, r)
	assert.Equal(t, flow.AAL2, f.RequestedAAL)
	assert.Equal(t, []int{flow.IDSecondFactor}, sfMessageIDs(f))
	assert.Equal(t, clusterIdentifier, pkValue(t, f, "identifier"))
	require.NotNil(t, f.UI.Node("webauthn_login"))
	assert.Nil(t, f.UI.Node("passkey_login"), "a passkey is no second factor")
	options := pkValue(t, f, "webauthn_login_trigger")
	assert.Contains(t, options, base64.RawURLEncoding.EncodeToString(key.ID), "the identity's key is allowed")
	body := func(assertion string, f flow.Flow) map[string]any {
		return map[string]any{"method": "webauthn", "identifier": pkValue(t, f, "identifier"), "webauthn_login": assertion, "csrf_token": sfCSRF(f)}
	}

	// A tampered assertion on A: 4000043, a fresh challenge, still aal1.
	bad, err := securityKey.Get([]byte(options), pkOrigin, passkeytest.WithCorruptSignature())
	require.NoError(t, err)
	r = a.do(t, browser, http.MethodPost, "/self-service/login?flow="+f.ID, body(string(bad), f), nil)
	require.Equal(t, http.StatusBadRequest, r.status, "%s", r.body)
	refused := sfFlow(t, r)
	assert.Equal(t, []int{flow.IDInvalidWebAuthn}, sfMessageIDs(refused))
	fresh := pkValue(t, refused, "webauthn_login_trigger")
	assert.NotEqual(t, options, fresh, "the attempt burnt the challenge")
	assertEnvelope(t, a.do(t, browser, http.MethodGet, "/sessions/whoami", nil, nil), http.StatusForbidden, "session_aal2_required")

	// The assertion for the burnt challenge is refused too.
	stale, err := securityKey.Get([]byte(options), pkOrigin)
	require.NoError(t, err)
	r = b.do(t, browser, http.MethodPost, "/self-service/login?flow="+f.ID, body(string(stale), refused), nil)
	require.Equal(t, http.StatusBadRequest, r.status, "%s", r.body)
	refused = sfFlow(t, r)
	assert.Equal(t, []int{flow.IDInvalidWebAuthn}, sfMessageIDs(refused))

	// The fresh challenge's assertion on A: aal2.
	good, err := securityKey.Get([]byte(pkValue(t, refused, "webauthn_login_trigger")), pkOrigin)
	require.NoError(t, err)
	r = a.do(t, browser, http.MethodPost, "/self-service/login?flow="+f.ID, body(string(good), refused), nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	s := r.json(t)["session"].(map[string]any)
	assert.Equal(t, "aal2", s["authenticator_assurance_level"])
	assert.Equal(t, []string{"password/aal1", "webauthn/aal2"}, pkSessionMethods(t, s))
	require.NotNil(t, setCookie(r, sfSessionCookie), "the session cookie is re-issued")
	aal2 := jarValue(t, a, browser, sfSessionCookie)
	assert.NotEqual(t, aal1, aal2, "the step-up rotates the token")

	who := b.do(t, browser, http.MethodGet, "/sessions/whoami", nil, nil)
	require.Equal(t, http.StatusOK, who.status, "%s", who.body)
	assert.Equal(t, "aal2", who.json(t)["authenticator_assurance_level"])
	assertAAL2(t, a, aal2, s["id"].(string))
	assertTokenDead(t, b, aal1)
	assert.Equal(t, 1, e.sessions(t), "the step-up keeps the session")
	stored := e.storedKey(t, passkey.CredentialWebAuthn, key.ID)
	assert.Equal(t, securityKey.Keys()[0].SignCount, stored.Authenticator.SignCount, "the counter is stored")
	assert.False(t, stored.Authenticator.CloneWarning)
}

// pkBrowser signs the identity in with its password through a browser
// flow on in and returns the browser, whose session cookie every instance
// accepts.
func (e *pkEnv) pkBrowser(t *testing.T, in *instance) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	r := in.do(t, browser, http.MethodGet, "/self-service/login/browser", nil, nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	f := sfFlow(t, r)
	r = submit(t, in, browser, f.ID, clusterPassword, sfCSRF(f))
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	return browser
}

// enrol posts to the passkey enrolment API on in, from pkOrigin.
func enrol(t *testing.T, in *instance, browser *http.Client, path string, body any) reply {
	t.Helper()
	return in.do(t, browser, http.MethodPost, "/passkeys"+path, body, map[string]string{"Origin": pkOrigin})
}

// assertNoEnrolment asserts the answer to a finish without a ceremony
// (login.ErrNoCeremony): the 400 error envelope saying so.
func assertNoEnrolment(t *testing.T, r reply) {
	t.Helper()
	require.Equal(t, http.StatusBadRequest, r.status, "%s", r.body)
	assert.True(t, strings.HasPrefix(r.header.Get("Content-Type"), "application/json"), "Content-Type %q", r.header.Get("Content-Type"))
	e, ok := r.json(t)["error"].(map[string]any)
	require.True(t, ok, "not an error envelope: %s", r.body)
	assert.EqualValues(t, http.StatusBadRequest, e["code"])
	assert.Equal(t, "There is no enrolment in progress for this session: begin one first.", e["reason"])
}

// finishBody is the JSON body of /finish.
func finishBody(attestation []byte, name string) map[string]any {
	return map[string]any{"credential": json.RawMessage(attestation), "display_name": name}
}

// Enrolment with the ceremonies on PostgreSQL: begun on A, finished on B;
// finished once however often and wherever it is finished; refused once
// expired; and the enrolled passkey logs in.
func TestPasskeyEnrolmentAcrossInstances(t *testing.T) {
	e := newPasskeyEnv(t, 2, pkSetup{})
	a, b := e.cluster[0], e.cluster[1]
	browser := e.pkBrowser(t, a)
	ceremonies := func() int { return count(t, a.pool, "authflow_ceremonies", "") }

	// Begin on A: the options, and the ceremony kept in the database.
	r := enrol(t, a, browser, "/begin", nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	assert.Equal(t, 1, ceremonies())
	var expires time.Time
	require.NoError(t, a.pool.QueryRow(context.Background(), "SELECT expires_at FROM authflow_ceremonies").Scan(&expires))
	assert.True(t, expires.Equal(e.clock.Now().Add(passkey.DefaultTimeout)), "expires %s", expires)
	attestation, key, err := e.auth.Create(r.body, pkOrigin)
	require.NoError(t, err)

	// Finish on B.
	r = enrol(t, b, browser, "/finish", finishBody(attestation, "Laptop"))
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	view := r.json(t)["key"].(map[string]any)
	assert.Equal(t, fmt.Sprintf("%x", key.ID), view["id"])
	assert.Equal(t, "Laptop", view["display_name"])
	assert.Equal(t, true, view["user_verified"])
	assert.Zero(t, ceremonies(), "the finish took the ceremony")

	// Finishing again, on either instance: no enrolment in progress.
	for _, in := range []*instance{a, b} {
		assertNoEnrolment(t, enrol(t, in, browser, "/finish", finishBody(attestation, "Laptop")))
	}

	// Stored through the IdentityStore: identified by its user handle.
	creds, err := a.st.Credentials(context.Background(), e.identity.ID)
	require.NoError(t, err)
	var pk *session.Credential
	for i := range creds {
		if creds[i].Type == passkey.CredentialPasskey {
			pk = &creds[i]
		}
	}
	require.NotNil(t, pk, "the passkey credential is stored")
	assert.Equal(t, []string{string(key.UserHandle)}, pk.Identifiers)
	assert.Equal(t, "Laptop", e.storedKey(t, passkey.CredentialPasskey, key.ID).DisplayName)
	r = b.do(t, browser, http.MethodGet, "/passkeys/", nil, nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	assert.Len(t, r.json(t)["keys"], 1)

	// The enrolled passkey logs in.
	f := pkAPIFlow(t, b)
	r = submitPasskey(t, a, f.ID, e.assert(t, f), nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	assert.Equal(t, e.identity.ID, r.json(t)["session"].(map[string]any)["identity"].(map[string]any)["id"])

	// A second key (another authenticator: the first holds an excluded
	// key), begun on B and finished by 10 concurrent requests over A and
	// B: exactly one enrols it.
	second := passkeytest.New()
	r = enrol(t, b, browser, "/begin", nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	attestation, key2, err := second.Create(r.body, pkOrigin)
	require.NoError(t, err)
	const n = 10
	replies := make([]reply, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		in := e.cluster[i%2]
		wg.Go(func() {
			<-start
			replies[i] = enrol(t, in, browser, "/finish", finishBody(attestation, "Phone"))
		})
	}
	close(start)
	wg.Wait()
	wins := 0
	for i, r := range replies {
		switch r.status {
		case http.StatusOK:
			wins++
		case http.StatusBadRequest:
			assertNoEnrolment(t, r)
		default:
			t.Errorf("finish %d: %d %s", i, r.status, r.body)
		}
	}
	assert.Equal(t, 1, wins, "finishes that enrolled")
	r = a.do(t, browser, http.MethodGet, "/passkeys/", nil, nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	assert.Len(t, r.json(t)["keys"], 2)
	assert.Equal(t, "Phone", e.storedKey(t, passkey.CredentialPasskey, key2.ID).DisplayName)

	// An enrolment expires with the ceremony timeout, whichever instance
	// finishes it.
	third := passkeytest.New()
	r = enrol(t, a, browser, "/begin", nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	attestation, _, err = third.Create(r.body, pkOrigin)
	require.NoError(t, err)
	e.clock.Advance(passkey.DefaultTimeout)
	assertNoEnrolment(t, enrol(t, b, browser, "/finish", finishBody(attestation, "Late")))
	assert.Zero(t, ceremonies(), "the expired ceremony was taken all the same")
	r = a.do(t, browser, http.MethodGet, "/passkeys/", nil, nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	assert.Len(t, r.json(t)["keys"], 2)
}

func TestCeremonyStore(t *testing.T) {
	t.Run("pgstore", func(t *testing.T) {
		logintest.TestCeremonyStore(t, func(t *testing.T) login.CeremonyStore {
			_, pool := newStore(t)
			return pgstore.NewCeremonyStore(pool)
		})
	})
}

// Of concurrent takes of one ceremony from two instances (two pools),
// exactly one gets it; put and take are one round trip each; a key
// PostgreSQL cannot hold is refused by put and never found.
func TestCeremonyStoreOnPostgres(t *testing.T) {
	ctx := context.Background()
	rt := newRoundTrips()
	schema := freshSchema(t)
	poolA, poolB := newPool(t, schema, rt.install), newPool(t, schema)
	require.NoError(t, pgstore.New(poolA).Migrate(ctx))
	a, b := pgstore.NewCeremonyStore(poolA), pgstore.NewCeremonyStore(poolB)
	now := time.Now().UTC()

	rt.snapshot()
	require.NoError(t, a.PutCeremony(ctx, "k", []byte("data"), now.Add(time.Minute)))
	_, err := a.TakeCeremony(ctx, "k", now)
	require.NoError(t, err)
	assert.Equal(t, map[string]int{"PutCeremony": 1, "TakeCeremony": 1}, without(rt.snapshot(), "ping", "prepare"))

	for round := range 5 {
		key := fmt.Sprintf("round-%d", round)
		require.NoError(t, b.PutCeremony(ctx, key, []byte(key), now.Add(time.Minute)))
		const n = 20
		got := make([][]byte, n)
		errs := make([]error, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			s := []*pgstore.CeremonyStore{a, b}[i%2]
			wg.Go(func() {
				<-start
				got[i], errs[i] = s.TakeCeremony(ctx, key, now)
			})
		}
		close(start)
		wg.Wait()
		wins := 0
		for i, err := range errs {
			if err == nil {
				wins++
				assert.Equal(t, []byte(key), got[i])
			} else {
				assert.ErrorIs(t, err, login.ErrNoCeremony)
			}
		}
		assert.Equal(t, 1, wins, "round %d", round)
	}
	assert.Zero(t, count(t, poolA, "authflow_ceremonies", ""))

	for _, key := range []string{"nul\x00key", "\xff\xfe"} {
		err := a.PutCeremony(ctx, key, []byte("data"), now.Add(time.Minute))
		assert.Error(t, err, "%q", key)
		_, err = a.TakeCeremony(ctx, key, now)
		assert.True(t, errors.Is(err, login.ErrNoCeremony), "%q: %v", key, err)
	}
}

// without returns counts without the given labels.
func without(counts map[string]int, labels ...string) map[string]int {
	for _, l := range labels {
		delete(counts, l)
	}
	return counts
}

// Store.Sweep removes ceremonies expired at now, and keeps the others.
func TestSweepRemovesExpiredCeremonies(t *testing.T) {
	st, pool := newStore(t)
	cs := pgstore.NewCeremonyStore(pool)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	for i := range 3 {
		require.NoError(t, cs.PutCeremony(ctx, fmt.Sprintf("old-%d", i), []byte("x"), now.Add(-time.Duration(i)*time.Minute)))
	}
	require.NoError(t, cs.PutCeremony(ctx, "live", []byte("live"), now.Add(time.Microsecond)))

	n, err := st.Sweep(ctx, now, 2)
	require.NoError(t, err)
	assert.Equal(t, 3, n, "the three expired at or before now")
	assert.Equal(t, 1, count(t, pool, "authflow_ceremonies", ""))
	got, err := cs.TakeCeremony(ctx, "live", now)
	require.NoError(t, err)
	assert.Equal(t, []byte("live"), got)
}
