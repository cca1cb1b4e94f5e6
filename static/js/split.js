// The clip page's split: plan cut points at pauses, draw the parts over the waveform, edit them
// (start/end, merge with next, drop, play), apply. Needs caption.js (window.studio.followJob).
(function () {
  "use strict";
  var section = document.getElementById("split");
  if (!section || !section.hasAttribute("data-plan")) return;
  var studio = window.studio;
  var base = "/api/v1/clips/" + section.getAttribute("data-clip-id");
  var waveSeconds = Number(section.getAttribute("data-wave-seconds")) || 1;
  var clipSeconds = Number(section.getAttribute("data-clip-seconds")) || waveSeconds;
  var fps = Number(section.getAttribute("data-fps")) || 25;
  var minS = Number(section.getAttribute("data-min-s")), maxS = Number(section.getAttribute("data-max-s"));
  var parts = JSON.parse(section.getAttribute("data-plan") || "[]");
  var list = document.getElementById("split-parts");
  var status = document.getElementById("split-status");
  var errorBox = document.getElementById("split-error");
  var player = document.querySelector(".media video, .media audio");

  function frames(length) { return Math.max(1, Math.floor((Math.floor(length * fps + 1e-6) - 1) / 8) * 8 + 1); }

  function problemOf(part) {
    var length = part.end_s - part.start_s;
    if (!(part.start_s >= 0) || !(length > 0)) return "the end must come after the start";
    if (part.end_s > clipSeconds + 0.05) return "ends after the clip (" + clipSeconds.toFixed(2) + " s)";
    if (length < minS - 1e-6) return "too short (at least " + minS.toFixed(2) + " s)";
    if (length > maxS + 1e-6) return "too long (at most " + maxS.toFixed(0) + " s)";
    return "";
  }

  function describe(part) {
    var length = part.end_s - part.start_s, problem = problemOf(part);
    return length.toFixed(2) + " s · " + (problem || frames(length) + " frames");
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function place(node, part) {
    var left = Math.max(0, Math.min(100, part.start_s / waveSeconds * 100));
    var right = Math.max(left, Math.min(100, part.end_s / waveSeconds * 100));
    node.style.left = left + "%";
    node.style.width = (right - left) + "%";
  }

  function drawRegions() {
    var regions = document.getElementById("split-regions"), labels = document.getElementById("split-labels");
    if (!regions || !labels) return;
    regions.textContent = "";
    labels.textContent = "";
    parts.forEach(function (part, i) {
      var bad = problemOf(part) ? " bad" : "";
      var box = el("div", "region" + bad, String(i + 1));
      var label = el("div", "region-label" + bad);
      label.append(el("strong", "", (part.end_s - part.start_s).toFixed(1) + " s"), el("span", "", part.transcript || ""));
      label.title = part.transcript || "";
      place(box, part);
      place(label, part);
      regions.appendChild(box);
      labels.appendChild(label);
    });
    labels.classList.toggle("visible", parts.length > 0);
  }

  function timeInput(i, key, text) {
    var label = el("label", "part-time", text + " ");
    var input = el("input");
    input.type = "number";
    input.step = "0.01";
    input.min = "0";
    input.max = clipSeconds.toFixed(2);
    input.value = parts[i][key].toFixed(2);
    input.setAttribute("data-key", key);
    label.appendChild(input);
    return label;
  }

  function button(text, action, i, label) {
    var node = el("button", "", text);
    node.type = "button";
    node.setAttribute("data-action", action);
    node.setAttribute("aria-label", label + " " + (i + 1));
    return node;
  }

  function drawList(focus) {
    list.textContent = "";
    parts.forEach(function (part, i) {
      var item = el("li", "part");
      item.setAttribute("data-index", i);
      var head = el("div", "part-head");
      head.append(el("strong", "", "Part " + (i + 1)), el("span", "part-length" + (problemOf(part) ? " bad" : ""), describe(part)));
      var merge = button("Merge with next", "merge", i, "Merge with the next part: part");
      merge.disabled = i === parts.length - 1;
      var tools = el("div", "part-actions");
      tools.append(button("Play", "play", i, "Play part"), merge, button("Drop", "drop", i, "Drop part"));
      item.append(head, timeInput(i, "start_s", "Start (s)"), timeInput(i, "end_s", "End (s)"),
                  el("p", "part-words", part.transcript ? "“" + part.transcript + "”" : "no words heard"), tools);
      list.appendChild(item);
    });
    document.getElementById("split-editor").hidden = parts.length === 0;
    drawRegions();
    if (focus) focus();
  }

  function fail(message) {
    errorBox.textContent = message;
    var match = /^Part (\d+)/.exec(message);  // the API names the part it refuses
    var row = match && list.querySelector('[data-index="' + (Number(match[1]) - 1) + '"]');
    if (row) row.classList.add("refused");
  }

  function busy(on) {
    section.querySelectorAll("button").forEach(function (b) { b.disabled = on; });
    document.querySelectorAll("[data-plan-split]").forEach(function (b) { b.disabled = on; });
    if (!on) drawList();  // restores the merge buttons' own disabled state
  }

  function plan() {
    errorBox.textContent = "";
    section.scrollIntoView({ block: "nearest" });
    busy(true);
    studio.say(status, "queuing…");
    studio.postJson(base + "/split-plan")
      .then(function (answer) {
        if (!answer.ok) throw new Error(studio.problem(answer));
        return studio.followJob(answer.body.job_id, function (job) { studio.say(status, "planning: " + studio.percent(job)); });
      })
      .then(function () { return fetch(base + "/split-plan", { headers: { "Accept": "application/json" } }); })
      .then(function (response) { return response.json(); })
      .then(function (body) {
        if (!body.parts) throw new Error(body.error ? body.error.message : "no plan came back");
        parts = body.parts;
        studio.say(status, "Planned " + parts.length + " parts: check them, then apply.");
        document.getElementById("plan-split").textContent = "Plan again";
        // planning recognised the words: show them, unless the person is editing the transcript
        var field = document.getElementById("transcript");
        var ids = field && field.value !== field.defaultValue ? ["findings"] : ["transcript-block", "findings"];
        return studio.refreshParts(ids).then(function () {
          var fresh = document.getElementById("transcript");
          if (fresh && fresh !== field) fresh.dispatchEvent(new Event("input", { bubbles: true }));  // the preview
        }).catch(function () { /* the plan is shown all the same */ });
      })
      .catch(function (error) { studio.say(status, "", false); fail("Planning failed: " + error.message); })
      .then(function () { busy(false); });
  }

  function apply() {
    errorBox.textContent = "";
    list.querySelectorAll(".refused").forEach(function (row) { row.classList.remove("refused"); });
    busy(true);
    studio.say(status, "queuing…");
    var body = { parts: parts.map(function (p) { return { start_s: p.start_s, end_s: p.end_s }; }) };
    studio.postJson(base + "/split", body)
      .then(function (answer) {
        if (!answer.ok) throw new Error(studio.problem(answer));
        return studio.followJob(answer.body.job_id, function (job) { studio.say(status, "cutting: " + studio.percent(job)); });
      })
      .then(function () { return studio.refreshParts(["split", "findings"]); })
      .then(function () {
        parts = [];
        drawRegions();
        var heading = document.querySelector("#split h2");
        if (heading) { heading.tabIndex = -1; heading.focus(); }
      })
      .catch(function (error) { studio.say(status, "", false); busy(false); fail(error.message); });
  }

  function play(part) {
    if (!player) return;
    player.currentTime = part.start_s;
    var stop = function () {
      if (player.currentTime >= part.end_s) { player.pause(); player.removeEventListener("timeupdate", stop); }
    };
    player.addEventListener("timeupdate", stop);
    player.play();
  }

  list.addEventListener("input", function (event) {
    var input = event.target, row = input.closest(".part"), value = parseFloat(input.value);
    if (!row || isNaN(value)) return;
    var part = parts[Number(row.getAttribute("data-index"))];
    part[input.getAttribute("data-key")] = value;
    var length = row.querySelector(".part-length");
    length.textContent = describe(part);
    length.classList.toggle("bad", !!problemOf(part));
    drawRegions();
  });

  list.addEventListener("click", function (event) {
    var target = event.target.closest("button[data-action]");
    if (!target) return;
    var i = Number(target.closest(".part").getAttribute("data-index"));
    var action = target.getAttribute("data-action");
    if (action === "play") { play(parts[i]); return; }
    if (action === "merge") {
      var next = parts[i + 1];
      parts[i] = { start_s: parts[i].start_s, end_s: next.end_s,
                   transcript: [parts[i].transcript, next.transcript].filter(Boolean).join(" ") };
      parts.splice(i + 1, 1);
    } else {
      parts.splice(i, 1);
    }
    drawList(function () {  // keep the keyboard where it was
      var rows = list.querySelectorAll(".part");
      var row = rows[Math.min(i, rows.length - 1)];
      (row ? row.querySelector("input") : document.getElementById("plan-split")).focus();
    });
  });

  document.addEventListener("click", function (event) {
    if (event.target.closest("[data-plan-split]")) plan();
    else if (event.target.closest("#apply-split")) apply();
  });

  drawList();
})();
