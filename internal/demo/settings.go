package demo

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/login/lookup"
	"github.com/authflow/authflow/login/totp"
	"github.com/authflow/authflow/session"
)

const (
	// pendingKeyLifespan is how long a TOTP key shown on the settings page
	// can be confirmed with its first code.
	pendingKeyLifespan = 10 * time.Minute
	// maxPendingKeys bounds the keys kept for confirmation; the oldest goes
	// first.
	maxPendingKeys = 10_000
	// maxSettingsBody bounds a settings form post.
	maxSettingsBody = 8 << 10
	// qrSize is the width and height of the QR code, in pixels.
	qrSize = 256
)

// settingsPage is the demo's account page, {prefix}/settings: it enrols a
// TOTP authenticator and makes new backup codes for the signed-in identity,
// and with -passkey and -webauthn lists its passkeys and security keys
// with their remove buttons and the forms that add one (webauthn.js runs
// the ceremony and posts to the methods' enrolment handlers, whose
// unsafe requests guardKeys checks first).
// It is served behind Handler.RequireSession, so under
// RequireHighestAvailable an aal1 session of an identity that has a second
// factor is sent to the step-up first.
//
// Secrets stay on the server: the TOTP key being set up is kept in memory
// by session id (pendingKeys) until its first code confirms it, never in
// the form; nothing on this page is logged. Its posts are CSRF-protected by
// a token bound to the session (settingsCSRFToken). Changing a second
// factor needs an aal2 session once the identity has one, whatever
// Config.RequiredAAL says (Kratos' settings flows do the same by default).
type settingsPage struct {
	ids    login.IdentityStore
	totp   *totp.Method
	keys   keyMethods // nil methods: not offered
	public string
	now    func() time.Time

	csrfKey [32]byte // signs the CSRF tokens; new at every start

	mu      sync.Mutex
	pending map[string]pendingKey // by session id
}

type pendingKey struct {
	key     *totp.Key
	expires time.Time
}

func newSettingsPage(ids login.IdentityStore, m *totp.Method, keys keyMethods, public string, now func() time.Time) (*settingsPage, error) {
	p := &settingsPage{ids: ids, totp: m, keys: keys, public: public, now: now, pending: map[string]pendingKey{}}
	if _, err := rand.Read(p.csrfKey[:]); err != nil {
		return nil, err
	}
	return p, nil
}

// settingsCSRFToken is the CSRF token of the settings page's forms for the
// session with id sessionID: HMAC-SHA256 under a key made at start, so a
// page of another site cannot know it, and a token of one session is
// useless in another. The session id is not secret; the key is.
func (p *settingsPage) settingsCSRFToken(sessionID string) string {
	mac := hmac.New(sha256.New, p.csrfKey[:])
	mac.Write([]byte("authflow demo settings\x00" + sessionID))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// validSettingsCSRF reports, in constant time, whether token is the
// session's settings CSRF token.
func (p *settingsPage) validSettingsCSRF(sessionID, token string) bool {
	return hmac.Equal([]byte(token), []byte(p.settingsCSRFToken(sessionID)))
}

// pendingKey returns the TOTP key being set up in the session, making a
// new one when there is none or it expired. Expired keys are dropped on
// the way, and the oldest ones when there are too many.
func (p *settingsPage) pendingKey(sessionID, account string) (*totp.Key, error) {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if k, ok := p.pending[sessionID]; ok && now.Before(k.expires) {
		return k.key, nil
	}
	key, err := p.totp.NewKey(account)
	if err != nil {
		return nil, err
	}
	for id, k := range p.pending {
		if !now.Before(k.expires) {
			delete(p.pending, id)
		}
	}
	for len(p.pending) >= maxPendingKeys {
		oldest := ""
		for id, k := range p.pending {
			if oldest == "" || k.expires.Before(p.pending[oldest].expires) {
				oldest = id
			}
		}
		delete(p.pending, oldest)
	}
	p.pending[sessionID] = pendingKey{key: key, expires: now.Add(pendingKeyLifespan)}
	return key, nil
}

// currentPendingKey returns the session's unexpired pending key, or nil.
func (p *settingsPage) currentPendingKey(sessionID string) *totp.Key {
	p.mu.Lock()
	defer p.mu.Unlock()
	if k, ok := p.pending[sessionID]; ok && p.now().Before(k.expires) {
		return k.key
	}
	return nil
}

func (p *settingsPage) dropPendingKey(sessionID string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.pending, sessionID)
}

