// Live project events on the project page, through the one WebSocket endpoint (session auth).
(function () {
  "use strict";
  document.querySelectorAll("button[data-confirm]").forEach(function (button) {
    button.addEventListener("click", function (event) {
      if (!window.confirm(button.dataset.confirm)) { event.preventDefault(); }
    });
  });
  var list = document.getElementById("live-events");
  if (!list || !window.WebSocket) { return; }
  var projectId = list.dataset.projectId;
  var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
  var retry = 1000;

  function show(text) {
    var item = document.createElement("li");
    item.textContent = text;
    list.insertBefore(item, list.firstChild);
    while (list.children.length > 20) { list.removeChild(list.lastChild); }
  }

  function connect() {
    var socket = new WebSocket(scheme + window.location.host + "/api/v1/ws/");
    socket.addEventListener("open", function () {
      retry = 1000;
      list.innerHTML = "";
      show("Listening for events…");
      socket.send(JSON.stringify({action: "subscribe", events: ["project.*"], filters: {projectId: projectId}}));
    });
    socket.addEventListener("message", function (message) {
      var payload;
      try { payload = JSON.parse(message.data); } catch (e) { return; }
      if (!payload.event || payload.event === "subscribed" || payload.event === "connection.established") { return; }
      var when = (payload.timestamp || "").replace("T", " ").slice(0, 19);
      show(when + "  " + payload.event + (payload.data && payload.data.upload_id ? " (" + payload.data.files.length + " files)" : ""));
    });
    socket.addEventListener("close", function () {
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 30000);
    });
  }
  connect();
})();
