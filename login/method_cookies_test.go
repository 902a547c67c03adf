package login_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/authflow/authflow/flow"
	"github.com/authflow/authflow/login"
)

// cookieMethod sets a cookie with the handler's attributes when it sends
// the browser away, and moves POSTed callbacks to GET.
type cookieMethod struct{ subIDPMethod }

func (m *cookieMethod) ID() string { return "cookiem" }

func (m *cookieMethod) AAL() string { return flow.AAL1 }

func (m *cookieMethod) Authenticate(_ context.Context, s *login.Submission) (*login.Result, error) {
	return &login.Result{RedirectBrowserTo: s.CallbackURL("x"), Cookies: []*http.Cookie{s.Cookie("bind", "v", 60)}}, nil
}

func (m *cookieMethod) Callback(_ context.Context, c *login.Callback) (*flow.Record, *login.Result, error) {
	return nil, nil, login.ContinueInBrowser(c.CallbackURL(c.Path) + "?moved=1")
}

// TestMethodCookiesAndContinue: Result.Cookies are set with the attributes
// of every authflow cookie; Submission.CallbackURL is under the public URL;
// a callback may answer with ContinueInBrowser (303 for forms).
func TestMethodCookiesAndContinue(t *testing.T) {
	m := &cookieMethod{}
	e := newEnv(t, func(c *login.Config) { c.Methods = []login.Method{m} })
	s := subStart(t, e, subForm, "")
	r := s.submit(t, map[string]any{"method": "cookiem", "csrf_token": csrfToken(s.flow)}, nil)
	require.Equal(t, http.StatusSeeOther, r.status, "body: %s", r.body)
	assert.Equal(t, e.srv.URL+"/self-service/methods/cookiem/callback/x", r.header.Get("Location"))
	ck := r.cookie("bind")
	require.NotNil(t, ck)
	assert.Equal(t, "v", ck.Value)
	assert.True(t, ck.HttpOnly)
	assert.Equal(t, "/", ck.Path)
	assert.Equal(t, http.SameSiteLaxMode, ck.SameSite)
	assert.Equal(t, 60, ck.MaxAge)

	r = e.do(e.browser(), http.MethodPost, "/self-service/methods/cookiem/callback/x", nil, nil)
	require.Equal(t, http.StatusSeeOther, r.status, "body: %s", r.body)
	assert.Equal(t, e.srv.URL+"/self-service/methods/cookiem/callback/x?moved=1", r.header.Get("Location"))
}
