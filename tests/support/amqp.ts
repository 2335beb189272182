import type { Channel } from "amqplib";
import { STAGES } from "@docflow/contracts";
import { deadLetterExchange, deadLetterQueue, laneQueue, retryQueue } from "@docflow/infra";

/**
 * Removes what `assertTopology` declared in `namespace` with these retry delays: every stage's
 * work queue and DLQ, the render express lane, the retry queues of each, and the dead-letter
 * exchange. For a test's cleanup: a queue already gone is fine.
 */
export async function deleteTopology(ch: Channel, namespace: string, retryDelaysMs: readonly number[] = []): Promise<void> {
  const lanes = [...STAGES.map((stage) => ({ stage, express: false })), { stage: "render" as const, express: true }];
  const queues = [
    ...STAGES.map((stage) => deadLetterQueue(namespace, stage)),
    ...lanes.flatMap(({ stage, express }) => [laneQueue(namespace, stage, express), ...retryDelaysMs.map((d) => retryQueue(namespace, stage, d, express))]),
  ];
  for (const q of queues) await ch.deleteQueue(q).catch(() => {});
  await ch.deleteExchange(deadLetterExchange(namespace)).catch(() => {});
}
