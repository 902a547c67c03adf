// Package oidc is the "oidc" login method: social sign-in with any number of
// OpenID Connect providers, plugged into login.Config.Methods.
//
//	m, err := oidc.New(oidc.Config{Providers: []oidc.Provider{{
//		ID: "google", IssuerURL: "https://accounts.google.com",
//		ClientID: id, ClientSecret: secret,
//	}}})
//	h, err := login.New(login.Config{..., Methods: []login.Method{m}})
//
// Each provider gets a submit button in the flow (group "oidc",
// name=provider, value=<id>, label 1010002). A submission sends the browser
// to the provider's authorization endpoint (authorization code flow with
// PKCE S256 and a nonce); the provider sends it back to
// GET {PublicURL}/self-service/methods/oidc/callback/<id>, which must be
// registered as the client's redirect URI. There the code is exchanged, the
// ID token verified and the identity found by its credential of type
// "oidc" with identifier "<provider>:<subject>" (see [Credential]). A login
// never creates an account; Config.OnUnknownSubject may link or create one.
//
// The state parameter is "<flow id>.<random>": it carries no secret, is
// compared with the flow's method state in constant time and is used at
// most once. For browser flows it is also bound to the browser by a cookie
// whose value's SHA-256 the flow keeps. The PKCE verifier and the nonce
// never leave the server.
//
// A native app's API flow finishes at the provider in the system browser:
// created with return_session_token_exchange_code=true, the callback sends
// the browser back to the flow's return_to with a code, for which the app
// gets the session token at GET /sessions/token-exchange (see login); without
// it, such a flow issues no session.
//
// Provider discovery is fetched on first use and retried on the next use
// after a failure, so a server may start before its providers.
package oidc

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	autherrors "github.com/authflow/authflow/errors"
	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/session"
)

// MethodID is the method's id: the "method" field value, its node group and
// its MethodState key.
const MethodID = "oidc"

// DefaultStateCookieName names the cookie that binds a browser flow's state
// to the browser, unless Config.StateCookieName is set. On https (and
// without a cookie domain) it gets the "__Host-" prefix.
const DefaultStateCookieName = "authflow_oidc_state"

// Provider is one OpenID Connect provider.
type Provider struct {
	// ID names the provider: the button's value, the callback path and the
	// prefix of credential identifiers ("<id>:<subject>"). Required.
	ID string
	// Label is the display name on the button ("Sign in with <Label>");
	// the ID when empty.
	Label string
	// IssuerURL is the issuer; discovery is read from
	// {IssuerURL}/.well-known/openid-configuration. Required.
	IssuerURL string
	// ClientID and ClientSecret are the client's credentials at the
	// provider. ClientID is required.
	ClientID     string
	ClientSecret string
	// Scopes are requested in addition to "openid", which is always
	// requested; {"email", "profile"} when nil.
	Scopes []string
	// Traits turns the ID token's claims into identity traits, offered to
	// Config.OnUnknownSubject as Claims.Traits. When nil the traits are
	// {"email": <email>} if the provider sent an email, else {}.
	Traits func(c *Claims) (json.RawMessage, error)
}

// Claims are what a verified ID token says about the user.
type Claims struct {
	// Provider is the provider's ID.
	Provider string
	// Issuer and Subject identify the user at the provider.
	Issuer  string
	Subject string
	// Email, EmailVerified and Name are the standard claims, when sent.
	Email         string
	EmailVerified bool
	Name          string
	// Raw holds every claim of the ID token.
	Raw map[string]any
	// Traits are the traits Provider.Traits made of the claims.
	Traits json.RawMessage
}

// Identifier is the credential identifier of the user: "<provider>:<subject>".
func (c *Claims) Identifier() string { return c.Provider + ":" + c.Subject }

