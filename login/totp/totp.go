// Package totp is the "totp" login method: a second factor (aal2) proved
// with a time-based one-time password (RFC 6238) from an authenticator app,
// plugged into login.Config.Methods.
//
//	m, err := totp.New(totp.Config{Issuer: "Example"})
//	h, err := login.New(login.Config{..., Methods: []login.Method{m}})
//	// enrolment, in the host's own settings page:
//	key, err := m.NewKey("jane@example.com") // show key.PNG(256) or key.Secret
//	cred, err := m.NewCredential(identityID, key, codeTheUserTyped)
//
// The method has no routes of its own. A step-up flow
// (GET /self-service/login/{browser,api}?aal=aal2) of a session whose
// identity has a TOTP credential offers the field totp_code and the button
// method=totp (group "totp"); a submission verifies the code of the
// session's identity, never of one found by an identifier, with Kratos'
// parameters: SHA-1, 6 digits, 30 second steps, and one step of clock skew
// either side. An identity with a TOTP credential counts as having a second
// factor, so that under login.RequireHighestAvailable its sessions are
// signed in only once aal2.
//
// A time step logs in at most once per identity (RFC 6238 §5.2): the
// credential records the latest step that logged in (or enrolled), and the
// update that records it is conditional on the credential's version, so of
// any number of concurrent submissions of one code exactly one succeeds.
// A replayed code, like a code of an earlier step, gets the answer of a
// wrong code (message 4000008), which reveals nothing about it. Wrong and
// replayed codes count as failed attempts: the handler throttles them by
// the identity's id. The secret never leaves the server except at
// enrolment, in the Key the host shows to the user; the submitted code is
// never echoed on the flow. Credentials are stored as Kratos stores them
// ({"totp_url": "otpauth://..."}, plus "last_step"), and Kratos' exports are
// read with ImportKratos.
package totp

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
	pqtotp "github.com/pquerna/otp/totp"

	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/session"
)

// MethodID is the method's id: the "method" field value, its node group and
// the type of its credential (session.CredentialTOTP).
const MethodID = "totp"

// Parameters of every code, as in Kratos and most authenticator apps.
const (
	period = 30 // seconds per time step
	digits = 6
	skew   = 1 // steps accepted either side of the current one

	// maxCodeLength bounds the submitted totp_code, in bytes
	// (CONTRACT-AAL Part 1, rule 15).
	maxCodeLength = 64
	// maxConflicts bounds how often one submission re-reads the credential
	// after losing a concurrent update of it.
	maxConflicts = 8
)

// cleared lists the node whose value a failed submission removes: a code
// is never echoed (CONTRACT-AAL §4).
var cleared = []string{"totp_code"}

// ErrInvalidCode means that a code does not verify against the key (see
// Method.NewCredential).
var ErrInvalidCode = errors.New("totp: invalid code")

