package e2e

// The test-only dependencies, pinned here until the suites import them.
import (
	_ "github.com/chromedp/chromedp"
	_ "github.com/go-chi/chi/v5"
	_ "github.com/ory/client-go"
	_ "github.com/stretchr/testify/require"

	_ "github.com/authflow/authflow/login"
)