type settingsView struct {
	Email      string
	AAL        string
	Action     string
	CSRF       string
	WelcomeURL string
	// StepUpURL is set when the session must verify its second factor
	// before changing one; the forms are not shown then.
	StepUpURL string

	HasTOTP bool
	QR      template.URL // data:image/png;base64,... of the pending key
	Secret  string       // the pending key's secret, for typing it in

	HasCodes  bool
	Remaining int
	NewCodes  []string // shown once, right after they were made

	// Passkeys and SecurityKeys are the -passkey and -webauthn sections,
	// nil when the method is off.
	Passkeys     *keySection
	SecurityKeys *keySection
	// RefreshURL is set when the session signed in too long ago to change
	// its keys: a refresh login that comes back here.
	RefreshURL string
	// Scripts are the page's scripts (webauthn.js and the demo's), when
	// it offers to add a key.
	Scripts []scriptView

	Message string
	Error   string
}

// show renders the page: the TOTP status (or a key to scan and a form for
// its first code) and the backup codes' status.
func (p *settingsPage) show(w http.ResponseWriter, r *http.Request) {
	sess, ok := session.FromContext(r.Context())
	if !ok {
		http.Error(w, "Sign in first.", http.StatusUnauthorized)
		return
	}
	v, err := p.view(r, sess)
	if err != nil {
		http.Error(w, "The settings page is unavailable, please retry.", http.StatusInternalServerError)
		return
	}
	render(w, "settings.html", v)
}

// change handles the page's two forms: action=enable-totp with the first
// code of the pending key, and action=regenerate-codes.
func (p *settingsPage) change(w http.ResponseWriter, r *http.Request) {
	sess, ok := session.FromContext(r.Context())
	if !ok {
		http.Error(w, "Sign in first.", http.StatusUnauthorized)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxSettingsBody)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "The form could not be read.", http.StatusBadRequest)
		return
	}
	if !p.validSettingsCSRF(sess.ID, r.PostForm.Get("csrf_token")) {
		http.Error(w, "The form is outdated or was not sent by this site; reload the settings page and try again.", http.StatusForbidden)
		return
	}
	ctx := r.Context()
	creds, err := p.ids.Credentials(ctx, sess.Identity.ID)
	if err != nil {
		http.Error(w, "The settings page is unavailable, please retry.", http.StatusInternalServerError)
		return
	}
	if p.needsSecondFactor(sess, creds) {
		http.Error(w, "Verify your second factor before you change it.", http.StatusForbidden)
		return
	}
	var message, problem string
	var newCodes []string
	switch r.PostForm.Get("action") {
	case "enable-totp":
		message, problem, err = p.enableTOTP(r, sess)
	case "regenerate-codes":
		newCodes, problem, err = p.regenerateCodes(r, sess, creds)
		if err == nil && problem == "" {
			message = "Your new backup codes are below. Your old ones no longer work."
		}
	default:
		http.Error(w, "Unknown action.", http.StatusBadRequest)
		return
	}
	if err != nil {
		http.Error(w, "The change could not be saved, please retry.", http.StatusInternalServerError)
		return
	}
	v, err := p.view(r, sess)
	if err != nil {
		http.Error(w, "The settings page is unavailable, please retry.", http.StatusInternalServerError)
		return
	}
	v.Message, v.Error, v.NewCodes = message, problem, newCodes
	render(w, "settings.html", v)
}

// enableTOTP confirms the session's pending key with the submitted code
// and stores it as the identity's TOTP credential. A wrong code or an
// expired key is a problem for the user (the page shows it), not an error.
func (p *settingsPage) enableTOTP(r *http.Request, sess *session.Session) (message, problem string, err error) {
	key := p.currentPendingKey(sess.ID)
	if key == nil {
		return "", "The setup expired. Scan the new QR code and enter its code.", nil
	}
	cred, err := p.totp.NewCredential(sess.Identity.ID, key, r.PostForm.Get("totp_code"))
	if errors.Is(err, totp.ErrInvalidCode) {
		return "", "The code is invalid, please try again with the current code of your app.", nil
	}
	if err != nil {
		return "", "", err
	}
	cred.Version = 0 // a new credential type
	err = p.ids.UpdateCredential(r.Context(), sess.Identity.ID, &cred)
	if errors.Is(err, session.ErrConflict) {
		p.dropPendingKey(sess.ID)
		return "", "An authenticator app is already set up.", nil
	}
	if err != nil {
		return "", "", err
	}
	p.dropPendingKey(sess.ID)
	return "Your authenticator app is set up: from now on, signing in asks for its code.", "", nil
}

