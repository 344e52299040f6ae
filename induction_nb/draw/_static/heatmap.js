// One head's attention pattern drawn on a canvas: square cells (the true aspect), token labels when they
// fit, the induction stripe outlined, a colour bar, hover naming query, key and weight. An anywidget ES
// module: a click in the grid changes one small byte array here instead of a matplotlib render.
//
// Model keys: n (cells per side), start (first position shown), factor (positions per cell: a long
// window is pooled by block max in Python), data (n*n uint8, attention * 255, row-major: query rows),
// labels (token strings of the shown positions, or [] when they do not fit), period (0: no stripe),
// stripe_from (the repeat's first query),
// title, stops (colour map, hex).

const LEFT = 78, TOP = 22, BAR = 46, BOTTOM = 78;

function lut(stops) {  // 256 colours interpolated from the stops
  const out = new Uint8ClampedArray(256 * 3), cs = stops.map(rgb);
  for (let v = 0; v < 256; v++) {
    const x = (v / 255) * (cs.length - 1), i = Math.min(Math.floor(x), cs.length - 2), f = x - i;
    for (let j = 0; j < 3; j++) out[v * 3 + j] = Math.round(cs[i][j] + (cs[i + 1][j] - cs[i][j]) * f);
  }
  return out;
}

function bytesOf(data) {
  if (data instanceof DataView) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return Uint8Array.from(data || []);
}

