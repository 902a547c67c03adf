// A login UI written for Ory Kratos, built the way Ory's reference UI
// (kratos-selfservice-ui-node) is built: Express renders every page on the
// server, Ory's SDK (@ory/client) calls the Kratos public API with the
// browser's cookies, and Ory's components (@ory/elements-markup) render the
// flows from their ui.nodes and message ids. Nothing in it knows authflow:
// examples/e2e/kratosui_test.go runs it against authflow's example server to
// show that a Kratos UI works unchanged.
//
// Configuration comes from the environment:
//
//	KRATOS_PUBLIC_URL  the Kratos (here: authflow) public URL, default http://127.0.0.1:4433
//	PORT               the port to listen on (127.0.0.1 only), default 3000
//
// By hand (the UI and authflow share cookies because both run on 127.0.0.1):
//
//	go run ./examples/server -ui-url http://127.0.0.1:3000/login \
//	  -error-url http://127.0.0.1:3000/error -default-return-url http://127.0.0.1:3000/welcome \
//	  -allowed-return-url http://127.0.0.1:3000/
//	cd examples/kratos-ui && npm ci && npm start   # then open http://127.0.0.1:3000/login
"use strict"

const path = require("node:path")
const express = require("express")
const { Configuration, FrontendApi } = require("@ory/client")
const {
  UserAuthCard,
  UserErrorCard,
  RegisterOryElementsExpress,
  defaultLightTheme,
} = require("@ory/elements-markup")
const { page, escapeHTML, webauthnSetup } = require("./layout")

const kratosPublicURL = (process.env.KRATOS_PUBLIC_URL || "http://127.0.0.1:4433").replace(/\/+$/, "")
const port = Number(process.env.PORT || 3000)

// The SDK talks to Kratos from this server. Redirects are not followed: the
// API answers JSON, and a redirect would be the browser's business.
const frontend = new FrontendApi(
  new Configuration({ basePath: kratosPublicURL, baseOptions: { maxRedirects: 0, timeout: 10000 } }),
)

const app = express()
app.disable("x-powered-by")

// Ory Elements' theme (/theme.css: the theme's CSS variables), registered
// as its README says. Its static route points at @ory/elements, which is not
// installed here, so this package's own files are served below.
RegisterOryElementsExpress(app, defaultLightTheme, () => ({}))
app.use(
  "/ory-elements",
  express.static(path.join(path.dirname(require.resolve("@ory/elements-markup/package.json")), "dist")),
)

// initURL is where a browser starts a login flow: Kratos' browser init
// endpoint, keeping return_to, refresh and aal as the reference UI does.
function initURL(query = {}) {
  const params = new URLSearchParams()
  for (const name of ["return_to", "refresh", "aal"]) {
    if (typeof query[name] === "string" && query[name] !== "") params.set(name, query[name])
  }
  const qs = params.toString()
  return `${kratosPublicURL}/self-service/login/browser${qs ? "?" + qs : ""}`
}

// relayCookies copies the Set-Cookie headers of a Kratos answer (an SDK
// response or an SDK error's response) to the browser, so that cookies
// Kratos issues to this server's calls reach the browser.
function relayCookies(res, kratosResponse) {
  const cookies = kratosResponse && kratosResponse.headers && kratosResponse.headers["set-cookie"]
  if (cookies && cookies.length > 0) res.append("Set-Cookie", cookies)
}

// statusOf is the HTTP status of a failed SDK call, or 0 when Kratos was not
// reached at all.
function statusOf(err) {
  return (err && err.response && err.response.status) || 0
}

