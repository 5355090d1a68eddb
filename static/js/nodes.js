// The node pages: status badges and "last seen" kept live through the one WebSocket endpoint
// (session auth). Data comes from json_script blocks; nothing here is inline, as the CSP
// (default-src 'self') requires. The server only sends a user the events of nodes they may see.
(function () {
  "use strict";
  var listScript = document.getElementById("nodes-live");
  var detailScript = document.getElementById("node-live");
  var config = listScript || detailScript;
  if (!config || !window.WebSocket) { return; }
  var live = JSON.parse(config.textContent);
  var events = document.getElementById("node-events");
  var since = live.renderedAt;

  function badge(status) {
    var span = document.createElement("span");
    span.className = "badge node-status " + status;
    span.textContent = status;
    return span;
  }

  function seen(iso) {
    var time = document.createElement("time");
    time.setAttribute("datetime", iso);
    time.title = iso.replace("T", " ").slice(0, 19);
    time.textContent = "just now";
    return time;
  }

  function replace(target, child) {
    if (!target) { return; }
    while (target.firstChild) { target.removeChild(target.firstChild); }
    target.appendChild(child);
  }

  function show(text) {
    if (!events) { return; }
    var item = document.createElement("li");
    item.textContent = text;
    events.insertBefore(item, events.firstChild);
    while (events.children.length > 20) { events.removeChild(events.lastChild); }
  }

  function update(data, timestamp) {
    if (listScript) {
      var row = document.querySelector('#nodes tr[data-node-id="' + data.node_id + '"]');
      if (!row) { return; }  // not on this page (or filtered out): the next load shows it
      replace(row.querySelector('td[data-col="status"]'), badge(data.status));
      if (data.last_seen) { replace(row.querySelector('td[data-col="last_seen"]'), seen(data.last_seen)); }
      return;
    }
    var current = document.getElementById("node-status");
    if (current) {
      current.textContent = data.status;
      current.className = "badge node-status " + data.status;
    }
    var late = document.getElementById("node-late");
    if (late) { late.parentNode.removeChild(late); }
    if (data.last_seen) { replace(document.getElementById("node-last-seen"), seen(data.last_seen)); }
    var when = (timestamp || "").replace("T", " ").slice(0, 19);
    show(when + "  " + data.status + (data.previous_status && data.previous_status !== data.status
      ? " (was " + data.previous_status + ")" : ""));
  }

  var retry = 1000;

  function connect() {
    var socket = new WebSocket((window.location.protocol === "https:" ? "wss://" : "ws://") +
                               window.location.host + "/api/v1/ws/");
    socket.addEventListener("open", function () {
      retry = 1000;
      if (events) { events.innerHTML = ""; show("Listening for status changes…"); }
      socket.send(JSON.stringify({action: "subscribe", events: ["node.status"],
                                  filters: live.nodeId ? {nodeId: live.nodeId} : {}, since: since}));
    });
    socket.addEventListener("message", function (message) {
      var payload;
      try { payload = JSON.parse(message.data); } catch (e) { return; }
      if (!payload || payload.event !== "node.status" || !payload.data) { return; }
      if (payload.timestamp) { since = payload.timestamp; }
      update(payload.data, payload.timestamp);
    });
    socket.addEventListener("close", function () {
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 30000);
    });
  }
  connect();
})();
