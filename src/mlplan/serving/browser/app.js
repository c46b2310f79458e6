(async () => {
  ort.env.wasm.wasmPaths = "./";
  ort.env.wasm.numThreads = 1;
  const signature = await (await fetch("signature.json")).json();
  const metadata = await (await fetch("metadata.json")).json();
  const session = await ort.InferenceSession.create("model.onnx", {executionProviders: ["wasm"]});
  const inputs = signature.inputs;
  const classes = metadata.classes || [];

  // Records -> one [n, 1] tensor per input, as the server feeds the graph.
  function feeds(records) {
    const n = records.length, out = {};
    for (const spec of inputs) {
      if (spec.type === "number") {
        const values = Float32Array.from(records, r => r[spec.name] == null ? NaN : Number(r[spec.name]));
        out[spec.name] = new ort.Tensor("float32", values, [n, 1]);
      } else {
        out[spec.name] = new ort.Tensor("string", records.map(r => r[spec.name] == null ? "" : String(r[spec.name])), [n, 1]);
      }
    }
    return out;
  }

  window.mlplanPredict = async (records) => {
    const result = await session.run(feeds(records));
    if (!classes.length) return {values: Array.from(result[session.outputNames[0]].data)};
    const proba = Array.from(result.probabilities.data);
    const k = classes.length;
    const rows = [];
    for (let i = 0; i < records.length; i++) rows.push(proba.slice(i * k, (i + 1) * k));
    let labels = Array.from(result.label.data).map(String);
    if (k === 2 && metadata.threshold != null) {  // the decision threshold recorded by evaluation
      const pos = classes.indexOf(metadata.positive_class || classes[1]);
      labels = rows.map(p => classes[p[pos] >= metadata.threshold ? pos : 1 - pos]);
    }
    return {labels, probabilities: rows};
  };

  const form = document.getElementById("form");
  for (const spec of inputs) {
    const label = document.createElement("label");
    label.textContent = spec.name;
    let field;
    if (spec.type === "string" && spec.categories && spec.categories.length) {
      field = document.createElement("select");
      for (const c of spec.categories) field.add(new Option(c, c));
    } else {
      field = document.createElement("input");
      if (spec.type === "number") {
        field.type = "number"; field.step = "any";
        if (spec.min != null && spec.max != null) field.value = (spec.min + spec.max) / 2;
      }
    }
    field.name = spec.name;
    label.appendChild(field);
    form.appendChild(label);
  }
  const button = document.getElementById("predict");
  button.addEventListener("click", async () => {
    const record = {};
    for (const spec of inputs) {
      const v = form.elements[spec.name].value;
      record[spec.name] = spec.type === "number" ? (v === "" ? null : Number(v)) : v;
    }
    const out = await window.mlplanPredict([record]);
    document.getElementById("result").textContent = out.labels
      ? `${out.labels[0]} (${out.probabilities[0].map(p => p.toFixed(3)).join(" / ")})`
      : `${out.values[0]}`;
  });
  button.disabled = false;
  document.body.dataset.ready = "1";
})().catch(error => { document.body.dataset.error = String(error); });
