package returnto_test

import (
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/internal/returnto"
)

// The hostile return_to table: each row is a value an attacker could put in
// ?return_to=, together with the URL a WHATWG-conformant browser navigates
// to when the value is used as a Location header (or as an <a href>) on a
// page whose URL is hostileBase. The WHATWG column was computed from the URL
// Standard (https://url.spec.whatwg.org/#concept-basic-url-parser: leading
// and trailing C0 controls and spaces stripped, tab/LF/CR removed anywhere,
// "\" treated as "/" in special URLs, a special scheme equal to the base's
// without "//" being relative, one that differs being an authority, host
// percent-decoding and UTS #46 mapping, IPv4 number forms, %2e dot segments)
// and cross-checked against an implementation of the standard. "" means the
// URL Standard fails to parse the value: a browser does not navigate.
//
// Every row is run against two allow-lists:
//
//   - hostileApp:  https://app.example.com/dashboard
//   - hostileWild: https://*.example.com/
//
// and TestHostileReturnTo asserts for every row and allow-list:
//
//  1. a row marked refuse is refused (accept: accepted);
//  2. where Go's reading of the value (url.Parse, resolved against the base)
//     and the browser's differ on scheme or host, the value is refused;
//  3. whenever Resolve accepts, both the URL it returns and the URL the
//     browser would go to for the raw value are https on the allowed
//     host(s) and default port, carry no userinfo, and have a path inside
//     the allowed path on a segment boundary: nothing accepted can lead off
//     the allowed origin or outside the allowed path, whichever of the two
//     URLs a client ends up using (the flow's return_to exposes the raw
//     value to UIs).
const hostileBase = "https://app.example.com/dashboard/home"

var (
	hostileApp  = []string{"https://app.example.com/dashboard"}
	hostileWild = []string{"https://*.example.com/"}
)

// verdict is what the matcher must do with a row under one allow-list.
type verdict int

const (
	refuse verdict = iota + 1 // must be refused
	accept                    // must be accepted (a legitimate value)
	either                    // may go either way; the invariants still hold
)

type hostileRow struct {
	name   string
	raw    string
	whatwg string  // href a WHATWG browser navigates to; "" = parse failure
	app    verdict // with hostileApp
	wild   verdict // with hostileWild
}

