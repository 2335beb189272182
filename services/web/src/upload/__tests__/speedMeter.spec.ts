import { describe, expect, it } from "vitest";
import { SPEED_MIN_ELAPSED_MS, SPEED_WINDOW_MS, SpeedMeter } from "@/upload/speedMeter";

const MB = 1024 * 1024;

describe("SpeedMeter", () => {
  it("gives no speed before half a second has been measured, then bytes per second since the first sample", () => {
    const meter = new SpeedMeter();
    expect(meter.sample("a", 0, 1_000)).toBeNull();
    expect(meter.sample("a", MB / 4, 1_000 + SPEED_MIN_ELAPSED_MS - 1)).toBeNull();
    expect(meter.sample("a", MB / 2, 1_000 + SPEED_MIN_ELAPSED_MS)).toBe(MB);
    expect(meter.sample("a", 2 * MB, 3_000)).toBe(MB);
  });

  it("measures over the last few seconds only, so that it follows the connection", () => {
    const meter = new SpeedMeter();
    // 1 MB/s for 10 s, then 4 MB/s.
    for (let second = 0; second <= 10; second++) meter.sample("a", second * MB, second * 1_000);
    let speed: number | null = null;
    for (let second = 1; second <= SPEED_WINDOW_MS / 1_000 + 1; second++) speed = meter.sample("a", (10 + 4 * second) * MB, (10 + second) * 1_000);
    expect(speed).toBe(4 * MB);
  });

  it("keeps two samples however far apart, so that a slow chunk still gives a speed", () => {
    const meter = new SpeedMeter();
    meter.sample("a", 0, 0);
    expect(meter.sample("a", 10 * MB, 10_000)).toBe(MB);
    expect(meter.sample("a", 30 * MB, 30_000)).toBe(MB);
  });

  it("measures each upload apart, and afresh once forgotten", () => {
    const meter = new SpeedMeter();
    meter.sample("a", 0, 0);
    meter.sample("b", 0, 0);
    expect(meter.sample("b", 3 * MB, 1_000)).toBe(3 * MB);
    // A resume: 40 MB the server already had were not sent now.
    meter.forget("a");
    expect(meter.sample("a", 40 * MB, 1_000)).toBeNull();
    expect(meter.sample("a", 41 * MB, 2_000)).toBe(MB);
  });

  it("never gives a negative speed", () => {
    const meter = new SpeedMeter();
    meter.sample("a", 5 * MB, 0);
    expect(meter.sample("a", 0, 1_000)).toBe(0);
  });
});
