// Package flow holds the login flow as clients see it (the [Flow] value, its
// UI nodes and messages), the record a flow store keeps, the wire message
// ids, and [MemoryStore], the in-memory flow store.
//
// A flow is created by the login handler, rendered by a UI from its nodes,
// and submitted back; a store keeps it between those requests:
//
//	store := flow.NewMemoryStore(nil)
//	h, err := login.New(login.Config{FlowStore: store, ...})
//
// Stores signal "not found" with [ErrNotFound], a stale conditional update
// with [ErrConflict] and a flow that already logged in with [ErrCompleted];
// check them with errors.Is.
package flow

import (
	"encoding/json"
	"errors"
	"time"
)

// Sentinel errors of flow stores.
var (
	// ErrNotFound means no flow (or forwarded error) has the requested id.
	ErrNotFound = errors.New("flow: not found")
	// ErrConflict means a conditional update lost: the stored version is not
	// the one the caller read.
	ErrConflict = errors.New("flow: version conflict")
	// ErrCompleted means the flow has already logged somebody in.
	ErrCompleted = errors.New("flow: already completed")
)

// Type says how a flow is driven: by a browser (cookies, CSRF, redirects) or
// by an API client (tokens, JSON only).
type Type string

// Flow types.
const (
	TypeAPI     Type = "api"
	TypeBrowser Type = "browser"
)

// State is where a flow stands.
type State string

// Flow states. A flow is created in StateChooseMethod and moves, exactly
// once, to StatePassedChallenge when it logs somebody in. A method may
// move it through steps of its own in between, such as StateSentEmail
// once a login code was sent.
const (
	StateChooseMethod    State = "choose_method"
	StateSentEmail       State = "sent_email"
	StatePassedChallenge State = "passed_challenge"
)

// Authenticator assurance levels.
const (
	AAL1 = "aal1"
	AAL2 = "aal2"
)