var hostileRows = []hostileRow{
	// Legitimate values: the matcher does not simply refuse everything.
	{"legit path", "/dashboard", "https://app.example.com/dashboard", accept, accept},
	{"legit sub-path with query and fragment", "/dashboard/x?y=1#z", "https://app.example.com/dashboard/x?y=1#z", accept, accept},
	{"legit absolute with trailing slash", "https://app.example.com/dashboard/", "https://app.example.com/dashboard/", accept, accept},
	{"legit upper-case scheme and host", "HTTPS://APP.EXAMPLE.COM/dashboard", "https://app.example.com/dashboard", accept, accept},
	{"legit explicit default port", "https://app.example.com:443/dashboard", "https://app.example.com/dashboard", accept, accept},
	{"legit port with leading zero", "https://app.example.com:0443/dashboard/x", "https://app.example.com/dashboard/x", accept, accept},
	{"legit empty port", "https://app.example.com:/dashboard", "https://app.example.com/dashboard", accept, accept},
	{"legit dot-dot staying inside", "/dashboard/x/../y", "https://app.example.com/dashboard/y", accept, accept},
	{"legit trailing dot-dot to entry dir", "/dashboard/x/..", "https://app.example.com/dashboard/", accept, accept},
	{"legit fragment with at sign", "https://app.example.com/dashboard#@evil.com", "https://app.example.com/dashboard#@evil.com", accept, accept},
	{"legit wildcard subdomain", "https://eu.example.com/anything", "https://eu.example.com/anything", refuse, accept},
	{"legit wildcard deep subdomain", "https://a.b.example.com/", "https://a.b.example.com/", refuse, accept},
	{"legit app root", "https://app.example.com/", "https://app.example.com/", refuse, accept},

	// Scheme-relative and backslash forms.
	{"scheme-relative", "//evil.com", "https://evil.com/", refuse, refuse},
	{"triple slash", "///evil.com", "https://evil.com/", refuse, refuse},
	{"quadruple slash", "////evil.com", "https://evil.com/", refuse, refuse},
	{"slash backslash", `/\evil.com`, "https://evil.com/", refuse, refuse},
	{"double backslash", `\\evil.com`, "https://evil.com/", refuse, refuse},
	{"backslash slash", `\/evil.com`, "https://evil.com/", refuse, refuse},
	{"slash backslash slash", `/\/evil.com`, "https://evil.com/", refuse, refuse},
	{"scheme-relative with allowed path", "//evil.com/dashboard", "https://evil.com/dashboard", refuse, refuse},
	{"scheme-relative to the allowed host", "//app.example.com/dashboard", "https://app.example.com/dashboard", refuse, refuse},
	{"scheme-relative with userinfo", "//app.example.com@evil.com/dashboard", "https://app.example.com@evil.com/dashboard", refuse, refuse},
	{"slash backslash to the allowed host", `/\app.example.com/dashboard`, "https://app.example.com/dashboard", refuse, refuse},
	{"scheme-relative to a wildcard host", "//a.example.com/", "https://a.example.com/", refuse, refuse},

	// Special schemes without "//", which Go parses as opaque.
	{"http without slashes", "http:evil.com", "http://evil.com/", refuse, refuse},
	{"https without slashes is relative to an https base", "https:evil.com", "https://app.example.com/dashboard/evil.com", refuse, refuse},
	{"HTTPS without slashes", "HTTPS:evil.com", "https://app.example.com/dashboard/evil.com", refuse, refuse},
	{"http with backslashes", `http:\\evil.com`, "http://evil.com/", refuse, refuse},
	{"https with backslashes", `https:\\evil.com`, "https://evil.com/", refuse, refuse},
	{"https with one slash", "https:/evil.com", "https://app.example.com/evil.com", refuse, refuse},
	{"http with one slash", "http:/evil.com", "http://evil.com/", refuse, refuse},
	{"https slash backslash", `https:/\evil.com`, "https://evil.com/", refuse, refuse},
	{"https backslash slash", `https:\/evil.com`, "https://evil.com/", refuse, refuse},
	{"https with triple slash", "https:///evil.com", "https://evil.com/", refuse, refuse},
	{"https opaque allowed host", "https:app.example.com/dashboard", "https://app.example.com/dashboard/app.example.com/dashboard", refuse, refuse},
	{"http opaque allowed host", "http:app.example.com/dashboard", "http://app.example.com/dashboard", refuse, refuse},

	// Userinfo.
	{"userinfo hiding the host", "https://app.example.com@evil.com/", "https://app.example.com@evil.com/", refuse, refuse},
	{"userinfo hiding the host with path", "https://app.example.com@evil.com/dashboard", "https://app.example.com@evil.com/dashboard", refuse, refuse},
	{"backslash before at sign", `https://evil.com\@app.example.com`, "https://evil.com/@app.example.com", refuse, refuse},
	{"backslash before at sign reversed", `https://app.example.com\@evil.com/dashboard`, "https://app.example.com/@evil.com/dashboard", refuse, refuse},
	{"encoded at sign in host", "https://app.example.com%40evil.com", "", refuse, refuse},
	{"user and password", "https://user:pass@app.example.com/dashboard", "https://user:pass@app.example.com/dashboard", refuse, refuse},
	{"empty userinfo", "https://@app.example.com/dashboard", "https://app.example.com/dashboard", refuse, refuse},
	{"evil userinfo on allowed host", "https://evil.com@app.example.com/dashboard", "https://evil.com@app.example.com/dashboard", refuse, refuse},
	{"userinfo with empty password", "https://app.example.com:@evil.com/dashboard", "https://app.example.com@evil.com/dashboard", refuse, refuse},
	{"userinfo looking like a port", "https://app.example.com:443@evil.com/", "https://app.example.com:443@evil.com/", refuse, refuse},
	{"userinfo looking like a port on wildcard", "https://a.example.com:8443@evil.com/", "https://a.example.com:8443@evil.com/", refuse, refuse},

	// Percent-encoded slashes, backslashes and dots.
	{"encoded dot-dot segment", "/dashboard/%2e%2e/admin", "https://app.example.com/admin", refuse, refuse},
	{"half-encoded dot-dot segment", "/dashboard/.%2E/admin", "https://app.example.com/admin", refuse, refuse},
	{"encoded single dot segment", "/dashboard/%2e/x", "https://app.example.com/dashboard/x", refuse, refuse},
	{"encoded slashes around dot-dot", "/dashboard%2f..%2fadmin", "https://app.example.com/dashboard%2f..%2fadmin", refuse, refuse},
	{"encoded backslashes around dot-dot", "/dashboard%5c..%5cadmin", "https://app.example.com/dashboard%5c..%5cadmin", refuse, refuse},
	{"encoded double slash", "/%2F%2Fevil.com", "https://app.example.com/%2F%2Fevil.com", refuse, refuse},
	{"encoded backslash", "/%5Cevil.com", "https://app.example.com/%5Cevil.com", refuse, refuse},
	{"encoded dot-dot-slash", "/dashboard/%2E%2E%2F", "https://app.example.com/dashboard/%2E%2E%2F", refuse, refuse},
	{"absolute with encoded slash between dot-dots", "https://app.example.com/dashboard/..%2f..", "https://app.example.com/dashboard/..%2f..", refuse, refuse},
	{"encoded dot in host", "https://app%2eexample.com/dashboard", "https://app.example.com/dashboard", refuse, refuse},
	{"encoded slashes without leading slash", "%2F%2Fevil.com", "https://app.example.com/dashboard/%2F%2Fevil.com", refuse, refuse},

	// Control characters and white space.
	{"tab in scheme-relative", "/\t/evil.com", "https://evil.com/", refuse, refuse},
	{"newline in scheme-relative", "/\n/evil.com", "https://evil.com/", refuse, refuse},
	{"carriage return in scheme-relative", "/\r/evil.com", "https://evil.com/", refuse, refuse},
	{"leading tab", "\t//evil.com", "https://evil.com/", refuse, refuse},
	{"leading space", " //evil.com", "https://evil.com/", refuse, refuse},
	{"leading NUL", "\x00//evil.com", "https://evil.com/", refuse, refuse},
	{"trailing NUL on allowed path", "/dashboard\x00", "https://app.example.com/dashboard", refuse, refuse},
	{"vertical tab is kept and encoded", "/\x0b/evil.com", "https://app.example.com/%0B/evil.com", refuse, refuse},
	{"DEL is not stripped", "\x7f//evil.com", "https://app.example.com/dashboard/%7F//evil.com", refuse, refuse},
	{"tab in scheme", "h\tttps://evil.com", "https://evil.com/", refuse, refuse},
	{"newline joining host labels", "https://app.example.com\n.evil.com/dashboard", "https://app.example.com.evil.com/dashboard", refuse, refuse},
	{"tab joining wildcard labels", "https://evil.com\t.example.com/", "https://evil.com.example.com/", refuse, refuse},
	{"CRLF header injection", "/dashboard\r\nLocation: https://evil.com", "https://app.example.com/dashboardLocation:%20https://evil.com", refuse, refuse},
	{"encoded tab", "/%09/evil.com", "https://app.example.com/%09/evil.com", refuse, refuse},
	{"encoded newline", "/%0a/evil.com", "https://app.example.com/%0a/evil.com", refuse, refuse},
	{"encoded CRLF in allowed path", "/dashboard/%0d%0aSet-Cookie:x", "https://app.example.com/dashboard/%0d%0aSet-Cookie:x", refuse, refuse},
	{"trailing no-break space", "/dashboard\u00a0", "https://app.example.com/dashboard%C2%A0", refuse, refuse},

	// Other schemes.
	{"javascript", "javascript:alert(1)", "javascript:alert(1)", refuse, refuse},
	{"javascript mixed case", "JaVaScRiPt:alert(1)", "javascript:alert(1)", refuse, refuse},
	{"javascript leading space", " javascript:alert(1)", "javascript:alert(1)", refuse, refuse},
	{"javascript with tab", "java\tscript:alert(1)", "javascript:alert(1)", refuse, refuse},
	{"javascript with allowed authority", "javascript://app.example.com/dashboard%0aalert(1)", "javascript://app.example.com/dashboard%0aalert(1)", refuse, refuse},
	{"data html", "data:text/html,<script>alert(1)</script>", "data:text/html,<script>alert(1)</script>", refuse, refuse},
	{"data base64", "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==", "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==", refuse, refuse},
	{"vbscript", "vbscript:msgbox(1)", "vbscript:msgbox(1)", refuse, refuse},
	{"file", "file:///etc/passwd", "file:///etc/passwd", refuse, refuse},
	{"ftp on allowed host", "ftp://app.example.com/dashboard", "ftp://app.example.com/dashboard", refuse, refuse},
	{"blob of allowed origin", "blob:https://app.example.com/0b5a7e2c-0000-4000-8000-000000000000", "blob:https://app.example.com/0b5a7e2c-0000-4000-8000-000000000000", refuse, refuse},
	{"wss on allowed host", "wss://app.example.com/dashboard", "wss://app.example.com/dashboard", refuse, refuse},
	{"http downgrade", "http://app.example.com/dashboard", "http://app.example.com/dashboard", refuse, refuse},
	{"HTTP downgrade upper case", "HTTP://app.example.com/dashboard", "http://app.example.com/dashboard", refuse, refuse},

	// Look-alike Unicode and punycode hosts.
	{"Cyrillic a in host", "https://аpp.example.com/dashboard", "https://xn--pp-6kc.example.com/dashboard", refuse, refuse},
	{"Cyrillic a in domain", "https://app.exаmple.com/dashboard", "https://app.xn--exmple-4nf.com/dashboard", refuse, refuse},
	{"punycode of the Cyrillic look-alike", "https://xn--pp-6kc.example.com/dashboard", "https://xn--pp-6kc.example.com/dashboard", refuse, either},
	{"punycode with the Cyrillic a last (ppа)", "https://xn--pp-8kc.example.com/dashboard", "https://xn--pp-8kc.example.com/dashboard", refuse, either},
	{"fullwidth a maps to the allowed host", "https://ａpp.example.com/dashboard", "https://app.example.com/dashboard", refuse, refuse},
	{"fullwidth a on wildcard", "https://ａ.example.com/", "https://a.example.com/", refuse, refuse},
	{"ideographic full stop", "https://app.example.com。evil.com", "https://app.example.com.evil.com/", refuse, refuse},
	{"fullwidth full stop", "https://app.example.com．evil.com/dashboard", "https://app.example.com.evil.com/dashboard", refuse, refuse},
	{"zero-width space in host", "https://app.example.com\u200b/dashboard", "https://app.example.com/dashboard", refuse, refuse},
	{"soft hyphen in host", "https://app.ex\u00adample.com/dashboard", "https://app.example.com/dashboard", refuse, refuse},
	{"fullwidth solidus in host", "https://evil.com／.example.com/", "", refuse, refuse},
	{"non-ASCII in path", "/dashboard/café", "https://app.example.com/dashboard/caf%C3%A9", refuse, refuse},

	// Ports.
	{"other port", "https://app.example.com:444/dashboard", "https://app.example.com:444/dashboard", refuse, refuse},
	{"http port on https", "https://app.example.com:80/dashboard", "https://app.example.com:80/dashboard", refuse, refuse},
	{"https port on http", "http://app.example.com:443/dashboard", "http://app.example.com:443/dashboard", refuse, refuse},
	{"port out of range", "https://app.example.com:65536/dashboard", "", refuse, refuse},
	{"two ports", "https://app.example.com:443:443/dashboard", "", refuse, refuse},
	{"port followed by host", "https://app.example.com:443.evil.com/", "", refuse, refuse},
	{"wildcard host with other port", "https://a.example.com:8443/", "https://a.example.com:8443/", refuse, refuse},

	// Dot segments and segment boundaries.
	{"dot-dot escaping", "/dashboard/../admin", "https://app.example.com/admin", refuse, accept},
	{"dot then dot-dot escaping", "/dashboard/./../admin", "https://app.example.com/admin", refuse, accept},
	{"dot-dot to root", "/dashboard/..", "https://app.example.com/", refuse, accept},
	{"absolute dot-dots to other host name in path", "https://app.example.com/dashboard/../../../evil.com", "https://app.example.com/evil.com", refuse, accept},
	// A browser keeps empty segments ("//") that net/url's cleaning
	// collapses: the raw value then names a path starting with "//",
	// outside the entry path, and a classic second-stage open redirect on
	// the app (a relative "Location: //evil.com/").
	{"dot-dot then double slash", "/dashboard/..//evil.com", "https://app.example.com//evil.com", refuse, refuse},
	{"dot then double slash onto allowed path", "/.//dashboard", "https://app.example.com//dashboard", refuse, refuse},
	{"double slash before allowed path", "https://app.example.com//dashboard", "https://app.example.com//dashboard", refuse, refuse},
	{"double slash inside allowed path", "/dashboard//x", "https://app.example.com/dashboard//x", either, either},
	{"triple dots are a name", "/dashboard/...", "https://app.example.com/dashboard/...", either, either},
	{"prefix without boundary", "/dashboardevil", "https://app.example.com/dashboardevil", refuse, either},
	{"prefix with hyphen", "/dashboard-evil", "https://app.example.com/dashboard-evil", refuse, either},
	{"prefix with dot", "/dashboard.evil", "https://app.example.com/dashboard.evil", refuse, either},
	{"prefix with dot-dot", "/dashboard..", "https://app.example.com/dashboard..", refuse, either},
	{"prefix with semicolon", "/dashboard;x", "https://app.example.com/dashboard;x", refuse, either},
	{"prefix with encoded space", "/dashboard%20", "https://app.example.com/dashboard%20", refuse, either},
	{"path case differs", "/Dashboard", "https://app.example.com/Dashboard", refuse, either},
	{"relative without slash", "dashboard", "https://app.example.com/dashboard/dashboard", refuse, refuse},
	{"relative dot-dot", "../admin", "https://app.example.com/admin", refuse, refuse},
	{"query only", "?next=//evil.com", "https://app.example.com/dashboard/home?next=//evil.com", refuse, refuse},

	// Host shapes.
	{"trailing-dot host", "https://app.example.com./dashboard", "https://app.example.com./dashboard", refuse, refuse},
	{"allowed host as subdomain of evil", "https://app.example.com.evil.com/dashboard", "https://app.example.com.evil.com/dashboard", refuse, refuse},
	{"allowed URL in path", "https://evil.com/https://app.example.com/dashboard", "https://evil.com/https://app.example.com/dashboard", refuse, refuse},
	{"allowed URL in query", "https://evil.com?https://app.example.com/dashboard", "https://evil.com/?https://app.example.com/dashboard", refuse, refuse},
	{"allowed host in fragment", "https://evil.com#app.example.com", "https://evil.com/#app.example.com", refuse, refuse},
	{"semicolon in host", "https://app.example.com;.evil.com/", "https://app.example.com;.evil.com/", refuse, refuse},
	{"IPv4 dotted", "https://127.0.0.1/dashboard", "https://127.0.0.1/dashboard", refuse, refuse},
	{"IPv4 decimal", "https://2130706433/dashboard", "https://127.0.0.1/dashboard", refuse, refuse},
	{"IPv4 hex label", "https://0x7f.0.0.1/dashboard", "https://127.0.0.1/dashboard", refuse, refuse},
	{"IPv4 octal label", "https://0177.0.0.1/dashboard", "https://127.0.0.1/dashboard", refuse, refuse},
	{"IPv4-mapped IPv6", "https://[::ffff:127.0.0.1]/dashboard", "https://[::ffff:7f00:1]/dashboard", refuse, refuse},
	{"numeric last label", "https://app.example.com.0x7f/", "", refuse, refuse},

	// Wildcard-specific.
	{"wildcard apex", "https://example.com/", "https://example.com/", refuse, refuse},
	{"wildcard label boundary", "https://evilexample.com/", "https://evilexample.com/", refuse, refuse},
	{"wildcard suffix inside host", "https://a.example.com.evil.com/", "https://a.example.com.evil.com/", refuse, refuse},
	{"wildcard http", "http://a.example.com/", "http://a.example.com/", refuse, refuse},
	{"wildcard empty label", "https://.example.com/", "https://.example.com/", refuse, refuse},
	{"wildcard double dot", "https://a..example.com/", "https://a..example.com/", refuse, refuse},
	{"wildcard backslash", `https://evil.com\.example.com/`, "https://evil.com/.example.com/", refuse, refuse},
	{"wildcard encoded slash", "https://evil.com%2F.example.com/", "", refuse, refuse},
	{"wildcard encoded backslash", "https://evil.com%5C.example.com/", "", refuse, refuse},
	{"wildcard ampersand", "https://evil.com&.example.com/", "https://evil.com&.example.com/", refuse, refuse},
	{"wildcard asterisk host", "https://*.example.com/", "https://*.example.com/", refuse, refuse},
	{"wildcard suffix in path", "https://evil.com/.example.com", "https://evil.com/.example.com", refuse, refuse},
	{"wildcard suffix in query", "https://evil.com?.example.com", "https://evil.com/?.example.com", refuse, refuse},
	{"wildcard punycode subdomain", "https://xn--80a.example.com/", "https://xn--80a.example.com/", refuse, either},
}

