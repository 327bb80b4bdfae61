// A stand-in for Telegram's telegram-web-app.js, for a browser outside Telegram: the demo
// serves it, the browser tests route Telegram's URL to it. Like Telegram's script it reads what
// the client put in the page's fragment (#tgWebAppData=…&tgWebAppThemeParams=…), exposes it as
// window.Telegram.WebApp and sets the --tg-theme-* CSS variables. Popups, links and the QR
// scanner are recorded in window.__telegramCalls instead of opening anything. The QR scanner
// popup is answered by the test: window.__telegramScanQr(text) delivers qrTextReceived as
// Telegram does (the event, then the popup's callback; a callback returning true closes it).
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
  var scanner = { open: false, callback: null };
  function showScanQrPopup(params, callback) {
    calls.push({ method: "showScanQrPopup", args: [params || {}] });
    scanner.open = true;
    scanner.callback = callback || null;
  }
  function closeScanQrPopup() {
    calls.push({ method: "closeScanQrPopup", args: [] });
    if (!scanner.open) return;
    scanner.open = false;
    scanner.callback = null;
    fire("scanQrPopupClosed", {});
  }
  // The test's hand on the scanner: false if no popup is open (nothing delivered).
  window.__telegramScanQr = function (text) {
    if (!scanner.open) return false;
    var callback = scanner.callback;
    fire("qrTextReceived", { data: text });
    if (callback && callback(text) === true && scanner.open) {
      scanner.open = false;
      scanner.callback = null;
      fire("scanQrPopupClosed", {});
    }
    return true;
  };
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
