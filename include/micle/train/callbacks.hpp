#pragma once
// The usual callbacks of micle::train::fit (fit.hpp explains the hooks):
//   progress()                     a progress line with ETA on stderr, an epoch summary
//   jsonl(path)                    every step and every epoch as a JSON line (metrics.jsonl)
//   stop_after_epoch(k)            end after epoch k, checkpointed (a time-limited job)
//   time_budget(seconds)           end after the step that passes the budget, checkpointed
//   validation(learner, val, n)    val_accuracy and val_auc of a supervised learner every n epochs
//   knn_monitor(learner, bank, val, n, {k, T})   knn_accuracy of the backbone's features
// A callback of one's own is a struct with the hooks it needs, or a lambda on step_info&.
// Each lives in its own file under train/callbacks/; this header includes them all.
#include "micle/train/callbacks/jsonl.hpp"
#include "micle/train/callbacks/knn_monitor.hpp"
#include "micle/train/callbacks/progress.hpp"
#include "micle/train/callbacks/stops.hpp"
#include "micle/train/callbacks/validation.hpp"
#include "micle/train/predict.hpp"
