package courier_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/courier"
)

func TestCaptureWait(t *testing.T) {
	c := courier.NewCapture()
	require.NoError(t, c.Deliver(t.Context(), courier.Message{To: "ada@example.com", Text: "first"}))
	require.NoError(t, c.Deliver(t.Context(), courier.Message{To: "bob@example.com", Text: "for bob"}))

	m, err := c.Wait(t.Context(), "ada@example.com")
	require.NoError(t, err)
	assert.Equal(t, "first", m.Text, "a message delivered before Wait")

	got := make(chan courier.Message)
	go func() {
		m, err := c.Wait(t.Context(), "ADA@example.com")
		assert.NoError(t, err)
		got <- m
	}()
	select {
	case <-got:
		t.Fatal("Wait returned a message it had returned before")
	case <-time.After(20 * time.Millisecond):
	}
	require.NoError(t, c.Deliver(t.Context(), courier.Message{To: "ada@example.com", Text: "second"}))
	assert.Equal(t, "second", receive(t, got).Text, "the next one, as it arrives")

	m, err = c.Wait(t.Context(), "bob@example.com")
	require.NoError(t, err)
	assert.Equal(t, "for bob", m.Text, "each address has its own position")
}

func TestCaptureWaitEndsWithContext(t *testing.T) {
	c := courier.NewCapture()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer cancel()
	_, err := c.Wait(ctx, "ada@example.com")
	assert.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestCaptureMessages(t *testing.T) {
	c := courier.NewCapture()
	assert.Empty(t, c.Messages())
	a := courier.Message{To: "ada@example.com", Subject: "a", Text: "a"}
	b := courier.Message{To: "bob@example.com", Subject: "b", Text: "b"}
	require.NoError(t, c.Deliver(t.Context(), a))
	require.NoError(t, c.Deliver(t.Context(), b))
	msgs := c.Messages()
	assert.Equal(t, []courier.Message{a, b}, msgs)
	msgs[0].Text = "changed"
	assert.Equal(t, "a", c.Messages()[0].Text, "a copy")
}

func TestCaptureFail(t *testing.T) {
	c := courier.NewCapture()
	down := errors.New("down")
	c.Fail(down)
	assert.ErrorIs(t, c.Deliver(t.Context(), courier.Message{To: "ada@example.com", Text: "t"}), down)
	assert.Empty(t, c.Messages(), "a failed delivery is not recorded")
	c.Fail(nil)
	require.NoError(t, c.Deliver(t.Context(), courier.Message{To: "ada@example.com", Text: "t"}))
	assert.Len(t, c.Messages(), 1)

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	assert.ErrorIs(t, c.Deliver(ctx, courier.Message{To: "ada@example.com", Text: "t"}), context.Canceled)
}

func TestCaptureBehindQueue(t *testing.T) {
	c := courier.NewCapture()
	q := courier.NewQueue(c, courier.QueueConfig{})
	closeQueue(t, q)
	require.NoError(t, q.Enqueue(loginCode(t, "ada@example.com", "654321")))
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	m, err := c.Wait(ctx, "ada@example.com")
	require.NoError(t, err)
	assert.Equal(t, "Use code 654321 to log in", m.Subject)
}
