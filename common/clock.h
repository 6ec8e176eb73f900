// Elapsed-time measurement for logs, summaries and rate limits.
#pragma once

// gs_clock_s: seconds on the monotonic clock (an arbitrary origin: only differences mean
// anything). Thread-safe.
double gs_clock_s(void);
