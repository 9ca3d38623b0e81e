// Follows a running job's log on its page: streams /api/v1/jobs/{id}/logs?follow=true
// (chunked text that ends when the job does) into the <pre> with fetch, then reloads the
// page so that the job's final state, timeline and buttons show. Without JavaScript the
// page shows the log as it was when loaded; a reload shows more.
const pre = document.getElementById("job-log");
if (pre?.dataset.follow) follow(pre, document.getElementById("log-note"));

async function follow(pre, note) {
  let response;
  try {
    response = await fetch(pre.dataset.follow, { headers: { Accept: "text/plain" } });
  } catch {
    return;
  }
  if (!response.ok || !response.body) return;
  if (note) note.textContent = "Following the log live.";
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let first = true;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      if (!value) continue;
      // The stream starts at the log's first byte: it replaces the copy the page came with.
      if (first) {
        pre.textContent = "";
        document.getElementById("log-empty")?.remove();
        first = false;
      }
      const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.append(value);
      if (atBottom) pre.scrollTop = pre.scrollHeight;
    }
  } catch {
    if (note) note.textContent = "Lost the live log: reload the page to see new output.";
    return;
  }
  const job = await fetch(pre.dataset.job).then((r) => (r.ok ? r.json() : null)).catch(() => null);
  if (job && ["succeeded", "failed", "cancelled"].includes(job.state)) {
    location.reload();
  } else if (note) {
    note.textContent = "The live log stopped: reload the page to see new output.";
  }
}
