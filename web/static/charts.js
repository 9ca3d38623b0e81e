// Metric charts on the run and compare pages, drawn with uPlot (embedded from npm).
//
// Each <figure class="chart"> names its data: data-series (one run's series) or data-compare
// (one key in several runs). Series are fetched when the chart scrolls into view; the server
// has already downsampled long series (first, min, max and last point per bucket). The
// controls (x axis step/time, log scale, smoothing) apply to every chart on the page and
// live in the query string (?x=time&log=1&smooth=0.6), so a URL shows the same charts.

const uPlot = window.uPlot;
const MAX_POINTS = 1000;
const COMPARE_POINTS = 500;

const params = new URLSearchParams(location.search);
const settings = {
  x: params.get("x") === "time" ? "time" : "step",
  log: params.get("log") === "1",
  smoothing: Math.min(0.99, Math.max(0, Number(params.get("smooth")) || 0)),
};

const charts = [];

function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

const dark = window.matchMedia("(prefers-color-scheme: dark)").matches;
const PALETTE = dark
  ? ["#7fb2f0", "#f0a26b", "#6fd19a", "#e08ad0", "#e0c15a", "#5fd0d8", "#f08a8a", "#a79bf5", "#b5d46a", "#d9a06b"]
  : ["#1f5fa8", "#c8551d", "#2a8552", "#a3347f", "#8a6d1e", "#14838e", "#b83232", "#5b4bc4", "#55731f", "#9a5200"];

function color(i) {
  return PALETTE[i % PALETTE.length];
}

/** TensorBoard's smoothing: an exponential moving average, debiased at the start. */
function smooth(values, weight) {
  if (!weight) return values;
  let last = 0;
  let n = 0;
  return values.map((v) => {
    if (v == null || !Number.isFinite(v)) return null;
    last = last * weight + (1 - weight) * v;
    n += 1;
    return last / (1 - Math.pow(weight, n));
  });
}

/** [x, y] of one series in the current x mode, ascending in x, one point per x. */
function columns(series) {
  const xs = settings.x === "time" ? series.timestamp.map((t) => t / 1000) : series.step;
  const order = xs.map((_, i) => i).sort((a, b) => xs[a] - xs[b]);
  const x = [];
  const y = [];
  for (const i of order) {
    let v = series.value[i];
    if (settings.log && !(v > 0)) v = null;
    if (x.length && x[x.length - 1] === xs[i]) {
      y[y.length - 1] = v;
    } else {
      x.push(xs[i]);
      y.push(v);
    }
  }
  return [x, y];
}

function axes() {
  const stroke = cssVar("--muted");
  const grid = { stroke: cssVar("--chart-grid"), width: 1 };
  return [
    { stroke, grid, ticks: grid, label: settings.x === "time" ? undefined : "step", labelSize: 16, size: 40 },
    { stroke, grid, ticks: grid, size: 56 },
  ];
}

function options(width, series, legend) {
  return {
    width,
    height: 220,
    scales: {
      x: { time: settings.x === "time" },
      y: { distr: settings.log ? 3 : 1 },
    },
    axes: axes(),
    series: [{ label: settings.x === "time" ? "time" : "step" }, ...series],
    legend: { show: legend },
    cursor: { drag: { x: true, y: false } },
  };
}

/** One run: the raw series, and when smoothing is on a faint raw line under the smoothed one. */
function singleData(data) {
  const [x, y] = columns(data);
  const series = [];
  const values = [x];
  if (settings.smoothing > 0) {
    series.push({ label: "raw", stroke: color(0) + "40", width: 1, spanGaps: true });
    values.push(y);
  }
  series.push({ label: data.key, stroke: color(0), width: 1.5, spanGaps: true });
  values.push(smooth(y, settings.smoothing));
  return { series, values };
}

/** Several runs on shared x values (uPlot.join fills the gaps with nulls). */
function compareData(data, names) {
  const tables = data.series.map((s) => {
    const [x, y] = columns(s);
    return [x, smooth(y, settings.smoothing)];
  });
  const joined = tables.length ? uPlot.join(tables) : [[]];
  const series = data.series.map((s, i) => ({
    label: names.get(s.run_id) || s.run_id.slice(0, 8),
    stroke: color(i),
    width: 1.5,
    spanGaps: true,
  }));
  return { series, values: joined };
}

