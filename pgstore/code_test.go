package pgstore_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/courier"
	autherrors "github.com/authflow/authflow/errors"
	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/internal/uuid"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/login/code"
	"github.com/authflow/authflow/login/logintest"
	"github.com/authflow/authflow/pgstore"
	"github.com/authflow/authflow/session"
)

// The code login method (login/code, CONTRACT-CODE §5 and §10) end to end
// through the handler with every store and every limiter on PostgreSQL,
// and several instances that share nothing but the database (and, as a
// deployment must, the method's HashKey): the same journeys as
// login/code's tests, plus what only a shared database shows: the
// per-flow submission count kept exactly under concurrent submissions on
// several instances, a flow that logs in at most once, and throttling that
// counts across instances.
//
// Limiters: the handler's Limiter is a pgstore.Limiter on the deployment's
// schema. The method's two send limiters (Config.SendLimiter and
// Config.ClientSendLimiter) must not share that limiter's counters (a send
// reserved for {address, network} would count as a failed login of that
// pair, and a login's Success would clear the send count), and
// pgstore.NewLimiter has no table of its own to offer: every Limiter on a
// pool uses the authflow_limiter_* tables of the pool's schema. So each
// send limiter is a pgstore.Limiter on a schema of its own (migrated like
// the main one), shared by all the instances, which is how a deployment
// gets send limits that hold across instances.

const (
	cpAlice  = "alice@example.com" // password and code
	cpBob    = "bob@example.com"   // password and code
	cpCarol  = "carol@example.com" // code only
	cpNobody = "nobody@example.com"
	cpSecret = "correct horse battery staple"

	cpLoginUI       = "https://ui.example.com/login"
	cpDefaultReturn = "https://app.example.com/welcome"
	cpCookie        = login.DefaultSessionCookieName

	// cpTooOften is Kratos' text of message 4000001 for a flow whose code
	// submissions are used up.
	cpTooOften = "The request was submitted too often. Please request another code."
	// cpInvalidText is the text of 4010008.
	cpInvalidText = "The login code is invalid or has already been used. Please try again."
)

// The method's default send limits (login/code's defaultSendLimits and
// defaultSendLimitsPerClient), given to the PostgreSQL send limiters.
var (
	cpSendLimits       = login.Limits{FreeFailures: 5, Window: 15 * time.Minute, MaxDelay: 15 * time.Minute, IdentifierFailures: 20, IdentifierWindow: time.Hour}
	cpClientSendLimits = login.Limits{FreeFailures: 30, Window: 15 * time.Minute, MaxDelay: 15 * time.Minute, IdentifierFailures: 100, IdentifierWindow: time.Hour}
)

// cpSetup is what a test may change before the instances are built.
type cpSetup struct {
	login            login.Config // LoginStyle, DisableThrottling, ...
	code             code.Config  // MaxSubmissions, Lifespan, ...
	limits           login.Limits // the handler's pgstore.Limiter
	sendLimits       login.Limits // the method's per-address send limiter
	clientSendLimits login.Limits // the method's per-network send limiter
}

// cpNode is one instance: its own HTTP server, pools, Store, limiters and
// code method (with its own mail queue).
type cpNode struct {
	name  string
	url   string
	h     *login.Handler
	st    *pgstore.Store
	pool  *pgxpool.Pool
	close sync.Once
}

// cpEnv is a deployment of instances on one fresh schema (plus one schema
// per send limiter), sharing a clock, a HashKey and one mailbox (a
// courier.Capture standing for the SMTP server every instance delivers
// to).
type cpEnv struct {
	t          *testing.T
	clock      *testClock
	mail       *courier.Capture
	nodes      []*cpNode
	ids        map[string]*session.Identity // by address
	sendPool   *pgxpool.Pool                // the per-address send limiter's schema
	clientPool *pgxpool.Pool                // the per-network send limiter's schema
}

// newCodeEnv starts n instances with the password and code methods and
// creates alice and bob (password and code credential) and carol (code
// credential only). The client network is taken from X-Forwarded-For (the
// loopback test servers are trusted proxies), so tests can play several
// clients.
func newCodeEnv(t *testing.T, n int, configure ...func(*cpSetup)) *cpEnv {
	t.Helper()
	e := &cpEnv{t: t, clock: newTestClock(), mail: courier.NewCapture(), ids: map[string]*session.Identity{}}
	schema, sendSchema, clientSchema := freshSchema(t), freshSchema(t), freshSchema(t)
	s := &cpSetup{sendLimits: cpSendLimits, clientSendLimits: cpClientSendLimits}
	for _, c := range configure {
		c(s)
	}
	s.limits.Now, s.sendLimits.Now, s.clientSendLimits.Now = e.clock.Now, e.clock.Now, e.clock.Now
	hashKey := make([]byte, 32) // every instance must share it
	_, _ = rand.Read(hashKey)
	// Errors (the cause of a 500) go to the test log.
	logger := slog.New(slog.NewTextHandler(cpTestLog{t}, &slog.HandlerOptions{Level: slog.LevelError}))
	for i := range n {
		pool := newPool(t, schema, func(c *pgxpool.Config) { c.MaxConns = 16 })
		st := pgstore.New(pool)
		require.NoError(t, st.Migrate(context.Background())) // every instance migrates on start
		sendPool := newPool(t, sendSchema, func(c *pgxpool.Config) { c.MaxConns = 4 })
		require.NoError(t, pgstore.New(sendPool).Migrate(context.Background()))
		clientPool := newPool(t, clientSchema, func(c *pgxpool.Config) { c.MaxConns = 4 })
		require.NoError(t, pgstore.New(clientPool).Migrate(context.Background()))
		if i == 0 {
			e.sendPool, e.clientPool = sendPool, clientPool
		}

		cc := s.code
		cc.Courier = e.mail
		cc.Queue = courier.QueueConfig{Backoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, MaxAge: time.Hour}
		cc.HashKey = hashKey
		cc.Now = e.clock.Now
		cc.Logger = logger
		cc.SendLimiter = pgstore.NewLimiter(sendPool, s.sendLimits)
		cc.ClientSendLimiter = pgstore.NewLimiter(clientPool, s.clientSendLimits)
		m, err := code.New(cc)
		require.NoError(t, err)

		mux := http.NewServeMux()
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		lc := s.login
		lc.PublicURL = srv.URL
		lc.LoginUIURL = cpLoginUI
		lc.ErrorUIURL = "https://ui.example.com/error"
		lc.DefaultReturnURL = cpDefaultReturn
		lc.AllowedReturnURLs = []string{"https://app.example.com/"}
		lc.FlowStore, lc.SessionStore, lc.IdentityStore = st, st, st
		lc.Limiter = pgstore.NewLimiter(pool, s.limits)
		lc.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		lc.Hasher = logintest.FastHasher{}
		lc.Methods = []login.Method{m}
		lc.Now = e.clock.Now
		lc.Logger = logger
		h, err := login.New(lc)
		require.NoError(t, err)
		mux.Handle("/", h)
		node := &cpNode{name: string(rune('A' + i)), url: srv.URL, h: h, st: st, pool: pool}
		t.Cleanup(func() { node.shutdown(t) })
		e.nodes = append(e.nodes, node)
	}
	e.addIdentity(cpAlice, cpSecret)
	e.addIdentity(cpBob, cpSecret)
	e.addIdentity(cpCarol, "")
	return e
}