func TestHostileReturnTo(t *testing.T) {
	base, err := url.Parse(hostileBase)
	require.NoError(t, err)
	groups := []struct {
		name    string
		allowed []string
		verdict func(hostileRow) verdict
		admits  func(scheme, host, port, path string) bool
	}{
		{"app", hostileApp, func(r hostileRow) verdict { return r.app }, func(scheme, host, port, path string) bool {
			return scheme == "https" && host == "app.example.com" && port == "" &&
				(path == "/dashboard" || strings.HasPrefix(path, "/dashboard/"))
		}},
		{"wildcard", hostileWild, func(r hostileRow) verdict { return r.wild }, func(scheme, host, port, path string) bool {
			return scheme == "https" && len(host) > len(".example.com") && strings.HasSuffix(host, ".example.com") &&
				!strings.HasPrefix(host, ".") && !strings.Contains(host, "..") && port == "" && strings.HasPrefix(path, "/")
		}},
	}
	names := map[string]bool{}
	for _, row := range hostileRows {
		require.False(t, names[row.name], "duplicate row name %q", row.name)
		names[row.name] = true
	}

	for _, g := range groups {
		m, err := returnto.New(g.allowed)
		require.NoError(t, err)
		for _, row := range hostileRows {
			t.Run(g.name+"/"+row.name, func(t *testing.T) {
				want := g.verdict(row)
				require.NotZero(t, want, "row has no verdict")
				got, err := m.Resolve(row.raw, base)

				if disagree := goWHATWGDisagree(base, row.raw, row.whatwg); disagree != "" {
					assert.Errorf(t, err, "Go and WHATWG disagree (%s) on %q, yet it was accepted as %v", disagree, row.raw, got)
				}
				switch want {
				case refuse:
					assert.ErrorIs(t, err, returnto.ErrForbidden, "%q must be refused (browser: %q), got %v", row.raw, row.whatwg, got)
				case accept:
					assert.NoError(t, err, "%q must be accepted", row.raw)
				}
				if err != nil {
					require.ErrorIs(t, err, returnto.ErrForbidden)
					require.Nil(t, got)
					return
				}

				// Accepted: the URL authflow redirects to...
				p := got.EscapedPath()
				assert.Truef(t, g.admits(got.Scheme, got.Hostname(), got.Port(), p),
					"accepted %q resolves to %q, outside the allow-list", row.raw, got)
				assert.Nil(t, got.User)
				assert.False(t, strings.HasPrefix(p, "//"), "resolved path starts with //: %q", got)

				// ...and the URL a browser would go to for the raw value.
				require.NotEmptyf(t, row.whatwg, "accepted %q, which a browser cannot parse", row.raw)
				w, err := url.Parse(row.whatwg)
				require.NoError(t, err)
				assert.Truef(t, g.admits(w.Scheme, w.Hostname(), w.Port(), w.EscapedPath()),
					"accepted %q, but a browser would go to %q, outside the allow-list", row.raw, row.whatwg)
				assert.Nil(t, w.User, "accepted %q, but a browser would send userinfo", row.raw)
				assert.Falsef(t, strings.HasPrefix(w.EscapedPath(), "//"),
					"accepted %q, but a browser would go to %q, whose path starts with //", row.raw, row.whatwg)
				assert.Equal(t, w.Hostname(), got.Hostname(), "browser and authflow go to different hosts")
			})
		}
	}

	accepted := 0
	for _, r := range hostileRows {
		if r.app == accept || r.wild == accept {
			accepted++
		}
	}
	t.Logf("%d return_to rows (%d with at least one must-accept verdict), each run against %d allow-lists",
		len(hostileRows), accepted, len(groups))
}

