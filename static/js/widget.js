/* AskHandle chat widget.
 *   <script src="https://YOUR-ASKHANDLE/widget.js" data-bot="your-bot" async></script>
 * Optional: data-colour="#4f46e5", data-position="bottom-left" (override the dashboard settings).
 * Adds a chat bubble that opens the bot's chat page in an iframe. No cookies of its own, no
 * tracking; everything is loaded from the AskHandle server that served this file. */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || !script.dataset.bot || window.__askhandleWidget) return;
  window.__askhandleWidget = true;
  var origin = new URL(script.src, location.href).origin;
  var slug = encodeURIComponent(script.dataset.bot);
  var base = origin + "/c/" + slug + "/";

  function build(config) {
    if (!config.allowed) {
      if (window.console) console.warn("AskHandle: add " + location.origin + " to the bot's allowed sites to show the chat here.");
      return;
    }
    var colour = /^#[0-9a-fA-F]{6}$/.test(script.dataset.colour || "") ? script.dataset.colour : config.colour;
    var side = (script.dataset.position || config.position) === "bottom-left" ? "left" : "right";
    var open = false;
    var frame = null;

    var button = document.createElement("button");
    button.type = "button";
    button.setAttribute("aria-label", config.label || "Chat with " + config.name);
    button.setAttribute("aria-expanded", "false");
    button.setAttribute("data-askhandle", "bubble");
    button.innerHTML = '<svg width="28" height="28" viewBox="0 0 24 24" fill="none" aria-hidden="true"><path d="M4 5.5A2.5 2.5 0 0 1 6.5 3h11A2.5 2.5 0 0 1 20 5.5v8a2.5 2.5 0 0 1-2.5 2.5H10l-4.2 3.6c-.5.4-1.3.1-1.3-.6V16A2.5 2.5 0 0 1 4 13.5z" fill="#fff"/></svg>';
    var b = button.style;
    b.position = "fixed"; b.bottom = "20px"; b[side] = "20px"; b.zIndex = "2147483646";
    b.width = "58px"; b.height = "58px"; b.borderRadius = "50%"; b.border = "0"; b.cursor = "pointer";
    b.background = colour; b.boxShadow = "0 6px 24px rgba(0,0,0,.2)"; b.display = "grid"; b.placeItems = "center";

    function place() {
      var small = window.innerWidth < 520;
      var f = frame.style;
      f.position = "fixed"; f.zIndex = "2147483647"; f.border = "0"; f.background = "#fff";
      f.boxShadow = "0 12px 48px rgba(0,0,0,.25)";
      if (small) {
        f.top = "0"; f.left = "0"; f.width = "100%"; f.height = "100%"; f.borderRadius = "0";
        f[side === "left" ? "right" : "left"] = "0";
      } else {
        f.bottom = "90px"; f[side] = "20px"; f.width = "380px"; f.height = "min(620px, calc(100vh - 120px))";
        f.borderRadius = "14px";
      }
    }

    function toggle(show) {
      open = show;
      if (!frame) {
        frame = document.createElement("iframe");
        frame.src = config.url;
        frame.title = config.name;
        frame.setAttribute("data-askhandle", "frame");
        frame.setAttribute("allow", "clipboard-write");
        place();
        document.body.appendChild(frame);
        window.addEventListener("resize", place);
      }
      frame.style.display = open ? "block" : "none";
      button.setAttribute("aria-expanded", open ? "true" : "false");
      // On phones the chat covers the page; keep the bubble above it as the close button.
      button.style.zIndex = open ? "2147483647" : "2147483646";
    }

    button.addEventListener("click", function () { toggle(!open); });
    document.addEventListener("keydown", function (e) { if (e.key === "Escape" && open) toggle(false); });
    document.body.appendChild(button);
  }

  fetch(base + "widget.json", { credentials: "omit" })
    .then(function (r) { if (!r.ok) throw new Error("AskHandle bot not found: " + script.dataset.bot); return r.json(); })
    .then(function (config) {
      if (document.body) build(config);
      else document.addEventListener("DOMContentLoaded", function () { build(config); });
    })
    .catch(function (err) { if (window.console) console.warn(err.message || err); });
})();