// cpTestLog writes the instances' error log to the test's log.
type cpTestLog struct{ t *testing.T }

func (w cpTestLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// shutdown closes the node's handler, which delivers its queued mail.
func (n *cpNode) shutdown(t *testing.T) {
	n.close.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		assert.NoError(t, n.h.Close(ctx), "close %s", n.name)
	})
}

// addIdentity stores an active identity with a code credential for address
// and, when secret is set, a password.
func (e *cpEnv) addIdentity(address, secret string) {
	e.t.Helper()
	ctx := context.Background()
	cred, err := code.NewCredential(address)
	require.NoError(e.t, err)
	creds := []session.Credential{cred}
	if secret != "" {
		pw, err := login.NewPasswordCredential(ctx, logintest.FastHasher{}, address, secret)
		require.NoError(e.t, err)
		creds = append(creds, pw)
	}
	now := e.clock.Now()
	traits, err := json.Marshal(map[string]string{"email": address})
	require.NoError(e.t, err)
	id := &session.Identity{
		ID: uuid.New(), SchemaID: "default", State: session.StateActive, StateChangedAt: &now,
		Traits: traits, CreatedAt: now, UpdatedAt: now,
	}
	require.NoError(e.t, e.nodes[0].st.CreateIdentity(ctx, id, creds...))
	e.ids[address] = id
}

// cpClient is one user agent: it does not follow redirects, keeps cookies
// when it is a browser (cookies ignore the port, so the jar serves every
// instance), and sends from a network of its own (X-Forwarded-For).
type cpClient struct {
	c  *http.Client
	ip string
}

func (e *cpEnv) client(browser bool, ip string) *cpClient {
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if browser {
		jar, err := cookiejar.New(nil)
		require.NoError(e.t, err)
		c.Jar = jar
	}
	return &cpClient{c: c, ip: ip}
}

// api is an API client (no cookies) from 192.0.2.1.
func (e *cpEnv) api() *cpClient { return e.client(false, "192.0.2.1") }

// do sends a request to node; path is relative to its public URL.
func (e *cpEnv) do(n *cpNode, c *cpClient, method, path string, body io.Reader, header map[string]string) reply {
	e.t.Helper()
	req, err := http.NewRequest(method, n.url+path, body)
	require.NoError(e.t, err)
	req.Header.Set("X-Forwarded-For", c.ip)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.c.Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}

// submitJSON posts body as JSON (an API client's or an SPA's submission).
func (e *cpEnv) submitJSON(n *cpNode, c *cpClient, flowID string, body map[string]any) reply {
	e.t.Helper()
	b, err := json.Marshal(body)
	require.NoError(e.t, err)
	return e.do(n, c, http.MethodPost, "/self-service/login?flow="+flowID, bytes.NewReader(b),
		map[string]string{"Content-Type": "application/json", "Accept": "application/json"})
}