// goWHATWGDisagree reports how Go's reading of raw, resolved against base,
// differs from the browser's (whatwg) in scheme or host ("" if they agree).
func goWHATWGDisagree(base *url.URL, raw, whatwg string) string {
	u, err := url.Parse(raw)
	if err != nil {
		if whatwg == "" {
			return ""
		}
		return "Go cannot parse it, the browser can"
	}
	if whatwg == "" {
		return "the browser cannot parse it, Go can"
	}
	g := base.ResolveReference(u)
	w, err := url.Parse(whatwg)
	if err != nil {
		return "unparseable WHATWG column"
	}
	if gs, ws := strings.ToLower(g.Scheme), strings.ToLower(w.Scheme); gs != ws {
		return "scheme " + gs + " vs " + ws
	}
	if gh, wh := hostPort(g), hostPort(w); gh != wh {
		return "host " + gh + " vs " + wh
	}
	return ""
}

// hostPort is u's lower-cased host with its port as a number, a default
// port dropped.
func hostPort(u *url.URL) string {
	h, s := strings.ToLower(u.Hostname()), strings.ToLower(u.Scheme)
	if u.Port() == "" {
		return h
	}
	p, err := strconv.Atoi(u.Port())
	if err != nil {
		return h + ":" + u.Port()
	}
	if s == "https" && p == 443 || s == "http" && p == 80 {
		return h
	}
	return h + ":" + strconv.Itoa(p)
}

