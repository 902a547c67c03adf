// The page around every view: Ory Elements' fonts and styles, and Kratos'
// /.well-known/ory/webauthn.js in the <head>, which UIs written for Kratos
// load on every page (the WebAuthn and passkey buttons call into it).
"use strict"

// escapeHTML makes a value safe inside HTML text and quoted attributes.
function escapeHTML(value) {
  return String(value).replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c],
  )
}

// webauthnSetup returns what the reference UI's js_setup partial adds to a
// page that renders a flow: a <script> for each of the flow's script nodes
// (Kratos' webauthn.js, under its integrity), and a script that, once the
// page loaded, runs each passkey or webauthn node's onload string and makes
// a click on any element named like a node with an onclick string run that
// string. Ory Elements' markup renders the buttons without handlers, so the
// passkey and security-key buttons need this.
function webauthnSetup(flow) {
  const nodes = (flow && flow.ui && flow.ui.nodes) || []
  let html = ""
  const clicks = []
  const loads = []
  for (const node of nodes) {
    const a = node.attributes || {}
    if (a.node_type === "script") {
      html += `<script src="${escapeHTML(a.src)}" type="${escapeHTML(a.type)}" integrity="${escapeHTML(a.integrity)}"` +
        ` referrerpolicy="${escapeHTML(a.referrerpolicy)}" crossorigin="${escapeHTML(a.crossorigin)}" async` +
        ` data-testid="node/script/${escapeHTML(a.id)}"></script>\n`
      continue
    }
    if (node.group !== "passkey" && node.group !== "webauthn") continue
    if (typeof a.onclick === "string" && a.onclick !== "") clicks.push({ name: a.name, code: a.onclick })
    if (typeof a.onload === "string" && a.onload !== "") loads.push(a.onload)
  }
  if (clicks.length === 0 && loads.length === 0) return html
  // JSON inside <script>: no "<" may close the element early.
  const setup = JSON.stringify({ clicks, loads }).replace(/</g, "\\u003c")
  return html + `<script>
  window.addEventListener("load", function () {
    var setup = ${setup};
    setup.clicks.forEach(function (c) {
      document.getElementsByName(c.name).forEach(function (el) {
        el.addEventListener("click", function () { new Function(c.code)() });
      });
    });
    setup.loads.forEach(function (code) { new Function(code)() });
  });
</script>
`
}

// page returns a whole HTML document; body is trusted HTML (Ory's rendered
// components or markup whose values are escaped), title is text; scripts is
// trusted HTML added at the end of the body (webauthnSetup's).
function page({ title, kratosPublicURL, body, scripts = "" }) {
  return `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>${escapeHTML(title)}</title>
  <link rel="stylesheet" href="/ory-elements/assets/normalize.css">
  <link rel="stylesheet" href="/ory-elements/assets/inter-font.css">
  <link rel="stylesheet" href="/ory-elements/style.css">
  <link rel="stylesheet" href="/theme.css">
  <script src="${escapeHTML(kratosPublicURL)}/.well-known/ory/webauthn.js"></script>
  <style>
    body { margin: 0; min-height: 100vh; display: flex; justify-content: center; align-items: flex-start;
           padding: 48px 16px; box-sizing: border-box; background: var(--ory-theme-background-canvas, #f9f9fa);
           font-family: var(--ory-theme-font-family, system-ui, sans-serif); color: var(--ory-theme-foreground-def, #171717); }
    main { width: 100%; max-width: 760px; display: flex; flex-direction: column; align-items: center; }
    .welcome { box-sizing: border-box; width: 100%; max-width: 434px; background: #fff; border: 1px solid var(--ory-theme-border-def, #e0e0e0); border-radius: 8px; padding: 32px; }
    .welcome h1 { margin-top: 0; font-size: 1.5rem; }
    .welcome dl { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; font-size: 0.875rem; }
    .welcome dt { color: var(--ory-theme-foreground-muted, #616161); }
    .welcome dd { margin: 0; }
    .welcome .button { display: inline-block; padding: 10px 20px; border-radius: 4px; text-decoration: none;
                       background: var(--ory-theme-accent-def, #3d53f5); color: #fff; }
  </style>
</head>
<body>
  <main>
${body}
  </main>
  <script src="/ory-elements/assets/passwordInput.js"></script>
${scripts}</body>
</html>
`
}

module.exports = { page, escapeHTML, webauthnSetup }
