// Captions and transcripts. On the clip page: Ctrl/Cmd+Enter saves and opens the next clip, Ctrl/Cmd+S
// saves. On the clip and dataset pages: [data-transcribe] buttons queue a transcription, follow its job
// and show the result. Shared with split.js: window.studio.followJob and window.studio.refreshParts.
(function () {
  "use strict";
  var FINAL = ["succeeded", "failed", "cancelled", "interrupted"];

  // Poll GET /api/v1/jobs/{id} until the job ends: a promise of the job when it succeeded, rejected
  // with the job's error otherwise. onProgress(job) is called on every poll.
  function followJob(jobId, onProgress) {
    return new Promise(function (resolve, reject) {
      var misses = 0;
      function poll() {
        fetch("/api/v1/jobs/" + jobId, { headers: { "Accept": "application/json" } })
          .then(function (response) { return response.json(); })
          .then(function (job) {
            misses = 0;
            if (onProgress) onProgress(job);
            if (job.status === "succeeded") resolve(job);
            else if (FINAL.indexOf(job.status) >= 0) reject(new Error(job.error || "the job was " + job.status));
            else setTimeout(poll, 1000);
          })
          .catch(function () {
            misses += 1;
            if (misses > 5) reject(new Error("connection lost: reload the page to see how the job ended"));
            else setTimeout(poll, 2000);
          });
      }
      poll();
    });
  }

  // Fetch this page again and replace the elements with these ids by their new versions.
  function refreshParts(ids) {
    return fetch(window.location.pathname, { headers: { "Accept": "text/html" } })
      .then(function (response) { return response.text(); })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html");
        ids.forEach(function (id) {
          var now = document.getElementById(id), next = fresh.getElementById(id);
          if (!now || !next) return;
          now.replaceWith(next);
          if (window.htmx) window.htmx.process(next);
        });
      });
  }

  // The answer's error message (the API's {"error": {"message"}}), or the HTTP status.
  function problem(answer) {
    return answer.body && answer.body.error ? answer.body.error.message : "failed (HTTP " + answer.status + ")";
  }

  function say(status, text, failed) {
    if (!status) return;
    status.textContent = text;
    status.classList.toggle("failed", !!failed);
    status.setAttribute("role", failed ? "alert" : "status");
  }

  function percent(job) {
    return job.status === "queued" ? "queued…" : "working… " + Math.round((job.progress || 0) * 100) + " %";
  }

  window.studio = window.studio || {};
  window.studio.followJob = followJob;
  window.studio.refreshParts = refreshParts;
  window.studio.problem = problem;
  window.studio.say = say;
  window.studio.percent = percent;

  // The checked clips that can be transcribed (analysed, with sound: data-speech on their checkbox);
  // rejected ones only while "Include rejected clips" is ticked, as for the other bulk edits.
  function selectedClipIds() {
    var withRejected = document.getElementById("include-rejected");
    withRejected = !!(withRejected && withRejected.checked);
    return Array.prototype.filter.call(document.querySelectorAll('input[name="clip_ids"][data-speech]:checked'),
                                       function (box) { return withRejected || !box.hasAttribute("data-rejected"); })
      .map(function (box) { return Number(box.value); });
  }

  function transcribe(button) {
    var status = document.querySelector(button.getAttribute("data-status"));
    var body;
    if (button.hasAttribute("data-selected")) {
      body = { clip_ids: selectedClipIds() };
      if (!body.clip_ids.length) { say(status, "Select analysed clips with sound first (their checkboxes).", true); return; }
    }
    var buttons = document.querySelectorAll("[data-transcribe]");
    buttons.forEach(function (b) { b.disabled = true; });
    say(status, "queuing…");
    window.studio.postJson(button.getAttribute("data-transcribe"), body)
      .then(function (answer) {
        if (!answer.ok) throw new Error(problem(answer));
        return followJob(answer.body.job_id, function (job) { say(status, "transcribing: " + percent(job)); });
      })
      .then(function () {
        if (body) {  // the dataset page: the cards show the new captions
          if (window.htmx) window.htmx.trigger(document.body, "refresh-grid");
          say(status, "Transcribed " + body.clip_ids.length + " clip(s): check the transcripts marked automatic.");
          return;
        }
        return refreshParts(["transcript-block", "findings"]).then(function () {
          var field = document.getElementById("transcript");
          if (field) field.dispatchEvent(new Event("input", { bubbles: true }));  // updates the preview
          say(document.getElementById("transcribe-status"), "Transcript filled in: check the marked words, then confirm.");
        });
      })
      .catch(function (error) {
        say(document.querySelector(button.getAttribute("data-status")), "Transcription failed: " + error.message, true);
      })
      .then(function () {
        document.querySelectorAll("[data-transcribe]").forEach(function (b) { b.disabled = false; });
      });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-transcribe]");
    if (button) transcribe(button);
  });

  var form = document.getElementById("caption-form");
  if (!form) return;
  function submitWith(id) {
    var button = document.getElementById(id);
    if (button && !button.disabled) form.requestSubmit(button);
    else form.requestSubmit(document.getElementById("save"));
  }
  document.addEventListener("keydown", function (e) {
    var mod = e.ctrlKey || e.metaKey;
    if (mod && e.key === "Enter") { e.preventDefault(); submitWith("save-next"); }
    else if (mod && (e.key === "s" || e.key === "S")) { e.preventDefault(); submitWith("save"); }
  });
})();