// submitForm posts values as an HTML form.
func (e *cpEnv) submitForm(n *cpNode, c *cpClient, flowID string, values url.Values) reply {
	e.t.Helper()
	return e.do(n, c, http.MethodPost, "/self-service/login?flow="+flowID, strings.NewReader(values.Encode()),
		map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"})
}

// apiFlow creates an API flow on n.
func (e *cpEnv) apiFlow(n *cpNode, c *cpClient) flow.Flow {
	e.t.Helper()
	r := e.do(n, c, http.MethodGet, "/self-service/login/api", nil, nil)
	require.Equal(e.t, http.StatusOK, r.status, "%s", r.body)
	return cpFlow(e.t, r)
}

// spaFlow creates a browser flow on n, answered in JSON as an SPA asks.
func (e *cpEnv) spaFlow(n *cpNode, c *cpClient) flow.Flow {
	e.t.Helper()
	r := e.do(n, c, http.MethodGet, "/self-service/login/browser", nil, map[string]string{"Accept": "application/json"})
	require.Equal(e.t, http.StatusOK, r.status, "%s", r.body)
	return cpFlow(e.t, r)
}

// fetch returns the flow as the login UI fetches it from n.
func (e *cpEnv) fetch(n *cpNode, c *cpClient, id string) flow.Flow {
	e.t.Helper()
	r := e.do(n, c, http.MethodGet, "/self-service/login/flows?id="+id, nil, nil)
	require.Equal(e.t, http.StatusOK, r.status, "%s", r.body)
	return cpFlow(e.t, r)
}

// send submits the send step of an API flow for address.
func (e *cpEnv) send(n *cpNode, c *cpClient, flowID, address string) reply {
	e.t.Helper()
	return e.submitJSON(n, c, flowID, map[string]any{"method": "code", "identifier": address})
}

// enter submits a code to an API flow, with the hidden identifier as a UI
// sends it.
func (e *cpEnv) enter(n *cpNode, c *cpClient, flowID, address, got string) reply {
	e.t.Helper()
	return e.submitJSON(n, c, flowID, map[string]any{"method": "code", "identifier": address, "code": got})
}

// sentCode sends a code to address on a new API flow created on n and
// returns the flow and the mailed code.
func (e *cpEnv) sentCode(n *cpNode, c *cpClient, address string) (flow.Flow, string) {
	e.t.Helper()
	f := e.apiFlow(n, c)
	r := e.send(n, c, f.ID, address)
	require.Equal(e.t, http.StatusBadRequest, r.status, "%s", r.body)
	require.Equal(e.t, flow.StateSentEmail, cpFlow(e.t, r).State)
	return f, e.nextCode(address)
}

// nextCode waits for the next mail to address and returns its code,
// checking the subject ("Use code NNNNNN to log in") and that the text
// carries the same code.
func (e *cpEnv) nextCode(address string) string {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := e.mail.Wait(ctx, address)
	require.NoError(e.t, err, "no mail to %s", address)
	sub := regexp.MustCompile(`^Use code (\d{6}) to log in$`).FindStringSubmatch(m.Subject)
	require.NotNil(e.t, sub, "subject %q", m.Subject)
	require.Contains(e.t, m.Text, "\n"+sub[1]+"\n", "the text carries the subject's code")
	return sub[1]
}

// quiesce closes every instance's handler, so that all the mail the test
// caused has been delivered when it returns. No submission may follow.
func (e *cpEnv) quiesce() {
	for _, n := range e.nodes {
		n.shutdown(e.t)
	}
}

// mailsTo counts the mails delivered to address.
func (e *cpEnv) mailsTo(address string) int {
	k := 0
	for _, m := range e.mail.Messages() {
		if m.To == address {
			k++
		}
	}
	return k
}

// state returns the code method's state of the stored flow, read from the
// database.
func (e *cpEnv) state(id string) map[string]any {
	e.t.Helper()
	rec, err := e.nodes[0].st.Flow(context.Background(), id)
	require.NoError(e.t, err)
	raw := rec.MethodState[code.MethodID]
	require.NotNil(e.t, raw, "no code state on flow %s", id)
	var st map[string]any
	require.NoError(e.t, json.Unmarshal(raw, &st))
	return st
}

// storedFlow returns the flow as stored in the database.
func (e *cpEnv) storedFlow(id string) flow.Flow {
	e.t.Helper()
	rec, err := e.nodes[0].st.Flow(context.Background(), id)
	require.NoError(e.t, err)
	return rec.Flow
}

// sessionRows counts the identity's session rows.
func (e *cpEnv) sessionRows(address string) int {
	e.t.Helper()
	return count(e.t, e.nodes[0].pool, "authflow_sessions", "identity_id = $1", e.ids[address].ID)
}

// cpFlow decodes a flow answer.
func cpFlow(t *testing.T, r reply) flow.Flow {
	t.Helper()
	var f flow.Flow
	require.NoError(t, json.Unmarshal(r.body, &f), "body: %s", r.body)
	require.NotEmpty(t, f.ID, "body: %s", r.body)
	return f
}

// cpMessageIDs returns the ids of the flow-wide messages.
func cpMessageIDs(f flow.Flow) []int {
	var ids []int
	for _, m := range f.UI.Messages {
		ids = append(ids, m.ID)
	}
	return ids
}

// cpNodeKeys lists group/name/type(=value for buttons) of a flow's nodes.
func cpNodeKeys(f flow.Flow) []string {
	var out []string
	for _, n := range f.UI.Nodes {
		k := n.Group + "/" + n.Attributes.Name + "/" + n.Attributes.Type
		if v, ok := n.Attributes.Value.(string); ok && (n.Attributes.Name == "method" || n.Attributes.Name == "resend") {
			k += "=" + v
		}
		out = append(out, k)
	}
	return out
}

// cpSentKeys are the nodes after a code was sent (CONTRACT-CODE §3), in
// order; browser flows add csrf_token last.
var cpSentKeys = []string{"default/identifier/hidden", "code/method/hidden=code", "code/code/text", "code/method/submit=code", "code/resend/submit=code"}

// assertSentStep checks a flow at the sent_email step for address: state,
// active method, nodes in order, the hidden address, no echoed code, and
// message 1010014 alone.
func assertSentStep(t *testing.T, f flow.Flow, address string, browser bool) {
	t.Helper()
	assert.Equal(t, flow.StateSentEmail, f.State)
	assert.Equal(t, code.MethodID, f.Active)
	want := cpSentKeys
	if browser {
		want = append(slices.Clone(want), "default/csrf_token/hidden")
	}
	assert.Equal(t, want, cpNodeKeys(f))
	if n := f.UI.Node("identifier"); assert.NotNil(t, n) {
		assert.Equal(t, address, n.Attributes.Value)
	}
	if n := f.UI.Node("code"); assert.NotNil(t, n) {
		assert.Nil(t, n.Attributes.Value, "the code node carries no value")
		assert.Equal(t, flow.IDLabelLoginCode, n.Meta.Label.ID)
	}
	assert.Equal(t, []flow.Message{flow.CodeSent()}, f.UI.Messages)
}

// cpMethods lists a wire session's authentication methods as method/aal.
func cpMethods(t *testing.T, s map[string]any) []string {
	t.Helper()
	var out []string
	ms, _ := s["authentication_methods"].([]any)
	for _, m := range ms {
		mm, _ := m.(map[string]any)
		method, _ := mm["method"].(string)
		aal, _ := mm["aal"].(string)
		out = append(out, method+"/"+aal)
	}
	return out
}

// cpSession returns the session of a 200 login answer and asserts it is
// address's aal1 code login.
func (e *cpEnv) cpSession(r reply, address string) map[string]any {
	e.t.Helper()
	require.Equal(e.t, http.StatusOK, r.status, "%s", r.body)
	s, ok := r.json(e.t)["session"].(map[string]any)
	require.True(e.t, ok, "%s", r.body)
	assert.Equal(e.t, []string{"code/aal1"}, cpMethods(e.t, s))
	assert.Equal(e.t, "aal1", s["authenticator_assurance_level"])
	ident, _ := s["identity"].(map[string]any)
	require.NotNil(e.t, ident, "%s", r.body)
	assert.Equal(e.t, e.ids[address].ID, ident["id"])
	return s
}

// errorEnvelopeID asserts an error envelope of status and returns error.id.
func errorEnvelopeID(t *testing.T, r reply, status int) string {
	t.Helper()
	require.Equal(t, status, r.status, "%s", r.body)
	env, ok := r.json(t)["error"].(map[string]any)
	require.True(t, ok, "not an error envelope: %s", r.body)
	id, _ := env["id"].(string)
	return id
}

// cpCSRF returns the value of the flow's csrf_token node.
func cpCSRF(f flow.Flow) string {
	if n := f.UI.Node("csrf_token"); n != nil {
		s, _ := n.Attributes.Value.(string)
		return s
	}
	return ""
}

// cpWrong returns a six-digit code other than right.
func cpWrong(right string) string {
	if right == "000000" {
		return "000001"
	}
	return "000000"
}

// cpComparable returns a flow answer's JSON without what differs between
// any two flows (ids, times, the action URL), with address replaced by a
// placeholder.
func cpComparable(t *testing.T, body []byte, address string) string {
	t.Helper()
	var v map[string]any
	require.NoError(t, json.Unmarshal(body, &v), "%s", body)
	for _, k := range []string{"id", "expires_at", "issued_at", "created_at", "updated_at"} {
		delete(v, k)
	}
	ui, ok := v["ui"].(map[string]any)
	require.True(t, ok, "%s", body)
	delete(ui, "action")
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return strings.ReplaceAll(string(b), `"`+address+`"`, `"ADDRESS"`)
}

// concurrently sends the submissions at once (released together) and
// returns their answers in order.
func concurrently(n int, do func(i int) reply) []reply {
	out := make([]reply, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			out[i] = do(i)
		})
	}
	close(start)
	wg.Wait()
	return out
}

