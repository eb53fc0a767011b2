// Public chat page: streams answers over server-sent events. The page works without this
// script (plain form posts); this only makes it live. Text from the network is inserted with
// textContent while streaming; the final answer's HTML comes sanitized from the server.
(function () {
  "use strict";
  const app = document.getElementById("chat");
  if (!app) return;
  const form = document.getElementById("chat-form");
  const log = document.getElementById("chat-log");
  const notice = document.getElementById("chat-notice");
  const input = form.querySelector("textarea");
  const button = form.querySelector("button[type=submit]");
  const maxChars = parseInt(app.dataset.maxChars, 10) || 1000;
  const storeKey = "askhandle:" + app.dataset.slug;
  // The page's own words in the bot's language (chat.i18n.chat_strings, via json_script).
  let strings = {};
  try { strings = JSON.parse(document.getElementById("chat-i18n").textContent); } catch (e) {}
  function t(key, fallback, values) {
    let text = strings[key] || fallback;
    Object.keys(values || {}).forEach((k) => { text = text.split("%(" + k + ")s").join(values[k]); });
    return text;
  }

  function csrf() {
    const field = document.querySelector("input[name=csrfmiddlewaretoken]");
    return field ? field.value : "";
  }

  function store(id) {
    if (!id) return;
    try { localStorage.setItem(storeKey, id); } catch (e) { /* storage blocked: cookie only */ }
    document.querySelectorAll("input[name=conversation]").forEach((el) => { el.value = id; });
    app.dataset.conversation = id;
  }
  function forget() {  // the server no longer accepts the kept conversation (gone, or stale)
    try { localStorage.removeItem(storeKey); } catch (e) {}
    document.querySelectorAll("input[name=conversation]").forEach((el) => { el.value = ""; });
    app.dataset.conversation = "";
  }
  // Cookies may be blocked inside a third-party iframe; localStorage keeps the conversation
  // (a token the server signed, not the bare id).
  if (!app.dataset.conversation) {
    try { const saved = localStorage.getItem(storeKey); if (saved) store(saved); } catch (e) {}
  } else {
    store(app.dataset.conversation);
  }

  function showNotice(text, ok, link) {
    notice.textContent = text;
    if (link) {
      const a = document.createElement("a");
      a.href = link.href; a.target = "_blank"; a.rel = "noopener"; a.textContent = link.text;
      notice.append(" ", a);
    }
    notice.classList.toggle("hidden", !text);
    notice.classList.toggle("ok", !!ok);
  }

  // Inside a customer's site, a browser that blocks third-party cookies sends no CSRF cookie:
  // the chat still works as a first-party page, so offer that instead of a dead end.
  const embedded = document.body.classList.contains("embedded");
  function showError(response, text) {
    if (response.status === 403 && embedded) {
      showNotice(t("blocked", "Your browser blocks this chat inside the page."), false,
        { href: location.pathname, text: t("openWindow", "Open the chat in a new window") });
    } else {
      showNotice(text);
    }
  }

  function scrollDown() { window.scrollTo(0, document.body.scrollHeight); log.lastElementChild && log.lastElementChild.scrollIntoView({ block: "end" }); }

  function bubble(role, text) {
    const li = document.createElement("li");
    li.className = "chat-msg " + (role === "user" ? "from-user" : "from-bot");
    const div = document.createElement("div");
    div.className = "bubble";
    div.textContent = text;
    li.appendChild(div);
    log.appendChild(li);
    scrollDown();
    return li;
  }

  function fromFragment(html) {
    const tpl = document.createElement("template");
    tpl.innerHTML = html.trim();
    return tpl.content.firstElementChild;
  }

  async function errorText(response) {
    try {
      const data = await response.json();
      if (data.error) return data.error;
    } catch (e) {}
    if (response.status === 403) return t("expired", "This chat session expired. Please reload the page.");
    return t("wrong", "Sorry, something went wrong. Please try again.");
  }

  // Parse a text/event-stream body: blocks separated by a blank line, "event:" and "data:" lines.
  async function readEvents(response, onEvent) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        let event = "message", data = "";
        block.split("\n").forEach((line) => {
          if (line.startsWith("event:")) event = line.slice(6).trim();
          else if (line.startsWith("data:")) data += line.slice(5).trim();
        });
        if (data) onEvent(event, JSON.parse(data));
      }
    }
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    if (text.length > maxChars) {
      showNotice(t("tooLong", "Your message is %(n)s characters long; the limit is %(max)s.", { n: text.length, max: maxChars }));
      return;
    }
    showNotice("");
    const body = new FormData(form);
    bubble("user", text);
    input.value = "";
    button.disabled = true;
    const reply = bubble("bot", "");
    const target = reply.firstElementChild;
    target.classList.add("typing");
    let streamed = "";
    try {
      const response = await fetch(form.action, {
        method: "POST", body, credentials: "same-origin",
        headers: { "Accept": "text/event-stream", "X-CSRFToken": csrf() },
      });
      if (!response.ok) {
        reply.remove();
        showError(response, await errorText(response));
        if (response.status === 400 || response.status === 429) input.value = text;
        return;
      }
      await readEvents(response, (event, data) => {
        if (event === "start") store(data.conversation);
        else if (event === "token") {
          target.classList.remove("typing");
          streamed += data.text;
          target.textContent = streamed;
          scrollDown();
        } else if (event === "done") {
          reply.replaceWith(fromFragment(data.fragment));
          scrollDown();
        }
      });
    } catch (err) {
      target.classList.remove("typing");
      showNotice(t("dropped", "The connection dropped. Please try again."));
    } finally {
      button.disabled = false;
      input.focus();
    }
  });

  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); form.requestSubmit(); }
  });

  // Ratings and hand-off: post in place, keep the page. A related question is asked like a
  // typed one (streamed), from the main form.
  document.addEventListener("submit", async (e) => {
    const el = e.target;
    if (el.closest(".chat-related")) {
      e.preventDefault();
      input.value = el.querySelector("input[name=message]").value;
      form.requestSubmit();
      return;
    }
    if (!el.matches(".chat-rate, .chat-handoff")) return;
    e.preventDefault();
    const body = new FormData(el);
    if (e.submitter && e.submitter.name) body.set(e.submitter.name, e.submitter.value);
    const response = await fetch(el.action, {
      method: "POST", body, credentials: "same-origin",
      headers: { "Accept": "application/json", "X-CSRFToken": csrf() },
    });
    if (!response.ok) {
      if (response.status === 404 && el.matches(".chat-handoff")) forget();
      showError(response, await errorText(response));
      return;
    }
    const data = await response.json();
    if (el.matches(".chat-rate")) {
      el.querySelectorAll("button").forEach((b) => {
        const on = (b.value === "up" ? 1 : -1) === data.rating;
        b.classList.toggle("on", on);
        b.setAttribute("aria-pressed", on ? "true" : "false");
      });
    } else {
      store(data.conversation);
      el.closest("details").open = false;
      showNotice(t("handoffThanks", "Thanks! We've passed your conversation to the team; they'll reply by email."), true);
    }
  });

  scrollDown();
})();
