// ibkr_assets viewer: the little the pages need (no framework, no network requests).
(function () {
  "use strict";
  function ready(fn) {
    if (document.readyState !== "loading") fn(); else document.addEventListener("DOMContentLoaded", fn);
  }
  ready(function () {
    // Step details: a button opens its <dialog>; the close button, Escape or a click outside closes it.
    document.querySelectorAll("[data-dialog]").forEach(function (btn) {
      btn.addEventListener("click", function () {
        var dlg = document.getElementById(btn.getAttribute("data-dialog"));
        if (dlg && typeof dlg.showModal === "function") dlg.showModal();
      });
    });
    document.querySelectorAll("dialog").forEach(function (dlg) {
      dlg.addEventListener("click", function (ev) {
        if (ev.target === dlg || (ev.target.hasAttribute && ev.target.hasAttribute("data-close"))) dlg.close();
      });
    });
    // Selectors submit their form when changed.
    document.querySelectorAll("select[data-autosubmit]").forEach(function (sel) {
      sel.addEventListener("change", function () {
        var form = sel.form;
        if (sel.name === "strategy_id") {
          form.querySelectorAll("select[name=execution_id], select[name=partition_key]").forEach(function (other) { other.disabled = true; });
        }
        if (sel.name === "execution_id") {
          form.querySelectorAll("select[name=partition_key]").forEach(function (other) { other.disabled = true; });
        }
        form.submit();
      });
    });
    // A #row-N link opens on that step's card.
    if (location.hash.indexOf("#row-") === 0) {
      var card = document.getElementById(location.hash.slice(1));
      if (card) card.classList.add("target");
    }
  });
})();
