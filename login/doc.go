// Package login serves the self-service login flow of Ory Kratos as an
// http.Handler: browser and API (native) flows, password login and further
// methods, CSRF protection, sessions by token or cookie, safe return_to
// redirects, and one place where every outcome becomes the contract's
// response (200, 303, 400, 410, 422 or an error envelope).
//
// A Handler is built from a [Config] by [New] and mounted in the host's mux:
//
//	h, err := login.New(login.Config{
//		PublicURL:        "https://example.com/auth",
//		LoginUIURL:       "https://example.com/login",
//		ErrorUIURL:       "https://example.com/error",
//		DefaultReturnURL: "https://example.com/",
//		IdentityStore:    identities,
//	})
//	if err != nil {
//		return err
//	}
//	mux.Handle("/auth/", http.StripPrefix("/auth", h))
//	mux.Handle("/account", h.RequireSession(account))
//
// Flows, sessions and identities live in a [FlowStore], [SessionStore] and
// [IdentityStore]; nil means in memory ([flow.MemoryStore],
// [session.MemoryStore], [session.MemoryIdentityStore]). Login methods
// implement [Method]; the password method is built in and hashes with a
// [password.Hasher]. Identities that log in with a password carry a
// credential made by [NewPasswordCredential].
//
// The package login/logintest holds the conformance suites for store
// implementations.
package login
