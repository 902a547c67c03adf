package e2e

// Helpers of kratosui_test.go: the example server and the Node UI of
// examples/kratos-ui as real processes, a real headless Chromium driven by
// chromedp, what each tab's pages did (exceptions, console errors, network
// answers), and screenshots. They follow browser_helpers_test.go, which is in
// the internal package; every name starts with "kui".

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

const (
	// kuiNpmTimeout bounds `npm ci`.
	kuiNpmTimeout = 5 * time.Minute
)

// kuiRequired returns the path of a tool the test cannot run without. It
// skips the test when the tool is missing, except on CI (CI=true), which must
// always run it.
func kuiRequired(t *testing.T, how string, names ...string) string {
	t.Helper()
	for _, name := range names {
		if found, err := exec.LookPath(name); err == nil {
			return found
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal(how)
	}
	t.Skip(how)
	return ""
}

// kuiFindChromium returns the Chromium to run: $CHROMIUM_PATH, else the first
// of chromium, chromium-browser and google-chrome on the PATH.
func kuiFindChromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM_PATH"); p != "" {
		found, err := exec.LookPath(p)
		require.NoError(t, err, "CHROMIUM_PATH=%q is not an executable", p)
		return found
	}
	return kuiRequired(t, "no Chromium found (looked for $CHROMIUM_PATH, chromium, chromium-browser, google-chrome): "+
		"install Debian's chromium package (apt-get install chromium) or set CHROMIUM_PATH; CI always runs this test",
		"chromium", "chromium-browser", "google-chrome")
}

// kuiUIDir is examples/kratos-ui, the Node app under test.
func kuiUIDir(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	require.NoError(t, err)
	return filepath.Join(wd, "..", "kratos-ui")
}

// kuiEnsureNodeModules runs `npm ci` in the UI's directory when its
// node_modules is missing, so that `go test` needs nothing done beforehand.
func kuiEnsureNodeModules(t *testing.T, npm, dir string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, "node_modules")); err == nil {
		return
	} else if !errors.Is(err, os.ErrNotExist) {
		require.NoError(t, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), kuiNpmTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	start := time.Now()
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "npm ci in %s failed:\n%s", dir, out)
	t.Logf("npm ci in %s took %v", dir, time.Since(start).Round(time.Millisecond))
}

// kuiStartAuthflow starts the example server on a free port, with the fast
// bcrypt hasher and its UI pages at the Node UI's origin ui, plus the extra
// flags, and returns its public URL.
func kuiStartAuthflow(t *testing.T, bin, ui string, extra ...string) string {
	t.Helper()
	addr := "127.0.0.1:" + strconv.Itoa(browserFreePort(t))
	args := append([]string{
		"-addr", addr,
		"-hasher", "bcrypt", "-bcrypt-cost", "4",
		"-ui-url", ui + "/login",
		"-error-url", ui + "/error",
		"-default-return-url", ui + "/welcome",
		"-after-logout-url", ui + "/login",
		"-allowed-return-url", ui + "/",
	}, extra...)
	line := startProcess(t, fmt.Sprintf("example server %v", args), exec.Command(bin, args...))
	public := strings.TrimSuffix(strings.TrimPrefix(line, "listening on "), "/")
	require.Equal(t, "http://"+addr, public, "the public URL the example server announced")
	t.Logf("example server %v listening on %s", args, public)
	return public
}

// kuiStartUI starts `node server.js` in dir on port with KRATOS_PUBLIC_URL
// set to kratos, and waits until it answers.
func kuiStartUI(t *testing.T, node, dir string, port int, kratos string) string {
	t.Helper()
	ui := "http://127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(node, "server.js")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "KRATOS_PUBLIC_URL="+kratos, "PORT="+strconv.Itoa(port), "NODE_ENV=production")
	start := time.Now()
	startProcess(t, "kratos-ui (node server.js, KRATOS_PUBLIC_URL="+kratos+")", cmd)

	// Listening is not answering: poll a static file of Ory Elements.
	deadline := time.Now().Add(browserServerStartTimeout)
	for {
		resp, err := http.Get(ui + "/ory-elements/style.css")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode, "the UI serves Ory Elements' style.css")
			break
		}
		require.True(t, time.Now().Before(deadline), "the UI at %s does not answer: %v", ui, err)
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("kratos-ui for %s answers at %s after %v", kratos, ui, time.Since(start).Round(time.Millisecond))
	return ui
}