// FuzzResolveHostile starts from the hostile table and checks the Go-side
// invariant (no browser is available at fuzz time): an accepted value
// resolves to an http(s) URL on an allowed host and port with a path inside
// the allowed path, without userinfo, whose serialisation has no control
// characters, white space or backslashes and whose path does not start with
// "//", and which re-parses to itself.
func FuzzResolveHostile(f *testing.F) {
	for _, r := range hostileRows {
		f.Add(r.raw)
	}
	base, err := url.Parse(hostileBase)
	require.NoError(f, err)
	app, err := returnto.New(hostileApp)
	require.NoError(f, err)
	wild, err := returnto.New(hostileWild)
	require.NoError(f, err)

	f.Fuzz(func(t *testing.T, raw string) {
		for _, m := range []struct {
			name    string
			matcher *returnto.Matcher
			host    func(string) bool
			path    func(string) bool
		}{
			{"app", app, func(h string) bool { return h == "app.example.com" },
				func(p string) bool { return p == "/dashboard" || strings.HasPrefix(p, "/dashboard/") }},
			{"wildcard", wild, func(h string) bool {
				return len(h) > len(".example.com") && strings.HasSuffix(h, ".example.com") &&
					!strings.HasPrefix(h, ".") && !strings.Contains(h, "..")
			}, func(p string) bool { return strings.HasPrefix(p, "/") }},
		} {
			got, err := m.matcher.Resolve(raw, base)
			if err != nil {
				require.ErrorIs(t, err, returnto.ErrForbidden)
				require.Nil(t, got)
				continue
			}
			s := got.String()
			for _, c := range []byte(s) {
				require.Truef(t, c > ' ' && c < 0x7f && c != '\\', "%s: unsafe byte %q in %q (from %q)", m.name, c, s, raw)
			}
			require.Truef(t, got.Scheme == "https", "%s: %q from %q", m.name, s, raw)
			require.Nil(t, got.User)
			require.Emptyf(t, got.Port(), "%s: port in %q from %q", m.name, s, raw)
			require.Truef(t, m.host(got.Host), "%s: host of %q from %q", m.name, s, raw)
			require.Truef(t, m.path(got.Path) && m.path(got.EscapedPath()), "%s: path of %q from %q", m.name, s, raw)
			require.Falsef(t, strings.HasPrefix(got.EscapedPath(), "//"), "%s: path of %q from %q", m.name, s, raw)
			for _, seg := range strings.Split(got.Path, "/") {
				require.Falsef(t, seg == "." || seg == "..", "%s: dot segment in %q from %q", m.name, s, raw)
			}

			re, err := url.Parse(s)
			require.NoError(t, err)
			require.Equal(t, got.Scheme, re.Scheme)
			require.Equal(t, got.Host, re.Host)
			require.Equal(t, got.Path, re.Path)
			require.Equal(t, got.EscapedPath(), re.EscapedPath())
			require.Nil(t, re.User)
			require.Empty(t, re.Opaque)
		}
	})
}