// Config configures the method.
type Config struct {
	// Providers are the configured providers (any number, distinct IDs).
	Providers []Provider
	// OnUnknownSubject, when set, is called when a verified subject is
	// linked to no identity. It may link the subject to an existing
	// identity or create one (with a credential from [Credential]) and
	// return it; the login then succeeds with that identity. Returning nil
	// and no error answers message 4000037 on the flow, as without the hook;
	// a *login.FlowError is reported on the flow; any other error is
	// internal. Without the hook a login never creates an account.
	OnUnknownSubject func(ctx context.Context, c *Claims) (*session.Identity, error)
	// HTTPClient talks to the providers (discovery, keys, token); a client
	// with a 10 second timeout when nil.
	HTTPClient *http.Client
	// StateCookieName overrides DefaultStateCookieName (used verbatim).
	StateCookieName string
	// Now is the clock ID tokens are checked against; time.Now when nil.
	Now func() time.Time
}

// Method is the oidc login method; it implements login.CallbackMethod.
type Method struct {
	cfg       Config
	providers map[string]*provider
	order     []*provider
}

var (
	_ login.CallbackMethod = (*Method)(nil)
	_ login.FieldSelected  = (*Method)(nil)
)

// provider is a Provider with its lazily discovered endpoints.
type provider struct {
	Provider
	scopes []string

	mu  sync.Mutex
	oid *gooidc.Provider // nil until discovery succeeded
}

// New checks cfg and returns the method. It makes no network request.
func New(cfg Config) (*Method, error) {
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	m := &Method{cfg: cfg, providers: map[string]*provider{}}
	for _, p := range cfg.Providers {
		switch {
		case p.ID == "" || strings.ContainsAny(p.ID, "/:?#"):
			return nil, fmt.Errorf("oidc: provider id %q is empty or contains one of / : ? #", p.ID)
		case p.IssuerURL == "" || p.ClientID == "":
			return nil, fmt.Errorf("oidc: provider %q needs an issuer URL and a client id", p.ID)
		case m.providers[p.ID] != nil:
			return nil, fmt.Errorf("oidc: provider %q is configured twice", p.ID)
		}
		scopes := p.Scopes
		if scopes == nil {
			scopes = []string{"email", "profile"}
		}
		pp := &provider{Provider: p, scopes: append([]string{gooidc.ScopeOpenID}, without(scopes, gooidc.ScopeOpenID)...)}
		m.providers[p.ID] = pp
		m.order = append(m.order, pp)
	}
	return m, nil
}

func without(list []string, s string) []string {
	var out []string
	for _, v := range list {
		if v != s {
			out = append(out, v)
		}
	}
	return out
}

// Credential returns the oidc credential that links an identity to the
// subject at provider (identifier "<provider>:<subject>"), for
// IdentityStore.CreateIdentity or a host's linking code.
func Credential(provider, subject string) session.Credential {
	cfg, _ := json.Marshal(map[string]any{"providers": []map[string]string{{"provider": provider, "subject": subject}}})
	return session.Credential{Type: session.CredentialOIDC, Identifiers: []string{provider + ":" + subject}, Config: cfg}
}

// ID implements login.Method.
func (m *Method) ID() string { return MethodID }

// SelectingField implements login.FieldSelected: a social sign-in form may
// post only its provider button, without a method field.
func (m *Method) SelectingField() string { return "provider" }

// AAL implements login.Method: social sign-in is a first factor.
func (m *Method) AAL() string { return flow.AAL1 }

// Nodes implements login.Method: one submit button per provider. Refresh
// flows only show the providers linked to the identity; aal2 flows none.
func (m *Method) Nodes(_ context.Context, req *login.FlowRequest) ([]flow.Node, error) {
	if req.Flow.RequestedAAL == flow.AAL2 {
		return nil, nil
	}
	var nodes []flow.Node
	for _, p := range m.order {
		if req.Identity != nil && !linked(req.Credentials, p.ID) {
			continue
		}
		n := flow.NewInput(flow.GroupOIDC, "provider", "submit", p.ID, false)
		label := p.Label
		if label == "" {
			label = p.ID
		}
		l := flow.SignInWithProvider(label, p.ID)
		n.Meta.Label = &l
		nodes = append(nodes, n)
	}
	return nodes, nil
}

