package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Mode is what one operation of a client is.
type Mode string

// The modes. Every login is a fresh flow; create and submit count as one
// login.
const (
	// ModeAPI is a native login: GET /self-service/login/api, then POST the
	// password as JSON, answered 200 with a session token.
	ModeAPI Mode = "api"
	// ModeBrowser is a server-rendered browser login with a fresh cookie
	// jar: GET /self-service/login/browser (303 and the CSRF cookie), GET
	// /self-service/login/flows as the login UI does, then POST the form,
	// answered 303 with the session cookie.
	ModeBrowser Mode = "browser"
	// ModeWhoami is a session check: GET /sessions/whoami with the session
	// token of a login that each client makes once, answered 200.
	ModeWhoami Mode = "whoami"
)

// Config is one benchmark run.
type Config struct {
	BaseURL  string        // the server's public URL, such as http://127.0.0.1:4433
	Mode     Mode          // ModeAPI, ModeBrowser or ModeWhoami
	Clients  int           // concurrent clients, each with its own connection; at least 1
	Warmup   time.Duration // how long the clients run before the measurement starts
	Duration time.Duration // how long the measurement lasts; more than 0

	// Identifier and Password are the credentials every login submits.
	Identifier, Password string
	// SessionCookie is the name of the cookie a successful browser login
	// sets (login.DefaultSessionCookieName on the example server).
	SessionCookie string

	// CPU are the processes whose CPU time the run reports: each is read
	// when the measurement starts and when it ends.
	CPU []CPUSource
	// Progress, if not nil, is called about once a second while the run
	// lasts and when the warm-up and the measurement end, always from the
	// goroutine that called Run.
	Progress func(Progress)
}

// A CPUSource reads the CPU time that some processes have used so far.
type CPUSource struct {
	Name string // such as "server" or "postgres"
	Read func() (time.Duration, error)
}

// Progress is the state of a running benchmark.
type Progress struct {
	Measuring bool          // false during the warm-up
	Elapsed   time.Duration // since the phase (warm-up or measurement) began
	Phase     time.Duration // how long the phase lasts
	Ops       int64         // operations completed in the phase so far
	Errors    int64         // failed operations in the phase so far
	Rate      float64       // operations per second since the previous Progress
}

// Result is what a run measured. Operations and errors count only what
// completed during the measurement, not during the warm-up.
type Result struct {
	Ops      int64         // successful operations
	Errors   int64         // failed operations
	Elapsed  time.Duration // the measurement's wall time
	P50, P99 time.Duration // latency of a successful operation
	// ErrorKinds are the first few kinds of error, in the order they first
	// occurred, with an example text each.
	ErrorKinds []ErrorKind
	CPU        []CPUUsage // in the order of Config.CPU
}

// PerSecond is the rate of successful operations.
func (r *Result) PerSecond() float64 { return float64(r.Ops) / r.Elapsed.Seconds() }

// ErrorRate is the share of operations that failed, 0 when none
// completed.
func (r *Result) ErrorRate() float64 {
	if r.Ops+r.Errors == 0 {
		return 0
	}
	return float64(r.Errors) / float64(r.Ops+r.Errors)
}

// ErrorKind is one kind of error: the step and what went wrong.
type ErrorKind struct {
	Kind    string // such as "POST /self-service/login: status 400"
	Example string // the first such error, with the start of the response
	Count   int64
}

// CPUUsage is the CPU time that a CPUSource used during the measurement,
// or why it could not be read.
type CPUUsage struct {
	Name string
	Time time.Duration
	Err  error
}

// maxErrorKinds is how many kinds of error a Result lists; more are still
// counted in Errors.
const maxErrorKinds = 5

// The phases of a run, in order.
const (
	phaseWarmup int32 = iota
	phaseMeasure
	phaseDone
)

