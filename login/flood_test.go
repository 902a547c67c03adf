package login_test

// Stored request data is bounded (SECURITY.md, "Bounded input"): a URL
// longer than login.MaxURLLength is refused with 414 before anything is
// stored, so a flow or a forwarded error keeps at most that much of a
// request URL; and the in-memory stores keep a bounded number of entries,
// dropping the oldest, so that a flood of valid requests cannot grow the
// heap without bound.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	autherrors "github.com/authflow/authflow/errors"
	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/login"
)

// Headers of a browser's top-level navigation (Chrome 131).
var floodBrowserHeader = map[string]string{
	"Accept":          "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8",
	"Accept-Language": "en-GB,en;q=0.9",
	"User-Agent":      "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
}

// floodTarget returns a fresh request target of exactly n bytes: path,
// then "?return_to=" with base (its path made as long as it takes) and,
// after it, the other query parameters in rest. n must leave room for
// them. Each call builds a new string, so that no two requests share
// memory.
func floodTarget(path, base, rest string, n, i int) string {
	prefix := path + "?return_to=" + url.QueryEscape(base+"p"+strconv.Itoa(i)+"/")
	suffix := ""
	if rest != "" {
		suffix = "&" + rest
	}
	pad := n - len(prefix) - len(suffix)
	if pad < 0 {
		panic(fmt.Sprintf("floodTarget: %d bytes do not fit in %d", len(prefix)+len(suffix), n))
	}
	return prefix + strings.Repeat("a", pad) + suffix
}

// floodJunkTarget returns a fresh target of exactly n bytes whose query is
// a parameter the handler ignores.
func floodJunkTarget(path string, n, i int) string {
	prefix := path + "?x" + strconv.Itoa(i) + "="
	return prefix + strings.Repeat("a", n-len(prefix))
}

// floodServe sends a request to h in process and returns the recorded answer.
func floodServe(h http.Handler, method, target string, header map[string]string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, nil)
	for k, v := range header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// floodHeap returns the bytes of live heap objects after a collection.
func floodHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// floodCountingStore counts the writes that store something new.
type floodCountingStore struct {
	login.FlowStore
	flows, errs atomic.Int64
}

func (s *floodCountingStore) CreateFlow(ctx context.Context, rec *flow.Record) error {
	s.flows.Add(1)
	return s.FlowStore.CreateFlow(ctx, rec)
}

func (s *floodCountingStore) CreateError(ctx context.Context, rec *flow.ErrorRecord) error {
	s.errs.Add(1)
	return s.FlowStore.CreateError(ctx, rec)
}

