// The demo pages' own script. The pages render the WebAuthn nodes of a
// flow (and the settings page its enrolment forms) with the function each
// node names in its onclickTrigger or onloadTrigger, as
// data-trigger-click and data-trigger-load attributes; this script
// calls those functions of /.well-known/ory/webauthn.js: on a click, and
// once the script announced itself. It is what a UI written for Kratos
// does with the nodes' onclick and onload strings, without evaluating
// strings, so the pages' Content-Security-Policy needs no inline script
// and no eval.
(function () {
  "use strict";

  // The functions a node may name: webauthn.js's globals.
  var allowed = [
    "oryWebAuthnLogin",
    "oryWebAuthnRegistration",
    "oryPasskeyLogin",
    "oryPasskeyLoginAutocompleteInit",
    "oryPasskeyRegistration",
    "oryPasskeySettingsRegistration",
  ];

  // run calls the webauthn.js function name, without arguments: each
  // reads its options from the page (the trigger's value, the hidden
  // passkey_challenge or passkey_create_data input).
  function run(name) {
    if (allowed.indexOf(name) < 0) {
      console.error("authflow demo: unknown trigger " + name);
      return;
    }
    if (typeof window[name] !== "function") {
      console.error("authflow demo: webauthn.js is not loaded (or this browser has no WebAuthn); cannot run " + name);
      return;
    }
    window[name]();
  }

  function armClicks() {
    var buttons = document.querySelectorAll("[data-trigger-click]");
    for (var i = 0; i < buttons.length; i++) {
      buttons[i].addEventListener("click", function (event) {
        event.preventDefault();
        run(event.currentTarget.getAttribute("data-trigger-click"));
      });
    }
  }

  function runOnload() {
    var nodes = document.querySelectorAll("[data-trigger-load]");
    for (var i = 0; i < nodes.length; i++) {
      run(nodes[i].getAttribute("data-trigger-load"));
    }
  }

  armClicks();
  // webauthn.js loads asynchronously: it may have run already.
  if (window.__oryWebAuthnInitialized) {
    runOnload();
  } else {
    window.addEventListener("oryWebAuthnInitialized", runOnload, { once: true });
  }
})();
