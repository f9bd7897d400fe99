// New cases appear on the dashboard as they open, from the server-sent events stream.
// Without script (or EventSource) the page still lists the open cases when it loads.
(function () {
  "use strict";
  var list = document.getElementById("open-cases");
  if (!list || !window.EventSource) {
    return;
  }
  var source = new EventSource(list.dataset.events);
  // One stream per page: other scripts of the page (cameras.js) listen on this one too.
  window.cunanEvents = source;
  // Marks the list as live (the stream is open): later cases will be added here.
  source.addEventListener("open", function () {
    list.dataset.live = "open";
  });
  source.addEventListener("error", function () {
    list.dataset.live = "reconnecting";
  });
  source.addEventListener("case.opened", function (event) {
    var data;
    try {
      data = JSON.parse(event.data);
    } catch (e) {
      return;
    }
    var id = String(parseInt(data.case_id, 10));
    if (id === "NaN" || document.getElementById("live-case-" + id)) {
      return;
    }
    var empty = list.querySelector(".empty");
    if (empty) {
      list.removeChild(empty);
    }
    var item = document.createElement("li");
    item.id = "live-case-" + id;
    item.className = "new";
    var link = document.createElement("a");
    link.href = "/cases/" + id;
    // The words come from the page (translated on the server); only the values are filled in.
    link.textContent = list.dataset.newCase
      .replace("{id}", id)
      .replace("{camera}", String(data.camera || ""));
    item.appendChild(link);
    list.insertBefore(item, list.firstChild);
  });
})();
