// The run page, live: server-sent events from /api/v1/jobs/{id}/events update the progress
// header, the log, the loss chart, checkpoints and samples. The "now" buttons ask a running training
// for a checkpoint or samples at its current step. Every row is keyed (log line id,
// metric step, checkpoint step, sample id), so events received twice after a reconnect change nothing.
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
  var source = null, retryTimer = null, retryDelay = 2000;

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
    var csrf = document.querySelector('meta[name="csrf-token"]').getAttribute("content");
    button.disabled = true;
    error.hidden = true;
    fetch(button.getAttribute("data-now-url"), { method: "POST", headers: { "X-CSRF-Token": csrf, "Accept": "application/json" } })
      .then(function (response) { return response.json().then(function (body) { return [response, body]; }); })
      .then(function (pair) {
        var response = pair[0], body = pair[1];
        if (response.ok) { pending = body.requests || {}; showPending(); return; }
        error.textContent = body.error ? body.error.message : "Refused (HTTP " + response.status + ")";
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
    if (LIVE.indexOf(data.status) >= 0) text("h-eta", data.eta_s === null ? "–" : duration(data.eta_s));
    if (data.gpu) text("h-gpu", data.gpu);
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
  }

  setInterval(function () {
    if (heartbeatAt && LIVE.indexOf(status) >= 0) text("h-heartbeat", duration((Date.now() - heartbeatAt) / 1000) + " ago");
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
    chart.add(metric);
    text("chart-empty", "");
    text("h-speed", Number(metric.step_time).toFixed(2) + " s/step");
    peakMemory = Math.max(peakMemory, metric.gpu_mem || 0);
    if (metric.gpu_mem) text("h-mem", bytes(metric.gpu_mem) + " (peak " + bytes(peakMemory) + ")");
  }

  function link(href, label, download) {
    var a = document.createElement("a");
    a.href = href; a.textContent = label;
    if (download !== false) a.setAttribute("download", "");
    return a;
  }

  function onCheckpoint(checkpoint) {
    var body = document.querySelector("#checkpoints tbody");
    var row = body.querySelector('tr[data-step="' + checkpoint.step + '"]') || document.createElement("tr");
    row.setAttribute("data-step", checkpoint.step);
    row.textContent = "";
    var step = document.createElement("td"); step.textContent = checkpoint.step;
    var layers = document.createElement("td");
    layers.textContent = Object.keys(checkpoint.key_counts || {}).sort().map(function (k) {
      return k + ": " + checkpoint.key_counts[k];
    }).join(", ");
    var table = $("checkpoints");
    var runId = table.getAttribute("data-run-id");
    var best = table.getAttribute("data-best-step") === String(checkpoint.step);
    if (best) {
      var badge = document.createElement("span"); badge.className = "badge best"; badge.textContent = "best";
      step.append(" ", badge);
    }
    var files = document.createElement("td"), check = document.createElement("td");
    if (checkpoint.available) {
      files.appendChild(link(checkpoint.downloads.comfy, "official (ComfyUI)"));
      files.appendChild(document.createTextNode(" · "));
      files.appendChild(link(checkpoint.downloads.diffusers, "diffusers"));
      if (best) {
        var exportUrl = "/api/v1/runs/" + runId + "/checkpoints/" + checkpoint.step + "/export";
        var exports = document.createElement("span"); exports.className = "export-links";
        exports.append("export with model card: ", link(exportUrl + "?layout=comfy&modules=all", "ComfyUI zip"), " · ",
                       link(exportUrl + "?layout=diffusers&modules=all", "diffusers zip"));
        files.append(document.createElement("br"), exports);
      }
      check.appendChild(link("/runs/" + runId + "/checkpoints/" + checkpoint.step + "/key-report", "Key report", false));
    } else {
      files.textContent = "removed (keep_last_n)";
    }
    row.append(step, layers, files, check);
    if (!row.parentNode) {
      var after = Array.prototype.find.call(body.rows, function (r) { return Number(r.getAttribute("data-step")) > checkpoint.step; });
      body.insertBefore(row, after || null);
    }
    $("no-checkpoints").hidden = true;
    fulfilled("checkpoint", checkpoint.created_at);
  }

  function onSample(sample) {
    var grid = $("samples");
    if (grid.querySelector('li[data-id="' + sample.id + '"]')) return;
    var item = document.createElement("li");
    item.className = "sample";
    item.setAttribute("data-id", sample.id);
    var title = document.createElement("p");
    title.className = "sample-title";
    title.textContent = "step " + sample.step + " · prompt " + (sample.prompt_index + 1) + " · ";
    var variant = document.createElement("strong"); variant.textContent = sample.variant;
    title.appendChild(variant);
    var video = document.createElement("video");
    video.className = "player small"; video.controls = true; video.preload = "metadata"; video.src = sample.mp4_url;
    var audio = document.createElement("audio");
    audio.controls = true; audio.preload = "none"; audio.src = sample.wav_url;
    item.append(title, video, audio);
    grid.appendChild(item);
    fulfilled("sample", sample.created_at);
  }

  // --- the event stream (EventSource reconnects by itself with Last-Event-ID; if it gives up, start again) ---
  function handler(fn) {
    return function (event) {
      retryDelay = 2000;
      fn(JSON.parse(event.data));
    };
  }

  function connect() {
    var url = header.getAttribute("data-events-url");
    if (!url) return;
    source = new EventSource(url);
    source.addEventListener("open", function () { text("stream-state", LIVE.indexOf(status) >= 0 ? "live" : ""); });
    source.addEventListener("job.progress", handler(onProgress));
    source.addEventListener("job.status", handler(onStatus));
    source.addEventListener("job.log", handler(onLog));
    source.addEventListener("run.metric", handler(onMetric));
    source.addEventListener("run.checkpoint", handler(onCheckpoint));
    source.addEventListener("run.sample", handler(onSample));
    source.addEventListener("error", function () {
      if (!source) return;
      if (LIVE.indexOf(status) < 0) {  // the job is over and the server ended the stream after its last row
        source.close();
        source = null;
        text("stream-state", "");
        return;
      }
      if (source.readyState === EventSource.CLOSED) {
        source = null;
        text("stream-state", "connection lost: reconnecting in " + Math.round(retryDelay / 1000) + " s…");
        clearTimeout(retryTimer);
        retryTimer = setTimeout(connect, retryDelay);
        retryDelay = Math.min(retryDelay * 2, 30000);
      } else {
        text("stream-state", "connection lost: reconnecting…");
      }
    });
  }

  connect();
})();
