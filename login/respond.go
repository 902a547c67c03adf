package login

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	autherrors "github.com/authflow/authflow/errors"
	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/internal/uuid"
)

// Outcomes that are not plain errors. Endpoints return them as errors;
// fail turns each into the contract's response.

// flowFailure is a FLOW-400: the flow, already stored with its messages.
type flowFailure struct {
	rec *flow.Record
	err error // the cause, for the log
}

func (e *flowFailure) Error() string {
	return "login: flow " + e.rec.Flow.ID + " failed: " + e.err.Error()
}
func (e *flowFailure) Unwrap() error { return e.err }

// expiredFlow is a submission of an expired flow, answered with its stored
// replacement.
type expiredFlow struct {
	old, replacement *flow.Record
	now              time.Time
}

func (e *expiredFlow) Error() string { return "login: flow " + e.old.Flow.ID + " expired" }

// throttled is an attempt refused by the limiter: 429 with Retry-After.
type throttled struct{ seconds int }

func (e *throttled) Error() string { return "login: throttled" }

// alreadySignedIn answers a signed-in client that asks to log in again:
// session_already_available, or a 303 to redirect for browser forms.
type alreadySignedIn struct{ redirect string }

func (e *alreadySignedIn) Error() string { return "login: already signed in" }

// locationChange sends the browser elsewhere to continue (social sign-in):
// 422 browser_location_change_required, or a 303 for browser forms.
type locationChange struct{ url string }

func (e *locationChange) Error() string { return "login: browser must continue at " + e.url }

// Header values set on every answer, shared to spare an allocation each.
var (
	cacheControlValue = []string{"private, no-cache, no-store, must-revalidate"}
	nosniffValue      = []string{"nosniff"}
	varyValue         = []string{"Cookie"}
	jsonUTF8Value     = []string{"application/json; charset=utf-8"}
	jsonValue         = []string{"application/json"}
)

// noCache sets the headers of every answer (CONTRACT Part 1 rule 17): it is
// private, never cached, never sniffed.
func noCache(w http.ResponseWriter) {
	h := w.Header()
	h["Cache-Control"] = cacheControlValue
	h["X-Content-Type-Options"] = nosniffValue
	h["Vary"] = varyValue
}

// write is the happy path's only writer: cookies, headers, then a 303, a
// JSON body or a bare status.
func (h *Handler) write(w http.ResponseWriter, x *exchange, resp *response) {
	for _, c := range x.cookies {
		http.SetCookie(w, c)
	}
	for k, v := range resp.header {
		w.Header().Set(k, v)
	}
	switch {
	case resp.location != "":
		x.status = http.StatusSeeOther
		w.Header().Set("Location", resp.location)
		w.WriteHeader(http.StatusSeeOther)
	case resp.body != nil:
		x.status = h.writeJSON(w, resp.status, jsonUTF8Value, resp.body)
	default:
		x.status = resp.status
		w.WriteHeader(resp.status)
	}
}

// encoder is a buffer with a JSON encoder writing into it.
type encoder struct {
	buf bytes.Buffer
	enc *json.Encoder
}

// encoderPool recycles the encoders JSON answers are encoded with.
var encoderPool = sync.Pool{New: func() any {
	e := new(encoder)
	e.enc = json.NewEncoder(&e.buf)
	return e
}}

// writeJSON encodes body completely before writing anything, so that an
// encoding failure can still become a clean 500.
func (h *Handler) writeJSON(w http.ResponseWriter, status int, contentType []string, body any) int {
	e := encoderPool.Get().(*encoder)
	buf := &e.buf
	defer func() {
		if buf.Cap() <= 64<<10 {
			buf.Reset()
			encoderPool.Put(e)
		}
	}()
	if err := e.enc.Encode(body); err != nil {
		h.logger().Error("encode response", "error", err)
		status, contentType = http.StatusInternalServerError, jsonValue
		buf.Reset()
		_ = e.enc.Encode(autherrors.Envelope{Error: autherrors.Internal()})
	}
	w.Header()["Content-Type"] = contentType
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
	return status
}