// Run drives the server at cfg.BaseURL with cfg.Clients concurrent
// clients for cfg.Warmup and then cfg.Duration, and returns what it
// measured during cfg.Duration. It returns an error for an invalid Config
// or when ctx ends first; failed operations are not errors of Run but
// counted in the Result.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	switch {
	case cfg.Mode != ModeAPI && cfg.Mode != ModeBrowser && cfg.Mode != ModeWhoami:
		return nil, fmt.Errorf("unknown mode %q: want api, browser or whoami", cfg.Mode)
	case cfg.Clients < 1:
		return nil, errors.New("need at least one client")
	case cfg.Duration <= 0 || cfg.Warmup < 0:
		return nil, errors.New("the duration must be positive and the warm-up not negative")
	}
	base, err := url.Parse(cfg.BaseURL)
	if err != nil || base.Host == "" {
		return nil, fmt.Errorf("base URL %q is not an absolute URL", cfg.BaseURL)
	}
	cfg.BaseURL = strings.TrimSuffix(cfg.BaseURL, "/")

	b := &bench{}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	latencies := make([][]time.Duration, cfg.Clients)
	var wg sync.WaitGroup
	for i := range cfg.Clients {
		c := newClient(&cfg)
		wg.Go(func() { latencies[i] = c.loop(runCtx, b) })
	}
	finish := func() {
		stop()
		wg.Wait()
	}

	var before []CPUUsage
	var start, end time.Time
	phaseStart, phaseLen := time.Now(), cfg.Warmup
	phaseEnd := time.NewTimer(cfg.Warmup)
	defer phaseEnd.Stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	lastTick, lastOps := phaseStart, int64(0)
	progress := func(now time.Time) {
		if cfg.Progress == nil {
			return
		}
		ops, errs := b.counts()
		cfg.Progress(Progress{
			Measuring: b.phase.Load() == phaseMeasure,
			Elapsed:   now.Sub(phaseStart),
			Phase:     phaseLen,
			Ops:       ops,
			Errors:    errs,
			Rate:      float64(ops-lastOps) / max(now.Sub(lastTick), time.Millisecond).Seconds(),
		})
		lastTick, lastOps = now, ops
	}
	for end.IsZero() {
		select {
		case <-ctx.Done():
			finish()
			return nil, ctx.Err()
		case now := <-tick.C:
			progress(now)
		case now := <-phaseEnd.C:
			if now.Sub(lastTick) >= 100*time.Millisecond {
				progress(now) // the phase's last line, unless a tick just wrote it
			}
			if b.phase.Load() == phaseWarmup {
				before = readCPU(cfg.CPU)
				start = time.Now()
				b.phase.Store(phaseMeasure) // from now on operations count
				phaseStart, phaseLen = start, cfg.Duration
				lastTick, lastOps = start, 0
				tick.Reset(time.Second)
				phaseEnd.Reset(cfg.Duration)
				continue
			}
			end = time.Now()
			b.phase.Store(phaseDone)
		}
	}
	after := readCPU(cfg.CPU)
	finish()

	r := &Result{Elapsed: end.Sub(start), Ops: b.ops[phaseMeasure].Load(), Errors: b.errs[phaseMeasure].Load(), ErrorKinds: b.errorKinds()}
	all := slices.Concat(latencies...)
	slices.Sort(all)
	r.P50, r.P99 = percentile(all, 50), percentile(all, 99)
	for i, a := range after {
		u := CPUUsage{Name: a.Name, Time: a.Time - before[i].Time, Err: errors.Join(before[i].Err, a.Err)}
		if u.Err != nil {
			u.Time = 0
		}
		r.CPU = append(r.CPU, u)
	}
	return r, nil
}

// percentile is the p-th percentile of sorted by the nearest-rank method,
// 0 when sorted is empty.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := (len(sorted)*p + 99) / 100 // ceil(n*p/100), at least 1 for p > 0
	return sorted[max(rank, 1)-1]
}

func readCPU(sources []CPUSource) []CPUUsage {
	out := make([]CPUUsage, len(sources))
	for i, s := range sources {
		out[i].Name = s.Name
		out[i].Time, out[i].Err = s.Read()
	}
	return out
}

// bench is the state the clients of a run share.
type bench struct {
	phase atomic.Int32
	// ops and errs count the successful and failed operations by the
	// phase in which they completed (phaseWarmup, phaseMeasure).
	ops, errs [2]atomic.Int64

	mu    sync.Mutex
	kinds []ErrorKind // of the measurement, at most maxErrorKinds
}

// counts are the operations of the current phase so far.
func (b *bench) counts() (ops, errs int64) {
	p := min(b.phase.Load(), phaseMeasure)
	return b.ops[p].Load(), b.errs[p].Load()
}

// fail records a failed operation of phase.
func (b *bench) fail(phase int32, err error) {
	b.errs[phase].Add(1)
	if phase != phaseMeasure {
		return
	}
	kind := errorKind(err)
	b.mu.Lock()
	defer b.mu.Unlock()
	for i := range b.kinds {
		if b.kinds[i].Kind == kind {
			b.kinds[i].Count++
			return
		}
	}
	if len(b.kinds) < maxErrorKinds {
		b.kinds = append(b.kinds, ErrorKind{Kind: kind, Example: err.Error(), Count: 1})
	}
}