// Flow is a login flow in its wire format.
type Flow struct {
	ID string `json:"id"`
	// OrganizationID is always null in version 1; the key is always present.
	OrganizationID *string   `json:"organization_id"`
	Type           Type      `json:"type"`
	ExpiresAt      time.Time `json:"expires_at"`
	IssuedAt       time.Time `json:"issued_at"`
	// RequestURL is the public URL of the request that created the flow.
	RequestURL string `json:"request_url"`
	// ReturnTo is the return_to the flow was created with, as given.
	ReturnTo string `json:"return_to,omitempty"`
	// Active names the method that verified the credentials, once one did.
	Active       string    `json:"active,omitempty"`
	UI           UI        `json:"ui"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
	Refresh      bool      `json:"refresh"`
	RequestedAAL string    `json:"requested_aal"`
	State        State     `json:"state"`
	// SessionTokenExchangeCode is the init code of the session token
	// exchange (a native app's social sign-in): sent once, in the answer
	// that creates an API flow with return_session_token_exchange_code.
	// It is never stored (the handler keeps only its hash) nor sent again.
	SessionTokenExchangeCode string `json:"session_token_exchange_code,omitempty"`
}

// Expired reports whether the flow has expired at now (expires_at strictly
// before now).
func (f *Flow) Expired(now time.Time) bool { return f.ExpiresAt.Before(now) }

// UI is the form a UI renders for a flow.
type UI struct {
	Action string `json:"action"`
	Method string `json:"method"`
	Nodes  []Node `json:"nodes"`
	// Messages are flow-wide messages; the key is omitted when empty.
	Messages []Message `json:"messages,omitempty"`
}

// Node returns the first node named name, or nil.
func (u *UI) Node(name string) *Node {
	for i := range u.Nodes {
		if u.Nodes[i].Attributes.Name == name {
			return &u.Nodes[i]
		}
	}
	return nil
}

// ResetMessages removes every message from the container and the nodes, as
// each new submission does before reporting its own.
func (u *UI) ResetMessages() {
	u.Messages = nil
	for i := range u.Nodes {
		u.Nodes[i].Messages = []Message{}
	}
}

// Node groups, in the order nodes are sorted.
const (
	GroupOIDC            = "oidc"
	GroupDefault         = "default"
	GroupIdentifierFirst = "identifier_first"
	GroupWebAuthn        = "webauthn" // also the WebAuthn script node's
	GroupPasskey         = "passkey"
	GroupCode            = "code"
	GroupPassword        = "password"
	GroupTOTP            = "totp"
	GroupLookupSecret    = "lookup_secret"
)

// Node is one element of a flow's form.
type Node struct {
	Type       string     `json:"type"`
	Group      string     `json:"group"`
	Attributes Attributes `json:"attributes"`
	// Messages is always an array ([] when empty).
	Messages []Message `json:"messages"`
	Meta     Meta      `json:"meta"`
}

// Attributes are an input node's attributes.
type Attributes struct {
	Name string `json:"name"`
	Type string `json:"type"`
	// Value is omitted when nil, so a password node never carries one, while
	// an empty identifier is sent as "".
	Value        any    `json:"value,omitempty"`
	Required     bool   `json:"required,omitempty"`
	Autocomplete string `json:"autocomplete,omitempty"`
	Disabled     bool   `json:"disabled"`
	MaxLength    int    `json:"maxlength,omitempty"`
	// Onclick and Onload are JavaScript a UI runs when the node is clicked
	// or rendered (always "window.<function>(<arguments>)"), for browser
	// flows; OnclickTrigger and OnloadTrigger name the function alone
	// (one of the WebAuthn script's globals), for browser and API flows.
	Onclick        string `json:"onclick,omitempty"`
	OnclickTrigger string `json:"onclickTrigger,omitempty"`
	Onload         string `json:"onload,omitempty"`
	OnloadTrigger  string `json:"onloadTrigger,omitempty"`
	NodeType       string `json:"node_type"`

	// ScriptAttributes are set on a script node (NodeType "script", see
	// NewScript) only; their fields are encoded among the others, and left
	// out when nil. A script node also carries the name "" and disabled
	// false that every node's attributes have: UIs tell nodes apart by
	// node_type.
	*ScriptAttributes
}

// ScriptAttributes are the attributes of a script node besides Type: what
// a <script> element needs to load a script under Subresource Integrity.
type ScriptAttributes struct {
	Src            string `json:"src"`
	Async          bool   `json:"async"`
	ReferrerPolicy string `json:"referrerpolicy"`
	CrossOrigin    string `json:"crossorigin"`
	Integrity      string `json:"integrity"`
	ID             string `json:"id"`
	Nonce          string `json:"nonce"`
}

// Meta carries a node's label.
type Meta struct {
	Label *Message `json:"label,omitempty"`
}

// NewInput returns an input node.
func NewInput(group, name, typ string, value any, required bool) Node {
	return Node{
		Type:       "input",
		Group:      group,
		Attributes: Attributes{Name: name, Type: typ, Value: value, Required: required, NodeType: "input"},
		Messages:   []Message{},
	}
}

// NewScript returns a script node that loads the script at src, which
// the browser runs only if its bytes match integrity (Subresource
// Integrity): asynchronously, without a referrer, fetched in CORS mode
// without credentials. id is the element's id; nonce is a random value
// for the node (UIs may ignore it).
func NewScript(group, id, src, integrity, nonce string) Node {
	return Node{
		Type:  "script",
		Group: group,
		Attributes: Attributes{
			Type: "text/javascript", NodeType: "script",
			ScriptAttributes: &ScriptAttributes{
				Src: src, Async: true, ReferrerPolicy: "no-referrer", CrossOrigin: "anonymous",
				Integrity: integrity, ID: id, Nonce: nonce,
			},
		},
		Messages: []Message{},
	}
}

// Record is what a flow store keeps: the wire flow plus server-side state
// that is never sent to clients.
type Record struct {
	Flow Flow
	// CSRFTokenHash is the SHA-256 (hex) of the CSRF cookie's token the
	// browser flow was created with; empty for API flows.
	CSRFTokenHash string
	// MethodState is opaque per-method state, keyed by method id (social
	// sign-in keeps its nonce and PKCE verifier here).
	MethodState map[string]json.RawMessage
	// SessionID is the session a completed flow issued. The handler sets it
	// when completing the flow, so that a completion whose session was never
	// stored (the store failed twice in a row) can be detected and undone.
	SessionID string
	// Version increases with every stored change; updates are conditional on
	// it. Stores set it.
	Version int64
}

// ErrorRecord is an error forwarded to the error UI, kept so that the UI can
// fetch it by id.
type ErrorRecord struct {
	ID string `json:"id"`
	// Error is the error object as JSON.
	Error     json.RawMessage `json:"error"`
	CreatedAt time.Time       `json:"created_at"`
	UpdatedAt time.Time       `json:"updated_at"`
}
