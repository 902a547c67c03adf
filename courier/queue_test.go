package courier_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"
	"weak"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/courier"
)

// courierFunc is a Courier made of a function.
type courierFunc func(ctx context.Context, m courier.Message) error

func (f courierFunc) Deliver(ctx context.Context, m courier.Message) error { return f(ctx, m) }

// failure is one OnFailure call.
type failure struct {
	To      string
	Attempt int
	Err     error
	Final   bool
}

// failures records OnFailure calls.
type failures struct {
	mu    sync.Mutex
	calls []failure
	final chan failure
}

func newFailures() *failures { return &failures{final: make(chan failure, 100)} }

func (f *failures) hook(_ context.Context, to string, attempt int, err error, final bool) {
	c := failure{To: to, Attempt: attempt, Err: err, Final: final}
	f.mu.Lock()
	f.calls = append(f.calls, c)
	f.mu.Unlock()
	if final {
		f.final <- c
	}
}

func (f *failures) list() []failure {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]failure(nil), f.calls...)
}

// closeQueue closes q at the end of the test.
func closeQueue(t testing.TB, q *courier.Queue) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		q.Close(ctx)
	})
}

// receive waits for the next value of ch, failing the test after 5s.
func receive[T any](t testing.TB, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatal("timed out")
		panic("unreachable")
	}
}

func TestQueueEnqueueDoesNotWaitForTheServer(t *testing.T) {
	hold := make(chan struct{})
	srv := startServer(t, serverConfig{Hold: hold})
	q := courier.NewQueue(newSMTP(t, "smtp://127.0.0.1:"+srv.Port+"/?disable_starttls=true"), courier.QueueConfig{})
	closeQueue(t, q)

	require.NoError(t, q.Enqueue(loginCode(t, "ada@example.com", "314159")))
	// Enqueue has returned; the server now holds the DATA reply.
	receive(t, srv.DataStarted)
	assert.Empty(t, srv.Mails(), "not yet accepted")
	require.NoError(t, q.Enqueue(loginCode(t, "bob@example.com", "271828")), "nor does a second one wait")

	close(hold)
	require.NoError(t, q.Close(t.Context()))
	assert.Len(t, srv.Mails(), 2)
}

func TestQueueRetriesWithBackoff(t *testing.T) {
	var mu sync.Mutex
	var at []time.Time
	srv := startServer(t, serverConfig{Refuse: func(n int) error {
		mu.Lock()
		at = append(at, time.Now())
		mu.Unlock()
		if n <= 3 {
			return tempFailure
		}
		return nil
	}})
	f := newFailures()
	q := courier.NewQueue(newSMTP(t, "smtp://127.0.0.1:"+srv.Port+"/?disable_starttls=true"), courier.QueueConfig{
		Backoff: 20 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, OnFailure: f.hook,
	})
	closeQueue(t, q)

	require.NoError(t, q.Enqueue(loginCode(t, "ada@example.com", "161803")))
	require.NoError(t, q.Close(t.Context()))

	require.Len(t, srv.Mails(), 1, "delivered by the fourth attempt")
	m := parseMail(t, srv.Mails()[0].Data)
	assert.Equal(t, "161803", sixDigits.FindString(m.Parts[0].Body))

	calls := f.list()
	require.Len(t, calls, 3)
	for i, c := range calls {
		assert.Equal(t, "ada@example.com", c.To)
		assert.Equal(t, i+1, c.Attempt)
		assert.False(t, c.Final)
		assert.ErrorContains(t, c.Err, "451")
	}
	require.Len(t, at, 4)
	for i, want := range []time.Duration{20, 40, 50} { // doubling, capped at MaxBackoff
		assert.GreaterOrEqual(t, at[i+1].Sub(at[i]), want*time.Millisecond, "wait before retry %d", i+1)
	}
}

