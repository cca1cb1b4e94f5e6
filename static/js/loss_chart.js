// Loss chart on a <canvas>: video loss and audio loss (left axis, EMA smoothing, optional log
// scale) and the learning rate (right axis). Points are keyed by step, so a metric sent twice
// (a reconnect, a resumed run redoing steps) replaces the earlier one.
(function () {
  "use strict";

  var COLORS = { video: "#5aa9ff", audio: "#f0b84a", lr: "#5fd38d", grid: "#2b323c", text: "#9aa3ae" };
  var PAD = { left: 56, right: 64, top: 12, bottom: 28 };

  function LossChart(canvas) {
    this.canvas = canvas;
    this.points = new Map();
    this.smoothing = 0.6;
    this.logScale = false;
    this.pending = false;
  }

  LossChart.prototype.add = function (metric) {
    this.points.set(metric.step, metric);
    this.schedule();
  };

  LossChart.prototype.set = function (options) {
    if ("smoothing" in options) this.smoothing = options.smoothing;
    if ("logScale" in options) this.logScale = options.logScale;
    this.schedule();
  };

  LossChart.prototype.schedule = function () {
    if (this.pending) return;
    this.pending = true;
    var chart = this;
    window.requestAnimationFrame(function () { chart.pending = false; chart.draw(); });
  };

  function ema(values, weight) {
    var out = [], last = null;
    values.forEach(function (value) {
      if (value === null || value === undefined || !isFinite(value)) { out.push(null); return; }
      last = last === null ? value : last * weight + value * (1 - weight);
      out.push(last);
    });
    return out;
  }

  function range(lists, logScale) {
    var low = Infinity, high = -Infinity;
    lists.forEach(function (list) {
      list.forEach(function (v) {
        if (v === null || !isFinite(v) || (logScale && v <= 0)) return;
        if (v < low) low = v;
        if (v > high) high = v;
      });
    });
    if (low === Infinity) return null;
    if (logScale) { low = Math.log10(low); high = Math.log10(high); }
    if (high - low < 1e-12) { high += 0.5; low -= 0.5; }
    var margin = (high - low) * 0.05;
    return [low - margin, high + margin];
  }

  function label(value) {
    if (value === 0) return "0";
    var size = Math.abs(value);
    return size >= 1000 || size < 0.01 ? value.toExponential(1) : value.toPrecision(3);
  }

  LossChart.prototype.resize = function () {
    var ratio = window.devicePixelRatio || 1;
    var width = Math.max(300, Math.floor(this.canvas.clientWidth || 800));
    var height = Math.max(200, Math.floor(this.canvas.clientHeight || 320));
    if (this.canvas.width !== width * ratio || this.canvas.height !== height * ratio) {
      this.canvas.width = width * ratio;
      this.canvas.height = height * ratio;
    }
    return { width: width, height: height, ratio: ratio };
  };

  LossChart.prototype.draw = function () {
    var size = this.resize();
    var ctx = this.canvas.getContext("2d");
    ctx.setTransform(size.ratio, 0, 0, size.ratio, 0, 0);
    ctx.clearRect(0, 0, size.width, size.height);
    var steps = Array.from(this.points.keys()).sort(function (a, b) { return a - b; });
    var chart = this;
    var rows = steps.map(function (step) { return chart.points.get(step); });
    this.canvas.setAttribute("data-points", String(rows.length));
    if (!rows.length) return;

    var plot = { x: PAD.left, y: PAD.top, w: size.width - PAD.left - PAD.right, h: size.height - PAD.top - PAD.bottom };
    var video = rows.map(function (r) { return r.loss_video; });
    var audio = rows.map(function (r) { return r.loss_audio; });
    var lr = rows.map(function (r) { return r.lr; });
    var weight = this.smoothing;
    var videoSmooth = ema(video, weight), audioSmooth = ema(audio, weight);
    var lossRange = range([video, audio], this.logScale);
    var lrRange = range([lr], false);
    var first = steps[0], last = steps[steps.length - 1] === first ? first + 1 : steps[steps.length - 1];
    var logScale = this.logScale;

    function x(step) { return plot.x + (step - first) / (last - first) * plot.w; }
    function yLoss(v) {
      var value = logScale ? Math.log10(v) : v;
      return plot.y + plot.h - (value - lossRange[0]) / (lossRange[1] - lossRange[0]) * plot.h;
    }
    function yLr(v) { return plot.y + plot.h - (v - lrRange[0]) / (lrRange[1] - lrRange[0]) * plot.h; }

    // grid and axes
    ctx.strokeStyle = COLORS.grid; ctx.fillStyle = COLORS.text; ctx.lineWidth = 1;
    ctx.font = "11px system-ui, sans-serif";
    for (var i = 0; i <= 4; i++) {
      var gy = plot.y + plot.h * i / 4;
      ctx.beginPath(); ctx.moveTo(plot.x, gy); ctx.lineTo(plot.x + plot.w, gy); ctx.stroke();
      if (lossRange) {
        var raw = lossRange[1] - (lossRange[1] - lossRange[0]) * i / 4;
        ctx.textAlign = "right"; ctx.fillText(label(logScale ? Math.pow(10, raw) : raw), plot.x - 6, gy + 4);
      }
      if (lrRange) {
        var lrValue = lrRange[1] - (lrRange[1] - lrRange[0]) * i / 4;
        ctx.textAlign = "left"; ctx.fillText(label(lrValue), plot.x + plot.w + 6, gy + 4);
      }
    }
    ctx.textAlign = "center";
    [first, Math.round((first + last) / 2), last].forEach(function (step) {
      ctx.fillText(String(step), x(step), plot.y + plot.h + 18);
    });

    function line(values, mapY, color, alpha, dash) {
      ctx.save();
      ctx.strokeStyle = color; ctx.globalAlpha = alpha; ctx.lineWidth = 1.5; ctx.setLineDash(dash || []);
      ctx.beginPath();
      var open = false;
      values.forEach(function (v, index) {
        if (v === null || v === undefined || !isFinite(v) || (mapY === yLoss && logScale && v <= 0)) { open = false; return; }
        var px = x(steps[index]), py = mapY(v);
        if (open) ctx.lineTo(px, py); else ctx.moveTo(px, py);
        open = true;
        if (values.length === 1) { ctx.arc(px, py, 2, 0, 2 * Math.PI); }
      });
      ctx.stroke();
      ctx.restore();
    }

    if (lossRange) {
      if (weight > 0) {
        line(video, yLoss, COLORS.video, 0.25);
        line(audio, yLoss, COLORS.audio, 0.25);
      }
      line(videoSmooth, yLoss, COLORS.video, 1);
      line(audioSmooth, yLoss, COLORS.audio, 1);
    }
    if (lrRange) line(lr, yLr, COLORS.lr, 0.9, [5, 4]);
  };

  window.LossChart = LossChart;
})();
