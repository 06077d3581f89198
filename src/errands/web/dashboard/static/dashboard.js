// errands dashboard: live counts. An element with data-live="<url>" follows that event
// stream; each "counts" event carries text per element id and points per sparkline id.
"use strict";

document.querySelectorAll("[data-live]").forEach((section) => {
  const source = new EventSource(section.dataset.live);
  source.addEventListener("counts", (event) => {
    const data = JSON.parse(event.data);
    for (const [id, text] of Object.entries(data.cells)) {
      const cell = document.getElementById(id);
      if (cell && cell.textContent !== text) {
        cell.textContent = text;
      }
    }
    for (const [id, points] of Object.entries(data.series)) {
      const line = document.getElementById(id);
      if (line) {
        line.setAttribute("points", points);
      }
    }
  });
  // Leaving the page closes the stream at once instead of at the server's next write.
  window.addEventListener("pagehide", () => source.close());
});