// kuiStartBrowser starts one headless Chromium with the flags of
// browser_helpers_test.go and a new empty profile.
func kuiStartBrowser(t *testing.T, ctx context.Context, execPath string) context.Context {
	t.Helper()
	profile := t.TempDir()
	output := &browserLockedBuffer{}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(execPath),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(profile),
		chromedp.CombinedOutput(output),
	)
	browserCtx, cancelBrowser := chromedp.NewContext(allocCtx, chromedp.WithErrorf(t.Logf))
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
		if t.Failed() {
			t.Logf("chromium output:\n%s", output.tail(8<<10))
		}
	})
	start := time.Now()
	require.NoError(t, chromedp.Do(browserCtx), "start chromium %s", execPath)
	version, err := chromedp.Run(browserCtx, chromedp.Evaluate[string]("navigator.userAgent"))
	require.NoError(t, err)
	t.Logf("started %s in %v (%s)", execPath, time.Since(start).Round(time.Millisecond), version)
	return browserCtx
}

// kuiPageLog is what the pages of one tab did: uncaught exceptions, errors
// on the console or in the browser log, and the outcome of every request.
type kuiPageLog struct {
	mu         sync.Mutex
	exceptions []string
	errors     []string
	urls       map[network.RequestID]string
	outcomes   map[string][]string // by URL, in order: "200", or "failed: <error> <blocked reason>"
	requested  []string            // every URL requested, redirect hops included, in order
}

func (l *kuiPageLog) record(ev any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch e := ev.(type) {
	case *runtime.EventExceptionThrown:
		d := e.ExceptionDetails
		text := d.Text
		if d.Exception != nil && d.Exception.Description != "" {
			text += " " + d.Exception.Description
		}
		l.exceptions = append(l.exceptions, fmt.Sprintf("%s (%s:%d:%d)", text, d.URL, d.LineNumber+1, d.ColumnNumber+1))
	case *runtime.EventConsoleAPICalled:
		if e.Type == runtime.ConsoleAPICalledTypeError {
			parts := make([]string, 0, len(e.Args))
			for _, a := range e.Args {
				if a.Description != "" {
					parts = append(parts, a.Description)
				} else {
					parts = append(parts, string(a.Value))
				}
			}
			l.errors = append(l.errors, "console.error: "+strings.Join(parts, " "))
		}
	case *log.EventEntryAdded:
		if e.Entry.Level == log.EntryLevelError {
			l.errors = append(l.errors, fmt.Sprintf("%s: %s %s", e.Entry.Source, e.Entry.Text, e.Entry.URL))
		}
	case *network.EventRequestWillBeSent:
		l.urls[e.RequestID] = e.Request.URL
		l.requested = append(l.requested, e.Request.URL)
	case *network.EventResponseReceived:
		l.outcomes[e.Response.URL] = append(l.outcomes[e.Response.URL], strconv.FormatInt(e.Response.Status, 10))
	case *network.EventLoadingFailed:
		// A blocked response (a cross-origin script answered with an error
		// page is blocked by ORB) fires no responseReceived, only this.
		if u, ok := l.urls[e.RequestID]; ok {
			l.outcomes[u] = append(l.outcomes[u], strings.TrimSpace("failed: "+e.ErrorText+" "+string(e.BlockedReason)))
		}
	}
}

// Exceptions returns the uncaught exceptions so far.
func (l *kuiPageLog) Exceptions() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.exceptions...)
}

// Errors returns the console and browser-log errors so far.
func (l *kuiPageLog) Errors() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.errors...)
}

// Requested returns every URL requested so far, redirect hops included.
func (l *kuiPageLog) Requested() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.requested...)
}

// Outcomes returns the outcomes of the requests for rawURL so far: the
// response's status, or why it failed.
func (l *kuiPageLog) Outcomes(rawURL string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.outcomes[rawURL]...)
}

// kuiTab opens a tab in a new browser context (no cookies shared with other
// tabs) and records what its pages do. It closes when the test ends.
func kuiTab(t *testing.T, browserCtx context.Context) (context.Context, *kuiPageLog) {
	t.Helper()
	tab, cancel := chromedp.NewContext(browserCtx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	pages := &kuiPageLog{urls: map[network.RequestID]string{}, outcomes: map[string][]string{}}
	require.NoError(t, chromedp.Listen(tab, pages.record), "listen to the tab's events")
	require.NoError(t, chromedp.Do(tab), "open a tab in a new browser context")
	t.Cleanup(func() {
		if errs := pages.Errors(); len(errs) > 0 {
			t.Logf("console and browser-log errors of the tab:\n  %s", strings.Join(errs, "\n  "))
		}
	})
	return tab, pages
}

// kuiScreenshot saves a full-page PNG of the tab as dir/name.
func kuiScreenshot(t *testing.T, tab context.Context, dir, name string) {
	t.Helper()
	png := browserRun(t, tab, "screenshot "+name, chromedp.FullScreenshot(100))
	require.True(t, bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")), "screenshot %s is not a PNG", name)
	path := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(path, png, 0o644))
	t.Logf("screenshot: %s", path)
}
