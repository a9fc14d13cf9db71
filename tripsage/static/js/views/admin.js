// The admin page (`/admin`, service_role tokens): projection status, and lag over the last minutes
// sampled by this page every 2 s (an inline SVG chart).

import { lagChart, pushSample } from "../chart.js";
import { h, svg } from "../dom.js";
import { describeError } from "../errors.js";

const EVERY_MS = 2000;

export class AdminView {
  constructor(app) {
    this.app = app;
    this.samples = [];
    this.timer = null;
    this.table = h("div", { id: "projections", "aria-live": "polite" });
    this.chart = h("figure", { class: "chart card" });
  }

  async mount(main) {
    if (!this.app.session.admin) {
      main.replaceChildren(
        h("h1", { tabindex: "-1" }, "Projections"),
        h("p", {}, "This page needs a service_role token. Sign out and sign in with one."),
      );
      return;
    }
    main.replaceChildren(h("h1", { tabindex: "-1" }, "Projections"), this.table, this.chart);
    await this.tick();
  }

  unmount() {
    clearTimeout(this.timer);
    this.timer = null;
    this.table = null;
  }

  async tick() {
    if (!this.table) return;
    try {
      const report = await this.app.api.projections();
      this.app.verified = true;
      this.samples = pushSample(this.samples, Date.now(), report.projections);
      this.render(report);
    } catch (error) {
      this.table?.replaceChildren(h("p", { class: "form-error" }, describeError(error)));
    }
    if (this.table) this.timer = setTimeout(() => this.tick(), EVERY_MS);
  }

  render(report) {
    // One column per projection, one row per figure: fits a phone's width with any number of figures.
    const rows = [
      ["Version", (p) => p.version],
      ["Backlog", (p) => p.backlog],
      ["Lag (changes)", (p) => p.lag_positions],
      ["Lag (s)", (p) => p.lag_seconds.toFixed(2)],
      ["Dead letters", (p) => p.dead_letters],
      ["Workers", (p) => p.workers],
      ["Heartbeat age (s)", (p) => (p.heartbeat_age_seconds == null ? "—" : p.heartbeat_age_seconds.toFixed(1))],
    ];
    this.table.replaceChildren(
      h(
        "div",
        { class: "table-scroll", tabindex: "0", role: "region", "aria-label": "Projection status" },
        h(
          "table",
          {},
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              h("th", { scope: "col" }, "Projection"),
              report.projections.map((p) => h("th", { scope: "col" }, p.name)),
            ),
          ),
          h(
            "tbody",
            {},
            rows.map(([name, value]) =>
              h(
                "tr",
                {},
                h("th", { scope: "row" }, name),
                report.projections.map((p) => h("td", {}, String(value(p)))),
              ),
            ),
          ),
        ),
      ),
      h(
        "p",
        { class: "muted" },
        report.dead_letters.length
          ? `${report.dead_letters.length} dead letters listed by the API.`
          : "No dead letters.",
      ),
    );
    const chart = lagChart(this.samples);
    const text = (x, y, anchor, words) => svg("text", { x, y, "text-anchor": anchor, class: "tick" }, words);
    this.chart.replaceChildren(
      h("h2", { id: "lag-title" }, "Lag, last 5 minutes"),
      svg(
        "svg",
        {
          viewBox: `-4 -12 ${chart.width + 8} ${chart.height + 26}`,
          role: "img",
          "aria-labelledby": "lag-title lag-caption",
          class: "lag",
        },
        svg("line", { x1: 0, y1: chart.height - 1, x2: chart.width, y2: chart.height - 1, class: "axis" }),
        svg("line", { x1: 0, y1: 0, x2: 0, y2: chart.height, class: "axis" }),
        svg("polyline", { points: chart.points, class: "line" }),
        text(4, -2, "start", `${(chart.top ?? 1).toFixed(1)} s`),
        text(0, chart.height + 12, "start", "−5 min"),
        text(chart.width, chart.height + 12, "end", "now"),
      ),
      h("figcaption", { id: "lag-caption" }, chart.caption),
    );
  }
}
