// Copy buttons: <button class="copy-btn" data-copy-target="#id"> copies the target's text (or an
// input's value) and says "Copied" in place, which screen readers hear (aria-live on the label).
(function () {
  "use strict";
  function fallbackCopy(text) {
    var area = document.createElement("textarea");
    area.value = text; area.setAttribute("readonly", ""); area.style.position = "fixed"; area.style.opacity = "0";
    document.body.appendChild(area); area.select();
    try { document.execCommand("copy"); } finally { document.body.removeChild(area); }
  }
  document.addEventListener("click", function (e) {
    var button = e.target.closest(".copy-btn");
    if (!button) return;
    var target = document.querySelector(button.getAttribute("data-copy-target"));
    if (!target) return;
    var text = ("value" in target && target.tagName !== "BUTTON" ? target.value : target.textContent).trim();
    var label = button.querySelector(".copy-label");
    var done = function () {
      if (!label) return;
      var before = label.getAttribute("data-text") || label.textContent;
      label.setAttribute("data-text", before);
      label.textContent = button.getAttribute("data-copied") || "Copied";
      button.classList.add("copied");
      setTimeout(function () { label.textContent = before; button.classList.remove("copied"); }, 2000);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { fallbackCopy(text); done(); });
    } else { fallbackCopy(text); done(); }
  });
})();