function note(chart) {
  const el = chart.fig.querySelector(".chart-note");
  if (!el || !chart.data) return;
  const list = chart.data.series || [chart.data];
  const total = list.reduce((n, s) => n + s.total_points, 0);
  const shown = list.reduce((n, s) => n + s.step.length, 0);
  const fmt = (n) => n.toLocaleString();
  el.textContent = list.some((s) => s.downsampled)
    ? `${fmt(total)} points, ${fmt(shown)} drawn (min and max of each bucket kept)`
    : `${fmt(total)} ${total === 1 ? "point" : "points"}`;
}

function draw(chart) {
  if (!chart.data) return;
  const el = chart.fig.querySelector(".plot");
  const width = Math.max(200, el.clientWidth);
  const { series, values } = chart.names ? compareData(chart.data, chart.names) : singleData(chart.data);
  if (chart.plot) chart.plot.destroy();
  el.textContent = "";
  chart.plot = new uPlot(options(width, series, Boolean(chart.names) || settings.smoothing > 0), values, el);
  el.setAttribute("aria-label", `Chart of ${chart.fig.dataset.key} over ${settings.x === "time" ? "time" : "steps"}`);
  chart.fig.dataset.drawn = String(values[0].length);
  note(chart);
}

async function load(chart) {
  const compare = chart.fig.dataset.compare;
  const url = compare
    ? `${compare}&max_points=${COMPARE_POINTS}`
    : `${chart.fig.dataset.series}?max_points=${MAX_POINTS}`;
  const noteEl = chart.fig.querySelector(".chart-note");
  if (noteEl) noteEl.textContent = "Loading…";
  try {
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(`${response.status} ${response.statusText}`);
    chart.data = await response.json();
    draw(chart);
  } catch (e) {
    if (noteEl) noteEl.textContent = `Could not load this series (${e.message}).`;
  }
}

function setUpControls() {
  const box = document.querySelector(".chart-controls");
  if (!box) return;
  box.hidden = false;
  const xInputs = box.querySelectorAll("input[name=chart-x]");
  const log = box.querySelector("#chart-log");
  const smoothing = box.querySelector("#chart-smoothing");
  const output = box.querySelector("#chart-smoothing-value");
  for (const input of xInputs) input.checked = input.value === settings.x;
  log.checked = settings.log;
  smoothing.value = String(settings.smoothing);
  output.textContent = settings.smoothing.toFixed(2);

  const redraw = () => {
    const url = new URL(location.href);
    const set = (k, v, dflt) => (v === dflt ? url.searchParams.delete(k) : url.searchParams.set(k, v));
    set("x", settings.x, "step");
    set("log", settings.log ? "1" : "0", "0");
    set("smooth", settings.smoothing ? settings.smoothing.toFixed(2) : "0", "0");
    history.replaceState(null, "", url);
    for (const chart of charts) draw(chart);
  };
  for (const input of xInputs) {
    input.addEventListener("change", () => {
      settings.x = input.value;
      redraw();
    });
  }
  log.addEventListener("change", () => {
    settings.log = log.checked;
    redraw();
  });
  let pending = 0;
  smoothing.addEventListener("input", () => {
    settings.smoothing = Number(smoothing.value);
    output.textContent = settings.smoothing.toFixed(2);
    cancelAnimationFrame(pending);
    pending = requestAnimationFrame(redraw);
  });
}

function start() {
  if (!uPlot) return;
  const section = document.querySelector("[data-run-ids]");
  let names = null;
  if (section) {
    const ids = section.dataset.runIds.split(",");
    const labels = JSON.parse(section.dataset.runNames || "[]");
    names = new Map(ids.map((id, i) => [id, labels[i]]));
  }
  for (const fig of document.querySelectorAll("figure.chart")) {
    charts.push({ fig, names: fig.dataset.compare ? names : null, data: null, plot: null });
  }
  setUpControls();
  const visible = new IntersectionObserver(
    (entries) => {
      for (const entry of entries) {
        if (!entry.isIntersecting) continue;
        visible.unobserve(entry.target);
        const chart = charts.find((c) => c.fig === entry.target);
        if (chart) load(chart);
      }
    },
    { rootMargin: "300px" },
  );
  for (const chart of charts) visible.observe(chart.fig);
  const resized = new ResizeObserver(() => {
    for (const chart of charts) {
      const el = chart.fig.querySelector(".plot");
      if (chart.plot && Math.abs(chart.plot.width - el.clientWidth) > 4) {
        chart.plot.setSize({ width: Math.max(200, el.clientWidth), height: 220 });
      }
    }
  });
  for (const chart of charts) resized.observe(chart.fig);
}

start();
