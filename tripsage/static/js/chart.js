// The admin page's lag chart: samples taken by the page, kept for a few minutes, drawn as a polyline.

export const WINDOW_MS = 5 * 60 * 1000;
const WIDTH = 320;
const HEIGHT = 100;

/** Add a sample (the worst lag and the total backlog over all projections) and drop those past the window. */
export function pushSample(samples, now, projections) {
  const lag = Math.max(0, ...projections.map((p) => p.lag_seconds));
  const backlog = projections.reduce((sum, p) => sum + p.backlog, 0);
  return [...samples, { t: now, lag, backlog }].filter((s) => s.t > now - WINDOW_MS);
}

/** The chart's geometry (x: the window, newest at the right; y: 0 … the highest lag, at least 1 s) and caption. */
export function lagChart(samples) {
  if (!samples.length) return { width: WIDTH, height: HEIGHT, points: "", caption: "No samples yet." };
  const newest = samples[samples.length - 1];
  const top = Math.max(1, ...samples.map((s) => s.lag));
  const points = samples
    .map((s) => {
      const x = WIDTH - ((newest.t - s.t) / WINDOW_MS) * WIDTH;
      const y = HEIGHT - 2 - (s.lag / top) * (HEIGHT - 4);
      return `${x.toFixed(1)},${y.toFixed(1)}`;
    })
    .join(" ");
  const seconds = Math.round((newest.t - samples[0].t) / 1000);
  const span = seconds >= 120 ? `the last ${Math.round(seconds / 60)} min` : `the last ${seconds} s`;
  const worst = Math.max(...samples.map((s) => s.lag));
  return {
    width: WIDTH,
    height: HEIGHT,
    top,
    points,
    caption: `Worst projection lag over ${span} (sampled every 2 s): now ${newest.lag.toFixed(2)} s, highest ${worst.toFixed(2)} s, backlog ${newest.backlog}.`,
  };
}
