package returnto_test

import (
	"errors"
	"net"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/internal/returnto"
)

// forbidden marks a row whose raw return_to must be refused.
const forbidden = "<forbidden>"

const defaultBase = "https://app.example.com/dashboard"

// app is the typical allow-list: one path-restricted app, a wildcard domain
// and a local development origin.
var app = []string{
	"https://app.example.com/dashboard",
	"https://*.example.org/",
	"http://localhost:4455",
}

type resolveCase struct {
	name    string
	allowed []string
	raw     string
	base    string // defaultBase if empty
	want    string // the resolved URL, or forbidden
}

var resolveCases = []resolveCase{
	// Exact path, sub-paths and segment boundaries.
	{"entry path itself", app, "https://app.example.com/dashboard", "", "https://app.example.com/dashboard"},
	{"entry path with trailing slash", app, "https://app.example.com/dashboard/", "", "https://app.example.com/dashboard/"},
	{"sub-path", app, "https://app.example.com/dashboard/x", "", "https://app.example.com/dashboard/x"},
	{"deep sub-path", app, "https://app.example.com/dashboard/x/y/z", "", "https://app.example.com/dashboard/x/y/z"},
	{"path prefix without segment boundary", app, "https://app.example.com/dashboardevil", "", forbidden},
	{"other path", app, "https://app.example.com/other", "", forbidden},
	{"root outside entry path", app, "https://app.example.com/", "", forbidden},
	{"empty path outside entry path", app, "https://app.example.com", "", forbidden},
	{"dot-dot escapes entry path", app, "https://app.example.com/dashboard/../admin", "", forbidden},
	{"dot-dot staying inside entry path", app, "https://app.example.com/dashboard/a/../b", "", "https://app.example.com/dashboard/b"},
	{"single dot segments removed", app, "https://app.example.com/dashboard/./x/.", "", "https://app.example.com/dashboard/x/"},
	{"trailing dot-dot keeps directory slash", app, "https://app.example.com/dashboard/x/..", "", "https://app.example.com/dashboard/"},
	{"repeated slashes kept, as browsers keep them", app, "https://app.example.com/dashboard//x", "", "https://app.example.com/dashboard//x"},
	{"path is case-sensitive", app, "https://app.example.com/Dashboard", "", forbidden},
	{"entry path with trailing slash behaves like without", []string{"https://a.com/dashboard/"}, "https://a.com/dashboard", "", "https://a.com/dashboard"},
	{"entry path with trailing slash refuses prefix", []string{"https://a.com/dashboard/"}, "https://a.com/dashboardevil", "", forbidden},
	{"root entry admits any path", []string{"https://a.com/"}, "https://a.com/any/where", "", "https://a.com/any/where"},
	{"empty entry path admits any path", []string{"https://a.com"}, "https://a.com/any", "", "https://a.com/any"},
	{"empty path resolves to root", []string{"https://a.com"}, "https://a.com", "", "https://a.com/"},

	// Query and fragment are carried but not compared.
	{"query carried", app, "https://app.example.com/dashboard?tab=1&x=%20y", "", "https://app.example.com/dashboard?tab=1&x=%20y"},
	{"fragment carried", app, "https://app.example.com/dashboard#section-2", "", "https://app.example.com/dashboard#section-2"},
	{"query does not count as path", app, "https://app.example.com/other?next=/dashboard", "", forbidden},
	{"fragment does not count as path", app, "https://app.example.com/#/dashboard", "", forbidden},
	{"query with encoded newline stays encoded", app, "https://app.example.com/dashboard?x=%0d%0a", "", "https://app.example.com/dashboard?x=%0d%0a"},

	// Scheme, host and port comparison.
	{"scheme and host case-insensitive", app, "HTTPS://APP.Example.COM/dashboard", "", "https://app.example.com/dashboard"},
	{"explicit default port admitted and dropped", []string{"https://a.com"}, "https://A.com:443/x", "", "https://a.com/x"},
	{"non-default port refused", []string{"https://a.com"}, "https://a.com:8443/x", "", forbidden},
	{"port with leading zeros normalised", []string{"https://a.com"}, "https://a.com:0443/x", "", "https://a.com/x"},
	{"empty port means default", []string{"https://a.com"}, "https://a.com:/x", "", "https://a.com/x"},
	{"explicit port in entry", app, "http://localhost:4455/welcome", "", "http://localhost:4455/welcome"},
	{"explicit port missing from raw", app, "http://localhost/welcome", "", forbidden},
	{"entry default port written explicitly", []string{"http://a.com:80/"}, "http://a.com/x", "", "http://a.com/x"},
	{"out-of-range port", []string{"https://a.com"}, "https://a.com:65979/", "", forbidden},
	{"scheme mismatch", app, "http://app.example.com/dashboard", "", forbidden},
	{"different host", app, "https://evil.com/dashboard", "", forbidden},
	{"host suffix is not a match", app, "https://evilapp.example.com/dashboard", "", forbidden},
	{"IPv6 host canonicalised", []string{"http://[::1]:8080/"}, "http://[0:0::1]:8080/x", "", "http://[::1]:8080/x"},
	{"punycode host needs identical entry", []string{"https://xn--exmple-cua.com/"}, "https://xn--exmple-cua.com/x", "", "https://xn--exmple-cua.com/x"},
	{"punycode host is not the ASCII look-alike", []string{"https://example.com/"}, "https://xn--exmple-cua.com/", "", forbidden},

	// Wildcard entries.
	{"wildcard subdomain", app, "https://a.example.org/x", "", "https://a.example.org/x"},
	{"wildcard deep subdomain", app, "https://a.b.example.org/", "", "https://a.b.example.org/"},
	{"wildcard excludes apex", app, "https://example.org/", "", forbidden},
	{"wildcard label boundary", app, "https://evilexample.org/", "", forbidden},
	{"wildcard empty label", app, "https://.example.org/", "", forbidden},
	{"wildcard with port refused", app, "https://a.example.org:8443/", "", forbidden},
	{"wildcard with explicit default port", app, "https://a.example.org:443/", "", "https://a.example.org/"},
	{"wildcard with path restriction", []string{"https://*.example.com/app"}, "https://x.example.com/app/1", "", "https://x.example.com/app/1"},
	{"wildcard path restriction refuses other path", []string{"https://*.example.com/app"}, "https://x.example.com/admin", "", forbidden},
	{"wildcard host suffix inside label", app, "https://example.org.evil.com/", "", forbidden},

	// Relative paths are resolved against the base.
	{"relative path", app, "/dashboard/settings", "", "https://app.example.com/dashboard/settings"},
	{"relative root outside entry path", app, "/", "", forbidden},
	{"relative root with root entry", []string{"https://a.com/"}, "/", "https://a.com/start", "https://a.com/"},
	{"relative with query and fragment", app, "/dashboard?x=1#y", "", "https://app.example.com/dashboard?x=1#y"},
	{"relative dot segments resolved and checked", app, "/dashboard/../admin", "", forbidden},
	{"relative dot segments staying inside", app, "/dashboard/x/../y", "", "https://app.example.com/dashboard/y"},
	{"relative dot then double slash (a browser keeps //evil.com as the path)", []string{"https://a.com/"}, "/.//evil.com", "https://a.com/", forbidden},
	{"relative takes base host and port", app, "/welcome", "http://localhost:4455/", "http://localhost:4455/welcome"},
	{"relative base not on allow-list", app, "/dashboard", "https://other.com/", forbidden},
	{"relative without leading slash", app, "dashboard", "", forbidden},
	{"relative dot path", app, "./dashboard", "", forbidden},
	{"relative query only", app, "?x=1", "", forbidden},

	// Scheme-relative and opaque forms.
	{"scheme-relative", app, "//evil.com", "", forbidden},
	{"scheme-relative with allowed host", app, "//app.example.com/dashboard", "", forbidden},
	{"triple slash", app, "///evil.com", "", forbidden},
	{"opaque http", app, "http:evil.com", "", forbidden},
	{"https with single slash", app, "https:/evil.com", "", forbidden},
	{"https with triple slash", app, "https:///evil.com", "", forbidden},
	{"empty host", app, "https://", "", forbidden},
	{"empty host with path", app, "https:///dashboard", "", forbidden},

	// Other schemes.
	{"javascript scheme", app, "javascript:alert(1)", "", forbidden},
	{"javascript with slashes", app, "javascript://app.example.com/%0aalert(1)", "", forbidden},
	{"data scheme", app, "data:text/html,<script>alert(1)</script>", "", forbidden},
	{"ftp scheme", app, "ftp://app.example.com/dashboard", "", forbidden},
	{"mixed-case other scheme", app, "JaVaScRiPt:alert(1)", "", forbidden},

	// Backslashes, controls, whitespace.
	{"backslash scheme-relative", app, "/\\evil.com", "", forbidden},
	{"double backslash", app, "\\\\evil.com", "", forbidden},
	{"backslash in path", app, "https://app.example.com/dashboard\\..\\admin", "", forbidden},
	{"backslash in query", app, "https://app.example.com/dashboard?x=\\", "", forbidden},
	{"backslash as authority end", app, "https://evil.com\\@app.example.com/dashboard", "", forbidden},
	{"leading space not trimmed", app, " /dashboard", "", forbidden},
	{"trailing space", app, "/dashboard ", "", forbidden},
	{"tab in scheme-relative", app, "/\t/evil.com", "", forbidden},
	{"newline in path", app, "/dashboard\n/x", "", forbidden},
	{"carriage return in query", app, "/dashboard?x=\r\nSet-Cookie:a", "", forbidden},
	{"NUL byte", app, "/dashboard\x00", "", forbidden},
	{"DEL byte", app, "/dashboard\x7f", "", forbidden},
	{"leading control char", app, "\x01https://app.example.com/dashboard", "", forbidden},

	// Userinfo.
	{"userinfo", app, "https://user@app.example.com/dashboard", "", forbidden},
	{"empty userinfo", app, "https://@app.example.com/dashboard", "", forbidden},
	{"userinfo hiding real host", app, "https://app.example.com@evil.com/dashboard", "", forbidden},
	{"userinfo with password", app, "https://u:p@app.example.com/dashboard", "", forbidden},

	// Percent-encoding.
	{"encoded slash", app, "https://app.example.com/dashboard/..%2fadmin", "", forbidden},
	{"encoded slash upper case", app, "/dashboard%2F..%2Fadmin", "", forbidden},
	{"encoded backslash", app, "/%5cevil.com", "", forbidden},
	{"encoded dot", app, "/dashboard/%2e%2e/admin", "", forbidden},
	{"encoded dot upper case", app, "/dashboard/%2E", "", forbidden},
	{"encoded newline in path", app, "/dashboard/%0a", "", forbidden},
	{"encoded NUL in path", app, "/dashboard/%00", "", forbidden},
	{"malformed escape", app, "/dashboard/%zz", "", forbidden},
	{"truncated escape", app, "/dashboard/%2", "", forbidden},
	{"encoded host", app, "https://app%2eexample.com/dashboard", "", forbidden},
	{"other escapes kept", app, "/dashboard/a%20b%3Bc", "", "https://app.example.com/dashboard/a%20b%3Bc"},
	{"encoded unreserved letter", app, "/dashboard/%41", "", "https://app.example.com/dashboard/%41"},
	{"encoded question mark stays in path", app, "/dashboard/a%3Fb", "", "https://app.example.com/dashboard/a%3Fb"},

	// Host shapes.
	{"trailing-dot host", app, "https://app.example.com./dashboard", "", forbidden},
	{"trailing-dot wildcard host", app, "https://a.example.org./", "", forbidden},
	{"non-ASCII host look-alike", app, "https://аpp.example.com/dashboard", "", forbidden},
	{"fullwidth dot in host", app, "https://a\uff0eexample.org/", "", forbidden},
	{"non-ASCII in path", app, "/dashboard/café", "", forbidden},
	{"encoded UTF-8 in path", app, "/dashboard/caf%C3%A9", "", "https://app.example.com/dashboard/caf%C3%A9"},
	{"semicolon in host", app, "https://evil.com;.example.org/", "", forbidden},
	{"double dot in host", app, "https://a..example.org/", "", forbidden},
	{"empty raw", app, "", "", forbidden},
}

