package demo

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"time"

	autherrors "github.com/authflow/authflow/errors"
	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/session"
)

//go:embed templates/*.html
var templateFS embed.FS

// triggersJS is the pages' own script, served at triggersJSPath: it runs
// the webauthn.js functions the WebAuthn nodes name.
//
//go:embed static/triggers.js
var triggersJS []byte

// triggersJSPath is where triggersJS is served, below the public URL.
const triggersJSPath = "/static/triggers.js"

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
	// Forms are the forms with fields: one per group with fields of its
	// own (password; code; totp; lookup_secret; identifier_first), the
	// default group's visible fields (the identifier) in the first. Each
	// gets the hidden nodes, so Enter in a field submits that field's
	// method, never another's.
	Forms []formView
	// Separate are the social sign-in providers' buttons: they get a form
	// of their own, so that Enter in a field never submits a provider.
	Separate []nodeView
	Refresh  bool
	StepUp   bool // the flow asks for a second factor
	// Identifier is the identifier the flow continues with, once it is a
	// hidden node (the identifier-first second step, a sent code), so that
	// the user sees it; Restart then starts over with another one.
	Identifier string
	Restart    string
	// Outbox is the URL of the page that shows the mails, when the server
	// keeps them instead of sending them; "" otherwise.
	Outbox string
	// Scripted are the forms of the passkey and webauthn groups: their
	// hidden nodes (the challenge, the field the assertion is posted in)
	// and their buttons, which run webauthn.js (scripted by Scripts) and
	// submit the form the assertion is in.
	Scripted []scriptedForm
	Scripts  []scriptView
}

// scriptedForm is the form of a group whose buttons run a script.
type scriptedForm struct {
	Group   string
	Hidden  []nodeView
	Buttons []nodeView
	Divider bool // an "or" before it: other forms come first
}

// scriptView is a script a page loads: a flow's script node (the
// handler's webauthn.js, under its integrity) or the demo's own.
type scriptView struct {
	Src            string
	Integrity      string
	CrossOrigin    string
	ReferrerPolicy string
	Async          bool // else deferred
}

// pageScripts are the scripts of a page with WebAuthn nodes: the script
// node's, and the demo's triggers.js, which runs the functions the nodes
// name (the pages' Content-Security-Policy allows no inline script).
func pageScripts(public string, node flow.Node) []scriptView {
	var scripts []scriptView
	if a := node.Attributes.ScriptAttributes; a != nil {
		scripts = append(scripts, scriptView{Src: a.Src, Integrity: a.Integrity, CrossOrigin: a.CrossOrigin, ReferrerPolicy: a.ReferrerPolicy, Async: true})
	}
	return append(scripts, scriptView{Src: public + triggersJSPath})
}

// scripted reports whether the nodes of group run webauthn.js.
func scripted(group string) bool {
	return group == flow.GroupPasskey || group == flow.GroupWebAuthn
}

type formView struct {
	Fields []nodeView
	// Buttons are the buttons of the form's own group; the first is what
	// Enter in a field submits.
	Buttons []nodeView
	// Others are the buttons of other groups without fields (method=code's
	// "Send sign in code"), shown after an "or": they submit the same
	// fields, the identifier first of all, for their own method.
	Others []nodeView
}

