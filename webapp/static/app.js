/* Aura Render dashboard: small progressive enhancements. Every page works without this file. */
(function () {
  "use strict";

  /* Keywords as tags. The original text input stays the form field (comma separated), hidden
     behind chips and an entry box, so a failed submit or no JavaScript loses nothing. */
  var SPLIT = /[,，、;；\n]+/;

  function enhanceTagInput(source) {
    if (source.dataset.tagReady) return;
    source.dataset.tagReady = "1";
    var removeLabel = source.dataset.removeLabel || "Remove";
    var box = document.createElement("div");
    box.className = "tag-input";
    var list = document.createElement("ul");
    list.className = "tag-list";
    list.setAttribute("role", "list");
    var entry = document.createElement("input");
    entry.type = "text";
    entry.className = "tag-entry";
    entry.id = source.id;
    source.id = source.id + "-value";
    entry.setAttribute("aria-describedby", source.getAttribute("aria-describedby") || "");
    if (source.getAttribute("aria-invalid")) entry.setAttribute("aria-invalid", "true");
    entry.setAttribute("enterkeyhint", "enter");
    entry.autocomplete = "off";
    source.type = "hidden";
    source.parentNode.insertBefore(box, source);
    box.appendChild(list);
    box.appendChild(entry);
    box.appendChild(source);

    function tags() {
      return source.value.split(SPLIT).map(function (t) { return t.trim(); }).filter(Boolean);
    }
    function write(values) {
      source.value = values.join(", ");
      render();
    }
    function render() {
      list.textContent = "";
      tags().forEach(function (tag, index) {
        var item = document.createElement("li");
        item.className = "tag";
        var text = document.createElement("span");
        text.textContent = tag;
        var remove = document.createElement("button");
        remove.type = "button";
        remove.className = "tag-remove";
        remove.setAttribute("aria-label", removeLabel + " " + tag);
        remove.textContent = "×";
        remove.addEventListener("click", function () {
          var values = tags();
          values.splice(index, 1);
          write(values);
          entry.focus();
        });
        item.appendChild(text);
        item.appendChild(remove);
        list.appendChild(item);
      });
    }
    function commit() {
      var fresh = entry.value.split(SPLIT).map(function (t) { return t.trim(); }).filter(Boolean);
      if (!fresh.length) return false;
      var values = tags();
      fresh.forEach(function (t) { if (values.indexOf(t) < 0) values.push(t); });
      entry.value = "";
      write(values);
      return true;
    }
    entry.addEventListener("keydown", function (event) {
      if (event.isComposing) return; /* Chinese IME: Enter confirms the composition first */
      if (event.key === "Enter" || event.key === ",") {
        if (commit() || event.key === ",") event.preventDefault();
      } else if (event.key === "Backspace" && !entry.value) {
        var values = tags();
        values.pop();
        write(values);
      }
    });
    entry.addEventListener("input", function () {
      if (SPLIT.test(entry.value)) commit();
    });
    entry.addEventListener("blur", commit);
    /* A pending word still counts when the form is sent. */
    var form = source.form;
    if (form) {
      form.addEventListener("submit", commit, true);
      form.addEventListener("htmx:configRequest", function (event) {
        commit();
        event.detail.parameters[source.name] = source.value;
      });
    }
    box.addEventListener("click", function (event) {
      if (event.target === box || event.target === list) entry.focus();
    });
    render();
  }

  /* The custom size field shows only when "Custom size" is chosen. */
  function enhanceCustomToggle(select) {
    var target = document.getElementById(select.dataset.customToggle);
    if (!target) return;
    function sync() {
      var custom = select.value === "custom";
      target.hidden = !custom;
      var input = target.querySelector("input");
      if (input) input.disabled = !custom;
    }
    select.addEventListener("change", function () {
      sync();
      if (select.value === "custom") {
        var input = target.querySelector("input");
        if (input) input.focus();
      }
    });
    sync();
  }

  /* A batch file dropped on the upload card (or chosen) is checked at once. */
  function enhanceDropzone(form) {
    if (form.dataset.dropReady) return;
    form.dataset.dropReady = "1";
    var input = form.querySelector("input[type=file]");
    function check() {
      if (input.files.length) form.requestSubmit ? form.requestSubmit() : form.submit();
    }
    form.addEventListener("dragover", function (event) {
      event.preventDefault();
      form.classList.add("dropzone-over");
    });
    form.addEventListener("dragleave", function () { form.classList.remove("dropzone-over"); });
    form.addEventListener("drop", function (event) {
      event.preventDefault();
      form.classList.remove("dropzone-over");
      if (!event.dataTransfer || !event.dataTransfer.files.length) return;
      input.files = event.dataTransfer.files;
      check();
    });
    input.addEventListener("change", check);
  }

  function enhance(root) {
    root.querySelectorAll("input[data-tag-input]").forEach(enhanceTagInput);
    root.querySelectorAll("select[data-custom-toggle]").forEach(enhanceCustomToggle);
    root.querySelectorAll("form[data-dropzone]").forEach(enhanceDropzone);
  }

  /* Plain forms that change something ask first (htmx forms use hx-confirm). */
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.dataset && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
    }
  });

  /* Copy buttons (the new API token). */
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-copy]");
    if (!button) return;
    var source = document.querySelector(button.dataset.copy);
    if (!source || !navigator.clipboard) return;
    navigator.clipboard.writeText(source.textContent.trim()).then(function () {
      button.textContent = button.dataset.copied || "Copied";
    });
  });

  /* Polls skip while the tab is hidden (and the fleet table while one of its fields has the focus):
     a poll is the only request without a triggering event. This replaces htmx trigger filters,
     which need eval and so break under the Content-Security-Policy. */
  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail.elt;
    var kind = elt && elt.getAttribute ? elt.getAttribute("data-poll") : null;
    if (!kind || (event.detail.requestConfig && event.detail.requestConfig.triggeringEvent)) {
      return;
    }
    var busy = kind === "fleet" && document.activeElement && document.activeElement.matches("#fleet input");
    if (document.visibilityState !== "visible" || busy) {
      event.preventDefault();
    }
  });

  /* On return to the tab, refresh at once instead of waiting for the next poll. */
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible" && window.htmx) {
      window.htmx.trigger(document.body, "aura:visible");
    }
  });

  /* Polled fragments that carry data-etag ask "changed since?"; a 304 answer keeps the DOM as it
     is (htmx 2 would otherwise swap the empty body in) and the element keeps polling. */
  document.addEventListener("htmx:configRequest", function (event) {
    var etag = event.detail.elt && event.detail.elt.dataset && event.detail.elt.dataset.etag;
    if (etag && event.detail.verb === "get") {
      event.detail.headers["If-None-Match"] = '"' + etag + '"';
      /* A refresh that an event asked for (a submit) must see it: the server skips its short reuse
         of the last build for these. */
      var cause = event.detail.triggeringEvent && event.detail.triggeringEvent.type;
      if (cause === "aura:refresh") { event.detail.headers["X-Aura-Refresh"] = "event"; }
    }
  });
  document.addEventListener("htmx:beforeSwap", function (event) {
    if (event.detail.xhr && event.detail.xhr.status === 304) {
      event.detail.shouldSwap = false;
      event.detail.isError = false;
    }
  });

  document.addEventListener("DOMContentLoaded", function () { enhance(document); });
  document.addEventListener("htmx:load", function (event) { enhance(event.detail.elt); });
})();