func TestQueueDropsAfterRetries(t *testing.T) {
	var logs bytes.Buffer
	var logMu sync.Mutex
	logger := slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logs}, nil))
	c := courier.NewCapture()
	c.Fail(errors.New("connection refused"))
	f := newFailures()
	q := courier.NewQueue(c, courier.QueueConfig{
		Retries: 2, Backoff: time.Millisecond, Logger: logger, OnFailure: f.hook,
	})
	closeQueue(t, q)

	require.NoError(t, q.Enqueue(loginCode(t, "ada@example.com", "577215")))
	got := receive(t, f.final)
	assert.Equal(t, failure{To: "ada@example.com", Attempt: 3, Err: got.Err, Final: true}, got)
	assert.EqualError(t, got.Err, "connection refused")
	assert.Len(t, f.list(), 3, "two retries, then dropped")
	require.NoError(t, q.Close(t.Context()))

	logMu.Lock()
	out := logs.String()
	logMu.Unlock()
	assert.Contains(t, out, "to=ada@example.com")
	assert.Contains(t, out, "message dropped")
	assert.Contains(t, out, "will retry")
	assert.NotContains(t, out, "577215", "the code is never logged")
	assert.NotContains(t, out, "Use code", "nor the subject")
	assert.NotContains(t, out, "Login to your account", "nor the body")
}

func TestQueueNoRetries(t *testing.T) {
	c := courier.NewCapture()
	c.Fail(errors.New("down"))
	f := newFailures()
	q := courier.NewQueue(c, courier.QueueConfig{Retries: -1, OnFailure: f.hook, Logger: discard})
	closeQueue(t, q)
	require.NoError(t, q.Enqueue(loginCode(t, "ada@example.com", "123456")))
	assert.Equal(t, 1, receive(t, f.final).Attempt)
	assert.Len(t, f.list(), 1)
}

func TestQueueDropsMessagesOlderThanMaxAge(t *testing.T) {
	c := courier.NewCapture()
	c.Fail(errors.New("down"))
	f := newFailures()
	q := courier.NewQueue(c, courier.QueueConfig{
		Retries: 100, Backoff: 40 * time.Millisecond, MaxAge: 100 * time.Millisecond,
		OnFailure: f.hook, Logger: discard,
	})
	closeQueue(t, q)

	start := time.Now()
	require.NoError(t, q.Enqueue(loginCode(t, "ada@example.com", "123456")))
	got := receive(t, f.final)
	// Attempts at 0, 40 and 120 ms would pass MaxAge: the second failure is final.
	assert.Equal(t, 2, got.Attempt)
	assert.Less(t, time.Since(start), time.Second)
}

func TestQueueDropsExpiredMessagesUntried(t *testing.T) {
	release := make(chan struct{})
	var delivered []string
	var mu sync.Mutex
	c := courierFunc(func(ctx context.Context, m courier.Message) error {
		<-release
		mu.Lock()
		delivered = append(delivered, m.To)
		mu.Unlock()
		return nil
	})
	f := newFailures()
	q := courier.NewQueue(c, courier.QueueConfig{Workers: 1, MaxAge: 50 * time.Millisecond, OnFailure: f.hook, Logger: discard})
	closeQueue(t, q)

	require.NoError(t, q.Enqueue(courier.Message{To: "first@example.com", Text: "t"}))
	require.NoError(t, q.Enqueue(courier.Message{To: "second@example.com", Text: "t"}))
	time.Sleep(100 * time.Millisecond) // the second one waits past MaxAge behind the first
	close(release)

	got := receive(t, f.final)
	assert.Equal(t, failure{To: "second@example.com", Attempt: 0, Err: courier.ErrExpired, Final: true}, got)
	require.NoError(t, q.Close(t.Context()))
	assert.Equal(t, []string{"first@example.com"}, delivered)
}

