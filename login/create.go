package login

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	autherrors "github.com/authflow/authflow/errors"
	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/internal/uuid"
	"github.com/authflow/authflow/session"
)

// flowOptions say how to make a flow.
type flowOptions struct {
	requestURL string
	returnTo   string
	refresh    bool
	aal        string
	session    *current // for refresh and step-up flows
	messages   []flow.Message
	csrfToken  []byte // browser flows
	exchange   bool   // API flows: with a session token exchange code
}

// createBrowserFlow serves GET /self-service/login/browser.
func (h *Handler) createBrowserFlow(x *exchange) (*response, error) {
	x.json = acceptsJSON(x.r)
	token := h.ensureCSRFToken(x) // issued on refusals too, as Kratos does
	opts, err := h.initOptions(x)
	if err != nil {
		return nil, err
	}
	opts.csrfToken = token
	rec, err := h.newFlow(x.r.Context(), flow.TypeBrowser, opts)
	if err != nil {
		return nil, err
	}
	x.seeFlow(rec)
	if x.json {
		return &response{status: http.StatusOK, body: &rec.Flow}, nil
	}
	return &response{location: h.loginUI.with("flow", rec.Flow.ID)}, nil
}

// createAPIFlow serves GET /self-service/login/api.
func (h *Handler) createAPIFlow(x *exchange) (*response, error) {
	x.json = true
	q := x.r.URL.Query()
	exchange := queryBool(q.Get("return_session_token_exchange_code"))
	if exchange && q.Get("return_to") == "" {
		return nil, errExchangeNeedsReturnTo
	}
	opts, err := h.initOptions(x)
	if err != nil {
		return nil, err
	}
	opts.exchange = exchange
	rec, err := h.newFlow(x.r.Context(), flow.TypeAPI, opts)
	if err != nil {
		return nil, err
	}
	x.seeFlow(rec)
	return &response{status: http.StatusOK, body: &rec.Flow}, nil
}

// initOptions applies the decision order of flow creation: return_to,
// aal, then the session (already signed in, or refresh / step-up).
func (h *Handler) initOptions(x *exchange) (flowOptions, error) {
	q := x.r.URL.Query()
	opts := flowOptions{requestURL: h.requestURL(x.r), returnTo: q.Get("return_to")}
	var target *url.URL
	if opts.returnTo != "" {
		u, err := h.resolveReturnTo(opts.returnTo)
		if err != nil {
			return opts, autherrors.ReturnToForbidden(opts.returnTo)
		}
		target = u
	}
	aal, err := parseAAL(q.Get("aal"))
	if err != nil {
		return opts, err
	}
	opts.aal = aal
	opts.refresh = queryBool(q.Get("refresh"))

	cur, err := h.currentSession(x.r.Context(), x.r)
	if err != nil {
		return opts, err
	}
	switch {
	case cur == nil && aal == flow.AAL2:
		return opts, autherrors.SessionAAL1Required()
	case cur == nil:
		opts.refresh = false
	case !opts.refresh && aal <= cur.aal():
		if target == nil {
			target = h.defaultReturn
		}
		return opts, &alreadySignedIn{redirect: target.String()}
	default:
		opts.session = cur
	}
	return opts, nil
}

func parseAAL(raw string) (string, error) {
	switch v := strings.ToLower(raw); v {
	case "":
		return flow.AAL1, nil
	case flow.AAL1, flow.AAL2:
		return v, nil
	default:
		return "", autherrors.BadRequest("Unable to parse AuthenticationMethod Assurance Level (AAL): expected one of [aal1, aal2] but got " + v)
	}
}

// queryBool is a boolean query parameter: strconv.ParseBool's true
// values, anything else false (without making an error for "").
func queryBool(v string) bool {
	if v == "" {
		return false
	}
	b, err := strconv.ParseBool(v)
	return err == nil && b
}

// requestURL is the public URL of r: the configured public URL (with its
// mount prefix) plus the request's path and query. Request headers such as
// Host and X-Forwarded-* are never used.
func (h *Handler) requestURL(r *http.Request) string {
	u := h.public + r.URL.EscapedPath()
	if r.URL.RawQuery != "" {
		u += "?" + r.URL.RawQuery
	}
	return u
}