// The whole journey on one instance (CONTRACT-CODE §5 rows 1 and 2, §8):
// the send step answers the flow in sent_email with 1010014 (400, or a 303
// to the login UI for forms), the code arrives by mail, and the right code
// logs in with the contract's answer for an API client, an SPA and a form.
func TestCodeLoginOnPostgres(t *testing.T) {
	t.Run("api", func(t *testing.T) {
		e := newCodeEnv(t, 1)
		a, c := e.nodes[0], e.api()
		f := e.apiFlow(a, c)
		assert.Equal(t, []string{
			"default/csrf_token/hidden", "default/identifier/text", "code/method/submit=code",
			"password/password/password", "password/method/submit=password",
		}, cpNodeKeys(f))
		r := e.send(a, c, f.ID, "  Alice@Example.COM ")
		require.Equal(t, http.StatusBadRequest, r.status, "%s", r.body)
		assertSentStep(t, cpFlow(t, r), cpAlice, false)
		got := e.nextCode(cpAlice)
		st := e.state(f.ID)
		assert.Equal(t, e.ids[cpAlice].ID, st["identity_id"])
		assert.Equal(t, cpAlice, st["address"])
		assert.EqualValues(t, 0, st["submissions"])
		assert.Len(t, st["code_hash"], 64, "HMAC-SHA256, hex")
		assert.NotContains(t, string(e.do(a, c, http.MethodGet, "/self-service/login/flows?id="+f.ID, nil, nil).body), got)

		r = e.enter(a, c, f.ID, cpAlice, got)
		s := e.cpSession(r, cpAlice)
		body := r.json(t)
		token, _ := body["session_token"].(string)
		require.NotEmpty(t, token)
		assert.Nil(t, body["continue_with"])
		who := e.do(a, c, http.MethodGet, "/sessions/whoami", nil, map[string]string{"X-Session-Token": token})
		require.Equal(t, http.StatusOK, who.status, "%s", who.body)
		assert.Equal(t, s["id"], who.json(t)["id"])
		assert.Equal(t, flow.StatePassedChallenge, e.storedFlow(f.ID).State)
		assert.Equal(t, 1, e.sessionRows(cpAlice))
	})
	t.Run("spa", func(t *testing.T) {
		e := newCodeEnv(t, 1)
		a, c := e.nodes[0], e.client(true, "192.0.2.1")
		f := e.spaFlow(a, c)
		r := e.submitJSON(a, c, f.ID, map[string]any{"method": "code", "identifier": cpAlice, "csrf_token": cpCSRF(f)})
		require.Equal(t, http.StatusBadRequest, r.status, "%s", r.body)
		step := cpFlow(t, r)
		assertSentStep(t, step, cpAlice, true)
		got := e.nextCode(cpAlice)

		r = e.submitJSON(a, c, f.ID, map[string]any{"method": "code", "identifier": cpAlice, "code": got, "csrf_token": cpCSRF(step)})
		e.cpSession(r, cpAlice)
		body := r.json(t)
		assert.Nil(t, body["session_token"])
		assert.Equal(t, []any{map[string]any{"action": "redirect_browser_to", "redirect_browser_to": cpDefaultReturn}}, body["continue_with"])
		require.NotNil(t, setCookie(r, cpCookie))
		who := e.do(a, c, http.MethodGet, "/sessions/whoami", nil, nil)
		require.Equal(t, http.StatusOK, who.status, "the cookie signs the browser in: %s", who.body)
		assert.Equal(t, []string{"code/aal1"}, cpMethods(t, who.json(t)))
	})
	t.Run("form", func(t *testing.T) {
		e := newCodeEnv(t, 1)
		a, c := e.nodes[0], e.client(true, "192.0.2.1")
		r := e.do(a, c, http.MethodGet, "/self-service/login/browser", nil, map[string]string{"Accept": "text/html"})
		require.Equal(t, http.StatusSeeOther, r.status, "%s", r.body)
		loc, err := url.Parse(r.header.Get("Location"))
		require.NoError(t, err)
		id := loc.Query().Get("flow")
		require.NotEmpty(t, id)
		f := e.fetch(a, c, id)

		r = e.submitForm(a, c, id, url.Values{"method": {"code"}, "identifier": {cpAlice}, "csrf_token": {cpCSRF(f)}})
		require.Equal(t, http.StatusSeeOther, r.status, "%s", r.body)
		assert.Equal(t, cpLoginUI+"?flow="+id, r.header.Get("Location"))
		assert.Nil(t, setCookie(r, cpCookie))
		step := e.fetch(a, c, id)
		assertSentStep(t, step, cpAlice, true)
		got := e.nextCode(cpAlice)

		r = e.submitForm(a, c, id, url.Values{"method": {"code"}, "identifier": {cpAlice}, "code": {got}, "csrf_token": {cpCSRF(step)}})
		require.Equal(t, http.StatusSeeOther, r.status, "%s", r.body)
		assert.Equal(t, cpDefaultReturn, r.header.Get("Location"))
		require.NotNil(t, setCookie(r, cpCookie))
		who := e.do(a, c, http.MethodGet, "/sessions/whoami", nil, nil)
		require.Equal(t, http.StatusOK, who.status, "%s", who.body)
		assert.Equal(t, []string{"code/aal1"}, cpMethods(t, who.json(t)))
		assert.Equal(t, 1, e.sessionRows(cpAlice))
	})
}