func TestQueueFull(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 10)
	c := courierFunc(func(ctx context.Context, m courier.Message) error {
		started <- struct{}{}
		<-release
		return nil
	})
	q := courier.NewQueue(c, courier.QueueConfig{Size: 2, Workers: 1})
	closeQueue(t, q)

	require.NoError(t, q.Enqueue(courier.Message{To: "a@example.com", Text: "t"}))
	receive(t, started) // in delivery: still pending
	require.NoError(t, q.Enqueue(courier.Message{To: "b@example.com", Text: "t"}))
	assert.ErrorIs(t, q.Enqueue(courier.Message{To: "c@example.com", Text: "t"}), courier.ErrQueueFull)

	close(release)
	require.NoError(t, q.Close(t.Context()))
}

func TestQueueCloseDeliversPending(t *testing.T) {
	c := courier.NewCapture()
	q := courier.NewQueue(c, courier.QueueConfig{Workers: 3})
	for i := range 50 {
		require.NoError(t, q.Enqueue(courier.Message{To: fmt.Sprintf("u%d@example.com", i), Text: "t"}))
	}
	require.NoError(t, q.Close(t.Context()))
	assert.Len(t, c.Messages(), 50)

	assert.ErrorIs(t, q.Enqueue(courier.Message{To: "late@example.com", Text: "t"}), courier.ErrClosed)
	require.NoError(t, q.Close(t.Context()), "Close is idempotent")
}

func TestQueueCloseWaitsForRetries(t *testing.T) {
	c := courier.NewCapture()
	c.Fail(errors.New("down"))
	f := newFailures()
	q := courier.NewQueue(c, courier.QueueConfig{Backoff: 30 * time.Millisecond, OnFailure: f.hook, Logger: discard})
	require.NoError(t, q.Enqueue(courier.Message{To: "ada@example.com", Text: "t"}))
	go func() {
		<-failedOnce(f)
		c.Fail(nil) // the server recovers while Close waits
	}()
	require.NoError(t, q.Close(t.Context()))
	assert.Len(t, c.Messages(), 1, "delivered by a retry during Close")
}

// failedOnce returns a channel that receives once f recorded a failure.
func failedOnce(f *failures) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		for len(f.list()) == 0 {
			time.Sleep(time.Millisecond)
		}
		close(ch)
	}()
	return ch
}

func TestQueueCloseGivesUpWithContext(t *testing.T) {
	inFlight := make(chan struct{}, 1)
	c := courierFunc(func(ctx context.Context, m courier.Message) error {
		inFlight <- struct{}{}
		<-ctx.Done() // a server that never answers
		return ctx.Err()
	})
	f := newFailures()
	q := courier.NewQueue(c, courier.QueueConfig{Workers: 1, OnFailure: f.hook, Logger: discard})
	require.NoError(t, q.Enqueue(courier.Message{To: "a@example.com", Text: "t"}))
	require.NoError(t, q.Enqueue(courier.Message{To: "b@example.com", Text: "t"}))
	receive(t, inFlight)

	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	assert.ErrorIs(t, q.Close(ctx), context.DeadlineExceeded)
	assert.Less(t, time.Since(start), 2*time.Second, "returns promptly")

	dropped := map[string]bool{}
	for range 2 {
		got := receive(t, f.final)
		dropped[got.To] = true
	}
	assert.Equal(t, map[string]bool{"a@example.com": true, "b@example.com": true}, dropped)
}

func TestQueueCloseStopsWaitingRetries(t *testing.T) {
	c := courier.NewCapture()
	c.Fail(errors.New("down"))
	f := newFailures()
	q := courier.NewQueue(c, courier.QueueConfig{Backoff: time.Hour, OnFailure: f.hook, Logger: discard})
	require.NoError(t, q.Enqueue(courier.Message{To: "a@example.com", Text: "t"}))
	<-failedOnce(f)

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	assert.ErrorIs(t, q.Close(ctx), context.Canceled)
	got := receive(t, f.final)
	assert.ErrorIs(t, got.Err, courier.ErrClosed)
	assert.Equal(t, 1, got.Attempt)
}