func TestResolve(t *testing.T) {
	for _, tc := range resolveCases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := returnto.New(tc.allowed)
			require.NoError(t, err)
			baseRaw := tc.base
			if baseRaw == "" {
				baseRaw = defaultBase
			}
			base, err := url.Parse(baseRaw)
			require.NoError(t, err)

			got, err := m.Resolve(tc.raw, base)
			if tc.want == forbidden {
				require.ErrorIs(t, err, returnto.ErrForbidden)
				assert.Nil(t, got)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got.String())
			assert.True(t, m.Allowed(got), "Allowed must accept what Resolve returns")
		})
	}
}

func TestResolveNilBase(t *testing.T) {
	m, err := returnto.New(app)
	require.NoError(t, err)

	_, err = m.Resolve("/dashboard", nil)
	require.ErrorIs(t, err, returnto.ErrForbidden)

	got, err := m.Resolve("https://app.example.com/dashboard", nil)
	require.NoError(t, err)
	assert.Equal(t, "https://app.example.com/dashboard", got.String())
}

func TestResolveEmptyAllowList(t *testing.T) {
	m, err := returnto.New(nil)
	require.NoError(t, err)
	base, _ := url.Parse(defaultBase)
	_, err = m.Resolve("/dashboard", base)
	require.ErrorIs(t, err, returnto.ErrForbidden)
}