// TestURLTooLong: a request whose URL is longer than MaxURLLength, to any
// endpoint, is answered 414 with the envelope, as JSON even to a browser
// navigation (never a redirect to the error UI), before anything is
// stored, and reported to OnEvent as a refusal.
func TestURLTooLong(t *testing.T) {
	huge := 700 << 10
	over := login.MaxURLLength + 1
	tests := []struct {
		name   string
		method string
		target string
		header map[string]string
		action string
	}{
		{"browser navigation, 700 KB query", http.MethodGet, floodJunkTarget("/self-service/login/browser", huge, 0), floodBrowserHeader, "login.create"},
		{"browser navigation, one byte over", http.MethodGet, floodJunkTarget("/self-service/login/browser", over, 0), floodBrowserHeader, "login.create"},
		{"browser navigation, return_to one byte over", http.MethodGet, floodTarget("/self-service/login/browser", allowedReturn, "", over, 0), floodBrowserHeader, "login.create"},
		{"browser navigation, forbidden return_to one byte over", http.MethodGet, floodTarget("/self-service/login/browser", "https://evil.example.com/", "", over, 0), floodBrowserHeader, "login.create"},
		{"spa, 700 KB query", http.MethodGet, floodJunkTarget("/self-service/login/browser", huge, 0), bbAcceptJSON, "login.create"},
		{"api, 700 KB query", http.MethodGet, floodJunkTarget("/self-service/login/api", huge, 0), nil, "login.create"},
		{"api, one byte over", http.MethodGet, floodJunkTarget("/self-service/login/api", over, 0), nil, "login.create"},
		{"api, return_to one byte over", http.MethodGet, floodTarget("/self-service/login/api", allowedReturn, "return_session_token_exchange_code=true", over, 0), nil, "login.create"},
		{"submit", http.MethodPost, floodJunkTarget("/self-service/login", over, 0), map[string]string{"Content-Type": formContentType}, "login.submit"},
		{"fetch flow", http.MethodGet, floodJunkTarget("/self-service/login/flows", over, 0), nil, "login.fetch"},
		{"fetch error", http.MethodGet, floodJunkTarget("/self-service/errors", over, 0), nil, "error.fetch"},
		{"whoami", http.MethodGet, floodJunkTarget("/sessions/whoami", over, 0), nil, "whoami"},
		{"logout url", http.MethodGet, floodTarget("/self-service/logout/browser", "https://evil.example.com/", "", over, 0), floodBrowserHeader, "logout.url"},
		{"callback", http.MethodGet, floodJunkTarget("/self-service/methods/password/callback/x", over, 0), floodBrowserHeader, "login.callback"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var (
				mu     sync.Mutex
				events []login.Event
				store  *floodCountingStore
			)
			e := newEnv(t, func(c *login.Config) {
				store = &floodCountingStore{FlowStore: c.FlowStore}
				c.FlowStore = store
				c.OnEvent = func(_ context.Context, ev login.Event) { mu.Lock(); events = append(events, ev); mu.Unlock() }
			})
			var body io.Reader
			if tt.method == http.MethodPost {
				body = strings.NewReader("method=password")
			}
			r := e.do(e.browser(), tt.method, tt.target, body, tt.header)

			eo := bbEnvelope(t, r, http.StatusRequestURITooLong, "")
			assert.Equal(t, "Request URI Too Long", eo["status"])
			assert.Equal(t, "The request URL is longer than 4096 bytes.", eo["reason"])
			assert.Equal(t, "The request URL is too long", eo["message"])
			assert.Empty(t, r.header.Get("Location"), "never forwarded to the error UI")
			bbNoSetCookie(t, r)
			assert.Zero(t, store.flows.Load(), "flows created")
			assert.Zero(t, store.errs.Load(), "errors forwarded")
			assert.Zero(t, e.flows.Len(), "entries stored")
			mu.Lock()
			defer mu.Unlock()
			if assert.Len(t, events, 1) {
				assert.Equal(t, tt.action, events[0].Action)
				assert.Equal(t, login.OutcomeRefused, events[0].Outcome)
				assert.Equal(t, http.StatusRequestURITooLong, events[0].Status)
			}
		})
	}
}

