// Package demo is the example server behind examples/server: flags, a
// seeded identity (optionally with a TOTP authenticator, backup codes,
// passkeys and security keys), the handler with the second-factor methods
// (and, with -code-login, login by a code sent by email; with -passkey and
// -webauthn, passkeys and security keys), and plain HTML pages for login,
// errors, a welcome page, a settings page that enrols the second factors
// and keys and, when no SMTP server is configured, an outbox of the mails
// it would have sent.
// Backends in other modules reuse it with their own stores.
package demo

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/authflow/authflow/courier"
	"github.com/authflow/authflow/internal/uuid"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/login/code"
	"github.com/authflow/authflow/login/lookup"
	"github.com/authflow/authflow/login/password"
	"github.com/authflow/authflow/login/totp"
	"github.com/authflow/authflow/session"
)

// Options are the server's settings, filled from its flags.
type Options struct {
	Addr              string
	PublicURL         string
	Identifier        string
	Password          string
	FlowLifespan      time.Duration
	UIURL             string
	ErrorURL          string
	DefaultReturnURL  string
	AfterLogoutURL    string // -after-logout-url; "" means DefaultReturnURL
	AllowedReturnURLs []string
	SessionCookie     string // "" keeps the handler's default naming
	Hasher            string
	BcryptCost        int
	ThrottleFailures  int            // free failures per identifier and address; 0 turns throttling off
	ThrottleWindow    time.Duration  // how long failures are remembered
	OIDCProviders     []OIDCProvider // -oidc-provider, in order
	OIDCLinks         []OIDCLink     // -oidc-link, seeded at start
	TrustedProxies    []netip.Prefix // -trusted-proxy: whose X-Forwarded-For is believed
	TOTPSecret        string         // -totp-secret: base32, upper case, unpadded; "" seeds none
	LookupCodes       []string       // -lookup-codes: backup codes to seed; nil seeds none
	RequiredAAL       string         // -required-aal: login.RequireAAL1 or login.RequireHighestAvailable
	LoginStyle        string         // -login-style: login.LoginStyleUnified or login.LoginStyleIdentifierFirst
	// CodeLogin (-code-login) offers login by a code sent by email
	// (login/code); the other Code and SMTP fields only matter with it.
	CodeLogin bool
	// SMTPURL (-smtp-url) is the SMTP server as Kratos' connection URI
	// (smtp://host:port/?disable_starttls=true, smtps://user:pass@host);
	// "" keeps the mails in memory, shown on the /mail page.
	SMTPURL            string
	SMTPFrom           string        // -smtp-from: the sender; default no-reply@<public host name>
	CodeLifespan       time.Duration // -code-lifespan: how long a login code is valid
	CodeMaxSubmissions int           // -code-max-submissions: codes submitted per flow
	// CodeHashKey (-code-hash-key, hex) keys the HMAC under which codes
	// are stored; nil means random per process, so copies of the server
	// that share a flow store must share one.
	CodeHashKey  []byte
	SeedCodeOnly []string // -seed-code-only: addresses of identities without password, seeded at start
	// Passkey (-passkey) offers passkeys (login/passkey) as a first
	// factor; WebAuthn (-webauthn) security keys as a second factor. The
	// settings page then lists and enrols them.
	Passkey  bool
	WebAuthn bool
	// WebAuthnRPID (-webauthn-rp-id) is the relying party id, a domain;
	// WebAuthnOrigins (-webauthn-origin) the origins of the pages that run
	// ceremonies (default: the public URL's); WebAuthnRPName
	// (-webauthn-rp-name) the name authenticators show.
	WebAuthnRPID    string
	WebAuthnOrigins []string
	WebAuthnRPName  string
	// SeedPasskey (-seed-passkey) and SeedWebAuthn (-seed-webauthn) are
	// Kratos credential configurations ({"credentials": [...],
	// "user_handle": ...}) given to the seeded identity; nil seeds none.
	SeedPasskey  json.RawMessage
	SeedWebAuthn json.RawMessage
	// Now is the clock of the handler, the second-factor methods and the
	// settings page; nil means time.Now. No flag sets it: tests do.
	Now func() time.Time
}

