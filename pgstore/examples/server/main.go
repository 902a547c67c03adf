// Command server is authflow's example server on PostgreSQL: the core
// example server (internal/demo: the same flags, pages and seeded identity)
// with flows, sessions, identities and throttling in the database, so that
// any number of copies can serve one user base.
//
//	go run ./examples/server -postgres 'postgres://postgres@127.0.0.1:5432/authflow?sslmode=disable'
//
// It migrates the schema on start, seeds the demo identity only when it is
// absent, sweeps expired rows every ten minutes, and prints
// "listening on <public-url>" when ready. Run it with -h for its flags.
//
// With -code-login, copies that serve one database must share
// -code-hash-key (a code sent by one copy is then checked by any other);
// the limits on code mails are kept per copy, in memory.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authflow/authflow/internal/demo"
	"github.com/authflow/authflow/login"
	"github.com/authflow/authflow/pgstore"
)

// sweepInterval is how often the server removes expired rows.
const sweepInterval = 10 * time.Minute

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, logger)
	var usage usageError
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
	case errors.As(err, &usage):
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// usageError is a problem with the command line.
type usageError struct{ error }

// run is the server: flags from args, the database, the handler, and
// serving until ctx ends. It prints "listening on <public-url>" to stdout
// when ready; flag errors and usage go to stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, logger *slog.Logger) error {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dsn := fs.String("postgres", "", "PostgreSQL connection string (required), e.g. postgres://user@127.0.0.1:5432/authflow?sslmode=disable")
	opts, err := demo.ParseFlags(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	if err != nil {
		return usageError{err}
	}
	if *dsn == "" {
		return usageError{errors.New("-postgres is required: the PostgreSQL connection string")}
	}

	pool, err := newPool(ctx, *dsn)
	if err != nil {
		return fmt.Errorf("-postgres: %w", err)
	}
	defer pool.Close()
	if err := pool.Ping(ctx); err != nil {
		return fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	st := pgstore.New(pool)
	if err := st.Migrate(ctx); err != nil {
		return err
	}
	srv, err := demo.New(ctx, opts, demo.Stores{
		Flows:      st,
		Identities: st,
		Sessions:   st,
		NewLimiter: func(l login.Limits) login.Limiter { return pgstore.NewLimiter(pool, l) },
		Ceremonies: pgstore.NewCeremonyStore(pool),
	}, logger)
	if err != nil {
		return err
	}

	sweepCtx, stopSweeping := context.WithCancel(ctx)
	swept := make(chan struct{})
	go func() {
		defer close(swept)
		sweep(sweepCtx, st, logger)
	}()
	defer func() {
		stopSweeping()
		<-swept
	}()
	return srv.Run(ctx, stdout)
}

// sweep removes expired rows now and every sweepInterval until ctx ends.
func sweep(ctx context.Context, st *pgstore.Store, logger *slog.Logger) {
	t := time.NewTicker(sweepInterval)
	defer t.Stop()
	for {
		n, err := st.Sweep(ctx, time.Now(), 1000)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			logger.Error("sweep", "error", err, "deleted", n)
		case n > 0:
			logger.Info("sweep", "deleted", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// newPool connects to dsn. Unless the DSN sets pool_max_conns, the pool
// holds up to two connections per CPU (at least four), the usual size for
// a database on as many CPUs as this server: more connections only add
// backends that take turns on the CPUs. With eight clients on two CPUs,
// four connections gave about 10 % more logins per second than eight, and
// PostgreSQL used about 15 % less CPU per login.
func newPool(ctx context.Context, dsn string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	if !strings.Contains(dsn, "pool_max_conns") {
		cfg.MaxConns = int32(max(4, 2*runtime.NumCPU()))
	}
	return pgxpool.NewWithConfig(ctx, cfg)
}