func linked(creds []session.Credential, providerID string) bool {
	for _, c := range creds {
		if c.Type != session.CredentialOIDC {
			continue
		}
		for _, id := range c.Identifiers {
			if strings.HasPrefix(id, providerID+":") {
				return true
			}
		}
	}
	return false
}

// unknownProvider is the 4000001 of a provider that is not configured. The
// message is stored with the flow, so a submitted id is quoted cut to
// login.MaxEchoedValueLength bytes.
func unknownProvider(id string) *login.FlowError {
	if n := login.MaxEchoedValueLength; len(id) > n {
		for n > 0 && !utf8.RuneStart(id[n]) {
			n--
		}
		id = id[:n]
	}
	return &login.FlowError{Messages: []flow.Message{flow.Generic(fmt.Sprintf("OpenID Connect provider %q is unknown or has not been configured", id))}}
}

// failed is a 4000001 on the flow saying what went wrong; cause is logged.
func failed(cause error, format string, args ...any) *login.FlowError {
	return &login.FlowError{Messages: []flow.Message{flow.Generic(fmt.Sprintf(format, args...))}, Err: cause}
}

// Validate implements login.Method: the provider must be configured.
func (m *Method) Validate(_ context.Context, s *login.Submission) error {
	if id := s.Field("provider"); m.providers[id] == nil {
		return unknownProvider(id)
	}
	return nil
}

// methodState is the flow's MethodState["oidc"].
type methodState struct {
	Provider string `json:"provider"`
	// State is the random part of the state parameter; empty once used.
	State    string `json:"state,omitempty"`
	Nonce    string `json:"nonce,omitempty"`
	Verifier string `json:"pkce_verifier,omitempty"`
	// Binding is the SHA-256 (hex) of the browser's state cookie (browser
	// flows only).
	Binding string `json:"binding,omitempty"`
}

// Authenticate implements login.Method: it sends the browser to the
// provider.
func (m *Method) Authenticate(ctx context.Context, s *login.Submission) (*login.Result, error) {
	id := s.Field("provider")
	p := m.providers[id]
	if p == nil {
		return nil, unknownProvider(id)
	}
	conf, _, err := m.discover(ctx, p, s.CallbackURL(p.ID))
	if err != nil {
		return nil, failed(err, "OpenID Connect provider %q is currently unavailable, please try again later", p.ID)
	}
	st := methodState{Provider: p.ID, State: random(), Nonce: random(), Verifier: oauth2.GenerateVerifier()}
	res := &login.Result{}
	if s.Flow.Flow.Type == flow.TypeBrowser {
		secret := random()
		st.Binding = hash(secret)
		maxAge := max(int(s.Flow.Flow.ExpiresAt.Sub(s.Now())/time.Second), 1)
		res.Cookies = append(res.Cookies, m.stateCookie(s.Cookie, secret, maxAge))
	}
	if res.MethodState, err = json.Marshal(&st); err != nil {
		return nil, err
	}
	res.RedirectBrowserTo = conf.AuthCodeURL(s.Flow.Flow.ID+"."+st.State,
		oauth2.S256ChallengeOption(st.Verifier), gooidc.Nonce(st.Nonce))
	return res, nil
}

// stateCookie makes (or, with maxAge < 0, clears) the state cookie.
func (m *Method) stateCookie(mk func(name, value string, maxAge int) *http.Cookie, value string, maxAge int) *http.Cookie {
	name := m.cfg.StateCookieName
	probe := mk(DefaultStateCookieName, "", 0)
	if name == "" {
		name = DefaultStateCookieName
		if probe.Secure && probe.Domain == "" {
			name = "__Host-" + name
		}
	}
	return mk(name, value, maxAge)
}

