package e2e

// The example server binary with -code-login and an SMTP server that holds
// every message's DATA until the test releases it: the send step is
// answered while the mail is held (the answer never waits on SMTP), and
// on SIGINT the server does not exit before the held mail is delivered
// (Run's shutdown calls Handler.Close, which drains the mail queue).
//
//	cd examples/e2e && go test -v -run ServerCode ./...

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestServerCodeMailInBackground(t *testing.T) {
	bin := browserBuildServer(t)
	mail := StartHoldingMailServer(t)
	addr := "127.0.0.1:" + strconv.Itoa(browserFreePort(t))
	args := []string{"-addr", addr, "-hasher", "bcrypt", "-bcrypt-cost", "4",
		"-code-login", "-smtp-url", mail.MailURL(), "-seed-code-only", browserCodeAddress}
	cmd := exec.Command(bin, args...)
	startProcess(t, fmt.Sprintf("example server %v", args), cmd)
	public := "http://" + addr

	// A native app's send step, as JSON.
	resp, body := serverCodeDo(t, http.MethodGet, public+"/self-service/login/api", "")
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	var created struct {
		ID string `json:"id"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &created))
	resp, body = serverCodeDo(t, http.MethodPost, public+"/self-service/login?flow="+created.ID,
		`{"method":"code","identifier":"`+browserCodeAddress+`"}`)
	require.Equal(t, http.StatusBadRequest, resp.StatusCode, "the send step's answer: the flow (CONTRACT-CODE §5)")
	var sent struct {
		State string `json:"state"`
		UI    struct {
			Messages []struct {
				ID int `json:"id"`
			} `json:"messages"`
		} `json:"ui"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &sent), body)
	assert.Equal(t, "sent_email", sent.State)
	require.Len(t, sent.UI.Messages, 1)
	assert.Equal(t, 1010014, sent.UI.Messages[0].ID)

	// The answer came; the mail is still held by the SMTP server.
	mail.MailHeld(t, browserMailWait)
	assert.Empty(t, mail.MailAll(), "the mail is still held")

	// SIGINT: the HTTP server stops, the queue waits for the held mail.
	require.NoError(t, cmd.Process.Signal(os.Interrupt))
	time.Sleep(300 * time.Millisecond)
	require.NoError(t, cmd.Process.Signal(syscall.Signal(0)), "the server still runs: it waits to deliver the queued mail")
	_, err := http.Get(public + "/self-service/login/api")
	assert.Error(t, err, "but it no longer serves requests")

	mail.MailRelease()
	MailLoginCode(t, mail.MailNext(t, browserMailWait), browserCodeAddress, 15)
	deadline := time.Now().Add(10 * time.Second)
	for cmd.Process.Signal(syscall.Signal(0)) == nil {
		require.True(t, time.Now().Before(deadline), "the server did not exit after delivering the mail")
		time.Sleep(20 * time.Millisecond)
	}
}

// serverCodeDo sends a JSON request (body "" for none) and returns the
// answer and its body.
func serverCodeDo(t *testing.T, method, u, body string) (*http.Response, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, r)
	require.NoError(t, err)
	req.Header.Set("Accept", "application/json")
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	require.False(t, errors.Is(err, context.DeadlineExceeded), "no answer within 10 s: %s %s", method, u)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}
