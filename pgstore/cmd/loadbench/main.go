// Command loadbench measures how many complete logins per second an
// authflow example server serves over HTTP, and what they cost in CPU.
//
//	cd pgstore && go run ./cmd/loadbench -store postgres -mode api
//
// It builds and starts the example server (-store memory: examples/server
// on in-memory stores; -store postgres: pgstore's examples/server in a
// fresh database, dropped at the end) with bcrypt at -bcrypt-cost and
// throttling off, or drives a running one (-target). Then -clients
// concurrent clients, each with its own keep-alive connection, log in
// over and over for -warmup and then -duration, every login a fresh flow:
//
//   - api: GET /self-service/login/api, POST the password as JSON (200 and
//     a session token);
//   - browser: GET /self-service/login/browser (303, CSRF cookie), GET
//     /self-service/login/flows as a login UI does, POST the form (303 and
//     the session cookie), with a fresh cookie jar;
//   - whoami: every client logs in once, then GET /sessions/whoami with
//     its token (200).
//
// While it runs it writes a progress line every second to stderr; then it
// prints to stdout the operations per second, the median and 99th
// percentile latency of one operation (a login's create and submit
// together), the errors, and the CPU time per operation of the server
// process, of every PostgreSQL process on the machine (with -store
// postgres), of loadbench itself and of the whole machine (which shows
// whether something else ran), read from /proc (Linux only). It exits
// with status 1 when more than 1% of the operations failed.
//
// With -compare N it runs the in-memory and then the PostgreSQL example
// server, N rounds of one run each, and prints each run's summary, then
// every round's rates and PostgreSQL's median share of the in-memory
// rate: alternating keeps the two under the same conditions when the
// machine's speed drifts, as a shared virtual machine's does.
//
// Run it with -h for its flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/authflow/authflow/login"
)

// maxErrorRate is the share of failed operations above which the run
// fails.
const maxErrorRate = 0.01

// defaultDSN is the PostgreSQL server in which -store postgres creates its
// database, unless AUTHFLOW_POSTGRES_DSN or -dsn names another.
const defaultDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Writing to a closed pipe (loadbench | head) must fail the write, not
	// end the process before it stopped the server and dropped the database.
	signal.Ignore(syscall.SIGPIPE)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	var usage usageError
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
	case errors.As(err, &usage):
		fmt.Fprintln(os.Stderr, "loadbench:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "loadbench:", err)
		os.Exit(1)
	}
}

// usageError is a problem with the command line.
type usageError struct{ error }

