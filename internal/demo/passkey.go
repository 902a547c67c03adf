package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"

	autherrors "github.com/authflow/authflow/errors"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/login/passkey"
	"github.com/authflow/authflow/session"
)

// DefaultRPName is the default of -webauthn-rp-name: the name
// authenticators show for the demo's passkeys and security keys.
const DefaultRPName = "authflow demo"

// checkWebAuthnOptions completes and checks the passkey and webauthn
// flags: the default origin (the public URL's), an RP ID that is a domain
// and holds every origin, and the seed files, read and checked as a Kratos
// import would check them.
func checkWebAuthnOptions(o *Options, pub *url.URL, seedPasskey, seedWebAuthn string) error {
	if len(o.WebAuthnOrigins) == 0 {
		o.WebAuthnOrigins = []string{pub.Scheme + "://" + pub.Host}
	}
	if !o.Passkey && !o.WebAuthn {
		if seedPasskey != "" || seedWebAuthn != "" {
			return errors.New("-seed-passkey and -seed-webauthn need -passkey or -webauthn")
		}
		return nil
	}
	if seedPasskey != "" && !o.Passkey {
		return errors.New("-seed-passkey needs -passkey")
	}
	if seedWebAuthn != "" && !o.WebAuthn {
		return errors.New("-seed-webauthn needs -webauthn")
	}
	if net.ParseIP(o.WebAuthnRPID) != nil || o.WebAuthnRPID == "" {
		return fmt.Errorf("-webauthn-rp-id %q must be a domain name (browsers refuse IP addresses): use localhost and open the demo at http://localhost:PORT", o.WebAuthnRPID)
	}
	// passkey.New checks the origins again; this names the flags to fix.
	if _, err := passkey.New(passkey.Config{RPID: o.WebAuthnRPID, RPDisplayName: o.WebAuthnRPName, Origins: o.WebAuthnOrigins}); err != nil {
		return fmt.Errorf("-webauthn-rp-id %q, -webauthn-origin %q: %w (for a local demo: -webauthn-rp-id localhost -public-url http://localhost:PORT)",
			o.WebAuthnRPID, o.WebAuthnOrigins, err)
	}
	var err error
	if o.SeedPasskey, err = readSeedKeys("-seed-passkey", seedPasskey, passkey.CredentialPasskey, o.Identifier); err != nil {
		return err
	}
	if o.SeedWebAuthn, err = readSeedKeys("-seed-webauthn", seedWebAuthn, passkey.CredentialWebAuthn, o.Identifier); err != nil {
		return err
	}
	return nil
}

// readSeedKeys reads a seed file, a Kratos credential configuration
// {"credentials": [...], "user_handle": "<base64>"}, and checks that it
// imports; nil for no file.
func readSeedKeys(flagName, path string, typ session.CredentialType, identifier string) (json.RawMessage, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flagName, err)
	}
	if _, err := passkey.ImportKratos(typ, b, identifier); err != nil {
		return nil, fmt.Errorf("%s %s: %w", flagName, path, err)
	}
	return b, nil
}

// SeedKeys gives the identity whose password identifier is identifier the
// passkeys of passkeyConfig and the security keys of webauthnConfig, each
// a Kratos credential configuration ({"credentials": [...],
// "user_handle": "<base64>"}) imported as Kratos' admin import does
// (passkey.ImportKratos): the passkeys answer to their user handle, the
// security keys to the identity's identifier. A type the identity has
// already is left alone, so a restart on a persistent store changes
// nothing; nil seeds nothing of that type.
func SeedKeys(ctx context.Context, ids login.IdentityStore, identifier string, passkeyConfig, webauthnConfig json.RawMessage) error {
	if len(passkeyConfig) == 0 && len(webauthnConfig) == 0 {
		return nil
	}
	normalized, err := login.NormalizeIdentifier(identifier)
	if err != nil {
		return fmt.Errorf("seed keys: %w", err)
	}
	id, _, err := ids.FindIdentity(ctx, session.CredentialPassword, normalized)
	if err != nil {
		return fmt.Errorf("seed keys of %s: %w", normalized, err)
	}
	creds, err := ids.Credentials(ctx, id.ID)
	if err != nil {
		return fmt.Errorf("seed keys: %w", err)
	}
	for _, seed := range []struct {
		typ    session.CredentialType
		config json.RawMessage
	}{
		{passkey.CredentialPasskey, passkeyConfig},
		{passkey.CredentialWebAuthn, webauthnConfig},
	} {
		if len(seed.config) == 0 || slices.ContainsFunc(creds, func(c session.Credential) bool { return c.Type == seed.typ }) {
			continue
		}
		c, err := passkey.ImportKratos(seed.typ, seed.config, normalized)
		if err != nil {
			return fmt.Errorf("seed the %s credential: %w", seed.typ, err)
		}
		if err := addCredential(ctx, ids, id.ID, &c); err != nil {
			return fmt.Errorf("seed the %s credential: %w", seed.typ, err)
		}
	}
	return nil
}