// fail is the one place that turns an error into the contract's response
// (report then logs it). API flows and JSON requests (x.json) get JSON;
// browser forms get redirects: the flow to the login UI, anything else
// forwarded to the error UI.
func (h *Handler) fail(w http.ResponseWriter, x *exchange, err error) {
	ctx := x.r.Context()
	for _, c := range x.cookies {
		http.SetCookie(w, c)
	}
	redirect := func(to string) {
		x.status = http.StatusSeeOther
		w.Header().Set("Location", to)
		w.WriteHeader(http.StatusSeeOther)
	}

	var (
		ff  *flowFailure
		ex  *expiredFlow
		as  *alreadySignedIn
		lc  *locationChange
		ar  *aalRequired
		ae  *autherrors.Error
		th  *throttled
		env autherrors.Envelope
	)
	switch {
	case errors.As(err, &th):
		w.Header().Set("Retry-After", strconv.Itoa(th.seconds))
		env.Error = autherrors.TooManyAttempts(th.seconds)
	case errors.As(err, &ff):
		if x.json {
			x.status = h.writeJSON(w, http.StatusBadRequest, jsonUTF8Value, &ff.rec.Flow)
		} else {
			redirect(h.loginUI.with("flow", ff.rec.Flow.ID))
		}
		return
	case errors.As(err, &ex):
		if ex.old.Flow.Type == flow.TypeBrowser { // Part 1 rules 3 and 4: a fresh flow in the UI
			redirect(h.loginUI.with("flow", ex.replacement.Flow.ID))
			return
		}
		since := ex.now.Sub(ex.old.Flow.ExpiresAt)
		expiredAt := ex.old.Flow.ExpiresAt
		env = autherrors.Envelope{
			Error:     autherrors.FlowExpired(since.Minutes()),
			ExpiredAt: &expiredAt,
			Since:     &since,
			UseFlowID: ex.replacement.Flow.ID,
		}
	case errors.As(err, &as):
		if !x.json {
			redirect(as.redirect)
			return
		}
		env.Error = autherrors.SessionAlreadyAvailable()
	case errors.As(err, &lc):
		if !x.json {
			redirect(lc.url)
			return
		}
		env = autherrors.Envelope{Error: autherrors.BrowserLocationChangeRequired(lc.url), RedirectBrowserTo: lc.url}
	case errors.As(err, &ar):
		if !x.json {
			redirect(ar.redirect)
			return
		}
		env = autherrors.Envelope{Error: autherrors.SessionAAL2Required(ar.redirect), RedirectBrowserTo: ar.redirect}
	case errors.As(err, &ae):
		env.Error = ae
	default: // the cause is logged by report, never sent
		env.Error = autherrors.Internal()
	}

	e := *env.Error
	if e.ID == "" && e.Request == "" {
		e.Request = clip(x.r.Header.Get("X-Request-ID"), maxRequestIDLength)
	}
	env.Error = &e
	// Browser forms see client errors on the error UI. A 413 and a 414 are
	// answered directly, as a request refused for its size stores nothing;
	// so is every internal error, as the store that keeps forwarded errors
	// may be the one failing.
	if !x.json && e.Code != http.StatusRequestEntityTooLarge && e.Code != http.StatusRequestURITooLong &&
		e.Code < http.StatusInternalServerError {
		if to, ok := h.forward(ctx, &e); ok {
			redirect(to)
			return
		}
	}
	w.Header().Set("Ory-Error-Id", e.ID)
	x.status = h.writeJSON(w, e.Code, jsonValue, &env)
}

// forward stores e for the error UI and returns where to send the browser.
// If the store fails it logs that and reports false; the caller then
// answers JSON.
//
// The error is stored without HTML escaping: a reason quoting request data
// (a refused return_to of up to MaxURLLength bytes) would otherwise take up
// to six times its length. Answers escape it as before, as every JSON
// answer is encoded with HTML escaping, raw messages included.
func (h *Handler) forward(ctx context.Context, e *autherrors.Error) (string, bool) {
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		h.logger().ErrorContext(ctx, "encode forwarded error", "error", err)
		return "", false
	}
	now := h.now()
	rec := &flow.ErrorRecord{ID: uuid.New(), Error: bytes.TrimSuffix(body.Bytes(), []byte("\n")), CreatedAt: now, UpdatedAt: now}
	if err := h.cfg.FlowStore.CreateError(context.WithoutCancel(ctx), rec); err != nil {
		h.logger().ErrorContext(ctx, "store forwarded error", "error", err)
		return "", false
	}
	return h.errorUI.with("id", rec.ID), true
}

// logBestEffort logs the failure of work that never fails a request, such
// as re-hashing a password after login.
func (h *Handler) logBestEffort(ctx context.Context, msg string, err error, attrs ...any) {
	h.logger().Log(ctx, slog.LevelWarn, msg, append(attrs, "error", err)...)
}