// discover returns the provider's OAuth 2 configuration and ID token
// verifier, fetching discovery on first use (and again after a failure).
func (m *Method) discover(ctx context.Context, p *provider, redirectURL string) (*oauth2.Config, *gooidc.IDTokenVerifier, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.oid == nil {
		dctx, cancel := context.WithTimeout(gooidc.ClientContext(ctx, m.cfg.HTTPClient), 15*time.Second)
		defer cancel()
		oid, err := gooidc.NewProvider(dctx, p.IssuerURL)
		if err != nil {
			return nil, nil, fmt.Errorf("oidc: discovery of %q: %w", p.ID, err)
		}
		p.oid = oid
	}
	conf := &oauth2.Config{
		ClientID:     p.ClientID,
		ClientSecret: p.ClientSecret,
		Endpoint:     p.oid.Endpoint(),
		RedirectURL:  redirectURL,
		Scopes:       p.scopes,
	}
	return conf, p.oid.Verifier(&gooidc.Config{ClientID: p.ClientID, Now: m.cfg.Now}), nil
}

func random() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func hash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// untrusted is the answer to a state that cannot be trusted: tampered,
// foreign to the browser, replayed or unknown. It goes to the error UI.
func untrusted() error {
	return autherrors.BadRequest("Unable to complete the OpenID Connect flow because the state parameter is invalid, was already used or does not belong to this browser.")
}

// maxCallbackBody bounds a POSTed callback's body.
const maxCallbackBody = 1 << 20

