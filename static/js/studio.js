// Small behaviours shared by every page (no inline scripts in templates), and the helpers the pages'
// scripts share: window.studio.csrfToken() and window.studio.postJson(url, body).
(function () {
  "use strict";

  function csrfToken() {
    return document.querySelector('meta[name="csrf-token"]').getAttribute("content");
  }

  // POST to the JSON API with the CSRF header: a promise of {ok, status, body} (body: the parsed answer).
  // `body` is a FormData (sent as multipart), an object (sent as JSON) or left out. It rejects when the
  // connection is lost or the answer is not JSON.
  function postJson(url, body) {
    var headers = { "X-CSRF-Token": csrfToken(), "Accept": "application/json" };
    if (body !== undefined && !(body instanceof FormData)) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(body);
    }
    return fetch(url, { method: "POST", body: body, headers: headers }).then(function (response) {
      return response.json().then(function (answer) { return { ok: response.ok, status: response.status, body: answer }; });
    });
  }

  window.studio = { csrfToken: csrfToken, postJson: postJson };

  // "select all" for the bulk-edit checkboxes of the clip grid (the rejected ones only while
  // "Include rejected clips" is ticked), and the count of the selection beside the bulk edit.
  function includeRejected() {
    var box = document.getElementById("include-rejected");
    return !!(box && box.checked);
  }

  function countSelected() {
    var out = document.getElementById("selected-count");
    if (!out) return;
    var checked = document.querySelectorAll('input[name="clip_ids"]:checked');
    var rejected = document.querySelectorAll('input[name="clip_ids"][data-rejected]:checked').length;
    var used = includeRejected() ? checked.length : checked.length - rejected;
    var text = used ? used + " clip" + (used === 1 ? "" : "s") + " selected" : "No clips selected";
    if (rejected && !includeRejected()) text += " (" + rejected + " rejected left out)";
    out.textContent = text;
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-select-all]");
    if (!button) return;
    var boxes = Array.prototype.filter.call(document.querySelectorAll('input[name="clip_ids"]'), function (b) {
      return includeRejected() || !b.hasAttribute("data-rejected");
    });
    var allChecked = boxes.length && boxes.every(function (b) { return b.checked; });
    boxes.forEach(function (b) { b.checked = !allChecked; });
    countSelected();
  });
  document.addEventListener("change", function (event) {
    if (event.target.name === "clip_ids" || event.target.id === "include-rejected") countSelected();
  });
  document.addEventListener("htmx:afterSettle", countSelected);  // the grid was swapped: boxes changed
  document.addEventListener("DOMContentLoaded", countSelected);

  // Multipart forms sent to the JSON API (dataset import, LoRA check): fetch with the CSRF header,
  // then open the result: the answer's "page", or the dataset it created.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var url = form.getAttribute("data-api-form");
    if (!url) return;
    event.preventDefault();
    var status = form.querySelector(".form-status");
    var refuse = function (message) {  // shown as an error, and read out by screen readers
      status.textContent = message;
      status.classList.add("form-error");
      status.setAttribute("role", "alert");
    };
    status.classList.remove("form-error");
    status.setAttribute("role", "status");
    status.textContent = "uploading…";
    postJson(url, new FormData(form))
      .then(function (answer) {
        var body = answer.body;
        if (answer.ok && body.page) { window.location = body.page; return; }
        if (answer.ok && body.dataset) { window.location = "/datasets/" + body.dataset.id; return; }
        refuse(body.error ? body.error.message : "failed (HTTP " + answer.status + ")");
      })
      .catch(function () { refuse("connection lost: try again"); });
  });

  // Forms that need a confirmation (delete).
  document.addEventListener("submit", function (event) {
    var message = event.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) event.preventDefault();
  });
})();
