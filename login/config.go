package login

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/go-playground/form/v4"

	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/internal/returnto"
	"github.com/authflow/authflow/login/password"
	"github.com/authflow/authflow/session"
)

// Values of Config.LoginStyle.
const (
	LoginStyleUnified         = "unified"
	LoginStyleIdentifierFirst = "identifier_first"
)

// Values of Config.RequiredAAL.
const (
	RequireAAL1             = "aal1"
	RequireHighestAvailable = "highest_available"
)

// Defaults of the optional Config fields.
const (
	DefaultFlowLifespan      = time.Hour
	DefaultSessionLifespan   = 24 * time.Hour
	DefaultSessionCookieName = "authflow_session"
	DefaultCSRFCookieName    = "authflow_csrf"
)

// Config configures a Handler. PublicURL, LoginUIURL, ErrorUIURL and
// DefaultReturnURL are required; every other field has the documented
// default when left zero. New copies the Config: changing it afterwards has
// no effect.
type Config struct {
	// PublicURL is the absolute URL at which the handler is reachable,
	// including any mount prefix (for http.StripPrefix), e.g.
	// "https://example.com/auth". Flows' ui.action and request_url are
	// built from it, never from request headers. Required.
	PublicURL string
	// LoginUIURL is the page that renders a flow; browsers are sent to
	// LoginUIURL?flow=<id>. May be relative (e.g. "/login"). Required.
	LoginUIURL string
	// ErrorUIURL is the page that shows a forwarded error; browsers are sent
	// to ErrorUIURL?id=<id>. May be relative. Required.
	ErrorUIURL string
	// DefaultReturnURL is where browsers go after login and logout when no
	// return_to applies. Absolute. Required.
	DefaultReturnURL string
	// AfterLogoutURL is where browsers go after logout when the logout has
	// no return_to (Kratos' selfservice.flows.logout.after.
	// default_browser_return_url), such as the login page. Absolute; ""
	// means DefaultReturnURL.
	AfterLogoutURL string

	// FlowStore keeps flows and forwarded errors; nil means a new
	// flow.MemoryStore.
	FlowStore FlowStore
	// IdentityStore finds identities; nil means a new
	// session.MemoryIdentityStore (empty: add identities to it, see
	// NewPasswordCredential).
	IdentityStore IdentityStore
	// SessionStore keeps sessions; nil means a new session.MemoryStore.
	SessionStore SessionStore

	// Methods are login methods in addition to the built-in password
	// method, in the order their nodes appear within a group.
	Methods []Method
	// DisablePassword turns the built-in password method off; its
	// submissions are then answered 404.
	DisablePassword bool
	// Hasher makes and verifies password hashes; nil means
	// password.Argon2id{} (RFC 9106's second recommended parameters).
	Hasher password.Hasher
	// IdentifierLabel, when set, labels the identifier field (message
	// 1070002); the default label is 1070004 "ID".
	IdentifierLabel string

	// AllowedReturnURLs lists where return_to may lead: absolute http(s)
	// URLs, with an optional leading "*." wildcard label; the path admits
	// itself and everything below it. Nil means the origin of
	// DefaultReturnURL ("https://app.example.com/"). PublicURL +
	// "/self-service" is always allowed.
	AllowedReturnURLs []string

	// FlowLifespan is how long a flow can be submitted; 0 means one hour.
	FlowLifespan time.Duration
	// SessionLifespan is how long a session lasts after its latest
	// authentication; 0 means 24 hours.
	SessionLifespan time.Duration

	// SessionCookieName names the session cookie; "" means
	// "authflow_session", with the "__Host-" prefix when PublicURL is https
	// and CookieDomain is empty. A configured name is used verbatim.
	SessionCookieName string
	// CSRFCookieName names the CSRF cookie; "" means "authflow_csrf", with
	// the same prefix rule.
	CSRFCookieName string
	// CookieDomain sets the cookies' Domain attribute; "" means none
	// (host-only cookies).
	CookieDomain string

	// TrustedProxies are the networks whose X-Forwarded-For header is
	// believed for the client address, which throttling counts attempts by
	// (an IPv6 client by its /64) and sessions record; nil means none: the
	// connection's remote address is used. The nearest entry of the chain
	// that is not a trusted proxy is the client.
	TrustedProxies []netip.Prefix

	// LoginStyle is how a login flow asks for credentials:
	// LoginStyleUnified (""), every first-factor method's form at once, or
	// LoginStyleIdentifierFirst, the identifier alone first (social sign-in
	// buttons stay), then the methods for it (CONTRACT-CODE §9 and §10).
	// Whatever the identifier, the second step is the same, so it reveals
	// nothing about accounts.
	LoginStyle string

	// RequiredAAL is the assurance level a session must have to count as
	// signed in (Kratos' session.whoami.required_aal): RequireAAL1, or
	// RequireHighestAvailable, where a session of an identity that has a
	// second factor counts only once it is aal2. It governs whoami (403
	// session_aal2_required), RequireSession and Middleware, and the answer
	// to a first-factor login of such an identity (sent on to the step-up
	// flow). "" means RequireHighestAvailable when a second-factor method
	// is configured, else RequireAAL1.
	RequiredAAL string

	// Limiter throttles password guessing; nil means a MemoryLimiter with
	// the default Limits (5 free failures per identifier and address, then
	// a doubling delay; at most 100 failures per identifier and hour).
	Limiter Limiter
	// DisableThrottling turns the Limiter off.
	DisableThrottling bool
	// MaxConcurrentHashes bounds how many password hashes are computed at
	// once, so that a burst of logins queues instead of exhausting memory
	// (argon2id is memory-hard); 0 means runtime.NumCPU(). A request whose
	// context ends while it waits gives up.
	MaxConcurrentHashes int

	// BeforeAttempt, when set, runs for every submission that passed field
	// validation and the CSRF check, before any credential is checked: the
	// place for a host's own throttling, captcha or IP policy. Returning an
	// error refuses the attempt: Refuse(msg) puts msg on the flow, an
	// *autherrors.Error is answered as that envelope, any other error is an
	// internal error.
	BeforeAttempt func(ctx context.Context, a *Attempt) error
	// AfterFailure, when set, runs after a method refused the credentials
	// (wrong password, unknown identifier); err is the refusal. It cannot
	// change the answer.
	AfterFailure func(ctx context.Context, a *Attempt, err error)
	// AfterVerification, when set, runs after the credentials are verified
	// and before the session is issued; returning an error refuses the
	// login as BeforeAttempt does, for example
	// Refuse(flow.AddressNotVerified()) for an unverified address (4000010).
	AfterVerification func(ctx context.Context, a *Attempt, id *session.Identity) error
	// OnEvent, when set, receives the outcome of every request the handler
	// serves, for metrics or audit logs. It runs on the request's goroutine
	// after the response is written; keep it fast.
	OnEvent func(ctx context.Context, e Event)

	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives the handler's error log (never secrets); nil means
	// slog.Default().
	Logger *slog.Logger
}

