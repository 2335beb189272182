export { createLogger, type Logger } from "./logger.ts";
export { startEventLoopMonitor, type EventLoopMonitor } from "./event-loop.ts";