// regenerateCodes replaces the identity's backup codes with new ones,
// conditional on the version of the credential the page read.
func (p *settingsPage) regenerateCodes(r *http.Request, sess *session.Session, creds []session.Credential) (codes []string, problem string, err error) {
	codes, err = lookup.NewCodes()
	if err != nil {
		return nil, "", err
	}
	cred, err := lookup.NewCredential(sess.Identity.ID, codes)
	if err != nil {
		return nil, "", err
	}
	cred.Version = 0
	if i := slices.IndexFunc(creds, func(c session.Credential) bool { return c.Type == session.CredentialLookup }); i >= 0 {
		cred.Version = creds[i].Version
	}
	err = p.ids.UpdateCredential(r.Context(), sess.Identity.ID, &cred)
	if errors.Is(err, session.ErrConflict) {
		return nil, "Your backup codes changed meanwhile; generate new ones again.", nil
	}
	if err != nil {
		return nil, "", err
	}
	return codes, "", nil
}

// needsSecondFactor reports whether the session must step up before it
// changes a second factor: its identity has one (a TOTP authenticator,
// backup codes, or with -webauthn a security key) and it is not aal2.
func (p *settingsPage) needsSecondFactor(sess *session.Session, creds []session.Credential) bool {
	has := slices.ContainsFunc(creds, func(c session.Credential) bool {
		return c.Type == session.CredentialTOTP || c.Type == session.CredentialLookup
	}) || p.keys.webauthn != nil && hasSecurityKey(creds)
	return has && sess.AAL != flow.AAL2
}

// stepUpURL is where the session verifies its second factor and comes
// back to the settings.
func (p *settingsPage) stepUpURL() string {
	return p.public + "/self-service/login/browser?" + url.Values{
		"aal": {flow.AAL2}, "return_to": {p.public + "/settings"},
	}.Encode()
}

// view reads the identity's credentials into the page's view.
func (p *settingsPage) view(r *http.Request, sess *session.Session) (settingsView, error) {
	var traits struct {
		Email string `json:"email"`
	}
	_ = json.Unmarshal(sess.Identity.Traits, &traits)
	v := settingsView{
		Email:      traits.Email,
		AAL:        sess.AAL,
		Action:     p.public + "/settings",
		CSRF:       p.settingsCSRFToken(sess.ID),
		WelcomeURL: p.public + "/welcome",
	}
	creds, err := p.ids.Credentials(r.Context(), sess.Identity.ID)
	if err != nil {
		return v, err
	}
	for _, c := range creds {
		switch c.Type {
		case session.CredentialTOTP:
			v.HasTOTP = true
		case session.CredentialLookup:
			v.HasCodes = true
			if v.Remaining, err = lookup.Remaining(c); err != nil {
				return v, err
			}
		}
	}
	if p.needsSecondFactor(sess, creds) {
		v.StepUpURL = p.stepUpURL()
		return v, p.keysView(r, sess, &v, false)
	}
	if err := p.keysView(r, sess, &v, true); err != nil {
		return v, err
	}
	if v.Passkeys != nil && v.Passkeys.Options != "" || v.SecurityKeys != nil && v.SecurityKeys.Options != "" {
		// The handler's script node, with the src made absolute.
		script := (&login.FlowRequest{}).WebAuthnScript()
		script.Attributes.Src = p.public + script.Attributes.Src
		v.Scripts = pageScripts(p.public, script)
	}
	if !v.HasTOTP {
		account := traits.Email // the name the authenticator app shows
		if account == "" || strings.Contains(account, ":") {
			account = sess.Identity.ID
		}
		key, err := p.pendingKey(sess.ID, account)
		if err != nil {
			return v, err
		}
		png, err := key.PNG(qrSize)
		if err != nil {
			return v, err
		}
		v.QR = template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(png))
		v.Secret = key.Secret
	}
	return v, nil
}
