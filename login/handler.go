package login

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"runtime/debug"
	"strings"
	"time"

	"github.com/go-playground/form/v4"

	autherrors "github.com/authflow/authflow/errors"
	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/internal/returnto"
	"github.com/authflow/authflow/login/password"
)

// Handler serves the self-service login flow. It is safe for concurrent
// use; create it with New. Mount it at the root of the public URL's path,
// or under a prefix with http.StripPrefix:
//
//	mux.Handle("/auth/", http.StripPrefix("/auth", h))
//
// Routes (paths relative to the mount point):
//
//	GET    /self-service/login/browser      create a browser flow: 303 to the login UI, or 200 flow for JSON
//	GET    /self-service/login/api          create an API flow: 200 flow
//	GET    /self-service/login/flows?id=    fetch a flow: 200, 403 (CSRF), 404, 410
//	POST   /self-service/login?flow=        submit: 200, 303, 400 (flow), 410, 422, errors
//	GET    /self-service/errors?id=         fetch an error forwarded to the error UI
//	*      /sessions/whoami                 the current session: 200 or 401
//	GET    /sessions/token-exchange?init_code=&return_to_code=  a native app's session after social sign-in: 200, 400 or 403
//	GET    /self-service/logout/browser     a logout URL for the browser's session
//	GET    /self-service/logout?token=      log the browser out: 303 or 204
//	DELETE /self-service/logout/api         revoke a session token: 204 or 403
//	GET    /self-service/methods/{method}/callback/...  a CallbackMethod's callback (also POST)
//	GET    /.well-known/ory/webauthn.js     the WebAuthn and passkey script Kratos UIs load (also HEAD; cacheable, CORS)
//
// Outcomes follow CONTRACT.md; every route but the script answers a URL
// longer than MaxURLLength with 414, and a submitted body over
// MaxBodyBytes is answered 413. Every response but the script's carries
// "Cache-Control: private, no-cache, no-store, must-revalidate"; every
// response carries "X-Content-Type-Options: nosniff". Middleware and
// RequireSession let host routes use the session.
type Handler struct {
	cfg               Config
	public            string // PublicURL without a trailing slash
	secure            bool   // PublicURL is https
	defaultReturn     *url.URL
	defaultReturnURL  string   // defaultReturn.String(), made once
	loginUI, errorUI  queryURL // Config.LoginUIURL and ErrorUIURL
	afterLogout       *url.URL // Config.AfterLogoutURL, else defaultReturn
	returnTo          *returnto.Matcher
	sessionCookieName string
	csrfCookieName    string
	password          *passwordMethod   // nil when disabled
	hasher            password.Hasher   // the configured one, behind the concurrency limit
	limiter           Limiter           // nil when throttling is off
	order             []Method          // node order
	secondFactors     []Method          // the methods of AAL2, in order
	identifierLabel   flow.Message      // the identifier node's label
	methods           map[string]Method // by ID
	decoder           *form.Decoder
	mux               *http.ServeMux

	// The stores' optional capabilities that span two roles, set only when
	// one store fills both.
	flowSessions      FlowSessionCompleter  // the FlowStore, also the SessionStore
	sessionIdentities SessionIdentityLoader // the SessionStore, also the IdentityStore
	flowIdentities    FlowIdentityLoader    // the FlowStore, also the IdentityStore
}

func (h *Handler) routes() {
	mux := http.NewServeMux()
	mux.Handle("GET /self-service/login/browser", h.endpoint("login.create", h.createBrowserFlow))
	mux.Handle("GET /self-service/login/api", h.endpoint("login.create", h.createAPIFlow))
	mux.Handle("GET /self-service/login/flows", h.endpoint("login.fetch", h.fetchFlow))
	mux.Handle("POST /self-service/login", h.endpoint("login.submit", h.submit))
	mux.Handle("GET /self-service/login", h.endpoint("login.submit", h.submit)) // answered with a decode error, as Kratos does
	mux.Handle("GET /self-service/errors", h.endpoint("error.fetch", h.fetchError))
	mux.Handle("/sessions/whoami", h.endpoint("whoami", h.whoami))
	mux.Handle("GET /sessions/token-exchange", h.endpoint("session.exchange", h.tokenExchange))
	mux.Handle("GET /self-service/logout/browser", h.endpoint("logout.url", h.logoutURL))
	mux.Handle("GET /self-service/logout", h.endpoint("logout", h.logout))
	mux.Handle("DELETE /self-service/logout/api", h.endpoint("logout.api", h.logoutAPI))
	mux.Handle("GET /self-service/methods/{method}/callback/{path...}", h.endpoint("login.callback", h.callback))
	mux.Handle("POST /self-service/methods/{method}/callback/{path...}", h.endpoint("login.callback", h.callback))
	mux.HandleFunc("GET "+webAuthnJSPath, serveWebAuthnJS)
	h.mux = mux
}

// Closer is implemented by a login method that runs work in the
// background (a mail queue) and must stop with the handler.
type Closer interface {
	// Close stops the method's background work, finishing what it can
	// before ctx ends.
	Close(ctx context.Context) error
}

