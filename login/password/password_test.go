package password_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/login/password"
)

// fastArgon2id keeps argon2 cheap in tests.
var fastArgon2id = password.Argon2id{Memory: 1024, Iterations: 1, Parallelism: 1}

// fastBcrypt is bcrypt at its minimum cost.
var fastBcrypt = password.Bcrypt{Cost: 4}

func TestHasherRoundTrip(t *testing.T) {
	ctx := context.Background()
	for name, h := range map[string]password.Hasher{
		"argon2id": fastArgon2id,
		"bcrypt":   fastBcrypt,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			pw := []byte("hunter2 hunter2")
			first, err := h.Hash(ctx, pw)
			require.NoError(t, err)
			second, err := h.Hash(ctx, pw)
			require.NoError(t, err)
			assert.NotEqual(t, first, second, "two hashes of one password must use different salts")

			for _, encoded := range []string{first, second} {
				require.NoError(t, h.Compare(ctx, pw, encoded))
				require.NoError(t, password.Compare(ctx, pw, encoded))
				require.ErrorIs(t, h.Compare(ctx, []byte("hunter2 hunter3"), encoded), password.ErrMismatch)
				require.ErrorIs(t, h.Compare(ctx, nil, encoded), password.ErrMismatch)
				assert.False(t, h.NeedsRehash(encoded), "a fresh hash must not need rehashing")
			}
		})
	}
}

func TestHashEncoding(t *testing.T) {
	ctx := context.Background()

	encoded, err := fastArgon2id.Hash(ctx, []byte("pw"))
	require.NoError(t, err)
	assert.Regexp(t, regexp.MustCompile(`^\$argon2id\$v=19\$m=1024,t=1,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`), encoded)

	encoded, err = password.Argon2id{Memory: 1024, Iterations: 1, Parallelism: 1, SaltLength: 8, KeyLength: 16}.Hash(ctx, []byte("pw"))
	require.NoError(t, err)
	assert.Regexp(t, regexp.MustCompile(`^\$argon2id\$v=19\$m=1024,t=1,p=1\$[A-Za-z0-9+/]{11}\$[A-Za-z0-9+/]{22}$`), encoded)

	encoded, err = fastBcrypt.Hash(ctx, []byte("pw"))
	require.NoError(t, err)
	assert.Regexp(t, regexp.MustCompile(`^\$2a\$04\$[./A-Za-z0-9]{53}$`), encoded)
}

func TestArgon2idDefaults(t *testing.T) {
	encoded, err := password.Argon2id{}.Hash(context.Background(), []byte("pw"))
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(encoded, "$argon2id$v=19$m=65536,t=3,p=4$"), encoded)
	assert.Regexp(t, regexp.MustCompile(`\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`), encoded, "16-byte salt, 32-byte key")
}

func TestHashParameters(t *testing.T) {
	ctx := context.Background()
	for name, h := range map[string]password.Hasher{
		"argon2id memory":      password.Argon2id{Memory: 2_000_000, Iterations: 1, Parallelism: 1},
		"argon2id iterations":  password.Argon2id{Memory: 1024, Iterations: 11, Parallelism: 1},
		"argon2id parallelism": password.Argon2id{Memory: 1024, Iterations: 1, Parallelism: 17},
		"argon2id salt":        password.Argon2id{Memory: 1024, Iterations: 1, Parallelism: 1, SaltLength: 4},
		"argon2id key":         password.Argon2id{Memory: 1024, Iterations: 1, Parallelism: 1, KeyLength: 2},
		"bcrypt cost high":     password.Bcrypt{Cost: 16},
		"bcrypt cost low":      password.Bcrypt{Cost: 3},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := h.Hash(ctx, []byte("pw"))
			require.ErrorIs(t, err, password.ErrParameters)
		})
	}
}

