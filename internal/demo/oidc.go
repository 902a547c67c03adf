package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/authflow/authflow/internal/uuid"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/login/oidc"
	"github.com/authflow/authflow/session"
)

// OIDCProvider is one -oidc-provider flag:
// id=ID,issuer=URL,client-id=X[,client-secret=Y].
type OIDCProvider struct {
	ID           string
	Issuer       string
	ClientID     string
	ClientSecret string
}

// OIDCLink is one -oidc-link flag: provider=ID,subject=SUB,email=EMAIL.
type OIDCLink struct {
	Provider string
	Subject  string
	Email    string
}

// parseKV splits "k1=v1,k2=v2" into a map, refusing keys outside allowed,
// repeated keys and parts without "=". Values cannot contain commas.
func parseKV(flagName, v string, allowed ...string) (map[string]string, error) {
	m := map[string]string{}
	for part := range strings.SplitSeq(v, ",") {
		k, val, ok := strings.Cut(part, "=")
		k = strings.TrimSpace(k)
		switch {
		case !ok:
			return nil, fmt.Errorf("-%s %q: %q is not key=value (keys: %s)", flagName, v, part, strings.Join(allowed, ", "))
		case !slices.Contains(allowed, k):
			return nil, fmt.Errorf("-%s %q: unknown key %q (keys: %s)", flagName, v, k, strings.Join(allowed, ", "))
		case m[k] != "":
			return nil, fmt.Errorf("-%s %q: key %q given twice", flagName, v, k)
		}
		m[k] = strings.TrimSpace(val)
	}
	return m, nil
}

func missing(m map[string]string, keys ...string) []string {
	var out []string
	for _, k := range keys {
		if m[k] == "" {
			out = append(out, k)
		}
	}
	return out
}

// parseOIDC checks the raw -oidc-provider and -oidc-link values.
func parseOIDC(providers, links []string) ([]OIDCProvider, []OIDCLink, error) {
	var ps []OIDCProvider
	for _, v := range providers {
		m, err := parseKV("oidc-provider", v, "id", "issuer", "client-id", "client-secret")
		if err != nil {
			return nil, nil, err
		}
		if miss := missing(m, "id", "issuer", "client-id"); len(miss) > 0 {
			return nil, nil, fmt.Errorf("-oidc-provider %q: missing %s (want id=ID,issuer=URL,client-id=X,client-secret=Y)", v, strings.Join(miss, ", "))
		}
		p := OIDCProvider{ID: m["id"], Issuer: m["issuer"], ClientID: m["client-id"], ClientSecret: m["client-secret"]}
		if strings.ContainsAny(p.ID, "/:?#") {
			return nil, nil, fmt.Errorf("-oidc-provider %q: id %q must not contain / : ? #", v, p.ID)
		}
		if u, err := url.Parse(p.Issuer); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, nil, fmt.Errorf("-oidc-provider %q: issuer %q is not an absolute http(s) URL", v, p.Issuer)
		}
		if slices.ContainsFunc(ps, func(q OIDCProvider) bool { return q.ID == p.ID }) {
			return nil, nil, fmt.Errorf("-oidc-provider %q: provider %q is configured twice", v, p.ID)
		}
		ps = append(ps, p)
	}
	var ls []OIDCLink
	for _, v := range links {
		m, err := parseKV("oidc-link", v, "provider", "subject", "email")
		if err != nil {
			return nil, nil, err
		}
		if miss := missing(m, "provider", "subject", "email"); len(miss) > 0 {
			return nil, nil, fmt.Errorf("-oidc-link %q: missing %s (want provider=ID,subject=SUB,email=EMAIL)", v, strings.Join(miss, ", "))
		}
		l := OIDCLink{Provider: m["provider"], Subject: m["subject"], Email: m["email"]}
		if !slices.ContainsFunc(ps, func(p OIDCProvider) bool { return p.ID == l.Provider }) {
			return nil, nil, fmt.Errorf("-oidc-link %q: provider %q is not configured by an -oidc-provider", v, l.Provider)
		}
		if _, err := login.NormalizeIdentifier(l.Email); err != nil {
			return nil, nil, fmt.Errorf("-oidc-link %q: email: %w", v, err)
		}
		ls = append(ls, l)
	}
	return ps, ls, nil
}

// oidcMethod is the oidc login method of the providers, nil without any:
// scopes openid and email, the email claim as trait email.
func oidcMethod(ps []OIDCProvider) (*oidc.Method, error) {
	if len(ps) == 0 {
		return nil, nil
	}
	cfg := oidc.Config{}
	for _, p := range ps {
		cfg.Providers = append(cfg.Providers, oidc.Provider{
			ID: p.ID, IssuerURL: p.Issuer, ClientID: p.ClientID, ClientSecret: p.ClientSecret,
			Scopes: []string{"email"}, // openid is always added
			Traits: emailTraits,
		})
	}
	return oidc.New(cfg)
}

