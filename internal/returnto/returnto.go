// Package returnto validates return_to redirect targets against an
// allow-list so that login flows cannot be abused as open redirects.
//
// The validation is deliberately strict: anything that a browser could
// interpret differently from Go's net/url parser (backslashes, control
// characters, scheme-relative URLs, encoded slashes or dots, userinfo,
// non-ASCII or trailing-dot hosts, ...) is refused rather than normalised.
// Accepted URLs are rebuilt from their parsed and checked parts; the raw
// input string is never returned.
package returnto

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// ErrForbidden is returned (wrapped, check with errors.Is) when a return_to
// is not on the allow-list or cannot be trusted.
var ErrForbidden = errors.New("returnto: URL is not allowed")

// Matcher checks return_to URLs against an allow-list. It is immutable and
// safe for concurrent use.
type Matcher struct {
	entries []entry
}

// entry is one normalised allow-list entry.
type entry struct {
	scheme string // "http" or "https"
	// host is the lower-cased host name (IPv6 literals in brackets). For a
	// wildcard entry it is the suffix that follows the "*", e.g.
	// ".example.com".
	host     string
	wildcard bool
	port     int
	// path is the cleaned entry path without a trailing slash; "/" admits
	// every path.
	path string
}

// target is the normalised form of a URL, as compared against entries.
type target struct {
	scheme string
	host   string // lower-cased host name, IPv6 literals in brackets
	port   int
	path   string // cleaned, unescaped path, always starting with "/"
}

// New builds a Matcher from allow-list entries: absolute http or https URLs
// such as "https://app.example.com/dashboard" or "https://*.example.com/".
//
// A wildcard is only accepted as the whole leading label of the host and
// must be followed by at least two labels ("https://*.example.com"); it
// matches subdomains of any depth but not the domain itself. An entry's path
// restricts return paths to that path and everything below it on a segment
// boundary; an empty path or "/" admits every path.
//
// New returns an error naming the offending entry if an entry is not an
// absolute http(s) URL, has userinfo, a query or a fragment, contains dot
// segments, or misuses the wildcard. An empty list yields a Matcher that
// refuses everything.
func New(allowed []string) (*Matcher, error) {
	m := &Matcher{entries: make([]entry, 0, len(allowed))}
	for _, raw := range allowed {
		e, err := parseEntry(raw)
		if err != nil {
			return nil, fmt.Errorf("returnto: invalid allow-list entry %q: %w", raw, err)
		}
		m.entries = append(m.entries, e)
	}
	return m, nil
}

func parseEntry(raw string) (entry, error) {
	if err := checkRaw(raw); err != nil {
		return entry{}, err
	}
	if !hasHTTPPrefix(raw) {
		return entry{}, errors.New("must be an absolute http or https URL")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return entry{}, err
	}
	if u.RawQuery != "" || u.ForceQuery {
		return entry{}, errors.New("must not have a query")
	}
	if strings.Contains(raw, "#") {
		return entry{}, errors.New("must not have a fragment")
	}
	if hasDotSegment(u.Path) {
		return entry{}, errors.New("path must not contain dot segments")
	}

	// Split off a wildcard label before the shared normalisation, which
	// does not accept "*" in host names.
	wildcard := false
	if h := u.Hostname(); strings.Contains(h, "*") {
		rest, ok := strings.CutPrefix(h, "*.")
		if !ok || strings.Contains(rest, "*") {
			return entry{}, errors.New(`wildcard must be the whole leading label, as in "*.example.com"`)
		}
		if strings.Count(rest, ".") < 1 {
			return entry{}, errors.New("wildcard must be followed by at least two labels")
		}
		if isIPv4Like(rest) {
			return entry{}, errors.New("wildcard must not be used with a numeric host")
		}
		wildcard = true
		c := *u
		c.Host = strings.Replace(u.Host, "*.", "", 1)
		u = &c
	}

	t, err := normalize(u)
	if err != nil {
		return entry{}, err
	}
	e := entry{
		scheme:   t.scheme,
		host:     t.host,
		wildcard: wildcard,
		port:     t.port,
		path:     strings.TrimSuffix(t.path, "/"),
	}
	if wildcard {
		e.host = "." + e.host
	}
	if e.path == "" {
		e.path = "/"
	}
	return e, nil
}

