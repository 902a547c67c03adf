// Command server is authflow's example server: the login handler on
// in-memory stores with one seeded identity, a login page rendered from
// the flow's UI nodes, an error page and a welcome page.
//
//	go run ./examples/server
//
// With -oidc-provider (and -oidc-link to seed linked identities) the login
// page also offers social sign-in:
//
//	go run ./examples/server -oidc-provider id=corp,issuer=https://idp.example.com,client-id=X,client-secret=Y \
//		-oidc-link provider=corp,subject=SUB,email=demo@example.com
//
// It prints "listening on <public-url>" when ready. Run it with -h for its
// flags.
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