func TestAllowed(t *testing.T) {
	m, err := returnto.New(app)
	require.NoError(t, err)

	cases := []struct {
		name string
		url  *url.URL
		want bool
	}{
		{"nil", nil, false},
		{"allowed", &url.URL{Scheme: "https", Host: "app.example.com", Path: "/dashboard/x"}, true},
		{"unclean path escaping entry", &url.URL{Scheme: "https", Host: "app.example.com", Path: "/dashboard/../admin"}, false},
		{"relative", &url.URL{Path: "/dashboard"}, false},
		{"userinfo", &url.URL{Scheme: "https", User: url.User(""), Host: "app.example.com", Path: "/dashboard"}, false},
		{"opaque", &url.URL{Scheme: "https", Opaque: "app.example.com/dashboard"}, false},
		{"backslash in path", &url.URL{Scheme: "https", Host: "app.example.com", Path: "/dashboard\\x"}, false},
		{"encoded slash via RawPath", mustParse(t, "https://app.example.com/dashboard/..%2Fadmin"), false},
		{"trailing-dot host", &url.URL{Scheme: "https", Host: "app.example.com.", Path: "/dashboard"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, m.Allowed(tc.url))
		})
	}
}

func TestNewErrors(t *testing.T) {
	cases := []struct {
		name  string
		entry string
	}{
		{"empty", ""},
		{"relative path", "/dashboard"},
		{"scheme-relative", "//app.example.com/"},
		{"no scheme", "app.example.com"},
		{"other scheme", "ftp://app.example.com/"},
		{"javascript", "javascript:alert(1)"},
		{"opaque", "https:app.example.com"},
		{"empty host", "https:///dashboard"},
		{"userinfo", "https://user@app.example.com/"},
		{"empty userinfo", "https://@app.example.com/"},
		{"query", "https://app.example.com/?x=1"},
		{"empty query", "https://app.example.com/?"},
		{"fragment", "https://app.example.com/#x"},
		{"empty fragment", "https://app.example.com/#"},
		{"bare wildcard", "https://*"},
		{"wildcard inside label", "https://*foo.com"},
		{"wildcard before TLD only", "https://*.com"},
		{"wildcard in middle", "https://foo.*.com"},
		{"wildcard at end", "https://foo.example.*"},
		{"double wildcard", "https://*.*.example.com"},
		{"wildcard before numeric host", "https://*.0.1"},
		{"trailing-dot host", "https://app.example.com./"},
		{"non-ASCII host", "https://аpp.example.com/"},
		{"backslash", "https://app.example.com\\dashboard"},
		{"whitespace", " https://app.example.com/"},
		{"bad port", "https://app.example.com:99999/"},
		{"dot segment in path", "https://app.example.com/a/../b"},
		{"encoded slash in path", "https://app.example.com/a%2fb"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := returnto.New([]string{"https://ok.example.com/", tc.entry})
			require.Error(t, err)
			assert.Nil(t, m)
			assert.Contains(t, err.Error(), strconv.Quote(tc.entry), "error must name the entry")
			assert.False(t, errors.Is(err, returnto.ErrForbidden), "config errors are not ErrForbidden")
		})
	}
}

