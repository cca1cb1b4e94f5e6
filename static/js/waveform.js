// Draws the waveform of a wav into <canvas class="waveform" data-wav="URL"> (min/max per pixel column).
(function () {
  "use strict";

  function draw(canvas, samples) {
    var ctx = canvas.getContext("2d");
    var width = canvas.width, height = canvas.height, middle = height / 2;
    ctx.fillStyle = "#0d1014";
    ctx.fillRect(0, 0, width, height);
    ctx.strokeStyle = "#5aa9ff";
    ctx.beginPath();
    var perColumn = Math.max(1, Math.floor(samples.length / width));
    for (var x = 0; x < width; x++) {
      var low = 1, high = -1, start = x * perColumn;
      for (var i = start; i < start + perColumn && i < samples.length; i++) {
        if (samples[i] < low) low = samples[i];
        if (samples[i] > high) high = samples[i];
      }
      if (high < low) continue;
      ctx.moveTo(x + 0.5, middle - high * middle);
      ctx.lineTo(x + 0.5, middle - low * middle + 1);
    }
    ctx.stroke();
    canvas.setAttribute("data-drawn", "1");
  }

  function load(canvas) {
    if (canvas.getAttribute("data-drawn")) return;
    var AudioContextClass = window.AudioContext || window.webkitAudioContext;
    if (!AudioContextClass) return;
    fetch(canvas.getAttribute("data-wav"))
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.arrayBuffer();
      })
      .then(function (bytes) {
        var context = new AudioContextClass();
        return context.decodeAudioData(bytes).then(function (buffer) {
          context.close();
          return buffer;
        });
      })
      .then(function (buffer) { draw(canvas, buffer.getChannelData(0)); })
      .catch(function (error) { canvas.setAttribute("aria-label", "Waveform unavailable: " + error.message); });
  }

  function loadAll(root) {
    (root || document).querySelectorAll("canvas.waveform[data-wav]").forEach(load);
  }

  document.addEventListener("DOMContentLoaded", function () { loadAll(document); });
  document.addEventListener("htmx:afterSettle", function (event) { loadAll(event.target); });
})();