// options are loadbench's flags.
type options struct {
	store      string
	mode       string
	clients    int
	duration   time.Duration
	warmup     time.Duration
	bcryptCost int
	throttle   bool
	dsn        string
	target     string
	serverPID  int
	identifier string
	password   string
	cookie     string
	compare    int
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("loadbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: loadbench [flags]   (in the pgstore module: go run ./cmd/loadbench [flags])\n\n"+
			"Drives complete logins over HTTP against an authflow example server and prints\n"+
			"logins per second, latency, errors and CPU per login.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	dsn := os.Getenv("AUTHFLOW_POSTGRES_DSN")
	if dsn == "" {
		dsn = defaultDSN
	}
	fs.StringVar(&o.store, "store", "memory", "the example server to build and start: memory (in-memory stores) or postgres (pgstore, in a fresh database); with -target, the one that runs there (postgres: report PostgreSQL's CPU)")
	fs.StringVar(&o.mode, "mode", "api", "what one operation is: api (native login), browser (form login with CSRF cookie) or whoami (session check)")
	fs.IntVar(&o.clients, "clients", 8, "concurrent clients, each with its own connection")
	fs.DurationVar(&o.duration, "duration", 20*time.Second, "how long to measure, after the warm-up")
	fs.DurationVar(&o.warmup, "warmup", 5*time.Second, "how long to run before measuring (not counted)")
	fs.IntVar(&o.bcryptCost, "bcrypt-cost", 4, "bcrypt cost of the started server's password hashes")
	fs.BoolVar(&o.throttle, "throttle", false, "keep the started server's login throttling on (default: -throttle-failures 0)")
	fs.StringVar(&o.dsn, "dsn", dsn, "PostgreSQL server in which -store postgres creates (and then drops) a fresh database; the default is $AUTHFLOW_POSTGRES_DSN if set")
	fs.StringVar(&o.target, "target", "", "public URL of a running server to drive, instead of starting one")
	fs.IntVar(&o.serverPID, "server-pid", 0, "with -target: the server's process id, to report its CPU")
	fs.StringVar(&o.identifier, "identifier", "demo@example.com", "identifier to log in with (seeded in the started server)")
	fs.StringVar(&o.password, "password", "correct horse battery staple", "password to log in with (seeded in the started server)")
	fs.StringVar(&o.cookie, "session-cookie", login.DefaultSessionCookieName, "session cookie that a browser login must set")
	fs.IntVar(&o.compare, "compare", 0, "run the in-memory and the PostgreSQL example servers alternately, this many times each, and print PostgreSQL's rate as a share of the in-memory one (the median of the rounds); -store is then ignored")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	case o.compare < 0:
		return o, errors.New("-compare must not be negative")
	case o.compare > 0 && o.target != "":
		return o, errors.New("-compare starts its own servers: it cannot be used with -target")
	case o.store != "memory" && o.store != "postgres":
		return o, errors.New("-store must be memory or postgres")
	case o.mode != string(ModeAPI) && o.mode != string(ModeBrowser) && o.mode != string(ModeWhoami):
		return o, errors.New("-mode must be api, browser or whoami")
	case o.clients < 1:
		return o, errors.New("-clients must be at least 1")
	case o.duration <= 0 || o.warmup < 0:
		return o, errors.New("-duration must be positive and -warmup not negative")
	case o.serverPID != 0 && o.target == "":
		return o, errors.New("-server-pid needs -target")
	}
	return o, nil
}

// run is loadbench: flags from args, the server, the benchmark, the
// summary on stdout, progress and diagnostics on stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	if err != nil {
		return usageError{err}
	}
	if o.compare > 0 {
		return compare(ctx, o, stdout, stderr)
	}
	bin := ""
	if o.target == "" {
		dir, err := os.MkdirTemp("", "loadbench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if bin, err = build(ctx, o.store, dir, stderr); err != nil {
			return err
		}
	}
	r, err := runOnce(ctx, o, bin, stdout, stderr)
	if err != nil {
		return err
	}
	return r.check()
}

// build builds the example server of store into dir.
func build(ctx context.Context, store, dir string, stderr io.Writer) (string, error) {
	fmt.Fprintf(stderr, "building the %s example server...\n", store)
	return buildServer(ctx, store, dir)
}

