// The layer x head map of one metric, drawn on one canvas: an anywidget ES module (no build step, no
// network) that the HeadExplorer and the static HTML export (html_page.py) both use. One element for
// the whole grid is what lets 80 x 64 = 5,120 heads render in milliseconds; a DOM node per head does not.
//
// Model keys: n_layers, n_heads, values (row-major floats, null = no such head), row_labels,
// detected / available (flat indices), selected ([layer, head]), metric, vmin, vmax, stops (hex colours),
// outline (the detected heads' colour: never one of the scale's).

const LABEL_W = 34, HEADER_H = 14, PAD = 3;

function colour(stops, v, vmin, vmax) {
  if (v === null || v === undefined || Number.isNaN(v)) return null;
  const x = clamp((v - vmin) / (vmax - vmin || 1), 0, 1) * (stops.length - 1);
  const i = Math.min(Math.floor(x), stops.length - 2), f = x - i;
  const a = rgb(stops[i]), b = rgb(stops[i + 1]);
  return `rgb(${a.map((c, j) => Math.round(c + (b[j] - c) * f)).join(",")})`;
}

function fmt(v) { return v === null || v === undefined || Number.isNaN(v) ? "-" : v.toFixed(3); }

// Cell size from the width the panel gives us: every head column always fits (down to 3 px a head).
function geometry(el, nL, nH) {
  const width = Math.max(160, Math.floor(el.getBoundingClientRect().width || 400));
  // whole pixels while they fit; below 3 px a head, fractional cells: every column stays inside the panel
  const room = (width - LABEL_W - 2 * PAD) / nH;
  const cw = room >= 3 ? Math.min(24, Math.floor(room)) : Math.max(0.5, room);
  const ch = clamp(Math.min(Math.max(cw, 3), Math.floor(760 / nL)), 2, 16);
  return { cw, ch, x0: LABEL_W + PAD, y0: HEADER_H + PAD, width: LABEL_W + 2 * PAD + nH * cw, height: HEADER_H + 2 * PAD + nL * ch };
}

