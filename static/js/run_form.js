// The new-run form: remember which editor the person used last (fields or YAML) so the server
// knows which one is the config, and read a chosen official YAML file into its textarea.
(function () {
  "use strict";

  var form = document.getElementById("run-form");
  if (!form) return;
  var source = document.getElementById("form-source");

  form.addEventListener("input", function (event) {
    var side = event.target.closest("[data-side]");
    if (side) source.value = side.getAttribute("data-side");
  });
  form.addEventListener("change", function (event) {
    var side = event.target.closest("[data-side]");
    if (side) source.value = side.getAttribute("data-side");
  });

  // Before a lint request leaves, the source must already say which editor changed.
  document.body.addEventListener("htmx:configRequest", function (event) {
    var side = event.detail.elt && event.detail.elt.getAttribute && event.detail.elt.getAttribute("data-side");
    if (side) event.detail.parameters.source = side;
  });

  form.addEventListener("change", function (event) {
    var input = event.target;
    var target = input.getAttribute("data-fill");
    if (!target || !input.files || !input.files.length) return;
    var reader = new FileReader();
    reader.onload = function () { document.querySelector(target).value = reader.result; };
    reader.readAsText(input.files[0]);
  });
})();