func TestCompareBounds(t *testing.T) {
	ctx := context.Background()
	bcrypt4 := "$2b$04$abcdefghijklmnopqrstuujydOTSfIH/d5oUHpsygqV5X9xJLQc6e"
	tests := []struct {
		name    string
		encoded string
		want    error
	}{
		{"argon2id memory", "$argon2id$v=19$m=2000000,t=2,p=2$c29tZXNhbHRzb21lc2FsdA$tsO6Y2aSBljG2z0xzqpPrCfUfGL6p4s+3/dK55iDYUs", password.ErrParameters},
		{"argon2id memory overflow", "$argon2id$v=19$m=99999999999999999999999,t=2,p=2$c29tZXNhbHRzb21lc2FsdA$tsO6Y2aSBljG2z0xzqpPrCfUfGL6p4s+3/dK55iDYUs", password.ErrParameters},
		{"argon2id memory zero", "$argon2id$v=19$m=0,t=2,p=2$c29tZXNhbHRzb21lc2FsdA$tsO6Y2aSBljG2z0xzqpPrCfUfGL6p4s+3/dK55iDYUs", password.ErrParameters},
		{"argon2id iterations", "$argon2id$v=19$m=1024,t=11,p=2$c29tZXNhbHRzb21lc2FsdA$tsO6Y2aSBljG2z0xzqpPrCfUfGL6p4s+3/dK55iDYUs", password.ErrParameters},
		{"argon2id parallelism", "$argon2id$v=19$m=1024,t=2,p=17$c29tZXNhbHRzb21lc2FsdA$tsO6Y2aSBljG2z0xzqpPrCfUfGL6p4s+3/dK55iDYUs", password.ErrParameters},
		{"argon2i memory", "$argon2i$v=19$m=2000000,t=2,p=2$c29tZXNhbHRzb21lc2FsdA$48IytsVcTYJi+Yq0DzpDlBkKO+6sl8vJPe8eWkaWfRU", password.ErrParameters},
		{"argon2id version 16", "$argon2id$v=16$m=1024,t=2,p=2$c29tZXNhbHRzb21lc2FsdA$tsO6Y2aSBljG2z0xzqpPrCfUfGL6p4s+3/dK55iDYUs", password.ErrUnknownFormat},
		{"argon2id no version", "$argon2id$m=1024,t=2,p=2$c29tZXNhbHRzb21lc2FsdA$tsO6Y2aSBljG2z0xzqpPrCfUfGL6p4s+3/dK55iDYUs", password.ErrUnknownFormat},
		{"argon2id empty hash", "$argon2id$v=19$m=1024,t=2,p=2$c29tZXNhbHRzb21lc2FsdA$", password.ErrUnknownFormat},
		{"argon2id bad base64", "$argon2id$v=19$m=1024,t=2,p=2$c29tZXNhbHRzb21lc2FsdA$!!!!", password.ErrUnknownFormat},
		{"argon2id bad parameter", "$argon2id$v=19$m=wat,t=2,p=2$c29tZXNhbHRzb21lc2FsdA$tsO6Y2aSBljG2z0xzqpPrCfUfGL6p4s+3/dK55iDYUs", password.ErrUnknownFormat},
		{"argon2id parameters reordered", "$argon2id$v=19$t=2,m=1024,p=2$c29tZXNhbHRzb21lc2FsdA$tsO6Y2aSBljG2z0xzqpPrCfUfGL6p4s+3/dK55iDYUs", password.ErrUnknownFormat},
		{"argon2d", "$argon2d$v=19$m=1024,t=2,p=2$c29tZXNhbHRzb21lc2FsdA$tsO6Y2aSBljG2z0xzqpPrCfUfGL6p4s+3/dK55iDYUs", password.ErrUnknownFormat},
		{"bcrypt cost 16", strings.Replace(bcrypt4, "$04$", "$16$", 1), password.ErrParameters},
		{"bcrypt cost 31", strings.Replace(bcrypt4, "$04$", "$31$", 1), password.ErrParameters},
		{"bcrypt cost 99", strings.Replace(bcrypt4, "$04$", "$99$", 1), password.ErrParameters},
		{"bcrypt truncated", bcrypt4[:40], password.ErrUnknownFormat},
		{"pbkdf2 zero iterations", "$pbkdf2-sha256$i=0,l=32$c2FsdHlzYWx0MTIzNDU2Nw$PFGB7Uh0eLW8kg2WXb+o1EC9QHjzP3mo8hJijCK4GmQ", password.ErrParameters},
		{"pbkdf2 too many iterations", "$pbkdf2-sha256$i=10000001,l=32$c2FsdHlzYWx0MTIzNDU2Nw$PFGB7Uh0eLW8kg2WXb+o1EC9QHjzP3mo8hJijCK4GmQ", password.ErrParameters},
		{"pbkdf2 negative iterations", "$pbkdf2-sha256$i=-1,l=32$c2FsdHlzYWx0MTIzNDU2Nw$PFGB7Uh0eLW8kg2WXb+o1EC9QHjzP3mo8hJijCK4GmQ", password.ErrUnknownFormat},
		{"pbkdf2 empty hash", "$pbkdf2-sha256$i=1000,l=32$c2FsdHlzYWx0MTIzNDU2Nw$", password.ErrUnknownFormat},
		{"pbkdf2 non-sha digest", "$pbkdf2-md5$i=1000,l=32$c2FsdHlzYWx0MTIzNDU2Nw$PFGB7Uh0eLW8kg2WXb+o1EC9QHjzP3mo8hJijCK4GmQ", password.ErrUnknownFormat},
		{"scrypt N too big", "$scrypt$ln=262144,r=8,p=1$c2NyeXB0c2FsdDEyMzQ1Ng==$4gSxUqTVQ7ICiAcFMhGdqLXg6MU71oPdS/+sUqFntrM=", password.ErrParameters},
		{"scrypt N not a power of two", "$scrypt$ln=16000,r=8,p=1$c2NyeXB0c2FsdDEyMzQ1Ng==$4gSxUqTVQ7ICiAcFMhGdqLXg6MU71oPdS/+sUqFntrM=", password.ErrParameters},
		{"scrypt N one", "$scrypt$ln=1,r=8,p=1$c2NyeXB0c2FsdDEyMzQ1Ng==$4gSxUqTVQ7ICiAcFMhGdqLXg6MU71oPdS/+sUqFntrM=", password.ErrParameters},
		{"scrypt r too big", "$scrypt$ln=16384,r=9,p=1$c2NyeXB0c2FsdDEyMzQ1Ng==$4gSxUqTVQ7ICiAcFMhGdqLXg6MU71oPdS/+sUqFntrM=", password.ErrParameters},
		{"scrypt p too big", "$scrypt$ln=16384,r=8,p=11$c2NyeXB0c2FsdDEyMzQ1Ng==$4gSxUqTVQ7ICiAcFMhGdqLXg6MU71oPdS/+sUqFntrM=", password.ErrParameters},
		{"scrypt empty hash", "$scrypt$ln=16384,r=8,p=1$c2NyeXB0c2FsdDEyMzQ1Ng==$", password.ErrUnknownFormat},
		{"SSHA without salt", "{SSHA}lSZLZselQwhKaqWnmlsYUFi9bd0=", password.ErrUnknownFormat},
		{"sha256 wrong digest length", "$sha256$pf=e1NBTFR9LXtQQVNTV09SRH0te1NBTFR9$czRsdA==$eoFN2fZYc5E76yhNQLEIxCiSz8E=", password.ErrUnknownFormat},
		{"sha1 without pattern", "$sha1$eoFN2fZYc5E76yhNQLEIxCiSz8E=", password.ErrUnknownFormat},
		{"md5 empty", "$md5$", password.ErrUnknownFormat},
		{"hmac not hex", "$hmac-md5$bm90IGhleA==$aG1hYy1zZWNyZXQta2V5", password.ErrUnknownFormat},
		{"hmac unknown digest", "$hmac-sha3$ODM5NGU4NmU0ZmMwMjQ3MTA4MjJhNzEwZmI1Y2JiZjE=$aG1hYy1zZWNyZXQta2V5", password.ErrUnknownFormat},
		{"sha512-crypt bad rounds", "$sha512-crypt$rounds=many$saltSALTsalt$XNDsWSjEouakawF6yDX5uu5vBUw1UUiTnZ/fjJDibasrgU1.XQvglq4uWCCiJKWPdEaEppfWCvKWO8iBLGM2e.", password.ErrUnknownFormat},
		{"sha512-crypt too many rounds", "$sha512-crypt$rounds=999999999$saltSALTsalt$XNDsWSjEouakawF6yDX5uu5vBUw1UUiTnZ/fjJDibasrgU1.XQvglq4uWCCiJKWPdEaEppfWCvKWO8iBLGM2e.", password.ErrParameters},
		{"md5-crypt without hash", "$md5-crypt$saltSALT", password.ErrUnknownFormat},
		{"md5-crypt empty", "$md5-crypt$", password.ErrUnknownFormat},
		{"sha256-crypt truncated hash", "$sha256-crypt$rounds=10000$saltSALTsalt$", password.ErrMismatch},
		{"firebase scrypt", "$firescrypt$ln=14,r=8,p=1$c2FsdA==$aGFzaA==$Bw==$c2lnbmVy", password.ErrUnknownFormat},
		{"unknown prefix", "$unknown$abc", password.ErrUnknownFormat},
		{"empty", "", password.ErrUnknownFormat},
		{"garbage", "not a hash at all", password.ErrUnknownFormat},
		{"dollar only", "$", password.ErrUnknownFormat},
		{"plain text", "correct horse", password.ErrUnknownFormat},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := password.Compare(ctx, []byte(knownPassword), tt.encoded)
			require.ErrorIs(t, err, tt.want)
		})
	}
}