// TestURLAtTheLimit: a URL of exactly MaxURLLength bytes is served as
// before: flows keep it as request_url and its return_to; a forbidden
// return_to that long is still forwarded to the error UI, quoted whole.
func TestURLAtTheLimit(t *testing.T) {
	n := login.MaxURLLength
	t.Run("api flow", func(t *testing.T) {
		e := newEnv(t)
		target := floodTarget("/self-service/login/api", allowedReturn, "", n, 0)
		require.Len(t, target, n)
		r := e.do(e.api(), http.MethodGet, target, nil, nil)
		f := r.flow(t)
		assert.Equal(t, e.srv.URL+target, f.RequestURL)
		u, _ := url.Parse(target)
		assert.Equal(t, u.Query().Get("return_to"), f.ReturnTo)
	})
	t.Run("browser navigation", func(t *testing.T) {
		e := newEnv(t)
		c := e.browser()
		target := floodTarget("/self-service/login/browser", allowedReturn, "", n, 0)
		loc := bbRedirect(t, e.do(c, http.MethodGet, target, nil, floodBrowserHeader))
		require.True(t, strings.HasPrefix(loc, loginUI+"?flow="), loc)
		u, _ := url.Parse(loc)
		f := e.do(c, http.MethodGet, "/self-service/login/flows?id="+u.Query().Get("flow"), nil, nil).flow(t)
		assert.Equal(t, e.srv.URL+target, f.RequestURL)
	})
	t.Run("forbidden return_to is forwarded", func(t *testing.T) {
		e := newEnv(t)
		target := floodTarget("/self-service/login/browser", "https://evil.example.com/", "", n, 0)
		u, _ := url.Parse(target)
		eo := e.bbForwarded(t, e.do(e.browser(), http.MethodGet, target, nil, floodBrowserHeader))
		assert.Equal(t, autherrors.IDReturnToForbidden, eo["id"])
		assert.Equal(t, autherrors.ReturnToReason(u.Query().Get("return_to")), eo["reason"])
	})
	t.Run("the client's URL counts under http.StripPrefix", func(t *testing.T) {
		mux := http.NewServeMux()
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		h, err := login.New(login.Config{
			PublicURL: srv.URL + "/auth", LoginUIURL: loginUI, ErrorUIURL: errorUI, DefaultReturnURL: defaultReturn,
			Logger: discardLogger(),
		})
		require.NoError(t, err)
		mux.Handle("/auth/", http.StripPrefix("/auth", h))
		e := &env{t: t, srv: srv}

		r := e.do(e.api(), http.MethodGet, "/auth"+floodJunkTarget("/self-service/login/api", n-len("/auth"), 0), nil, nil)
		assert.Equal(t, http.StatusOK, r.status, "exactly the limit as sent: body %s", r.body)
		r = e.do(e.api(), http.MethodGet, "/auth"+floodJunkTarget("/self-service/login/api", n-len("/auth")+1, 0), nil, nil)
		bbEnvelope(t, r, http.StatusRequestURITooLong, "")
	})
}

// TestURLFloodLeavesTheHeapFlat is the review's attack: 300
// unauthenticated requests with 700 KB query strings (API flows with junk,
// browser navigations with a forbidden return_to) used to keep every URL
// in a flow or a forwarded error for a day, about 1 MiB each. They are
// refused now, and the heap does not grow.
func TestURLFloodLeavesTheHeapFlat(t *testing.T) {
	e := newEnv(t)
	const requests, size = 300, 700 << 10
	before := floodHeap()
	refused := 0
	for i := range requests {
		var w *httptest.ResponseRecorder
		if i%2 == 0 {
			w = floodServe(e.h, http.MethodGet, floodJunkTarget("/self-service/login/api", size, i), nil)
		} else {
			w = floodServe(e.h, http.MethodGet, floodTarget("/self-service/login/browser", "https://evil.example.com/", "", size, i), floodBrowserHeader)
		}
		if w.Code == http.StatusRequestURITooLong {
			refused++
		}
	}
	after := floodHeap()
	growth := int64(after) - int64(before)
	t.Logf("heap: %.1f MiB before, %.1f MiB after %d requests of %d KiB", floodMiB(before), floodMiB(after), requests, size>>10)
	assert.Less(t, growth, int64(4<<20), "heap growth in bytes")
	assert.Equal(t, requests, refused, "requests answered 414")
	assert.Zero(t, e.flows.Len(), "entries stored")
}