// Callback implements login.CallbackMethod for
// /self-service/methods/oidc/callback/<provider>. A POST (response_mode
// form_post) is answered with a 303 to the same URL as a GET carrying the
// posted parameters, so that the browser's SameSite=Lax cookies come along;
// parameters longer than login.MaxURLLength, which that GET could not
// carry, are answered 414 instead. Nothing of a POST is stored.
func (m *Method) Callback(ctx context.Context, c *login.Callback) (*flow.Record, *login.Result, error) {
	r := c.Request
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(nil, r.Body, maxCallbackBody)
		if err := r.ParseForm(); err != nil {
			return nil, nil, autherrors.BadRequest("The callback's form could not be read.")
		}
		query := r.Form.Encode()
		if len(query) > login.MaxURLLength {
			return nil, nil, autherrors.URLTooLong(login.MaxURLLength)
		}
		return nil, nil, login.ContinueInBrowser(c.CallbackURL(c.Path) + "?" + query)
	}
	q := r.URL.Query()
	flowID, secret, ok := strings.Cut(q.Get("state"), ".")
	if !ok || flowID == "" || secret == "" {
		return nil, nil, untrusted()
	}
	rec, err := c.Flows.Flow(ctx, flowID)
	if errors.Is(err, flow.ErrNotFound) {
		return nil, nil, untrusted()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("oidc: load flow: %w", err)
	}
	var st methodState
	raw, ok := rec.MethodState[MethodID]
	if !ok || json.Unmarshal(raw, &st) != nil || st.State == "" || !equal(st.State, secret) || st.Provider != c.Path {
		return nil, nil, untrusted()
	}
	res := &login.Result{}
	if rec.Flow.Type == flow.TypeBrowser {
		ck, err := r.Cookie(m.stateCookie(c.Cookie, "", 0).Name)
		if err != nil || !equal(hash(ck.Value), st.Binding) {
			return nil, nil, untrusted()
		}
		res.Cookies = append(res.Cookies, m.stateCookie(c.Cookie, "", -1))
	}
	// Single use: the state is consumed before anything else happens; of
	// concurrent callbacks only one wins the conditional update.
	used := methodState{Provider: st.Provider}
	if rec.MethodState[MethodID], err = json.Marshal(&used); err != nil {
		return nil, nil, err
	}
	rec.Flow.UpdatedAt = c.Now()
	switch err := c.Flows.UpdateFlow(ctx, rec); {
	case errors.Is(err, flow.ErrConflict), errors.Is(err, flow.ErrNotFound):
		return nil, res, untrusted()
	case err != nil:
		return nil, nil, fmt.Errorf("oidc: consume state: %w", err)
	}
	if rec.Flow.Expired(c.Now()) {
		return rec, res, nil // the handler answers with a fresh flow
	}
	p := m.providers[st.Provider]
	if p == nil {
		return rec, res, unknownProvider(st.Provider)
	}
	if e := q.Get("error"); e != "" {
		reason := fmt.Sprintf("Unable to complete OpenID Connect flow because the OpenID Provider returned error %q", e)
		if d := q.Get("error_description"); d != "" {
			reason += ": " + d
		}
		return rec, res, failed(nil, "%s", reason)
	}
	conf, verifier, err := m.discover(ctx, p, c.CallbackURL(p.ID))
	if err != nil {
		return rec, res, failed(err, "OpenID Connect provider %q is currently unavailable, please try again later", p.ID)
	}
	xctx := gooidc.ClientContext(ctx, m.cfg.HTTPClient)
	tok, err := conf.Exchange(xctx, q.Get("code"), oauth2.VerifierOption(st.Verifier))
	if err != nil {
		return rec, res, failed(err, "Unable to exchange the authorization code with OpenID Connect provider %q", p.ID)
	}
	rawID, _ := tok.Extra("id_token").(string)
	if rawID == "" {
		return rec, res, failed(nil, "OpenID Connect provider %q returned no ID token", p.ID)
	}
	idt, err := verifier.Verify(xctx, rawID)
	if err != nil {
		return rec, res, failed(err, "The ID token of OpenID Connect provider %q could not be verified", p.ID)
	}
	if !equal(idt.Nonce, st.Nonce) {
		return rec, res, failed(nil, "The ID token of OpenID Connect provider %q has an invalid nonce", p.ID)
	}
	claims, err := p.claims(idt)
	if err != nil {
		return rec, res, failed(err, "The claims of OpenID Connect provider %q could not be read", p.ID)
	}
	identity, _, err := c.Identities.FindIdentity(ctx, session.CredentialOIDC, claims.Identifier())
	if errors.Is(err, session.ErrNotFound) {
		identity, err = nil, nil
		if m.cfg.OnUnknownSubject != nil {
			identity, err = m.cfg.OnUnknownSubject(ctx, claims)
		}
		if err == nil && identity == nil {
			return rec, res, &login.FlowError{Messages: []flow.Message{flow.AccountMissing()}}
		}
	}
	if err != nil {
		var fe *login.FlowError
		if errors.As(err, &fe) {
			return rec, res, fe
		}
		return nil, nil, fmt.Errorf("oidc: find identity: %w", err)
	}
	res.Identity = identity
	res.Method = session.AuthenticationMethod{Method: MethodID, AAL: flow.AAL1, Provider: p.ID}
	return rec, res, nil
}

// claims reads the verified token's claims and makes the traits.
func (p *provider) claims(idt *gooidc.IDToken) (*Claims, error) {
	c := &Claims{Provider: p.ID, Issuer: idt.Issuer, Subject: idt.Subject}
	if err := idt.Claims(&c.Raw); err != nil {
		return nil, err
	}
	c.Email, _ = c.Raw["email"].(string)
	c.EmailVerified, _ = c.Raw["email_verified"].(bool)
	c.Name, _ = c.Raw["name"].(string)
	if p.Traits != nil {
		t, err := p.Traits(c)
		if err != nil {
			return nil, err
		}
		c.Traits = t
		return c, nil
	}
	traits := map[string]any{}
	if c.Email != "" {
		traits["email"] = c.Email
	}
	c.Traits, _ = json.Marshal(traits)
	return c, nil
}