// Where the enrolment handlers are mounted, below the public URL.
const (
	passkeysPath     = "/passkeys"
	securityKeysPath = "/security-keys"
)

// keyMethods are the demo's passkey and security-key methods; either may
// be nil.
type keyMethods struct {
	passkey  *passkey.Method
	webauthn *passkey.WebAuthn
}

// newKeyMethods makes the methods -passkey and -webauthn ask for.
func newKeyMethods(o Options, ids login.IdentityStore, ceremonies login.CeremonyStore) (keyMethods, error) {
	var km keyMethods
	if !o.Passkey && !o.WebAuthn {
		return km, nil
	}
	if ceremonies == nil {
		ceremonies = login.NewMemoryCeremonyStore(0)
	}
	cfg := passkey.Config{
		RPID:          o.WebAuthnRPID,
		RPDisplayName: o.WebAuthnRPName,
		Origins:       o.WebAuthnOrigins,
		Identities:    ids,
		Ceremonies:    ceremonies,
		RefreshURL:    o.PublicURL + "/self-service/login/browser?" + url.Values{"refresh": {"true"}, "return_to": {o.PublicURL + "/settings"}}.Encode(),
		Now:           o.Now,
	}
	var err error
	if o.Passkey {
		if km.passkey, err = passkey.New(cfg); err != nil {
			return km, err
		}
	}
	if o.WebAuthn {
		if km.webauthn, err = passkey.NewWebAuthn(passkey.WebAuthnConfig{Config: cfg}); err != nil {
			return km, err
		}
	}
	return km, nil
}

// hasSecurityKey reports whether creds hold a security key that is a
// second factor.
func hasSecurityKey(creds []session.Credential) bool {
	for _, c := range creds {
		if c.Type != passkey.CredentialWebAuthn {
			continue
		}
		var cfg passkey.CredentialConfig
		if json.Unmarshal(c.Config, &cfg) != nil {
			return true // an unreadable key counts: better a step-up too many
		}
		if slices.ContainsFunc(cfg.Credentials, func(k passkey.Key) bool { return !k.IsPasswordless }) {
			return true
		}
	}
	return false
}

// guardKeys lets a session change its keys (an unsafe request to the
// enrolment handler next) only when the settings page would let it change
// its second factors: at aal2 once its identity has one. A form post is
// sent back to the settings page with ?error=step_up_required, any other
// request answered 403 session_aal2_required.
func (p *settingsPage) guardKeys(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sess, ok := session.FromContext(r.Context())
		if r.Method == http.MethodGet || r.Method == http.MethodHead || !ok {
			next.ServeHTTP(w, r)
			return
		}
		creds, err := p.ids.Credentials(r.Context(), sess.Identity.ID)
		if err != nil {
			http.Error(w, "The keys are unavailable, please retry.", http.StatusInternalServerError)
			return
		}
		if !p.needsSecondFactor(sess, creds) {
			next.ServeHTTP(w, r)
			return
		}
		if isFormPost(r) {
			http.Redirect(w, r, p.public+"/settings?error=step_up_required", http.StatusSeeOther)
			return
		}
		writeEnvelope(w, p.stepUpURL())
	})
}

// keySection is the settings page's part for one kind of key: the keys
// with their remove buttons, and the form that adds one.
type keySection struct {
	Keys []keyRow
	// FinishAction and RemoveAction are the enrolment handler's routes the
	// forms post to; ReturnTo brings the browser back here.
	FinishAction   string
	RemoveAction   string
	ReturnTo       string
	RemoveReturnTo string
	// RemoveField is the remove button's name (passkey_remove,
	// webauthn_remove), whose value is the key's hex id.
	RemoveField string
	// Locked hides the remove buttons: the session must step up or sign
	// in again first.
	Locked bool
	// Options are the options of a new key's enrolment (BeginEnrolment's
	// {"publicKey": ...}); "" when none can start now.
	Options string
}

// keyRow is one key as the settings page lists it.
type keyRow struct {
	ID    string // lower-case hex, the value of the remove button
	Name  string
	Added string
}

