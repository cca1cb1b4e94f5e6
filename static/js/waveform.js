// Draws the waveform of a wav into <canvas class="waveform" data-wav="URL"> (min/max per pixel column),
// and makes waveforms seekable: <div class="seek-wave" data-player="#id" data-seconds="S"> around a
// waveform image or canvas moves that player to the moment clicked (or by a second with the arrow
// keys) and shows a playhead that follows playback.
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

  // ------------------------------------------------------------------ seek and playhead
  function playerOf(wave) {
    var selector = wave.getAttribute("data-player");
    return selector ? document.querySelector(selector) : null;
  }

  // The seconds the waveform spans: its data-seconds (the audio's length), else the player's.
  function spanOf(wave, player) {
    var seconds = parseFloat(wave.getAttribute("data-seconds"));
    if (seconds > 0) return seconds;
    return player && isFinite(player.duration) ? player.duration : 0;
  }

  function headOf(wave) {
    var head = wave.querySelector(".playhead");
    if (!head) {
      head = document.createElement("div");
      head.className = "playhead";
      head.setAttribute("aria-hidden", "true");
      wave.appendChild(head);
    }
    return head;
  }

  function showTime(wave, player) {
    var span = spanOf(wave, player);
    var at = span ? Math.max(0, Math.min(1, player.currentTime / span)) : 0;
    headOf(wave).style.left = (100 * at).toFixed(2) + "%";
    wave.setAttribute("aria-valuenow", player.currentTime.toFixed(2));
    wave.setAttribute("aria-valuetext", player.currentTime.toFixed(1) + " s");
  }

  function seek(wave, seconds) {
    var player = playerOf(wave);
    if (!player) return;
    var span = spanOf(wave, player);
    player.currentTime = Math.max(0, span ? Math.min(span, seconds) : seconds);
    showTime(wave, player);
  }

  function wavesOf(player) {
    return Array.prototype.filter.call(document.querySelectorAll(".seek-wave"), function (wave) {
      return playerOf(wave) === player;
    });
  }

  function showAll(player) {
    wavesOf(player).forEach(function (wave) { showTime(wave, player); });
  }

  // While a player plays, its playheads move every frame (timeupdate alone comes 4 times a second).
  function follow(player) {
    showAll(player);
    if (!player.paused && !player.ended) window.requestAnimationFrame(function () { follow(player); });
  }

  document.addEventListener("click", function (event) {
    var wave = event.target.closest && event.target.closest(".seek-wave");
    if (!wave) return;
    var box = wave.getBoundingClientRect();
    seek(wave, (event.clientX - box.left) / box.width * spanOf(wave, playerOf(wave)));
  });
  document.addEventListener("keydown", function (event) {
    var wave = event.target.closest && event.target.closest(".seek-wave");
    if (!wave || (event.key !== "ArrowLeft" && event.key !== "ArrowRight")) return;
    var player = playerOf(wave);
    if (!player) return;
    event.preventDefault();
    seek(wave, player.currentTime + (event.key === "ArrowRight" ? 1 : -1));
  });
  function isMedia(target) { return target.matches && target.matches("audio, video"); }
  // Media events do not bubble: capture them.
  document.addEventListener("play", function (event) { if (isMedia(event.target)) follow(event.target); }, true);
  ["seeked", "ended"].forEach(function (name) {
    document.addEventListener(name, function (event) { if (isMedia(event.target)) showAll(event.target); }, true);
  });

  document.addEventListener("DOMContentLoaded", function () { loadAll(document); });
  document.addEventListener("htmx:afterSettle", function (event) { loadAll(event.target); });
})();
