package login

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/authflow/authflow/session"
)

func TestAppendMethodKeepsEveryDistinctMethod(t *testing.T) {
	oidc := session.AuthenticationMethod{Method: "oidc", AAL: "aal1", Provider: "google"}
	pw := session.AuthenticationMethod{Method: "password", AAL: "aal1"}
	ms := []session.AuthenticationMethod{oidc}
	for range 3 * MaxAuthenticationMethods {
		ms = appendMethod(ms, pw)
	}
	assert.Len(t, ms, MaxAuthenticationMethods)
	assert.Equal(t, oidc, ms[0], "the only oidc entry stays although it is the oldest")

	// All distinct: the oldest goes.
	ms = ms[:0]
	for i := range MaxAuthenticationMethods + 1 {
		ms = appendMethod(ms, session.AuthenticationMethod{Method: "m", AAL: "aal1", Provider: string(rune('a' + i))})
	}
	assert.Len(t, ms, MaxAuthenticationMethods)
	assert.Equal(t, "b", ms[0].Provider)
	assert.Equal(t, string(rune('a'+MaxAuthenticationMethods)), ms[len(ms)-1].Provider)
}
