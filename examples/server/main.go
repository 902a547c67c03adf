// Command server is authflow's example server: the login handler on
// in-memory stores with one seeded identity, a login page rendered from
// the flow's UI nodes, an error page, a welcome page and a settings page
// for the second factors (TOTP and backup codes, and with -passkey and
// -webauthn passkeys and security keys).
//
//	go run ./examples/server
//
// With -oidc-provider (and -oidc-link to seed linked identities) the login
// page also offers social sign-in:
//
//	go run ./examples/server -oidc-provider id=corp,issuer=https://idp.example.com,client-id=X,client-secret=Y \
//		-oidc-link provider=corp,subject=SUB,email=demo@example.com
//
// With -totp-secret and -lookup-codes the demo identity has a second
// factor, which a password login then asks for; the settings page
// (/settings, linked from the welcome page) enrols one as well:
//
//	go run ./examples/server -totp-secret JBSWY3DPEHPK3PXP -lookup-codes k7q2m9x4,p3w8z1v6
//
// With -code-login the login page also offers a one-time code sent by
// email; without -smtp-url no mail is sent and the server shows the mails
// it would have sent at /mail (a development aid). -seed-code-only adds an
// identity without password, -login-style identifier_first asks for the
// identifier first:
//
//	go run ./examples/server -code-login -seed-code-only ada@example.com
//	go run ./examples/server -code-login -smtp-url 'smtp://127.0.0.1:1025/?disable_starttls=true' -login-style identifier_first
//
// With -passkey the login page also offers passkeys (a button and the
// identifier field's autofill), with -webauthn the step-up offers security
// keys; the settings page adds and removes both. WebAuthn needs a domain,
// so open the server at localhost (-webauthn-rp-id defaults to localhost);
// -seed-passkey and -seed-webauthn import Kratos credential configs:
//
//	go run ./examples/server -public-url http://localhost:4433 -passkey -webauthn
//
// On SIGINT or SIGTERM it stops serving and then delivers the mail still
// queued (for at most 10 seconds). It prints "listening on <public-url>"
// when ready. Run it with -h for its flags.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/authflow/authflow/internal/demo"
)

func main() {
	fs := flag.NewFlagSet("server", flag.ExitOnError)
	opts, err := demo.ParseFlags(fs, os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	srv, err := demo.New(ctx, opts, demo.Stores{}, logger)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := srv.Run(ctx, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