// keyMessages are the texts of the ?error= reasons the enrolment handler
// sends a form back with (and step_up_required, guardKeys'); unknown
// reasons get the generic last one.
var keyMessages = map[string]string{
	"session_refresh_required": "You signed in too long ago to change your keys: confirm it's you first.",
	"step_up_required":         "Verify your second factor before you change it.",
	"invalid_response":         "The key's answer could not be verified; please try again.",
	"no_enrolment":             "The setup expired; please try again.",
	"duplicate_key":            "This key is added already.",
	"last_factor":              "This key is your account's last way to sign in, so it is kept.",
	"no_key":                   "That key is gone already.",
	"":                         "The change could not be saved, please retry.",
}

// keyDone are the texts of the ?done= values the add forms' return_to
// carries.
var keyDone = map[string]string{
	"passkey":      "Your passkey is added: sign in with it next time.",
	"security-key": "Your security key is added: signing in asks for it.",
	"removed":      "The key is removed.",
}

// keysView fills the key sections of v for the session: the keys, and,
// when begin is set and the session is recent enough, a new enrolment of
// each kind (else v.RefreshURL). It also shows the outcome of the last
// key form (?done=, ?error=).
func (p *settingsPage) keysView(r *http.Request, sess *session.Session, v *settingsView, begin bool) error {
	if p.keys.passkey == nil && p.keys.webauthn == nil {
		return nil
	}
	q := r.URL.Query()
	if reason := q.Get("error"); q.Has("error") {
		text, ok := keyMessages[reason]
		if !ok {
			text = keyMessages[""]
		}
		v.Error = text
		if reason == "session_refresh_required" {
			v.RefreshURL = p.refreshURL()
		}
	} else if text, ok := keyDone[q.Get("done")]; ok {
		v.Message = text
	}
	prefix := strings.TrimPrefix(p.public, p.origin())
	type kind struct {
		m      enroller
		into   **keySection
		mount  string
		done   string
		remove string
	}
	var kinds []kind
	if p.keys.passkey != nil {
		kinds = append(kinds, kind{p.keys.passkey, &v.Passkeys, passkeysPath, "passkey", "passkey_remove"})
	}
	if p.keys.webauthn != nil {
		kinds = append(kinds, kind{p.keys.webauthn, &v.SecurityKeys, securityKeysPath, "security-key", "webauthn_remove"})
	}
	for _, k := range kinds {
		keys, err := k.m.Keys(r.Context(), sess.Identity.ID)
		if err != nil {
			return err
		}
		s := &keySection{
			FinishAction:   p.public + k.mount + "/finish",
			RemoveAction:   p.public + k.mount + "/remove",
			ReturnTo:       prefix + "/settings?done=" + k.done,
			RemoveReturnTo: prefix + "/settings?done=removed",
			RemoveField:    k.remove,
			Locked:         !begin,
		}
		for _, key := range keys {
			name := key.DisplayName
			if name == "" {
				name = "Unnamed key"
			}
			s.Keys = append(s.Keys, keyRow{ID: key.HexID(), Name: name, Added: key.AddedAt.UTC().Format("2006-01-02 15:04 MST")})
		}
		*k.into = s
		if !begin || v.RefreshURL != "" {
			continue
		}
		options, err := k.m.BeginEnrolment(r.Context(), sess)
		if errors.Is(err, passkey.ErrRefreshRequired) {
			v.RefreshURL = p.refreshURL()
			continue
		}
		if err != nil {
			return err
		}
		s.Options = string(options)
	}
	for _, s := range []*keySection{v.Passkeys, v.SecurityKeys} {
		if s != nil && v.RefreshURL != "" {
			s.Locked, s.Options = true, ""
		}
	}
	return nil
}

// enroller is what the settings page uses of passkey.Method and
// passkey.WebAuthn.
type enroller interface {
	Keys(ctx context.Context, identityID string) ([]passkey.Key, error)
	BeginEnrolment(ctx context.Context, s *session.Session) (json.RawMessage, error)
}

// refreshURL is the refresh login that brings the browser back to the
// settings.
func (p *settingsPage) refreshURL() string {
	return p.public + "/self-service/login/browser?" + url.Values{"refresh": {"true"}, "return_to": {p.public + "/settings"}}.Encode()
}

// origin is the public URL's scheme and host.
func (p *settingsPage) origin() string {
	u, err := url.Parse(p.public)
	if err != nil {
		return p.public
	}
	return u.Scheme + "://" + u.Host
}

// isFormPost reports whether r posts an HTML form.
func isFormPost(r *http.Request) bool {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return mt == "application/x-www-form-urlencoded" || mt == "multipart/form-data"
}

// writeEnvelope answers 403 session_aal2_required naming stepUp.
func writeEnvelope(w http.ResponseWriter, stepUp string) {
	e := autherrors.SessionAAL2Required(stepUp)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(e.Code)
	_ = json.NewEncoder(w).Encode(autherrors.Envelope{Error: e, RedirectBrowserTo: stepUp})
}
