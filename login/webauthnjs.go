package login

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	_ "embed" // for webAuthnJS
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"time"
)

// webAuthnJSPath is the route of the WebAuthn and passkey script.
const webAuthnJSPath = "/.well-known/ory/webauthn.js"

// webAuthnJS is the script served at webAuthnJSPath: the helpers
// (oryPasskeyLogin, oryWebAuthnLogin, ...) that UIs written for Kratos call
// from the onclick and onload attributes of passkey and webauthn nodes.
//
//go:embed webauthn.js
var webAuthnJS []byte

// The script's digests, computed once from the embedded bytes: the
// Subresource Integrity value of the script node, the version in its src
// (which lets the script be cached for a year: new bytes, new URL), and
// the ETag.
var (
	webAuthnJSIntegrity = subresourceIntegrity(webAuthnJS)
	webAuthnJSVersion   = scriptVersion(webAuthnJS)
	webAuthnJSETag      = `"` + webAuthnJSVersion + `"`
)

// subresourceIntegrity is the integrity attribute that lets a browser run
// b only if it is exactly those bytes: "sha512-" and the standard base64 of
// their SHA-512.
func subresourceIntegrity(b []byte) string {
	sum := sha512.Sum512(b)
	return "sha512-" + base64.StdEncoding.EncodeToString(sum[:])
}

// scriptVersion is the first 16 hex digits of the SHA-256 of b.
func scriptVersion(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// serveWebAuthnJS answers GET and HEAD of webAuthnJSPath with the script.
// Unlike every other route it is public and cacheable: it is the same for
// every client and carries no secret, so it replaces the no-cache headers
// ServeHTTP set with a year-long immutable Cache-Control (safe because the
// script node's src carries the script's version), and it allows every
// origin (Access-Control-Allow-Origin: *), which a UI on another origin
// needs to run it, since the script node asks for crossorigin="anonymous"
// (Kratos omits the header, so there such a UI's browser refuses the
// script). http.ServeContent answers If-None-Match with 304 and HEAD
// without a body.
func serveWebAuthnJS(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Del("Vary") // the same bytes whatever the cookies
	h.Set("Content-Type", "text/javascript; charset=utf-8")
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("ETag", webAuthnJSETag)
	http.ServeContent(w, r, "webauthn.js", time.Time{}, bytes.NewReader(webAuthnJS))
}
