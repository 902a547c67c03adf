package e2e

// Helpers of browser_test.go: the example server as a real process, a real
// headless Chromium driven by chromedp, and screenshots. Every name starts
// with "browser" so that it cannot clash with the other suites of the package.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

const (
	// browserStepTimeout bounds one browser step (a navigation, a wait, a
	// click), so that a stuck step fails with its own name long before the
	// overall timeout of the test.
	browserStepTimeout = 15 * time.Second
	// browserServerStartTimeout bounds the wait for "listening on".
	browserServerStartTimeout = 30 * time.Second
)

// browserLockedBuffer collects the output of a process for failure logs.
type browserLockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *browserLockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// tail returns the last n bytes written.
func (b *browserLockedBuffer) tail(n int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.String()
	if len(s) > n {
		s = "…" + s[len(s)-n:]
	}
	return s
}

// browserBuildServer builds the example server once for the test and returns
// the path of the binary. It builds the package in its own module (the
// directory ../server belongs to github.com/authflow/authflow), so the binary
// is exactly what `go run ./examples/server` runs.
func browserBuildServer(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	require.NoError(t, err, "the go command is needed to build the example server")
	wd, err := os.Getwd()
	require.NoError(t, err)
	bin := filepath.Join(t.TempDir(), "server")
	cmd := exec.Command(goTool, "build", "-o", bin, ".")
	cmd.Dir = filepath.Join(wd, "..", "server")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build of the example server (in %s) failed:\n%s", cmd.Dir, out)
	t.Logf("built the example server in %v", time.Since(start).Round(time.Millisecond))
	return bin
}

// browserFreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func browserFreePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	return port
}

// browserServer is a running example server process.
type browserServer struct {
	URL string // the public URL it printed, without a trailing slash
}

// browserStartServer starts the binary on a free port with the fast bcrypt
// hasher and the extra flags, waits for its "listening on" line and stops it
// when the test ends. The server's log is printed if the test fails.
func browserStartServer(t *testing.T, bin string, extra ...string) *browserServer {
	t.Helper()
	addr := "127.0.0.1:" + strconv.Itoa(browserFreePort(t))
	args := append([]string{"-addr", addr, "-hasher", "bcrypt", "-bcrypt-cost", "4"}, extra...)
	line := startProcess(t, fmt.Sprintf("example server %v", args), exec.Command(bin, args...))
	s := &browserServer{URL: strings.TrimSuffix(strings.TrimPrefix(line, "listening on "), "/")}
	require.Equal(t, "http://"+addr, s.URL, "the public URL the server announced")
	t.Logf("example server %v listening on %s", args, s.URL)
	return s
}

// startProcess starts cmd, waits for the line starting with "listening on "
// on its standard output and returns that line. The process is interrupted
// (then killed) when the test ends, and its output is logged if the test
// failed.
func startProcess(t *testing.T, name string, cmd *exec.Cmd) string {
	t.Helper()
	stdoutR, stdoutW := io.Pipe()
	output := &browserLockedBuffer{}
	cmd.Stdout = io.MultiWriter(stdoutW, output)
	cmd.Stderr = output
	require.NoError(t, cmd.Start(), "start %s", name)

	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		_ = stdoutW.Close()
		close(exited)
	}()
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdoutR)
		sent := false
		for sc.Scan() {
			if !sent && strings.HasPrefix(sc.Text(), "listening on ") {
				lines <- sc.Text()
				sent = true
			}
		}
		_, _ = io.Copy(io.Discard, stdoutR)
	}()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			_ = cmd.Process.Signal(os.Interrupt)
			select {
			case <-exited:
			case <-time.After(5 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, output.tail(16<<10))
		}
	})

	select {
	case line := <-lines:
		return line
	case <-exited:
		t.Fatalf("%s exited before it listened: %v\n%s", name, waitErr, output.tail(16<<10))
	case <-time.After(browserServerStartTimeout):
		t.Fatalf("%s printed no \"listening on\" line within %v:\n%s", name, browserServerStartTimeout, output.tail(16<<10))
	}
	return ""
}

// browserFindChromium returns the Chromium to run: $CHROMIUM_PATH, else the
// first of chromium, chromium-browser and google-chrome on the PATH. Without
// one the test is skipped, except on CI (CI=true), which must always run it.
func browserFindChromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM_PATH"); p != "" {
		found, err := exec.LookPath(p)
		require.NoError(t, err, "CHROMIUM_PATH=%q is not an executable", p)
		return found
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if found, err := exec.LookPath(name); err == nil {
			return found
		}
	}
	const how = "no Chromium found (looked for $CHROMIUM_PATH, chromium, chromium-browser, google-chrome): " +
		"install Debian's chromium package (apt-get install chromium) or set CHROMIUM_PATH; CI always runs this test"
	if os.Getenv("CI") == "true" {
		t.Fatal(how)
	}
	t.Skip(how)
	return ""
}