// Resolve validates raw against the allow-list and returns the URL to
// redirect to, built from the parsed, checked parts (never the raw string).
//
// raw must be either an absolute http(s) URL or an absolute path such as
// "/dash" (no scheme, no host), which is resolved against base: the scheme
// and host of base are taken, its path is not. base is the trusted default
// return URL; the resolved URL is still checked against the allow-list.
// Empty raw is an error; callers handle the empty case themselves.
//
// The result has a lower-case scheme and host, an explicit port only if it
// is not the scheme's default (":443" on https is dropped), the cleaned path
// (dot segments resolved as a browser resolves them, empty segments kept, a
// trailing slash kept; a path that would start with "//" is refused) and
// the query and fragment of raw. Every error wraps ErrForbidden.
func (m *Matcher) Resolve(raw string, base *url.URL) (*url.URL, error) {
	if raw == "" {
		return nil, forbidden("empty URL")
	}
	if err := checkRaw(raw); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrForbidden, err)
	}
	relative := !hasHTTPPrefix(raw)
	if relative && !isRootedPath(raw) {
		return nil, forbidden("not an absolute http(s) URL or an absolute path")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, forbidden("unparseable URL")
	}
	if relative {
		if base == nil {
			return nil, forbidden("relative URL without a base")
		}
		if u.Scheme != "" || u.Host != "" || u.User != nil {
			return nil, forbidden("relative URL with a scheme or host")
		}
		u.Scheme, u.Host = base.Scheme, base.Host
	}

	t, err := normalize(u)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrForbidden, err)
	}
	if !m.admits(t) {
		return nil, forbidden("not on the allow-list")
	}

	// Rebuild the URL from checked parts only. The path keeps the escaping
	// of raw where it is a valid encoding (url.URL.EscapedPath decides).
	out := &url.URL{
		Scheme:      t.scheme,
		Host:        t.host,
		Path:        t.path,
		RawQuery:    u.RawQuery,
		Fragment:    u.Fragment,
		RawFragment: u.RawFragment,
	}
	if !isDefaultPort(t.scheme, t.port) {
		out.Host += ":" + strconv.Itoa(t.port)
	}
	if esc := cleanPath(u.EscapedPath()); esc != t.path {
		out.RawPath = esc
	}
	return out, nil
}

// Allowed reports whether u, an absolute URL, lies inside some allow-list
// entry. It applies the same normalisation and refusals as Resolve to the
// parsed URL (it cannot see the raw string, so prefer Resolve for untrusted
// input).
func (m *Matcher) Allowed(u *url.URL) bool {
	if u == nil {
		return false
	}
	t, err := normalize(u)
	return err == nil && m.admits(t)
}

// admits is the core allow-list check. It reports whether the normalised
// target t lies inside at least one entry, which requires all of:
//
//   - the same scheme and the same port (default ports made explicit);
//   - the same host, or for a wildcard entry "*.example.com" a host that
//     ends in ".example.com" with at least one non-empty label before it
//     (normalize guarantees there are no empty labels), so neither
//     "example.com" nor "evilexample.com" matches;
//   - a path equal to the entry path or below it on a segment boundary
//     ("/dashboard" admits "/dashboard/x" but not "/dashboardevil"); the
//     entry path "/" admits everything. t.path is already cleaned, so dot
//     segments cannot climb out of the entry path.
func (m *Matcher) admits(t target) bool {
	if m == nil {
		return false
	}
	for _, e := range m.entries {
		if e.scheme != t.scheme || e.port != t.port {
			continue
		}
		if e.wildcard {
			if len(t.host) <= len(e.host) || !strings.HasSuffix(t.host, e.host) {
				continue
			}
		} else if t.host != e.host {
			continue
		}
		if e.path == "/" || t.path == e.path || strings.HasPrefix(t.path, e.path+"/") {
			return true
		}
	}
	return false
}

// checkRaw refuses raw strings that a browser could interpret differently
// from net/url: any byte outside printable ASCII (controls, whitespace,
// non-ASCII), backslashes, "@" or "%" in the authority, and percent-encoded
// "/", "\", "." or control characters in the path.
func checkRaw(raw string) error {
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; {
		case c >= 0x80:
			return errors.New("non-ASCII character")
		case c <= ' ' || c == 0x7f:
			return errors.New("control character or whitespace")
		case c == '\\':
			return errors.New("backslash")
		}
	}

	rest := raw
	if hasHTTPPrefix(raw) {
		_, rest, _ = strings.Cut(raw, "://")
		end := strings.IndexAny(rest, "/?#")
		if end < 0 {
			end = len(rest)
		}
		authority := rest[:end]
		if strings.ContainsAny(authority, "@%") {
			return errors.New("userinfo or percent-encoding in host")
		}
		rest = rest[end:]
	}
	if end := strings.IndexAny(rest, "?#"); end >= 0 {
		rest = rest[:end]
	}
	return checkEscapes(rest)
}

// checkEscapes refuses malformed percent-escapes and escapes of "/", "\",
// "." and control characters in an escaped path.
func checkEscapes(p string) error {
	for i := 0; i < len(p); i++ {
		if p[i] != '%' {
			continue
		}
		if i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2]) {
			return errors.New("malformed percent-escape in path")
		}
		b := unhex(p[i+1])<<4 | unhex(p[i+2])
		if b == '/' || b == '\\' || b == '.' || b < 0x20 || b == 0x7f {
			return errors.New("percent-encoded slash, backslash, dot or control character in path")
		}
		i += 2
	}
	return nil
}