func TestBcryptLongPasswords(t *testing.T) {
	ctx := context.Background()
	pw72 := bytes.Repeat([]byte("A"), 72)
	pw80 := bytes.Repeat([]byte("A"), 80)
	// crypt.crypt("A"*72, "$2b$04$abcdefghijklmnopqrstuu")
	encoded := "$2b$04$abcdefghijklmnopqrstuusBdtCq5VHp1ZWh/QwIMafig7GoIpK9C"

	require.NoError(t, password.Compare(ctx, pw72, encoded))
	require.ErrorIs(t, password.Compare(ctx, pw80, encoded), password.ErrMismatch,
		"bcrypt would ignore bytes past 72; such passwords must never match")

	_, err := fastBcrypt.Hash(ctx, pw72[:73-1])
	require.NoError(t, err)
	_, err = fastBcrypt.Hash(ctx, append(pw72, 'A'))
	require.ErrorIs(t, err, password.ErrTooLong)
	_, err = fastBcrypt.Hash(ctx, pw80)
	require.ErrorIs(t, err, password.ErrTooLong)
}

func TestNeedsRehash(t *testing.T) {
	const (
		// argon2 CLI: m=1024, t=2, p=2, 32-byte key.
		argon2id = "$argon2id$v=19$m=1024,t=2,p=2$c29tZXNhbHRzb21lc2FsdA$tsO6Y2aSBljG2z0xzqpPrCfUfGL6p4s+3/dK55iDYUs"
		argon2i  = "$argon2i$v=19$m=1024,t=2,p=2$c29tZXNhbHRzb21lc2FsdA$48IytsVcTYJi+Yq0DzpDlBkKO+6sl8vJPe8eWkaWfRU"
		pbkdf2   = "$pbkdf2-sha256$i=1000,l=32$c2FsdHlzYWx0MTIzNDU2Nw$PFGB7Uh0eLW8kg2WXb+o1EC9QHjzP3mo8hJijCK4GmQ"
		// crypt.crypt(pw, "$2b$<cost>$abcdefghijklmnopqrstuu")
		bcrypt10 = "$2b$10$abcdefghijklmnopqrstuu23JPZtHcGhwXSF41f93o/7vBdDut3Xu"
		bcrypt12 = "$2b$12$abcdefghijklmnopqrstuuFDJRuYeKkCzo3Wy7h8SxhBSHBAHiPK2"
	)
	tests := []struct {
		name    string
		hasher  password.Hasher
		encoded string
		want    bool
	}{
		{"argon2id: pbkdf2", fastArgon2id, pbkdf2, true},
		{"argon2id: argon2i", fastArgon2id, argon2i, true},
		{"argon2id: bcrypt", fastArgon2id, bcrypt12, true},
		{"argon2id: stronger", fastArgon2id, argon2id, false},
		{"argon2id: equal", password.Argon2id{Memory: 1024, Iterations: 2, Parallelism: 2, KeyLength: 32}, argon2id, false},
		{"argon2id: weaker memory", password.Argon2id{Memory: 2048, Iterations: 2, Parallelism: 2}, argon2id, true},
		{"argon2id: fewer iterations", password.Argon2id{Memory: 1024, Iterations: 3, Parallelism: 2}, argon2id, true},
		{"argon2id: less parallelism", password.Argon2id{Memory: 1024, Iterations: 2, Parallelism: 4}, argon2id, true},
		{"argon2id: shorter key", password.Argon2id{Memory: 1024, Iterations: 2, Parallelism: 2, KeyLength: 64}, argon2id, true},
		{"argon2id: defaults", password.Argon2id{}, argon2id, true},
		{"argon2id: malformed", fastArgon2id, argon2id[:40], true},
		{"argon2id: empty", fastArgon2id, "", true},
		{"bcrypt: lower cost", password.Bcrypt{Cost: 12}, bcrypt10, true},
		{"bcrypt: equal cost", password.Bcrypt{Cost: 12}, bcrypt12, false},
		{"bcrypt: higher cost", password.Bcrypt{Cost: 10}, bcrypt12, false},
		{"bcrypt: default cost", password.Bcrypt{}, bcrypt12, false},
		{"bcrypt: default cost, lower", password.Bcrypt{}, bcrypt10, true},
		{"bcrypt: argon2id", password.Bcrypt{Cost: 4}, argon2id, true},
		{"bcrypt: malformed", password.Bcrypt{Cost: 4}, bcrypt12[:30], true},
		{"bcrypt: garbage", password.Bcrypt{Cost: 4}, "garbage", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.hasher.NeedsRehash(tt.encoded))
		})
	}
}

func TestCanceledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()

	for _, v := range legacyVectors[:3] {
		require.ErrorIs(t, password.Compare(ctx, []byte(knownPassword), v.encoded), context.Canceled)
	}
	require.ErrorIs(t, password.Compare(ctx, []byte(knownPassword), "garbage"), context.Canceled)
	for name, h := range map[string]password.Hasher{"argon2id": fastArgon2id, "bcrypt": fastBcrypt} {
		_, err := h.Hash(ctx, []byte("pw"))
		require.ErrorIs(t, err, context.Canceled, name)
		require.ErrorIs(t, h.Compare(ctx, []byte(knownPassword), legacyVectors[0].encoded), context.Canceled, name)
	}
}

func TestConcurrentUse(t *testing.T) {
	ctx := context.Background()
	encoded, err := fastArgon2id.Hash(ctx, []byte("pw"))
	require.NoError(t, err)
	for i := range 8 {
		t.Run("", func(t *testing.T) {
			t.Parallel()
			if i%2 == 0 {
				assert.NoError(t, fastArgon2id.Compare(ctx, []byte("pw"), encoded))
			} else {
				_, err := fastArgon2id.Hash(ctx, []byte("pw"))
				assert.NoError(t, err)
			}
		})
	}
}

func BenchmarkArgon2idDefault(b *testing.B) {
	ctx := context.Background()
	pw := []byte("correct horse battery staple")
	encoded, err := password.Argon2id{}.Hash(ctx, pw)
	require.NoError(b, err)
	for b.Loop() {
		if err := password.Compare(ctx, pw, encoded); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBcrypt12(b *testing.B) {
	ctx := context.Background()
	// crypt.crypt("correct horse", "$2b$12$abcdefghijklmnopqrstuu")
	const encoded = "$2b$12$abcdefghijklmnopqrstuuFDJRuYeKkCzo3Wy7h8SxhBSHBAHiPK2"
	pw := []byte(knownPassword)
	for b.Loop() {
		if err := password.Compare(ctx, pw, encoded); err != nil {
			b.Fatal(err)
		}
	}
}

func TestCompareRefusesCostlyInputs(t *testing.T) {
	ctx := context.Background()
	// A crypt(3) hash costs more the longer the password; long ones never
	// match, as with bcrypt over 72 bytes.
	long := strings.Repeat("p", 257)
	enc := "$sha512-crypt$rounds=5000$saltSALTsalt$XNDsWSjEouakawF6yDX5uu5vBUw1UUiTnZ/fjJDibasrgU1.XQvglq4uWCCiJKWPdEaEppfWCvKWO8iBLGM2e."
	assert.ErrorIs(t, password.Compare(ctx, []byte(long), enc), password.ErrMismatch)

	// A PBKDF2 key longer than 64 bytes multiplies the work by its blocks.
	key := base64.RawStdEncoding.EncodeToString(make([]byte, 65))
	salt := base64.RawStdEncoding.EncodeToString([]byte("somesalt"))
	assert.ErrorIs(t, password.Compare(ctx, []byte("pw"), "$pbkdf2-sha256$i=1000,l=65$"+salt+"$"+key), password.ErrParameters)
}
