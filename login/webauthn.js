// authflow's /.well-known/ory/webauthn.js: the WebAuthn and passkey
// helpers that UIs written for Ory Kratos call from the onclick and onload
// attributes of the passkey and webauthn nodes. Written for authflow after
// the behaviour CONTRACT-PASSKEY.md §5 describes; it defines each function
// under its ory… name (Ory Elements v1) and its __ory… alias (Ory Elements
// v0), then sets window.__oryWebAuthnInitialized and dispatches the
// "oryWebAuthnInitialized" event on window.
//
// In a browser without WebAuthn (no window.PublicKeyCredential) this script
// intentionally does nothing beyond logging that.
(function () {
  "use strict";

  if (!window.PublicKeyCredential) {
    console.log("authflow webauthn.js: this browser does not support WebAuthn");
    return;
  }
  if (window.__oryWebAuthnInitialized) {
    return;
  }

  // decode turns base64url (with or without padding) into bytes.
  function decode(s) {
    var b64 = String(s).replace(/-/g, "+").replace(/_/g, "/").replace(/=+$/, "");
    while (b64.length % 4 !== 0) {
      b64 += "=";
    }
    var bin = atob(b64);
    var out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) {
      out[i] = bin.charCodeAt(i);
    }
    return out;
  }

  // encode turns bytes (an ArrayBuffer or a view) into base64url without
  // padding; null and undefined encode to "".
  function encode(buf) {
    if (buf === null || buf === undefined) {
      return "";
    }
    var bytes = ArrayBuffer.isView(buf) ? new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength) : new Uint8Array(buf);
    var bin = "";
    for (var i = 0; i < bytes.length; i++) {
      bin += String.fromCharCode(bytes[i]);
    }
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  // decodeCredentialIDs decodes the id of every descriptor in list, which
  // may be absent.
  function decodeCredentialIDs(list) {
    if (!Array.isArray(list)) {
      return;
    }
    for (var i = 0; i < list.length; i++) {
      list[i].id = decode(list[i].id);
    }
  }

  // assertionJSON is the login result a server verifies.
  function assertionJSON(credential) {
    return JSON.stringify({
      id: credential.id,
      rawId: encode(credential.rawId),
      type: credential.type,
      response: {
        authenticatorData: encode(credential.response.authenticatorData),
        clientDataJSON: encode(credential.response.clientDataJSON),
        signature: encode(credential.response.signature),
        userHandle: encode(credential.response.userHandle),
      },
    });
  }

  // attestationJSON is the registration result a server verifies.
  function attestationJSON(credential) {
    return JSON.stringify({
      id: credential.id,
      rawId: encode(credential.rawId),
      type: credential.type,
      response: {
        attestationObject: encode(credential.response.attestationObject),
        clientDataJSON: encode(credential.response.clientDataJSON),
      },
    });
  }

  // byName is the first element of the document named name, or null.
  function byName(name) {
    return document.querySelector('*[name="' + name + '"]');
  }

  // submitFormOf submits the form that holds el. form.submit() sends the
  // form's inputs and no submitter, exactly as Kratos' script does.
  function submitFormOf(el) {
    var form = el.closest("form");
    if (!form) {
      console.error("authflow webauthn.js: no form holds", el);
      return;
    }
    form.submit();
  }

  // abortConditionalUI stops a pending conditional-mediation request, so
  // that a modal one can start.
  function abortConditionalUI() {
    if (window.abortPasskeyConditionalUI) {
      window.abortPasskeyConditionalUI.abort("a modal passkey request replaces the conditional one");
      window.abortPasskeyConditionalUI = undefined;
    }
  }

  function noWebAuthnAlert() {
    alert("This browser does not support WebAuthn.");
  }

  // oryWebAuthnLogin runs a modal WebAuthn login with options (default: the
  // trigger element's value) and submits the assertion in the trigger's
  // form. Kratos maps every allowCredentials entry without checking that
  // the list exists, so options without allowCredentials throw there (a
  // bug); here an absent list stays absent and the browser discovers the
  // credential.
  function oryWebAuthnLogin(options, resultSelector, triggerSelector) {
    if (!window.PublicKeyCredential) {
      noWebAuthnAlert();
      return;
    }
    resultSelector = resultSelector || '*[name="webauthn_login"]';
    triggerSelector = triggerSelector || '*[name="webauthn_login_trigger"]';
    var trigger = document.querySelector(triggerSelector);
    var result = document.querySelector(resultSelector);
    if (!trigger || !result) {
      console.error("authflow webauthn.js: missing " + (!trigger ? triggerSelector : resultSelector));
      return;
    }
    try {
      if (!options) {
        options = JSON.parse(trigger.value);
      }
      options.publicKey.challenge = decode(options.publicKey.challenge);
      decodeCredentialIDs(options.publicKey.allowCredentials);
    } catch (err) {
      alert(err);
      return;
    }
    navigator.credentials
      .get(options)
      .then(function (credential) {
        result.value = assertionJSON(credential);
        submitFormOf(trigger);
      })
      .catch(function (err) {
        alert(err);
      });
  }

  // oryWebAuthnRegistration runs a WebAuthn registration with options
  // (default: the trigger element's value) and submits the attestation in
  // the trigger's form.
  function oryWebAuthnRegistration(options, resultSelector, triggerSelector) {
    if (!window.PublicKeyCredential) {
      noWebAuthnAlert();
      return;
    }
    resultSelector = resultSelector || '*[name="webauthn_register"]';
    triggerSelector = triggerSelector || '*[name="webauthn_register_trigger"]';
    var trigger = document.querySelector(triggerSelector);
    var result = document.querySelector(resultSelector);
    if (!trigger || !result) {
      console.error("authflow webauthn.js: missing " + (!trigger ? triggerSelector : resultSelector));
      return;
    }
    try {
      if (!options) {
        options = JSON.parse(trigger.value);
      }
      options.publicKey.user.id = decode(options.publicKey.user.id);
      options.publicKey.challenge = decode(options.publicKey.challenge);
      decodeCredentialIDs(options.publicKey.excludeCredentials);
    } catch (err) {
      alert(err);
      return;
    }
    navigator.credentials
      .create(options)
      .then(function (credential) {
        result.value = attestationJSON(credential);
        submitFormOf(trigger);
      })
      .catch(function (err) {
        alert(err);
      });
  }

  // loginOptions parses the passkey_challenge element's options and decodes
  // their binary fields.
  function loginOptions(challengeEl) {
    var options = JSON.parse(challengeEl.value);
    var publicKey = options.publicKey;
    if (publicKey.user && publicKey.user.id) {
      publicKey.user.id = decode(publicKey.user.id);
    }
    publicKey.challenge = decode(publicKey.challenge);
    decodeCredentialIDs(publicKey.allowCredentials);
    return publicKey;
  }

  // oryPasskeyLoginAutocompleteInit offers passkeys in the identifier
  // field's autofill (conditional mediation); a pick submits the assertion
  // in passkey_login's form. A later call, or a modal login, aborts it
  // through window.abortPasskeyConditionalUI. A null credential (the
  // request ended without one) is ignored rather than read.
  async function oryPasskeyLoginAutocompleteInit() {
    var challengeEl = byName("passkey_challenge");
    var resultEl = byName("passkey_login");
    var identifierEl = byName("identifier");
    if (!challengeEl || !resultEl || !identifierEl) {
      console.log("authflow webauthn.js: passkey autocomplete needs passkey_challenge, passkey_login and identifier");
      return;
    }
    if (
      !PublicKeyCredential.isConditionalMediationAvailable ||
      window.Cypress ||
      !(await PublicKeyCredential.isConditionalMediationAvailable())
    ) {
      console.log("authflow webauthn.js: conditional mediation is not available");
      return;
    }
    var publicKey;
    try {
      publicKey = loginOptions(challengeEl);
    } catch (err) {
      console.error("authflow webauthn.js: passkey_challenge:", err);
      return;
    }
    if (window.abortPasskeyConditionalUI) {
      window.abortPasskeyConditionalUI.abort("a new conditional passkey request replaces this one");
    }
    var controller = new AbortController();
    window.abortPasskeyConditionalUI = controller;
    try {
      var credential = await navigator.credentials.get({
        publicKey: publicKey,
        mediation: "conditional",
        signal: controller.signal,
      });
      if (!credential) {
        return;
      }
      resultEl.value = assertionJSON(credential);
      submitFormOf(resultEl);
    } catch (err) {
      console.log("authflow webauthn.js: conditional passkey login ended:", err);
    }
  }

  // oryPasskeyLogin runs a modal passkey login with passkey_challenge's
  // options and submits the assertion in passkey_login's form; after a
  // failure it offers autofill again.
  function oryPasskeyLogin() {
    var challengeEl = byName("passkey_challenge");
    var resultEl = byName("passkey_login");
    if (!challengeEl || !resultEl) {
      console.error("authflow webauthn.js: passkey login needs passkey_challenge and passkey_login");
      return;
    }
    var publicKey;
    try {
      publicKey = loginOptions(challengeEl);
    } catch (err) {
      console.error("authflow webauthn.js: passkey_challenge:", err);
      return;
    }
    abortConditionalUI();
    navigator.credentials
      .get({ publicKey: publicKey })
      .then(function (credential) {
        resultEl.value = assertionJSON(credential);
        submitFormOf(resultEl);
      })
      .catch(function (err) {
        if (err instanceof DOMException && err.name === "SecurityError") {
          console.error(
            "authflow webauthn.js: SecurityError: the page's origin does not match the relying party id; check the passkey configuration",
            err
          );
        } else {
          console.error("authflow webauthn.js: passkey login failed:", err);
        }
        oryPasskeyLoginAutocompleteInit();
      });
  }

  // createOptions decodes a CredentialCreation's binary fields in place.
  function createOptions(creation) {
    var publicKey = creation.publicKey;
    publicKey.user.id = decode(publicKey.user.id);
    publicKey.challenge = decode(publicKey.challenge);
    decodeCredentialIDs(publicKey.excludeCredentials);
    return creation;
  }

  // register runs navigator.credentials.create and writes the attestation
  // into resultEl, then submits its form.
  function register(creation, resultEl) {
    navigator.credentials
      .create(creation)
      .then(function (credential) {
        resultEl.value = attestationJSON(credential);
        submitFormOf(resultEl);
      })
      .catch(function (err) {
        console.error("authflow webauthn.js: passkey registration failed:", err);
      });
  }

  // oryPasskeyRegistration registers a passkey with passkey_create_data's
  // credentialOptions, named after the first non-empty display-name field
  // of its form, and submits the attestation in passkey_register's form.
  function oryPasskeyRegistration() {
    var dataEl = byName("passkey_create_data");
    var resultEl = byName("passkey_register");
    if (!dataEl || !resultEl) {
      console.error("authflow webauthn.js: passkey registration needs passkey_create_data and passkey_register");
      return;
    }
    var creation;
    try {
      var data = JSON.parse(dataEl.value);
      creation = data.credentialOptions;
      var names = Array.isArray(data.displayNameFieldNames) && data.displayNameFieldNames.length > 0
        ? data.displayNameFieldNames
        : [data.displayNameFieldName];
      var form = dataEl.closest("form");
      var displayName = "";
      for (var i = 0; i < names.length && !displayName; i++) {
        var field = form && names[i] ? form.querySelector('*[name="' + names[i] + '"]') : null;
        if (field && field.value) {
          displayName = field.value;
        }
      }
      creation.publicKey.user.name = displayName;
      creation.publicKey.user.displayName = displayName;
      createOptions(creation);
    } catch (err) {
      console.error("authflow webauthn.js: passkey_create_data:", err);
      return;
    }
    register(creation, resultEl);
  }

  // oryPasskeySettingsRegistration registers a passkey with the bare
  // CredentialCreation in passkey_create_data and submits the attestation
  // in passkey_settings_register's form.
  function oryPasskeySettingsRegistration() {
    var dataEl = byName("passkey_create_data");
    var resultEl = byName("passkey_settings_register");
    if (!dataEl || !resultEl) {
      console.error("authflow webauthn.js: passkey settings need passkey_create_data and passkey_settings_register");
      return;
    }
    var creation;
    try {
      creation = createOptions(JSON.parse(dataEl.value));
    } catch (err) {
      console.error("authflow webauthn.js: passkey_create_data:", err);
      return;
    }
    register(creation, resultEl);
  }

  var globals = {
    oryWebAuthnLogin: oryWebAuthnLogin,
    oryWebAuthnRegistration: oryWebAuthnRegistration,
    oryPasskeyLoginAutocompleteInit: oryPasskeyLoginAutocompleteInit,
    oryPasskeyLogin: oryPasskeyLogin,
    oryPasskeyRegistration: oryPasskeyRegistration,
    oryPasskeySettingsRegistration: oryPasskeySettingsRegistration,
  };
  for (var name in globals) {
    window[name] = globals[name];
    window["__" + name] = globals[name];
  }
  window.__oryWebAuthnInitialized = true;
  window.dispatchEvent(new CustomEvent("oryWebAuthnInitialized"));
})();