// normalize validates the parts of an absolute URL and returns the form
// that is compared against the allow-list.
func normalize(u *url.URL) (target, error) {
	var t target
	if u.Opaque != "" {
		return t, errors.New("opaque URL")
	}
	if u.User != nil {
		return t, errors.New("userinfo")
	}
	t.scheme = strings.ToLower(u.Scheme)
	if t.scheme != "http" && t.scheme != "https" {
		return t, errors.New("scheme is not http or https")
	}

	host, err := normalizeHost(u.Hostname(), strings.HasPrefix(u.Host, "["))
	if err != nil {
		return t, err
	}
	t.host = host

	t.port = 80
	if t.scheme == "https" {
		t.port = 443
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return t, errors.New("invalid port")
		}
		t.port = n
	}

	if strings.ContainsRune(u.Path, '\\') || hasControl(u.Path) {
		return t, errors.New("backslash or control character in path")
	}
	esc := u.EscapedPath()
	if esc != "" && esc[0] != '/' {
		return t, errors.New("path is not absolute")
	}
	if err := checkEscapes(esc); err != nil {
		return t, err
	}
	clean := cleanPath(esc)
	if strings.HasPrefix(clean, "//") {
		return t, errors.New("path starts with an empty segment")
	}
	p, err := url.PathUnescape(clean)
	if err != nil {
		return t, errors.New("malformed path")
	}
	t.path = p
	return t, nil
}

// normalizeHost lower-cases and validates a host name. Only ASCII letters,
// digits, "-" and "_" are allowed in labels; empty labels (including a
// trailing dot) are refused. IPv6 literals are canonicalised and returned in
// brackets.
func normalizeHost(h string, bracketed bool) (string, error) {
	if h == "" {
		return "", errors.New("empty host")
	}
	if bracketed {
		a, err := netip.ParseAddr(h)
		if err != nil || !a.Is6() || a.Zone() != "" {
			return "", errors.New("invalid IPv6 host")
		}
		return "[" + a.String() + "]", nil
	}
	h = strings.ToLower(h)
	for _, label := range strings.Split(h, ".") {
		if label == "" {
			return "", errors.New("empty label in host (or trailing dot)")
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return "", errors.New("invalid character in host")
			}
		}
	}
	return h, nil
}

// cleanPath resolves dot segments in an absolute path the way browsers do
// (RFC 3986 section 5.2.4, WHATWG URL path state): each ".." removes one
// segment, and empty segments ("//") are kept, not collapsed, so that the
// result is the path a browser derives from the same raw value. An empty
// path becomes "/".
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	segs := strings.Split(p[1:], "/")
	out := make([]string, 0, len(segs))
	for i, s := range segs {
		last := i == len(segs)-1
		switch s {
		case ".":
			if last {
				out = append(out, "")
			}
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
			if last {
				out = append(out, "")
			}
		default:
			out = append(out, s)
		}
	}
	return "/" + strings.Join(out, "/")
}

// hasDotSegment reports whether p has a "." or ".." segment.
func hasDotSegment(p string) bool {
	for _, s := range strings.Split(p, "/") {
		if s == "." || s == ".." {
			return true
		}
	}
	return false
}

// isIPv4Like reports whether the last label of host is a number (decimal
// or 0x-hex), in which case browsers parse the whole host as an IPv4
// address.
func isIPv4Like(host string) bool {
	last := strings.ToLower(host[strings.LastIndexByte(host, '.')+1:])
	digits, isDec := last, true
	if rest, ok := strings.CutPrefix(last, "0x"); ok {
		digits, isDec = rest, false
	}
	for i := 0; i < len(digits); i++ {
		if c := digits[i]; !('0' <= c && c <= '9' || !isDec && isHex(c)) {
			return false
		}
	}
	return digits != "" || !isDec
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	default:
		return c - 'a' + 10
	}
}

func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// hasHTTPPrefix reports whether raw starts with "http://" or "https://",
// ignoring case.
func hasHTTPPrefix(raw string) bool {
	lower := strings.ToLower(raw[:min(len(raw), len("https://"))])
	return strings.HasPrefix(lower, "http://") || strings.HasPrefix(lower, "https://")
}

// isRootedPath reports whether raw is "/" or starts with a single "/"
// followed by something other than "/" or "\".
func isRootedPath(raw string) bool {
	return raw == "/" || len(raw) > 1 && raw[0] == '/' && raw[1] != '/' && raw[1] != '\\'
}

func isDefaultPort(scheme string, port int) bool {
	return scheme == "http" && port == 80 || scheme == "https" && port == 443
}

func forbidden(reason string) error {
	return fmt.Errorf("%w: %s", ErrForbidden, reason)
}