// TestFlowFloodKeepsTheStoreBounded: a flood of valid flow creations, five
// times the store's maximum, with URLs at the limit: the store holds the
// maximum, the newest flows work (fetch, login), the oldest are gone, and
// the heap stops growing once the store is full.
func TestFlowFloodKeepsTheStoreBounded(t *testing.T) {
	const maxEntries = 1000
	e := newEnv(t)
	e.flows.SetMaxEntries(maxEntries)
	create := func(i int) string {
		t.Helper()
		w := floodServe(e.h, http.MethodGet, floodTarget("/self-service/login/api", allowedReturn, "", login.MaxURLLength, i), nil)
		require.Equal(t, http.StatusOK, w.Code, "flow %d: %s", i, w.Body)
		return (&result{body: w.Body.Bytes()}).flow(t).ID
	}

	var ids []string
	for i := range maxEntries {
		ids = append(ids, create(i))
	}
	full := floodHeap()
	for i := maxEntries; i < 5*maxEntries; i++ {
		ids = append(ids, create(i))
		if i%500 == 0 {
			require.Equal(t, maxEntries, e.flows.Len(), "entries after %d creations", i+1)
		}
	}
	flooded := floodHeap()
	t.Logf("heap: %.1f MiB with the store full, %.1f MiB after %d more creations", floodMiB(full), floodMiB(flooded), 4*maxEntries)

	assert.Equal(t, maxEntries, e.flows.Len())
	assert.Less(t, int64(flooded)-int64(full), int64(full/4), "the heap grows no more once the store is full")
	for _, id := range ids[len(ids)-maxEntries:][:10] {
		r := e.do(e.api(), http.MethodGet, "/self-service/login/flows?id="+id, nil, nil)
		assert.Equal(t, http.StatusOK, r.status, "one of the newest flows: %s", r.body)
	}
	for _, id := range []string{ids[0], ids[len(ids)-maxEntries-1]} {
		r := e.do(e.api(), http.MethodGet, "/self-service/login/flows?id="+id, nil, nil)
		assert.Equal(t, http.StatusNotFound, r.status, "one of the oldest flows: %s", r.body)
	}
	r := e.submitJSON(e.api(), ids[len(ids)-1], credentials(testIdentifier, testPassword, ""), nil)
	require.Equal(t, http.StatusOK, r.status, "the newest flow logs in: %s", r.body)
}

// TestSubmittedBodiesAreNotKept: a short value kept from a submission (the
// identifier echoed into the flow, the throttling key) is a copy, not a
// piece of the body: 100 failed logins with 900 KB form bodies leave the
// heap flat.
func TestSubmittedBodiesAreNotKept(t *testing.T) {
	e := newEnv(t)
	ids := make([]string, 100)
	for i := range ids {
		ids[i] = e.apiFlow("").ID
	}
	before := floodHeap()
	for i, id := range ids {
		body := "method=password&identifier=user" + strconv.Itoa(i) + "@example.com&password=wrong&pad=" + strings.Repeat("a", 900<<10)
		r := httptest.NewRequest(http.MethodPost, "/self-service/login?flow="+id, strings.NewReader(body))
		r.Header.Set("Content-Type", formContentType)
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, r)
		require.Equal(t, http.StatusBadRequest, w.Code, "submission %d", i)
	}
	after := floodHeap()
	t.Logf("heap: %.1f MiB before, %.1f MiB after 100 submissions of 900 KiB", floodMiB(before), floodMiB(after))
	assert.Less(t, int64(after)-int64(before), int64(4<<20), "heap growth in bytes")
}

// TestForwardedRequestIDIsCut: the X-Request-ID an error carries is kept
// with it when it is forwarded to the error UI, cut to 256 bytes.
func TestForwardedRequestIDIsCut(t *testing.T) {
	e := newEnv(t)
	header := map[string]string{"X-Request-ID": strings.Repeat("r", 64<<10)}
	for k, v := range floodBrowserHeader {
		header[k] = v
	}
	r := e.do(e.browser(), http.MethodGet, "/self-service/login/browser?aal=aal3", nil, header)
	eo := e.bbForwarded(t, r)
	assert.Equal(t, strings.Repeat("r", 256), eo["request"])
}

// TestForwardedErrorIsAnsweredEscaped: a forwarded error is stored without
// HTML escaping, which would take up to six times the bytes of a quoted
// return_to, and answered with it, as any JSON answer.
func TestForwardedErrorIsAnsweredEscaped(t *testing.T) {
	e := newEnv(t)
	r := e.do(e.browser(), http.MethodGet, "/self-service/login/browser?return_to=https://evil.example.com/%3Cscript%3E", nil, floodBrowserHeader)
	loc, err := url.Parse(bbRedirect(t, r))
	require.NoError(t, err)
	id := loc.Query().Get("id")

	stored, err := e.flows.Error(context.Background(), id)
	require.NoError(t, err)
	assert.Contains(t, string(stored.Error), `"Requested return_to URL \"https://evil.example.com/<script>\" is not allowed."`)
	got := e.do(e.api(), http.MethodGet, "/self-service/errors?id="+id, nil, nil)
	assert.Contains(t, string(got.body), `evil.example.com/\u003cscript\u003e`)
	assert.NotContains(t, string(got.body), "<")
}