// runOnce starts the server bin (unless o.target names one), runs the
// benchmark against it and prints its summary.
func runOnce(ctx context.Context, o options, bin string, stdout, stderr io.Writer) (_ *Result, err error) {
	cfg := Config{
		BaseURL:       o.target,
		Mode:          Mode(o.mode),
		Clients:       o.clients,
		Warmup:        o.warmup,
		Duration:      o.duration,
		Identifier:    o.identifier,
		Password:      o.password,
		SessionCookie: o.cookie,
	}
	about := "target " + o.target
	serverPID := o.serverPID
	if o.target == "" {
		dir, err := os.MkdirTemp("", "loadbench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		addr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		serverArgs := []string{"-addr", addr, "-hasher", "bcrypt", "-bcrypt-cost", strconv.Itoa(o.bcryptCost),
			"-identifier", o.identifier, "-password", o.password, "-session-cookie", o.cookie}
		if !o.throttle {
			serverArgs = append(serverArgs, "-throttle-failures", "0")
		}
		if o.store == "postgres" {
			name := fmt.Sprintf("loadbench_%d_%d", time.Now().UnixNano(), os.Getpid())
			dbDSN, err := createDatabase(ctx, o.dsn, name)
			if err != nil {
				return nil, err
			}
			defer func() {
				// The server is stopped by now (defers run in reverse).
				drop, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				err = errors.Join(err, dropDatabase(drop, o.dsn, name))
			}()
			serverArgs = append(serverArgs, "-postgres", dbDSN)
		}
		srv, err := startServer(ctx, bin, serverArgs, filepath.Join(dir, "server.log"))
		if err != nil {
			return nil, err
		}
		defer srv.stop()
		cfg.BaseURL, serverPID = srv.URL, srv.cmd.Process.Pid
		throttling := "throttling off"
		if o.throttle {
			throttling = "throttling on"
		}
		about = fmt.Sprintf("example server at %s, bcrypt cost %d, %s", srv.URL, o.bcryptCost, throttling)
	}

	if serverPID != 0 {
		cfg.CPU = append(cfg.CPU, CPUSource{Name: "server", Read: func() (time.Duration, error) { return processCPU(serverPID) }})
	}
	var pgProcs int
	if o.store == "postgres" {
		cfg.CPU = append(cfg.CPU, CPUSource{Name: "postgres", Read: func() (d time.Duration, err error) {
			d, pgProcs, err = postgresCPU()
			return d, err
		}})
	}
	self := os.Getpid()
	cfg.CPU = append(cfg.CPU,
		CPUSource{Name: "loadbench", Read: func() (time.Duration, error) { return processCPU(self) }},
		CPUSource{Name: "machine", Read: machineCPU})

	p := newProgressWriter(stderr, unit(cfg.Mode))
	cfg.Progress = p.show
	r, err := Run(ctx, cfg)
	p.done()
	if err != nil {
		return nil, err
	}
	report(stdout, o, about, r, pgProcs)
	return r, nil
}

// check fails a run in which no operation succeeded or too many failed.
func (r *Result) check() error {
	if r.Ops == 0 {
		return errors.New("no operation succeeded")
	}
	if rate := r.ErrorRate(); rate > maxErrorRate {
		return fmt.Errorf("%.1f%% of the operations failed (more than %.0f%%)", 100*rate, 100*maxErrorRate)
	}
	return nil
}

