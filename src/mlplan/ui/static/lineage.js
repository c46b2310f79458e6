// mlplan ui, the Lineage page: the graph embedded in the page (#lineage-data, what
// `mlplan lineage REF --json` walks) laid out by elkjs (its bundled build: no worker, no eval)
// and drawn as SVG. Each node is a link to its page, in reading order (top to bottom, then left
// to right) for the keyboard; each kind has a shape and a word of its own. Without this
// script the tables below the figure list the same graph.
(function () {
  "use strict";
  const SVG = "http://www.w3.org/2000/svg";
  const HEIGHT = 50;
  const PAD = 12;

  function element(name, attributes, parent) {
    const made = document.createElementNS(SVG, name);
    for (const [key, value] of Object.entries(attributes || {})) made.setAttribute(key, value);
    if (parent) parent.appendChild(made);
    return made;
  }

  // A shape per kind, in a w × h box: a run is a pill, a dataset version a cylinder, a split
  // a box cut in two, a model a hexagon, a deployment a box with a thick edge, a file or a
  // report a page with a folded corner.
  function shape(kind, w, h) {
    const r = h / 2;
    switch (kind) {
      case "run":
        return `M${r},0 H${w - r} A${r},${r} 0 0 1 ${w - r},${h} H${r} A${r},${r} 0 0 1 ${r},0 Z`;
      case "dataset_version":
      case "label_set":
        return `M0,6 A${w / 2},6 0 0 1 ${w},6 V${h - 6} A${w / 2},6 0 0 1 0,${h - 6} Z ` +
          `M0,6 A${w / 2},6 0 0 0 ${w},6`;
      case "split":
        return `M0,0 H${w} V${h} H0 Z M${w - 10},0 V${h}`;
      case "model":
        return `M10,0 H${w - 10} L${w},${r} L${w - 10},${h} H10 L0,${r} Z`;
      case "deployment":
        return `M0,0 H${w} V${h} H0 Z M5,0 V${h}`;
      default:
        return `M0,0 H${w - 10} L${w},10 V${h} H0 Z M${w - 10},0 V10 H${w}`;
    }
  }

  function draw(container, data) {
    const svg = element("svg", {
      class: "lineage-svg",
      role: "group",
      "aria-label": `Lineage graph: ${data.nodes.length} nodes, ${data.edges.length} arrows`,
    });
    container.hidden = false; // text is measured only when shown
    container.appendChild(svg);
    const defs = element("defs", {}, svg);
    const marker = element("marker", {
      id: "lineage-arrow", viewBox: "0 0 10 10", refX: "10", refY: "5",
      markerWidth: "8", markerHeight: "8", orient: "auto-start-reverse",
    }, defs);
    element("path", { d: "M0,0 L10,5 L0,10 Z", class: "arrowhead" }, marker);
    const edgeLayer = element("g", { class: "edges", "aria-hidden": "true" }, svg);
    const nodeLayer = element("g", { class: "nodes" }, svg);

    const drawn = new Map();
    for (const node of data.nodes) {
      const link = element("a", {
        href: node.href,
        class: `node node-${node.kind}${node.subject ? " subject" : ""}`,
        "data-node": node.id,
        "data-kind": node.kind,
        "data-ref": node.ref,
        // the name is the text shown, the icons aside (they only repeat the word)
        "aria-label": `${node.word}${node.subject ? " · start" : ""} ${node.label}`,
      }, nodeLayer);
      if (node.subject) link.setAttribute("aria-current", "true");
      const outline = element("path", { class: "shape" }, link);
      // one text of two lines, a space between them: its words read as the name says them
      const text = element("text", { x: PAD, y: 22 }, link);
      const icon = element("tspan", { class: "word", "aria-hidden": "true" }, text);
      icon.textContent = `${node.icon} `;
      const word = element("tspan", { class: "word" }, text);
      word.textContent = `${node.word}${node.subject ? " · start" : ""} `;
      const label = element("tspan", { class: "label", x: PAD, dy: 19 }, text);
      label.textContent = node.label;
      const width = Math.ceil(Math.max(
        icon.getComputedTextLength() + word.getComputedTextLength(),
        label.getComputedTextLength(),
      ) + 2 * PAD + 10);
      drawn.set(node.id, { link, outline, width });
    }

    const graph = {
      id: "root",
      layoutOptions: {
        "elk.algorithm": "layered",
        "elk.direction": "DOWN",
        "elk.edgeRouting": "ORTHOGONAL",
        "elk.spacing.nodeNode": "24",
        "elk.layered.spacing.nodeNodeBetweenLayers": "36",
        "elk.padding": "[top=8,left=8,bottom=8,right=8]",
      },
      children: data.nodes.map((n) => ({ id: n.id, width: drawn.get(n.id).width, height: HEIGHT })),
      edges: data.edges.map((e, i) => ({ id: `e${i}`, sources: [e.source], targets: [e.target] })),
    };
    return new ELK().layout(graph).then((laid) => {
      svg.setAttribute("viewBox", `0 0 ${laid.width} ${laid.height}`);
      svg.setAttribute("width", laid.width);
      svg.setAttribute("height", laid.height);
      // shrunk to the page's width while its text stays legible, else scrolled sideways
      if (laid.width <= 1.6 * container.clientWidth) svg.classList.add("fit");
      for (const child of laid.children) {
        const { link, outline, width } = drawn.get(child.id);
        link.setAttribute("transform", `translate(${child.x},${child.y})`);
        outline.setAttribute("d", shape(link.dataset.kind, width, HEIGHT));
      }
      // the keyboard goes through the nodes as one reads them: by row, then across
      const order = [...laid.children].sort((a, b) => a.y - b.y || a.x - b.x);
      for (const child of order) nodeLayer.appendChild(drawn.get(child.id).link);
      laid.edges.forEach((edge, i) => {
        const points = [];
        for (const section of edge.sections || []) {
          points.push(section.startPoint, ...(section.bendPoints || []), section.endPoint);
        }
        element("path", {
          class: "edge",
          d: points.map((p, j) => `${j ? "L" : "M"}${p.x},${p.y}`).join(" "),
          "marker-end": "url(#lineage-arrow)",
          "data-source": data.edges[i].source,
          "data-target": data.edges[i].target,
        }, edgeLayer);
      });
      container.dataset.state = "drawn";
      const status = document.getElementById("lineage-status");
      if (status) status.textContent = status.dataset.drawn;
    });
  }

  function start() {
    const container = document.getElementById("lineage-graph");
    const source = document.getElementById("lineage-data");
    if (!container || !source || typeof ELK === "undefined") return;
    draw(container, JSON.parse(source.textContent)).catch((error) => {
      container.hidden = true;
      container.dataset.state = "failed";
      const status = document.getElementById("lineage-status");
      if (status) status.textContent = `The graph could not be laid out (${error}); the tables below list it.`;
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