// New validates cfg and returns a Handler. It returns an error naming the
// field when a required field is missing or a URL is malformed.
func New(cfg Config) (*Handler, error) {
	var errs []error
	public, err := parseAbsolute("PublicURL", cfg.PublicURL)
	errs = append(errs, err)
	if err == nil && (public.RawQuery != "" || public.Fragment != "") {
		errs = append(errs, errors.New("login: PublicURL must not have a query or fragment"))
	}
	_, err = parseReference("LoginUIURL", cfg.LoginUIURL)
	errs = append(errs, err)
	_, err = parseReference("ErrorUIURL", cfg.ErrorUIURL)
	errs = append(errs, err)
	defaultReturn, err := parseAbsolute("DefaultReturnURL", cfg.DefaultReturnURL)
	errs = append(errs, err)
	afterLogout := defaultReturn
	if cfg.AfterLogoutURL != "" {
		afterLogout, err = parseAbsolute("AfterLogoutURL", cfg.AfterLogoutURL)
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.FlowLifespan < 0 || cfg.SessionLifespan < 0 {
		return nil, errors.New("login: lifespans must not be negative")
	}

	h := &Handler{cfg: cfg}
	h.cfg.TrustedProxies = slices.Clone(cfg.TrustedProxies) // the caller's slice is not shared
	h.public = strings.TrimSuffix(public.String(), "/")
	h.secure = public.Scheme == "https"
	h.defaultReturn = defaultReturn
	h.defaultReturnURL = defaultReturn.String()
	h.loginUI, h.errorUI = newQueryURL(cfg.LoginUIURL), newQueryURL(cfg.ErrorUIURL)
	h.afterLogout = afterLogout

	allowed := cfg.AllowedReturnURLs
	if allowed == nil {
		allowed = []string{(&url.URL{Scheme: defaultReturn.Scheme, Host: defaultReturn.Host, Path: "/"}).String()}
	}
	allowed = append(append([]string(nil), allowed...), h.public+"/self-service")
	if h.returnTo, err = returnto.New(allowed); err != nil {
		return nil, fmt.Errorf("login: AllowedReturnURLs: %w", err)
	}

	if h.cfg.FlowLifespan == 0 {
		h.cfg.FlowLifespan = DefaultFlowLifespan
	}
	if h.cfg.SessionLifespan == 0 {
		h.cfg.SessionLifespan = DefaultSessionLifespan
	}
	if h.cfg.Now == nil {
		h.cfg.Now = time.Now
	}
	if h.cfg.Logger == nil {
		h.cfg.Logger = slog.Default()
	}
	if h.cfg.FlowStore == nil {
		h.cfg.FlowStore = flow.NewMemoryStore(h.now)
	}
	if h.cfg.IdentityStore == nil {
		h.cfg.IdentityStore = session.NewMemoryIdentityStore()
	}
	if h.cfg.SessionStore == nil {
		h.cfg.SessionStore = session.NewMemoryStore(h.now)
	}
	h.spanStores()
	if h.cfg.Hasher == nil {
		h.cfg.Hasher = password.Argon2id{}
	}
	if h.cfg.MaxConcurrentHashes < 0 {
		return nil, errors.New("login: MaxConcurrentHashes must not be negative")
	}
	if h.cfg.MaxConcurrentHashes == 0 {
		h.cfg.MaxConcurrentHashes = runtime.NumCPU()
	}
	h.hasher = newLimitedHasher(h.cfg.Hasher, h.cfg.MaxConcurrentHashes)
	switch {
	case h.cfg.DisableThrottling:
		h.limiter = nil
	case h.cfg.Limiter != nil:
		h.limiter = h.cfg.Limiter
	default:
		h.limiter = NewMemoryLimiter(Limits{Now: h.now})
	}
	h.sessionCookieName = cookieName(cfg.SessionCookieName, DefaultSessionCookieName, h.secure, cfg.CookieDomain)
	h.csrfCookieName = cookieName(cfg.CSRFCookieName, DefaultCSRFCookieName, h.secure, cfg.CookieDomain)

	label := flow.LabelID()
	if cfg.IdentifierLabel != "" {
		label = flow.LabelTitle(cfg.IdentifierLabel, "identifier")
	}
	h.identifierLabel = label
	h.methods = map[string]Method{}
	if !cfg.DisablePassword {
		h.password = &passwordMethod{hasher: h.hasher, logger: h.cfg.Logger}
		h.order = append(h.order, h.password)
	}
	for _, m := range cfg.Methods {
		if m == nil || m.ID() == "" {
			return nil, errors.New("login: Methods contains a nil method or one without ID")
		}
		if strings.HasPrefix(m.ID(), "_") {
			return nil, fmt.Errorf("login: method ID %q is reserved (IDs starting with \"_\" name the handler's own flow state)", m.ID())
		}
		if _, dup := h.methods[m.ID()]; dup || (m.ID() == "password" && !cfg.DisablePassword) {
			return nil, fmt.Errorf("login: two methods have the ID %q", m.ID())
		}
		h.order = append(h.order, m)
		h.methods[m.ID()] = m
	}
	if h.password != nil {
		h.methods["password"] = h.password
	}
	for _, m := range h.order {
		if r, ok := m.(EventReporter); ok {
			r.ReportEventsTo(h.reportBackground)
		}
		switch m.AAL() {
		case flow.AAL1:
		case flow.AAL2:
			h.secondFactors = append(h.secondFactors, m)
		default:
			return nil, fmt.Errorf("login: method %q has AAL %q; want %q or %q", m.ID(), m.AAL(), flow.AAL1, flow.AAL2)
		}
	}
	switch h.cfg.LoginStyle {
	case "":
		h.cfg.LoginStyle = LoginStyleUnified
	case LoginStyleUnified, LoginStyleIdentifierFirst:
	default:
		return nil, fmt.Errorf("login: LoginStyle must be %q or %q, got %q", LoginStyleUnified, LoginStyleIdentifierFirst, h.cfg.LoginStyle)
	}
	switch h.cfg.RequiredAAL {
	case "":
		h.cfg.RequiredAAL = RequireAAL1
		if len(h.secondFactors) > 0 {
			h.cfg.RequiredAAL = RequireHighestAvailable
		}
	case RequireAAL1, RequireHighestAvailable:
	default:
		return nil, fmt.Errorf("login: RequiredAAL must be %q or %q, got %q", RequireAAL1, RequireHighestAvailable, h.cfg.RequiredAAL)
	}
	h.cfg.Methods = nil // h.order holds them
	h.decoder = form.NewDecoder()
	h.routes()
	return h, nil
}

func parseAbsolute(field, raw string) (*url.URL, error) {
	if raw == "" {
		return nil, fmt.Errorf("login: %s is required", field)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("login: %s: %w", field, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("login: %s must be an absolute http or https URL, got %q", field, raw)
	}
	return u, nil
}

func parseReference(field, raw string) (*url.URL, error) {
	if raw == "" {
		return nil, fmt.Errorf("login: %s is required", field)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("login: %s: %w", field, err)
	}
	if u.Scheme != "" && u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("login: %s must be an http(s) URL or an absolute path, got %q", field, raw)
	}
	return u, nil
}

// cookieName applies CONTRACT Part 1 rule 13: a configured name verbatim;
// the default name with the "__Host-" prefix on https without a domain.
func cookieName(configured, def string, secure bool, domain string) string {
	if configured != "" {
		return configured
	}
	if secure && domain == "" {
		return "__Host-" + def
	}
	return def
}

// queryURL is a configured URL that answers carry one query parameter
// on (the login UI's ?flow=, the error UI's ?id=).
type queryURL struct {
	base string
	// prefix is what base with a parameter starts with when base has no
	// query or fragment: its canonical form and "?"; else "".
	prefix string
}

func newQueryURL(base string) queryURL {
	q := queryURL{base: base}
	if u, err := url.Parse(base); err == nil && u.RawQuery == "" && u.Fragment == "" && !u.ForceQuery {
		q.prefix = u.String() + "?"
	}
	return q
}

// with is withQuery(base, key, value), without parsing base again.
func (q queryURL) with(key, value string) string {
	if q.prefix == "" {
		return withQuery(q.base, key, value)
	}
	return q.prefix + url.QueryEscape(key) + "=" + url.QueryEscape(value)
}

// withQuery returns base with key=value added to its query (an existing
// query is kept).
func withQuery(base, key, value string) string {
	u, err := url.Parse(base)
	if err != nil { // validated in New
		return base
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String()
}

var _ http.Handler = (*Handler)(nil)

// spanStores picks the stores' optional capabilities that span two roles,
// each only when one store fills both: a FlowStore that is not the
// SessionStore must not keep sessions, nor a SessionStore or FlowStore that
// is not the IdentityStore answer for identities.
func (h *Handler) spanStores() {
	if c, ok := h.cfg.FlowStore.(FlowSessionCompleter); ok && sameStore(h.cfg.FlowStore, h.cfg.SessionStore) {
		h.flowSessions = c
	}
	if l, ok := h.cfg.SessionStore.(SessionIdentityLoader); ok && sameStore(h.cfg.SessionStore, h.cfg.IdentityStore) {
		h.sessionIdentities = l
	}
	if l, ok := h.cfg.FlowStore.(FlowIdentityLoader); ok && sameStore(h.cfg.FlowStore, h.cfg.IdentityStore) {
		h.flowIdentities = l
	}
}

// sameStore reports whether a and b are one store: the same pointer.
func sameStore(a, b any) bool {
	t := reflect.TypeOf(a)
	return t != nil && t.Kind() == reflect.Pointer && t == reflect.TypeOf(b) && a == b
}
