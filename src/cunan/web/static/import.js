// The import page's progress bar, live: import.progress events from the event stream move it,
// and the page reloads for the report once the job has finished. Without script the page
// reloads itself every two seconds (a <noscript> refresh) and has a reload link.
(function () {
  "use strict";
  var bar = document.getElementById("import-progress");
  if (!bar || !window.fetch) {
    return;
  }
  var state = document.getElementById("import-state");
  var finished = false;

  function show(done, total, status) {
    if (finished) {
      return;
    }
    if (status === "done" || status === "failed") {
      finished = true;
      window.location.reload();
      return;
    }
    if (total) {
      bar.value = Math.min(100, Math.round((100 * done) / total));
      bar.textContent = bar.value + "%";
      if (state && state.dataset.template) {
        state.textContent = state.dataset.template
          .replace("{done}", String(done))
          .replace("{total}", String(total));
      }
    }
  }

  // The job's state now (the stream only reports what happens after it opened).
  function poll() {
    fetch(bar.dataset.status, { credentials: "same-origin" })
      .then(function (r) {
        return r.ok ? r.json() : null;
      })
      .then(function (job) {
        if (job) {
          show(job.done, job.total, job.state);
        }
      })
      .catch(function () {});
  }

  if (bar.dataset.events && window.EventSource) {
    var source = new EventSource(bar.dataset.events);
    source.addEventListener("open", poll);
    source.addEventListener("import.progress", function (event) {
      var data;
      try {
        data = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      if (data.job === bar.dataset.job) {
        show(data.done, data.total, data.state);
      }
    });
  } else {
    // No event stream for this role: ask every two seconds instead.
    poll();
    window.setInterval(poll, 2000);
  }
})();
