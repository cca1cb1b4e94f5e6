// Drag-and-drop upload: one request per file so each shows its own progress (XHR upload events).
(function () {
  "use strict";
  var zone = document.getElementById("upload-zone");
  if (!zone) return;
  var input = document.getElementById("file-input");
  var list = document.getElementById("upload-list");
  var url = zone.getAttribute("data-upload-url");
  var csrf = window.studio.csrfToken();
  var queue = [];
  var active = 0;
  var MAX_PARALLEL = 2;

  function row(file) {
    var li = document.createElement("li");
    var name = document.createElement("span");
    name.className = "upload-name";
    name.textContent = file.name;
    var bar = document.createElement("progress");
    bar.max = 100;
    bar.value = 0;
    var note = document.createElement("span");
    note.className = "upload-note";
    note.textContent = "waiting";
    li.append(name, bar, note);
    list.appendChild(li);
    return { li: li, bar: bar, note: note };
  }

  function describe(xhr) {
    try {
      var body = JSON.parse(xhr.responseText);
      if (body.error) return body.error.message;
      if (Array.isArray(body)) {
        return body.map(function (e) { return e.error ? e.error.message : "uploaded: its check shows in the clips below"; }).join("; ");
      }
    } catch (e) { /* not JSON */ }
    return "failed (HTTP " + xhr.status + ")";
  }

  function send(item) {
    active += 1;
    var form = new FormData();
    form.append("files", item.file, item.file.name);
    var xhr = new XMLHttpRequest();
    xhr.open("POST", url);
    xhr.setRequestHeader("X-CSRF-Token", csrf);
    xhr.upload.addEventListener("progress", function (e) {
      if (e.lengthComputable) {
        item.ui.bar.value = Math.round((e.loaded / e.total) * 100);
        item.ui.note.textContent = item.ui.bar.value + " %";
      }
    });
    xhr.addEventListener("loadend", function () {
      var ok = xhr.status >= 200 && xhr.status < 300;
      item.ui.bar.value = 100;
      item.ui.li.className = ok ? "ok" : "failed";
      item.ui.note.textContent = xhr.status === 0 ? "connection lost: try again" : describe(xhr);
      active -= 1;
      if (ok && window.htmx) window.htmx.trigger(document.body, "refresh-grid");
      next();
    });
    item.ui.note.textContent = "uploading";
    xhr.send(form);
  }

  function next() {
    while (active < MAX_PARALLEL && queue.length) send(queue.shift());
  }

  function add(files) {
    Array.prototype.forEach.call(files, function (file) { queue.push({ file: file, ui: row(file) }); });
    next();
  }

  ["dragenter", "dragover"].forEach(function (type) {
    zone.addEventListener(type, function (e) { e.preventDefault(); zone.classList.add("dragging"); });
  });
  ["dragleave", "drop"].forEach(function (type) {
    zone.addEventListener(type, function (e) { e.preventDefault(); zone.classList.remove("dragging"); });
  });
  zone.addEventListener("drop", function (e) { if (e.dataTransfer) add(e.dataTransfer.files); });
  function picked() { add(input.files); input.value = ""; }
  input.addEventListener("change", picked);
  // files chosen while the page was still loading (before this deferred script ran) are sent too
  if (input.files && input.files.length) picked();
})();