// newFlow makes, renders and stores a flow.
func (h *Handler) newFlow(ctx context.Context, typ flow.Type, o flowOptions) (*flow.Record, error) {
	now := h.now()
	id := uuid.New()
	rec := &flow.Record{}
	f := &rec.Flow // built in place: the methods see it while it is made
	*f = flow.Flow{
		ID:         id,
		Type:       typ,
		ExpiresAt:  now.Add(h.cfg.FlowLifespan),
		IssuedAt:   now,
		RequestURL: o.requestURL,
		ReturnTo:   o.returnTo,
		UI: flow.UI{
			Action: h.public + "/self-service/login?flow=" + id,
			Method: http.MethodPost,
		},
		CreatedAt:    now,
		UpdatedAt:    now,
		Refresh:      o.refresh,
		RequestedAAL: o.aal,
		State:        flow.StateChooseMethod,
	}
	if o.refresh {
		f.UI.Messages = append(f.UI.Messages, flow.ConfirmIdentity())
	}
	if o.aal == flow.AAL2 && (o.session == nil || o.session.aal() != flow.AAL2) {
		f.UI.Messages = append(f.UI.Messages, flow.SecondFactor())
	}
	f.UI.Messages = append(f.UI.Messages, o.messages...)

	csrf := ""
	if typ == flow.TypeBrowser {
		csrf = maskCSRFToken(o.csrfToken)
		rec.CSRFTokenHash = csrfTokenHash(o.csrfToken)
	}
	f.UI.Nodes = make([]flow.Node, 1, 4+len(h.order))
	f.UI.Nodes[0] = flow.NewInput(flow.GroupDefault, "csrf_token", "hidden", csrf, true)

	req := &FlowRequest{Flow: f, IdentifierFirst: h.identifierFirst(f), IdentifierLabel: h.identifierLabel, h: h}
	if req.IdentifierFirst {
		f.UI.Nodes = append(f.UI.Nodes, h.identifierStepNodes()...)
	}
	if o.session != nil {
		req.Identity = o.session.identity
		creds, err := h.cfg.IdentityStore.Credentials(ctx, o.session.identity.ID)
		if err != nil && !errors.Is(err, session.ErrNotFound) {
			return nil, fmt.Errorf("load credentials: %w", err)
		}
		req.Credentials = creds
	}
	for _, m := range h.order {
		nodes, err := req.methodNodes(ctx, m)
		if err != nil {
			return nil, err
		}
		for _, n := range nodes {
			// First factors that need an identifier share one field,
			// which takes every method's autocomplete tokens (passkey
			// autofill needs "webauthn" beside the password's "username").
			if shared := f.UI.Node("identifier"); shared != nil && n.Group == flow.GroupDefault && n.Attributes.Name == "identifier" {
				shared.Attributes.Autocomplete = joinTokens(shared.Attributes.Autocomplete, n.Attributes.Autocomplete)
				continue
			}
			f.UI.Nodes = append(f.UI.Nodes, n)
		}
	}
	if o.aal == flow.AAL2 && typ == flow.TypeAPI && len(f.UI.Nodes) == 1 {
		f.UI.Nodes = nil // an API step-up flow offering nothing has no nodes, as in Kratos
	}
	sortNodes(f.UI.Nodes)
	req.saveStates(rec)
	if o.aal == flow.AAL2 && o.session != nil {
		setStepUpOwner(rec, o.session.rec.Session.ID)
	}
	code := ""
	if o.exchange && typ == flow.TypeAPI {
		var err error
		if code, err = newExchangeCode(rec); err != nil {
			return nil, err
		}
	}
	if err := h.cfg.FlowStore.CreateFlow(ctx, rec); err != nil {
		return nil, fmt.Errorf("store flow: %w", err)
	}
	// The init code is answered once and never stored: only its hash is.
	rec.Flow.SessionTokenExchangeCode = code
	return rec, nil
}

// joinTokens is the space-separated token list a followed by b's tokens
// that a lacks.
func joinTokens(a, b string) string {
	tokens := strings.Fields(a)
	for _, t := range strings.Fields(b) {
		if !slices.Contains(tokens, t) {
			tokens = append(tokens, t)
		}
	}
	return strings.Join(tokens, " ")
}

var groupOrder = map[string]int{
	flow.GroupOIDC: 0, flow.GroupDefault: 1, flow.GroupIdentifierFirst: 2, flow.GroupWebAuthn: 3, flow.GroupPasskey: 4,
	flow.GroupCode: 5, flow.GroupPassword: 6, flow.GroupTOTP: 7, flow.GroupLookupSecret: 8,
}

var nameOrder = map[string]int{"csrf_token": 0, "identifier": 1, "password": 2}

