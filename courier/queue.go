package courier

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// Errors of the Queue.
var (
	// ErrQueueFull is returned by Queue.Enqueue when QueueConfig.Size
	// messages are pending.
	ErrQueueFull = errors.New("courier: queue full")
	// ErrClosed is returned by Queue.Enqueue after Close, and reported for
	// the messages Close drops.
	ErrClosed = errors.New("courier: queue closed")
	// ErrExpired is reported for a message that waited longer than
	// QueueConfig.MaxAge before its first attempt.
	ErrExpired = errors.New("courier: message expired before delivery")
)

// QueueConfig configures a [Queue]. The zero value is ready to use.
type QueueConfig struct {
	// Size bounds the pending messages: queued, being delivered or waiting
	// for a retry. Enqueue returns ErrQueueFull beyond it. 1000 when zero.
	Size int
	// Workers is the number of deliveries at once. 2 when zero.
	Workers int
	// Retries is the number of attempts after the first one failed; 5 when
	// zero, none when negative.
	Retries int
	// Backoff is the delay before the first retry; it doubles for each
	// further retry, up to MaxBackoff. 1s and 1m when zero.
	Backoff    time.Duration
	MaxBackoff time.Duration
	// MaxAge is how long a message may wait for delivery, counted from
	// Enqueue: an older message is dropped instead of being tried again, as
	// its login code has expired. 15m when zero.
	MaxAge time.Duration
	// Logger receives a record for every failed attempt (Warn when it will
	// be retried, Error when the message is dropped) with the recipient,
	// the attempt and the error; never the subject or the body.
	// slog.Default() when nil.
	Logger *slog.Logger
	// OnFailure, when set, is called for every failed attempt, for example
	// to emit an event: to is the recipient, attempt counts from 1 (0 for
	// a message dropped before its first attempt), final tells that the
	// message is dropped. It never receives the message. It is called from
	// the queue's goroutines with a background context and must not block
	// for long.
	OnFailure func(ctx context.Context, to string, attempt int, err error, final bool)
}

// Queue delivers messages in the background through a [Courier], so that
// the caller never waits on mail: [Queue.Enqueue] returns at once and a
// fixed number of workers deliver, retrying failures with exponential
// backoff. A Queue keeps a message only until it is delivered or dropped;
// then it clears its record. Pending messages live in memory only: a crash
// loses them, and the user asks for a new code. Its methods are safe for
// concurrent use. [Queue.Close] stops it; until then its workers run.
type Queue struct {
	courier    Courier
	size       int
	retries    int
	backoff    time.Duration
	maxBackoff time.Duration
	maxAge     time.Duration
	log        *slog.Logger
	onFailure  func(ctx context.Context, to string, attempt int, err error, final bool)

	// queued holds the messages ready for an attempt. Its capacity is
	// size and at most size messages are pending, each in queued at most
	// once, so sending to it never blocks.
	queued chan *item
	ctx    context.Context // of attempts; cancelled when Close gives up
	cancel context.CancelFunc
	wg     sync.WaitGroup // the workers

	mu        sync.Mutex
	pending   int                // messages accepted and not yet finished
	waiting   map[*item]struct{} // messages whose retry timer runs
	closed    bool               // Close was called: Enqueue refuses
	aborted   bool               // Close's ctx ended: drop everything
	drained   chan struct{}      // closed once closed && pending == 0
	isDrained bool               // drained is closed
	abort     chan struct{}      // closed when aborted is set
}

// item is one pending message and its delivery state.
type item struct {
	msg      Message
	enqueued time.Time
	attempts int
	timer    *time.Timer
}

// NewQueue returns a Queue delivering through c and starts its workers. It
// panics if c is nil.
func NewQueue(c Courier, cfg QueueConfig) *Queue {
	if c == nil {
		panic("courier: NewQueue with a nil Courier")
	}
	q := &Queue{
		courier:    c,
		size:       positive(cfg.Size, 1000),
		retries:    cfg.Retries,
		backoff:    positive(cfg.Backoff, time.Second),
		maxBackoff: positive(cfg.MaxBackoff, time.Minute),
		maxAge:     positive(cfg.MaxAge, 15*time.Minute),
		log:        cfg.Logger,
		onFailure:  cfg.OnFailure,
		waiting:    make(map[*item]struct{}),
		drained:    make(chan struct{}),
		abort:      make(chan struct{}),
	}
	switch {
	case q.retries == 0:
		q.retries = 5
	case q.retries < 0:
		q.retries = 0
	}
	if q.log == nil {
		q.log = slog.Default()
	}
	q.queued = make(chan *item, q.size)
	q.ctx, q.cancel = context.WithCancel(context.Background())
	workers := positive(cfg.Workers, 2)
	q.wg.Add(workers)
	for range workers {
		go q.work()
	}
	return q
}