// Instances share the flow state (in the database) and the HashKey: a
// code sent by one instance logs in on another, a resend on a third
// replaces it, and the session (token or cookie) works on every instance.
func TestCodeLoginAcrossInstancesOnPostgres(t *testing.T) {
	e := newCodeEnv(t, 3)
	a, b, c := e.nodes[0], e.nodes[1], e.nodes[2]

	t.Run("api: send on A, code on B, session on C", func(t *testing.T) {
		cl := e.api()
		f := e.apiFlow(c, cl)
		r := e.send(a, cl, f.ID, cpAlice)
		require.Equal(t, http.StatusBadRequest, r.status, "%s", r.body)
		assertSentStep(t, cpFlow(t, r), cpAlice, false)
		r = e.enter(b, cl, f.ID, cpAlice, e.nextCode(cpAlice))
		e.cpSession(r, cpAlice)
		token, _ := r.json(t)["session_token"].(string)
		who := e.do(c, cl, http.MethodGet, "/sessions/whoami", nil, map[string]string{"X-Session-Token": token})
		assert.Equal(t, http.StatusOK, who.status, "%s", who.body)
	})

	t.Run("api: resend on C replaces the code sent on A", func(t *testing.T) {
		cl := e.api()
		f, first := e.sentCode(a, cl, cpCarol)
		r := e.submitJSON(c, cl, f.ID, map[string]any{"method": "code", "identifier": cpCarol, "resend": "code"})
		require.Equal(t, http.StatusBadRequest, r.status, "%s", r.body)
		assertSentStep(t, cpFlow(t, r), cpCarol, false)
		second := e.nextCode(cpCarol)
		if first != second {
			r = e.enter(b, cl, f.ID, cpCarol, first)
			assert.Equal(t, []int{flow.IDInvalidLoginCode}, cpMessageIDs(cpFlow(t, r)), "the previous code stopped working: %s", r.body)
		}
		e.cpSession(e.enter(b, cl, f.ID, cpCarol, second), cpCarol)
	})

	t.Run("form: flow on A, send on B, code on C, cookie on A", func(t *testing.T) {
		cl := e.client(true, "192.0.2.1")
		f := e.spaFlow(a, cl)
		r := e.submitForm(b, cl, f.ID, url.Values{"method": {"code"}, "identifier": {cpBob}, "csrf_token": {cpCSRF(f)}})
		require.Equal(t, http.StatusSeeOther, r.status, "%s", r.body)
		assert.Equal(t, cpLoginUI+"?flow="+f.ID, r.header.Get("Location"))
		step := e.fetch(c, cl, f.ID)
		assertSentStep(t, step, cpBob, true)
		r = e.submitForm(c, cl, f.ID, url.Values{"method": {"code"}, "identifier": {cpBob}, "code": {e.nextCode(cpBob)}, "csrf_token": {cpCSRF(step)}})
		require.Equal(t, http.StatusSeeOther, r.status, "%s", r.body)
		assert.Equal(t, cpDefaultReturn, r.header.Get("Location"))
		require.NotNil(t, setCookie(r, cpCookie))
		who := e.do(a, cl, http.MethodGet, "/sessions/whoami", nil, nil)
		require.Equal(t, http.StatusOK, who.status, "%s", who.body)
		assert.Equal(t, []string{"code/aal1"}, cpMethods(t, who.json(t)))
	})

	e.quiesce()
	assert.Equal(t, 1, e.mailsTo(cpAlice))
	assert.Equal(t, 1, e.mailsTo(cpBob))
	assert.Equal(t, 2, e.mailsTo(cpCarol))
	assert.Len(t, e.mail.Messages(), 4, "each send mailed once, by one instance")
}

// An unknown address gets exactly the answer of a known one, the same
// state is stored, no mail is sent, and every code then submitted, on any
// instance, gets 4010008 and counts (CONTRACT-CODE §10.1, §10.2).
func TestCodeUnknownAddressOnPostgres(t *testing.T) {
	e := newCodeEnv(t, 3)
	a := e.nodes[0]
	cl := e.api()
	answers := map[string][]byte{}
	states := map[string]map[string]any{}
	flows := map[string]string{}
	for _, address := range []string{cpAlice, cpNobody} {
		f := e.apiFlow(a, cl)
		r := e.send(a, cl, f.ID, address)
		require.Equal(t, http.StatusBadRequest, r.status, "%s", r.body)
		assertSentStep(t, cpFlow(t, r), address, false)
		answers[address], states[address], flows[address] = r.body, e.state(f.ID), f.ID
	}
	assert.Equal(t, cpComparable(t, answers[cpAlice], cpAlice), cpComparable(t, answers[cpNobody], cpNobody),
		"the same answer for a known and an unknown address")
	assert.Equal(t, slices.Sorted(maps.Keys(states[cpAlice])), slices.Sorted(maps.Keys(states[cpNobody])), "the same state is stored")
	assert.Equal(t, "", states[cpNobody]["identity_id"])
	assert.NotEmpty(t, states[cpAlice]["identity_id"])
	assert.Len(t, states[cpNobody]["code_hash"], 64, "a code is made and hashed for an unknown address too")
	assert.Equal(t, states[cpAlice]["expires_at"], states[cpNobody]["expires_at"])

	guesses := []string{"000000", "123456", "999999"}
	for i, guess := range guesses {
		n := e.nodes[i%len(e.nodes)]
		r := e.enter(n, cl, flows[cpNobody], cpNobody, guess)
		require.Equal(t, http.StatusBadRequest, r.status, "on %s: %s", n.name, r.body)
		got := cpFlow(t, r)
		assert.Equal(t, flow.StateSentEmail, got.State)
		assert.Equal(t, []int{flow.IDInvalidLoginCode}, cpMessageIDs(got), "never 4000035, on %s", n.name)
		assert.Equal(t, cpInvalidText, got.UI.Messages[0].Text)
	}
	assert.EqualValues(t, len(guesses), e.state(flows[cpNobody])["submissions"], "each guess counts")
	e.quiesce()
	assert.Zero(t, e.mailsTo(cpNobody), "no mail to an unknown address")
	assert.Equal(t, 1, e.mailsTo(cpAlice))
	assert.Len(t, e.mail.Messages(), 1)
}