func floodMiB(n uint64) float64 { return float64(n) / (1 << 20) }

// BenchmarkFlowFlood fills a flow store through the Handler with twice its
// maximum of entries and reports the heap they take: per stored entry and
// in all, for ordinary browser flows, for flows and forwarded errors made
// from URLs of MaxURLLength bytes, and (through logins) per session. The
// per-entry figures are the ones the defaults of flow.DefaultMaxEntries and
// session.DefaultMaxSessions are chosen from.
//
//	go test ./login -run '^$' -bench FlowFlood -benchtime 1x
func BenchmarkFlowFlood(b *testing.B) {
	const maxEntries = 10_000
	longest := login.MaxURLLength
	cases := []struct {
		name   string
		status int
		req    func(i int) (string, map[string]string)
	}{
		{"entry=browser-flow", http.StatusSeeOther, func(int) (string, map[string]string) {
			return "/self-service/login/browser", floodBrowserHeader
		}},
		{"entry=longest-url-flow", http.StatusSeeOther, func(i int) (string, map[string]string) {
			return floodTarget("/self-service/login/browser", allowedReturn, "", longest, i), floodBrowserHeader
		}},
		{"entry=longest-url-error", http.StatusSeeOther, func(i int) (string, map[string]string) {
			return floodTarget("/self-service/login/browser", "https://evil.example.com/", "", longest, i), floodBrowserHeader
		}},
		{"entry=longest-url-error-escaped", http.StatusSeeOther, func(i int) (string, map[string]string) {
			// A character that JSON escapes, as \", doubling the stored
			// error's reason.
			target := floodTarget("/self-service/login/browser", "https://evil.example.com/", "", longest, i)
			n := strings.Index(target, "aaaa")
			return target[:n] + strings.ReplaceAll(target[n:], "a", `"`), floodBrowserHeader
		}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				e := newEnv(b)
				e.flows.SetMaxEntries(maxEntries)
				before := floodHeap()
				for i := range 2 * maxEntries {
					target, header := tc.req(i)
					if w := floodServe(e.h, http.MethodGet, target, header); w.Code != tc.status {
						b.Fatalf("request %d: %d %s", i, w.Code, w.Body)
					}
				}
				heap := float64(floodHeap() - before)
				b.ReportMetric(heap/float64(e.flows.Len()), "heap-B/entry")
				b.ReportMetric(heap/(1<<20), "heap-MiB")
				b.ReportMetric(float64(e.flows.Len()), "entries")
			}
		})
	}
	for _, tc := range []struct{ name, userAgent string }{
		{"entry=session", floodBrowserHeader["User-Agent"]},
		{"entry=session-longest-user-agent", strings.Repeat("u", 2*login.MaxUserAgentLength)},
	} {
		b.Run(tc.name, func(b *testing.B) { benchSessions(b, tc.userAgent) })
	}
}

// benchSessions logs in through API flows and reports the heap the
// sessions take.
func benchSessions(b *testing.B, userAgent string) {
	const sessions = 5000
	body := `{"method":"password","identifier":"alice@example.com","password":"correct horse battery staple"}`
	for b.Loop() {
		e := newEnv(b, func(c *login.Config) { c.DisableThrottling = true })
		before := floodHeap()
		for i := range sessions {
			w := floodServe(e.h, http.MethodGet, "/self-service/login/api", nil)
			id := flowID(b, w)
			req := httptest.NewRequest(http.MethodPost, "/self-service/login?flow="+id, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("User-Agent", strings.Clone(userAgent)) // a string per request, as a server reads it
			w = httptest.NewRecorder()
			e.h.ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				b.Fatalf("login %d: %d %s", i, w.Code, w.Body)
			}
		}
		e.flows.SetMaxEntries(1) // only the sessions stay
		heap := float64(floodHeap() - before)
		b.ReportMetric(heap/float64(e.sessions.Len()), "heap-B/entry")
		b.ReportMetric(heap/(1<<20), "heap-MiB")
		b.ReportMetric(float64(e.sessions.Len()), "entries")
	}
}
