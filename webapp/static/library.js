// The library page: files dropped or chosen go to POST /assets one by one over XHR, each with its
// own progress bar; when they are done the grid is fetched again. Strings come from data-msg-*.
(function () {
  "use strict";

  function setup() {
    var zone = document.getElementById("drop-zone");
    if (!zone || zone.dataset.ready) return;
    zone.dataset.ready = "1";
    var input = document.getElementById("asset-files");
    var list = document.getElementById("upload-list");
    var queue = [];
    var busy = false;

    function row(file) {
      var item = document.createElement("li");
      item.className = "upload-item";
      item.dataset.name = file.name;
      var name = document.createElement("span");
      name.className = "upload-name";
      name.textContent = file.name;
      var bar = document.createElement("progress");
      bar.max = 100;
      bar.value = 0;
      bar.setAttribute("role", "progressbar");
      bar.setAttribute("aria-label", file.name);
      bar.setAttribute("aria-valuemin", "0");
      bar.setAttribute("aria-valuemax", "100");
      bar.setAttribute("aria-valuenow", "0");
      var status = document.createElement("span");
      status.className = "upload-status";
      status.textContent = zone.dataset.msgUploading;
      item.append(name, bar, status);
      list.append(item);
      return { item: item, bar: bar, status: status };
    }

    function progress(view, percent) {
      view.bar.value = percent;
      view.bar.setAttribute("aria-valuenow", String(Math.round(percent)));
    }

    function finish(view, ok, text) {
      view.item.classList.add(ok ? "done" : "failed");
      view.item.dataset.state = ok ? "done" : "failed";
      view.status.textContent = text;
      if (ok) progress(view, 100);
    }

    function send(file, view, next) {
      var form = new FormData();
      form.append("file", file, file.name);
      var tags = document.getElementById("upload-tags");
      var kind = document.getElementById("upload-kind");
      var shared = document.getElementById("upload-shared");
      if (tags && tags.value.trim()) form.append("tags", tags.value);
      if (kind && kind.value && /\.png$/i.test(file.name)) form.append("kind", kind.value);
      if (shared && shared.checked) form.append("shared", "true");
      var xhr = new XMLHttpRequest();
      xhr.open("POST", zone.dataset.uploadUrl);
      xhr.setRequestHeader("X-CSRFToken", zone.dataset.csrf);
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.addEventListener("progress", function (event) {
        if (event.lengthComputable) progress(view, (event.loaded / event.total) * 99);
        if (event.loaded === event.total) view.status.textContent = zone.dataset.msgChecking;
      });
      xhr.addEventListener("load", function () {
        var body = {};
        try { body = JSON.parse(xhr.responseText); } catch (e) { body = {}; }
        if (xhr.status === 201) {
          view.item.dataset.assetId = body.id;
          finish(view, true, zone.dataset.msgDone);
        } else {
          finish(view, false, zone.dataset.msgFailed + ": " + (body.message || xhr.status));
        }
        next();
      });
      xhr.addEventListener("error", function () {
        finish(view, false, zone.dataset.msgNetwork);
        next();
      });
      xhr.send(form);
    }

    function pump() {
      if (busy) return;
      var job = queue.shift();
      if (!job) {
        refreshGrid();
        return;
      }
      busy = true;
      send(job.file, job.view, function () {
        busy = false;
        pump();
      });
    }

    function add(files) {
      for (var i = 0; i < files.length; i++) queue.push({ file: files[i], view: row(files[i]) });
      pump();
    }

    function refreshGrid() {
      var grid = document.getElementById("asset-grid");
      if (!grid) return;
      fetch(zone.dataset.gridUrl + window.location.search, { headers: { "HX-Request": "true" }, credentials: "same-origin" })
        .then(function (response) { return response.ok ? response.text() : null; })
        .then(function (html) {
          if (html) {
            grid.outerHTML = html;
            document.dispatchEvent(new CustomEvent("library:refreshed"));
          }
        });
    }

    input.addEventListener("change", function () {
      add(input.files);
      input.value = "";
    });
    ["dragenter", "dragover"].forEach(function (name) {
      zone.addEventListener(name, function (event) {
        event.preventDefault();
        zone.classList.add("dragging");
      });
    });
    ["dragleave", "drop"].forEach(function (name) {
      zone.addEventListener(name, function () { zone.classList.remove("dragging"); });
    });
    zone.addEventListener("drop", function (event) {
      event.preventDefault();
      if (event.dataTransfer && event.dataTransfer.files.length) add(event.dataTransfer.files);
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", setup);
  else setup();
})();