// The per-flow submission count (CONTRACT-CODE §10.6) is kept in the
// flow's MethodState by conditional updates: concurrent submissions on
// several instances are each counted once, none lost and none twice, and
// counted before the code is compared.
func TestCodeSubmissionsCountedExactlyOnPostgres(t *testing.T) {
	// The handler's throttling is raised so that only the per-flow rule
	// decides; every limiter is still the PostgreSQL one.
	raised := func(s *cpSetup) { s.limits = login.Limits{FreeFailures: 1000, IdentifierFailures: 10000} }

	t.Run("12 concurrent wrong codes over 3 instances", func(t *testing.T) {
		e := newCodeEnv(t, 3, raised, func(s *cpSetup) { s.code.MaxSubmissions = 12 })
		cl := e.api()
		f, right := e.sentCode(e.nodes[0], cl, cpAlice)
		const n = 12
		replies := concurrently(n, func(i int) reply {
			return e.enter(e.nodes[i%3], cl, f.ID, cpAlice, cpWrong(right))
		})
		compared := tallyWrongCodes(t, e, replies)
		assert.Equal(t, n, compared, "submissions compared and answered 4010008")
		require.EqualValues(t, compared, e.state(f.ID)["submissions"], "the stored count is the number of submissions compared: none lost, none twice")
		require.EqualValues(t, n, e.state(f.ID)["submissions"], "every submission counted exactly once")

		r := e.enter(e.nodes[1], cl, f.ID, cpAlice, right)
		require.Equal(t, http.StatusBadRequest, r.status, "%s", r.body)
		got := cpFlow(t, r)
		assert.Equal(t, flow.StateSentEmail, got.State)
		require.Len(t, got.UI.Messages, 1, "%s", r.body)
		assert.Equal(t, flow.IDGeneric, got.UI.Messages[0].ID)
		assert.Equal(t, cpTooOften, got.UI.Messages[0].Text)
		assert.EqualValues(t, n, e.state(f.ID)["submissions"], "a refused submission is not stored")
		assert.Zero(t, e.sessionRows(cpAlice))
	})

	t.Run("5 concurrent wrong codes, then the right one, at the default limit", func(t *testing.T) {
		e := newCodeEnv(t, 3, raised)
		cl := e.api()
		f, right := e.sentCode(e.nodes[2], cl, cpAlice)
		replies := concurrently(5, func(i int) reply {
			return e.enter(e.nodes[i%3], cl, f.ID, cpAlice, cpWrong(right))
		})
		compared := tallyWrongCodes(t, e, replies)
		assert.Equal(t, 5, compared, "submissions compared and answered 4010008")
		require.EqualValues(t, compared, e.state(f.ID)["submissions"], "none lost, none twice")
		require.EqualValues(t, 5, e.state(f.ID)["submissions"])
		for _, n := range e.nodes {
			r := e.enter(n, cl, f.ID, cpAlice, right)
			require.Equal(t, http.StatusBadRequest, r.status, "on %s: %s", n.name, r.body)
			got := cpFlow(t, r)
			require.Len(t, got.UI.Messages, 1, "%s", r.body)
			assert.Equal(t, flow.IDGeneric, got.UI.Messages[0].ID, "on %s", n.name)
			assert.Equal(t, cpTooOften, got.UI.Messages[0].Text, "the right code is refused, counted before comparing, on %s", n.name)
		}
		// A resend does not reset the count.
		r := e.submitJSON(e.nodes[0], cl, f.ID, map[string]any{"method": "code", "identifier": cpAlice, "resend": "code"})
		require.Equal(t, http.StatusBadRequest, r.status, "%s", r.body)
		assertSentStep(t, cpFlow(t, r), cpAlice, false)
		r = e.enter(e.nodes[1], cl, f.ID, cpAlice, e.nextCode(cpAlice))
		got := cpFlow(t, r)
		require.Len(t, got.UI.Messages, 1, "%s", r.body)
		assert.Equal(t, cpTooOften, got.UI.Messages[0].Text, "the flow never logs in by code again")
		assert.EqualValues(t, 5, e.state(f.ID)["submissions"])
		assert.Zero(t, e.sessionRows(cpAlice))
	})

	t.Run("9 concurrent wrong codes at the default limit: exactly 5 compared", func(t *testing.T) {
		e := newCodeEnv(t, 3, raised)
		cl := e.api()
		f, right := e.sentCode(e.nodes[1], cl, cpAlice)
		replies := concurrently(9, func(i int) reply {
			return e.enter(e.nodes[i%3], cl, f.ID, cpAlice, cpWrong(right))
		})
		compared, refused := 0, 0
		for i, r := range replies {
			if !assert.Equal(t, http.StatusBadRequest, r.status, "submission %d on %s: %s", i, e.nodes[i%3].name, r.body) {
				continue
			}
			got := cpFlow(t, r)
			require.Len(t, got.UI.Messages, 1, "submission %d: %s", i, r.body)
			switch m := got.UI.Messages[0]; {
			case m.ID == flow.IDInvalidLoginCode:
				compared++
			case m.ID == flow.IDGeneric && m.Text == cpTooOften:
				refused++
			default:
				t.Errorf("submission %d: message %d %q", i, m.ID, m.Text)
			}
		}
		assert.Equal(t, 5, compared, "submissions compared")
		assert.Equal(t, 4, refused, "submissions refused beyond the limit")
		assert.EqualValues(t, 5, e.state(f.ID)["submissions"])
	})
}

// tallyWrongCodes checks the answers to wrong codes: each must be 400 with
// the flow in sent_email and message 4010008 alone (never a 5xx). It
// returns how many are.
func tallyWrongCodes(t *testing.T, e *cpEnv, replies []reply) int {
	t.Helper()
	compared := 0
	for i, r := range replies {
		n := e.nodes[i%len(e.nodes)].name
		if !assert.Equal(t, http.StatusBadRequest, r.status, "submission %d on %s: %s", i, n, r.body) {
			continue
		}
		got := cpFlow(t, r)
		assert.Equal(t, flow.StateSentEmail, got.State)
		if assert.Equal(t, []int{flow.IDInvalidLoginCode}, cpMessageIDs(got), "submission %d on %s: %s", i, n, r.body) {
			compared++
		}
	}
	return compared
}

// Concurrent submissions of the right code on one flow, spread over three
// instances, log in exactly once: one 200, the others 4010007 or the
// 4000001 text, never a 5xx, and one session row.
func TestCodeConcurrentRightCodesOnPostgres(t *testing.T) {
	for _, tc := range []struct {
		name string
		max  int
	}{
		{"default limit", 0},
		{"every submission compared", 50},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newCodeEnv(t, 3, func(s *cpSetup) {
				s.limits = login.Limits{FreeFailures: 1000, IdentifierFailures: 10000}
				s.code.MaxSubmissions = tc.max
			})
			cl := e.api()
			f, right := e.sentCode(e.nodes[0], cl, cpAlice)
			const n = 12
			replies := concurrently(n, func(i int) reply {
				return e.enter(e.nodes[i%3], cl, f.ID, cpAlice, right)
			})
			wins := 0
			var token string
			for i, r := range replies {
				switch r.status {
				case http.StatusOK:
					wins++
					e.cpSession(r, cpAlice)
					token, _ = r.json(t)["session_token"].(string)
				case http.StatusBadRequest:
					got := cpFlow(t, r)
					require.Len(t, got.UI.Messages, 1, "submission %d: %s", i, r.body)
					m := got.UI.Messages[0]
					assert.True(t, m.ID == flow.IDAlreadyCompleted || (m.ID == flow.IDGeneric && m.Text == cpTooOften),
						"submission %d on %s: message %d %q", i, e.nodes[i%3].name, m.ID, m.Text)
					assert.NotContains(t, string(r.body), "session_token")
				default:
					t.Errorf("submission %d on %s: %d %s", i, e.nodes[i%3].name, r.status, r.body)
				}
			}
			assert.Equal(t, 1, wins, "exactly one login")
			assert.Equal(t, 1, e.sessionRows(cpAlice), "exactly one session row")
			assert.Equal(t, flow.StatePassedChallenge, e.storedFlow(f.ID).State)
			if token != "" {
				who := e.do(e.nodes[2], cl, http.MethodGet, "/sessions/whoami", nil, map[string]string{"X-Session-Token": token})
				assert.Equal(t, http.StatusOK, who.status, "%s", who.body)
			}
		})
	}
}