// browserStart starts one headless Chromium for the test with exactly the
// flags below and a new empty profile, and returns the context of its first
// tab. Scenarios open their own tabs in fresh browser contexts with browserTab.
// The browser is stopped when the test ends; its output is printed if the test
// fails.
func browserStart(t *testing.T, ctx context.Context, execPath string) context.Context {
	t.Helper()
	profile := t.TempDir() // registered before the browser's cleanup, so removed after the browser exited
	output := &browserLockedBuffer{}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(execPath),
		// Exactly these flags. chromedp.Headless and chromedp.DisableGPU
		// would add --hide-scrollbars, --mute-audio and
		// --enable-unsafe-swiftshader, DefaultExecAllocatorOptions many more.
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
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	browserCtx, cancelBrowser := chromedp.NewContext(allocCtx, chromedp.WithErrorf(t.Logf))
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc() // waits for the browser process to exit
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

// browserTab opens a tab in a new browser context of the running browser, so
// that it shares no cookies with any other tab. It closes when the test ends.
func browserTab(t *testing.T, browserCtx context.Context) context.Context {
	t.Helper()
	tab, cancel := chromedp.NewContext(browserCtx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	require.NoError(t, chromedp.Do(tab), "open a tab in a new browser context")
	return tab
}

// browserDo runs actions in the tab with a per-step timeout; what names the
// step in the failure message.
func browserDo(t *testing.T, tab context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, browserStepTimeout)
	defer cancel()
	require.NoError(t, chromedp.Do(ctx, actions...), what)
}

// browserRun runs one action that returns a value, with a per-step timeout.
func browserRun[T any](t *testing.T, tab context.Context, what string, action chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, browserStepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, action)
	require.NoError(t, err, what)
	return v
}

// browserNavigate runs actions that make the page navigate (a navigation, a
// click, an Enter in a form), waits until the last page of any redirect
// chain has loaded and returns its URL, after checking that it answered 200
// with HTML.
func browserNavigate(t *testing.T, tab context.Context, what string, actions ...chromedp.Action[chromedp.Void]) *url.URL {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, browserStepTimeout)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, actions...)
	require.NoError(t, err, what)
	require.NotNil(t, resp, what)
	require.EqualValues(t, 200, resp.Status, "%s: status of %s", what, resp.URL)
	require.Contains(t, resp.MimeType, "text/html", "%s: %s", what, resp.URL)
	u, err := url.Parse(resp.URL)
	require.NoError(t, err)
	// The URL the browser shows must be the one the response came from.
	loc := browserRun(t, tab, "read location", chromedp.Location())
	require.Equal(t, resp.URL, loc, "%s: the address bar", what)
	return u
}

// browserText returns document.body.innerText, the text a user sees.
func browserText(t *testing.T, tab context.Context) string {
	t.Helper()
	return browserRun(t, tab, "read the page text", chromedp.Evaluate[string]("document.body.innerText"))
}

// browserCookies returns the browser's cookies for the URL, by name.
func browserCookies(t *testing.T, tab context.Context, rawURL string) map[string]*network.Cookie {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, browserStepTimeout)
	defer cancel()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{rawURL}})
	require.NoError(t, err, "Network.getCookies")
	m := make(map[string]*network.Cookie, len(res.Cookies))
	for _, c := range res.Cookies {
		m[c.Name] = c
	}
	return m
}

// browserScreenshotDir returns where screenshots go: $AUTHFLOW_SCREENSHOTS
// (created if needed), else a new temporary directory that is kept after the
// test so the images can be looked at.
func browserScreenshotDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("AUTHFLOW_SCREENSHOTS")
	if dir != "" {
		require.NoError(t, os.MkdirAll(dir, 0o755))
	} else {
		var err error
		dir, err = os.MkdirTemp("", "authflow-screenshots-")
		require.NoError(t, err)
	}
	abs, err := filepath.Abs(dir)
	require.NoError(t, err)
	t.Logf("screenshots go to %s (kept; set AUTHFLOW_SCREENSHOTS to choose the directory)", abs)
	return abs
}

// browserScreenshot saves a full-page PNG of the tab as dir/name and logs its
// path.
func browserScreenshot(t *testing.T, tab context.Context, dir, name string) {
	t.Helper()
	png := browserRun(t, tab, "screenshot "+name, chromedp.FullScreenshot(100)) // quality 100 means PNG
	require.True(t, bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")), "screenshot %s is not a PNG", name)
	path := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(path, png, 0o644))
	t.Logf("screenshot: %s", path)
}

// browserSleepUntil waits until the deadline, or fails when ctx ends first.
func browserSleepUntil(t *testing.T, ctx context.Context, deadline time.Time) {
	t.Helper()
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
		require.NoError(t, errors.Join(ctx.Err(), fmt.Errorf("while waiting until %v", deadline)))
	}
}
