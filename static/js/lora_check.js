// "Check a LoRA" page: the upload form (a form with data-lora-check="<API URL>") is sent with fetch,
// the CSRF header of the page and the file as multipart; on success the browser opens the key
// report's page, otherwise the form's status line says why.
(function () {
  "use strict";

  document.addEventListener("submit", function (event) {
    var form = event.target;
    var url = form.getAttribute("data-lora-check");
    if (!url) return;
    event.preventDefault();
    var status = form.querySelector(".form-status");
    var csrf = document.querySelector('meta[name="csrf-token"]').getAttribute("content");
    status.textContent = "uploading…";
    fetch(url, { method: "POST", body: new FormData(form), headers: { "X-CSRF-Token": csrf } })
      .then(function (response) { return response.json().then(function (body) { return [response, body]; }); })
      .then(function (pair) {
        var body = pair[1];
        if (pair[0].ok && body.page) { window.location = body.page; return; }
        status.textContent = body.error ? body.error.message : "failed (HTTP " + pair[0].status + ")";
      })
      .catch(function () { status.textContent = "connection lost: try again"; });
  });
})();