type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// ParseFlags parses the example server's flags from args (without the
// program name) into Options, applying the documented defaults. Callers may
// register flags of their own on fs first (a backend's -postgres DSN).
func ParseFlags(fs *flag.FlagSet, args []string) (Options, error) {
	var o Options
	var allowed, oidcProviders, oidcLinks, proxies, codeOnly, origins stringList
	fs.StringVar(&o.Addr, "addr", "127.0.0.1:4433", "listen address")
	fs.StringVar(&o.PublicURL, "public-url", "", "public URL including any mount prefix (default http://<addr>)")
	fs.StringVar(&o.Identifier, "identifier", "demo@example.com", "identifier of the seeded identity")
	fs.StringVar(&o.Password, "password", "correct horse battery staple", "password of the seeded identity")
	fs.DurationVar(&o.FlowLifespan, "flow-lifespan", time.Hour, "how long a login flow can be submitted")
	fs.StringVar(&o.UIURL, "ui-url", "", "login UI URL (default <public-url>/login)")
	fs.StringVar(&o.ErrorURL, "error-url", "", "error UI URL (default <public-url>/error)")
	fs.StringVar(&o.DefaultReturnURL, "default-return-url", "", "where browsers go after login (default <public-url>/welcome)")
	fs.StringVar(&o.AfterLogoutURL, "after-logout-url", "", "where browsers go after logout without return_to, such as the login UI (default: the default return URL)")
	fs.Var(&allowed, "allowed-return-url", "allowed return_to URL (repeatable; replaces the default, the public URL's origin + /)")
	fs.StringVar(&o.SessionCookie, "session-cookie", login.DefaultSessionCookieName, "session cookie name")
	fs.StringVar(&o.Hasher, "hasher", "argon2id", "password hasher: argon2id or bcrypt")
	fs.IntVar(&o.BcryptCost, "bcrypt-cost", 12, "bcrypt cost")
	fs.IntVar(&o.ThrottleFailures, "throttle-failures", 5, "free failed logins per identifier and address before delays (0 turns throttling off)")
	fs.DurationVar(&o.ThrottleWindow, "throttle-window", 15*time.Minute, "how long failed logins are remembered")
	fs.Var(&oidcProviders, "oidc-provider", "OpenID Connect provider id=ID,issuer=URL,client-id=X,client-secret=Y (repeatable; scopes openid email, claim email to trait email)")
	fs.Var(&proxies, "trusted-proxy", "CIDR of a proxy whose X-Forwarded-For gives the client address, for throttling and session devices (repeatable; a bare address means that address alone)")
	fs.Var(&oidcLinks, "oidc-link", "seed a link provider=ID,subject=SUB,email=EMAIL: the identity with that email (created if absent) signs in as that provider subject (repeatable)")
	fs.StringVar(&o.TOTPSecret, "totp-secret", "", "seed the identity's TOTP authenticator with this base32 secret (SHA1, 6 digits, 30 s), unless it has one")
	var lookupCodes string
	fs.StringVar(&lookupCodes, "lookup-codes", "", "seed the identity's backup codes, comma-separated (a,b,c), unless it has some")
	fs.StringVar(&o.RequiredAAL, "required-aal", login.RequireHighestAvailable, "assurance level a session needs to count as signed in: aal1, or highest_available (aal2 for identities with a second factor)")
	fs.StringVar(&o.LoginStyle, "login-style", login.LoginStyleUnified, "how the login asks for credentials: unified (every method at once) or identifier_first (the identifier first, then the methods)")
	fs.BoolVar(&o.CodeLogin, "code-login", false, "offer login by a one-time code sent by email")
	fs.StringVar(&o.SMTPURL, "smtp-url", "", "SMTP server for the login mails, as Kratos' connection URI: smtp://[user:pass@]host[:port]/[?disable_starttls=true] or smtps://... (default: no mail is sent; the mails are shown at <public-url>/mail, for development)")
	fs.StringVar(&o.SMTPFrom, "smtp-from", "", "sender address of the login mails (default no-reply@<public host name>)")
	fs.DurationVar(&o.CodeLifespan, "code-lifespan", code.DefaultLifespan, "how long a login code is valid")
	fs.IntVar(&o.CodeMaxSubmissions, "code-max-submissions", code.DefaultMaxSubmissions, "how many codes may be submitted per login flow")
	var codeHashKey string
	fs.StringVar(&codeHashKey, "code-hash-key", "", "hex key (16 bytes or more) of the HMAC under which login codes are stored (default: random at start; copies of the server sharing a database need the same key)")
	fs.Var(&codeOnly, "seed-code-only", "seed an identity without password that logs in by a code sent to this email address, traits {\"email\": EMAIL}, unless one exists (repeatable)")
	fs.BoolVar(&o.Passkey, "passkey", false, "offer passkeys: sign in with a passkey (also by autofill), add and remove them on the settings page")
	fs.BoolVar(&o.WebAuthn, "webauthn", false, "offer security keys (WebAuthn) as a second factor: the step-up asks for one, the settings page adds and removes them")
	fs.StringVar(&o.WebAuthnRPID, "webauthn-rp-id", "localhost", "relying party id of -passkey and -webauthn: a domain (not an IP address) that every -webauthn-origin is on or below")
	fs.Var(&origins, "webauthn-origin", "`ORIGIN` of pages that run passkey and security-key ceremonies, such as http://localhost:4433 (repeatable; default the -public-url's origin; add a separate login UI's)")
	fs.StringVar(&o.WebAuthnRPName, "webauthn-rp-name", DefaultRPName, "name of the service that authenticators show when a passkey or security key is added")
	var seedPasskey, seedWebAuthn string
	fs.StringVar(&seedPasskey, "seed-passkey", "", "seed the identity's passkeys from `FILE`, a Kratos credential config {\"credentials\":[...],\"user_handle\":\"<base64>\"} (as Kratos' admin import takes it), unless it has passkeys; needs -passkey")
	fs.StringVar(&seedWebAuthn, "seed-webauthn", "", "seed the identity's security keys from `FILE`, a Kratos credential config {\"credentials\":[...],\"user_handle\":\"<base64>\"}, unless it has security keys; needs -webauthn")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	o.SeedCodeOnly = codeOnly
	o.WebAuthnOrigins = origins
	if codeHashKey != "" {
		key, err := hex.DecodeString(strings.TrimSpace(codeHashKey))
		if err != nil || len(key) < 16 {
			return o, errors.New("-code-hash-key must be at least 16 bytes in hex (32 hex digits or more)")
		}
		o.CodeHashKey = key
	}
	switch o.LoginStyle {
	case login.LoginStyleUnified, login.LoginStyleIdentifierFirst:
	default:
		return o, fmt.Errorf("-login-style must be %s or %s, got %q", login.LoginStyleUnified, login.LoginStyleIdentifierFirst, o.LoginStyle)
	}
	var err error
	if o.TOTPSecret, err = parseTOTPSecret(o.TOTPSecret); err != nil {
		return o, err
	}
	if o.LookupCodes, err = parseLookupCodes(lookupCodes); err != nil {
		return o, err
	}
	switch o.RequiredAAL {
	case login.RequireAAL1, login.RequireHighestAvailable:
	default:
		return o, fmt.Errorf("-required-aal must be %s or %s, got %q", login.RequireAAL1, login.RequireHighestAvailable, o.RequiredAAL)
	}
	if o.OIDCProviders, o.OIDCLinks, err = parseOIDC(oidcProviders, oidcLinks); err != nil {
		return o, err
	}
	for _, p := range proxies {
		prefix, err := parsePrefix(p)
		if err != nil {
			return o, fmt.Errorf("-trusted-proxy %q: %w", p, err)
		}
		o.TrustedProxies = append(o.TrustedProxies, prefix)
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["session-cookie"] {
		o.SessionCookie = "" // the handler's default, with __Host- on https
	}
	if o.PublicURL == "" {
		o.PublicURL = "http://" + o.Addr
	}
	o.PublicURL = strings.TrimSuffix(o.PublicURL, "/")
	pub, err := url.Parse(o.PublicURL)
	if err != nil || pub.Host == "" {
		return o, fmt.Errorf("-public-url %q is not an absolute URL", o.PublicURL)
	}
	if o.UIURL == "" {
		o.UIURL = o.PublicURL + "/login"
	}
	if o.ErrorURL == "" {
		o.ErrorURL = o.PublicURL + "/error"
	}
	if o.DefaultReturnURL == "" {
		o.DefaultReturnURL = o.PublicURL + "/welcome"
	}
	o.AllowedReturnURLs = allowed
	if len(allowed) == 0 {
		o.AllowedReturnURLs = []string{pub.Scheme + "://" + pub.Host + "/"}
	}
	switch o.Hasher {
	case "argon2id", "bcrypt":
	default:
		return o, fmt.Errorf("-hasher must be argon2id or bcrypt, got %q", o.Hasher)
	}
	if o.ThrottleFailures < 0 || o.ThrottleWindow <= 0 {
		return o, fmt.Errorf("-throttle-failures must be at least 0 and -throttle-window positive")
	}
	if o.SMTPFrom == "" {
		o.SMTPFrom = defaultFrom(pub)
	}
	if err := checkCodeOptions(&o, set, pub); err != nil {
		return o, err
	}
	if err := checkWebAuthnOptions(&o, pub, seedPasskey, seedWebAuthn); err != nil {
		return o, err
	}
	return o, nil
}

// parsePrefix reads a CIDR ("10.0.0.0/8", "2001:db8::/32") or a bare
// address, which stands for itself alone.
func parsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return p.Masked(), nil
}