func TestQueueFailingServerLosesNoLogin(t *testing.T) {
	var down sync.Mutex
	isDown := true
	srv := startServer(t, serverConfig{Refuse: func(int) error {
		down.Lock()
		defer down.Unlock()
		if isDown {
			return tempFailure
		}
		return nil
	}})
	f := newFailures()
	q := courier.NewQueue(newSMTP(t, "smtp://127.0.0.1:"+srv.Port+"/?disable_starttls=true"), courier.QueueConfig{
		Retries: 1, Backoff: time.Millisecond, OnFailure: f.hook, Logger: discard,
	})
	closeQueue(t, q)

	require.NoError(t, q.Enqueue(loginCode(t, "ada@example.com", "111111")))
	assert.True(t, receive(t, f.final).Final, "the first code is lost while the server is down")
	down.Lock()
	isDown = false
	down.Unlock()

	// The user asks again (resend): the new code arrives.
	require.NoError(t, q.Enqueue(loginCode(t, "ada@example.com", "222222")))
	require.NoError(t, q.Close(t.Context()))
	require.Len(t, srv.Mails(), 1)
	m := parseMail(t, srv.Mails()[0].Data)
	assert.Equal(t, "222222", sixDigits.FindString(m.Parts[0].Body))
}

func TestQueueConcurrentUse(t *testing.T) {
	c := courier.NewCapture()
	q := courier.NewQueue(c, courier.QueueConfig{Workers: 4, Size: 10000})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 100 {
				assert.NoError(t, q.Enqueue(courier.Message{To: fmt.Sprintf("u%d-%d@example.com", g, i), Text: "t"}))
			}
		})
	}
	wg.Wait()
	var closers sync.WaitGroup
	for range 3 {
		closers.Go(func() { assert.NoError(t, q.Close(t.Context())) })
	}
	closers.Wait()
	assert.Len(t, c.Messages(), 800)
}

func TestQueueLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	c := courier.NewCapture()
	c.Fail(errors.New("down"))
	for range 5 {
		q := courier.NewQueue(c, courier.QueueConfig{Workers: 8, Backoff: time.Hour, Logger: discard})
		for range 20 {
			require.NoError(t, q.Enqueue(courier.Message{To: "a@example.com", Text: "t"}))
		}
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
		q.Close(ctx)
		cancel()
	}
	c.Fail(nil)
	q := courier.NewQueue(c, courier.QueueConfig{Workers: 8})
	require.NoError(t, q.Enqueue(courier.Message{To: "a@example.com", Text: "t"}))
	require.NoError(t, q.Close(t.Context()))

	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	assert.LessOrEqual(t, runtime.NumGoroutine(), before)
}

var discard = slog.New(slog.DiscardHandler)

// lockedWriter serialises writes to a buffer the test reads.
type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestQueueKeepsNoReferenceToTheCode(t *testing.T) {
	for _, tc := range []struct {
		name     string
		failures int // attempts that fail before one succeeds
	}{
		{"delivered at once", 0},
		{"delivered by a retry", 2},
		{"dropped after the retries", 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			left := tc.failures
			c := courierFunc(func(ctx context.Context, m courier.Message) error {
				if left > 0 { // one worker: no race
					left--
					return errors.New("down")
				}
				return nil
			})
			q := courier.NewQueue(c, courier.QueueConfig{
				Workers: 1, Retries: 3, Backoff: time.Millisecond, Logger: discard,
			})
			closeQueue(t, q)

			// The body lives in its own allocation (large enough to
			// escape the tiny allocator), which a weak pointer watches:
			// once the queue is done with the message, nothing may keep it
			// alive.
			text := strings.Repeat("918273 ", 10)
			watch := weak.Make(unsafe.StringData(text))
			require.NoError(t, q.Enqueue(courier.Message{To: "ada@example.com", Subject: "s", Text: text}))

			deadline := time.Now().Add(2 * time.Second)
			for watch.Value() != nil && time.Now().Before(deadline) {
				runtime.GC()
				time.Sleep(time.Millisecond)
			}
			assert.Nil(t, watch.Value(), "the queue still references the code")
		})
	}
}
