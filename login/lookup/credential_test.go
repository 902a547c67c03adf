package lookup_test

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/internal/uuid"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/login/lookup"
	"github.com/authflow/authflow/session"
)

var codePattern = regexp.MustCompile(`^[a-z0-9]{8}$`)

// TestNewCodes: 12 distinct codes of 8 characters of [a-z0-9], as Kratos.
func TestNewCodes(t *testing.T) {
	codes, err := lookup.NewCodes()
	require.NoError(t, err)
	require.Len(t, codes, 12)
	seen := map[string]bool{}
	for _, c := range codes {
		assert.Regexp(t, codePattern, c)
		assert.False(t, seen[c], "duplicate %q", c)
		seen[c] = true
	}
}

// TestNewCodesUniform: every character of the alphabet is drawn about
// equally often (rejection sampling leaves no bias towards a-d, which a
// plain byte%36 would favour by 1/7). 200 sets are 19 200 characters,
// ~533 per character with a standard deviation of ~23; the bound is ±25%.
func TestNewCodesUniform(t *testing.T) {
	counts := map[rune]int{}
	total := 0
	for range 200 {
		codes, err := lookup.NewCodes()
		require.NoError(t, err)
		for _, c := range codes {
			for _, r := range c {
				counts[r]++
				total++
			}
		}
	}
	require.Len(t, counts, 36)
	want := float64(total) / 36
	for r, n := range counts {
		assert.InDelta(t, want, float64(n), want/4, "character %q", r)
	}
}

// TestStoredConfig: the stored config holds no code in clear, only one
// salt, the argon2id parameters and a hash per code; two credentials of
// the same codes share neither salt nor any hash.
func TestStoredConfig(t *testing.T) {
	a, err := lookup.NewCredential("id-a", testCodes)
	require.NoError(t, err)
	b, err := lookup.NewCredential("id-b", testCodes)
	require.NoError(t, err)

	assert.Equal(t, session.CredentialLookup, a.Type)
	assert.Equal(t, []string{"id-a"}, a.Identifiers)
	for _, c := range testCodes {
		assert.NotContains(t, string(a.Config), c)
		assert.NotContains(t, strings.ToLower(string(a.Config)), c)
	}

	type stored struct {
		Algorithm string `json:"algorithm"`
		Time      int    `json:"time"`
		MemoryKiB int    `json:"memory_kib"`
		Threads   int    `json:"threads"`
		Salt      []byte `json:"salt"`
		Codes     []struct {
			Hash   []byte  `json:"hash"`
			UsedAt *string `json:"used_at"`
		} `json:"recovery_codes"`
	}
	var sa, sb stored
	require.NoError(t, json.Unmarshal(a.Config, &sa))
	require.NoError(t, json.Unmarshal(b.Config, &sb))
	assert.Equal(t, "argon2id", sa.Algorithm)
	assert.Equal(t, 1, sa.Time)
	assert.Equal(t, 19*1024, sa.MemoryKiB)
	assert.Equal(t, 1, sa.Threads)
	assert.Len(t, sa.Salt, 16)
	require.Len(t, sa.Codes, len(testCodes))
	assert.NotEqual(t, sa.Salt, sb.Salt)
	hashes := map[string]bool{}
	for i := range sa.Codes {
		assert.Len(t, sa.Codes[i].Hash, 32)
		assert.Nil(t, sa.Codes[i].UsedAt)
		hashes[string(sa.Codes[i].Hash)] = true
	}
	for i := range sb.Codes {
		assert.False(t, hashes[string(sb.Codes[i].Hash)], "hash %d of b also in a", i)
		hashes[string(sb.Codes[i].Hash)] = true
	}
	assert.Len(t, hashes, 2*len(testCodes))
}

// TestUsedAt: a consumed code is marked used at the login's second (UTC),
// and only that code.
func TestUsedAt(t *testing.T) {
	e := newEnv(t)
	e.useCode(testCodes[2])
	var stored struct {
		Codes []struct {
			UsedAt *string `json:"used_at"`
		} `json:"recovery_codes"`
	}
	require.NoError(t, json.Unmarshal(e.credential(e.identity.ID).Config, &stored))
	for i, c := range stored.Codes {
		if i == 2 {
			require.NotNil(t, c.UsedAt)
			assert.Equal(t, "2026-12-03T07:28:12Z", *c.UsedAt)
		} else {
			assert.Nil(t, c.UsedAt, "code %d", i)
		}
	}
}

// TestNewCredentialRefuses: what NewCredential will not store.
func TestNewCredentialRefuses(t *testing.T) {
	for _, tt := range []struct {
		name  string
		id    string
		codes []string
	}{
		{"no identity", "", testCodes},
		{"no codes", "id", nil},
		{"empty code", "id", []string{"abcd1234", ""}},
		{"code too long", "id", []string{strings.Repeat("a", 65)}},
		{"duplicate", "id", []string{"abcd1234", "abcd1234"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := lookup.NewCredential(tt.id, tt.codes)
			assert.Error(t, err)
		})
	}
}

