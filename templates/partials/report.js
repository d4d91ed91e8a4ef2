// Collapsing and the online/offline switch of the module tree; no data, no network.
(function () {
  "use strict";
  var tree = document.getElementById("tree");
  if (!tree) { return; }
  function all(open) {
    var rows = tree.querySelectorAll("details");
    for (var i = 0; i < rows.length; i++) { rows[i].open = open; }
  }
  function phase(name) {
    tree.classList.toggle("show-offline", name === "offline");
    var buttons = document.querySelectorAll("[data-phase]");
    for (var i = 0; i < buttons.length; i++) {
      buttons[i].setAttribute("aria-pressed", String(buttons[i].getAttribute("data-phase") === name));
    }
  }
  document.addEventListener("click", function (ev) {
    var t = ev.target;
    if (!(t instanceof HTMLElement)) { return; }
    if (t.id === "expand-all") { all(true); }
    else if (t.id === "collapse-all") { all(false); }
    else if (t.hasAttribute("data-phase")) { phase(t.getAttribute("data-phase")); }
  });
})();
