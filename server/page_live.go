package server

import (
	"crypto/sha256"
	"encoding/base64"
	"html/template"
)

// refreshScript keeps an open page current without reloading it: every 5 s, and only
// while the tab is visible, it fetches the rollouts' JSON; when a rollout changed it
// fetches the page once and swaps in only the parts marked data-live whose content
// differs, so scrolling, an open link and a selection in an unchanged part stay as they
// are (a part holding the reader's selection is left alone until the next change). It is
// the page's only script, allowed by its hash in the Content-Security-Policy.
const refreshScript = `(function () {
  var last = null, busy = false;
  function sig(j) {
    return JSON.stringify((j.rollouts || []).map(function (r) {
      return [r.name, r.phase, r.run, r.step, r.commit, r.message, r.updated];
    }));
  }
  function swap(html) {
    var doc = new DOMParser().parseFromString(html, "text/html");
    var sel = window.getSelection();
    doc.querySelectorAll("[data-live]").forEach(function (n) {
      var o = document.getElementById(n.id);
      if (!o || o.innerHTML === n.innerHTML) return;
      if (sel && sel.rangeCount && !sel.isCollapsed && o.contains(sel.anchorNode)) return;
      o.replaceWith(n);
    });
  }
  function tick() {
    if (busy || document.visibilityState !== "visible") return;
    busy = true;
    fetch("/api/v1/rollouts", {cache: "no-store"}).then(function (r) { return r.json(); }).then(function (j) {
      var s = sig(j), changed = last !== null && s !== last;
      last = s;
      if (!changed) return;
      return fetch(location.href, {cache: "no-store"}).then(function (r) { return r.text(); }).then(swap);
    }).catch(function () {}).then(function () { busy = false; });
  }
  tick();
  setInterval(tick, 5000);
  document.addEventListener("visibilitychange", tick);
})();`

// refreshJS is refreshScript as the template writes it, verbatim.
var refreshJS = template.JS(refreshScript)

// contentSecurityPolicy allows nothing from elsewhere, inline styles, and the one inline
// script by its SHA-256; the script may fetch from the page's own origin only.
var contentSecurityPolicy = func() string {
	sum := sha256.Sum256([]byte(refreshScript))
	return "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; " +
		"script-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'; connect-src 'self'; frame-ancestors 'none'"
}()
