import { describe, expect, it } from "vitest";
import { lagChart, pushSample, WINDOW_MS } from "../../tripsage/static/js/chart.js";
import { parseRoute, tripPath } from "../../tripsage/static/js/routes.js";

describe("routes", () => {
  const id = "0B6A0A1E-8F5C-4D5E-9A43-0D7C6F1B2A11";
  it.each([
    ["/", { name: "list" }],
    ["", { name: "list" }],
    ["/admin/", { name: "admin" }],
    [`/trips/${id}`, { name: "trip", id: id.toLowerCase() }],
    ["/trips/nope", { name: "notfound" }],
    ["/elsewhere", { name: "notfound" }],
  ])("%s", (path, route) => {
    expect(parseRoute(path)).toEqual(route);
  });

  it("builds trip paths", () => {
    expect(tripPath("a b")).toBe("/trips/a%20b");
  });
});

describe("lag chart", () => {
  const status = (lag, backlog) => ({ lag_seconds: lag, backlog });

  it("keeps the worst lag and total backlog of each sample, for the window only", () => {
    let samples = pushSample([], 0, [status(0.5, 1), status(2, 3)]);
    expect(samples).toEqual([{ t: 0, lag: 2, backlog: 4 }]);
    samples = pushSample(samples, WINDOW_MS, []);
    expect(samples).toEqual([{ t: WINDOW_MS, lag: 0, backlog: 0 }]);
  });

  it("draws newest at the right, scaled to the highest lag (at least 1 s)", () => {
    expect(lagChart([])).toMatchObject({ points: "", caption: "No samples yet." });
    const flat = lagChart([
      { t: 0, lag: 0, backlog: 0 },
      { t: WINDOW_MS / 2, lag: 0.5, backlog: 2 },
    ]);
    expect(flat.points).toBe("160.0,98.0 320.0,50.0");
    expect(flat.top).toBe(1);
    expect(flat.caption).toBe(
      "Worst projection lag over the last 3 min (sampled every 2 s): now 0.50 s, highest 0.50 s, backlog 2.",
    );
    const peak = lagChart([
      { t: 0, lag: 4, backlog: 9 },
      { t: 1000, lag: 2, backlog: 1 },
    ]);
    expect(peak.points.split(" ")[0]).toMatch(/,2\.0$/);
    expect(peak.caption).toContain("over the last 1 s");
    expect(peak.caption).toContain("highest 4.00 s");
  });
});
