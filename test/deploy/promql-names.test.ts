/** The PromQL name extraction the alert and dashboard checks rely on (pure). */
import { describe, expect, it } from "vitest";
import { exportedNames, metricNames } from "../../tools/testbed/helpers/promql-names.js";

describe("metric names in PromQL", () => {
  it("finds the metrics an expression reads, not its functions, labels, strings, durations or Grafana variables", () => {
    expect(metricNames('absent(mailfetchd_info{job="mailfetchd"})')).toEqual(["mailfetchd_info"]);
    expect(
      metricNames(
        'histogram_quantile(0.95, sum by (queue, le) (rate(mailfetchd_delivery_delay_seconds_bucket{instance=~"$instance",queue=~"$queue"}[$__rate_interval])))',
      ),
    ).toEqual(["mailfetchd_delivery_delay_seconds_bucket"]);
    expect(metricNames("mailfetchd_dead_letters > mailfetchd_dead_letters offset 30m")).toEqual(["mailfetchd_dead_letters"]);
    expect(
      metricNames("a_total > 0 unless on (job, queue) sum by (job, queue) (increase(b_total[15m])) > 2 * 86400 and on (job) (count by (job) (c < 300) > 0)"),
    ).toEqual(["a_total", "b_total", "c"]);
    expect(metricNames("1 - x_bytes / y_bytes < 0.03")).toEqual(["x_bytes", "y_bytes"]);
  });

  it("lists every series name a metrics page can hold, from its TYPE lines", () => {
    const names = exportedNames("# HELP a_total x\n# TYPE a_total counter\n# TYPE h_seconds histogram\n# TYPE e_total counter\na_total 1\n");
    expect([...names].sort()).toEqual(["a_total", "e_total", "h_seconds", "h_seconds_bucket", "h_seconds_count", "h_seconds_sum"]);
  });
});