// Config configures the method.
type Config struct {
	// Issuer names the service in authenticator apps (the otpauth issuer)
	// for keys made by NewKey; required by NewKey only. It may not contain
	// a colon.
	Issuer string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Method is the totp login method; it implements login.Method. It is safe
// for concurrent use.
type Method struct {
	cfg Config
}

var _ login.Method = (*Method)(nil)

// New checks cfg and returns the method.
func New(cfg Config) (*Method, error) {
	if strings.Contains(cfg.Issuer, ":") {
		return nil, fmt.Errorf("totp: Issuer %q contains a colon", cfg.Issuer)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Method{cfg: cfg}, nil
}

// ID implements login.Method.
func (m *Method) ID() string { return MethodID }

// AAL implements login.Method: TOTP is a second factor.
func (m *Method) AAL() string { return flow.AAL2 }

// Nodes implements login.Method: the code field and the submit button, for
// step-up (aal2) flows of an identity that has a TOTP credential.
func (m *Method) Nodes(_ context.Context, req *login.FlowRequest) ([]flow.Node, error) {
	if req.Flow.RequestedAAL != flow.AAL2 || !slices.ContainsFunc(req.Credentials, isDevice) {
		return nil, nil
	}
	code := flow.NewInput(MethodID, "totp_code", "text", "", true)
	code.Attributes.Autocomplete = "one-time-code"
	code.Meta.Label = ptr(flow.LabelAuthCode())
	submit := flow.NewInput(MethodID, "method", "submit", MethodID, false)
	submit.Meta.Label = ptr(flow.UseAuthenticator())
	return []flow.Node{code, submit}, nil
}

// Validate implements login.Method: totp_code must be present, at most 64
// bytes, and at least 6 once surrounding white space is trimmed. The
// submitted value is never put back on the flow.
func (m *Method) Validate(_ context.Context, s *login.Submission) error {
	raw := s.Field("totp_code")
	var msg flow.Message
	switch trimmed := strings.TrimSpace(raw); {
	case raw == "":
		msg = flow.Missing("totp_code")
	case len(raw) > maxCodeLength:
		msg = flow.TooLong(maxCodeLength, len(raw))
	case len(trimmed) < digits:
		msg = flow.TooShort(digits, len(trimmed))
	default:
		return nil
	}
	return &login.FlowError{Fields: map[string][]flow.Message{"totp_code": {msg}}, Cleared: cleared}
}

// Authenticate implements login.Method: it verifies the code against the
// TOTP credential of the session's identity and consumes its time step.
// A wrong or replayed code is a *login.FlowError with message 4000008 and
// FailedAttempt set; an identity without TOTP gets 4000011.
func (m *Method) Authenticate(ctx context.Context, s *login.Submission) (*login.Result, error) {
	if s.Session == nil || s.Session.Identity == nil {
		return nil, errors.New("totp: submission without the session of a step-up flow")
	}
	identity := s.Session.Identity
	code := strings.TrimSpace(s.Field("totp_code"))
	now := m.cfg.Now()
	if _, err := m.check(ctx, s.Identities, identity.ID, code, now); err != nil {
		return nil, err
	}
	commit := func(ctx context.Context) (func(context.Context) error, error) {
		return m.spend(ctx, s.Identities, identity.ID, code, now)
	}
	return &login.Result{Identity: identity, Method: session.AuthenticationMethod{Method: MethodID, AAL: flow.AAL2}, Commit: commit}, nil
}

// verified is a code checked against the stored credential: the credential
// as read (with its version), its configuration, and the step the code is
// of.
type verified struct {
	cred *session.Credential
	cfg  credentialConfig
	step uint64
}

// check verifies code against the identity's credential at now, without
// spending it: a step it matches must be later than the last one used.
func (m *Method) check(ctx context.Context, ids login.IdentityStore, identityID, code string, now time.Time) (*verified, error) {
	cred, err := credential(ctx, ids, identityID)
	if err != nil {
		return nil, err
	}
	if cred == nil {
		return nil, &login.FlowError{Messages: []flow.Message{flow.NoTOTPDevice()}, Cleared: cleared}
	}
	cfg, secret, err := decodeCredential(cred)
	if err != nil {
		return nil, fmt.Errorf("totp: credential of identity %s: %w", identityID, err)
	}
	step, ok := matchStep(secret, code, now)
	if !ok || step <= cfg.LastStep {
		return nil, invalidCode(nil)
	}
	return &verified{cred: cred, cfg: cfg, step: step}, nil
}

// spend is Result.Commit: it records the code's step as used, checking the
// code again on the credential it writes, with an update conditional on
// the credential's version; a concurrent change makes it read and check
// again, a bounded number of times. Of concurrent spends of one step
// exactly one succeeds; the others get the wrong-code answer. The rollback
// it returns puts the previous last step back, if nothing recorded a later
// step meanwhile.
func (m *Method) spend(ctx context.Context, ids login.IdentityStore, identityID, code string, now time.Time) (func(context.Context) error, error) {
	for range maxConflicts {
		v, err := m.check(ctx, ids, identityID, code, now)
		if err != nil {
			return nil, err
		}
		previous := v.cfg.LastStep
		err = consume(ctx, ids, identityID, v.cred, v.cfg, v.step)
		if errors.Is(err, session.ErrConflict) {
			continue // changed meanwhile: check the code again on the newer state
		}
		if err != nil {
			return nil, err
		}
		step := v.step
		return func(ctx context.Context) error { return giveBack(ctx, ids, identityID, step, previous) }, nil
	}
	return nil, invalidCode(fmt.Errorf("totp: credential of identity %s changed during %d attempts to record a login", identityID, maxConflicts))
}

// giveBack undoes a spend whose login failed: the credential's last step
// goes back from step to previous, unless a later step was recorded
// meanwhile (then there is nothing to undo).
func giveBack(ctx context.Context, ids login.IdentityStore, identityID string, step, previous uint64) error {
	for range maxConflicts {
		cred, err := credential(ctx, ids, identityID)
		if err != nil || cred == nil {
			return err
		}
		cfg, _, err := decodeCredential(cred)
		if err != nil {
			return err
		}
		if cfg.LastStep != step {
			return nil
		}
		err = consume(ctx, ids, identityID, cred, cfg, previous)
		if !errors.Is(err, session.ErrConflict) {
			return err
		}
	}
	return fmt.Errorf("totp: credential of identity %s changed during %d attempts to give back step %d", identityID, maxConflicts, step)
}

// invalidCode is the one answer to a wrong, malformed, expired or replayed
// code (4000008), counted as a failed attempt; cause is logged, never sent.
func invalidCode(cause error) *login.FlowError {
	return &login.FlowError{Messages: []flow.Message{flow.InvalidCode()}, FailedAttempt: true, Err: cause, Cleared: cleared}
}

// credential returns the identity's TOTP credential, or nil when it has
// none (see isDevice).
func credential(ctx context.Context, ids login.IdentityStore, identityID string) (*session.Credential, error) {
	creds, err := ids.Credentials(ctx, identityID)
	if errors.Is(err, session.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load credentials: %w", err)
	}
	if i := slices.IndexFunc(creds, isDevice); i >= 0 {
		return &creds[i], nil
	}
	return nil, nil
}

// isDevice reports whether c is a TOTP credential, one whose totp_url is
// present and parses as a URL: an identity with one has TOTP as a second
// factor (Nodes offers it, Authenticate verifies it). A credential that
// passes this but not the full check of its key (decodeCredential) still
// counts, so that a damaged credential fails its logins as an internal
// error instead of silently removing the second factor.
func isDevice(c session.Credential) bool {
	if c.Type != session.CredentialTOTP {
		return false
	}
	var cfg credentialConfig
	if err := json.Unmarshal(c.Config, &cfg); err != nil || strings.TrimSpace(cfg.TOTPURL) == "" {
		return false
	}
	_, err := url.Parse(strings.TrimSpace(cfg.TOTPURL))
	return err == nil
}

// matchStep returns the time step at now (or one step either side) whose
// code equals code. Every candidate is computed and compared in constant
// time; the latest matching step wins.
func matchStep(secret, code string, now time.Time) (uint64, bool) {
	if len(code) != digits || strings.Trim(code, "0123456789") != "" {
		return 0, false
	}
	current := now.Unix() / period
	var step uint64
	matched := false
	for candidate := current - skew; candidate <= current+skew; candidate++ {
		if candidate <= 0 {
			continue
		}
		want, err := hotp.GenerateCodeCustom(secret, uint64(candidate), hotp.ValidateOpts{Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		if err != nil {
			return 0, false // the secret was checked by parseURL
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			step, matched = uint64(candidate), true
		}
	}
	return step, matched
}

// consume records step as the credential's latest used step, provided the
// credential is still the version that was read: session.ErrConflict
// otherwise.
func consume(ctx context.Context, ids login.IdentityStore, identityID string, cred *session.Credential, cfg credentialConfig, step uint64) error {
	cfg.LastStep = step
	b, err := cfg.encode()
	if err != nil {
		return err
	}
	cred.Config = b
	if err := ids.UpdateCredential(ctx, identityID, cred); err != nil {
		if errors.Is(err, session.ErrConflict) {
			return err
		}
		return fmt.Errorf("record used TOTP step: %w", err)
	}
	return nil
}

// credentialConfig is the Config of a TOTP credential. The key is Kratos'
// (totp_url), so exports stay readable by either.
type credentialConfig struct {
	TOTPURL string `json:"totp_url"`
	// LastStep is the latest time step (Unix time / 30) that logged in or
	// enrolled; 0 for none. Steps up to it are refused.
	LastStep uint64 `json:"last_step,omitempty"`
}

// encode returns the config's JSON, with the URL's "&" kept readable.
func (c credentialConfig) encode() (json.RawMessage, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(c); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// decodeCredential returns the credential's configuration and secret.
func decodeCredential(c *session.Credential) (credentialConfig, string, error) {
	var cfg credentialConfig
	if err := json.Unmarshal(c.Config, &cfg); err != nil {
		return cfg, "", fmt.Errorf("decode config: %w", err)
	}
	secret, err := parseURL(cfg.TOTPURL)
	return cfg, secret, err
}

// parseURL checks a key URI (otpauth://totp/...) and returns its secret.
// Only keys with the parameters the method verifies (SHA1, 6 digits, 30
// seconds; the URI's defaults) are accepted.
func parseURL(raw string) (string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return "", errors.New("totp_url is missing")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("totp_url does not parse: %w", err)
	}
	if u.Scheme != "otpauth" || u.Host != "totp" {
		return "", fmt.Errorf("totp_url must start with otpauth://totp/, got scheme %q and type %q", u.Scheme, u.Host)
	}
	q := u.Query()
	secret := q.Get("secret")
	if secret == "" {
		return "", errors.New("totp_url has no secret")
	}
	if _, err := decodeSecret(secret); err != nil {
		return "", errors.New("totp_url's secret is not base32")
	}
	if a := q.Get("algorithm"); a != "" && !strings.EqualFold(a, "SHA1") {
		return "", fmt.Errorf("totp_url has algorithm %q; only SHA1 is supported", a)
	}
	if d := q.Get("digits"); d != "" && d != "6" {
		return "", fmt.Errorf("totp_url has %q digits; only 6 are supported", d)
	}
	if p := q.Get("period"); p != "" && p != "30" {
		return "", fmt.Errorf("totp_url has a period of %q seconds; only 30 is supported", p)
	}
	return secret, nil
}

// decodeSecret decodes a base32 secret as authenticator apps read it:
// case-insensitive, padding optional.
func decodeSecret(s string) ([]byte, error) {
	s = strings.ToUpper(strings.TrimRight(s, "="))
	return base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(s)
}

// Key is a new TOTP key, for enrolment: the host shows the QR code (PNG)
// or the secret to the user, whose authenticator app then produces codes.
type Key struct {
	// Secret is the shared secret: 160 random bits, base32 without padding
	// (32 characters), for users who type it in.
	Secret string
	// URL is the key URI the QR code carries:
	// otpauth://totp/<issuer>:<account>?algorithm=SHA1&digits=6&issuer=<issuer>&period=30&secret=<secret>.
	URL string
}

// NewKey returns a new key for accountName (the name the authenticator app
// shows, such as an email address), with Config.Issuer. Its secret comes
// from crypto/rand. It returns an error if Config.Issuer is empty or
// accountName is empty or contains a colon. Nothing is stored: the key
// becomes a credential with NewCredential once the user proved that the
// app has it.
func (m *Method) NewKey(accountName string) (*Key, error) {
	switch {
	case m.cfg.Issuer == "":
		return nil, errors.New("totp: Config.Issuer is required to make keys")
	case accountName == "" || strings.Contains(accountName, ":"):
		return nil, fmt.Errorf("totp: account name %q is empty or contains a colon", accountName)
	}
	k, err := pqtotp.Generate(pqtotp.GenerateOpts{
		Issuer:      m.cfg.Issuer,
		AccountName: accountName,
		Period:      period,
		SecretSize:  20,
		Digits:      otp.DigitsSix,
		Algorithm:   otp.AlgorithmSHA1,
	})
	if err != nil {
		return nil, fmt.Errorf("totp: make key: %w", err)
	}
	return &Key{Secret: k.Secret(), URL: k.URL()}, nil
}

// PNG returns the QR code of k.URL as a PNG image of size×size pixels
// (256 is a good size). It returns an error if size is too small for the
// code.
func (k *Key) PNG(size int) ([]byte, error) {
	if size <= 0 {
		return nil, fmt.Errorf("totp: image size %d is not positive", size)
	}
	key, err := otp.NewKeyFromURL(k.URL)
	if err != nil {
		return nil, fmt.Errorf("totp: %w", err)
	}
	img, err := key.Image(size, size)
	if err != nil {
		return nil, fmt.Errorf("totp: QR code: %w", err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("totp: encode QR code: %w", err)
	}
	return buf.Bytes(), nil
}

// NewCredential returns the TOTP credential of the identity for k, once
// code (the first code the user's app shows, surrounding white space
// ignored) verifies against it; ErrInvalidCode otherwise. The credential
// records the code's time step as used, so that the enrolment code cannot
// log in again. The host stores it with the identity store's
// UpdateCredential (or CreateIdentity).
func (m *Method) NewCredential(identityID string, k *Key, code string) (session.Credential, error) {
	if identityID == "" {
		return session.Credential{}, errors.New("totp: identity id is empty")
	}
	if k == nil {
		return session.Credential{}, errors.New("totp: key is nil")
	}
	secret, err := parseURL(k.URL)
	if err != nil {
		return session.Credential{}, fmt.Errorf("totp: %w", err)
	}
	if k.Secret != "" && k.Secret != secret {
		return session.Credential{}, errors.New("totp: Key.Secret differs from the secret of Key.URL")
	}
	step, ok := matchStep(secret, strings.TrimSpace(code), m.cfg.Now())
	if !ok {
		return session.Credential{}, ErrInvalidCode
	}
	return newCredential(identityID, credentialConfig{TOTPURL: strings.TrimSpace(k.URL), LastStep: step})
}

// ImportKratos returns the TOTP credential of the identity from the config
// of a Kratos TOTP credential ({"totp_url": "otpauth://totp/..."}), as
// Kratos' admin API exports it with include_credential=totp. It returns an
// error if the config is not such an object, or if its URL does not parse,
// has no base32 secret, or uses parameters other than SHA1, 6 digits and
// 30 seconds.
func ImportKratos(identityID string, config json.RawMessage) (session.Credential, error) {
	if identityID == "" {
		return session.Credential{}, errors.New("totp: identity id is empty")
	}
	var cfg struct {
		TOTPURL string `json:"totp_url"`
	}
	if err := json.Unmarshal(config, &cfg); err != nil {
		return session.Credential{}, fmt.Errorf("totp: Kratos config: %w", err)
	}
	if _, err := parseURL(cfg.TOTPURL); err != nil {
		return session.Credential{}, fmt.Errorf("totp: Kratos config: %w", err)
	}
	return newCredential(identityID, credentialConfig{TOTPURL: strings.TrimSpace(cfg.TOTPURL)})
}

func newCredential(identityID string, cfg credentialConfig) (session.Credential, error) {
	b, err := cfg.encode()
	if err != nil {
		return session.Credential{}, err
	}
	return session.Credential{Type: session.CredentialTOTP, Identifiers: []string{identityID}, Config: b}, nil
}

func ptr[T any](v T) *T { return &v }
