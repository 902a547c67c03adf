package login

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
)

// newSessionToken returns a new session token: 256 bits from crypto/rand,
// URL-safe base64 without padding (43 characters). It is the only place
// session tokens are made (CONTRACT Part 1 rule 14).
func newSessionToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+).
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// hashToken returns the SHA-256 of a session token, hex-encoded: the only
// form in which stores see tokens, so a leaked store yields no usable
// session.
func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// logoutToken derives the logout token of a session token: unpadded
// base64url of SHA-256 over "authflow-logout:" followed by the session
// token. It is derived, never stored.
func logoutToken(sessionToken string) string {
	sum := sha256.Sum256([]byte("authflow-logout:" + sessionToken))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// logoutTokenMatches reports, in constant time, whether given is the logout
// token of sessionToken.
func logoutTokenMatches(given, sessionToken string) bool {
	want := logoutToken(sessionToken)
	return subtle.ConstantTimeCompare([]byte(given), []byte(want)) == 1
}
