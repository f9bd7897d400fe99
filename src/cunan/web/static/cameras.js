// Camera health follows the cameras while the page is open, from the server-sent events
// stream (event "camera_health"). Without script the page shows the state it was loaded with.
(function () {
  "use strict";
  var holder = document.getElementById("camera-health");
  if (!holder || !window.EventSource) {
    return;
  }
  var TROUBLE = { backing_off: true, failing: true, failed: true };
  // The dashboard's live.js already has the page's stream open: share it (browsers allow
  // few connections per server, and each stream holds one).
  var source = window.cunanEvents || new EventSource(holder.dataset.events);
  if (source.readyState === 1) {
    holder.dataset.live = "open";
  }
  source.addEventListener("open", function () {
    holder.dataset.live = "open";
  });
  source.addEventListener("error", function () {
    holder.dataset.live = "reconnecting";
  });
  source.addEventListener("camera_health", function (event) {
    var data;
    try {
      data = JSON.parse(event.data);
    } catch (e) {
      return;
    }
    var cell = document.getElementById("health-" + String(parseInt(data.camera_id, 10)));
    var state = String(data.state || "");
    // The words come from the page (translated on the server); an unknown state is skipped.
    var words = holder.getAttribute("data-state-" + state.replace(/[^a-z_]/g, ""));
    if (!cell || !words) {
      return;
    }
    cell.dataset.state = state;
    cell.textContent = "";
    var label = document.createElement(TROUBLE[state] ? "strong" : "span");
    label.className = state === "streaming" ? "ok" : TROUBLE[state] ? "bad" : "muted";
    label.textContent = words;
    cell.appendChild(label);
    if (TROUBLE[state] && data.last_error) {
      var detail = document.createElement("span");
      detail.className = "hint";
      detail.textContent = " " + String(data.last_error);
      cell.appendChild(detail);
    }
  });
})();