// A flow logs in at most once (CONTRACT-CODE §10.3): after the login,
// every submission on any instance (the same code, a resend, a send to
// another address, the right password) answers 4010007 and mails nothing;
// a form gets it on the flow by a 303.
func TestCodeCompletedFlowOnPostgres(t *testing.T) {
	e := newCodeEnv(t, 3)
	a := e.nodes[0]
	cl := e.api()
	f, right := e.sentCode(a, cl, cpAlice)
	e.cpSession(e.enter(e.nodes[1], cl, f.ID, cpAlice, right), cpAlice)

	for i, tc := range []struct {
		name string
		body map[string]any
	}{
		{"same code", map[string]any{"method": "code", "identifier": cpAlice, "code": right}},
		{"resend", map[string]any{"method": "code", "identifier": cpAlice, "resend": "code"}},
		{"send", map[string]any{"method": "code", "identifier": cpBob}},
		{"password", map[string]any{"method": "password", "identifier": cpAlice, "password": cpSecret}},
	} {
		for _, n := range e.nodes {
			r := e.submitJSON(n, cl, f.ID, tc.body)
			require.Equal(t, http.StatusBadRequest, r.status, "%s on %s: %s", tc.name, n.name, r.body)
			got := cpFlow(t, r)
			assert.Equal(t, flow.StatePassedChallenge, got.State, "%s on %s", tc.name, n.name)
			assert.Equal(t, []int{flow.IDAlreadyCompleted}, cpMessageIDs(got), "%s on %s (%d)", tc.name, n.name, i)
		}
	}

	// A browser's form: the code login on B, then, without its session
	// (which would send it on), a resend on C meets the completed flow.
	b := e.client(true, "192.0.2.1")
	bf := e.spaFlow(a, b)
	r := e.submitForm(e.nodes[1], b, bf.ID, url.Values{"method": {"code"}, "identifier": {cpCarol}, "csrf_token": {cpCSRF(bf)}})
	require.Equal(t, http.StatusSeeOther, r.status, "%s", r.body)
	step := e.fetch(e.nodes[1], b, bf.ID)
	r = e.submitForm(e.nodes[1], b, bf.ID, url.Values{"method": {"code"}, "code": {e.nextCode(cpCarol)}, "csrf_token": {cpCSRF(step)}})
	require.Equal(t, http.StatusSeeOther, r.status, "%s", r.body)
	assert.Equal(t, cpDefaultReturn, r.header.Get("Location"))
	u, err := url.Parse(e.nodes[2].url)
	require.NoError(t, err)
	b.c.Jar.SetCookies(u, []*http.Cookie{{Name: cpCookie, Path: "/", MaxAge: -1}})
	r = e.submitForm(e.nodes[2], b, bf.ID, url.Values{"method": {"code"}, "resend": {"code"}, "csrf_token": {cpCSRF(step)}})
	require.Equal(t, http.StatusSeeOther, r.status, "%s", r.body)
	assert.Equal(t, cpLoginUI+"?flow="+bf.ID, r.header.Get("Location"))
	stored := e.storedFlow(bf.ID)
	assert.Equal(t, flow.StatePassedChallenge, stored.State)
	assert.Equal(t, []int{flow.IDAlreadyCompleted}, cpMessageIDs(stored))

	assert.Equal(t, 1, e.sessionRows(cpAlice), "the password issued no second session")
	assert.Equal(t, 1, e.sessionRows(cpCarol))
	e.quiesce()
	assert.Equal(t, 1, e.mailsTo(cpAlice), "one mail per login, none after")
	assert.Equal(t, 1, e.mailsTo(cpCarol), "one mail per login, none after")
	assert.Zero(t, e.mailsTo(cpBob))
}

// Wrong codes count as failed attempts of the address and client network
// on the PostgreSQL limiter, as wrong passwords do (CONTRACT-CODE §10.6):
// five wrong codes over two flows and three instances, and the sixth
// attempt (the right code) is 429 on any instance; the refusal reaches no
// code and counts nothing; another network is not affected.
func TestCodeWrongCodesThrottledOnPostgres(t *testing.T) {
	e := newCodeEnv(t, 3)
	cl := e.api()
	fa, codeA := e.sentCode(e.nodes[0], cl, cpAlice)
	for i := range 3 {
		r := e.enter(e.nodes[i], cl, fa.ID, cpAlice, cpWrong(codeA))
		require.Equal(t, http.StatusBadRequest, r.status, "%s", r.body)
		require.Equal(t, []int{flow.IDInvalidLoginCode}, cpMessageIDs(cpFlow(t, r)))
	}
	fb, codeB := e.sentCode(e.nodes[1], cl, cpAlice)
	for i := range 2 {
		r := e.enter(e.nodes[2-i], cl, fb.ID, cpAlice, cpWrong(codeB))
		require.Equal(t, http.StatusBadRequest, r.status, "%s", r.body)
		require.Equal(t, []int{flow.IDInvalidLoginCode}, cpMessageIDs(cpFlow(t, r)))
	}
	assert.Equal(t, 5, scalar(t, e.nodes[0].pool, "SELECT failures FROM authflow_limiter_pairs WHERE identifier = $1", cpAlice),
		"the failures are in the shared table")
	for _, n := range e.nodes {
		r := e.enter(n, cl, fb.ID, cpAlice, codeB)
		assert.Equal(t, autherrors.IDTooManyAttempts, errorEnvelopeID(t, r, http.StatusTooManyRequests), "on %s", n.name)
		assert.Equal(t, "1", r.header.Get("Retry-After"), "on %s", n.name)
	}
	assert.EqualValues(t, 2, e.state(fb.ID)["submissions"], "a throttled attempt reaches no code")
	assert.Equal(t, 5, scalar(t, e.nodes[0].pool, "SELECT failures FROM authflow_limiter_pairs WHERE identifier = $1", cpAlice),
		"the refusals counted nothing")

	// A send for the throttled address from the same network waits too.
	r := e.send(e.nodes[2], cl, e.apiFlow(e.nodes[2], cl).ID, cpAlice)
	assert.Equal(t, autherrors.IDTooManyAttempts, errorEnvelopeID(t, r, http.StatusTooManyRequests))

	// Another network is not affected: the right code logs in from there.
	other := e.client(false, "198.51.100.7")
	e.cpSession(e.enter(e.nodes[0], other, fb.ID, cpAlice, codeB), cpAlice)
}

