// Times are rendered in UTC by the server (<time datetime="...Z">); show them in the
// reader's local time zone, with the UTC time on hover.
const local = new Intl.DateTimeFormat(undefined, {
  year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit",
});

export function localize(root = document) {
  for (const el of root.querySelectorAll("time[datetime]:not([data-local])")) {
    const at = new Date(el.getAttribute("datetime"));
    if (Number.isNaN(at.getTime())) continue;
    el.title = el.textContent.trim();
    el.textContent = local.format(at);
    el.dataset.local = "1";
  }
}

localize();