func (b *bench) errorKinds() []ErrorKind {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.kinds)
}

// stepError is an operation's step that failed: the request and what went
// wrong. Errors of one kind differ only in their detail.
type stepError struct {
	step   string // such as "POST /self-service/login"
	status int    // the unexpected status, or 0
	what   string // what was wrong with the answer, if not its status
	detail string // the start of the answer, or where it redirected
	err    error  // the transport's error, or nil
}

func (e *stepError) Error() string {
	s := e.step + ": "
	switch {
	case e.err != nil:
		return s + e.err.Error()
	case e.status != 0:
		s += fmt.Sprintf("status %d", e.status)
	default:
		s += e.what
	}
	if e.detail != "" {
		s += ": " + e.detail
	}
	return s
}

func (e *stepError) Unwrap() error { return e.err }

// errorKind groups errors that differ only in details such as flow ids:
// the step that failed and how, after what err adds in wrapping it.
func errorKind(err error) string {
	var se *stepError
	if !errors.As(err, &se) {
		return err.Error()
	}
	prefix := strings.TrimSuffix(err.Error(), se.Error())
	switch {
	case se.err != nil:
		// The URL of a url.Error holds the flow id; what failed does not.
		var ue *url.Error
		if errors.As(se.err, &ue) {
			return prefix + se.step + ": " + ue.Err.Error()
		}
		return prefix + se.step + ": " + se.err.Error()
	case se.status != 0:
		return fmt.Sprintf("%s%s: status %d", prefix, se.step, se.status)
	}
	return prefix + se.step + ": " + se.what
}

// client is one simulated user agent: its own connection, sequential
// requests.
type client struct {
	cfg       *Config
	transport *http.Transport
	http      *http.Client // no cookie jar; browser logins make their own
	token     string       // ModeWhoami: the session token of the client's login
}

func newClient(cfg *Config) *client {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        4,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     90 * time.Second,
	}
	return &client{cfg: cfg, transport: tr, http: newHTTPClient(tr, nil)}
}