// TestImportKratos: both shapes of Kratos' lookup_secret config import;
// used codes stay used; the imported codes step up through the handler.
func TestImportKratos(t *testing.T) {
	for _, tt := range []struct {
		name      string
		config    string
		remaining int
		used      string // "" when none is used
		unused    string
	}{
		{
			name:      "admin export",
			config:    `{"recovery_codes":[{"code":"g01exu82","used_at":null},{"code":"a7rmfz0q","used_at":"2026-12-03T07:28:12Z"},{"code":"kx2hbdw5"}]}`,
			remaining: 2, used: "a7rmfz0q", unused: "kx2hbdw5",
		},
		{
			name:      "admin import",
			config:    `{"codes":[{"code":"g01exu82"},{"code":"kx2hbdw5"}]}`,
			remaining: 2, unused: "kx2hbdw5",
		},
		{
			name:      "zero used_at is unused",
			config:    `{"recovery_codes":[{"code":"kx2hbdw5","used_at":"0001-01-01T00:00:00Z"}]}`,
			remaining: 1, unused: "kx2hbdw5",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			id := uuid.New()
			cred, err := lookup.ImportKratos(id, json.RawMessage(tt.config))
			require.NoError(t, err)
			assert.NotContains(t, string(cred.Config), tt.unused)
			n, err := lookup.Remaining(cred)
			require.NoError(t, err)
			assert.Equal(t, tt.remaining, n)
			e.addIdentity(id, "imported@example.com", cred)

			token := tokenOf(t, e.loginAPI("imported@example.com"))
			f := e.stepUpAPI(token)
			if tt.used != "" {
				r := e.submitCode(token, f.ID, tt.used)
				require.Equal(t, http.StatusBadRequest, r.Status, "body: %s", r.Body)
				assert.Equal(t, []int{flow.IDBackupCodeUsed}, messageIDs(r.Flow(t)))
			}
			r := e.submitCode(token, f.ID, tt.unused)
			require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
			assert.Equal(t, tt.remaining-1, e.remaining(id))
		})
	}
}

// TestImportKratosRefuses: what ImportKratos will not import.
func TestImportKratosRefuses(t *testing.T) {
	for name, config := range map[string]string{
		"not JSON":     `{"recovery_codes":`,
		"no codes":     `{"recovery_codes":[]}`,
		"empty object": `{}`,
		"both keys":    `{"recovery_codes":[{"code":"a"}],"codes":[{"code":"b"}]}`,
		"empty code":   `{"codes":[{"code":""}]}`,
		"bad used_at":  `{"recovery_codes":[{"code":"a","used_at":"yesterday"}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := lookup.ImportKratos("id", json.RawMessage(config))
			assert.Error(t, err)
		})
	}
}

// TestRemaining counts unused codes as they are used, and refuses other
// credentials.
func TestRemaining(t *testing.T) {
	e := newEnv(t)
	assert.Equal(t, 12, e.remaining(e.identity.ID))
	e.useCode(testCodes[0])
	e.useCode(testCodes[11])
	assert.Equal(t, 10, e.remaining(e.identity.ID))

	_, err := lookup.Remaining(session.Credential{Type: session.CredentialPassword, Config: json.RawMessage(`{"hashed_password":"x"}`)})
	assert.Error(t, err, "a password credential")
	_, err = lookup.Remaining(session.Credential{Type: session.CredentialLookup, Config: json.RawMessage(`{"recovery_codes":[{"code":"g01exu82"}]}`)})
	assert.Error(t, err, "Kratos' clear config stored without ImportKratos")
}

// TestUnreadableCredential: a lookup credential the package cannot read
// (here Kratos' clear config stored as it is) makes Nodes fail rather than
// hide the identity's second factor, and parameters out of bounds are
// refused before anything is hashed.
func TestUnreadableCredential(t *testing.T) {
	m, err := lookup.New(lookup.Config{})
	require.NoError(t, err)
	good := codesCredential(t, "id")
	for name, config := range map[string]string{
		"Kratos clear config": `{"recovery_codes":[{"code":"g01exu82","used_at":null}]}`,
		"huge memory":         strings.Replace(string(good.Config), `"memory_kib":19456`, `"memory_kib":4194304`, 1),
		"no salt":             `{"algorithm":"argon2id","time":1,"memory_kib":19456,"threads":1,"salt":"","recovery_codes":[]}`,
		"not JSON":            `[`,
	} {
		t.Run(name, func(t *testing.T) {
			req := &login.FlowRequest{
				Flow:        &flow.Flow{RequestedAAL: flow.AAL2},
				Identity:    &session.Identity{ID: "id"},
				Credentials: []session.Credential{{Type: session.CredentialLookup, Identifiers: []string{"id"}, Config: json.RawMessage(config)}},
			}
			_, err := m.Nodes(context.Background(), req)
			assert.Error(t, err)
		})
	}
}

// TestNew: the zero Config works; a negative bound is refused.
func TestNew(t *testing.T) {
	m, err := lookup.New(lookup.Config{})
	require.NoError(t, err)
	assert.Equal(t, "lookup_secret", m.ID())
	assert.Equal(t, flow.AAL2, m.AAL())
	_, err = lookup.New(lookup.Config{MaxConcurrentHashes: -1})
	assert.Error(t, err)
}

// BenchmarkHash measures one argon2id hash with the stored parameters:
// NewCredential of one code is a salt and one hash (the cost quoted in
// credential.go, and what a submission costs).
func BenchmarkHash(b *testing.B) {
	for b.Loop() {
		if _, err := lookup.NewCredential("id", []string{"g01exu82"}); err != nil {
			b.Fatal(err)
		}
	}
}
