package passkey

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/session"
)

// User verification requirements (Config.UserVerification).
const (
	VerificationRequired    = "required"
	VerificationPreferred   = "preferred"
	VerificationDiscouraged = "discouraged"
)

// Defaults of Config.
const (
	DefaultTimeout          = 5 * time.Minute
	DefaultPrivilegedMaxAge = 15 * time.Minute
)

// Config configures the passkey and webauthn methods. RPID, RPDisplayName
// and Origins are required; every ceremony is checked against them.
type Config struct {
	// RPID is the relying party id: the registrable domain the passkeys
	// belong to, such as "example.com" or "localhost" (no scheme, no port).
	// IP addresses are refused, as browsers refuse them.
	RPID string
	// RPDisplayName names the service to the user during enrolment.
	RPDisplayName string
	// Origins are the origins ("https://login.example.com", scheme, host
	// and port) of the pages that run ceremonies: a ceremony from any
	// other origin is refused. Each host must be RPID or a subdomain of it.
	Origins []string
	// UserVerification is what passkey logins and enrolments require of
	// the authenticator: VerificationRequired (the default: a passkey is
	// a whole login, so the device must check its user by PIN or
	// biometrics), VerificationPreferred (Kratos' default, which accepts
	// a touch alone) or VerificationDiscouraged. The webauthn method
	// ignores it: a second factor follows a password, and its ceremonies
	// discourage verification as Kratos' do; a passwordless webauthn
	// method uses it.
	UserVerification string
	// Timeout bounds a ceremony: a login challenge or an enrolment older
	// than this is refused. Default DefaultTimeout.
	Timeout time.Duration
	// RefuseClonedKeys refuses a key whose signature counter failed to
	// increase (clone_warning) unless it is backup eligible (a synced
	// passkey, whose copies legitimately share a counter). The regression
	// is recorded on the key either way; off by default, as in Kratos.
	RefuseClonedKeys bool
	// Identities is the identity store enrolment writes to; the same as
	// the login handler's. Required for enrolment only.
	Identities login.IdentityStore
	// Ceremonies keeps enrolments between their begin and finish. Nil
	// means a store in this process's memory, which serves one instance
	// only; several instances share one (pgstore.CeremonyStore).
	Ceremonies login.CeremonyStore
	// PrivilegedMaxAge is how recently a session must have authenticated
	// to enrol or remove keys; older sessions are refused with
	// session_refresh_required. Default DefaultPrivilegedMaxAge.
	PrivilegedMaxAge time.Duration
	// RefreshURL is where a browser signs in again when its session is
	// too old to enrol, such as the handler's
	// "/self-service/login/browser?refresh=true"; it is sent as
	// redirect_browser_to with session_refresh_required. Optional.
	RefreshURL string
	// UserName returns the name an authenticator shows for an identity's
	// keys. Nil means the identity's "email" trait, else its id.
	UserName func(*session.Identity) string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// relyingParty is the checked Config with its go-webauthn instance.
type relyingParty struct {
	cfg Config
	wa  *webauthn.WebAuthn
	uv  protocol.UserVerificationRequirement
}

// newRelyingParty checks cfg and fills in its defaults.
func newRelyingParty(cfg Config) (*relyingParty, error) {
	if cfg.RPID == "" {
		return nil, errors.New("passkey: RPID is required")
	}
	if _, err := netip.ParseAddr(cfg.RPID); err == nil {
		return nil, fmt.Errorf("passkey: RPID %q is an IP address; browsers accept only domains (use localhost for local tests)", cfg.RPID)
	}
	if cfg.RPDisplayName == "" {
		return nil, errors.New("passkey: RPDisplayName is required")
	}
	if len(cfg.Origins) == 0 {
		return nil, errors.New("passkey: Origins needs at least one origin")
	}
	for _, o := range cfg.Origins {
		if err := checkOrigin(o, cfg.RPID); err != nil {
			return nil, err
		}
	}
	switch cfg.UserVerification {
	case "":
		cfg.UserVerification = VerificationRequired
	case VerificationRequired, VerificationPreferred, VerificationDiscouraged:
	default:
		return nil, fmt.Errorf("passkey: UserVerification %q is not required, preferred or discouraged", cfg.UserVerification)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.PrivilegedMaxAge <= 0 {
		cfg.PrivilegedMaxAge = DefaultPrivilegedMaxAge
	}
	if cfg.Ceremonies == nil {
		cfg.Ceremonies = login.NewMemoryCeremonyStore(0)
	}
	if cfg.UserName == nil {
		cfg.UserName = emailOrID
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	wa, err := webauthn.New(&webauthn.Config{
		RPID:          cfg.RPID,
		RPDisplayName: cfg.RPDisplayName,
		RPOrigins:     append([]string(nil), cfg.Origins...),
		// The ceremony timeout is enforced here with Config.Now, on the
		// state kept in the flow, rather than by the library's clock.
		Timeouts: webauthn.TimeoutsConfig{
			Login:        webauthn.TimeoutConfig{Timeout: cfg.Timeout, TimeoutUVD: cfg.Timeout},
			Registration: webauthn.TimeoutConfig{Timeout: cfg.Timeout, TimeoutUVD: cfg.Timeout},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("passkey: %w", err)
	}
	return &relyingParty{cfg: cfg, wa: wa, uv: protocol.UserVerificationRequirement(cfg.UserVerification)}, nil
}

// checkOrigin checks that o is a bare origin whose host is rpID or below.
func checkOrigin(o, rpID string) error {
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.User != nil {
		return fmt.Errorf("passkey: origin %q is not scheme://host[:port]", o)
	}
	if host := u.Hostname(); host != rpID && !strings.HasSuffix(host, "."+rpID) {
		return fmt.Errorf("passkey: origin %q is not on the RPID %q or a subdomain", o, rpID)
	}
	return nil
}

// emailOrID is the default Config.UserName.
func emailOrID(id *session.Identity) string {
	var traits struct {
		Email string `json:"email"`
	}
	if json.Unmarshal(id.Traits, &traits) == nil && traits.Email != "" {
		return traits.Email
	}
	return id.ID
}

// user is an identity's keys as go-webauthn sees them.
type user struct {
	handle []byte
	name   string
	keys   []webauthn.Credential
}

func (u *user) WebAuthnID() []byte                         { return u.handle }
func (u *user) WebAuthnName() string                       { return u.name }
func (u *user) WebAuthnDisplayName() string                { return u.name }
func (u *user) WebAuthnCredentials() []webauthn.Credential { return u.keys }

// ceremonyState is a login challenge's server-side half, kept in the
// flow's method state: the library's session data and when it expires.
type ceremonyState struct {
	Session webauthn.SessionData `json:"session"`
	Expires time.Time            `json:"expires"`
	// IdentityID is the identity a passwordless security key login's
	// second step is for; "" for a decoy (an unknown identifier).
	IdentityID string `json:"identity_id,omitempty"`
	// Identifier is what that step was asked for.
	Identifier string `json:"identifier,omitempty"`
}

// decodeState reads a ceremony state; nil for none.
func decodeState(raw json.RawMessage) (*ceremonyState, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var st ceremonyState
	if err := json.Unmarshal(raw, &st); err != nil {
		return nil, fmt.Errorf("passkey: ceremony state: %w", err)
	}
	return &st, nil
}

// optionsJSON is the options a node carries, as go-webauthn marshals them.
func optionsJSON(a *protocol.CredentialAssertion) (string, error) {
	b, err := json.Marshal(a)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// marshalState encodes a ceremony state for the flow.
func marshalState(st *ceremonyState) ([]byte, error) {
	return json.Marshal(st)
}