// Close stops the background work of the configured methods that
// implement Closer (delivering or dropping queued mail), waiting until ctx
// ends at most. Call it when the server shuts down, after the HTTP server
// stopped serving; the handler must not serve requests afterwards. It
// returns the methods' errors joined.
func (h *Handler) Close(ctx context.Context) error {
	var errs []error
	for _, m := range h.order {
		if c, ok := m.(Closer); ok {
			if err := c.Close(ctx); err != nil {
				errs = append(errs, fmt.Errorf("close %s: %w", m.ID(), err))
			}
		}
	}
	return errors.Join(errs...)
}

// ServeHTTP dispatches to the routes listed on Handler.
// Every answer, including the mux's own 404 and 405, is marked
// uncacheable.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	noCache(w)
	h.mux.ServeHTTP(w, r)
}

// exchange is one request being answered: the request, how to answer
// (JSON or redirects, decided by the endpoint as soon as it knows), cookies
// to set whatever the outcome, what the endpoint learned (for the event and
// the log), and the status written.
type exchange struct {
	r       *http.Request
	json    bool
	cookies []*http.Cookie
	seen    observation
	status  int
}

// response is a successful outcome: a JSON body with a status, a 303 to
// location, or a bare status.
type response struct {
	status   int
	body     any
	location string
	header   map[string]string
}

// endpoint adapts an endpoint function, which computes a response or an
// error, to an http.Handler that writes it through write or fail and then
// reports the outcome. A request whose URL is too long (checkURLLength)
// never reaches the endpoint.
func (h *Handler) endpoint(action string, fn func(*exchange) (*response, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		x := &exchange{r: r, seen: observation{action: action}}
		var resp *response
		err := checkURLLength(r)
		if err == nil {
			resp, err = h.call(fn, x)
		}
		if err != nil {
			h.fail(w, x, err)
		} else {
			h.write(w, x, resp)
		}
		h.report(x, err)
	})
}

// MaxURLLength is the longest request URL the Handler's endpoints accept,
// in bytes of the request target: the escaped path, plus "?" and the raw
// query when there is one. A longer URL is answered 414 with the error
// envelope (autherrors.URLTooLong), as JSON even to a browser, before
// anything is loaded or stored. Everything a flow or a forwarded error
// keeps from a request URL (the flow's request_url and return_to, a
// refused return_to quoted in an error) is therefore bounded by it.
const MaxURLLength = 4096

// checkURLLength refuses a request whose URL is longer than MaxURLLength.
// It measures both the target as the client sent it (r.RequestURI, which
// http.StripPrefix leaves as it was) and the URL the handler reads and
// stores (r.URL's escaped path and raw query, the only measure for a
// request built in process, and the one that counts when a middleware
// rewrote the URL), and refuses when either is too long.
func checkURLLength(r *http.Request) error {
	n := len(r.URL.EscapedPath())
	if r.URL.RawQuery != "" {
		n += 1 + len(r.URL.RawQuery)
	}
	if max(n, len(r.RequestURI)) > MaxURLLength {
		return autherrors.URLTooLong(MaxURLLength)
	}
	return nil
}

// call runs an endpoint, turning a panic in it (or in a store, hook or
// hasher it calls) into an internal error, so that the client gets the
// generic 500 and the log gets the panic with its stack.
func (h *Handler) call(fn func(*exchange) (*response, error), x *exchange) (resp *response, err error) {
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			resp, err = nil, &panicError{value: p, stack: debug.Stack()}
		}
	}()
	return fn(x)
}

// panicError is a recovered panic; it is logged, never sent.
type panicError struct {
	value any
	stack []byte
}

func (e *panicError) Error() string { return fmt.Sprintf("panic: %v\n%s", e.value, e.stack) }

func (h *Handler) now() time.Time { return h.cfg.Now().UTC() }

func (h *Handler) logger() *slog.Logger { return h.cfg.Logger }

// clientIP is the client's address for a session's device record: the
// connection's remote address (host part), or, when the connection comes
// from a trusted proxy, the nearest untrusted X-Forwarded-For entry.
func (h *Handler) clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if len(h.cfg.TrustedProxies) == 0 {
		return host
	}
	addr, err := netip.ParseAddr(host)
	if err != nil || !h.trusted(addr) {
		return host
	}
	var hops []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		for hop := range strings.SplitSeq(v, ",") {
			hops = append(hops, strings.TrimSpace(hop))
		}
	}
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(hops[i])
		if err != nil {
			return host // a malformed chain is not believed
		}
		if !h.trusted(a) {
			return a.String()
		}
	}
	return host
}

func (h *Handler) trusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range h.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// resolveReturnTo checks raw against the allow-list and returns the URL to
// send the browser to; relative values resolve against the default return
// URL.
func (h *Handler) resolveReturnTo(raw string) (*url.URL, error) {
	return h.returnTo.Resolve(raw, h.defaultReturn)
}

// limitAddress is the client's network as throttling counts it: an IPv4
// address (an IPv4-mapped IPv6 one included) as it is, an IPv6 address as
// its /64 prefix. A value that is not an address is used verbatim.
func limitAddress(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil || a.Is4() {
		return ip // ParseAddr accepts IPv4 only in canonical form
	}
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return a.String()
	}
	p, err := a.Prefix(64)
	if err != nil {
		return a.String()
	}
	return p.String()
}
