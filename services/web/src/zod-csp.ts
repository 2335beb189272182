import { z } from "zod";

// zod 4 probes `new Function("")` to decide whether to compile parsers; under
// the web image's strict CSP (no 'unsafe-eval') that probe is reported as a
// violation. Parse without generated code instead.
z.config({ jitless: true });