// newHTTPClient returns a client over tr that follows no redirects.
func newHTTPClient(tr http.RoundTripper, jar http.CookieJar) *http.Client {
	return &http.Client{
		Transport:     tr,
		Jar:           jar,
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// loop runs operations until ctx ends and returns the latencies of the
// successful ones that completed during the measurement.
func (c *client) loop(ctx context.Context, b *bench) []time.Duration {
	defer c.transport.CloseIdleConnections()
	var latencies []time.Duration
	for ctx.Err() == nil {
		if c.cfg.Mode == ModeWhoami && c.token == "" {
			// The client's own login is not an operation, but its failure
			// is an error.
			token, err := c.apiLogin(ctx)
			if phase := b.phase.Load(); err != nil && phase != phaseDone && ctx.Err() == nil {
				b.fail(phase, fmt.Errorf("sign in: %w", err))
			}
			c.token = token
			continue
		}
		start := time.Now()
		err := c.op(ctx)
		d := time.Since(start)
		phase := b.phase.Load()
		if phase == phaseDone || ctx.Err() != nil {
			break // completed after the end, or cut short by it
		}
		if err != nil {
			b.fail(phase, err)
			continue
		}
		b.ops[phase].Add(1)
		if phase == phaseMeasure {
			latencies = append(latencies, d)
		}
	}
	return latencies
}

func (c *client) op(ctx context.Context) error {
	switch c.cfg.Mode {
	case ModeAPI:
		_, err := c.apiLogin(ctx)
		return err
	case ModeBrowser:
		return c.browserLogin(ctx)
	default:
		return c.whoami(ctx)
	}
}

// apiLogin makes a native login in a fresh API flow and returns its
// session token.
func (c *client) apiLogin(ctx context.Context) (string, error) {
	var f struct {
		ID string `json:"id"`
	}
	const create = "GET /self-service/login/api"
	if err := c.getJSON(ctx, c.http, create, c.cfg.BaseURL+"/self-service/login/api", &f); err != nil {
		return "", err
	}
	if f.ID == "" {
		return "", &stepError{step: create, what: "no flow id"}
	}
	body, err := json.Marshal(map[string]string{"method": "password", "identifier": c.cfg.Identifier, "password": c.cfg.Password})
	if err != nil {
		return "", err
	}
	const submit = "POST /self-service/login"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.BaseURL+"/self-service/login?flow="+url.QueryEscape(f.ID), bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	var out struct {
		SessionToken string `json:"session_token"`
	}
	if err := c.doJSON(c.http, submit, req, &out); err != nil {
		return "", err
	}
	if out.SessionToken == "" {
		return "", &stepError{step: submit, what: "no session_token in the answer"}
	}
	return out.SessionToken, nil
}

// browserLogin makes a login as a browser with a fresh cookie jar and a
// login UI that reads the flow over HTTP.
func (c *client) browserLogin(ctx context.Context) error {
	jar, err := cookiejar.New(nil)
	if err != nil {
		return err
	}
	hc := newHTTPClient(c.transport, jar)

	const create = "GET /self-service/login/browser"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.cfg.BaseURL+"/self-service/login/browser", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/html")
	resp, err := c.do(hc, create, req, http.StatusSeeOther)
	if err != nil {
		return err
	}
	loc, err := resp.Location()
	if err != nil {
		return &stepError{step: create, what: "no Location"}
	}
	id := loc.Query().Get("flow")
	if id == "" {
		return &stepError{step: create, what: "no flow id in the Location", detail: loc.Redacted()}
	}

	var f struct {
		UI struct {
			Action string `json:"action"`
			Nodes  []struct {
				Attributes struct {
					Name  string `json:"name"`
					Value any    `json:"value"`
				} `json:"attributes"`
			} `json:"nodes"`
		} `json:"ui"`
	}
	const fetch = "GET /self-service/login/flows"
	if err := c.getJSON(ctx, hc, fetch, c.cfg.BaseURL+"/self-service/login/flows?id="+url.QueryEscape(id), &f); err != nil {
		return err
	}
	var csrf string
	for _, n := range f.UI.Nodes {
		if n.Attributes.Name == "csrf_token" {
			csrf, _ = n.Attributes.Value.(string)
		}
	}
	if csrf == "" {
		return &stepError{step: fetch, what: "no csrf_token node"}
	}

	const submit = "POST /self-service/login (form)"
	form := url.Values{"method": {"password"}, "identifier": {c.cfg.Identifier}, "password": {c.cfg.Password}, "csrf_token": {csrf}}
	req, err = http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.BaseURL+"/self-service/login?flow="+url.QueryEscape(id), strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "text/html")
	resp, err = c.do(hc, submit, req, http.StatusSeeOther)
	if err != nil {
		return err
	}
	for _, ck := range resp.Cookies() {
		if ck.Name == c.cfg.SessionCookie && ck.Value != "" {
			return nil
		}
	}
	return &stepError{step: submit, what: "no session cookie " + c.cfg.SessionCookie, detail: "redirected to " + resp.Header.Get("Location")}
}

// whoami checks the client's session.
func (c *client) whoami(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.cfg.BaseURL+"/sessions/whoami", nil)
	if err != nil {
		return err
	}
	req.Header.Set("X-Session-Token", c.token)
	req.Header.Set("Accept", "application/json")
	_, err = c.do(c.http, "GET /sessions/whoami", req, http.StatusOK)
	return err
}

func (c *client) getJSON(ctx context.Context, hc *http.Client, step, target string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	return c.doJSON(hc, step, req, v)
}

// doJSON sends req, expects 200 and decodes the answer into v.
func (c *client) doJSON(hc *http.Client, step string, req *http.Request, v any) error {
	_, body, err := c.send(hc, step, req, http.StatusOK)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return &stepError{step: step, what: "the answer is not JSON", detail: err.Error()}
	}
	return nil
}

// do sends req and expects status; the body is read and dropped.
func (c *client) do(hc *http.Client, step string, req *http.Request, status int) (*http.Response, error) {
	resp, _, err := c.send(hc, step, req, status)
	return resp, err
}

// send sends req, reads the whole answer (so that the connection is
// reused) and checks its status.
func (c *client) send(hc *http.Client, step string, req *http.Request, status int) (*http.Response, []byte, error) {
	resp, err := hc.Do(req)
	if err != nil {
		return nil, nil, &stepError{step: step, err: err}
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, nil, &stepError{step: step, err: err}
	}
	if resp.StatusCode != status {
		return nil, nil, &stepError{step: step, status: resp.StatusCode, detail: excerpt(body)}
	}
	return resp, body, nil
}

// excerpt is the start of a response body, on one line.
func excerpt(body []byte) string {
	const n = 200
	s := strings.Join(strings.Fields(string(body)), " ")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}
