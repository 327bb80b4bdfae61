// A stand-in for Telegram's telegram-web-app.js, for a browser outside Telegram: the demo
// serves it, the browser tests route Telegram's URL to it. Like Telegram's script it reads what
// the client put in the page's fragment (#tgWebAppData=…&tgWebAppThemeParams=…), exposes it as
// window.Telegram.WebApp and sets the --tg-theme-* CSS variables. Popups, links and the QR
// scanner are recorded in window.__telegramCalls instead of opening anything. A desktop has no
// camera to scan with, so the QR scanner popup is a small box in the page where a person types
// or pastes the code; a test answers it with window.__telegramScanQr(text). Either way the code
// is delivered as Telegram does (qrTextReceived, then the popup's callback; a callback
// returning true closes the popup).
(function () {
  "use strict";
  var params = new URLSearchParams((window.location.hash || "").replace(/^#/, ""));
  var initData = params.get("tgWebAppData") || "";
  var theme = {};
  try { theme = JSON.parse(params.get("tgWebAppThemeParams") || "{}"); } catch (e) { theme = {}; }
  var calls = (window.__telegramCalls = []);

  function unsafe(raw) {
    var result = {};
    new URLSearchParams(raw).forEach(function (value, key) {
      if (key === "user" || key === "receiver" || key === "chat") {
        try { result[key] = JSON.parse(value); } catch (e) { result[key] = null; }
      } else result[key] = value;
    });
    return result;
  }

  function isDark(color) {
    var match = /^#?([0-9a-f]{6})$/i.exec(color || "");
    if (!match) return window.matchMedia && matchMedia("(prefers-color-scheme: dark)").matches;
    var n = parseInt(match[1], 16);
    var r = n >> 16, g = (n >> 8) & 255, b = n & 255;
    return 0.299 * r + 0.587 * g + 0.114 * b < 120;
  }

  var root = document.documentElement;
  Object.keys(theme).forEach(function (key) {
    root.style.setProperty("--tg-theme-" + key.replace(/_/g, "-"), theme[key]);
  });
  var scheme = isDark(theme.bg_color) ? "dark" : "light";
  root.style.setProperty("--tg-color-scheme", scheme);

  var handlers = {};
  function fire(name, payload) {
    (handlers[name] || []).slice().forEach(function (fn) { fn.call(window.Telegram.WebApp, payload); });
  }

  // The QR scanner popup: open until a callback returns true or closeScanQrPopup is called.
  var scanner = { open: false, callback: null, box: null };
  function showScanQrPopup(params, callback) {
    calls.push({ method: "showScanQrPopup", args: [params || {}] });
    scanner.open = true;
    scanner.callback = callback || null;
    openScannerBox((params || {}).text || "");
  }
  function endScan() {
    scanner.open = false;
    scanner.callback = null;
    closeScannerBox();
    fire("scanQrPopupClosed", {});
  }
  function closeScanQrPopup() {
    calls.push({ method: "closeScanQrPopup", args: [] });
    if (scanner.open) endScan();
  }
  // A code read: false if no popup is open (nothing delivered).
  function deliverCode(text) {
    if (!scanner.open) return false;
    var callback = scanner.callback;
    fire("qrTextReceived", { data: text });
    if (callback && callback(text) === true && scanner.open) endScan();
    return true;
  }
  window.__telegramScanQr = deliverCode;  // the test's hand on the scanner

  // The person's hand on it: a modal box with the popup's text, a field and two buttons. Built
  // with DOM calls and CSSOM styles only, which the page's Content-Security-Policy allows.
  function openScannerBox(text) {
    closeScannerBox();
    var box = document.createElement("dialog");
    box.id = "stand-in-scanner";
    box.style.maxWidth = "20rem";
    box.style.fontFamily = "inherit";
    var form = document.createElement("form");
    var title = document.createElement("p");
    title.textContent = text || "Scan a QR code";
    var hint = document.createElement("p");
    hint.textContent = "No camera here: type or paste the code (a ticket's barcode is the " +
                       "number under its QR code).";
    hint.style.fontSize = "0.85em";
    hint.style.opacity = "0.75";
    var field = document.createElement("input");
    field.type = "text";
    field.name = "code";
    field.autocomplete = "off";
    field.setAttribute("aria-label", "Code");
    field.style.width = "100%";
    field.style.boxSizing = "border-box";
    var read = document.createElement("button");
    read.type = "submit";
    read.textContent = "Scan";
    var cancel = document.createElement("button");
    cancel.type = "button";
    cancel.textContent = "Cancel";
    var buttons = document.createElement("p");
    buttons.appendChild(read);
    buttons.appendChild(document.createTextNode(" "));
    buttons.appendChild(cancel);
    [title, hint, field, buttons].forEach(function (part) { form.appendChild(part); });
    box.appendChild(form);
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var code = field.value.trim();
      if (!code) return;
      field.value = "";
      deliverCode(code);
    });
    cancel.addEventListener("click", function () { if (scanner.open) endScan(); });
    box.addEventListener("cancel", function (event) {  // Escape, as closing Telegram's popup
      event.preventDefault();
      if (scanner.open) endScan();
    });
    document.body.appendChild(box);
    scanner.box = box;
    if (box.showModal) box.showModal(); else box.setAttribute("open", "");
    field.focus();
  }
  function closeScannerBox() {
    if (!scanner.box) return;
    if (scanner.box.open && scanner.box.close) scanner.box.close();
    scanner.box.remove();
    scanner.box = null;
  }
  window.__telegramScannerOpen = function () { return scanner.open; };
  function record(name) {
    return function () { calls.push({ method: name, args: Array.prototype.slice.call(arguments) }); };
  }
  function button() {
    var clicks = [];
    return {
      isVisible: false,
      show: function () { this.isVisible = true; return this; },
      hide: function () { this.isVisible = false; return this; },
      onClick: function (fn) { clicks.push(fn); return this; },
      offClick: function (fn) { clicks = clicks.filter(function (f) { return f !== fn; }); return this; },
      click: function () { clicks.forEach(function (fn) { fn(); }); },
      setText: function (text) { this.text = text; return this; },
      enable: function () { return this; }, disable: function () { return this; }
    };
  }

  window.Telegram = window.Telegram || {};
  window.Telegram.WebApp = {
    initData: initData,
    initDataUnsafe: unsafe(initData),
    version: params.get("tgWebAppVersion") || "8.0",
    platform: params.get("tgWebAppPlatform") || "unknown",
    colorScheme: scheme,
    themeParams: theme,
    isExpanded: true,
    ready: record("ready"),
    expand: record("expand"),
    close: record("close"),
    openLink: record("openLink"),
    openTelegramLink: record("openTelegramLink"),
    showAlert: function (text, callback) { calls.push({ method: "showAlert", args: [text] }); if (callback) callback(); },
    showScanQrPopup: showScanQrPopup,
    closeScanQrPopup: closeScanQrPopup,
    setHeaderColor: record("setHeaderColor"),
    setBackgroundColor: record("setBackgroundColor"),
    onEvent: function (name, fn) { (handlers[name] = handlers[name] || []).push(fn); },
    offEvent: function (name, fn) {
      handlers[name] = (handlers[name] || []).filter(function (f) { return f !== fn; });
    },
    BackButton: button(),
    MainButton: button(),
    HapticFeedback: { impactOccurred: record("impactOccurred"),
                      notificationOccurred: record("notificationOccurred") }
  };
})();