func positive[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// Enqueue queues m for delivery and returns without waiting for it. It
// returns ErrQueueFull when QueueConfig.Size messages are pending, ErrClosed
// after Close, and an error for a message without recipient. Delivery
// failures are reported to QueueConfig.Logger and OnFailure, never here.
func (q *Queue) Enqueue(m Message) error {
	if m.To == "" {
		return errors.New("courier: message has no recipient")
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return ErrClosed
	}
	if q.pending >= q.size {
		return ErrQueueFull
	}
	q.pending++
	q.queued <- &item{msg: m, enqueued: time.Now()}
	return nil
}

// Close stops accepting messages and waits until the pending ones are
// delivered or dropped after their retries, then stops the workers. As
// retries may go on for up to QueueConfig.MaxAge, give ctx a deadline (a
// server's shutdown timeout): when ctx ends first, Close cancels the
// deliveries in progress, drops every pending message (reported as final
// with ErrClosed), stops the workers and returns ctx's error. Close may be
// called more than once and concurrently; each call waits in the same way.
func (q *Queue) Close(ctx context.Context) error {
	q.mu.Lock()
	q.closed = true
	q.checkDrainedLocked()
	q.mu.Unlock()

	select {
	case <-q.drained:
		q.wg.Wait()
		q.cancel()
		return nil
	case <-ctx.Done():
	}
	q.giveUp()
	q.wg.Wait()
drain:
	for {
		select {
		case it := <-q.queued:
			q.drop(it, ErrClosed)
		default:
			break drain
		}
	}
	// What remains is held by retry timers that fired as Close gave up;
	// they drop their messages at once.
	<-q.drained
	return ctx.Err()
}

// giveUp makes every pending message be dropped: queued ones by the caller,
// waiting ones here unless their timer already fired, in-flight ones by
// their worker once the cancelled delivery returns.
func (q *Queue) giveUp() {
	q.mu.Lock()
	if q.aborted {
		q.mu.Unlock()
		return
	}
	q.aborted = true
	var stopped []*item
	for it := range q.waiting {
		if it.timer.Stop() {
			delete(q.waiting, it)
			stopped = append(stopped, it)
		}
	}
	close(q.abort)
	q.mu.Unlock()
	q.cancel()
	for _, it := range stopped {
		q.drop(it, ErrClosed)
	}
}

// work is one worker: it delivers queued messages until the queue is
// drained or abandoned.
func (q *Queue) work() {
	defer q.wg.Done()
	for {
		select {
		case it := <-q.queued:
			q.attempt(it)
		case <-q.drained:
			return
		case <-q.abort:
			return
		}
	}
}

// attempt delivers it once and then finishes it or schedules its retry.
func (q *Queue) attempt(it *item) {
	q.mu.Lock()
	aborted := q.aborted
	q.mu.Unlock()
	switch {
	case aborted:
		q.drop(it, ErrClosed)
		return
	case time.Since(it.enqueued) > q.maxAge:
		q.drop(it, ErrExpired)
		return
	}

	it.attempts++
	err := q.courier.Deliver(q.ctx, it.msg)
	if err == nil {
		q.finish(it)
		return
	}

	delay := q.delay(it.attempts)
	to, n := it.msg.To, it.attempts
	q.mu.Lock()
	final := q.aborted || n > q.retries || time.Since(it.enqueued)+delay > q.maxAge
	if !final {
		q.waiting[it] = struct{}{}
		it.timer = time.AfterFunc(delay, func() { q.retry(it) })
	}
	q.mu.Unlock()
	// it may be in another worker's hands from here on: use the copies.
	q.report(to, n, err, final)
	if final {
		q.finish(it)
	}
}

// delay is the wait before the retry that follows the given attempt.
func (q *Queue) delay(attempt int) time.Duration {
	d := q.backoff
	for i := 1; i < attempt && d < q.maxBackoff; i++ {
		d *= 2
	}
	return min(d, q.maxBackoff)
}

// retry puts it back in the queue when its backoff has passed.
func (q *Queue) retry(it *item) {
	q.mu.Lock()
	delete(q.waiting, it)
	if q.aborted {
		q.mu.Unlock()
		q.drop(it, ErrClosed)
		return
	}
	q.queued <- it // never blocks, see queued
	q.mu.Unlock()
}

// drop finishes it without delivering it and reports that as final.
func (q *Queue) drop(it *item, err error) {
	q.report(it.msg.To, it.attempts, err, true)
	q.finish(it)
}

// finish forgets it: the message, with its code, is cleared from the record
// and the record leaves the queue.
func (q *Queue) finish(it *item) {
	*it = item{}
	q.mu.Lock()
	q.pending--
	q.checkDrainedLocked()
	q.mu.Unlock()
}

// checkDrainedLocked closes drained once the queue is closed and empty.
func (q *Queue) checkDrainedLocked() {
	if q.closed && q.pending == 0 && !q.isDrained {
		q.isDrained = true
		close(q.drained)
	}
}

// report logs a failed attempt and calls OnFailure. It never sees the
// message, only its recipient.
func (q *Queue) report(to string, attempt int, err error, final bool) {
	level, msg := slog.LevelWarn, "courier: delivery failed, will retry"
	if final {
		level, msg = slog.LevelError, "courier: delivery failed, message dropped"
	}
	ctx := context.Background()
	q.log.LogAttrs(ctx, level, msg,
		slog.String("to", to), slog.Int("attempt", attempt), slog.Any("error", err))
	if q.onFailure != nil {
		q.onFailure(ctx, to, attempt, err, final)
	}
}
