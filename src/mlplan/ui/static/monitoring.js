// mlplan ui, the Monitoring page: each deployment's charts, drawn with uPlot from the JSON
// the server put in the page (script.charts-data: per family, its series per window length
// and slice value, the plan's thresholds, the alerts fired). One chart per metric over the
// windows' start times, a line per package version; a rule's threshold as a dashed line; an
// alert as a marker at its window. The tables stay the text of the same figures.
"use strict";

(() => {
  const style = getComputedStyle(document.documentElement);
  const color = (name) => style.getPropertyValue(name).trim();
  const VERSION_COLOURS = ["--link", "--done", "--missing", "--muted"];
  const utc = (seconds) => uPlot.tzDate(new Date(seconds * 1e3), "Etc/UTC");
  const when = (seconds) => new Date(seconds * 1e3).toISOString().slice(0, 16).replace("T", " ") + " UTC";

  function drawThresholds(u, thresholds) {
    const ctx = u.ctx;
    ctx.save();
    ctx.strokeStyle = color("--failing");
    ctx.lineWidth = 1.5 * devicePixelRatio;
    ctx.setLineDash([6 * devicePixelRatio, 4 * devicePixelRatio]);
    for (const t of thresholds) {
      const y = Math.round(u.valToPos(t.threshold, "y", true));
      ctx.beginPath();
      ctx.moveTo(u.bbox.left, y);
      ctx.lineTo(u.bbox.left + u.bbox.width, y);
      ctx.stroke();
    }
    ctx.restore();
  }

  function plot(figure, family, series, slice, length) {
    const holder = figure.querySelector(".plot");
    if (holder.chart) holder.chart.destroy();
    holder.replaceChildren();
    holder.chart = null;
    figure.hidden = !series;
    if (!series) return;
    const metric = figure.dataset.metric;
    const xs = series.starts;
    const pad = xs.length === 1 ? series.ends[0] - xs[0] : 0;
    const data = [xs];
    const lines = [{}];
    Object.entries(series.versions).forEach(([name, values], i) => {
      data.push(values[metric]);
      const stroke = color(VERSION_COLOURS[i % VERSION_COLOURS.length]);
      lines.push({ label: name, stroke, width: 2, points: { show: true, size: 6, fill: stroke } });
    });
    const thresholds = family.thresholds.filter(
      (t) => t.metric === metric && t.length === length && t.slices.includes(slice),
    );
    for (const t of thresholds) {
      data.push(xs.map(() => t.threshold));
      lines.push({
        label: `${t.rule}: ${t.op} ${t.threshold}`,
        stroke: color("--failing"),
        dash: [6, 4],
        width: 1.5,
        paths: () => null, // drawn across the whole plot by the hook below, even at one window
        points: { show: false },
      });
    }
    const alerts = family.alerts.filter(
      (a) =>
        a.metric === metric &&
        a.slice === slice &&
        (a.length === null || a.length === length) &&
        series.ends.includes(a.end),
    );
    if (alerts.length) {
      const marks = xs.map(() => null);
      for (const a of alerts) marks[series.ends.indexOf(a.end)] = a.value;
      data.push(marks);
      lines.push({
        label: "alert fired",
        stroke: color("--failing"),
        paths: () => null,
        points: { show: true, size: 12, width: 2, fill: color("--bg"), stroke: color("--failing") },
      });
    }
    figure.dataset.points = String(xs.length);
    figure.dataset.thresholds = thresholds.map((t) => t.threshold).join(" ");
    figure.dataset.alerts = alerts.map((a) => a.id).join(" ");
    const words = [
      `${metric} of ${slice}, ${length} windows: ${xs.length} from ${when(xs[0])} to ${when(xs[xs.length - 1])}`,
      ...thresholds.map((t) => `threshold ${t.op} ${t.threshold} (${t.rule})`),
      ...alerts.map((a) => `alert ${a.id} ${a.severity}, ${a.state}: ${a.value} in the window ending ${when(a.end)}`),
    ];
    holder.setAttribute("role", "img");
    holder.setAttribute("aria-label", words.join("; "));
    const axis = { stroke: color("--fg"), grid: { stroke: color("--line") }, ticks: { stroke: color("--line") } };
    holder.chart = new uPlot(
      {
        width: Math.max(240, figure.clientWidth - 8),
        height: 170,
        tzDate: utc,
        // one window alone: a window's length either side, not uPlot's years
        scales: { x: { time: true, range: () => [xs[0] - pad, xs[xs.length - 1] + pad] } },
        series: lines,
        axes: [axis, { ...axis, size: 60 }],
        legend: { live: false },
        hooks: { draw: [(u) => drawThresholds(u, thresholds)] },
        cursor: { show: false },
      },
      data,
      holder,
    );
  }

  function charts(section) {
    const data = JSON.parse(section.querySelector("script.charts-data").textContent);
    const lengths = section.querySelector("select.chart-length");
    const redraw = () => {
      for (const family of data.families) {
        const box = section.querySelector(`[data-family-charts="${CSS.escape(family.family)}"]`);
        const series = family.series.find((s) => s.slice === data.slice && s.length === lengths.value);
        box.querySelector("p.none").hidden = Boolean(series);
        for (const figure of box.querySelectorAll("figure.chart")) {
          plot(figure, family, series, data.slice, lengths.value);
        }
      }
      section.dataset.drawn = `${data.slice} ${lengths.value}`;
    };
    lengths.addEventListener("change", redraw);
    let resized = null; // charts are drawn to their box's width: again once a resize settles
    window.addEventListener("resize", () => {
      clearTimeout(resized);
      resized = setTimeout(redraw, 200);
    });
    section.hidden = false;
    redraw();
  }

  if (typeof uPlot === "function") {
    document.querySelectorAll("section.charts[data-charts]").forEach(charts);
  }
})();
