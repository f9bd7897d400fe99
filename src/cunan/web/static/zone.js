// The detection zone editor: drag a rectangle on the camera's current picture and the four
// form fields (full-frame pixels) are filled in; typing in the fields moves the rectangle.
// Without script the picture is shown plain and the numbers are typed.
(function () {
  "use strict";
  var editor = document.getElementById("zone-editor");
  var form = document.getElementById("zone-form");
  if (!editor || !form || !window.fetch || !window.URL) {
    return;
  }
  var names = ["left", "top", "right", "bottom"];
  var fields = {};
  names.forEach(function (name) {
    fields[name] = document.getElementById("zone-" + name);
  });
  var whole = document.getElementById("zone-whole");
  var status = document.createElement("p");
  status.className = "hint";
  status.setAttribute("role", "status");
  status.textContent = editor.dataset.loading;
  editor.appendChild(status);

  function clamp(value, low, high) {
    return Math.min(high, Math.max(low, value));
  }

  function show(blob, frameWidth, frameHeight) {
    var stage = document.createElement("div");
    stage.className = "zone-stage";
    var img = document.createElement("img");
    img.className = "snapshot";
    img.alt = editor.dataset.alt || "";
    img.draggable = false;
    var box = document.createElement("div");
    box.className = "zone-box";
    box.hidden = true;
    stage.appendChild(img);
    stage.appendChild(box);

    // Full-frame pixels per displayed pixel (the picture is scaled to fit the page).
    function scale() {
      return { x: frameWidth / img.clientWidth, y: frameHeight / img.clientHeight };
    }

    function place(left, top, right, bottom) {
      box.hidden = false;
      box.style.left = left + "px";
      box.style.top = top + "px";
      box.style.width = right - left + "px";
      box.style.height = bottom - top + "px";
    }

    function fromFields() {
      var v = names.map(function (name) {
        return parseFloat(fields[name].value);
      });
      if (v.some(isNaN) || v[2] <= v[0] || v[3] <= v[1]) {
        box.hidden = true;
        return;
      }
      var s = scale();
      place(v[0] / s.x, v[1] / s.y, v[2] / s.x, v[3] / s.y);
    }

    function point(event) {
      var rect = img.getBoundingClientRect();
      return {
        x: clamp(event.clientX - rect.left, 0, rect.width),
        y: clamp(event.clientY - rect.top, 0, rect.height),
      };
    }

    var start = null;
    stage.addEventListener("pointerdown", function (event) {
      event.preventDefault();
      start = point(event);
      if (stage.setPointerCapture) {
        stage.setPointerCapture(event.pointerId);
      }
    });
    stage.addEventListener("pointermove", function (event) {
      if (!start) {
        return;
      }
      var p = point(event);
      place(Math.min(start.x, p.x), Math.min(start.y, p.y), Math.max(start.x, p.x), Math.max(start.y, p.y));
    });
    stage.addEventListener("pointerup", function (event) {
      if (!start) {
        return;
      }
      var p = point(event);
      var a = start;
      start = null;
      if (Math.abs(p.x - a.x) < 4 || Math.abs(p.y - a.y) < 4) {
        fromFields(); // a click, not a drag: keep the zone as it was
        return;
      }
      var s = scale();
      var values = [
        Math.min(a.x, p.x) * s.x,
        Math.min(a.y, p.y) * s.y,
        Math.max(a.x, p.x) * s.x,
        Math.max(a.y, p.y) * s.y,
      ];
      names.forEach(function (name, i) {
        fields[name].value = String(Math.round(values[i]));
      });
      if (whole) {
        whole.checked = false;
      }
      fromFields();
    });
    names.forEach(function (name) {
      fields[name].addEventListener("input", fromFields);
    });
    window.addEventListener("resize", fromFields);
    img.addEventListener("load", function () {
      if (status.parentNode) {
        status.parentNode.removeChild(status);
      }
      fromFields();
      editor.dataset.ready = "1";
    });
    img.src = URL.createObjectURL(blob);
    editor.appendChild(stage);
  }

  fetch(editor.dataset.snapshot, { credentials: "same-origin", cache: "no-store" })
    .then(function (response) {
      if (!response.ok) {
        throw new Error(String(response.status));
      }
      var width = parseInt(response.headers.get("x-frame-width"), 10);
      var height = parseInt(response.headers.get("x-frame-height"), 10);
      return response.blob().then(function (blob) {
        show(blob, width, height);
      });
    })
    .catch(function () {
      status.textContent = editor.dataset.failed;
    });
})();