// GET /login mirrors the reference UI's login route: without ?flow the
// browser is sent to Kratos to create a flow (Kratos sends it back here with
// ?flow=<id>); with ?flow the flow is fetched with the browser's cookies
// (the CSRF cookie proves it is this browser's flow) and rendered by Ory's
// UserAuthCard, whose form posts straight to the flow's ui.action on Kratos;
// the flow's script nodes and passkey/webauthn onclick and onload strings
// are wired up as the reference UI's js_setup partial does (webauthnSetup).
// A flow that is gone (404), expired (410) or not this browser's (403) is
// replaced by a new one.
app.get("/login", async (req, res) => {
  const flowID = req.query.flow
  if (typeof flowID !== "string" || flowID === "") {
    return res.redirect(303, initURL(req.query))
  }
  let flow
  try {
    const answer = await frontend.getLoginFlow({ id: flowID, cookie: req.header("cookie") })
    relayCookies(res, answer)
    flow = answer.data
  } catch (err) {
    relayCookies(res, err.response)
    const status = statusOf(err)
    if (status === 403 || status === 404 || status === 410) {
      // An expired browser flow names the init URL that keeps its return_to.
      const details = status === 410 && err.response.data && err.response.data.error && err.response.data.error.details
      const redirectTo = details && typeof details.redirect_to === "string" ? details.redirect_to : ""
      return res.redirect(303, redirectTo.startsWith(kratosPublicURL + "/") ? redirectTo : initURL(req.query))
    }
    throw err
  }
  const title = flow.refresh
    ? "Confirm it's you"
    : flow.requested_aal === "aal2"
      ? "Two-Factor Authentication"
      : "Sign In"
  const card = UserAuthCard({ title, flow, flowType: "login", additionalProps: {} }, { locale: "en" })
  res.send(page({ title, kratosPublicURL, body: card, scripts: webauthnSetup(flow) }))
})

// needsSecondFactor reports whether a failed toSession is Kratos' 403
// session_aal2_required: a session that must complete its second factor
// (required_aal highest_available).
function needsSecondFactor(err) {
  const data = err && err.response && err.response.data
  return statusOf(err) === 403 && Boolean(data && data.error && data.error.id === "session_aal2_required")
}

// GET /welcome mirrors the reference UI's welcome and session pages: the
// session comes from toSession (Kratos' whoami) with the browser's cookies,
// the logout link from createBrowserLogoutFlow. Without a session (401) the
// browser is sent to start a login; a session that still needs its second
// factor (403 session_aal2_required) to start the step-up (aal=aal2), as
// the reference UI's requireAuth does.
app.get("/welcome", async (req, res) => {
  const cookie = req.header("cookie")
  let session
  try {
    const answer = await frontend.toSession({ cookie })
    relayCookies(res, answer)
    session = answer.data
  } catch (err) {
    relayCookies(res, err.response)
    if (statusOf(err) === 401) return res.redirect(303, initURL())
    if (needsSecondFactor(err)) return res.redirect(303, initURL({ aal: "aal2" }))
    throw err
  }
  const logout = await frontend.createBrowserLogoutFlow({ cookie })
  relayCookies(res, logout)
  const traits = (session.identity && session.identity.traits) || {}
  const email = typeof traits.email === "string" ? traits.email : ""
  const body = `<section class="welcome" data-testid="welcome">
  <h1>Welcome</h1>
  <p>You are signed in as <strong data-testid="session-email">${escapeHTML(email)}</strong>.</p>
  <dl>
    <dt>Authenticated at</dt><dd>${escapeHTML(session.authenticated_at || "")}</dd>
    <dt>Assurance level</dt><dd>${escapeHTML(session.authenticator_assurance_level || "")}</dd>
  </dl>
  <p><a class="button" data-testid="logout" href="${escapeHTML(logout.data.logout_url)}">Log out</a></p>
</section>`
  res.send(page({ title: "Welcome", kratosPublicURL, body }))
})

// GET /error mirrors the reference UI's error route: Kratos forwards the
// browser here with ?id=<error id>; getFlowError reads the error, and Ory's
// UserErrorCard shows its reason (and, folded, the whole error).
app.get("/error", async (req, res) => {
  const id = req.query.id
  if (typeof id !== "string" || id === "") return res.redirect(303, "/login")
  const { data: flowError } = await frontend.getFlowError({ id })
  const card = UserErrorCard({ title: "An error occurred", error: flowError, backUrl: "/login" }, { locale: "en" })
  res.status(200).send(page({ title: "Error", kratosPublicURL, body: card }))
})

app.get("/", (req, res) => res.redirect(303, "/welcome"))

// Anything else that failed: a short page, the details in this server's log.
app.use((err, req, res, next) => {
  const status = statusOf(err)
  console.error(`${req.method} ${req.path}: ${status ? "Kratos answered " + status : err.message}`)
  if (res.headersSent) return next(err)
  res
    .status(status ? 502 : 500)
    .send(page({ title: "Error", kratosPublicURL, body: "<p>Something went wrong; please try again.</p>" }))
})

app.listen(port, "127.0.0.1", (err) => {
  if (err) {
    console.error(`cannot listen on 127.0.0.1:${port}: ${err.message}`)
    process.exit(1)
  }
  console.log(`listening on http://127.0.0.1:${port} (Kratos public URL ${kratosPublicURL})`)
})
