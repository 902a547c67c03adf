package passkey

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	autherrors "github.com/authflow/authflow/errors"
	"github.com/authflow/authflow/session"
)

// maxEnrolmentBody bounds the body of an enrolment request, in bytes.
const maxEnrolmentBody = 64 << 10

// EnrolmentHandler serves enrolment and removal of the method's keys for
// the signed-in session that login.Handler.RequireSession (or any
// middleware calling session.NewContext) put in the request's context;
// mount it behind that middleware, under a prefix stripped with
// http.StripPrefix:
//
//	GET    /                 200 {"keys": [...]}: the identity's keys
//	POST   /begin            200 {"publicKey": {...}}: options for
//	                         navigator.credentials.create()
//	POST   /finish           the attestation: as JSON {"credential": {...},
//	                         "display_name": "..."} (200 {"key": {...}}), or
//	                         as the form webauthn.js submits
//	                         (passkey_settings_register or webauthn_register,
//	                         display_name or webauthn_register_displayname,
//	                         return_to), answered 303 to return_to
//	POST   /remove           form with passkey_remove or webauthn_remove
//	                         (the key's hex id) and return_to: 303
//	DELETE /keys/{hex id}    204
//
// Errors are the error envelope: 401 without a session, 403
// session_refresh_required for a session older than
// Config.PrivilegedMaxAge, 400 for a missing or invalid ceremony or
// response, 404 for an unknown key, 409 for a duplicate or the last way to
// sign in. Form posts get the 303 with ?error=<reason> instead. Every
// unsafe request must come from one of Config.Origins (its Origin header),
// or, without an Origin header, not be a form: a cross-site form can
// neither enrol (it cannot answer the challenge) nor remove a key.
func (e *enrolment) EnrolmentHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", e.serveList)
	mux.HandleFunc("POST /begin", e.serveBegin)
	mux.HandleFunc("POST /finish", e.serveFinish)
	mux.HandleFunc("POST /remove", e.serveRemove)
	mux.HandleFunc("DELETE /keys/{id}", e.serveRemove)
	return e.guard(mux)
}

// guard answers requests without a session and unsafe requests from
// elsewhere before they reach the routes.
func (e *enrolment) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			origin := r.Header.Get("Origin")
			if origin != "" && !slices.Contains(e.rp.cfg.Origins, origin) || origin == "" && isForm(r) {
				writeError(w, autherrors.CSRFViolation().WithReason("The request did not come from one of the configured origins."))
				return
			}
		}
		if _, ok := session.FromContext(r.Context()); !ok {
			writeError(w, autherrors.NoSessionCredentials())
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxEnrolmentBody)
		next.ServeHTTP(w, r)
	})
}

// keyView is a key as the enrolment API shows it.
type keyView struct {
	ID             string    `json:"id"`
	DisplayName    string    `json:"display_name"`
	AddedAt        time.Time `json:"added_at"`
	Transports     []string  `json:"transports,omitempty"`
	BackupEligible bool      `json:"backup_eligible"`
	UserVerified   bool      `json:"user_verified"`
	CloneWarning   bool      `json:"clone_warning"`
}

func viewOf(k *Key) keyView {
	v := keyView{ID: k.HexID(), DisplayName: k.DisplayName, AddedAt: k.AddedAt, Transports: k.Transport, CloneWarning: k.Authenticator.CloneWarning}
	if k.Flags != nil {
		v.BackupEligible, v.UserVerified = k.Flags.BackupEligible, k.Flags.UserVerified
	}
	return v
}

func (e *enrolment) serveList(w http.ResponseWriter, r *http.Request) {
	s, _ := session.FromContext(r.Context())
	keys, err := e.Keys(r.Context(), s.Identity.ID)
	if err != nil {
		e.fail(w, r, err)
		return
	}
	views := make([]keyView, len(keys))
	for i := range keys {
		views[i] = viewOf(&keys[i])
	}
	writeJSON(w, http.StatusOK, map[string]any{"keys": views})
}

func (e *enrolment) serveBegin(w http.ResponseWriter, r *http.Request) {
	s, _ := session.FromContext(r.Context())
	options, err := e.BeginEnrolment(r.Context(), s)
	if err != nil {
		e.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, options)
}

