() => {
  // Plotly sizes a figure when it draws it; Gradio may draw before the columns settle, leaving a plot
  // narrower than its column. Ask Plotly to refit (it listens to window resizes) whenever the plots change.
  let pending = null;
  const refit = () => {
    clearTimeout(pending);
    pending = setTimeout(() => window.dispatchEvent(new Event("resize")), 80);
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
