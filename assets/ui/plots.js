() => {
  // Dark mode: the figures are built for a white page. On a dark page they are drawn on a transparent
  // background, their greys lightened and their white lines in the page's own colour; colour scales, the
  // palette and the red highlights keep their meaning.
  const isDark = () => document.body.classList.contains("dark") || document.documentElement.classList.contains("dark");
  const lighten = (colour, page) => {
    const c = colour.toLowerCase();
    if (c === "white" || c === "#ffffff" || c === "#fff") return page;  // separators and outlines: gaps
    const white = /^rgba?\(\s*255\s*,\s*255\s*,\s*255\s*(?:,\s*([\d.]+)\s*)?\)$/.exec(c);
    if (white) return `rgba(${page.match(/[\d.]+/g).slice(0, 3).join(", ")}, ${white[1] ?? 1})`;  // legend boxes
    if (c === "#2a3f5f") return "#d7dde8";  // plotly_white's text
    if (c === "#ebf0f8" || c === "#e5ecf6" || c === "#c8d4e3") return "rgba(255, 255, 255, 0.14)";  // its grid
    const grey = /^#([0-9a-f]{2})\1\1$/.exec(c);
    if (!grey || parseInt(grey[1], 16) >= 0x99) return colour;
    const level = Math.round(255 - 0.55 * parseInt(grey[1], 16));  // #222222 -> #ececec, #666666 -> #c7c7c7
    return `rgb(${level}, ${level}, ${level})`;
  };
  const recolour = (value, page) => {
    if (Array.isArray(value)) return value.map((item) => recolour(item, page));
    if (!value || typeof value !== "object") return value;
    const out = {};
    for (const [key, item] of Object.entries(value)) {
      const colour = typeof item === "string" && /color$/i.test(key);
      out[key] = colour ? lighten(item, page) : /^colorscale$/i.test(key) ? item : recolour(item, page);
    }
    return out;
  };
  const themed = (gd, data, layout) => {
    if (!isDark() || !layout) return [data, layout];
    const page = getComputedStyle(gd.closest(".block") || document.body).backgroundColor;
    const dark = recolour(layout, page);
    dark.paper_bgcolor = dark.plot_bgcolor = "rgba(0, 0, 0, 0)";
    return [recolour(data, page), dark];
  };
  // A phone-wide plot: long subtitle and annotation lines are wrapped at spaces (the top margin grows by the lines
  // added) and the scatter's density drops its colour bar, so that no text runs off the figure's edge.
  const NARROW = 520;
  const wrap = (text, chars) => String(text).split("<br>").flatMap((line) => {
    const out = [];
    let current = "";
    for (const word of line.split(" ")) {
      if (current && (current + " " + word).replace(/<[^>]*>/g, "").length > chars) {
        out.push(current);
        current = word;
      } else current = current ? current + " " + word : word;
    }
    return [...out, current];
  });
  const narrowed = (gd, data, layout) => {
    const width = gd.clientWidth || (gd.parentElement && gd.parentElement.clientWidth) || 0;
    if (!layout || !width || width >= NARROW) return [data, layout];
    const out = { ...layout, margin: { ...(layout.margin || {}) } };
    let added = 0;
    const lines = (text, size) => {
      const before = String(text).split("<br>").length;
      const after = wrap(text, Math.max(20, Math.floor((width - 24) / (0.56 * size))));
      added += after.length - before;
      return after.join("<br>");
    };
    const subtitle = layout.title && layout.title.subtitle;
    if (subtitle && subtitle.text) {
      out.title = { ...layout.title, subtitle: { ...subtitle, text: lines(subtitle.text, (subtitle.font || {}).size || 12) } };
    }
    if (layout.annotations) {
      out.annotations = layout.annotations.map((a) => (a.text && a.yref === "paper" && a.y >= 1
        ? { ...a, text: lines(a.text, (a.font || {}).size || 12) } : a));
    }
    if (added) {
      out.margin.t = (out.margin.t || 80) + 16 * added;
      if (out.height) out.height += 16 * added;
    }
    const slim = (data || []).map((t) => (t.type === "heatmap" && t.name === "evaluation set" ? { ...t, showscale: false } : t));
    return [slim, out];
  };
  // Gradio 6 draws a new figure twice: the outgoing plot component draws it, then the one that replaces it
  // (each plot is keyed on its value). Drawing once the page's update is done (a microtask later), and only
  // into plots still in the page, draws each figure once.
  const drawOnce = (plotly) => {
    if (!plotly || plotly.logoDrawOnce) return;
    plotly.logoDrawOnce = true;
    const later = (draw) => (gd, ...args) => new Promise((resolve, reject) => {
      queueMicrotask(() => {
        if (gd && gd.isConnected === false) return resolve(gd);
        Promise.resolve(draw(gd, ...args)).then(resolve, reject);
      });
    });
    const react = plotly.react;
    plotly.react = later((gd, data, layout, ...rest) => react(gd, ...themed(gd, ...narrowed(gd, data, layout)), ...rest));
    plotly.Plots.resize = later(plotly.Plots.resize);
  };
  if (window.Plotly) {  // plots drawn before this ran are drawn again, in the page's theme
    drawOnce(window.Plotly);
    document.querySelectorAll(".js-plotly-plot").forEach((gd) => gd.data && window.Plotly.react(gd, gd.data, gd.layout));
  } else {  // Gradio loads Plotly with the first plot and sets window.Plotly
    let plotly;
    Object.defineProperty(window, "Plotly", {
      configurable: true,
      get: () => plotly,
      set: (value) => { plotly = value; drawOnce(value); },
    });
  }
  // Plotly sizes a figure when it draws it; Gradio may draw before the columns settle, leaving a plot
  // narrower than its column. Ask Plotly to refit (it listens to window resizes) when one is off.
  let pending = null;
  const offSize = () => [...document.querySelectorAll("#plots .js-plotly-plot")].some((gd) =>
    gd._fullLayout && !(gd.layout && gd.layout.width) && Math.abs(gd._fullLayout.width - gd.clientWidth) > 2);
  const refit = () => {
    clearTimeout(pending);
    pending = setTimeout(() => offSize() && window.dispatchEvent(new Event("resize")), 80);
  };
  const sizes = new ResizeObserver(refit);
  const watch = () => {
    const plots = document.getElementById("plots");
    if (!plots || plots.dataset.logoWatched) return false;
    plots.dataset.logoWatched = "1";
    sizes.observe(plots);
    new MutationObserver(refit).observe(plots, { childList: true, subtree: true });
    return true;
  };
  // A re-route that changes only the selection (k, weighting, pins) sends the heatmap's new shapes and meta, not
  // the heatmap, and for the same prompt the scatter's prompt layer, not the scatter: replacing the shapes of the
  // heatmap on screen takes 20-30 ms where redrawing it takes 150-350, Plotly.react on the scatter on screen about
  // 50 where Gradio's new plot element takes 60-90. layout.meta draws nothing (no text of these figures refers to
  // it), but relayout would replot the whole heatmap for it (about 200 ms: its tick labels are measured again), so
  // it is set in place, last: once it says the new selection, both plots show it.
  // The plots are the ones on screen when the marks arrived: one that a later full redraw replaced is left alone.
  const markSelection = async (marks, scatter, gd) => {
    const layer = marks.scatter;
    if (layer && scatter && scatter.isConnected && scatter.data && scatter.layout) {
      const data = [...scatter.data.slice(0, layer.kept), ...layer.traces];
      await window.Plotly.react(scatter, data, { ...layer.layout, template: scatter.layout.template });
    }
    if (!gd || !gd.isConnected || !gd.layout) return;
    const [, layout] = themed(gd, [], { shapes: marks.heatmap.shapes });
    await window.Plotly.relayout(gd, { shapes: layout.shapes });
    gd.layout.meta = marks.heatmap.meta;
    if (gd._fullLayout) gd._fullLayout.meta = marks.heatmap.meta;
  };
  let marking = Promise.resolve();  // one after the other: the last re-route's marks are the ones left on screen
  window.logoMarkSelection = (marks) => {
    if (!marks || !window.Plotly) return marking;
    const scatter = document.querySelector("#plot-scatter .js-plotly-plot");
    const gd = document.querySelector("#plot-heatmap .js-plotly-plot");
    marking = marking.then(() => markSelection(marks, scatter, gd)).catch((err) => console.error("logoMarkSelection", err));
    return marking;
  };
  // Enter (or Ctrl/Cmd+Enter) in the prompt answers it; Shift+Enter is a new line
  document.addEventListener("keydown", (event) => {
    const prompt = event.target.closest && event.target.closest("#prompt");
    if (!prompt || event.key !== "Enter" || event.shiftKey || event.isComposing) return;
    event.preventDefault();
    event.stopPropagation();
    document.getElementById("generate")?.click();
  }, true);
  if (!watch()) {
    const wait = new MutationObserver(() => watch() && wait.disconnect());
    wait.observe(document.body, { childList: true, subtree: true });
  }
}
