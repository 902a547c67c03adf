package code

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"slices"
	"strings"

	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/session"
)

// CredentialCode is the type of the credential that lets an identity log
// in by code; its identifiers are the identity's addresses.
const CredentialCode session.CredentialType = "code"

// credentialConfig is the Config of a code credential, as Kratos stores it.
type credentialConfig struct {
	Addresses []credentialAddress `json:"addresses"`
}

type credentialAddress struct {
	Channel string `json:"channel"`
	Address string `json:"address"`
}

// NewCredential returns the code credential for the given email addresses:
// what a host stores (with the identity store's CreateIdentity or
// UpdateCredential) to let an identity log in by a code sent to any of
// them. Each address is normalised with login.NormalizeIdentifier (the form
// the login looks it up by) and must then be a bare email address
// ("jane@example.com"); duplicates are listed once. Its Config is Kratos':
// {"addresses":[{"channel":"email","address":"jane@example.com"}]}. It
// returns an error if no address is given or one is not an email address.
func NewCredential(addresses ...string) (session.Credential, error) {
	if len(addresses) == 0 {
		return session.Credential{}, errors.New("code: NewCredential needs at least one address")
	}
	var cfg credentialConfig
	var identifiers []string
	for _, raw := range addresses {
		a, err := login.NormalizeIdentifier(raw)
		if err != nil {
			return session.Credential{}, fmt.Errorf("code: address %q: %w", raw, err)
		}
		if !isAddress(a) {
			return session.Credential{}, fmt.Errorf("code: %q is not an email address", raw)
		}
		if slices.Contains(identifiers, a) {
			continue
		}
		identifiers = append(identifiers, a)
		cfg.Addresses = append(cfg.Addresses, credentialAddress{Channel: "email", Address: a})
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return session.Credential{}, err
	}
	return session.Credential{Type: CredentialCode, Identifiers: identifiers, Config: b}, nil
}

// isAddress reports whether a is a bare email address: local part, "@",
// domain, without a display name, comments or angle brackets.
func isAddress(a string) bool {
	p, err := mail.ParseAddress(a)
	return err == nil && p.Name == "" && p.Address == a && strings.Count(a, "@") == 1
}
