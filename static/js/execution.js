// The training pages: the start form's algorithm notes, and an execution's live page (progress,
// rounds, charts) fed by the one WebSocket endpoint (session auth). Data comes from json_script
// blocks; nothing here is inline, as the CSP (default-src 'self') requires.
(function () {
  "use strict";

  document.querySelectorAll("button[data-confirm]").forEach(function (button) {
    button.addEventListener("click", function (event) {
      if (!window.confirm(button.dataset.confirm)) { event.preventDefault(); }
    });
  });

  // ---- start form: point at the chosen algorithm's parameters ---------------------------------
  var algorithm = document.getElementById("id_algorithm");
  var catalogue = document.getElementById("algorithm-params");
  if (algorithm && catalogue) {
    var markChosen = function () {
      catalogue.querySelectorAll("[data-algorithm]").forEach(function (entry) {
        entry.classList.toggle("current", entry.dataset.algorithm === algorithm.value);
      });
    };
    algorithm.addEventListener("change", markChosen);
    markChosen();
  }

  // ---- execution page --------------------------------------------------------------------------
  var liveScript = document.getElementById("execution-live");
  if (!liveScript) { return; }
  var live = JSON.parse(liveScript.textContent);
  var chartData = JSON.parse(document.getElementById("chart-data").textContent);
  var TERMINAL = ["execution.completed", "execution.failed", "execution.stopped", "execution.suspended"];
  var totalRounds = chartData.total_rounds;

  var charts = [];
  var completedRounds = chartData.rounds.length;
  var noPointYet = function () {
    return completedRounds ? "This model reports no such metric." : "No completed round yet.";
  };
  if (window.PollenChart) {
    var accuracyBox = document.getElementById("accuracy-chart");
    var lossBox = document.getElementById("loss-chart");
    charts.push(window.PollenChart.line(accuracyBox, {
      title: "Accuracy", series: [{key: "accuracy", label: "Accuracy"}], yMin: 0, yMax: 1, xMax: totalRounds,
      empty: noPointYet
    }));
    charts.push(window.PollenChart.line(lossBox, {
      title: "Loss", series: [{key: "loss", label: "Evaluation loss"}, {key: "train_loss", label: "Training loss"}],
      yMin: 0, xMax: totalRounds, empty: noPointYet
    }));
    chartData.rounds.forEach(function (point) {
      charts.forEach(function (chart) { chart.set(point.round, point); });
    });
    charts.forEach(function (chart) { chart.render(); });
  }

  var logBox = document.getElementById("execution-log");
  if (logBox) { logBox.scrollTop = logBox.scrollHeight; }  // newest lines last, in view

  function number(value, digits) {
    return typeof value === "number" && isFinite(value) ? value.toFixed(digits) : "—";
  }

  function firstNumber() {
    for (var i = 0; i < arguments.length; i++) {
      if (typeof arguments[i] === "number" && isFinite(arguments[i])) { return arguments[i]; }
    }
    return null;
  }

  function setText(id, value) {
    var element = document.getElementById(id);
    if (element) { element.textContent = value; }
  }

  var shownStatus = live.status;

  function setStatus(status) {
    shownStatus = status;
    var badge = document.getElementById("execution-status");
    if (badge) {
      badge.textContent = status;
      badge.className = "badge " + status;
    }
    // buttons that only make sense in this status (Suspend once a pending run starts)
    document.querySelectorAll("[data-show-when]").forEach(function (element) {
      element.hidden = element.dataset.showWhen !== status;
    });
  }

  function setProgress(done, total) {
    if (total) { totalRounds = total; }
    var bar = document.getElementById("execution-progress");
    if (bar) { bar.max = totalRounds; bar.value = done; }
    setText("progress-text", "Round " + done + " of " + totalRounds);
    setText("progress-percent", totalRounds ? String(Math.floor(100 * done / totalRounds)) : "0");
  }

  var COLUMNS = ["number", "status", "participants", "train_loss", "eval_accuracy", "eval_loss", "accuracy", "loss",
                 "duration", "checkpoint"];
  var NUMERIC = ["participants", "train_loss", "eval_accuracy", "eval_loss", "accuracy", "loss", "duration"];
  var tbody = document.querySelector("#rounds tbody");
  var participants = {};  // round -> node ids seen in client.update_received

  function roundRow(round) {
    var row = tbody.querySelector('tr[data-round="' + round + '"]');
    if (row) { return row; }
    var placeholder = tbody.querySelector("tr.empty");
    if (placeholder) { tbody.removeChild(placeholder); }
    row = document.createElement("tr");
    row.dataset.round = String(round);
    COLUMNS.forEach(function (column) {
      var cell = document.createElement("td");
      cell.dataset.col = column;
      if (NUMERIC.indexOf(column) >= 0) { cell.className = "num"; }
      cell.textContent = column === "number" ? String(round) : (column === "participants" ? "0" : "—");
      row.appendChild(cell);
    });
    // rows arrive in order; a resumed run may rewrite a later one, so keep the table sorted anyway
    var after = Array.prototype.filter.call(tbody.querySelectorAll("tr[data-round]"), function (other) {
      return Number(other.dataset.round) > round;
    })[0];
    tbody.insertBefore(row, after || null);
    return row;
  }

  function cell(row, column) { return row.querySelector('td[data-col="' + column + '"]'); }

  function setRoundStatus(row, status) {
    var target = cell(row, "status");
    target.textContent = "";
    var badge = document.createElement("span");
    badge.className = "badge " + status;
    badge.textContent = status;
    target.appendChild(badge);
  }

  function logLine(message) {
    var log = document.getElementById("execution-log");
    if (!log) { return; }
    var empty = log.querySelector("li.empty");
    if (empty) { log.removeChild(empty); }
    var item = document.createElement("li");
    item.className = "live";
    var time = document.createElement("time");
    time.textContent = new Date().toTimeString().slice(0, 8);
    item.appendChild(time);
    item.appendChild(document.createTextNode(" " + message));
    log.appendChild(item);
    log.scrollTop = log.scrollHeight;
  }

  function roundCompleted(data) {
    var metrics = data.metrics || {};
    var row = roundRow(data.round);
    setRoundStatus(row, "completed");
    if (typeof metrics.clients_participated === "number") {
      cell(row, "participants").textContent = String(metrics.clients_participated);
    }
    ["train_loss", "eval_accuracy", "eval_loss", "accuracy", "loss"].forEach(function (key) {
      cell(row, key).textContent = number(metrics[key], 4);
    });
    var link = cell(row, "checkpoint");
    if (!link.querySelector("a")) {
      link.textContent = "";
      var anchor = document.createElement("a");
      anchor.href = live.roundsUrl + data.round + "/checkpoint";
      anchor.setAttribute("download", "");
      anchor.textContent = "round " + data.round + ".npz";
      link.appendChild(anchor);
    }
    var accuracy = firstNumber(metrics.accuracy, metrics.eval_accuracy);
    var loss = firstNumber(metrics.loss, metrics.eval_loss);
    setText("headline-accuracy", number(accuracy, 4));
    setText("headline-loss", number(loss, 4));
    completedRounds = Math.max(completedRounds, data.round);
    charts.forEach(function (chart) {
      chart.set(data.round, {accuracy: accuracy, loss: loss, train_loss: metrics.train_loss}).render();
    });
    setProgress(data.round, data.total_rounds);
  }

  var reloading = false;
  var seenCompleted = {};

  function reload() {
    if (!reloading) { reloading = true; window.location.reload(); }
  }

  // Replay from here on every (re)subscription: what happened since the page was drawn, or since
  // the last event this page saw, is sent again by the server.
  var since = live.renderedAt;

  function handle(payload) {
    var data = payload.data || {};
    var name = payload.event;
    if (TERMINAL.indexOf(name) >= 0) {
      reload();  // the page as the server draws it is the truth once the run has ended
      return;
    }
    if (payload.timestamp && name !== "subscribed" && name !== "connection.established") {
      since = payload.timestamp;
    }
    if (name === "execution.started") {
      setStatus("running");
      logLine("Execution started");
    } else if (name === "round.started") {
      setStatus("running");
      setRoundStatus(roundRow(data.round), "collecting");
      setText("progress-text", "Round " + data.round + " of " + (data.total_rounds || totalRounds) + " running");
      logLine("Round " + data.round + " started");
    } else if (name === "client.update_received") {
      var seen = participants[data.round] = participants[data.round] || {};
      seen[data.node_id] = true;
      var row = roundRow(data.round);
      cell(row, "participants").textContent = String(Object.keys(seen).length);
    } else if (name === "round.completed" || name === "metrics.updated") {
      roundCompleted(data);
      if (name === "round.completed" && !seenCompleted[data.round]) {
        seenCompleted[data.round] = true;
        logLine("Round " + data.round + " completed");
      }
    }
  }

  // A completed run has nothing more to say; any other may still change (a resume from another tab).
  if (live.status === "completed" || !window.WebSocket) { return; }
  var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
  var retry = 1000;

  function connect() {
    var socket = new WebSocket(scheme + window.location.host + "/api/v1/ws/");
    socket.addEventListener("open", function () {
      retry = 1000;
      socket.send(JSON.stringify({
        action: "subscribe",
        events: ["round.*", "execution.*", "metrics.updated", "client.update_received"],
        filters: {executionId: live.executionId},
        since: since
      }));
    });
    socket.addEventListener("message", function (message) {
      var payload;
      try { payload = JSON.parse(message.data); } catch (e) { return; }
      if (payload && payload.event) { handle(payload); }
    });
    socket.addEventListener("close", function () {
      if (reloading) { return; }
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 30000);
    });
  }
  connect();
})();