// sortNodes orders nodes as Kratos does: by group (oidc, default, webauthn,
// passkey, code, password, totp, lookup_secret, then others), within a
// group csrf_token, identifier, password first, and the method node last.
func sortNodes(nodes []flow.Node) {
	rank := func(m map[string]int, k string) int {
		if r, ok := m[k]; ok {
			return r
		}
		return len(m)
	}
	last := func(n flow.Node) int {
		if n.Attributes.Name == "method" {
			return 1
		}
		return 0
	}
	slices.SortStableFunc(nodes, func(a, b flow.Node) int {
		return cmp.Or(
			cmp.Compare(rank(groupOrder, a.Group), rank(groupOrder, b.Group)),
			cmp.Compare(last(a), last(b)),
			cmp.Compare(rank(nameOrder, a.Attributes.Name), rank(nameOrder, b.Attributes.Name)),
		)
	})
}

// fetchFlow serves GET /self-service/login/flows?id=.
func (h *Handler) fetchFlow(x *exchange) (*response, error) {
	x.json = true
	if h.csrfCookieToken(x.r) == nil {
		x.cookies = append(x.cookies, h.csrfCookie(newCSRFToken()))
	}
	f, err := h.Flow(x.r, x.r.URL.Query().Get("id"))
	if err != nil {
		return nil, err
	}
	x.seen.flowID, x.seen.flowType = f.ID, f.Type
	return &response{status: http.StatusOK, body: f}, nil
}

// Flow returns the flow with id as GET /self-service/login/flows would, for
// hosts that render their login page on the server: a browser flow only to
// the browser that created it (r must carry its CSRF cookie). Errors are
// *autherrors.Error values (404 unknown, 403 CSRF, 410 expired) or, when a
// store fails, other errors.
func (h *Handler) Flow(r *http.Request, id string) (*flow.Flow, error) {
	id, ok := uuid.Parse(id)
	if !ok {
		return nil, autherrors.NotFound()
	}
	rec, err := h.cfg.FlowStore.Flow(r.Context(), id)
	if errors.Is(err, flow.ErrNotFound) {
		return nil, autherrors.NotFound()
	}
	if err != nil {
		return nil, fmt.Errorf("load flow: %w", err)
	}
	if rec.Flow.Type == flow.TypeBrowser {
		if err := h.checkFlowCSRF(r, rec.CSRFTokenHash); err != nil {
			return nil, err
		}
	}
	if rec.Flow.Expired(h.now()) {
		if rec.Flow.Type == flow.TypeAPI {
			return nil, autherrors.FlowExpiredOnFetch(false, map[string]any{"api": h.public + "/self-service/login/api"})
		}
		redirect := h.public + "/self-service/login/browser"
		if rec.Flow.ReturnTo != "" {
			redirect += "?" + url.Values{"return_to": {rec.Flow.ReturnTo}}.Encode()
		}
		return nil, autherrors.FlowExpiredOnFetch(true, map[string]any{"redirect_to": redirect, "return_to": rec.Flow.ReturnTo})
	}
	rec.Flow.SessionTokenExchangeCode = "" // answered once, at creation
	return &rec.Flow, nil
}

// fetchError serves GET /self-service/errors?id=.
func (h *Handler) fetchError(x *exchange) (*response, error) {
	x.json = true
	if h.csrfCookieToken(x.r) == nil {
		x.cookies = append(x.cookies, h.csrfCookie(newCSRFToken()))
	}
	rec, err := h.ForwardedError(x.r.Context(), x.r.URL.Query().Get("id"))
	if err != nil {
		return nil, err
	}
	return &response{status: http.StatusOK, body: rec}, nil
}

// ForwardedError returns an error forwarded to the error UI, as GET
// /self-service/errors would, for hosts that render their error page on the
// server. An unknown id is a 404 *autherrors.Error.
func (h *Handler) ForwardedError(ctx context.Context, id string) (*flow.ErrorRecord, error) {
	id, ok := uuid.Parse(id)
	if !ok {
		return nil, autherrors.NotFound()
	}
	rec, err := h.cfg.FlowStore.Error(ctx, id)
	if errors.Is(err, flow.ErrNotFound) {
		return nil, autherrors.NotFound()
	}
	if err != nil {
		return nil, fmt.Errorf("load error: %w", err)
	}
	if !json.Valid(rec.Error) {
		return nil, fmt.Errorf("stored error %s is not JSON", rec.ID)
	}
	return rec, nil
}
