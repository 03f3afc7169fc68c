// The review queue's helpers (no inline script: this file is all the pages load).
// - The queue: "select every detection on this page" and a count of the selected ones. The
//   rows are swapped in by htmx, so the listeners sit on the document.
// - One detection: keyboard shortcuts (j/n older, k/p newer, c confirm, f false positive,
//   d dismiss), never while typing in a field or with a modifier key held.
(function () {
  "use strict";

  function rowBoxes(form) {
    return Array.prototype.slice.call(form.querySelectorAll('input[name="detection"]'));
  }

  function showCount(form) {
    var label = form.querySelector("[data-selected-count]");
    if (!label) {
      return;
    }
    var count = rowBoxes(form).filter(function (box) { return box.checked; }).length;
    label.textContent = count ? count + " selected:" : "Select detections, then";
  }

  document.addEventListener("change", function (event) {
    var target = event.target;
    var form = target.closest && target.closest("form.bulk-review");
    if (!form) {
      return;
    }
    if (target.hasAttribute("data-select-all")) {
      rowBoxes(form).forEach(function (box) { box.checked = target.checked; });
    } else if (target.name === "detection") {
      var all = form.querySelector("[data-select-all]");
      var boxes = rowBoxes(form);
      if (all) {
        all.checked = boxes.length > 0 && boxes.every(function (box) { return box.checked; });
      }
    }
    showCount(form);
  });

  function typing(element) {
    if (!element) {
      return false;
    }
    var tag = element.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || element.isContentEditable;
  }

  function follow(selector) {
    var link = document.querySelector(selector);
    if (link) {
      window.location.assign(link.href);
      return true;
    }
    return false;
  }

  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.altKey || event.ctrlKey || event.metaKey) {
      return;
    }
    if (typing(event.target) || typing(document.activeElement)) {
      return;
    }
    var key = event.key;
    var done = false;
    if (key === "j" || key === "n") {
      done = follow("[data-shortcut-next]");
    } else if (key === "k" || key === "p") {
      done = follow("[data-shortcut-previous]");
    } else if (key === "c" || key === "f" || key === "d") {
      var form = document.querySelector("form[data-review-shortcuts]");
      var button = form && form.querySelector('button[data-shortcut="' + key + '"]');
      if (button) {
        if (typeof form.requestSubmit === "function") {
          form.requestSubmit(button);
        } else {
          button.click();
        }
        done = true;
      }
    }
    if (done) {
      event.preventDefault();
    }
  });
})();
