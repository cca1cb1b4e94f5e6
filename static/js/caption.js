// Caption form keyboard: Ctrl/Cmd+Enter saves and opens the next clip, Ctrl/Cmd+S saves.
(function () {
  "use strict";
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
