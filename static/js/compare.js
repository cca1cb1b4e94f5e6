// Compare page: one transport for the grid of samples, keyboard moves, metric charts and blind A/B keys.
// No inline scripts: everything is wired from data attributes.
(function () {
  "use strict";

  // ------------------------------------------------------------------ grid and transport
  var grid = document.getElementById("compare-grid");
  var state = { row: 0, col: 0, sequence: null, current: null };

  function checked(id) { var box = document.getElementById(id); return !!(box && box.checked); }
  function toggle(id) { var box = document.getElementById(id); if (box) { box.checked = !box.checked; box.dispatchEvent(new Event("change")); } }
  function cellAt(row, col) { return grid ? grid.querySelector('td.cell[data-row="' + row + '"][data-col="' + col + '"]') : null; }
  function audioOf(cell) { return cell ? cell.querySelector("audio.cell-audio") : null; }
  function rowCount() { return grid ? grid.querySelectorAll("tbody tr[data-row]").length : 0; }
  function colCount() { return grid ? grid.querySelectorAll("thead th[data-col]").length : 0; }
  function say(text) { var out = document.getElementById("now-playing"); if (out) out.textContent = text; }

  function describe(cell) {
    var row = Number(cell.getAttribute("data-row")) + 1;
    var name = cell.parentNode && cell.parentNode.getAttribute("data-row-name");
    return cell.getAttribute("data-label") + " (" + (name || "prompt " + row) + ")";
  }

  function focusCell(row, col) {
    var cell = cellAt(row, col);
    if (!cell) return null;
    grid.querySelectorAll("td.cell.current").forEach(function (c) { c.classList.remove("current"); c.tabIndex = -1; });
    cell.classList.add("current");
    cell.tabIndex = 0;
    cell.focus({ preventScroll: false });
    state.row = row; state.col = col;
    return cell;
  }

  function allMedia() { return document.querySelectorAll("audio, video"); }

  function stopAll() {
    state.sequence = null;
    allMedia().forEach(function (m) { m.pause(); });
    say("Nothing playing");
  }

  function playCell(cell, at) {
    var audio = audioOf(cell);
    if (!audio) return false;
    if (checked("solo")) allMedia().forEach(function (m) { if (m !== audio) m.pause(); });
    audio.loop = checked("loop") && !state.sequence;
    if (typeof at === "number" && isFinite(at)) {
      audio.currentTime = audio.duration && at > audio.duration ? 0 : at;
    }
    state.current = audio;
    var started = audio.play();
    if (started && started.catch) started.catch(function (err) { say("Cannot play: " + err.message); });
    say("Playing " + describe(cell));
    return true;
  }

  function playingAudio() {
    var found = null;
    if (!grid) return null;
    grid.querySelectorAll("audio.cell-audio").forEach(function (a) { if (!a.paused) found = a; });
    return found;
  }

  // Move to another cell; while something plays, switch playback there (at the same position if asked).
  function moveTo(row, col) {
    var playing = playingAudio();
    var position = playing ? playing.currentTime : null;
    var cell = focusCell(row, col);
    if (!cell || !playing) return;
    state.sequence = null;
    if (checked("same-position")) playCell(cell, position); else playCell(cell, 0);
  }

  function toggleCurrent() {
    var cell = cellAt(state.row, state.col);
    var audio = audioOf(cell);
    if (!audio) return;
    if (!audio.paused) { audio.pause(); say("Paused"); return; }
    state.sequence = null;
    playCell(cell);
  }

  // Play every cell of the current row in turn. With "same position" on, each cell starts where the
  // current cell stands (click a waveform to choose the moment), so all are heard from that point.
  function playRow() {
    var cells = grid ? Array.prototype.filter.call(
      grid.querySelectorAll('td.cell[data-row="' + state.row + '"]'), function (c) { return !!audioOf(c); }) : [];
    if (!cells.length) { say("This row has nothing to play"); return; }
    var current = audioOf(cellAt(state.row, state.col));
    var start = checked("same-position") && current ? current.currentTime : 0;
    if (current && current.duration && start >= current.duration - 0.05) start = 0;  // it had played to the end
    stopAll();
    state.sequence = { cells: cells, index: 0, start: start };
    focusCell(state.row, Number(cells[0].getAttribute("data-col")));
    playCell(cells[0], start);
  }

  function onEnded(event) {
    var seq = state.sequence;
    if (!seq && event.target === state.current && !event.target.loop) {
      var cell = event.target.closest("td.cell");
      say("Finished " + (cell ? describe(cell) : "playing"));  // not "Playing …" after the end
      return;
    }
    if (!seq || event.target !== audioOf(seq.cells[seq.index])) return;
    seq.index += 1;
    if (seq.index >= seq.cells.length) {
      if (!checked("loop")) { state.sequence = null; say("Row finished"); return; }
      seq.index = 0;
    }
    var next = seq.cells[seq.index];
    focusCell(Number(next.getAttribute("data-row")), Number(next.getAttribute("data-col")));
    playCell(next, seq.start);
  }

  function markPlaying() {
    if (!grid) return;
    grid.querySelectorAll("td.cell").forEach(function (cell) {
      var audio = audioOf(cell);
      cell.classList.toggle("playing", !!audio && !audio.paused);
    });
  }

  function movePlayhead(event) {
    var audio = event.target;
    var cell = audio.closest ? audio.closest("td.cell") : null;
    var head = cell ? cell.querySelector(".playhead") : null;
    if (head && audio.duration) head.style.left = (100 * audio.currentTime / audio.duration) + "%";
  }

  if (grid) {
    grid.addEventListener("ended", onEnded, true);
    grid.addEventListener("play", markPlaying, true);
    grid.addEventListener("pause", markPlaying, true);
    grid.addEventListener("timeupdate", movePlayhead, true);
    grid.addEventListener("click", function (event) {
      var cell = event.target.closest("td.cell");
      if (!cell) return;
      var row = Number(cell.getAttribute("data-row")), col = Number(cell.getAttribute("data-col"));
      var wave = event.target.closest("[data-seek]");
      focusCell(row, col);
      if (wave) {  // click on the waveform: play from there
        var audio = audioOf(cell);
        var box = wave.getBoundingClientRect();
        var fraction = Math.min(1, Math.max(0, (event.clientX - box.left) / box.width));
        state.sequence = null;
        playCell(cell, audio && audio.duration ? fraction * audio.duration : 0);
      }
    });
    // A cell focused any other way (Tab, a script) becomes the current one.
    grid.addEventListener("focusin", function (event) {
      var cell = event.target.closest && event.target.closest("td.cell");
      if (!cell || cell.classList.contains("current")) return;
      grid.querySelectorAll("td.cell.current").forEach(function (c) { c.classList.remove("current"); c.tabIndex = -1; });
      cell.classList.add("current");
      cell.tabIndex = 0;
      state.row = Number(cell.getAttribute("data-row"));
      state.col = Number(cell.getAttribute("data-col"));
    });
    focusCell(0, 0);
    window.scrollTo(0, 0);
  }

  // Solo also applies to videos and the blind players: one sound at a time.
  document.addEventListener("play", function (event) {
    if (!checked("solo")) return;
    allMedia().forEach(function (m) { if (m !== event.target) m.pause(); });
  }, true);

  document.addEventListener("change", function (event) {
    if (event.target.id === "loop" && state.current) state.current.loop = event.target.checked && !state.sequence;
  });

  var transport = document.getElementById("transport");
  if (transport) {
    transport.addEventListener("click", function (event) {
      var button = event.target.closest("[data-action]");
      if (!button) return;
      var action = button.getAttribute("data-action");
      if (action === "play-row") playRow();
      else if (action === "toggle") toggleCurrent();
      else if (action === "stop") stopAll();
    });
  }

  function typing(target) {
    return target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
  }

  document.addEventListener("keydown", function (event) {
    if (!grid || event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    var inGrid = event.target === document.body || grid.contains(event.target);
    if (!inGrid) return;
    var key = event.key;
    var handled = true;
    if (key === "ArrowRight") moveTo(state.row, Math.min(colCount() - 1, state.col + 1));
    else if (key === "ArrowLeft") moveTo(state.row, Math.max(0, state.col - 1));
    else if (key === "ArrowDown") moveTo(Math.min(rowCount() - 1, state.row + 1), state.col);
    else if (key === "ArrowUp") moveTo(Math.max(0, state.row - 1), state.col);
    else if (key === " " || key === "Spacebar") toggleCurrent();
    else if (/^[1-9]$/.test(key) && Number(key) <= colCount()) moveTo(state.row, Number(key) - 1);
    else if (key === "r" || key === "R") playRow();
    else if (key === "l" || key === "L") toggle("loop");
    else if (key === "s" || key === "S") toggle("solo");
    else if (key === "Escape") stopAll();
    else handled = false;
    if (handled) event.preventDefault();
  });

  // ------------------------------------------------------------------ blind A/B keys
  document.addEventListener("keydown", function (event) {
    var panel = document.getElementById("blind-panel");
    if (!panel || !panel.contains(event.target) || typing(event.target)) return;
    var letter = event.key.toLowerCase();
    if (letter !== "a" && letter !== "b") return;
    var player = document.getElementById("blind-" + letter);
    if (!player) return;
    event.preventDefault();
    player.currentTime = 0;
    player.play();
  });

  // ------------------------------------------------------------------ per-side strength samples
  var strengthForm = document.getElementById("strength-form");
  if (strengthForm) strengthForm.addEventListener("submit", function (event) {
    event.preventDefault();
    var status = document.getElementById("strength-status");
    var step = strengthForm.elements.step.value;
    var body = { video_strength: Number(strengthForm.elements.video_strength.value),
                 audio_strength: Number(strengthForm.elements.audio_strength.value) };
    status.textContent = "Queueing…";
    var url = strengthForm.getAttribute("data-url").replace("STEP", encodeURIComponent(step));
    window.studio.postJson(url, body).then(function (answer) {
      if (!answer.ok) {
        var error = answer.body.error || {};
        status.textContent = error.message || "The samples could not be queued.";
        return;
      }
      status.textContent = "Job #" + answer.body.job_id + " queued (" + answer.body.variant + "). ";
      var link = document.createElement("a");
      link.href = strengthForm.getAttribute("data-show-url");
      link.textContent = "Show the strength columns";
      status.appendChild(link);
    }).catch(function (err) { status.textContent = "The samples could not be queued: " + err.message; });
  });

  // ------------------------------------------------------------------ metric charts
  var COLOURS = { lora: "#5aa9ff", "lora-audio-off": "#5fd38d", base: "#f0b84a" };
  // Metrics whose values live in a fixed range ([low, high], null: open): the axis stays inside it,
  // so a clipping ratio of 0 everywhere is drawn on 0..1, not on -1.16..1.16.
  var RANGES = { clipping_ratio: [0, 1], speech_ratio: [0, 1], spectral_flatness: [0, 1], wer: [0, null],
                 speaker_similarity: [-1, 1], quality_mos: [1, 5] };

  // The y axis for these values: padded by 8 %, widened when flat, kept inside the metric's range.
  function axisFor(metric, values) {
    var y0 = Math.min.apply(null, values), y1 = Math.max.apply(null, values);
    if (y1 === y0) { y0 -= 1; y1 += 1; }
    var span = y1 - y0; y0 -= span * 0.08; y1 += span * 0.08;
    var range = RANGES[metric];
    if (range && range[0] !== null) y0 = Math.max(y0, range[0]);
    if (range && range[1] !== null) y1 = Math.min(y1, range[1]);
    return [y0, y1];
  }

  function drawChart(canvas) {
    var chart;
    try { chart = JSON.parse(canvas.getAttribute("data-chart")); } catch (e) { return; }
    var ctx = canvas.getContext("2d");
    var w = canvas.width, h = canvas.height, pad = { l: 42, r: 8, t: 10, b: 20 };
    ctx.clearRect(0, 0, w, h);
    ctx.font = "10px system-ui, sans-serif";
    var steps = [], values = [];
    Object.keys(chart.series).forEach(function (variant) {
      chart.series[variant].forEach(function (p) { if (variant !== "base") steps.push(p[0]); values.push(p[1]); });
    });
    (chart.flags || []).forEach(function (f) { steps.push(f[0]); });
    var guide = typeof chart.guide === "number" ? chart.guide : null;
    if (!values.length) {
      ctx.fillStyle = "#9aa3ae";
      ctx.fillText("no measurements yet", pad.l, h / 2);
      return;
    }
    var x0 = Math.min.apply(null, steps.length ? steps : [0]), x1 = Math.max.apply(null, steps.length ? steps : [1]);
    if (x1 === x0) { x0 -= 1; x1 += 1; }
    var axis = axisFor(chart.metric, values.concat(guide === null ? [] : [guide]));
    var y0 = axis[0], y1 = axis[1];
    canvas.setAttribute("data-axis", y0 + " " + y1);
    function X(step) { return pad.l + (step - x0) / (x1 - x0) * (w - pad.l - pad.r); }
    function Y(value) { return h - pad.b - (value - y0) / (y1 - y0) * (h - pad.t - pad.b); }
    ctx.strokeStyle = "#2b323c"; ctx.lineWidth = 1;
    ctx.strokeRect(pad.l, pad.t, w - pad.l - pad.r, h - pad.t - pad.b);
    ctx.fillStyle = "#9aa3ae";
    ctx.fillText(y1.toPrecision(3), 2, pad.t + 8);
    ctx.fillText(y0.toPrecision(3), 2, h - pad.b);
    ctx.fillText("step " + x0, pad.l, h - 6);
    ctx.fillText(String(x1), w - pad.r - 24, h - 6);
    if (guide !== null) {  // a fixed threshold (e.g. "another speaker" for voice similarity): dotted
      ctx.strokeStyle = "#9aa3ae"; ctx.lineWidth = 1; ctx.setLineDash([1, 3]);
      ctx.beginPath(); ctx.moveTo(pad.l, Y(guide)); ctx.lineTo(w - pad.r, Y(guide)); ctx.stroke();
      ctx.setLineDash([]);
    }
    Object.keys(chart.series).forEach(function (variant) {
      var points = chart.series[variant];
      ctx.strokeStyle = COLOURS[variant] || "#e6e8eb"; ctx.fillStyle = ctx.strokeStyle; ctx.lineWidth = 1.5;
      if (variant === "base") {  // one value (rendered once): a dashed line across
        var mean = points.reduce(function (s, p) { return s + p[1]; }, 0) / points.length;
        ctx.setLineDash([4, 3]);
        ctx.beginPath(); ctx.moveTo(pad.l, Y(mean)); ctx.lineTo(w - pad.r, Y(mean)); ctx.stroke();
        ctx.setLineDash([]);
        return;
      }
      ctx.beginPath();
      points.forEach(function (p, i) { if (i) ctx.lineTo(X(p[0]), Y(p[1])); else ctx.moveTo(X(p[0]), Y(p[1])); });
      ctx.stroke();
      points.forEach(function (p) { ctx.beginPath(); ctx.arc(X(p[0]), Y(p[1]), 2.5, 0, 2 * Math.PI); ctx.fill(); });
    });
    ctx.fillStyle = "#ff6b7a";
    (chart.flags || []).forEach(function (f) {
      ctx.beginPath(); ctx.moveTo(X(f[0]) - 4, pad.t); ctx.lineTo(X(f[0]) + 4, pad.t); ctx.lineTo(X(f[0]), pad.t + 7); ctx.fill();
    });
  }

  document.querySelectorAll("canvas[data-chart]").forEach(drawChart);
})();
