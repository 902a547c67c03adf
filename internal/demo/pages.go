package demo

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"

	autherrors "github.com/authflow/authflow/errors"
	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/session"
)

//go:embed templates/*.html
var templateFS embed.FS

var pages = template.Must(template.ParseFS(templateFS, "templates/*.html"))

// nodeView is a UI node prepared for the template.
type nodeView struct {
	flow.Node
	FieldID   string
	Label     string
	Value     string
	Autofocus bool
	ErrorsID  string
}

type loginView struct {
	Action   string
	Method   string
	Messages []flow.Message
	Hidden   []nodeView
	Fields   []nodeView
	Buttons  []nodeView
	// Separate are the buttons of groups without fields (a social sign-in
	// provider's): they get a form of their own, so that Enter in a field
	// submits the fields' form, never a provider.
	Separate []nodeView
	Refresh  bool
}

// loginPage renders any flow from its UI nodes and messages; its form posts
// to ui.action. Without a usable flow it starts a new one.
func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	restart := s.opts.PublicURL + "/self-service/login/browser"
	id := r.URL.Query().Get("flow")
	if id == "" {
		http.Redirect(w, r, restart, http.StatusSeeOther)
		return
	}
	f, err := s.handler.Flow(r, id)
	var ae *autherrors.Error
	if errors.As(err, &ae) {
		if rt, ok := ae.Details["redirect_to"].(string); ok {
			restart = rt
		}
		http.Redirect(w, r, restart, http.StatusSeeOther)
		return
	}
	if err != nil {
		http.Error(w, "The login page is unavailable, please retry.", http.StatusInternalServerError)
		return
	}
	v := loginView{Action: f.UI.Action, Method: f.UI.Method, Messages: f.UI.Messages, Refresh: f.Refresh}
	for _, n := range f.UI.Nodes {
		nv := nodeView{Node: n, FieldID: "field-" + n.Attributes.Name, ErrorsID: "errors-" + n.Attributes.Name}
		if n.Meta.Label != nil {
			nv.Label = n.Meta.Label.Text
		}
		if n.Attributes.Value != nil {
			nv.Value = fmt.Sprint(n.Attributes.Value)
		}
		switch n.Attributes.Type {
		case "hidden":
			v.Hidden = append(v.Hidden, nv)
		case "submit", "button":
			v.Buttons = append(v.Buttons, nv)
		default:
			v.Fields = append(v.Fields, nv)
		}
	}
	withFields := map[string]bool{}
	for _, f := range v.Fields {
		withFields[f.Group] = true
	}
	var buttons []nodeView
	for _, b := range v.Buttons {
		if withFields[b.Group] || len(v.Fields) == 0 {
			buttons = append(buttons, b)
		} else {
			v.Separate = append(v.Separate, b)
		}
	}
	v.Buttons = buttons
	if i := focusIndex(v.Fields); i >= 0 {
		v.Fields[i].Autofocus = true
	}
	render(w, "login.html", v)
}

// focusIndex picks the field the page focuses: the first with an error,
// else the first still empty (the password after a wrong one), else the
// first; -1 when there are none.
func focusIndex(fields []nodeView) int {
	for i, f := range fields {
		if len(f.Messages) > 0 {
			return i
		}
	}
	for i, f := range fields {
		if f.Value == "" {
			return i
		}
	}
	if len(fields) > 0 {
		return 0
	}
	return -1
}

type errorView struct {
	Found   bool
	Code    int
	Status  string
	Reason  string
	Message string
	Retry   string
}

// errorPage shows an error the handler forwarded.
func (s *Server) errorPage(w http.ResponseWriter, r *http.Request) {
	v := errorView{Retry: s.opts.PublicURL + "/self-service/login/browser"}
	rec, err := s.handler.ForwardedError(r.Context(), r.URL.Query().Get("id"))
	if err == nil {
		var e autherrors.Error
		if json.Unmarshal(rec.Error, &e) == nil {
			v = errorView{Found: true, Code: e.Code, Status: e.Status, Reason: e.Reason, Message: e.Message, Retry: v.Retry}
		}
	}
	render(w, "error.html", v)
}

type welcomeView struct {
	Email     string
	Session   *session.Session
	LogoutURL string
}

// welcomePage shows the session and a logout link; without a session it
// sends the browser to log in.
func (s *Server) welcomePage(w http.ResponseWriter, r *http.Request) {
	sess, ok := session.FromContext(r.Context())
	if !ok {
		http.Redirect(w, r, s.opts.PublicURL+"/self-service/login/browser?"+url.Values{"return_to": {s.opts.PublicURL + "/welcome"}}.Encode(), http.StatusSeeOther)
		return
	}
	var traits struct {
		Email string `json:"email"`
	}
	_ = json.Unmarshal(sess.Identity.Traits, &traits)
	logout, err := s.handler.LogoutURL(r, "")
	if err != nil {
		http.Error(w, "The welcome page is unavailable, please retry.", http.StatusInternalServerError)
		return
	}
	render(w, "welcome.html", welcomeView{Email: traits.Email, Session: sess, LogoutURL: logout})
}

func render(w http.ResponseWriter, name string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "private, no-cache, no-store, must-revalidate")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	if err := pages.ExecuteTemplate(w, name, data); err != nil {
		http.Error(w, "rendering failed", http.StatusInternalServerError)
	}
}