// loginPage renders any flow from its UI nodes and messages; its forms post
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
	v := loginView{Action: f.UI.Action, Method: f.UI.Method, Messages: f.UI.Messages, Refresh: f.Refresh,
		StepUp: f.RequestedAAL == flow.AAL2}
	if s.outbox != nil {
		v.Outbox = s.opts.PublicURL + "/mail"
	}
	var fields, buttons []nodeView
	groups := map[string]int{} // index in v.Scripted
	for _, n := range f.UI.Nodes {
		if n.Attributes.NodeType == "script" {
			if v.Scripts == nil {
				v.Scripts = pageScripts(s.opts.PublicURL, n)
			}
			continue
		}
		nv := nodeView{Node: n, FieldID: "field-" + n.Attributes.Name, ErrorsID: "errors-" + n.Attributes.Name}
		if n.Meta.Label != nil {
			nv.Label = n.Meta.Label.Text
		}
		if n.Attributes.Value != nil {
			nv.Value = fmt.Sprint(n.Attributes.Value)
		}
		if scripted(n.Group) && (n.Attributes.Type == "hidden" || n.Attributes.Type == "button") {
			i, ok := groups[n.Group]
			if !ok {
				i = len(v.Scripted)
				groups[n.Group] = i
				v.Scripted = append(v.Scripted, scriptedForm{Group: n.Group})
			}
			if n.Attributes.Type == "hidden" {
				v.Scripted[i].Hidden = append(v.Scripted[i].Hidden, nv)
			} else {
				v.Scripted[i].Buttons = append(v.Scripted[i].Buttons, nv)
			}
			continue
		}
		switch n.Attributes.Type {
		case "hidden":
			if n.Attributes.Name == "identifier" && !v.StepUp {
				v.Identifier = nv.Value
			}
			v.Hidden = append(v.Hidden, nv)
		case "submit", "button":
			buttons = append(buttons, nv)
		default:
			fields = append(fields, nv)
		}
	}
	if v.Identifier != "" && !v.Refresh {
		v.Restart = s.opts.PublicURL + "/self-service/login/browser"
		if f.ReturnTo != "" {
			v.Restart += "?" + url.Values{"return_to": {f.ReturnTo}}.Encode()
		}
	}
	if i := focusIndex(fields); i >= 0 {
		fields[i].Autofocus = true
	}
	v.Forms, v.Separate = arrangeForms(fields, buttons)
	v.Forms = slices.DeleteFunc(v.Forms, func(f formView) bool {
		return len(f.Fields) == 0 && len(f.Buttons) == 0 && len(f.Others) == 0
	})
	others := len(v.Forms) > 0 || len(v.Separate) > 0
	for i := range v.Scripted {
		if len(v.Scripted[i].Buttons) > 0 {
			v.Scripted[i].Divider = others
			others = true
		}
	}
	if len(v.Scripted) > 0 && v.Scripts == nil {
		v.Scripts = pageScripts(s.opts.PublicURL, flow.Node{}) // the triggers alone
	}
	render(w, "login.html", v)
}

// arrangeForms puts the fields and buttons into forms: one per group with
// fields of its own, in node order, with the default group's fields at the
// front of the first. A button joins its group's form. The button of a
// group without fields (method=code's) joins the form that holds the
// identifier (the default group's fields, or the identifier_first
// group's), after that form's own buttons, so that it submits the
// identifier and Enter still submits the form's own method; the social
// sign-in providers' buttons are returned apart instead, for a form of
// their own, so that Enter in the password field never submits a
// provider. Without fields, every button is in one form.
func arrangeForms(fields, buttons []nodeView) (forms []formView, separate []nodeView) {
	index := map[string]int{}
	var shared []nodeView
	for _, f := range fields {
		if f.Group == flow.GroupDefault {
			shared = append(shared, f)
			continue
		}
		i, ok := index[f.Group]
		if !ok {
			i = len(forms)
			index[f.Group] = i
			forms = append(forms, formView{})
		}
		forms[i].Fields = append(forms[i].Fields, f)
	}
	if len(forms) == 0 {
		forms = []formView{{}}
	}
	forms[0].Fields = append(shared, forms[0].Fields...)
	home := 0 // the form with the identifier
	if i, ok := index[flow.GroupIdentifierFirst]; ok && len(shared) == 0 {
		home = i
	}
	for _, b := range buttons {
		switch i, ok := index[b.Group]; {
		case ok:
			forms[i].Buttons = append(forms[i].Buttons, b)
		case len(fields) == 0 || b.Group == flow.GroupDefault:
			forms[0].Buttons = append(forms[0].Buttons, b)
		case b.Group == flow.GroupOIDC:
			separate = append(separate, b)
		default:
			forms[home].Others = append(forms[home].Others, b)
		}
	}
	return forms, separate
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
	Email       string
	Session     *session.Session
	LogoutURL   string
	SettingsURL string
}

// welcomePage shows the session, a link to the settings and a logout link.
// It is served behind RequireSession; without a session it sends the
// browser to log in all the same.
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
	render(w, "welcome.html", welcomeView{Email: traits.Email, Session: sess, LogoutURL: logout, SettingsURL: s.opts.PublicURL + "/settings"})
}

// contentSecurityPolicy is every page's: nothing but inline styles, data:
// images and, for the WebAuthn pages, scripts of this origin (webauthn.js
// and triggers.js): no inline script, no eval, no framing.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'"

// serveTriggersJS serves triggersJS.
func serveTriggersJS(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, r, "triggers.js", time.Time{}, bytes.NewReader(triggersJS))
}

func render(w http.ResponseWriter, name string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "private, no-cache, no-store, must-revalidate")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Security-Policy", contentSecurityPolicy)
	if err := pages.ExecuteTemplate(w, name, data); err != nil {
		http.Error(w, "rendering failed", http.StatusInternalServerError)
	}
}
