package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgstoreModule is the module loadbench is in; it builds the servers from
// its source.
const pgstoreModule = "github.com/authflow/authflow/pgstore"

// buildServer builds the example server of store (memory: the core
// module's examples/server; postgres: pgstore's) into dir and returns the
// binary's path. It needs the go command and the repository's source: the
// working directory must be in the pgstore module.
func buildServer(ctx context.Context, store, dir string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Path}} {{.Dir}}").Output()
	path, pgDir, _ := strings.Cut(strings.TrimSpace(string(out)), " ")
	if err != nil || path != pgstoreModule {
		return "", fmt.Errorf("building the example server needs the repository: run loadbench in the pgstore module (cd pgstore && go run ./cmd/loadbench), or drive a running server with -target (go list -m: %q, %v)", out, err)
	}
	moduleDir, pkg := pgDir, "./examples/server"
	if store == "memory" {
		// The in-memory server is the core module's; pgstore's go.mod
		// replaces that module with the repository's root.
		out, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", "github.com/authflow/authflow").Output()
		if err != nil {
			return "", fmt.Errorf("find the core module: %w", err)
		}
		moduleDir = strings.TrimSpace(string(out))
	}
	bin := filepath.Join(dir, "server-"+store)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, pkg)
	cmd.Dir = moduleDir
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s in %s: %v\n%s", pkg, moduleDir, err, out)
	}
	return bin, nil
}

// server is a running example server.
type server struct {
	cmd     *exec.Cmd
	URL     string        // its public URL
	exited  chan struct{} // closed when it exited
	err     error         // why it exited; read after exited is closed
	logPath string
}

// startupTimeout bounds how long a server may take to print "listening
// on" (the PostgreSQL server migrates its schema first).
const startupTimeout = time.Minute

// startServer starts bin with args, its log (stderr) going to logPath, and
// returns once it printed "listening on <url>".
func startServer(ctx context.Context, bin string, args []string, logPath string) (*server, error) {
	log, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer log.Close() // the child has its own descriptor
	cmd := exec.Command(bin, args...)
	cmd.Stderr = log
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{cmd: cmd, exited: make(chan struct{}), logPath: logPath}
	listening := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "listening on "); ok {
				listening <- u
				break
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		s.err = cmd.Wait()
		close(s.exited)
	}()
	timeout := time.NewTimer(startupTimeout)
	defer timeout.Stop()
	select {
	case s.URL = <-listening:
		return s, nil
	case <-s.exited:
		return nil, fmt.Errorf("the server exited at start (%v):\n%s", s.err, tail(logPath))
	case <-timeout.C:
		err = fmt.Errorf("the server did not print \"listening on\" within %v:\n%s", startupTimeout, tail(logPath))
	case <-ctx.Done():
		err = ctx.Err()
	}
	s.stop()
	return nil, err
}

// stop asks the server to stop (SIGINT, on Windows a kill), and kills it
// if it has not exited after ten seconds.
func (s *server) stop() {
	if err := s.cmd.Process.Signal(os.Interrupt); err != nil {
		_ = s.cmd.Process.Kill()
	}
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// tail is the end of the file at path, for error messages.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	const n = 2000
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// freeAddr is a loopback address with a port that was free a moment ago.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// createDatabase creates a database named name on the server of dsn and
// returns the connection string of the new database.
func createDatabase(ctx context.Context, dsn, name string) (string, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "", fmt.Errorf("connect to PostgreSQL (-dsn): %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	return withDatabase(dsn, name)
}

// dropDatabase drops the database named name, closing what is still
// connected to it (PostgreSQL 13 or later).
func dropDatabase(ctx context.Context, dsn, name string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

// withDatabase is dsn, a URL or keyword/value connection string, with
// the database name replaced.
func withDatabase(dsn, name string) (string, error) {
	if !strings.Contains(dsn, "://") {
		return dsn + " dbname=" + name, nil // the last setting of a keyword wins
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return "", errors.New("-dsn is not a valid URL")
	}
	u.Path = "/" + name
	u.RawPath = ""
	return u.String(), nil
}