func (e *enrolment) serveFinish(w http.ResponseWriter, r *http.Request) {
	s, _ := session.FromContext(r.Context())
	var (
		response    []byte
		displayName string
	)
	if isForm(r) {
		if err := r.ParseForm(); err != nil {
			e.fail(w, r, autherrors.BadRequest("The form could not be read."))
			return
		}
		response = []byte(r.PostForm.Get(e.resultField()))
		displayName = firstNonEmpty(r.PostForm.Get("display_name"), r.PostForm.Get("webauthn_register_displayname"))
	} else {
		var body struct {
			Credential  json.RawMessage `json:"credential"`
			DisplayName string          `json:"display_name"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			e.fail(w, r, autherrors.BadRequest("The body must be JSON: {\"credential\": {...}, \"display_name\": \"...\"}."))
			return
		}
		response, displayName = body.Credential, body.DisplayName
	}
	key, err := e.FinishEnrolment(r.Context(), s, response, displayName)
	if err != nil {
		e.fail(w, r, err)
		return
	}
	if isForm(r) {
		http.Redirect(w, r, returnTo(r, ""), http.StatusSeeOther)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"key": viewOf(key)})
}

func (e *enrolment) serveRemove(w http.ResponseWriter, r *http.Request) {
	s, _ := session.FromContext(r.Context())
	hexID := r.PathValue("id")
	if hexID == "" {
		if err := r.ParseForm(); err != nil {
			e.fail(w, r, autherrors.BadRequest("The form could not be read."))
			return
		}
		hexID = r.PostForm.Get(e.method + "_remove")
	}
	id, err := hex.DecodeString(hexID)
	if err != nil || len(id) == 0 {
		e.fail(w, r, ErrNoKey)
		return
	}
	if err := e.RemoveKey(r.Context(), s, id); err != nil {
		e.fail(w, r, err)
		return
	}
	if isForm(r) {
		http.Redirect(w, r, returnTo(r, ""), http.StatusSeeOther)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// resultField is the form field webauthn.js writes the attestation to.
func (e *enrolment) resultField() string {
	if e.typ == CredentialPasskey {
		return "passkey_settings_register"
	}
	return "webauthn_register"
}

// fail answers err: the error envelope, or for a form a 303 back with the
// error's reason.
func (e *enrolment) fail(w http.ResponseWriter, r *http.Request, err error) {
	wire, reason := e.wireError(err)
	if wire.Code == http.StatusInternalServerError {
		slog.ErrorContext(r.Context(), "passkey enrolment failed", "method", e.method, "error", err)
	}
	if isForm(r) {
		http.Redirect(w, r, returnTo(r, reason), http.StatusSeeOther)
		return
	}
	writeError(w, wire)
}

// wireError maps an enrolment error to its envelope and a short reason.
func (e *enrolment) wireError(err error) (*autherrors.Error, string) {
	var wire *autherrors.Error
	switch {
	case errors.As(err, &wire):
		return wire, "invalid_request"
	case errors.Is(err, ErrRefreshRequired):
		return autherrors.SessionRefreshRequired(e.rp.cfg.RefreshURL), "session_refresh_required"
	case errors.Is(err, ErrNoCeremony):
		return autherrors.BadRequest("There is no enrolment in progress for this session: begin one first."), "no_enrolment"
	case errors.Is(err, ErrInvalidResponse):
		return autherrors.BadRequest("The authenticator's response is invalid."), "invalid_response"
	case errors.Is(err, ErrDuplicateKey):
		return autherrors.Conflict("This key is enrolled already."), "duplicate_key"
	case errors.Is(err, ErrLastFactor):
		return autherrors.Conflict("This key is the account's last way to sign in."), "last_factor"
	case errors.Is(err, ErrNoKey):
		return autherrors.NotFound(), "no_key"
	}
	return autherrors.Internal(), "internal"
}

// returnTo is where a form post goes back to: its return_to if it is a
// path on this site, else "/"; with ?error=reason when reason is set.
func returnTo(r *http.Request, reason string) string {
	target := r.PostForm.Get("return_to")
	if !strings.HasPrefix(target, "/") || strings.HasPrefix(target, "//") || strings.HasPrefix(target, "/\\") {
		target = "/"
	}
	u, err := url.Parse(target)
	if err != nil {
		u = &url.URL{Path: "/"}
	}
	if reason != "" {
		q := u.Query()
		q.Set("error", reason)
		u.RawQuery = q.Encode()
	}
	return u.String()
}

func isForm(r *http.Request) bool {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return mt == "application/x-www-form-urlencoded" || mt == "multipart/form-data"
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, e *autherrors.Error) {
	writeJSON(w, e.Code, autherrors.Envelope{Error: e})
}
