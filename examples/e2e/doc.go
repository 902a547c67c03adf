// Package e2e holds authflow's end-to-end tests with real clients: the
// official Ory Go SDK (github.com/ory/client-go) against the handler, and
// headless Chromium (through chromedp) against the example server. It is a
// module of its own so that the core module lists neither the SDK nor the
// browser driver.
//
//	cd examples/e2e && go test ./...
package e2e