function render({ model, el }) {
  el.classList.add("inb-grid");
  const caption = document.createElement("div");
  caption.className = "inb-grid-caption";
  el.append(caption);
  const { canvas, tip } = mountCanvas(el, "inb-grid-canvas");
  const legend = document.createElement("div");
  legend.className = "inb-grid-legend";
  el.append(legend);
  let g = null;

  function draw() {
    const nL = model.get("n_layers"), nH = model.get("n_heads"), values = model.get("values");
    const stops = model.get("stops"), vmin = model.get("vmin"), vmax = model.get("vmax");
    g = geometry(el, nL, nH);
    const dpr = window.devicePixelRatio || 1;
    canvas.width = Math.round(g.width * dpr);
    canvas.height = Math.round(g.height * dpr);
    canvas.style.width = `${g.width}px`;
    canvas.style.height = `${g.height}px`;
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, g.width, g.height);
    for (let l = 0; l < nL; l++) {
      for (let h = 0; h < nH; h++) {
        const c = colour(stops, values[l * nH + h], vmin, vmax);
        ctx.fillStyle = c === null ? "#ffffff" : c;
        ctx.fillRect(g.x0 + h * g.cw, g.y0 + l * g.ch, g.cw - (g.cw > 5 ? 1 : 0), g.ch - (g.ch > 5 ? 1 : 0));
        if (c === null && g.cw > 5) {  // no such head: a hatch, not a colour that reads as a score
          ctx.strokeStyle = "#cccccc";
          ctx.beginPath();
          ctx.moveTo(g.x0 + h * g.cw, g.y0 + (l + 1) * g.ch - 1);
          ctx.lineTo(g.x0 + (h + 1) * g.cw - 1, g.y0 + l * g.ch);
          ctx.stroke();
        }
      }
    }
    const line = Math.max(1, Math.min(2, g.cw / 6));
    ctx.lineWidth = line;
    ctx.strokeStyle = model.get("outline");
    for (const i of model.get("detected")) {
      const l = Math.floor(i / nH), h = i % nH;
      ctx.strokeRect(g.x0 + h * g.cw + line / 2, g.y0 + l * g.ch + line / 2, g.cw - line - (g.cw > 5 ? 1 : 0) + line / 2, g.ch - line - (g.ch > 5 ? 1 : 0) + line / 2);
    }
    if (g.cw >= 8) {  // heads whose attention can be shown without running the model: a small dot
      ctx.fillStyle = "#ffffff";
      for (const i of model.get("available")) {
        const l = Math.floor(i / nH), h = i % nH;
        ctx.beginPath();
        ctx.arc(g.x0 + h * g.cw + 3, g.y0 + l * g.ch + 3, 1.5, 0, 2 * Math.PI);
        ctx.fill();
      }
    }
    drawLabels(ctx, nL, nH);
    drawSelected(ctx);
    caption.textContent = `${model.get("metric")} by layer (rows) x head (columns): click a head`;
    drawLegend(stops, vmin, vmax);
    el.dataset.cellW = g.cw; el.dataset.cellH = g.ch; el.dataset.x0 = g.x0; el.dataset.y0 = g.y0;
    el.dataset.drawnAt = String(performance.now());
    el.dataset.drawnEpoch = String(Date.now());
    if (!el.dataset.firstDrawnEpoch) el.dataset.firstDrawnEpoch = el.dataset.drawnEpoch;
  }

  function drawLabels(ctx, nL, nH) {
    const [sl, sh] = model.get("selected"), labels = model.get("row_labels");
    ctx.fillStyle = "#333333";
    ctx.font = "10px sans-serif";
    ctx.textBaseline = "middle";
    ctx.textAlign = "right";
    const rowStep = Math.ceil(13 / g.ch);
    for (let l = 0; l < nL; l++) {
      // every rowStep-th label, the selected row's in bold, none crowding it
      if (l !== sl && (l % rowStep !== 0 || Math.abs(l - sl) < rowStep)) continue;
      ctx.font = l === sl ? "bold 10px sans-serif" : "10px sans-serif";
      ctx.fillText(labels[l] || `L${l}`, LABEL_W, g.y0 + (l + 0.5) * g.ch);
    }
    ctx.textAlign = "center";
    ctx.textBaseline = "alphabetic";
    const colStep = Math.ceil((ctx.measureText(`H${nH - 1}`).width + 6) / g.cw);
    for (let h = 0; h < nH; h++) {
      if (h !== sh && (h % colStep !== 0 || Math.abs(h - sh) < colStep)) continue;
      ctx.font = h === sh ? "bold 10px sans-serif" : "10px sans-serif";
      ctx.fillText(`H${h}`, g.x0 + (h + 0.5) * g.cw, HEADER_H - 2);
    }
  }

  // Black outside, white inside, drawn beyond the cell: visible on the darkest and the lightest colour.
  function drawSelected(ctx) {
    const [l, h] = model.get("selected");
    const x = g.x0 + h * g.cw, y = g.y0 + l * g.ch;
    ctx.lineWidth = 2;
    ctx.strokeStyle = "#000000";
    ctx.strokeRect(x - 2, y - 2, g.cw + 3, g.ch + 3);
    ctx.lineWidth = 1;
    ctx.strokeStyle = "#ffffff";
    ctx.strokeRect(x - 0.5, y - 0.5, g.cw, g.ch);
  }

  function drawLegend(stops, vmin, vmax) {
    const bar = `linear-gradient(to right, ${stops.join(", ")})`;
    legend.innerHTML = "";
    const scale = document.createElement("div");
    scale.className = "inb-grid-scale";
    scale.innerHTML = `<span>${fmt(vmin)}</span><span class="inb-grid-bar" style="background:${bar}"></span><span>${fmt(vmax)}</span>`;
    const keys = document.createElement("div");
    keys.className = "inb-grid-keys";
    keys.innerHTML = `<span><i class="inb-key-detected" style="border-color:${model.get("outline")}"></i>detected</span>`
      + '<span><i class="inb-key-selected"></i>selected</span>'
      + (g.cw >= 8 ? '<span><i class="inb-key-available"></i>pattern ready (no run)</span>' : "")
      + '<span><i class="inb-key-absent"></i>no such head</span>';
    legend.append(scale, keys);
  }

  function cellAt(event) {
    const r = canvas.getBoundingClientRect();
    const sx = g.width / (r.width || g.width), sy = g.height / (r.height || g.height);  // CSS scaling, if any
    const h = Math.floor(((event.clientX - r.left) * sx - g.x0) / g.cw);
    const l = Math.floor(((event.clientY - r.top) * sy - g.y0) / g.ch);
    const nL = model.get("n_layers"), nH = model.get("n_heads");
    if (l < 0 || h < 0 || l >= nL || h >= nH) return null;
    const v = model.get("values")[l * nH + h];
    return v === null || v === undefined ? null : [l, h, v];
  }

  canvas.addEventListener("mousemove", (event) => {
    const cell = cellAt(event);
    if (cell === null) { tip.style.display = "none"; canvas.style.cursor = "default"; return; }
    const [l, h, v] = cell, nH = model.get("n_heads");
    const flags = [model.get("detected").includes(l * nH + h) ? "detected" : "", model.get("available").includes(l * nH + h) ? "pattern ready" : ""].filter(Boolean);
    const label = (model.get("row_labels")[l] || `L${l}`);
    tip.textContent = `${label}H${h}  ${model.get("metric")} ${fmt(v)}${flags.length ? "  (" + flags.join(", ") + ")" : ""}`;
    tip.style.left = `${Math.min(event.offsetX + 12, g.width - 40)}px`;
    tip.style.top = `${event.offsetY + 14}px`;
    tip.style.display = "block";
    canvas.style.cursor = "pointer";
  });
  canvas.addEventListener("mouseleave", () => { tip.style.display = "none"; });
  canvas.addEventListener("click", (event) => {
    const cell = cellAt(event);
    if (cell === null) return;
    model.set("selected", [cell[0], cell[1]]);
    model.save_changes();
    draw();
  });
  return redrawOn(model, ["values", "selected", "detected", "available", "stops", "vmin", "vmax", "metric",
                          "row_labels", "outline"], el, draw);
}

export default { render };
