// The "My order" Mini App. It lays out what the server says, in the words the server sends
// (gettext on the server, in the user's language); it decides no rule of its own. Every call
// carries Telegram's initData; every change carries a fresh action id, so that a double tap or
// a retried request changes nothing twice. Text is always set with textContent, never as HTML.
(function () {
  "use strict";

  var tg = (window.Telegram && window.Telegram.WebApp) || null;
  var initData = tg ? tg.initData || "" : "";
  var startOrder = new URLSearchParams(window.location.search).get("order");
  var app = document.getElementById("app");
  var titleEl = document.getElementById("title");
  var backEl = document.getElementById("back");
  var noticeEl = document.getElementById("notice");

  var state = { strings: {}, home: null, order: null, ticket: null, back: null, staff: false,
                held: null, gate: null, blobs: [] };

  function s(key) { return state.strings[key] || key; }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) {
      var value = attrs[name];
      if (value === null || value === undefined || value === false) return;
      if (name === "text") node.textContent = value;
      else if (name === "onclick") node.addEventListener("click", value);
      else if (name === "onsubmit") node.addEventListener("submit", value);
      else node.setAttribute(name, value === true ? "" : value);
    });
    (children || []).forEach(function (child) { if (child) node.appendChild(child); });
    return node;
  }

  function button(label, onclick, extra) {
    var attrs = { type: "button", text: label, onclick: onclick };
    Object.keys(extra || {}).forEach(function (k) { attrs[k] = extra[k]; });
    return el("button", attrs);
  }

  function newActionId() {
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) {
      return ("0" + b.toString(16)).slice(-2);
    }).join("");
  }

  // --- talking to the bot's server -----------------------------------------------------------

  function api(method, path, body) {
    var options = { method: method, headers: { "Authorization": "tma " + initData } };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    return fetch("api/" + path, options).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        return { ok: response.ok, status: response.status, data: data };
      });
    }, function () {
      return { ok: false, status: 0, data: { message: s("error_network") } };
    });
  }

  // A file of the bot's (the ticket's QR, PDF, calendar entry), fetched with initData like
  // every call, as a blob URL; there is no file URL that opens without initData. The URLs of a
  // screen are released when the next screen is drawn.
  function fetchFile(path) {
    return fetch("api/" + path, { headers: { "Authorization": "tma " + initData } })
      .then(function (response) {
        if (!response.ok) {
          return response.json().catch(function () { return {}; }).then(function (data) {
            throw new Error(data.message || s("error_generic"));
          });
        }
        return response.blob();
      }, function () { throw new Error(s("error_network")); })
      .then(function (blob) {
        var url = URL.createObjectURL(blob);
        state.blobs.push(url);
        return url;
      });
  }

  function download(path, name) {
    return fetchFile(path).then(function (url) {
      var link = el("a", { href: url, download: name, hidden: true });
      document.body.appendChild(link);
      link.click();
      link.remove();
    }, function (error) { notice(error.message); });
  }

  // --- frame: title, back, notice ------------------------------------------------------------

  // A frame without a title (the page opened outside Telegram, before any words came from
  // the server) shows no heading rather than a placeholder.
  function frame(title, back) {
    titleEl.textContent = title || "";
    titleEl.hidden = !title;
    if (title) document.title = title;
    state.back = back;
    backEl.hidden = !back;
    backEl.textContent = s("back");
    if (tg && tg.BackButton) {
      if (back) tg.BackButton.show(); else tg.BackButton.hide();
    }
    app.textContent = "";
    stopLive();
    state.blobs.forEach(function (url) { URL.revokeObjectURL(url); });
    state.blobs = [];
    window.scrollTo(0, 0);
  }

  function goBack() { if (state.back) { clearNotice(); state.back(); } }
  backEl.addEventListener("click", goBack);
  if (tg && tg.BackButton) tg.BackButton.onClick(goBack);

  function notice(text, link) {
    noticeEl.textContent = "";
    if (!text) { noticeEl.hidden = true; return; }
    noticeEl.appendChild(el("p", { text: text }));
    if (link) {
      noticeEl.appendChild(el("p", { text: s("claim_link") }));
      noticeEl.appendChild(el("p", { class: "link-text" }, [el("code", { text: link })]));
      noticeEl.appendChild(button(s("share"), function () {
        var share = "https://t.me/share/url?url=" + encodeURIComponent(link);
        if (tg && tg.openTelegramLink) tg.openTelegramLink(share);
      }, { class: "secondary" }));
    }
    noticeEl.hidden = false;
  }
  function clearNotice() { notice(null); }

  function failure(message) {
    frame(state.strings.title, null);
    app.appendChild(el("p", { class: "error", role: "alert", text: message }));
  }

  // --- screens ------------------------------------------------------------------------------

  function showHome() {
    var home = state.home;
    // "My order" heads the page of someone with an order; a friend holding tickets sent to
    // them has none: their page is headed by what it shows.
    var ordersShown = home.orders.length > 0;
    frame(ordersShown ? s("title") : s("held_title"), null);
    if (ordersShown) {
      app.appendChild(el("h2", { text: s("orders_title") }));
      home.orders.forEach(function (order) {
        app.appendChild(el("p", { class: "hint", text: order.text }));
        app.appendChild(button(order.label, function () { openOrder(order.id); }));
      });
    }
    if (home.held.length) {
      if (ordersShown) app.appendChild(el("h2", { text: s("held_title") }));
      var list = el("ul", { class: "plain" });
      home.held.forEach(function (held) {
        list.appendChild(el("li", { class: "card", "data-ref": held.ref }, [
          el("p", { text: held.text }),
          button(s("show_ticket"), function () { openHeld(held.id, showHome); },
                 { "data-show": held.ref })
        ]));
      });
      app.appendChild(list);
    }
    if (!home.orders.length && !home.held.length) {
      app.appendChild(el("p", { text: s("no_orders") }));
    }
    if (state.staff) {
      app.appendChild(button(s("gate"), openGate, { class: "secondary", id: "open-gate" }));
    }
  }

  function openOrder(orderId) {
    return api("GET", "orders/" + orderId).then(function (answer) {
      if (!answer.ok) { notice(answer.data.message); return; }
      state.order = answer.data;
      showOrder();
    });
  }

  function showOrder() {
    var order = state.order;
    // Home holds the other orders, the held tickets and (for staff) the gate.
    var many = state.home && (state.home.orders.length > 1 || state.home.held.length ||
                              state.staff);
    frame(order.title, many ? showHome : null);
    order.events.forEach(function (event) {
      app.appendChild(el("section", { class: "card event" }, [
        el("h2", { text: event.name }),
        el("p", { text: "🗓 " + event.when }),
        el("p", { text: "📍 " + event.venue }),
        el("p", { class: "hint", text: event.options })
      ]));
    });
    if (order.empty) app.appendChild(el("p", { text: order.empty }));
    else app.appendChild(el("p", { class: "hint", text: order.hint }));
    order.sections.forEach(function (section) {
      var list = el("ul", { class: "plain", "aria-label": section.title });
      section.tickets.forEach(function (ticket) {
        list.appendChild(el("li", {}, [
          button(ticket.line, function () { openTicket(ticket.id); },
                 { class: "row", "data-ticket": ticket.ref })
        ]));
      });
      app.appendChild(el("section", { class: "tickets " + section.state }, [
        el("h2", { text: section.title }), list
      ]));
    });
    app.appendChild(el("div", { class: "row-buttons" }, [
      button(s("refresh"), function () { clearNotice(); openOrder(order.id); },
             { class: "secondary" }),
      button(s("more"), showMore, { class: "secondary" })
    ]));
  }

  function showMore() {
    var order = state.order, more = order.more;
    frame(more.title, showOrder);
    var group = el("div", { class: "row-buttons", role: "group", "aria-label": s("languages") });
    more.languages.forEach(function (language) {
      group.appendChild(button((language.current ? "✓ " : "") + language.name, function () {
        chooseLanguage(language.code);
      }, { lang: language.code, "aria-pressed": language.current ? "true" : "false",
           class: "secondary" }));
    });
    app.appendChild(el("h2", { text: more.language }));
    app.appendChild(group);
    more.faqs.forEach(function (faq) {
      app.appendChild(button(faq.label, function () { openLink(faq.url); }, { class: "secondary" }));
    });
    app.appendChild(el("h2", { text: s("contact_support") }));
    app.appendChild(el("p", { text: more.support }));
    if (state.home && state.home.orders.length > 1) {
      app.appendChild(button(s("my_orders"), showHome, { class: "secondary" }));
    }
  }

  function openLink(url) {
    if (tg && tg.openLink) tg.openLink(url); else window.open(url, "_blank", "noopener");
  }

  function chooseLanguage(code) {
    api("POST", "language", { language: code, order_id: state.order.id,
                              action_id: newActionId() }).then(function (answer) {
      if (!answer.ok) { notice(answer.data.message); return; }
      start(state.order.id).then(function () { notice(answer.data.notice); });
    });
  }

  function openTicket(ticketId) {
    clearNotice();
    return api("GET", "tickets/" + ticketId).then(function (answer) {
      if (!answer.ok) { notice(answer.data.message); showOrder(); return; }
      state.ticket = answer.data;
      showTicket();
    });
  }

  // The ticket's summary under its frame, which already names it ("Ticket T-…").
  function summary(ticket) {
    var box = el("section", { class: "card", "aria-label": ticket.title });
    ticket.summary.forEach(function (line) { box.appendChild(el("p", { text: line })); });
    return box;
  }

  function showTicket() {
    var ticket = state.ticket;
    frame(ticket.title, showOrder);
    app.appendChild(summary(ticket));
    ticket.notes.forEach(function (note) {
      app.appendChild(el("p", { class: "hint", text: note }));
    });
    var actions = el("div", { class: "actions", role: "group", "aria-label": s("actions") });
    ticket.actions.forEach(function (action) {
      actions.appendChild(button(action.label, function () { startAction(action); }));
    });
    if (ticket.held) {
      actions.appendChild(button(s("show_ticket"), function () {
        openHeld(ticket.id, showTicket);
      }, { "data-show": ticket.ref }));
    }
    if (ticket.faq_url) {
      actions.appendChild(button(s("faq"), function () { openLink(ticket.faq_url); },
                                 { class: "secondary" }));
    }
    app.appendChild(actions);
    app.appendChild(button(s("back_to_order"), showOrder, { class: "secondary" }));
  }

  // --- the holder's own ticket ----------------------------------------------------------------

  // Read afresh each time: a barcode that changed shows its new code, a used ticket says so.
  function openHeld(ticketId, back) {
    clearNotice();
    return api("GET", "held/" + ticketId).then(function (answer) {
      if (!answer.ok) { notice(answer.data.message); return; }
      state.held = answer.data;
      showHeld(back);
    });
  }

  function showHeld(back) {
    var held = state.held;
    frame(held.title, back);
    var card = el("section", { class: "card ticket" + (held.used ? " used" : ""),
                               "data-ref": held.ref }, [
      el("h2", { text: held.event }),
      el("p", { text: "🗓 " + held.when }),
      el("p", { text: "📍 " + held.venue })
    ]);
    held.lines.forEach(function (line) { card.appendChild(el("p", { text: line })); });
    if (held.used) {
      card.appendChild(el("p", { class: "used-note", role: "status", text: held.used }));
    }
    var qr = null;
    if (held.rotating) {
      if (held.live && !held.used) card.appendChild(liveCodeBox(held));
    } else {
      qr = el("img", { id: "ticket-qr", class: "qr", alt: held.qr_alt, width: 280,
                       height: 280 });
      qr.addEventListener("load", function () { qr.setAttribute("data-loaded", "true"); });
      card.appendChild(el("div", { class: "qr-box" }, [qr]));
      card.appendChild(el("p", { class: "barcode", text: held.barcode }));
    }
    if (!held.used) card.appendChild(el("p", { class: "hint", text: held.hint }));
    app.appendChild(card);
    var base = "held/" + held.id + "/";
    app.appendChild(el("div", { class: "row-buttons" }, [
      button(held.pdf_label, function () { download(base + "ticket.pdf", held.pdf_name); },
             { class: "secondary", "data-file": "pdf" }),
      button(held.ics_label, function () { download(base + "ticket.ics", held.ics_name); },
             { class: "secondary", "data-file": "ics" })
    ]));
    if (qr) {
      fetchFile(base + "qr.png").then(function (url) { qr.src = url; },
                                      function (error) { notice(error.message); });
    }
  }

  // --- the live code of a rotating ticket ----------------------------------------------------

  // The code of each time step is derived here from the ticket's step key (HMAC-SHA256, as
  // storage/entry_codes.py does): it is drawn anew each period, on the server's clock, and
  // works without network once the page is open. The sweeping bar and the ticking clock show
  // staff a live screen, which a screenshot is not.
  var live = { timer: null, step: null };

  function stopLive() {
    if (live.timer) window.clearInterval(live.timer);
    live.timer = null;
    live.step = null;
  }

  function liveCodeBox(held) {
    var info = held.live;
    var offset = info.server_time_ms - Date.now();
    var canvas = el("canvas", { id: "live-qr", class: "qr", width: 296, height: 296,
                                role: "img", "aria-label": held.qr_alt });
    var clock = el("p", { class: "live-clock", "aria-hidden": "true" });
    var progress = el("div", { class: "live-progress" });
    var box = el("div", { class: "qr-box live", id: "live-code" }, [
      el("div", { class: "live-sweep", "aria-hidden": "true" }), canvas
    ]);
    var stepKey = fromB64(info.step_key);
    function tick() {
      var now = Date.now() + offset;
      var period = info.period_seconds * 1000;
      clock.textContent = new Date(now).toLocaleTimeString(document.documentElement.lang,
                                                            { hour12: false });
      progress.style.width = (100 - (now % period) / period * 100).toFixed(1) + "%";
      var step = Math.floor(now / period);
      if (step === live.step) return;
      live.step = step;
      oneTimeCode(stepKey, step).then(function (otp) {
        if (live.step !== step) return;
        var code = ["TB1", info.key_id, info.ref, info.token, info.signature, step, otp]
          .join(".");
        drawQr(canvas, code);
        box.setAttribute("data-code", code);
        box.setAttribute("data-step", String(step));
      });
    }
    stopLive();
    tick();
    live.timer = window.setInterval(tick, 250);
    return el("div", { class: "live-wrap" }, [box, el("div", { class: "live-bar" }, [progress]),
                                              clock]);
  }

  function drawQr(canvas, text) {
    var code = window.QrEncoder.encode(text);
    var count = code.size, border = 4;
    var cell = Math.max(2, Math.floor(canvas.width / (count + 2 * border)));
    var size = cell * (count + 2 * border);
    var context = canvas.getContext("2d");
    context.fillStyle = "#ffffff";
    context.fillRect(0, 0, canvas.width, canvas.height);
    var origin = Math.floor((canvas.width - size) / 2) + border * cell;
    context.fillStyle = "#000000";
    for (var row = 0; row < count; row++) {
      for (var col = 0; col < count; col++) {
        if (code.isDark(row, col)) {
          context.fillRect(origin + col * cell, origin + row * cell, cell, cell);
        }
      }
    }
  }

  function fromB64(text) {
    var plain = text.replace(/-/g, "+").replace(/_/g, "/");
    while (plain.length % 4) plain += "=";
    var binary = window.atob(plain);
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes;
  }

  function utf8(text) { return new TextEncoder().encode(text); }

  function hmac(key, data) {
    return window.crypto.subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false,
                                          ["sign"])
      .then(function (k) { return window.crypto.subtle.sign("HMAC", k, data); })
      .then(function (digest) { return new Uint8Array(digest); });
  }

  // RFC 4226's truncation over the 8-byte big-endian time step, 8 digits.
  function oneTimeCode(key, step) {
    var counter = new Uint8Array(8), value = step;
    for (var i = 7; i >= 0; i--) { counter[i] = value % 256; value = Math.floor(value / 256); }
    return hmac(key, counter).then(function (d) {
      var o = d[d.length - 1] & 15;
      var n = ((d[o] & 0x7f) << 24) | (d[o + 1] << 16) | (d[o + 2] << 8) | d[o + 3];
      return ("0000000" + (n % 100000000)).slice(-8);
    });
  }

  // --- the staff's gate -----------------------------------------------------------------------

  // The staff member picks the event and names the gate once; then every code Telegram's
  // scanner reads goes to the gate's scan service with a fresh nonce, and the answer is shown
  // large until the next scan.
  function g(key) { return (state.gate && state.gate.strings[key]) || key; }

  function openGate() {
    clearNotice();
    return api("GET", "gate").then(function (answer) {
      if (!answer.ok) { notice(answer.data.message); return; }
      state.gate = answer.data;
      state.gate.choice = savedGateChoice();
      showGateSetup();
      uploadQueue();
    });
  }

  function savedGateChoice() {
    try { return JSON.parse(window.localStorage.getItem("ticketbot-gate") || "null"); }
    catch (e) { return null; }
  }

  function showGateSetup() {
    var gate = state.gate, choice = gate.choice || {};
    frame(g("title"), showHome);
    if (!gate.events.length) { app.appendChild(el("p", { text: g("no_events") })); return; }
    var select = el("select", { id: "field-event", name: "event",
                                "aria-describedby": "field-event-error" });
    gate.events.forEach(function (event) {
      select.appendChild(el("option", { value: event.id, text: event.name + " — " + event.when,
                                        selected: event.id === choice.event }));
    });
    var form = el("form", { novalidate: true, "data-action": "gate" }, [
      el("div", { class: "field" }, [
        el("label", { for: "field-event", text: g("event_label") }), select,
        el("p", { id: "field-event-error", class: "error", role: "alert", hidden: true })
      ]),
      fieldBlock({ name: "gate", label: g("gate_label"), type: "text",
                   value: choice.gate || g("gate_default") }),
      el("p", { class: "error", role: "alert", "data-error": "form", hidden: true }),
      el("button", { type: "submit", text: g("start") })
    ]);
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var name = form.elements.gate.value.trim();
      showFieldError(form, "gate", name ? null : s("required"));
      if (!name) return;
      gate.choice = { event: select.value, gate: name };
      try { window.localStorage.setItem("ticketbot-gate", JSON.stringify(gate.choice)); }
      catch (e) { /* a private window keeps no choice: asked again next time */ }
      syncKit();
      showVerdict(null);
      scan();
    });
    app.appendChild(form);
  }

  function gateWhere() {
    var choice = state.gate.choice;
    var event = state.gate.events.filter(function (e) { return e.id === choice.event; })[0];
    return g("where").replace("{event}", event ? event.name : choice.event)
                     .replace("{gate}", choice.gate);
  }

  function showVerdict(verdict) {
    frame(g("title"), showGateSetup);
    app.appendChild(el("p", { class: "hint", text: gateWhere() }));
    app.appendChild(offlineStatus());
    (state.gate.uploaded || []).forEach(function (answer) {
      var box = el("section", { class: "verdict conflict " + answer.result,
                                "data-conflict": answer.barcode }, [
        el("p", { class: "headline", text: answer.headline })
      ]);
      answer.lines.forEach(function (line) { box.appendChild(el("p", { text: line })); });
      app.appendChild(box);
    });
    if (verdict) {
      var box = el("section", { id: "verdict", class: "verdict " + verdict.result,
                                role: "alert", "data-result": verdict.result }, [
        el("p", { class: "headline", text: verdict.headline })
      ]);
      verdict.lines.forEach(function (line) { box.appendChild(el("p", { text: line })); });
      app.appendChild(box);
    }
    if (verdict && verdict.retry) {
      app.appendChild(button(g("retry"), verdict.retry, { id: "retry" }));
    }
    app.appendChild(button(verdict ? g("scan_next") : g("start"), scan, { id: "scan" }));
    app.appendChild(button(g("change"), showGateSetup, { class: "secondary" }));
  }

  var checking = false;
  function scan() {
    if (!tg || !tg.showScanQrPopup) { notice(g("no_scanner")); return; }
    tg.showScanQrPopup({ text: g("popup") }, function (text) {
      if (checking) return false;  // one code at a time; the popup stays open meanwhile
      checkCode(text);
      return true;
    });
  }

  // A request that got no answer is sent again with the same nonce: if the first one reached
  // the server, its answer is given again and nothing is scanned twice.
  function checkCode(code, nonce) {
    checking = true;
    nonce = nonce || newActionId();
    var choice = state.gate.choice;
    frame(g("title"), showGateSetup);
    app.appendChild(el("p", { class: "hint", role: "status", text: g("scanning") }));
    if (!navigator.onLine) { decideOffline(code, nonce); return; }
    api("POST", "gate/scan", { barcode: code, event: choice.event, gate: choice.gate,
                               nonce: nonce }).then(function (answer) {
      // No answer: with a rotating event's kit the page decides; else it offers a retry.
      var kit = state.gate.kit;
      if (answer.status === 0 && kit && kit.code === "rotating") {
        decideOffline(code, nonce);
        return;
      }
      checking = false;
      if (tg && tg.closeScanQrPopup) tg.closeScanQrPopup();
      uploadQueue();
      if (!answer.ok) {
        showVerdict({ result: "error", headline: answer.data.message || s("error_generic"),
                      lines: [], retry: answer.status === 0 || answer.status >= 500 ?
                        function () { checkCode(code, nonce); } : null });
        return;
      }
      var haptic = { ok: "success", already_scanned: "warning" }[answer.data.result] || "error";
      if (tg && tg.HapticFeedback) tg.HapticFeedback.notificationOccurred(haptic);
      showVerdict(answer.data);
    });
  }

  // --- the gate without network -------------------------------------------------------------

  // While online the page keeps the event's entry kit (public keys, step secrets, the tokens
  // of void barcodes). Offline it checks a live code with it as the server would, remembers
  // which tickets it let in, and queues every scan; back online it uploads the queue (the
  // server decides each as at its time, once per nonce) and shows any double entry.
  var QUEUE = "ticketbot-offline-queue";

  function stored(key, fallback) {
    try { return JSON.parse(window.localStorage.getItem(key) || "null") || fallback; }
    catch (e) { return fallback; }
  }
  function keep(key, value) {
    try { window.localStorage.setItem(key, JSON.stringify(value)); }
    catch (e) { /* a private window keeps nothing: the page still decides while open */ }
  }

  function syncKit() {
    var event = state.gate.choice.event;
    state.gate.kit = stored("ticketbot-kit-" + event, null);
    return api("GET", "gate/entry?event=" + encodeURIComponent(event)).then(function (answer) {
      if (!answer.ok || event !== state.gate.choice.event) return;
      state.gate.kit = answer.data;
      keep("ticketbot-kit-" + event, answer.data);
    });
  }
  window.setInterval(function () {
    if (state.gate && state.gate.choice && navigator.onLine) syncKit();
  }, 60000);

  function offlineStatus() {
    var waiting = stored(QUEUE, []).length;
    var box = el("p", { id: "offline-status", class: "offline-status", role: "status" });
    if (navigator.onLine && !waiting) { box.hidden = true; return box; }
    var form = new Intl.PluralRules(document.documentElement.lang).select(waiting);
    box.textContent = g(form === "one" ? "offline_one" : "offline_other")
      .replace("{count}", String(waiting));
    box.setAttribute("data-waiting", String(waiting));
    return box;
  }

  function decideOffline(code, nonce) {
    var choice = state.gate.choice;
    var queue = stored(QUEUE, []);
    queue.push({ event: choice.event, barcode: code, gate: choice.gate, nonce: nonce,
                 scanned_at: new Date().toISOString() });
    keep(QUEUE, queue);
    verifyOffline(state.gate.kit, code).then(function (result) {
      checking = false;
      if (tg && tg.closeScanQrPopup) tg.closeScanQrPopup();
      var line = result === null ? g("offline_unchecked") : g("offline_checked");
      result = result || "unknown";
      var haptic = { ok: "success", already_scanned: "warning" }[result] || "error";
      if (tg && tg.HapticFeedback) tg.HapticFeedback.notificationOccurred(haptic);
      showVerdict({ result: result, headline: g(result), lines: [line], offline: true });
    });
  }

  // The verdict on a code with the kit alone: ok, already_scanned, void, stale, unknown; null
  // when it cannot be checked here (no kit, or a static event's bare barcode, typed by hand).
  function verifyOffline(kit, code) {
    var parts = code.split(".");
    if (kit && kit.code === "static") return verifyStatic(kit, code, parts);
    if (!kit || kit.code !== "rotating") return Promise.resolve(null);
    if (parts[0] !== "TB1" || parts.length < 7) return Promise.resolve("unknown");
    var n = parts.length;
    var keyId = parts[1], ref = parts.slice(2, n - 4).join("."), token = parts[n - 4];
    var signature = parts[n - 3], step = Number(parts[n - 2]), otp = parts[n - 1];
    var key = kit.keys.filter(function (k) { return k.key_id === keyId; })[0];
    if (!key || !/^\d{1,12}$/.test(parts[n - 2])) return Promise.resolve("unknown");
    var signed = utf8("TB1|" + kit.event + "|" + ref + "|" + token);
    return window.crypto.subtle.importKey("raw", fromB64(key.public_key), { name: "Ed25519" },
                                          false, ["verify"])
      .then(function (publicKey) {
        return window.crypto.subtle.verify({ name: "Ed25519" }, publicKey, fromB64(signature),
                                           signed);
      })
      .then(function (genuine) {
        if (!genuine) return false;
        return hmac(fromB64(key.step_secret), utf8(token)).then(function (stepKey) {
          return oneTimeCode(stepKey, step);
        }).then(function (expected) { return expected === otp; });
      })
      .then(function (genuine) {
        if (!genuine) return "unknown";
        var now = Math.floor(Date.now() / 1000 / kit.period_seconds);
        if (Math.abs(step - now) > kit.tolerance_steps) return "stale";
        return admitToken(kit, token);
      }, function () { return "unknown"; });
  }

  // A static event's signed code, TB1.<key id>.<ref>.<token>.<signature>: the event key's
  // signature of "TB1S|event|ref|token", no time step. A bare barcode cannot be checked here.
  function verifyStatic(kit, code, parts) {
    if (parts[0] !== "TB1") return Promise.resolve(null);
    var n = parts.length;
    var keyId = parts[1], ref = parts.slice(2, n - 2).join("."), token = parts[n - 2];
    var signature = parts[n - 1];
    var key = kit.keys.filter(function (k) { return k.key_id === keyId; })[0];
    if (n < 5 || !key || !/^[A-Z2-7]{26}$/.test(token) ||
        !/^[A-Za-z0-9_-]{86}$/.test(signature)) return Promise.resolve("unknown");
    var signed = utf8("TB1S|" + kit.event + "|" + ref + "|" + token);
    return window.crypto.subtle.importKey("raw", fromB64(key.public_key), { name: "Ed25519" },
                                          false, ["verify"])
      .then(function (publicKey) {
        return window.crypto.subtle.verify({ name: "Ed25519" }, publicKey, fromB64(signature),
                                           signed);
      })
      .then(function (genuine) { return genuine ? admitToken(kit, token) : "unknown"; },
            function () { return "unknown"; });
  }

  // A genuine token: void if the kit lists it, already_scanned if this device let it in.
  function admitToken(kit, token) {
    if (kit.voided.indexOf(token) >= 0) return "void";
    var seen = stored("ticketbot-seen-" + kit.event, {});
    if (seen[token]) return "already_scanned";
    seen[token] = true;
    keep("ticketbot-seen-" + kit.event, seen);
    return "ok";
  }

  var uploading = false;
  function uploadQueue() {
    var queue = stored(QUEUE, []);
    if (uploading || !queue.length || !navigator.onLine) return Promise.resolve();
    var event = queue[0].event;
    var batch = queue.filter(function (scan) { return scan.event === event; }).slice(0, 1000);
    uploading = true;
    return api("POST", "gate/scans", { event: event, scans: batch.map(function (scan) {
      return { barcode: scan.barcode, gate: scan.gate, nonce: scan.nonce,
               scanned_at: scan.scanned_at };
    }) }).then(function (answer) {
      uploading = false;
      if (answer.status === 0) return;
      var sent = {};
      batch.forEach(function (scan) { sent[scan.nonce] = true; });
      keep(QUEUE, stored(QUEUE, []).filter(function (scan) { return !sent[scan.nonce]; }));
      if (answer.ok) {
        var conflicts = answer.data.answers.filter(function (a) { return a.conflict; });
        state.gate.uploaded = conflicts;
        notice(g("uploaded"));
      }
      var status = document.getElementById("offline-status");
      if (status) status.replaceWith(offlineStatus());
      if (state.gate.uploaded && state.gate.uploaded.length && !checking) showVerdict(null);
      return uploadQueue();
    });
  }
  window.addEventListener("online", function () { if (state.gate) uploadQueue(); });
  window.addEventListener("offline", function () {
    var status = document.getElementById("offline-status");
    if (status && state.gate) status.replaceWith(offlineStatus());
  });

  // --- actions ------------------------------------------------------------------------------

  // An action as the server declares it (asks, prompt, question, yes): the page asks for each
  // kind of input one way, whatever the action.
  function startAction(action, back) {
    var ticket = state.ticket;
    back = back || showTicket;
    if (action.asks === "choice") return showChoice(action);
    if (action.asks === "target") return showExchange(action, back);
    if (action.asks === "nothing" && !action.question) return send(action.action, {}, null);
    var fields = {
      nothing: [],
      name: [nameField(action.offered || ticket.holder_name || "")],  // a free name only
      email: [emailField()],
      price: [priceField(ticket.price || "")]
    }[action.asks];
    var hint = action.question || action.prompt;
    if (action.asks === "price") hint += " " + (ticket.bounds || "");
    return showForm(action.action, fields, hint, action.yes, null, back);
  }

  function showChoice(action) {
    frame(state.ticket.title, showTicket);
    app.appendChild(summary(state.ticket));
    app.appendChild(el("h2", { text: action.prompt }));
    action.offers.forEach(function (offered) {
      app.appendChild(button(offered.label, function () {
        startAction(offered, function () { showChoice(action); });
      }));
    });
  }

  function nameField(value) {
    return { name: "name", label: s("name_label"), type: "text", value: value,
             autocomplete: "name" };
  }
  function emailField() {
    return { name: "email", label: s("email_label"), type: "email", value: "",
             autocomplete: "email" };
  }
  function priceField(value) {
    return { name: "price", label: s("price_label") + " (" + (state.ticket.currency || "") + ")",
             type: "text", value: value, inputmode: "decimal" };
  }

  function fieldBlock(field) {
    var id = "field-" + field.name;
    var input = el("input", { id: id, name: field.name, type: field.type, value: field.value,
                              autocomplete: field.autocomplete || "off",
                              inputmode: field.inputmode || null, required: true,
                              "aria-describedby": id + "-error" });
    return el("div", { class: "field" }, [
      el("label", { for: id, text: field.label }), input,
      el("p", { id: id + "-error", class: "error", role: "alert", hidden: true })
    ]);
  }

  // A form for one action: its fields, a hint or question, and the button that sends it. The
  // action id is drawn once per form: pressing twice sends the same id, applied once.
  function showForm(action, fields, hint, submitLabel, extraBody, back) {
    var ticket = state.ticket;
    frame(ticket.title, back);
    app.appendChild(summary(ticket));
    var actionId = newActionId();
    var form = el("form", { novalidate: true, "data-action": action });
    if (hint) form.appendChild(el("p", { text: hint }));
    fields.forEach(function (field) { form.appendChild(fieldBlock(field)); });
    if (extraBody) form.appendChild(extraBody);
    form.appendChild(el("p", { class: "error", role: "alert", "data-error": "form", hidden: true }));
    form.appendChild(el("button", { type: "submit", text: submitLabel }));
    form.appendChild(button(s("back"), back, { class: "secondary" }));
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var body = {};
      var missing = false;
      fields.forEach(function (field) {
        var input = form.elements[field.name];
        body[field.name] = input.value;
        showFieldError(form, field.name, input.value.trim() ? null : s("required"));
        if (!input.value.trim()) missing = true;
      });
      if (extraBody) {
        var chosen = form.querySelector("input[name=event]:checked");
        showFieldError(form, "event", chosen ? null : s("choose_session"));
        if (!chosen) missing = true; else body.event = chosen.value;
      }
      if (missing) return;
      send(action, body, form, actionId);
    });
    app.appendChild(form);
    var first = form.querySelector("input");
    if (first) first.focus();
  }

  function showFieldError(form, name, message) {
    var box = form.querySelector("#field-" + name + "-error") ||
              form.querySelector("[data-error=" + (name || "form") + "]");
    var input = form.querySelector("#field-" + name);
    if (input) input.setAttribute("aria-invalid", message ? "true" : "false");
    if (!box) box = form.querySelector("[data-error=form]");
    box.textContent = message || "";
    box.hidden = !message;
  }

  function showExchange(action, back) {
    var ticket = state.ticket;
    var group = el("fieldset", { class: "field" }, [el("legend", { text: action.prompt })]);
    (ticket.exchange_options || []).forEach(function (option, index) {
      var id = "event-" + index;
      group.appendChild(el("div", { class: "choice" }, [
        el("input", { type: "radio", name: "event", id: id, value: option.event,
                      disabled: !option.available, "aria-describedby": "field-event-error" }),
        el("label", { for: id, text: option.label })
      ]));
    });
    group.appendChild(el("p", { id: "field-event-error", class: "error", role: "alert",
                                hidden: true }));
    var warning = (ticket.state === "completed" ? s("exchange_cleared") + " " : "") +
                  s("exchange_void");
    showForm(action.action, [], warning, action.yes, group, back);
  }

  function send(action, body, form, actionId) {
    body.action_id = actionId || newActionId();
    var submit = form && form.querySelector("button[type=submit]");
    if (submit) submit.disabled = true;
    return api("POST", "tickets/" + state.ticket.id + "/" + action, body).then(function (answer) {
      if (submit) submit.disabled = false;
      if (answer.ok) {
        state.order = answer.data.order;
        showOrder();
        notice(answer.data.notice, answer.data.link);
        return;
      }
      if (form && answer.data.field !== undefined) {
        showFieldError(form, answer.data.field || "form", answer.data.message);
      } else {
        notice(answer.data.message);
      }
    });
  }

  // --- start --------------------------------------------------------------------------------

  function start(orderId) {
    var query = orderId ? "?order=" + encodeURIComponent(orderId) : "";
    return api("GET", "start" + query).then(function (answer) {
      if (!answer.ok) {
        failure(answer.data.message || "Please open this page from the bot in Telegram.");
        return;
      }
      state.strings = answer.data.strings;
      state.home = answer.data.home;
      state.staff = !!answer.data.staff;
      document.documentElement.lang = answer.data.language;
      if (answer.data.order) { state.order = answer.data.order; showOrder(); }
      else showHome();
      if (answer.data.notice) notice(answer.data.notice);
    }).then(ready, ready);
  }

  // Says the first screen is shown (for the browser tests, and harmless elsewhere).
  function ready() { document.body.setAttribute("data-ready", "true"); }

  if (tg) {
    tg.ready();
    if (tg.expand) tg.expand();
    document.documentElement.setAttribute("data-scheme", tg.colorScheme || "light");
    if (tg.onEvent) {
      tg.onEvent("themeChanged", function () {
        document.documentElement.setAttribute("data-scheme", tg.colorScheme || "light");
      });
    }
  }
  if (!initData) { failure("Please open this page from the bot in Telegram."); ready(); }
  else start(startOrder);
})();
