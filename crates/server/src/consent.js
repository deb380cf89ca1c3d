/* Custodian cookie banner. Served by Custodian itself; loads nothing else.
   Shows the policy's cookie categories, records the visitor's choice, exposes
   it as window.Custodian.consent (and a "custodian:consent" event), honours
   Global Privacy Control, and asks again when the policy changed materially
   or when the choice is older than the lifetime the policy declares. The
   choice is kept under the name the cookie policy declares (a cookie and a
   local-storage item). Rejecting a category deletes the first-party cookies
   of that category that the policy names. Any element with the attribute
   data-custodian-show opens the banner (the cookie policy page has one). */
(function () {
  "use strict";
  var C = /*CONFIG*/null/*END*/;
  var KEY = C.key;
  var LIFETIME_MS = C.lifetimeDays * 86400000;
  var gpc = navigator.globalPrivacyControl === true;
  var state = load();
  var box = null;

  function load() {
    var s = null;
    try { s = JSON.parse(localStorage.getItem(KEY)); } catch (e) { return null; }
    // Kept no longer than the policy says: then ask again.
    if (s && !(typeof s.at === "number" && Date.now() - s.at < LIFETIME_MS)) {
      try { localStorage.removeItem(KEY); } catch (e) { /* nothing kept */ }
      return null;
    }
    return s;
  }
  function persist() {
    var left = Math.max(0, Math.floor((state.at + LIFETIME_MS - Date.now()) / 1000));
    try { localStorage.setItem(KEY, JSON.stringify(state)); } catch (e) { /* storage off: ask each visit */ }
    document.cookie = KEY + "=" + encodeURIComponent(state.version) + "; Max-Age=" + left + "; Path=/; SameSite=Lax";
  }
  function expire(name) {
    var host = location.hostname;
    var domains = [""];
    var parts = host.split(".");
    for (var i = 0; i < parts.length - 1; i++) domains.push("; Domain=" + parts.slice(i).join("."));
    domains.forEach(function (d) {
      document.cookie = name + "=; Max-Age=0; Path=/" + d;
    });
  }
  function removeRejected(choices) {
    C.categories.forEach(function (c) {
      if (choices[c.id] !== true) (c.firstParty || []).forEach(expire);
    });
  }
  function visitorId() {
    if (state && state.visitor) return state.visitor;
    var b = new Uint8Array(16);
    crypto.getRandomValues(b);
    return Array.prototype.map.call(b, function (x) { return ("0" + x.toString(16)).slice(-2); }).join("");
  }
  function emit() {
    window.Custodian.consent = state ? state.choices : null;
    document.dispatchEvent(new CustomEvent("custodian:consent", { detail: window.Custodian.consent }));
  }
  function save(choices, decided) {
    if (decided === undefined) decided = true;
    return fetch(C.endpoint, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ visitor: visitorId(), choices: choices, gpc: gpc, wording_sha256: C.wording })
    }).then(function (r) {
      if (!r.ok) throw new Error("consent not recorded: " + r.status);
      return r.json();
    }).then(function (res) {
      state = { visitor: res.visitor, choices: res.choices, version: C.version, gpc: res.gpc, decided: decided, at: Date.now() };
      removeRejected(res.choices);
      persist();
      if (decided) hide();
      emit();
      return res;
    });
  }
  function all(value) {
    var out = {};
    C.categories.forEach(function (c) { out[c.id] = value && !(gpc && c.id === "marketing"); });
    return out;
  }
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text) e.textContent = text;
    return e;
  }
  function hide() {
    if (box && box.parentNode) box.parentNode.removeChild(box);
    box = null;
  }
  function show() {
    hide();
    box = el("div", { id: "custodian-banner", role: "dialog", "aria-modal": "false", "aria-labelledby": "custodian-title",
      style: "position:fixed;left:1rem;right:1rem;bottom:1rem;max-width:40rem;margin:auto;background:#fff;color:#111;" +
        "border:1px solid #888;border-radius:6px;padding:1rem;font:15px/1.4 system-ui,sans-serif;z-index:2147483647;box-shadow:0 2px 12px #0004" });
    box.appendChild(el("h2", { id: "custodian-title", style: "margin:0 0 .5rem;font-size:1.1rem" }, C.title));
    box.appendChild(el("p", { style: "margin:0 0 .5rem" }, C.text));
    if (gpc) box.appendChild(el("p", { id: "custodian-gpc", style: "margin:0 0 .5rem" }, C.gpcText));
    var list = el("div", {});
    var necessary = el("label", { style: "display:block" });
    var n = el("input", { type: "checkbox", checked: "", disabled: "" });
    necessary.appendChild(n);
    necessary.appendChild(document.createTextNode(" " + C.necessary));
    list.appendChild(necessary);
    C.categories.forEach(function (c) {
      var label = el("label", { style: "display:block" });
      var input = el("input", { type: "checkbox", name: c.id, "data-category": c.id });
      if (state && state.choices && state.choices[c.id]) input.checked = true;
      if (gpc && c.id === "marketing") { input.disabled = true; input.checked = false; }
      label.appendChild(input);
      label.appendChild(document.createTextNode(" " + c.label + ": " + c.description));
      list.appendChild(label);
    });
    box.appendChild(list);
    var buttons = el("div", { style: "margin-top:.75rem;display:flex;gap:.5rem;flex-wrap:wrap" });
    var accept = el("button", { type: "button", id: "custodian-accept" }, C.accept);
    var reject = el("button", { type: "button", id: "custodian-reject" }, C.reject);
    var chosen = el("button", { type: "button", id: "custodian-save" }, C.save);
    accept.onclick = function () { save(all(true)); };
    reject.onclick = function () { save(all(false)); };
    chosen.onclick = function () {
      var out = {};
      list.querySelectorAll("input[data-category]").forEach(function (i) { out[i.name] = i.checked; });
      save(out);
    };
    buttons.appendChild(accept);
    buttons.appendChild(reject);
    buttons.appendChild(chosen);
    box.appendChild(buttons);
    var more = el("a", { href: C.cookiePolicy, style: "display:inline-block;margin-top:.5rem" }, C.more);
    box.appendChild(more);
    (document.body || document.documentElement).appendChild(box);
    // No button is focused for the visitor: neither choice is the default.
  }

  window.Custodian = { consent: state ? state.choices : null, gpc: gpc, version: C.version, show: show, save: save };

  function controls() {
    document.querySelectorAll("[data-custodian-show]").forEach(function (b) {
      b.addEventListener("click", function (e) { e.preventDefault(); show(); });
    });
  }

  function start() {
    controls();
    if (gpc && !(state && state.gpc)) {
      // Art. 21(5): the browser objects for the visitor; record it before anything else.
      save(state && state.choices ? state.choices : {}, !!(state && state.decided)).catch(function () {});
    }
    if (!state || !state.decided) {
      if (C.categories.length) show();
      return;
    }
    emit();
    if (state.version !== C.version) {
      fetch(C.renewal + "?since=" + encodeURIComponent(state.version)).then(function (r) { return r.json(); }).then(function (x) {
        if (x.renew) { show(); } else { state.version = C.version; persist(); }
      }).catch(function () { show(); });
    }
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start); else start();
})();
