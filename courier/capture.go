package courier

import (
	"context"
	"strings"
	"sync"
)

// Capture is a [Courier] for tests: it records every delivered message, in
// memory and in clear, and lets a test wait for the next one to an address.
// Plug it in where the host's server takes its Courier (directly, or behind
// a [Queue]) and read the login code from [Capture.Wait]. The zero value is
// not ready; use [NewCapture]. It is safe for concurrent use.
type Capture struct {
	mu      sync.Mutex
	msgs    []Message
	taken   map[string]int // per address (lower-cased): messages returned by Wait
	err     error
	arrived chan struct{} // closed and replaced at every delivery
}

// NewCapture returns an empty Capture that delivers successfully.
func NewCapture() *Capture {
	return &Capture{taken: make(map[string]int), arrived: make(chan struct{})}
}

// Deliver records m, unless [Capture.Fail] set an error, which it then
// returns, or ctx has ended.
func (c *Capture) Deliver(ctx context.Context, m Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	c.msgs = append(c.msgs, m)
	close(c.arrived)
	c.arrived = make(chan struct{})
	return nil
}

// Fail makes every following Deliver return err, until Fail(nil).
func (c *Capture) Fail(err error) {
	c.mu.Lock()
	c.err = err
	c.mu.Unlock()
}

// Messages returns the delivered messages, oldest first, in a new slice.
func (c *Capture) Messages() []Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Message(nil), c.msgs...)
}

// Wait returns the next message to the address to (compared without regard
// to case) that Wait has not returned yet, waiting for its delivery if
// needed. It returns ctx's error when ctx ends first.
func (c *Capture) Wait(ctx context.Context, to string) (Message, error) {
	key := strings.ToLower(to)
	for {
		c.mu.Lock()
		seen := 0
		for _, m := range c.msgs {
			if strings.ToLower(m.To) != key {
				continue
			}
			if seen == c.taken[key] {
				c.taken[key]++
				c.mu.Unlock()
				return m, nil
			}
			seen++
		}
		arrived := c.arrived
		c.mu.Unlock()
		select {
		case <-arrived:
		case <-ctx.Done():
			return Message{}, ctx.Err()
		}
	}
}
