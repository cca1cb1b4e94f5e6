// Small behaviours shared by every page (no inline scripts in templates).
(function () {
  "use strict";

  // "select all" for the bulk-edit checkboxes of the clip grid.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-select-all]");
    if (!button) return;
    var boxes = document.querySelectorAll('input[name="clip_ids"]');
    var allChecked = Array.prototype.every.call(boxes, function (b) { return b.checked; });
    boxes.forEach(function (b) { b.checked = !allChecked; });
  });

  // Multipart forms sent to the JSON API (dataset import, LoRA check): fetch with the CSRF header,
  // then open the result: the answer's "page", or the dataset it created.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var url = form.getAttribute("data-api-form");
    if (!url) return;
    event.preventDefault();
    var status = form.querySelector(".form-status");
    var csrf = document.querySelector('meta[name="csrf-token"]').getAttribute("content");
    var refuse = function (message) {  // shown as an error, and read out by screen readers
      status.textContent = message;
      status.classList.add("form-error");
      status.setAttribute("role", "alert");
    };
    status.classList.remove("form-error");
    status.setAttribute("role", "status");
    status.textContent = "uploading…";
    fetch(url, { method: "POST", body: new FormData(form), headers: { "X-CSRF-Token": csrf } })
      .then(function (response) { return response.json().then(function (body) { return [response, body]; }); })
      .then(function (pair) {
        var response = pair[0], body = pair[1];
        if (response.ok && body.page) { window.location = body.page; return; }
        if (response.ok && body.dataset) { window.location = "/datasets/" + body.dataset.id; return; }
        refuse(body.error ? body.error.message : "failed (HTTP " + response.status + ")");
      })
      .catch(function () { refuse("connection lost: try again"); });
  });

  // Forms that need a confirmation (delete).
  document.addEventListener("submit", function (event) {
    var message = event.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) event.preventDefault();
  });
})();