// Stores are the backends the server uses; nil fields mean in-memory.
type Stores struct {
	Flows      login.FlowStore
	Identities login.IdentityStore
	Sessions   login.SessionStore
	// NewLimiter makes the throttling limiter from the flags' limits; nil
	// means login.NewMemoryLimiter.
	NewLimiter func(login.Limits) login.Limiter
	// Ceremonies keeps passkey and security-key enrolments between their
	// begin and finish; nil means in memory.
	Ceremonies login.CeremonyStore
}

// Server is a configured example server. Close it (Run does) to deliver
// the mail still queued.
type Server struct {
	opts    Options
	handler *login.Handler
	outbox  *courier.Capture // the mails, when code login runs without SMTP
	http.Handler
}

// New builds the server: the login handler on stores with the TOTP and
// backup-code methods (the oidc method when providers are configured, the
// code method with -code-login), the seeded identities with their second
// factors, oidc links and code credentials, and the pages.
func New(ctx context.Context, o Options, stores Stores, logger *slog.Logger) (_ *Server, err error) {
	if stores.Identities == nil {
		stores.Identities = session.NewMemoryIdentityStore()
	}
	newLimiter := stores.NewLimiter
	if newLimiter == nil {
		newLimiter = func(l login.Limits) login.Limiter { return login.NewMemoryLimiter(l) }
	}
	now := o.Now
	if now == nil {
		now = time.Now
	}
	pub, err := url.Parse(o.PublicURL)
	if err != nil || pub.Host == "" {
		return nil, fmt.Errorf("public URL %q is not an absolute URL", o.PublicURL)
	}
	issuer := totpIssuer(pub)
	var hasher password.Hasher = password.Argon2id{}
	if o.Hasher == "bcrypt" {
		hasher = password.Bcrypt{Cost: o.BcryptCost}
	}
	if err := Seed(ctx, stores.Identities, hasher, o.Identifier, o.Password); err != nil {
		return nil, err
	}
	if err := SeedSecondFactors(ctx, stores.Identities, o.Identifier, issuer, o.TOTPSecret, o.LookupCodes); err != nil {
		return nil, err
	}
	if err := SeedOIDCLinks(ctx, stores.Identities, o.OIDCLinks); err != nil {
		return nil, err
	}
	if o.CodeLogin {
		if err := SeedCodeLogin(ctx, stores.Identities, o.Identifier, o.SeedCodeOnly); err != nil {
			return nil, err
		}
	}
	if err := SeedKeys(ctx, stores.Identities, o.Identifier, o.SeedPasskey, o.SeedWebAuthn); err != nil {
		return nil, err
	}
	keys, err := newKeyMethods(o, stores.Identities, stores.Ceremonies)
	if err != nil {
		return nil, err
	}
	var methods []login.Method
	if keys.passkey != nil {
		methods = append(methods, keys.passkey)
	}
	codeLogin, outbox, err := codeMethod(o, logger)
	if err != nil {
		return nil, err
	}
	if codeLogin != nil {
		// Until the handler owns it: stop its mail queue if New fails.
		defer func() {
			if err != nil {
				_ = codeLogin.Close(context.Background())
			}
		}()
		methods = append(methods, codeLogin)
	}
	social, err := oidcMethod(o.OIDCProviders)
	if err != nil {
		return nil, err
	}
	if social != nil {
		methods = append(methods, social)
	}
	authenticator, err := totp.New(totp.Config{Issuer: issuer, Now: now})
	if err != nil {
		return nil, err
	}
	backupCodes, err := lookup.New(lookup.Config{Now: now})
	if err != nil {
		return nil, err
	}
	methods = append(methods, authenticator, backupCodes)
	if keys.webauthn != nil {
		methods = append(methods, keys.webauthn)
	}
	h, err := login.New(login.Config{
		Methods:           methods,
		RequiredAAL:       o.RequiredAAL,
		LoginStyle:        o.LoginStyle,
		PublicURL:         o.PublicURL,
		LoginUIURL:        o.UIURL,
		ErrorUIURL:        o.ErrorURL,
		DefaultReturnURL:  o.DefaultReturnURL,
		AfterLogoutURL:    o.AfterLogoutURL,
		AllowedReturnURLs: o.AllowedReturnURLs,
		FlowStore:         stores.Flows,
		IdentityStore:     stores.Identities,
		SessionStore:      stores.Sessions,
		FlowLifespan:      o.FlowLifespan,
		SessionCookieName: o.SessionCookie,
		Hasher:            hasher,
		IdentifierLabel:   "E-Mail",
		Logger:            logger,
		TrustedProxies:    o.TrustedProxies,
		DisableThrottling: o.ThrottleFailures == 0,
		Limiter:           newLimiter(login.Limits{FreeFailures: max(o.ThrottleFailures, 1), Window: o.ThrottleWindow}),
		Now:               o.Now,
	})
	if err != nil {
		return nil, err
	}
	prefix := strings.TrimSuffix(pub.Path, "/")
	settings, err := newSettingsPage(stores.Identities, authenticator, keys, o.PublicURL, now)
	if err != nil {
		return nil, err
	}
	s := &Server{opts: o, handler: h, outbox: outbox}
	mux := http.NewServeMux()
	mux.Handle(prefix+"/self-service/", http.StripPrefix(prefix, h))
	mux.Handle(prefix+"/sessions/", http.StripPrefix(prefix, h))
	mux.Handle("GET "+prefix+"/.well-known/ory/", http.StripPrefix(prefix, h))
	mux.Handle("GET "+prefix+"/login", http.HandlerFunc(s.loginPage))
	mux.Handle("GET "+prefix+"/error", http.HandlerFunc(s.errorPage))
	// RequireSession, not Middleware: an aal1 session that still needs its
	// second factor must be sent to the step-up, not back to a login that
	// answers "already signed in" with this page.
	mux.Handle("GET "+prefix+"/welcome", h.RequireSession(http.HandlerFunc(s.welcomePage)))
	mux.Handle("GET "+prefix+"/settings", h.RequireSession(http.HandlerFunc(settings.show)))
	mux.Handle("POST "+prefix+"/settings", h.RequireSession(http.HandlerFunc(settings.change)))
	mux.Handle("GET "+prefix+triggersJSPath, http.HandlerFunc(serveTriggersJS))
	// The enrolment APIs of the keys, for the settings page's forms (and
	// scripts): behind RequireSession, and behind the settings page's rule
	// that changing a second factor needs aal2 once there is one.
	if keys.passkey != nil {
		mux.Handle(prefix+passkeysPath+"/", h.RequireSession(settings.guardKeys(http.StripPrefix(prefix+passkeysPath, keys.passkey.EnrolmentHandler()))))
	}
	if keys.webauthn != nil {
		mux.Handle(prefix+securityKeysPath+"/", h.RequireSession(settings.guardKeys(http.StripPrefix(prefix+securityKeysPath, keys.webauthn.EnrolmentHandler()))))
	}
	if outbox != nil {
		mux.Handle("GET "+prefix+"/mail", http.HandlerFunc(s.outboxPage))
	}
	mux.Handle("GET "+prefix+"/{$}", http.RedirectHandler(o.PublicURL+"/welcome", http.StatusSeeOther))
	s.Handler = logRequests(logger, mux)
	return s, nil
}

