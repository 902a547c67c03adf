package login_test

import (
	"os/exec"
	"strings"
	"testing"
)

// Package login imports no method's library: hosts that use the password
// method alone do not build WebAuthn, OTP, mail or OpenID Connect code.
func TestLoginImportsNoMethodLibrary(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not on PATH")
	}
	out, err := exec.Command(goTool, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, forbidden := range []string{"go-webauthn", "pquerna/otp", "go-mail", "go-smtp", "go-oidc", "oauth2", "fxamacker/cbor"} {
		for _, dep := range strings.Fields(string(out)) {
			if strings.Contains(dep, forbidden) {
				t.Errorf("package login depends on %s", dep)
			}
		}
	}
}
