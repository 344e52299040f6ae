// What the grid and heatmap ES modules share (prepended to each by canvas_state.es_module): colour
// parsing, a canvas with its hover tip, and one redraw per message or width change.

function clamp(x, lo, hi) { return Math.max(lo, Math.min(hi, x)); }

function rgb(hex) { return [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16)); }

// A canvas with a hover tip in a positioned wrapper, appended to `parent`.
function mountCanvas(parent, canvasClass) {
  const wrap = document.createElement("div");
  wrap.className = "inb-grid-wrap";
  const canvas = document.createElement("canvas");
  canvas.className = canvasClass;
  const tip = document.createElement("div");
  tip.className = "inb-grid-tip";
  wrap.append(canvas, tip);
  parent.append(wrap);
  return { wrap, canvas, tip };
}

// draw() once now, once per message (a message changing several keys fires one change event per key),
// and when the element's width changes (not its height: drawing changes that). Returns the cleanup.
function redrawOn(model, keys, el, draw) {
  let pending = false, lastWidth = -1;
  const schedule = () => { if (!pending) { pending = true; queueMicrotask(() => { pending = false; draw(); }); } };
  for (const key of keys) model.on(`change:${key}`, schedule);
  const observer = new ResizeObserver(() => {
    const w = Math.floor(el.getBoundingClientRect().width);
    if (w !== lastWidth) { lastWidth = w; draw(); }
  });
  observer.observe(el);
  draw();
  return () => observer.disconnect();
}
