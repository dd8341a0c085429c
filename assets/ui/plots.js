() => {
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
    plotly.react = later(plotly.react);
    plotly.Plots.resize = later(plotly.Plots.resize);
  };
  if (window.Plotly) {
    drawOnce(window.Plotly);
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
