package password_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/login/password"
)

// knownPassword is the password of every vector in legacyVectors.
const knownPassword = "correct horse"

// legacyVectors are hashes of knownPassword made with tools independent of
// this package: Python's hashlib, hmac and crypt modules (libxcrypt), the
// argon2 reference CLI, Apache htpasswd and OpenSSL. See the comments for
// the generating calls.
var legacyVectors = []struct {
	name    string
	encoded string
}{
	// hashlib.pbkdf2_hmac(digest, pw, b"saltysalt1234567", 1000, l)
	{"pbkdf2-sha1", "$pbkdf2-sha1$i=1000,l=20$c2FsdHlzYWx0MTIzNDU2Nw$7xWNxZVWqobnlp4DtySaSZ5vQEY"},
	{"pbkdf2-sha256", "$pbkdf2-sha256$i=1000,l=32$c2FsdHlzYWx0MTIzNDU2Nw$PFGB7Uh0eLW8kg2WXb+o1EC9QHjzP3mo8hJijCK4GmQ"},
	{"pbkdf2-sha256 key longer than digest", "$pbkdf2-sha256$i=1000,l=40$bG9uZ2VyIGtleSBsZW4hIQ$gGQaUy8ME2UfRd1aHx/ydvTjnnJUCwvY0IitVsLa1y5BsK9+Uj13Kg"},
	{"pbkdf2-sha512", "$pbkdf2-sha512$i=1000,l=64$c2FsdHlzYWx0MTIzNDU2Nw$t2wXQfDiVHHNVuGIzvCbP7TAgaqVGXpNT9yxNJvx2h1yORuf/140I3Q5qCaOtREapZKJm6WD4goyTHuEwL3trw"},
	// sha224 and sha384 mean SHA3-224 and SHA3-384 (hashlib "sha3_224"/"sha3_384").
	{"pbkdf2-sha224 is sha3-224", "$pbkdf2-sha224$i=1000,l=28$c2FsdHlzYWx0MTIzNDU2Nw$fgiZqBm5LMiCKJJGp+80v/qwDafY6o18/8dQZA"},
	{"pbkdf2-sha384 is sha3-384", "$pbkdf2-sha384$i=1000,l=48$c2FsdHlzYWx0MTIzNDU2Nw$WdsfrL4jAbuJY9TaOLozqx0dSHfw/5NULfx985F9OLvz9xMxWbwC+gl63vXUfVz4"},
	// An unknown digest falls back to SHA-256 (the pbkdf2-sha256 vector).
	{"pbkdf2 unknown digest is sha256", "$pbkdf2-sha999$i=1000,l=32$c2FsdHlzYWx0MTIzNDU2Nw$PFGB7Uh0eLW8kg2WXb+o1EC9QHjzP3mo8hJijCK4GmQ"},
	// hashlib.scrypt(pw, salt=b"scryptsalt123456", n=1024, r=8, p=2, dklen=32);
	// ln holds N itself, not log2(N).
	{"scrypt", "$scrypt$ln=1024,r=8,p=2$c2NyeXB0c2FsdDEyMzQ1Ng==$y5Qhe7wGQJ1RiQzodq38USQHMchLS2fXacI0CV08hW0="},
	{"scrypt unpadded", "$scrypt$ln=1024,r=8,p=2$c2NyeXB0c2FsdDEyMzQ1Ng$y5Qhe7wGQJ1RiQzodq38USQHMchLS2fXacI0CV08hW0"},
	// argon2 somesaltsomesalt -i|-id -m 10 -t 2 -p 2 -l 32 -e
	{"argon2i", "$argon2i$v=19$m=1024,t=2,p=2$c29tZXNhbHRzb21lc2FsdA$48IytsVcTYJi+Yq0DzpDlBkKO+6sl8vJPe8eWkaWfRU"},
	{"argon2id", "$argon2id$v=19$m=1024,t=2,p=2$c29tZXNhbHRzb21lc2FsdA$tsO6Y2aSBljG2z0xzqpPrCfUfGL6p4s+3/dK55iDYUs"},
	// argon2 somesaltsomesalt -id -m 12 -t 1 -p 1 -l 16 -e
	{"argon2id 16-byte key", "$argon2id$v=19$m=4096,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$Dw/LoYnxBP2jsXpfC1jaeA"},
	// b64(hashlib.<digest>(pw + salt).digest() + salt), salt b"\x01\x02saltbytes"
	{"SSHA", "{SSHA}lSZLZselQwhKaqWnmlsYUFi9bd0BAnNhbHRieXRlcw=="},
	{"SSHA256", "{SSHA256}Za3nehe7ZDz3H6De/I8BJ5HjRx8VkAqhiiKQuneWx24BAnNhbHRieXRlcw=="},
	{"SSHA512", "{SSHA512}9mrhWy0k0C6vdswDCnyshs9FfZpJmr804HJFvgln0JYN3rHDzzRAdQ9n1RzqSLotVYG18rKVIKW4etY8GxocnwECc2FsdGJ5dGVz"},
	// pattern "{SALT}-{PASSWORD}-{SALT}", salt "s4lt"
	{"sha1 pattern", "$sha1$pf=e1NBTFR9LXtQQVNTV09SRH0te1NBTFR9$czRsdA==$eoFN2fZYc5E76yhNQLEIxCiSz8E="},
	{"sha256 pattern", "$sha256$pf=e1NBTFR9LXtQQVNTV09SRH0te1NBTFR9$czRsdA==$QCygos6b/20Q/EXv670UDPeFbYxosVBorx+dgT54c+0="},
	{"sha512 pattern", "$sha512$pf=e1NBTFR9LXtQQVNTV09SRH0te1NBTFR9$czRsdA==$gy+jUWOtqeeAOYZN7a+SrRiDsEK1bn38BsnKyLg7Xkg0Gob1nGToo4YdlyjIjfM+0PbPXH/X7hH4nbJLzdXafA=="},
	{"sha256 pattern unpadded", "$sha256$pf=e1NBTFR9LXtQQVNTV09SRH0te1NBTFR9$czRsdA$QCygos6b/20Q/EXv670UDPeFbYxosVBorx+dgT54c+0"},
	// b64(hashlib.md5(pw).digest()); pattern "{PASSWORD}{SALT}", salt "NaCl"
	{"md5", "$md5$PLTnMmMfR+brlh80VUt83g=="},
	{"md5 pattern", "$md5$pf=e1BBU1NXT1JEfXtTQUxUfQ==$TmFDbA==$WvNhLLitFNNM0XshzutEnQ=="},
	// b64(hmac.new(b"hmac-secret-key", pw, digest).hexdigest()); md4 by
	// openssl dgst -md4 -hmac hmac-secret-key -provider legacy
	{"hmac-md4", "$hmac-md4$YjYyN2FhZjdiNGI5YWIwNzI1NDJjZTFjNDJjMjc5MGM=$aG1hYy1zZWNyZXQta2V5"},
	{"hmac-md5", "$hmac-md5$ODM5NGU4NmU0ZmMwMjQ3MTA4MjJhNzEwZmI1Y2JiZjE=$aG1hYy1zZWNyZXQta2V5"},
	{"hmac-sha1", "$hmac-sha1$MjA4ZGY2YzEzODJjNTA3M2U2Mjg5ZWM2NmE1NDMwMTgyMTRjMzBiMQ==$aG1hYy1zZWNyZXQta2V5"},
	{"hmac-sha224", "$hmac-sha224$YTllYjFlNmJiZDNhMDE0MDQwMDczMGM0YjI4ODRmNWY2NGQyZTQxYzRkYjM1Y2Y0MmZmNTNlYjU=$aG1hYy1zZWNyZXQta2V5"},
	{"hmac-sha256", "$hmac-sha256$NzQ3MGY0NmNmOGNiY2NlMmNjMzI0MWM2ODI3NDVhZjJkZmQ3N2QzMGE2NGJiNDg2NmMyNDM3NTZjZmQ3YjcwMA==$aG1hYy1zZWNyZXQta2V5"},
	{"hmac-sha384", "$hmac-sha384$YmUyYzA5YmM2MTVjYjRjYmJkYWFiNWEzZDJjZDY4MzIxNWU2OTIzZDcyNzQyNTI0MjQ3YWJjNDliMjlkZjZjOGQ5MmQ5MmJlNjI5ODIyZTdmZDM0MGM5NmE3YWY3NjM5$aG1hYy1zZWNyZXQta2V5"},
	{"hmac-sha512", "$hmac-sha512$MThhMjhjNGNlMmEyOTdjMmY5Y2QxMzAwNWI3Yzc2MGJkMzc0NGY5OWU4M2MzN2M1NzMzZDYxMjgyZGNhMWU3ZWJkMjViNGY2MGYwYzlhYWQzYWRhNWE3MTQ5NWEwNmZiOGZiN2U0NDc4YWQ5OTI3NjM1MmUyYzRkNDU5YjYwNTg=$aG1hYy1zZWNyZXQta2V5"},
	// crypt.crypt(pw, "$1$saltSALT$"), also openssl passwd -1 -salt saltSALT
	{"md5-crypt", "$md5-crypt$saltSALT$8q39QwlgAH5aA1cZXegCu1"},
	// crypt.crypt(pw, "$5$rounds=10000$saltSALTsalt$")
	{"sha256-crypt", "$sha256-crypt$rounds=10000$saltSALTsalt$NPbr0bg0SX8MHE1MZ3RsYitgOE0s.M7bKC/VrLfkUh9"},
	// crypt.crypt(pw, "$6$rounds=5000$saltSALTsalt$"); openssl passwd -6 -salt saltSALTsalt
	{"sha512-crypt", "$sha512-crypt$rounds=5000$saltSALTsalt$XNDsWSjEouakawF6yDX5uu5vBUw1UUiTnZ/fjJDibasrgU1.XQvglq4uWCCiJKWPdEaEppfWCvKWO8iBLGM2e."},
	{"sha512-crypt default rounds", "$sha512-crypt$saltSALTsalt$XNDsWSjEouakawF6yDX5uu5vBUw1UUiTnZ/fjJDibasrgU1.XQvglq4uWCCiJKWPdEaEppfWCvKWO8iBLGM2e."},
	// crypt.crypt(pw, "$2a$04$ABCDEFGHIJKLMNOPQRSTUu") and "$2b$04$abcdefghijklmnopqrstuu"
	{"bcrypt 2a", "$2a$04$ABCDEFGHIJKLMNOPQRSTUu6C6jEMz4jEJoFRTrM10b9xHpc.SH9E6"},
	{"bcrypt 2b", "$2b$04$abcdefghijklmnopqrstuujydOTSfIH/d5oUHpsygqV5X9xJLQc6e"},
	// htpasswd -nbB -C 4 u pw
	{"bcrypt 2y", "$2y$04$L6mL.EogDf5BwOWHHKGHIuWTVLYY6Dbb5f6ygVD8VYQHmxKr2trbi"},
}

func TestCompareKnownVectors(t *testing.T) {
	ctx := context.Background()
	for _, v := range legacyVectors {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			require.NoError(t, password.Compare(ctx, []byte(knownPassword), v.encoded))
			require.ErrorIs(t, password.Compare(ctx, []byte("correct horsE"), v.encoded), password.ErrMismatch)
			require.ErrorIs(t, password.Compare(ctx, nil, v.encoded), password.ErrMismatch)
		})
	}
}