func TestNewValid(t *testing.T) {
	_, err := returnto.New([]string{
		"https://app.example.com/dashboard",
		"https://*.example.com",
		"HTTP://LOCALHOST:4455/",
		"http://127.0.0.1:4433/",
		"http://[::1]:4433/",
	})
	require.NoError(t, err)
}

func TestConcurrentUse(t *testing.T) {
	m, err := returnto.New(app)
	require.NoError(t, err)
	base, _ := url.Parse(defaultBase)
	done := make(chan struct{})
	for range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			for _, tc := range resolveCases {
				_, _ = m.Resolve(tc.raw, base)
			}
		}()
	}
	for range 8 {
		<-done
	}
}

func mustParse(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	require.NoError(t, err)
	return u
}

// fuzzAllowed is the allow-list used by FuzzResolve.
var fuzzAllowed = []string{
	"https://app.example.com/dashboard",
	"https://*.example.org/",
	"http://localhost:4455/self-service",
	"http://[::1]:8080/",
}

// FuzzResolve checks the security invariant: whatever raw and base are,
// a successful Resolve yields an http(s) URL whose host, port and path lie
// inside some allow-list entry (verified here with an independent, naive
// matcher), and which re-parses to the same scheme, host and path.
func FuzzResolve(f *testing.F) {
	for _, tc := range resolveCases {
		f.Add(tc.raw, tc.base)
	}
	f.Add("/dashboard", "http://localhost:4455/")
	f.Add("http://[::1]:8080/x", "")
	f.Add("https://a.b.example.org:443/x/../y?q#f", "")

	m, err := returnto.New(fuzzAllowed)
	require.NoError(f, err)

	f.Fuzz(func(t *testing.T, raw, baseRaw string) {
		if baseRaw == "" {
			baseRaw = defaultBase
		}
		base, err := url.Parse(baseRaw)
		if err != nil {
			base = nil
		}
		got, err := m.Resolve(raw, base)
		if err != nil {
			require.ErrorIs(t, err, returnto.ErrForbidden)
			require.Nil(t, got)
			return
		}

		s := got.String()
		for _, c := range []byte(s) {
			require.Truef(t, c > ' ' && c < 0x7f && c != '\\', "unsafe byte %q in %q", c, s)
		}
		require.True(t, strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://"), s)

		re, err := url.Parse(s)
		require.NoError(t, err)
		require.Equal(t, got.Scheme, re.Scheme)
		require.Equal(t, got.Host, re.Host)
		require.Equal(t, got.Path, re.Path)
		require.Nil(t, re.User)

		require.Truef(t, naiveAllowed(re), "%q resolved to %q which is outside the allow-list", raw, s)
	})
}

// naiveAllowed is a deliberately simple re-implementation of the matching
// rules, used as an oracle by FuzzResolve.
func naiveAllowed(u *url.URL) bool {
	scheme := u.Scheme
	if scheme != "http" && scheme != "https" {
		return false
	}
	host, port := strings.ToLower(u.Hostname()), portOf(u)
	if strings.HasSuffix(host, ".") || strings.Contains(host, "..") || host == "" {
		return false
	}
	p := u.Path
	if p == "" {
		p = "/"
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "." || seg == ".." {
			return false
		}
	}
	for _, raw := range fuzzAllowed {
		e, _ := url.Parse(raw)
		if e.Scheme != scheme || portOf(e) != port {
			continue
		}
		eh := e.Hostname()
		if suffix, ok := strings.CutPrefix(eh, "*"); ok {
			if !strings.HasSuffix(host, suffix) || len(host) <= len(suffix) {
				continue
			}
		} else if net.ParseIP(eh) != nil {
			if !net.ParseIP(eh).Equal(net.ParseIP(host)) {
				continue
			}
		} else if host != eh {
			continue
		}
		ep := strings.TrimSuffix(e.Path, "/")
		if ep == "" || p == ep || strings.HasPrefix(p, ep+"/") {
			return true
		}
	}
	return false
}

func portOf(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if u.Scheme == "https" {
		return "443"
	}
	return "80"
}