// The send limits are on PostgreSQL too (one schema per send limiter):
// sends to one address from one network, spread over the instances, are
// limited as on one instance, whether or not the address has an account,
// and they never touch the handler's login counters.
func TestCodeSendLimitsAcrossInstancesOnPostgres(t *testing.T) {
	e := newCodeEnv(t, 3)
	cl := e.api()
	for _, address := range []string{cpAlice, cpNobody} {
		for i := range 5 {
			n := e.nodes[i%3]
			r := e.send(n, cl, e.apiFlow(n, cl).ID, address)
			require.Equal(t, http.StatusBadRequest, r.status, "send %d of %s on %s: %s", i+1, address, n.name, r.body)
		}
		for _, n := range e.nodes {
			f := e.apiFlow(n, cl)
			r := e.send(n, cl, f.ID, address)
			assert.Equal(t, autherrors.IDTooManyAttempts, errorEnvelopeID(t, r, http.StatusTooManyRequests), "%s on %s", address, n.name)
			assert.Equal(t, "1", r.header.Get("Retry-After"))
			assert.Equal(t, flow.StateChooseMethod, e.storedFlow(f.ID).State, "a refused send leaves the flow")
		}
		assert.Equal(t, 5, scalar(t, e.sendPool, "SELECT failures FROM authflow_limiter_pairs WHERE identifier = $1", address),
			"the sends are counted in the send limiter's table")
	}
	// Another address from the same network may send.
	r := e.send(e.nodes[1], cl, e.apiFlow(e.nodes[1], cl).ID, cpCarol)
	assert.Equal(t, http.StatusBadRequest, r.status, "%s", r.body)
	assert.Equal(t, 0, count(t, e.nodes[0].pool, "authflow_limiter_pairs", ""), "a send is no failed login")
	assert.Equal(t, 11, scalar(t, e.clientPool, "SELECT failures FROM authflow_limiter_pairs WHERE identifier = client_ip"),
		"the per-network limiter counted every send it let through")
	e.quiesce()
	assert.Equal(t, 5, e.mailsTo(cpAlice))
	assert.Zero(t, e.mailsTo(cpNobody))
	assert.Equal(t, 1, e.mailsTo(cpCarol))
}

// Identifier-first style (CONTRACT-CODE §9, §10.1) on PostgreSQL: the
// second step is identical for a code-only identity and an unknown
// address, nothing is mailed before method=code, and the send answers are
// identical too; then the code login works across instances.
func TestCodeIdentifierFirstOnPostgres(t *testing.T) {
	e := newCodeEnv(t, 3, func(s *cpSetup) { s.login.LoginStyle = login.LoginStyleIdentifierFirst })
	a, b, c := e.nodes[0], e.nodes[1], e.nodes[2]
	cl := e.api()
	f := e.apiFlow(a, cl)
	assert.Equal(t, []string{"default/csrf_token/hidden", "identifier_first/identifier/text", "identifier_first/method/submit=identifier_first"}, cpNodeKeys(f))

	second := map[string][]byte{}
	sent := map[string][]byte{}
	flows := map[string]string{}
	for _, who := range []string{cpCarol, cpNobody} {
		f := e.apiFlow(a, cl)
		r := e.submitJSON(b, cl, f.ID, map[string]any{"method": "identifier_first", "identifier": who})
		require.Equal(t, http.StatusBadRequest, r.status, "%s", r.body)
		got := cpFlow(t, r)
		assert.Equal(t, flow.StateChooseMethod, got.State, "no fast login for %s", who)
		assert.Empty(t, got.UI.Messages)
		assert.Equal(t, []string{
			"default/csrf_token/hidden", "identifier_first/identifier/hidden",
			"code/method/submit=code",
			"password/password/password", "password/method/submit=password",
		}, cpNodeKeys(got), who)
		assert.Equal(t, who, got.UI.Node("identifier").Attributes.Value)
		assert.Equal(t, got, e.fetch(c, cl, f.ID), "the second step is stored")
		second[who] = r.body
		flows[who] = f.ID
	}
	assert.Equal(t, cpComparable(t, second[cpCarol], cpCarol), cpComparable(t, second[cpNobody], cpNobody),
		"the same second step for a code-only identity and an unknown address")
	time.Sleep(50 * time.Millisecond) // time for a mail that should not exist to arrive
	assert.Empty(t, e.mail.Messages(), "nothing mailed before method=code")

	for _, who := range []string{cpCarol, cpNobody} {
		r := e.send(c, cl, flows[who], who)
		require.Equal(t, http.StatusBadRequest, r.status, "%s", r.body)
		assertSentStep(t, cpFlow(t, r), who, false)
		sent[who] = r.body
	}
	assert.Equal(t, cpComparable(t, sent[cpCarol], cpCarol), cpComparable(t, sent[cpNobody], cpNobody),
		"the same sent step for a code-only identity and an unknown address")

	e.cpSession(e.enter(a, cl, flows[cpCarol], cpCarol, e.nextCode(cpCarol)), cpCarol)
	r := e.enter(b, cl, flows[cpNobody], cpNobody, "123456")
	assert.Equal(t, []int{flow.IDInvalidLoginCode}, cpMessageIDs(cpFlow(t, r)), "%s", r.body)

	// A password for the code-only identity is a wrong password.
	f = e.apiFlow(b, cl)
	r = e.submitJSON(c, cl, f.ID, map[string]any{"method": "password", "identifier": cpCarol, "password": cpSecret})
	require.Equal(t, http.StatusBadRequest, r.status, "%s", r.body)
	assert.Equal(t, []int{flow.IDInvalidCredentials}, cpMessageIDs(cpFlow(t, r)))

	e.quiesce()
	assert.Equal(t, 1, e.mailsTo(cpCarol))
	assert.Zero(t, e.mailsTo(cpNobody))
	assert.Len(t, e.mail.Messages(), 1)
}
