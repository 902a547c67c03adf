package passkey

import (
	"context"
	"errors"
	"fmt"

	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/session"
)

// maxConflicts bounds how often one write of a credential re-reads it
// after losing a concurrent update.
const maxConflicts = 8

// changeCredential applies change to the identity's credential of typ and
// stores it, conditional on its version, re-reading it after a concurrent
// change (or, for a new credential, an identifier another identity holds:
// the tries run out). A credential the identity lacks is passed as a new
// one (Version 0, no identifiers). change may return errUnchanged to store
// nothing.
func changeCredential(ctx context.Context, ids login.IdentityStore, identityID string, typ session.CredentialType, change func(c *session.Credential, cfg *CredentialConfig) error) error {
	for range maxConflicts {
		creds, err := ids.Credentials(ctx, identityID)
		if err != nil {
			return err
		}
		c := &session.Credential{Type: typ}
		for i := range creds {
			if creds[i].Type == typ {
				c = creds[i].Clone()
			}
		}
		cfg, err := decodeConfig(c)
		if err != nil {
			return err
		}
		if err := change(c, cfg); err != nil {
			if errors.Is(err, errUnchanged) {
				return nil
			}
			return err
		}
		if err := cfg.encode(c); err != nil {
			return err
		}
		err = ids.UpdateCredential(ctx, identityID, c)
		if !errors.Is(err, session.ErrConflict) {
			return err
		}
	}
	return fmt.Errorf("passkey: %s credential of %s: %d version conflicts: %w", typ, identityID, maxConflicts, session.ErrConflict)
}

// errUnchanged tells changeCredential that there is nothing to store.
var errUnchanged = errors.New("passkey: credential unchanged")

// recordUse stores what a login learnt about a key: a higher signature
// counter, a clone warning (for good), its backup state, and that it
// verified its user. Best-effort: a key removed meanwhile is left alone.
func recordUse(ctx context.Context, ids login.IdentityStore, identityID string, typ session.CredentialType, used *webauthn.Credential) error {
	return changeCredential(ctx, ids, identityID, typ, func(_ *session.Credential, cfg *CredentialConfig) error {
		k := cfg.find(used.ID)
		if k == nil {
			return errUnchanged
		}
		before := *k
		if k.Flags != nil {
			flags := *k.Flags
			before.Flags = &flags
		}
		if used.Authenticator.SignCount > k.Authenticator.SignCount {
			k.Authenticator.SignCount = used.Authenticator.SignCount
		}
		k.Authenticator.CloneWarning = k.Authenticator.CloneWarning || used.Authenticator.CloneWarning
		if k.Flags == nil {
			k.Flags = &Flags{UserPresent: true, BackupEligible: used.Flags.BackupEligible}
		}
		k.Flags.BackupState = used.Flags.BackupState
		k.Flags.UserVerified = k.Flags.UserVerified || used.Flags.UserVerified
		if k.Authenticator.SignCount == before.Authenticator.SignCount && k.Authenticator.CloneWarning == before.Authenticator.CloneWarning && before.Flags != nil && *k.Flags == *before.Flags {
			return errUnchanged
		}
		return nil
	})
}
