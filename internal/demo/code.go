package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/authflow/authflow/courier"
	"github.com/authflow/authflow/internal/uuid"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/login/code"
	"github.com/authflow/authflow/session"
)

// codeFlags are the flags that only mean something with -code-login.
var codeFlags = []string{"smtp-url", "smtp-from", "code-lifespan", "code-max-submissions", "code-hash-key", "seed-code-only"}

// checkCodeOptions checks the code-login options after parsing: set lists
// the flags given on the command line, pub is the public URL.
func checkCodeOptions(o *Options, set map[string]bool, pub *url.URL) error {
	if !o.CodeLogin {
		for _, name := range codeFlags {
			if set[name] {
				return fmt.Errorf("-%s needs -code-login", name)
			}
		}
		return nil
	}
	if o.CodeLifespan <= 0 {
		return fmt.Errorf("-code-lifespan must be positive, got %v", o.CodeLifespan)
	}
	if o.CodeMaxSubmissions < 1 {
		return fmt.Errorf("-code-max-submissions must be at least 1, got %d", o.CodeMaxSubmissions)
	}
	if o.SMTPFrom == "" {
		o.SMTPFrom = defaultFrom(pub)
	}
	if o.SMTPURL != "" {
		// Checked now, so that a typo fails at start and not at the first
		// mail; the courier itself is made by New.
		if _, err := courier.NewSMTP(courier.SMTPConfig{URL: o.SMTPURL, From: o.SMTPFrom}); err != nil {
			return fmt.Errorf("-smtp-url or -smtp-from: %w", err)
		}
	}
	for _, a := range o.SeedCodeOnly {
		if _, err := code.NewCredential(a); err != nil {
			return fmt.Errorf("-seed-code-only %q: not an email address", a)
		}
	}
	return nil
}

// defaultFrom is the sender when -smtp-from is not given:
// no-reply@<public host name> (an IPv6 address as a domain literal).
func defaultFrom(pub *url.URL) string {
	host := pub.Hostname()
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return "no-reply@" + host
}

// codeMethod is the login/code method of the options: mail through the SMTP
// server of -smtp-url, or into outbox (returned) when there is none. It
// returns nil, nil without -code-login.
func codeMethod(o Options, logger *slog.Logger) (*code.Method, *courier.Capture, error) {
	if !o.CodeLogin {
		return nil, nil, nil
	}
	var c courier.Courier
	var outbox *courier.Capture
	if o.SMTPURL != "" {
		smtp, err := courier.NewSMTP(courier.SMTPConfig{URL: o.SMTPURL, From: o.SMTPFrom})
		if err != nil {
			return nil, nil, fmt.Errorf("-smtp-url or -smtp-from: %w", err)
		}
		c = smtp
	} else {
		outbox = courier.NewCapture()
		c = outbox
		logger.Warn("code login without -smtp-url: login mails are not sent but kept in server memory and shown at " +
			o.PublicURL + "/mail to anyone who can reach this server; for local development only")
	}
	m, err := code.New(code.Config{
		Courier:        c,
		Lifespan:       o.CodeLifespan,
		MaxSubmissions: o.CodeMaxSubmissions,
		HashKey:        o.CodeHashKey,
		Now:            o.Now,
		Logger:         logger,
	})
	if err != nil {
		return nil, nil, err
	}
	return m, outbox, nil
}

// SeedCodeLogin lets identities log in by a code sent by email: the
// identity whose password identifier is identifier gets a code credential
// for that address (when it is an email address and the identity has no
// code credential yet), and each address of codeOnly gets an identity of
// its own, with traits {"email": address} and only a code credential,
// unless an identity logs in by code with that address already. Seeding
// again changes nothing.
func SeedCodeLogin(ctx context.Context, ids login.IdentityStore, identifier string, codeOnly []string) error {
	if cred, err := code.NewCredential(identifier); err == nil {
		normalized := cred.Identifiers[0]
		id, _, err := ids.FindIdentity(ctx, session.CredentialPassword, normalized)
		if err != nil {
			return fmt.Errorf("seed the code credential of %s: %w", normalized, err)
		}
		creds, err := ids.Credentials(ctx, id.ID)
		if err != nil {
			return fmt.Errorf("seed the code credential: %w", err)
		}
		if !slices.ContainsFunc(creds, func(c session.Credential) bool { return c.Type == code.CredentialCode }) {
			if _, _, err := ids.FindIdentity(ctx, code.CredentialCode, normalized); err == nil {
				return fmt.Errorf("seed the code credential: another identity logs in by code with %s", normalized)
			}
			if err := addCredential(ctx, ids, id.ID, &cred); err != nil {
				return fmt.Errorf("seed the code credential: %w", err)
			}
		}
	}
	for _, address := range codeOnly {
		if err := seedCodeOnly(ctx, ids, address); err != nil {
			return err
		}
	}
	return nil
}

// seedCodeOnly creates an identity without password that logs in by a
// code sent to address, unless one logs in by code with it already.
func seedCodeOnly(ctx context.Context, ids login.IdentityStore, address string) error {
	cred, err := code.NewCredential(address)
	if err != nil {
		return fmt.Errorf("seed %q: %w", address, err)
	}
	switch _, _, err := ids.FindIdentity(ctx, code.CredentialCode, cred.Identifiers[0]); {
	case err == nil:
		return nil
	case !errors.Is(err, session.ErrNotFound):
		return fmt.Errorf("seed %s: %w", cred.Identifiers[0], err)
	}
	traits, err := json.Marshal(map[string]string{"email": address})
	if err != nil {
		return err
	}
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
	if err := ids.CreateIdentity(ctx, id, cred); err != nil && !errors.Is(err, session.ErrConflict) {
		return fmt.Errorf("seed %s: %w", cred.Identifiers[0], err)
	}
	return nil
}

// outboxLimit is how many messages the outbox page shows, newest first.
const outboxLimit = 20

type outboxView struct {
	Messages []courier.Message
	Total    int
	LoginURL string
}

// outboxPage shows the mails the server would have sent (a development
// aid of a server without -smtp-url): recipient, subject and text body.
func (s *Server) outboxPage(w http.ResponseWriter, r *http.Request) {
	all := s.outbox.Messages()
	v := outboxView{Total: len(all), LoginURL: s.opts.PublicURL + "/self-service/login/browser"}
	for i := len(all) - 1; i >= 0 && len(v.Messages) < outboxLimit; i-- {
		v.Messages = append(v.Messages, all[i])
	}
	render(w, "mail.html", v)
}