// totpIssuer is the name authenticator apps show for the server: the
// public URL's host name, as Kratos' default, unless it has a colon (an
// IPv6 address), which an otpauth issuer cannot have.
func totpIssuer(pub *url.URL) string {
	if h := pub.Hostname(); !strings.Contains(h, ":") {
		return h
	}
	return "authflow"
}

// Seed creates the demo identity, with traits {"email": identifier} and a
// password, unless an identity with that identifier exists already.
func Seed(ctx context.Context, ids login.IdentityStore, hasher password.Hasher, identifier, secret string) error {
	normalized, err := login.NormalizeIdentifier(identifier)
	if err != nil {
		return fmt.Errorf("seed identifier: %w", err)
	}
	if _, _, err := ids.FindIdentity(ctx, session.CredentialPassword, normalized); err == nil {
		return nil
	} else if !errors.Is(err, session.ErrNotFound) {
		return fmt.Errorf("seed: %w", err)
	}
	cred, err := login.NewPasswordCredential(ctx, hasher, identifier, secret)
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	traits, _ := json.Marshal(map[string]string{"email": identifier})
	now := time.Now().UTC()
	id := &session.Identity{
		ID:             uuid.New(),
		SchemaID:       "default",
		State:          session.StateActive,
		StateChangedAt: &now,
		Traits:         traits,
		CreatedAt:      now,
		UpdatedAt:      now,
	}
	if err := ids.CreateIdentity(ctx, id, cred); err != nil && !errors.Is(err, session.ErrConflict) {
		return fmt.Errorf("seed: %w", err)
	}
	return nil
}