// emailTraits maps the email claim to the trait email.
func emailTraits(c *oidc.Claims) (json.RawMessage, error) {
	traits := map[string]string{}
	if c.Email != "" {
		traits["email"] = c.Email
	}
	return json.Marshal(traits)
}

// SeedOIDCLinks makes every link exist, idempotently: a subject already
// linked is left alone (whichever identity holds it). Otherwise the subject
// is linked to the identity with that email, if there is one: the identity
// whose password identifier is the normalised email (the demo identity), or
// the identity an earlier link with the same email was seeded to. Linking
// adds the subject to that identity's oidc credential (UpdateCredential,
// conditional on its version), so the same person can sign in either way.
// Only without such an identity is a new one created, with traits
// {"email": EMAIL} and the credential oidc.Credential(provider, subject).
func SeedOIDCLinks(ctx context.Context, ids login.IdentityStore, links []OIDCLink) error {
	byEmail := map[string]string{} // normalised email -> identity id
	var todo []OIDCLink
	for _, l := range links { // first the links that exist, so later ones join them
		email, err := login.NormalizeIdentifier(l.Email)
		if err != nil {
			return fmt.Errorf("seed oidc link: %w", err)
		}
		id, _, err := ids.FindIdentity(ctx, session.CredentialOIDC, l.Provider+":"+l.Subject)
		switch {
		case err == nil:
			if byEmail[email] == "" {
				byEmail[email] = id.ID
			}
		case errors.Is(err, session.ErrNotFound):
			todo = append(todo, l)
		default:
			return fmt.Errorf("seed oidc link: %w", err)
		}
	}
	for _, l := range todo {
		email, _ := login.NormalizeIdentifier(l.Email)
		target := byEmail[email]
		if target == "" {
			id, _, err := ids.FindIdentity(ctx, session.CredentialPassword, email)
			if err == nil {
				target = id.ID
			} else if !errors.Is(err, session.ErrNotFound) {
				return fmt.Errorf("seed oidc link: %w", err)
			}
		}
		if target != "" {
			if err := addOIDCLink(ctx, ids, target, l); err != nil {
				return fmt.Errorf("seed oidc link %s:%s: %w", l.Provider, l.Subject, err)
			}
			byEmail[email] = target
			continue
		}
		traits, _ := json.Marshal(map[string]string{"email": l.Email})
		now := time.Now().UTC()
		id := &session.Identity{
			ID:             uuid.New(),
			SchemaID:       "default",
			State:          session.StateActive,
			StateChangedAt: &now,
			Traits:         traits,
			CreatedAt:      now,
			UpdatedAt:      now,
		}
		err := ids.CreateIdentity(ctx, id, oidc.Credential(l.Provider, l.Subject))
		switch {
		case err == nil:
			byEmail[email] = id.ID
		case errors.Is(err, session.ErrConflict): // another instance seeded it meanwhile
		default:
			return fmt.Errorf("seed oidc link %s:%s: %w", l.Provider, l.Subject, err)
		}
	}
	return nil
}

// addOIDCLink adds the link to the identity's oidc credential, creating the
// credential if the identity has none.
func addOIDCLink(ctx context.Context, ids login.IdentityStore, identityID string, l OIDCLink) error {
	creds, err := ids.Credentials(ctx, identityID)
	if err != nil {
		return err
	}
	c := oidc.Credential(l.Provider, l.Subject)
	for _, cur := range creds {
		if cur.Type != session.CredentialOIDC {
			continue
		}
		var cfg map[string]any
		if len(cur.Config) > 0 {
			if err := json.Unmarshal(cur.Config, &cfg); err != nil {
				return fmt.Errorf("read the oidc credential: %w", err)
			}
		}
		if cfg == nil {
			cfg = map[string]any{}
		}
		list, _ := cfg["providers"].([]any)
		cfg["providers"] = append(list, map[string]string{"provider": l.Provider, "subject": l.Subject})
		merged := cur
		merged.Identifiers = append(slices.Clone(cur.Identifiers), l.Provider+":"+l.Subject)
		if merged.Config, err = json.Marshal(cfg); err != nil {
			return err
		}
		c = merged // keeps cur.Version: the update is conditional on it
		break
	}
	err = ids.UpdateCredential(ctx, identityID, &c)
	if errors.Is(err, session.ErrConflict) {
		// Either the subject was linked meanwhile (fine) or the credential
		// changed under us.
		if _, _, ferr := ids.FindIdentity(ctx, session.CredentialOIDC, l.Provider+":"+l.Subject); ferr == nil {
			return nil
		}
	}
	return err
}
