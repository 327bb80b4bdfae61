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

  var state = { strings: {}, home: null, order: null, ticket: null, back: null };

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

  // --- frame: title, back, notice ------------------------------------------------------------

  function frame(title, back) {
    titleEl.textContent = title;
    document.title = title;
    state.back = back;
    backEl.hidden = !back;
    backEl.textContent = s("back");
    if (tg && tg.BackButton) {
      if (back) tg.BackButton.show(); else tg.BackButton.hide();
    }
    app.textContent = "";
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
    frame(s("title"), null);
    app.appendChild(el("p", { class: "error", role: "alert", text: message }));
  }

  // --- screens ------------------------------------------------------------------------------

  function showHome() {
    var home = state.home;
    frame(s("title"), null);
    if (home.orders.length) {
      app.appendChild(el("h2", { text: s("orders_title") }));
      home.orders.forEach(function (order) {
        app.appendChild(el("p", { class: "hint", text: order.text }));
        app.appendChild(button(order.label, function () { openOrder(order.id); }));
      });
    }
    if (home.held.length) {
      app.appendChild(el("h2", { text: s("held_title") }));
      var list = el("ul", { class: "plain" });
      // Each held ticket is where a "show my ticket" action belongs.
      home.held.forEach(function (held) {
        list.appendChild(el("li", { class: "card", "data-ref": held.ref, text: held.text }));
      });
      app.appendChild(list);
    }
    if (!home.orders.length && !home.held.length) {
      app.appendChild(el("p", { text: s("no_orders") }));
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
    var many = state.home && (state.home.orders.length > 1 || state.home.held.length);
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

  function summary(ticket) {
    var box = el("section", { class: "card" }, [el("h2", { text: ticket.title })]);
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
      actions.appendChild(button(action.label, function () { startAction(action.action); }));
    });
    // A holder's own ticket (QR, PDF, calendar) will take its place among these actions.
    if (ticket.faq_url) {
      actions.appendChild(button(s("faq"), function () { openLink(ticket.faq_url); },
                                 { class: "secondary" }));
    }
    app.appendChild(actions);
    app.appendChild(button(s("back_to_order"), showOrder, { class: "secondary" }));
  }

  // --- actions ------------------------------------------------------------------------------

  function startAction(action) {
    var ticket = state.ticket;
    if (action === "assign") return showAssign();
    if (action === "resend") return send("resend", {}, null);
    if (action === "rename") {
      return showForm("rename", [nameField(ticket.holder_name || "")], s("rename_hint"),
                      s("confirm"));
    }
    if (action === "sell" || action === "change_price") {
      return showForm(action, [priceField(ticket.price || "")],
                      s("price_hint") + " " + (ticket.bounds || ""), s("confirm"));
    }
    if (action === "exchange") return showExchange();
    var questions = { revoke: [ticket.revoke_question, s("revoke_yes")],
                      take_back: [ticket.take_back_question, s("take_back_yes")],
                      cancel_sale: [s("cancel_sale_question"), s("cancel_sale_yes")] };
    return showForm(action, [], questions[action][0], questions[action][1]);
  }

  function showAssign() {
    frame(state.ticket.title, showTicket);
    app.appendChild(summary(state.ticket));
    app.appendChild(el("h2", { text: s("who") }));
    app.appendChild(button(s("claim_self"), function () {
      showForm("claim", [nameField(state.ticket.buyer_name)], s("claim_hint"), s("confirm"));
    }));
    app.appendChild(button(s("send_friend"), function () {
      showForm("invite", [emailField()], s("invite_hint"), s("send"));
    }));
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
  function showForm(action, fields, hint, submitLabel, extraBody) {
    var ticket = state.ticket;
    frame(ticket.title, action === "claim" || action === "invite" ? showAssign : showTicket);
    app.appendChild(summary(ticket));
    var actionId = newActionId();
    var form = el("form", { novalidate: true, "data-action": action });
    if (hint) form.appendChild(el("p", { text: hint }));
    fields.forEach(function (field) { form.appendChild(fieldBlock(field)); });
    if (extraBody) form.appendChild(extraBody);
    form.appendChild(el("p", { class: "error", role: "alert", "data-error": "form", hidden: true }));
    form.appendChild(el("button", { type: "submit", text: submitLabel }));
    form.appendChild(button(s("back"), showTicket, { class: "secondary" }));
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

  function showExchange() {
    var ticket = state.ticket;
    var group = el("fieldset", { class: "field" }, [el("legend", { text: s("exchange_for") })]);
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
    showForm("exchange", [], warning, s("exchange_yes"), group);
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