// compare runs the two example servers alternately, o.compare rounds of
// one run each, so that both meet the same conditions of a shared
// machine, and prints every round's rates and the median share.
func compare(ctx context.Context, o options, stdout, stderr io.Writer) error {
	dir, err := os.MkdirTemp("", "loadbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	stores := []string{"memory", "postgres"}
	bins := map[string]string{}
	for _, st := range stores {
		if bins[st], err = build(ctx, st, dir, stderr); err != nil {
			return err
		}
	}
	var rounds []round
	for i := range o.compare {
		var rd round
		for _, st := range stores {
			fmt.Fprintf(stderr, "round %d of %d: %s\n", i+1, o.compare, st)
			run := o
			run.store = st
			r, err := runOnce(ctx, run, bins[st], stdout, stderr)
			if err != nil {
				return err
			}
			if err := r.check(); err != nil {
				return fmt.Errorf("%s: %w", st, err)
			}
			fmt.Fprintln(stdout)
			rd = append(rd, r)
		}
		rounds = append(rounds, rd)
	}
	reportComparison(stdout, o, rounds)
	return nil
}

// round is one run of each store, in the order of compare's stores.
type round []*Result

// share is PostgreSQL's rate as a share of the in-memory one.
func (rd round) share() float64 { return rd[1].PerSecond() / rd[0].PerSecond() }

// reportComparison prints the rounds of compare and the median share.
func reportComparison(w io.Writer, o options, rounds []round) {
	u := unit(Mode(o.mode))
	fmt.Fprintf(w, "comparison: mode %s, %d clients, %v each after %v warm-up, %d rounds\n", o.mode, o.clients, o.duration, o.warmup, len(rounds))
	fmt.Fprintf(w, "%-6s %16s %16s %7s\n", "round", "memory "+u+"/s", "postgres "+u+"/s", "share")
	shares := make([]float64, 0, len(rounds))
	for i, rd := range rounds {
		fmt.Fprintf(w, "%-6d %16.1f %16.1f %6.1f%%\n", i+1, rd[0].PerSecond(), rd[1].PerSecond(), 100*rd.share())
		shares = append(shares, rd.share())
	}
	fmt.Fprintf(w, "median share: %.1f%%\n", 100*median(shares))
}

// median is the middle of xs (the mean of the two middle values for an
// even count); xs is sorted in place.
func median(xs []float64) float64 {
	slices.Sort(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

// unit is what an operation of mode is called in the output.
func unit(m Mode) string {
	if m == ModeWhoami {
		return "whoamis"
	}
	return "logins"
}

// report prints the summary of a run.
func report(w io.Writer, o options, about string, r *Result, pgProcs int) {
	u := unit(Mode(o.mode))
	fmt.Fprintf(w, "mode:      %s, store %s, %d clients, %v after %v warm-up\n", o.mode, o.store, o.clients, r.Elapsed.Round(time.Millisecond), o.warmup)
	fmt.Fprintf(w, "server:    %s\n", about)
	fmt.Fprintf(w, "machine:   %s\n", machine())
	fmt.Fprintf(w, "%-10s %d, %.1f per second\n", u+":", r.Ops, r.PerSecond())
	fmt.Fprintf(w, "latency:   p50 %v, p99 %v\n", r.P50.Round(10*time.Microsecond), r.P99.Round(10*time.Microsecond))
	fmt.Fprintf(w, "errors:    %d (%.2f%%)\n", r.Errors, 100*r.ErrorRate())
	for _, k := range r.ErrorKinds {
		fmt.Fprintf(w, "  %d× %s\n    e.g. %s\n", k.Count, k.Kind, k.Example)
	}
	per := strings.TrimSuffix(u, "s")
	for _, c := range r.CPU {
		name := c.Name
		switch c.Name {
		case "postgres":
			name = fmt.Sprintf("postgres (%d processes)", pgProcs)
		case "machine":
			name = "machine (every process, this benchmark's too)"
		}
		switch {
		case c.Err != nil:
			fmt.Fprintf(w, "cpu:       %s: %v\n", c.Name, c.Err)
		case r.Ops == 0:
			fmt.Fprintf(w, "cpu:       %s: %v in all\n", name, c.Time)
		default:
			ms := float64(c.Time) / float64(time.Millisecond) / float64(r.Ops)
			fmt.Fprintf(w, "cpu:       %s: %.3f ms per %s (%.2f cores)\n", name, ms, per, c.Time.Seconds()/r.Elapsed.Seconds())
		}
	}
}

// progressWriter writes the progress lines: rewritten in place on a
// terminal, one per second otherwise.
type progressWriter struct {
	w        io.Writer
	unit     string
	terminal bool
	wrote    bool
}

func newProgressWriter(w io.Writer, unit string) *progressWriter {
	p := &progressWriter{w: w, unit: unit}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.terminal = true
		}
	}
	return p
}

func (p *progressWriter) show(pr Progress) {
	phase := "warm-up  "
	if pr.Measuring {
		phase = "measuring"
	}
	line := fmt.Sprintf("%s %5v/%v  %7d %s  %7.1f/s  %d errors", phase, pr.Elapsed.Round(100*time.Millisecond), pr.Phase, pr.Ops, p.unit, pr.Rate, pr.Errors)
	if p.terminal {
		fmt.Fprintf(p.w, "\r%-72s", line)
	} else {
		fmt.Fprintln(p.w, line)
	}
	p.wrote = true
}

// done ends the progress line on a terminal.
func (p *progressWriter) done() {
	if p.terminal && p.wrote {
		fmt.Fprintln(p.w)
	}
}