// mailDrainTimeout bounds how long Run waits, after the HTTP server
// stopped, for the queued mail to be delivered.
const mailDrainTimeout = 10 * time.Second

// Run listens on o.Addr, prints "listening on <public-url>" to out when
// ready, and serves until ctx ends; then it stops the HTTP server and
// closes the server (Close), so that the queued mail is delivered.
func (s *Server) Run(ctx context.Context, out io.Writer) error {
	ln, err := net.Listen("tcp", s.opts.Addr)
	if err != nil {
		_ = s.Close(context.Background())
		return err
	}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(out, "listening on %s\n", s.opts.PublicURL)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err = <-errc:
	case <-ctx.Done():
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = srv.Shutdown(shutdown)
	}
	drain, cancel := context.WithTimeout(context.Background(), mailDrainTimeout)
	defer cancel()
	return errors.Join(err, s.Close(drain))
}

// Close stops the handler's background work (login.Handler.Close): the
// code method's mail queue delivers what is queued until ctx ends. Call it
// once, after the server stopped serving; Run does.
func (s *Server) Close(ctx context.Context) error { return s.handler.Close(ctx) }

// logRequests logs one line per request: method, path (never the query,
// which may hold tokens), status and duration.
func logRequests(logger *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		logger.Info("request", "method", r.Method, "path", r.URL.Path, "status", sw.status, "duration", time.Since(start))
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}
