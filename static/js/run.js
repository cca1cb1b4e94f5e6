// The run page, live: server-sent events from /api/v1/jobs/{id}/events?html=true update the progress
// header, the log, the loss chart, checkpoints and samples. htmx's sse extension holds the connection
// and swaps in the checkpoint rows and sample tiles the server renders; this script reads the JSON
// events. The "now" buttons ask a running training for a checkpoint or samples at its current step.
// Every row is keyed (log line id, metric step, checkpoint step, sample id), so events received twice
// after a reconnect change nothing.
(function () {
  "use strict";

  var header = document.getElementById("run-header");
  if (!header) return;
  var LIVE = ["queued", "running", "cancelling"];
  var RESUMABLE = ["failed", "cancelled", "interrupted"];
  var chart = new window.LossChart(document.getElementById("loss-chart"));
  var logBox = document.getElementById("log");
  var lastLogId = Number(logBox.getAttribute("data-last-id") || 0);
  var heartbeatAt = header.getAttribute("data-heartbeat-at") ? Date.parse(header.getAttribute("data-heartbeat-at")) : null;
  var status = header.getAttribute("data-status");
  var peakMemory = 0;
  // The worker's ETA (steps and validation samples left) and when it was computed: the time of its
  // step's metric row. It counts down between steps, so it keeps moving while samples render.
  var eta = { seconds: null, at: null, step: -1 };

  function $(id) { return document.getElementById(id); }
  function text(id, value) { var node = $(id); if (node) node.textContent = value; }

  function bytes(count) {
    var units = ["B", "KiB", "MiB", "GiB", "TiB"], value = count, unit = 0;
    while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit++; }
    return unit ? value.toFixed(1) + " " + units[unit] : value + " B";
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    seconds = Math.max(0, Math.round(seconds));
    if (seconds < 60) return seconds + " s";
    var minutes = Math.floor(seconds / 60);
    if (minutes < 60) return minutes + " min " + (seconds % 60) + " s";
    return Math.floor(minutes / 60) + " h " + (minutes % 60) + " min";
  }

  // --- chart controls ---
  var smoothing = $("smoothing"), logScale = $("log-scale");
  function applyControls() {
    text("smoothing-value", Number(smoothing.value).toFixed(2));
    chart.set({ smoothing: Number(smoothing.value), logScale: logScale.checked });
  }
  smoothing.addEventListener("input", applyControls);
  logScale.addEventListener("change", applyControls);
  window.addEventListener("resize", function () { chart.schedule(); });
  applyControls();

  // --- "Save checkpoint now" / "Sample now": POST to the job API, show what is pending or why not ---
  var nowActions = $("now-actions");
  var pending = {};  // request name -> ISO time asked; the worker clears it when the rows arrive
  var REQUEST_LINES = {
    checkpoint: "Checkpoint requested at {at}: the worker saves it after the step in progress.",
    sample: "Samples requested at {at}: the worker renders them after the step in progress."
  };

  // Times without a zone (SQLite drops it) are UTC, as the server wrote them.
  function instant(iso) { return Date.parse(/(Z|[+-]\d\d:?\d\d)$/i.test(iso) ? iso : iso + "Z"); }

  function clock(iso) {
    var moment = new Date(instant(iso));
    return isNaN(moment.getTime()) ? iso : moment.toISOString().substring(11, 19) + " UTC";
  }

  function showPending() {
    text("now-state", Object.keys(pending).sort().filter(function (name) { return REQUEST_LINES[name]; })
      .map(function (name) { return REQUEST_LINES[name].replace("{at}", clock(pending[name])); }).join(" "));
  }

  // A checkpoint or sample made at or after the request's time means the worker carried it out.
  function fulfilled(name, createdAt) {
    if (!pending[name] || !createdAt) return;
    if (instant(createdAt) >= instant(pending[name])) { delete pending[name]; showPending(); }
  }

  function askNow(button) {
    var error = $("now-error");
    button.disabled = true;
    error.hidden = true;
    window.studio.postJson(button.getAttribute("data-now-url"))
      .then(function (answer) {
        var body = answer.body;
        if (answer.ok) { pending = body.requests || {}; showPending(); return; }
        error.textContent = body.error ? body.error.message : "Refused (HTTP " + answer.status + ")";
        error.hidden = false;
      })
      .catch(function () { error.textContent = "Connection lost: try again."; error.hidden = false; })
      .then(function () { button.disabled = false; });
  }

  if (nowActions) {
    try { pending = JSON.parse(nowActions.getAttribute("data-requests") || "{}") || {}; } catch (e) { pending = {}; }
    nowActions.addEventListener("click", function (event) {
      var button = event.target.closest("button[data-now-url]");
      if (button && !button.disabled) askNow(button);
    });
  }

  // --- ETA and device labels ---
  function showEta() {
    if (LIVE.indexOf(status) < 0 || eta.seconds === null) return;
    var left = eta.seconds - Math.max(0, (Date.now() - (eta.at || Date.now())) / 1000);
    text("h-eta", duration(Math.max(0, left)));  // as the server writes it, never negative
  }

  // What ran where: a CPU run has no GPU, and its memory figure is the process's peak resident memory.
  function showDevice(gpu) {
    if (!gpu) return;
    var cpu = gpu === "cpu";
    text("h-gpu-label", cpu ? "Device" : "GPU");
    text("h-gpu", cpu ? "CPU (no GPU)" : gpu);
    text("h-mem-label", cpu ? "Memory (process peak RSS)" : "GPU memory");
  }

  // --- status and progress ---
  function setStatus(value) {
    status = value;
    var badge = $("run-status");
    badge.textContent = value;
    badge.className = "badge job-" + value;
    header.setAttribute("data-status", value);
    $("cancel-form").hidden = LIVE.indexOf(value) < 0 || value === "cancelling";
    $("resume-form").hidden = RESUMABLE.indexOf(value) < 0;
    if (nowActions) nowActions.hidden = value !== "running";
    if (LIVE.indexOf(value) < 0) { pending = {}; showPending(); }
    if (LIVE.indexOf(value) < 0) { text("h-eta", "–"); text("h-heartbeat", "–"); }
  }

  function onProgress(data) {
    if (data.status === "running") heartbeatAt = Date.now();
    text("h-step", data.step);
    if (data.total) {
      text("h-total", data.total);
      var bar = $("run-progress");
      bar.max = data.total;
      bar.value = data.step;
    }
    if (LIVE.indexOf(data.status) >= 0) {
      if (data.eta_s !== eta.seconds) eta = { seconds: data.eta_s, at: Date.now(), step: data.step };
      if (data.eta_s === null) text("h-eta", "–"); else showEta();
    }
    showDevice(data.gpu);
    text("h-message", data.message || "");
    if (data.result && data.result.step_time_s) text("h-speed", Number(data.result.step_time_s).toFixed(2) + " s/step");
  }

  function onStatus(data) {
    setStatus(data.status);
    if (data.worker) text("h-worker", data.worker);
    if (data.attempt) text("h-attempt", data.attempt);
    if (data.heartbeat_at) heartbeatAt = Date.parse(data.heartbeat_at);
    var error = $("h-error");
    error.hidden = !data.error;
    error.textContent = data.error || "";
    var waiting = $("h-waiting");  // why a queued job is not taken (no live worker serves its queue)
    waiting.hidden = !data.waiting_for;
    waiting.textContent = data.waiting_for || "";
  }

  setInterval(function () {
    if (heartbeatAt && LIVE.indexOf(status) >= 0) text("h-heartbeat", duration((Date.now() - heartbeatAt) / 1000) + " ago");
    showEta();
  }, 1000);

  // --- rows ---
  function onLog(line) {
    if (line.id <= lastLogId) return;
    lastLogId = line.id;
    var atBottom = logBox.scrollTop + logBox.clientHeight >= logBox.scrollHeight - 8;
    var span = document.createElement("span");
    span.className = "log-" + line.level;
    span.setAttribute("data-id", line.id);
    span.textContent = (line.ts ? line.ts.substring(11, 19) + " " : "") + line.text + "\n";
    logBox.appendChild(span);
    if (atBottom) logBox.scrollTop = logBox.scrollHeight;
  }

  function onMetric(metric) {
    // the ETA was written with this step's metric: count down from that moment (a replayed row too)
    if (metric.step === eta.step && metric.created_at) {
      eta.at = Math.min(Date.now(), instant(metric.created_at));
      showEta();
    }
    chart.add(metric);
    text("chart-empty", "");
    text("h-speed", Number(metric.step_time).toFixed(2) + " s/step");
    peakMemory = Math.max(peakMemory, metric.gpu_mem || 0);
    if (metric.gpu_mem) text("h-mem", bytes(metric.gpu_mem) + " (peak " + bytes(peakMemory) + ")");
  }

  function onCheckpoint(checkpoint) {
    $("no-checkpoints").hidden = true;
    fulfilled("checkpoint", checkpoint.created_at);
  }

  function onSample(sample) { fulfilled("sample", sample.created_at); }

  // Checkpoint rows and sample tiles arrive rendered (run.checkpoint.html, run.sample.html) and htmx
  // appends them. Each connection replays every row, so a row already shown (the same value of the
  // list's data-row-key attribute) is not added again: it stays when unchanged (a playing sample
  // keeps playing) and is replaced when it changed.
  var liveRoot = $("run-live");
  liveRoot.addEventListener("htmx:sseBeforeMessage", function (event) {
    var list = event.target, key = list.getAttribute("data-row-key");
    if (!key) return;
    var parsed = document.createElement("template");
    parsed.innerHTML = event.detail.data.trim();
    var row = parsed.content.firstElementChild;
    var shown = row && list.querySelector(":scope > [" + key + '="' + row.getAttribute(key) + '"]');
    if (!shown) return;
    event.preventDefault();
    if (!shown.isEqualNode(row)) shown.replaceWith(row);
  });

  // --- the event stream: htmx's sse extension opens it (sse-connect on #run-live), reconnects by itself
  // and closes it on job.end, once the job is over and every row was sent ---
  var listening = null;

  function handler(fn) {
    return function (event) { fn(JSON.parse(event.data)); };
  }

  liveRoot.addEventListener("htmx:sseOpen", function (event) {
    text("stream-state", LIVE.indexOf(status) >= 0 ? "live" : "");
    var source = event.detail.source;
    if (source === listening) return;  // the same EventSource, reconnected by the browser
    listening = source;
    source.addEventListener("job.progress", handler(onProgress));
    source.addEventListener("job.status", handler(onStatus));
    source.addEventListener("job.log", handler(onLog));
    source.addEventListener("run.metric", handler(onMetric));
    source.addEventListener("run.checkpoint", handler(onCheckpoint));
    source.addEventListener("run.sample", handler(onSample));
  });
  liveRoot.addEventListener("htmx:sseError", function () {
    text("stream-state", LIVE.indexOf(status) >= 0 ? "connection lost: reconnecting…" : "");
  });
  liveRoot.addEventListener("htmx:sseClose", function () { text("stream-state", ""); });
})();
