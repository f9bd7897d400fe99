// The 补录 form's room picker: choosing a house fills its rooms at once, from the API, so
// the rest of the form keeps what was typed. Without script the "show its rooms" button
// reloads the page with the rooms instead (a two-step form).
(function () {
  "use strict";
  var picker = document.getElementById("house");
  var form = document.getElementById("enrol-form");
  var rooms = document.getElementById("room_id");
  var chosen = document.getElementById("enrol-house");
  if (!picker || !form || !rooms || !window.fetch) {
    return;
  }
  var button = document.querySelector("#house-picker button");
  if (button) {
    button.hidden = true;
  }
  function fill(house) {
    while (rooms.firstChild) {
      rooms.removeChild(rooms.firstChild);
    }
    house.rooms.forEach(function (room) {
      var option = document.createElement("option");
      option.value = String(room.id);
      var full = room.occupants >= room.capacity;
      // Labels come from the server's data; the one word is translated in the page.
      option.textContent = room.label + " (" + room.occupants + "/" + room.capacity + ")" +
        (full ? " " + form.dataset.full : "");
      option.disabled = full;
      rooms.appendChild(option);
    });
    chosen.value = String(house.id);
  }
  function load() {
    var id = parseInt(picker.value, 10);
    if (isNaN(id)) {
      return;
    }
    fetch(form.dataset.rooms + id, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (answer) {
        if (!answer.ok) {
          throw new Error("HTTP " + answer.status);
        }
        return answer.json();
      })
      .then(fill)
      .catch(function () {
        // The page still works: show the button and let the reload fetch the rooms.
        if (button) {
          button.hidden = false;
        }
      });
  }
  picker.addEventListener("change", load);
  if (!chosen.value) {
    load();
  }
})();