function render({ model, el }) {
  el.classList.add("inb-heatmap");
  const { canvas, tip } = mountCanvas(el, "inb-heatmap-canvas");
  let g = null;

  function draw() {
    const n = model.get("n"), labels = model.get("labels"), values = bytesOf(model.get("data"));
    const avail = Math.max(220, Math.floor(el.getBoundingClientRect().width || 480));
    const side = Math.max(120, Math.min(440, avail - LEFT - BAR - 8));
    const cell = side / Math.max(1, n);
    g = { n, cell, side, start: model.get("start"), factor: model.get("factor"), labels };
    const width = LEFT + side + BAR, height = TOP + side + BOTTOM, dpr = window.devicePixelRatio || 1;
    canvas.width = Math.round(width * dpr); canvas.height = Math.round(height * dpr);
    canvas.style.width = `${width}px`; canvas.style.height = `${height}px`;
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);
    const colours = lut(model.get("stops"));
    const image = new ImageData(Math.max(1, n), Math.max(1, n));
    for (let i = 0; i < n * n; i++) {
      const v = values[i] || 0;
      image.data.set([colours[v * 3], colours[v * 3 + 1], colours[v * 3 + 2], 255], i * 4);
    }
    const off = document.createElement("canvas");
    off.width = Math.max(1, n); off.height = Math.max(1, n);
    off.getContext("2d").putImageData(image, 0, 0);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(off, LEFT, TOP, side, side);
    ctx.strokeStyle = "#888"; ctx.lineWidth = 1; ctx.strokeRect(LEFT - 0.5, TOP - 0.5, side + 1, side + 1);
    drawStripe(ctx);
    drawAxes(ctx);
    drawBar(ctx, colours);
    ctx.fillStyle = "#222"; ctx.font = "bold 12px sans-serif"; ctx.textAlign = "left"; ctx.textBaseline = "alphabetic";
    ctx.fillText(model.get("title"), 4, 14);
    el.dataset.cells = String(n); el.dataset.side = String(side);
    el.dataset.drawnAt = String(performance.now());
    el.dataset.drawnEpoch = String(Date.now());
    if (!el.dataset.firstDrawnEpoch) el.dataset.firstDrawnEpoch = el.dataset.drawnEpoch;
  }

  // The stripe k = q - period + 1: outlined cells, or a dashed line when cells are too small to outline.
  function drawStripe(ctx) {
    const period = model.get("period");
    if (!period) return;
    ctx.strokeStyle = "#e66100";
    // the repeat's queries only (q >= stripe_from = offset + period), inside the window
    const first = g.start, last = g.start + g.n * g.factor - 1, from = model.get("stripe_from") || period;
    const qs = [];
    for (let q = Math.max(first, from); q <= last; q++) if (q - period + 1 >= first) qs.push(q);
    if (!qs.length) return;
    const pos = (p) => (p - g.start) / g.factor * g.cell;
    if (g.cell / 1 >= 4 && g.factor === 1) {
      ctx.lineWidth = 1;
      for (const q of qs) ctx.strokeRect(LEFT + pos(q - period + 1) + 0.5, TOP + pos(q) + 0.5, g.cell - 1, g.cell - 1);
    } else {
      ctx.lineWidth = 1; ctx.setLineDash([3, 3]);
      const k0 = qs[0] - period + 1, k1 = qs[qs.length - 1] - period + 1;
      ctx.beginPath(); ctx.moveTo(LEFT + pos(k0), TOP + pos(qs[0])); ctx.lineTo(LEFT + pos(k1) + g.cell, TOP + pos(qs[qs.length - 1]) + g.cell); ctx.stroke();
      ctx.setLineDash([]);
    }
    ctx.strokeRect(LEFT, TOP + g.side + 58, 9, 9);
    ctx.fillStyle = "#333"; ctx.font = "10px sans-serif"; ctx.textAlign = "left"; ctx.textBaseline = "top";
    ctx.fillText(`induction stripe (k = q - ${period - 1})`, LEFT + 14, TOP + g.side + 58);
  }

  function drawAxes(ctx) {
    ctx.fillStyle = "#333"; ctx.font = "9px monospace";
    const n = g.n, useLabels = g.labels.length === n && g.cell >= 7;
    const step = useLabels ? 1 : Math.max(1, Math.ceil(28 / g.cell));
    for (let i = 0; i < n; i += step) {
      const text = useLabels ? g.labels[i] : String(g.start + i * g.factor);
      const mid = (i + 0.5) * g.cell;
      ctx.textAlign = "right"; ctx.textBaseline = "middle";
      ctx.fillText(text, LEFT - 3, TOP + mid);
      ctx.save(); ctx.translate(LEFT + mid, TOP + g.side + 3); ctx.rotate(-Math.PI / 2);
      ctx.fillText(text, 0, 0); ctx.restore();
    }
    ctx.font = "10px sans-serif"; ctx.textAlign = "center"; ctx.textBaseline = "bottom";
    ctx.fillText(`key position${useLabels ? " (token)" : ""}`, LEFT + g.side / 2, TOP + g.side + 56);
    ctx.save(); ctx.translate(10, TOP + g.side / 2); ctx.rotate(-Math.PI / 2); ctx.textBaseline = "top";
    ctx.fillText("query position", 0, -6); ctx.restore();
  }

  function drawBar(ctx, colours) {
    const x = LEFT + g.side + 10, h = g.side;
    for (let y = 0; y < h; y++) {
      const v = Math.round(255 * (1 - y / (h - 1)));
      ctx.fillStyle = `rgb(${colours[v * 3]},${colours[v * 3 + 1]},${colours[v * 3 + 2]})`;
      ctx.fillRect(x, TOP + y, 10, 1);
    }
    ctx.fillStyle = "#333"; ctx.font = "9px sans-serif"; ctx.textAlign = "left"; ctx.textBaseline = "middle";
    for (const t of [0, 0.5, 1]) ctx.fillText(t.toFixed(1), x + 13, TOP + (1 - t) * (h - 1));
    ctx.save(); ctx.translate(x + 33, TOP + h / 2); ctx.rotate(-Math.PI / 2); ctx.textAlign = "center";
    ctx.fillText(g.factor > 1 ? `attention (max of ${g.factor}x${g.factor})` : "attention", 0, 0); ctx.restore();
  }

  canvas.addEventListener("mousemove", (event) => {
    const r = canvas.getBoundingClientRect();
    const col = Math.floor((event.clientX - r.left - LEFT) / g.cell), row = Math.floor((event.clientY - r.top - TOP) / g.cell);
    if (!g || col < 0 || row < 0 || col >= g.n || row >= g.n) { tip.style.display = "none"; return; }
    const v = bytesOf(model.get("data"))[row * g.n + col] / 255;
    const q = g.start + row * g.factor, k = g.start + col * g.factor;
    const name = (i, p) => (g.labels.length === g.n ? ` '${g.labels[i]}'` : "") + (g.factor > 1 ? `..${p + g.factor - 1}` : "");
    tip.textContent = `query ${q}${name(row, q)} -> key ${k}${name(col, k)}: ${v.toFixed(2)}`;
    tip.style.left = `${Math.min(event.offsetX + 12, LEFT + g.side - 60)}px`;
    tip.style.top = `${event.offsetY + 14}px`;
    tip.style.display = "block";
  });
  canvas.addEventListener("mouseleave", () => { tip.style.display = "none"; });
  return redrawOn(model, ["n", "start", "factor", "data", "labels", "period", "stripe_from", "title", "stops"], el, draw);
}

export default { render };
