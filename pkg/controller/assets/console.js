// Outpost console: follows a device's log view by long-polling the
// console's logs route (which waits for new lines up to 25 s).
"use strict";
(function () {
  const pre = document.getElementById("log");
  if (!pre) return;
  const url = pre.dataset.url;
  let after = pre.dataset.after;
  const MAX_LINES = 5000;
  pre.dataset.following = "yes";
  async function poll() {
    for (;;) {
      const q = after === "" ? "?wait=25" : "?after=" + encodeURIComponent(after) + "&wait=25";
      try {
        const r = await fetch(url + q, { credentials: "same-origin", cache: "no-store" });
        if (!r.ok) throw new Error("HTTP " + r.status);
        const page = await r.json();
        for (const l of page.lines) {
          pre.appendChild(document.createTextNode(
            l.time + " " + (l.app_name || l.source) + " " + l.msg + "\n"));
        }
        while (pre.childNodes.length > MAX_LINES) pre.removeChild(pre.firstChild);
        if (page.next_after !== null && page.next_after !== undefined) {
          after = String(page.next_after);
        }
      } catch (e) {
        pre.dataset.following = "retrying";
        await new Promise((ok) => setTimeout(ok, 2000));
        pre.dataset.following = "yes";
      }
    }
  }
  poll();
})();
