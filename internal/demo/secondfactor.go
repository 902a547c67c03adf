package demo

import (
	"context"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/login/lookup"
	"github.com/authflow/authflow/login/totp"
	"github.com/authflow/authflow/session"
)

// parseTOTPSecret checks a -totp-secret value: base32 (RFC 4648), read as
// authenticator apps read it (surrounding space, lower case and missing
// padding are fine). It returns the secret upper-cased without padding,
// "" for "".
func parseTOTPSecret(v string) (string, error) {
	s := strings.TrimRight(strings.ToUpper(strings.TrimSpace(v)), "=")
	if s == "" {
		return "", nil
	}
	b, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(s)
	if err != nil || len(b) == 0 {
		return "", fmt.Errorf("-totp-secret: not a base32 secret (A-Z and 2-7, such as JBSWY3DPEHPK3PXP)")
	}
	return s, nil
}

// parseLookupCodes splits a -lookup-codes value "a,b,c" into its codes,
// refusing empty and repeated ones; "" is none. Codes are kept verbatim
// apart from surrounding space: logins compare them exactly.
func parseLookupCodes(v string) ([]string, error) {
	if strings.TrimSpace(v) == "" {
		return nil, nil
	}
	var codes []string
	for c := range strings.SplitSeq(v, ",") {
		c = strings.TrimSpace(c)
		switch {
		case c == "":
			return nil, fmt.Errorf("-lookup-codes %q: empty code (want a,b,c)", v)
		case slices.Contains(codes, c):
			return nil, fmt.Errorf("-lookup-codes %q: code %q given twice", v, c)
		}
		codes = append(codes, c)
	}
	return codes, nil
}

// totpURL is the otpauth URL of a TOTP key as Kratos stores it
// (credentials.totp.config.totp_url): SHA1, 6 digits, 30 s.
func totpURL(issuer, account, secret string) string {
	q := url.Values{
		"algorithm": {"SHA1"},
		"digits":    {"6"},
		"issuer":    {issuer},
		"period":    {"30"},
		"secret":    {secret},
	}
	return (&url.URL{Scheme: "otpauth", Host: "totp", Path: "/" + issuer + ":" + account, RawQuery: q.Encode()}).String()
}

// SeedSecondFactors gives the identity whose password identifier is
// identifier a TOTP authenticator with totpSecret (base32; issuer names it
// in the app) and the backup codes lookupCodes (unused), each only when
// the identity has no credential of that type yet, so a restart on a
// persistent store changes nothing (a used code stays used). An empty
// secret or no codes seeds nothing of that type. The TOTP credential is
// imported as Kratos exports it ({"totp_url": "otpauth://..."}).
func SeedSecondFactors(ctx context.Context, ids login.IdentityStore, identifier, issuer, totpSecret string, lookupCodes []string) error {
	if totpSecret == "" && len(lookupCodes) == 0 {
		return nil
	}
	normalized, err := login.NormalizeIdentifier(identifier)
	if err != nil {
		return fmt.Errorf("seed second factors: %w", err)
	}
	id, _, err := ids.FindIdentity(ctx, session.CredentialPassword, normalized)
	if err != nil {
		return fmt.Errorf("seed second factors of %s: %w", normalized, err)
	}
	creds, err := ids.Credentials(ctx, id.ID)
	if err != nil {
		return fmt.Errorf("seed second factors: %w", err)
	}
	has := func(typ session.CredentialType) bool {
		return slices.ContainsFunc(creds, func(c session.Credential) bool { return c.Type == typ })
	}
	if totpSecret != "" && !has(session.CredentialTOTP) {
		cfg, err := json.Marshal(map[string]string{"totp_url": totpURL(issuer, identifier, totpSecret)})
		if err != nil {
			return err
		}
		c, err := totp.ImportKratos(id.ID, cfg)
		if err != nil {
			return fmt.Errorf("seed the TOTP credential: %w", err)
		}
		if err := addCredential(ctx, ids, id.ID, &c); err != nil {
			return fmt.Errorf("seed the TOTP credential: %w", err)
		}
	}
	if len(lookupCodes) > 0 && !has(session.CredentialLookup) {
		c, err := lookup.NewCredential(id.ID, lookupCodes)
		if err != nil {
			return fmt.Errorf("seed the backup codes: %w", err)
		}
		if err := addCredential(ctx, ids, id.ID, &c); err != nil {
			return fmt.Errorf("seed the backup codes: %w", err)
		}
	}
	return nil
}

// addCredential stores a credential of a type the identity does not have.
// A conflict means another instance added one meanwhile, which is kept.
func addCredential(ctx context.Context, ids login.IdentityStore, identityID string, c *session.Credential) error {
	c.Version = 0
	err := ids.UpdateCredential(ctx, identityID, c)
	if errors.Is(err, session.ErrConflict) {
		return nil
	}
	return err
}
