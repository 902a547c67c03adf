package login_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/login/password"
	"github.com/authflow/authflow/session"
)

// recordingHasher records every encoded hash it is asked to compare against.
type recordingHasher struct {
	password.Hasher
	mu       sync.Mutex
	compared []string
	made     []string
}

func (h *recordingHasher) Hash(ctx context.Context, p []byte) (string, error) {
	enc, err := h.Hasher.Hash(ctx, p)
	h.mu.Lock()
	h.made = append(h.made, enc)
	h.mu.Unlock()
	return enc, err
}

func (h *recordingHasher) Compare(ctx context.Context, p []byte, enc string) error {
	h.mu.Lock()
	h.compared = append(h.compared, enc)
	h.mu.Unlock()
	return h.Hasher.Compare(ctx, p, enc)
}

// TestUnknownIdentifiersRunARealComparison proves the equal-time path
// (CONTRACT Part 1 rule 10) without timing anything: an unknown identifier,
// an identity without a password credential and one whose credential holds
// no hash each cost one comparison against a dummy hash made by the
// configured hasher, like a wrong password for a known identifier, and all
// answer the same.
func TestUnknownIdentifiersRunARealComparison(t *testing.T) {
	hasher := &recordingHasher{}
	e := newEnv(t, func(c *login.Config) {
		hasher.Hasher = password.Bcrypt{Cost: 4}
		c.Hasher = hasher
	})
	e.addIdentityWith("social@example.com", session.Credential{
		Type: session.CredentialOIDC, Identifiers: []string{"google:123"}, Config: json.RawMessage(`{}`)})
	e.addIdentityWith("nohash@example.com", session.Credential{
		Type: session.CredentialPassword, Identifiers: []string{"nohash@example.com"}, Config: json.RawMessage(`{}`)})
	hasher.mu.Lock()
	hasher.made = nil
	hasher.mu.Unlock()

	var bodies []string
	for _, identifier := range []string{"nobody@example.com", "social@example.com", "nohash@example.com", testIdentifier} {
		hasher.mu.Lock()
		hasher.compared = nil
		hasher.mu.Unlock()
		f := e.apiFlow("")
		r := e.submitJSON(e.api(), f.ID, credentials(identifier, "wrong password", ""), nil)
		require.Equal(t, http.StatusBadRequest, r.status, "%s: %s", identifier, r.body)
		got := r.flow(t)
		require.Len(t, got.UI.Messages, 1)
		assert.Equal(t, flow.IDInvalidCredentials, got.UI.Messages[0].ID, identifier)
		bodies = append(bodies, normalizeFlowBody(t, r.body))

		hasher.mu.Lock()
		compared := slices.Clone(hasher.compared)
		hasher.mu.Unlock()
		require.Len(t, compared, 1, "%s: exactly one comparison", identifier)
		if identifier == testIdentifier {
			continue // alice's own stored hash
		}
		assert.True(t, strings.HasPrefix(compared[0], "$2a$04$"), "%s: compared against a hash of the configured hasher, got %q", identifier, compared[0])
	}
	hasher.mu.Lock()
	assert.Len(t, hasher.made, 1, "the dummy hash is made once, by the configured hasher")
	hasher.mu.Unlock()
	for i := 1; i < len(bodies); i++ {
		assert.JSONEq(t, bodies[0], bodies[i], "the same answer for every case but the echoed identifier")
	}
}

// normalizeFlowBody blanks what differs between two flows by design: ids,
// times, the echoed identifier and the CSRF value.
func normalizeFlowBody(t testing.TB, body []byte) string {
	t.Helper()
	var f flow.Flow
	require.NoError(t, json.Unmarshal(body, &f))
	f.ID, f.UI.Action, f.RequestURL = "", "", ""
	f.ExpiresAt, f.IssuedAt, f.CreatedAt, f.UpdatedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	for i := range f.UI.Nodes {
		if f.UI.Nodes[i].Attributes.Name == "identifier" {
			f.UI.Nodes[i].Attributes.Value = "<identifier>"
		}
	}
	b, err := json.Marshal(f)
	require.NoError(t, err)
	return string(b)
}

// BenchmarkEnumerationTiming reports, for argon2id (its defaults) and bcrypt
// (cost 12), the ratio of the median latency of a login with an unknown
// identifier to that of a wrong password for a known one; the target is
// 0.95 to 1.05. Samples of the two cases alternate so that drift affects
// both alike.
//
//	go test ./login -run '^$' -bench EnumerationTiming -benchtime 1x
func BenchmarkEnumerationTiming(b *testing.B) {
	for _, hc := range []struct {
		name   string
		hasher password.Hasher
	}{
		{"hasher=argon2id", password.Argon2id{}},
		{"hasher=bcrypt12", password.Bcrypt{Cost: 12}},
	} {
		b.Run(hc.name, func(b *testing.B) {
			ctx := context.Background()
			ids := session.NewMemoryIdentityStore()
			cred, err := login.NewPasswordCredential(ctx, hc.hasher, testIdentifier, testPassword)
			require.NoError(b, err)
			require.NoError(b, ids.CreateIdentity(ctx, &session.Identity{ID: "8b59d370-e415-441a-9116-b8d780619e54", State: session.StateActive, Traits: json.RawMessage(`{}`)}, cred))
			h, err := login.New(login.Config{
				PublicURL: "https://auth.example.com", LoginUIURL: loginUI, ErrorUIURL: errorUI, DefaultReturnURL: defaultReturn,
				IdentityStore: ids, Hasher: hc.hasher, Logger: discardLogger(), DisableThrottling: true,
			})
			require.NoError(b, err)
			attempt := func(identifier string) time.Duration {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, benchRequest(http.MethodGet, "/self-service/login/api", nil))
				id := flowID(b, w)
				body := `{"method":"password","identifier":"` + identifier + `","password":"a wrong password"}`
				req := benchRequest(http.MethodPost, "/self-service/login?flow="+id, strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				w = httptest.NewRecorder()
				start := time.Now()
				h.ServeHTTP(w, req)
				d := time.Since(start)
				if w.Code != http.StatusBadRequest {
					b.Fatalf("%s: %d %s", identifier, w.Code, w.Body)
				}
				return d
			}
			attempt("warm-up@example.com") // makes the dummy hash once
			const samples = 15
			for b.Loop() {
				var unknown, known []time.Duration
				for range samples {
					unknown = append(unknown, attempt("nobody@example.com"))
					known = append(known, attempt(testIdentifier))
				}
				ratio := float64(median(unknown)) / float64(median(known))
				b.ReportMetric(ratio, "unknown/known")
				b.ReportMetric(float64(median(unknown).Milliseconds()), "unknown-ms")
				b.ReportMetric(float64(median(known).Milliseconds()), "known-ms")
			}
		})
	}
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}
